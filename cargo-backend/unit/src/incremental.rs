//! rustc's incremental state for one unit, kept outside the store across builds.
//!
//! cargo compiles workspace members incrementally (`-C incremental=`). A unit's derivation is
//! built afresh after every edit, so the state lives in a directory outside the store, one per
//! unit (stable across edits), that `cargo nix` offers the builder outside the derivation
//! ([`offered`], [`MARKER`]), so the derivation stays what it is without state, and
//! shareable. The directory holds:
//!
//! - `lock`: held (`flock`) while a build uses the directory, so two builds of the same unit
//!   (two edits built at once by two processes) take turns;
//! - `cwd/`: where rustc runs. rustc tracks its working directory: another one throws the
//!   whole state away. The store copy of the workspace has a new path after every edit, so
//!   rustc runs here instead, among links to the copy's top-level entries. Relative crate roots
//!   (`crates/member/src/lib.rs`), `file!()`, and `include_str!("../../README.md")` resolve as
//!   they do in the copy. Debug info names the workspace root there instead, as under cargo
//!   ([`remap_arg`]);
//! - `rustc/`: the `-C incremental=` directory;
//! - `out/`: rustc's `--out-dir`, emptied after each build into `$out` (rustc tracks its
//!   output directory too, and `$out` is a new path every build);
//! - `deps/`: links to the libraries the unit reads, at paths that stay the same when a
//!   dependency is rebuilt into a new store path ([`Session::link_deps`]).
//!
//! State only saves time: rustc's output equals a from-scratch compile's. A directory the build
//! cannot use (not writable by the user the build runs as) is replaced by a fresh one inside
//! the build directory, which compiles from scratch. When rustc fails with state and the
//! failure points at no source line (rustc panicked, or an object file of the state no longer
//! links), the builder removes the state and compiles again from scratch, once
//! ([`Session::reset`]).

use std::fs::{self, File};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// The name of the memfd through which `cargo nix` offers the units' directories: one line per
/// unit, `<output path>\t<directory>\t<workspace root>` (see [`crate::offer`]).
pub const MARKER: &str = "cargo-nix-incremental";

/// What `cargo nix` offers one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offered {
    /// The unit's directory, when it keeps state.
    pub dir: Option<PathBuf>,
    /// The directory cargo runs rustc in (the workspace root), which the unit's debug info
    /// names as its working directory in place of `cwd/` ([`remap_arg`]); none in a table
    /// without it.
    pub workspace_root: Option<PathBuf>,
}

/// What the table `text` offers the unit whose output is `out`. Paths must be absolute.
pub fn parse_table(text: &str, out: &Path) -> Option<Offered> {
    let out = out.to_str()?;
    text.lines().find_map(|l| {
        let mut fields = l.split('\t');
        if fields.next()? != out {
            return None;
        }
        let dir = match fields.next()? {
            "" => None,
            d if d.starts_with('/') => Some(PathBuf::from(d)),
            _ => return None,
        };
        let workspace_root = fields.next().filter(|r| r.starts_with('/')).map(PathBuf::from);
        Some(Offered { dir, workspace_root })
    })
}

/// What `cargo nix` offers the unit whose output is `out`: nothing unless it runs this build
/// itself (see [`crate::offer`]), in which case the unit is one cargo compiles incrementally.
pub fn offered(out: &Path) -> Option<Offered> {
    parse_table(&crate::offer::from_parent(MARKER)?, out)
}

/// The `--remap-path-prefix` that makes rustc record `workspace_root` where it runs in `cwd`,
/// so that debug info (and so backtraces and debuggers) name the workspace's files as under
/// cargo, which runs rustc in the workspace root. rustc tracks the working directory, so the
/// state needs `cwd`; the remapped name leaves the output as cargo's (the crate roots are
/// relative, so `file!()` and diagnostics do not change). When the user's own flags in `args`
/// remap the workspace root, as they would under cargo, that remapping is applied to it here:
/// rustc applies only the last matching remapping to a path, and this one comes last.
pub fn remap_arg(args: &[String], cwd: &Path, workspace_root: &Path) -> String {
    let mut user: Vec<(&str, &str)> = Vec::new();
    let mut args = args.iter();
    while let Some(a) = args.next() {
        let value = match a.strip_prefix("--remap-path-prefix") {
            Some("") => args.next().map(String::as_str),
            Some(v) => v.strip_prefix('='),
            None => None,
        };
        if let Some((from, to)) = value.and_then(|v| v.rsplit_once('=')) {
            user.push((from, to));
        }
    }
    // As rustc does: the last matching mapping, by whole path components.
    let target = user
        .iter()
        .rev()
        .find_map(|(from, to)| {
            workspace_root
                .strip_prefix(from)
                .ok()
                .map(|rest| if rest.as_os_str().is_empty() { PathBuf::from(to) } else { Path::new(to).join(rest) })
        })
        .unwrap_or_else(|| workspace_root.to_path_buf());
    format!("--remap-path-prefix={}={}", cwd.display(), target.display())
}

/// rustc's `-C incremental=` directory inside a unit's directory `dir`.
pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join("rustc")
}

/// rustc's `--out-dir` inside a unit's directory `dir`.
pub fn out_dir(dir: &Path) -> PathBuf {
    dir.join("out")
}

/// A unit's incremental directory, locked for this build.
#[derive(Debug)]
pub struct Session {
    root: PathBuf,
    /// The `flock`ed file, released when dropped.
    _lock: File,
    /// Why the planner's directory could not be used, if a fresh one replaced it.
    pub fallback: Option<String>,
    /// Whether rustc finds state of an earlier build (else a failure cannot be the state's).
    pub had_state: bool,
}

impl Session {
    /// Opens the unit's directory `dir`, or a fresh one under `scratch` when `dir` cannot be
    /// used, and lays out `cwd/` as links to the entries of `tree` (the working directory the
    /// spec names).
    pub fn open(dir: &Path, tree: &Path, scratch: &Path) -> io::Result<Session> {
        match Session::lock(dir).and_then(|s| s.link_tree(tree).map(|()| s)) {
            Ok(s) => Ok(s),
            // A directory this build cannot lock or lay out (not writable by its user, a
            // leftover of another user's): a fresh one, compiled from scratch.
            Err(e) => {
                let mut s = Session::lock(&scratch.join("incremental"))?;
                s.link_tree(tree)?;
                s.fallback = Some(format!("{}: {e}", dir.display()));
                Ok(s)
            }
        }
    }

    fn lock(dir: &Path) -> io::Result<Session> {
        fs::create_dir_all(dir)?;
        let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
        // SAFETY: flock on a descriptor `file` owns for the whole call; it blocks until no
        // other build of this unit holds the lock, which is released when `file` is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let had_state = fs::read_dir(state_dir(dir)).is_ok_and(|mut d| d.next().is_some());
        Ok(Session { root: dir.to_path_buf(), _lock: file, fallback: None, had_state })
    }

    /// Replaces `cwd/` with one link per top-level entry of `tree`.
    fn link_tree(&self, tree: &Path) -> io::Result<()> {
        let cwd = self.cwd();
        // Only links live there: removing it never follows them into the store.
        if fs::symlink_metadata(&cwd).is_ok() {
            fs::remove_dir_all(&cwd)?;
        }
        fs::create_dir(&cwd)?;
        for entry in fs::read_dir(tree)? {
            let entry = entry?;
            std::os::unix::fs::symlink(entry.path(), cwd.join(entry.file_name()))?;
        }
        Ok(())
    }

    /// Where rustc runs.
    pub fn cwd(&self) -> PathBuf {
        self.root.join("cwd")
    }

    /// rustc's `-C incremental=` directory.
    pub fn state(&self) -> PathBuf {
        state_dir(&self.root)
    }

    /// rustc's `--out-dir`. rustc tracks it with its state (another one throws the state
    /// away), and `$out` is a new path every build.
    pub fn out(&self) -> PathBuf {
        out_dir(&self.root)
    }

    /// Empties [`Session::out`] (what a failed or interrupted run left).
    pub fn clear_out(&self) -> io::Result<()> {
        let out = self.out();
        if fs::symlink_metadata(&out).is_ok() {
            fs::remove_dir_all(&out)?;
        }
        fs::create_dir(&out)
    }

    /// Moves what rustc wrote into [`Session::out`] to `to` (renamed when on the same file
    /// system, else copied). Dep-info files name their outputs: those names are made `to`'s.
    pub fn deliver(&self, to: &Path) -> io::Result<()> {
        let from = self.out();
        for entry in fs::read_dir(&from)? {
            let entry = entry?;
            let target = to.join(entry.file_name());
            if entry.path().extension().is_some_and(|x| x == "d") {
                let text = fs::read_to_string(entry.path())?;
                fs::write(&target, rename_outputs(&text, &from, to))?;
                fs::remove_file(entry.path())?;
            } else if fs::rename(entry.path(), &target).is_err() {
                fs::copy(entry.path(), &target)?;
                fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }

    /// `args` with the libraries the unit reads moved to stable paths: every file of every
    /// `-L dependency=` directory (and every `--extern` file) is linked (hard link, else a
    /// copy) into `deps/`, which replaces those directories and paths, as cargo's
    /// `target/debug/deps` does. rustc's state depends on where those libraries are, and a
    /// rebuilt dependency is at a new store path; with one path changed, the dependent's code
    /// is generated again from scratch.
    pub fn link_deps(&self, args: &[String]) -> io::Result<Vec<String>> {
        let deps = self.root.join("deps");
        // What deps/ is to hold, name -> file (the first of a name wins), and the arguments.
        let mut wanted: Vec<(std::ffi::OsString, PathBuf)> = Vec::new();
        let mut want = |file: &Path| -> PathBuf {
            let name = file.file_name().unwrap_or_default().to_owned();
            let to = deps.join(&name);
            if !wanted.iter().any(|(n, _)| *n == name) {
                wanted.push((name, file.to_owned()));
            }
            to
        };
        let mut out = Vec::with_capacity(args.len());
        let mut deps_arg = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match (a.as_str(), it.as_slice().first()) {
                ("-L", Some(v)) if v.starts_with("dependency=") => {
                    it.next();
                    for entry in fs::read_dir(&v["dependency=".len()..])? {
                        let path = entry?.path();
                        if path.is_file() {
                            want(&path);
                        }
                    }
                    if !deps_arg {
                        deps_arg = true;
                        out.extend(["-L".to_owned(), format!("dependency={}", deps.display())]);
                    }
                }
                ("--extern", Some(v)) if v.contains('=') => {
                    it.next();
                    let (name, path) = v.split_once('=').expect("checked");
                    let linked = want(Path::new(path));
                    out.extend(["--extern".to_owned(), format!("{name}={}", linked.display())]);
                }
                _ => out.push(a.clone()),
            }
        }
        sync_links(&deps, &wanted)?;
        Ok(out)
    }

    /// Removes rustc's state: the next compile starts from scratch.
    pub fn reset(&self) -> io::Result<()> {
        match fs::remove_dir_all(self.state()) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Makes `dir` hold exactly `wanted` (name, file): hard links (else copies) of those files. An
/// entry already linked to its file (same device and inode) is kept, so an edit rebuild
/// re-links only the libraries that changed; anything else there is removed.
fn sync_links(dir: &Path, wanted: &[(std::ffi::OsString, PathBuf)]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            fs::remove_file(dir)?;
            fs::create_dir(dir)?;
        }
        Err(_) => fs::create_dir(dir)?,
    }
    let same = |a: &fs::Metadata, b: &fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let mut kept = std::collections::HashSet::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let keep = match wanted.iter().find(|(n, _)| *n == name) {
            Some((_, file)) => match (entry.metadata(), fs::metadata(file)) {
                (Ok(have), Ok(want)) => have.is_file() && same(&have, &want),
                _ => false,
            },
            None => false,
        };
        if keep {
            kept.insert(name);
        } else if entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        } else {
            fs::remove_file(entry.path())?;
        }
    }
    for (name, file) in wanted.iter().filter(|(n, _)| !kept.contains(n)) {
        let to = dir.join(name);
        if fs::hard_link(file, &to).is_err() {
            fs::copy(file, &to)?;
        }
    }
    Ok(())
}

/// `text` (a Makefile-style dep-info file) with every path in directory `from` made one in
/// `to`.
fn rename_outputs(text: &str, from: &Path, to: &Path) -> String {
    let (from, to) = (format!("{}/", from.display()), format!("{}/", to.display()));
    text.replace(&from, &to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cargo-nix-unit-incr-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_table_gives_a_unit_its_directory_and_workspace_root() {
        let table =
            "/s/aaa-x\t/w/target/debug/.nix-incremental/x-1\t/w\n/s/bbb-y\t/w/target/debug/.nix-incremental/y-2\t/w\n";
        let dir = |d: &str, r: Option<&str>| {
            Some(Offered {
                dir: Some(d.into()).filter(|d: &PathBuf| !d.as_os_str().is_empty()),
                workspace_root: r.map(PathBuf::from),
            })
        };
        assert_eq!(parse_table(table, Path::new("/s/bbb-y")), dir("/w/target/debug/.nix-incremental/y-2", Some("/w")));
        assert_eq!(parse_table(table, Path::new("/s/ccc-z")), None);
        assert_eq!(parse_table("/s/aaa-x\trelative/dir\t/w\n", Path::new("/s/aaa-x")), None, "absolute only");
        assert_eq!(parse_table("/s/aaa-x\t/d\n", Path::new("/s/aaa-x")), dir("/d", None));
        assert_eq!(parse_table("/s/aaa-x\t/d\trel\n", Path::new("/s/aaa-x")), dir("/d", None));
        // No state (`CARGO_INCREMENTAL=0`, a release profile): the root only.
        assert_eq!(parse_table("/s/aaa-x\t\t/w\n", Path::new("/s/aaa-x")), dir("", Some("/w")));
        assert_eq!(parse_table("", Path::new("/s/aaa-x")), None);
    }

    #[test]
    fn remapping_names_the_workspace_root_as_the_user_remaps_it() {
        let cwd = Path::new("/w/target/debug/.nix-incremental/x-1/cwd");
        let root = Path::new("/home/me/w");
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let arg = |a: &[String]| remap_arg(a, cwd, root);
        assert_eq!(arg(&args(&["--edition=2021"])), format!("--remap-path-prefix={}=/home/me/w", cwd.display()));
        // The user's mapping of the root (both spellings), the last matching one, by components.
        let user = args(&[
            "--remap-path-prefix=/home/me=/build",
            "--remap-path-prefix",
            "/home/me/w=/src",
            "--remap-path-prefix=/home/m=/no",
        ]);
        assert_eq!(arg(&user), format!("--remap-path-prefix={}=/src", cwd.display()));
        assert_eq!(arg(&user[..1]), format!("--remap-path-prefix={}=/build/w", cwd.display()));
        assert_eq!(
            arg(&args(&["--remap-path-prefix=/a=b=/c"])),
            format!("--remap-path-prefix={}=/home/me/w", cwd.display())
        );
    }

    #[test]
    fn cwd_links_the_tree_and_follows_a_new_one() {
        let t = temp("links");
        for tree in ["tree1", "tree2"] {
            fs::create_dir_all(t.join(tree).join("member/src")).unwrap();
            fs::write(t.join(tree).join("README.md"), tree).unwrap();
        }
        let s = Session::open(&t.join("unit"), &t.join("tree1"), &t.join("scratch")).unwrap();
        assert_eq!(s.cwd(), t.join("unit/cwd"));
        assert!(s.fallback.is_none());
        assert_eq!(fs::read_to_string(s.cwd().join("member/src/../../README.md")).unwrap(), "tree1");
        fs::create_dir_all(s.state().join("x")).unwrap();
        drop(s);
        fs::remove_dir_all(t.join("tree1/member")).unwrap();
        let s = Session::open(&t.join("unit"), &t.join("tree2"), &t.join("scratch")).unwrap();
        assert_eq!(fs::read_to_string(s.cwd().join("README.md")).unwrap(), "tree2");
        assert!(s.cwd().join("member/src").is_dir(), "links point into the new tree");
        assert!(s.state().join("x").is_dir(), "the state is kept");
        s.reset().unwrap();
        assert!(!s.state().exists());
        s.reset().unwrap();
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn outputs_move_out_with_their_dep_info_renamed() {
        let t = temp("deliver");
        fs::create_dir_all(t.join("tree")).unwrap();
        let s = Session::open(&t.join("unit"), &t.join("tree"), &t.join("scratch")).unwrap();
        s.clear_out().unwrap();
        let out = s.out();
        fs::write(out.join("libx-1.rlib"), "rlib").unwrap();
        let dep = format!("{0}/libx-1.rlib: src/lib.rs\n\n{0}/x-1.d: src/lib.rs\n\nsrc/lib.rs:\n", out.display());
        fs::write(out.join("x-1.d"), dep).unwrap();
        let to = t.join("store-out/lib");
        fs::create_dir_all(&to).unwrap();
        s.deliver(&to).unwrap();
        assert_eq!(fs::read_to_string(to.join("libx-1.rlib")).unwrap(), "rlib");
        let d = fs::read_to_string(to.join("x-1.d")).unwrap();
        assert!(d.starts_with(&format!("{}/libx-1.rlib: src/lib.rs", to.display())), "{d}");
        assert!(!d.contains(out.to_str().unwrap()), "{d}");
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0, "nothing stays behind");
        fs::write(out.join("leftover.o"), "").unwrap();
        s.clear_out().unwrap();
        assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn libraries_are_read_from_stable_paths() {
        let t = temp("deps");
        fs::create_dir_all(t.join("tree")).unwrap();
        for (dir, file) in [("a/lib", "liba-1.rlib"), ("a/lib", "liba-1.rmeta"), ("b/lib", "libb-2.rlib")] {
            fs::create_dir_all(t.join(dir)).unwrap();
            fs::write(t.join(dir).join(file), file).unwrap();
        }
        fs::create_dir_all(t.join("m/lib")).unwrap();
        fs::write(t.join("m/lib/libm-3.so"), "so").unwrap();
        let s = Session::open(&t.join("unit"), &t.join("tree"), &t.join("scratch")).unwrap();
        let p = |rel: &str| t.join(rel).display().to_string();
        let args: Vec<String> = [
            "--crate-name".into(),
            "x".into(),
            "-L".into(),
            format!("dependency={}", p("a/lib")),
            "-L".into(),
            format!("dependency={}", p("b/lib")),
            "--extern".into(),
            format!("a={}", p("a/lib/liba-1.rlib")),
            "--extern".into(),
            format!("m={}", p("m/lib/libm-3.so")),
            "-L".into(),
            "native=/somewhere".into(),
        ]
        .into();
        let deps = t.join("unit/deps").display().to_string();
        let got = s.link_deps(&args).unwrap();
        let want: Vec<String> = [
            "--crate-name".into(),
            "x".into(),
            "-L".into(),
            format!("dependency={deps}"),
            "--extern".into(),
            format!("a={deps}/liba-1.rlib"),
            "--extern".into(),
            format!("m={deps}/libm-3.so"),
            "-L".into(),
            "native=/somewhere".into(),
        ]
        .into();
        assert_eq!(got, want);
        for f in ["liba-1.rlib", "liba-1.rmeta", "libb-2.rlib", "libm-3.so"] {
            assert!(t.join("unit/deps").join(f).is_file(), "{f}");
        }
        // A rebuilt dependency (a new file of the same name): its link is replaced, the others
        // are kept as they are.
        let ino = |f: &str| std::os::unix::fs::MetadataExt::ino(&fs::metadata(t.join("unit/deps").join(f)).unwrap());
        let before = (ino("liba-1.rlib"), ino("libb-2.rlib"));
        fs::remove_file(t.join("b/lib/libb-2.rlib")).unwrap();
        fs::write(t.join("b/lib/libb-2.rlib"), "rebuilt").unwrap();
        fs::write(t.join("unit/deps/stray"), "left by an older build").unwrap();
        assert_eq!(s.link_deps(&args).unwrap(), want);
        assert_eq!(ino("liba-1.rlib"), before.0, "kept");
        assert_ne!(ino("libb-2.rlib"), before.1, "linked again");
        assert_eq!(fs::read_to_string(t.join("unit/deps/libb-2.rlib")).unwrap(), "rebuilt");
        assert!(!t.join("unit/deps/stray").exists());
        // A library no longer read is gone.
        s.link_deps(&args[..2]).unwrap();
        assert_eq!(fs::read_dir(t.join("unit/deps")).unwrap().count(), 0);
        fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn an_unusable_directory_falls_back_to_scratch() {
        let t = temp("fallback");
        fs::create_dir_all(t.join("tree")).unwrap();
        // A file where the directory should be: creating it fails, whoever runs the test.
        fs::write(t.join("unit"), "not a directory").unwrap();
        let s = Session::open(&t.join("unit"), &t.join("tree"), &t.join("scratch")).unwrap();
        assert_eq!(s.cwd(), t.join("scratch/incremental/cwd"));
        assert!(s.fallback.as_deref().unwrap().contains("unit"), "{:?}", s.fallback);
        fs::remove_dir_all(&t).unwrap();
    }
}
