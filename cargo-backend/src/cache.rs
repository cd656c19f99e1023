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
//!
//! **Racy timestamps.** File systems stamp changes with a clock that ticks coarsely (jiffies
//! on Linux before 6.13, 2 s on FAT), so a same-size, in-place edit in the tick of the check
//! leaves every stamp as it was. As git does for its index, a key made at time `R` hashes the
//! *content* of every file stamped later than `R - granularity` ([`Racy`]), and carries `R` so
//! that the next run recomputes it under the same rule ([`key_holds`]). A key made after the
//! work it describes (cargo's graph, the toolchain probe) is kept only if no file it covers
//! was stamped within a tick of the work starting ([`key_after`]).

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Toolchains added to a store: "store URI\0sysroot" → (fingerprint, store path).
    pub toolchain_imports: BTreeMap<String, (String, String)>,
    /// The plan stage's record.
    pub plan: crate::plan::Record,
    /// What the last successful build leaves for a no-op answered without Nix ([`crate::noop`]).
    #[serde(default)]
    pub noop: Option<crate::noop::Record>,
    /// The bytes this cache was loaded from, so that [`Cache::save`] writes nothing when a
    /// run (a no-op build, typically) left every record as it found it.
    #[serde(skip)]
    loaded: Vec<u8>,
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
            .and_then(|b| serde_json::from_slice::<Cache>(&b).ok().map(|c| Cache { loaded: b, ..c }))
            .filter(|c| c.version == CACHE_VERSION)
            .unwrap_or_default()
    }

    /// Saves the cache atomically, unless it is what was loaded (then the file is left
    /// untouched); failures are ignored (a cache is optional).
    pub fn save(&mut self, file: &Path) {
        self.version = CACHE_VERSION;
        let Ok(bytes) = serde_json::to_vec(self) else { return };
        if bytes == self.loaded {
            return;
        }
        let Some(dir) = file.parent() else { return };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
        if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, file).is_ok() {
            self.loaded = bytes;
        }
    }
}

/// How coarse file timestamps may be: a file whose mtime or ctime is not older than this
/// before the moment a key was made is "racy" (git's term): an edit in the same clock tick
/// could leave size, mtime, ctime and inode as they were, so its content is hashed instead of
/// trusted. Linux kernels before 6.13 stamp files with the jiffy clock (4–10 ms ticks); FAT
/// has 2 s; network file systems add their server's clock. 2 s covers them; the cost is that
/// files edited in the 2 s before a build are read once more on the next no-op build.
pub const TIMESTAMP_GRANULARITY: Duration = Duration::from_secs(2);

/// Nanoseconds since the Unix epoch (negative before it).
pub type Nanos = i128;

/// The wall clock now, in the file system's units.
pub fn now() -> Nanos {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as Nanos,
        Err(e) => -(e.duration().as_nanos() as Nanos),
    }
}

/// The moment a key was made and the timestamp granularity it assumed: which file stamps
/// cannot be trusted to change on the next edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Racy {
    /// When the key was made (taken before any file was looked at).
    pub reference: Nanos,
    /// [`TIMESTAMP_GRANULARITY`], or a simulated one in tests.
    pub granularity: Nanos,
}

impl Racy {
    /// A check starting now, with [`TIMESTAMP_GRANULARITY`].
    pub fn now() -> Racy {
        Racy { reference: now(), granularity: TIMESTAMP_GRANULARITY.as_nanos() as Nanos }
    }

    /// Whether a file stamped (`mtime`, `ctime`) may still change without its stamps changing.
    ///
    /// A file system stamps a change made at time `t` with some `s` where `t - granularity < s
    /// <= t`. If both stamps are at most `reference - granularity`, any change after
    /// `reference` gets a later ctime (which users cannot set), so the stamps are enough.
    /// Otherwise a change in the same tick may keep them: the file is racy.
    pub fn is_racy(&self, mtime: Nanos, ctime: Nanos) -> bool {
        mtime.max(ctime) > self.reference - self.granularity
    }

    /// The prefix of a key made under this check, from which [`Racy::of_key`] reads it back.
    fn prefix(&self) -> String {
        format!("r{}g{}:", self.reference, self.granularity)
    }

    /// The check a key made by [`KeyBuilder::checked_at`] was made under.
    pub fn of_key(key: &str) -> Option<Racy> {
        let (prefix, _) = key.split_once(':')?;
        let (r, g) = prefix.strip_prefix('r')?.split_once('g')?;
        Some(Racy { reference: r.parse().ok()?, granularity: g.parse().ok()? })
    }
}

/// What the stat of a file says about its content: type and mode, size, mtime, ctime, inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// `st_mode` (file type and permission bits).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: Nanos,
    /// Status change time.
    pub ctime: Nanos,
    /// Inode number.
    pub ino: u64,
}

impl FileStamp {
    /// The stamp of `m`.
    pub fn of(m: &std::fs::Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| s as Nanos * 1_000_000_000 + n as Nanos;
        FileStamp {
            mode: m.mode(),
            size: m.len(),
            mtime: ns(m.mtime(), m.mtime_nsec()),
            ctime: ns(m.ctime(), m.ctime_nsec()),
            ino: m.ino(),
        }
    }

    /// The stamp a file system with `granularity`-sized clock ticks would have given (both
    /// times rounded down to a tick): how tests simulate a coarse clock.
    pub fn coarsened(self, granularity: Nanos) -> FileStamp {
        let down = |t: Nanos| t - t.rem_euclid(granularity);
        FileStamp { mtime: down(self.mtime), ctime: down(self.ctime), ..self }
    }

    fn is_regular(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// What a key records of one file: its stamp, and for a racy regular file under `racy` also a
/// hash of its content (`content` is called only then; `None` when it cannot be read, which
/// makes the entry differ from any readable one).
pub fn entry_key(stamp: &FileStamp, racy: Option<Racy>, content: impl FnOnce() -> Option<String>) -> String {
    let s = stamp;
    let mut entry = format!("{}:{}:{}:{}:{}", s.size, s.mtime, s.ctime, s.ino, s.mode);
    if racy.is_some_and(|r| r.is_racy(s.mtime, s.ctime)) && s.is_regular() {
        entry.push_str(":racy:");
        entry.push_str(&content().unwrap_or_else(|| "unreadable".into()));
    }
    entry
}

/// The SHA-256 of a file's content.
fn content_hash(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).ok()?;
    Some(hex(&h.finalize()))
}

/// Accumulates a key.
///
/// A key that looks at files is made under a [`Racy`] check ([`KeyBuilder::checked_at`]),
/// which it carries in its text: the next run recomputes it under the same check
/// ([`key_holds`]), so a file that was racy then is hashed by content again, and one edited
/// since shows a new stamp.
#[derive(Default)]
pub struct KeyBuilder {
    sha: Sha256,
    racy: Option<Racy>,
    saw_racy: bool,
    /// Simulated clock tick: stamps are rounded down to it before use (tests only).
    coarse_clock: Option<Nanos>,
}

impl std::fmt::Debug for KeyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyBuilder").field("racy", &self.racy).finish_non_exhaustive()
    }
}

impl KeyBuilder {
    /// A key over files, made under `racy`.
    pub fn checked_at(racy: Racy) -> KeyBuilder {
        KeyBuilder { racy: Some(racy), ..Default::default() }
    }

    /// Rounds every stamp down to `tick` first, as a file system with a coarse clock would
    /// have stamped it (for tests).
    pub fn with_coarse_clock(mut self, tick: Nanos) -> KeyBuilder {
        self.coarse_clock = Some(tick);
        self
    }

    /// Adds a string.
    pub fn str(&mut self, s: &str) -> &mut Self {
        self.sha.update((s.len() as u64).to_le_bytes());
        self.sha.update(s.as_bytes());
        self
    }

    /// Adds one file found at `path` with metadata `m` (see [`entry_key`]).
    fn file(&mut self, path: &Path, m: &std::fs::Metadata) -> &mut Self {
        let mut stamp = FileStamp::of(m);
        if let Some(tick) = self.coarse_clock {
            stamp = stamp.coarsened(tick);
        }
        if self.racy.is_some_and(|r| r.is_racy(stamp.mtime, stamp.ctime)) {
            self.saw_racy = true;
        }
        let entry = entry_key(&stamp, self.racy, || content_hash(path));
        self.str(&entry)
    }

    /// Adds a file's identity (following symlinks): its stamp, its content when racy, or
    /// "missing".
    pub fn stat(&mut self, path: &Path) -> &mut Self {
        self.str(&path.to_string_lossy());
        match std::fs::metadata(path) {
            Ok(m) => self.file(path, &m),
            Err(_) => self.str("missing"),
        }
    }

    /// Adds an environment variable's value (or its absence).
    pub fn env(&mut self, name: &str) -> &mut Self {
        let v = std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()).unwrap_or_else(|| "\0unset".into());
        self.str(name).str(&v)
    }

    /// Whether a file added so far was racy.
    pub fn saw_racy(&self) -> bool {
        self.saw_racy
    }

    /// The key (prefixed with its check, when made under one).
    pub fn finish(&self) -> String {
        let hash = hex(&self.sha.clone().finalize());
        match &self.racy {
            Some(r) => format!("{}{hash}", r.prefix()),
            None => hash,
        }
    }
}

/// Whether `cached`, a key that `compute` made in an earlier run, still holds: `compute` made
/// again under the check `cached` was made under gives the same key. `compute` returns false
/// when something cannot be read (no hit then).
pub fn key_holds(cached: &str, compute: impl FnOnce(&mut KeyBuilder) -> bool) -> bool {
    let Some(racy) = Racy::of_key(cached) else { return false };
    let mut k = KeyBuilder::checked_at(racy);
    compute(&mut k) && k.finish() == cached
}

/// [`key_holds`], and when the key held only by hashing files that were racy when it was
/// made, remakes it now, so that the next check trusts their stamps again (git refreshes its
/// index the same way). Without this a file that was racy once (a builder installed just
/// before a build, a source saved just before one) is read and hashed by every later check.
///
/// The new key is made before the old one is checked a second time: if a file changes in
/// between, the second check fails (a miss), so the new key never describes a later state
/// than the one the cached result was verified against.
pub fn key_holds_refreshing(cached: &mut String, compute: impl Fn(&mut KeyBuilder) -> bool) -> bool {
    let Some(racy) = Racy::of_key(cached) else { return false };
    let mut k = KeyBuilder::checked_at(racy);
    if !(compute(&mut k) && k.finish() == *cached) {
        return false;
    }
    if !k.saw_racy() {
        return true;
    }
    match key_before(&compute) {
        Some(fresh) if key_holds(cached, &compute) => {
            *cached = fresh;
            true
        }
        Some(_) => false,
        None => true,
    }
}

/// A key made now, before the work it describes reads the files: racy files are hashed by
/// content, so an edit even in the same tick changes the key the next run computes.
pub fn key_before(compute: impl FnOnce(&mut KeyBuilder) -> bool) -> Option<String> {
    let mut k = KeyBuilder::checked_at(Racy::now());
    compute(&mut k).then(|| k.finish())
}

/// A key made after the work it describes (which began at `started`): `None` (keep nothing)
/// when a file it covers may have changed since the work began, as the work may have read
/// the file before that change.
pub fn key_after(started: Racy, compute: impl FnOnce(&mut KeyBuilder) -> bool) -> Option<String> {
    let mut k = KeyBuilder::checked_at(started);
    (compute(&mut k) && !k.saw_racy()).then(|| k.finish())
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

/// Adds a fingerprint of every file under `dir` kept by `excluded` to `key`: relative path,
/// stamp (content when racy), symlink target. False if the tree cannot be read (so the caller
/// does the real work).
pub fn tree_fingerprint(dir: &Path, excluded: &dyn Fn(&Path) -> bool, key: &mut KeyBuilder) -> bool {
    walk(dir, excluded, &mut |rel, m| {
        key.str(&rel.to_string_lossy()).file(&dir.join(rel), m);
        if m.file_type().is_symlink() {
            if let Ok(t) = std::fs::read_link(dir.join(rel)) {
                key.str(&t.to_string_lossy());
            }
        }
    })
    .is_ok()
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

    const SECOND: Nanos = 1_000_000_000;

    fn tree_key(dir: &Path, ex: &dyn Fn(&Path) -> bool, k: &mut KeyBuilder) -> bool {
        tree_fingerprint(dir, ex, k)
    }

    #[test]
    fn save_writes_only_what_changed() {
        use std::os::unix::fs::MetadataExt as _;
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("plans/c.json");
        let mut c = Cache::load(&file);
        c.toolchain_key = "k1".into();
        c.save(&file);
        let ino = std::fs::metadata(&file).unwrap().ino();
        let mut again = Cache::load(&file);
        assert_eq!(again.toolchain_key, "k1");
        again.save(&file);
        // Saved atomically by rename: a rewrite would be a new inode.
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino, "an unchanged cache is not rewritten");
        again.toolchain_key = "k2".into();
        again.save(&file);
        assert_ne!(std::fs::metadata(&file).unwrap().ino(), ino, "a changed one is");
        assert_eq!(Cache::load(&file).toolchain_key, "k2");
        let ino = std::fs::metadata(&file).unwrap().ino();
        again.save(&file);
        assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino, "nor is it after its own save");
    }

    #[test]
    fn fingerprint_sees_edits_additions_and_exclusions() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("src")).unwrap();
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        std::fs::write(d.path().join("src/lib.rs"), "a").unwrap();
        let ex = |p: &Path| p == Path::new("target");
        let f0 = key_before(|k| tree_key(d.path(), &ex, k)).unwrap();
        assert!(key_holds(&f0, |k| tree_key(d.path(), &ex, k)), "nothing changed");
        std::fs::write(d.path().join("target/x"), "ignored").unwrap();
        assert!(key_holds(&f0, |k| tree_key(d.path(), &ex, k)), "excluded paths do not count");
        // Same size, same inode, and very likely the same clock tick as the write before f0
        // on a kernel with coarse timestamps: seen because lib.rs was racy when f0 was made.
        std::fs::write(d.path().join("src/lib.rs"), "b").unwrap();
        assert!(!key_holds(&f0, |k| tree_key(d.path(), &ex, k)), "a same-size edit is seen");
        let f1 = key_before(|k| tree_key(d.path(), &ex, k)).unwrap();
        std::fs::write(d.path().join("src/new.rs"), "").unwrap();
        assert!(!key_holds(&f1, |k| tree_key(d.path(), &ex, k)), "an added file is seen");
        assert!(key_before(|k| tree_key(&d.path().join("missing"), &ex, k)).is_none());
        assert!(!key_holds("not a key", |_| true), "a key without its check never holds");
    }

    #[test]
    fn same_tick_edit_on_a_coarse_clock_is_seen_through_content() {
        // A file system whose clock ticks once an hour (simulated by rounding every stamp
        // down): the in-place, same-size edit below keeps size, inode, mtime and ctime.
        let tick = 3600 * SECOND;
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("lib.rs"), "fn a() {}").unwrap();
        let ex = |_: &Path| false;
        let racy = Racy { reference: now(), granularity: tick };
        let mut k = KeyBuilder::checked_at(racy).with_coarse_clock(tick);
        assert!(tree_key(d.path(), &ex, &mut k));
        assert!(k.saw_racy(), "a file stamped in the tick of the check is racy");
        let k0 = k.finish();
        let again = |expected_same: bool| {
            let mut k = KeyBuilder::checked_at(racy).with_coarse_clock(tick);
            assert!(tree_key(d.path(), &ex, &mut k));
            assert_eq!(k.finish() == k0, expected_same);
        };
        again(true);
        std::fs::write(d.path().join("lib.rs"), "fn b() {}").unwrap();
        again(false);
    }

    #[test]
    fn racy_entries_hash_content_and_settled_ones_do_not() {
        // A clock with 10 ms ticks. lib.rs is written at 1000.003 s (stamped 1000.000), the
        // key made at 1000.005, and lib.rs rewritten in place at 1000.007 (stamped 1000.000
        // again): the stamps cannot tell the two apart.
        let tick = SECOND / 100;
        let at =
            |t: Nanos| FileStamp { mode: libc::S_IFREG | 0o644, size: 9, mtime: t, ctime: t, ino: 7 }.coarsened(tick);
        let before = at(1000 * SECOND + 3_000_000);
        let after = at(1000 * SECOND + 7_000_000);
        assert_eq!(before, after, "the simulated clock hides the edit from the stamps");
        let racy = Racy { reference: 1000 * SECOND + 5_000_000, granularity: tick };
        assert_ne!(
            entry_key(&before, Some(racy), || Some("hash of a".into())),
            entry_key(&after, Some(racy), || Some("hash of b".into())),
            "the racy entry carries the content"
        );
        assert_eq!(
            entry_key(&before, None, || Some("hash of a".into())),
            entry_key(&after, None, || Some("hash of b".into())),
            "stamps alone miss the edit: the hole racy entries close"
        );
        // A file stamped more than a tick before the check is not read.
        let settled = at(999 * SECOND);
        let unread = || -> Option<String> { panic!("a settled file's content is not read") };
        assert_eq!(entry_key(&settled, Some(racy), unread), entry_key(&settled, None, unread));
        // Unreadable content differs from any content.
        assert_ne!(entry_key(&before, Some(racy), || None), entry_key(&before, Some(racy), || Some(String::new())));
    }

    #[test]
    fn racy_rule_boundaries_and_key_prefix() {
        let r = Racy { reference: 10 * SECOND, granularity: 2 * SECOND };
        assert!(!r.is_racy(8 * SECOND, 8 * SECOND), "exactly one granularity old: settled");
        assert!(r.is_racy(8 * SECOND + 1, 0), "a recent mtime is racy");
        assert!(r.is_racy(0, 8 * SECOND + 1), "a recent ctime is racy");
        assert!(r.is_racy(20 * SECOND, 0), "a stamp in the future is racy");
        let key = KeyBuilder::checked_at(r).finish();
        assert_eq!(Racy::of_key(&key), Some(r));
        assert_eq!(Racy::of_key(&KeyBuilder::default().finish()), None);
        let negative = Racy { reference: -5, granularity: 3 };
        assert_eq!(Racy::of_key(&KeyBuilder::checked_at(negative).finish()), Some(negative));
    }

    #[test]
    fn a_key_that_held_by_hashing_racy_files_is_remade() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("builder");
        std::fs::write(&f, "a").unwrap();
        let stamp = FileStamp::of(&std::fs::metadata(&f).unwrap());
        // Let the file settle (a wait, not a timing assertion).
        std::thread::sleep(TIMESTAMP_GRANULARITY + Duration::from_millis(100));
        let stat = |k: &mut KeyBuilder| {
            k.stat(&f);
            true
        };
        // A key made while the file was racy, as just after it was written: it holds by content.
        let then = Racy {
            reference: stamp.mtime.max(stamp.ctime) + 1,
            granularity: TIMESTAMP_GRANULARITY.as_nanos() as Nanos,
        };
        let mut k = KeyBuilder::checked_at(then);
        stat(&mut k);
        assert!(k.saw_racy());
        let mut key = k.finish();
        let old = key.clone();
        assert!(key_holds_refreshing(&mut key, stat));
        assert_ne!(key, old, "remade");
        let mut k = KeyBuilder::checked_at(Racy::of_key(&key).unwrap());
        stat(&mut k);
        assert!(!k.saw_racy(), "the settled file is now trusted by its stamp, not read");
        let settled = key.clone();
        assert!(key_holds_refreshing(&mut key, stat));
        assert_eq!(key, settled, "a key without racy files is kept as it is");
        std::fs::write(&f, "b").unwrap();
        assert!(!key_holds_refreshing(&mut key, stat), "an edit is still seen");
        let mut old = old;
        assert!(!key_holds_refreshing(&mut old, stat), "by the old key too");
    }

    #[test]
    fn key_after_refuses_files_changed_since_the_work_began() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("Cargo.toml");
        std::fs::write(&f, "[package]").unwrap();
        // The work began an hour ago: the file was written while it ran.
        let began_before = Racy { reference: now() - 3600 * SECOND, granularity: SECOND };
        assert_eq!(
            key_after(began_before, |k| {
                k.stat(&f);
                true
            }),
            None
        );
        // The work began (as if) an hour from now: the file had settled before it.
        let began_after = Racy { reference: now() + 3600 * SECOND, granularity: SECOND };
        let stat = |k: &mut KeyBuilder| {
            k.stat(&f);
            true
        };
        let key = key_after(began_after, stat).unwrap();
        assert!(key_holds(&key, stat));
        assert_eq!(key_after(began_after, |_| false), None, "an unreadable input keeps nothing");
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
