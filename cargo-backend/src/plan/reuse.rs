//! Reusing a unit by what it read, not by its whole derivation.
//!
//! Two kinds of unit have inputs wider than what decides their result, as under cargo:
//!
//! - a **build-script run** sees the documented part of the user's environment, but reruns only
//!   when a variable it declared changes ([`super::script_env`]);
//! - a unit of a **path package inside the workspace root** is built in a copy of the whole
//!   workspace tree (`Planner::ws_tree`), so that it can read files outside its package, but
//!   rebuilds only when its own package, its dependencies or a file it read outside its package
//!   changes ([`super::outside`]).
//!
//! Each such unit has a *base*: its identity without the user's environment and with the
//! workspace copy's path masked. After it ran, its *narrow* key (base, the values of the
//! variables it declared, the contents of the files it read outside its package) is recorded
//! with its derivation and output ([`LastRun`], in the plan record outside the store). The next
//! plan reuses that derivation while the narrow key computed again holds and its outputs are
//! valid; else it makes a new one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use nix_rs::{Store, StorePath};
use sha2::{Digest, Sha256};

use super::record::{LastRun, ReuseInfo};
use super::{Plan, Planner, Record, outside, script_env};
use crate::Error;
use crate::spec::UnitSpec;
use crate::toolchain::hex;

/// The narrow key: `base`, the values in `user` of the variables `declared`, and
/// `outside_key` (the contents of the files read outside the package), if any.
pub fn narrow(
    base: &str,
    user: &BTreeMap<String, String>,
    declared: &BTreeSet<String>,
    outside_key: Option<&str>,
) -> String {
    let k = script_env::narrow_key(base, user, declared);
    match outside_key {
        None => k,
        Some(o) => {
            let mut h = Sha256::new();
            h.update(k.as_bytes());
            h.update(b"\0outside\0");
            h.update(o.as_bytes());
            hex(&h.finalize())
        }
    }
}

/// The variable cargo sets for the rustc runs of the packages the command selected. cargo's
/// fingerprint does not track it (`translate_dep_info` drops every variable cargo set on the
/// rustc command, even one the crate read), so `cargo build -p app` after `cargo build
/// --workspace` rebuilds no member for it; a unit's base leaves it out too.
pub const PRIMARY: &str = "CARGO_PRIMARY_PACKAGE";

/// What the workspace copy leaves out of the workspace root: its target directory, `.git`
/// directories, and any other cargo target directory (one holding a `CACHEDIR.TAG`).
pub fn tree_exclusions(root: &Path, target_dir: &Path) -> impl Fn(&Path) -> bool + Send + Sync + 'static {
    let root = root.to_path_buf();
    let target_rel = target_dir.strip_prefix(&root).ok().map(Path::to_path_buf);
    move |rel: &Path| {
        rel == Path::new("target")
            || rel.file_name().is_some_and(|n| n == ".git")
            || target_rel.as_deref() == Some(rel)
            || root.join(rel).join("CACHEDIR.TAG").is_file()
    }
}

impl<'a> Planner<'a> {
    /// The package's directory inside the workspace root, when it is a path package there
    /// (its units are built in the workspace copy).
    pub(super) fn in_tree(&self, pkg: &crate::units::PackageInfo) -> Option<PathBuf> {
        super::rustc_args::workspace_subdir(pkg, &self.ws.root).map(Path::to_path_buf)
    }

    /// The directories of the workspace's packages nested in `pkg` (workspace-relative).
    pub(super) fn nested_in(&self, pkg: &Path) -> Vec<PathBuf> {
        self.ws
            .manifest_dirs()
            .into_iter()
            .filter_map(|d| d.strip_prefix(&self.ws.root).ok())
            .filter(|d| *d != pkg && d.starts_with(pkg))
            .map(Path::to_path_buf)
            .collect()
    }

    /// The workspace copy: the workspace root in the store, without [`tree_exclusions`]
    /// (added once per run, and not at all while its fingerprint matches).
    pub(super) fn ws_tree(&mut self) -> Result<StorePath, Error> {
        if let Some(t) = &self.ws_tree {
            return Ok(t.clone());
        }
        let root = self.ws.root.clone();
        let excluded = tree_exclusions(&root, &self.ws.target_dir);
        let compute = |k: &mut crate::cache::KeyBuilder| crate::cache::tree_fingerprint(&root, &excluded, k);
        let key = super::offline::workspace_copy_key(self.ws);
        let what = format!("the workspace {}", root.display());
        let path = self.add_tree_cached(key, &root, "workspace-src", &excluded, &compute, &what)?;
        self.ws_tree = Some(path.clone());
        Ok(path)
    }

    /// A unit's base: the builder, the toolchain, its package's own source, and `spec` (before
    /// the user's environment is added) with the workspace copy's path masked and without
    /// `CARGO_PRIMARY_PACKAGE` ([`PRIMARY`]).
    pub(super) fn base(&self, src: &StorePath, spec: &UnitSpec, tree: Option<&StorePath>) -> String {
        let mut k = crate::cache::KeyBuilder::default();
        k.str(self.builder.as_str()).str(&self.tc.identity).str(src.as_str());
        for t in &self.toolchain_inputs {
            k.str(t.as_str());
        }
        // Whether the package is primary is not part of it ([`PRIMARY`]).
        let json = if spec.env.contains_key(PRIMARY) {
            let mut spec = spec.clone();
            spec.env.remove(PRIMARY);
            serde_json::to_string(&spec)
        } else {
            serde_json::to_string(spec)
        }
        .expect("specs serialize");
        match tree {
            Some(t) => k.str(&json.replace(t.as_str(), "@workspace@")),
            None => k.str(&json),
        };
        k.finish()
    }

    /// The derivation, output and metadata node a unit last ran as, when its narrow key still
    /// holds (nothing it depends on or read changed) and they are still there. A failing
    /// validity check is an error, not a reason to build again.
    #[allow(clippy::type_complexity)]
    pub(super) fn last_run_holds(
        &self,
        hash: &str,
        reuse: &ReuseInfo,
        pipelined: bool,
    ) -> Result<Option<(StorePath, StorePath, Option<(StorePath, StorePath)>)>, Error> {
        let Some(last) = self.runs.get(hash) else { return Ok(None) };
        if last.narrow.is_empty() || last.metadata.is_some() != pipelined {
            return Ok(None);
        }
        let outside_key = reuse.tree.as_ref().map(|_| outside::contents_key(&self.ws.root, &last.outside));
        if last.narrow != narrow(&reuse.base, &self.user_env, &last.declared, outside_key.as_deref()) {
            return Ok(None);
        }
        let parse = |p: &str| self.store.parse_path(p).ok();
        let valid = |p: &StorePath| self.store.is_valid_path(p).map_err(|e| Error::Nix(format!("checking {p}"), e));
        let (Some(drv), Some(out)) = (parse(&last.drv), parse(&last.out)) else { return Ok(None) };
        if !valid(&drv)? || !valid(&out)? {
            return Ok(None);
        }
        let metadata = match &last.metadata {
            None => None,
            Some((d, o)) => {
                let (Some(d), Some(o)) = (parse(d), parse(o)) else { return Ok(None) };
                if !valid(&d)? || !valid(&o)? {
                    return Ok(None);
                }
                Some((d, o))
            }
        };
        Ok(Some((drv, out, metadata)))
    }
}

/// Records, for every unit of `plan` that succeeded (`ok`) and has a [`ReuseInfo`], what it
/// read and the narrow key it ran under, from its output in `store`: a build script's
/// `rerun-if-env-changed` and `rerun-if-changed` lines, a rustc unit's dep-info. A script that
/// declared a variable that is set but that it could not see (nothing was known before its
/// first run) gets no narrow key, so that the next plan runs it with the variable; returns
/// whether there was one. A unit whose output cannot be read here (a remote store) is not
/// recorded: the next plan makes its derivation again.
pub fn record_runs(store: &Store, plan: &Plan, ok: &[bool], record: &mut Record) -> bool {
    let mut missed_any = false;
    for u in &plan.units {
        let Some(reuse) = &u.reuse else { continue };
        if !ok.get(u.index).copied().unwrap_or(false) {
            continue;
        }
        // Recorded already (a reused or cached unit): nothing to read again.
        if record
            .runs
            .get(&u.hash)
            .is_some_and(|r| !r.narrow.is_empty() && r.drv == u.drv.as_str() && r.out == u.out.as_str())
        {
            continue;
        }
        let Ok(dir) = store.real_path(&u.out) else { continue };
        let mut declared = BTreeSet::new();
        let mut read = Vec::new();
        if u.is_build_script_run {
            let Ok(bytes) = std::fs::read(dir.join("output")) else { continue };
            let Ok(parsed) = cargo_nix_unit::build_script::BuildScriptOutput::parse(&bytes, &u.package) else {
                continue;
            };
            declared = parsed.rerun_if_env_changed.into_iter().collect();
            read = parsed.rerun_if_changed;
        }
        let mut outside_key = None;
        let mut outside_set = BTreeSet::new();
        if let Some(t) = &reuse.tree {
            let root = Path::new(&t.tree);
            let Ok(tree) = store.parse_path(&t.tree) else { continue };
            let Ok(tree_real) = store.real_path(&tree) else { continue };
            let mut paths = Vec::new();
            match &t.dep_info_dir {
                Some(sub) => {
                    let Ok(entries) = std::fs::read_dir(dir.join(sub)) else { continue };
                    for e in entries.flatten() {
                        if e.path().extension().is_some_and(|x| x == "d") {
                            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                            paths.extend(
                                outside::dep_info_inputs(&text)
                                    .iter()
                                    .filter_map(|p| outside::ws_relative(p, Path::new(""), root)),
                            );
                        }
                    }
                }
                None => paths.extend(read.iter().filter_map(|p| outside::ws_relative(p, &t.pkg, root))),
            }
            outside_set = outside::outside(paths, &t.pkg, &t.nested);
            outside_key = Some(outside::contents_key(&tree_real, &outside_set));
        }
        let before = record.runs.get(&u.hash).map(|r| r.declared.clone()).unwrap_or_default();
        let seen = script_env::visible(&plan.user_env, &before);
        let missed = declared.iter().any(|d| plan.user_env.contains_key(d) && !seen.contains_key(d));
        missed_any |= missed;
        let narrow =
            if missed { String::new() } else { narrow(&reuse.base, &plan.user_env, &declared, outside_key.as_deref()) };
        record.runs.insert(
            u.hash.clone(),
            LastRun {
                declared,
                outside: outside_set,
                narrow,
                drv: u.drv.to_string(),
                out: u.out.to_string(),
                metadata: u.metadata.as_ref().map(|(d, o)| (d.to_string(), o.to_string())),
            },
        );
    }
    missed_any
}
