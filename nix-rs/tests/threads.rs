//! The thread-safety story, exercised: one `Store` shared by several threads that create and
//! realise derivations at once, on a local store and on a daemon store.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::TestDaemon;
use nix_rs::testing::TempStore;
use nix_rs::{DerivationBuilder, Store, StorePath};

const DERIVATIONS: usize = 8;
const THREADS: usize = 4;
const SLEEP: &str = "0.5";

fn is_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    is_send_sync::<Store>();
    is_send_sync::<StorePath>();
    is_send_sync::<nix_rs::Error>();
    is_send_sync::<nix_rs::DerivationOutputs>();
}

/// Creates `n` independent derivations that each sleep, tagged so that no two runs share one.
fn sleepers(store: &Store, tag: &str) -> Vec<StorePath> {
    (0..DERIVATIONS)
        .map(|i| {
            DerivationBuilder::new(format!("sleeper-{tag}-{i}"), "/bin/sh")
                .args(["-c", &format!("/bin/sleep {SLEEP}; echo {tag}-{i} > $out")])
                .create(store)
                .unwrap()
                .drv_path
        })
        .collect()
}

fn realise_sequentially(store: &Store, drvs: &[StorePath]) -> Duration {
    let start = Instant::now();
    for d in drvs {
        store.realise(d).unwrap();
    }
    start.elapsed()
}

/// Realises `drvs` from THREADS threads sharing `store`; each thread also creates derivations
/// while others build, to mix evaluator and store work.
fn realise_in_parallel(store: &Store, drvs: &[StorePath]) -> Duration {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let next = &next;
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(d) = drvs.get(i) else { break };
                    let extra = DerivationBuilder::new(format!("extra-{t}-{i}"), "/bin/sh")
                        .args(["-c", "echo > $out"])
                        .create(store)
                        .unwrap();
                    assert!(store.is_valid_path(&extra.drv_path).unwrap());
                    let outs = store.realise(d).unwrap();
                    assert!(store.is_valid_path(&outs["out"]).unwrap());
                }
            });
        }
    });
    start.elapsed()
}

fn check_speedup(kind: &str, sequential: Duration, parallel: Duration) {
    eprintln!("{kind}: {DERIVATIONS} derivations sequential {sequential:?}, {THREADS} threads {parallel:?}");
    assert!(
        parallel.as_secs_f64() < sequential.as_secs_f64() * 0.6,
        "{kind}: parallel {parallel:?} is not measurably below sequential {sequential:?}"
    );
}

#[test]
fn parallel_realisation_on_a_local_store() {
    let t = TempStore::new().unwrap();
    let seq = sleepers(&t, "seq");
    let par = sleepers(&t, "par");
    let sequential = realise_sequentially(&t, &seq);
    let parallel = realise_in_parallel(&t, &par);
    check_speedup("local store", sequential, parallel);
}

#[test]
fn parallel_realisation_on_a_daemon_store() {
    let daemon = TestDaemon::start();
    let uri = daemon.uri();
    let store = Store::open_with_params(&uri, &[("max-connections", &THREADS.to_string())]).unwrap();
    assert!(store.uri().unwrap().starts_with("unix://"), "{}", store.uri().unwrap());
    let seq = sleepers(&store, "seq");
    let par = sleepers(&store, "par");
    let sequential = realise_sequentially(&store, &seq);
    let parallel = realise_in_parallel(&store, &par);
    check_speedup("daemon store", sequential, parallel);
}

#[test]
fn daemon_store_reports_failures_with_its_log() {
    let daemon = TestDaemon::start();
    let mut store = Store::open(&daemon.uri()).unwrap();
    store.set_log_dir(daemon.log_dir());
    let d = common::sh_drv(&store, "fails-on-daemon", "echo daemon-side-output >&2; exit 1");
    let e = store.realise(&d.drv_path).unwrap_err();
    let f = e.as_build_failure().expect("a build failure");
    assert!(f.log_tail.iter().any(|l| l == "daemon-side-output"), "{f:?}");
}
