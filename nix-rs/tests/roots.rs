//! GC roots through a daemon: [`Store::add_indirect_root`] on a `unix://` store asks the daemon
//! (Nix's `AddIndirectRoot`), which writes `gcroots/auto` in its own state directory.

mod common;

use common::{TestDaemon, sh_drv};
use nix_rs::Store;
use nix_rs::testing::{TempStore, nix_cli};

#[test]
fn indirect_root_registered_by_the_daemon() {
    nix_rs::testing::apply_test_settings().unwrap();
    let daemon = TestDaemon::start();
    let store = Store::open(&daemon.uri()).unwrap();
    let socket = store.daemon_socket().unwrap().expect("a daemon store names its socket");
    assert_eq!(socket, daemon.socket);
    let d = sh_drv(&store, "rooted-by-daemon", "echo rooted > $out");
    let out = store.realise(&d.drv_path).unwrap()["out"].clone();
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("result");
    std::os::unix::fs::symlink(out.as_path(), &link).unwrap();
    store.add_indirect_root(&link).unwrap();

    // The daemon wrote gcroots/auto/<hash> -> link in its state directory.
    let auto = daemon.dir.path().join("store/state/gcroots/auto");
    let targets: Vec<_> =
        std::fs::read_dir(&auto).unwrap().flatten().filter_map(|e| std::fs::read_link(e.path()).ok()).collect();
    assert_eq!(targets, vec![link.clone()], "in {}", auto.display());

    // A client that can see the daemon's state directory finds the root where Nix put it
    // (same name), without asking the daemon: this socket has no daemon behind it.
    let offline = Store::open(&format!(
        "unix://{}?store={}/store/nix/store&state={}/store/state",
        links.path().join("no-daemon.sock").display(),
        daemon.dir.path().display(),
        daemon.dir.path().display()
    ))
    .unwrap();
    offline.ensure_indirect_root(&link).unwrap();
    let other = links.path().join("other");
    let e = offline.ensure_indirect_root(&other).unwrap_err().to_string();
    assert!(e.contains("cannot connect"), "an unregistered root is sent to the daemon: {e}");
    drop(offline);

    // The daemon's collector keeps the output while the link exists.
    let local = TempStore::uri_for(&daemon.dir.path().join("store"));
    let gc = || {
        let o = nix_cli("nix-store", &daemon.uri()).arg("--gc").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    drop(store);
    gc();
    let check = Store::open(&local).unwrap();
    assert!(check.is_valid_path(&out).unwrap(), "the root keeps the output");
    drop(check);
    // Without its link the root is stale and the output goes.
    std::fs::remove_file(&link).unwrap();
    gc();
    let check = Store::open(&local).unwrap();
    assert!(!check.is_valid_path(&out).unwrap(), "a stale root keeps nothing");
}

#[test]
fn an_unreachable_daemon_is_an_error_naming_its_socket() {
    nix_rs::testing::apply_test_settings().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("no-daemon.sock");
    let store = Store::open(&format!("unix://{}", socket.display())).unwrap();
    let e = store.add_indirect_root(&dir.path().join("result")).unwrap_err().to_string();
    assert!(e.contains(&socket.display().to_string()) && e.contains("cannot connect"), "{e}");
}
