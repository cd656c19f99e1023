//! The planner's store side: package sources added to the store (skipped while their
//! fingerprint matches), derivations created (or reused from the plan record), and the whole
//! plan reused when nothing it depends on changed.

use std::path::{Path, PathBuf};

use nix_rs::{AddPathOptions, DerivationBuilder, Store, StorePath};
use sha2::{Digest, Sha256};

use std::collections::BTreeSet;

use super::{CachedUnit, Plan, Planner, Record, script_env};
use crate::Error;
use crate::toolchain::{Toolchain, hex};
use crate::units::{PackageInfo, Unit, Workspace};

pub(super) fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "+-._?=".contains(c) { c } else { '-' }).collect()
}

/// The order units are planned and announced in: the order the scheduler's queue hands
/// them out when each finishes at once (the unit most others wait on first, then the smallest
/// index), so the units the scheduler wants first arrive first, and units found already built
/// are reported (their warnings replayed) in that order, as cargo reports fresh units in its
/// queue's order: a library before its unit tests, so the library shows a warning both have.
pub(super) fn announce_order(graph: &crate::units::UnitGraph) -> Vec<usize> {
    let deps = graph.units.iter().enumerate().map(|(i, u)| (i, u.dependencies.iter().map(|d| d.index), 1u64));
    let Ok(mut queue) = crate::queue::DependencyQueue::new(deps) else { return graph.topological_order() };
    let mut order = Vec::with_capacity(graph.units.len());
    while let Some(i) = queue.dequeue() {
        if queue.finish(i, true).is_err() {
            return graph.topological_order();
        }
        order.push(i);
    }
    order
}

/// How [`Planner::plan_cached`] plans, beside the store, workspace and toolchain.
#[derive(Debug)]
pub struct PlanOptions<'a> {
    /// `cargo-nix-unit` on this machine (added to the store).
    pub builder: &'a Path,
    /// See [`Planner::pipelining`].
    pub pipelining: bool,
    /// The workspace's key ([`crate::workspace`]); empty: the cached plan is not reused.
    pub workspace_key: &'a str,
    /// Where each unit goes as soon as it is planned, dependencies first (all of them at the
    /// end when the cached plan is reused), so that a scheduler can start on the first units
    /// while the others are planned ([`crate::scheduler::realise_as_planned`]).
    pub announce: Option<crossbeam_channel::Sender<super::PlannedUnit>>,
    /// The local store a build on another machine copies its outputs back to. Debug info
    /// names the source files, so those outputs refer to the sources: each source the build
    /// store has (added now or earlier) is added here too when missing, from the same files
    /// (the same store path), where copying it back would cost the other machine a daemon and
    /// a stream per path. One that could not be added (or came out another path) is copied
    /// back with the outputs that refer to it.
    pub mirror: Option<&'a Store>,
}

impl<'a> Planner<'a> {
    /// Hands `unit` to whoever builds units as they are planned. One that stopped listening
    /// (its build ended early) is not an error: the plan is still made whole.
    pub(super) fn announce(&mut self, unit: &super::PlannedUnit) {
        if let Some(tx) = &self.announce {
            if tx.send(unit.clone()).is_err() {
                self.announce = None;
            }
        }
    }

    /// The package's source in the store (added once per run, and not at all while its
    /// fingerprint matches the one cached with a still-valid store path).
    pub(super) fn source(&mut self, pkg: &PackageInfo) -> Result<StorePath, Error> {
        if let Some(p) = self.sources.get(&pkg.manifest_dir) {
            return Ok(p.clone());
        }
        let dir = pkg.manifest_dir.clone();
        let excluded = crate::workspace::source_exclusions(&dir, self.ws.manifest_dirs(), &self.ws.target_dir);
        let compute = super::offline::package_fingerprint(pkg, &excluded);
        let name = sanitize(&format!("{}-{}-src", pkg.name, pkg.version));
        let what = format!("the source of {} v{} ({})", pkg.name, pkg.version, dir.display());
        let path = self.add_tree_cached(dir.clone(), &dir, &name, &excluded, &compute, &what)?;
        self.sources.insert(dir, path.clone());
        Ok(path)
    }

    /// `dir` added to the store as `name`, without what `excluded` leaves out; or, while the
    /// fingerprint `compute` makes still holds for the source-cache entry `key` and its store
    /// path is valid, that path again. `what` names the tree in errors; the time counts as
    /// source time.
    pub(super) fn add_tree_cached(
        &mut self,
        key: PathBuf,
        dir: &Path,
        name: &str,
        excluded: &(dyn Fn(&Path) -> bool + Sync),
        compute: &dyn Fn(&mut crate::cache::KeyBuilder) -> bool,
        what: &str,
    ) -> Result<StorePath, Error> {
        let start = std::time::Instant::now();
        let options = || AddPathOptions::new().name(name).filter(|rel, _kind| !excluded(rel));
        // The mirror gets the tree too, unless it has it already. Not an error when it cannot:
        // what is not there is copied back with the outputs that need it.
        let mirror = |p: &StorePath| {
            if let Some(m) = self.mirror.filter(|m| !m.is_valid_path(p).unwrap_or(false)) {
                let _ = m.add_path(dir, options());
            }
        };
        if let Some((cached_fp, cached_path)) = self.source_cache.get_mut(&key) {
            if crate::cache::key_holds_refreshing(cached_fp, compute) {
                if let Ok(p) = self.store.parse_path(cached_path) {
                    if self.store.is_valid_path(&p).map_err(|e| Error::Nix(format!("checking {p}"), e))? {
                        mirror(&p);
                        self.source_time += start.elapsed();
                        return Ok(p);
                    }
                }
            }
        }
        // Made before the files are added, so an edit while they are is seen next time.
        let fingerprint = crate::cache::key_before(compute);
        let path = self.store.add_path(dir, options()).map_err(|e| Error::Nix(format!("adding {what}"), e))?;
        mirror(&path);
        self.source_time += start.elapsed();
        match fingerprint {
            Some(fp) => self.source_cache.insert(key, (fp, path.to_string())),
            None => self.source_cache.remove(&key),
        };
        Ok(path)
    }

    /// Plans every unit of `ws`, reusing `cache` (the builder and sources whose files did not
    /// change, and the whole plan when its key matches and it can still be used), and updates
    /// the cache.
    ///
    /// With [`PlanOptions::announce`], package sources are added as the units that need them
    /// are planned when there is no cached plan to compare with, not all before the first.
    pub fn plan_cached(
        store: &'a Store,
        ws: &'a Workspace,
        tc: &'a Toolchain,
        options: PlanOptions<'a>,
        cache: &mut Record,
    ) -> Result<Plan, Error> {
        let PlanOptions { builder, pipelining, workspace_key, announce, mirror } = options;
        let mut this =
            Self::with_source_cache(store, ws, tc, builder, std::mem::take(&mut cache.sources))?.pipelining(pipelining);
        this.runs = cache.runs.clone();
        this.announce = announce;
        this.mirror = mirror;
        this.plan_with(workspace_key, cache)
    }

    fn plan_with(mut self, workspace_key: &str, cache: &mut Record) -> Result<Plan, Error> {
        let result = self.plan_with_sources(workspace_key, cache);
        // Kept whatever happened: the sources added so far need not be hashed again.
        cache.sources = std::mem::take(&mut self.source_cache);
        let keys = result?;
        cache.derivations = std::mem::take(&mut self.drv_memo_used);
        let plan = self.into_plan();
        if let Some((prefix, key)) = keys {
            (cache.plan_prefix, cache.plan_key) = (prefix, key);
            cache.plan = plan.units.iter().map(CachedUnit::from).collect();
        }
        Ok(plan)
    }

    /// Plans every unit (into `self.units`), and returns the plan keys to record (prefix and
    /// whole), or `None` when the cached plan was reused as it is.
    fn plan_with_sources(
        &mut self,
        workspace_key: &str,
        cache: &mut Record,
    ) -> Result<Option<(String, String)>, Error> {
        let prefix = self.plan_prefix(workspace_key)?;
        let may_reuse =
            !workspace_key.is_empty() && cache.plan.len() == self.ws.graph.units.len() && prefix == cache.plan_prefix;
        if may_reuse {
            let key = self.plan_key(&prefix)?;
            if key == cache.plan_key {
                if let Some(plan) = self.cached_plan(&cache.plan, self.source_time)? {
                    for u in announce_order(&self.ws.graph) {
                        self.announce(&plan.units[u]);
                    }
                    self.units = plan.units.into_iter().map(Some).collect();
                    self.drv_memo_used = std::mem::take(&mut cache.derivations);
                    return Ok(None);
                }
            }
        }
        self.drv_memo = std::mem::take(&mut cache.derivations);
        self.plan_all()?;
        // Every source is added by now: this adds nothing.
        let key = self.plan_key(&prefix)?;
        Ok(Some((prefix, key)))
    }

    /// The part of the plan key known without the package sources: the workspace's key, the
    /// toolchain, the builder, the store, pipelining, and what build scripts see of the
    /// environment.
    fn plan_prefix(&self, workspace_key: &str) -> Result<String, Error> {
        let mut key = crate::cache::KeyBuilder::default();
        key.str(workspace_key).str(&self.tc.identity).str(self.builder.as_str());
        let uri = self.store.uri().map_err(|e| Error::Nix("reading the store URI".into(), e))?;
        let store_dir = self.store.store_dir().map_err(|e| Error::Nix("reading the store dir".into(), e))?;
        key.str(&uri).str(&store_dir);
        key.str(if self.pipelined.is_empty() { "" } else { "pipelining" });
        for t in &self.toolchain_inputs {
            key.str(t.as_str());
        }
        // What build scripts see of the environment, and what they declared last time (the
        // workspace copy, whose contents decide the rest, is among the sources).
        let declared: BTreeSet<String> = self.runs.values().flat_map(|r| r.declared.iter().cloned()).collect();
        for (k, v) in script_env::visible(&self.user_env, &declared) {
            key.str(&k).str(&v);
        }
        for (hash, run) in self.runs.iter().filter(|(_, r)| !r.declared.is_empty()) {
            key.str(hash).str(&serde_json::to_string(&run.declared).unwrap_or_default());
        }
        Ok(key.finish())
    }

    /// The key the whole plan is reused on: `prefix` ([`Planner::plan_prefix`]) and every
    /// package source's store path (each added to the store if it is not yet).
    fn plan_key(&mut self, prefix: &str) -> Result<String, Error> {
        let mut key = crate::cache::KeyBuilder::default();
        key.str(prefix);
        for i in self.ws.graph.topological_order() {
            let pkg = self.ws.package_of(i)?;
            key.str(self.source(pkg)?.as_str());
            if self.in_tree(pkg).is_some() {
                key.str(self.ws_tree()?.as_str());
            }
        }
        Ok(key.finish())
    }

    /// The cached plan, if it can still be used: every output is valid (nothing to build), or
    /// every derivation is (what is missing can be built from them).
    /// A failing validity check is an error, not a reason to plan again.
    fn cached_plan(&self, cached: &[CachedUnit], source_time: std::time::Duration) -> Result<Option<Plan>, Error> {
        let valid = |p: &StorePath| self.store.is_valid_path(p).map_err(|e| Error::Nix(format!("checking {p}"), e));
        let Some(units) = super::offline::planned_units(self.ws, cached, &|p| self.store.parse_path(p).ok()) else {
            return Ok(None);
        };
        let mut all_outputs_valid = true;
        for u in &units {
            if !valid(&u.out)? {
                all_outputs_valid = false;
                break;
            }
        }
        if !all_outputs_valid {
            for u in &units {
                for d in std::iter::once(&u.drv).chain(u.metadata.as_ref().map(|(d, _)| d)) {
                    if !valid(d)? {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some(Plan { units, source_time, user_env: self.user_env.clone(), sources: self.sources_list() }))
    }

    /// Creates `drv`, or reuses the derivation an earlier run made from the very same
    /// description when it is still valid (a leaf edit then rewrites only the edited units).
    pub(super) fn create(&mut self, drv: &DerivationBuilder, unit: &Unit) -> Result<(StorePath, StorePath), Error> {
        let json = serde_json::to_vec(drv).expect("derivations serialize");
        let key = hex(&Sha256::digest(&json));
        if let Some((d, o)) = self.drv_memo.get(&key) {
            if let (Ok(d), Ok(o)) = (self.store.parse_path(d), self.store.parse_path(o)) {
                if self.store.is_valid_path(&d).map_err(|e| Error::Nix(format!("checking {d}"), e))? {
                    self.drv_memo_used.insert(key, (d.to_string(), o.to_string()));
                    return Ok((d, o));
                }
            }
        }
        let created = drv
            .create(self.store)
            .map_err(|e| Error::Nix(format!("creating the derivation of {}", unit.describe()), e))?;
        let out = created.outputs["out"].clone();
        self.drv_memo_used.insert(key, (created.drv_path.to_string(), out.to_string()));
        Ok((created.drv_path, out))
    }
}

/// The store path holding `path`, if `path` is inside `store_dir` and valid in `store`.
pub(super) fn store_path_of(store: &Store, store_dir: &str, path: &Path) -> Result<Option<StorePath>, Error> {
    let Ok(rel) = path.strip_prefix(store_dir) else { return Ok(None) };
    let Some(first) = rel.components().next() else { return Ok(None) };
    let full = Path::new(store_dir).join(first);
    let Ok(sp) = store.parse_path(&full.to_string_lossy()) else { return Ok(None) };
    let valid = store.is_valid_path(&sp).map_err(|e| Error::Nix(format!("checking {}", sp), e))?;
    Ok(valid.then_some(sp))
}

#[cfg(test)]
mod tests {
    use crate::units::UnitGraph;

    #[test]
    fn units_are_announced_most_waited_on_first() {
        let unit = |kind: &str, mode: &str, deps: &str| {
            format!(
                r#"{{"pkg_id": "path+file:///w/p#0.1.0", "mode": "{mode}", "features": [],
                    "profile": {{"name": "dev", "opt_level": "0", "debuginfo": 2, "debug_assertions": true,
                                 "overflow_checks": true, "lto": "false", "panic": "unwind"}},
                    "target": {{"kind": ["{kind}"], "crate_types": ["{kind}"], "name": "p",
                                "src_path": "/w/p/src/lib.rs", "edition": "2021"}},
                    "dependencies": [{deps}]}}"#
            )
        };
        // 0: the library's unit tests, 1: the library, 2: an integration test of it.
        let json = format!(
            r#"{{"version": 1, "roots": [0, 2], "units": [{}, {}, {}]}}"#,
            unit("lib", "test", ""),
            unit("lib", "build", ""),
            unit("test", "test", r#"{"index": 1, "extern_crate_name": "p"}"#)
        );
        let graph = UnitGraph::parse(&json).unwrap();
        assert_eq!(graph.topological_order()[0], 0, "by index, the unit tests would come first");
        assert_eq!(super::announce_order(&graph), vec![1, 0, 2]);
    }
}
