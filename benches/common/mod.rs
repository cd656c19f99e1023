//! What the DAG benchmarks share: the DAG of trivial derivations, made in-process and
//! realised with cargo-backend's scheduler, or written as one `.nix` file for `nix build`.
// Each benchmark uses part of it.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::Path;

use cargo_backend::{Node, SchedulerOptions, Silent, scheduler};
use nix_rs::testing::nix_cli;
use nix_rs::{DerivationBuilder, Store};

/// Builds at once, on both sides.
pub const JOBS: usize = 2;

/// The shape of a DAG of `n` nodes.
#[derive(Clone, Copy)]
pub enum Shape {
    /// `n - 1` independent leaves and one root that depends on all of them.
    Wide,
    /// A chain of `n`.
    Deep,
}

impl Shape {
    /// Its name in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Deep => "deep",
        }
    }

    /// Dependencies of node `i` of `n`.
    pub fn deps(self, i: usize, n: usize) -> Vec<usize> {
        match self {
            Shape::Wide if i == n - 1 => (0..n - 1).collect(),
            Shape::Wide => Vec::new(),
            Shape::Deep if i > 0 => vec![i - 1],
            Shape::Deep => Vec::new(),
        }
    }
}

/// Creates the DAG's derivations in-process.
pub fn create(store: &Store, system: &str, shape: Shape, n: usize) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
    for i in 0..n {
        let deps = shape.deps(i, n);
        let mut script = format!("echo {i}");
        let mut b = DerivationBuilder::new(format!("n-{i}"), "/bin/sh");
        for &d in &deps {
            write!(script, " {}", nodes[d].out).unwrap();
            b.input_derivation(&nodes[d].drv, ["out"]);
        }
        script.push_str(" > $out");
        let drv = b.system(system).args(["-c", &script]).create(store).unwrap();
        nodes.push(Node { out: drv.outputs["out"].clone(), drv: drv.drv_path, deps, optional: false });
    }
    nodes
}

/// Realises `nodes` with the backend's scheduler; every one must be built.
pub fn realise(store: &Store, nodes: &[Node]) {
    let opts = SchedulerOptions {
        jobs: JOBS,
        keep_going: false,
        stop: Default::default(),
        worker_stores: Vec::new(),
        jobserver: None,
    };
    let outcomes = scheduler::realise(store, None, nodes, &opts, &mut Silent).unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, cargo_backend::Outcome::Built(_))));
}

/// The same DAG as one `.nix` file, its last node the result.
pub fn nix_expression(system: &str, shape: Shape, n: usize) -> String {
    let mut e = String::from("let\n");
    for i in 0..n {
        let deps: String = shape.deps(i, n).iter().map(|d| format!(" ${{n{d}}}")).collect();
        writeln!(
            e,
            "  n{i} = derivation {{ name = \"n-{i}\"; system = \"{system}\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo {i}{deps} > $out\" ]; }};"
        )
        .unwrap();
    }
    writeln!(e, "in [ n{} ]", n - 1).unwrap();
    e
}

/// `nix build -f file` on the store at `uri`, with [`JOBS`] builds at once.
pub fn nix_build(uri: &str, file: &Path) {
    let out = nix_cli("nix", uri)
        .args(["build", "--no-link", "--max-jobs", &JOBS.to_string(), "-f"])
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
