//! cargo-backend: builds cargo's unit graph as one Nix derivation per unit, in-process.
//!
//! The pipeline, one module each:
//! 1. [`units`]: the neutral description of what to build ([`Workspace`]: units with every
//!    fact cargo resolved, packages, workspace root, target dir), made by an adapter from
//!    cargo's `BuildContext` (the `cargo-nix` crate) or, as a fallback, from cargo's
//!    `--unit-graph` JSON ([`units::from_unit_graph`]); [`workspace`] holds cargo's flags and
//!    the no-op cache that answers before cargo is asked;
//! 2. [`toolchain`]: rustc, the C compiler, and their identity;
//! 3. [`plan`]: one derivation per unit, created through nix-rs (no `nix` process, no `.nix`
//!    file), each running a [`spec::UnitSpec`] with the `cargo-nix-unit` builder (the
//!    `cargo-nix-unit` crate, re-exported here as [`spec`], [`run_unit`], [`build_script`]);
//! 4. [`scheduler`]: the DAG realised by our own workers over a [`queue::DependencyQueue`];
//! 5. [`install`]: artifacts linked into `target/<profile>/`, each with a GC root;
//! 6. [`messages`]: cargo's `--message-format` JSON messages for the units.
//!
//! [`build`] runs 3–5 for a patched cargo that already has a unit graph; the `cargo nix`
//! binary (in the `cargo-nix` crate, which links cargo's library) runs all of it.

pub mod cache;
pub mod connections;
pub mod copy_back;
pub mod depinfo;
pub mod incremental;
pub mod install;
pub mod jobserver;
pub mod messages;
pub mod noop;
pub mod offer;
pub mod plan;
pub mod queue;
mod round;
pub mod run;
pub mod scheduler;
pub mod toolchain;
pub mod unit_lock;
pub mod units;
pub mod warnings;
pub mod workspace;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix_rs::{Store, StorePath};

pub use cargo_nix_unit::{build_script, run_unit, spec};
pub use install::Installed;
pub use scheduler::{Failure, Node, Outcome, Reporter, SchedulerOptions, Silent, Stop};
pub use toolchain::Toolchain;
pub use units::{PackageInfo, Workspace};
pub use workspace::{CargoArgs, CargoCommand, TargetSelection};

/// Errors of the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Running cargo, or what it printed.
    #[error("{0}")]
    Cargo(String),
    /// The unit graph is malformed.
    #[error("invalid unit graph: {0}")]
    UnitGraph(#[from] units::UnitGraphError),
    /// The graph cannot be scheduled.
    #[error("cannot schedule the unit graph: {0}")]
    Graph(String),
    /// Finding or running the toolchain.
    #[error("toolchain: {0}")]
    Toolchain(String),
    /// A unit this backend cannot build.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A Nix operation.
    #[error("{0}: {1}")]
    Nix(String, #[source] nix_rs::Error),
    /// A file-system operation.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The build was stopped ([`Stop::request`]); the text says how far it got.
    #[error("interrupted: {0}")]
    Interrupted(String),
}

/// Options of [`build`].
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Units built at once (`-j`).
    pub jobs: usize,
    /// Keep building what does not depend on a failure.
    pub keep_going: bool,
    /// The `cargo-nix-unit` builder on this machine (default: next to the running executable).
    pub unit_builder: Option<PathBuf>,
    /// A binary cache (store URI, e.g. `file:///srv/cache`) to substitute unit outputs from
    /// and push built ones to.
    pub cache: Option<String>,
    /// Pipelining: libraries compile against their dependencies' metadata, from a separate
    /// metadata derivation per library (see [`plan::Planner::pipelining`]).
    pub pipelining: bool,
    /// Stops the build when requested (e.g. from a Ctrl-C handler, together with
    /// [`nix_rs::interrupt`]): nothing new starts and nothing is installed.
    pub stop: Stop,
    /// More connections to the build store for the scheduler's workers
    /// ([`SchedulerOptions::worker_stores`], [`connections::extra_stores`]).
    pub worker_stores: Vec<std::sync::Arc<Store>>,
    /// Another connection to the build store, for copying outputs back to a local store while
    /// the others plan and build ([`copy_back`]); `None`: the build store's own.
    pub copy_store: Option<std::sync::Arc<Store>>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            keep_going: false,
            unit_builder: None,
            cache: None,
            pipelining: false,
            stop: Stop::default(),
            worker_stores: Vec::new(),
            copy_store: None,
        }
    }
}

/// What happened to one unit.
#[derive(Debug, Clone)]
pub struct UnitReport {
    /// How cargo names it.
    pub label: String,
    /// `name@version`.
    pub package: String,
    /// The target's name.
    pub target_name: String,
    /// Its derivation.
    pub drv: StorePath,
    /// Its output.
    pub out: StorePath,
    /// The outcome.
    pub outcome: Outcome,
    /// Whether it belongs to a workspace member.
    pub is_member: bool,
    /// Whether it runs a build script.
    pub is_build_script_run: bool,
    /// The files it produced, relative to `out`.
    pub artifacts: Vec<plan::Artifact>,
}

/// The result of [`build`].
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// Every unit, by unit-graph index.
    pub units: Vec<UnitReport>,
    /// Artifacts linked into the target directory.
    pub installed: Vec<Installed>,
    /// Non-fatal problems (e.g. a GC root that could not be registered).
    pub warnings: Vec<String>,
    /// Time spent planning: adding sources and creating derivations (overlapping the builds of
    /// the first units, which start as soon as they are planned, when pipelining is off).
    pub plan_time: Duration,
    /// Of which adding package sources to the store.
    pub source_time: Duration,
    /// Time spent realising them.
    pub build_time: Duration,
    /// From the start of the build to the first unit's start (`None` when none was built).
    pub first_unit: Option<Duration>,
    /// Time spent copying outputs from the build store to the local store after the last unit
    /// was built (zero when they are one store).
    pub copy_time: Duration,
    /// The profile directory artifacts went to.
    pub profile_dir: PathBuf,
}

impl BuildReport {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.units.iter().filter(|u| f(&u.outcome)).count()
    }
    /// Units built by this run.
    pub fn built(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Built(_)))
    }
    /// Units whose outputs were already in the store.
    pub fn reused(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Reused))
    }
    /// Units copied from the binary cache.
    pub fn substituted(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Substituted))
    }
    /// Units that failed.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_)))
    }
    /// Units stopped while building ([`Stop`]).
    pub fn interrupted(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Interrupted))
    }
    /// Units not built because of a failure.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skipped))
    }
    /// Whether every unit is built, reused or substituted.
    pub fn success(&self) -> bool {
        self.failed() == 0 && self.skipped() == 0 && self.interrupted() == 0
    }
}

/// Where `cargo-nix-unit` is when not given: next to the running executable (or one level up,
/// for test executables in `target/<profile>/deps`).
pub fn default_unit_builder() -> Result<PathBuf, Error> {
    let exe = std::env::current_exe().map_err(|e| Error::Io("finding the running executable".into(), e))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    [dir.join("cargo-nix-unit"), dir.join("../cargo-nix-unit")].into_iter().find(|p| p.is_file()).ok_or_else(|| {
        Error::Io(format!("no cargo-nix-unit next to {}", exe.display()), std::io::ErrorKind::NotFound.into())
    })
}

/// Where the artifacts of `ws`'s root units are installed: `target/<profile>/` (e.g.
/// `target/debug`), or `target/<triple>/<profile>/` with an explicit `--target`.
pub fn profile_dir(ws: &Workspace) -> PathBuf {
    ws.profile_dir()
}

/// The units whose artifacts go into the target directory: the roots, and the binaries the
/// roots depend on (cargo builds a package's binaries for its integration tests and puts them
/// in `target/<profile>/`, where tests look for them).
pub fn installed_units(ws: &Workspace) -> Vec<usize> {
    let mut units = ws.graph.roots.clone();
    for &r in &ws.graph.roots {
        for d in &ws.graph.units[r].dependencies {
            let du = &ws.graph.units[d.index];
            if du.is_bin() && du.mode == units::Mode::Build {
                units.push(d.index);
            }
        }
    }
    units.sort_unstable();
    units.dedup();
    units
}

/// Builds the unit graph of `ws` on `store`: plans one derivation per unit, realises them with
/// `options.jobs` workers, and installs the root units' artifacts into the target directory.
pub fn build(
    store: &Store,
    ws: &Workspace,
    toolchain: &Toolchain,
    options: &BuildOptions,
    reporter: &mut dyn Reporter,
) -> Result<BuildReport, Error> {
    build_with_cache(store, None, ws, toolchain, options, reporter, &mut cache::Cache::default())
}

/// [`build`], reusing (and refreshing) what `cache` holds: package sources whose files have
/// not changed are not hashed again, and when nothing changed the derivations are not
/// recreated (see [`cache`]).
///
/// `local_store` is the store on this machine whose files the target directory links to, when
/// that is not `store`: after the build, the outputs of the units whose artifacts are linked
/// and of the workspace members (whose outputs hold their warnings) are copied from `store`
/// to it with their closures, and linked and rooted there. `None` means `store` itself, which
/// must then be on this machine ([`Store::is_on_this_machine`]); a store elsewhere (e.g.
/// `ssh-ng://host`) needs a `local_store`.
///
/// Builds may also be handed to remote machines by Nix itself (its `builders` setting): the
/// build hook then copies inputs from and outputs back into the store named by Nix's `store`
/// setting, so make `store` that one first ([`Store::set_as_default`]).
pub fn build_with_cache(
    store: &Store,
    local_store: Option<&Store>,
    ws: &Workspace,
    toolchain: &Toolchain,
    options: &BuildOptions,
    reporter: &mut dyn Reporter,
    cache: &mut cache::Cache,
) -> Result<BuildReport, Error> {
    let build_start = Instant::now();
    // Checked first: nothing is written when the artifacts would have nowhere to go.
    let artifact_store = match local_store {
        Some(l) => l,
        None if store.is_on_this_machine() => store,
        None => {
            return Err(Error::Unsupported(format!(
                "store '{}' is not on this machine: its outputs cannot be linked into the target \
                 directory without a local store to copy them to (cargo nix: --local-store)",
                store.requested_uri()
            )));
        }
    };
    if !artifact_store.is_on_this_machine() {
        return Err(Error::Unsupported(format!(
            "the local store '{}' is not on this machine",
            artifact_store.requested_uri()
        )));
    }
    let builder = match &options.unit_builder {
        Some(p) => p.clone(),
        None => default_unit_builder()?,
    };
    // Checked before anything is written: a lock directory another user planted fails here.
    unit_lock::LockDir::for_this_user()?;
    // Opened first: a bad cache URI fails before anything is written to the store.
    let cache_store = match &options.cache {
        Some(uri) => Some(Store::open(uri).map_err(|e| Error::Nix(format!("opening the binary cache '{uri}'"), e))?),
        None => None,
    };
    let incremental = incremental::available(store)?;
    reporter.incremental_state(incremental);
    let stop = &options.stop;
    // Offered to the builders for as long as units are built, and shared with the scheduler;
    // without it (it could not be made) rustc makes its own, as before.
    let jobserver = jobserver::Offer::new(options.jobs.saturating_sub(1)).ok().map(std::sync::Arc::new);
    let sched = SchedulerOptions {
        jobs: options.jobs,
        keep_going: options.keep_going,
        stop: stop.clone(),
        worker_stores: options.worker_stores.clone(),
        jobserver,
    };
    let (mut plan_time, mut source_time, mut build_time, mut copy_drain): (Duration, Duration, Duration, Duration) =
        Default::default();
    let mut first_unit = None;
    // At most two rounds: the second when a build script declared (`rerun-if-env-changed`) a
    // variable that is set but that it could not see on its first run; it runs again with it,
    // as cargo's would have seen it (see `plan::script_env`). Everything else is reused.
    let mut round = 0;
    let copied_back = !std::ptr::eq(artifact_store, store);
    let mut copied_early = std::collections::BTreeSet::new();
    let (plan, outcomes) = loop {
        round += 1;
        let workspace_key = cache.workspace.key().to_owned();
        let this_round = round::Round {
            store,
            cache_store: cache_store.as_ref(),
            ws,
            toolchain,
            builder: &builder,
            pipelining: options.pipelining,
            workspace_key: &workspace_key,
            sched: &sched,
            incremental,
            copy_to: copied_back.then_some(artifact_store),
        };
        let done = if copied_back {
            // Wanted outputs are copied back as their units finish (see `copy_back`).
            let copy_from = options.copy_store.as_deref().unwrap_or(store);
            let (result, copied) = copy_back::while_building(copy_from, artifact_store, |tx| {
                let result = this_round.run(&mut cache.plan, reporter, Some(tx.clone()));
                (result, Instant::now())
            });
            let (result, built) = result;
            // The copier finishing what the last units sent it counts as copying.
            copy_drain += built.elapsed();
            copied_early.extend(copied);
            result?
        } else {
            this_round.run(&mut cache.plan, reporter, None)?
        };
        let round::Done { plan, outcomes, plan_time: p, build_time: b, first_started } = done;
        first_unit = first_unit.or(first_started.map(|t| t - build_start));
        plan_time += p;
        source_time += plan.source_time;
        build_time += b;
        let succeeded: Vec<bool> = outcomes.iter().map(Outcome::is_success).collect();
        let missed = plan::record_runs(store, &plan, &succeeded, &mut cache.plan);
        if stop.is_requested() {
            let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
            return Err(Error::Interrupted(format!(
                "{} unit(s) built, {} stopped while building, {} not started; nothing was installed",
                count(|o| matches!(o, Outcome::Built(_))),
                count(|o| matches!(o, Outcome::Interrupted)),
                count(|o| matches!(o, Outcome::Skipped)),
            )));
        }
        if !missed || round == 2 {
            break (plan, outcomes);
        }
    };

    let start = Instant::now();
    if copied_back {
        for (u, outcome) in plan.units.iter().zip(&outcomes) {
            if !round::copy_back_wanted(ws, u) || !outcome.is_success() {
                continue;
            }
            let out = &u.out;
            if copied_early.contains(out) {
                continue;
            }
            store.copy_closure_to(artifact_store, out).map_err(|e| {
                Error::Nix(
                    format!(
                        "copying {} from '{}' to the local store '{}'",
                        out,
                        store.requested_uri(),
                        artifact_store.requested_uri()
                    ),
                    e,
                )
            })?;
        }
    }
    let copy_time = copy_drain + start.elapsed();

    // Made (and tagged) once there is something to put there: a build that fails earlier
    // leaves no target directory behind.
    install::prepare_target_dir(&ws.target_dir)?;
    let profile_dir = profile_dir(ws);
    install::prepare_profile_dir(&profile_dir)?;
    let mut installed = Vec::new();
    let mut warnings = Vec::new();
    for r in installed_units(ws) {
        if outcomes[r].is_success() {
            let (mut i, w) = install::install(artifact_store, &plan.units[r], &profile_dir)?;
            installed.append(&mut i);
            warnings.extend(w);
        }
    }
    // As cargo: dep-info files for the requested units' artifacts, once the whole build
    // succeeded (not for the binaries tests depend on, nor after a failure).
    if outcomes.iter().all(Outcome::is_success) {
        depinfo::write_all(artifact_store, ws, &plan, &installed, &profile_dir)?;
    }
    // The other units' outputs are rooted too, so that a collection does not force the next
    // build to rebuild every dependency (cargo keeps them in target/<profile>/deps). Only when
    // they are in the store target/ links into: a build elsewhere copies back the linked
    // outputs only.
    if !copied_back {
        for (u, outcome) in plan.units.iter().zip(&outcomes) {
            if outcome.is_success() && !ws.graph.roots.contains(&u.index) {
                if let Some(w) = install::add_root(store, &u.out, &profile_dir)? {
                    // If the store refuses one root it refuses them all: once is enough to say so.
                    warnings.push(w);
                    break;
                }
            }
        }
    }
    let units = plan
        .units
        .into_iter()
        .zip(outcomes)
        .map(|(p, outcome)| UnitReport {
            label: p.label,
            package: p.package,
            target_name: p.target_name,
            drv: p.drv,
            out: p.out,
            outcome,
            is_member: p.is_member,
            is_build_script_run: p.is_build_script_run,
            artifacts: p.artifacts,
        })
        .collect();
    Ok(BuildReport {
        units,
        installed,
        warnings,
        plan_time,
        source_time,
        build_time,
        first_unit,
        copy_time,
        profile_dir,
    })
}
