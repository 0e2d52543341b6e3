//! The documents tell the truth about the repository: the SDK README gives the SDK's
//! real ABI version, and every repository path a document cites exists.

use nest_tests::workspace_root;
use std::{collections::BTreeSet, path::Path, process::Command};

/// The documents a newcomer reads, beside `docs/adr/*.md`.
const DOCUMENTS: [&str; 4] = ["README.md", "ARCHITECTURE.md", "sdk/README.md", "console/README.md"];

/// The repository's files as git sees them: tracked, or new and not ignored (a file
/// just written and cited is fine; a build product or a devnet's key is not a
/// repository file).
fn repository_files() -> Vec<String> {
    let output = Command::new("git")
        .args(["ls-files", "--cached", "--others", "--exclude-standard"])
        .current_dir(workspace_root())
        .output()
        .expect("run git (the document checks read the repository's file list)");
    assert!(output.status.success(), "git ls-files: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8 file names").lines().map(str::to_string).collect()
}

/// What exists in the repository: its files and every directory above one.
struct Repository {
    files: Vec<String>,
    entries: BTreeSet<String>,
}

impl Repository {
    fn new(files: Vec<String>) -> Repository {
        let mut entries = BTreeSet::new();
        for file in &files {
            let mut at = 0;
            while let Some(slash) = file[at..].find('/') {
                entries.insert(file[..at + slash].to_string());
                at += slash + 1;
            }
            entries.insert(file.clone());
        }
        Repository { files, entries }
    }

    fn exists(&self, path: &str) -> bool {
        self.entries.contains(normalize(path).trim_end_matches('/'))
    }

    /// A source file named by its path inside its crate (`session/market.rs`).
    fn has_file_ending_with(&self, path: &str) -> bool {
        self.files.iter().any(|file| file == path || file.ends_with(&format!("/{path}")))
    }

    /// True when `first` (a path's first component, under `base`) is a repository entry.
    fn has_entry(&self, base: &str, first: &str) -> bool {
        self.entries.contains(&join(base, first))
    }
}

fn join(base: &str, path: &str) -> String {
    if base.is_empty() { path.to_string() } else { format!("{base}/{path}") }
}

/// `a/./b/../c` as `a/c`.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

/// The paths a document cites that do not exist, each with what cited it. A cited path
/// is a link target (`[x](path)`), or, inside a backticked span, a word whose first
/// component is an entry of the repository root or of the document's directory
/// (`plugins/radio-sim/src/identity.rs`, `examples/vendor-radio`), or a Rust file
/// named by its path inside a crate (`session/market.rs`). Words stop at characters
/// no path here uses, so placeholders (`plugins/<name>/`) and globs keep their prefix.
fn missing_paths(repository: &Repository, document: &str, text: &str) -> Vec<String> {
    let base = Path::new(document).parent().and_then(Path::to_str).unwrap_or_default();
    let mut missing = Vec::new();
    for target in link_targets(text) {
        if !repository.exists(&join(base, target)) {
            missing.push(format!("{document}: link ({target})"));
        }
    }
    for span in backticked(text) {
        for word in span.split(|c: char| !(c.is_ascii_alphanumeric() || "_.-/".contains(c))) {
            let first = word.split('/').next().unwrap_or_default();
            let cited = if word.contains('/') && repository.has_entry("", first) {
                repository.exists(word)
            } else if word.contains('/') && !base.is_empty() && repository.has_entry(base, first) {
                repository.exists(&join(base, word))
            } else if word.ends_with(".rs") {
                repository.has_file_ending_with(word)
            } else {
                true
            };
            if !cited {
                missing.push(format!("{document}: `{span}` cites {word}"));
            }
        }
    }
    missing
}

/// The text of each inline code span (fenced blocks are commands and output, not citations).
fn backticked(text: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            spans.extend(line.split('`').skip(1).step_by(2));
        }
    }
    spans
}

/// Relative link targets: `[text](target)` without a scheme, anchor removed.
fn link_targets(text: &str) -> Vec<&str> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(target, _)| target))
        .map(|target| target.split('#').next().unwrap_or_default())
        .filter(|target| !target.is_empty() && !target.contains("://") && !target.contains(' '))
        .collect()
}

fn documents() -> Vec<String> {
    let mut documents: Vec<String> = DOCUMENTS.iter().map(|d| d.to_string()).collect();
    let adr = workspace_root().join("docs/adr");
    for entry in std::fs::read_dir(&adr).expect("docs/adr") {
        let name = entry.expect("docs/adr entry").file_name().to_string_lossy().to_string();
        if name.ends_with(".md") {
            documents.push(format!("docs/adr/{name}"));
        }
    }
    documents.sort();
    documents
}

#[test]
fn every_repository_path_the_documents_cite_exists() {
    let repository = Repository::new(repository_files());
    // The check itself finds what it must: a moved file, a dead link, a renamed module.
    let planted = "see `plugins/radio-sim/src/gone.rs`, [the ADR](docs/adr/0000-none.md) and `session/gone.rs`; \
                   `plugins/<name>/` and `/v1/status` are no files";
    assert_eq!(missing_paths(&repository, "README.md", planted).len(), 3, "{planted}");
    assert!(missing_paths(&repository, "sdk/README.md", "`examples/none`").len() == 1, "relative to sdk/");

    let mut missing = Vec::new();
    let mut cited_documents = 0;
    for document in documents() {
        let text = std::fs::read_to_string(workspace_root().join(&document)).expect("document");
        missing.extend(missing_paths(&repository, &document, &text));
        cited_documents += 1;
    }
    assert!(cited_documents > DOCUMENTS.len(), "the ADRs are read too");
    assert!(missing.is_empty(), "documents cite paths that do not exist:\n{}", missing.join("\n"));
}

/// The numbers the SDK README gives as the ABI version: "`nest_sdk::ABI_VERSION` (now
/// `N`)" and the `sdk_abi` line of `nestd plugin inspect`'s output.
fn abi_versions_cited(text: &str) -> Vec<(String, Option<u32>)> {
    let mut cited = Vec::new();
    for (at, _) in text.match_indices("ABI_VERSION` (now `") {
        let rest = &text[at + "ABI_VERSION` (now `".len()..];
        let number = rest.split('`').next().unwrap_or_default();
        cited.push((format!("ABI_VERSION` (now `{number}`)"), number.parse().ok()));
    }
    for line in text.lines().filter(|line| line.starts_with("sdk_abi ")) {
        cited.push((line.to_string(), line.split_whitespace().nth(1).and_then(|n| n.parse().ok())));
    }
    cited
}

#[test]
fn the_sdk_readme_gives_the_sdk_abi_version() {
    let text = std::fs::read_to_string(workspace_root().join("sdk/README.md")).expect("sdk/README.md");
    let cited = abi_versions_cited(&text);
    assert!(
        cited.iter().any(|(line, _)| line.starts_with("ABI_VERSION")),
        "sdk/README.md names the ABI version as \"`nest_sdk::ABI_VERSION` (now `N`)\""
    );
    for (line, number) in &cited {
        assert_eq!(*number, Some(nest_sdk::ABI_VERSION), "sdk/README.md says {line:?}");
    }
}
