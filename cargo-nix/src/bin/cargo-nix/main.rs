//! `cargo nix`: cargo's build and test, with every unit a Nix derivation realised in-process.
//!
//! ```text
//! cargo nix build [--release] [-p PKG] [--workspace] [--features F] [--no-default-features]
//!                 [--all-features] [-j N] [--target-dir DIR] [--manifest-path PATH]
//!                 [--store URI] [--local-store URI] [--keep-going] [--cache URI] [-v]
//!                 [--message-format human|short|json|json-diagnostic-short|
//!                                   json-diagnostic-rendered-ansi|json-render-diagnostics]
//!                 [--progress auto|always|never]
//!                 [--profile NAME] [--target TRIPLE] [--lib] [--bin NAME] [--bins]
//!                 [--example NAME] [--examples] [--test NAME] [--tests] [--all-targets]
//!                 [--locked] [--offline] [--frozen]
//! cargo nix test  [same flags] [--no-fail-fast] [--doc] [TESTNAME] [-- TEST ARGS]
//! cargo nix run   [same flags] [-- ARGS]                     (as `cargo run`)
//! cargo nix check [same flags]                               (metadata only, as `cargo check`)
//! cargo nix roots [--target-dir DIR] [--manifest-path PATH]   (GC roots held by target/)
//! cargo nix clean [--target-dir DIR] [--manifest-path PATH]   (remove target/, dropping them)
//! ```
//!
//! The plan comes from cargo's own library in this process ([`cargo_nix::from_cargo`]); a
//! manifest or flag cargo rejects gets cargo's own error and exit status 101, with nothing
//! written to the store or the target directory.
//!
//! Ctrl-C (SIGINT) and SIGTERM stop the build as cargo does: no new unit starts, the builders
//! in flight are killed (through Nix's own interrupt, see [`nix_rs::interrupt`]), nothing is
//! installed into the target directory, and the exit status is 128 + the signal (130 for
//! SIGINT). A second signal exits at once.

mod args;
mod build;
mod reporter;
mod signals;
mod status;
mod test_runner;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use cargo_backend::install::list_roots;
use cargo_backend::{CargoCommand, Stop};
use cargo_nix::cargo;
use clap::Parser;

use args::{Cli, Command, DirArgs};
use status::{ProgressWhen, Status};

/// Exit status of a run that failed before or while building (cargo's).
const FAILURE: u8 = 101;

fn target_dir(dir: &DirArgs) -> Result<PathBuf> {
    if let Some(t) = &dir.target_dir {
        return Ok(t.clone());
    }
    let args = cargo_backend::CargoArgs { manifest_path: dir.manifest_path.clone(), ..Default::default() };
    let gctx = cargo_nix::from_cargo::global_context(&args)?;
    let manifest = cargo_nix::from_cargo::manifest_path(&gctx, &args)?;
    let ws = cargo::core::Workspace::new(&manifest, &gctx)?;
    Ok(ws.target_dir().into_path_unlocked())
}

fn run(cli: Cli, stop: &Stop) -> Result<ExitCode> {
    let (progress, quiet) = match &cli.command {
        Command::Build(a) | Command::Check(a) | Command::Test { build: a, .. } | Command::Run { build: a, .. } => {
            (if a.quiet { ProgressWhen::Never } else { ProgressWhen::resolve(a.progress)? }, a.quiet)
        }
        _ => (ProgressWhen::Never, false),
    };
    let mut status = Status::new(std::io::stderr().is_terminal(), progress);
    status.quiet = quiet;
    let done = |ok: bool| if ok { ExitCode::SUCCESS } else { ExitCode::from(FAILURE) };
    match cli.command {
        Command::Build(args) => Ok(done(build::build(&args, CargoCommand::Build, &status, stop)?.ok)),
        Command::Check(args) => Ok(done(build::build(&args, CargoCommand::Check, &status, stop)?.ok)),
        Command::Test { build: args, test_name, no_fail_fast, no_run, doc, test_args } => {
            let mut cargo_args = args.cargo_args();
            cargo_args.select.doc = doc;
            cargo_args.select.test_targets_only = test_name.is_some();
            let built = build::build_selected(&args, cargo_args, CargoCommand::Test, &status, stop)?;
            if !built.ok {
                return Ok(ExitCode::from(FAILURE));
            }
            if no_run {
                test_runner::list_executables(&built, &status)?;
                return Ok(ExitCode::SUCCESS);
            }
            // cargo: `TESTNAME` is the test executables' first argument.
            let all_args: Vec<String> = test_name.into_iter().chain(test_args).collect();
            let opts = test_runner::TestOptions {
                test_args: &all_args,
                no_fail_fast,
                verbose: args.verbose,
                quiet: args.quiet,
                packages_named: !args.package.is_empty() || args.workspace,
            };
            Ok(match test_runner::run_tests(&built, &opts, &status, stop)? {
                None => ExitCode::SUCCESS,
                Some(code) => ExitCode::from(code),
            })
        }
        Command::Run { build: args, args: program_args } => {
            let mut cargo_args = args.cargo_args();
            cargo_args.select.default_run = true;
            let built = build::build_selected(&args, cargo_args, CargoCommand::Build, &status, stop)?;
            if !built.ok {
                return Ok(ExitCode::from(FAILURE));
            }
            Ok(ExitCode::from(test_runner::run_program(&built, &program_args, &status)?))
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
    if let Command::Build(a) | Command::Check(a) | Command::Test { build: a, .. } | Command::Run { build: a, .. } =
        &cli.command
    {
        // Here, before the signal thread: the environment may only change while one thread runs.
        build::share_ssh_sessions(a);
    }
    let status = Status::new(std::io::stderr().is_terminal(), ProgressWhen::Never);
    let stop = Stop::default();
    if let Err(e) = signals::handle_signals(stop.clone()) {
        status.error(&format!("{e:#}"));
        return ExitCode::from(FAILURE);
    }
    let result = run(cli, &stop);
    let sig = signals::SIGNAL.load(Ordering::SeqCst);
    if sig != 0 {
        // Whatever failed after the signal failed because of it: say so, not what broke.
        let detail = match &result {
            Err(e) => match e.downcast_ref::<cargo_backend::Error>() {
                Some(cargo_backend::Error::Interrupted(text)) => text.clone(),
                _ => "the build stopped; nothing was installed".to_owned(),
            },
            Ok(_) => "the run had finished".to_owned(),
        };
        status.error(&format!("interrupted by {}: {detail}", signals::signal_name(sig)));
        return ExitCode::from(128 + sig as u8);
    }
    match result {
        Ok(code) => code,
        Err(e) => {
            // cargo's own errors were printed as cargo prints them (with their causes).
            if e.downcast_ref::<build::CargoError>().is_none() {
                status.error(&format!("{e:#}"));
            }
            ExitCode::from(FAILURE)
        }
    }
}
