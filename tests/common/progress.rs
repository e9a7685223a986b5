//! A [`Progress`] observer that records every event, and the checks every operation's events
//! must pass.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use topiclog::{Progress, ProgressEvent, ProgressOperation, ProgressStage};

/// One event, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub operation: ProgressOperation,
    pub stage: ProgressStage,
    pub topic: Option<String>,
    pub partition: Option<u32>,
    pub dir: PathBuf,
    pub done: u64,
    pub total: u64,
}

/// Records every event, reporting `Advanced` at most every `interval` bytes.
#[derive(Debug)]
pub struct Recorder {
    events: Mutex<Vec<Seen>>,
    interval: u64,
}

impl Recorder {
    pub fn new(interval: u64) -> Arc<Recorder> {
        Arc::new(Recorder {
            events: Mutex::new(Vec::new()),
            interval,
        })
    }

    /// Every event so far, in the order observed.
    pub fn events(&self) -> Vec<Seen> {
        self.events.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.events.lock().unwrap().clear();
    }

    /// The events of `operation`, by directory (one operation per directory here), in order.
    pub fn runs(&self, operation: ProgressOperation) -> BTreeMap<PathBuf, Vec<Seen>> {
        let mut runs: BTreeMap<PathBuf, Vec<Seen>> = BTreeMap::new();
        for e in self
            .events()
            .into_iter()
            .filter(|e| e.operation == operation)
        {
            runs.entry(e.dir.clone()).or_default().push(e);
        }
        runs
    }
}

impl Progress for Recorder {
    fn on_progress(&self, e: &ProgressEvent<'_>) {
        self.events.lock().unwrap().push(Seen {
            operation: e.operation,
            stage: e.stage,
            topic: e.topic.map(str::to_owned),
            partition: e.partition,
            dir: e.dir.to_owned(),
            done: e.done_bytes,
            total: e.total_bytes,
        });
    }

    fn interval_bytes(&self) -> u64 {
        self.interval
    }
}

/// Check one successful operation's events: `Started` at 0, `Advanced` events at least
/// `interval` apart with done growing, one `Finished` last at the total, one total throughout.
/// Returns the total and how many `Advanced` events there were.
pub fn check_run(run: &[Seen], interval: u64) -> (u64, usize) {
    let first = run.first().expect("no events");
    let last = run.last().expect("no events");
    let total = first.total;
    assert_eq!(
        (first.stage, first.done),
        (ProgressStage::Started, 0),
        "{run:#?}"
    );
    assert_eq!(
        (last.stage, last.done),
        (ProgressStage::Finished, total),
        "{run:#?}"
    );
    for w in run.windows(2) {
        assert!(w[1].done >= w[0].done, "done went back: {run:#?}");
        if w[1].stage == ProgressStage::Advanced {
            assert!(w[1].done - w[0].done >= interval, "too close: {run:#?}");
        }
    }
    let middle = &run[1..run.len() - 1];
    assert!(
        middle
            .iter()
            .all(|e| e.stage == ProgressStage::Advanced && e.done <= total),
        "{run:#?}"
    );
    assert!(run
        .iter()
        .all(|e| e.total == total && e.topic == first.topic && e.partition == first.partition));
    (total, middle.len())
}
