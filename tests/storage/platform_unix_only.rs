//! The crate is Unix-only, and says so: a non-Unix build stops at one `compile_error!` in
//! `src/lib.rs` (not at an import error), because every Unix-only import in `src/` is behind
//! `#[cfg(unix)]`; the README and the Cargo metadata (description, docs.rs targets) say it too.
//!
//! The sources are checked here; the build itself is checked by `.ci/run` where the target is
//! installed (`rustup target add x86_64-pc-windows-gnu`), by hand:
//!
//! ```text
//! cargo check -p topiclog --target x86_64-pc-windows-gnu --no-default-features \
//!     --features lz4,gzip,snappy,tracing,metrics,stream
//! ```
//!
//! which must print exactly one error, the `compile_error!` (zstd is left out: zstd-sys needs a C
//! compiler for the target).

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn a_non_unix_build_stops_at_one_clear_error() {
    let lib = fs::read_to_string(root().join("src/lib.rs")).unwrap();
    assert!(
        lib.contains(
            "#[cfg(not(unix))]\ncompile_error!(\n    \"topiclog supports Unix-like systems only"
        ),
        "src/lib.rs refuses non-Unix targets with a compile_error!"
    );
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if line.starts_with("use ") && line.contains("os::unix") {
                assert_eq!(
                    i.checked_sub(1).map(|p| lines[p]),
                    Some("#[cfg(unix)]"),
                    "{}:{}: a Unix-only import needs #[cfg(unix)], or a non-Unix build fails \
                     with an import error besides the compile_error!",
                    file.display(),
                    i + 1
                );
            }
        }
    }
}

/// Only `libc` is a Unix-only dependency: a codec or facade listed under the
/// `[target.'cfg(unix)'.dependencies]` header (as they once were, by being declared after it) is
/// missing from a non-Unix build, whose every use is then an error besides the `compile_error!`.
#[test]
fn only_libc_is_a_unix_only_dependency() {
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let section = manifest
        .split("[target.'cfg(unix)'.dependencies]")
        .nth(1)
        .expect("Cargo.toml has [target.'cfg(unix)'.dependencies]");
    let deps: Vec<&str> = section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(deps, ["libc = \"0.2\""], "{deps:?}");
}

/// Every use of `libc` in `src/` is in a file that gates it: the descriptor limit
/// (`src/fs/fd_limit.rs`) has non-Unix stubs, the directory lock is in a Unix-only module, the
/// tail page's futex calls are Linux-only with a polling stub elsewhere.
#[test]
fn libc_is_used_only_behind_cfg_unix() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        if text.contains("libc::") {
            // Gated on Unix, or more narrowly on Linux (the tail page's futex).
            let unix = text.contains("#[cfg(unix)]") && text.contains("#[cfg(not(unix))]");
            let linux = text.contains("#[cfg(target_os = \"linux\")]")
                && text.contains("#[cfg(not(target_os = \"linux\"))]");
            assert!(
                unix || linux,
                "{}: uses libc without a #[cfg(unix)] item and its non-Unix stub",
                file.display()
            );
        }
    }
}

#[test]
fn readme_and_metadata_say_unix_only() {
    let readme = fs::read_to_string(root().join("README.md")).unwrap();
    assert!(readme.contains("Unix-like systems only"), "README");
    let manifest = fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("for Unix-like systems"),
        "Cargo.toml description"
    );
    let docs_rs = manifest
        .split("[package.metadata.docs.rs]")
        .nth(1)
        .expect("Cargo.toml has [package.metadata.docs.rs]");
    let targets = docs_rs.lines().find(|l| l.starts_with("targets")).unwrap();
    assert!(!targets.contains("windows"), "{targets}");
}
