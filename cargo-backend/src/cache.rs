//! Caching what a rebuild with nothing changed would recompute, without ever missing a change.
//!
//! A no-op `cargo nix build` should cost a directory walk, not cargo's resolution, rustc probes,
//! source hashing and derivation writing. Three layers, each keyed on everything its result
//! depends on:
//!
//! - **workspace** (unit graph + package facts): the command and its flags, the environment
//!   variables cargo reads, the `Cargo.toml` of every path package and of the workspace root,
//!   `Cargo.lock`, cargo config files and `rust-toolchain` files up the tree, and the *listing*
//!   of every path package's files (cargo discovers `build.rs`, `src/bin/*`, `tests/*` … by
//!   their existence). Editing a file's content does not invalidate it; adding one does.
//! - **toolchain**: `RUSTC`, `RUSTUP_TOOLCHAIN`, `PATH`, rustup's settings file, and the
//!   size/mtime/ctime of the rustc and cc binaries found last time.
//! - **sources**: per package directory, a fingerprint of every file kept by the source filter
//!   (relative path, type, size, mtime, ctime, inode, mode, symlink target) → its store path,
//!   reused only while that path is valid.
//! - **plan**: the derivations of all units, keyed on the workspace key, the toolchain
//!   identity, the builder, every source store path and the store; reused only while every
//!   derivation is valid.
//!
//! ctime cannot be set by users, so an edit that restores a file's size and mtime is still seen.
//! Anything unreadable makes the key differ (a miss), never a stale hit.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::toolchain::hex;

const CACHE_VERSION: u32 = 4;

/// Everything cached for one manifest: one record per stage, each written by its own stage
/// only ([`crate::workspace::Record`], the toolchain's two fields, [`crate::plan::Record`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cache {
    version: u32,
    /// The workspace stage's record.
    pub workspace: crate::workspace::Record,
    /// Key of the cached toolchain.
    pub toolchain_key: String,
    /// The toolchain.
    pub toolchain: Option<crate::toolchain::Toolchain>,
    /// The plan stage's record.
    pub plan: crate::plan::Record,
}

impl Cache {
    /// The cache file for `manifest` (under `$XDG_CACHE_HOME/libnix/plans` or
    /// `~/.cache/libnix/plans`).
    pub fn file_for(manifest: &Path) -> Option<PathBuf> {
        let base = std::env::var_os("LIBNIX_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("libnix")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/libnix")))?;
        let abs = std::path::absolute(manifest).ok()?;
        Some(base.join("plans").join(format!("{}.json", &hex(&Sha256::digest(abs.to_string_lossy().as_bytes()))[..32])))
    }

    /// Loads a cache (empty when missing, unreadable or of another version).
    pub fn load(file: &Path) -> Cache {
        std::fs::read(file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok())
            .filter(|c| c.version == CACHE_VERSION)
            .unwrap_or_default()
    }

    /// Saves the cache atomically; failures are ignored (a cache is optional).
    pub fn save(&mut self, file: &Path) {
        self.version = CACHE_VERSION;
        let Some(dir) = file.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
        if let Ok(bytes) = serde_json::to_vec(self) {
            if std::fs::write(&tmp, bytes).is_ok() {
                let _ = std::fs::rename(&tmp, file);
            }
        }
    }
}

/// What identifies a file's content without reading it: type, size, mtime, ctime, inode and
/// mode (the mode carries the file type bits).
fn file_identity(m: &std::fs::Metadata) -> String {
    format!("{}:{}.{}:{}.{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec(), m.ino(), m.mode())
}

/// Accumulates a key.
#[derive(Default)]
pub struct KeyBuilder(Sha256);

impl std::fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyBuilder")
    }
}

impl KeyBuilder {
    /// Adds a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }

    /// Adds a file's identity: size, mtime, ctime, inode, mode (or "missing").
    pub fn stat(&mut self, path: &Path) -> &mut Self {
        let s = match std::fs::metadata(path) {
            Ok(m) => file_identity(&m),
            Err(_) => "missing".into(),
        };
        self.str(&path.to_string_lossy()).str(&s)
    }

    /// Adds an environment variable's value (or its absence).
    pub fn env(&mut self, name: &str) -> &mut Self {
        let v = std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()).unwrap_or_else(|| "\0unset".into());
        self.str(name).str(&v)
    }

    /// The key.
    pub fn finish(&self) -> String {
        hex(&self.0.clone().finalize())
    }
}

/// Walks `dir` (not following symlinks), skipping what `excluded(relative path)` says, and
/// feeds each entry to `f(relative path, metadata)` in a stable order.
pub fn walk(
    dir: &Path,
    excluded: &dyn Fn(&Path) -> bool,
    f: &mut dyn FnMut(&Path, &std::fs::Metadata),
) -> std::io::Result<()> {
    fn go(
        root: &Path,
        dir: &Path,
        excluded: &dyn Fn(&Path) -> bool,
        f: &mut dyn FnMut(&Path, &std::fs::Metadata),
    ) -> std::io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            if excluded(rel) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path)?;
            f(rel, &meta);
            if meta.is_dir() {
                go(root, &path, excluded, f)?;
            }
        }
        Ok(())
    }
    go(dir, dir, excluded, f)
}

/// A fingerprint of every file under `dir` kept by `excluded`: content identity by metadata.
/// `None` if the tree cannot be read (so the caller does the real work).
pub fn tree_fingerprint(dir: &Path, excluded: &dyn Fn(&Path) -> bool) -> Option<String> {
    let mut key = KeyBuilder::default();
    walk(dir, excluded, &mut |rel, m| {
        key.str(&rel.to_string_lossy()).str(&file_identity(m));
        if m.file_type().is_symlink() {
            if let Ok(t) = std::fs::read_link(dir.join(rel)) {
                key.str(&t.to_string_lossy());
            }
        }
    })
    .ok()?;
    Some(key.finish())
}

/// The list of file names under `dir` (no metadata): what cargo's target discovery sees.
pub fn tree_listing(dir: &Path, excluded: &dyn Fn(&Path) -> bool, key: &mut KeyBuilder) -> bool {
    walk(dir, excluded, &mut |rel, _| {
        key.str(&rel.to_string_lossy());
    })
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_sees_edits_additions_and_exclusions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        std::fs::write(d.path().join("src/lib.rs"), "a").unwrap();
        let ex = |p: &Path| p == Path::new("target");
        let f0 = tree_fingerprint(d.path(), &ex).unwrap();
        assert_eq!(tree_fingerprint(d.path(), &ex).unwrap(), f0);
        std::fs::write(d.path().join("target/x"), "ignored").unwrap();
        assert_eq!(tree_fingerprint(d.path(), &ex).unwrap(), f0, "excluded paths do not count");
        std::fs::write(d.path().join("src/lib.rs"), "b").unwrap();
        let f1 = tree_fingerprint(d.path(), &ex).unwrap();
        assert_ne!(f1, f0, "an edit of the same size is seen (mtime/ctime)");
        std::fs::write(d.path().join("src/new.rs"), "").unwrap();
        assert_ne!(tree_fingerprint(d.path(), &ex).unwrap(), f1);
        assert!(tree_fingerprint(&d.path().join("missing"), &ex).is_none());
    }

    #[test]
    fn cache_round_trips_and_rejects_other_versions() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("c.json");
        let mut c = Cache { toolchain_key: "k".into(), ..Default::default() };
        c.save(&f);
        assert_eq!(Cache::load(&f).toolchain_key, "k");
        std::fs::write(&f, r#"{"version": 999}"#).unwrap();
        assert_eq!(Cache::load(&f).toolchain_key, "");
    }
}
