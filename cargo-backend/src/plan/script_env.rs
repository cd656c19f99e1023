//! What of the user's environment a build script sees, and what of it is the script's identity.
//!
//! cargo runs build scripts with its whole environment and reruns one when a variable it
//! declared with `rerun-if-env-changed` changes (or when its files change). Here the
//! environment a script sees is written into its derivation, so it lands in a world-readable
//! `.drv` file: passing everything would copy tokens and passwords into the store. A script
//! therefore sees, besides what cargo sets:
//!
//! - the **documented set** ([`is_documented`]): the variables -sys crates and their helpers
//!   (`pkg-config`, `cc`, `cmake`, `bindgen`, `openssl-sys`, `prost-build`) read to find native
//!   libraries and tools;
//! - every variable the script **declared** with `rerun-if-env-changed` on its last run
//!   (recorded per unit outside the store, in the plan cache). A script that declares a variable
//!   which is set but which it could not see (nothing says what a script reads before it first
//!   runs) is run again in the same build with it, so the first build is already what cargo's
//!   would be ([`crate::build_with_cache`]).
//!
//! Not `PATH` and not `HOME`, which differ from user to user and would give every user of a
//! shared store their own build-script runs (and so their own copy of every crate above a
//! build script). `PATH` is the toolchain's (its `bin`, the C compiler's directory,
//! `/usr/local/bin`, `/usr/bin`, `/bin`: where `pkg-config`, `cmake`, `protoc` and `git` are
//! found), so `rustc` and `cargo` are the toolchain's, never a rustup proxy; a tool elsewhere is
//! named by its documented variable (`PKG_CONFIG`, `PROTOC`, `CMAKE`, `CC`). `HOME` is a fresh
//! directory in the build. A script that declares `PATH` or `HOME` sees the user's.
//!
//! What decides whether a script reruns is cargo's rule: once a script has run, its identity
//! covers the values of the variables it declared, not the rest of what it sees
//! ([`narrow_key`]); so changing `OTHER_KNOB` reruns exactly the scripts that declared it, and
//! changing `PATH` reruns none (cargo does not either). Before its first run, the documented set
//! is its identity.
//!
//! Values are passed as they are. With a sandbox or build users (multi-user Nix), a path a
//! variable names (a `PKG_CONFIG_PATH` directory, `OPENSSL_DIR`) must be readable by the build
//! user and visible in the sandbox; when it is not, the script fails as it would with a wrong
//! path (pkg-config's "not found" naming the variable), and the unit's build log says so.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use crate::toolchain::hex;

/// Tools whose variables `cc`, `cmake` and friends read, bare (`CC`), per target
/// (`CC_x86_64_unknown_linux_gnu`, `CC_x86_64-unknown-linux-gnu`) and per kind (`TARGET_CC`,
/// `HOST_CC`).
const TOOL_VARS: &[&str] = &[
    "CC",
    "CXX",
    "AR",
    "RANLIB",
    "CFLAGS",
    "CXXFLAGS",
    "CPPFLAGS",
    "LDFLAGS",
    "ARFLAGS",
    "CC_SHELL_ESCAPED_FLAGS",
    "CMAKE_GENERATOR",
    "CMAKE_TOOLCHAIN_FILE",
    "CMAKE_PREFIX_PATH",
    "BINDGEN_EXTRA_CLANG_ARGS",
    "PKG_CONFIG_PATH",
    "PKG_CONFIG_LIBDIR",
    "PKG_CONFIG_SYSROOT_DIR",
];

/// Other variables of the documented set, by exact name.
const EXACT: &[&str] = &[
    "PKG_CONFIG",
    "LIBCLANG_PATH",
    "LIBCLANG_STATIC_PATH",
    "CLANG_PATH",
    "LLVM_CONFIG_PATH",
    "PROTOC",
    "PROTOC_INCLUDE",
    "CMAKE",
    "CRATE_CC_NO_DEFAULTS",
    "SDKROOT",
];

/// Whether `name` is in the documented set every build script sees (see the module docs).
///
/// `PKG_CONFIG_*`, `OPENSSL_*`, the tool variables (`CC`, `CFLAGS`, `PKG_CONFIG_PATH`, …) with their target forms,
/// the names above, and the library overrides `<LIB>_DIR`, `<LIB>_LIB_DIR`,
/// `<LIB>_INCLUDE_DIR`, `<LIB>_STATIC`, `<LIB>_DYNAMIC`, `<LIB>_NO_VENDOR`,
/// `<LIB>_NO_PKG_CONFIG` — except the session's own directories (`XDG_*`, `*_RUNTIME_DIR`) and
/// cargo's and rustup's variables (`CARGO_*`, `RUSTUP_*`: cargo sets its own for scripts).
pub fn is_documented(name: &str) -> bool {
    if name.starts_with("CARGO") || name.starts_with("RUSTUP_") || name.starts_with("XDG_") {
        return false;
    }
    if name.starts_with("PKG_CONFIG_") || name.starts_with("OPENSSL_") || EXACT.contains(&name) {
        return true;
    }
    let bare = name.strip_prefix("TARGET_").or_else(|| name.strip_prefix("HOST_")).unwrap_or(name);
    for tool in TOOL_VARS {
        if bare == *tool {
            return true;
        }
        // A target suffix: lower-case, as target triples are (not `CC_ENABLE_DEBUG_OUTPUT`).
        if let Some(triple) = name.strip_prefix(tool).and_then(|r| r.strip_prefix('_')) {
            if triple.chars().any(|c| c.is_ascii_lowercase()) {
                return true;
            }
        }
    }
    if name.ends_with("_RUNTIME_DIR") {
        return false;
    }
    ["_DIR", "_LIB_DIR", "_INCLUDE_DIR", "_STATIC", "_DYNAMIC", "_NO_VENDOR", "_NO_PKG_CONFIG"]
        .iter()
        .any(|s| name.len() > s.len() && name.ends_with(s))
}

/// What a build script sees of `user` (the environment `cargo nix` runs in): the documented
/// set and what it `declared` on its last run.
pub fn visible(user: &BTreeMap<String, String>, declared: &BTreeSet<String>) -> BTreeMap<String, String> {
    user.iter()
        .filter(|(k, _)| is_documented(k) || declared.contains(k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The identity of a script that has run: `base` (everything but the user's environment) and
/// the values of the variables it declared (an unset one counts as unset).
pub fn narrow_key(base: &str, user: &BTreeMap<String, String>, declared: &BTreeSet<String>) -> String {
    let mut h = Sha256::new();
    h.update(base.as_bytes());
    for name in declared {
        h.update(b"\0");
        h.update(name.as_bytes());
        match user.get(name) {
            Some(v) => {
                h.update(b"=");
                h.update(v.as_bytes());
            }
            None => h.update(b"\x01unset"),
        }
    }
    hex(&h.finalize())
}

/// The environment of this process, as text (non-UTF-8 variables are left out: a derivation's
/// environment is text).
pub fn snapshot() -> BTreeMap<String, String> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_documented_set() {
        for yes in [
            "PKG_CONFIG_PATH",
            "PKG_CONFIG_ALLOW_CROSS",
            "PKG_CONFIG",
            "CC",
            "CXX",
            "AR",
            "CFLAGS",
            "CXXFLAGS",
            "LDFLAGS",
            "CC_x86_64_unknown_linux_gnu",
            "CFLAGS_x86_64-unknown-linux-gnu",
            "TARGET_CC",
            "HOST_CFLAGS",
            "OPENSSL_DIR",
            "OPENSSL_STATIC",
            "ZLIB_LIB_DIR",
            "SQLITE3_INCLUDE_DIR",
            "LIBGIT2_NO_VENDOR",
            "NIX_SYS_LIB_DIR",
            "LIBCLANG_PATH",
            "BINDGEN_EXTRA_CLANG_ARGS",
            "BINDGEN_EXTRA_CLANG_ARGS_x86_64_unknown_linux_gnu",
            "PROTOC",
            "CMAKE",
        ] {
            assert!(is_documented(yes), "{yes}");
        }
        for no in [
            "PATH",
            "HOME",
            "TERM",
            "GITHUB_TOKEN",
            "CC_ENABLE_DEBUG_OUTPUT",
            "XDG_CONFIG_DIR",
            "XDG_RUNTIME_DIR",
            "DBUS_RUNTIME_DIR",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "HOSTNAME",
            "_DIR",
        ] {
            assert!(!is_documented(no), "{no}");
        }
    }

    #[test]
    fn a_script_sees_the_documented_set_and_what_it_declared() {
        let user = env(&[("PKG_CONFIG_PATH", "/p"), ("HOME", "/h"), ("KNOB", "1"), ("SECRET", "s"), ("PATH", "/b")]);
        let none = visible(&user, &BTreeSet::new());
        assert_eq!(none, env(&[("PKG_CONFIG_PATH", "/p")]));
        let declared: BTreeSet<String> = ["KNOB".to_owned(), "UNSET".to_owned(), "PATH".to_owned()].into();
        assert_eq!(visible(&user, &declared), env(&[("PKG_CONFIG_PATH", "/p"), ("KNOB", "1"), ("PATH", "/b")]));
    }

    #[test]
    fn a_script_is_rerun_by_what_it_declared_only() {
        let declared: BTreeSet<String> = ["KNOB".to_owned()].into();
        let a = env(&[("KNOB", "1"), ("PKG_CONFIG_PATH", "/p")]);
        let k = narrow_key("base", &a, &declared);
        assert_eq!(k, narrow_key("base", &env(&[("KNOB", "1"), ("PKG_CONFIG_PATH", "/q")]), &declared));
        assert_ne!(k, narrow_key("base", &env(&[("KNOB", "2")]), &declared));
        assert_ne!(k, narrow_key("base", &env(&[]), &declared), "unset differs from set");
        assert_ne!(narrow_key("base", &env(&[]), &declared), narrow_key("base", &env(&[("KNOB", "")]), &declared));
        assert_ne!(k, narrow_key("other", &a, &declared));
    }
}
