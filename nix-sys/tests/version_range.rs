//! The build script's version check, run as plain functions (no Nix needed).

#[path = "../build/version.rs"]
#[allow(dead_code)]
mod version;

use version::{check_version, parse_version, version_cfgs};

#[test]
fn every_supported_minor_is_accepted() {
    for minor in 26..=35 {
        let v = format!("2.{minor}.1");
        assert_eq!(check_version(&v, "test", false), Ok((2, minor)), "{v}");
    }
    assert_eq!(check_version("2.35.0pre20260101_abcdef", "test", false), Ok((2, 35)));
}

#[test]
fn too_old_is_an_error_naming_version_range_and_overrides() {
    let e = check_version("2.25.5", "pkg-config nix-store-c", false).unwrap_err();
    for part in ["2.25.5", "pkg-config nix-store-c", "2.26 to 2.35", "NIX_SYS_VERSION", "NIX_SYS_INCLUDE_DIR"] {
        assert!(e.contains(part), "{part:?} missing from: {e}");
    }
    // Older ones stay refused even when untested versions are allowed: their C API lacks what
    // nix-rs calls.
    assert!(check_version("2.18.0", "test", true).is_err());
}

#[test]
fn too_new_is_an_error_unless_allowed() {
    let e = check_version("2.36.0", "NIX_SYS_VERSION", false).unwrap_err();
    for part in ["2.36.0", "2.26 to 2.35", "NIX_SYS_ALLOW_UNTESTED=1", "NIX_SYS_VERSION"] {
        assert!(e.contains(part), "{part:?} missing from: {e}");
    }
    assert_eq!(check_version("2.36.0", "test", true), Ok((2, 36)));
    assert!(check_version("3.0.0", "test", false).is_err());
}

#[test]
fn garbage_is_an_error() {
    let e = check_version("unknown", "NIX_SYS_VERSION", true).unwrap_err();
    assert!(e.contains("\"unknown\"") && e.contains("NIX_SYS_VERSION"), "{e}");
    assert_eq!(parse_version("2"), None);
}

#[test]
fn cfgs_follow_the_version() {
    let cfgs = version_cfgs(2, 26);
    assert!(cfgs.contains(&"nix_2_26".to_owned()));
    assert!(cfgs.contains(&"nix_at_least_2_26".to_owned()));
    assert!(!cfgs.contains(&"nix_at_least_2_27".to_owned()));
    let cfgs = version_cfgs(2, 33);
    assert!(cfgs.contains(&"nix_at_least_2_32".to_owned()) && cfgs.contains(&"nix_at_least_2_33".to_owned()));
    assert!(!cfgs.contains(&"nix_at_least_2_34".to_owned()) && !cfgs.contains(&"nix_2_26".to_owned()));
}
