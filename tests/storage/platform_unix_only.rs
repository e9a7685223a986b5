//! The crate is Unix-only, and says so: a non-Unix build stops at one `compile_error!` in
//! `src/lib.rs` (not at an import error), because every Unix-only import in `src/` is behind
//! `#[cfg(unix)]`; the README and the Cargo metadata (description, docs.rs targets) say it too.
//! (The build machine has no non-Unix target, so this checks the sources.)

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
