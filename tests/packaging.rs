//! The Dockerfile builds the release binary from the files it copies into the build stage, and
//! nothing else: every file the library embeds (`include_str!`, `include_bytes!`) must be among
//! them, or `docker build` fails where `cargo build` in the repository succeeds (as it once did
//! for the plot font). No GPU needed.

use std::path::{Component, Path, PathBuf};

/// The repository paths the Dockerfile's build stage copies (`COPY SRC... DEST` before the
/// second `FROM`).
fn copied_in_build_stage(dockerfile: &str) -> Vec<String> {
    let mut copied = Vec::new();
    let mut stages = 0;
    for line in dockerfile.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            stages += 1;
        } else if stages == 1 {
            if let Some(args) = line.strip_prefix("COPY ") {
                let words: Vec<&str> = args.split_whitespace().collect();
                assert!(!args.starts_with("--"), "unexpected COPY flags: {line}");
                copied.extend(words[..words.len() - 1].iter().map(|s| s.to_string()));
            }
        }
    }
    assert!(
        !copied.is_empty(),
        "no COPY in the Dockerfile's build stage"
    );
    copied
}

/// The repository-relative paths of the files `file` embeds, from the string literals that open
/// each `include_str!(` / `include_bytes!(` (inside `concat!` too: its first literal is a
/// directory, which then must be copied whole).
fn embedded(root: &Path, file: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    for marker in ["include_str!(", "include_bytes!("] {
        for (at, _) in text.match_indices(marker) {
            let rest = &text[at + marker.len()..];
            let Some(open) = rest.find('"') else { continue };
            let literal = &rest[open + 1..];
            let literal = &literal[..literal.find('"').unwrap()];
            let mut path = file.parent().unwrap().to_path_buf();
            for c in Path::new(literal).components() {
                match c {
                    Component::ParentDir => {
                        path.pop();
                    }
                    Component::Normal(n) => path.push(n),
                    _ => {}
                }
            }
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_docker_build_stage_copies_every_file_the_binary_embeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copied = copied_in_build_stage(&std::fs::read_to_string(root.join("Dockerfile")).unwrap());
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in &files {
        for path in embedded(root, file) {
            // Test fixtures are embedded by unit tests only, which the image does not build.
            if path.starts_with("tests") {
                continue;
            }
            seen += 1;
            if !copied.iter().any(|c| path.starts_with(c)) {
                missing.push(format!(
                    "{} (embedded by {})",
                    path.display(),
                    file.display()
                ));
            }
        }
    }
    // The shader registry and the plot font at least: the scan must find what is there.
    assert!(seen >= 3, "found only {seen} embedded files");
    assert!(
        missing.is_empty(),
        "the Dockerfile's build stage does not copy:\n{}",
        missing.join("\n")
    );
}
