//! A no-op build answered without Nix.
//!
//! When nothing changed, [`build_with_cache`](crate::build_with_cache) opens the store, checks
//! the builder's and every source's store path, reuses the cached plan once each output is
//! valid, lets the scheduler find every output valid, and checks the links in `target/` and
//! the GC roots: all answers known before it started, at the price of loading Nix's libraries
//! (with nix-sys's `dlopen` feature, the larger part of a no-op's time). After a successful
//! build on a store on this machine, [`record`] writes down what that check would need, and
//! [`answer`] gives the next no-op's report from it with no Nix call at all, or what differs (then
//! the caller builds as usual, which also repairs whatever made the answer fail).
//!
//! # Why it is sound
//! The answer holds only if everything the full path would look at is as recorded:
//! - **the plan's inputs**: a key over the caller's flags (store URI, toolchain source,
//!   pipelining, …), the builder's path, the toolchain found, the workspace record's key (the
//!   unit graph and what cargo read), the plan record's key (sources' store paths, the store,
//!   the build scripts' environment), what build scripts see of the environment (as the plan
//!   key has it), the variables Nix and cargo nix read (`NIX_*`, `LIBNIX_*`, `CARGO*`,
//!   `RUST*`, `HOME`, `PATH`, `XDG_*` directories, `TMPDIR`), and the stat of Nix's configuration files and of the
//!   store's state directory and daemon socket (which decide what `auto` means). Then each
//!   source's fingerprint (the same functions the planner checks them with,
//!   [`plan::offline`]) and store path. Anything different: the full path.
//! - **the outputs are valid**: each unit's output, each source and each store path the
//!   toolchain lives in still exists, and each unit's output is still held by its GC root
//!   (`target/<profile>/.nix-roots/<name>` → the path, registered in the store's
//!   `gcroots/auto`, as [`install::add_root`] leaves it). A path that was valid stops being so
//!   only when it is deleted (garbage collection, `nix-store --delete`, `--repair`): the
//!   collector never deletes a path a registered root reaches, and deleting one removes it
//!   from the file system too, which the `stat` sees. Nix deletes after invalidating, so a
//!   crash between the two could leave an invalid path on disk: the one case this misses
//!   (a `nix-store --verify` or a GC of that path, which then removes it, ends it).
//! - **`target/` is as installed**: every artifact link or file and its marker is as
//!   [`install::install`] leaves it, and `CACHEDIR.TAG` is there.
//!
//! The record is dropped before any other build, so it never outlives the state it describes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix_rs::{Store, StorePath};
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, KeyBuilder};
use crate::plan::{self, Plan, PlannedUnit};
use crate::scheduler::{Outcome, Reporter};
use crate::{BuildReport, Installed, Toolchain, UnitReport, Workspace, install};

/// What a successful build leaves for the next no-op (kept in [`Cache::noop`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// The key of the inputs (see the module docs).
    key: String,
    /// The store's store dir (`/nix/store`).
    store_dir: String,
    /// Where its paths are on this machine (differs for a store with a `root`).
    real_store_dir: PathBuf,
    /// Its state directory (GC roots).
    state_dir: PathBuf,
    /// The sources the plan read, with their store paths ([`plan::offline::cached_sources`]).
    sources: Vec<(PathBuf, String)>,
    /// Whether the plan read the workspace copy.
    workspace_copy: bool,
    /// The toolchain the build used (after [`Toolchain::for_store`]).
    toolchain: Option<Toolchain>,
}

/// What the build depends on besides the cache, as the caller knows it.
#[derive(Debug)]
pub struct Inputs<'a> {
    /// The caller's flags that decide what is built and where (store URI, toolchain source,
    /// pipelining, jobs, …), in any stable form.
    pub flags: &'a str,
    /// The unit builder.
    pub builder: &'a Path,
    /// The toolchain found on this machine ([`Toolchain::detect_cached`]).
    pub toolchain: &'a Toolchain,
    /// Nix's configuration files, whose stats are part of the key ([`Inputs::nix_config_files`]).
    pub nix_config_files: Vec<PathBuf>,
}

impl Inputs<'_> {
    /// Nix's configuration files for the Nix whose libraries are in `libdir`: `nix.conf` in
    /// `$NIX_CONF_DIR`, else in `<prefix>/etc/nix` and `/etc/nix`, and in the user's
    /// configuration directories (`$XDG_CONFIG_HOME` or `~/.config`, `$XDG_CONFIG_DIRS`),
    /// and `$NIX_USER_CONF_FILES`. Only their stats are used: a file that is absent counts too.
    pub fn nix_config_files(libdir: &Path) -> Vec<PathBuf> {
        let var = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty()).map(PathBuf::from);
        let mut files = Vec::new();
        match var("NIX_CONF_DIR") {
            Some(d) => files.push(d.join("nix.conf")),
            None => {
                if let Some(prefix) = libdir.parent() {
                    files.push(prefix.join("etc/nix/nix.conf"));
                }
                files.push(PathBuf::from("/etc/nix/nix.conf"));
            }
        }
        let config_home = var("XDG_CONFIG_HOME").or_else(|| var("HOME").map(|h| h.join(".config")));
        files.extend(config_home.map(|d| d.join("nix/nix.conf")));
        let dirs = std::env::var("XDG_CONFIG_DIRS").unwrap_or_else(|_| "/etc/xdg".into());
        files.extend(dirs.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join("nix/nix.conf")));
        if let Ok(user) = std::env::var("NIX_USER_CONF_FILES") {
            files.extend(user.split(':').filter(|f| !f.is_empty()).map(PathBuf::from));
        }
        files
    }
}

/// Whether the variable `name` may change what Nix or cargo nix do, beyond what the
/// workspace, toolchain and plan keys cover: Nix's own (`NIX_*`: configuration, store, state
/// and log directories, the daemon socket), ours (`LIBNIX_*`, `CARGO_NIX_*`), cargo's and
/// rustc's (`CARGO*`, `RUST*`, also in the workspace key), and the directories Nix and the
/// lock files are found through.
fn read_by_nix_or_us(name: &str) -> bool {
    const DIRS: [&str; 6] = ["HOME", "PATH", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_RUNTIME_DIR", "TMPDIR"];
    ["NIX_", "LIBNIX_", "CARGO", "RUST"].iter().any(|p| name.starts_with(p)) || DIRS.contains(&name)
}

/// The key of `inputs` with `cache` (see the module docs); `state_dir` is the store's.
fn key(inputs: &Inputs, cache: &Cache, state_dir: &Path) -> String {
    let mut k = KeyBuilder::default();
    k.str(inputs.flags).str(&inputs.builder.to_string_lossy());
    k.str(&serde_json::to_string(inputs.toolchain).unwrap_or_default());
    k.str(cache.workspace.key()).str(plan::offline::plan_key(&cache.plan));
    k.str(&plan::offline::script_env_key(&cache.plan));
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(a, b)| (a.to_string_lossy().into_owned(), b.to_string_lossy().into_owned()))
        .filter(|(name, _)| read_by_nix_or_us(name))
        .collect();
    for (name, value) in &env {
        k.str(name).str(value);
    }
    for f in &inputs.nix_config_files {
        k.stat(f);
    }
    k.stat(state_dir).stat(&state_dir.join("daemon-socket/socket"));
    k.finish()
}

/// Writes down, after a successful build of `ws` on `store` (with `toolchain`, as reported
/// in `report`), what the next no-op needs to be answered without Nix. Records nothing (and
/// drops an older record) unless the build can be answered so: a store on this machine with
/// a state directory, every unit built or reused, no warning (e.g. a root not registered).
pub fn record(
    inputs: &Inputs,
    store: &Store,
    ws: &Workspace,
    report: &BuildReport,
    toolchain: &Toolchain,
    cache: &mut Cache,
) {
    cache.noop = make_record(inputs, store, ws, report, toolchain, cache);
}

fn make_record(
    inputs: &Inputs,
    store: &Store,
    ws: &Workspace,
    report: &BuildReport,
    toolchain: &Toolchain,
    cache: &mut Cache,
) -> Option<Record> {
    if !report.success() || !report.warnings.is_empty() || !store.is_on_this_machine() {
        return None;
    }
    let state_dir = store.state_dir()?;
    let store_dir = store.store_dir().ok()?;
    let first = report.units.first()?;
    let real_store_dir = store.real_path(&first.out).ok()?.parent()?.to_path_buf();
    let units = plan::offline::cached_units(ws, &cache.plan, &store_dir)?;
    if units.iter().zip(&report.units).any(|(a, b)| a.out != b.out) {
        return None;
    }
    let workspace_copy = units.iter().any(|u| u.reuse.as_ref().is_some_and(|r| r.tree.is_some()));
    let sources = plan::offline::cached_sources(ws, inputs.builder, workspace_copy, &mut cache.plan)?;
    Some(Record {
        key: key(inputs, cache, &state_dir),
        store_dir,
        real_store_dir,
        state_dir,
        sources,
        workspace_copy,
        toolchain: Some(toolchain.clone()),
    })
}

/// Where the recorded store's paths are on this machine (what a reporter of [`answer`] needs
/// instead of the store's `real_path`).
pub fn real_store_dir(cache: &Cache) -> Option<PathBuf> {
    cache.noop.as_ref().map(|r| r.real_store_dir.clone())
}

/// The report of a no-op build of `ws`, told to `reporter` as the scheduler tells it when
/// every output is valid, with the toolchain the recorded build used; or what differs from
/// the record (see the module docs), and nothing told. Makes no Nix call.
pub fn answer(
    inputs: &Inputs,
    ws: &Workspace,
    reporter: &mut dyn Reporter,
    cache: &mut Cache,
) -> Result<(BuildReport, Toolchain), &'static str> {
    let start = Instant::now();
    let rec = cache.noop.clone().ok_or("no record of a build to compare with")?;
    if key(inputs, cache, &rec.state_dir) != rec.key {
        return Err("the flags, workspace, toolchain, plan, environment or Nix configuration changed");
    }
    let sources = plan::offline::cached_sources(ws, inputs.builder, rec.workspace_copy, &mut cache.plan);
    if sources.as_ref() != Some(&rec.sources) {
        return Err("a source or the unit builder changed");
    }
    let sources = rec.sources.clone();
    let units = plan::offline::cached_units(ws, &cache.plan, &rec.store_dir).ok_or("the cached plan does not fit")?;
    let real = |p: &StorePath| rec.real_store_dir.join(p.base_name());
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let in_store = |p: &Path| p.starts_with(&rec.store_dir);
    let toolchain = rec.toolchain.clone().ok_or("no toolchain recorded")?;
    let toolchain_paths = [Some(&toolchain.sysroot), Some(&toolchain.rustc), toolchain.cc.as_ref()];
    let outputs_there = units.iter().all(|u| exists(&real(&u.out)))
        && sources.iter().all(|(_, p)| StorePath::from_recorded(&rec.store_dir, p).is_ok_and(|p| exists(&real(&p))))
        && toolchain_paths.into_iter().flatten().filter(|p| in_store(p)).all(|p| exists(p));
    if !outputs_there {
        return Err("a unit output, a source or the toolchain is no longer in the store");
    }
    if !ws.target_dir.join("CACHEDIR.TAG").is_file() {
        return Err("the target directory is not tagged");
    }
    let profile_dir = crate::profile_dir(ws);
    let installed =
        installed_as_left(ws, &units, &profile_dir, &real).ok_or("an artifact in the target directory changed")?;
    for u in &units {
        let root = profile_dir.join(".nix-roots").join(u.out.base_name());
        let rooted = std::fs::read_link(&root).is_ok_and(|t| t == u.out.as_path());
        if !rooted || !nix_rs::indirect_root_registered(&rec.state_dir, &root) {
            return Err("a GC root is missing");
        }
    }
    // What the full path checks before anything else: a lock directory another user planted.
    crate::unit_lock::LockDir::for_this_user().map_err(|_| "the lock directory is refused")?;

    let plan = Plan { units, source_time: Duration::ZERO, user_env: plan::script_env::snapshot(), sources: Vec::new() };
    crate::round::report_reused(ws, &plan, reporter);
    let units = plan
        .units
        .into_iter()
        .map(|p| UnitReport {
            label: p.label,
            package: p.package,
            target_name: p.target_name,
            drv: p.drv,
            out: p.out,
            outcome: Outcome::Reused,
            is_member: p.is_member,
            is_build_script_run: p.is_build_script_run,
            artifacts: p.artifacts,
        })
        .collect();
    let report = BuildReport {
        units,
        installed,
        warnings: Vec::new(),
        plan_time: start.elapsed(),
        source_time: Duration::ZERO,
        build_time: Duration::ZERO,
        first_unit: None,
        copy_time: Duration::ZERO,
        profile_dir,
    };
    Ok((report, toolchain))
}

/// The installed artifacts of `ws`, if each is in `target/` as [`install::install`] leaves
/// it: an executable is a file of its own whose marker names the store file, anything else a
/// symlink to the store file.
fn installed_as_left(
    ws: &Workspace,
    units: &[PlannedUnit],
    profile_dir: &Path,
    real: &dyn Fn(&StorePath) -> PathBuf,
) -> Option<Vec<Installed>> {
    let mut installed = Vec::new();
    for r in crate::installed_units(ws) {
        let unit = &units[r];
        for (a, link) in install::install_paths(unit, profile_dir) {
            let store_file = real(&unit.out).join(&a.file);
            let in_place = if install::is_executable(&a.kind) {
                let is_file = std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_file());
                is_file && install::materialized_from(&link).is_some_and(|t| t == store_file)
            } else {
                std::fs::read_link(&link).is_ok_and(|t| t == store_file)
            };
            if !in_place {
                return None;
            }
            installed.push(Installed { unit: r, kind: a.kind.clone(), path: link, store_path: store_file });
        }
    }
    Some(installed)
}
