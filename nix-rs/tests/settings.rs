//! Tests that change Nix's process-wide settings. Nix reads its settings without locks, so
//! changing one while other tests use Nix would race: these run in a test binary of their
//! own, one after another (a lock serialises them), and every store they use is opened after
//! the change.

use std::sync::Mutex;

use nix_rs::settings;
use nix_rs::testing::TempStore;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_store_can_become_the_default_for_helper_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let t = TempStore::with_params(&[("path-info-cache-size", "100")]).unwrap();
    assert!(t.is_on_this_machine());
    let uri = t.uri_with_params();
    assert_eq!(uri, format!("{}&path-info-cache-size=100", t.uri()));
    let before = settings::get("store").unwrap();
    t.set_as_default().unwrap();
    assert_eq!(settings::get("store").unwrap(), uri);
    settings::set("store", &before).unwrap();
}

#[test]
fn settings_round_trip_and_bad_key() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    settings::set("tarball-ttl", "1234").unwrap();
    assert_eq!(settings::get("tarball-ttl").unwrap(), "1234");
    settings::set("tarball-ttl", "3600").unwrap();
    let e = settings::get("no-such-setting-xyz").unwrap_err();
    assert!(e.to_string().contains("no-such-setting-xyz"), "{e}");
    let e = settings::set("no-such-setting-xyz", "1").unwrap_err();
    assert!(e.to_string().contains("no-such-setting-xyz"), "{e}");
}
