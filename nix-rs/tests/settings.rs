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
    // Nix 2.35 reads the setting back reformatted (`local://?…`, parameters sorted).
    assert_eq!(normalized_uri(&settings::get("store").unwrap()), normalized_uri(&uri));
    settings::set("store", &before).unwrap();
}

/// A store URI as scheme and sorted parameters: `local://?b=1&a=2` and `local?a=2&b=1` agree.
fn normalized_uri(uri: &str) -> (String, Vec<String>) {
    let (scheme, query) = uri.split_once('?').unwrap_or((uri, ""));
    let mut params: Vec<String> = query.split('&').filter(|p| !p.is_empty()).map(str::to_owned).collect();
    params.sort();
    (scheme.trim_end_matches("://").to_owned(), params)
}

#[test]
fn settings_round_trip_and_bad_key() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // A setting that stays global in every version (Nix 2.35 moved `tarball-ttl` out of the
    // global settings).
    settings::set("keep-failed", "true").unwrap();
    assert_eq!(settings::get("keep-failed").unwrap(), "true");
    settings::set("keep-failed", "false").unwrap();
    assert_eq!(settings::get("keep-failed").unwrap(), "false");
    let e = settings::get("no-such-setting-xyz").unwrap_err();
    assert!(e.to_string().contains("no-such-setting-xyz"), "{e}");
    let e = settings::set("no-such-setting-xyz", "1").unwrap_err();
    assert!(e.to_string().contains("no-such-setting-xyz"), "{e}");
}
