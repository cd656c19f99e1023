//! Files a unit reads outside its package, and what of them decides whether it rebuilds.
//!
//! A path package inside the workspace root may read files of the workspace outside its own
//! directory: `include_str!("../../README.md")`, a build script reading `../proto`. Such a
//! unit is built in a copy of the whole workspace tree (its `target` directory, `.git` and
//! other cargo target directories left out), laid out as on disk, so relative paths resolve
//! as under cargo. That copy changes with any edit anywhere; what the unit *read* does not.
//! After a build, what each unit read outside its package is taken from rustc's dep-info and a
//! build script's `rerun-if-changed` lines ([`dep_info_inputs`], [`ws_relative`],
//! [`outside`]); its identity for reuse is then its derivation without the tree plus the
//! contents of those files ([`contents_key`]). An edit to a file no unit read rebuilds nothing.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::toolchain::hex;

/// The inputs a dep-info file (`rustc --emit=dep-info`, Makefile syntax) names, as written:
/// the prerequisites of its rules, with `\ ` unescaped. Comment lines (`# env-dep:`) are
/// skipped.
pub fn dep_info_inputs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        // `target: prereq prereq`; a target's own colon is followed by a space or the end.
        let Some(colon) = find_rule_colon(line) else { continue };
        let mut word = String::new();
        let mut chars = line[colon + 1..].chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&' ') => {
                    word.push(' ');
                    chars.next();
                }
                ' ' | '\t' => {
                    if !word.is_empty() {
                        out.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        if !word.is_empty() {
            out.push(word);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The colon ending a rule's target: the first `:` followed by whitespace or the line's end,
/// not escaped.
fn find_rule_colon(line: &str) -> Option<usize> {
    let bytes = line.as_bytes();
    (0..bytes.len()).find(|&i| {
        bytes[i] == b':'
            && (i == 0 || bytes[i - 1] != b'\\')
            && bytes.get(i + 1).is_none_or(|b| b.is_ascii_whitespace())
    })
}

/// `path` as the unit named it, relative to the workspace root: a relative path is taken from
/// `cwd` (workspace-relative), an absolute one must be inside `root` (the workspace copy the
/// unit ran in). `..` and `.` are resolved lexically, as the copy has no symlinks leading out.
/// `None` for a path outside the workspace (the toolchain, the store, `/usr/include`).
pub fn ws_relative(path: &str, cwd: &Path, root: &Path) -> Option<PathBuf> {
    let p = Path::new(path);
    let joined = if p.is_absolute() { p.strip_prefix(root).ok()?.to_path_buf() } else { cwd.join(p) };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Of `paths` (workspace-relative), those outside the package at `pkg` (workspace-relative;
/// empty for the root package), counting the directories of other packages nested in it
/// (`nested`) as outside too.
pub fn outside(paths: impl IntoIterator<Item = PathBuf>, pkg: &Path, nested: &[PathBuf]) -> BTreeSet<String> {
    paths
        .into_iter()
        .filter(|p| !p.starts_with(pkg) || nested.iter().any(|n| p.starts_with(n)))
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// A key over the contents of `files` (workspace-relative) under `root`: each name, then its
/// bytes, a directory's entries recursively, or "missing".
pub fn contents_key(root: &Path, files: &BTreeSet<String>) -> String {
    let mut h = Sha256::new();
    for f in files {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
        add_entry(&mut h, &root.join(f));
    }
    hex(&h.finalize())
}

fn add_entry(h: &mut Sha256, path: &Path) {
    match std::fs::metadata(path) {
        Err(_) => h.update(b"\x01missing"),
        Ok(m) if m.is_dir() => {
            h.update(b"\x01dir");
            let mut names: Vec<_> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
                Err(_) => return h.update(b"\x01unreadable"),
            };
            names.sort();
            for n in names {
                let s = n.to_string_lossy();
                h.update((s.len() as u64).to_le_bytes());
                h.update(s.as_bytes());
                add_entry(h, &path.join(&n));
            }
        }
        Ok(_) => match std::fs::read(path) {
            Ok(bytes) => {
                h.update(b"\x01file");
                h.update((bytes.len() as u64).to_le_bytes());
                h.update(&bytes);
            }
            Err(_) => h.update(b"\x01unreadable"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lists_the_prerequisites() {
        let text = "/out/lib/libm-abc.rmeta: crates/m/src/lib.rs crates/m/src/../../README.md crates/m/src/a\\ b.txt\n\
                    \n\
                    /out/lib/libm-abc.rlib: crates/m/src/lib.rs crates/m/src/../../README.md\n\
                    \n\
                    crates/m/src/lib.rs:\n\
                    crates/m/src/../../README.md:\n\
                    \n\
                    # env-dep:CARGO_PKG_NAME=m\n";
        assert_eq!(
            dep_info_inputs(text),
            vec!["crates/m/src/../../README.md", "crates/m/src/a b.txt", "crates/m/src/lib.rs"]
        );
    }

    #[test]
    fn paths_become_workspace_relative() {
        let root = Path::new("/nix/store/abc-workspace");
        let rel = |p: &str, cwd: &str| ws_relative(p, Path::new(cwd), root);
        assert_eq!(rel("crates/m/src/../../../README.md", ""), Some("README.md".into()));
        assert_eq!(rel("crates/m/src/../../README.md", ""), Some("crates/README.md".into()));
        assert_eq!(rel("../proto/a.proto", "crates/m"), Some("crates/proto/a.proto".into()));
        assert_eq!(rel("/nix/store/abc-workspace/crates/m/build.rs", "crates/m"), Some("crates/m/build.rs".into()));
        assert_eq!(rel("./src/lib.rs", "crates/m"), Some("crates/m/src/lib.rs".into()));
        assert_eq!(rel("/usr/include/stdio.h", ""), None);
        assert_eq!(rel("/nix/store/def-dep/lib.rs", ""), None);
        assert_eq!(rel("../../../etc/passwd", "crates/m"), None);
    }

    #[test]
    fn outside_the_package_and_in_nested_packages() {
        let paths: Vec<PathBuf> = ["README.md", "crates/m/src/lib.rs", "crates/other/x", "crates/m/inner/y", ""]
            .iter()
            .map(PathBuf::from)
            .collect();
        let out = outside(paths.clone(), Path::new("crates/m"), &[PathBuf::from("crates/m/inner")]);
        assert_eq!(out, ["README.md", "crates/m/inner/y", "crates/other/x"].iter().map(|s| s.to_string()).collect());
        // The root package: only nested packages are outside.
        let root = outside(paths, Path::new(""), &[PathBuf::from("crates/m"), PathBuf::from("crates/other")]);
        assert_eq!(
            root,
            ["crates/m/inner/y", "crates/m/src/lib.rs", "crates/other/x"].iter().map(|s| s.to_string()).collect()
        );
    }

    #[test]
    fn contents_key_sees_contents_not_times() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("proto")).unwrap();
        std::fs::write(d.path().join("README.md"), "a").unwrap();
        std::fs::write(d.path().join("proto/x.proto"), "x").unwrap();
        let files: BTreeSet<String> = ["README.md".to_owned(), "proto".to_owned(), "gone".to_owned()].into();
        let k = contents_key(d.path(), &files);
        std::fs::write(d.path().join("README.md"), "a").unwrap();
        assert_eq!(contents_key(d.path(), &files), k, "rewritten with the same bytes");
        std::fs::write(d.path().join("proto/y.proto"), "y").unwrap();
        assert_ne!(contents_key(d.path(), &files), k, "a file added in a directory read");
        std::fs::remove_file(d.path().join("proto/y.proto")).unwrap();
        assert_eq!(contents_key(d.path(), &files), k);
        std::fs::write(d.path().join("gone"), "").unwrap();
        assert_ne!(contents_key(d.path(), &files), k, "missing differs from empty");
        std::fs::remove_file(d.path().join("gone")).unwrap();
        std::fs::write(d.path().join("unrelated"), "z").unwrap();
        assert_eq!(contents_key(d.path(), &files), k, "a file not read");
    }
}
