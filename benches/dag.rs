//! P3: a DAG of trivial derivations, created and realised in-process by cargo-backend's
//! scheduler, against the route the existing cargo fork takes: one generated `.nix` file
//! realised by one `nix build`, with the same `max-jobs`.
//!
//! Shapes: `wide` (N independent leaves and one root that depends on all of them) and `deep`
//! (a chain of N). Every iteration starts from an empty store, so everything is really built;
//! making and removing that store is outside the timing.
//! Run: `cargo bench --bench dag` (`scripts/bench-ratios dag` prints the ratios).

use std::fmt::Write as _;

use cargo_backend::{Node, SchedulerOptions, Silent, scheduler};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use nix_rs::testing::{TempStore, nix_cli};
use nix_rs::{DerivationBuilder, Store};

const JOBS: usize = 2;

#[derive(Clone, Copy)]
enum Shape {
    Wide,
    Deep,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Deep => "deep",
        }
    }

    /// Dependencies of node `i` of `n`.
    fn deps(self, i: usize, n: usize) -> Vec<usize> {
        match self {
            Shape::Wide if i == n - 1 => (0..n - 1).collect(),
            Shape::Wide => Vec::new(),
            Shape::Deep if i > 0 => vec![i - 1],
            Shape::Deep => Vec::new(),
        }
    }
}

/// Creates the DAG in-process and realises it with the backend's scheduler.
fn in_process(store: &Store, system: &str, shape: Shape, n: usize) {
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
    let opts = SchedulerOptions { jobs: JOBS, keep_going: false, stop: Default::default() };
    let outcomes = scheduler::realise(store, None, &nodes, &opts, &mut Silent).unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, cargo_backend::Outcome::Built(_))));
}

/// The same DAG as one `.nix` file.
fn nix_expression(system: &str, shape: Shape, n: usize) -> String {
    let mut e = String::from("let\n");
    for i in 0..n {
        let deps: String = shape.deps(i, n).iter().map(|d| format!(" ${{n{d}}}")).collect();
        writeln!(
            e,
            "  n{i} = derivation {{ name = \"n-{i}\"; system = \"{system}\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo {i}{deps} > $out\" ]; }};"
        )
        .unwrap();
    }
    let roots: Vec<String> = match shape {
        Shape::Wide => vec![format!("n{}", n - 1)],
        Shape::Deep => vec![format!("n{}", n - 1)],
    };
    writeln!(e, "in [ {} ]", roots.join(" ")).unwrap();
    e
}

fn benches(c: &mut Criterion) {
    nix_rs::testing::apply_test_settings().unwrap();
    let system = nix_rs::settings::get("system").unwrap();
    let files = tempfile::tempdir().unwrap();
    for shape in [Shape::Wide, Shape::Deep] {
        let mut g = c.benchmark_group(format!("dag_{}", shape.name()));
        g.sample_size(10);
        for n in [10usize, 100, 500] {
            g.bench_with_input(BenchmarkId::new("in_process", n), &n, |b, &n| {
                // By reference, like the nix_build side: removing the store is not timed.
                b.iter_batched_ref(
                    || TempStore::new().unwrap(),
                    |t| in_process(t, &system, shape, n),
                    BatchSize::PerIteration,
                )
            });
            let file = files.path().join(format!("{}-{n}.nix", shape.name()));
            std::fs::write(&file, nix_expression(&system, shape, n)).unwrap();
            g.bench_with_input(BenchmarkId::new("nix_build", n), &n, |b, _| {
                b.iter_batched_ref(
                    || TempStore::new().unwrap(),
                    |t| {
                        let out = nix_cli("nix", t.uri())
                            .args(["build", "--no-link", "--max-jobs", &JOBS.to_string(), "-f"])
                            .arg(&file)
                            .output()
                            .unwrap();
                        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(group, benches);
criterion_main!(group);
