//! The workspace stage: cargo's command and flags ([`CargoArgs`]), which files a package's
//! source is made of ([`source_exclusions`]), and this stage's cached record ([`Record`]),
//! which answers a no-op rebuild before cargo's workspace is loaded.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cache::{KeyBuilder, Racy, key_after, key_holds, tree_listing};
use crate::units::{PackageInfo, Workspace};

/// What a package's source leaves out, by path relative to the package directory `dir`:
/// `target/` at its root, `.git` anywhere, the directories of other packages nested inside it
/// (from `package_dirs`), and the build's `target_dir` when it lies inside. One rule for what
/// is added to the store and for what the caches watch.
pub fn source_exclusions<'a>(
    dir: &Path,
    package_dirs: impl IntoIterator<Item = &'a Path>,
    target_dir: &Path,
) -> impl Fn(&Path) -> bool + Send + Sync + 'static {
    let nested: Vec<PathBuf> = package_dirs
        .into_iter()
        .filter(|d| *d != dir && d.starts_with(dir))
        .filter_map(|d| d.strip_prefix(dir).ok().map(Path::to_path_buf))
        .collect();
    let target_rel = target_dir.strip_prefix(dir).ok().map(Path::to_path_buf);
    move |rel: &Path| {
        rel == Path::new("target")
            || rel.file_name().is_some_and(|n| n == ".git")
            || nested.iter().any(|n| n == rel)
            || target_rel.as_deref() == Some(rel)
    }
}

/// Adds to `key` everything the unit graph and metadata depend on, over the packages `ws`
/// holds; false when there is nothing cached or something cannot be read.
fn workspace_key(command: CargoCommand, args: &CargoArgs, ws: &Workspace, key: &mut KeyBuilder) -> bool {
    if ws.packages.is_empty() {
        return false;
    }
    let Some(manifest) = args.manifest() else { return false };
    key.str(&format!("{command:?} {args:?}")).str(&manifest.to_string_lossy());
    if let Ok(cwd) = std::env::current_dir() {
        key.str(&cwd.to_string_lossy());
    }
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.to_string_lossy().into_owned())))
        .filter(|(k, _)| k.starts_with("CARGO") || k.starts_with("RUST") || k == "PATH" || k == "HOME")
        .collect();
    vars.sort();
    for (k, v) in vars {
        key.str(&k).str(&v);
    }
    key.stat(&ws.root.join("Cargo.toml")).stat(&ws.root.join("Cargo.lock"));
    if let Some(f) = &args.unit_graph_file {
        key.stat(f);
    }
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = home {
        key.stat(&home.join("config.toml")).stat(&home.join("config"));
    }
    let Some(manifest_dir) = manifest.parent() else { return false };
    for dir in manifest_dir.ancestors().chain(ws.root.ancestors()) {
        for f in [".cargo/config.toml", ".cargo/config", "rust-toolchain", "rust-toolchain.toml"] {
            key.stat(&dir.join(f));
        }
    }
    let dirs: Vec<&Path> = ws.manifest_dirs();
    let mut packages: Vec<(&String, &PackageInfo)> = ws.packages.iter().collect();
    packages.sort_by(|a, b| a.0.cmp(b.0));
    for (id, p) in packages {
        if !id.starts_with("path+") && !p.is_member {
            continue;
        }
        key.stat(&p.manifest_dir.join("Cargo.toml"));
        let excluded = source_exclusions(&p.manifest_dir, dirs.iter().copied(), &ws.target_dir);
        if !tree_listing(&p.manifest_dir, &excluded, key) {
            return false;
        }
    }
    true
}

/// The cargo command being emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CargoCommand {
    /// `cargo build`.
    Build,
    /// `cargo test` (builds test executables; the caller runs them).
    Test,
    /// `cargo check` (metadata only, no code generation).
    Check,
}

impl CargoCommand {
    /// The cargo subcommand.
    pub fn as_str(self) -> &'static str {
        match self {
            CargoCommand::Build => "build",
            CargoCommand::Test => "test",
            CargoCommand::Check => "check",
        }
    }
}

/// Cargo's selection flags, as `cargo build` takes them.
#[derive(Debug, Clone, Default)]
pub struct CargoArgs {
    /// `--manifest-path`.
    pub manifest_path: Option<PathBuf>,
    /// `--release`.
    pub release: bool,
    /// `--profile NAME`.
    pub profile: Option<String>,
    /// `-p`.
    pub packages: Vec<String>,
    /// `--workspace`.
    pub workspace: bool,
    /// `--exclude`.
    pub exclude: Vec<String>,
    /// `--features` (comma or space separated lists allowed, as in cargo).
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--all-features`.
    pub all_features: bool,
    /// `--target TRIPLE` (repeatable).
    pub targets: Vec<String>,
    /// `--target-dir`.
    pub target_dir: Option<PathBuf>,
    /// Target selection: `--lib`, `--bin NAME`, `--bins`, `--example NAME`, `--examples`,
    /// `--test NAME`, `--tests`, `--bench NAME`, `--benches`, `--all-targets`.
    pub select: TargetSelection,
    /// `--locked`.
    pub locked: bool,
    /// `--offline`.
    pub offline: bool,
    /// `--frozen`.
    pub frozen: bool,
    /// Read the unit graph from this file instead of asking cargo (tests, the fuzz corpus).
    pub unit_graph_file: Option<PathBuf>,
}

/// Which targets of the selected packages to build (cargo's target-selection flags); all
/// empty means cargo's default for the command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSelection {
    /// `--lib`.
    pub lib: bool,
    /// `--bin NAME`.
    pub bins: Vec<String>,
    /// `--bins`.
    pub all_bins: bool,
    /// `--example NAME`.
    pub examples: Vec<String>,
    /// `--examples`.
    pub all_examples: bool,
    /// `--test NAME`.
    pub tests: Vec<String>,
    /// `--tests`.
    pub all_tests: bool,
    /// `--bench NAME`.
    pub benches: Vec<String>,
    /// `--benches`.
    pub all_benches: bool,
    /// `--all-targets`.
    pub all_targets: bool,
    /// `cargo test --doc`: the libraries' doctests only.
    pub doc: bool,
    /// `cargo test TESTNAME` without a target flag: every test target (cargo's
    /// `CompileFilter::all_test_targets`), not the default set with examples.
    pub test_targets_only: bool,
    /// `cargo run`'s selection: without a target flag, the selected package's `default-run`
    /// binary when it names one.
    pub default_run: bool,
}

impl CargoArgs {
    /// The manifest cargo will read: `--manifest-path`, else `Cargo.toml` in the current
    /// directory or the nearest ancestor that has one.
    pub fn manifest(&self) -> Option<PathBuf> {
        if let Some(m) = &self.manifest_path {
            return std::path::absolute(m).ok();
        }
        let cwd = std::env::current_dir().ok()?;
        cwd.ancestors().map(|d| d.join("Cargo.toml")).find(|p| p.is_file())
    }

    /// The profile cargo builds with: `--profile`, else `release` with `--release`, else
    /// the command's default (`dev`; `test` runs its tests with `dev` too).
    pub fn profile_name(&self) -> &str {
        match &self.profile {
            Some(p) => p,
            None if self.release => "release",
            None => "dev",
        }
    }

    /// The flags as cargo's command line spells them (selection, features, profile, target,
    /// lock-file flags; not the manifest path).
    pub fn to_cli(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut flag = |name: &str, on: bool| {
            if on {
                v.push(name.to_owned());
            }
        };
        flag("--release", self.release);
        flag("--workspace", self.workspace);
        flag("--no-default-features", self.no_default_features);
        flag("--all-features", self.all_features);
        flag("--lib", self.select.lib);
        flag("--bins", self.select.all_bins);
        flag("--examples", self.select.all_examples);
        flag("--tests", self.select.all_tests);
        flag("--benches", self.select.all_benches);
        flag("--all-targets", self.select.all_targets);
        flag("--doc", self.select.doc);
        flag("--locked", self.locked);
        flag("--offline", self.offline);
        flag("--frozen", self.frozen);
        let mut pairs = |name: &str, values: &[String]| {
            for x in values {
                v.push(name.to_owned());
                v.push(x.clone());
            }
        };
        pairs("--profile", self.profile.as_slice());
        pairs("-p", &self.packages);
        pairs("--exclude", &self.exclude);
        pairs("--features", &self.features);
        pairs("--target", &self.targets);
        pairs("--bin", &self.select.bins);
        pairs("--example", &self.select.examples);
        pairs("--test", &self.select.tests);
        pairs("--bench", &self.select.benches);
        if let Some(t) = &self.target_dir {
            v.push("--target-dir".into());
            v.push(t.display().to_string());
        }
        v
    }
}

/// The workspace stage's cached record: the description cargo gave, and the key of everything
/// it was made from (the workspace key).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    key: String,
    workspace: Option<Workspace>,
}

impl Record {
    /// The cached description, if its key still matches: nothing cargo reads has changed. This
    /// is cheap (a stat walk over the path packages) and runs before cargo is asked anything.
    pub fn lookup(&self, command: CargoCommand, args: &CargoArgs) -> Option<Workspace> {
        let ws = self.workspace.as_ref()?;
        key_holds(&self.key, |k| workspace_key(command, args, ws, k)).then(|| ws.clone())
    }

    /// Remembers `ws` as what `command` with `args` gives now; cargo started reading the
    /// files at `started`.
    pub fn store(&mut self, command: CargoCommand, args: &CargoArgs, ws: &Workspace, started: Racy) {
        // The key over the packages cargo just reported, kept only if none of its files changed
        // since cargo started reading them.
        self.key = key_after(started, |k| workspace_key(command, args, ws, k)).unwrap_or_default();
        self.workspace = Some(ws.clone());
    }

    /// The key of the cached description (empty when there is none).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The cached description when nothing it depends on changed, else what `load` gives (which
/// is then cached).
pub fn load_cached<E>(
    command: CargoCommand,
    args: &CargoArgs,
    record: &mut Record,
    load: impl FnOnce() -> Result<Workspace, E>,
) -> Result<Workspace, E> {
    if let Some(ws) = record.lookup(command, args) {
        return Ok(ws);
    }
    let started = Racy::now();
    let ws = load()?;
    record.store(command, args, &ws, started);
    Ok(ws)
}
