//! The workspace-level part of the neutral description: package facts, and what holds for
//! every unit (workspace root, target directory, config `[env]`).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::UnitGraph;
use crate::Error;

/// What the unit graph does not say about a package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Whether it was selected on the command line (cargo's primary packages: their rustc
    /// runs see `CARGO_PRIMARY_PACKAGE=1`).
    #[serde(default)]
    pub is_primary: bool,
    /// The rustc flags cargo derives from the package's `[lints]` table (its own or the
    /// workspace's): `--warn`/`--allow`/`--deny`/`--forbid`/`--check-cfg`, in cargo's order.
    #[serde(default)]
    pub lint_rustflags: Vec<String>,
    /// Where it comes from: `path`, `registry`, `git`, or another source kind.
    pub source: String,
}

impl PackageInfo {
    /// Registry and git packages: cargo unpacks them once and never changes them.
    pub fn is_immutable_source(&self) -> bool {
        !self.is_member && (self.source == "registry" || self.source == "git")
    }
}

/// A workspace as cargo sees it for one command: the neutral description [`crate::build`]
/// takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workspace {
    /// The unit graph.
    pub graph: UnitGraph,
    /// Package facts by package id (as in the unit graph's `pkg_id`). Serialized in key order,
    /// so that an unchanged workspace serializes to the same bytes (the plan cache is not
    /// rewritten on a no-op build).
    #[serde(serialize_with = "sorted_map")]
    pub packages: HashMap<String, PackageInfo>,
    /// The workspace root.
    pub root: PathBuf,
    /// The target directory (`--target-dir` or cargo's).
    pub target_dir: PathBuf,
    /// Doctest and doc units dropped from the graph (they are not built: rustdoc runs at test
    /// time).
    pub skipped_doctests: usize,
    /// The doctest units taken out of the graph, their dependencies indexing into it: `cargo
    /// nix test` runs them with rustdoc once the graph is built ([`crate::run::doctest`]).
    #[serde(default)]
    pub doctests: Vec<super::Unit>,
    /// Config `[env]`, as cargo resolved it: set for every rustc and build-script run unless
    /// cargo sets the variable itself.
    pub env_config: Vec<EnvVar>,
    /// The requested profile's name (`dev`, `release`, or a custom one).
    pub profile: String,
    /// cargo's `build.dep-info-basedir`, resolved: the dep-info files beside the artifacts
    /// name paths under it relative to it ([`crate::depinfo`]).
    #[serde(default)]
    pub dep_info_basedir: Option<PathBuf>,
}

/// One variable of cargo's config `[env]` table, as cargo resolved it: `relative = true` paths
/// made absolute against the config file's directory; entries without `force` that the
/// environment already sets are left out (cargo never overrides them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// The variable.
    pub key: String,
    /// Its value.
    pub value: String,
}

impl Workspace {
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

impl Workspace {
    /// Where the root units' artifacts go, as cargo lays them out: `target/<profile>/`, or
    /// `target/<triple>/<profile>/` with an explicit `--target` (`dev` and `test` are `debug`,
    /// `bench` is `release`).
    pub fn profile_dir(&self) -> PathBuf {
        let platform = self.graph.roots.iter().find_map(|&r| self.graph.units[r].platform.as_deref());
        let base = match platform {
            Some(triple) => self.target_dir.join(triple),
            None => self.target_dir.clone(),
        };
        base.join(crate::install::profile_dir(&self.profile))
    }
}

/// Serializes a map in key order.
fn sorted_map<S: serde::Serializer, V: Serialize>(map: &HashMap<String, V>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(map.iter().collect::<std::collections::BTreeMap<_, _>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Wrapped(#[serde(serialize_with = "sorted_map")] HashMap<String, u32>);

    #[test]
    fn package_maps_serialize_in_key_order() {
        let names: Vec<String> = (0..64).map(|i| format!("pkg-{i:02}")).collect();
        let forward: HashMap<String, u32> = names.iter().cloned().zip(0..).collect();
        let mut backward = HashMap::with_capacity(1024);
        for (i, n) in names.iter().enumerate().rev() {
            backward.insert(n.clone(), i as u32);
        }
        let a = serde_json::to_string(&Wrapped(forward)).unwrap();
        let b = serde_json::to_string(&Wrapped(backward)).unwrap();
        assert_eq!(a, b);
        assert!(a.starts_with(r#"{"pkg-00":0,"pkg-01":1,"#), "{a}");
    }
}
