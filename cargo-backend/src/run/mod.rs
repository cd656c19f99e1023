//! Running what was built as `cargo test` and `cargo run` run it: the environment, the working
//! directory, the lines cargo prints, which test executables run, and doctests' rustdoc command
//! ([`doctest`]). Pure functions of the unit facts and of where things are, so they are
//! unit-tested without a store; the `cargo-nix` binary only spawns the processes.
//!
//! Read from cargo 1.95 (`ops/cargo_test.rs`, `core/compiler/compilation.rs`'s `fill_env`,
//! `core/compiler/artifact.rs`). Documented difference: the dynamic-library path holds no
//! native search paths from build scripts (cargo keeps only those inside `target/`; ours are
//! in the store).

pub mod doctest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::plan::env::{EnvContext, package_env};
use crate::units::{EnvVar, Mode, PackageInfo, Unit};

/// Where a program runs and what it sees besides its unit and package.
#[derive(Debug, Clone)]
pub struct RunContext<'a> {
    /// `CARGO`: the cargo executable.
    pub cargo: &'a str,
    /// `target/<profile>` (cargo's root output), where the package's binaries are.
    pub profile_dir: &'a Path,
    /// The toolchain's `lib/rustlib/<host>/lib` (cargo puts it on the dynamic-library path).
    pub sysroot_target_libdir: &'a Path,
    /// The dynamic-library path of the calling process (`LD_LIBRARY_PATH`), split.
    pub inherited_dylib_path: &'a [PathBuf],
    /// Config `[env]`.
    pub env_config: &'a [EnvVar],
    /// The names of the package's `[[bin]]` targets (`CARGO_BIN_EXE_<name>` for its
    /// integration tests and benches).
    pub package_bins: &'a [String],
    /// Native search paths build scripts named inside their own outputs ([`native_dirs`]):
    /// first on the dynamic-library path, as cargo puts those inside `target/`.
    pub native_dirs: &'a [PathBuf],
    /// What the package's build script gives its programs (cargo's `extra_env`): `OUT_DIR`
    /// and the script's `rustc-env` values. Over config `[env]`, under cargo's own variables.
    pub script_env: &'a [(String, String)],
}

/// The native search paths (`cargo::rustc-link-search`) of build-script runs, as cargo
/// puts them on a program's dynamic-library path: the `native=`/`all=`/… kind dropped, only
/// directories inside the script's own output (cargo keeps those inside `target/`, where its
/// scripts' outputs are), sorted and without repeats. `runs` are (script output, its search
/// paths).
pub fn native_dirs<'a>(runs: impl IntoIterator<Item = (&'a Path, &'a [String])>) -> Vec<PathBuf> {
    let mut dirs = std::collections::BTreeSet::new();
    for (out, paths) in runs {
        for p in paths {
            let dir = match p.split_once('=') {
                Some(("native" | "crate" | "dependency" | "framework" | "all", d)) => d,
                _ => p.as_str(),
            };
            if Path::new(dir).starts_with(out) {
                dirs.insert(PathBuf::from(dir));
            }
        }
    }
    dirs.into_iter().collect()
}

/// The environment cargo gives a test executable or a program of `cargo run` (cargo's
/// `Compilation::target_process`): `LD_LIBRARY_PATH` with `target/<profile>` and its `deps`
/// (and the sysroot's target libraries), `CARGO`, `CARGO_MANIFEST_DIR` (the real package
/// directory), `CARGO_MANIFEST_PATH`, `CARGO_PKG_*`, config `[env]` under them, and for
/// integration tests and benches `CARGO_BIN_EXE_<name>` in `target/<profile>/`.
pub fn run_env(unit: &Unit, pkg: &PackageInfo, cx: &RunContext<'_>) -> BTreeMap<String, String> {
    let dir = pkg.manifest_dir.to_string_lossy();
    let ecx = EnvContext { cargo: cx.cargo, manifest_dir: &dir, env_config: &[], target_tmpdir: "" };
    let mut env: BTreeMap<String, String> = cx.env_config.iter().map(|v| (v.key.clone(), v.value.clone())).collect();
    env.extend(cx.script_env.iter().cloned());
    env.extend(package_env(pkg, &ecx));
    env.insert("CARGO_MANIFEST_PATH".into(), pkg.manifest_dir.join("Cargo.toml").to_string_lossy().into_owned());
    let mut search = cx.native_dirs.to_vec();
    search.extend([cx.profile_dir.to_path_buf(), cx.profile_dir.join("deps"), cx.sysroot_target_libdir.into()]);
    if cx.inherited_dylib_path.starts_with(&search) {
        search = cx.inherited_dylib_path.to_vec();
    } else {
        search.extend(cx.inherited_dylib_path.iter().cloned());
    }
    let joined = std::env::join_paths(&search).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    env.insert("LD_LIBRARY_PATH".into(), joined);
    if unit.mode.is_any_test() && (unit.has_kind("test") || unit.is_bench()) {
        for b in cx.package_bins {
            env.insert(format!("CARGO_BIN_EXE_{b}"), cx.profile_dir.join(b).to_string_lossy().into_owned());
        }
    }
    env
}

/// What cargo prints after `Running` for a test executable: `tests/x.rs (target/debug/deps/x-…)`
/// for integration tests and benches, `unittests src/lib.rs (target/debug/deps/x-…)` for the
/// others; the source relative to the package, the executable relative to `cwd` (where the
/// user ran cargo) when it is under it.
pub fn running_line(unit: &Unit, pkg: &PackageInfo, exe: &Path, cwd: &Path) -> String {
    let src = &unit.target.src_path;
    let src = src.strip_prefix(&pkg.manifest_dir).unwrap_or(src).display();
    let exe = exe.strip_prefix(cwd).unwrap_or(exe).display();
    if unit.has_kind("test") || unit.is_bench() { format!("{src} ({exe})") } else { format!("unittests {src} ({exe})") }
}

/// The flags cargo's failure message suggests to rerun one target (`--lib`, `--bin x`,
/// `--test x`, `--doc`, …), with `-p NAME ` first when the workspace has several packages.
pub fn rerun_args(unit: &Unit, pkg: &PackageInfo, doctest: bool, needs_package: bool) -> String {
    let mut s = if needs_package { format!("-p {} ", pkg.name) } else { String::new() };
    let name = &unit.target.name;
    if doctest {
        s.push_str("--doc");
    } else if unit.is_lib() {
        s.push_str("--lib");
    } else if unit.is_bin() {
        s.push_str(&format!("--bin {name}"));
    } else if unit.has_kind("test") {
        s.push_str(&format!("--test {name}"));
    } else if unit.is_bench() {
        s.push_str(&format!("--bench {name}"));
    } else if unit.is_example() {
        s.push_str(&format!("--example {name}"));
    }
    s
}

/// cargo's closing error with `--no-fail-fast` when targets failed (`None` when none did).
pub fn failed_targets_message(rerun: &[String]) -> Option<String> {
    let lines: Vec<String> = rerun.iter().map(|a| format!("    `{a}`")).collect();
    match rerun.len() {
        0 => None,
        1 => Some(format!("1 target failed:\n{}", lines.join("\n"))),
        n => Some(format!("{n} targets failed:\n{}", lines.join("\n"))),
    }
}

/// The exit status cargo ends with when a test executable fails under fail-fast: the
/// executable's own status, else 101 (killed by a signal).
pub fn fail_fast_code(code: Option<i32>) -> i32 {
    code.unwrap_or(101)
}

/// Whether `unit` is one whose executable `cargo test` runs (a unit compiled for tests).
pub fn is_test_executable(unit: &Unit) -> bool {
    unit.mode == Mode::Test
}

#[cfg(test)]
mod tests;
