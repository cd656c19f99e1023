//! A store that has been used with the evaluator is really closed once dropped.
//!
//! Nix 2.26's `nix_state_create` never frees the builder it makes, and that builder's reference
//! kept every such store open for the life of the process (its database, locks and six file
//! descriptors); a long-running process that used many stores slowed down with every one (each
//! build forks a process holding all of them). nix-rs builds evaluators through the builder API
//! and frees the builder. A test binary of its own: it counts this process's descriptors.

use nix_rs::testing::TempStore;
use nix_rs::{AddPathOptions, DerivationBuilder};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Creates a derivation and adds a source tree on a fresh store, then drops the store.
fn use_a_store(i: usize, src: &std::path::Path) {
    let t = TempStore::new().unwrap();
    DerivationBuilder::new(format!("leak-{i}"), "/bin/sh").args(["-c", "echo > $out"]).create(&t).unwrap();
    t.add_path(src, AddPathOptions::new().name(format!("src-{i}"))).unwrap();
}

#[test]
fn dropped_stores_release_their_files() {
    nix_rs::testing::apply_test_settings().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), "a").unwrap();
    // A store kept open: a call on it that goes through the evaluator thread is processed
    // after every earlier request to it, including the release of the stores dropped before.
    // `add_path` uses the evaluator on every version (derivations do not from 2.33 on, so a
    // derivation here would not wait for the release: a race seen on 2.35).
    let keep = TempStore::new().unwrap();
    let sync = |i: usize| {
        keep.add_path(src.path(), AddPathOptions::new().name(format!("sync-{i}"))).unwrap();
    };
    use_a_store(0, src.path());
    sync(0);
    let before = open_fds();
    for i in 1..=20 {
        use_a_store(i, src.path());
    }
    sync(1);
    let after = open_fds();
    assert!(after <= before + 2, "20 dropped stores left {} more open file descriptors", after - before);
}
