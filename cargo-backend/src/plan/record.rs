//! The plan stage's cached record: package sources by fingerprint, derivations by the hash of
//! their description, and the whole plan with the key it was made under.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Artifact, NodeRef};

/// What the plan stage keeps between runs (see [`crate::cache`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// Package directory → (fingerprint, store path).
    pub(super) sources: BTreeMap<PathBuf, (String, String)>,
    /// Derivations by the hash of their description → (drv, out).
    pub(super) derivations: BTreeMap<String, (String, String)>,
    /// Key of the cached plan.
    pub(super) plan_key: String,
    /// The part of `plan_key` known before any source is added (everything but the sources'
    /// store paths): when it differs, the plan cannot be reused, and nothing is added ahead of
    /// the units that need it.
    #[serde(default)]
    pub(super) plan_prefix: String,
    /// The plan, per unit.
    pub(super) plan: Vec<CachedUnit>,
    /// Units that ran and may be reused without their derivation being made again (build
    /// scripts, units built in the workspace copy), by unit hash: what each read and under
    /// which identity it ran (see [`super::reuse`]).
    #[serde(default)]
    pub(super) runs: BTreeMap<String, LastRun>,
}

/// A unit as it last ran (see [`super::reuse`]).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastRun {
    /// The variables it declared with `rerun-if-env-changed` (build scripts).
    #[serde(default)]
    pub declared: BTreeSet<String>,
    /// The files of the workspace outside its package it read (workspace-relative).
    #[serde(default)]
    pub outside: BTreeSet<String>,
    /// Its identity then ([`super::reuse::narrow`]); empty when it must run again.
    pub narrow: String,
    /// Its derivation.
    pub drv: String,
    /// Its output.
    pub out: String,
    /// Its metadata derivation and output (pipelined libraries).
    #[serde(default)]
    pub metadata: Option<(String, String)>,
}

/// What a unit's reuse is decided on, besides its derivation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReuseInfo {
    /// Its identity without the user's environment and the workspace copy.
    pub base: String,
    /// For a unit built in the workspace copy: where it reads.
    pub tree: Option<TreeReads>,
}

/// Where a unit built in the workspace copy reads.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TreeReads {
    /// The workspace copy (a store path).
    pub tree: String,
    /// The package's directory in it.
    pub pkg: PathBuf,
    /// The directories of packages nested in the package's.
    pub nested: Vec<PathBuf>,
    /// For a rustc unit: the output's subdirectory holding its dep-info.
    pub dep_info_dir: Option<String>,
}

/// A planned unit, as cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CachedUnit {
    /// Derivation path.
    pub drv: String,
    /// Output path.
    pub out: String,
    /// `-C metadata` hash.
    pub hash: String,
    /// Label.
    pub label: String,
    /// Artifacts.
    pub artifacts: Vec<Artifact>,
    /// Metadata derivation and output (pipelined libraries).
    pub metadata: Option<(String, String)>,
    /// The nodes the unit reads.
    pub inputs: Vec<NodeRef>,
    /// What its reuse is decided on ([`super::reuse`]).
    #[serde(default)]
    pub reuse: Option<ReuseInfo>,
}

impl From<&super::PlannedUnit> for CachedUnit {
    fn from(u: &super::PlannedUnit) -> Self {
        CachedUnit {
            drv: u.drv.to_string(),
            out: u.out.to_string(),
            hash: u.hash.clone(),
            label: u.label.clone(),
            artifacts: u.artifacts.clone(),
            metadata: u.metadata.as_ref().map(|(d, o)| (d.to_string(), o.to_string())),
            inputs: u.inputs.clone(),
            reuse: u.reuse.clone(),
        }
    }
}
