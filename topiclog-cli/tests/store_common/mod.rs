//! For the tests of the commands that change a store: stores written and read back with the
//! library, the binary run with standard input, and its messages.

#![allow(dead_code)] // each test file uses its own part

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use topiclog::{Partition, Store, StoreOptions, StoredRecord};

/// Options for the test's own opens: nothing runs in the background.
pub fn options() -> StoreOptions {
    StoreOptions {
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    }
}

/// Open (or create) the store in `dir` with the library.
pub fn open(dir: &Path) -> Store {
    Store::open_with(dir, options()).expect("open the store")
}

/// A new, empty store in `dir`/store, closed; its path.
pub fn empty_store(dir: &Path) -> PathBuf {
    let path = dir.join("store");
    open(&path).close().expect("close");
    path
}

/// Run `topiclog` with `args`, `input` on its standard input.
pub fn topiclog_with_input<I, S>(args: I, input: &str) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run topiclog");
    let mut stdin = child.stdin.take().expect("stdin");
    // A command that fails before reading may have exited already: a closed pipe is fine.
    if let Err(e) = stdin.write_all(input.as_bytes()) {
        assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "write stdin: {e}");
    }
    drop(stdin);
    child.wait_with_output().expect("wait for topiclog")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Assert that `output` is a success.
pub fn ok(output: &Output) {
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

/// Assert that `output` exited 2 with `expected` in its message, and printed nothing.
pub fn fails_with(output: &Output, expected: &str) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let message = stderr(output);
    assert!(message.contains(expected), "{expected:?} not in {message}");
}

/// Every record of `partition`, from its start offset.
pub fn records(partition: &Partition) -> Vec<StoredRecord> {
    let mut out = Vec::new();
    let mut next = partition.start_offset();
    while next < partition.end_offset() {
        let batches = partition.read(next, 1 << 20).expect("read");
        if batches.is_empty() {
            break;
        }
        out.extend(batches.records());
        next = batches.next_offset();
    }
    out
}

/// Bytes as text, for comparisons.
pub fn text(bytes: Option<&topiclog::Bytes>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// A record's headers as `(key, value)` text.
pub fn headers(record: &StoredRecord) -> Vec<(String, String)> {
    record
        .headers()
        .map(|h| {
            (
                h.key.to_owned(),
                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}
