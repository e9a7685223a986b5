//! What the commands that change a store share: opening it as its one writer (never creating one
//! by accident), `key=value` arguments, and printing a line as text or JSON.

use std::io::{self, BufWriter, StdoutLock, Write};
use std::path::Path;

use serde::Serialize;
use topiclog::{Error, Store, StoreOptions};

use crate::Failure;

/// Open the store in `dir` as its writer, for `command` (named in the messages).
///
/// The directory must exist and hold a store (a `LOCK` file, a topic, or a store file) unless
/// `create` is set: `Store::open` would otherwise make a new store of a mistyped path. The store
/// runs without background maintenance or cleaner: a command changes what it was asked to and
/// nothing else (no retention pass, no compaction).
///
/// # Errors
/// A [`Failure::Usage`] for a missing directory, one that holds no store, and a store another
/// process holds; a [`Failure::Library`] for anything else the open reports (damage exits 1).
pub fn open_writer(dir: &Path, command: &str, create: bool) -> Result<Store, Failure> {
    let shown = dir.display();
    if !create {
        if !dir.is_dir() {
            return Err(Failure::Usage(format!(
                "{shown}: no such store directory ({command} never creates a store)"
            )));
        }
        if !holds_a_store(dir) {
            return Err(Failure::Usage(format!(
                "{shown}: not a topiclog store (no LOCK file, no topic); {command} never creates \
                 a store"
            )));
        }
    }
    let options = StoreOptions {
        background_maintenance: false,
        background_cleaner: false,
        ..StoreOptions::default()
    };
    Store::open_with(dir, options).map_err(|e| match &e {
        // The library's message goes along: it names the holder where the lock file says who.
        Error::AlreadyOpen { path, .. } => Failure::Usage(format!(
            "{}: the store is in use by another process; {command} needs exclusive access to \
             the store: stop that process (or close its Store) and run it again ({e})",
            path.display(),
        )),
        _ => Failure::Library(e),
    })
}

/// Whether `dir` looks like a store: what `Store::open` would recognize without creating
/// anything (its `LOCK` file, a store file, or a topic directory with its `topic.conf`).
fn holds_a_store(dir: &Path) -> bool {
    if dir.join("LOCK").is_file() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let name = name.to_string_lossy();
        name.starts_with("__producer_ids")
            || name == "__consumer_offsets"
            || e.path().join("topic.conf").is_file()
    })
}

/// Split `key=value` (at the first `=`), naming `what` in the error.
pub fn key_value<'a>(arg: &'a str, what: &str) -> Result<(&'a str, &'a str), Failure> {
    arg.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| Failure::Usage(format!("{what}: expected key=value, found {arg:?}")))
}

/// Standard output, for lines printed as text or (`--json`) as one JSON object each.
pub struct Printer {
    out: BufWriter<StdoutLock<'static>>,
    json: bool,
}

impl Printer {
    pub fn new(json: bool) -> Self {
        Printer {
            out: BufWriter::new(io::stdout().lock()),
            json,
        }
    }

    pub fn json(&self) -> bool {
        self.json
    }

    /// Print `value` as one JSON line, or `text` (which may span lines).
    pub fn line<T: Serialize>(
        &mut self,
        value: &T,
        text: impl FnOnce() -> String,
    ) -> io::Result<()> {
        if self.json {
            serde_json::to_writer(&mut self.out, value)?;
            self.out.write_all(b"\n")
        } else {
            writeln!(self.out, "{}", text())
        }
    }

    /// Print text as is (text mode only: JSON lines are all [`line`](Self::line)'s).
    pub fn text(&mut self, text: &str) -> io::Result<()> {
        if !self.json {
            writeln!(self.out, "{text}")?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
