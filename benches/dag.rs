//! P3: a DAG of trivial derivations, created and realised in-process by cargo-backend's
//! scheduler, against the route the existing cargo fork takes: one generated `.nix` file
//! realised by one `nix build`, with the same `max-jobs`.
//!
//! Shapes: `wide` (N independent leaves and one root that depends on all of them) and `deep`
//! (a chain of N). Every iteration starts from an empty store, so everything is really built;
//! making and removing that store is outside the timing.
//! Run: `cargo bench --bench dag` (`scripts/bench-ratios dag` prints the ratios).

mod common;

use common::{Shape, create, nix_build, nix_expression, realise};
use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use nix_rs::testing::TempStore;

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
                    |t| realise(t, &create(t, &system, shape, n)),
                    BatchSize::PerIteration,
                )
            });
            let file = files.path().join(format!("{}-{n}.nix", shape.name()));
            std::fs::write(&file, nix_expression(&system, shape, n)).unwrap();
            g.bench_with_input(BenchmarkId::new("nix_build", n), &n, |b, _| {
                b.iter_batched_ref(|| TempStore::new().unwrap(), |t| nix_build(t.uri(), &file), BatchSize::PerIteration)
            });
        }
        g.finish();
    }
}

criterion_group!(group, benches);
criterion_main!(group);
