//! The neutral description of a build: what cargo decided, unit by unit, in our own types.
//!
//! This is the input of [`crate::build`]. Two adapters make it:
//! - from cargo's own `BuildContext` (the `cargo-nix` crate's `from_cargo`, which links the
//!   `cargo` library; the way a patched cargo calls the backend): every fact cargo resolved,
//!   including rustflags, `[lints]`, config `[env]`, the target linker and `harness`;
//! - from `cargo build --unit-graph` JSON plus `cargo metadata` ([`unit_graph`],
//!   [`from_unit_graph`]): a documented fallback (and what `--unit-graph FILE` reads). That
//!   JSON lacks rustflags, lints, `[env]`, the linker and `harness`; those fields then keep
//!   their defaults (none, and `harness = true`).
//!
//! A *unit* is one invocation of rustc or of a build script: a package's target compiled in one
//! mode with one profile for one platform. [`UnitGraph`] lists the units in an array and refers
//! to them by index, both in each unit's `dependencies` and in `roots` (the units the user asked
//! for). Units are sorted as cargo sorts them, so both adapters number them alike.
//!
//! Where each concept lives: [`Unit`] (what to build and with which flags), [`Profile`],
//! [`Target`], [`Mode`]; [`Workspace`] and [`PackageInfo`] (package facts: `links`, the
//! `CARGO_PKG_*` metadata, lints; workspace root, target dir, config `[env]`);
//! [`package_id`] (reading package ids).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

pub mod from_unit_graph;
pub mod package_id;
pub mod unit_graph;
mod workspace;

pub use package_id::PackageIdParts;
pub use unit_graph::{SUPPORTED_VERSION, UnitGraphError};
pub use workspace::{EnvVar, PackageInfo, Workspace};

use unit_graph::{de_debuginfo, de_lto, de_nullable_path, de_opt_level, de_strip, default_edition};

/// For unit tests: a unit of package `name` (a path package at `/w/<name>`) in the `dev`
/// profile, its target's `kinds` and `crate_types` given as cargo's unit graph lists them (each
/// quoted, e.g. `"cdylib", "rlib"`), compiled in `mode` (`build`, `test`, …).
#[cfg(test)]
pub(crate) fn test_unit(kinds: &str, crate_types: &str, mode: &str, name: &str) -> Unit {
    let json = format!(
        r#"{{"version": 1, "roots": [0], "units": [{{"pkg_id": "path+file:///w/{name}#0.1.0", "mode": "{mode}",
            "features": [], "profile": {{"name": "dev", "opt_level": "0", "debuginfo": 2,
            "debug_assertions": true, "overflow_checks": true, "lto": "false", "panic": "unwind"}},
            "target": {{"kind": [{kinds}], "crate_types": [{crate_types}], "name": "{name}",
                        "src_path": "/w/{name}/src/x.rs", "edition": "2021"}}}}]}}"#
    );
    UnitGraph::parse(&json).unwrap().units.remove(0)
}

/// A parsed and validated unit graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitGraph {
    /// Format version; always [`SUPPORTED_VERSION`] after [`UnitGraph::parse`].
    pub version: u32,
    /// All units. Dependencies and roots index into this vector.
    pub units: Vec<Unit>,
    /// Indices of the units that were requested on the command line.
    pub roots: Vec<usize>,
}

/// One unit of work: a target of a package, built in one mode, with one profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Unit {
    /// The package id, in whichever form this cargo prints; see [`PackageIdParts`].
    pub pkg_id: String,
    /// The target (lib, bin, build script, ...) being built.
    pub target: Target,
    /// The profile settings that decide the rustc flags.
    #[serde(default)]
    pub profile: Profile,
    /// The target triple, or `None` for the host.
    #[serde(default)]
    pub platform: Option<String>,
    /// What is done with the target.
    pub mode: Mode,
    /// Enabled features of the package.
    #[serde(default)]
    pub features: Vec<String>,
    /// Whether the unit is part of the standard library (`-Z build-std`).
    #[serde(default)]
    pub is_std: bool,
    /// Edges to the units this one needs.
    #[serde(default)]
    pub dependencies: Vec<UnitDep>,
    /// The rustflags cargo resolved for this unit from every source it reads
    /// (`CARGO_ENCODED_RUSTFLAGS`, `RUSTFLAGS`, `[target.<triple>]` and `[target.<cfg>]`,
    /// `[build] rustflags`), passed last on rustc's command line. Not in cargo's unit-graph JSON.
    #[serde(default)]
    pub rustflags: Vec<String>,
    /// `-C linker=`: the linker configured for this unit's platform (`[target.<triple>] linker`
    /// or `[target.<cfg>] linker`), resolved as cargo resolves programs. Not in the JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linker: Option<String>,
    /// rustdoc's flags for this unit (`RUSTDOCFLAGS`, `CARGO_ENCODED_RUSTDOCFLAGS`,
    /// `[build] rustdocflags`, `[target.<triple>] rustdocflags`): what its doctests get. Not
    /// in the JSON.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rustdocflags: Vec<String>,
    /// The runner configured for this unit's platform (`[target.<triple>] runner`, else a
    /// matching `[target.<cfg>] runner`): the program, resolved as cargo resolves programs,
    /// then its arguments. Tests and `run` execute through it, as under cargo. Not in the JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<Vec<String>>,
}

/// A cargo target: `[lib]`, a `[[bin]]`, a test, an example, a bench or a build script.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Target {
    /// Target kinds: `lib`/`rlib`/`dylib`/`cdylib`/`staticlib`/`proc-macro` for libraries,
    /// otherwise one of `bin`, `test`, `bench`, `example`, `custom-build`.
    #[serde(default)]
    pub kind: Vec<String>,
    /// The `--crate-type` values passed to rustc.
    #[serde(default)]
    pub crate_types: Vec<String>,
    /// Target name (for build scripts, `build-script-build`).
    pub name: String,
    /// Root source file. Empty when cargo has none to print (metabuild).
    #[serde(default, deserialize_with = "de_nullable_path")]
    pub src_path: PathBuf,
    /// Rust edition, e.g. `"2021"`. Defaults to `"2015"`, as in a manifest.
    #[serde(default = "default_edition")]
    pub edition: String,
    /// Whether `cargo doc` documents this target.
    #[serde(default)]
    pub doc: bool,
    /// Whether `cargo test` runs its doctests.
    #[serde(default)]
    pub doctest: bool,
    /// Whether `cargo test` runs its tests.
    #[serde(default)]
    pub test: bool,
    /// Features the target needs (`required-features`), if declared.
    #[serde(default, rename = "required-features")]
    pub required_features: Option<Vec<String>>,
    /// `harness`: whether a test or bench target is compiled with rustc's test harness
    /// (`--test`). With `harness = false` cargo passes `--cfg test` instead and the target's own
    /// `main` runs. Not in cargo's unit-graph JSON (defaults to true).
    #[serde(default = "yes")]
    pub harness: bool,
}

fn yes() -> bool {
    true
}

/// Profile settings of a unit, normalised to rustc's spelling.
///
/// Note that cargo recomputes `-C lto` per unit (build scripts and proc macros never get LTO, and
/// dependencies of an LTO root get `-C linker-plugin-lto` or `-C embed-bitcode`); `lto` here is the
/// profile's setting, not the flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// Profile name, e.g. `dev`, `release`, `test`, `bench` or a custom name.
    pub name: String,
    /// `-C opt-level` value: `0`-`3`, `s` or `z`.
    #[serde(deserialize_with = "de_opt_level")]
    pub opt_level: String,
    /// `false`, `true` (fat), `thin`, `fat` or `off`.
    #[serde(deserialize_with = "de_lto")]
    pub lto: String,
    /// `-C codegen-units`, or `None` for rustc's default.
    pub codegen_units: Option<u32>,
    /// Debug info level, or `None` when the field is absent or null (no debug info).
    #[serde(deserialize_with = "de_debuginfo")]
    pub debuginfo: Option<DebugInfo>,
    /// `-C split-debuginfo`, or `None` for rustc's default.
    pub split_debuginfo: Option<String>,
    /// `-C debug-assertions`.
    pub debug_assertions: bool,
    /// `-C overflow-checks`.
    pub overflow_checks: bool,
    /// `-C rpath`.
    pub rpath: bool,
    /// Whether cargo would compile incrementally.
    pub incremental: bool,
    /// `-C panic` value: `unwind`, `abort` (or `immediate-abort` on nightly).
    pub panic: String,
    /// `-C strip` value: `none`, `debuginfo` or `symbols`.
    #[serde(deserialize_with = "de_strip")]
    pub strip: String,
    /// Extra rustc flags from the unstable `profile-rustflags` feature (usually empty).
    pub rustflags: Vec<String>,
    /// The built-in profile this one derives from, `release` or `debug` (a build script's
    /// `PROFILE`). Not in cargo's JSON: empty means "from the name" (`release` and `bench` are
    /// `release`, anything else `debug`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root: String,
}

impl Profile {
    /// `release` or `debug`: what cargo sets as a build script's `PROFILE`.
    pub fn root(&self) -> &str {
        match self.root.as_str() {
            "" if self.name == "release" || self.name == "bench" => "release",
            "" => "debug",
            r => r,
        }
    }
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            name: String::new(),
            opt_level: "0".to_owned(),
            lto: "false".to_owned(),
            codegen_units: None,
            debuginfo: None,
            split_debuginfo: None,
            debug_assertions: false,
            overflow_checks: false,
            rpath: false,
            incremental: false,
            panic: "unwind".to_owned(),
            strip: "none".to_owned(),
            rustflags: Vec::new(),
            root: String::new(),
        }
    }
}

/// A debug info level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DebugInfo {
    /// No debug info (`0`).
    None,
    /// Line directives only.
    LineDirectivesOnly,
    /// Line tables only.
    LineTablesOnly,
    /// Limited debug info (`1`).
    Limited,
    /// Full debug info (`2`).
    Full,
}

impl DebugInfo {
    /// The value for rustc's `-C debuginfo=`.
    pub fn rustc_value(self) -> &'static str {
        match self {
            DebugInfo::None => "0",
            DebugInfo::LineDirectivesOnly => "line-directives-only",
            DebugInfo::LineTablesOnly => "line-tables-only",
            DebugInfo::Limited => "1",
            DebugInfo::Full => "2",
        }
    }

    /// Whether any debug info is produced (cargo's `DEBUG` build-script variable).
    pub fn is_enabled(self) -> bool {
        self != DebugInfo::None
    }
}

impl fmt::Display for DebugInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rustc_value())
    }
}

/// What is done with a unit's target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Compile with rustc.
    Build,
    /// Type-check with rustc, emitting metadata only; `test` means with `--test`.
    Check {
        /// Whether rustc is given `--test` (inferred, see the module docs).
        test: bool,
    },
    /// Compile with `rustc --test`.
    Test,
    /// Document with rustdoc.
    Doc,
    /// Run doctests with rustdoc.
    Doctest,
    /// Run a compiled build script.
    RunCustomBuild,
    /// A mode this module does not know (e.g. `docscrape`), as printed.
    Other(String),
}

impl Mode {
    /// The spelling cargo uses in the unit graph.
    pub fn as_str(&self) -> &str {
        match self {
            Mode::Build => "build",
            Mode::Check { .. } => "check",
            Mode::Test => "test",
            Mode::Doc => "doc",
            Mode::Doctest => "doctest",
            Mode::RunCustomBuild => "run-custom-build",
            Mode::Other(s) => s,
        }
    }

    /// Whether the unit is compiled or checked as a test (`Test`, `Check { test: true }`, or
    /// `Doctest`), as cargo's `CompileMode::is_any_test`.
    pub fn is_any_test(&self) -> bool {
        matches!(self, Mode::Test | Mode::Check { test: true } | Mode::Doctest)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Mode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Mode::Check { test: true } => serializer.serialize_str("check-test"),
            other => serializer.serialize_str(other.as_str()),
        }
    }
}

impl Serialize for DebugInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rustc_value())
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(match s.as_str() {
            "build" => Mode::Build,
            "check" => Mode::Check { test: false },
            // Never printed by cargo: how this crate writes `Check { test: true }` (caches).
            "check-test" => Mode::Check { test: true },
            "test" => Mode::Test,
            "doc" => Mode::Doc,
            "doctest" => Mode::Doctest,
            "run-custom-build" => Mode::RunCustomBuild,
            _ => Mode::Other(s),
        })
    }
}

/// An edge from a unit to one of its dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UnitDep {
    /// Index of the dependency in [`UnitGraph::units`].
    pub index: usize,
    /// The name the dependent uses for it in `--extern` (for a build-script run,
    /// `build_script_build`).
    #[serde(default)]
    pub extern_crate_name: String,
    /// Public dependency (`--extern` option `priv` is passed when false; nightly only).
    #[serde(default)]
    pub public: bool,
    /// Not added to the extern prelude (`--extern noprelude:`; nightly only).
    #[serde(default)]
    pub noprelude: bool,
    /// Exempt from the unused-crate lint (`--extern nounused:`; nightly only).
    #[serde(default)]
    pub nounused: bool,
}

/// Where a package comes from, as told by its package id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// A registry (`registry+` or `sparse+`), e.g. crates.io.
    Registry,
    /// A local directory (`path+file://`); holds the package's directory.
    Path(PathBuf),
    /// A git repository (`git+`).
    Git,
    /// Anything else: `local-registry+`, `directory+`, or an id without a source.
    Other,
}

impl Unit {
    /// Compiling a build script: target kind `custom-build` in mode `build`.
    pub fn is_build_script_compile(&self) -> bool {
        self.has_kind("custom-build") && self.mode == Mode::Build
    }

    /// Running a build script (mode `run-custom-build`).
    pub fn is_build_script_run(&self) -> bool {
        self.mode == Mode::RunCustomBuild
    }

    /// A procedural-macro library.
    pub fn is_proc_macro(&self) -> bool {
        self.has_kind("proc-macro")
    }

    /// A library target of any crate type (`lib`, `rlib`, `dylib`, `cdylib`, `staticlib`,
    /// `proc-macro`). Examples built as libraries have kind `example` and are not included.
    pub fn is_lib(&self) -> bool {
        self.target
            .kind
            .iter()
            .any(|k| matches!(k.as_str(), "lib" | "rlib" | "dylib" | "cdylib" | "staticlib" | "proc-macro"))
    }

    /// A `[[bin]]` target.
    pub fn is_bin(&self) -> bool {
        self.has_kind("bin")
    }

    /// A `[[test]]` target (an integration test). To ask whether the unit is compiled with
    /// `--test`, use [`Mode::is_any_test`] on [`Unit::mode`].
    pub fn is_test(&self) -> bool {
        self.has_kind("test")
    }

    /// A `[[bench]]` target.
    pub fn is_bench(&self) -> bool {
        self.has_kind("bench")
    }

    /// An `[[example]]` target (binary or library).
    pub fn is_example(&self) -> bool {
        self.has_kind("example")
    }

    /// A library with crate type `cdylib`.
    pub fn is_cdylib(&self) -> bool {
        self.has_kind("cdylib")
    }

    /// Whether the target's kinds include `kind`.
    pub fn has_kind(&self, kind: &str) -> bool {
        self.target.kind.iter().any(|k| k == kind)
    }

    /// The pieces of [`Unit::pkg_id`].
    pub fn package_id_parts(&self) -> Option<PackageIdParts<'_>> {
        PackageIdParts::parse(&self.pkg_id)
    }

    /// Package name, from [`Unit::pkg_id`].
    pub fn package_name(&self) -> Option<&str> {
        self.package_id_parts().map(|p| p.name)
    }

    /// Package version, from [`Unit::pkg_id`].
    pub fn package_version(&self) -> Option<&str> {
        self.package_id_parts().and_then(|p| p.version)
    }

    /// Where the package comes from, from [`Unit::pkg_id`].
    pub fn source_kind(&self) -> SourceKind {
        self.package_id_parts().map_or(SourceKind::Other, |p| p.source_kind())
    }

    /// A short human-readable name: `target-name [mode] (pkg_id)`.
    pub fn describe(&self) -> String {
        format!("{} [{}] ({})", self.target.name, self.mode, self.pkg_id)
    }
}

impl UnitGraph {
    /// Unit indices ordered so that every unit comes after all of its dependencies.
    ///
    /// The order is deterministic: a depth-first post-order starting from unit 0, 1, 2, … and
    /// following dependencies in the order they are listed. For a graph built by hand that has a
    /// cycle or bad indices, bad indices are ignored and cycle edges are dropped, so every unit is
    /// still listed exactly once.
    pub fn topological_order(&self) -> Vec<usize> {
        match self.walk() {
            Ok(order) => order,
            Err(_) => self.walk_lenient(),
        }
    }

    /// Indices of the units that depend directly on each unit (the reverse edges).
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.units.len()];
        for (i, unit) in self.units.iter().enumerate() {
            for dep in &unit.dependencies {
                match out.get_mut(dep.index) {
                    Some(list) if list.last() != Some(&i) => list.push(i),
                    _ => {}
                }
            }
        }
        out
    }

    /// Depth-first post-order; `Err` holds the units of the first cycle found.
    fn walk(&self) -> Result<Vec<usize>, Vec<usize>> {
        self.dfs(true)
    }

    fn walk_lenient(&self) -> Vec<usize> {
        self.dfs(false).unwrap_or_default()
    }

    fn dfs(&self, fail_on_cycle: bool) -> Result<Vec<usize>, Vec<usize>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnStack,
            Done,
        }
        let n = self.units.len();
        let mut mark = vec![Mark::New; n];
        let mut order = Vec::with_capacity(n);
        // (unit, position of the next dependency to visit)
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for start in 0..n {
            if mark[start] != Mark::New {
                continue;
            }
            mark[start] = Mark::OnStack;
            stack.push((start, 0));
            while let Some(top) = stack.last_mut() {
                let (unit, pos) = *top;
                let deps = &self.units[unit].dependencies;
                if pos == deps.len() {
                    stack.pop();
                    mark[unit] = Mark::Done;
                    order.push(unit);
                    continue;
                }
                top.1 += 1;
                let dep = deps[pos].index;
                match mark.get(dep) {
                    Some(Mark::New) => {
                        mark[dep] = Mark::OnStack;
                        stack.push((dep, 0));
                    }
                    Some(Mark::OnStack) if fail_on_cycle => {
                        // The stack runs from dependents to their dependencies, so from `dep`
                        // to the top each unit depends on the next, and the top on `dep`.
                        let from = stack.iter().position(|&(u, _)| u == dep).unwrap_or(0);
                        return Err(stack[from..].iter().map(|&(u, _)| u).collect());
                    }
                    _ => {}
                }
            }
        }
        Ok(order)
    }
}
