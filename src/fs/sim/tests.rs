//! Unit tests of the simulated file system.

use std::collections::BTreeSet;

use super::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// A file system with a durable directory `/d`.
fn with_dir(seed: u64) -> SimFs {
    let fs = SimFs::new(seed);
    fs.create_dir_all(p("/d")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs
}

/// Creates `/d/f` durably (entry synced) with empty durable content.
fn durable_file(fs: &SimFs) -> Arc<dyn File> {
    let f = fs.open(p("/d/f"), OpenMode::Create).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    f
}

#[test]
fn send_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SimFs>();
    assert_send_sync::<SimFile>();
    assert_send_sync::<Arc<dyn File>>();
}

#[test]
fn unsynced_write_lost_after_crash() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    f.write_all_at(b"hello", 0).unwrap();
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"hello");
    assert_eq!(fs.durable_len(p("/d/f")), Some(0));
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"");
}

#[test]
fn synced_write_kept() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    f.write_all_at(b"hello", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b" world", 5).unwrap();
    assert_eq!(fs.durable_len(p("/d/f")), Some(5));
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"hello");
    let f = fs.open(p("/d/f"), OpenMode::Read).unwrap();
    assert_eq!(f.len().unwrap(), 5);
}

#[test]
fn set_len_durable_only_after_sync() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    f.write_all_at(b"abcdef", 0).unwrap();
    f.sync_all().unwrap();
    f.set_len(2).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"abcdef");
    let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    f.set_len(2).unwrap();
    f.set_len(4).unwrap();
    f.sync_data().unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"ab\0\0");
}

#[test]
fn write_past_end_zero_fills() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    f.write_all_at(b"xy", 3).unwrap();
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"\0\0\0xy");
    let mut buf = [9u8; 8];
    assert_eq!(f.read_at(&mut buf, 1).unwrap(), 4);
    assert_eq!(&buf[..4], b"\0\0xy");
    assert_eq!(f.read_at(&mut buf, 5).unwrap(), 0);
    assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
    assert!(f.write_all_at(b"x", u64::MAX).is_err());
    assert!(f.write_all_at(b"x", MAX_FILE_LEN).is_err());
    assert!(f.set_len(u64::MAX).is_err());
    assert_eq!(&f.map_readonly(4).unwrap()[..], b"\0\0\0x");
    assert!(f.map_readonly(6).is_err());
}

#[test]
fn unsynced_create_lost_unless_sync_dir() {
    let fs = with_dir(1);
    let a = fs.open(p("/d/a"), OpenMode::CreateNew).unwrap();
    a.write_all_at(b"aaa", 0).unwrap();
    a.sync_all().unwrap(); // data durable, but not the name
    fs.crash(CrashMode::LoseUnsynced);
    assert!(!fs.exists(p("/d/a")).unwrap());

    let b = fs.open(p("/d/b"), OpenMode::CreateNew).unwrap();
    b.write_all_at(b"bbb", 0).unwrap();
    b.sync_all().unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/b")).unwrap(), b"bbb");
    assert_eq!(fs.read_dir(p("/d")).unwrap(), vec!["b".to_string()]);
}

#[test]
fn rename_durability() {
    let fs = with_dir(1);
    fs.write_file(p("/d/old"), b"content");
    fs.rename(p("/d/old"), p("/d/new")).unwrap();
    assert!(!fs.exists(p("/d/old")).unwrap());
    assert_eq!(fs.read_file(p("/d/new")).unwrap(), b"content");
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/old")).unwrap(), b"content");
    assert!(!fs.exists(p("/d/new")).unwrap());

    fs.rename(p("/d/old"), p("/d/new")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert!(!fs.exists(p("/d/old")).unwrap());
    assert_eq!(fs.read_file(p("/d/new")).unwrap(), b"content");
}

#[test]
fn rename_replaces_and_old_handle_keeps_inode() {
    let fs = with_dir(1);
    fs.write_file(p("/d/target"), b"old");
    fs.write_file(p("/d/tmp"), b"new");
    let old = fs.open(p("/d/target"), OpenMode::Read).unwrap();
    fs.rename(p("/d/tmp"), p("/d/target")).unwrap();
    assert_eq!(fs.read_dir(p("/d")).unwrap(), vec!["target".to_string()]);
    assert_eq!(fs.read_file(p("/d/target")).unwrap(), b"new");
    let mut buf = [0u8; 3];
    old.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"old");
    // Not synced: the crash brings back both names with their old files.
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/target")).unwrap(), b"old");
    assert_eq!(fs.read_file(p("/d/tmp")).unwrap(), b"new");
}

#[test]
fn rename_directory_moves_subtree() {
    let fs = SimFs::new(1);
    fs.write_file(p("/a/x/f"), b"f");
    fs.rename(p("/a/x"), p("/b")).unwrap();
    assert_eq!(fs.read_file(p("/b/f")).unwrap(), b"f");
    assert!(!fs.exists(p("/a/x")).unwrap());
    assert!(fs.is_dir(p("/b")).unwrap());
    assert_eq!(
        fs.rename(p("/b"), p("/b/inner")).unwrap_err().kind(),
        io::ErrorKind::InvalidInput
    );
    fs.sync_dir(p("/")).unwrap();
    fs.sync_dir(p("/a")).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/b/f")).unwrap(), b"f");
    assert!(!fs.exists(p("/a/x")).unwrap());
}

#[test]
fn directory_renamed_durably_in_one_parent_only_is_not_aliased() {
    let fs = SimFs::new(1);
    fs.write_file(p("/a/x/f"), b"f");
    fs.rename(p("/a/x"), p("/b")).unwrap();
    fs.sync_dir(p("/")).unwrap(); // durable in the new parent, not removed from the old one
    fs.crash(CrashMode::LoseUnsynced);
    // Exactly one of the two names survives; the crash does not loop or panic.
    assert!(fs.exists(p("/a/x")).unwrap() != fs.exists(p("/b")).unwrap());
}

#[test]
fn torn_keeps_prefix_of_unsynced_data() {
    let old = vec![b'A'; 64];
    let new = vec![b'B'; 100];
    let mut seen = BTreeSet::new();
    for seed in 0..200 {
        let fs = with_dir(seed);
        fs.write_file(p("/d/f"), &old);
        let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
        f.write_all_at(&new, 0).unwrap();
        fs.crash(CrashMode::Torn);
        let got = fs.read_file(p("/d/f")).unwrap();
        let k = got.iter().take_while(|&&b| b == b'B').count();
        assert!(got[k..].iter().all(|&b| b == b'A'), "seed {seed}: {got:?}");
        // Positions are preserved: new bytes, then the rest of the old content.
        assert_eq!(got.len(), k.max(old.len()));
        assert_eq!(fs.durable_len(p("/d/f")), Some(got.len() as u64));
        seen.insert(k);
    }
    assert!(seen.len() > 20, "k should vary: {seen:?}");
}

#[test]
fn torn_with_shorter_new_content_keeps_positions() {
    for seed in 0..100 {
        let fs = with_dir(seed);
        fs.write_file(p("/d/f"), b"0123456789");
        let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
        f.set_len(3).unwrap();
        f.write_all_at(b"ab", 0).unwrap();
        fs.crash(CrashMode::Torn);
        let got = fs.read_file(p("/d/f")).unwrap();
        let candidates: Vec<Vec<u8>> = vec![
            b"0123456789".to_vec(),
            b"a123456789".to_vec(),
            b"ab23456789".to_vec(),
            b"ab2".to_vec(),
        ];
        assert!(candidates.contains(&got), "seed {seed}: {got:?}");
    }
}

#[test]
fn torn_is_deterministic_per_seed() {
    let run = |seed| {
        let fs = with_dir(seed);
        fs.write_file(p("/d/f"), b"");
        let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
        f.write_all_at(&[7u8; 1000], 0).unwrap();
        fs.crash(CrashMode::Torn);
        fs.read_file(p("/d/f")).unwrap()
    };
    assert_eq!(run(42), run(42));
}

#[test]
fn stale_handles_after_crash() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    f.write_all_at(b"x", 0).unwrap();
    f.sync_data().unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    let mut buf = [0u8; 1];
    let errs = [
        f.read_at(&mut buf, 0).unwrap_err(),
        f.write_all_at(b"y", 0).unwrap_err(),
        f.len().unwrap_err(),
        f.set_len(0).unwrap_err(),
        f.sync_data().unwrap_err(),
        f.sync_all().unwrap_err(),
        f.map_readonly(1).unwrap_err(),
    ];
    for e in errs {
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert_eq!(e.to_string(), STALE_MSG);
    }
    // A fresh handle works.
    let g = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    assert_eq!(g.len().unwrap(), 1);
}

#[test]
fn fault_nth_write_fails() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    fs.inject(Fault {
        op: FaultOp::Write,
        path_contains: Some("/d/f".into()),
        nth: 1,
        kind: io::ErrorKind::StorageFull,
        sticky: false,
    });
    f.write_all_at(b"a", 0).unwrap();
    let e = f.write_all_at(b"b", 1).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    assert_eq!(
        fs.read_file(p("/d/f")).unwrap(),
        b"a",
        "failed write applies nothing"
    );
    f.write_all_at(b"c", 1).unwrap();
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"ac");
}

#[test]
fn fault_path_filter_and_sticky() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    let other = fs.open(p("/d/other"), OpenMode::Create).unwrap();
    fs.inject(Fault {
        sticky: true,
        path_contains: Some("/f".into()),
        ..Fault::new(FaultOp::Sync, 1)
    });
    f.write_all_at(b"a", 0).unwrap();
    f.sync_data().unwrap();
    f.write_all_at(b"b", 1).unwrap();
    for _ in 0..3 {
        assert_eq!(f.sync_all().unwrap_err().kind(), io::ErrorKind::Other);
        other.sync_data().unwrap(); // other paths are unaffected
    }
    assert_eq!(
        fs.durable_len(p("/d/f")),
        Some(1),
        "failed sync is not durable"
    );
    fs.clear_faults();
    f.sync_data().unwrap();
    assert_eq!(fs.durable_len(p("/d/f")), Some(2));
}

#[test]
fn fault_any_op_and_crash_clears() {
    let fs = SimFs::new(1);
    fs.inject(Fault::new(FaultOp::Any, 0));
    assert!(fs.create_dir_all(p("/x")).is_err());
    assert!(!fs.exists(p("/x")).unwrap());
    fs.create_dir_all(p("/x")).unwrap();
    fs.inject(Fault {
        sticky: true,
        ..Fault::new(FaultOp::Any, 0)
    });
    assert!(fs.sync_dir(p("/")).is_err());
    fs.crash(CrashMode::LoseUnsynced);
    fs.create_dir_all(p("/x")).unwrap();
    fs.sync_dir(p("/")).unwrap();
}

#[test]
fn power_cut_after_n_ops() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    fs.power_cut_after(2);
    f.write_all_at(b"a", 0).unwrap();
    f.sync_data().unwrap();
    let e = f.write_all_at(b"b", 1).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Other);
    assert_eq!(e.to_string(), POWER_CUT_MSG);
    assert!(f.sync_data().is_err());
    assert!(f.set_len(0).is_err());
    assert!(fs.open(p("/d/g"), OpenMode::Create).is_err());
    assert!(fs.create_dir_all(p("/e")).is_err());
    assert!(fs.rename(p("/d/f"), p("/d/h")).is_err());
    assert!(fs.remove_file(p("/d/f")).is_err());
    assert!(fs.remove_dir_all(p("/d")).is_err());
    assert!(fs.sync_dir(p("/d")).is_err());
    // Reads and opening existing files still work.
    assert_eq!(fs.read_dir(p("/d")).unwrap(), vec!["f".to_string()]);
    let g = fs.open(p("/d/f"), OpenMode::Read).unwrap();
    let mut buf = [0u8; 1];
    g.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"a");
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"a");
    fs.open(p("/d/f"), OpenMode::ReadWrite)
        .unwrap()
        .write_all_at(b"z", 0)
        .unwrap();
}

#[test]
fn mutating_ops_counting() {
    let fs = SimFs::new(1);
    assert_eq!(fs.mutating_ops(), 0);
    fs.create_dir_all(p("/a/b/c")).unwrap(); // 1 (one call, three dirs)
    fs.create_dir_all(p("/a/b")).unwrap(); // exists: not counted
    fs.sync_dir(p("/a")).unwrap(); // 2
    let f = fs.open(p("/a/f"), OpenMode::Create).unwrap(); // 3
    let _same = fs.open(p("/a/f"), OpenMode::Create).unwrap(); // exists: not counted
    let _ro = fs.open(p("/a/f"), OpenMode::Read).unwrap();
    f.write_all_at(b"x", 0).unwrap(); // 4
    f.set_len(10).unwrap(); // 5
    f.sync_data().unwrap(); // 6
    f.sync_all().unwrap(); // 7
    fs.rename(p("/a/f"), p("/a/g")).unwrap(); // 8
    assert!(fs.remove_file(p("/a/missing")).is_err()); // failed: not counted
    fs.remove_file(p("/a/g")).unwrap(); // 9
    fs.remove_dir_all(p("/a/b")).unwrap(); // 10
    let _ = fs.read_dir(p("/a")).unwrap();
    let _ = f.len().unwrap();
    fs.write_file(p("/planted"), b"p"); // helper: not counted
    assert_eq!(fs.mutating_ops(), 10);
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.mutating_ops(), 10);
}

#[test]
fn nested_dir_without_parent_sync_disappears() {
    let fs = SimFs::new(1);
    fs.create_dir_all(p("/top")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    fs.create_dir_all(p("/top/mid/leaf")).unwrap();
    // The leaf's entry is durable in mid, and the file's entry in leaf, but mid's entry in
    // top is not: the whole subtree disappears.
    fs.sync_dir(p("/top/mid")).unwrap();
    let f = fs.open(p("/top/mid/leaf/f"), OpenMode::Create).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(p("/top/mid/leaf")).unwrap();
    fs.crash(CrashMode::Torn);
    assert!(fs.is_dir(p("/top")).unwrap());
    assert!(!fs.exists(p("/top/mid")).unwrap());
    assert!(fs.read_dir(p("/top")).unwrap().is_empty());

    fs.create_dir_all(p("/top/mid")).unwrap();
    fs.sync_dir(p("/top")).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert!(fs.is_dir(p("/top/mid")).unwrap());
}

#[test]
fn remove_durability() {
    let fs = with_dir(1);
    fs.write_file(p("/d/f"), b"f");
    fs.write_file(p("/d/sub/g"), b"g");
    fs.remove_file(p("/d/f")).unwrap();
    fs.remove_dir_all(p("/d/sub")).unwrap();
    assert!(fs.read_dir(p("/d")).unwrap().is_empty());
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/f")).unwrap(), b"f");
    assert_eq!(fs.read_file(p("/d/sub/g")).unwrap(), b"g");
    fs.remove_file(p("/d/f")).unwrap();
    fs.remove_dir_all(p("/d/sub")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert!(fs.read_dir(p("/d")).unwrap().is_empty());
}

#[test]
fn posix_errors() {
    use io::ErrorKind as K;
    let fs = with_dir(1);
    fs.write_file(p("/d/f"), b"f");
    let kind = |r: io::Result<Arc<dyn File>>| r.map(|_| ()).unwrap_err().kind();
    assert_eq!(kind(fs.open(p("/d/missing"), OpenMode::Read)), K::NotFound);
    assert_eq!(
        kind(fs.open(p("/d/missing"), OpenMode::ReadWrite)),
        K::NotFound
    );
    assert_eq!(kind(fs.open(p("/nodir/f"), OpenMode::Create)), K::NotFound);
    assert_eq!(
        kind(fs.open(p("/d/f"), OpenMode::CreateNew)),
        K::AlreadyExists
    );
    assert_eq!(kind(fs.open(p("/d"), OpenMode::Read)), K::IsADirectory);
    assert_eq!(kind(fs.open(p("/"), OpenMode::Read)), K::IsADirectory);
    assert_eq!(
        kind(fs.open(p("/d/f/x"), OpenMode::Create)),
        K::NotADirectory
    );
    let ro = fs.open(p("/d/f"), OpenMode::Read).unwrap();
    assert_eq!(
        ro.write_all_at(b"x", 0).unwrap_err().kind(),
        K::PermissionDenied
    );
    assert_eq!(ro.set_len(0).unwrap_err().kind(), K::PermissionDenied);
    assert_eq!(fs.remove_file(p("/d")).unwrap_err().kind(), K::IsADirectory);
    assert_eq!(
        fs.remove_file(p("/d/nope")).unwrap_err().kind(),
        K::NotFound
    );
    assert_eq!(
        fs.remove_dir_all(p("/d/f")).unwrap_err().kind(),
        K::NotADirectory
    );
    assert_eq!(fs.remove_dir_all(p("/zz")).unwrap_err().kind(), K::NotFound);
    assert!(fs.remove_dir_all(p("/")).is_err());
    assert_eq!(fs.sync_dir(p("/zz")).unwrap_err().kind(), K::NotFound);
    assert_eq!(fs.read_dir(p("/zz")).unwrap_err().kind(), K::NotFound);
    assert_eq!(
        fs.rename(p("/d/zz"), p("/d/y")).unwrap_err().kind(),
        K::NotFound
    );
    assert_eq!(
        fs.rename(p("/d/f"), p("/q/y")).unwrap_err().kind(),
        K::NotFound
    );
    assert_eq!(
        fs.rename(p("/d/f"), p("/d")).unwrap_err().kind(),
        K::IsADirectory
    );
    assert_eq!(
        fs.create_dir_all(p("/d/f")).unwrap_err().kind(),
        K::AlreadyExists
    );
    fs.create_dir_all(p("/d/full/x")).unwrap();
    fs.create_dir_all(p("/d/empty")).unwrap();
    assert_eq!(
        fs.rename(p("/d/empty"), p("/d/full")).unwrap_err().kind(),
        K::DirectoryNotEmpty
    );
    assert_eq!(
        fs.rename(p("/d/full"), p("/d/f")).unwrap_err().kind(),
        K::NotADirectory
    );
    fs.rename(p("/d/full"), p("/d/empty")).unwrap();
    assert!(fs.is_dir(p("/d/empty/x")).unwrap());
    fs.rename(p("/d/f"), p("/d/f")).unwrap();
    assert!(fs.exists(p("/d/f")).unwrap());
    assert!(fs.exists(p("/")).unwrap());
    assert!(fs.is_dir(p("/")).unwrap());
    assert!(!fs.is_dir(p("/d/f")).unwrap());
}

#[test]
fn relative_and_absolute_paths_agree() {
    let fs = SimFs::new(1);
    fs.create_dir_all(p("tmp/x")).unwrap();
    assert!(fs.is_dir(p("/tmp/x")).unwrap());
    assert!(fs.is_dir(p("/tmp/./x/../x")).unwrap());
    fs.write_file(p("/tmp/x/b"), b"1");
    fs.write_file(p("tmp/x/a"), b"2");
    assert_eq!(
        fs.read_dir(p("/tmp/x")).unwrap(),
        vec!["a".to_string(), "b".to_string()]
    );
    // `Path::parent` of a single relative component is "", which is the root.
    let f = fs.open(p("top"), OpenMode::Create).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(Path::new("top").parent().unwrap()).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert!(fs.exists(p("/top")).unwrap());
}

#[test]
fn write_file_plants_durable_files() {
    let fs = SimFs::new(1);
    fs.write_file(p("/a/b/c"), b"damaged");
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/a/b/c")).unwrap(), b"damaged");
    assert_eq!(fs.durable_len(p("/a/b/c")), Some(7));
    assert_eq!(fs.read_file(p("/a/b")), None);
    assert_eq!(fs.durable_len(p("/nope")), None);
    fs.write_file(p("/"), b"ignored");
}

/// A `/d/f` on a file system with mapped reads.
fn mapped_file() -> (SimFs, Arc<dyn File>) {
    let fs = SimFs::new(1).with_mapped_reads();
    fs.create_dir_all(p("/d")).unwrap();
    let f = fs.open(p("/d/f"), OpenMode::Create).unwrap();
    (fs, f)
}

fn mirrors(fs: &SimFs) -> usize {
    fs.lock()
        .inodes
        .values()
        .filter(|i| i.mirror.is_some())
        .count()
}

#[test]
fn maps_are_copies_by_default() {
    let fs = with_dir(1);
    let f = durable_file(&fs);
    f.write_all_at(b"abc", 0).unwrap();
    assert!(f.map_growing(4096).unwrap().is_none());
    let map = f.map_readonly(3).unwrap();
    f.write_all_at(b"x", 0).unwrap();
    assert_eq!(&map[..], b"abc");
    f.set_len(0).unwrap(); // a copy does not care
    assert_eq!(mirrors(&fs), 0);
}

#[test]
fn a_new_map_shows_the_whole_content() {
    let (_fs, f) = mapped_file();
    f.set_len(5 * 4096 + 100).unwrap(); // preallocated: mostly zeros
    f.write_all_at(b"first", 0).unwrap();
    f.write_all_at(b"fourth", 3 * 4096 + 10).unwrap();
    f.write_all_at(b"last", 5 * 4096 + 96).unwrap();
    let mut want = vec![0u8; 5 * 4096 + 100];
    f.read_exact_at(&mut want, 0).unwrap();
    let map = f.map_readonly(want.len() as u64).unwrap();
    assert_eq!(&map[..], &want[..]);
}

#[test]
fn growing_map_follows_writes_past_the_end() {
    let (_fs, f) = mapped_file();
    f.set_len(100).unwrap();
    let map = f.map_growing(3 * 4096).unwrap().expect("mapped reads");
    assert_eq!(map.len(), 3 * 4096);
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"tail", 5000).unwrap(); // extends the file past the first page
    assert_eq!(&map[..4], b"head");
    assert_eq!(&map[5000..5004], b"tail");
    assert!(map[4..5000].iter().all(|&b| b == 0));
    assert!(f.map_growing(0).unwrap().is_none());
}

#[test]
fn read_only_map_is_shared() {
    let (fs, f) = mapped_file();
    f.write_all_at(b"sealed", 0).unwrap();
    let map = f.map_readonly(6).unwrap();
    assert_eq!(&map[..], b"sealed");
    assert!(f.map_readonly(7).is_err(), "past the end of the file");
    assert!(f.map_readonly(0).unwrap().is_empty());
    // Another handle, another map: the same pages.
    let g = fs.open(p("/d/f"), OpenMode::Read).unwrap();
    let again = g.map_readonly(6).unwrap();
    f.write_all_at(b"S", 0).unwrap();
    assert_eq!(&map[..], b"Sealed");
    assert_eq!(&again[..], b"Sealed");
    assert_eq!(mirrors(&fs), 1);
}

#[test]
#[should_panic(expected = "under a live read-only map of its first 6 bytes")]
fn shrinking_under_a_read_only_map_panics() {
    let (_fs, f) = mapped_file();
    f.write_all_at(b"sealed", 0).unwrap();
    let map = f.map_readonly(6).unwrap();
    let _slice = map.slice(0..1); // a slice keeps the map alive
    drop(map);
    f.set_len(6).unwrap(); // not a shrink
    f.set_len(5).unwrap();
}

#[test]
#[should_panic(expected = "below the 300 bytes written to it, under a live map_growing map")]
fn shrinking_written_bytes_under_a_growing_map_panics() {
    let (_fs, f) = mapped_file();
    let _map = f.map_growing(4096).unwrap();
    f.write_all_at(&[7; 300], 0).unwrap();
    f.set_len(200).unwrap();
}

#[test]
fn trimming_a_never_written_tail_under_a_growing_map_is_allowed() {
    let (fs, f) = mapped_file();
    f.set_len(4096).unwrap(); // preallocated
    let map = f.map_growing(8192).unwrap().expect("mapped reads");
    f.write_all_at(&[7; 300], 0).unwrap();
    f.set_len(300).unwrap(); // sealing cuts the preallocated tail
    assert_eq!(&map[..300], &[7; 300][..]);
    // Gone, the map no longer protects anything, and its mirror goes with the next change.
    drop(map);
    f.set_len(0).unwrap();
    assert_eq!(mirrors(&fs), 0);
}

#[test]
fn a_new_mirror_closes_those_no_longer_mapped() {
    let (fs, f) = mapped_file();
    f.write_all_at(b"a", 0).unwrap();
    drop(f.map_readonly(1).unwrap());
    assert_eq!(mirrors(&fs), 1, "nothing touched the file since");
    let g = fs.open(p("/d/g"), OpenMode::Create).unwrap();
    g.write_all_at(b"b", 0).unwrap();
    let _kept = g.map_readonly(1).unwrap();
    assert_eq!(mirrors(&fs), 1, "only the mapped file keeps its mirror");
}

#[test]
fn crash_detaches_maps() {
    let (fs, f) = mapped_file();
    f.write_all_at(b"durable", 0).unwrap();
    f.sync_all().unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.sync_dir(p("/")).unwrap();
    f.write_all_at(b"+lost", 7).unwrap();
    let old = f.map_growing(4096).unwrap().expect("mapped reads");
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(mirrors(&fs), 0);
    assert_eq!(
        &old[..12],
        b"durable+lost",
        "a map of the dead process stays as it was"
    );
    let f = fs.open(p("/d/f"), OpenMode::ReadWrite).unwrap();
    let new = f.map_growing(4096).unwrap().expect("mapped reads");
    assert_eq!(&new[..7], b"durable");
}

/// `write_file` plants content that maps see (and does not check them).
#[test]
fn planted_content_shows_in_maps() {
    let (fs, f) = mapped_file();
    f.write_all_at(b"0123456789", 0).unwrap();
    let map = f.map_growing(4096).unwrap().expect("mapped reads");
    fs.write_file(p("/d/f"), b"XY");
    assert_eq!(&map[..2], b"XY");
    assert_eq!(f.len().unwrap(), 2);
}

/// Exercises the whole harness: `write_atomic` cut at every operation leaves old or new.
#[test]
fn write_atomic_survives_a_crash_at_every_point() {
    use super::super::write_atomic;
    let setup = |seed| {
        let fs = SimFs::new(seed);
        fs.write_file(p("/d/meta"), b"old contents");
        fs
    };
    let counting = setup(0);
    let before = counting.mutating_ops();
    write_atomic(&counting, p("/d/meta"), b"new").unwrap();
    let total = counting.mutating_ops() - before;
    assert_eq!(total, 6);
    for mode in [CrashMode::LoseUnsynced, CrashMode::Torn] {
        for cut in 0..=total {
            let fs = setup(cut);
            fs.power_cut_after(cut);
            let result = write_atomic(&fs, p("/d/meta"), b"new");
            assert_eq!(result.is_ok(), cut == total);
            fs.crash(mode);
            let got = fs.read_file(p("/d/meta")).unwrap();
            if cut == total {
                assert_eq!(got, b"new");
            } else {
                assert!(got == b"old contents" || got == b"new", "{cut}: {got:?}");
            }
        }
    }
}

#[test]
fn hard_link_shares_the_file_and_survives_a_crash_once_its_entry_is_durable() {
    let fs = with_dir(5);
    let f = durable_file(&fs);
    f.write_all_at(b"abc", 0).unwrap();
    f.sync_all().unwrap();
    fs.hard_link(p("/d/f"), p("/d/g")).unwrap();
    // One file, two names: a write through one shows through the other.
    f.write_all_at(b"X", 0).unwrap();
    assert_eq!(fs.read_file(p("/d/g")).unwrap(), b"Xbc");
    // Removing one name keeps the file under the other.
    fs.remove_file(p("/d/f")).unwrap();
    assert_eq!(fs.read_file(p("/d/g")).unwrap(), b"Xbc");
    let e = fs.hard_link(p("/d/g"), p("/d/g")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    let e = fs.hard_link(p("/d"), p("/d/h")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
    let e = fs.hard_link(p("/d/missing"), p("/d/h")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);

    // A link whose directory entry was never synced is gone after a crash.
    fs.hard_link(p("/d/g"), p("/d/unsynced")).unwrap();
    fs.sync_dir(p("/d")).unwrap();
    fs.hard_link(p("/d/g"), p("/d/lost")).unwrap();
    fs.crash(CrashMode::LoseUnsynced);
    assert_eq!(fs.read_file(p("/d/unsynced")).unwrap(), b"abc");
    assert!(fs.read_file(p("/d/lost")).is_none());
}
