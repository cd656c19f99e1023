//! The plan record read without a store: what [`crate::noop`] needs to answer a no-op build
//! without loading Nix.
//!
//! - The fingerprints the planner keeps for its sources (the unit builder, each package's
//!   source, the workspace copy) are made by the functions here, for the planner and for
//!   [`cached_sources`] alike, so both check exactly the same files.
//! - [`cached_units`] turns the cached plan back into [`PlannedUnit`]s, its store paths
//!   checked by syntax only ([`StorePath::from_recorded`]); the planner's own reuse of the
//!   cached plan ([`super::Planner::plan_cached`]) goes through it too, then asks the store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix_rs::StorePath;

use super::{CachedUnit, PlannedUnit, Record};
use crate::cache::KeyBuilder;
use crate::units::{PackageInfo, Workspace};

/// The fingerprint of the unit builder binary: its file identity, like an immutable source.
pub(super) fn builder_fingerprint(builder: &Path) -> impl Fn(&mut KeyBuilder) -> bool + '_ {
    move |k| {
        k.stat(builder);
        true
    }
}

/// The fingerprint of a package's source directory, without what `excluded` leaves out.
pub(super) fn package_fingerprint<'b>(
    pkg: &'b PackageInfo,
    excluded: &'b (dyn Fn(&Path) -> bool + Sync),
) -> impl Fn(&mut KeyBuilder) -> bool + 'b {
    let dir = &pkg.manifest_dir;
    let immutable = pkg.is_immutable_source();
    move |k| {
        if immutable {
            // Registry and git checkouts never change under cargo (it does not look
            // either): a stat of the directory, its manifest and cargo's unpack marker.
            k.stat(dir).stat(&dir.join("Cargo.toml")).stat(&dir.join(".cargo-ok"));
            true
        } else {
            crate::cache::tree_fingerprint(dir, excluded, k)
        }
    }
}

/// The source-cache key of the workspace copy (apart from the root package's own source,
/// which leaves nested packages out).
pub(super) fn workspace_copy_key(ws: &Workspace) -> PathBuf {
    ws.root.join(".cargo-nix workspace copy")
}

/// The sources a plan of `ws` reads, as the record holds them: the builder, each unit's
/// package and, when `workspace_copy`, the workspace copy, with their store paths; `None`
/// when one is missing or its fingerprint no longer holds (fingerprints of files that were
/// racy are refreshed, as the planner refreshes them). Checks no store: whether those paths
/// are still there is the caller's business.
pub fn cached_sources(
    ws: &Workspace,
    builder: &Path,
    workspace_copy: bool,
    record: &mut Record,
) -> Option<Vec<(PathBuf, String)>> {
    let mut holds = |key: &Path, compute: &dyn Fn(&mut KeyBuilder) -> bool| -> Option<(PathBuf, String)> {
        let (fp, path) = record.sources.get_mut(key)?;
        crate::cache::key_holds_refreshing(fp, compute).then(|| (key.to_path_buf(), path.clone()))
    };
    let mut out = vec![holds(builder, &builder_fingerprint(builder))?];
    let mut dirs: Vec<&PackageInfo> = (0..ws.graph.units.len()).filter_map(|i| ws.package_of(i).ok()).collect();
    dirs.sort_by(|a, b| a.manifest_dir.cmp(&b.manifest_dir));
    dirs.dedup_by(|a, b| a.manifest_dir == b.manifest_dir);
    for pkg in dirs {
        let excluded = crate::workspace::source_exclusions(&pkg.manifest_dir, ws.manifest_dirs(), &ws.target_dir);
        out.push(holds(&pkg.manifest_dir, &package_fingerprint(pkg, &excluded))?);
    }
    if workspace_copy {
        let excluded = super::tree_exclusions(&ws.root, &ws.target_dir);
        let compute = |k: &mut KeyBuilder| crate::cache::tree_fingerprint(&ws.root, &excluded, k);
        out.push(holds(&workspace_copy_key(ws), &compute)?);
    }
    Some(out)
}

/// The key the cached plan was made under (see [`super::Planner::plan_cached`]).
pub fn plan_key(record: &Record) -> &str {
    &record.plan_key
}

/// The part of this process's environment the cached plan's key covers: what build scripts
/// see of it, given what they declared on their last runs (as the planner keys it).
pub fn script_env_key(record: &Record) -> String {
    let declared: BTreeSet<String> = record.runs.values().flat_map(|r| r.declared.iter().cloned()).collect();
    let mut k = KeyBuilder::default();
    for (name, value) in super::script_env::visible(&super::script_env::snapshot(), &declared) {
        k.str(&name).str(&value);
    }
    k.finish()
}

/// The cached plan as [`PlannedUnit`]s, every store path made by `parse`; `None` when the
/// record does not fit `ws` or a path does not parse.
pub(super) fn planned_units(
    ws: &Workspace,
    cached: &[CachedUnit],
    parse: &dyn Fn(&str) -> Option<StorePath>,
) -> Option<Vec<PlannedUnit>> {
    if cached.len() != ws.graph.units.len() {
        return None;
    }
    let mut units = Vec::with_capacity(cached.len());
    for (i, c) in cached.iter().enumerate() {
        let metadata = match &c.metadata {
            Some((d, o)) => Some((parse(d)?, parse(o)?)),
            None => None,
        };
        let unit = &ws.graph.units[i];
        let pkg = ws.package_of(i).ok()?;
        units.push(PlannedUnit {
            index: i,
            label: c.label.clone(),
            package: format!("{}@{}", pkg.name, pkg.version),
            target_name: unit.target.name.clone(),
            hash: c.hash.clone(),
            drv: parse(&c.drv)?,
            out: parse(&c.out)?,
            metadata,
            inputs: c.inputs.clone(),
            artifacts: c.artifacts.clone(),
            is_build_script_run: unit.is_build_script_run(),
            is_member: pkg.is_member,
            reuse: c.reuse.clone(),
        });
    }
    Some(units)
}

/// The cached plan's units, their paths checked by syntax only, for a store whose store dir
/// is `store_dir` (see the module docs).
pub fn cached_units(ws: &Workspace, record: &Record, store_dir: &str) -> Option<Vec<PlannedUnit>> {
    planned_units(ws, &record.plan, &|p| StorePath::from_recorded(store_dir, p).ok())
}
