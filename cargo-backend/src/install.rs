//! Putting artifacts where cargo would, each kept alive by a GC root.
//!
//! `lib<name>.rlib` (libs) become symlinks into the unit's output in the store. Executables
//! (`target/<profile>/<name>` bins, `examples/<name>`, `deps/<name>-<hash>` tests and benches,
//! `examples/<name>-<hash>` examples built as tests)
//! are materialized instead ([`materialize`]: a copy), because a program
//! finds itself through `/proc/self/exe`, which resolves symlinks: a test looking for
//! `current_exe()/../../<bin>` must land in `target/`, as under cargo, not in the store.
//! Every unit output of the build (not only the linked ones: the libraries a rebuild needs too,
//! as cargo keeps `target/<profile>/deps`) gets `target/<profile>/.nix-roots/<output name>`,
//! registered as an indirect GC root: `nix-collect-garbage` keeps the artifacts while
//! `target/` exists, and may reclaim them once it is removed. Every link is made under a
//! temporary name and renamed into place, so `target/` never holds a half-made artifact.

use std::path::{Path, PathBuf};

use nix_rs::{Store, StorePath};

use crate::Error;
use crate::plan::{ArtifactKind, PlannedUnit};

/// The directory cargo uses for a profile: `dev`/`test` → `debug`, `release`/`bench` →
/// `release`, others by name.
pub fn profile_dir(profile: &str) -> &str {
    match profile {
        "dev" | "test" => "debug",
        "bench" => "release",
        other => other,
    }
}

/// Points `link` at `target` (under a temporary name, renamed into place); returns whether it
/// had to (false when the link already pointed there).
fn link_atomically(target: &Path, link: &Path) -> Result<bool, Error> {
    if std::fs::read_link(link).is_ok_and(|t| t == target) {
        return Ok(false);
    }
    let dir = link.parent().expect("links are inside target/");
    std::fs::create_dir_all(dir).map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}", link.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::Io(format!("linking {}", tmp.display()), e))?;
    std::fs::rename(&tmp, link).map_err(|e| Error::Io(format!("installing {}", link.display()), e))?;
    Ok(true)
}

/// How an executable was put in place by [`materialize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialized {
    /// It was already there (its marker names the same store file).
    Unchanged,
    /// A copy of the store file.
    Copy,
}

/// The marker recording which store file `dest` was made from: `<dir>/.nix-links/<file name>`,
/// a symlink to the store file, so a no-op rebuild compares one `readlink` instead of the
/// file's bytes.
fn marker_of(dest: &Path) -> PathBuf {
    let dir = dest.parent().expect("artifacts are inside target/");
    dir.join(".nix-links").join(dest.file_name().unwrap_or_default())
}

/// The store file `dest` was last materialized from (its marker), if any.
pub fn materialized_from(dest: &Path) -> Option<PathBuf> {
    std::fs::read_link(marker_of(dest)).ok()
}

/// Puts a real file (not a symlink) at `dest` with `src`'s bytes: a copy of its own, writable
/// by its owner as cargo's are (`std::fs::copy`, i.e. `copy_file_range`, which shares the
/// blocks on file systems with reflinks). Not a hard link: the store file would be the same
/// inode, and a program that writes to its artifact in place (`strip`, which keeps hard
/// links; `cp` over it) would change the store, as root, or be refused, as its owner. Made
/// under a temporary name and renamed into place, so `dest` is never half-written.
pub fn materialize(src: &Path, dest: &Path) -> Result<Materialized, Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let marker = marker_of(dest);
    let is_file = std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_file());
    if is_file && std::fs::read_link(&marker).is_ok_and(|t| t == src) {
        return Ok(Materialized::Unchanged);
    }
    let dir = dest.parent().expect("artifacts are inside target/");
    let io = |what: &str, p: &Path, e| Error::Io(format!("{what} {}", p.display()), e);
    std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    let tmp =
        dir.join(format!(".{}.tmp-{}", dest.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::fs::copy(src, &tmp).map_err(|e| io(&format!("copying {} to", src.display()), &tmp, e))?;
    // The store's 0555 (its mode, copied) plus the owner's write bit: 0755, as rustc leaves it.
    let mode = std::fs::metadata(&tmp).map_err(|e| io("reading", &tmp, e))?.permissions().mode() | 0o200;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).map_err(|e| io("making", &tmp, e))?;
    replace(&tmp, dest).map_err(|e| io("installing", dest, e))?;
    link_atomically(src, &marker)?;
    Ok(Materialized::Copy)
}

/// Renames `tmp` to `dest`, atomically replacing what is there, without the cost a plain
/// `rename` over an existing file has on ext4: with the default `auto_da_alloc`, replacing a
/// file by rename starts writing back the new file's dirty pages there and then (a 36 MB debug
/// binary just linked: 3–30 ms, the rename blocked on it). Swapping the two names
/// (`RENAME_EXCHANGE`) and unlinking the old file is as atomic and is not a replace; a file
/// system without it, or no `dest` yet, gets the plain rename.
fn replace(tmp: &Path, dest: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
    let (from, to) = (c(tmp)?, c(dest)?);
    // SAFETY: two NUL-terminated paths that outlive the call; renameat2 reads them only.
    let rc =
        unsafe { libc::renameat2(libc::AT_FDCWD, from.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::RENAME_EXCHANGE) };
    if rc == 0 {
        // `tmp` now names the old file.
        return std::fs::remove_file(tmp);
    }
    std::fs::rename(tmp, dest)
}

/// Whether an artifact of this kind is an executable that must be a real file in `target/`.
pub fn is_executable(kind: &ArtifactKind) -> bool {
    matches!(kind, ArtifactKind::Bin | ArtifactKind::Test | ArtifactKind::Bench | ArtifactKind::Example)
}

/// An installed artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The unit (index in the unit graph) it comes from.
    pub unit: usize,
    /// Its kind.
    pub kind: ArtifactKind,
    /// Where it is in the target directory.
    pub path: PathBuf,
    /// The store file it links to.
    pub store_path: PathBuf,
}

/// The artifacts of `unit` that are installed: (artifact, where under `profile_dir`). Only root
/// units are installed (see [`crate::build`]).
pub fn install_paths<'a>(
    unit: &'a PlannedUnit,
    profile_dir: &'a Path,
) -> impl Iterator<Item = (&'a crate::plan::Artifact, PathBuf)> + 'a {
    unit.artifacts
        .iter()
        .filter(|a| a.kind != ArtifactKind::Internal && !a.install_as.is_empty())
        .map(move |a| (a, profile_dir.join(&a.install_as)))
}

/// Creates the target directory if needed, tagged as cargo tags it (`CACHEDIR.TAG`, so backup
/// tools skip it, and so a workspace copy leaves it out: see `plan::tree_exclusions`).
pub fn prepare_target_dir(target_dir: &Path) -> Result<(), Error> {
    const TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
                       # This file is a cache directory tag created by cargo.\n\
                       # For information about cache directory tags see https://bford.info/cachedir/\n";
    let io = |what: &str, e: std::io::Error| Error::Io(format!("{what} {}", target_dir.display()), e);
    std::fs::create_dir_all(target_dir).map_err(|e| io("creating", e))?;
    let tag = target_dir.join("CACHEDIR.TAG");
    if !tag.exists() {
        // Written beside and renamed: a reader never sees half a tag.
        let tmp = target_dir.join(format!(".CACHEDIR.TAG.{}", std::process::id()));
        std::fs::write(&tmp, TAG).map_err(|e| io("tagging", e))?;
        std::fs::rename(&tmp, &tag).map_err(|e| io("tagging", e))?;
    }
    Ok(())
}

/// Creates what cargo's layout always has in a profile directory (`deps/`, `examples/`,
/// `build/`, `incremental/`), empty when nothing goes there: tools look for them.
pub fn prepare_profile_dir(profile_dir: &Path) -> Result<(), Error> {
    for d in ["deps", "examples", "build", "incremental"] {
        let dir = profile_dir.join(d);
        std::fs::create_dir_all(&dir).map_err(|e| Error::Io(format!("creating {}", dir.display()), e))?;
    }
    Ok(())
}

/// Installs the artifacts of `unit` under `profile_dir` and roots its output. A failure to
/// add the GC root (e.g. a remote store) is returned as a warning, not an error.
pub fn install(
    store: &Store,
    unit: &PlannedUnit,
    profile_dir: &Path,
) -> Result<(Vec<Installed>, Option<String>), Error> {
    let mut installed = Vec::new();
    for (a, link) in install_paths(unit, profile_dir) {
        let real =
            store.real_path(&unit.out).map_err(|e| Error::Nix(format!("locating {}", unit.out), e))?.join(&a.file);
        if is_executable(&a.kind) {
            materialize(&real, &link)?;
        } else {
            link_atomically(&real, &link)?;
        }
        installed.push(Installed { unit: unit.index, kind: a.kind.clone(), path: link, store_path: real });
    }
    let warning = add_root(store, &unit.out, profile_dir)?;
    Ok((installed, warning))
}

/// Roots `out` with `profile_dir/.nix-roots/<out name>`, registered as an indirect GC root
/// unless the store's state directory shows it already is (so a root whose registration once
/// failed, e.g. by an older cargo nix as a normal user, is registered by the next build). A
/// failure to register (e.g. a remote store) is returned as a warning, not an error.
pub fn add_root(store: &Store, out: &StorePath, profile_dir: &Path) -> Result<Option<String>, Error> {
    let root = profile_dir.join(".nix-roots").join(out.base_name());
    link_atomically(out.as_path(), &root)?;
    Ok(store.ensure_indirect_root(&root).err().map(|e| format!("could not register GC root {}: {e}", root.display())))
}

/// Lists the GC-root links a target directory holds (`<target>/*/.nix-roots/*`), with the
/// store paths they point to.
pub fn list_roots(target_dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut roots = Vec::new();
    let Ok(profiles) = std::fs::read_dir(target_dir) else { return roots };
    for p in profiles.flatten() {
        let Ok(entries) = std::fs::read_dir(p.path().join(".nix-roots")) else { continue };
        for e in entries.flatten() {
            if let Ok(to) = std::fs::read_link(e.path()) {
                roots.push((e.path(), to));
            }
        }
    }
    roots.sort();
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn materialize_replaces_an_executable_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let (old, new, dest) = (d.path().join("old"), d.path().join("new"), d.path().join("out/bin"));
        std::fs::write(&old, "old program").unwrap();
        std::fs::write(&new, "new program").unwrap();
        // No `dest` yet: the plain rename.
        assert_eq!(materialize(&old, &dest).unwrap(), Materialized::Copy);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "old program");
        assert_eq!(materialize(&old, &dest).unwrap(), Materialized::Unchanged);
        // Over the old one: swapped, and the old name is gone.
        assert_eq!(materialize(&new, &dest).unwrap(), Materialized::Copy);
        assert_eq!(std::fs::read_to_string(&dest).unwrap(), "new program");
        assert_eq!(materialized_from(&dest).unwrap(), new);
        let left: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.iter().filter(|n| n.contains("tmp")).count(), 0, "{left:?}");
        // The store file the old artifact was made from is untouched.
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "old program");
    }

    #[test]
    fn an_executable_is_a_writable_file_of_its_own_not_the_store_file() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        let d = tempfile::tempdir().unwrap();
        let (store_file, dest) = (d.path().join("store-file"), d.path().join("out/bin"));
        std::fs::write(&store_file, "program").unwrap();
        std::fs::set_permissions(&store_file, std::fs::Permissions::from_mode(0o555)).unwrap();
        materialize(&store_file, &dest).unwrap();
        let (s, t) = (std::fs::metadata(&store_file).unwrap(), std::fs::metadata(&dest).unwrap());
        assert_ne!(s.ino(), t.ino());
        assert_eq!(t.permissions().mode() & 0o777, 0o755);
        // What `strip` or `cp` over it does changes the artifact only.
        std::fs::write(&dest, "stripped").unwrap();
        assert_eq!(std::fs::read_to_string(&store_file).unwrap(), "program");
    }
}
