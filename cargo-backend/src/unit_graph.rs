//! Cargo's unit graph, as printed by `cargo build --unit-graph -Z unstable-options` (version 1).
//!
//! A *unit* is one invocation of rustc, rustdoc or a build script: a package's target compiled in
//! one mode with one profile for one platform. The graph lists the units in an array and refers to
//! them by index, both in each unit's `dependencies` and in `roots` (the units the user asked for).
//!
//! # Design
//!
//! * **Lenient reading, strict checking.** The format is unstable and cargo adds fields from time
//!   to time, so unknown fields are ignored and optional fields default. Fields whose JSON shape
//!   changed between cargo versions (`lto`, `debuginfo`, `strip`, `opt_level`) go through small
//!   deserializers that normalise them to the value rustc expects on its command line. The graph
//!   structure, on the other hand, is checked in full by [`UnitGraph::parse`]: version, index
//!   ranges and acyclicity. Code downstream may therefore index `units` without checking.
//! * **Two passes over the JSON.** The first pass reads only `version` (skipping everything else),
//!   so a future version 2 with a different shape reports [`UnitGraphError::UnsupportedVersion`]
//!   instead of a confusing schema error. Both passes are linear in the size of the input.
//! * **Package ids as text.** `pkg_id` is kept verbatim (it identifies the package) and parsed on
//!   demand by [`PackageIdParts::parse`], which understands both the package-id-spec form printed
//!   by current cargo (`registry+https://…#serde@1.0.219`, `path+file:///…/foo#0.1.0`) and the
//!   older `name version (source)` form.
//! * **`check --tests`.** Cargo prints both `Check { test: false }` and `Check { test: true }` as
//!   `"check"`. It sorts units before printing, and the non-test variant sorts first, so when two
//!   `check` units agree on everything cargo prints except their dependencies (the test variant also
//!   sees dev-dependencies), the later one is taken to be the `--test` variant. This is a heuristic;
//!   a lone `check` unit is always read as `Check { test: false }`.
//! * **Iterative graph walks.** Cycle detection and topological ordering use an explicit stack,
//!   so a deep graph cannot overflow the thread's stack.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The only unit-graph format version this module understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// Why a unit graph could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnitGraphError {
    /// The input is not valid JSON, or it ends early (`truncated`).
    #[error(
        "{} at line {line}, column {column}: {message}",
        if *truncated { "unit graph JSON is truncated" } else { "unit graph JSON has a syntax error" }
    )]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description of the problem, without the position.
        message: String,
        /// Whether the input ended in the middle of a value.
        truncated: bool,
    },
    /// The input is valid JSON, but not shaped like a unit graph (a missing or mistyped field).
    #[error("unit graph JSON does not match cargo's format at line {line}, column {column}: {message}")]
    Schema {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description of the problem, without the position.
        message: String,
    },
    /// The graph declares a format version other than [`SUPPORTED_VERSION`].
    #[error(
        "unsupported unit graph version {0} (only version {SUPPORTED_VERSION} is understood); \
         use a cargo whose `--unit-graph` output is version {SUPPORTED_VERSION}"
    )]
    UnsupportedVersion(u32),
    /// A unit lists a dependency index past the end of `units`.
    #[error("unit {unit} ({pkg_id}) depends on unit {index}, but the graph has only {len} units")]
    DependencyOutOfRange {
        /// Index of the unit with the bad dependency.
        unit: usize,
        /// `pkg_id` of that unit.
        pkg_id: String,
        /// The dependency index found.
        index: usize,
        /// Number of units in the graph.
        len: usize,
    },
    /// `roots` names an index past the end of `units`.
    #[error("root {index} is out of range: the graph has only {len} units")]
    RootOutOfRange {
        /// The root index found.
        index: usize,
        /// Number of units in the graph.
        len: usize,
    },
    /// A unit lists itself as a dependency.
    #[error("unit {unit} ({pkg_id}) depends on itself")]
    SelfDependency {
        /// Index of the unit.
        unit: usize,
        /// `pkg_id` of that unit.
        pkg_id: String,
    },
    /// The dependencies form a cycle. `units` lists the units on it, each as
    /// `target-name [mode] (pkg_id)`: each depends on the next, and the last on the first.
    #[error(
        "dependency cycle in unit graph: {} -> {}",
        units.join(" -> "),
        units.first().map_or("", String::as_str)
    )]
    Cycle {
        /// The units on the cycle.
        units: Vec<String>,
    },
}

/// A parsed and validated unit graph.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UnitGraph {
    /// Format version; always [`SUPPORTED_VERSION`] after [`UnitGraph::parse`].
    pub version: u32,
    /// All units. Dependencies and roots index into this vector.
    pub units: Vec<Unit>,
    /// Indices of the units that were requested on the command line.
    pub roots: Vec<usize>,
}

/// One unit of work: a target of a package, built in one mode, with one profile.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
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
}

/// A cargo target: `[lib]`, a `[[bin]]`, a test, an example, a bench or a build script.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
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
}

/// Profile settings of a unit, normalised to rustc's spelling.
///
/// Note that cargo recomputes `-C lto` per unit (build scripts and proc macros never get LTO, and
/// dependencies of an LTO root get `-C linker-plugin-lto` or `-C embed-bitcode`); `lto` here is the
/// profile's setting, not the flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
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

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(match s.as_str() {
            "build" => Mode::Build,
            "check" => Mode::Check { test: false },
            "test" => Mode::Test,
            "doc" => Mode::Doc,
            "doctest" => Mode::Doctest,
            "run-custom-build" => Mode::RunCustomBuild,
            _ => Mode::Other(s),
        })
    }
}

/// An edge from a unit to one of its dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
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

/// The pieces of a package id, borrowed from the id's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackageIdParts<'a> {
    /// Package name.
    pub name: &'a str,
    /// Package version, if the id has one.
    pub version: Option<&'a str>,
    /// The source with its kind prefix (`registry+https://…`, `path+file:///…`), if any.
    /// In the old form this includes a git source's `#rev`.
    pub source: Option<&'a str>,
}

impl<'a> PackageIdParts<'a> {
    /// Splits a package id in either form cargo prints:
    ///
    /// * package id spec: `registry+https://github.com/rust-lang/crates.io-index#serde@1.0.219`,
    ///   `path+file:///home/x/foo#0.1.0` (the name is the URL's last segment, here `foo`),
    ///   `path+file:///home/x/foo#bar@0.1.0`, `git+https://github.com/a/b?branch=x#0.1.0`,
    ///   or a bare `name@version`;
    /// * old form: `serde 1.0.219 (registry+https://github.com/rust-lang/crates.io-index)`.
    ///
    /// Returns `None` when no name can be found.
    pub fn parse(pkg_id: &'a str) -> Option<Self> {
        let pkg_id = pkg_id.trim();
        if pkg_id.contains(char::is_whitespace) {
            return Self::parse_old_form(pkg_id);
        }
        match pkg_id.rsplit_once('#') {
            Some((url, fragment)) => {
                let (name, version) = match fragment.split_once('@') {
                    Some((name, version)) => (name, Some(version)),
                    None if fragment.starts_with(|c: char| c.is_ascii_digit()) => {
                        (url_last_segment(url)?, Some(fragment))
                    }
                    None => (fragment, None),
                };
                nonempty(name)?;
                Some(PackageIdParts { name, version: version.and_then(nonempty), source: Some(url) })
            }
            None if pkg_id.contains("://") => {
                Some(PackageIdParts { name: url_last_segment(pkg_id)?, version: None, source: Some(pkg_id) })
            }
            None => {
                let (name, version) = match pkg_id.split_once('@') {
                    Some((name, version)) => (name, nonempty(version)),
                    None => (pkg_id, None),
                };
                Some(PackageIdParts { name: nonempty(name)?, version, source: None })
            }
        }
    }

    /// `name version (source)`, with the source optional and a `v` before the version allowed.
    fn parse_old_form(pkg_id: &'a str) -> Option<Self> {
        let (head, source) = match pkg_id.split_once('(') {
            Some((head, rest)) => (head, rest.strip_suffix(')').and_then(nonempty)),
            None => (pkg_id, None),
        };
        let mut words = head.split_whitespace();
        let name = words.next()?;
        let version = words.next().map(|v| v.strip_prefix('v').unwrap_or(v));
        Some(PackageIdParts { name, version, source: source.map(str::trim) })
    }

    /// Classifies [`PackageIdParts::source`].
    pub fn source_kind(&self) -> SourceKind {
        let Some(source) = self.source else {
            return SourceKind::Other;
        };
        let Some((kind, url)) = source.split_once('+') else {
            return SourceKind::Other;
        };
        match kind {
            "registry" | "sparse" => SourceKind::Registry,
            "git" => SourceKind::Git,
            "path" => match file_url_to_path(url) {
                Some(path) => SourceKind::Path(path),
                None => SourceKind::Other,
            },
            _ => SourceKind::Other,
        }
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The last path segment of a URL, ignoring its query and fragment.
fn url_last_segment(url: &str) -> Option<&str> {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    nonempty(path.rsplit('/').next()?)
}

/// `file:///a/b%20c?x#y` → `/a/b c`.
fn file_url_to_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    // `file://localhost/x` names the same file as `file:///x`.
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', hi, lo]) => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi * 16 + lo),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

#[derive(Deserialize)]
struct Header {
    version: u32,
}

impl UnitGraph {
    /// Parses and validates `cargo --unit-graph` output.
    ///
    /// Checks, in order: JSON syntax, the version (must be [`SUPPORTED_VERSION`]), the shape of
    /// the document, every dependency and root index, self-dependencies and cycles.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`UnitGraphError`].
    pub fn parse(json: &str) -> Result<UnitGraph, UnitGraphError> {
        let header: Header = serde_json::from_str(json).map_err(json_error)?;
        if header.version != SUPPORTED_VERSION {
            return Err(UnitGraphError::UnsupportedVersion(header.version));
        }
        let mut graph: UnitGraph = serde_json::from_str(json).map_err(json_error)?;
        graph.validate()?;
        graph.infer_check_tests();
        Ok(graph)
    }

    /// Checks indices and acyclicity.
    fn validate(&self) -> Result<(), UnitGraphError> {
        let len = self.units.len();
        for (i, unit) in self.units.iter().enumerate() {
            for dep in &unit.dependencies {
                if dep.index >= len {
                    return Err(UnitGraphError::DependencyOutOfRange {
                        unit: i,
                        pkg_id: unit.pkg_id.clone(),
                        index: dep.index,
                        len,
                    });
                }
                if dep.index == i {
                    return Err(UnitGraphError::SelfDependency { unit: i, pkg_id: unit.pkg_id.clone() });
                }
            }
        }
        if let Some(&index) = self.roots.iter().find(|&&r| r >= len) {
            return Err(UnitGraphError::RootOutOfRange { index, len });
        }
        match self.walk() {
            Ok(_) => Ok(()),
            Err(cycle) => {
                Err(UnitGraphError::Cycle { units: cycle.iter().map(|&i| self.units[i].describe()).collect() })
            }
        }
    }

    /// Marks the second of two otherwise identical `check` units as `Check { test: true }`.
    /// See the module docs.
    fn infer_check_tests(&mut self) {
        type Key<'a> = (&'a str, &'a Target, &'a Profile, &'a Option<String>, &'a [String], bool);
        let mut seen: HashMap<Key<'_>, usize> = HashMap::new();
        let mut tests = Vec::new();
        for (i, unit) in self.units.iter().enumerate() {
            if unit.mode != (Mode::Check { test: false }) {
                continue;
            }
            let key = (
                unit.pkg_id.as_str(),
                &unit.target,
                &unit.profile,
                &unit.platform,
                unit.features.as_slice(),
                unit.is_std,
            );
            if seen.insert(key, i).is_some() {
                tests.push(i);
            }
        }
        for i in tests {
            self.units[i].mode = Mode::Check { test: true };
        }
    }

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

fn json_error(e: serde_json::Error) -> UnitGraphError {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    match e.classify() {
        Category::Data => UnitGraphError::Schema { line, column, message },
        category => UnitGraphError::Syntax { line, column, message, truncated: category == Category::Eof },
    }
}

fn default_edition() -> String {
    "2015".to_owned()
}

fn de_nullable_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(Option::<PathBuf>::deserialize(d)?.unwrap_or_default())
}

fn de_opt_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok("0".to_owned()),
        other => Err(invalid::<D>("opt_level", &other)),
    }
}

fn de_lto<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("false".to_owned()),
        other => Err(invalid::<D>("lto", &other)),
    }
}

fn de_debuginfo<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DebugInfo>, D::Error> {
    let value = Value::deserialize(d)?;
    debuginfo_from_value(&value).ok_or_else(|| invalid::<D>("debuginfo", &value))
}

/// `None` when the value is not understood; `Some(None)` for null.
fn debuginfo_from_value(value: &Value) -> Option<Option<DebugInfo>> {
    let level = match value {
        Value::Null => return Some(None),
        Value::Bool(true) => DebugInfo::Full,
        Value::Bool(false) => DebugInfo::None,
        Value::Number(n) => match n.as_u64()? {
            0 => DebugInfo::None,
            1 => DebugInfo::Limited,
            2 => DebugInfo::Full,
            _ => return None,
        },
        Value::String(s) => match s.as_str() {
            "0" | "none" | "None" => DebugInfo::None,
            "1" | "limited" | "Limited" => DebugInfo::Limited,
            "2" | "full" | "Full" => DebugInfo::Full,
            "line-tables-only" | "LineTablesOnly" => DebugInfo::LineTablesOnly,
            "line-directives-only" | "LineDirectivesOnly" => DebugInfo::LineDirectivesOnly,
            _ => return None,
        },
        // A tagged form such as `{"deferred": 2}` or `{"resolved": "line-tables-only"}`.
        Value::Object(map) if map.len() == 1 => {
            return debuginfo_from_value(map.values().next()?);
        }
        _ => return None,
    };
    Some(Some(level))
}

fn de_strip<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Value::deserialize(d)?;
    strip_from_value(&value).ok_or_else(|| invalid::<D>("strip", &value))
}

/// Accepts `"none"`, `"symbols"`, booleans, and cargo's tagged forms such as
/// `{"deferred": "None"}` and `{"resolved": {"Named": "debuginfo"}}`.
fn strip_from_value(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Bool(false) => Some("none".to_owned()),
        Value::Bool(true) => Some("symbols".to_owned()),
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Object(map) if map.len() == 1 => strip_from_value(map.values().next()?),
        _ => None,
    }
}

fn invalid<'de, D: Deserializer<'de>>(field: &str, value: &Value) -> D::Error {
    serde::de::Error::custom(format!("unrecognised `{field}` value {value}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph shaped like cargo 1.95's output for a package `app` (lib + bin) with a build
    /// script, a `links` dependency `zsys` with its own build script, and a proc macro
    /// `derive-it` from crates.io. Fields are spelled in every shape cargo has used.
    const GRAPH: &str = r#"{
      "version": 1,
      "units": [
        {
          "pkg_id": "path+file:///home/u/ws/app#0.1.0",
          "target": {"kind": ["lib"], "crate_types": ["lib"], "name": "app",
                     "src_path": "/home/u/ws/app/src/lib.rs", "edition": "2021",
                     "doc": true, "doctest": true, "test": true},
          "profile": {"name": "release", "opt_level": "3", "lto": "thin",
                      "codegen_backend": null, "codegen_units": 4,
                      "debuginfo": "line-tables-only", "split_debuginfo": null,
                      "debug_assertions": false, "overflow_checks": false, "rpath": false,
                      "incremental": false, "panic": "unwind",
                      "strip": {"resolved": {"Named": "symbols"}}},
          "platform": null, "mode": "build", "features": ["default", "zlib"],
          "dependencies": [
            {"index": 3, "extern_crate_name": "build_script_build", "public": false,
             "noprelude": false},
            {"index": 4, "extern_crate_name": "derive_it"},
            {"index": 5, "extern_crate_name": "zsys"}
          ]
        },
        {
          "pkg_id": "path+file:///home/u/ws/app#0.1.0",
          "target": {"kind": ["bin"], "crate_types": ["bin"], "name": "app-cli",
                     "src_path": "/home/u/ws/app/src/main.rs", "edition": "2021",
                     "required-features": ["cli"], "doc": true, "doctest": false,
                     "test": true, "some_future_field": {"x": [1, 2]}},
          "profile": {"name": "release", "opt_level": "3", "lto": true, "codegen_units": null,
                      "debuginfo": 2, "debug_assertions": false, "overflow_checks": false,
                      "rpath": false, "incremental": false, "panic": "abort",
                      "strip": "debuginfo", "trim_paths": "all"},
          "platform": "x86_64-unknown-linux-gnu", "mode": "build", "features": [],
          "dependencies": [
            {"index": 0, "extern_crate_name": "app"},
            {"index": 3, "extern_crate_name": "build_script_build"}
          ]
        },
        {
          "pkg_id": "path+file:///home/u/ws/app#0.1.0",
          "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                     "name": "build-script-build", "src_path": "/home/u/ws/app/build.rs",
                     "edition": "2021", "doc": false, "doctest": false, "test": false},
          "profile": {"name": "release", "opt_level": "0", "lto": "false", "codegen_units": null,
                      "debuginfo": 0, "debug_assertions": false, "overflow_checks": false,
                      "rpath": false, "incremental": false, "panic": "unwind",
                      "strip": {"deferred": "None"}},
          "platform": null, "mode": "build", "features": [], "dependencies": []
        },
        {
          "pkg_id": "path+file:///home/u/ws/app#0.1.0",
          "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                     "name": "build-script-build", "src_path": "/home/u/ws/app/build.rs",
                     "edition": "2021", "doc": false, "doctest": false, "test": false},
          "profile": {"name": "release", "opt_level": "3", "lto": "false", "codegen_units": null,
                      "debuginfo": null, "debug_assertions": false, "overflow_checks": false,
                      "rpath": false, "incremental": false, "panic": "unwind",
                      "strip": {"deferred": "None"}},
          "platform": null, "mode": "run-custom-build", "features": [],
          "dependencies": [
            {"index": 2, "extern_crate_name": "build_script_build"},
            {"index": 7, "extern_crate_name": "build_script_build"}
          ]
        },
        {
          "pkg_id": "registry+https://github.com/rust-lang/crates.io-index#derive-it@1.2.3",
          "target": {"kind": ["proc-macro"], "crate_types": ["proc-macro"], "name": "derive_it",
                     "src_path": "/home/u/.cargo/registry/src/x/derive-it-1.2.3/src/lib.rs",
                     "edition": "2018", "doc": true, "doctest": true, "test": true},
          "profile": {"name": "release", "opt_level": "0", "lto": "off", "codegen_units": null,
                      "debuginfo": "limited", "debug_assertions": false,
                      "overflow_checks": false, "rpath": false, "incremental": false,
                      "panic": "unwind", "strip": {"resolved": "None"}},
          "platform": null, "mode": "build", "features": [], "dependencies": []
        },
        {
          "pkg_id": "path+file:///home/u/ws/z-sys#zsys@0.3.0",
          "target": {"kind": ["lib"], "crate_types": ["lib"], "name": "zsys",
                     "src_path": "/home/u/ws/z-sys/src/lib.rs", "edition": "2015",
                     "doc": true, "doctest": true, "test": true},
          "profile": {"name": "release", "opt_level": "3"},
          "platform": null, "mode": "build", "features": [], "is_std": false,
          "dependencies": [{"index": 7, "extern_crate_name": "build_script_build"}]
        },
        {
          "pkg_id": "path+file:///home/u/ws/z-sys#zsys@0.3.0",
          "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                     "name": "build-script-build", "src_path": "/home/u/ws/z-sys/build.rs",
                     "edition": "2015", "doc": false, "doctest": false, "test": false},
          "profile": {"name": "release", "opt_level": "0", "lto": "false",
                      "debuginfo": {"deferred": 0}, "strip": "none"},
          "platform": null, "mode": "build", "features": [], "dependencies": []
        },
        {
          "pkg_id": "path+file:///home/u/ws/z-sys#zsys@0.3.0",
          "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                     "name": "build-script-build", "src_path": "/home/u/ws/z-sys/build.rs",
                     "edition": "2015", "doc": false, "doctest": false, "test": false},
          "profile": {"name": "release", "opt_level": "3"},
          "platform": null, "mode": "run-custom-build", "features": [],
          "dependencies": [{"index": 6, "extern_crate_name": "build_script_build"}]
        }
      ],
      "roots": [0, 1],
      "extra_top_level": true
    }"#;

    fn graph() -> UnitGraph {
        UnitGraph::parse(GRAPH).expect("sample graph parses")
    }

    /// A minimal unit as JSON, depending on `deps`.
    fn unit_json(name: &str, deps: &[usize]) -> String {
        let deps: Vec<String> =
            deps.iter().map(|d| format!(r#"{{"index": {d}, "extern_crate_name": "d{d}"}}"#)).collect();
        format!(
            r#"{{"pkg_id": "registry+https://example.org/index#{name}@1.0.0",
                "target": {{"kind": ["lib"], "crate_types": ["lib"], "name": "{name}",
                            "src_path": "/src/{name}/lib.rs", "edition": "2021"}},
                "mode": "build", "dependencies": [{}]}}"#,
            deps.join(", ")
        )
    }

    fn graph_json(units: &[(&str, &[usize])], roots: &[usize]) -> String {
        let units: Vec<String> = units.iter().map(|(n, d)| unit_json(n, d)).collect();
        let roots: Vec<String> = roots.iter().map(usize::to_string).collect();
        format!(r#"{{"version": 1, "units": [{}], "roots": [{}]}}"#, units.join(", "), roots.join(", "))
    }

    #[test]
    fn parses_realistic_graph() {
        let g = graph();
        assert_eq!(g.version, 1);
        assert_eq!(g.units.len(), 8);
        assert_eq!(g.roots, vec![0, 1]);

        let lib = &g.units[0];
        assert_eq!(lib.target.name, "app");
        assert_eq!(lib.target.edition, "2021");
        assert_eq!(lib.target.src_path, PathBuf::from("/home/u/ws/app/src/lib.rs"));
        assert_eq!(lib.features, vec!["default", "zlib"]);
        assert_eq!(lib.platform, None);
        assert_eq!(lib.mode, Mode::Build);
        assert!(!lib.is_std);
        assert_eq!(lib.dependencies.len(), 3);
        assert_eq!(lib.dependencies[0].extern_crate_name, "build_script_build");
        assert!(!lib.dependencies[1].public && !lib.dependencies[1].noprelude);

        let p = &lib.profile;
        assert_eq!(p.name, "release");
        assert_eq!(p.opt_level, "3");
        assert_eq!(p.lto, "thin");
        assert_eq!(p.codegen_units, Some(4));
        assert_eq!(p.debuginfo, Some(DebugInfo::LineTablesOnly));
        assert_eq!(p.debuginfo.unwrap().rustc_value(), "line-tables-only");
        assert_eq!(p.strip, "symbols");
        assert_eq!(p.panic, "unwind");

        let bin = &g.units[1];
        assert!(bin.is_bin() && !bin.is_lib());
        assert_eq!(bin.target.required_features, Some(vec!["cli".to_owned()]));
        assert_eq!(bin.platform.as_deref(), Some("x86_64-unknown-linux-gnu"));
        assert_eq!(bin.profile.lto, "true");
        assert_eq!(bin.profile.debuginfo, Some(DebugInfo::Full));
        assert_eq!(bin.profile.debuginfo.unwrap().rustc_value(), "2");
        assert_eq!(bin.profile.strip, "debuginfo");
        assert_eq!(bin.profile.panic, "abort");
        assert_eq!(lib.target.required_features, None);
    }

    #[test]
    fn polymorphic_profile_fields() {
        let g = graph();
        let build_compile = &g.units[2].profile;
        assert_eq!(build_compile.debuginfo, Some(DebugInfo::None));
        assert_eq!(build_compile.debuginfo.unwrap().rustc_value(), "0");
        assert_eq!(build_compile.strip, "none");
        assert_eq!(build_compile.lto, "false");
        assert_eq!(g.units[3].profile.debuginfo, None);
        let pm = &g.units[4].profile;
        assert_eq!(pm.lto, "off");
        assert_eq!(pm.debuginfo, Some(DebugInfo::Limited));
        assert_eq!(pm.debuginfo.unwrap().rustc_value(), "1");
        assert_eq!(pm.strip, "none");
        assert_eq!(g.units[6].profile.debuginfo, Some(DebugInfo::None));
        // A profile with most fields missing takes the defaults.
        let sparse = &g.units[5].profile;
        assert_eq!(sparse.opt_level, "3");
        assert_eq!(sparse.lto, "false");
        assert_eq!(sparse.strip, "none");
        assert_eq!(sparse.panic, "unwind");
        assert_eq!(sparse.debuginfo, None);
        assert_eq!(sparse.codegen_units, None);
    }

    #[test]
    fn unit_kinds() {
        let g = graph();
        let u = &g.units;
        assert!(u[0].is_lib() && !u[0].is_proc_macro() && !u[0].is_build_script_compile());
        assert!(u[2].is_build_script_compile() && !u[2].is_build_script_run());
        assert!(u[3].is_build_script_run() && !u[3].is_build_script_compile());
        assert!(u[4].is_proc_macro() && u[4].is_lib());
        assert!(u[6].is_build_script_compile() && u[7].is_build_script_run());
        assert!(!u[2].is_lib() && !u[2].is_bin() && !u[2].is_test());
        assert_eq!(u[4].package_name(), Some("derive-it"));
        assert_eq!(u[4].package_version(), Some("1.2.3"));
        assert_eq!(u[4].source_kind(), SourceKind::Registry);
        assert_eq!(u[0].package_name(), Some("app"));
        assert_eq!(u[0].package_version(), Some("0.1.0"));
        assert_eq!(u[0].source_kind(), SourceKind::Path(PathBuf::from("/home/u/ws/app")));
        assert_eq!(u[5].package_name(), Some("zsys"));
        assert_eq!(u[5].package_version(), Some("0.3.0"));
    }

    #[test]
    fn topological_order_puts_dependencies_first() {
        let g = graph();
        let order = g.topological_order();
        assert_eq!(order.len(), g.units.len());
        let mut position = vec![usize::MAX; g.units.len()];
        for (pos, &unit) in order.iter().enumerate() {
            assert_eq!(position[unit], usize::MAX, "unit {unit} listed twice");
            position[unit] = pos;
        }
        for (i, unit) in g.units.iter().enumerate() {
            for dep in &unit.dependencies {
                assert!(position[dep.index] < position[i], "{} before {i}", dep.index);
            }
        }
        // Deterministic: the same graph always gives the same order.
        assert_eq!(order, g.topological_order());
        assert_eq!(order, vec![2, 6, 7, 3, 4, 5, 0, 1]);
    }

    #[test]
    fn dependents_are_reverse_edges() {
        let g = graph();
        let rev = g.dependents();
        assert_eq!(rev[3], vec![0, 1]);
        assert_eq!(rev[7], vec![3, 5]);
        assert!(rev[1].is_empty());
    }

    #[test]
    fn malformed_json_is_a_syntax_error() {
        let err = UnitGraph::parse(r#"{"version": 1, "units": [}"#).unwrap_err();
        match &err {
            UnitGraphError::Syntax { line, column, truncated, .. } => {
                assert_eq!((*line, *column), (1, 26));
                assert!(!truncated);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("syntax error at line 1, column 26"), "{text}");
    }

    #[test]
    fn truncated_json_says_so() {
        let cut = &GRAPH[..GRAPH.len() / 2];
        let err = UnitGraph::parse(cut).unwrap_err();
        assert!(matches!(err, UnitGraphError::Syntax { truncated: true, .. }), "{err:?}");
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = UnitGraph::parse("").unwrap_err();
        assert!(matches!(err, UnitGraphError::Syntax { truncated: true, .. }));
    }

    #[test]
    fn wrong_shape_is_a_schema_error() {
        let err = UnitGraph::parse(r#"{"version": 1, "roots": []}"#).unwrap_err();
        assert!(matches!(err, UnitGraphError::Schema { .. }), "{err:?}");
        assert!(err.to_string().contains("units"), "{err}");
        let err = UnitGraph::parse(r#"{"units": [], "roots": []}"#).unwrap_err();
        assert!(err.to_string().contains("version"), "{err}");
        let bad_debuginfo = GRAPH.replace(r#""debuginfo": 2,"#, r#""debuginfo": 7,"#);
        let err = UnitGraph::parse(&bad_debuginfo).unwrap_err();
        assert!(matches!(err, UnitGraphError::Schema { .. }), "{err:?}");
        assert!(err.to_string().contains("debuginfo"), "{err}");
    }

    #[test]
    fn version_2_is_rejected_before_its_shape_is_read() {
        let err = UnitGraph::parse(r#"{"version": 2, "nodes": {"a": 1}}"#).unwrap_err();
        assert!(matches!(err, UnitGraphError::UnsupportedVersion(2)), "{err:?}");
        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn dependency_out_of_range() {
        let json = graph_json(&[("a", &[]), ("b", &[0, 9])], &[1]);
        let err = UnitGraph::parse(&json).unwrap_err();
        match &err {
            UnitGraphError::DependencyOutOfRange { unit, pkg_id, index, len } => {
                assert_eq!((*unit, *index, *len), (1, 9, 2));
                assert!(pkg_id.ends_with("#b@1.0.0"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("unit 1") && text.contains("#b@1.0.0") && text.contains("9"));
    }

    #[test]
    fn root_out_of_range() {
        let json = graph_json(&[("a", &[])], &[0, 3]);
        let err = UnitGraph::parse(&json).unwrap_err();
        assert!(matches!(err, UnitGraphError::RootOutOfRange { index: 3, len: 1 }), "{err:?}");
    }

    #[test]
    fn cycle_is_reported_with_its_units() {
        let json = graph_json(&[("a", &[1]), ("b", &[2]), ("c", &[0]), ("d", &[0])], &[3]);
        let err = UnitGraph::parse(&json).unwrap_err();
        let UnitGraphError::Cycle { units } = &err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(units.len(), 3);
        for name in ["a [build]", "b [build]", "c [build]"] {
            assert!(units.iter().any(|u| u.starts_with(name)), "{units:?}");
        }
        assert!(units[0].contains("#a@1.0.0"), "{units:?}");
        assert!(units[1].contains("#b@1.0.0"), "{units:?}");
        assert!(err.to_string().contains(" -> "), "{err}");
    }

    #[test]
    fn self_dependency_is_rejected() {
        let json = graph_json(&[("a", &[]), ("b", &[0, 1])], &[1]);
        let err = UnitGraph::parse(&json).unwrap_err();
        assert!(
            matches!(&err, UnitGraphError::SelfDependency { unit: 1, pkg_id } if pkg_id.contains("#b@")),
            "{err:?}"
        );
    }

    #[test]
    fn topological_order_of_a_hand_built_cyclic_graph_lists_every_unit() {
        let json = graph_json(&[("a", &[1]), ("b", &[])], &[0]);
        let mut g = UnitGraph::parse(&json).unwrap();
        g.units[1].dependencies.push(UnitDep {
            index: 0,
            extern_crate_name: "a".into(),
            public: false,
            noprelude: false,
            nounused: false,
        });
        let mut order = g.topological_order();
        order.sort_unstable();
        assert_eq!(order, vec![0, 1]);
    }

    #[test]
    fn check_units_for_tests_are_told_apart() {
        let mut units: Vec<String> = Vec::new();
        let check = unit_json("a", &[]).replace(r#""mode": "build""#, r#""mode": "check""#);
        units.push(check.clone());
        units.push(check.replace(r#""dependencies": []"#, r#""dependencies": [{"index": 2}]"#));
        units.push(unit_json("dev", &[]));
        let json = format!(r#"{{"version": 1, "units": [{}], "roots": [0, 1]}}"#, units.join(","));
        let g = UnitGraph::parse(&json).unwrap();
        assert_eq!(g.units[0].mode, Mode::Check { test: false });
        assert_eq!(g.units[1].mode, Mode::Check { test: true });
        assert!(g.units[1].mode.is_any_test() && !g.units[0].mode.is_any_test());
        assert_eq!(g.units[1].mode.to_string(), "check");
    }

    #[test]
    fn unknown_modes_are_kept() {
        let json = graph_json(&[("a", &[])], &[0]).replace(r#""build""#, r#""docscrape""#);
        let g = UnitGraph::parse(&json).unwrap();
        assert_eq!(g.units[0].mode, Mode::Other("docscrape".into()));
    }

    fn parts(id: &str) -> (String, Option<String>, SourceKind) {
        let p = PackageIdParts::parse(id).unwrap_or_else(|| panic!("{id} did not parse"));
        (p.name.to_owned(), p.version.map(str::to_owned), p.source_kind())
    }

    #[test]
    fn package_id_spec_forms() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            parts("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.219"),
            ("serde".into(), some("1.0.219"), SourceKind::Registry)
        );
        assert_eq!(
            parts("sparse+https://index.crates.io/#serde_json@1.0.140"),
            ("serde_json".into(), some("1.0.140"), SourceKind::Registry)
        );
        assert_eq!(
            parts("path+file:///home/x/proj/foo#0.1.0"),
            ("foo".into(), some("0.1.0"), SourceKind::Path("/home/x/proj/foo".into()))
        );
        assert_eq!(
            parts("path+file:///home/x/proj/foo#bar@0.1.0"),
            ("bar".into(), some("0.1.0"), SourceKind::Path("/home/x/proj/foo".into()))
        );
        assert_eq!(
            parts("path+file:///home/x/my%20proj/foo#0.1.0-alpha.1+build.5"),
            ("foo".into(), some("0.1.0-alpha.1+build.5"), SourceKind::Path("/home/x/my proj/foo".into()))
        );
        assert_eq!(parts("git+https://github.com/a/b?branch=x#0.2.0"), ("b".into(), some("0.2.0"), SourceKind::Git));
        assert_eq!(
            parts("git+https://github.com/a/b.git?rev=0123abcd#c@0.2.0"),
            ("c".into(), some("0.2.0"), SourceKind::Git)
        );
        assert_eq!(parts("directory+file:///vendor#d@1.0.0"), ("d".into(), some("1.0.0"), SourceKind::Other));
        assert_eq!(parts("serde@1.0.0"), ("serde".into(), some("1.0.0"), SourceKind::Other));
        assert_eq!(parts("serde"), ("serde".into(), None, SourceKind::Other));
        let p = PackageIdParts::parse("path+file:///home/x/foo#bar@0.1.0").unwrap();
        assert_eq!(p.source, Some("path+file:///home/x/foo"));
    }

    #[test]
    fn package_id_old_forms() {
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            parts("serde 1.0.219 (registry+https://github.com/rust-lang/crates.io-index)"),
            ("serde".into(), some("1.0.219"), SourceKind::Registry)
        );
        assert_eq!(
            parts("foo 0.1.0 (path+file:///home/x/foo)"),
            ("foo".into(), some("0.1.0"), SourceKind::Path("/home/x/foo".into()))
        );
        assert_eq!(
            parts("b 0.2.0 (git+https://github.com/a/b?branch=x#0123456789abcdef)"),
            ("b".into(), some("0.2.0"), SourceKind::Git)
        );
        // Cargo's human-readable form.
        assert_eq!(parts("serde v1.0.219"), ("serde".into(), some("1.0.219"), SourceKind::Other));
        let p = PackageIdParts::parse("b 0.2.0 (git+https://github.com/a/b?branch=x#abc)").unwrap();
        assert_eq!(p.source, Some("git+https://github.com/a/b?branch=x#abc"));
    }

    #[test]
    fn package_id_garbage() {
        assert_eq!(PackageIdParts::parse(""), None);
        assert_eq!(PackageIdParts::parse("path+file:///x/#0.1.0"), None);
        assert_eq!(PackageIdParts::parse("#@1.0"), None);
        assert_eq!(PackageIdParts::parse("path+relative/foo#0.1.0").map(|p| p.source_kind()), Some(SourceKind::Other));
    }
}
