//! Which LTO flags each unit gets: cargo's `lto::generate` (private in the cargo crate),
//! computed over the neutral unit graph.
//!
//! The profile's `lto` setting applies to the units that link (binaries, tests, cdylibs,
//! staticlibs); libraries under an LTO root are compiled to bitcode only
//! (`-C linker-plugin-lto`) or to objects and bitcode, and host units (build scripts,
//! proc-macros) are never LTO'd (`-C embed-bitcode=no`).

use std::collections::HashMap;

use crate::units::{Mode, Unit, UnitGraph};

/// How a unit takes part in LTO (cargo's `lto::Lto`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lto {
    /// Perform LTO: `-C lto`, or `-C lto=<value>` when named (`thin`, `fat`).
    Run(Option<String>),
    /// `lto = "off"`: `-C lto=off -C embed-bitcode=no`.
    Off,
    /// Bitcode only (`-C linker-plugin-lto`).
    OnlyBitcode,
    /// Objects and bitcode: rustc's default, no flag.
    ObjectAndBitcode,
    /// Objects only (`-C embed-bitcode=no`).
    OnlyObject,
}

impl Lto {
    /// rustc's arguments for it.
    pub fn args(&self) -> Vec<String> {
        let c = |v: &str| ["-C".to_owned(), v.to_owned()];
        match self {
            Lto::Run(None) => c("lto").to_vec(),
            Lto::Run(Some(s)) => c(&format!("lto={s}")).to_vec(),
            Lto::Off => [c("lto=off"), c("embed-bitcode=no")].concat(),
            Lto::ObjectAndBitcode => Vec::new(),
            Lto::OnlyBitcode => c("linker-plugin-lto").to_vec(),
            Lto::OnlyObject => c("embed-bitcode=no").to_vec(),
        }
    }
}

/// Whether a target is built for the host whatever `--target` says: build scripts and
/// proc-macros (cargo's `Target::for_host`).
pub fn for_host(unit: &Unit) -> bool {
    unit.has_kind("custom-build") || unit.has_kind("proc-macro")
}

fn crate_types(unit: &Unit) -> Vec<&str> {
    if matches!(unit.mode, Mode::Test | Mode::Doctest) {
        vec!["bin"]
    } else {
        unit.target.crate_types.iter().map(String::as_str).collect()
    }
}

fn can_lto(t: &str) -> bool {
    matches!(t, "bin" | "staticlib" | "cdylib")
}

fn is_dynamic(t: &str) -> bool {
    matches!(t, "dylib" | "cdylib" | "proc-macro")
}

fn needs_object(types: &[&str]) -> bool {
    types.iter().any(|t| can_lto(t) || is_dynamic(t))
}

fn lto_when_needs_object(types: &[&str]) -> Lto {
    if types.iter().all(|t| *t == "dylib") { Lto::OnlyObject } else { Lto::ObjectAndBitcode }
}

/// The profile's own `lto` setting, as cargo's `profiles::Lto`.
fn profile_lto(unit: &Unit) -> Lto {
    match unit.profile.lto.as_str() {
        "false" | "" => Lto::OnlyObject,
        "off" => Lto::Off,
        "true" => Lto::Run(None),
        named => Lto::Run(Some(named.to_owned())),
    }
}

/// The LTO setting of every unit, by index.
pub fn generate(graph: &UnitGraph) -> Vec<Lto> {
    let mut map: HashMap<usize, Lto> = HashMap::new();
    for &root in &graph.roots {
        let unit = &graph.units[root];
        let root_lto = match unit.profile.lto.as_str() {
            "false" | "" => Lto::OnlyObject,
            "off" => Lto::Off,
            _ => {
                // cargo uses the target's crate types here, not the test override.
                let types: Vec<&str> = unit.target.crate_types.iter().map(String::as_str).collect();
                if for_host(unit) {
                    Lto::OnlyObject
                } else if needs_object(&types) {
                    lto_when_needs_object(&types)
                } else {
                    Lto::OnlyBitcode
                }
            }
        };
        calculate(graph, &mut map, root, root_lto);
    }
    (0..graph.units.len()).map(|i| map.remove(&i).unwrap_or(Lto::OnlyObject)).collect()
}

/// cargo's `lto::calculate`, with an explicit stack instead of recursion.
fn calculate(graph: &UnitGraph, map: &mut HashMap<usize, Lto>, root: usize, root_parent: Lto) {
    let mut stack = vec![(root, root_parent)];
    while let Some((i, parent_lto)) = stack.pop() {
        let unit = &graph.units[i];
        let types = crate_types(unit);
        let all_lto_types = types.iter().all(|t| can_lto(t));
        let lto = if for_host(unit) {
            Lto::OnlyObject
        } else if all_lto_types {
            profile_lto(unit)
        } else {
            match (&parent_lto, needs_object(&types)) {
                (Lto::Run(_), false) => Lto::OnlyBitcode,
                (Lto::Run(_), true) | (Lto::OnlyBitcode, true) => lto_when_needs_object(&types),
                (Lto::Off, _) => Lto::Off,
                (_, false) | (Lto::OnlyObject, true) | (Lto::ObjectAndBitcode, true) => parent_lto.clone(),
            }
        };
        let merged = match map.get(&i) {
            None => lto,
            Some(old) => {
                let result = match (&lto, old) {
                    (Lto::OnlyBitcode, Lto::OnlyBitcode) => Lto::OnlyBitcode,
                    (Lto::OnlyObject, Lto::OnlyObject) => Lto::OnlyObject,
                    (Lto::Run(s), _) | (_, Lto::Run(s)) => Lto::Run(s.clone()),
                    (Lto::Off, _) | (_, Lto::Off) => Lto::Off,
                    (Lto::ObjectAndBitcode, _) | (_, Lto::ObjectAndBitcode) => Lto::ObjectAndBitcode,
                    (Lto::OnlyObject, Lto::OnlyBitcode) | (Lto::OnlyBitcode, Lto::OnlyObject) => Lto::ObjectAndBitcode,
                };
                if &result == old {
                    continue;
                }
                result
            }
        };
        map.insert(i, merged.clone());
        // cargo recurses into the dependencies in order; a stack visits them in reverse,
        // which reaches the same fixed point (the merge is order-independent).
        for d in &unit.dependencies {
            stack.push((d.index, merged.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(lto: &str) -> UnitGraph {
        let unit = |kind: &str, ct: &str, mode: &str, deps: &[usize]| {
            let deps: Vec<String> =
                deps.iter().map(|d| format!(r#"{{"index": {d}, "extern_crate_name": "d{d}"}}"#)).collect();
            format!(
                r#"{{"pkg_id": "path+file:///p#0.1.0", "mode": "{mode}", "dependencies": [{}],
                    "profile": {{"name": "release", "lto": "{lto}"}},
                    "target": {{"kind": ["{kind}"], "crate_types": ["{ct}"], "name": "n", "src_path": "/p/x.rs"}}}}"#,
                deps.join(",")
            )
        };
        let units = [
            unit("lib", "lib", "build", &[2]),                    // 0: a library under the bin
            unit("bin", "bin", "build", &[0, 3]),                 // 1: root
            unit("proc-macro", "proc-macro", "build", &[]),       // 2: host
            unit("custom-build", "bin", "run-custom-build", &[]), // 3
        ];
        let json = format!(r#"{{"version": 1, "units": [{}], "roots": [1]}}"#, units.join(","));
        UnitGraph::parse(&json).unwrap()
    }

    #[test]
    fn fat_lto_runs_on_the_binary_and_libraries_give_bitcode() {
        let l = generate(&graph("true"));
        assert_eq!(l[1], Lto::Run(None));
        assert_eq!(l[0], Lto::OnlyBitcode);
        assert_eq!(l[2], Lto::OnlyObject, "proc-macros are never LTO'd");
        assert_eq!(l[0].args(), ["-C", "linker-plugin-lto"]);
        assert_eq!(l[1].args(), ["-C", "lto"]);
    }

    #[test]
    fn no_lto_means_objects_only_and_named_lto_is_passed_on() {
        let l = generate(&graph("false"));
        assert!(l.iter().all(|x| *x == Lto::OnlyObject), "{l:?}");
        assert_eq!(l[0].args(), ["-C", "embed-bitcode=no"]);
        let l = generate(&graph("thin"));
        assert_eq!(l[1].args(), ["-C", "lto=thin"]);
        let l = generate(&graph("off"));
        assert_eq!(l[0].args(), ["-C", "lto=off", "-C", "embed-bitcode=no"]);
    }
}
