//! The README's session transcript (between `<!-- transcript: begin -->` and `<!-- transcript:
//! end -->`) is true: each `$ topiclog ...` line is run in a fresh directory, in order, and its
//! standard output must be exactly the lines that follow it. `$ printf '...' | topiclog ...`
//! feeds the printf text (with `\n` escapes) to standard input.

mod common;
mod store_common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The transcript's commands, each with the output lines the README shows.
fn transcript() -> Vec<(String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("read README.md");
    let (_, rest) = readme
        .split_once("<!-- transcript: begin -->")
        .expect("the README has a transcript");
    let (body, _) = rest
        .split_once("<!-- transcript: end -->")
        .expect("the transcript ends");
    let mut steps: Vec<(String, Vec<String>)> = Vec::new();
    for line in body.lines() {
        if line.starts_with("```") || line.trim().is_empty() && steps.is_empty() {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            steps.push((command.to_owned(), Vec::new()));
        } else if let Some((_, out)) = steps.last_mut() {
            out.push(line.to_owned());
        }
    }
    steps
}

/// Split a command line into words (single quotes group; no other shell syntax is used).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                any = true;
            }
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            _ => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

fn run(dir: &Path, command: &str) -> Output {
    let (input, command) = match command.split_once(" | ") {
        Some((printf, rest)) => {
            let w = words(printf);
            assert_eq!(
                w[0], "printf",
                "only printf feeds standard input: {command}"
            );
            (Some(w[1].replace("\\n", "\n")), rest)
        }
        None => (None, command),
    };
    let w = words(command);
    assert_eq!(w[0], "topiclog", "{command}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_topiclog"))
        .args(&w[1..])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run topiclog");
    let stdin = child.stdin.take().expect("stdin");
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = stdin;
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

#[test]
fn the_readme_transcript_is_what_topiclog_prints() {
    let steps = transcript();
    assert!(steps.len() >= 5, "{steps:?}");
    let dir = tempfile::tempdir().unwrap();
    for (command, expected) in steps {
        let out = run(dir.path(), &command);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = common::stdout(&out);
        let printed: Vec<&str> = printed.lines().collect();
        assert_eq!(printed, expected, "$ {command}");
    }
}
