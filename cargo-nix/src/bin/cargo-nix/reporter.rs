//! The build's reporter: what `cargo nix` prints as units start and finish (cargo's
//! "Compiling" lines, diagnostics, `--message-format json` messages).

use std::collections::HashSet;
use std::path::PathBuf;

use cargo_backend::messages::{self, MessageFormat};
use cargo_backend::plan::{Plan, PlannedUnit};
use cargo_backend::spec::{Action, SPEC_ENV, UnitSpec};
use cargo_backend::{Failure, Outcome, Reporter, Workspace, warnings};
use nix_rs::{Store, StorePath};

use crate::status::{Status, shell_join};

/// Reports a build the way cargo does.
pub struct CliReporter<'a> {
    pub status: &'a Status,
    pub ws: &'a Workspace,
    /// The store, when it is open (a no-op answered from the record has none:
    /// [`cargo_backend::noop`]).
    pub store: Option<&'a Store>,
    /// Where the store's paths are on this machine, when known without the store.
    pub real_store_dir: Option<PathBuf>,
    pub format: MessageFormat,
    pub verbose: bool,
    pub announced: HashSet<String>,
    /// The planned units by index, as they are planned ([`Reporter::unit_planned`]).
    pub plan: Vec<Option<PlannedUnit>>,
    pub profile_dir: PathBuf,
    /// Whether units keep incremental state (`-v` shows their `-C incremental=`), as the
    /// build says ([`Reporter::incremental_state`]).
    pub incremental: bool,
    /// Units being built, with their progress-bar names, in start order.
    pub running: Vec<(usize, String)>,
    /// The diagnostics shown so far: an identical one is counted as a duplicate, not shown.
    pub shown: warnings::Dedupe,
    /// Whether a unit's failure was shown (cargo's "waiting for other jobs" warning follows
    /// an error only).
    pub failure_shown: bool,
}

impl CliReporter<'_> {
    /// Where `p` is on this machine.
    fn real_path(&self, p: &StorePath) -> Option<PathBuf> {
        match (&self.real_store_dir, self.store) {
            (Some(dir), _) => Some(dir.join(p.base_name())),
            (None, Some(store)) => store.real_path(p).ok(),
            (None, None) => None,
        }
    }

    fn announce(&mut self, index: usize, verb: &str) {
        let unit = &self.ws.graph.units[index];
        if let Ok(pkg) = self.ws.package_of(index) {
            let _ = unit;
            let label = if pkg.source == "path" {
                format!("{} v{} ({})", pkg.name, pkg.version, pkg.manifest_dir.display())
            } else {
                format!("{} v{}", pkg.name, pkg.version)
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
        let Some(Some(p)) = self.plan.get(index) else { return };
        let spec = self
            .store
            .and_then(|s| s.read_derivation(&p.drv).ok())
            .and_then(|d| d.env.get(SPEC_ENV).and_then(|json| serde_json::from_str::<UnitSpec>(json).ok()));
        let incremental =
            cargo_backend::incremental::unit_dir(self.ws, p, &self.profile_dir).filter(|_| self.incremental);
        match spec.map(|s| s.action) {
            Some(Action::Rustc { rustc, mut args, out_subdir, build_script, dep_build_scripts, .. }) => {
                args.insert(0, rustc);
                args.push("--out-dir".into());
                match incremental {
                    // The builder moves what rustc writes there to the output afterwards.
                    Some(dir) => {
                        args.push(cargo_backend::incremental::rustc_out_dir(&dir).display().to_string());
                        let state = cargo_backend::incremental::rustc_dir(&dir);
                        args.extend(["-C".into(), format!("incremental={}", state.display())]);
                    }
                    None => args.push(format!("{}/{out_subdir}", p.out)),
                }
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
        let Some(Some(p)) = self.plan.get(index) else { return };
        let Some(out) = self.real_path(&p.out) else { return };
        let json = self.format.is_json();
        if p.is_build_script_run {
            let Ok(bytes) = std::fs::read(out.join("output")) else { return };
            let Ok(o) = cargo_backend::build_script::BuildScriptOutput::parse(&bytes, &p.label) else { return };
            if p.is_member {
                for w in &o.warnings {
                    self.status.warning(&format!("{}: {w}", p.package));
                }
            }
            if json {
                self.status.json(&messages::build_script_executed(self.ws, index, &o, &out.join("out-dir")));
            }
            return;
        }
        let is_member = p.is_member;
        let mut counts = warnings::Counts::default();
        for d in cargo_backend::run_unit::diagnostics(&out) {
            self.diagnostic(index, is_member, d, &mut counts);
        }
        if let Some(line) = self.generated_line(index, is_member, counts) {
            self.status.warning(&line);
        }
        if json {
            let Some(Some(p)) = self.plan.get(index) else { return };
            let (files, exe) = messages::artifact_files(self.ws, p, &out, &self.profile_dir);
            if let Ok(line) = messages::compiler_artifact(self.ws, index, &files, exe.as_deref(), fresh) {
                self.status.json(&line);
            }
        }
    }

    /// One of rustc's diagnostics, as the message format wants it (rustc's closing summary is
    /// dropped, as cargo does; one rendered as an earlier one was is not shown again), counted
    /// into `counts`.
    fn diagnostic(&mut self, index: usize, is_member: bool, d: serde_json::Value, counts: &mut warnings::Counts) {
        if messages::is_summary(&d) {
            return;
        }
        // rustc runs as cargo runs it (from the workspace root for its path packages, with
        // absolute crate roots otherwise), so its file names are already cargo's.
        if let MessageFormat::Json { render_diagnostics: false, .. } = self.format {
            counts.add(&d, true);
            if let Ok(line) = messages::compiler_message(self.ws, index, self.format.json_diagnostic(&d)) {
                self.status.json(&line);
            }
        } else if let (true, Some(text)) = (is_member, self.format.human_diagnostic(&d)) {
            let shown = self.shown.first_time(&text);
            counts.add(&d, shown);
            if shown {
                self.status.raw(&text);
            }
        }
    }

    /// The name of unit `index`'s package (its target's, when the package is not known).
    fn package_name(&self, index: usize) -> &str {
        self.ws.package_of(index).map(|p| p.name.as_str()).unwrap_or(&self.ws.graph.units[index].target.name)
    }

    /// cargo's "`name` (lib) generated N warnings …" line for a unit, when it shows one.
    fn generated_line(&self, index: usize, is_member: bool, counts: warnings::Counts) -> Option<String> {
        if !is_member || matches!(self.format, MessageFormat::Json { render_diagnostics: false, .. }) {
            return None;
        }
        warnings::generated_line(&self.ws.graph.units[index], self.package_name(index), counts, true)
    }

    /// A failed unit: its diagnostics as the format wants them, cargo's warning count and
    /// "could not compile" lines when rustc reported errors, then the rest of its log.
    fn failed(&mut self, index: usize, failure: &Failure) {
        self.failure_shown = true;
        let mut counts = warnings::Counts::default();
        for d in &failure.diagnostics {
            self.diagnostic(index, true, d.clone(), &mut counts);
        }
        let rest = failure.message_without_diagnostics();
        let rest = rest.trim_start_matches('\n');
        if counts.errors == 0 {
            self.status.raw(rest);
            return;
        }
        if let Some(line) = self.generated_line(index, true, counts) {
            self.status.warning(&line);
        }
        self.status.error(&warnings::could_not_compile(&self.ws.graph.units[index], self.package_name(index), counts));
        // The builder's own "could not compile <label> (exit status: 1)" says it again.
        let rest: Vec<&str> = rest.lines().filter(|l| !l.starts_with("error: could not compile ")).collect();
        let rest = rest.join("\n");
        if !rest.trim().is_empty() {
            self.status.raw(&rest);
        }
    }
}

impl Reporter for CliReporter<'_> {
    fn planned(&mut self, plan: &Plan) {
        self.plan = plan.units.iter().cloned().map(Some).collect();
    }

    fn unit_planned(&mut self, unit: &PlannedUnit) {
        if self.plan.len() <= unit.index {
            self.plan.resize(unit.index + 1, None);
        }
        self.plan[unit.index] = Some(unit.clone());
    }

    fn incremental_state(&mut self, kept: bool) {
        self.incremental = kept;
    }

    fn total(&mut self, units: usize) {
        self.status.start_progress(units);
    }

    fn started(&mut self, index: usize) {
        self.announce(index, "Compiling");
        if self.verbose {
            self.show_command(index);
        }
        let name = messages::progress_name(&self.ws.graph.units[index], self.package_name(index));
        self.running.push((index, name));
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
        // cargo's line (`JobQueue::handle_error`), after the first error, when jobs remain
        // (not when planning ended early: its error is shown at the end).
        if in_flight > 0 && self.failure_shown {
            self.status.warning("build failed, waiting for other jobs to finish...");
        }
    }

    fn interrupted(&mut self, in_flight: usize) {
        self.status.line("Stopping", &format!("{in_flight} unit(s) in flight (interrupted)"));
    }
}
