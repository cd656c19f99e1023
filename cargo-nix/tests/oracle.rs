//! The oracle: cargo's real build of `tests/fixtures/oracle`, recorded through
//! `cargo::ops::compile_with_exec` and a recording `Executor`, against the rustc command lines
//! and environments cargo nix plans ([`cargo_backend::plan::rustc_args`],
//! [`cargo_backend::plan::env`]) from the neutral description of the same build
//! ([`cargo_nix::from_cargo`]), unit by unit.
//!
//! Documented rewrites (what the planner must do differently, fed here with cargo's values so
//! the rest compares exactly):
//! - `-C metadata=`/`-C extra-filename=`: the planner's own hash (covering the toolchain and
//!   dependencies' hashes, and the same for a crate wherever its workspace is); here cargo's.
//! - `--out-dir`, `-L dependency=` and `--extern` paths: the planner's are store paths (one
//!   `-L dependency=` per library the unit reads); here cargo's `target/` paths.
//! - crate roots outside the workspace (registry crates): the planner's are under the
//!   package's store path; here under the package's directory.
//! - `-C incremental=`: added by the builder at build time, for the units that keep state
//!   (`cargo_backend::incremental`), with a directory of its own per unit; not compared.
//! - environment: `CARGO` (which cargo), `LD_LIBRARY_PATH` (not set), `OUT_DIR` (set by the
//!   builder from the build script's output) are compared by presence only;
//!   `CARGO_MANIFEST_DIR`/`CARGO_MANIFEST_PATH` name the store path in real plans.
//!
//! Build-script runs are not seen by an `Executor`; they are not compared here.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cargo::CargoResult;
use cargo::core::compiler::{CompileMode, Executor};
use cargo::core::{PackageId, Shell, Target};
use cargo::util::context::GlobalContext;
use cargo_backend::plan::lto;
use cargo_backend::plan::rustc_args::{self, Extern, RustcInvocation};
use cargo_backend::plan::{artifacts, env};
use cargo_backend::{CargoArgs, CargoCommand, Workspace};
use cargo_nix::cargo;
use cargo_util::ProcessBuilder;

/// One rustc run cargo made.
#[derive(Debug, Clone)]
struct Recorded {
    pkg_id: String,
    target: String,
    kind: String,
    mode: String,
    args: Vec<String>,
    env: BTreeMap<String, Option<String>>,
    cwd: Option<PathBuf>,
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Recorded>>);

impl Executor for Recorder {
    fn exec(
        &self,
        cmd: &ProcessBuilder,
        id: PackageId,
        target: &Target,
        mode: CompileMode,
        on_stdout_line: &mut dyn FnMut(&str) -> CargoResult<()>,
        on_stderr_line: &mut dyn FnMut(&str) -> CargoResult<()>,
    ) -> CargoResult<()> {
        self.0.lock().unwrap().push(Recorded {
            pkg_id: id.to_spec().to_string(),
            target: target.name().to_owned(),
            kind: target.kind().description().to_owned(),
            mode: format!("{mode:?}"),
            args: cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect(),
            env: cmd
                .get_envs()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_ref().map(|v| v.to_string_lossy().into_owned())))
                .collect(),
            cwd: cmd.get_cwd().map(Path::to_path_buf),
        });
        cmd.exec_with_streaming(on_stdout_line, on_stderr_line, false).map(drop)
    }
}

fn kind_description(u: &cargo_backend::units::Unit) -> &'static str {
    if u.has_kind("custom-build") {
        "build-script"
    } else if u.is_bin() {
        "bin"
    } else if u.is_test() {
        "integration-test"
    } else if u.is_example() {
        "example"
    } else if u.is_bench() {
        "bench"
    } else {
        "lib"
    }
}

fn mode_description(m: &cargo_backend::units::Mode) -> String {
    use cargo_backend::units::Mode;
    match m {
        Mode::Build => "Build".into(),
        Mode::Test => "Test".into(),
        Mode::Check { test } => format!("Check {{ test: {test} }}"),
        other => other.to_string(),
    }
}

/// The value following `flag` in `args` (`-C` values are matched by prefix: `metadata=`).
fn c_value<'a>(args: &'a [String], prefix: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == "-C" && w[1].starts_with(prefix)).map(|w| &w[1][prefix.len()..])
}

fn flag_values<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
}

/// A copy of the oracle fixture, with its own target directory.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::repo().join("tests/fixtures/oracle"), dir.path());
    dir
}

/// A `GlobalContext` in `cwd` with exactly `env` (the process's environment plus `extra`)
/// and `--config` values `config`.
fn gctx(cwd: &Path, extra: &[(&str, &str)], config: &[&str], args: &CargoArgs) -> GlobalContext {
    let home = cargo::util::homedir(cwd).unwrap();
    let mut g = GlobalContext::new(Shell::new(), cwd.to_path_buf(), home);
    let mut vars: HashMap<String, String> = std::env::vars().collect();
    for k in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_TARGET_DIR"] {
        vars.remove(k);
    }
    vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    g.set_env(vars);
    let config: Vec<String> = config.iter().map(|c| (*c).to_owned()).collect();
    g.configure(0, true, None, args.frozen, args.locked, args.offline, &args.target_dir, &[], &config).unwrap();
    g
}

/// What one scenario compared.
#[derive(Debug, Default)]
struct Compared {
    units: usize,
    args_with: BTreeMap<&'static str, usize>,
}

/// Runs cargo's build for `command` with `args` on a fresh copy of the fixture, recording every
/// rustc run, and compares each with what the planner computes for the same unit.
fn compare(
    name: &str,
    command: CargoCommand,
    args: CargoArgs,
    extra_env: &[(&str, &str)],
    config: &[&str],
) -> Compared {
    let dir = fixture();
    let root = dir.path();
    let args = CargoArgs { manifest_path: Some(root.join("Cargo.toml")), ..args };

    // Our description, from cargo's library.
    let ours: Workspace = cargo_nix::from_cargo::plan_in(&gctx(root, extra_env, config, &args), command, &args)
        .unwrap_or_else(|e| panic!("{name}: planning: {e:?}"));

    // cargo's real build, recorded.
    let g = gctx(root, extra_env, config, &args);
    let ws = cargo::core::Workspace::new(&root.join("Cargo.toml"), &g).unwrap();
    let opts = cargo_nix::from_cargo::compile_options(&g, command, &args).unwrap();
    let recorder = Arc::new(Recorder::default());
    let exec: Arc<dyn Executor> = recorder.clone();
    cargo::ops::compile_with_exec(&ws, &opts, &exec).unwrap_or_else(|e| panic!("{name}: cargo's build: {e:?}"));
    let recorded = recorder.0.lock().unwrap().clone();

    let lto = lto::generate(&ours.graph);
    let candidates = |r: &Recorded| -> Vec<usize> {
        let host = !r.args.iter().any(|a| a == "--target");
        (0..ours.graph.units.len())
            .filter(|&i| {
                let u = &ours.graph.units[i];
                u.pkg_id == r.pkg_id
                    && u.target.name == r.target
                    && kind_description(u) == r.kind
                    && mode_description(&u.mode) == r.mode
                    && u.platform.is_none() == host
            })
            .collect()
    };
    // Per unit: cargo's extra-filename and out-dir, for the dependents' --extern paths.
    let mut seen: HashMap<usize, (String, String)> = HashMap::new();
    let mut compared = Compared::default();
    for r in &recorded {
        let metadata = c_value(&r.args, "metadata=").expect("cargo passes -C metadata").to_owned();
        let extra = c_value(&r.args, "extra-filename=-").map(str::to_owned);
        let out_dir = flag_values(&r.args, "--out-dir")[0].to_owned();
        let lib_dirs: Vec<String> = flag_values(&r.args, "-L")
            .iter()
            .filter_map(|l| l.strip_prefix("dependency="))
            .map(str::to_owned)
            .collect();
        let theirs: Vec<String> = {
            let mut v = Vec::new();
            let mut it = r.args.iter().peekable();
            while let Some(a) = it.next() {
                if a == "-C" && it.peek().is_some_and(|n| n.starts_with("incremental=")) {
                    it.next();
                    continue;
                }
                v.push(a.clone());
            }
            v
        };
        // The planner's arguments for unit `i`, given cargo's paths and hashes.
        let ours_for = |i: usize| -> Vec<String> {
            let unit = &ours.graph.units[i];
            let pkg = ours.package_of(i).unwrap();
            let mut externs = Vec::new();
            for d in &unit.dependencies {
                let du = &ours.graph.units[d.index];
                if !du.is_lib() || du.is_build_script_run() {
                    continue;
                }
                let Some((dep_extra, dep_dir)) = seen.get(&d.index) else { return Vec::new() };
                let files = artifacts::artifacts(du, dep_extra);
                let file = artifacts::extern_file(unit, du, &files).expect("a library has a linkable file");
                let file = Path::new(&file).file_name().unwrap().to_string_lossy().into_owned();
                externs.push(Extern {
                    name: d.extern_crate_name.clone(),
                    path: format!("{dep_dir}/{file}"),
                    noprelude: d.noprelude,
                });
            }
            let src_path =
                rustc_args::src_path_arg(unit, pkg, &ours.root, &pkg.manifest_dir.display().to_string()).unwrap();
            rustc_args::rustc_args(&RustcInvocation {
                unit,
                pkg,
                src_path,
                lto: &lto[i],
                metadata: &metadata,
                extra_filename: extra.as_deref(),
                out_dir: Some(&out_dir),
                lib_dirs: &lib_dirs,
                externs: &externs,
            })
        };
        // What the build script of the unit's package printed, as cargo adds it after the
        // planned arguments (the builder adds it when the unit runs).
        let script_tail = |i: usize| -> Vec<String> {
            let unit = &ours.graph.units[i];
            if !unit.dependencies.iter().any(|d| ours.graph.units[d.index].is_build_script_run()) {
                return Vec::new();
            }
            let build = Path::new(&out_dir).parent().unwrap().join("build");
            let pkg = ours.package_of(i).unwrap();
            let output = std::fs::read_dir(&build)
                .unwrap()
                .map(|e| e.unwrap().path().join("output"))
                .find(|o| {
                    o.parent().unwrap().file_name().unwrap().to_string_lossy().starts_with(&format!("{}-", pkg.name))
                        && o.is_file()
                })
                .unwrap_or_else(|| panic!("{name}: no build-script output for {} in {}", pkg.name, build.display()));
            let o = cargo_backend::build_script::BuildScriptOutput::parse(&std::fs::read(&output).unwrap(), &pkg.name)
                .unwrap();
            assert!(
                o.library_paths.is_empty() && o.library_links.is_empty(),
                "the fixture's scripts print no link flags"
            );
            let mut tail = Vec::new();
            for c in &o.cfgs {
                tail.extend(["--cfg".to_owned(), c.clone()]);
            }
            for c in &o.check_cfgs {
                tail.extend(["--check-cfg".to_owned(), c.clone()]);
            }
            tail
        };
        let hits = candidates(r);
        assert!(!hits.is_empty(), "{name}: no unit for {} {} {} {}", r.pkg_id, r.target, r.kind, r.mode);
        // Units that differ only in their profile (a workspace proc-macro built as a root with
        // the requested profile and as a dependency with build-override): the one whose
        // arguments are cargo's.
        let with_tail = |i: usize| [ours_for(i), script_tail(i)].concat();
        let i = hits.iter().copied().find(|&i| with_tail(i) == theirs).unwrap_or(hits[0]);
        let unit = &ours.graph.units[i];
        let pkg = ours.package_of(i).unwrap();
        assert_eq!(with_tail(i), theirs, "{name}: rustc arguments of {}", unit.describe());
        // cargo runs rustc from the workspace root for members.
        if rustc_args::workspace_subdir(pkg, &ours.root).is_some() {
            assert_eq!(r.cwd.as_deref(), Some(ours.root.as_path()), "{name}: cwd of {}", unit.describe());
        }

        let manifest_dir = pkg.manifest_dir.display().to_string();
        let tmpdir = ours.target_dir.join("tmp").display().to_string();
        let cx = env::EnvContext {
            cargo: "",
            manifest_dir: &manifest_dir,
            env_config: &ours.env_config,
            target_tmpdir: &tmpdir,
        };
        let mut ours_env = env::rustc_env(unit, pkg, &cx);
        let mut theirs_env: BTreeMap<String, String> =
            r.env.iter().filter_map(|(k, v)| Some((k.clone(), v.clone()?))).collect();
        for k in ["CARGO", "LD_LIBRARY_PATH"] {
            assert!(theirs_env.remove(k).is_some(), "{name}: cargo sets {k}");
            ours_env.remove(k);
        }
        let has_script = unit.dependencies.iter().any(|d| ours.graph.units[d.index].is_build_script_run());
        assert_eq!(theirs_env.remove("OUT_DIR").is_some(), has_script, "{name}: OUT_DIR of {}", unit.describe());
        for d in &unit.dependencies {
            let du = &ours.graph.units[d.index];
            if du.is_bin() && unit.mode.is_any_test() {
                // The planner sets it where cargo puts the binary (and cargo nix installs it).
                let key = format!("CARGO_BIN_EXE_{}", du.target.name);
                let want = ours.profile_dir().join(&du.target.name).display().to_string();
                assert_eq!(theirs_env.remove(&key), Some(want), "{name}: {key} of {}", unit.describe());
            }
        }
        assert_eq!(ours_env, theirs_env, "{name}: environment of {}", unit.describe());

        for (label, present) in [
            ("--cfg test", theirs.windows(2).any(|w| w == ["--cfg", "test"])),
            ("--test", theirs.iter().any(|a| a == "--test")),
            ("lints", !pkg.lint_rustflags.is_empty()),
            ("rustflags", !unit.rustflags.is_empty()),
            ("-C linker", c_value(&theirs, "linker=").is_some()),
            ("--target", theirs.iter().any(|a| a == "--target")),
            ("-C lto", c_value(&theirs, "lto").is_some()),
            ("-C panic=abort", c_value(&theirs, "panic=abort").is_some()),
            ("[env]", !ours.env_config.is_empty()),
        ] {
            *compared.args_with.entry(label).or_default() += usize::from(present);
        }
        seen.insert(i, (extra.unwrap_or_default(), out_dir));
        compared.units += 1;
    }
    assert!(compared.units > 0, "{name}: cargo ran no rustc");
    compared
}

#[test]
fn dev_build_with_build_rustflags_lints_env_and_a_package_override() {
    let c = compare(
        "dev",
        CargoCommand::Build,
        CargoArgs { workspace: true, ..Default::default() },
        &[],
        &["build.rustflags=['--cfg', 'from_build']"],
    );
    assert!(c.units >= 6, "{c:?}");
    for label in ["lints", "rustflags", "[env]"] {
        assert!(c.args_with[label] > 0, "{label}: {c:?}");
    }
}

#[test]
fn test_build_with_rustflags_from_the_environment_and_harness_false() {
    let c = compare(
        "test+RUSTFLAGS",
        CargoCommand::Test,
        CargoArgs { workspace: true, ..Default::default() },
        &[("RUSTFLAGS", "--cfg from_env")],
        &[],
    );
    assert!(c.args_with["--cfg test"] > 0, "a harness = false test: {c:?}");
    assert!(c.args_with["--test"] > 0, "{c:?}");
    assert!(c.args_with["rustflags"] > 0, "{c:?}");
}

#[test]
fn encoded_rustflags_and_target_cfg_rustflags() {
    let c = compare(
        "CARGO_ENCODED_RUSTFLAGS",
        CargoCommand::Build,
        CargoArgs { workspace: true, ..Default::default() },
        &[("CARGO_ENCODED_RUSTFLAGS", "--cfg\x1ffrom_encoded")],
        &[],
    );
    assert!(c.args_with["rustflags"] > 0, "{c:?}");
    let c = compare(
        "[target.cfg] rustflags",
        CargoCommand::Build,
        CargoArgs { workspace: true, ..Default::default() },
        &[],
        &["target.'cfg(target_os = \"linux\")'.rustflags=['--cfg', 'from_target']"],
    );
    assert!(c.args_with["rustflags"] > 0, "{c:?}");
}

#[test]
fn custom_profile_inheriting_release_with_lto_and_panic_abort() {
    let c = compare(
        "--profile ci",
        CargoCommand::Build,
        CargoArgs { workspace: true, profile: Some("ci".into()), ..Default::default() },
        &[],
        &[],
    );
    assert!(c.args_with["-C lto"] > 0, "{c:?}");
    assert!(c.args_with["-C panic=abort"] > 0, "{c:?}");
}

#[test]
fn explicit_target_with_a_configured_linker_and_target_rustflags() {
    let triple = "x86_64-unknown-linux-gnu";
    let c = compare(
        "--target",
        CargoCommand::Build,
        CargoArgs { workspace: true, targets: vec![triple.into()], ..Default::default() },
        &[],
        &[&format!("target.{triple}.linker='cc'"), &format!("target.{triple}.rustflags=['--cfg', 'from_target']")],
    );
    assert!(c.args_with["--target"] > 0 && c.args_with["--target"] < c.units, "host units have no --target: {c:?}");
    assert!(c.args_with["-C linker"] > 0, "{c:?}");
}

#[test]
fn check_units() {
    let c = compare("check", CargoCommand::Check, CargoArgs { workspace: true, ..Default::default() }, &[], &[]);
    assert!(c.units >= 4, "{c:?}");
}
