//! Stray compaction files: an unnamed `.log.swap` is refused, `.cleaned` files and orphan index
//! `.swap` files are removed (part 2 of the module's scenarios).

use super::*;

fn segment_bases(image: &Image) -> Vec<u64> {
    let mut bases: Vec<u64> = image
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    bases
}

/// The valid cleaner checkpoint `valid` with its swap entry set to `(base, end)`.
fn with_swap_entry(valid: &[u8], base: u64, end: u64) -> Vec<u8> {
    let mut b = valid[..valid.len() - 4].to_vec();
    b[21] = 1;
    b[22..30].copy_from_slice(&base.to_le_bytes());
    b[30..38].copy_from_slice(&end.to_le_bytes());
    sealed(b)
}

/// Open `image`, expecting success; check that no name matching `gone` is left, that the log
/// reads back as `fx.records` and that appends go on.
fn open_expecting_cleanup(fx: &Fixture, image: &Image, gone: impl Fn(&str) -> bool, what: &str) {
    let fs = restore(image, 13);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let names = fs.read_dir(Path::new(DIR)).unwrap();
    let left: Vec<&String> = names.iter().filter(|n| gone(n)).collect();
    assert!(left.is_empty(), "{what}: left behind {left:?}");
    assert_eq!(read_all_records(&log).unwrap(), fx.records, "{what}");
    let end = log.end_offset();
    assert_eq!(
        log.append(Record::new("x").with_key("x")).unwrap(),
        end,
        "{what}"
    );
    log.close().unwrap();
    // And once more, cleanly.
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(log.end_offset(), end + 1, "{what}");
    crash_without_close(log);
}

#[test]
fn stray_log_swap_is_corrupt_naming_the_file() {
    for (i, fx) in fixtures().iter().enumerate() {
        let valid_cc = file_of(&fx.image, CLEANER_CHECKPOINT);
        let bases = segment_bases(&fx.image);
        assert!(bases.len() >= 3, "{bases:?}");
        let checkpoints: [(&str, Option<Vec<u8>>, &str); 4] = [
            (
                "no swap in progress",
                Some(valid_cc.to_vec()),
                "no matching cleaner checkpoint entry",
            ),
            (
                "no cleaner checkpoint",
                None,
                "no matching cleaner checkpoint entry",
            ),
            (
                "a swap in progress at another base",
                Some(with_swap_entry(valid_cc, bases[2], bases[2] + 1)),
                "no matching cleaner checkpoint entry",
            ),
            (
                "a damaged cleaner checkpoint",
                Some(b"TLCC\x01 not a checkpoint".to_vec()),
                "cleaner checkpoint is damaged",
            ),
        ];
        for (cc_what, cc_data, expected) in &checkpoints {
            for swap_base in [bases[1], 123_456] {
                let what = format!("image {i}, {cc_what}, stray swap at {swap_base}");
                let swap_name = seg_name(swap_base, ".log.swap");
                let mut image = with_file(&fx.image, CLEANER_CHECKPOINT, cc_data.as_deref());
                image.push((
                    swap_name.clone(),
                    file_of(&fx.image, &seg_name(bases[1], ".log")).to_vec(),
                ));
                let fs = restore(&image, 17);
                let err = match Partition::open_with_env(DIR, config(), sim_env(&fs)) {
                    Ok(_) => panic!("{what}: opened despite a stray {swap_name}"),
                    Err(e) => e,
                };
                let message = err.to_string();
                match &err {
                    Error::Corrupt { path, reason, .. } => {
                        assert_eq!(path, &Path::new(DIR).join(&swap_name), "{what}: {message}");
                        assert!(reason.contains(expected), "{what}: {message}");
                    }
                    other => panic!("{what}: expected Corrupt, got {other:?}"),
                }
                assert!(
                    message.contains(&swap_name) && message.contains("swap"),
                    "{what}: the message should name the file: {message}"
                );
                // The refused open changed nothing: every file is still there, unchanged.
                for (name, data) in &image {
                    let now = fs.read_file(&Path::new(DIR).join(name));
                    assert_eq!(
                        now.as_deref(),
                        Some(data.as_slice()),
                        "{what}: {name} changed"
                    );
                }
                // With the stray file gone, the partition opens and holds what it held.
                fs.remove_file(&Path::new(DIR).join(&swap_name)).unwrap();
                let repaired: Image = image.into_iter().filter(|(n, _)| *n != swap_name).collect();
                open_expecting_cleanup(fx, &repaired, |n| n.ends_with(".swap"), &what);
            }
        }
    }
}

#[test]
fn cleaned_files_of_any_content_are_removed_on_open() {
    let mut rng = TestRng::new(0xc1ea);
    for (i, fx) in fixtures().iter().enumerate() {
        let bases = segment_bases(&fx.image);
        let valid_cc = file_of(&fx.image, CLEANER_CHECKPOINT);
        for case in 0..24 {
            let mut image = fx.image.clone();
            let mut names = Vec::new();
            let base = if case % 3 == 0 {
                rng.below(1 << 40)
            } else {
                bases[rng.below(bases.len() as u64) as usize]
            };
            for ext in [".log", ".index", ".timeindex"] {
                if rng.below(3) == 0 && ext != ".log" {
                    continue;
                }
                let len = match case {
                    0 => 0,
                    1 => 300_000,
                    _ => rng.below(4096) as usize,
                };
                let name = seg_name(base, &format!("{ext}.cleaned"));
                image.push((name.clone(), rng.bytes(len)));
                names.push(name);
            }
            // Half the time the swap was prepared (the checkpoint names it) but not committed.
            if case % 2 == 1 {
                let end = bases
                    .iter()
                    .copied()
                    .find(|&b| b > base)
                    .unwrap_or(base + 1);
                image = with_file(
                    &image,
                    CLEANER_CHECKPOINT,
                    Some(&with_swap_entry(valid_cc, base, end)),
                );
            }
            let what = format!("image {i}, case {case}: {names:?}");
            open_expecting_cleanup(fx, &image, |n| n.ends_with(".cleaned"), &what);
        }
    }
}

#[test]
fn index_swap_files_without_their_log_are_removed_on_open() {
    let mut rng = TestRng::new(0x5a4b);
    for (i, fx) in fixtures().iter().enumerate() {
        let bases = segment_bases(&fx.image);
        let valid_cc = file_of(&fx.image, CLEANER_CHECKPOINT);
        for case in 0..16 {
            let mut image = fx.image.clone();
            let base = if case % 4 == 0 {
                rng.below(1 << 40)
            } else {
                bases[rng.below(bases.len() as u64) as usize]
            };
            let exts: &[&str] = match case % 3 {
                0 => &[".index.swap"],
                1 => &[".timeindex.swap"],
                _ => &[".index.swap", ".timeindex.swap"],
            };
            for ext in exts {
                let len = rng.below(4096) as usize;
                image.push((seg_name(base, ext), rng.bytes(len)));
            }
            // Half the time the checkpoint still names the swap: the crash came after the `.log`
            // was renamed into place, before its indexes were.
            if case % 2 == 1 {
                let end = bases
                    .iter()
                    .copied()
                    .find(|&b| b > base)
                    .unwrap_or(base + 1);
                image = with_file(
                    &image,
                    CLEANER_CHECKPOINT,
                    Some(&with_swap_entry(valid_cc, base, end)),
                );
            }
            let what = format!("image {i}, case {case}: {exts:?} at {base}");
            open_expecting_cleanup(fx, &image, |n| n.ends_with(".swap"), &what);
        }
    }
}
