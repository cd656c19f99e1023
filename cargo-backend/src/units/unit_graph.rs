//! Reading cargo's unit graph as printed by `cargo build --unit-graph -Z unstable-options`
//! (version 1) into the neutral [`UnitGraph`]: the fallback adapter (see
//! [`crate::units`]).
//!
//! # Design
//!
//! * **Lenient reading, strict checking.** The format is unstable and cargo adds fields from time
//!   to time, so unknown fields are ignored and optional fields default. Fields whose JSON shape
//!   changed between cargo versions (`lto`, `debuginfo`, `strip`, `opt_level`) go through small
//!   deserializers that normalise them to the value rustc expects on its command line. The graph
//!   structure, on the other hand, is checked in full by [`UnitGraph::parse`]: version, index
//!   ranges and acyclicity. Code downstream may therefore index `units` without checking.
//! * **Two passes over the JSON.** The first pass reads only `version` (skipping everything else),
//!   so a future version 2 with a different shape reports [`UnitGraphError::UnsupportedVersion`]
//!   instead of a confusing schema error. Both passes are linear in the size of the input.
//! * **Package ids as text.** `pkg_id` is kept verbatim (it identifies the package) and parsed on
//!   demand by [`PackageIdParts::parse`](super::PackageIdParts::parse), which understands both the package-id-spec form printed
//!   by current cargo (`registry+https://…#serde@1.0.219`, `path+file:///…/foo#0.1.0`) and the
//!   older `name version (source)` form.
//! * **`check --tests`.** Cargo prints both `Check { test: false }` and `Check { test: true }` as
//!   `"check"`. It sorts units before printing, and the non-test variant sorts first, so when two
//!   `check` units agree on everything cargo prints except their dependencies (the test variant also
//!   sees dev-dependencies), the later one is taken to be the `--test` variant. This is a heuristic;
//!   a lone `check` unit is always read as `Check { test: false }`.
//! * **Iterative graph walks.** Cycle detection and topological ordering use an explicit stack,
//!   so a deep graph cannot overflow the thread's stack.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{DebugInfo, Mode, Profile, Target, UnitGraph};

/// The only unit-graph format version this module understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// Why a unit graph could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnitGraphError {
    /// The input is not valid JSON, or it ends early (`truncated`).
    #[error(
        "{} at line {line}, column {column}: {message}",
        if *truncated { "unit graph JSON is truncated" } else { "unit graph JSON has a syntax error" }
    )]
    Syntax {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description of the problem, without the position.
        message: String,
        /// Whether the input ended in the middle of a value.
        truncated: bool,
    },
    /// The input is valid JSON, but not shaped like a unit graph (a missing or mistyped field).
    #[error("unit graph JSON does not match cargo's format at line {line}, column {column}: {message}")]
    Schema {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description of the problem, without the position.
        message: String,
    },
    /// The graph declares a format version other than [`SUPPORTED_VERSION`].
    #[error(
        "unsupported unit graph version {0} (only version {SUPPORTED_VERSION} is understood); \
         use a cargo whose `--unit-graph` output is version {SUPPORTED_VERSION}"
    )]
    UnsupportedVersion(u32),
    /// A unit lists a dependency index past the end of `units`.
    #[error("unit {unit} ({pkg_id}) depends on unit {index}, but the graph has only {len} units")]
    DependencyOutOfRange {
        /// Index of the unit with the bad dependency.
        unit: usize,
        /// `pkg_id` of that unit.
        pkg_id: String,
        /// The dependency index found.
        index: usize,
        /// Number of units in the graph.
        len: usize,
    },
    /// `roots` names an index past the end of `units`.
    #[error("root {index} is out of range: the graph has only {len} units")]
    RootOutOfRange {
        /// The root index found.
        index: usize,
        /// Number of units in the graph.
        len: usize,
    },
    /// A unit lists itself as a dependency.
    #[error("unit {unit} ({pkg_id}) depends on itself")]
    SelfDependency {
        /// Index of the unit.
        unit: usize,
        /// `pkg_id` of that unit.
        pkg_id: String,
    },
    /// The dependencies form a cycle. `units` lists the units on it, each as
    /// `target-name [mode] (pkg_id)`: each depends on the next, and the last on the first.
    #[error(
        "dependency cycle in unit graph: {} -> {}",
        units.join(" -> "),
        units.first().map_or("", String::as_str)
    )]
    Cycle {
        /// The units on the cycle.
        units: Vec<String>,
    },
}

#[derive(Deserialize)]
struct Header {
    version: u32,
}

impl UnitGraph {
    /// Parses and validates `cargo --unit-graph` output.
    ///
    /// Checks, in order: JSON syntax, the version (must be [`SUPPORTED_VERSION`]), the shape of
    /// the document, every dependency and root index, self-dependencies and cycles.
    ///
    /// # Errors
    ///
    /// The first problem found, as a [`UnitGraphError`].
    pub fn parse(json: &str) -> Result<UnitGraph, UnitGraphError> {
        let header: Header = serde_json::from_str(json).map_err(json_error)?;
        if header.version != SUPPORTED_VERSION {
            return Err(UnitGraphError::UnsupportedVersion(header.version));
        }
        let mut graph: UnitGraph = serde_json::from_str(json).map_err(json_error)?;
        graph.validate()?;
        graph.infer_check_tests();
        Ok(graph)
    }

    /// Checks indices and acyclicity.
    fn validate(&self) -> Result<(), UnitGraphError> {
        let len = self.units.len();
        for (i, unit) in self.units.iter().enumerate() {
            for dep in &unit.dependencies {
                if dep.index >= len {
                    return Err(UnitGraphError::DependencyOutOfRange {
                        unit: i,
                        pkg_id: unit.pkg_id.clone(),
                        index: dep.index,
                        len,
                    });
                }
                if dep.index == i {
                    return Err(UnitGraphError::SelfDependency { unit: i, pkg_id: unit.pkg_id.clone() });
                }
            }
        }
        if let Some(&index) = self.roots.iter().find(|&&r| r >= len) {
            return Err(UnitGraphError::RootOutOfRange { index, len });
        }
        match self.walk() {
            Ok(_) => Ok(()),
            Err(cycle) => {
                Err(UnitGraphError::Cycle { units: cycle.iter().map(|&i| self.units[i].describe()).collect() })
            }
        }
    }

    /// Marks the second of two otherwise identical `check` units as `Check { test: true }`.
    /// See the module docs.
    fn infer_check_tests(&mut self) {
        type Key<'a> = (&'a str, &'a Target, &'a Profile, &'a Option<String>, &'a [String], bool);
        let mut seen: HashMap<Key<'_>, usize> = HashMap::new();
        let mut tests = Vec::new();
        for (i, unit) in self.units.iter().enumerate() {
            if unit.mode != (Mode::Check { test: false }) {
                continue;
            }
            let key = (
                unit.pkg_id.as_str(),
                &unit.target,
                &unit.profile,
                &unit.platform,
                unit.features.as_slice(),
                unit.is_std,
            );
            if seen.insert(key, i).is_some() {
                tests.push(i);
            }
        }
        for i in tests {
            self.units[i].mode = Mode::Check { test: true };
        }
    }
}

fn json_error(e: serde_json::Error) -> UnitGraphError {
    use serde_json::error::Category;
    let (line, column) = (e.line(), e.column());
    let full = e.to_string();
    let suffix = format!(" at line {line} column {column}");
    let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
    match e.classify() {
        Category::Data => UnitGraphError::Schema { line, column, message },
        category => UnitGraphError::Syntax { line, column, message, truncated: category == Category::Eof },
    }
}

pub(crate) fn default_edition() -> String {
    "2015".to_owned()
}

pub(crate) fn de_nullable_path<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
    Ok(Option::<PathBuf>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn de_opt_level<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok("0".to_owned()),
        other => Err(invalid::<D>("opt_level", &other)),
    }
}

pub(crate) fn de_lto<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("false".to_owned()),
        other => Err(invalid::<D>("lto", &other)),
    }
}

pub(crate) fn de_debuginfo<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DebugInfo>, D::Error> {
    let value = Value::deserialize(d)?;
    debuginfo_from_value(&value).ok_or_else(|| invalid::<D>("debuginfo", &value))
}

/// `None` when the value is not understood; `Some(None)` for null.
fn debuginfo_from_value(value: &Value) -> Option<Option<DebugInfo>> {
    let level = match value {
        Value::Null => return Some(None),
        Value::Bool(true) => DebugInfo::Full,
        Value::Bool(false) => DebugInfo::None,
        Value::Number(n) => match n.as_u64()? {
            0 => DebugInfo::None,
            1 => DebugInfo::Limited,
            2 => DebugInfo::Full,
            _ => return None,
        },
        Value::String(s) => match s.as_str() {
            "0" | "none" | "None" => DebugInfo::None,
            "1" | "limited" | "Limited" => DebugInfo::Limited,
            "2" | "full" | "Full" => DebugInfo::Full,
            "line-tables-only" | "LineTablesOnly" => DebugInfo::LineTablesOnly,
            "line-directives-only" | "LineDirectivesOnly" => DebugInfo::LineDirectivesOnly,
            _ => return None,
        },
        // A tagged form such as `{"deferred": 2}` or `{"resolved": "line-tables-only"}`.
        Value::Object(map) if map.len() == 1 => {
            return debuginfo_from_value(map.values().next()?);
        }
        _ => return None,
    };
    Some(Some(level))
}

pub(crate) fn de_strip<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let value = Value::deserialize(d)?;
    strip_from_value(&value).ok_or_else(|| invalid::<D>("strip", &value))
}

/// Accepts `"none"`, `"symbols"`, booleans, and cargo's tagged forms such as
/// `{"deferred": "None"}` and `{"resolved": {"Named": "debuginfo"}}`.
fn strip_from_value(value: &Value) -> Option<String> {
    match value {
        Value::Null | Value::Bool(false) => Some("none".to_owned()),
        Value::Bool(true) => Some("symbols".to_owned()),
        Value::String(s) => Some(s.to_ascii_lowercase()),
        Value::Object(map) if map.len() == 1 => strip_from_value(map.values().next()?),
        _ => None,
    }
}

fn invalid<'de, D: Deserializer<'de>>(field: &str, value: &Value) -> D::Error {
    serde::de::Error::custom(format!("unrecognised `{field}` value {value}"))
}

#[cfg(test)]
#[path = "unit_graph_tests.rs"]
mod tests;
