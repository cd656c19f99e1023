//! What one unit's derivation does: the JSON that the planner writes into each derivation
//! (env `unitSpec`) and that `cargo-nix-unit`, the builder, executes.
//!
//! Everything known when the derivation is created goes here (rustc arguments, `--extern`
//! paths, the static environment), so that the derivation's hash is the unit's identity. What
//! is only known at build time (a build script's output) is read by the builder from the
//! store paths named here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::build_script::LinkTarget;

/// The environment variable (passed as a file) that holds the [`UnitSpec`].
pub const SPEC_ENV: &str = "unitSpec";

/// One unit, as its builder runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitSpec {
    /// How cargo names the unit, e.g. `serde v1.0.219 (lib)`.
    pub label: String,
    /// The package name as cargo prints it.
    pub package: String,
    /// The package's source root in the store: the working directory, unless `ws_subdir`.
    pub cwd: String,
    /// Where the package sits in its workspace, when rustc runs from the workspace root as
    /// cargo runs it for path packages (e.g. `crates/member`): the builder links
    /// `<build dir>/ws/<ws_subdir>` to `cwd` and runs in `<build dir>/ws`, so relative crate
    /// roots, `file!()` and diagnostics read as under cargo. Empty: run in `cwd`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ws_subdir: String,
    /// `PATH` for the child process (the toolchain's and the C compiler's directories).
    pub path: String,
    /// Environment set for the child, before what the build script adds.
    pub env: BTreeMap<String, String>,
    /// What to run.
    pub action: Action,
}

/// What a unit runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Compile a crate with rustc into `$out/<out_subdir>`.
    Rustc {
        /// Absolute path of rustc.
        rustc: String,
        /// Every argument except `--out-dir` and what the build script adds.
        args: Vec<String>,
        /// `lib` or `bin`.
        out_subdir: String,
        /// The output of this package's build-script run, if it has one: its `output` file
        /// gives cfgs, env, link flags; `OUT_DIR` is its `out-dir`.
        build_script: Option<String>,
        /// Build-script run outputs of every transitive dependency: their `rustc-link-search`
        /// paths are passed on (as cargo does).
        dep_build_scripts: Vec<String>,
        /// Which `rustc-link-arg*` instructions apply to this unit.
        link: LinkTarget,
        /// Stop after the crate's metadata (pipelining): rustc runs the same command with
        /// `-Zno-codegen` added, and only the `.rmeta` (and dep-info) are kept. Dependents that
        /// only compile against this crate can start from it while the full compile runs. The
        /// crate hash then equals the full compile's only if both run with the same `env`
        /// (the planner sets `RUSTC_BOOTSTRAP=1` for both).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        metadata_only: bool,
    },
    /// Run a compiled build script, keeping its stdout in `$out/output` and `OUT_DIR` in
    /// `$out/out-dir`.
    RunBuildScript {
        /// The compiled script.
        program: String,
        /// `links` values and build-script run outputs of the immediate dependencies that
        /// declare `links`: their metadata becomes `DEP_<LINKS>_<KEY>`.
        dep_links: Vec<(String, String)>,
    },
}
