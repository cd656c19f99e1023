//! Doctests: the `rustdoc --test` command cargo runs for a library after building it, as a
//! pure function of the doctest unit's facts (cargo 1.95's `run_doc_tests` in
//! `ops/cargo_test.rs` and the arguments `BuildRunner::compile` collects in
//! `Compilation::to_doc_test`). The caller gives store paths for `--extern` and
//! `-L dependency=` (one directory per library read, as for rustc), and runs it with
//! [`super::run_env`]'s variables plus `CARGO_CRATE_NAME`, from the workspace root. Results are
//! never cached: rustdoc compiles and runs the examples on every `cargo nix test`, as cargo.
//!
//! Not passed yet: a build script's native `-L` paths, `RUSTDOCFLAGS`, `--test-runtool`
//! (target runners).

use crate::plan::lto::Lto;
use crate::plan::rustc_args::{Extern, crate_name};
use crate::units::{Mode, PackageInfo, Unit, UnitGraph};

/// Everything rustdoc's command line for one doctest unit depends on.
#[derive(Debug, Clone)]
pub struct DoctestInvocation<'a> {
    /// The doctest unit (mode `doctest`, the library's target).
    pub unit: &'a Unit,
    /// Its package.
    pub pkg: &'a PackageInfo,
    /// The crate root as cargo passes it: relative to the workspace root for a path package
    /// inside it (rustdoc then runs there), else absolute.
    pub src_path: String,
    /// `--color`: `auto`, `always` or `never`.
    pub color: &'a str,
    /// `--extern` arguments: the library itself and its (dev-)dependencies, in the unit's
    /// dependency order.
    pub externs: &'a [Extern],
    /// Directories for `-L dependency=`.
    pub lib_dirs: &'a [String],
    /// Arguments for the test harness (`-- ARGS`, and a test-name filter), each passed as
    /// `--test-args`.
    pub test_args: &'a [String],
    /// The package's build-script output: its `rustc-cfg` and `rustc-check-cfg` values and
    /// the link arguments that apply to doctests, in cargo's order.
    pub script_args: &'a [String],
    /// rustdocflags cargo resolved for the unit (`RUSTDOCFLAGS`, `[build] rustdocflags`, ...).
    pub rustdocflags: &'a [String],
    /// `--error-format`: `human` or `short`.
    pub error_format: &'a str,
    /// Every native search path the build's scripts gave (`-L`, as given, sorted): cargo's
    /// `Compilation::native_dirs`, which doctests link with.
    pub native_link_paths: &'a [String],
}

/// The LTO flags of a doctest, which cargo treats as a root unit linking a binary
/// (cargo's `lto::generate` for a root whose target is a library).
pub fn doctest_lto(unit: &Unit) -> Lto {
    match unit.profile.lto.as_str() {
        "false" | "" => Lto::OnlyObject,
        "off" => Lto::Off,
        _ => {
            let types = &unit.target.crate_types;
            let needs_object =
                types.iter().any(|t| matches!(t.as_str(), "staticlib" | "cdylib" | "dylib" | "proc-macro"));
            if !needs_object {
                Lto::OnlyBitcode
            } else if types.iter().all(|t| t == "dylib") {
                Lto::OnlyObject
            } else {
                Lto::ObjectAndBitcode
            }
        }
    }
}

/// rustdoc's arguments (without the program), in cargo's order.
pub fn rustdoc_args(inv: &DoctestInvocation<'_>) -> Vec<String> {
    let DoctestInvocation { unit, pkg, .. } = inv;
    let mut args: Vec<String> = Vec::new();
    let mut push = |xs: &[&str]| args.extend(xs.iter().map(|x| (*x).to_owned()));
    // rustdoc_process
    push(&[&format!("--edition={}", unit.target.edition)]);
    for t in &unit.target.crate_types {
        push(&["--crate-type", t]);
    }
    // run_doc_tests
    push(&["--color", inv.color, "--crate-name", &crate_name(unit), "--test", &inv.src_path]);
    push(&["--test-run-directory", &pkg.manifest_dir.to_string_lossy()]);
    if let Some(t) = &unit.platform {
        push(&["--target", t]);
    }
    if let Some([tool, tool_args @ ..]) = unit.runner.as_deref() {
        push(&["--test-runtool", tool]);
        for a in tool_args {
            push(&["--test-runtool-arg", a]);
        }
    }
    if let Some(l) = &unit.linker {
        push(&["-C", &format!("linker={l}")]);
    }
    if unit.profile.panic != "unwind" && !unit.profile.panic.is_empty() {
        push(&["-C", &format!("panic={}", unit.profile.panic)]);
    }
    for p in inv.native_link_paths {
        push(&["-L", p]);
    }
    for a in inv.test_args {
        push(&["--test-args", a]);
    }
    args.extend(pkg.lint_rustflags.iter().cloned());
    // Compilation::to_doc_test: extern_args, lib_search_paths, lto_args, features_args,
    // check_cfg_args, (build script cfgs), rustdocflags, --error-format.
    let mut unstable = false;
    for e in inv.externs {
        let prefix = if e.noprelude { "noprelude:" } else { "" };
        unstable |= e.noprelude;
        args.extend(["--extern".to_owned(), format!("{prefix}{}={}", e.name, e.path)]);
    }
    if unit.is_proc_macro() {
        args.extend(["--extern".to_owned(), "proc_macro".to_owned()]);
    }
    for dir in inv.lib_dirs {
        args.extend(["-L".to_owned(), format!("dependency={dir}")]);
    }
    args.extend(doctest_lto(unit).args());
    for f in &unit.features {
        args.extend(["--cfg".to_owned(), format!("feature=\"{f}\"")]);
    }
    let values: Vec<String> = pkg.features.iter().map(|f| format!("\"{f}\"")).collect();
    args.extend(["--check-cfg".to_owned(), "cfg(docsrs,test)".to_owned(), "--check-cfg".to_owned()]);
    args.push(format!("cfg(feature, values({}))", values.join(", ")));
    args.extend(inv.script_args.iter().cloned());
    args.extend(inv.rustdocflags.iter().cloned());
    args.extend(["--error-format".to_owned(), inv.error_format.to_owned()]);
    if unstable {
        args.push("-Zunstable-options".to_owned());
    }
    args
}

/// The library units a doctest reads, directly or through other libraries (their output
/// directories are its `-L dependency=` paths), in graph order.
pub fn library_closure(graph: &UnitGraph, doctest: &Unit) -> Vec<usize> {
    let mut seen = vec![false; graph.units.len()];
    let mut stack: Vec<usize> = doctest.dependencies.iter().map(|d| d.index).collect();
    while let Some(i) = stack.pop() {
        let u = &graph.units[i];
        if seen[i] || u.mode != Mode::Build || !(u.is_lib() || u.is_proc_macro()) {
            continue;
        }
        seen[i] = true;
        stack.extend(u.dependencies.iter().map(|d| d.index));
    }
    seen.iter().enumerate().filter(|(_, s)| **s).map(|(i, _)| i).collect()
}
