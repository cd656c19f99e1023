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
}
