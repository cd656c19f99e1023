//! Store, StorePath, settings and init against real temporary stores.

mod common;

use std::collections::HashSet;

use nix_rs::testing::TempStore;
use nix_rs::{Error, Store, settings};

#[test]
fn opens_a_temp_store_and_reports_it() {
    let t = TempStore::new().unwrap();
    assert_eq!(t.store_dir().unwrap(), t.dir().join("nix/store").to_str().unwrap());
    assert_eq!(t.version().unwrap(), nix_rs::nix_version());
    let uri = t.store().uri().unwrap();
    assert!(uri.starts_with("local"), "{uri}");
}

#[test]
fn bad_uri_is_an_error_naming_it() {
    let e = Store::open("nosuchscheme://x").unwrap_err();
    assert!(matches!(e, Error::Nix { .. }), "{e:?}");
    let s = e.to_string();
    assert!(s.contains("opening store 'nosuchscheme://x'"), "{s}");
}

#[test]
fn nul_in_uri_is_an_error_not_a_crash() {
    let e = Store::open("local\0?x").unwrap_err();
    assert!(matches!(e, Error::NulByte { .. }), "{e:?}");
    let e = Store::open_with_params("local", &[("root", "a\0b")]).unwrap_err();
    assert!(e.to_string().contains("store parameter 'root'"), "{e}");
}

#[test]
fn binary_cache_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(&format!("file://{}", dir.path().display())).unwrap();
    assert!(s.uri().unwrap().starts_with("file://"));
    assert_eq!(s.store_dir().unwrap(), "/nix/store");
    // Its paths have no files here: real_path says so instead of naming a missing file.
    assert!(!s.is_on_this_machine());
    let p = s.parse_path("/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-hello").unwrap();
    let e = s.real_path(&p).unwrap_err().to_string();
    assert!(e.contains("not on this machine") && e.contains(&dir.path().display().to_string()), "{e}");
}

#[test]
fn a_store_can_become_the_default_for_helper_processes() {
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
fn parses_store_paths() {
    let t = TempStore::new().unwrap();
    let dir = t.store_dir_path();
    let full = format!("{}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-hello-2.12", dir.display());
    let p = t.parse_path(&full).unwrap();
    assert_eq!(p.name(), "hello-2.12");
    assert_eq!(p.hash_part(), "g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q");
    assert_eq!(p.to_string(), full);
    assert_eq!(p.as_str(), full);
    let q = p.clone();
    assert_eq!(p, q);
    let set: HashSet<_> = [p.clone(), q].into_iter().collect();
    assert_eq!(set.len(), 1);
    assert!(!t.is_valid_path(&p).unwrap());
    assert_eq!(t.real_path(&p).unwrap(), std::path::PathBuf::from(&full));
}

#[test]
fn malformed_and_outside_paths_are_rejected_with_nix_message() {
    let t = TempStore::new().unwrap();
    let e = t.parse_path("/tmp/definitely-not-in-store").unwrap_err();
    assert!(e.to_string().contains("not in the Nix store"), "{e}");
    let bad_hash = format!("{}/tooshort-hello", t.store_dir_path().display());
    let e = t.parse_path(&bad_hash).unwrap_err();
    assert!(e.to_string().contains(&bad_hash), "{e}");
    // A path in another store dir is outside this store.
    let e = t.parse_path("/nix/store/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-hello").unwrap_err();
    assert!(e.to_string().contains("not in the Nix store"), "{e}");
    let e = t.parse_path("a\0b").unwrap_err();
    assert!(matches!(e, Error::NulByte { .. }));
}

#[test]
fn settings_round_trip_and_bad_key() {
    // A setting no concurrent test depends on (settings are process-wide and unlocked in Nix;
    // it only matters when a build fails) and that stays a global setting in every version
    // (Nix 2.35 moved `tarball-ttl` out of the global settings).
    settings::set("keep-failed", "true").unwrap();
    assert_eq!(settings::get("keep-failed").unwrap(), "true");
    settings::set("keep-failed", "false").unwrap();
    assert_eq!(settings::get("keep-failed").unwrap(), "false");
    let e = settings::get("no-such-setting-xyz").unwrap_err();
    assert!(e.to_string().contains("no-such-setting-xyz"), "{e}");
    let e = settings::set("no-such-setting-xyz", "1").unwrap_err();
    assert!(e.to_string().contains("no-such-setting-xyz"), "{e}");
}

#[test]
fn init_is_idempotent_and_first_options_win() {
    nix_rs::init().unwrap();
    nix_rs::init().unwrap();
    let current = nix_rs::InitOptions::default();
    let other = current.clone().echo_build_logs(!current.echo_build_logs);
    let e = nix_rs::init_with(other).unwrap_err();
    assert!(e.to_string().contains("already initialised"), "{e}");
    assert!(nix_rs::nix_version().starts_with("2."));
}
