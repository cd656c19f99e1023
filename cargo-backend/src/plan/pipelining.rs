//! Which units pipelining splits (a metadata-only derivation besides the full one), and which
//! `rustc-link-arg*` instructions apply to a unit: pure functions of the unit graph.

use crate::build_script::LinkTarget;
use crate::units::{Mode, Unit, UnitGraph};

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
pub fn pipelined_units(graph: &UnitGraph) -> Vec<bool> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
