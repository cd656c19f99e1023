//! `cargo nix`: cargo's build and test, with every unit a Nix derivation realised in-process.
//!
//! ```text
//! cargo nix build [--release] [-p PKG] [--workspace] [--features F] [--no-default-features]
//!                 [--all-features] [-j N] [--target-dir DIR] [--manifest-path PATH]
//!                 [--store URI] [--local-store URI] [--keep-going] [--cache URI] [-v]
//!                 [--message-format human|short|json|json-diagnostic-short|
//!                                   json-diagnostic-rendered-ansi|json-render-diagnostics]
//!                 [--progress auto|always|never]
//! cargo nix test  [same flags] [-- TEST ARGS]
//! cargo nix roots [--target-dir DIR] [--manifest-path PATH]   (GC roots held by target/)
//! cargo nix clean [--target-dir DIR] [--manifest-path PATH]   (remove target/, dropping them)
//! ```
//!
//! Ctrl-C (SIGINT) and SIGTERM stop the build as cargo does: no new unit starts, the builders
//! in flight are killed (through Nix's own interrupt, see [`nix_rs::interrupt`]), nothing is
//! installed into the target directory, and the exit status is 128 + the signal (130 for
//! SIGINT). A second signal exits at once.

use std::collections::HashSet;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use cargo_backend::cache::Cache;
use cargo_backend::install::list_roots;
use cargo_backend::messages::{self, MessageFormat};
use cargo_backend::plan::{ArtifactKind, Plan, PlannedUnit};
use cargo_backend::spec::{Action, SPEC_ENV, UnitSpec};
use cargo_backend::toolchain::ToolchainSource;
use cargo_backend::{BuildOptions, CargoArgs, CargoCommand, Failure, Outcome, Reporter, Stop, Toolchain, Workspace};
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
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
    /// Show each unit's command and derivation as it starts, fresh units, and at the end
    /// timings and every unit's outcome, derivation and output path.
    #[arg(short, long)]
    verbose: bool,
    /// How diagnostics and artifacts are reported: human, short, json, json-diagnostic-short,
    /// json-diagnostic-rendered-ansi, json-render-diagnostics (JSON goes to stdout).
    #[arg(long, value_name = "FMT", value_delimiter = ',')]
    message_format: Vec<String>,
    /// When to show the progress bar on stderr (default: `CARGO_TERM_PROGRESS_WHEN`, else auto,
    /// i.e. when stderr is a terminal).
    #[arg(long, value_name = "WHEN")]
    progress: Option<ProgressWhen>,
    /// Pipelining: libraries compile against their dependencies' metadata (a metadata-only
    /// derivation per library) instead of waiting for their code.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Switch::Off)]
    pipelining: Switch,
    /// Where builds take rustc from: `store` adds rustc's sysroot to the store (once, by
    /// content), `host` uses it where it is installed, `auto` (default) picks `store` for a
    /// daemon store or with Nix's sandbox on.
    #[arg(long, value_enum, value_name = "WHERE", default_value_t = ToolchainFrom::Auto)]
    toolchain: ToolchainFrom,
}

/// `--toolchain`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ToolchainFrom {
    Auto,
    Store,
    Host,
}

/// On or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Switch {
    On,
    Off,
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

/// When to show the progress bar (cargo's `term.progress.when`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProgressWhen {
    /// When stderr is a terminal.
    Auto,
    /// Always, even when stderr is not a terminal.
    Always,
    /// Never.
    Never,
}

impl ProgressWhen {
    /// `--progress`, else `CARGO_TERM_PROGRESS_WHEN`, else `auto`.
    fn resolve(flag: Option<ProgressWhen>) -> Result<ProgressWhen> {
        if let Some(w) = flag {
            return Ok(w);
        }
        match std::env::var("CARGO_TERM_PROGRESS_WHEN") {
            Ok(v) if !v.is_empty() => ProgressWhen::from_str(&v, true)
                .map_err(|_| anyhow::anyhow!("CARGO_TERM_PROGRESS_WHEN: expected auto, always or never, got `{v}`")),
            _ => Ok(ProgressWhen::Auto),
        }
    }
}

/// stderr as indicatif's terminal when it is not a terminal (`--progress always`): the bar is
/// drawn with plain ANSI cursor movements, `CARGO_TERM_PROGRESS_WIDTH` or `COLUMNS` wide
/// (default 100).
#[derive(Debug)]
struct StderrTerm {
    width: u16,
}

impl StderrTerm {
    fn write(&self, s: &str) -> std::io::Result<()> {
        std::io::stderr().lock().write_all(s.as_bytes())
    }
}

impl TermLike for StderrTerm {
    fn width(&self) -> u16 {
        self.width
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}A")) } else { Ok(()) }
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}B")) } else { Ok(()) }
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}C")) } else { Ok(()) }
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        if n > 0 { self.write(&format!("\x1b[{n}D")) } else { Ok(()) }
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.write(&format!("{s}\n"))
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.write(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.write("\r\x1b[2K")
    }
    fn flush(&self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Prints cargo-style status lines on stderr, JSON messages on stdout, and the progress bar,
/// keeping every line above the bar.
struct Status {
    color: bool,
    bar: ProgressBar,
    /// Whether the bar has been shown and not yet cleared.
    bar_active: AtomicBool,
}

impl Status {
    fn new(color: bool, progress: ProgressWhen) -> Status {
        let target = match progress {
            ProgressWhen::Never => None,
            ProgressWhen::Auto if !std::io::stderr().is_terminal() => None,
            ProgressWhen::Auto => Some(ProgressDrawTarget::stderr_with_hz(10)),
            ProgressWhen::Always if std::io::stderr().is_terminal() => Some(ProgressDrawTarget::stderr_with_hz(10)),
            ProgressWhen::Always => {
                let width = ["CARGO_TERM_PROGRESS_WIDTH", "COLUMNS"]
                    .iter()
                    .find_map(|v| std::env::var(v).ok().and_then(|c| c.parse().ok()))
                    .unwrap_or(100);
                Some(ProgressDrawTarget::term_like_with_hz(Box::new(StderrTerm { width }), 10))
            }
        };
        let bar = match target {
            None => ProgressBar::hidden(),
            Some(target) => {
                let template = if color {
                    "{prefix:>12.cyan.bold} [{bar:27}] {pos}/{len}: {wide_msg}"
                } else {
                    "{prefix:>12} [{bar:27}] {pos}/{len}: {wide_msg}"
                };
                let style = ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> ");
                ProgressBar::with_draw_target(Some(0), target).with_style(style).with_prefix("Building")
            }
        };
        Status { color, bar, bar_active: AtomicBool::new(false) }
    }

    /// Shows the bar for `total` units.
    fn start_progress(&self, total: usize) {
        if !self.bar.is_hidden() {
            self.bar.set_length(total as u64);
            self.bar_active.store(true, Ordering::Relaxed);
            self.bar.tick();
        }
    }

    /// Removes the bar (before "Finished" and anything printed after the build).
    fn finish_progress(&self) {
        if self.bar_active.swap(false, Ordering::Relaxed) {
            self.bar.finish_and_clear();
        }
    }

    /// Runs `f`, which prints, with the bar out of the way.
    fn print<R>(&self, f: impl FnOnce() -> R) -> R {
        if self.bar_active.load(Ordering::Relaxed) { self.bar.suspend(f) } else { f() }
    }

    fn line(&self, verb: &str, text: &str) {
        self.print(|| {
            let mut err = std::io::stderr().lock();
            if self.color {
                let _ = writeln!(err, "\x1b[1;32m{verb:>12}\x1b[0m {text}");
            } else {
                let _ = writeln!(err, "{verb:>12} {text}");
            }
        });
    }

    fn error(&self, text: &str) {
        self.labelled("error", "1;31", text);
    }

    fn warning(&self, text: &str) {
        self.labelled("warning", "1;33", text);
    }

    /// `label: text`, the label in bold `colour` (an SGR code) on a terminal.
    fn labelled(&self, label: &str, colour: &str, text: &str) {
        self.print(|| {
            if self.color {
                eprintln!("\x1b[{colour}m{label}\x1b[0m: {text}");
            } else {
                eprintln!("{label}: {text}");
            }
        });
    }

    /// Text that may carry ANSI colours (rustc's rendered diagnostics).
    fn raw(&self, text: &str) {
        if text.is_empty() {
            return;
        }
        let text = if self.color { text.to_owned() } else { nix_rs::strip_ansi(text) };
        self.print(|| {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(text.as_bytes());
            if !text.ends_with('\n') {
                let _ = err.write_all(b"\n");
            }
        });
    }

    /// One JSON message on stdout.
    fn json(&self, line: &str) {
        self.print(|| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
    }
}

/// A command line as a shell would take it back: words with special characters single-quoted.
fn shell_join<S: AsRef<str>>(words: &[S]) -> String {
    let quote = |w: &str| {
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "_-./=:,+@%".contains(c)) {
            w.to_owned()
        } else {
            format!("'{}'", w.replace('\'', r"'\''"))
        }
    };
    words.iter().map(|w| quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

struct CliReporter<'a> {
    status: &'a Status,
    ws: &'a Workspace,
    store: &'a Store,
    format: MessageFormat,
    verbose: bool,
    announced: HashSet<String>,
    /// The plan, once [`Reporter::planned`] has been called.
    plan: Vec<PlannedUnit>,
    profile_dir: PathBuf,
    /// Units being built, with their progress-bar names, in start order.
    running: Vec<(usize, String)>,
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

    fn update_bar(&self) {
        let names: Vec<&str> = self.running.iter().map(|(_, n)| n.as_str()).collect();
        self.status.bar.set_message(names.join(", "));
    }

    /// `-v`: the command the unit runs (from the spec in its derivation) and the derivation.
    fn show_command(&self, index: usize) {
        let Some(p) = self.plan.get(index) else { return };
        let spec = self
            .store
            .read_derivation(&p.drv)
            .ok()
            .and_then(|d| d.env.get(SPEC_ENV).and_then(|json| serde_json::from_str::<UnitSpec>(json).ok()));
        match spec.map(|s| s.action) {
            Some(Action::Rustc { rustc, mut args, out_subdir, build_script, dep_build_scripts, .. }) => {
                args.insert(0, rustc);
                args.push("--out-dir".into());
                args.push(format!("{}/{out_subdir}", p.out));
                let added = if build_script.is_some() {
                    " (+ the cfgs, env and link flags of the build script's output)"
                } else if !dep_build_scripts.is_empty() {
                    " (+ link paths from dependencies' build scripts)"
                } else {
                    ""
                };
                self.status.line("Running", &format!("`{}`{added}", shell_join(&args)));
            }
            Some(Action::RunBuildScript { program, .. }) => {
                self.status.line("Running", &format!("`{}`", shell_join(&[program])));
            }
            None => {}
        }
        self.status.line("Derivation", p.drv.as_str());
    }

    /// The messages of a unit whose output is in the store: its diagnostics (replayed for a
    /// fresh unit, as cargo does), build-script warnings, and the JSON artifact messages.
    fn unit_done(&mut self, index: usize, fresh: bool) {
        let Some(p) = self.plan.get(index) else { return };
        let Ok(out) = self.store.real_path(&p.out) else { return };
        let json = self.format.is_json();
        if p.is_build_script_run {
            let Ok(bytes) = std::fs::read(out.join("output")) else { return };
            let Ok(o) = cargo_backend::build_script::BuildScriptOutput::parse(&bytes, &p.label) else { return };
            if p.is_member {
                for w in &o.warnings {
                    self.status.raw(&format!("warning: {}: {w}", p.package));
                }
            }
            if json {
                self.status.json(&messages::build_script_executed(self.ws, index, &o, &out.join("out-dir")));
            }
            return;
        }
        let mut warnings = 0;
        for d in cargo_backend::run_unit::diagnostics(&out) {
            let warning = d.get("level").and_then(|l| l.as_str()) == Some("warning");
            warnings += usize::from(warning && !messages::is_summary(&d));
            self.diagnostic(index, p.is_member, d);
        }
        let summary = warnings > 0
            && p.is_member
            && !matches!(self.format, MessageFormat::Json { render_diagnostics: false, .. });
        if summary {
            let unit = &self.ws.graph.units[index];
            let name = self.ws.package_of(index).map(|p| p.name.as_str()).unwrap_or(&unit.target.name);
            let s = if warnings == 1 { "" } else { "s" };
            let what = messages::target_description(unit);
            self.status.warning(&format!("`{name}` ({what}) generated {warnings} warning{s}"));
        }
        if json {
            let (files, exe) = messages::artifact_files(self.ws, p, &out, &self.profile_dir);
            if let Ok(line) = messages::compiler_artifact(self.ws, index, &files, exe.as_deref(), fresh) {
                self.status.json(&line);
            }
        }
    }

    /// One of rustc's diagnostics, as the message format wants it (rustc's closing summary is
    /// dropped, as cargo does).
    fn diagnostic(&self, index: usize, is_member: bool, mut d: serde_json::Value) {
        if messages::is_summary(&d) {
            return;
        }
        if let Ok(pkg) = self.ws.package_of(index) {
            let dir = pkg.manifest_dir.strip_prefix(&self.ws.root).unwrap_or(&pkg.manifest_dir);
            messages::relocate(&mut d, dir);
        }
        if let MessageFormat::Json { render_diagnostics: false, .. } = self.format {
            if let Ok(line) = messages::compiler_message(self.ws, index, self.format.json_diagnostic(&d)) {
                self.status.json(&line);
            }
        } else if let (true, Some(text)) = (is_member, self.format.human_diagnostic(&d)) {
            self.status.raw(&text);
        }
    }

    /// A failed unit: its diagnostics as the format wants them, then the rest of its log.
    fn failed(&self, index: usize, failure: &Failure) {
        for d in &failure.diagnostics {
            self.diagnostic(index, true, d.clone());
        }
        self.status.raw(failure.message_without_diagnostics().trim_start_matches('\n'));
    }
}

impl Reporter for CliReporter<'_> {
    fn planned(&mut self, plan: &Plan) {
        self.plan = plan.units.clone();
    }

    fn total(&mut self, units: usize) {
        self.status.start_progress(units);
    }

    fn started(&mut self, index: usize) {
        self.announce(index, "Compiling");
        if self.verbose {
            self.show_command(index);
        }
        let unit = &self.ws.graph.units[index];
        let package = self.ws.package_of(index).map(|p| p.name.as_str()).unwrap_or(&unit.target.name);
        self.running.push((index, messages::progress_name(unit, package)));
        self.update_bar();
    }

    fn finished(&mut self, index: usize, outcome: &Outcome) {
        self.running.retain(|(i, _)| *i != index);
        self.status.bar.inc(1);
        self.update_bar();
        match outcome {
            Outcome::Built(_) => self.unit_done(index, false),
            Outcome::Reused | Outcome::Substituted => {
                if self.verbose {
                    self.announce(index, "Fresh");
                }
                self.unit_done(index, true);
            }
            Outcome::Failed(failure) => self.failed(index, failure),
            Outcome::Skipped | Outcome::NotNeeded | Outcome::Interrupted => {}
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

    fn interrupted(&mut self, in_flight: usize) {
        self.status.line("Stopping", &format!("{in_flight} unit(s) in flight (interrupted)"));
    }
}

/// The signal that interrupted this run (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Handles SIGINT and SIGTERM on a thread of their own: the first one stops the build (the
/// scheduler through `stop`, the builders in flight through Nix's interrupt); a second one
/// exits at once.
fn handle_signals(stop: Stop) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).context("handling SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("cargo-nix-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if SIGNAL.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    eprintln!("error: {} again: exiting at once", signal_name(sig));
                    std::process::exit(128 + sig);
                }
                stop.request();
                nix_rs::interrupt();
            }
        })
        .context("starting the signal-handling thread")?;
    Ok(())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
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

type Built = (cargo_backend::BuildReport, Workspace, bool);

/// Builds, and in the JSON formats ends stdout with `build-finished` (also when the build could
/// not run).
fn build(args: &BuildArgs, command: CargoCommand, status: &Status, stop: &Stop) -> Result<Built> {
    let format = MessageFormat::parse(&args.message_format).map_err(anyhow::Error::msg)?;
    let result = build_in(args, command, status, format, stop);
    if format.is_json() {
        status.json(&messages::build_finished(result.as_ref().is_ok_and(|(_, _, ok)| *ok)));
    }
    result
}

fn build_in(
    args: &BuildArgs,
    command: CargoCommand,
    status: &Status,
    format: MessageFormat,
    stop: &Stop,
) -> Result<Built> {
    let start = Instant::now();
    let cargo_args = args.cargo_args();
    let cache_file = cargo_args.manifest().and_then(|m| Cache::file_for(&m));
    let mut cache = cache_file.as_deref().map(Cache::load).unwrap_or_default();
    let ws = Workspace::load_cached(command, &cargo_args, &mut cache)?;
    let cargo_time = start.elapsed();
    let toolchain = Toolchain::detect_cached(&mut cache)?;
    let (store, local_store) = open_stores(args)?;
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
        ..BuildOptions::default()
    };
    if let Some(j) = args.jobs {
        if j == 0 {
            bail!("-j must be at least 1");
        }
        options.jobs = j;
    }
    let mut reporter = CliReporter {
        status,
        ws: &ws,
        store: &store,
        format,
        verbose: args.verbose,
        announced: HashSet::new(),
        plan: Vec::new(),
        profile_dir: std::path::absolute(cargo_backend::profile_dir(&ws))?,
        running: Vec::new(),
    };
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
            let outcome = match u.outcome {
                Outcome::Built(_) => "built",
                Outcome::Reused => "reused",
                Outcome::Substituted => "substituted",
                Outcome::Failed(_) => "failed",
                Outcome::Skipped => "skipped",
                Outcome::Interrupted => "interrupted",
                Outcome::NotNeeded => "not needed",
            };
            status.line("Unit", &format!("{} [{}] {outcome}: {} -> {}", u.label, u.target_name, u.drv, u.out));
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

fn run(cli: Cli, stop: &Stop) -> Result<ExitCode> {
    let progress = match &cli.command {
        Command::Build(a) | Command::Test { build: a, .. } => ProgressWhen::resolve(a.progress)?,
        _ => ProgressWhen::Never,
    };
    let status = Status::new(std::io::stderr().is_terminal(), progress);
    match cli.command {
        Command::Build(args) => {
            let (_, _, ok) = build(&args, CargoCommand::Build, &status, stop)?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Test { build: args, test_args } => {
            let (report, ws, ok) = build(&args, CargoCommand::Test, &status, stop)?;
            if !ok {
                return Ok(ExitCode::FAILURE);
            }
            let mut failed = Vec::new();
            for inst in report.installed.iter().filter(|i| i.kind == ArtifactKind::Test) {
                if stop.is_requested() {
                    break;
                }
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
    let cli = Cli::parse_from(args);
    let status = Status::new(std::io::stderr().is_terminal(), ProgressWhen::Never);
    let stop = Stop::default();
    if let Err(e) = handle_signals(stop.clone()) {
        status.error(&format!("{e:#}"));
        return ExitCode::FAILURE;
    }
    let result = run(cli, &stop);
    let sig = SIGNAL.load(Ordering::SeqCst);
    if sig != 0 {
        // Whatever failed after the signal failed because of it: say so, not what broke.
        let detail = match &result {
            Err(e) => match e.downcast_ref::<cargo_backend::Error>() {
                Some(cargo_backend::Error::Interrupted(text)) => text.clone(),
                _ => "the build stopped; nothing was installed".to_owned(),
            },
            Ok(_) => "the run had finished".to_owned(),
        };
        status.error(&format!("interrupted by {}: {detail}", signal_name(sig)));
        return ExitCode::from(128 + sig as u8);
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            status.error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
