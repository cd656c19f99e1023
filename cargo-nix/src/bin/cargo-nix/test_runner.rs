//! `cargo nix test`'s and `cargo nix run`'s second half: run what was built as cargo runs it.
//! What to run, with which environment and arguments, comes from `cargo_backend::run`; this
//! module spawns the processes and prints cargo's lines.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use cargo_backend::build_script::{BuildScriptOutput, LinkArgTarget};
use cargo_backend::plan::ArtifactKind;
use cargo_backend::plan::artifacts::extern_file;
use cargo_backend::plan::rustc_args::{Extern, src_path_arg};
use cargo_backend::run::doctest::{DoctestInvocation, rustdoc_args};
use cargo_backend::run::{self, RunContext};
use cargo_backend::units::Unit;
use cargo_backend::{Stop, Workspace};

use crate::build::Built;
use crate::status::Status;

/// How `cargo nix test` runs the tests.
pub struct TestOptions<'a> {
    /// Arguments for the test executables (a test-name filter first, then `-- ARGS`).
    pub test_args: &'a [String],
    /// Keep running after a failing executable (cargo's `--no-fail-fast`).
    pub no_fail_fast: bool,
    /// `-v`: print each command as cargo does (`Running `rustdoc …``).
    pub verbose: bool,
    /// `-q`: test executables with the harness, and doctests, get `--quiet` after the
    /// arguments, as cargo gives it.
    pub quiet: bool,
    /// Whether packages were named (`-p`, `--workspace`): cargo's rerun hints then name the
    /// package, as they do when the workspace has several members.
    pub packages_named: bool,
}

/// The outcome of the test run: `None` when every test passed, else the exit status cargo
/// would end with.
pub type TestOutcome = Option<u8>;

fn split_dylib_path() -> Vec<PathBuf> {
    std::env::var_os("LD_LIBRARY_PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default()
}

/// The bin target names of the package of `unit`.
fn package_bins(ws: &Workspace, unit: usize) -> Vec<String> {
    let pkg = &ws.graph.units[unit].pkg_id;
    let mut names: Vec<String> =
        ws.graph.units.iter().filter(|u| &u.pkg_id == pkg && u.is_bin()).map(|u| u.target.name.clone()).collect();
    names.sort();
    names.dedup();
    names
}

fn run_context<'a>(
    built: &'a Built,
    dylib: &'a [PathBuf],
    libdir: &'a Path,
    bins: &'a [String],
    script_env: &'a [(String, String)],
) -> RunContext<'a> {
    RunContext {
        cargo: built.toolchain.cargo.to_str().unwrap_or("cargo"),
        profile_dir: &built.report.profile_dir,
        sysroot_target_libdir: libdir,
        inherited_dylib_path: dylib,
        env_config: &built.ws.env_config,
        package_bins: bins,
        script_env,
        native_dirs: &built.native_dirs,
    }
}

/// Variables from a build script, in order.
type ScriptEnv = Vec<(String, String)>;

/// What the package build script of `unit` (if any) gives it: `OUT_DIR` and its `rustc-env`
/// values, and its parsed output (read from the script run's store output).
fn script_output(built: &Built, unit: &Unit) -> Result<(ScriptEnv, Option<BuildScriptOutput>)> {
    let ws = &built.ws;
    let Some(d) = unit.dependencies.iter().find(|d| ws.graph.units[d.index].is_build_script_run()) else {
        return Ok((Vec::new(), None));
    };
    let out = built.report.units[d.index].out.as_path();
    let file = out.join("output");
    let bytes =
        std::fs::read(&file).with_context(|| format!("reading the build script's output {}", file.display()))?;
    let pkg = ws.package_of(d.index)?;
    let parsed = BuildScriptOutput::parse(&bytes, &format!("{} v{}", pkg.name, pkg.version))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut env = vec![("OUT_DIR".to_owned(), out.join("out-dir").display().to_string())];
    env.extend(parsed.env.iter().cloned());
    Ok((env, Some(parsed)))
}

fn describe_exit(st: &std::process::ExitStatus) -> String {
    match st.code() {
        Some(c) => format!("exit status: {c}"),
        None => format!("{st}"),
    }
}

/// `cargo test --no-run`: names every test executable built, as cargo does, and runs none.
pub fn list_executables(built: &Built, status: &Status) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let tests = built.report.installed.iter().filter(|i| matches!(i.kind, ArtifactKind::Test | ArtifactKind::Bench));
    for inst in tests {
        let unit = &built.ws.graph.units[inst.unit];
        let pkg = built.ws.package_of(inst.unit)?;
        status.line("Executable", &run::running_line(unit, pkg, &inst.path, &cwd));
    }
    Ok(())
}

/// Runs every test executable built, then the doctests, as `cargo test` does.
pub fn run_tests(built: &Built, opts: &TestOptions<'_>, status: &Status, stop: &Stop) -> Result<TestOutcome> {
    let ws = &built.ws;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let dylib = split_dylib_path();
    let libdir = built.toolchain.sysroot.join("lib/rustlib").join(&built.toolchain.host).join("lib");
    let needs_p = opts.packages_named || ws.packages.values().filter(|p| p.is_member).count() > 1;
    let mut failed: Vec<String> = Vec::new();
    let tests = built.report.installed.iter().filter(|i| matches!(i.kind, ArtifactKind::Test | ArtifactKind::Bench));
    for inst in tests {
        if stop.is_requested() {
            return Ok(Some(130));
        }
        let unit = &ws.graph.units[inst.unit];
        let pkg = ws.package_of(inst.unit)?;
        let bins = package_bins(ws, inst.unit);
        let (script_env, _) = script_output(built, unit)?;
        let env = run::run_env(unit, pkg, &run_context(built, &dylib, &libdir, &bins, &script_env));
        status.line("Running", &run::running_line(unit, pkg, &inst.path, &cwd));
        let st = target_command(unit, &inst.path)
            .args(opts.test_args)
            .args((opts.quiet && unit.target.harness).then_some("--quiet"))
            .envs(&env)
            .current_dir(&pkg.manifest_dir)
            .status()
            .with_context(|| format!("running {}", inst.path.display()))?;
        if !st.success() {
            let rerun = run::rerun_args(unit, pkg, false, needs_p);
            report_failure("test failed", &rerun, &inst.path, &st, status);
            if !opts.no_fail_fast {
                return Ok(Some(run::fail_fast_code(st.code()) as u8));
            }
            failed.push(rerun);
        }
    }
    for (i, dt) in ws.doctests.iter().enumerate() {
        if stop.is_requested() {
            return Ok(Some(130));
        }
        let pkg = ws.packages.get(&dt.pkg_id).with_context(|| format!("no package facts for {}", dt.pkg_id))?;
        status.line("Doc-tests", &dt.target.name);
        let quiet: Vec<String> = opts.test_args.iter().cloned().chain(opts.quiet.then(|| "--quiet".into())).collect();
        let (args, env) = doctest_command(built, i, &quiet, &dylib, &libdir)?;
        if opts.verbose {
            let mut shown = vec![built.toolchain.rustdoc.display().to_string()];
            shown.extend(args.iter().cloned());
            status.line("Running", &format!("`{}`", crate::status::shell_join(&shown)));
        }
        let st = Command::new(&built.toolchain.rustdoc)
            .args(&args)
            .envs(&env)
            .current_dir(&ws.root)
            .status()
            .with_context(|| format!("running {}", built.toolchain.rustdoc.display()))?;
        if !st.success() {
            let rerun = run::rerun_args(dt, pkg, true, needs_p);
            report_failure("doctest failed", &rerun, &built.toolchain.rustdoc, &st, status);
            if !opts.no_fail_fast {
                return Ok(Some(run::fail_fast_code(st.code()) as u8));
            }
            failed.push(rerun);
        }
    }
    Ok(run::failed_targets_message(&failed).map(|m| {
        status.error(&m);
        101
    }))
}

fn report_failure(which: &str, rerun: &str, exe: &Path, st: &std::process::ExitStatus, status: &Status) {
    if st.code() == Some(101) {
        status.error(&format!("{which}, to rerun pass `{rerun}`"));
    } else {
        status.error(&format!(
            "{which}, to rerun pass `{rerun}`\n\nCaused by:\n  process didn't exit successfully: `{}` ({})",
            exe.display(),
            describe_exit(st)
        ));
    }
}

/// rustdoc's arguments and environment for the `i`-th doctest of the build.
fn doctest_command(
    built: &Built,
    i: usize,
    test_args: &[String],
    dylib: &[PathBuf],
    libdir: &Path,
) -> Result<(Vec<String>, std::collections::BTreeMap<String, String>)> {
    let ws = &built.ws;
    let dt = &ws.doctests[i];
    let pkg = ws.packages.get(&dt.pkg_id).with_context(|| format!("no package facts for {}", dt.pkg_id))?;
    let mut externs = Vec::new();
    for d in &dt.dependencies {
        let du = &ws.graph.units[d.index];
        let r = &built.report.units[d.index];
        if du.mode == cargo_backend::units::Mode::RunCustomBuild {
            continue;
        }
        let Some(file) = extern_file(dt, du, &r.artifacts) else { continue };
        externs.push(Extern {
            name: d.extern_crate_name.clone(),
            path: format!("{}/{file}", r.out),
            noprelude: d.noprelude,
        });
    }
    let lib_dirs: Vec<String> = run::doctest::library_closure(&ws.graph, dt)
        .into_iter()
        .map(|u| format!("{}/lib", built.report.units[u].out))
        .collect();
    let src_path = src_path_arg(dt, pkg, &ws.root, &pkg.manifest_dir.to_string_lossy())
        .unwrap_or_else(|| dt.target.src_path.to_string_lossy().into_owned());
    let (script_env, script) = script_output(built, dt)?;
    let mut script_args = Vec::new();
    if let Some(o) = &script {
        for c in &o.cfgs {
            script_args.extend(["--cfg".to_owned(), c.clone()]);
        }
        for c in &o.check_cfgs {
            script_args.extend(["--check-cfg".to_owned(), c.clone()]);
        }
        // Of the link arguments, only `rustc-link-arg` applies to a library's doctests.
        for (t, a) in &o.link_args {
            if *t == LinkArgTarget::All {
                script_args.extend(["-C".to_owned(), format!("link-arg={a}")]);
            }
        }
    }
    let inv = DoctestInvocation {
        unit: dt,
        pkg,
        src_path,
        color: "auto",
        externs: &externs,
        lib_dirs: &lib_dirs,
        test_args,
        script_args: &script_args,
        rustdocflags: &dt.rustdocflags,
        error_format: "human",
        native_link_paths: &built.native_link_paths,
    };
    let mut env = run::run_env(dt, pkg, &run_context(built, dylib, libdir, &[], &script_env));
    env.insert("CARGO_CRATE_NAME".into(), cargo_backend::plan::rustc_args::crate_name(dt));
    // rustdoc's search path: the scripts' native directories and the host's deps directory
    // (cargo's `fill_env` for rustdoc, which runs the doctests).
    let mut search = built.native_dirs.clone();
    search.push(built.report.profile_dir.join("deps"));
    search.extend(dylib.iter().cloned());
    env.insert(
        "LD_LIBRARY_PATH".into(),
        std::env::join_paths(&search).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default(),
    );
    Ok((rustdoc_args(&inv), env))
}

/// A command running `exe` (built for `unit`) as cargo runs it: through the runner configured
/// for its platform, if any.
fn target_command(unit: &Unit, exe: &Path) -> Command {
    match unit.runner.as_deref() {
        Some([program, args @ ..]) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        _ => Command::new(exe),
    }
}

/// `cargo nix run`: the one binary (or example) the build selected, run with `args` from the
/// current directory with cargo's environment; its exit status.
pub fn run_program(built: &Built, args: &[String], status: &Status) -> Result<u8> {
    let ws = &built.ws;
    let progs: Vec<_> = built
        .report
        .installed
        .iter()
        .filter(|i| matches!(i.kind, ArtifactKind::Bin | ArtifactKind::Example) && ws.graph.roots.contains(&i.unit))
        .collect();
    let prog = match progs.as_slice() {
        [one] => *one,
        [] => bail!("a bin target must be available for `cargo run`"),
        many => {
            let mut names: Vec<&str> = many.iter().map(|i| ws.graph.units[i.unit].target.name.as_str()).collect();
            names.sort_unstable();
            bail!(
                "`cargo run` could not determine which binary to run. Use the `--bin` option to specify a binary, \
                 or the `default-run` manifest key.\navailable binaries: {}",
                names.join(", ")
            )
        }
    };
    let unit = &ws.graph.units[prog.unit];
    let pkg = ws.package_of(prog.unit)?;
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let dylib = split_dylib_path();
    let libdir = built.toolchain.sysroot.join("lib/rustlib").join(&built.toolchain.host).join("lib");
    let (script_env, _) = script_output(built, unit)?;
    let env = run::run_env(unit, pkg, &run_context(built, &dylib, &libdir, &[], &script_env));
    // As cargo shows it: the runner, the program relative to the current directory, the
    // arguments.
    let shown = prog.path.strip_prefix(&cwd).unwrap_or(&prog.path);
    let mut words: Vec<String> = unit.runner.clone().unwrap_or_default();
    words.push(shown.display().to_string());
    words.extend(args.iter().cloned());
    let line = crate::status::shell_join(&words);
    status.line("Running", &format!("`{line}`"));
    let st = target_command(unit, &prog.path)
        .args(args)
        .envs(&env)
        .status()
        .with_context(|| format!("running {}", prog.path.display()))?;
    match st.code() {
        Some(c) => Ok(c as u8),
        None => {
            status.error(&format!("process didn't exit successfully: `{line}` ({st})"));
            Ok(101)
        }
    }
}
