//! The Nix versions nix-sys supports, as pure functions (the build script includes this file,
//! and so does `tests/version_range.rs`, which tests it without a Nix).

/// The oldest supported minor release of Nix 2 (the C API gained `nix_store_get_storedir`,
/// `nix_store_real_path` and the eval-state builder in 2.26).
pub const OLDEST_MINOR: u32 = 26;
/// The newest minor release whose C API headers nix-rs has been checked against.
pub const NEWEST_MINOR: u32 = 35;
/// Set to `1` to build against a Nix outside [`OLDEST_MINOR`]..=[`NEWEST_MINOR`] anyway.
pub const ALLOW_UNTESTED_VAR: &str = "NIX_SYS_ALLOW_UNTESTED";
/// The first minor for which a `nix_at_least_2_MM` cfg exists (the C API appeared in 2.22).
pub const FIRST_CFG_MINOR: u32 = 22;
/// The last minor for which a cfg name is declared (room for untested newer releases).
pub const LAST_CFG_MINOR: u32 = 40;

/// `2.26.3`, `2.35.0pre20260101_abcdef`, `2.31` → `(2, 26)`, …; `None` for anything else.
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Checks that `version` (as found by pkg-config or given in `NIX_SYS_VERSION`) is in the
/// supported range, unless `allow_untested`. `source` says where the version came from, for the
/// message. Returns `(major, minor)`.
pub fn check_version(version: &str, source: &str, allow_untested: bool) -> Result<(u32, u32), String> {
    let (major, minor) = parse_version(version)
        .ok_or_else(|| format!("nix-sys: cannot read the Nix version {version:?} ({source}); expected e.g. 2.26.3"))?;
    let supported = major == 2 && (OLDEST_MINOR..=NEWEST_MINOR).contains(&minor);
    if supported {
        return Ok((major, minor));
    }
    let too_old = major < 2 || (major == 2 && minor < OLDEST_MINOR);
    if allow_untested && !too_old {
        return Ok((major, minor));
    }
    let why = if too_old {
        format!(
            "it is older than 2.{OLDEST_MINOR}, whose C API nix-rs needs (nix_store_get_storedir, \
             nix_store_real_path, the eval-state builder); {ALLOW_UNTESTED_VAR} cannot help"
        )
    } else {
        format!(
            "it is newer than 2.{NEWEST_MINOR}, the newest release nix-rs was checked against; \
             set {ALLOW_UNTESTED_VAR}=1 to build against it anyway (untested)"
        )
    };
    Err(format!(
        "nix-sys: found Nix {version} ({source}), but nix-sys supports Nix 2.{OLDEST_MINOR} to \
         2.{NEWEST_MINOR}: {why}.\nOverrides: NIX_SYS_INCLUDE_DIR + NIX_SYS_LIB_DIR + \
         NIX_SYS_VERSION pick another Nix, PKG_CONFIG_PATH another pkg-config prefix, \
         {ALLOW_UNTESTED_VAR}=1 accepts a newer one."
    ))
}

/// The version cfgs for Nix `major.minor`: `nix_at_least_2_MM` for every minor from
/// [`FIRST_CFG_MINOR`] up to the one found, and `nix_2_26` for the 2.26 series.
pub fn version_cfgs(major: u32, minor: u32) -> Vec<String> {
    let top = if major > 2 { NEWEST_MINOR.max(minor) } else { minor }.min(LAST_CFG_MINOR);
    let mut cfgs: Vec<String> = (FIRST_CFG_MINOR..=top).map(|m| format!("nix_at_least_2_{m}")).collect();
    if (major, minor) == (2, 26) {
        cfgs.push("nix_2_26".to_owned());
    }
    cfgs
}

/// Every cfg name nix-sys may emit (for `cargo::rustc-check-cfg`), whatever the version.
pub fn all_cfg_names() -> Vec<String> {
    let mut names: Vec<String> = (FIRST_CFG_MINOR..=LAST_CFG_MINOR).map(|m| format!("nix_at_least_2_{m}")).collect();
    names.push("nix_2_26".to_owned());
    names
}
