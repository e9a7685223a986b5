//! Progress of long operations (recovery, compaction passes, Kafka export and import) for an
//! observer the caller hands in ([`Progress`]), e.g. to draw a progress bar.
//!
//! An operation is the work on one partition: its [`Meter`] knows the total up front, reports
//! `Started`, then `Advanced` at most once per [`Progress::interval_bytes`] of progress, then
//! `Finished` (done = total) or, if it is dropped unfinished (an error, a close), `Failed`. Without
//! an observer a meter is inert: one comparison against `u64::MAX` where work would be reported,
//! and no file is looked at to find a total.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The default [`Progress::interval_bytes`]: 8 MiB.
pub const DEFAULT_PROGRESS_INTERVAL_BYTES: u64 = 8 << 20;

/// An observer of long operations: recovery of a partition at open (after an unclean stop),
/// compaction passes, and Kafka export and import. Hand one in with
/// [`StoreOptions::progress`](crate::StoreOptions::progress) (recovery and compaction in a store),
/// [`Partition::open_with_progress`](crate::Partition::open_with_progress) (a partition of your
/// own), or the `progress` field of the export and import options
/// ([`KafkaExportOptions`](crate::KafkaExportOptions),
/// [`KafkaImportOptions`](crate::KafkaImportOptions),
/// [`KafkaPartitionExportOptions`](crate::KafkaPartitionExportOptions)).
///
/// Any `Fn(&ProgressEvent<'_>) + Send + Sync` closure is one. Each operation is one partition's:
/// it reports [`Started`](ProgressStage::Started) with its total, then
/// [`Advanced`](ProgressStage::Advanced) at most once per [`interval_bytes`](Self::interval_bytes)
/// of work (never per record or batch), then exactly one [`Finished`](ProgressStage::Finished)
/// (done equals total) or [`Failed`](ProgressStage::Failed). Every event of an operation comes
/// from the thread doing it; operations on different partitions may run at the same time on
/// different threads (a store recovers its partitions side by side at open), so tell them apart
/// by [`ProgressEvent::dir`]. The observer is called while the operation holds the partition's
/// locks: keep it quick (draw, count, send to a channel), and never call back into the same
/// partition from it.
///
/// # Examples
/// ```
/// use std::sync::Arc;
/// use topiclog::{KafkaExportOptions, Progress, ProgressEvent, Record, Store, StoreOptions};
///
/// // Where a CLI would draw a bar: each operation's percentage as it goes.
/// let bar: Arc<dyn Progress> = Arc::new(|e: &ProgressEvent<'_>| {
///     eprintln!(
///         "{:?} of {}: {:?}, {:.0}% of {} bytes",
///         e.operation,
///         e.dir.display(),
///         e.stage,
///         e.fraction() * 100.0,
///         e.total_bytes
///     );
/// });
/// let dir = tempfile::tempdir()?;
/// // Recovery at open and compaction passes report to the store's observer...
/// let store = Store::open_with(dir.path().join("store"), StoreOptions {
///     progress: Some(bar.clone()),
///     ..StoreOptions::default()
/// })?;
/// store.topic_or_create("orders")?.send(Record::new("created"))?;
/// // ...an export or import to its own.
/// let options = KafkaExportOptions { progress: Some(bar), ..KafkaExportOptions::default() };
/// store.export_kafka_with(dir.path().join("kafka"), &["orders"], &options)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Progress: Send + Sync {
    /// Called with each event of each operation.
    fn on_progress(&self, event: &ProgressEvent<'_>);

    /// `Advanced` events of an operation come at least this many bytes apart (at least 1).
    /// Default [`DEFAULT_PROGRESS_INTERVAL_BYTES`] (8 MiB).
    fn interval_bytes(&self) -> u64 {
        DEFAULT_PROGRESS_INTERVAL_BYTES
    }
}

impl<F> Progress for F
where
    F: Fn(&ProgressEvent<'_>) + Send + Sync,
{
    fn on_progress(&self, event: &ProgressEvent<'_>) {
        self(event)
    }
}

impl fmt::Debug for dyn Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Progress(interval_bytes: {})", self.interval_bytes())
    }
}

/// What a [`ProgressEvent`] is about.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgressOperation {
    /// A partition's rescan at open (or in [`Partition::recover`](crate::Partition::recover))
    /// after an unclean stop. Total: the length of the `.log` files it verifies, the segments
    /// from the one holding the recovery point on. Done: how far through them it is; bytes it
    /// need not read (preallocated space past the data, the part of the segment holding the
    /// recovery point that its durable index entries vouch for) count as done when it passes
    /// them. An open after a clean close rescans nothing and reports nothing.
    Recovery,
    /// A compaction pass that cleans ([`Partition::compact`](crate::Partition::compact), run by
    /// the store's cleaner or [`Store::maintain`](crate::Store::maintain)). Total: the bytes the
    /// pass reads: its dirty segments once to map their keys, then every segment it rewrites
    /// (if the key map fills, it rewrites fewer and done jumps to the total at the end). A pass
    /// whose triggers do not fire reports nothing.
    Compaction,
    /// A partition's export to a Kafka partition directory. Total: the bytes of the files
    /// exported (segment data and indexes); a hard-linked `.log` counts as done at once.
    Export,
    /// A Kafka partition directory's import. Total: the bytes of the Kafka `.log` files taken
    /// (linked or copied, every batch verified); done follows the verification.
    Import,
}

/// Where an operation is.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgressStage {
    /// The first event of an operation: done is 0, the total is known.
    Started,
    /// Done moved on by at least [`Progress::interval_bytes`] since the last event.
    Advanced,
    /// The last event of an operation that succeeded: done equals total.
    Finished,
    /// The last event of an operation that stopped with an error (which its caller gets, or
    /// [`Store::last_maintenance_error`](crate::Store::last_maintenance_error) keeps) or was
    /// stopped by a close: done is where it stopped.
    Failed,
}

/// One step of a long operation, for a [`Progress`] observer.
///
/// Within an operation the total never changes and done never goes back or past the total.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgressEvent<'a> {
    /// The kind of operation.
    pub operation: ProgressOperation,
    /// Where it is.
    pub stage: ProgressStage,
    /// The topic, for a partition of a store (the internal `__consumer_offsets` included);
    /// `None` for a partition opened on its own.
    pub topic: Option<&'a str>,
    /// The partition number, for a partition of a store.
    pub partition: Option<u32>,
    /// The directory worked on: the partition's, for recovery and compaction; the Kafka
    /// partition directory written by an export or read by an import.
    pub dir: &'a Path,
    /// Bytes done so far.
    pub done_bytes: u64,
    /// Bytes to do in all, known when the operation starts.
    pub total_bytes: u64,
}

impl ProgressEvent<'_> {
    /// Done as a fraction of the total, `0.0 ..= 1.0` (1.0 when there is nothing to do).
    ///
    /// # Examples
    /// ```
    /// # use topiclog::ProgressEvent;
    /// fn percent(e: &ProgressEvent<'_>) -> u32 {
    ///     (e.fraction() * 100.0).round() as u32
    /// }
    /// ```
    pub fn fraction(&self) -> f64 {
        if self.total_bytes == 0 {
            1.0
        } else {
            self.done_bytes.min(self.total_bytes) as f64 / self.total_bytes as f64
        }
    }
}

/// An observer and whose operations it hears about: what a partition keeps from its open.
#[derive(Clone, Debug)]
pub(crate) struct Observer {
    progress: Arc<dyn Progress>,
    topic: Option<Arc<str>>,
    partition: Option<u32>,
}

impl Observer {
    /// `progress`, hearing about partition `partition` of `topic` (both `None` for a partition
    /// opened on its own).
    pub fn new(progress: Arc<dyn Progress>, topic: Option<&str>, partition: Option<u32>) -> Self {
        Observer {
            progress,
            topic: topic.map(Arc::from),
            partition,
        }
    }
}

/// The progress of one operation: see the module docs. Work is measured in parts (a segment,
/// a file) whose lengths add up to the total: [`part`](Self::part) begins one,
/// [`at`](Self::at) says how far into it the work is, [`end_part`](Self::end_part) ends it.
pub(crate) struct Meter<'a> {
    sink: Option<(&'a Observer, &'a Path, ProgressOperation)>,
    total: u64,
    done: u64,
    /// Done at which the next `Advanced` is due.
    next_report: u64,
    interval: u64,
    part_start: u64,
    part_len: u64,
    /// The position in the current part at which [`at`](Self::at) has something to report:
    /// `u64::MAX` without an observer or outside a part, so `at` costs one comparison.
    next_pos: u64,
    /// `Started` was reported and neither `Finished` nor `Failed` yet.
    open: bool,
}

impl<'a> Meter<'a> {
    /// A meter that reports nothing.
    pub fn off() -> Meter<'static> {
        Meter {
            sink: None,
            total: 0,
            done: 0,
            next_report: u64::MAX,
            interval: u64::MAX,
            part_start: 0,
            part_len: 0,
            next_pos: u64::MAX,
            open: false,
        }
    }

    /// Start `operation` on `dir` with `total` bytes to do: reports `Started` to `observer`
    /// (without one, the meter is [`off`](Self::off)).
    pub fn start(
        observer: Option<&'a Observer>,
        operation: ProgressOperation,
        dir: &'a Path,
        total: u64,
    ) -> Meter<'a> {
        let Some(observer) = observer else {
            return Meter::off();
        };
        let interval = observer.progress.interval_bytes().max(1);
        let meter = Meter {
            sink: Some((observer, dir, operation)),
            total,
            done: 0,
            next_report: interval,
            interval,
            part_start: 0,
            part_len: 0,
            next_pos: u64::MAX,
            open: true,
        };
        meter.emit(ProgressStage::Started);
        meter
    }

    /// Begin a part of `len` bytes, from where the work is now (cut to what is left of the
    /// total, so done never passes it).
    pub fn part(&mut self, len: u64) {
        if self.sink.is_none() {
            return;
        }
        self.part_start = self.done;
        self.part_len = len.min(self.total - self.done);
        self.next_pos = self.next_report - self.part_start;
    }

    /// The work reached `pos` bytes into the current part.
    #[inline]
    pub fn at(&mut self, pos: u64) {
        if pos >= self.next_pos {
            self.reach(self.part_start + pos.min(self.part_len));
            self.next_pos = self.next_report.saturating_sub(self.part_start);
        }
    }

    /// The current part is done.
    pub fn end_part(&mut self) {
        if self.sink.is_none() {
            return;
        }
        self.reach(self.part_start + self.part_len);
        self.part_start = self.done;
        self.part_len = 0;
        self.next_pos = u64::MAX;
    }

    /// The operation succeeded: reports `Finished` with done = total.
    pub fn finish(&mut self) {
        if self.open {
            self.done = self.total;
            self.open = false;
            self.emit(ProgressStage::Finished);
        }
    }

    fn reach(&mut self, done: u64) {
        self.done = self.done.max(done.min(self.total));
        if self.done >= self.next_report {
            self.emit(ProgressStage::Advanced);
            self.next_report = self.done.saturating_add(self.interval);
        }
    }

    fn emit(&self, stage: ProgressStage) {
        if let Some((observer, dir, operation)) = self.sink {
            observer.progress.on_progress(&ProgressEvent {
                operation,
                stage,
                topic: observer.topic.as_deref(),
                partition: observer.partition,
                dir,
                done_bytes: self.done,
                total_bytes: self.total,
            });
        }
    }
}

impl Drop for Meter<'_> {
    fn drop(&mut self) {
        // Not while unwinding: an observer that panicked in turn would abort the process.
        if self.open && !std::thread::panicking() {
            self.open = false;
            self.emit(ProgressStage::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    struct Recorder {
        events: Mutex<Vec<(ProgressStage, u64, u64)>>,
        interval: u64,
    }

    impl Progress for Recorder {
        fn on_progress(&self, e: &ProgressEvent<'_>) {
            self.events
                .lock()
                .push((e.stage, e.done_bytes, e.total_bytes));
        }
        fn interval_bytes(&self) -> u64 {
            self.interval
        }
    }

    fn observer(interval: u64) -> (Arc<Recorder>, Observer) {
        let recorder = Arc::new(Recorder {
            events: Mutex::new(Vec::new()),
            interval,
        });
        let observer = Observer::new(recorder.clone(), Some("t"), Some(3));
        (recorder, observer)
    }

    #[test]
    fn parts_report_at_most_once_per_interval_and_finish_at_the_total() {
        use ProgressStage::*;
        let (recorder, observer) = observer(10);
        let mut m = Meter::start(
            Some(&observer),
            ProgressOperation::Recovery,
            Path::new("d"),
            40,
        );
        m.part(25);
        for pos in [0, 4, 9, 10, 12, 19, 20, 30] {
            m.at(pos); // 30 is past the part: counted as its end (25)
        }
        m.end_part();
        m.part(100); // cut to the 15 left
        m.at(3);
        m.end_part();
        m.finish();
        m.finish();
        drop(m);
        assert_eq!(
            *recorder.events.lock(),
            vec![
                (Started, 0, 40),
                (Advanced, 10, 40),
                (Advanced, 20, 40),
                (Advanced, 40, 40),
                (Finished, 40, 40),
            ]
        );
    }

    #[test]
    fn a_meter_dropped_unfinished_reports_failed_where_it_stopped() {
        use ProgressStage::*;
        let (recorder, observer) = observer(1 << 20);
        let mut m = Meter::start(
            Some(&observer),
            ProgressOperation::Export,
            Path::new("d"),
            50,
        );
        m.part(30);
        m.end_part();
        drop(m);
        assert_eq!(
            *recorder.events.lock(),
            vec![(Started, 0, 50), (Failed, 30, 50)]
        );
    }

    #[test]
    fn without_an_observer_a_meter_is_inert() {
        let mut m = Meter::start(None, ProgressOperation::Import, Path::new("d"), 50);
        m.part(30);
        m.at(u64::MAX - 1);
        m.end_part();
        m.finish();
        assert_eq!(m.next_pos, u64::MAX);
    }

    #[test]
    fn closures_observe_and_events_name_their_partition() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress: Arc<dyn Progress> = Arc::new(move |e: &ProgressEvent<'_>| {
            sink.lock()
                .push((e.topic.map(str::to_owned), e.partition, e.fraction()));
        });
        assert_eq!(progress.interval_bytes(), DEFAULT_PROGRESS_INTERVAL_BYTES);
        assert!(format!("{progress:?}").starts_with("Progress"));
        let observer = Observer::new(progress, Some("orders"), Some(2));
        let mut m = Meter::start(
            Some(&observer),
            ProgressOperation::Compaction,
            Path::new("d"),
            0,
        );
        m.finish();
        let seen = seen.lock();
        assert_eq!(seen.len(), 2);
        assert!(seen
            .iter()
            .all(|(t, p, f)| t.as_deref() == Some("orders") && *p == Some(2) && *f == 1.0));
    }
}
