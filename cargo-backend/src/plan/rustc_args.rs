//! rustc's command line for one unit, in cargo's order: a pure function of the unit's facts.
//!
//! The cargo crate builds this command in private functions (`build_base_args`,
//! `build_deps_args`, `add_cap_lints`, `prepare_rustc` in `core/compiler/mod.rs`, cargo
//! 1.95), so this module rebuilds it from the facts cargo resolved, argument for argument; the
//! oracle test (`cargo-nix/tests/oracle.rs`) compares the two unit by unit on fixtures. Paths
//! are the caller's: the planner passes store paths, the oracle cargo's `target/` paths.
//!
//! Not produced here: `-C incremental=` (the builder adds it for units that keep state, see
//! [`crate::incremental`]),
//! `--diagnostic-width` (cargo adds it only when stderr is a terminal), and what the build
//! script of the package prints (added by the builder at run time, after these arguments, as
//! cargo adds it).

use std::path::Path;

use crate::units::{Mode, PackageInfo, Unit};

use super::lto::{Lto, for_host};

/// One `--extern` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extern {
    /// The name the dependent uses for the crate.
    pub name: String,
    /// The `.rlib`, `.rmeta` or `.so` to read.
    pub path: String,
    /// `noprelude:` (nightly only).
    pub noprelude: bool,
}

/// Everything rustc's command line for a unit depends on.
#[derive(Debug, Clone)]
pub struct RustcInvocation<'a> {
    /// The unit.
    pub unit: &'a Unit,
    /// Its package.
    pub pkg: &'a PackageInfo,
    /// The crate root as passed to rustc: relative to the workspace root for path packages
    /// inside it (rustc then runs there), else absolute.
    pub src_path: String,
    /// The unit's LTO setting ([`super::lto::generate`]).
    pub lto: &'a Lto,
    /// `-C metadata=`.
    pub metadata: &'a str,
    /// `-C extra-filename=-…`, if any.
    pub extra_filename: Option<&'a str>,
    /// `--out-dir`, if known when planning (the builder adds its own otherwise).
    pub out_dir: Option<&'a str>,
    /// Directories for `-L dependency=`.
    pub lib_dirs: &'a [String],
    /// `--extern` arguments, in the order of the unit's dependencies.
    pub externs: &'a [Extern],
}

/// Whether rustc emits metadata besides the linked output: libraries built as rlibs (cargo's
/// `!Unit::requires_upstream_objects`).
pub fn emits_metadata(unit: &Unit) -> bool {
    !unit.mode.is_any_test()
        && (unit.is_lib() || unit.is_example())
        && unit.target.crate_types.iter().all(|t| t == "lib" || t == "rlib")
}

/// Whether the unit is a test or bench compiled with rustc's test harness (`--test`).
pub fn uses_test_harness(unit: &Unit) -> bool {
    unit.mode.is_any_test() && unit.target.harness
}

/// rustc's arguments for `inv`, as cargo passes them.
pub fn rustc_args(inv: &RustcInvocation<'_>) -> Vec<String> {
    let RustcInvocation { unit, pkg, .. } = inv;
    let p = &unit.profile;
    let test = unit.mode.is_any_test();
    let mut args: Vec<String> = Vec::new();
    let push = |a: &mut Vec<String>, xs: &[&str]| a.extend(xs.iter().map(|x| (*x).to_owned()));

    push(&mut args, &["--crate-name", &crate_name(unit)]);
    args.push(format!("--edition={}", unit.target.edition));
    args.push(inv.src_path.clone());
    push(&mut args, &["--error-format=json", "--json=diagnostic-rendered-ansi,artifacts,future-incompat"]);
    let mut contains_dylib = false;
    if !test {
        for t in &unit.target.crate_types {
            push(&mut args, &["--crate-type", t]);
            contains_dylib |= t == "dylib";
        }
    }
    args.push(
        if matches!(unit.mode, Mode::Check { .. }) {
            "--emit=dep-info,metadata"
        } else if emits_metadata(unit) {
            "--emit=dep-info,metadata,link"
        } else {
            "--emit=dep-info,link"
        }
        .to_owned(),
    );
    let prefer_dynamic = (for_host(unit) && !unit.has_kind("custom-build")) || (contains_dylib && !pkg.is_primary);
    if prefer_dynamic {
        push(&mut args, &["-C", "prefer-dynamic"]);
    }
    if p.opt_level != "0" {
        args.extend(["-C".to_owned(), format!("opt-level={}", p.opt_level)]);
    }
    if p.panic != "unwind" && !p.panic.is_empty() {
        args.extend(["-C".to_owned(), format!("panic={}", p.panic)]);
    }
    args.extend(inv.lto.args());
    if let Some(n) = p.codegen_units {
        args.extend(["-C".to_owned(), format!("codegen-units={n}")]);
    }
    if let Some(d) = p.debuginfo.filter(|d| d.is_enabled()) {
        args.extend(["-C".to_owned(), format!("debuginfo={}", d.rustc_value())]);
        if let Some(split) = &p.split_debuginfo {
            args.extend(["-C".to_owned(), format!("split-debuginfo={split}")]);
        }
    }
    args.extend(pkg.lint_rustflags.iter().cloned());
    args.extend(p.rustflags.iter().cloned());
    // `-C overflow-checks` follows `-C debug-assertions` unless given.
    if p.opt_level != "0" {
        if p.debug_assertions {
            push(&mut args, &["-C", "debug-assertions=on"]);
            if !p.overflow_checks {
                push(&mut args, &["-C", "overflow-checks=off"]);
            }
        } else if p.overflow_checks {
            push(&mut args, &["-C", "overflow-checks=on"]);
        }
    } else if !p.debug_assertions {
        push(&mut args, &["-C", "debug-assertions=off"]);
        if p.overflow_checks {
            push(&mut args, &["-C", "overflow-checks=on"]);
        }
    } else if !p.overflow_checks {
        push(&mut args, &["-C", "overflow-checks=off"]);
    }
    if test && unit.target.harness {
        args.push("--test".into());
        if p.panic == "abort" || p.panic == "immediate-abort" {
            push(&mut args, &["-Z", "panic-abort-tests"]);
        }
    } else if test {
        push(&mut args, &["--cfg", "test"]);
    }
    for f in &unit.features {
        args.extend(["--cfg".to_owned(), format!("feature=\"{f}\"")]);
    }
    let values: Vec<String> = pkg.features.iter().map(|f| format!("\"{f}\"")).collect();
    push(&mut args, &["--check-cfg", "cfg(docsrs,test)", "--check-cfg"]);
    args.push(format!("cfg(feature, values({}))", values.join(", ")));
    args.extend(["-C".to_owned(), format!("metadata={}", inv.metadata)]);
    if let Some(x) = inv.extra_filename {
        args.extend(["-C".to_owned(), format!("extra-filename=-{x}")]);
    }
    if p.rpath {
        push(&mut args, &["-C", "rpath"]);
    }
    if let Some(dir) = inv.out_dir {
        push(&mut args, &["--out-dir", dir]);
    }
    if let Some(triple) = &unit.platform {
        push(&mut args, &["--target", triple]);
    }
    if let Some(linker) = &unit.linker {
        args.extend(["-C".to_owned(), format!("linker={linker}")]);
    }
    if p.strip != "none" && !p.strip.is_empty() {
        args.extend(["-C".to_owned(), format!("strip={}", p.strip)]);
    }

    // build_deps_args
    for dir in inv.lib_dirs {
        args.extend(["-L".to_owned(), format!("dependency={dir}")]);
    }
    let mut unstable = false;
    for e in inv.externs {
        let prefix = if e.noprelude { "noprelude:" } else { "" };
        unstable |= e.noprelude;
        args.extend(["--extern".to_owned(), format!("{prefix}{}={}", e.name, e.path)]);
    }
    if unit.is_proc_macro() {
        push(&mut args, &["--extern", "proc_macro"]);
    }
    if unstable {
        push(&mut args, &["-Z", "unstable-options"]);
    }
    // add_cap_lints: warnings of non-local packages are not shown.
    if pkg.source != "path" {
        push(&mut args, &["--cap-lints", "allow"]);
    }
    args.extend(unit.rustflags.iter().cloned());
    args
}

/// The crate root as cargo passes it to rustc: relative to the workspace root for a path
/// package inside it (cargo then runs rustc there), else absolute, under `source_dir` (where the
/// package's files are: its directory for cargo, its store path for the planner). `None` when
/// the crate root is outside the package's directory.
pub fn src_path_arg(unit: &Unit, pkg: &PackageInfo, ws_root: &Path, source_dir: &str) -> Option<String> {
    let rel = unit.target.src_path.strip_prefix(&pkg.manifest_dir).ok()?;
    match workspace_subdir(pkg, ws_root) {
        Some(sub) => Some(sub.join(rel).display().to_string()),
        None => Some(Path::new(source_dir).join(rel).display().to_string()),
    }
}

/// Where a path package inside the workspace root sits, relative to that root (`crates/member`,
/// or empty for the root package): cargo runs rustc from the workspace root for these.
pub fn workspace_subdir<'a>(pkg: &'a PackageInfo, ws_root: &Path) -> Option<&'a Path> {
    if pkg.source != "path" {
        return None;
    }
    pkg.manifest_dir.strip_prefix(ws_root).ok()
}

/// The crate name rustc is given (`build_script_build` for build scripts).
pub fn crate_name(unit: &Unit) -> String {
    if unit.has_kind("custom-build") { "build_script_build".into() } else { unit.target.name.replace('-', "_") }
}

#[cfg(test)]
#[path = "rustc_args_tests.rs"]
mod tests;
