//! From units to derivations: one derivation per unit, created in-process through nix-rs.
//!
//! Units are visited dependencies first. For each one the planner computes what cargo would
//! pass (rustc flags, `--extern` paths, the environment), writes it as a [`UnitSpec`] into a
//! derivation whose builder is `cargo-nix-unit`, and learns the derivation's output path before
//! anything is built, so dependents can name it.
//!
//! Identity: a unit's derivation hash covers its package's source (added to the store per
//! package, filtered), its spec (which holds the store paths of its dependencies' outputs),
//! the builder, and the toolchain's identity. Editing a file in one package therefore changes
//! only that package's units and their dependents; the same registry crate built the same way
//! in two workspaces is one derivation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use nix_rs::{AddPathOptions, DerivationBuilder, Store, StorePath};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::Error;
use crate::build_script::LinkTarget;
use crate::spec::{Action, SPEC_ENV, UnitSpec};
use crate::toolchain::{Toolchain, hex};
use crate::unit_graph::{Mode, SourceKind, Unit};
use crate::workspace::{PackageInfo, Workspace};

/// What a unit produces, for installing it into the target directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum ArtifactKind {
    /// An rlib (or dylib/staticlib/cdylib) of a library target.
    Lib,
    /// A `[[bin]]` executable.
    Bin,
    /// A test executable (`cargo test`).
    Test,
    /// An example executable.
    Example,
    /// A benchmark executable.
    Bench,
    /// Anything else (build scripts, proc-macros): not installed.
    Internal,
}

/// One file a unit produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Artifact {
    /// Its kind.
    pub kind: ArtifactKind,
    /// Path relative to the unit's output, e.g. `bin/hello-0123abcd`.
    pub file: String,
    /// Where cargo puts it, relative to `target/<profile>/`, e.g. `hello` or `deps/t-0123abcd`.
    pub install_as: String,
}

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
}

/// Every unit of a workspace, planned.
#[derive(Debug, Clone)]
pub struct Plan {
    /// By unit index.
    pub units: Vec<PlannedUnit>,
    /// Time spent adding package sources to the store.
    pub source_time: std::time::Duration,
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
}

/// Whether a unit only compiles against its dependencies, without linking them: a library
/// built as an rlib. Such a unit can start from its dependencies' metadata (`.rmeta`).
pub fn compiles_against_metadata(unit: &Unit) -> bool {
    unit.mode == Mode::Build
        && unit.is_lib()
        && !unit.is_proc_macro()
        && unit.target.crate_types.iter().all(|t| t == "lib" || t == "rlib")
}

/// Which units get a metadata derivation when pipelining: rlib libraries that some other rlib
/// library depends on (a library only binaries depend on gains nothing from one).
pub fn pipelined_units(graph: &crate::unit_graph::UnitGraph) -> Vec<bool> {
    let mut pipelined = vec![false; graph.units.len()];
    for unit in graph.units.iter().filter(|u| compiles_against_metadata(u)) {
        for d in &unit.dependencies {
            if compiles_against_metadata(&graph.units[d.index]) {
                pipelined[d.index] = true;
            }
        }
    }
    pipelined
}

/// The facts that select a unit's `rustc-link-arg*` instructions (cargo's
/// `LinkArgTarget::applies_to`).
pub fn link_target(unit: &Unit) -> LinkTarget {
    LinkTarget {
        bin: unit.is_bin().then(|| unit.target.name.clone()),
        test: unit.is_test(),
        bench: unit.is_bench(),
        example: unit.is_example() && unit.target.crate_types.iter().any(|t| t == "bin"),
        cdylib: unit.is_cdylib() && !unit.mode.is_any_test(),
    }
}

/// The store path holding `path`, if `path` is inside `store_dir` and valid in `store`.
fn store_path_of(store: &Store, store_dir: &str, path: &Path) -> Result<Option<StorePath>, Error> {
    let Ok(rel) = path.strip_prefix(store_dir) else { return Ok(None) };
    let Some(first) = rel.components().next() else { return Ok(None) };
    let full = Path::new(store_dir).join(first);
    let Ok(sp) = store.parse_path(&full.to_string_lossy()) else { return Ok(None) };
    let valid = store.is_valid_path(&sp).map_err(|e| Error::Nix(format!("checking {}", sp), e))?;
    Ok(valid.then_some(sp))
}

fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "+-._?=".contains(c) { c } else { '-' }).collect()
}

fn crate_name(unit: &Unit) -> String {
    if unit.is_build_script_compile() { "build_script_build".into() } else { unit.target.name.replace('-', "_") }
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
        let stat_builder = |k: &mut crate::cache::KeyBuilder| {
            k.stat(builder);
            true
        };
        let mut cached = None;
        if let Some((fp, p)) = source_cache.get(builder) {
            if crate::cache::key_holds(fp, stat_builder) {
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
                let fingerprint = crate::cache::key_before(stat_builder);
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
            if let Some(sp) = store_path_of(store, &store_dir, p)? {
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
        for i in self.ws.graph.topological_order() {
            let planned = self.plan_unit(i)?;
            self.units[i] = Some(planned);
        }
        Ok(())
    }

    fn into_plan(self) -> Plan {
        Plan {
            units: self.units.into_iter().map(|u| u.expect("every unit is planned")).collect(),
            source_time: self.source_time,
        }
    }

    fn planned(&self, i: usize) -> &PlannedUnit {
        self.units[i].as_ref().expect("dependencies are planned first")
    }

    /// The package's source in the store (added once per run, and not at all while its
    /// fingerprint matches the one cached with a still-valid store path).
    fn source(&mut self, pkg: &PackageInfo) -> Result<StorePath, Error> {
        if let Some(p) = self.sources.get(&pkg.manifest_dir) {
            return Ok(p.clone());
        }
        let dir = pkg.manifest_dir.clone();
        let excluded = crate::workspace::source_exclusions(&dir, self.ws.manifest_dirs(), &self.ws.target_dir);
        let start = std::time::Instant::now();
        let immutable = pkg.is_immutable_source();
        let compute = |k: &mut crate::cache::KeyBuilder| {
            if immutable {
                // Registry and git checkouts never change under cargo (it does not look
                // either): a stat of the directory, its manifest and cargo's unpack marker.
                k.stat(&dir).stat(&dir.join("Cargo.toml")).stat(&dir.join(".cargo-ok"));
                true
            } else {
                crate::cache::tree_fingerprint(&dir, &excluded, k)
            }
        };
        if let Some((cached_fp, cached_path)) = self.source_cache.get(&dir) {
            if crate::cache::key_holds(cached_fp, compute) {
                if let Ok(p) = self.store.parse_path(cached_path) {
                    if self.store.is_valid_path(&p).map_err(|e| Error::Nix(format!("checking {p}"), e))? {
                        self.source_time += start.elapsed();
                        self.sources.insert(dir, p.clone());
                        return Ok(p);
                    }
                }
            }
        }
        // Made before the files are added, so an edit while they are is seen next time.
        let fingerprint = crate::cache::key_before(compute);
        let name = sanitize(&format!("{}-{}-src", pkg.name, pkg.version));
        let path = self
            .store
            .add_path(&dir, AddPathOptions::new().name(name).filter(move |rel, _kind| !excluded(rel)))
            .map_err(|e| {
                Error::Nix(format!("adding the source of {} v{} ({})", pkg.name, pkg.version, dir.display()), e)
            })?;
        self.source_time += start.elapsed();
        match fingerprint {
            Some(fp) => self.source_cache.insert(dir.clone(), (fp, path.to_string())),
            None => self.source_cache.remove(&dir),
        };
        self.sources.insert(dir, path.clone());
        Ok(path)
    }

    /// Plans every unit of `ws`, reusing `cache` (the builder and sources whose files did not
    /// change, and the whole plan when its key matches and it can still be used), and updates
    /// the cache.
    pub fn plan_cached(
        store: &'a Store,
        ws: &'a Workspace,
        tc: &'a Toolchain,
        builder: &Path,
        pipelining: bool,
        cache: &mut crate::cache::Cache,
    ) -> Result<Plan, Error> {
        let this =
            Self::with_source_cache(store, ws, tc, builder, std::mem::take(&mut cache.sources))?.pipelining(pipelining);
        this.plan_with(cache)
    }

    fn plan_with(mut self, cache: &mut crate::cache::Cache) -> Result<Plan, Error> {
        let order = self.ws.graph.topological_order();
        let mut sources = Vec::new();
        for &i in &order {
            let pkg = self.ws.package_of(i)?;
            sources.push(self.source(pkg)?.to_string());
        }
        cache.sources = std::mem::take(&mut self.source_cache);
        let source_time = self.source_time;

        let mut key = crate::cache::KeyBuilder::default();
        key.str(&cache.workspace_key).str(&self.tc.identity).str(self.builder.as_str());
        let uri = self.store.uri().map_err(|e| Error::Nix("reading the store URI".into(), e))?;
        let store_dir = self.store.store_dir().map_err(|e| Error::Nix("reading the store dir".into(), e))?;
        key.str(&uri).str(&store_dir);
        key.str(if self.pipelined.is_empty() { "" } else { "pipelining" });
        for s in &sources {
            key.str(s);
        }
        for t in &self.toolchain_inputs {
            key.str(t.as_str());
        }
        let key = key.finish();
        if !cache.workspace_key.is_empty() && key == cache.plan_key && cache.plan.len() == self.ws.graph.units.len() {
            if let Some(plan) = self.cached_plan(&cache.plan, source_time)? {
                return Ok(plan);
            }
        }
        self.drv_memo = std::mem::take(&mut cache.derivations);
        self.plan_all()?;
        cache.derivations = std::mem::take(&mut self.drv_memo_used);
        let plan = self.into_plan();
        cache.plan_key = key;
        cache.plan = plan
            .units
            .iter()
            .map(|u| crate::cache::CachedUnit {
                drv: u.drv.to_string(),
                out: u.out.to_string(),
                hash: u.hash.clone(),
                label: u.label.clone(),
                artifacts: u.artifacts.clone(),
                metadata: u.metadata.as_ref().map(|(d, o)| (d.to_string(), o.to_string())),
                inputs: u.inputs.clone(),
            })
            .collect();
        Ok(plan)
    }

    /// The cached plan, if it can still be used: every output is valid (nothing to build), or
    /// every derivation is (what is missing can be built from them).
    /// A failing validity check is an error, not a reason to plan again.
    fn cached_plan(
        &self,
        cached: &[crate::cache::CachedUnit],
        source_time: std::time::Duration,
    ) -> Result<Option<Plan>, Error> {
        let valid = |p: &StorePath| self.store.is_valid_path(p).map_err(|e| Error::Nix(format!("checking {p}"), e));
        let parse = |p: &str| self.store.parse_path(p).ok();
        let mut units = Vec::with_capacity(cached.len());
        let mut all_outputs_valid = true;
        for (i, c) in cached.iter().enumerate() {
            let Some(out) = parse(&c.out) else { return Ok(None) };
            all_outputs_valid = all_outputs_valid && valid(&out)?;
            let metadata = match &c.metadata {
                Some((d, o)) => match (parse(d), parse(o)) {
                    (Some(d), Some(o)) => Some((d, o)),
                    _ => return Ok(None),
                },
                None => None,
            };
            let unit = &self.ws.graph.units[i];
            let Ok(pkg) = self.ws.package_of(i) else { return Ok(None) };
            let Some(drv) = parse(&c.drv) else { return Ok(None) };
            units.push(PlannedUnit {
                index: i,
                label: c.label.clone(),
                package: format!("{}@{}", pkg.name, pkg.version),
                target_name: unit.target.name.clone(),
                hash: c.hash.clone(),
                drv,
                out,
                metadata,
                inputs: c.inputs.clone(),
                artifacts: c.artifacts.clone(),
                is_build_script_run: unit.is_build_script_run(),
                is_member: pkg.is_member,
            });
        }
        if !all_outputs_valid {
            for u in &units {
                for d in std::iter::once(&u.drv).chain(u.metadata.as_ref().map(|(d, _)| d)) {
                    if !valid(d)? {
                        return Ok(None);
                    }
                }
            }
        }
        Ok(Some(Plan { units, source_time }))
    }

    /// Creates `drv`, or reuses the derivation an earlier run made from the very same
    /// description when it is still valid (a leaf edit then rewrites only the edited units).
    fn create(&mut self, drv: &DerivationBuilder, unit: &Unit) -> Result<(StorePath, StorePath), Error> {
        let json = serde_json::to_vec(drv).expect("derivations serialize");
        let key = hex(&Sha256::digest(&json));
        if let Some((d, o)) = self.drv_memo.get(&key) {
            if let (Ok(d), Ok(o)) = (self.store.parse_path(d), self.store.parse_path(o)) {
                if self.store.is_valid_path(&d).map_err(|e| Error::Nix(format!("checking {d}"), e))? {
                    self.drv_memo_used.insert(key, (d.to_string(), o.to_string()));
                    return Ok((d, o));
                }
            }
        }
        let created = drv
            .create(self.store)
            .map_err(|e| Error::Nix(format!("creating the derivation of {}", unit.describe()), e))?;
        let out = created.outputs["out"].clone();
        self.drv_memo_used.insert(key, (created.drv_path.to_string(), out.to_string()));
        Ok((created.drv_path, out))
    }

    fn unit_hash(&self, i: usize, pkg: &PackageInfo) -> String {
        #[derive(Serialize)]
        struct Identity<'a> {
            name: &'a str,
            version: &'a str,
            source: String,
            target: &'a str,
            kinds: &'a [String],
            crate_types: &'a [String],
            mode: &'a str,
            profile: String,
            features: &'a [String],
            platform: &'a Option<String>,
            toolchain: &'a str,
            deps: Vec<(&'a str, &'a str)>,
        }
        let unit = &self.ws.graph.units[i];
        let source = match unit.source_kind() {
            SourceKind::Path(_) => "path".to_owned(),
            _ => unit.package_id_parts().and_then(|p| p.source).unwrap_or("").to_owned(),
        };
        let mut deps: Vec<(&str, &str)> = unit
            .dependencies
            .iter()
            .map(|d| (d.extern_crate_name.as_str(), self.planned(d.index).hash.as_str()))
            .collect();
        deps.sort();
        let id = Identity {
            name: &pkg.name,
            version: &pkg.version,
            source,
            target: &unit.target.name,
            kinds: &unit.target.kind,
            crate_types: &unit.target.crate_types,
            mode: unit.mode.as_str(),
            profile: format!("{:?}", unit.profile),
            features: &unit.features,
            platform: &unit.platform,
            toolchain: &self.tc.identity,
            deps,
        };
        let json = serde_json::to_vec(&id).expect("identity serializes");
        hex(&Sha256::digest(&json))[..16].to_owned()
    }

    fn package_env(pkg: &PackageInfo, src: &StorePath, tc: &Toolchain) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let version = &pkg.version;
        let (core, pre) = version.split_once('-').unwrap_or((version, ""));
        let mut nums = core.split('.');
        env.insert("CARGO".into(), tc.cargo.display().to_string());
        env.insert("CARGO_MANIFEST_DIR".into(), src.to_string());
        env.insert("CARGO_MANIFEST_PATH".into(), format!("{src}/Cargo.toml"));
        env.insert("CARGO_PKG_NAME".into(), pkg.name.clone());
        env.insert("CARGO_PKG_VERSION".into(), version.clone());
        env.insert("CARGO_PKG_VERSION_MAJOR".into(), nums.next().unwrap_or("0").into());
        env.insert("CARGO_PKG_VERSION_MINOR".into(), nums.next().unwrap_or("0").into());
        env.insert(
            "CARGO_PKG_VERSION_PATCH".into(),
            nums.next().unwrap_or("0").split('+').next().unwrap_or("0").into(),
        );
        env.insert("CARGO_PKG_VERSION_PRE".into(), pre.split('+').next().unwrap_or("").into());
        env.insert("CARGO_PKG_AUTHORS".into(), pkg.authors.clone());
        env.insert("CARGO_PKG_DESCRIPTION".into(), pkg.description.clone());
        env.insert("CARGO_PKG_HOMEPAGE".into(), pkg.homepage.clone());
        env.insert("CARGO_PKG_REPOSITORY".into(), pkg.repository.clone());
        env.insert("CARGO_PKG_LICENSE".into(), pkg.license.clone());
        env.insert("CARGO_PKG_LICENSE_FILE".into(), pkg.license_file.clone());
        env.insert("CARGO_PKG_RUST_VERSION".into(), pkg.rust_version.clone());
        env.insert("CARGO_PKG_README".into(), pkg.readme.clone());
        env
    }

    fn plan_unit(&mut self, i: usize) -> Result<PlannedUnit, Error> {
        let ws = self.ws;
        let unit = &ws.graph.units[i];
        let pkg = ws.package_of(i)?;
        if matches!(unit.mode, Mode::Doc | Mode::Doctest | Mode::Check { .. } | Mode::Other(_)) {
            return Err(Error::Unsupported(format!(
                "unit {} has mode `{}`, which cargo nix does not build",
                unit.describe(),
                unit.mode
            )));
        }
        let src = self.source(pkg)?;
        let hash = self.unit_hash(i, pkg);
        let label = match unit.source_kind() {
            SourceKind::Path(_) => format!("{} v{} ({})", pkg.name, pkg.version, pkg.manifest_dir.display()),
            _ => format!("{} v{}", pkg.name, pkg.version),
        };
        let mut env = Self::package_env(pkg, &src, self.tc);
        let mut drv = DerivationBuilder::new(
            sanitize(&format!("rust-{}-{}-{}-{}", pkg.name, pkg.version, unit.target.name, unit.mode)),
            self.builder.as_str(),
        );
        drv.arg("run").input_source(&self.builder).input_source(&src).env("toolchain", &self.tc.identity);
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

        let mut artifacts = Vec::new();
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
            let p = &unit.profile;
            env.insert("TARGET".into(), unit.platform.clone().unwrap_or_else(|| self.tc.host.clone()));
            env.insert("HOST".into(), self.tc.host.clone());
            env.insert("NUM_JOBS".into(), "1".into());
            env.insert("OPT_LEVEL".into(), p.opt_level.clone());
            env.insert("DEBUG".into(), p.debuginfo.is_some_and(|d| d.is_enabled()).to_string());
            env.insert(
                "PROFILE".into(),
                if p.name == "release" || p.name == "bench" { "release" } else { "debug" }.into(),
            );
            env.insert("RUSTC".into(), self.tc.rustc.display().to_string());
            env.insert("RUSTDOC".into(), self.tc.rustdoc.display().to_string());
            env.insert("CARGO_ENCODED_RUSTFLAGS".into(), String::new());
            if let Some(links) = &pkg.links {
                env.insert("CARGO_MANIFEST_LINKS".into(), links.clone());
            }
            for f in &unit.features {
                env.insert(format!("CARGO_FEATURE_{}", crate::build_script::envify(f)), "1".into());
            }
            env.extend(self.tc.cargo_cfg_env(p.debug_assertions));
            Action::RunBuildScript { program, dep_links }
        } else {
            self.rustc_action(i, pkg, &hash, consumer, &mut env, &mut artifacts)?
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
        if pipelined {
            env.insert("RUSTC_BOOTSTRAP".into(), "1".into());
        }

        let spec = UnitSpec {
            // No local path here: the same crate at two places is one derivation.
            label: format!("{} v{} ({} \"{}\")", pkg.name, pkg.version, unit.mode, unit.target.name),
            package: format!("{} v{}", pkg.name, pkg.version),
            cwd: src.to_string(),
            path: self.tc.path_env.clone(),
            env,
            action,
        };
        let json = serde_json::to_string(&spec).expect("spec serializes");
        drv.env(SPEC_ENV, json).env("passAsFile", SPEC_ENV);
        let (drv_path, out) = self.create(&drv, unit)?;
        let metadata = if pipelined {
            let mut spec = spec;
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
        })
    }

    fn rustc_action(
        &mut self,
        i: usize,
        pkg: &PackageInfo,
        hash: &str,
        consumer: bool,
        env: &mut BTreeMap<String, String>,
        artifacts: &mut Vec<Artifact>,
    ) -> Result<Action, Error> {
        let ws = self.ws;
        let unit = &ws.graph.units[i];
        let name = crate_name(unit);
        let rel_src = unit.target.src_path.strip_prefix(&pkg.manifest_dir).map_err(|_| {
            Error::Unsupported(format!(
                "{}: source {} is outside the package directory {}",
                unit.describe(),
                unit.target.src_path.display(),
                pkg.manifest_dir.display()
            ))
        })?;
        let is_test = unit.mode == Mode::Test;
        let mut args: Vec<String> = vec![
            "--crate-name".into(),
            name.clone(),
            format!("--edition={}", unit.target.edition),
            rel_src.display().to_string(),
            "--error-format=json".into(),
            "--json=diagnostic-rendered-ansi,artifacts,future-incompat".into(),
        ];
        let crate_types: Vec<String> = if is_test {
            args.push("--test".into());
            vec!["bin".into()]
        } else {
            unit.target.crate_types.clone()
        };
        if !is_test {
            for t in &crate_types {
                args.push(format!("--crate-type={t}"));
            }
        }
        let is_lib = unit.is_lib() && !is_test;
        args.push(if is_lib { "--emit=dep-info,metadata,link" } else { "--emit=dep-info,link" }.into());
        let links_output = !is_lib
            || crate_types.iter().any(|t| matches!(t.as_str(), "cdylib" | "dylib" | "proc-macro" | "staticlib"));

        let p = &unit.profile;
        if p.opt_level != "0" {
            args.push(format!("-Copt-level={}", p.opt_level));
        }
        if p.panic == "abort" && !is_test && !unit.is_proc_macro() {
            args.push("-Cpanic=abort".into());
        }
        match p.lto.as_str() {
            "false" | "" => args.push("-Cembed-bitcode=no".into()),
            "off" => args.push("-Clto=off".into()),
            "thin" if links_output => args.push("-Clto=thin".into()),
            "true" | "fat" if links_output => args.push("-Clto".into()),
            _ => {}
        }
        if let Some(cgu) = p.codegen_units {
            args.push(format!("-Ccodegen-units={cgu}"));
        }
        if let Some(d) = p.debuginfo.filter(|d| d.is_enabled()) {
            args.push(format!("-Cdebuginfo={}", d.rustc_value()));
        }
        if let Some(s) = &p.split_debuginfo {
            args.push(format!("-Csplit-debuginfo={s}"));
        }
        if p.opt_level == "0" {
            if !p.debug_assertions {
                args.push("-Cdebug-assertions=off".into());
            }
            if !p.overflow_checks {
                args.push("-Coverflow-checks=off".into());
            }
        } else {
            if p.debug_assertions {
                args.push("-Cdebug-assertions=on".into());
            }
            if p.overflow_checks {
                args.push("-Coverflow-checks=on".into());
            }
        }
        if p.strip != "none" && !p.strip.is_empty() {
            args.push(format!("-Cstrip={}", p.strip));
        }
        if p.rpath {
            args.push("-Crpath".into());
        }
        args.extend(p.rustflags.iter().cloned());
        for f in &unit.features {
            args.push("--cfg".into());
            args.push(format!("feature=\"{f}\""));
        }
        args.push("--check-cfg".into());
        args.push("cfg(docsrs,test)".into());
        let values: Vec<String> = pkg.features.iter().map(|f| format!("\"{f}\"")).collect();
        args.push("--check-cfg".into());
        args.push(format!("cfg(feature, values({}))", values.join(", ")));
        args.push("-C".into());
        args.push(format!("metadata={hash}"));
        args.push("-C".into());
        args.push(format!("extra-filename=-{hash}"));
        if !matches!(unit.source_kind(), SourceKind::Path(_)) {
            args.push("--cap-lints".into());
            args.push("allow".into());
        }

        // Dependencies: --extern for direct libraries, -L dependency= for all transitive ones.
        let mut transitive = BTreeSet::new();
        let mut build_script = None;
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
                if let Some(a) = dp.artifacts.iter().find(|a| a.file.ends_with(".rlib") || a.file.ends_with(".so")) {
                    let prefix = if d.noprelude { "noprelude:" } else { "" };
                    let path = match (self.lib_ref(consumer, d.index), a.file.strip_suffix(".rlib")) {
                        (NodeRef::Metadata(_), Some(stem)) => {
                            format!("{}/{stem}.rmeta", self.node(NodeRef::Metadata(d.index)).1)
                        }
                        _ => format!("{}/{}", dp.out, a.file),
                    };
                    args.push("--extern".into());
                    args.push(format!("{prefix}{}={path}", d.extern_crate_name));
                }
            } else if du.is_bin() && unit.mode == Mode::Test {
                if let Some(a) = dp.artifacts.first() {
                    env.insert(format!("CARGO_BIN_EXE_{}", du.target.name), format!("{}/{}", dp.out, a.file));
                }
            }
        }
        if unit.is_proc_macro() {
            args.push("--extern".into());
            args.push("proc_macro".into());
        }
        let mut dep_build_scripts = Vec::new();
        for &t in &transitive {
            args.push("-L".into());
            args.push(format!("dependency={}/lib", self.node(self.lib_ref(consumer, t)).1));
            for d in &ws.graph.units[t].dependencies {
                if ws.graph.units[d.index].is_build_script_run() {
                    dep_build_scripts.push(self.planned(d.index).out.to_string());
                }
            }
        }
        self.transitive_libs[i] = transitive;

        env.insert("CARGO_CRATE_NAME".into(), name.clone());
        if unit.is_bin() {
            env.insert("CARGO_BIN_NAME".into(), unit.target.name.clone());
        }
        if pkg.is_member {
            env.insert("CARGO_PRIMARY_PACKAGE".into(), "1".into());
        }

        // Artifacts.
        let out_subdir = if is_lib { "lib" } else { "bin" };
        if is_lib {
            for t in &crate_types {
                let file = match t.as_str() {
                    "lib" | "rlib" => format!("lib{name}-{hash}.rlib"),
                    "proc-macro" | "dylib" | "cdylib" => format!("lib{name}-{hash}.so"),
                    "staticlib" => format!("lib{name}-{hash}.a"),
                    _ => continue,
                };
                let kind = ArtifactKind::Lib;
                let install_as = match t.as_str() {
                    "lib" | "rlib" => format!("lib{name}.rlib"),
                    "staticlib" => format!("lib{name}.a"),
                    _ => format!("lib{name}.so"),
                };
                artifacts.push(Artifact { kind, file: format!("lib/{file}"), install_as });
            }
        } else {
            let file = format!("bin/{name}-{hash}");
            let (kind, install_as) = if unit.is_build_script_compile() {
                (ArtifactKind::Internal, String::new())
            } else if is_test {
                (ArtifactKind::Test, format!("deps/{name}-{hash}"))
            } else if unit.is_example() {
                (ArtifactKind::Example, format!("examples/{}", unit.target.name))
            } else if unit.is_bench() {
                (ArtifactKind::Bench, format!("deps/{name}-{hash}"))
            } else {
                (ArtifactKind::Bin, unit.target.name.clone())
            };
            artifacts.push(Artifact { kind, file, install_as });
        }

        let link = link_target(unit);
        Ok(Action::Rustc {
            rustc: self.tc.rustc.display().to_string(),
            args,
            out_subdir: out_subdir.into(),
            build_script,
            dep_build_scripts,
            link,
            metadata_only: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unit_graph::UnitGraph;

    #[test]
    fn link_targets_follow_cargo() {
        let unit = |kind: &str, crate_type: &str, name: &str, mode: &str| {
            format!(
                r#"{{"pkg_id": "path+file:///p#0.1.0", "mode": "{mode}",
                    "target": {{"kind": ["{kind}"], "crate_types": ["{crate_type}"],
                                "name": "{name}", "src_path": "/p/x.rs"}}}}"#
            )
        };
        let units = [
            unit("lib", "lib", "p", "build"),
            unit("bin", "bin", "tool", "build"),
            unit("test", "bin", "it", "test"),
            unit("example", "bin", "ex", "build"),
            unit("example", "rlib", "exlib", "build"),
            unit("bench", "bin", "b", "test"),
            unit("cdylib", "cdylib", "p", "build"),
            unit("cdylib", "cdylib", "p", "test"),
        ];
        let json = format!(r#"{{"version": 1, "units": [{}], "roots": []}}"#, units.join(","));
        let g = UnitGraph::parse(&json).unwrap();
        let t: Vec<LinkTarget> = g.units.iter().map(link_target).collect();
        assert_eq!(t[0], LinkTarget::default());
        assert_eq!(t[1].bin.as_deref(), Some("tool"));
        assert!(t[2].test && t[2].bin.is_none());
        assert!(t[3].example && !t[4].example);
        assert!(t[5].bench);
        assert!(t[6].cdylib && !t[7].cdylib);
    }

    #[test]
    fn only_libraries_that_libraries_depend_on_are_pipelined() {
        let unit = |kind: &str, crate_type: &str, mode: &str, deps: &[usize]| {
            let deps: Vec<String> =
                deps.iter().map(|d| format!(r#"{{"index": {d}, "extern_crate_name": "d{d}"}}"#)).collect();
            format!(
                r#"{{"pkg_id": "path+file:///p#0.1.0", "mode": "{mode}", "dependencies": [{}],
                    "target": {{"kind": ["{kind}"], "crate_types": ["{crate_type}"],
                                "name": "n", "src_path": "/p/x.rs"}}}}"#,
                deps.join(",")
            )
        };
        let units = [
            unit("lib", "lib", "build", &[]),               // 0: a library's dependency
            unit("lib", "lib", "build", &[0, 2]),           // 1: depends on 0 and on the macro
            unit("proc-macro", "proc-macro", "build", &[]), // 2: never (dependents need the .so)
            unit("lib", "lib", "build", &[]),               // 3: only a binary depends on it
            unit("bin", "bin", "build", &[1, 3]),           // 4
            unit("lib", "lib", "test", &[0]),               // 5: a test links
            unit("lib", "cdylib", "build", &[3]),           // 6: links, so reads rlibs
        ];
        let json = format!(r#"{{"version": 1, "units": [{}], "roots": [4]}}"#, units.join(","));
        let g = UnitGraph::parse(&json).unwrap();
        assert_eq!(pipelined_units(&g), [true, false, false, false, false, false, false]);
        assert!(compiles_against_metadata(&g.units[1]));
        assert!(!compiles_against_metadata(&g.units[5]) && !compiles_against_metadata(&g.units[6]));
    }
}
