//! `cargo nix`: cargo's build and test, with every unit a Nix derivation realised in-process.
//!
//! ```text
//! cargo nix build [--release] [-p PKG] [--workspace] [--features F] [--no-default-features]
//!                 [--all-features] [-j N] [--target-dir DIR] [--manifest-path PATH]
//!                 [--store URI] [--local-store URI] [--cache URI] [--keep-going]
//! cargo nix test  [same flags] [-- TEST ARGS]
//! cargo nix roots [--target-dir DIR] [--manifest-path PATH]   (GC roots held by target/)
//! cargo nix clean [--target-dir DIR] [--manifest-path PATH]   (remove target/, dropping them)
//! ```

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cargo_backend::cache::Cache;
use cargo_backend::install::list_roots;
use cargo_backend::plan::ArtifactKind;
use cargo_backend::{BuildOptions, CargoArgs, CargoCommand, Outcome, Reporter, Toolchain, Workspace};
use clap::{Args, Parser, Subcommand};
use nix_rs::Store;

#[derive(Parser, Debug)]
#[command(
    name = "cargo-nix",
    bin_name = "cargo nix",
    version,
    about = "Build cargo workspaces as one Nix derivation per unit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compile the selected packages.
    Build(BuildArgs),
    /// Compile and run the selected packages' tests.
    Test {
        #[command(flatten)]
        build: BuildArgs,
        /// Arguments for the test executables.
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// List the GC roots the target directory holds.
    Roots(DirArgs),
    /// Remove the target directory (its GC roots go with it).
    Clean(DirArgs),
}

#[derive(Args, Debug)]
struct DirArgs {
    /// Directory for all generated artifacts.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Path to Cargo.toml.
    #[arg(long)]
    manifest_path: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BuildArgs {
    /// Build artifacts in release mode, with optimizations.
    #[arg(short, long)]
    release: bool,
    /// Package(s) to build.
    #[arg(short, long = "package")]
    package: Vec<String>,
    /// Build all packages in the workspace.
    #[arg(long)]
    workspace: bool,
    /// Space or comma separated list of features to activate.
    #[arg(short = 'F', long)]
    features: Vec<String>,
    /// Do not activate the `default` feature.
    #[arg(long)]
    no_default_features: bool,
    /// Activate all available features.
    #[arg(long)]
    all_features: bool,
    /// Number of units built at once (default: the number of cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Directory for all generated artifacts.
    #[arg(long)]
    target_dir: Option<PathBuf>,
    /// Path to Cargo.toml.
    #[arg(long)]
    manifest_path: Option<PathBuf>,
    /// The Nix store to build in (default: the default store, `auto`). It may be on another
    /// machine (`ssh-ng://user@host`); see --local-store.
    #[arg(long, default_value = "auto")]
    store: String,
    /// The store on this machine that target/ links into, when it is not --store: the outputs
    /// of linked units and of workspace members are copied to it after the build (default:
    /// --store when that is on this machine, else the default store, `auto`).
    #[arg(long, value_name = "STORE-URI")]
    local_store: Option<String>,
    /// Build as many units as possible after a failure.
    #[arg(long)]
    keep_going: bool,
    /// A binary cache (Nix store URI) to substitute unit outputs from and push built ones to.
    #[arg(long, value_name = "STORE-URI")]
    cache: Option<String>,
    /// Read cargo's unit graph from this file instead of asking cargo.
    #[arg(long, value_name = "FILE")]
    unit_graph: Option<PathBuf>,
    /// Print each unit's derivation and output path at the end.
    #[arg(short, long)]
    verbose: bool,
}

impl BuildArgs {
    fn cargo_args(&self) -> CargoArgs {
        CargoArgs {
            manifest_path: self.manifest_path.clone(),
            release: self.release,
            packages: self.package.clone(),
            workspace: self.workspace,
            features: self.features.clone(),
            no_default_features: self.no_default_features,
            all_features: self.all_features,
            target_dir: self.target_dir.clone(),
            extra: Vec::new(),
            unit_graph_file: self.unit_graph.clone(),
        }
    }
}

/// Prints cargo-style status lines.
struct Status {
    color: bool,
}

impl Status {
    fn line(&self, verb: &str, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.color {
            let _ = writeln!(err, "\x1b[1;32m{verb:>12}\x1b[0m {text}");
        } else {
            let _ = writeln!(err, "{verb:>12} {text}");
        }
    }

    fn error(&self, text: &str) {
        if self.color {
            eprintln!("\x1b[1;31merror\x1b[0m: {text}");
        } else {
            eprintln!("error: {text}");
        }
    }

    /// Text that may carry ANSI colours (rustc's rendered diagnostics).
    fn raw(&self, text: &str) {
        let text = if self.color { text.to_owned() } else { nix_rs::strip_ansi(text) };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = err.write_all(b"\n");
        }
    }
}

struct CliReporter<'a> {
    status: &'a Status,
    ws: &'a Workspace,
    announced: HashSet<String>,
}

impl CliReporter<'_> {
    fn announce(&mut self, index: usize, verb: &str) {
        let unit = &self.ws.graph.units[index];
        if let Ok(pkg) = self.ws.package_of(index) {
            let label = match unit.source_kind() {
                cargo_backend::unit_graph::SourceKind::Path(_) => {
                    format!("{} v{} ({})", pkg.name, pkg.version, pkg.manifest_dir.display())
                }
                _ => format!("{} v{}", pkg.name, pkg.version),
            };
            if self.announced.insert(label.clone()) {
                self.status.line(verb, &label);
            }
        }
    }
}

impl Reporter for CliReporter<'_> {
    fn started(&mut self, index: usize) {
        self.announce(index, "Compiling");
    }

    fn finished(&mut self, _index: usize, outcome: &Outcome) {
        if let Outcome::Failed(text) = outcome {
            self.status.raw(text);
        }
    }

    fn push_failed(&mut self, index: usize, error: &str) {
        self.status.raw(&format!("warning: could not push unit {index} to the binary cache: {error}"));
    }

    fn stopping(&mut self, in_flight: usize) {
        if in_flight > 0 {
            self.status.line("Waiting", &format!("for {in_flight} unit(s) in flight to finish"));
        }
    }
}

fn open_store(uri: &str) -> Result<Store> {
    Store::open(uri).with_context(|| format!("opening the Nix store '{uri}'"))
}

/// The store to build in, made the one Nix's build hook uses (remote builders copy inputs from
/// and outputs back into it), and the local store target/ links into when that is another.
fn open_stores(args: &BuildArgs) -> Result<(Store, Option<Store>)> {
    let store = open_store(&args.store)?;
    store.set_as_default().with_context(|| format!("making '{}' Nix's `store` setting", args.store))?;
    let local = match &args.local_store {
        Some(uri) => Some(open_store(uri).context("opening the --local-store")?),
        None if !store.is_on_this_machine() => Some(
            open_store("auto")
                .with_context(|| format!("'{}' is not on this machine; opening the local store", args.store))?,
        ),
        None => None,
    };
    Ok((store, local))
}

fn show_warnings(status: &Status, store: &Store, report: &cargo_backend::BuildReport) {
    for u in &report.units {
        if !u.is_member || !u.outcome.is_success() {
            continue;
        }
        let Ok(out) = store.real_path(&u.out) else { continue };
        if u.is_build_script_run {
            if let Ok(bytes) = std::fs::read(out.join("output")) {
                if let Ok(o) = cargo_backend::build_script::BuildScriptOutput::parse(&bytes, &u.label) {
                    for w in o.warnings {
                        status.raw(&format!("warning: {}: {w}", u.package));
                    }
                }
            }
        } else {
            for d in cargo_backend::run_unit::rendered_diagnostics(&out) {
                status.raw(&d);
            }
        }
    }
}

fn build(
    args: &BuildArgs,
    command: CargoCommand,
    status: &Status,
) -> Result<(cargo_backend::BuildReport, Workspace, bool)> {
    let start = Instant::now();
    let cargo_args = args.cargo_args();
    let cache_file = cargo_args.manifest().and_then(|m| Cache::file_for(&m));
    let mut cache = cache_file.as_deref().map(Cache::load).unwrap_or_default();
    let ws = Workspace::load_cached(command, &cargo_args, &mut cache)?;
    let cargo_time = start.elapsed();
    let toolchain = Toolchain::detect_cached(&mut cache)?;
    let toolchain_time = start.elapsed() - cargo_time;
    let (store, local_store) = open_stores(args)?;
    let mut options =
        BuildOptions { keep_going: args.keep_going, cache: args.cache.clone(), ..BuildOptions::default() };
    if let Some(j) = args.jobs {
        if j == 0 {
            bail!("-j must be at least 1");
        }
        options.jobs = j;
    }
    let mut reporter = CliReporter { status, ws: &ws, announced: HashSet::new() };
    let report = cargo_backend::build_with_cache(
        &store,
        local_store.as_ref(),
        &ws,
        &toolchain,
        &options,
        &mut reporter,
        &mut cache,
    )?;
    if let Some(f) = &cache_file {
        cache.save(f);
    }
    show_warnings(status, local_store.as_ref().unwrap_or(&store), &report);
    for w in &report.warnings {
        status.raw(&format!("warning: {w}"));
    }
    if args.verbose {
        status.line(
            "Timings",
            &format!(
                "cargo {:.3}s, toolchain {:.3}s, sources {:.3}s, derivations {:.3}s, realise {:.3}s, copy {:.3}s",
                cargo_time.as_secs_f64(),
                toolchain_time.as_secs_f64(),
                report.source_time.as_secs_f64(),
                (report.plan_time - report.source_time).as_secs_f64(),
                report.build_time.as_secs_f64(),
                report.copy_time.as_secs_f64()
            ),
        );
        for u in &report.units {
            status.line("Unit", &format!("{} [{}] {} -> {}", u.label, u.target_name, u.drv, u.out));
        }
    }
    let ok = report.success();
    let profile = if args.release { "release" } else { "dev" };
    let opt = if args.release { "optimized" } else { "unoptimized + debuginfo" };
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
    } else {
        status.error(&format!(
            "build failed: {} unit(s) failed, {} not built ({} built, {} reused)",
            report.failed(),
            report.skipped(),
            report.built(),
            report.reused()
        ));
    }
    Ok((report, ws, ok))
}

fn target_dir(dir: &DirArgs) -> Result<PathBuf> {
    if let Some(t) = &dir.target_dir {
        return Ok(t.clone());
    }
    let mut meta = cargo_metadata::MetadataCommand::new();
    meta.no_deps();
    if let Some(m) = &dir.manifest_path {
        meta.manifest_path(m);
    }
    Ok(meta.exec()?.target_directory.into_std_path_buf())
}

fn run(cli: Cli) -> Result<ExitCode> {
    let status = Status { color: std::io::stderr().is_terminal() };
    match cli.command {
        Command::Build(args) => {
            let (_, _, ok) = build(&args, CargoCommand::Build, &status)?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Test { build: args, test_args } => {
            let (report, ws, ok) = build(&args, CargoCommand::Test, &status)?;
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
            let mut failed = Vec::new();
            for inst in report.installed.iter().filter(|i| i.kind == ArtifactKind::Test) {
                let unit = &ws.graph.units[inst.unit];
                let pkg = ws.package_of(inst.unit)?;
                status.line("Running", &format!("{} ({})", unit.target.src_path.display(), inst.path.display()));
                // cargo runs tests from the package's directory.
                let st = std::process::Command::new(&inst.path)
                    .args(&test_args)
                    .current_dir(&pkg.manifest_dir)
                    .status()
                    .with_context(|| format!("running {}", inst.path.display()))?;
                if !st.success() {
                    failed.push(inst.path.display().to_string());
                }
            }
            if failed.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                status.error(&format!("test failed: {}", failed.join(", ")));
                Ok(ExitCode::FAILURE)
            }
        }
        Command::Roots(dir) => {
            for (link, to) in list_roots(&target_dir(&dir)?) {
                println!("{} -> {}", link.display(), to.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Clean(dir) => {
            let t = target_dir(&dir)?;
            let n = list_roots(&t).len();
            if t.exists() {
                std::fs::remove_dir_all(&t).with_context(|| format!("removing {}", t.display()))?;
            }
            status.line("Removed", &format!("{} ({n} GC roots dropped)", t.display()));
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    // `cargo nix build` runs `cargo-nix nix build`.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "nix") {
        args.remove(1);
    }
    match run(Cli::parse_from(args)) {
        Ok(code) => code,
        Err(e) => {
            let status = Status { color: std::io::stderr().is_terminal() };
            status.error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
