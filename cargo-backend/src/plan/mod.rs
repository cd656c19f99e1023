//! From units to derivations: one derivation per unit, created in-process through nix-rs.
//!
//! Units are visited dependencies first. For each one the planner computes what cargo would
//! pass — rustc's arguments ([`rustc_args`]), the environment ([`mod@env`]), the LTO setting
//! ([`lto`]), the unit's hash ([`identity`]) and its files ([`artifacts`]), all pure functions
//! of the unit facts, unit-tested without a store — writes it as a [`UnitSpec`] into a
//! derivation whose builder is `cargo-nix-unit`, and learns the derivation's output path before
//! anything is built, so dependents can name it.
//!
//! Identity: a unit's derivation hash covers its package's source (added to the store per
//! package, filtered), its spec (which holds the store paths of its dependencies' outputs),
//! the builder, and the toolchain's identity. Editing a file in one package therefore changes
//! only that package's units and their dependents; the same registry crate built the same way
//! in two workspaces is one derivation. Path packages inside the workspace root are built in a
//! copy of the whole workspace tree and build scripts see part of the user's environment; for
//! those, what they read decides reuse ([`reuse`]).
//!
//! Paths as cargo shows them: rustc runs from the workspace root with a member's crate root
//! relative to it (`crates/member/src/lib.rs`), so `file!()`, panic locations and diagnostics
//! read as under cargo; the builder recreates that layout in its build directory
//! ([`UnitSpec::ws_subdir`]).

pub mod artifacts;
pub mod env;
pub mod identity;
pub mod lto;
pub mod offline;
pub mod outside;
pub mod pipelining;
mod record;
pub mod reuse;
pub mod rustc_args;
pub mod script_env;
mod store_side;
pub use reuse::{narrow, record_runs, tree_exclusions};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use nix_rs::{AddPathOptions, DerivationBuilder, Store, StorePath};
use serde::Serialize;

pub use artifacts::{Artifact, ArtifactKind};
pub use pipelining::{compiles_against_metadata, link_target, pipelined_units};
use record::CachedUnit;
pub use record::{LastRun, Record, ReuseInfo, TreeReads};
pub use store_side::PlanOptions;
use store_side::sanitize;

use crate::Error;
use crate::spec::{Action, SPEC_ENV, UnitSpec};
use crate::toolchain::Toolchain;
use crate::units::{Mode, PackageInfo, Unit, Workspace};

/// A node of the build graph: a unit's derivation, or the metadata-only derivation of a
/// pipelined library unit (see [`Planner::plan_cached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
pub enum NodeRef {
    /// The unit's derivation (by unit index).
    Unit(usize),
    /// The metadata derivation of the library unit with this index.
    Metadata(usize),
}

/// A unit with its derivation.
#[derive(Debug, Clone)]
pub struct PlannedUnit {
    /// Index in the unit graph.
    pub index: usize,
    /// How cargo names it: `name vX.Y.Z` (and ` (path)` for path packages).
    pub label: String,
    /// `name@X.Y.Z`, as cargo names the package in build-script warnings.
    pub package: String,
    /// The target's name.
    pub target_name: String,
    /// The unit's `-C metadata` hash.
    pub hash: String,
    /// Its derivation.
    pub drv: StorePath,
    /// Its output path.
    pub out: StorePath,
    /// For a pipelined library: the derivation that stops after the crate's metadata, and its
    /// output (`lib/lib<name>-<hash>.rmeta`). Libraries that depend on this one compile against
    /// it, so they start before this unit's code generation is done.
    pub metadata: Option<(StorePath, StorePath)>,
    /// The nodes whose outputs the unit's derivations read (the metadata derivation reads the
    /// same), i.e. what must be realised first.
    pub inputs: Vec<NodeRef>,
    /// Files to install.
    pub artifacts: Vec<Artifact>,
    /// Whether it runs a build script.
    pub is_build_script_run: bool,
    /// Whether warnings should be shown (workspace members).
    pub is_member: bool,
    /// For a build-script run or a unit built in the workspace copy: what its reuse is
    /// decided on ([`reuse`]).
    pub reuse: Option<ReuseInfo>,
}

/// Every unit of a workspace, planned.
#[derive(Debug, Clone)]
pub struct Plan {
    /// By unit index.
    pub units: Vec<PlannedUnit>,
    /// Time spent adding package sources to the store.
    pub source_time: std::time::Duration,
    /// The environment the plan was made in (what build scripts see of it is chosen by
    /// [`script_env`]).
    pub user_env: BTreeMap<String, String>,
    /// Each package's source in the store and its directory (where dep-info names go back to:
    /// [`crate::depinfo`]).
    pub sources: Vec<(PathBuf, PathBuf)>,
}

/// Creates the derivations.
#[derive(Debug)]
pub struct Planner<'a> {
    store: &'a Store,
    ws: &'a Workspace,
    tc: &'a Toolchain,
    builder: StorePath,
    /// Store paths of the toolchain (rustc's sysroot, the C compiler) when they live in the
    /// store: inputs of every unit, which makes the build pure.
    toolchain_inputs: Vec<StorePath>,
    sources: HashMap<PathBuf, StorePath>,
    /// Package directory → (fingerprint, store path) from earlier runs.
    source_cache: BTreeMap<PathBuf, (String, String)>,
    /// Derivations made earlier: hash of the description → (drv, out). Only the entries used
    /// by this run are kept.
    drv_memo: BTreeMap<String, (String, String)>,
    drv_memo_used: BTreeMap<String, (String, String)>,
    units: Vec<Option<PlannedUnit>>,
    source_time: std::time::Duration,
    /// Per unit: its transitive library dependencies (indices), for `-L dependency=`.
    transitive_libs: Vec<BTreeSet<usize>>,
    /// Per unit: whether it gets a metadata derivation (empty when pipelining is off).
    pipelined: Vec<bool>,
    /// Per unit: its LTO setting.
    lto: Vec<lto::Lto>,
    /// The environment `cargo nix` runs in.
    user_env: BTreeMap<String, String>,
    /// Units as they last ran, by unit hash ([`reuse`]).
    runs: BTreeMap<String, LastRun>,
    /// The workspace copy, once added ([`Planner::ws_tree`]).
    ws_tree: Option<StorePath>,
    /// Where each unit goes as soon as it is planned, for a scheduler that starts building
    /// before the whole plan is made ([`Planner::plan_cached`]).
    announce: Option<crossbeam_channel::Sender<PlannedUnit>>,
    /// The local store outputs are copied back to, which gets each source too ([`PlanOptions`]).
    mirror: Option<&'a Store>,
}

impl<'a> Planner<'a> {
    /// A planner for `ws` on `store`, with `builder` the path of `cargo-nix-unit` on this
    /// machine (it is added to the store).
    pub fn new(store: &'a Store, ws: &'a Workspace, tc: &'a Toolchain, builder: &Path) -> Result<Self, Error> {
        Self::with_source_cache(store, ws, tc, builder, BTreeMap::new())
    }

    fn with_source_cache(
        store: &'a Store,
        ws: &'a Workspace,
        tc: &'a Toolchain,
        builder: &Path,
        mut source_cache: BTreeMap<PathBuf, (String, String)>,
    ) -> Result<Self, Error> {
        // The builder binary is keyed by its file identity, like an immutable source.
        let stat_builder = offline::builder_fingerprint(builder);
        let mut cached = None;
        if let Some((fp, p)) = source_cache.get_mut(builder) {
            if crate::cache::key_holds_refreshing(fp, &stat_builder) {
                if let Ok(p) = store.parse_path(p) {
                    if store.is_valid_path(&p).map_err(|e| Error::Nix(format!("checking {p}"), e))? {
                        cached = Some(p);
                    }
                }
            }
        }
        let builder_path = match cached {
            Some(p) => p,
            None => {
                let fingerprint = crate::cache::key_before(&stat_builder);
                let p = store
                    .add_path(builder, AddPathOptions::new().name("cargo-nix-unit"))
                    .map_err(|e| Error::Nix(format!("adding the unit builder {}", builder.display()), e))?;
                match fingerprint {
                    Some(fp) => source_cache.insert(builder.to_path_buf(), (fp, p.to_string())),
                    None => source_cache.remove(builder),
                };
                p
            }
        };
        let n = ws.graph.units.len();
        let store_dir = store.store_dir().map_err(|e| Error::Nix("reading the store dir".into(), e))?;
        let mut toolchain_inputs = Vec::new();
        for p in std::iter::once(tc.sysroot.as_path()).chain(tc.cc.as_deref()) {
            if let Some(sp) = store_side::store_path_of(store, &store_dir, p)? {
                toolchain_inputs.push(sp);
            }
        }
        Ok(Planner {
            store,
            ws,
            tc,
            builder: builder_path,
            toolchain_inputs,
            sources: HashMap::new(),
            source_cache,
            drv_memo: BTreeMap::new(),
            drv_memo_used: BTreeMap::new(),
            units: vec![None; n],
            source_time: std::time::Duration::ZERO,
            transitive_libs: vec![BTreeSet::new(); n],
            pipelined: Vec::new(),
            lto: lto::generate(&ws.graph),
            user_env: script_env::snapshot(),
            runs: BTreeMap::new(),
            ws_tree: None,
            announce: None,
            mirror: None,
        })
    }

    /// Turns pipelining on or off (default: off). With it, every rlib library that another
    /// rlib library depends on gets a second derivation that stops after the crate's metadata
    /// (`rustc -Zno-codegen`), and those dependents compile against that `.rmeta`, as cargo
    /// starts a dependent once the `.rmeta` is written. Both derivations of such a library run
    /// rustc with `RUSTC_BOOTSTRAP=1`: the crate hash covers that setting, and the `.rmeta`
    /// and the `.rlib` must agree on it. Binaries, tests, proc-macros and build scripts still
    /// wait for the full `.rlib`s they link.
    pub fn pipelining(mut self, on: bool) -> Self {
        self.pipelined = if on { pipelined_units(&self.ws.graph) } else { Vec::new() };
        self
    }

    fn is_pipelined(&self, i: usize) -> bool {
        self.pipelined.get(i).copied().unwrap_or(false)
    }

    /// The node a unit that compiles against metadata (`consumer`) reads for library `t`.
    fn lib_ref(&self, consumer: bool, t: usize) -> NodeRef {
        if consumer && self.planned(t).metadata.is_some() { NodeRef::Metadata(t) } else { NodeRef::Unit(t) }
    }

    /// The derivation and output of a node.
    fn node(&self, r: NodeRef) -> (&StorePath, &StorePath) {
        match r {
            NodeRef::Unit(i) => (&self.planned(i).drv, &self.planned(i).out),
            NodeRef::Metadata(i) => {
                let (d, o) = self.planned(i).metadata.as_ref().expect("metadata nodes are planned with their unit");
                (d, o)
            }
        }
    }

    /// Plans every unit.
    pub fn plan(mut self) -> Result<Plan, Error> {
        self.plan_all()?;
        Ok(self.into_plan())
    }

    fn plan_all(&mut self) -> Result<(), Error> {
        for i in store_side::announce_order(&self.ws.graph) {
            let planned = self.plan_unit(i)?;
            self.announce(&planned);
            self.units[i] = Some(planned);
        }
        Ok(())
    }

    fn into_plan(self) -> Plan {
        let sources = self.sources_list();
        Plan {
            units: self.units.into_iter().map(|u| u.expect("every unit is planned")).collect(),
            source_time: self.source_time,
            sources,
            user_env: self.user_env,
        }
    }

    /// The package sources added (or found) so far: store path, package directory.
    fn sources_list(&self) -> Vec<(PathBuf, PathBuf)> {
        let mut v: Vec<_> = self.sources.iter().map(|(dir, p)| (PathBuf::from(p.as_str()), dir.clone())).collect();
        v.sort();
        v
    }

    fn planned(&self, i: usize) -> &PlannedUnit {
        self.units[i].as_ref().expect("dependencies are planned first")
    }

    fn unit_hash(&self, i: usize, pkg: &PackageInfo) -> String {
        let unit = &self.ws.graph.units[i];
        let facts = identity::IdentityFacts {
            name: &pkg.name,
            version: &pkg.version,
            manifest_dir: &pkg.manifest_dir,
            lint_rustflags: &pkg.lint_rustflags,
            lto: &self.lto[i],
            toolchain: &self.tc.identity,
        };
        let deps = unit
            .dependencies
            .iter()
            .map(|d| (d.extern_crate_name.as_str(), self.planned(d.index).hash.as_str()))
            .collect();
        identity::unit_hash(unit, &facts, deps)
    }

    fn env_context<'b>(&'b self, manifest_dir: &'b str, tmpdir: &'b str) -> env::EnvContext<'b> {
        env::EnvContext {
            cargo: self.tc.cargo.to_str().unwrap_or_default(),
            manifest_dir,
            env_config: &self.ws.env_config,
            target_tmpdir: tmpdir,
        }
    }

    fn plan_unit(&mut self, i: usize) -> Result<PlannedUnit, Error> {
        let ws = self.ws;
        let unit = &ws.graph.units[i];
        let pkg = ws.package_of(i)?;
        if matches!(unit.mode, Mode::Doc | Mode::Doctest | Mode::Other(_)) {
            return Err(Error::Unsupported(format!(
                "unit {} has mode `{}`, which cargo nix does not build",
                unit.describe(),
                unit.mode
            )));
        }
        let src = self.source(pkg)?;
        let hash = self.unit_hash(i, pkg);
        let label = if pkg.source == "path" {
            format!("{} v{} ({})", pkg.name, pkg.version, pkg.manifest_dir.display())
        } else {
            format!("{} v{}", pkg.name, pkg.version)
        };
        let mut drv = DerivationBuilder::new(
            sanitize(&format!("rust-{}-{}-{}-{}", pkg.name, pkg.version, unit.target.name, unit.mode)),
            self.builder.as_str(),
        );
        // A path package inside the workspace root is built in the workspace copy, where it
        // can read files outside its own directory (see `reuse`).
        let pkg_rel = self.in_tree(pkg);
        let tree = match &pkg_rel {
            Some(_) => Some(self.ws_tree()?),
            None => None,
        };
        let manifest_dir = match (&tree, &pkg_rel) {
            (Some(t), Some(rel)) if !rel.as_os_str().is_empty() => format!("{t}/{}", rel.display()),
            (Some(t), _) => t.to_string(),
            _ => src.to_string(),
        };
        drv.arg("run")
            .input_source(&self.builder)
            .input_source(tree.as_ref().unwrap_or(&src))
            .env("toolchain", &self.tc.identity);
        for t in &self.toolchain_inputs {
            drv.input_source(t);
        }
        // What the unit reads from other units: its dependencies, and rustc's transitive
        // libraries with their build scripts' outputs (below). A unit that compiles against
        // metadata reads the metadata nodes of pipelined libraries instead of their rlibs.
        let consumer = !self.pipelined.is_empty() && compiles_against_metadata(unit);
        let mut inputs = BTreeSet::new();
        for d in &unit.dependencies {
            inputs.insert(self.lib_ref(consumer, d.index));
        }

        let tmpdir = ws.target_dir.join("tmp").display().to_string();
        let cx = self.env_context(&manifest_dir, &tmpdir);
        let mut artifacts = Vec::new();
        let env;
        let action = if unit.is_build_script_run() {
            let compile =
                unit.dependencies.iter().find(|d| ws.graph.units[d.index].is_build_script_compile()).ok_or_else(
                    || Error::Unsupported(format!("build-script run {} has no compile unit", unit.describe())),
                )?;
            let c = self.planned(compile.index);
            let program = format!("{}/{}", c.out, c.artifacts[0].file);
            let mut dep_links = Vec::new();
            for d in &unit.dependencies {
                let du = &ws.graph.units[d.index];
                if du.is_build_script_run() {
                    if let Some(links) = &ws.package_of(d.index)?.links {
                        dep_links.push((links.clone(), self.planned(d.index).out.to_string()));
                    }
                }
            }
            let sx = env::ScriptContext {
                host: &self.tc.host,
                rustc: self.tc.rustc.to_str().unwrap_or_default(),
                rustdoc: self.tc.rustdoc.to_str().unwrap_or_default(),
                linker: unit.linker.as_deref(),
            };
            let mut e = env::build_script_env(unit, pkg, &cx, &sx);
            e.extend(self.tc.cargo_cfg_env(unit.profile.debug_assertions));
            env = e;
            Action::RunBuildScript { program, dep_links }
        } else {
            let mut e = env::rustc_env(unit, pkg, &cx);
            artifacts = artifacts::artifacts(unit, &hash);
            let action = self.rustc_action(i, pkg, &src, &hash, consumer, &mut e)?;
            env = e;
            action
        };

        // rustc reads transitive libraries (-L dependency=) and their build scripts' outputs.
        for &t in &self.transitive_libs[i] {
            inputs.insert(self.lib_ref(consumer, t));
            for d in &ws.graph.units[t].dependencies {
                if ws.graph.units[d.index].is_build_script_run() {
                    inputs.insert(NodeRef::Unit(d.index));
                }
            }
        }
        for &r in &inputs {
            drv.input_derivation(self.node(r).0, ["out"]);
        }
        let pipelined = self.is_pipelined(i);
        let mut env = env;
        if pipelined {
            env.insert("RUSTC_BOOTSTRAP".into(), "1".into());
        }

        let (cwd, ws_subdir) = match (&tree, unit.is_build_script_run()) {
            // In the workspace copy, laid out as on disk: rustc from its root, scripts from
            // the package's directory.
            (Some(t), false) => (t.to_string(), String::new()),
            (Some(_), true) => (manifest_dir.clone(), String::new()),
            (None, _) => (src.to_string(), self.ws_subdir(pkg, unit).unwrap_or_default()),
        };
        let mut spec = UnitSpec {
            // No local path here: the same crate at two places is one derivation.
            label: format!("{} v{} ({} \"{}\")", pkg.name, pkg.version, unit.mode, unit.target.name),
            package: format!("{} v{}", pkg.name, pkg.version),
            cwd,
            ws_subdir,
            path: self.tc.path_env.clone(),
            env,
            action,
        };
        let reuse = match (&tree, &pkg_rel) {
            (Some(t), Some(rel)) => Some(ReuseInfo {
                base: self.base(&src, &spec, Some(t)),
                tree: Some(TreeReads {
                    tree: t.to_string(),
                    pkg: rel.clone(),
                    nested: self.nested_in(rel),
                    dep_info_dir: match &spec.action {
                        Action::Rustc { out_subdir, .. } => Some(out_subdir.clone()),
                        Action::RunBuildScript { .. } => None,
                    },
                }),
            }),
            _ if unit.is_build_script_run() => Some(ReuseInfo { base: self.base(&src, &spec, None), tree: None }),
            _ => None,
        };
        if unit.is_build_script_run() {
            // What the script sees of the user's environment, under cargo's own variables.
            let declared = self.runs.get(&hash).map(|r| r.declared.clone()).unwrap_or_default();
            let mut visible = script_env::visible(&self.user_env, &declared);
            visible.append(&mut spec.env);
            spec.env = visible;
        }
        let last = match &reuse {
            Some(r) => self.last_run_holds(&hash, r, pipelined)?,
            None => None,
        };
        let (drv_path, out, metadata) = match last {
            Some(last) => last,
            None => {
                let json = serde_json::to_string(&spec).expect("spec serializes");
                drv.env(SPEC_ENV, json).env("passAsFile", SPEC_ENV);
                let (drv_path, out) = self.create(&drv, unit)?;
                let metadata = if pipelined {
                    if let Action::Rustc { metadata_only, .. } = &mut spec.action {
                        *metadata_only = true;
                    }
                    let json = serde_json::to_string(&spec).expect("spec serializes");
                    drv.name(sanitize(&format!("rust-{}-{}-{}-metadata", pkg.name, pkg.version, unit.target.name)));
                    drv.env(SPEC_ENV, json);
                    Some(self.create(&drv, unit)?)
                } else {
                    None
                };
                (drv_path, out, metadata)
            }
        };
        Ok(PlannedUnit {
            index: i,
            label,
            package: format!("{}@{}", pkg.name, pkg.version),
            target_name: unit.target.name.clone(),
            hash,
            drv: drv_path,
            out,
            metadata,
            inputs: inputs.into_iter().collect(),
            artifacts,
            is_build_script_run: unit.is_build_script_run(),
            is_member: pkg.is_member,
            reuse,
        })
    }

    /// Where rustc runs from, relative to the package, when cargo runs it from the workspace
    /// root: `Some("crates/member")` for a path package inside the workspace root, `Some("")`
    /// for the root package, `None` for other packages (run from their own root, with an
    /// absolute crate root). Build scripts always run in their package's directory.
    fn ws_subdir(&self, pkg: &PackageInfo, unit: &Unit) -> Option<String> {
        if unit.is_build_script_run() {
            return None;
        }
        rustc_args::workspace_subdir(pkg, &self.ws.root).map(|p| p.display().to_string())
    }

    fn rustc_action(
        &mut self,
        i: usize,
        pkg: &PackageInfo,
        src: &StorePath,
        hash: &str,
        consumer: bool,
        env: &mut BTreeMap<String, String>,
    ) -> Result<Action, Error> {
        let ws = self.ws;
        let unit = &ws.graph.units[i];
        // As cargo passes it: relative to the workspace root for path packages inside it.
        let src_path = rustc_args::src_path_arg(unit, pkg, &ws.root, src.as_str()).ok_or_else(|| {
            Error::Unsupported(format!(
                "{}: source {} is outside the package directory {}",
                unit.describe(),
                unit.target.src_path.display(),
                pkg.manifest_dir.display()
            ))
        })?;

        // Dependencies: --extern for direct libraries, -L dependency= for all transitive ones.
        let mut transitive = BTreeSet::new();
        let mut build_script = None;
        let mut externs = Vec::new();
        for d in &unit.dependencies {
            let du = &ws.graph.units[d.index];
            let dp = self.planned(d.index);
            if du.is_build_script_run() {
                build_script = Some(dp.out.to_string());
            } else if du.is_lib() {
                transitive.insert(d.index);
                if !du.is_proc_macro() {
                    transitive.extend(self.transitive_libs[d.index].iter().copied());
                }
                if let Some(file) = artifacts::extern_file(unit, du, &dp.artifacts) {
                    // A pipelined library is read from its metadata derivation's output.
                    let path = match self.lib_ref(consumer, d.index) {
                        NodeRef::Metadata(m) => {
                            let stem = file.strip_suffix(".rlib").or_else(|| file.strip_suffix(".rmeta"));
                            format!("{}/{}.rmeta", self.node(NodeRef::Metadata(m)).1, stem.unwrap_or(&file))
                        }
                        NodeRef::Unit(_) => format!("{}/{file}", dp.out),
                    };
                    externs.push(rustc_args::Extern {
                        name: d.extern_crate_name.clone(),
                        path,
                        noprelude: d.noprelude,
                    });
                }
            } else if du.is_bin() && unit.mode.is_any_test() {
                // Where cargo puts the binary (and where `build` installs it for the tests):
                // `target/<profile>/<name>`, as cargo's `bin_link_for_target`.
                let at = ws.profile_dir().join(&du.target.name);
                env.insert(format!("CARGO_BIN_EXE_{}", du.target.name), at.display().to_string());
            }
        }
        let mut lib_dirs = Vec::new();
        let mut dep_build_scripts = Vec::new();
        for &t in &transitive {
            lib_dirs.push(format!("{}/lib", self.node(self.lib_ref(consumer, t)).1));
            for d in &ws.graph.units[t].dependencies {
                if ws.graph.units[d.index].is_build_script_run() {
                    dep_build_scripts.push(self.planned(d.index).out.to_string());
                }
            }
        }
        self.transitive_libs[i] = transitive;

        let invocation = rustc_args::RustcInvocation {
            unit,
            pkg,
            src_path,
            lto: &self.lto[i],
            metadata: hash,
            extra_filename: Some(hash),
            out_dir: None,
            lib_dirs: &lib_dirs,
            externs: &externs,
        };
        Ok(Action::Rustc {
            rustc: self.tc.rustc.display().to_string(),
            args: rustc_args::rustc_args(&invocation),
            out_subdir: artifacts::out_subdir(unit).into(),
            build_script,
            dep_build_scripts,
            link: link_target(unit),
            metadata_only: false,
        })
    }
}
