//! P3 in fresh processes: a chain of N trivial derivations created and realised in-process by
//! cargo-backend's scheduler (2 jobs), side by side with the same chain as one `.nix` file and
//! one `nix build --max-jobs 2`, each on its own empty temporary store (creating and removing
//! stores is not timed). Every round runs both sides once, in turn; `--rounds R` repeats in this
//! one process, which shows whether the in-process side slows down with the process's history.
//!
//! Run: `cargo bench --bench deep_chain -- [N] [--rounds R]` (default 100 and 1). Prints one
//! line per side and round: wall time, and for the in-process side the time to create the
//! derivations, the open descriptors and the resident memory before the round.

mod common;

use std::time::Instant;

use common::{Shape, create, nix_build, nix_expression, realise};
use nix_rs::testing::TempStore;

/// Creates and realises a chain of `n` in-process: (seconds to create, seconds in all).
fn in_process(store: &TempStore, system: &str, n: usize) -> (f64, f64) {
    let start = Instant::now();
    let nodes = create(store, system, Shape::Deep, n);
    let created = start.elapsed().as_secs_f64();
    realise(store, &nodes);
    (created, start.elapsed().as_secs_f64())
}

fn process_state() -> String {
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.trim_start_matches("VmRSS:").trim().to_owned())
        })
        .unwrap_or_default();
    format!("{fds} fds, RSS {rss}")
}

fn main() {
    // `cargo bench` passes `--bench`; everything else is ours.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let mut n = 100;
    let mut rounds = 1;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds takes a number"),
            v => n = v.parse().unwrap_or_else(|_| panic!("unexpected argument {v:?}")),
        }
    }
    assert!(n > 0, "a chain has at least one derivation");
    nix_rs::testing::apply_test_settings().unwrap();
    let system = nix_rs::settings::get("system").unwrap();
    let files = tempfile::tempdir().unwrap();
    let file = files.path().join(format!("deep-{n}.nix"));
    std::fs::write(&file, nix_expression(&system, Shape::Deep, n)).unwrap();
    for round in 1..=rounds {
        let state = process_state();
        let store = TempStore::new().unwrap();
        let (created, total) = in_process(&store, &system, n);
        println!("round {round}: in-process deep/{n}: {total:.3} s (created in {created:.3} s; before: {state})");
        drop(store);
        let store = TempStore::new().unwrap();
        let start = Instant::now();
        nix_build(store.uri(), &file);
        println!("round {round}: nix build  deep/{n}: {:.3} s", start.elapsed().as_secs_f64());
    }
}
