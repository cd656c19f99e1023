//! rustc's incremental state for workspace members, as cargo keeps it: per unit, outside the
//! store, under the target directory.
//!
//! cargo compiles a unit incrementally when its profile says so (`incremental`, `true` in
//! `dev` and `test`) and its package is a path package; `CARGO_INCREMENTAL` and
//! `build.incremental` override the profile. Our units come with cargo's decision
//! ([`crate::units::Profile::incremental`]). Such a unit keeps its state in
//! [`state_dir`]: `<target>/<profile>/.nix-incremental/<crate>-<hash>`, the hash being the
//! unit's `-C metadata`, which does not change when its sources do; `cargo nix clean` removes
//! it with the target directory.
//!
//! Members without state are in the offered table too, with no directory: their builder still
//! has debug info name the workspace root (the table's last field).
//!
//! Nothing of it is in the derivation: the directory is offered to the builders this process
//! forks, as a table from output path to directory ([`Offer`], found by
//! `cargo_nix_unit::incremental::offered`). A derivation is therefore the same with or
//! without state, for every user and target directory, and so is shareable (a binary cache,
//! another store); the state only changes how long its build takes, not what it produces
//! (rustc's guarantee), but for the working directory its debug info names: the workspace
//! root as under cargo (offered with the directory), where a build without state names the
//! store copy. The builder finds the offer only where it runs as this user,
//! unsandboxed, forked by this process ([`builds_run_here`] decides whether to offer at
//! all); elsewhere units compile from scratch.
//!
//! Only units built in the workspace copy get state: their working directory can be given a
//! stable path. A path package outside the workspace root is compiled from its own store
//! path with an absolute crate root, which changes with every edit, and rustc would discard
//! the state each time.

use std::path::{Path, PathBuf};

use nix_rs::Store;

/// Where rustc keeps its state, and writes its outputs, inside a unit's directory (the
/// builder's side of it).
pub use cargo_nix_unit::incremental::{out_dir as rustc_out_dir, state_dir as rustc_dir};

use crate::Error;
use crate::plan::PlannedUnit;
use crate::units::{Unit, Workspace};

/// The directory holding one unit's incremental state (`profile_dir` is the target
/// directory's profile directory, e.g. `target/debug`).
pub fn state_dir(profile_dir: &Path, crate_name: &str, hash: &str) -> PathBuf {
    profile_dir.join(".nix-incremental").join(format!("{crate_name}-{hash}"))
}

/// Whether `unit` is compiled with incremental state (when [`builds_run_here`]): a rustc unit
/// that cargo compiles incrementally, built in the workspace copy.
pub fn wants(unit: &Unit, in_workspace_copy: bool) -> bool {
    unit.profile.incremental && in_workspace_copy && !unit.is_build_script_run()
}

/// The state directory of planned unit `p` of `ws`, if it keeps state; `profile_dir` is the
/// absolute profile directory.
pub fn unit_dir(ws: &Workspace, p: &PlannedUnit, profile_dir: &Path) -> Option<PathBuf> {
    let unit = ws.graph.units.get(p.index)?;
    let in_copy = p.reuse.as_ref().is_some_and(|r| r.tree.is_some());
    wants(unit, in_copy).then(|| state_dir(profile_dir, &crate::plan::rustc_args::crate_name(unit), &p.hash))
}

/// The line of the table offered to the builders for `p`, if it is a rustc unit built in the
/// workspace copy: `<output>\t<directory>\t<workspace root>`, the directory empty when it keeps
/// no state, the root being where cargo runs rustc, which the builder has the unit's debug info
/// name in place of the directory it runs rustc in (`cargo_nix_unit::incremental::remap_arg`).
pub fn table_line(ws: &Workspace, p: &PlannedUnit, profile_dir: &Path, root: &Path) -> Option<String> {
    let unit = ws.graph.units.get(p.index)?;
    let in_copy = p.reuse.as_ref().is_some_and(|r| r.tree.is_some());
    if !in_copy || unit.is_build_script_run() {
        return None;
    }
    let dir = unit_dir(ws, p, profile_dir).map(|d| d.display().to_string()).unwrap_or_default();
    Some(format!("{}\t{dir}\t{}\n", p.out, root.display()))
}

/// The table offered to the builders this process forks, while it lives. It grows as units
/// are planned ([`Offer::add`]); a builder reads it when it starts, after its unit was added.
#[derive(Debug)]
pub struct Offer {
    memfd: std::fs::File,
    profile_dir: PathBuf,
    root: PathBuf,
}

impl Offer {
    /// Offers an empty table, for the units of `ws`.
    pub fn new(ws: &Workspace) -> Result<Offer, Error> {
        let profile_dir =
            std::path::absolute(ws.profile_dir()).map_err(|e| Error::Io("resolving the target directory".into(), e))?;
        let memfd = crate::offer::memfd(cargo_nix_unit::incremental::MARKER, "")
            .map_err(|e| Error::Io("offering the incremental state directories".into(), e))?;
        let root = std::path::absolute(&ws.root).map_err(|e| Error::Io("resolving the workspace root".into(), e))?;
        Ok(Offer { memfd, profile_dir, root })
    }

    /// Offers `p`'s state directory, if it keeps state: one write of a whole line, so a
    /// builder reading meanwhile sees whole lines of the units already added.
    pub fn add(&mut self, ws: &Workspace, p: &PlannedUnit) -> Result<(), Error> {
        use std::io::Write;
        match table_line(ws, p, &self.profile_dir, &self.root) {
            Some(line) => self
                .memfd
                .write_all(line.as_bytes())
                .map_err(|e| Error::Io("offering the incremental state directories".into(), e)),
            None => Ok(()),
        }
    }
}

/// Nix's settings that decide where and as whom builds run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlace<'a> {
    /// The store's canonical URI ([`Store::uri`]).
    pub uri: &'a str,
    /// The URI it was opened with, with its parameters.
    pub requested: &'a str,
    /// Whether Nix's sandbox is on ([`crate::toolchain::sandbox_enabled`]).
    pub sandbox: bool,
    /// Nix's `build-users-group` setting.
    pub build_users_group: &'a str,
    /// Whether this process runs as root (Nix uses build users only then).
    pub root: bool,
}

/// Whether the builds of `place` run on this machine, as this user, outside a sandbox: then
/// the builder can keep state in the user's target directory, and is offered it.
pub fn builds_run_here(place: &BuildPlace) -> bool {
    let scheme = place.uri.split('?').next().unwrap_or("");
    let local = scheme == "local" || scheme.starts_with('/');
    // A store with another root builds in a chroot (Nix forces it), where the target
    // directory is not visible.
    let params = place.requested.split_once('?').map_or("", |(_, q)| q);
    let other_root = params.split('&').any(|p| p.starts_with("root=") || p.starts_with("real="));
    let build_users = place.root && !place.build_users_group.trim().is_empty();
    local && !other_root && !place.sandbox && !build_users
}

/// [`builds_run_here`] for `store`, with Nix's settings as this process reads them.
pub fn available(store: &Store) -> Result<bool, Error> {
    let setting = |name: &str| nix_rs::settings::get(name).map_err(|e| Error::Nix(format!("reading {name}"), e));
    let uri = store.uri().map_err(|e| Error::Nix("reading the store URI".into(), e))?;
    let requested = store.uri_with_params();
    let sandbox = crate::toolchain::sandbox_enabled()?;
    let group = setting("build-users-group")?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    Ok(builds_run_here(&BuildPlace { uri: &uri, requested: &requested, sandbox, build_users_group: &group, root }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(uri: &'a str, requested: &'a str, sandbox: &str, group: &'a str, root: bool) -> BuildPlace<'a> {
        let sandbox = crate::toolchain::sandbox_on(sandbox);
        BuildPlace { uri, requested, sandbox, build_users_group: group, root }
    }

    #[test]
    fn only_local_unsandboxed_builds_as_this_user_keep_state() {
        assert!(builds_run_here(&place("local", "auto", "false", "", true)));
        assert!(builds_run_here(&place("local", "local?store=/tmp/s/nix/store&state=/tmp/s/state", "false", "", true)));
        assert!(builds_run_here(&place("local", "local", "false", "nixbld", false)), "no build users for non-root");
        assert!(!builds_run_here(&place("local", "local", "false", "nixbld", true)), "root builds as nixbld");
        assert!(!builds_run_here(&place("local", "local", "true", "", true)), "sandbox");
        assert!(!builds_run_here(&place("local", "local", "relaxed", "", true)), "sandbox");
        assert!(!builds_run_here(&place("local", "local?root=/tmp/r", "false", "", true)), "chroot store");
        assert!(!builds_run_here(&place("daemon", "daemon", "false", "", true)));
        assert!(!builds_run_here(&place("unix:///tmp/sock", "unix:///tmp/sock", "false", "", true)));
        assert!(!builds_run_here(&place("ssh-ng://localhost", "ssh-ng://localhost", "false", "", true)));
    }

    #[test]
    fn state_is_per_unit_under_the_profile_dir() {
        let d = state_dir(Path::new("/w/target/debug"), "app", "0123abcd");
        assert_eq!(d, Path::new("/w/target/debug/.nix-incremental/app-0123abcd"));
    }
}
