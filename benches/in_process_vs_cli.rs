//! In-process calls through nix-rs against spawning the `nix` CLI, side by side in one run.
//!
//! - `create_derivation`: one new derivation, in-process (`DerivationBuilder::create`) vs
//!   writing the equivalent `.nix` file and spawning `nix-instantiate` on it. Variants of the
//!   in-process side: `in_process_fsync_metadata_off` (a second store opened with Nix's
//!   `fsync-metadata = false`, so its sqlite runs with `synchronous = off`) and
//!   `in_process_batched` (`DerivationBuilder::create_all`, 100 per call; the time shown is per
//!   derivation), and both (`in_process_batched_fsync_metadata_off`). The store lives under
//!   `$TMPDIR` (run with `TMPDIR=/dev/shm` to see what the file system costs).
//! - `realise_valid`: realising a derivation whose outputs are already valid, in-process
//!   (`Store::realise`) vs spawning `nix-store --realise` and `nix build`.
//!
//! Both sides use the same temporary store. Run: `cargo bench --bench in_process_vs_cli`;
//! `scripts/bench-ratios` prints the ratios from criterion's results.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use nix_rs::testing::{TempStore, nix_cli};
use nix_rs::{DerivationBuilder, Store};

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn run(mut cmd: Command) -> String {
    let out = cmd.output().expect("spawning the nix CLI");
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn builder(system: &str, n: u64) -> DerivationBuilder {
    let mut b = DerivationBuilder::new(format!("bench-{n}"), "/bin/sh");
    b.system(system).args(["-c", &format!("echo {n} > $out")]);
    b
}

fn new_drv(store: &Store, system: &str, n: u64) -> nix_rs::DerivationOutputs {
    builder(system, n).create(store).unwrap()
}

fn nix_file(dir: &Path, system: &str, n: u64) -> PathBuf {
    let file = dir.join(format!("bench-{n}.nix"));
    let text = format!(
        "derivation {{ name = \"bench-{n}\"; system = \"{system}\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo {n} > $out\" ]; }}\n"
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn benches(c: &mut Criterion) {
    let t = TempStore::new().unwrap();
    let system = nix_rs::settings::get("system").unwrap();
    let files = tempfile::tempdir().unwrap();

    // Sanity: both routes make the same derivation.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let ours = new_drv(&t, &system, n);
    let mut cmd = nix_cli("nix-instantiate", t.uri());
    cmd.arg(nix_file(files.path(), &system, n));
    assert_eq!(run(cmd), ours.drv_path.as_str(), "in-process and nix-instantiate disagree");

    nix_rs::settings::set("fsync-metadata", "false").unwrap();
    let unsynced = TempStore::new().unwrap();
    nix_rs::settings::set("fsync-metadata", "true").unwrap();

    let mut g = c.benchmark_group("create_derivation");
    g.bench_function("in_process", |b| b.iter(|| new_drv(&t, &system, COUNTER.fetch_add(1, Ordering::Relaxed))));
    g.bench_function("in_process_fsync_metadata_off", |b| {
        b.iter(|| new_drv(&unsynced, &system, COUNTER.fetch_add(1, Ordering::Relaxed)))
    });
    for (name, store) in [("in_process_batched", &t), ("in_process_batched_fsync_metadata_off", &unsynced)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let all: Vec<DerivationBuilder> =
                    (0..iters).map(|_| builder(&system, COUNTER.fetch_add(1, Ordering::Relaxed))).collect();
                let start = std::time::Instant::now();
                for chunk in all.chunks(100) {
                    DerivationBuilder::create_all(store, chunk).unwrap();
                }
                start.elapsed()
            })
        });
    }
    g.bench_function("nix_instantiate", |b| {
        b.iter(|| {
            let file = nix_file(files.path(), &system, COUNTER.fetch_add(1, Ordering::Relaxed));
            let mut cmd = nix_cli("nix-instantiate", t.uri());
            cmd.arg(file);
            run(cmd)
        })
    });
    g.finish();

    let built = new_drv(&t, &system, u64::MAX);
    t.realise(&built.drv_path).unwrap();
    let mut g = c.benchmark_group("realise_valid");
    g.bench_function("in_process", |b| b.iter(|| t.realise(&built.drv_path).unwrap()));
    g.bench_function("nix_store_realise", |b| {
        b.iter(|| {
            let mut cmd = nix_cli("nix-store", t.uri());
            cmd.args(["--realise", built.drv_path.as_str()]);
            run(cmd)
        })
    });
    g.bench_function("nix_build", |b| {
        b.iter(|| {
            let mut cmd = nix_cli("nix", t.uri());
            cmd.args(["build", "--no-link", "--print-out-paths", &format!("{}^*", built.drv_path)]);
            run(cmd)
        })
    });
    g.finish();
}

criterion_group! {
    name = group;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = benches
}
criterion_main!(group);
