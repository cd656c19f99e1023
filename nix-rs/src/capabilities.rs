//! What the linked Nix can do, decided when nix-rs is compiled (from nix-sys's version cfgs).
//!
//! The C API grows with each release; nix-rs uses each release's own functions and, where an
//! operation has no route at all on the linked version, returns [`Error::Unsupported`] naming
//! the capability and the first release that has it.

use std::fmt;

use crate::error::{Error, Result};

/// An operation whose availability depends on the linked Nix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Capability {
    /// [`crate::interrupt`] kills running builders (all supported versions).
    InterruptBuilds,
    /// Builders' output and progress messages kept off this process's stderr (all supported
    /// versions; through the C API from 2.32).
    QuietBuildLogs,
    /// [`Store::add_text`](crate::Store::add_text) (all supported versions, through the
    /// evaluator's `builtins.toFile`; no release has a C function that adds files).
    AddText,
    /// Derivations written without the evaluator: `nix_derivation_from_json` (JSON version 4)
    /// and `nix_add_derivation` (2.33+). Older versions create them through the evaluator.
    NativeDerivations,
    /// `nix_store_realise` reports a failed build itself (2.33+); older versions return success
    /// and nix-rs checks the outputs.
    RealiseReportsFailures,
    /// [`Store::closure`](crate::Store::closure): `nix_store_get_fs_closure` (2.33+).
    Closure,
    /// [`Store::derivation`](crate::Store::derivation) from any store, not only one on this
    /// machine: `nix_store_drv_from_store_path` (2.33+). Older versions read the `.drv` file.
    DerivationFromAnyStore,
    /// [`Store::copy_path_to`](crate::Store::copy_path_to): `nix_store_copy_path` (2.34+).
    CopyPath,
}

/// Every capability, with the first release that has it.
const TABLE: &[(Capability, &str, bool)] = &[
    (Capability::InterruptBuilds, "2.26", true),
    (Capability::QuietBuildLogs, "2.26", true),
    (Capability::AddText, "2.26", true),
    (Capability::NativeDerivations, "2.33", cfg!(nix_at_least_2_33)),
    (Capability::RealiseReportsFailures, "2.33", cfg!(nix_at_least_2_33)),
    (Capability::Closure, "2.33", cfg!(nix_at_least_2_33)),
    (Capability::DerivationFromAnyStore, "2.33", cfg!(nix_at_least_2_33)),
    (Capability::CopyPath, "2.34", cfg!(nix_at_least_2_34)),
];

impl Capability {
    /// The first Nix release that has it.
    pub fn needs(self) -> &'static str {
        TABLE.iter().find(|(c, _, _)| *c == self).map_or("?", |(_, n, _)| n)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::InterruptBuilds => "interrupting running builds",
            Capability::QuietBuildLogs => "quieting build logs",
            Capability::AddText => "adding a text file to the store",
            Capability::NativeDerivations => "creating derivations without the evaluator",
            Capability::RealiseReportsFailures => "build failures reported by nix_store_realise",
            Capability::Closure => "computing the closure of a store path",
            Capability::DerivationFromAnyStore => "reading a derivation from any store",
            Capability::CopyPath => "copying one store path",
        })
    }
}

/// What the Nix that nix-rs was built against can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    version: &'static str,
}

/// The capabilities of the linked Nix.
pub fn capabilities() -> Capabilities {
    Capabilities { version: nix_sys::BUILT_VERSION }
}

impl Capabilities {
    /// The Nix version nix-rs was built against.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Whether the linked Nix can do `capability`.
    pub fn has(&self, capability: Capability) -> bool {
        TABLE.iter().any(|(c, _, has)| *c == capability && *has)
    }

    /// Every capability and whether the linked Nix has it.
    pub fn all(&self) -> Vec<(Capability, bool)> {
        TABLE.iter().map(|(c, _, has)| (*c, *has)).collect()
    }

    /// `Ok` if the linked Nix can do `capability`, else [`Error::Unsupported`].
    pub fn require(&self, capability: Capability) -> Result<()> {
        if self.has(capability) {
            Ok(())
        } else {
            Err(Error::Unsupported { capability, needs: capability.needs(), found: self.version })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_capability_is_in_the_table_once() {
        let all = capabilities().all();
        assert_eq!(all.len(), TABLE.len());
        for (c, _) in &all {
            assert_eq!(TABLE.iter().filter(|(x, _, _)| x == c).count(), 1, "{c:?}");
            assert_ne!(c.needs(), "?");
        }
    }

    #[test]
    fn missing_capability_is_a_typed_error_naming_versions() {
        let caps = capabilities();
        assert!(caps.has(Capability::AddText));
        let expected = cfg!(nix_at_least_2_34);
        match caps.require(Capability::CopyPath) {
            Ok(()) => assert!(expected),
            Err(e) => {
                assert!(!expected);
                assert!(matches!(e, Error::Unsupported { capability: Capability::CopyPath, needs: "2.34", .. }));
                let text = e.to_string();
                assert!(text.contains("2.34") && text.contains(nix_sys::BUILT_VERSION), "{text}");
            }
        }
    }
}
