//! The plan stage's cached record: package sources by fingerprint, derivations by the hash of
//! their description, and the whole plan with the key it was made under.

use std::collections::BTreeMap;
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
    /// The plan, per unit.
    pub(super) plan: Vec<CachedUnit>,
    /// Build-script runs that have run, by unit hash: what each declared and under which
    /// identity it ran (see [`super::script_env`]).
    #[serde(default)]
    pub(super) scripts: BTreeMap<String, ScriptRun>,
}

/// A build-script run as it last ran.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ScriptRun {
    /// The variables it declared with `rerun-if-env-changed`.
    pub declared: std::collections::BTreeSet<String>,
    /// Its identity then ([`super::script_env::narrow_key`]).
    pub narrow: String,
    /// Its derivation and output.
    pub drv: String,
    /// Its output.
    pub out: String,
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
    /// For a build-script run: its identity without the user's environment.
    #[serde(default)]
    pub script_base: Option<String>,
}
