//! Asking cargo for the plan: the unit graph (`--unit-graph`) and package facts
//! (`cargo metadata`) that the graph lacks (`links`, authors, features, manifest paths).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::cache::{Cache, KeyBuilder, Racy, key_after, key_holds, tree_listing};
use crate::unit_graph::UnitGraph;

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

/// Adds to `key` everything the unit graph and metadata depend on, over the packages `cache`
/// knows; false when there is nothing cached or something cannot be read.
fn workspace_key(command: CargoCommand, args: &CargoArgs, cache: &Cache, key: &mut KeyBuilder) -> bool {
    if cache.packages.is_empty() {
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
    key.stat(&cache.root.join("Cargo.toml")).stat(&cache.root.join("Cargo.lock"));
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
    for dir in manifest_dir.ancestors().chain(cache.root.ancestors()) {
        for f in [".cargo/config.toml", ".cargo/config", "rust-toolchain", "rust-toolchain.toml"] {
            key.stat(&dir.join(f));
        }
    }
    let dirs: Vec<&Path> = cache.packages.iter().map(|(_, p)| p.manifest_dir.as_path()).collect();
    for (id, p) in &cache.packages {
        if !id.starts_with("path+") && !p.is_member {
            continue;
        }
        key.stat(&p.manifest_dir.join("Cargo.toml"));
        let excluded = source_exclusions(&p.manifest_dir, dirs.iter().copied(), &cache.target_dir);
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
}

/// Cargo's usual selection flags, passed through to `cargo build --unit-graph` and
/// `cargo metadata`.
#[derive(Debug, Clone, Default)]
pub struct CargoArgs {
    /// `--manifest-path`.
    pub manifest_path: Option<PathBuf>,
    /// `--release`.
    pub release: bool,
    /// `-p`.
    pub packages: Vec<String>,
    /// `--workspace`.
    pub workspace: bool,
    /// `--features` (comma or space separated lists allowed, as in cargo).
    pub features: Vec<String>,
    /// `--no-default-features`.
    pub no_default_features: bool,
    /// `--all-features`.
    pub all_features: bool,
    /// `--target-dir`.
    pub target_dir: Option<PathBuf>,
    /// Extra flags for cargo (e.g. `--offline`, `--locked`).
    pub extra: Vec<String>,
    /// Read the unit graph from this file instead of running `cargo --unit-graph` (a patched
    /// cargo, or tests).
    pub unit_graph_file: Option<PathBuf>,
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

    fn feature_flags(&self, cmd: &mut Command) {
        for f in &self.features {
            cmd.arg("--features").arg(f);
        }
        if self.no_default_features {
            cmd.arg("--no-default-features");
        }
        if self.all_features {
            cmd.arg("--all-features");
        }
        if let Some(m) = &self.manifest_path {
            cmd.arg("--manifest-path").arg(m);
        }
    }
}

/// What the unit graph does not say about a package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackageInfo {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Directory holding `Cargo.toml`.
    pub manifest_dir: PathBuf,
    /// `links`.
    pub links: Option<String>,
    /// Authors, joined with `:` as in `CARGO_PKG_AUTHORS`.
    pub authors: String,
    /// Description.
    pub description: String,
    /// Homepage.
    pub homepage: String,
    /// Repository.
    pub repository: String,
    /// License.
    pub license: String,
    /// License file.
    pub license_file: String,
    /// rust-version.
    pub rust_version: String,
    /// Readme.
    pub readme: String,
    /// Declared features (for `--check-cfg`).
    pub features: BTreeSet<String>,
    /// Whether it is a workspace member (its warnings are shown, lints not capped).
    pub is_member: bool,
    /// Where it comes from: `path`, `registry`, `git`, or another source kind.
    pub source: String,
}

impl PackageInfo {
    /// Registry and git packages: cargo unpacks them once and never changes them.
    pub fn is_immutable_source(&self) -> bool {
        !self.is_member && (self.source == "registry" || self.source == "git")
    }
}

/// A workspace as cargo sees it for one command.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// The unit graph.
    pub graph: UnitGraph,
    /// Package facts by package id (as in the unit graph's `pkg_id`).
    pub packages: HashMap<String, PackageInfo>,
    /// The workspace root.
    pub root: PathBuf,
    /// The target directory (`--target-dir` or cargo's).
    pub target_dir: PathBuf,
    /// Doctest and doc units dropped from the graph (cargo nix does not run rustdoc).
    pub skipped_doctests: usize,
}

/// Drops `doc` and `doctest` units (roots that nothing depends on), renumbering the rest.
fn without_doc_units(graph: UnitGraph) -> (UnitGraph, usize) {
    use crate::unit_graph::Mode;
    let keep: Vec<bool> = graph.units.iter().map(|u| !matches!(u.mode, Mode::Doc | Mode::Doctest)).collect();
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return (graph, 0);
    }
    let mut new_index = vec![usize::MAX; keep.len()];
    let mut n = 0;
    for (i, k) in keep.iter().enumerate() {
        if *k {
            new_index[i] = n;
            n += 1;
        }
    }
    let UnitGraph { version, units, roots } = graph;
    let units = units
        .into_iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(mut u, _)| {
            u.dependencies.retain(|d| keep[d.index]);
            for d in &mut u.dependencies {
                d.index = new_index[d.index];
            }
            u
        })
        .collect();
    let roots = roots.into_iter().filter(|r| keep[*r]).map(|r| new_index[r]).collect();
    (UnitGraph { version, units, roots }, dropped)
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

fn run(mut cmd: Command, what: &str) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| Error::Cargo(format!("running cargo for {what}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Cargo(format!("{what} failed:\n{}", String::from_utf8_lossy(&out.stderr).trim_end())));
    }
    String::from_utf8(out.stdout).map_err(|e| Error::Cargo(format!("{what} printed non-UTF-8: {e}")))
}

impl Workspace {
    /// Like [`Workspace::load`], but reuses `cache` when nothing cargo reads has changed (see
    /// [`crate::cache`]), and refreshes it otherwise.
    pub fn load_cached(command: CargoCommand, args: &CargoArgs, cache: &mut Cache) -> Result<Workspace, Error> {
        if key_holds(&cache.workspace_key, |k| workspace_key(command, args, cache, k)) {
            if let Ok(graph) = UnitGraph::parse(&cache.graph_json) {
                return Ok(Workspace {
                    graph: without_doc_units(graph).0,
                    packages: cache.packages.iter().cloned().collect(),
                    root: cache.root.clone(),
                    target_dir: cache.target_dir.clone(),
                    skipped_doctests: cache.skipped_doctests,
                });
            }
        }
        let started = Racy::now();
        let (ws, graph_json) = Self::load_with_json(command, args)?;
        cache.graph_json = graph_json;
        cache.packages = ws.packages.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        cache.packages.sort_by(|a, b| a.0.cmp(&b.0));
        cache.root = ws.root.clone();
        cache.target_dir = ws.target_dir.clone();
        cache.skipped_doctests = ws.skipped_doctests;
        // The key over the packages cargo just reported, kept only if none of its files changed
        // since cargo started reading them.
        cache.workspace_key = key_after(started, |k| workspace_key(command, args, cache, k)).unwrap_or_default();
        Ok(ws)
    }

    /// Runs cargo for `command` with `args` and reads the unit graph and the metadata.
    pub fn load(command: CargoCommand, args: &CargoArgs) -> Result<Workspace, Error> {
        Self::load_with_json(command, args).map(|(ws, _)| ws)
    }

    fn load_with_json(command: CargoCommand, args: &CargoArgs) -> Result<(Workspace, String), Error> {
        let mut cmd = cargo();
        cmd.arg(match command {
            CargoCommand::Build => "build",
            CargoCommand::Test => "test",
        });
        cmd.args(["--unit-graph", "-Z", "unstable-options"]).env("RUSTC_BOOTSTRAP", "1");
        if args.release {
            cmd.arg("--release");
        }
        for p in &args.packages {
            cmd.arg("-p").arg(p);
        }
        if args.workspace {
            cmd.arg("--workspace");
        }
        if let Some(t) = &args.target_dir {
            cmd.arg("--target-dir").arg(t);
        }
        args.feature_flags(&mut cmd);
        cmd.args(&args.extra);
        let graph_json = match &args.unit_graph_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| Error::Io(format!("reading the unit graph {}", f.display()), e))?,
            None => run(cmd, "`cargo --unit-graph`")?,
        };
        let graph = UnitGraph::parse(&graph_json).map_err(|e| match &args.unit_graph_file {
            Some(f) => Error::Cargo(format!("invalid unit graph {}: {e}", f.display())),
            None => Error::UnitGraph(e),
        })?;
        let (graph, skipped_doctests) = without_doc_units(graph);

        let mut meta = cargo_metadata::MetadataCommand::new();
        if let Some(m) = &args.manifest_path {
            meta.manifest_path(m);
        }
        let mut other = Vec::new();
        for f in &args.features {
            other.extend(["--features".to_owned(), f.clone()]);
        }
        if args.no_default_features {
            other.push("--no-default-features".into());
        }
        if args.all_features {
            other.push("--all-features".into());
        }
        other.extend(args.extra.iter().cloned());
        meta.other_options(other);
        let metadata = meta.exec().map_err(|e| Error::Cargo(format!("`cargo metadata` failed: {e}")))?;
        let members: BTreeSet<_> = metadata.workspace_members.iter().map(|id| id.repr.clone()).collect();
        let packages = metadata
            .packages
            .iter()
            .map(|p| {
                let info = PackageInfo {
                    name: p.name.to_string(),
                    version: p.version.to_string(),
                    manifest_dir: p.manifest_path.parent().map(|d| d.as_std_path().to_path_buf()).unwrap_or_default(),
                    links: p.links.clone(),
                    authors: p.authors.join(":"),
                    description: p.description.clone().unwrap_or_default(),
                    homepage: p.homepage.clone().unwrap_or_default(),
                    repository: p.repository.clone().unwrap_or_default(),
                    license: p.license.clone().unwrap_or_default(),
                    license_file: p.license_file.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                    rust_version: p.rust_version.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                    readme: p.readme.as_ref().map(|f| f.to_string()).unwrap_or_default(),
                    features: p.features.keys().cloned().collect(),
                    is_member: members.contains(&p.id.repr),
                    source: match &p.source {
                        None => "path".to_owned(),
                        Some(s) if s.repr.starts_with("registry+") || s.repr.starts_with("sparse+") => {
                            "registry".to_owned()
                        }
                        Some(s) if s.repr.starts_with("git+") => "git".to_owned(),
                        Some(s) => s.repr.split('+').next().unwrap_or("other").to_owned(),
                    },
                };
                (p.id.repr.clone(), info)
            })
            .collect();
        let target_dir =
            args.target_dir.clone().unwrap_or_else(|| metadata.target_directory.as_std_path().to_path_buf());
        let ws = Workspace {
            graph,
            packages,
            root: metadata.workspace_root.as_std_path().to_path_buf(),
            target_dir,
            skipped_doctests,
        };
        Ok((ws, graph_json))
    }

    /// The package of unit `index`.
    pub fn package_of(&self, index: usize) -> Result<&PackageInfo, Error> {
        let unit = &self.graph.units[index];
        self.packages.get(&unit.pkg_id).ok_or_else(|| {
            Error::Cargo(format!("`cargo metadata` does not list package `{}` of unit {index}", unit.pkg_id))
        })
    }

    /// Manifest directories of all packages (to keep nested packages out of each other's
    /// sources).
    pub fn manifest_dirs(&self) -> Vec<&Path> {
        self.packages.values().map(|p| p.manifest_dir.as_path()).collect()
    }
}
