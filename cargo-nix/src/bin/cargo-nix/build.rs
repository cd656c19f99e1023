//! `cargo nix build` (and the build half of `test` and `check`): plan with cargo's library,
//! open the stores, build, print the summary.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cargo_backend::cache::Cache;
use cargo_backend::messages::{self, MessageFormat};
use cargo_backend::units::from_unit_graph;
use cargo_backend::{BuildOptions, CargoArgs, CargoCommand, Outcome, Stop, Toolchain, Workspace, workspace};
use cargo_nix::cargo;
use nix_rs::Store;

use cargo_backend::toolchain::ToolchainSource;
use cargo_backend::{connections, noop};

use crate::args::{BuildArgs, Switch, ToolchainFrom};
use crate::reporter::CliReporter;
use crate::status::Status;

/// An error cargo reported while planning, already printed the way cargo prints it.
#[derive(Debug)]
pub struct CargoError;

impl std::fmt::Display for CargoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cargo could not plan the build")
    }
}

impl std::error::Error for CargoError {}

/// The neutral description of the build: from cargo's library in this process, or from a
/// unit-graph file (`--unit-graph`, the fallback adapter).
fn describe(command: CargoCommand, args: &CargoArgs) -> Result<Workspace> {
    if args.unit_graph_file.is_some() {
        return Ok(from_unit_graph::load(command, args)?);
    }
    cargo_nix::from_cargo::plan(command, args).map_err(|e| {
        let mut shell = cargo::core::Shell::new();
        cargo::display_error(&e, &mut shell);
        anyhow::Error::new(CargoError)
    })
}

/// Opens `uri` for `jobs` workers: a store with a connection pool gets a connection per worker
/// ([`cargo_backend::connections`]); `auto` that turns out to be the daemon is opened again so.
fn open_store(uri: &str, jobs: usize) -> Result<Store> {
    let open = |params: &[(&str, String)]| {
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Store::open_with_params(uri, &params).with_context(|| format!("opening the Nix store '{uri}'"))
    };
    let params = connections::store_params(uri, jobs);
    let store = open(&params)?;
    if params.is_empty() && uri.split('?').next() == Some("auto") && store.daemon_socket().ok().flatten().is_some() {
        let daemon = connections::store_params("daemon", jobs);
        if !daemon.is_empty() {
            return open(&daemon);
        }
    }
    Ok(store)
}

/// Makes the SSH sessions Nix opens for an `ssh-ng://` or `ssh://` --store share one, by adding
/// SSH's multiplexing options to `NIX_SSHOPTS` ([`connections::ssh_multiplexing`]), with the
/// master's socket in this user's lock directory. Called while the process has one thread.
pub fn share_ssh_sessions(args: &BuildArgs) {
    // A lock directory that cannot be used fails the build later, with its own error.
    let Ok(dir) = cargo_backend::unit_lock::LockDir::for_this_user() else { return };
    let current = std::env::var("NIX_SSHOPTS").ok();
    if let Some(opts) = connections::ssh_multiplexing(&args.store, current.as_deref(), dir.path()) {
        // SAFETY: called from `main` before any other thread is started, so nothing reads the
        // environment while it changes.
        unsafe { std::env::set_var("NIX_SSHOPTS", opts) };
    }
}

/// The stores of a build ([`open_stores`]).
struct Stores {
    /// The store to build in.
    build: Store,
    /// The local store target/ links into, when the build store is another.
    local: Option<Store>,
    /// More connections to the build store, for the scheduler's workers
    /// ([`connections::extra_stores`]).
    workers: Vec<std::sync::Arc<Store>>,
    /// One more, for copying back while the others plan and build (with `workers`).
    copy: Option<std::sync::Arc<Store>>,
}

/// The store to build in, made the one Nix's build hook uses (remote builders copy inputs from
/// and outputs back into it), the local store target/ links into when that is another, and,
/// for an SSH store, one more connection per worker.
fn open_stores(args: &BuildArgs) -> Result<Stores> {
    let jobs = args.jobs.filter(|&j| j > 0).unwrap_or_else(|| BuildOptions::default().jobs);
    let store = open_store(&args.store, jobs)?;
    store.set_as_default().with_context(|| format!("making '{}' Nix's `store` setting", args.store))?;
    let workers = (0..connections::extra_stores(&args.store, jobs))
        .map(|_| open_store(&args.store, jobs).map(std::sync::Arc::new))
        .collect::<Result<Vec<_>>>()?;
    let copy = if workers.is_empty() { None } else { Some(open_store(&args.store, jobs).map(std::sync::Arc::new)?) };
    // Nix connects on first use. The workers' sessions are opened now, in the background,
    // rather than when the first units start: by then the planner is sending sources over the
    // shared SSH connection, and both waited for the new session (0.6 s seen). The first
    // store connects first, so that the others share its SSH connection instead of racing to
    // make their own. Errors are left for the build to report.
    if !workers.is_empty() {
        let _ = store.version();
    }
    for w in workers.iter().chain(&copy) {
        let w = std::sync::Arc::clone(w);
        std::thread::spawn(move || w.version());
    }
    let local = match &args.local_store {
        Some(uri) => Some(open_store(uri, 1).context("opening the --local-store")?),
        None if !store.is_on_this_machine() => Some(
            open_store("auto", 1)
                .with_context(|| format!("'{}' is not on this machine; opening the local store", args.store))?,
        ),
        None => None,
    };
    Ok(Stores { build: store, local, workers, copy })
}

/// The reporter of a build of `ws` (on `store`, when it is open).
fn new_reporter<'a>(
    status: &'a Status,
    ws: &'a Workspace,
    store: Option<&'a Store>,
    format: MessageFormat,
    verbose: bool,
) -> Result<CliReporter<'a>> {
    Ok(CliReporter {
        status,
        ws,
        store,
        real_store_dir: None,
        format,
        verbose,
        announced: HashSet::new(),
        plan: Vec::new(),
        profile_dir: std::path::absolute(cargo_backend::profile_dir(ws))?,
        incremental: false,
        running: Vec::new(),
        shown: Default::default(),
        failure_shown: false,
    })
}

/// What a build gives the commands that run its outputs.
pub struct Built {
    /// The build's report.
    pub report: cargo_backend::BuildReport,
    /// The description it built.
    pub ws: Workspace,
    /// Whether it succeeded.
    pub ok: bool,
    /// The toolchain it built with.
    pub toolchain: Toolchain,
    /// Native search paths its build scripts named inside their outputs
    /// ([`cargo_backend::run::native_dirs`]).
    pub native_dirs: Vec<std::path::PathBuf>,
    /// Every native search path its build scripts named, as given, sorted (doctests' `-L`).
    pub native_link_paths: Vec<String>,
}

/// Builds, and in the JSON formats ends stdout with `build-finished` (also when the build could
/// not run).
pub fn build(args: &BuildArgs, command: CargoCommand, status: &Status, stop: &Stop) -> Result<Built> {
    build_selected(args, args.cargo_args(), command, status, stop)
}

/// [`build`] with cargo's flags given (`cargo nix test` adds `--doc` and a test name's
/// selection to those of `args`).
pub fn build_selected(
    args: &BuildArgs,
    cargo_args: CargoArgs,
    command: CargoCommand,
    status: &Status,
    stop: &Stop,
) -> Result<Built> {
    let format = MessageFormat::parse(&args.message_format).map_err(anyhow::Error::msg)?;
    let result = build_in(args, cargo_args, command, status, format, stop);
    if format.is_json() {
        status.json(&messages::build_finished(result.as_ref().is_ok_and(|b| b.ok)));
    }
    result
}

fn build_in(
    args: &BuildArgs,
    cargo_args: CargoArgs,
    command: CargoCommand,
    status: &Status,
    format: MessageFormat,
    stop: &Stop,
) -> Result<Built> {
    let start = Instant::now();
    let cache_file = cargo_args.manifest().and_then(|m| Cache::file_for(&m));
    let mut cache = cache_file.as_deref().map(Cache::load).unwrap_or_default();
    let ws = workspace::load_cached(command, &cargo_args, &mut cache.workspace, || describe(command, &cargo_args))?;
    let cargo_time = start.elapsed();
    let toolchain = Toolchain::detect_cached(&mut cache)?;
    check_targets_installed(&ws, &toolchain)?;
    if args.jobs == Some(0) {
        bail!("-j must be at least 1");
    }
    let builder = cargo_backend::default_unit_builder()?;
    let flags = format!(
        "{command:?}\0{}\0{:?}\0{:?}\0{:?}\0{:?}\0{:?}\0{}",
        args.store, args.local_store, args.cache, args.toolchain, args.pipelining, args.jobs, args.keep_going
    );
    let inputs = noop::Inputs {
        flags: &flags,
        builder: &builder,
        toolchain: &toolchain,
        nix_config_files: noop::Inputs::nix_config_files(std::path::Path::new(nix_sys::LIBDIR)),
    };
    // A no-op answered without opening a store (nor loading Nix): see cargo_backend::noop.
    let mut fast = new_reporter(status, &ws, None, format, args.verbose)?;
    fast.real_store_dir = noop::real_store_dir(&cache);
    let answered = match (&args.local_store, &args.cache) {
        (None, None) => noop::answer(&inputs, &ws, &mut fast, &mut cache),
        _ => Err("--local-store and --cache are not recorded"),
    };
    if args.verbose {
        let why = answered
            .as_ref()
            .err()
            .map_or("answered from the plan cache, no store opened".into(), |e| format!("checked by Nix: {e}"));
        status.line("No-op", &why);
    }
    let (report, toolchain, toolchain_time) = match answered.ok() {
        Some((report, toolchain)) => {
            status.finish_progress();
            (report, toolchain, start.elapsed() - cargo_time)
        }
        None => {
            drop(fast);
            let Stores { build: store, local: local_store, workers: worker_stores, copy: copy_store } =
                open_stores(args)?;
            let source = match args.toolchain {
                ToolchainFrom::Auto => ToolchainSource::Auto,
                ToolchainFrom::Store => ToolchainSource::Store,
                ToolchainFrom::Host => ToolchainSource::Host,
            };
            let (toolchain, imported) = toolchain.for_store(source, &store, &mut cache)?;
            if let Some(took) = imported {
                status.line(
                    "Added",
                    &format!("toolchain {} to the store in {:.1}s", toolchain.sysroot.display(), took.as_secs_f64()),
                );
            }
            let toolchain_time = start.elapsed() - cargo_time;
            let mut options = BuildOptions {
                keep_going: args.keep_going,
                cache: args.cache.clone(),
                pipelining: args.pipelining == Switch::On,
                stop: stop.clone(),
                unit_builder: Some(builder.clone()),
                worker_stores,
                copy_store,
                ..BuildOptions::default()
            };
            if let Some(j) = args.jobs {
                options.jobs = j;
            }
            let mut reporter = new_reporter(status, &ws, Some(&store), format, args.verbose)?;
            let report = cargo_backend::build_with_cache(
                &store,
                local_store.as_ref(),
                &ws,
                &toolchain,
                &options,
                &mut reporter,
                &mut cache,
            );
            status.finish_progress();
            let report = report?;
            if local_store.is_none() && args.cache.is_none() {
                noop::record(&inputs, &store, &ws, &report, &toolchain, &mut cache);
            } else {
                cache.noop = None;
            }
            (report, toolchain, toolchain_time)
        }
    };
    if let Some(f) = &cache_file {
        cache.save(f);
    }
    for w in &report.warnings {
        status.raw(&format!("warning: {w}"));
    }
    if args.verbose {
        status.line(
            "Timings",
            &format!(
                "planning {:.3}s, toolchain {:.3}s, sources {:.3}s, derivations {:.3}s, realise {:.3}s, copy {:.3}s{}",
                cargo_time.as_secs_f64(),
                toolchain_time.as_secs_f64(),
                report.source_time.as_secs_f64(),
                (report.plan_time - report.source_time).as_secs_f64(),
                report.build_time.as_secs_f64(),
                report.copy_time.as_secs_f64(),
                report.first_unit.map(|t| format!(", first-unit {:.3}s", t.as_secs_f64())).unwrap_or_default()
            ),
        );
        for (u, unit) in report.units.iter().zip(&ws.graph.units) {
            if let Outcome::Built(took) = u.outcome {
                status.line(
                    "Realised",
                    &format!("{} [{} {}] in {:.3}s", u.label, u.target_name, unit.mode, took.as_secs_f64()),
                );
            }
            let outcome = match u.outcome {
                Outcome::Built(_) => "built",
                Outcome::Reused => "reused",
                Outcome::Substituted => "substituted",
                Outcome::Failed(_) => "failed",
                Outcome::Skipped => "skipped",
                Outcome::Interrupted => "interrupted",
                Outcome::NotNeeded => "not needed",
            };
            status.line(
                "Unit",
                &format!("{} [{} {}] {outcome}: {} -> {}", u.label, u.target_name, unit.mode, u.drv, u.out),
            );
        }
    }
    let ok = report.success();
    let profile = ws.profile.as_str();
    let opt = finished_description(&ws);
    if ok {
        status.line(
            "Finished",
            &format!(
                "`{profile}` profile [{opt}] target(s) in {:.2}s ({} built, {} reused, {} substituted)",
                start.elapsed().as_secs_f64(),
                report.built(),
                report.reused(),
                report.substituted()
            ),
        );
    } else if args.verbose {
        // cargo adds nothing after the errors (and its "waiting for other jobs" warning).
        status.line(
            "Failed",
            &format!(
                "{} unit(s) failed, {} not built ({} built, {} reused)",
                report.failed(),
                report.skipped(),
                report.built(),
                report.reused()
            ),
        );
    }
    let (native_dirs, native_link_paths) = script_native_dirs(&report);
    Ok(Built { report, ws, ok, toolchain, native_dirs, native_link_paths })
}

/// The native search paths of the build's successful build-script runs, read from their
/// outputs (a run whose output cannot be read here adds none): those for the dynamic-library
/// path, and all of them as given.
fn script_native_dirs(report: &cargo_backend::BuildReport) -> (Vec<std::path::PathBuf>, Vec<String>) {
    let runs: Vec<(&std::path::Path, Vec<String>)> = report
        .units
        .iter()
        .filter(|u| u.is_build_script_run && u.outcome.is_success())
        .filter_map(|u| {
            let bytes = std::fs::read(u.out.as_path().join("output")).ok()?;
            let parsed = cargo_backend::build_script::BuildScriptOutput::parse(&bytes, &u.package).ok()?;
            Some((u.out.as_path(), parsed.library_paths))
        })
        .collect();
    let all: std::collections::BTreeSet<String> = runs.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
    (
        cargo_backend::run::native_dirs(runs.iter().map(|(out, paths)| (*out, paths.as_slice()))),
        all.into_iter().collect(),
    )
}

/// cargo's "[optimized + debuginfo]" part of the `Finished` line, from the root units' profile
/// (without roots, as for `test --doc`: a unit built in the requested profile, else any unit).
fn finished_description(ws: &Workspace) -> String {
    let units = &ws.graph.units;
    let Some(p) = ws
        .graph
        .roots
        .first()
        .map(|&r| &units[r])
        .or_else(|| units.iter().find(|u| u.profile.name == ws.profile))
        .or_else(|| units.first())
        .map(|u| &u.profile)
    else {
        return "optimized".into();
    };
    let mut parts = vec![if p.opt_level == "0" { "unoptimized" } else { "optimized" }];
    if p.debuginfo.is_some_and(|d| d.is_enabled()) {
        parts.push("debuginfo");
    }
    parts.join(" + ")
}

/// Fails, before anything is written, when a unit is built for a target whose standard library
/// the toolchain does not have: with cargo that is rustc's first error, here it would come only
/// after the derivations are written.
fn check_targets_installed(ws: &Workspace, toolchain: &Toolchain) -> Result<()> {
    let mut triples: Vec<&str> = ws.graph.units.iter().filter_map(|u| u.platform.as_deref()).collect();
    triples.sort_unstable();
    triples.dedup();
    for t in triples {
        if !toolchain.sysroot.join("lib/rustlib").join(t).join("lib").is_dir() {
            bail!(
                "can't find crate for `std`\n  |\n  = note: the `{t}` target may not be installed\n  \
                 = help: consider downloading the target with `rustup target add {t}`"
            );
        }
    }
    Ok(())
}
