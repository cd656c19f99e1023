//! A unit's identity: its `-C metadata` hash, from what its rustc invocation depends on.
//!
//! Like cargo's metadata hash, it leaves out the profile's *name*: `cargo nix test` right
//! after `cargo nix build` reuses every dependency built with the same settings (the `test`
//! profile is `dev` under another name). Unlike cargo's, it leaves out where the workspace is
//! (a path package counts as "path"), so the same crate built the same way in two checkouts is
//! one derivation; and it covers the toolchain's identity rather than rustc's version string.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::lto::Lto;
use crate::toolchain::hex;
use crate::units::{Profile, SourceKind, Unit};

/// The facts a unit's hash covers besides the unit itself.
#[derive(Debug, Clone, Copy)]
pub struct IdentityFacts<'a> {
    /// Package name and version.
    pub name: &'a str,
    /// Package version.
    pub version: &'a str,
    /// The package's directory: the crate root is hashed relative to it, so that the same
    /// package at two places is one unit.
    pub manifest_dir: &'a std::path::Path,
    /// The package's lint flags.
    pub lint_rustflags: &'a [String],
    /// The unit's LTO setting.
    pub lto: &'a Lto,
    /// The toolchain's identity.
    pub toolchain: &'a str,
}

/// The unit's hash (16 hex digits), given its dependencies' hashes (by extern name).
pub fn unit_hash(unit: &Unit, facts: &IdentityFacts<'_>, mut deps: Vec<(&str, &str)>) -> String {
    #[derive(Serialize)]
    struct Identity<'a> {
        name: &'a str,
        version: &'a str,
        source: String,
        target: crate::units::Target,
        mode: &'a crate::units::Mode,
        profile: Profile,
        features: &'a [String],
        platform: &'a Option<String>,
        rustflags: &'a [String],
        linker: &'a Option<String>,
        lints: &'a [String],
        lto: String,
        toolchain: &'a str,
        deps: Vec<(&'a str, &'a str)>,
    }
    let source = match unit.source_kind() {
        SourceKind::Path(_) => "path".to_owned(),
        _ => unit.package_id_parts().and_then(|p| p.source).unwrap_or("").to_owned(),
    };
    deps.sort();
    let id = Identity {
        name: facts.name,
        version: facts.version,
        source,
        target: crate::units::Target {
            src_path: unit.target.src_path.strip_prefix(facts.manifest_dir).unwrap_or(&unit.target.src_path).into(),
            ..unit.target.clone()
        },
        mode: &unit.mode,
        profile: Profile { name: String::new(), ..unit.profile.clone() },
        features: &unit.features,
        platform: &unit.platform,
        rustflags: &unit.rustflags,
        linker: &unit.linker,
        lints: facts.lint_rustflags,
        lto: format!("{:?}", facts.lto),
        toolchain: facts.toolchain,
        deps,
    };
    let json = serde_json::to_vec(&id).expect("identity serializes");
    hex(&Sha256::digest(&json))[..16].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::UnitGraph;

    fn unit(profile: &str) -> Unit {
        let json = format!(
            r#"{{"version": 1, "roots": [0], "units": [{{"pkg_id": "path+file:///p#0.1.0", "mode": "build",
                "profile": {{"name": "{profile}", "opt_level": "0", "debuginfo": 2}},
                "target": {{"kind": ["lib"], "crate_types": ["lib"], "name": "p", "src_path": "/p/src/lib.rs"}}}}]}}"#
        );
        UnitGraph::parse(&json).unwrap().units.remove(0)
    }

    #[test]
    fn the_profile_name_is_not_part_of_the_identity_but_its_settings_are() {
        let facts = IdentityFacts {
            name: "p",
            version: "0.1.0",
            manifest_dir: std::path::Path::new("/p"),
            lint_rustflags: &[],
            lto: &Lto::OnlyObject,
            toolchain: "t",
        };
        let dev = unit_hash(&unit("dev"), &facts, vec![]);
        assert_eq!(dev, unit_hash(&unit("test"), &facts, vec![]));
        let mut opt = unit("dev");
        opt.profile.opt_level = "1".into();
        assert_ne!(dev, unit_hash(&opt, &facts, vec![]));
        let mut flags = unit("dev");
        flags.rustflags = vec!["--cfg".into(), "x".into()];
        assert_ne!(dev, unit_hash(&flags, &facts, vec![]));
        assert_ne!(dev, unit_hash(&unit("dev"), &facts, vec![("d", "0123")]));
        // The same package elsewhere is the same unit.
        let mut moved = unit("dev");
        moved.target.src_path = "/elsewhere/p/src/lib.rs".into();
        let facts_moved = IdentityFacts { manifest_dir: std::path::Path::new("/elsewhere/p"), ..facts };
        assert_eq!(dev, unit_hash(&moved, &facts_moved, vec![]));
    }
}
