//! Shared bench plumbing: where scratch data lives, the raw-file baseline every topiclog figure is
//! divided by, and the criterion defaults.
//!
//! # The raw baseline
//! A raw log is a plain file of length-prefixed records (`u32` little-endian length, then the
//! bytes), written with `write()` through a 1 MiB userspace buffer ([`BufWriter`]) and made durable
//! with `fdatasync` ([`File::sync_data`]). It is read back with `pread` ([`FileExt::read_at`]): a
//! scan reads 1 MiB chunks and walks the length prefixes; a point read looks the record's position
//! up in an in-memory `Vec` (offset → position) and reads exactly that record. It has no
//! checksums, no indexes on disk, no offsets, timestamps or batch headers: it is the floor a log
//! on the same file system cannot beat by much, not a competitor.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use criterion::Criterion;

/// Size of the raw writer's userspace buffer and of the raw scan's `pread` chunk.
pub const RAW_CHUNK: usize = 1 << 20;

/// Bytes of the raw length prefix.
pub const RAW_PREFIX: usize = 4;

/// Criterion defaults for every bench binary; command-line flags (`--measurement-time`,
/// `--warm-up-time`, `--sample-size`, a name filter) override them.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50)
        .nresamples(20_000)
}

/// Whether this process measures (`cargo bench`), as opposed to checking that each bench runs
/// once (`cargo test --benches`, `cargo bench -- --test`). Data sets shrink when it does not, so
/// `cargo test --all-targets` stays quick.
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test")
}

/// A size from the environment variable `name` (plain bytes, or with a `K`/`M`/`G` suffix, binary
/// units), else `default`.
pub fn size_from_env(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches("IB") {
        "" | "B" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        other => panic!("{name}={text}: unknown unit {other:?} (use K, M or G)"),
    };
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|e| panic!("{name}={text}: {e}"));
    n << shift
}

/// `1GiB`, `256MiB`, `1536KiB`, `100B`: the largest binary unit that divides `bytes`.
pub fn size_label(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

/// Directory that holds every bench's scratch directories: `$TOPICLOG_BENCH_DIR`, else
/// `<target>/tmp/topiclog-bench` (on the same disk as the build, never a tmpfs `/tmp`, where
/// `fdatasync` would cost nothing).
pub fn scratch_root() -> PathBuf {
    let root = std::env::var_os("TOPICLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("topiclog-bench"));
    std::fs::create_dir_all(&root).expect("create the bench scratch root");
    root
}

/// A fresh directory under [`scratch_root`], removed on drop.
pub fn scratch_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("{tag}-"))
        .tempdir_in(scratch_root())
        .expect("create a bench scratch directory")
}

/// Where criterion writes its results (the same rule criterion uses, minus `cargo metadata`).
pub fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("criterion");
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).join("criterion")
}

/// xorshift64*: deterministic, dependency-free, good enough to pick offsets.
pub struct Xorshift(u64);

impl Xorshift {
    pub fn new(seed: u64) -> Self {
        Xorshift(seed | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform enough in `0..n` for `n` far below `2^64`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `len` bytes of incompressible-looking data, different for each `seed`.
pub fn payload(len: usize, seed: u64) -> Bytes {
    let mut rng = Xorshift::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        v.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// Per-operation latencies, for the percentiles criterion does not report (its median is the
/// median of per-sample means).
#[derive(Default)]
pub struct Latencies {
    nanos: Vec<u64>,
}

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.nanos
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Add what another thread recorded.
    pub fn extend(&mut self, other: Latencies) {
        self.nanos.extend(other.nanos);
    }

    /// Print p50/p90/p99/max and write them to `<criterion home>/topiclog-latency/<id>.tsv` for
    /// `benches/summarize.sh`. Does nothing if nothing was recorded (the bench was filtered out)
    /// or nothing was measured (a `--test` run times one operation).
    pub fn report(mut self, id: &str) {
        if self.nanos.is_empty() || !measuring() {
            return;
        }
        self.nanos.sort_unstable();
        let n = self.nanos.len();
        let at = |q: f64| self.nanos[((n as f64 * q) as usize).min(n - 1)];
        let (p50, p90, p99, max) = (at(0.50), at(0.90), at(0.99), self.nanos[n - 1]);
        println!(
            "{id}: per-op latency p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, max {:.1} µs (n = {n}, warm-up included)",
            p50 as f64 / 1e3,
            p90 as f64 / 1e3,
            p99 as f64 / 1e3,
            max as f64 / 1e3,
        );
        let dir = criterion_home().join("topiclog-latency");
        let file = dir.join(format!("{}.tsv", id.replace('/', "_")));
        let row = format!("{id}\t{p50}\t{p90}\t{p99}\t{max}\t{n}\n");
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, row)) {
            eprintln!("could not write {}: {e}", file.display());
        }
    }
}

/// The raw baseline's writer. See the [module docs](self).
pub struct RawWriter {
    out: BufWriter<File>,
    /// Bytes written so far (buffered or not): the position of the next record.
    len: u64,
}

impl RawWriter {
    /// Create (or empty) the file at `path`.
    pub fn create(path: &Path) -> io::Result<RawWriter> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(RawWriter {
            out: BufWriter::with_capacity(RAW_CHUNK, file),
            len: 0,
        })
    }

    /// Buffer one record; returns its position.
    pub fn append(&mut self, record: &[u8]) -> io::Result<u64> {
        let pos = self.len;
        let len = u32::try_from(record.len()).expect("raw records are below 4 GiB");
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(record)?;
        self.len += (RAW_PREFIX + record.len()) as u64;
        Ok(pos)
    }

    /// Write out the buffer and `fdatasync`.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }

    /// Write out the buffer without syncing.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Empty the file and start again at position 0. Cutting the file drops its dirty pages
    /// without writing them back, which is why long runs reset rather than recreate.
    pub fn reset(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().set_len(0)?;
        self.out.seek(SeekFrom::Start(0))?;
        self.len = 0;
        Ok(())
    }

    /// The underlying file, for syncing from other threads.
    pub fn file(&self) -> &File {
        self.out.get_ref()
    }
}

/// The raw baseline's reader. See the [module docs](self).
pub struct RawReader {
    file: File,
    chunk: Vec<u8>,
}

impl RawReader {
    pub fn open(path: &Path) -> io::Result<RawReader> {
        Ok(RawReader {
            file: File::open(path)?,
            chunk: vec![0; RAW_CHUNK],
        })
    }

    /// Visit every record in file order: `pread` 1 MiB at the first record not yet visited, walk
    /// the length prefixes of the records that are whole in the chunk. Returns the record count.
    pub fn scan(&mut self, mut visit: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut pos = 0u64;
        let mut count = 0u64;
        loop {
            let got = self.file.read_at(&mut self.chunk, pos)?;
            if got == 0 {
                return Ok(count);
            }
            let chunk = &self.chunk[..got];
            let mut at = 0usize;
            while let Some(prefix) = chunk.get(at..at + RAW_PREFIX) {
                let len = u32::from_le_bytes(prefix.try_into().expect("4 bytes")) as usize;
                let Some(record) = chunk.get(at + RAW_PREFIX..at + RAW_PREFIX + len) else {
                    break;
                };
                visit(record);
                count += 1;
                at += RAW_PREFIX + len;
            }
            if at == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("record at {pos} is torn or larger than a scan chunk"),
                ));
            }
            pos += at as u64;
        }
    }

    /// Read the record at `pos` whose prefix and bytes span `total_len` bytes, with one `pread`.
    pub fn read_record<'b>(
        &self,
        buf: &'b mut Vec<u8>,
        pos: u64,
        total_len: usize,
    ) -> io::Result<&'b [u8]> {
        buf.resize(total_len, 0);
        self.file.read_exact_at(buf, pos)?;
        let len = u32::from_le_bytes(buf[..RAW_PREFIX].try_into().expect("4 bytes")) as usize;
        buf.get(RAW_PREFIX..RAW_PREFIX + len).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "record length past its slot")
        })
    }
}
