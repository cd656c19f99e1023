//! The command line of `cargo nix`, and how it maps onto cargo's flags.

use std::path::PathBuf;

use cargo_backend::{CargoArgs, TargetSelection};
use clap::{Args, Parser, Subcommand};

use crate::status::ProgressWhen;

/// `cargo nix`.
#[derive(Parser, Debug)]
#[command(
    name = "cargo-nix",
    bin_name = "cargo nix",
    version,
    about = "Build cargo workspaces as one Nix derivation per unit"
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Compile the selected packages.
    Build(BuildArgs),
    /// Check the selected packages for errors, without generating code (as `cargo check`).
    Check(BuildArgs),
    /// Compile and run the selected packages' tests (and the libraries' doctests).
    Test {
        #[command(flatten)]
        build: BuildArgs,
        /// If specified, only run tests containing this string in their names.
        #[arg(value_name = "TESTNAME")]
        test_name: Option<String>,
        /// Run all tests regardless of failure.
        #[arg(long)]
        no_fail_fast: bool,
        /// Compile, but don't run tests.
        #[arg(long)]
        no_run: bool,
        /// Test only this library's documentation.
        #[arg(long)]
        doc: bool,
        /// Arguments for the test executables.
        #[arg(last = true)]
        test_args: Vec<String>,
    },
    /// Build and run a binary or example of the local package.
    Run {
        #[command(flatten)]
        build: BuildArgs,
        /// Arguments for the program.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// List the GC roots the target directory holds.
    Roots(DirArgs),
    /// Remove the target directory (its GC roots go with it).
    Clean(DirArgs),
}

/// `roots` and `clean`: where the target directory is.
#[derive(Args, Debug)]
pub struct DirArgs {
    /// Directory for all generated artifacts.
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
    /// Path to Cargo.toml.
    #[arg(long)]
    pub manifest_path: Option<PathBuf>,
}

/// The flags of `build`, `check` and `test`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Build artifacts in release mode, with optimizations.
    #[arg(short, long)]
    pub release: bool,
    /// Build artifacts with the specified profile.
    #[arg(long, value_name = "PROFILE-NAME")]
    pub profile: Option<String>,
    /// Package(s) to build.
    #[arg(short, long = "package")]
    pub package: Vec<String>,
    /// Build all packages in the workspace.
    #[arg(long)]
    pub workspace: bool,
    /// Exclude packages from the build (with --workspace).
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Build for the target triple.
    #[arg(long, value_name = "TRIPLE")]
    pub target: Vec<String>,
    /// Build only this package's library.
    #[arg(long)]
    pub lib: bool,
    /// Build only the specified binary.
    #[arg(long, value_name = "NAME")]
    pub bin: Vec<String>,
    /// Build all binaries.
    #[arg(long)]
    pub bins: bool,
    /// Build only the specified example.
    #[arg(long, value_name = "NAME")]
    pub example: Vec<String>,
    /// Build all examples.
    #[arg(long)]
    pub examples: bool,
    /// Build only the specified test target.
    #[arg(long, value_name = "NAME")]
    pub test: Vec<String>,
    /// Build all targets that have `test = true` set.
    #[arg(long)]
    pub tests: bool,
    /// Build only the specified bench target.
    #[arg(long, value_name = "NAME")]
    pub bench: Vec<String>,
    /// Build all targets that have `bench = true` set.
    #[arg(long)]
    pub benches: bool,
    /// Build all targets.
    #[arg(long)]
    pub all_targets: bool,
    /// Assert that `Cargo.lock` will remain unchanged.
    #[arg(long)]
    pub locked: bool,
    /// Run without accessing the network.
    #[arg(long)]
    pub offline: bool,
    /// Equivalent to specifying both --locked and --offline.
    #[arg(long)]
    pub frozen: bool,
    /// Space or comma separated list of features to activate.
    #[arg(short = 'F', long)]
    pub features: Vec<String>,
    /// Do not activate the `default` feature.
    #[arg(long)]
    pub no_default_features: bool,
    /// Activate all available features.
    #[arg(long)]
    pub all_features: bool,
    /// Number of units built at once (default: the number of cores).
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Directory for all generated artifacts.
    #[arg(long)]
    pub target_dir: Option<PathBuf>,
    /// Path to Cargo.toml.
    #[arg(long)]
    pub manifest_path: Option<PathBuf>,
    /// The Nix store to build in (default: the default store, `auto`). It may be on another
    /// machine (`ssh-ng://user@host`); see --local-store.
    #[arg(long, default_value = "auto")]
    pub store: String,
    /// The store on this machine that target/ links into, when it is not --store: the outputs
    /// of linked units and of workspace members are copied to it after the build (default:
    /// --store when that is on this machine, else the default store, `auto`).
    #[arg(long, value_name = "STORE-URI")]
    pub local_store: Option<String>,
    /// Build as many units as possible after a failure.
    #[arg(long)]
    pub keep_going: bool,
    /// A binary cache (Nix store URI) to substitute unit outputs from and push built ones to.
    #[arg(long, value_name = "STORE-URI")]
    pub cache: Option<String>,
    /// Read cargo's unit graph (`cargo build --unit-graph` JSON) from this file instead of
    /// planning with cargo's library (the documented fallback adapter).
    #[arg(long, value_name = "FILE")]
    pub unit_graph: Option<PathBuf>,
    /// Show each unit's command and derivation as it starts, fresh units, and at the end
    /// timings and every unit's outcome, derivation and output path.
    #[arg(short, long)]
    pub verbose: bool,
    /// Do not print cargo log messages (status lines and cargo's warnings; rustc's diagnostics
    /// and errors still show, and tests run with `--quiet`).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// How diagnostics and artifacts are reported: human, short, json, json-diagnostic-short,
    /// json-diagnostic-rendered-ansi, json-render-diagnostics (JSON goes to stdout).
    #[arg(long, value_name = "FMT", value_delimiter = ',')]
    pub message_format: Vec<String>,
    /// When to show the progress bar on stderr (default: `CARGO_TERM_PROGRESS_WHEN`, else auto,
    /// i.e. when stderr is a terminal).
    #[arg(long, value_name = "WHEN")]
    pub progress: Option<ProgressWhen>,
    /// Pipelining: libraries compile against their dependencies' metadata (a metadata-only
    /// derivation per library) instead of waiting for their code.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = Switch::Off)]
    pub pipelining: Switch,
    /// Where builds take rustc from: `store` adds rustc's sysroot to the store (once, by
    /// content), `host` uses it where it is installed, `auto` (default) picks `store` for a
    /// daemon store or with Nix's sandbox on.
    #[arg(long, value_enum, value_name = "WHERE", default_value_t = ToolchainFrom::Auto)]
    pub toolchain: ToolchainFrom,
}

/// `--toolchain`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolchainFrom {
    Auto,
    Store,
    Host,
}

/// On or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Switch {
    On,
    Off,
}

impl BuildArgs {
    /// cargo's flags among these.
    pub fn cargo_args(&self) -> CargoArgs {
        CargoArgs {
            manifest_path: self.manifest_path.clone(),
            release: self.release,
            profile: self.profile.clone(),
            packages: self.package.clone(),
            workspace: self.workspace,
            exclude: self.exclude.clone(),
            features: self.features.clone(),
            no_default_features: self.no_default_features,
            all_features: self.all_features,
            targets: self.target.clone(),
            target_dir: self.target_dir.clone(),
            select: TargetSelection {
                lib: self.lib,
                bins: self.bin.clone(),
                all_bins: self.bins,
                examples: self.example.clone(),
                all_examples: self.examples,
                tests: self.test.clone(),
                all_tests: self.tests,
                benches: self.bench.clone(),
                all_benches: self.benches,
                all_targets: self.all_targets,
                doc: false,
                test_targets_only: false,
                default_run: false,
            },
            locked: self.locked,
            offline: self.offline,
            frozen: self.frozen,
            unit_graph_file: self.unit_graph.clone(),
        }
    }
}
