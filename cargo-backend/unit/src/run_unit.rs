//! The builder side: executes a [`UnitSpec`] inside a Nix build (`cargo-nix-unit`).
//!
//! The process starts with Nix's builder environment (`out`, `unitSpecPath`, `TMPDIR`, …).
//! The child (rustc or a build script) gets a clean environment: the spec's, plus `PATH`,
//! Nix's temporary directory, and a `HOME` of its own inside the build directory (unless the
//! spec names one). Not Nix's `/homeless-shelter`: a tool that writes under `HOME` (a rustup
//! proxy, a compiler cache) would create it outside an unsandboxed build, after which Nix
//! refuses every build. What of the user's environment a build script sees is chosen by the
//! planner and written into the spec, so it is part of the derivation.
//!
//! Layout of `$out`: `lib/` or `bin/` (rustc artifacts), `diagnostics.jsonl` (rustc's JSON
//! diagnostics, one per line, for `--message-format json` and warnings on reuse);
//! for build-script runs `output` (the script's stdout) and `out-dir/` (its `OUT_DIR`).
//!
//! A failed unit has no `$out`, so the build log carries the diagnostics too: after each
//! diagnostic's rendered text comes one line [`DIAGNOSTIC_LOG_PREFIX`] + its JSON.
//! [`split_build_log`] separates the two again.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::build_script::BuildScriptOutput;
use crate::incremental::Session;
use crate::spec::{Action, UnitSpec};

/// The start of a build-log line that carries one of rustc's JSON diagnostics (the rest of
/// the line). Not `@nix `, which Nix reads as its own structured log.
pub const DIAGNOSTIC_LOG_PREFIX: &str = "@cargo-nix-diagnostic ";

/// Why a unit failed, printed to the build log (what the user sees).
#[derive(Debug)]
pub struct UnitFailure(pub String);

/// Runs the unit described by the builder's environment. Returns the failure to print.
pub fn run_from_env() -> Result<(), UnitFailure> {
    let spec_path = std::env::var_os(format!("{}Path", crate::spec::SPEC_ENV))
        .ok_or_else(|| UnitFailure("cargo-nix-unit: no unitSpecPath in the environment".into()))?;
    let out = std::env::var_os("out").ok_or_else(|| UnitFailure("cargo-nix-unit: no $out".into()))?;
    let text = fs::read_to_string(&spec_path).map_err(|e| UnitFailure(format!("reading the unit spec: {e}")))?;
    let spec: UnitSpec = serde_json::from_str(&text).map_err(|e| UnitFailure(format!("parsing the unit spec: {e}")))?;
    run(&spec, Path::new(&out))
}

fn base_command(spec: &UnitSpec, program: &str) -> Result<Command, UnitFailure> {
    let mut cmd = Command::new(program);
    cmd.env_clear().current_dir(working_dir(spec)?).env("PATH", &spec.path).envs(&spec.env);
    // Nix's own values, unless the spec passes the user's (a build script that declared one).
    for key in ["TMPDIR", "TMP", "TEMP", "TEMPDIR", "NIX_BUILD_TOP"] {
        if spec.env.contains_key(key) {
            continue;
        }
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    // cargo's jobserver, as cargo hands it to rustc and build scripts (not in the derivation:
    // see `jobserver`); without one offered, one of this build's own.
    if !spec.env.contains_key("CARGO_MAKEFLAGS") {
        if let Some(flags) = crate::jobserver::offered_by_parent().or_else(own_jobserver) {
            cmd.env("CARGO_MAKEFLAGS", flags);
        }
    }
    // Build scripts see cargo's `-j` as `NUM_JOBS` (the derivation says 1: its bytes must not
    // depend on `-j`).
    if spec.env.contains_key("NUM_JOBS") {
        cmd.env("NUM_JOBS", crate::jobserver::num_jobs().to_string());
    }
    if !spec.env.contains_key("HOME") {
        let home = build_dir().join("home");
        fs::create_dir_all(&home).map_err(|e| UnitFailure(format!("creating {}: {e}", home.display())))?;
        cmd.env("HOME", home);
    }
    Ok(cmd)
}

/// A jobserver of this build's own ([`crate::jobserver::own`]) in the build directory, made once
/// and kept open until the builder exits; `None` if it cannot be made (rustc then makes its own).
fn own_jobserver() -> Option<String> {
    static OWN: std::sync::OnceLock<Option<(fs::File, String)>> = std::sync::OnceLock::new();
    OWN.get_or_init(|| {
        let tokens = crate::jobserver::own_tokens(std::env::var("NIX_BUILD_CORES").ok().as_deref());
        crate::jobserver::own(&build_dir(), tokens).ok()
    })
    .as_ref()
    .map(|(_, flags)| flags.clone())
}

/// The build's own directory (Nix's `NIX_BUILD_TOP`).
fn build_dir() -> std::path::PathBuf {
    std::env::var_os("NIX_BUILD_TOP").map(std::path::PathBuf::from).unwrap_or_else(std::env::temp_dir)
}

/// The directory the child runs in: `spec.cwd`, or, with a `ws_subdir`, a workspace root made
/// in the build directory with the package linked at its place in the workspace.
fn working_dir(spec: &UnitSpec) -> Result<std::path::PathBuf, UnitFailure> {
    if spec.ws_subdir.is_empty() {
        return Ok(spec.cwd.clone().into());
    }
    let root = build_dir().join("ws");
    let link = root.join(&spec.ws_subdir);
    if let Some(parent) = link.parent() {
        fs::create_dir_all(parent).map_err(|e| UnitFailure(format!("creating {}: {e}", parent.display())))?;
    }
    if fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(&spec.cwd, &link)
            .map_err(|e| UnitFailure(format!("linking {} to {}: {e}", link.display(), spec.cwd)))?;
    }
    Ok(root)
}

fn read_script_output(dir: &str, package: &str) -> Result<BuildScriptOutput, UnitFailure> {
    let path = Path::new(dir).join("output");
    let bytes = fs::read(&path).map_err(|e| UnitFailure(format!("reading {}: {e}", path.display())))?;
    BuildScriptOutput::parse(&bytes, package).map_err(|e| UnitFailure(format!("error: {e}")))
}

/// Runs `spec` with `out` as the output directory.
pub fn run(spec: &UnitSpec, out: &Path) -> Result<(), UnitFailure> {
    let mkdir = |p: &Path| fs::create_dir_all(p).map_err(|e| UnitFailure(format!("creating {}: {e}", p.display())));
    match &spec.action {
        Action::Rustc { rustc, args, out_subdir, build_script, dep_build_scripts, link, metadata_only } => {
            let artifacts = out.join(out_subdir);
            mkdir(&artifacts)?;
            let offered = crate::incremental::offered(out).filter(|_| !*metadata_only);
            let session = match offered.as_ref().and_then(|o| o.dir.as_deref()) {
                Some(dir) => Some(incremental_session(dir, spec)?),
                None => None,
            };
            // With state, rustc writes into a directory of the state's (rustc tracks its output
            // directory too), and the files are moved to `$out` afterwards.
            let rustc_out = match &session {
                Some(s) => {
                    s.clear_out().map_err(|e| UnitFailure(format!("clearing {}: {e}", s.out().display())))?;
                    s.out()
                }
                None => artifacts.clone(),
            };
            let args = match &session {
                Some(s) => {
                    s.link_deps(args).map_err(|e| UnitFailure(format!("linking libraries for {}: {e}", spec.label)))?
                }
                None => args.clone(),
            };
            // Debug info names the workspace root, where cargo runs rustc (with or without
            // state: a `CARGO_INCREMENTAL=0` build runs in the store copy).
            let remap = match offered.as_ref().and_then(|o| o.workspace_root.as_deref()) {
                Some(root) => {
                    let cwd = match &session {
                        Some(s) => s.cwd(),
                        None => working_dir(spec)?,
                    };
                    Some(crate::incremental::remap_arg(&args, &cwd, root))
                }
                None => None,
            };
            let command = || -> Result<Command, UnitFailure> {
                let mut cmd = base_command(spec, rustc)?;
                cmd.args(&args);
                if let Some(bs) = build_script {
                    let o = read_script_output(bs, &spec.package)?;
                    for cfg in &o.cfgs {
                        cmd.arg("--cfg").arg(cfg);
                    }
                    for c in &o.check_cfgs {
                        cmd.arg("--check-cfg").arg(c);
                    }
                    for l in &o.library_links {
                        cmd.arg("-l").arg(l);
                    }
                    for p in &o.library_paths {
                        cmd.arg("-L").arg(p);
                    }
                    for arg in o.link_args_for(link) {
                        cmd.arg("-C").arg(format!("link-arg={arg}"));
                    }
                    cmd.envs(o.env.iter().map(|(k, v)| (k, v)));
                    cmd.env("OUT_DIR", Path::new(bs).join("out-dir"));
                }
                for dep in dep_build_scripts {
                    for p in read_script_output(dep, &spec.package)?.library_paths {
                        cmd.arg("-L").arg(p);
                    }
                }
                if *metadata_only {
                    cmd.arg("-Zno-codegen");
                }
                cmd.arg("--out-dir").arg(&rustc_out);
                if let Some(s) = &session {
                    cmd.current_dir(s.cwd());
                    cmd.arg("-C").arg(format!("incremental={}", s.state().display()));
                }
                if let Some(remap) = &remap {
                    cmd.arg(remap);
                }
                Ok(cmd)
            };
            let mut run = run_rustc(command()?, spec, out)?;
            if let Some(s) = session.as_ref().filter(|s| s.had_state && run.may_be_the_states_fault()) {
                // State only costs time: drop it and compile from scratch, once.
                eprintln!(
                    "cargo-nix-unit: rustc failed ({}) with the incremental state of {} and pointed at no source line; compiling again from scratch",
                    run.status, spec.label
                );
                s.reset().map_err(|e| UnitFailure(format!("removing {}: {e}", s.state().display())))?;
                // What the failed run left (its object files) is not part of the output.
                s.clear_out().map_err(|e| UnitFailure(format!("clearing {}: {e}", s.out().display())))?;
                run = run_rustc(command()?, spec, out)?;
            }
            let status = run.status;
            if !status.success() {
                return Err(UnitFailure(format!("error: could not compile {} ({status})", spec.label)));
            }
            if let Some(s) = &session {
                s.deliver(&artifacts).map_err(|e| {
                    UnitFailure(format!("moving {} to {}: {e}", s.out().display(), artifacts.display()))
                })?;
            }
            if *metadata_only {
                remove_codegen_stubs(&artifacts)?;
            }
            Ok(())
        }
        Action::RunBuildScript { program, dep_links } => {
            let out_dir = out.join("out-dir");
            mkdir(&out_dir)?;
            let mut cmd = base_command(spec, program)?;
            cmd.env("OUT_DIR", &out_dir);
            for (links, dir) in dep_links {
                cmd.envs(read_script_output(dir, &spec.package)?.to_dep_env(links));
            }
            let result = cmd.stdin(Stdio::null()).stderr(Stdio::inherit()).output().map_err(|e| {
                UnitFailure(format!("error: failed to run custom build command for `{}`: {e}", spec.package))
            })?;
            fs::write(out.join("output"), &result.stdout)
                .map_err(|e| UnitFailure(format!("writing the build script's output: {e}")))?;
            if !result.status.success() {
                return Err(UnitFailure(format!(
                    "error: failed to run custom build command for `{}`\n\nCaused by:\n  process didn't exit successfully: `{program}` ({})\n  --- stdout\n{}",
                    spec.package,
                    result.status,
                    indent(&String::from_utf8_lossy(&result.stdout)),
                )));
            }
            let parsed = BuildScriptOutput::parse(&result.stdout, &spec.package)
                .map_err(|e| UnitFailure(format!("error: {e}")))?;
            if parsed.has_errors() {
                let mut msg = String::new();
                for e in &parsed.errors {
                    msg.push_str(&format!("error: {e}\n"));
                }
                msg.push_str(&format!("error: build script of `{}` reported errors", spec.package));
                return Err(UnitFailure(msg));
            }
            Ok(())
        }
    }
}

/// Removes what a `-Zno-codegen` compile leaves besides the metadata: the `.rlib` then holds
/// no code, and nothing may link against it by mistake.
fn remove_codegen_stubs(dir: &Path) -> Result<(), UnitFailure> {
    let entries = fs::read_dir(dir).map_err(|e| UnitFailure(format!("reading {}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry.map_err(|e| UnitFailure(format!("reading {}: {e}", dir.display())))?.path();
        if path.extension().is_some_and(|x| x == "rlib") {
            fs::remove_file(&path).map_err(|e| UnitFailure(format!("removing {}: {e}", path.display())))?;
        }
    }
    Ok(())
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("  {l}\n")).collect()
}

/// How a rustc run ended.
struct RustcRun {
    status: std::process::ExitStatus,
    /// Whether an error pointed at a source line (a compile error in the user's code).
    source_error: bool,
}

impl RustcRun {
    /// A failure incremental state may have caused: rustc panicked (101), or failed without an
    /// error in the sources (e.g. linking an object file of the state that was damaged).
    fn may_be_the_states_fault(&self) -> bool {
        !self.status.success() && (self.status.code() == Some(101) || !self.source_error)
    }
}

/// Runs rustc with JSON diagnostics: prints each diagnostic's rendered text to stderr as rustc
/// would have, and, when it succeeds, keeps the JSON in `$out/diagnostics.jsonl`.
fn run_rustc(mut cmd: Command, spec: &UnitSpec, out: &Path) -> Result<RustcRun, UnitFailure> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| UnitFailure(format!("error: could not execute rustc for {}: {e}", spec.label)))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut diagnostics = Vec::new();
    let mut source_error = false;
    let mut log = std::io::stderr().lock();
    for line in BufReader::new(stderr).split(b'\n') {
        let line = line.map_err(|e| UnitFailure(format!("reading rustc's output: {e}")))?;
        match serde_json::from_slice::<serde_json::Value>(&line) {
            Ok(v) if v.get("$message_type").and_then(|t| t.as_str()) == Some("diagnostic") => {
                source_error |= v.get("level").and_then(|l| l.as_str()) == Some("error")
                    && v.get("spans").and_then(|s| s.as_array()).is_some_and(|s| !s.is_empty());
                if let Some(r) = v.get("rendered").and_then(|r| r.as_str()) {
                    let _ = log.write_all(r.as_bytes());
                    if !r.ends_with('\n') {
                        let _ = log.write_all(b"\n");
                    }
                }
                // The JSON again, on one line, for a failure's diagnostics (no `$out` then).
                let _ = log.write_all(DIAGNOSTIC_LOG_PREFIX.as_bytes());
                let _ = log.write_all(&line);
                let _ = log.write_all(b"\n");
                diagnostics.extend_from_slice(&line);
                diagnostics.push(b'\n');
            }
            Ok(v) if v.get("$message_type").is_some() => {}
            _ => {
                let _ = log.write_all(&line);
                let _ = log.write_all(b"\n");
            }
        }
    }
    drop(log);
    let status = child.wait().map_err(|e| UnitFailure(format!("waiting for rustc: {e}")))?;
    if status.success() {
        fs::write(out.join("diagnostics.jsonl"), diagnostics)
            .map_err(|e| UnitFailure(format!("writing diagnostics: {e}")))?;
    }
    Ok(RustcRun { status, source_error })
}

/// The unit's incremental directory, or a fresh one in the build directory (with a line in
/// the build log saying why) when it cannot be used.
fn incremental_session(dir: &Path, spec: &UnitSpec) -> Result<Session, UnitFailure> {
    let s = Session::open(dir, &working_dir(spec)?, &build_dir())
        .map_err(|e| UnitFailure(format!("preparing incremental state for {}: {e}", spec.label)))?;
    if let Some(why) = &s.fallback {
        eprintln!("cargo-nix-unit: incremental state not usable ({why}); compiling {} from scratch", spec.label);
    }
    Ok(s)
}

/// Reads `diagnostics.jsonl` of a built unit and returns the rendered texts (for showing the
/// warnings of a reused unit, as cargo replays cached ones).
pub fn rendered_diagnostics(unit_out: &Path) -> Vec<String> {
    diagnostics(unit_out).iter().filter_map(|v| v.get("rendered").and_then(|r| r.as_str()).map(str::to_owned)).collect()
}

/// Reads `diagnostics.jsonl` of a built unit: rustc's JSON diagnostics, in order (none when the
/// unit has no such file, e.g. a build-script run).
pub fn diagnostics(unit_out: &Path) -> Vec<serde_json::Value> {
    let Ok(text) = fs::read_to_string(unit_out.join("diagnostics.jsonl")) else { return Vec::new() };
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).collect()
}

/// Splits a unit's build log into the text for humans (every line but the
/// [`DIAGNOSTIC_LOG_PREFIX`] ones) and the JSON diagnostics those lines carry.
pub fn split_build_log(log: &str) -> (String, Vec<serde_json::Value>) {
    let mut text = String::with_capacity(log.len());
    let mut diagnostics = Vec::new();
    for line in log.split_inclusive('\n') {
        match line.strip_prefix(DIAGNOSTIC_LOG_PREFIX) {
            Some(json) => diagnostics.extend(serde_json::from_str::<serde_json::Value>(json.trim_end()).ok()),
            None => text.push_str(line),
        }
    }
    (text, diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_log_splits_into_text_and_diagnostics() {
        let diag = r#"{"$message_type":"diagnostic","level":"error","message":"m","rendered":"error: m\n"}"#;
        let log = format!("error: m\n{DIAGNOSTIC_LOG_PREFIX}{diag}\nerror: could not compile x\n");
        let (text, diags) = split_build_log(&log);
        assert_eq!(text, "error: m\nerror: could not compile x\n");
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0]["level"], "error");
        // A log without a final newline, and a malformed line, are fine.
        let (text, diags) = split_build_log(&format!("{DIAGNOSTIC_LOG_PREFIX}{{not json\ntail"));
        assert_eq!((text.as_str(), diags.len()), ("tail", 0));
    }
}
