//! The fallback adapter: the neutral description from `cargo build --unit-graph` (which needs
//! `RUSTC_BOOTSTRAP=1`) and `cargo metadata`, both run as child processes, or from a unit-graph
//! file (`cargo nix build --unit-graph FILE`, tests, a patched cargo without the in-process
//! adapter). What that JSON leaves out (rustflags, lints, config `[env]`, linker, `harness`)
//! keeps its default.

use std::collections::BTreeSet;
use std::process::Command;

use super::{PackageInfo, UnitGraph, Workspace};
use crate::Error;
use crate::workspace::{CargoArgs, CargoCommand};

/// Drops `doc` and `doctest` units (roots that nothing depends on), renumbering the rest; returns
/// the graph, how many were dropped, and the doctest units taken out, their dependencies
/// renumbered into the new graph (the test runner runs them with rustdoc after the build).
pub fn without_doc_units(graph: UnitGraph) -> (UnitGraph, usize, Vec<super::Unit>) {
    use super::Mode;
    let keep: Vec<bool> = graph.units.iter().map(|u| !matches!(u.mode, Mode::Doc | Mode::Doctest)).collect();
    let dropped = keep.iter().filter(|k| !**k).count();
    if dropped == 0 {
        return (graph, 0, Vec::new());
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
    let doctests = units
        .iter()
        .filter(|u| u.mode == Mode::Doctest)
        .map(|u| {
            let mut u = u.clone();
            u.dependencies.retain(|d| keep[d.index]);
            for d in &mut u.dependencies {
                d.index = new_index[d.index];
            }
            u
        })
        .collect();
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
    (UnitGraph { version, units, roots }, dropped, doctests)
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

/// Runs `cargo <command> --unit-graph` and `cargo metadata` for `args` (or reads
/// `args.unit_graph_file`) and makes the neutral description from them.
pub fn load(command: CargoCommand, args: &CargoArgs) -> Result<Workspace, Error> {
    let mut cmd = cargo();
    cmd.arg(command.as_str()).args(["--unit-graph", "-Z", "unstable-options"]).env("RUSTC_BOOTSTRAP", "1");
    cmd.args(args.to_cli());
    if let Some(m) = &args.manifest_path {
        cmd.arg("--manifest-path").arg(m);
    }
    let graph_json = match &args.unit_graph_file {
        Some(f) => {
            std::fs::read_to_string(f).map_err(|e| Error::Io(format!("reading the unit graph {}", f.display()), e))?
        }
        None => run(cmd, "`cargo --unit-graph`")?,
    };
    let graph = UnitGraph::parse(&graph_json).map_err(|e| match &args.unit_graph_file {
        Some(f) => Error::Cargo(format!("invalid unit graph {}: {e}", f.display())),
        None => Error::UnitGraph(e),
    })?;
    let (graph, skipped_doctests, doctests) = without_doc_units(graph);

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
    for (flag, on) in [("--locked", args.locked), ("--offline", args.offline), ("--frozen", args.frozen)] {
        if on {
            other.push(flag.to_owned());
        }
    }
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
                // The JSON does not say which packages were selected: members stand in.
                is_primary: members.contains(&p.id.repr),
                lint_rustflags: Vec::new(),
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
    let target_dir = args.target_dir.clone().unwrap_or_else(|| metadata.target_directory.as_std_path().to_path_buf());
    let ws = Workspace {
        graph,
        packages,
        root: metadata.workspace_root.as_std_path().to_path_buf(),
        target_dir,
        skipped_doctests,
        doctests,
        env_config: Vec::new(),
        profile: args.profile_name().to_owned(),
        dep_info_basedir: None,
    };
    Ok(ws)
}
