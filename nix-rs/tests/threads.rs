//! The thread-safety story, exercised: one `Store` shared by several threads that create and
//! realise derivations at once, on a local store and on a daemon store.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestDaemon;
use nix_rs::testing::TempStore;
use nix_rs::{DerivationBuilder, Store, StorePath};

const DERIVATIONS: usize = 8;
const THREADS: usize = 4;

fn is_send_sync<T: Send + Sync>() {}

#[test]
fn public_types_are_send_and_sync() {
    is_send_sync::<Store>();
    is_send_sync::<StorePath>();
    is_send_sync::<nix_rs::Error>();
    is_send_sync::<nix_rs::DerivationOutputs>();
}

/// Creates DERIVATIONS independent derivations whose builders meet: each marks that it has
/// started in `meet` and waits (at most 120 s, then fails) until THREADS builders have, so they
/// all succeed only if THREADS of them run at once. No clock decides the outcome.
fn rendezvous(store: &Store, tag: &str, meet: &std::path::Path) -> Vec<StorePath> {
    (0..DERIVATIONS)
        .map(|i| {
            let m = meet.display();
            let script = format!(
                "/bin/touch {m}/started-{i}; n=0; \
                 while [ \"$(/bin/ls {m} | /bin/grep -c started-)\" -lt {THREADS} ]; do \
                 n=$((n+1)); [ $n -gt 2400 ] && exit 1; /bin/sleep 0.05; done; echo {tag}-{i} > $out"
            );
            DerivationBuilder::new(format!("meet-{tag}-{i}"), "/bin/sh")
                .args(["-c", &script])
                .create(store)
                .unwrap()
                .drv_path
        })
        .collect()
}

/// Realises `drvs` from THREADS threads sharing `store`; each thread also creates derivations
/// while others build, to mix evaluator and store work.
fn realise_in_parallel(store: &Store, drvs: &[StorePath]) {
    let next = AtomicUsize::new(0);
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
}

#[test]
fn parallel_realisation_on_a_local_store() {
    let t = TempStore::new().unwrap();
    let meet = tempfile::tempdir().unwrap();
    realise_in_parallel(&t, &rendezvous(&t, "local", meet.path()));
}

#[test]
fn parallel_realisation_on_a_daemon_store() {
    let daemon = TestDaemon::start();
    let uri = daemon.uri();
    let store = Store::open_with_params(&uri, &[("max-connections", &THREADS.to_string())]).unwrap();
    assert!(store.uri().unwrap().starts_with("unix://"), "{}", store.uri().unwrap());
    let meet = tempfile::tempdir().unwrap();
    realise_in_parallel(&store, &rendezvous(&store, "daemon", meet.path()));
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
