//! Damaged cleaner checkpoint and producer snapshot: random bytes, bit flips, truncations and
//! hand-made files with a valid CRC and absurd fields (part 1 of the module's scenarios).

use super::*;

#[derive(Clone, Debug)]
enum Damage {
    /// Random bytes of this length.
    Random(usize, u64),
    /// The valid file with these bits flipped (positions taken modulo its length).
    Flips(Vec<(usize, u8)>),
}

fn apply(valid: &[u8], damage: &Damage) -> Vec<u8> {
    match damage {
        Damage::Random(len, seed) => TestRng::new(*seed).bytes(*len),
        Damage::Flips(flips) => {
            let mut b = valid.to_vec();
            for (pos, bit) in flips {
                let at = pos % b.len();
                b[at] ^= 1 << (bit % 8);
            }
            b
        }
    }
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..4096, any::<u64>()).prop_map(|(len, seed)| Damage::Random(len, seed)),
        prop::collection::vec((any::<usize>(), 0u8..8), 1..6).prop_map(Damage::Flips),
    ]
}

fn proptest_config() -> ProptestConfig {
    crate::common::proptest_config(128, 0x3e7a_da7a)
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn damaged_cleaner_checkpoint_opens_or_is_corrupt(crashed in any::<bool>(), d in damage()) {
        let fx = &fixtures()[usize::from(crashed)];
        let data = apply(file_of(&fx.image, CLEANER_CHECKPOINT), &d);
        let what = format!("cleaner-checkpoint, crashed={crashed}, {d:?}");
        let checks = Checks { dedupe: true, full: true };
        check_open(usize::from(crashed), CLEANER_CHECKPOINT, data, checks, what)
            .map_err(TestCaseError::fail)?;
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn damaged_producer_snapshot_opens_or_is_corrupt(crashed in any::<bool>(), d in damage()) {
        let fx = &fixtures()[usize::from(crashed)];
        let data = apply(file_of(&fx.image, PRODUCER_SNAPSHOT), &d);
        let what = format!("producer-snapshot, crashed={crashed}, {d:?}");
        let checks = Checks { dedupe: true, full: true };
        check_open(usize::from(crashed), PRODUCER_SNAPSHOT, data, checks, what)
            .map_err(TestCaseError::fail)?;
    }
}

#[test]
fn truncated_metadata_files_open() {
    for crashed in [false, true] {
        let fx = &fixtures()[usize::from(crashed)];
        for name in [CLEANER_CHECKPOINT, PRODUCER_SNAPSHOT] {
            let valid = file_of(&fx.image, name).to_vec();
            for len in 0..valid.len() {
                let what = format!(
                    "{name} cut to {len} of {} bytes, crashed={crashed}",
                    valid.len()
                );
                let checks = Checks {
                    dedupe: true,
                    full: len % 16 == 0,
                };
                let opened = check_open(
                    usize::from(crashed),
                    name,
                    valid[..len].to_vec(),
                    checks,
                    what,
                )
                .unwrap();
                assert!(
                    opened,
                    "{name} cut to {len}: a damaged derived file should be recovered"
                );
            }
        }
    }
}

#[test]
fn missing_metadata_files_open() {
    for crashed in [false, true] {
        let fx = &fixtures()[usize::from(crashed)];
        for name in [CLEANER_CHECKPOINT, PRODUCER_SNAPSHOT] {
            let what = format!("{name} missing, crashed={crashed}");
            let fs = restore(&with_file(&fx.image, name, None), 5);
            let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
            assert_eq!(read_all_records(&log).unwrap(), fx.records, "{what}");
            log.close().unwrap();
        }
    }
}

/// Open `image` with the cleaner checkpoint replaced by `data` and run every check.
fn crafted_cleaner_checkpoint(data: Vec<u8>, what: &str) {
    for crashed in [false, true] {
        let what = format!("{what}, crashed={crashed}");
        let checks = Checks {
            dedupe: true,
            full: true,
        };
        check_open(
            usize::from(crashed),
            CLEANER_CHECKPOINT,
            data.clone(),
            checks,
            what,
        )
        .unwrap();
    }
}

#[test]
fn cleaner_checkpoint_with_valid_crc_and_absurd_fields() {
    let rejected = [
        (
            "horizon count u32::MAX",
            Cc {
                count: Some(u32::MAX),
                ..cc()
            },
        ),
        (
            "horizon count 64 with 63 horizons",
            Cc {
                horizons: (1..=63).map(|i| (i, T0, 0)).collect(),
                count: Some(64),
                ..cc()
            },
        ),
        (
            "horizon count 0 with 64 horizons",
            Cc {
                horizons: (1..=64).map(|i| (i, T0, 0)).collect(),
                count: Some(0),
                ..cc()
            },
        ),
        (
            "horizon count 1 without its horizon",
            Cc {
                count: Some(1),
                ..cc()
            },
        ),
        (
            "swap flag 2",
            Cc {
                swap_flag: 2,
                swap: (0, 10),
                ..cc()
            },
        ),
        (
            "horizons out of order",
            Cc {
                horizons: vec![(10, T0, 1), (5, T0, 1)],
                ..cc()
            },
        ),
    ];
    let accepted = [
        (
            "first dirty offset and a horizon at u64::MAX",
            Cc {
                first_dirty: u64::MAX,
                horizons: vec![(u64::MAX, i64::MAX, u64::MAX)],
                ..cc()
            },
        ),
        (
            "a swap over every offset, without swap files",
            Cc {
                swap_flag: 1,
                swap: (0, u64::MAX),
                ..cc()
            },
        ),
        (
            "a backwards swap range, without swap files",
            Cc {
                swap_flag: 1,
                swap: (u64::MAX, 0),
                ..cc()
            },
        ),
        (
            "64 horizons, long passed, huge tombstone counts",
            Cc {
                first_dirty: 3,
                horizons: (1..=64).map(|i| (i, i64::MIN, u64::MAX)).collect(),
                ..cc()
            },
        ),
    ];
    for (what, c) in rejected.into_iter().chain(accepted) {
        crafted_cleaner_checkpoint(c.encode(), what);
    }
}

#[test]
fn cleaner_checkpoint_with_64_pending_horizons_of_huge_counts() {
    let c = Cc {
        first_dirty: 0,
        horizons: (1..=64).map(|i| (i, i64::MAX, u64::MAX)).collect(),
        ..cc()
    };
    crafted_cleaner_checkpoint(c.encode(), "64 future horizons with u64::MAX tombstones");
}

/// The cleaner checkpoint's slot at byte 17 (13 in version 1) once held a "hole-exempt end" that
/// recovery trusted: a huge value exempted a crash-lost tail from the hole check, so the log
/// claimed offsets no segment holds. Cleaned segments now end where the next begins and the slot
/// is ignored: any value there changes nothing.
#[test]
fn cleaner_checkpoint_hole_exempt_end_past_the_recovery_point() {
    let fx = &fixtures()[1];
    let valid = file_of(&fx.image, CLEANER_CHECKPOINT);
    let mut body = valid[..valid.len() - 4].to_vec();
    // The fixture's file is version 2: magic, version, length, first dirty offset, the slot.
    assert_eq!(&valid[..5], b"TLCC\x02");
    body[17..25].copy_from_slice(&u64::MAX.to_le_bytes());
    let what = "crashed image, hole-exempt end u64::MAX".to_owned();
    let checks = Checks {
        dedupe: true,
        full: true,
    };
    check_open(1, CLEANER_CHECKPOINT, sealed(body), checks, what).unwrap();
}

/// Not metadata damage, but the same symptom through the public API alone: compaction removes
/// the last batch of the last sealed segment (a keyless record), then `truncate_to` empties the
/// active segment. The end offset stays at the active segment's base, and a read between the
/// compacted segment's last batch and the end returns nothing, with `next_offset()` equal to the
/// requested offset, so a consumer positioned there never reaches the end.
#[test]
fn read_below_the_end_after_a_compaction_gap_at_the_tail() {
    let fs = SimFs::new(51);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for i in 0..5u64 {
        log.append(Record::new(value(i)).with_key(format!("k{}", i % 3)))
            .unwrap();
    }
    log.append(Record::new(value(5))).unwrap(); // keyless: compaction removes it
    log.append(Record::new(value(6)).with_key("z")).unwrap(); // rolls
    let bases: Vec<u64> = log.segments().iter().map(|s| s.base_offset()).collect();
    assert_eq!(
        bases,
        vec![0, 6],
        "the keyless record ends the first segment"
    );
    let report = log.compact(T0, &policy()).unwrap();
    assert_eq!(report.keyless_removed, 1, "{report:?}");
    assert_eq!(log.truncate_to(6).unwrap(), 6);
    let read = log.read(5, 1 << 10).unwrap();
    assert!(
        !read.is_empty() || read.next_offset() > 5,
        "read(5) below the end {} returned nothing and next_offset() {}",
        log.end_offset(),
        read.next_offset()
    );
}

#[test]
fn oversized_cleaner_checkpoint_is_recovered() {
    for len in [MAX_CLEANER_CHECKPOINT_LEN + 1, 4095] {
        let data = TestRng::new(len as u64).bytes(len);
        crafted_cleaner_checkpoint(data, &format!("{len} random bytes"));
    }
    let c = Cc {
        horizons: (1..=65).map(|i| (i, T0, 0)).collect(),
        ..cc()
    };
    crafted_cleaner_checkpoint(c.encode(), "65 horizons (over the limit of 64), valid CRC");
}

/// Open with the producer snapshot replaced by `data`; `dedupe` as in [`Checks`].
fn crafted_producer_snapshot(data: Vec<u8>, dedupe: bool, what: &str) {
    for crashed in [false, true] {
        let what = format!("{what}, crashed={crashed}");
        let checks = Checks { dedupe, full: true };
        check_open(
            usize::from(crashed),
            PRODUCER_SNAPSHOT,
            data.clone(),
            checks,
            what,
        )
        .unwrap();
    }
}

#[test]
fn producer_snapshot_with_valid_crc_and_absurd_counts() {
    let batch = (0, 1, 0, 1, T0);
    let rejected = [
        (
            "producer count u32::MAX, no producers",
            Snap {
                count: Some(u32::MAX),
                ..snap(0)
            },
        ),
        (
            "producer count u32::MAX, one producer",
            Snap {
                producers: vec![(PID, 0, vec![batch])],
                count: Some(u32::MAX),
                ..snap(0)
            },
        ),
        (
            "batch count 255",
            Snap {
                producers: vec![(PID, 0, vec![batch])],
                batch_count: Some(255),
                ..snap(0)
            },
        ),
        (
            "six batches (over the limit of five), length to match",
            Snap {
                producers: vec![(PID, 0, vec![batch; 6])],
                ..snap(0)
            },
        ),
        (
            "bytes left over",
            Snap {
                producers: vec![(PID, 0, vec![batch])],
                count: Some(0),
                ..snap(0)
            },
        ),
    ];
    for (what, s) in rejected {
        crafted_producer_snapshot(s.encode(), true, what);
    }
    // Decodable, so trusted: the producer state is whatever they say, but nothing may break.
    let accepted = [
        ("offset u64::MAX, no producers", snap(u64::MAX)),
        (
            "a producer at epoch i16::MAX fencing the real one",
            Snap {
                producers: vec![(PID, i16::MAX, vec![(i32::MAX, 0, 5, 3, i64::MIN)])],
                ..snap(0)
            },
        ),
        (
            "the same producer id twice",
            Snap {
                producers: vec![(PID, 0, vec![batch]), (PID, 1, vec![])],
                ..snap(0)
            },
        ),
    ];
    for (what, s) in accepted {
        crafted_producer_snapshot(s.encode(), false, what);
    }
    // Many producers: the file's size bounds the work.
    let many = Snap {
        producers: (0..20_000).map(|id| (1_000_000 + id, 0, vec![])).collect(),
        ..snap(u64::MAX)
    };
    crafted_producer_snapshot(many.encode(), false, "20 000 producers");
}

/// A valid-CRC snapshot naming a batch of producer 555 at `base..=last`; then a replay of that
/// batch with `Durability::Always` must come back (whatever it answers) and never name offsets
/// past the log end.
fn replay_phantom_batch(base: u64, last: u64) -> Result<(), String> {
    let fx = &fixtures()[0];
    let s = Snap {
        producers: vec![(555, 0, vec![(0, 1, base, last, T0)])],
        ..snap(u64::MAX)
    };
    let image = damaged(fx, PRODUCER_SNAPSHOT, &s.encode());
    bounded("phantom replay", Duration::from_secs(10), move || {
        let fs = restore(&image, 9);
        let log = match Partition::open_with_env(DIR, config(), sim_env(&fs)) {
            Ok(log) => log,
            Err(Error::Corrupt { .. }) => return Ok(()),
            Err(e) => return Err(format!("open: {e}")),
        };
        let end = log.end_offset();
        let records = [
            Record::new("a").with_key("a"),
            Record::new("b").with_key("b"),
        ];
        match log.append_idempotent(&records, pb(555, 0, 0), Durability::Always) {
            Ok(info) if info.last_offset >= log.end_offset() => Err(format!(
                "a replay was answered with offsets {}..={} past the log end {end}",
                info.base_offset, info.last_offset
            )),
            _ => Ok(()),
        }
    })
}

#[test]
fn producer_snapshot_naming_offsets_past_the_end() {
    replay_phantom_batch(10_000, 10_001).unwrap();
}

#[test]
fn producer_snapshot_naming_offset_u64_max() {
    replay_phantom_batch(u64::MAX - 1, u64::MAX).unwrap();
}

/// The same phantom as above without hand-made files: a clean close writes the snapshot at the
/// log end; damage to the last (durable) batch, then `Recovery::TruncateCorrupt` cuts the log
/// below the snapshot's offset, and the snapshot still answers for the cut batch.
#[test]
fn producer_snapshot_survives_a_truncate_corrupt_cut() {
    let fs = SimFs::new(21);
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    for i in 0..5u64 {
        log.append(Record::new(value(i)).with_key(format!("k{i}")))
            .unwrap();
    }
    let (records, p, info) = idempotent(&log, pb(555, 0, 0), 100);
    let batch = log.read(info.base_offset, 1).unwrap().batches()[0]
        .as_bytes()
        .to_vec();
    log.close().unwrap();
    // Reopen (the clean-shutdown marker goes) and crash.
    let log = Partition::open_with_env(DIR, config(), sim_env(&fs)).unwrap();
    crash_without_close(log);
    fs.crash(CrashMode::LoseUnsynced);
    // Damage the idempotent batch's last byte (a record value), below the recovery point.
    let damaged_file = fs
        .read_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .find_map(|n| {
            let path = Path::new(DIR).join(n);
            let bytes = fs.read_file(&path)?;
            let at = bytes
                .windows(batch.len())
                .position(|w| w == batch.as_slice())?;
            Some((path, bytes, at))
        });
    let (path, mut bytes, at) = damaged_file.expect("the batch is in a segment file");
    bytes[at + batch.len() - 1] ^= 0x10;
    fs.write_file(&path, &bytes);

    let result = bounded("replay after cut", Duration::from_secs(10), move || {
        let log = Partition::open_with_env(
            DIR,
            LogConfig {
                recovery: Recovery::TruncateCorrupt,
                ..config()
            },
            sim_env(&fs),
        )
        .map_err(|e| format!("open: {e}"))?;
        let end = log.end_offset();
        assert_eq!(end, info.base_offset, "the damaged batch is cut");
        // Without a sync to wait for, the answer comes back at once: it must not be a duplicate.
        let quick = log
            .append_idempotent(&records, p, Durability::None)
            .map_err(|e| format!("replay: {e}"))?;
        if quick.duplicate {
            return Err(format!(
                "the cut batch was answered as a duplicate at {}..={}, past the end {end}",
                quick.base_offset, quick.last_offset
            ));
        }
        log.truncate_to(end).map_err(|e| format!("truncate: {e}"))?;
        match log.append_idempotent(&records, p, Durability::Always) {
            Ok(again) if again.duplicate => Err(format!(
                "the cut batch was answered as a duplicate at {}..={}, past the end {end}",
                again.base_offset, again.last_offset
            )),
            Ok(again) => {
                assert_eq!(again.base_offset, end);
                Ok(())
            }
            Err(e) => Err(format!("replay: {e}")),
        }
    });
    result.unwrap();
}
