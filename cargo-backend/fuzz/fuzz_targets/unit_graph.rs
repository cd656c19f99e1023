//! Any input: `UnitGraph::parse` returns a graph or an error, never panics; a graph it accepts
//! has in-range indices and a topological order covering every unit once.
#![no_main]

use cargo_backend::units::UnitGraph;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(g) = UnitGraph::parse(text) {
        let order = g.topological_order();
        assert_eq!(order.len(), g.units.len());
        let mut seen = vec![false; g.units.len()];
        for &i in &order {
            for d in &g.units[i].dependencies {
                assert!(seen[d.index], "dependency after dependent");
            }
            seen[i] = true;
        }
        let _ = g.dependents();
    }
});
