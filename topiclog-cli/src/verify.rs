//! `topiclog verify`: check every file of a store, or of one topic or partition, without opening
//! the store: the files are read directly (the segment and metadata decoders are the library's),
//! nothing is locked or written, so it also runs while another process holds the store.
//!
//! Checked: every batch of every segment (CRC, decoding), offsets continuous within and across
//! segments (below a `kafka-adopted` marker's offset, gaps are Kafka's compaction's and legal),
//! every `.index` / `.timeindex` entry against its `.log`, and every metadata file
//! (`topic.conf`, `checkpoint`, `.clean_shutdown`, `cleaner-checkpoint`, `producer-snapshot`,
//! `kafka-adopted`, `__producer_ids`) decoded as the store would.
//!
//! A live store's active (last) segment may end in preallocated zeros, a partly written batch, or
//! index entries ahead of the log as read: there, and only there, those are notes, not damage.

use std::collections::BTreeMap;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use topiclog::inspect::{check_metadata_file, MetadataFile};
use topiclog::segment::{parse_segment_file_name, SegmentFileKind};
use topiclog::{Bytes, ErrorKind};

use crate::check::{self, walk, IndexChecker, IndexItem, IndexKind, LogBatches, WalkEnd};
use crate::line::{Out, Text};
use crate::{Failure, Verdict};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The store directory.
    store: PathBuf,

    /// Check only this topic, or one partition of it: `TOPIC` or `TOPIC/PARTITION`.
    target: Option<String>,

    /// Print one JSON object per line (JSON Lines), its `type` naming what it describes.
    #[arg(long)]
    json: bool,
}

/// What `verify` prints: a line per finding, then the summary.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum VerifyLine {
    /// Damage: the file, the byte position in it where known, what is wrong.
    Damage {
        file: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        position: Option<u64>,
        message: String,
    },
    /// Worth knowing, not damage (a live writer's tail, a leftover file).
    Note { file: String, message: String },
    /// What was checked, and the verdict.
    Summary {
        topics: u64,
        partitions: u64,
        segments: u64,
        batches: u64,
        records: u64,
        /// Bytes of segment and metadata files read.
        bytes: u64,
        damage: u64,
        notes: u64,
        sound: bool,
    },
}

impl Text for VerifyLine {
    fn text(&self) -> String {
        match self {
            VerifyLine::Damage {
                file,
                position: Some(p),
                message,
            } => format!("DAMAGE {file} at position {p}: {message}"),
            VerifyLine::Damage { file, message, .. } => format!("DAMAGE {file}: {message}"),
            VerifyLine::Note { file, message } => format!("NOTE {file}: {message}"),
            VerifyLine::Summary {
                topics,
                partitions,
                segments,
                batches,
                records,
                bytes,
                damage,
                notes,
                sound,
            } => format!(
                "Checked {topics} topics, {partitions} partitions, {segments} segments, {batches} \
                 batches ({records} records), {bytes} bytes: {}, {damage} damaged, {notes} notes",
                if *sound { "sound" } else { "DAMAGE FOUND" }
            ),
        }
    }
}

/// A partition to check.
struct PartitionDir {
    dir: PathBuf,
    /// Bytes of its files, for the progress bar.
    bytes: u64,
}

/// A topic to check: its directory and the partitions chosen.
struct TopicDir {
    dir: PathBuf,
    partitions: Vec<PartitionDir>,
    /// Subdirectories that are not partitions (noted).
    others: Vec<PathBuf>,
}

/// What the command line chose: the store's own files (when it checks the whole store), topics.
struct Plan {
    store_files: Vec<PathBuf>,
    topics: Vec<TopicDir>,
    /// Entries of the store directory that are neither (noted).
    others: Vec<(PathBuf, &'static str)>,
}

fn names(dir: &Path) -> Result<Vec<(String, PathBuf)>, Failure> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", dir.display())))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Failure::Usage(format!("{}: cannot read: {e}", dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        names.push((name, entry.path()));
    }
    names.sort();
    Ok(names)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn partition_dir(dir: PathBuf) -> Result<PartitionDir, Failure> {
    let bytes = names(&dir)?.iter().map(|(_, p)| file_len(p)).sum();
    Ok(PartitionDir { dir, bytes })
}

fn topic_dir(dir: PathBuf, only: Option<u32>) -> Result<TopicDir, Failure> {
    let mut partitions = BTreeMap::new();
    let mut others = Vec::new();
    for (name, path) in names(&dir)? {
        if !path.is_dir() {
            continue;
        }
        match name.parse::<u32>() {
            Ok(n) if n.to_string() == name => {
                partitions.insert(n, path);
            }
            _ => others.push(path),
        }
    }
    if let Some(n) = only {
        let Some(path) = partitions.remove(&n) else {
            return Err(Failure::Usage(format!(
                "{}: no partition {n} in this topic",
                dir.display()
            )));
        };
        partitions = BTreeMap::from([(n, path)]);
        others.clear();
    }
    Ok(TopicDir {
        dir,
        partitions: partitions
            .into_values()
            .map(partition_dir)
            .collect::<Result<_, _>>()?,
        others,
    })
}

fn plan(args: &VerifyArgs) -> Result<Plan, Failure> {
    let store = &args.store;
    if !store.is_dir() {
        return Err(Failure::Usage(format!(
            "{}: no such store directory",
            store.display()
        )));
    }
    let entries = names(store)?;
    let is_store = entries.iter().any(|(name, path)| {
        name == "LOCK"
            || MetadataFile::of_name(name) == Some(MetadataFile::ProducerIds)
            || path.join("topic.conf").is_file()
    });
    if !is_store {
        return Err(Failure::Usage(format!(
            "{}: not a topiclog store (no LOCK, producer id counter or topic)",
            store.display()
        )));
    }
    if let Some(target) = &args.target {
        let (topic, partition) = match target.split_once('/') {
            None => (target.as_str(), None),
            Some((topic, p)) => match p.parse::<u32>() {
                Ok(p) => (topic, Some(p)),
                Err(_) => {
                    return Err(Failure::Usage(format!(
                        "{target}: expected TOPIC or TOPIC/PARTITION (a number)"
                    )))
                }
            },
        };
        let dir = store.join(topic);
        if topic.is_empty() || topic.contains(['/', '\\']) || !dir.is_dir() {
            return Err(Failure::Usage(format!(
                "{}: no topic {topic:?} in this store",
                store.display()
            )));
        }
        return Ok(Plan {
            store_files: Vec::new(),
            topics: vec![topic_dir(dir, partition)?],
            others: Vec::new(),
        });
    }
    let mut plan = Plan {
        store_files: Vec::new(),
        topics: Vec::new(),
        others: Vec::new(),
    };
    for (name, path) in entries {
        if path.is_dir() {
            if name.starts_with("__creating.") || name.starts_with("__deleting.") {
                plan.others.push((
                    path,
                    "left by an interrupted topic creation or deletion (the next open removes it)",
                ));
            } else {
                plan.topics.push(topic_dir(path, None)?);
            }
        } else if MetadataFile::of_name(&name).is_some() {
            plan.store_files.push(path);
        } else if name != "LOCK" {
            plan.others
                .push((path, "not a file of topiclog's: not checked"));
        }
    }
    Ok(plan)
}

#[derive(Default)]
struct Counts {
    topics: u64,
    partitions: u64,
    segments: u64,
    batches: u64,
    records: u64,
    bytes: u64,
    damage: u64,
    notes: u64,
}

struct Verifier<W: Write> {
    out: Out<W>,
    bar: ProgressBar,
    counts: Counts,
}

impl<W: Write> Verifier<W> {
    fn emit(&mut self, line: &VerifyLine) -> io::Result<()> {
        let (out, bar) = (&mut self.out, &self.bar);
        if bar.is_hidden() {
            out.emit(line)
        } else {
            bar.suspend(|| {
                out.emit(line)?;
                out.flush()
            })
        }
    }

    fn damage(&mut self, file: &Path, position: Option<u64>, message: String) -> io::Result<()> {
        self.counts.damage += 1;
        self.emit(&VerifyLine::Damage {
            file: file.display().to_string(),
            position,
            message,
        })
    }

    fn note(&mut self, file: &Path, message: String) -> io::Result<()> {
        self.counts.notes += 1;
        self.emit(&VerifyLine::Note {
            file: file.display().to_string(),
            message,
        })
    }

    fn read(&mut self, path: &Path) -> io::Result<Option<Bytes>> {
        match std::fs::read(path) {
            Ok(bytes) => {
                self.counts.bytes += bytes.len() as u64;
                self.bar.inc(bytes.len() as u64);
                Ok(Some(Bytes::from(bytes)))
            }
            Err(e) => {
                self.vanished_or_unreadable(path, e)?;
                Ok(None)
            }
        }
    }

    /// A segment's `.log`: a sealed one mapped (never read whole into memory: segments may be a
    /// GiB), the active one read (its writer may cut a torn tail off it after a crash, which
    /// would turn a mapped page into a SIGBUS).
    fn read_log(&mut self, path: &Path, active: bool) -> io::Result<Option<Bytes>> {
        if active {
            return self.read(path);
        }
        let mapped = std::fs::File::open(path).and_then(|file| {
            if file.metadata()?.len() == 0 {
                return Ok(Bytes::new());
            }
            // SAFETY: a read-only map of a sealed segment, which topiclog never shrinks in place
            // (truncation and compaction write a new file and rename it over the old one, whose
            // inode, and this map, stay as they were; retention unlinks it, same).
            let map = unsafe { memmap2::Mmap::map(&file)? };
            Ok(Bytes::from_owner(map))
        });
        match mapped {
            Ok(bytes) => {
                self.counts.bytes += bytes.len() as u64;
                self.bar.inc(bytes.len() as u64);
                Ok(Some(bytes))
            }
            Err(e) => {
                self.vanished_or_unreadable(path, e)?;
                Ok(None)
            }
        }
    }

    /// A file that could not be read: gone since it was listed (a live store's retention or
    /// compaction), a note; anything else, damage.
    fn vanished_or_unreadable(&mut self, path: &Path, e: io::Error) -> io::Result<()> {
        if e.kind() == io::ErrorKind::NotFound {
            self.note(
                path,
                "removed while verify ran (a live store's retention or compaction)".into(),
            )
        } else {
            self.damage(path, None, format!("cannot read: {e}"))
        }
    }

    /// Decode a metadata file; returns what it says (for `kafka-adopted`: its offset).
    fn metadata(&mut self, kind: MetadataFile, path: &Path) -> io::Result<Option<u64>> {
        let len = file_len(path);
        match check_metadata_file(kind, path) {
            Ok(summary) => {
                self.counts.bytes += len;
                self.bar.inc(len);
                Ok(summary.gaps_below)
            }
            Err(e) if e.kind() == ErrorKind::Damaged => {
                let position = match &e {
                    topiclog::Error::Corrupt { position, .. } => Some(*position),
                    _ => None,
                };
                self.damage(path, position, e.to_string())?;
                Ok(None)
            }
            Err(e) => match e.io_error() {
                Some(io) if io.kind() == io::ErrorKind::NotFound => {
                    self.vanished_or_unreadable(path, io::ErrorKind::NotFound.into())?;
                    Ok(None)
                }
                _ => {
                    self.damage(path, None, e.to_string())?;
                    Ok(None)
                }
            },
        }
    }

    fn topic(&mut self, topic: &TopicDir) -> io::Result<()> {
        self.counts.topics += 1;
        let conf = topic.dir.join("topic.conf");
        if conf.is_file() {
            self.metadata(MetadataFile::TopicConfig, &conf)?;
        } else {
            self.damage(
                &conf,
                None,
                "missing: a topic directory without its configuration (the store refuses to \
                 open)"
                    .into(),
            )?;
        }
        for other in &topic.others {
            self.note(other, "not a partition directory: not checked".into())?;
        }
        for partition in &topic.partitions {
            self.partition(&partition.dir)?;
        }
        Ok(())
    }

    fn partition(&mut self, dir: &Path) -> io::Result<()> {
        self.counts.partitions += 1;
        let mut segments: BTreeMap<u64, [Option<PathBuf>; 3]> = BTreeMap::new();
        let mut metadata = Vec::new();
        let listing = match names(dir) {
            Ok(listing) => listing,
            Err(_) => {
                return self.damage(dir, None, "cannot list the partition directory".into());
            }
        };
        for (name, path) in listing {
            if let Some((base, kind)) = parse_segment_file_name(&name) {
                let slot = match kind {
                    SegmentFileKind::Log => 0,
                    SegmentFileKind::OffsetIndex => 1,
                    SegmentFileKind::TimeIndex => 2,
                    _ => {
                        self.note(&path, "a segment file this tool does not read".into())?;
                        continue;
                    }
                };
                segments.entry(base).or_default()[slot] = Some(path);
            } else if let Some(kind) = MetadataFile::of_name(&name) {
                metadata.push((kind, path));
            } else if name == ".lock" {
            } else if name.ends_with(".tmp") {
                self.note(
                    &path,
                    "a file being replaced (a live writer), or left by a crash: not checked".into(),
                )?;
            } else if name.ends_with(".cleaned") || name.ends_with(".swap") {
                self.note(
                    &path,
                    "left by a compaction in progress or interrupted (the next open finishes or \
                     removes it)"
                        .into(),
                )?;
            } else {
                self.note(&path, "not a file of topiclog's: not checked".into())?;
            }
        }
        let mut gaps_below = None;
        for (kind, path) in &metadata {
            if let Some(g) = self.metadata(*kind, path)? {
                gaps_below = Some(g);
            }
        }
        let mut next_offset = None;
        let last = segments.keys().next_back().copied();
        for (base, [log, index, timeindex]) in &segments {
            let active = Some(*base) == last;
            self.segment(
                dir,
                *base,
                active,
                log.as_deref(),
                [index.as_deref(), timeindex.as_deref()],
                gaps_below,
                &mut next_offset,
            )?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn segment(
        &mut self,
        dir: &Path,
        base: u64,
        active: bool,
        log_path: Option<&Path>,
        index_paths: [Option<&Path>; 2],
        gaps_below: Option<u64>,
        next_offset: &mut Option<u64>,
    ) -> io::Result<()> {
        self.counts.segments += 1;
        let Some(log_path) = log_path else {
            let name = topiclog::segment::segment_file_name(dir, base, SegmentFileKind::Log);
            return self.damage(
                &name,
                None,
                "missing: the segment has index files only".into(),
            );
        };
        // The indexes first, then the log: on a live store, an entry can then only name a batch
        // the log read holds (entries are made for batches already written).
        let mut indexes = Vec::new();
        for (path, kind) in index_paths
            .into_iter()
            .zip([IndexKind::Offset, IndexKind::Time])
        {
            let Some(path) = path else {
                let ext = if kind == IndexKind::Offset {
                    "index"
                } else {
                    "timeindex"
                };
                self.note(
                    &log_path.with_extension(ext),
                    "missing (the store rebuilds it when it opens the partition)".into(),
                )?;
                continue;
            };
            match check::read_index(path, base, kind) {
                Ok(read) => {
                    let len = file_len(path);
                    self.counts.bytes += len;
                    self.bar.inc(len);
                    indexes.push((path, kind, read));
                }
                Err(message) if !path.exists() => {
                    let _ = message;
                    self.vanished_or_unreadable(path, io::ErrorKind::NotFound.into())?;
                }
                Err(message) => self.damage(path, None, message)?,
            }
        }
        let Some(log) = self.read_log(log_path, active)? else {
            return Ok(());
        };
        self.log(&log, log_path, base, active, gaps_below, next_offset)?;
        let batches = LogBatches::of(&log);
        for (path, kind, read) in indexes {
            self.index(path, kind, &read, &batches, active)?;
        }
        Ok(())
    }

    fn log(
        &mut self,
        log: &Bytes,
        path: &Path,
        base: u64,
        active: bool,
        gaps_below: Option<u64>,
        next_offset: &mut Option<u64>,
    ) -> io::Result<()> {
        let mut findings: Vec<(u64, String)> = Vec::new();
        let (mut batches, mut records) = (0, 0);
        let end = walk(log, |w| {
            let Some(bytes) = w.bytes.clone() else {
                // Torn: the walk's end says so.
                return Ok(());
            };
            batches += 1;
            records += u64::from(w.header.record_count);
            if let Err(damage) = check::check_batch(w.position, &w.header, bytes) {
                findings.push(damage);
            }
            let (first, last) = (w.header.base_offset, w.header.last_offset());
            if first < base {
                findings.push((
                    w.position,
                    format!("the batch starts at offset {first}, below the segment's base {base}"),
                ));
            }
            if let Some(expected) = *next_offset {
                if first < expected {
                    findings.push((
                        w.position,
                        format!(
                            "offsets overlap: the batch holds {first} to {last}, the one before \
                             ended at {}",
                            expected - 1
                        ),
                    ));
                } else if first > expected && gaps_below.is_none_or(|g| first > g) {
                    findings.push((
                        w.position,
                        format!(
                            "offsets {expected} to {} are missing before this batch",
                            first - 1
                        ),
                    ));
                }
            }
            *next_offset = Some(last.saturating_add(1));
            Ok(())
        })?;
        self.counts.batches += batches;
        self.counts.records += records;
        for (position, message) in findings {
            self.damage(path, Some(position), message)?;
        }
        match end {
            WalkEnd::Clean => Ok(()),
            WalkEnd::ZeroTail { position, bytes } if active => self.note(
                path,
                format!(
                    "{bytes} zero bytes from position {position} to the end (preallocated \
                     space of the active segment)"
                ),
            ),
            WalkEnd::ZeroTail { position, bytes } => self.damage(
                path,
                Some(position),
                format!("{bytes} zero bytes to the end of a sealed segment"),
            ),
            WalkEnd::Damage {
                position,
                message,
                torn: true,
            } if active => self.note(
                path,
                format!(
                    "at position {position}, the end of the active segment: {message} (a live \
                     writer's append in progress, or a torn write the next open cuts)"
                ),
            ),
            WalkEnd::Damage {
                position, message, ..
            } => self.damage(path, Some(position), message),
        }
    }

    fn index(
        &mut self,
        path: &Path,
        kind: IndexKind,
        read: &check::IndexRead,
        batches: &LogBatches,
        active: bool,
    ) -> io::Result<()> {
        let mut checker = IndexChecker::new(kind);
        let mut ahead = 0;
        for item in &read.items {
            match *item {
                IndexItem::Overflow(i) => self.damage(
                    path,
                    Some(i as u64 * kind.entry_len()),
                    format!("entry {i}: its offset overflows the base offset"),
                )?,
                IndexItem::ZeroTail { from, count } => self.note(
                    path,
                    format!(
                        "{count} zero-filled entries from entry {from} (preallocated space, not \
                         entries)"
                    ),
                )?,
                IndexItem::Entry(i, entry) => {
                    let Some(problem) = checker.check(&entry, batches) else {
                        continue;
                    };
                    if active && check::past_the_end(&entry, batches) {
                        ahead += 1;
                        continue;
                    }
                    let what = match (entry.position, entry.timestamp) {
                        (Some(p), _) => format!("offset {} position {p}", entry.offset),
                        (None, t) => format!(
                            "timestamp {} offset {}",
                            t.unwrap_or_default(),
                            entry.offset
                        ),
                    };
                    self.damage(
                        path,
                        Some(i as u64 * kind.entry_len()),
                        format!("entry {i} ({what}): {problem}"),
                    )?;
                }
            }
        }
        if ahead > 0 {
            self.note(
                path,
                format!(
                    "{ahead} entries name batches past the end of the log as read (a live \
                     writer's appends)"
                ),
            )?;
        }
        if let Some(len) = read.partial {
            let entry_len = kind.entry_len();
            let message =
                format!("the file ends inside an entry ({len} bytes, entries are {entry_len})");
            if active {
                self.note(path, message)?;
            } else {
                self.damage(path, Some(len / entry_len * entry_len), message)?;
            }
        }
        Ok(())
    }
}

/// Run `verify`.
pub fn run(args: &VerifyArgs) -> Result<Verdict, Failure> {
    let plan = plan(args)?;
    let total: u64 = plan
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| p.bytes)
        .sum::<u64>()
        + plan.store_files.iter().map(|p| file_len(p)).sum::<u64>();
    let bar = if io::stderr().is_terminal() {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{binary_bytes}/{binary_total_bytes} checked {wide_bar} {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut v = Verifier {
        out: Out::new(BufWriter::new(io::stdout().lock()), args.json),
        bar,
        counts: Counts::default(),
    };
    for path in &plan.store_files {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if let Some(kind) = name.as_deref().and_then(MetadataFile::of_name) {
            v.metadata(kind, path)?;
        }
    }
    for (path, message) in &plan.others {
        v.note(path, (*message).to_owned())?;
    }
    for topic in &plan.topics {
        v.topic(topic)?;
    }
    v.bar.finish_and_clear();
    let c = &v.counts;
    let sound = c.damage == 0;
    let summary = VerifyLine::Summary {
        topics: c.topics,
        partitions: c.partitions,
        segments: c.segments,
        batches: c.batches,
        records: c.records,
        bytes: c.bytes,
        damage: c.damage,
        notes: c.notes,
        sound,
    };
    v.out.emit(&summary)?;
    v.out.flush()?;
    Ok(if sound {
        Verdict::Sound
    } else {
        Verdict::Damaged
    })
}
