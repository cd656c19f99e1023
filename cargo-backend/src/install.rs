//! Putting artifacts where cargo would, each kept alive by a GC root.
//!
//! `target/<profile>/<name>` (bins), `lib<name>.rlib` (libs), `examples/<name>`,
//! `deps/<name>-<hash>` (tests, benches) become symlinks into the unit's output in the store.
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
        link_atomically(&real, &link)?;
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
