//! The adapter from cargo's `BuildContext` to cargo-backend's neutral description
//! ([`cargo_backend::Workspace`]), and the in-process planning that makes that context with
//! cargo's own library (no child cargo, no `--unit-graph`, no `RUSTC_BOOTSTRAP`).
//!
//! [`describe`] is what a patched cargo calls with the `BuildContext` it already has;
//! [`plan`] is what `cargo nix` calls: it loads the workspace the way `cargo build`, `cargo
//! test` and `cargo check` do (`GlobalContext`, `Workspace`, `CompileOptions`,
//! `ops::create_bcx`) and hands the context to [`describe`].
//!
//! Units are numbered as cargo numbers them in `--unit-graph` output (sorted), so both
//! adapters give the same indices. Per unit the adapter takes what cargo resolved: profile and
//! target as cargo serializes them, features, `Unit::rustflags` (every rustflags source),
//! `Target::harness`, the platform (an explicit `--target` only; host units have none), and the
//! linker cargo would pass (`[target.<triple>] linker`, else a matching `[target.<cfg>]
//! linker`, resolved as cargo resolves programs). Per package: `links`, the `CARGO_PKG_*`
//! metadata, declared features, the `[lints]` flags (`Manifest::lint_rustflags`), whether it is
//! a member and a primary package (a root unit's package). For the workspace: root, target dir,
//! the requested profile, and config `[env]` (`GlobalContext::env_config`, with `relative` and
//! `force` applied).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context, Result};
use cargo::GlobalContext;
use cargo::core::compiler::{BuildContext, CompileKind, CompileMode, UnitInterner, UserIntent};
use cargo::core::resolver::CliFeatures;
use cargo::ops::{CompileFilter, CompileOptions, Packages};
use cargo::util::context::{TargetCfgConfig, Value};
use cargo::util::interning::InternedString;
use cargo_backend::units::{self, EnvVar, Mode, PackageInfo, UnitDep, UnitGraph};
use cargo_backend::{CargoArgs, CargoCommand};

/// The `GlobalContext` for `args`, configured as cargo's command line would
/// (`--locked`, `--offline`, `--frozen`, `--target-dir`), quiet: `cargo nix` prints its own
/// status lines.
pub fn global_context(args: &CargoArgs) -> Result<GlobalContext> {
    let mut gctx = GlobalContext::default()?;
    gctx.configure(0, false, None, args.frozen, args.locked, args.offline, &args.target_dir, &[], &[])?;
    Ok(gctx)
}

/// cargo's `CompileOptions` for `command` with `args`, built as `cargo build/test/check`
/// build them from the same flags.
pub fn compile_options(gctx: &GlobalContext, command: CargoCommand, args: &CargoArgs) -> Result<CompileOptions> {
    let intent = match command {
        CargoCommand::Build => UserIntent::Build,
        CargoCommand::Test => UserIntent::Test,
        CargoCommand::Check => UserIntent::Check { test: false },
    };
    let mut opts = CompileOptions::new(gctx, intent)?;
    opts.build_config.requested_kinds = CompileKind::from_requested_targets(gctx, &args.targets)?;
    let default_profile = if command == CargoCommand::Test { "test" } else { "dev" };
    let profile = match (&args.profile, args.release) {
        (Some(p), _) if p == "doc" => {
            anyhow::bail!("profile `doc` is reserved and not allowed to be explicitly specified")
        }
        (Some(p), _) => p.as_str(),
        (None, true) => "release",
        (None, false) => default_profile,
    };
    opts.build_config.requested_profile = InternedString::new(profile);
    opts.spec = Packages::from_flags(args.workspace, args.exclude.clone(), args.packages.clone())?;
    opts.cli_features = CliFeatures::from_command_line(&args.features, args.all_features, !args.no_default_features)?;
    let s = &args.select;
    opts.filter = CompileFilter::from_raw_arguments(
        s.lib,
        s.bins.clone(),
        s.all_bins,
        s.tests.clone(),
        s.all_tests,
        s.examples.clone(),
        s.all_examples,
        s.benches.clone(),
        s.all_benches,
        s.all_targets,
    );
    if command == CargoCommand::Test && s.doc {
        if opts.filter.is_specific() {
            anyhow::bail!("can't mix --doc with other target selecting options");
        }
        opts.build_config.intent = UserIntent::Doctest;
        opts.filter = CompileFilter::lib_only();
    } else if command == CargoCommand::Test && s.test_targets_only && !opts.filter.is_specific() {
        opts.filter = CompileFilter::all_test_targets();
    }
    Ok(opts)
}

/// The manifest cargo reads for `args` (absolute).
pub fn manifest_path(gctx: &GlobalContext, args: &CargoArgs) -> Result<PathBuf> {
    match &args.manifest_path {
        Some(m) => Ok(gctx.cwd().join(m)),
        None => cargo::util::important_paths::find_root_manifest_for_wd(gctx.cwd()),
    }
}

/// Plans `command` with `args` in-process: cargo's own workspace loading, resolution and unit
/// generation, then [`describe`]. Errors are cargo's own (a manifest cargo rejects, an unknown
/// profile, a `--target` without its standard library, a stale lock file with `--locked`).
pub fn plan(command: CargoCommand, args: &CargoArgs) -> Result<cargo_backend::Workspace> {
    plan_in(&global_context(args)?, command, args)
}

/// [`plan`] with a `GlobalContext` of the caller's (its cwd, environment and `--config`
/// values).
pub fn plan_in(gctx: &GlobalContext, command: CargoCommand, args: &CargoArgs) -> Result<cargo_backend::Workspace> {
    let manifest = manifest_path(gctx, args)?;
    let ws = cargo::core::Workspace::new(&manifest, gctx)?;
    let mut opts = compile_options(gctx, command, args)?;
    if args.select.default_run && !opts.filter.is_specific() {
        // As `cargo run` (its command's `exec`): the one `default-run` of the selected
        // packages, when there is exactly one.
        let packages = opts.spec.get_packages(&ws)?;
        if let [bin] = packages.iter().filter_map(|p| p.manifest().default_run()).collect::<Vec<_>>()[..] {
            opts.filter = CompileFilter::single_bin(bin.to_string());
        }
    }
    if args.select.default_run {
        check_one_executable(&ws, &opts)?;
    }
    let interner = UnitInterner::new();
    let bcx = cargo::ops::create_bcx(&ws, &opts, &interner, None)?;
    describe(&bcx)
}

/// `cargo run`'s checks before it compiles anything (its `ops::run`): exactly one executable
/// among the selected packages' targets, with cargo's errors otherwise.
fn check_one_executable(ws: &cargo::core::Workspace<'_>, opts: &CompileOptions) -> Result<()> {
    let specific = opts.filter.is_specific();
    let packages = opts.spec.get_packages(ws)?;
    let bins: Vec<_> = packages
        .iter()
        .flat_map(|pkg| {
            pkg.manifest()
                .targets()
                .iter()
                .filter(|t| {
                    !t.is_lib() && !t.is_custom_build() && if specific { opts.filter.target_run(t) } else { t.is_bin() }
                })
                .map(move |t| (pkg, t))
        })
        .collect();
    match bins.as_slice() {
        [] if !specific => anyhow::bail!("a bin target must be available for `cargo run`"),
        [(_, t)] if matches!(t.kind(), cargo::core::TargetKind::ExampleLib(..)) => {
            anyhow::bail!("example target `{}` is a library and cannot be executed", t.name())
        }
        [_, _, ..] if !specific => {
            let mut names: Vec<&str> = bins.iter().map(|(_, t)| t.name()).collect();
            names.sort();
            anyhow::bail!(
                "`cargo run` could not determine which binary to run. Use the `--bin` option to specify a \
                 binary, or the `default-run` manifest key.\navailable binaries: {}",
                names.join(", ")
            )
        }
        [_, _, ..] => {
            let mut message =
                "`cargo run` can run at most one executable, but multiple were specified\nhelp: available targets:"
                    .to_owned();
            for (pkg, t) in &bins {
                message.push_str(&format!(
                    "\n    {} `{}` in package `{}`",
                    t.kind().description(),
                    t.name(),
                    pkg.name()
                ));
            }
            anyhow::bail!(message)
        }
        _ => Ok(()),
    }
}

fn mode(m: CompileMode) -> Mode {
    match m {
        CompileMode::Test => Mode::Test,
        CompileMode::Build => Mode::Build,
        CompileMode::Check { test } => Mode::Check { test },
        CompileMode::Doc => Mode::Doc,
        CompileMode::Doctest => Mode::Doctest,
        CompileMode::Docscrape => Mode::Other("docscrape".into()),
        CompileMode::RunCustomBuild => Mode::RunCustomBuild,
    }
}

/// A setting of the target of `kind`, as cargo's private `target_linker`/`target_runner`
/// look it up: `own` (`[target.<triple>]`), else the one `[target.'cfg(..)']` table matching
/// the target that sets it (`of_cfg`); two matching tables are cargo's error, naming `what`.
fn target_setting<'b, T>(
    bcx: &'b BuildContext<'_, '_>,
    kind: CompileKind,
    what: &str,
    own: Option<&'b Value<T>>,
    of_cfg: impl Fn(&'b TargetCfgConfig) -> Option<&'b Value<T>>,
) -> Result<Option<&'b T>> {
    if let Some(v) = own {
        return Ok(Some(&v.val));
    }
    let target_cfg = bcx.target_data.info(kind).cfg();
    let mut matching = bcx
        .gctx
        .target_cfgs()?
        .iter()
        .filter_map(|(key, cfg)| of_cfg(cfg).map(|v| (key, v)))
        .filter(|(key, _)| cargo_platform::CfgExpr::matches_key(key, target_cfg));
    let first = matching.next();
    if let (Some((k1, v1)), Some((k2, v2))) = (first, matching.next()) {
        anyhow::bail!(
            "several matching instances of `target.'cfg(..)'.{what}` in configurations\n\
             first match `{k1}` located in {}\nsecond match `{k2}` located in {}",
            v1.definition,
            v2.definition
        );
    }
    Ok(first.map(|(_, v)| &v.val))
}

/// The linker cargo passes for units of `kind` (cargo's private `target_linker`).
fn linker(bcx: &BuildContext<'_, '_>, kind: CompileKind) -> Result<Option<String>> {
    let own = bcx.target_data.target_config(kind).linker.as_ref();
    let linker = target_setting(bcx, kind, "linker", own, |c| c.linker.as_ref())?;
    Ok(linker.map(|l| l.clone().resolve_program(bcx.gctx).display().to_string()))
}

/// The runner cargo runs executables of `kind` through (cargo's private `target_runner`):
/// the program, resolved as cargo resolves programs, then its arguments.
fn runner(bcx: &BuildContext<'_, '_>, kind: CompileKind) -> Result<Option<Vec<String>>> {
    let own = bcx.target_data.target_config(kind).runner.as_ref();
    let runner = target_setting(bcx, kind, "runner", own, |c| c.runner.as_ref())?;
    Ok(runner.map(|r| {
        let mut v = vec![r.path.clone().resolve_program(bcx.gctx).display().to_string()];
        v.extend(r.args.iter().cloned());
        v
    }))
}

/// The neutral description of what `bcx` would build. Doc and doctest units are dropped
/// (`cargo nix` does not run rustdoc; the count is kept).
pub fn describe(bcx: &BuildContext<'_, '_>) -> Result<cargo_backend::Workspace> {
    let mut sorted: Vec<_> = bcx.unit_graph.iter().collect();
    sorted.sort_unstable();
    let index: HashMap<&cargo::core::compiler::Unit, usize> =
        sorted.iter().enumerate().map(|(i, (u, _))| (*u, i)).collect();
    let primary: HashSet<_> = bcx.roots.iter().map(|u| u.pkg.package_id()).collect();
    let mut linkers: HashMap<CompileKind, Option<String>> = HashMap::new();
    let mut runners: HashMap<CompileKind, Option<Vec<String>>> = HashMap::new();
    let mut packages: HashMap<String, PackageInfo> = HashMap::new();
    let mut out = Vec::with_capacity(sorted.len());
    for (unit, deps) in &sorted {
        let pkg_id = unit.pkg.package_id().to_spec().to_string();
        packages
            .entry(pkg_id.clone())
            .or_insert_with(|| package_info(bcx, &unit.pkg, primary.contains(&unit.pkg.package_id())));
        let linker = match linkers.get(&unit.kind) {
            Some(l) => l.clone(),
            None => {
                let l = linker(bcx, unit.kind)?;
                linkers.insert(unit.kind, l.clone());
                l
            }
        };
        let runner = match runners.get(&unit.kind) {
            Some(r) => r.clone(),
            None => {
                let r = runner(bcx, unit.kind)?;
                runners.insert(unit.kind, r.clone());
                r
            }
        };
        let mut target: units::Target = serde_json::from_value(serde_json::to_value(&unit.target)?)
            .with_context(|| format!("reading cargo's target {}", unit.target.name()))?;
        target.harness = unit.target.harness();
        let mut profile: units::Profile = serde_json::from_value(serde_json::to_value(&unit.profile)?)
            .with_context(|| format!("reading cargo's profile {}", unit.profile.name))?;
        profile.root = match unit.profile.root {
            cargo::core::profiles::ProfileRoot::Release => "release".into(),
            cargo::core::profiles::ProfileRoot::Debug => "debug".into(),
        };
        out.push(units::Unit {
            pkg_id,
            target,
            profile,
            platform: match unit.kind {
                CompileKind::Host => None,
                CompileKind::Target(t) => Some(t.short_name().to_owned()),
            },
            mode: mode(unit.mode),
            features: unit.features.iter().map(|f| f.to_string()).collect(),
            is_std: unit.is_std,
            dependencies: deps
                .iter()
                .map(|d| UnitDep {
                    index: index[&d.unit],
                    extern_crate_name: d.extern_crate_name.to_string(),
                    public: d.public,
                    noprelude: d.noprelude,
                    nounused: false,
                })
                .collect(),
            rustflags: unit.rustflags.to_vec(),
            linker,
            rustdocflags: unit.rustdocflags.to_vec(),
            runner,
        });
    }
    let roots = bcx.roots.iter().map(|r| index[r]).collect();
    let graph = UnitGraph { version: units::SUPPORTED_VERSION, units: out, roots };
    let (graph, skipped_doctests, doctests) = units::from_unit_graph::without_doc_units(graph);
    let mut env_config: Vec<EnvVar> = bcx
        .gctx
        .env_config()?
        .iter()
        .map(|(k, v)| EnvVar { key: k.clone(), value: v.to_string_lossy().into_owned() })
        .collect();
    env_config.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(cargo_backend::Workspace {
        graph,
        packages,
        root: bcx.ws.root().to_path_buf(),
        target_dir: bcx.ws.target_dir().into_path_unlocked(),
        skipped_doctests,
        doctests,
        env_config,
        profile: bcx.build_config.requested_profile.to_string(),
        dep_info_basedir: bcx.gctx.build_config()?.dep_info_basedir.as_ref().map(|v| v.resolve_path(bcx.gctx)),
    })
}

fn package_info(bcx: &BuildContext<'_, '_>, pkg: &cargo::core::Package, is_primary: bool) -> PackageInfo {
    let m = pkg.manifest().metadata();
    let source = pkg.package_id().source_id();
    PackageInfo {
        name: pkg.name().to_string(),
        version: pkg.version().to_string(),
        manifest_dir: pkg.root().to_path_buf(),
        links: pkg.manifest().links().map(str::to_owned),
        authors: m.authors.join(":"),
        description: m.description.clone().unwrap_or_default(),
        homepage: m.homepage.clone().unwrap_or_default(),
        repository: m.repository.clone().unwrap_or_default(),
        license: m.license.clone().unwrap_or_default(),
        license_file: m.license_file.clone().unwrap_or_default(),
        rust_version: m.rust_version.as_ref().map(|v| v.to_string()).unwrap_or_default(),
        readme: m.readme.clone().unwrap_or_default(),
        features: pkg.summary().features().keys().map(|f| f.to_string()).collect(),
        is_member: bcx.ws.is_member(pkg),
        is_primary,
        lint_rustflags: pkg.manifest().lint_rustflags().to_vec(),
        source: if source.is_path() {
            "path".into()
        } else if source.is_registry() {
            "registry".into()
        } else if source.is_git() {
            "git".into()
        } else {
            "other".into()
        },
    }
}
