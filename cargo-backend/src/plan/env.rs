//! The environment cargo gives rustc and build scripts, as pure functions of the unit facts
//! (cargo's `Compilation::fill_env`, `fill_rustc_tool_env`, `prepare_rustc` and
//! `custom_build::build_work`).
//!
//! Documented differences: `CARGO_MANIFEST_DIR`/`CARGO_MANIFEST_PATH` and `OUT_DIR` name
//! store paths; the dynamic-library path (`LD_LIBRARY_PATH`) is not set (rustc finds its own
//! libraries; the sandbox has no `target/`); `NUM_JOBS` is 1 in the derivation (its bytes
//! must not depend on `-j`); the builder sets cargo's `-j` value when it runs the script.

use std::collections::BTreeMap;

use crate::units::{EnvVar, PackageInfo, Unit};

/// What the environment of a unit depends on besides the unit and its package.
#[derive(Debug, Clone, Copy)]
pub struct EnvContext<'a> {
    /// `CARGO`: the cargo executable.
    pub cargo: &'a str,
    /// The package's directory as the unit sees it (a store path).
    pub manifest_dir: &'a str,
    /// Config `[env]`.
    pub env_config: &'a [EnvVar],
    /// `CARGO_TARGET_TMPDIR` for tests and benches (`target/tmp`).
    pub target_tmpdir: &'a str,
}

/// The variables every process cargo runs for a package sees (`fill_env`), with config `[env]`
/// under them (cargo never lets `[env]` override its own).
pub fn package_env(pkg: &PackageInfo, cx: &EnvContext<'_>) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = cx.env_config.iter().map(|v| (v.key.clone(), v.value.clone())).collect();
    let version = &pkg.version;
    let (core, _) = version.split_once('+').unwrap_or((version, ""));
    let (core, pre) = core.split_once('-').unwrap_or((core, ""));
    let mut nums = core.split('.');
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_owned(), v.to_owned());
    };
    set("CARGO", cx.cargo);
    set("CARGO_MANIFEST_DIR", cx.manifest_dir);
    set("CARGO_MANIFEST_PATH", &format!("{}/Cargo.toml", cx.manifest_dir));
    set("CARGO_PKG_VERSION_MAJOR", nums.next().unwrap_or("0"));
    set("CARGO_PKG_VERSION_MINOR", nums.next().unwrap_or("0"));
    set("CARGO_PKG_VERSION_PATCH", nums.next().unwrap_or("0"));
    set("CARGO_PKG_VERSION_PRE", pre);
    set("CARGO_PKG_VERSION", version);
    set("CARGO_PKG_NAME", &pkg.name);
    set("CARGO_PKG_DESCRIPTION", &pkg.description);
    set("CARGO_PKG_HOMEPAGE", &pkg.homepage);
    set("CARGO_PKG_REPOSITORY", &pkg.repository);
    set("CARGO_PKG_LICENSE", &pkg.license);
    set("CARGO_PKG_LICENSE_FILE", &pkg.license_file);
    set("CARGO_PKG_AUTHORS", &pkg.authors);
    set("CARGO_PKG_RUST_VERSION", &pkg.rust_version);
    set("CARGO_PKG_README", &pkg.readme);
    env
}

/// The environment of a rustc run for `unit` (without `OUT_DIR`, which the builder sets from
/// the build script's output, and `CARGO_BIN_EXE_*`, which the planner adds for tests).
pub fn rustc_env(unit: &Unit, pkg: &PackageInfo, cx: &EnvContext<'_>) -> BTreeMap<String, String> {
    let mut env = package_env(pkg, cx);
    if unit.is_bin() || (unit.is_example() && unit.target.crate_types.iter().any(|t| t == "bin")) {
        env.insert("CARGO_BIN_NAME".into(), unit.target.name.clone());
    }
    env.insert("CARGO_CRATE_NAME".into(), super::rustc_args::crate_name(unit));
    if pkg.is_primary {
        env.insert("CARGO_PRIMARY_PACKAGE".into(), "1".into());
    }
    if unit.is_test() || unit.is_bench() {
        env.insert("CARGO_TARGET_TMPDIR".into(), cx.target_tmpdir.to_owned());
    }
    env
}

/// What a build script's environment depends on besides its unit.
#[derive(Debug, Clone, Copy)]
pub struct ScriptContext<'a> {
    /// The host triple.
    pub host: &'a str,
    /// `RUSTC`.
    pub rustc: &'a str,
    /// `RUSTDOC`.
    pub rustdoc: &'a str,
    /// The linker of the unit's platform (`RUSTC_LINKER`), if configured.
    pub linker: Option<&'a str>,
}

/// The environment of a build-script run (`custom_build::build_work`), without `OUT_DIR`,
/// `CARGO_CFG_*` (from the toolchain) and `DEP_*` (from dependencies' outputs).
pub fn build_script_env(
    unit: &Unit,
    pkg: &PackageInfo,
    cx: &EnvContext<'_>,
    sx: &ScriptContext<'_>,
) -> BTreeMap<String, String> {
    let mut env = package_env(pkg, cx);
    let p = &unit.profile;
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_owned(), v.to_owned());
    };
    set("NUM_JOBS", "1");
    set("TARGET", unit.platform.as_deref().unwrap_or(sx.host));
    set("DEBUG", &p.debuginfo.is_some_and(|d| d.is_enabled()).to_string());
    set("OPT_LEVEL", &p.opt_level);
    set("PROFILE", p.root());
    set("HOST", sx.host);
    set("RUSTC", sx.rustc);
    set("RUSTDOC", sx.rustdoc);
    if let Some(l) = sx.linker {
        set("RUSTC_LINKER", l);
    }
    if let Some(links) = &pkg.links {
        set("CARGO_MANIFEST_LINKS", links);
    }
    for f in &unit.features {
        set(&format!("CARGO_FEATURE_{}", crate::build_script::envify(f)), "1");
    }
    set("CARGO_ENCODED_RUSTFLAGS", &unit.rustflags.join("\x1f"));
    env
}
