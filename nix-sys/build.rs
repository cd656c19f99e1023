//! Finds the Nix C API and generates bindings for it.
//!
//! Order, as in openssl-sys and libgit2-sys:
//! 1. `NIX_SYS_INCLUDE_DIR` + `NIX_SYS_LIB_DIR` (+ `NIX_SYS_VERSION`): use exactly these.
//! 2. pkg-config, `nix-util-c`, `nix-store-c`, `nix-expr-c` in [`MIN_VERSION`, `MAX_VERSION`).
//! 3. pkg-config again, with the prefix that `scripts/setup-nix` builds appended to
//!    `PKG_CONFIG_PATH`, so that after one run of that script plain `cargo build` works.
//!
//! Dependents get `DEP_NIX_VERSION`, `DEP_NIX_INCLUDE`, `DEP_NIX_LIBDIR`, `DEP_NIX_BINDIR` and
//! `DEP_NIX_CFGS` (the version cfgs below, comma separated).
//!
//! Version cfgs: `nix_at_least_2_MM` for every minor release from 2.22 up to the one found, so
//! code reads e.g. `#[cfg(nix_at_least_2_33)]`, and `nix_2_26` when exactly 2.26.x is found
//! (that series needs workarounds that later ones do not).

use std::env;
use std::path::{Path, PathBuf};

const MIN_VERSION: &str = "2.26";
const MAX_VERSION: &str = "3.0";
/// Minor releases we emit `nix_at_least_2_*` cfgs for (the C API appeared in 2.22).
const KNOWN_MINORS: std::ops::RangeInclusive<u32> = 22..=40;
/// The version `scripts/setup-nix` builds, and so the name of its cache prefix.
const SETUP_NIX_VERSION: &str = "2.26.3";
const LIBRARIES: [&str; 3] = ["nix-util-c", "nix-store-c", "nix-expr-c"];

/// Reads an environment variable and tells cargo to rerun when it changes.
fn env(name: &str) -> Option<String> {
    println!("cargo::rerun-if-env-changed={name}");
    env::var(name).ok().filter(|v| !v.is_empty())
}

struct Found {
    version: String,
    include_dirs: Vec<PathBuf>,
    lib_dirs: Vec<PathBuf>,
    prefix: Option<PathBuf>,
}

fn main() {
    println!("cargo::rerun-if-changed=wrapper.h");
    println!("cargo::rerun-if-changed=build.rs");
    let found = find_nix().unwrap_or_else(|e| {
        eprintln!("{e}");
        panic!("{e}");
    });
    let (major, minor) = parse_version(&found.version)
        .unwrap_or_else(|| panic!("nix-sys: cannot read the Nix version {:?}", found.version));

    let mut cfgs = Vec::new();
    for m in KNOWN_MINORS {
        println!("cargo::rustc-check-cfg=cfg(nix_at_least_2_{m})");
        if major > 2 || minor >= m {
            cfgs.push(format!("nix_at_least_2_{m}"));
        }
    }
    println!("cargo::rustc-check-cfg=cfg(nix_2_26)");
    if (major, minor) == (2, 26) {
        cfgs.push("nix_2_26".to_owned());
        // 2.26 has no C function to quiet the build log echo; nix-rs reaches the two C++
        // globals that do it (see src/lib.rs), which live in libnixutil itself.
        println!("cargo::rustc-link-lib=dylib=nixutil");
    }
    for cfg in &cfgs {
        println!("cargo::rustc-cfg={cfg}");
    }

    let include = found.include_dirs.first().cloned().unwrap_or_default();
    let libdir = found.lib_dirs.first().cloned().unwrap_or_default();
    println!("cargo::metadata=version={}", found.version);
    println!("cargo::metadata=include={}", include.display());
    println!("cargo::metadata=libdir={}", libdir.display());
    println!("cargo::metadata=cfgs={}", cfgs.join(","));
    let bindir = found
        .prefix
        .clone()
        .map(|p| p.join("bin"))
        .or_else(|| libdir.parent().map(|p| p.join("bin")))
        .unwrap_or_default();
    println!("cargo::metadata=bindir={}", bindir.display());
    println!("cargo::rustc-env=NIX_SYS_VERSION={}", found.version);
    println!("cargo::rustc-env=NIX_SYS_BINDIR={}", bindir.display());
    println!("cargo::rustc-env=NIX_SYS_LIBDIR={}", libdir.display());
    // nix-sys's own tests run without LD_LIBRARY_PATH.
    for dir in &found.lib_dirs {
        println!("cargo::rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }

    generate_bindings(&found.include_dirs);
}

fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn find_nix() -> Result<Found, String> {
    let include = env("NIX_SYS_INCLUDE_DIR");
    let lib = env("NIX_SYS_LIB_DIR");
    let version = env("NIX_SYS_VERSION");
    match (include, lib) {
        (Some(include), Some(lib)) => {
            let version = version.ok_or(
                "nix-sys: NIX_SYS_INCLUDE_DIR and NIX_SYS_LIB_DIR are set, so NIX_SYS_VERSION \
                 (e.g. 2.26.3) must be set too",
            )?;
            for name in ["nixutilc", "nixstorec", "nixexprc"] {
                println!("cargo::rustc-link-lib=dylib={name}");
            }
            println!("cargo::rustc-link-search=native={lib}");
            return Ok(Found {
                version,
                include_dirs: vec![include.into()],
                prefix: Path::new(&lib).parent().map(Path::to_path_buf),
                lib_dirs: vec![lib.into()],
            });
        }
        (None, None) => {}
        _ => {
            return Err("nix-sys: set both NIX_SYS_INCLUDE_DIR and NIX_SYS_LIB_DIR, or neither".into());
        }
    }

    env("PKG_CONFIG_PATH");
    let first = probe_pkg_config();
    if let Ok(found) = first {
        return Ok(found);
    }
    let cache_pc = setup_nix_prefix().map(|p| p.join("lib/pkgconfig"));
    if let Some(pc) = cache_pc.as_ref().filter(|p| p.is_dir()) {
        println!("cargo::rerun-if-changed={}", pc.display());
        let mut path = env::var_os("PKG_CONFIG_PATH").unwrap_or_default();
        if !path.is_empty() {
            path.push(":");
        }
        path.push(pc);
        // SAFETY: this build script runs on one thread; nothing reads the environment while
        // it is being changed, and pkg-config (a child process) reads it afterwards.
        unsafe { env::set_var("PKG_CONFIG_PATH", path) };
        if let Ok(found) = probe_pkg_config() {
            return Ok(found);
        }
    }
    Err(format!(
        "\n\nnix-sys: could not find the Nix C API (Nix >= {MIN_VERSION}).\n\n\
         pkg-config looked for {libs} and said:\n  {err}\n\n\
         To fix it, either:\n\
         - run `scripts/setup-nix` from the libnix repository: it builds Nix {SETUP_NIX_VERSION} with \
           its C API into {cache} (about 10 minutes, once), after which this build finds it;\n\
         - or install a Nix >= {MIN_VERSION} with its C API development files (on NixOS / with nix: \
           the `nix.dev` output) and make sure PKG_CONFIG_PATH contains its lib/pkgconfig;\n\
         - or point NIX_SYS_INCLUDE_DIR, NIX_SYS_LIB_DIR and NIX_SYS_VERSION at an installed Nix C API.\n",
        libs = LIBRARIES.join(", "),
        err = first.err().unwrap_or_default().replace('\n', "\n  "),
        cache = cache_pc.map(|p| p.display().to_string()).unwrap_or_else(|| "$HOME/.cache/libnix".into()),
    ))
}

/// The prefix `scripts/setup-nix` installs into (keep in sync with that script).
fn setup_nix_prefix() -> Option<PathBuf> {
    let cache = env("LIBNIX_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| env("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("libnix")))
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".cache/libnix")))?;
    Some(cache.join(format!("nix-{SETUP_NIX_VERSION}")))
}

fn probe_pkg_config() -> Result<Found, String> {
    let mut found: Option<Found> = None;
    for name in LIBRARIES {
        let lib =
            pkg_config::Config::new().range_version(MIN_VERSION..MAX_VERSION).probe(name).map_err(|e| e.to_string())?;
        let prefix = pkg_config::get_variable(name, "prefix").ok().map(PathBuf::from);
        match &mut found {
            None => {
                found = Some(Found {
                    version: lib.version,
                    include_dirs: lib.include_paths,
                    lib_dirs: lib.link_paths,
                    prefix,
                })
            }
            Some(f) => {
                for p in lib.include_paths {
                    if !f.include_dirs.contains(&p) {
                        f.include_dirs.push(p);
                    }
                }
                for p in lib.link_paths {
                    if !f.lib_dirs.contains(&p) {
                        f.lib_dirs.push(p);
                    }
                }
            }
        }
    }
    found.ok_or_else(|| "no libraries probed".into())
}

fn generate_bindings(include_dirs: &[PathBuf]) {
    // Only include paths: the 2.26 .pc files put `-std=c++2a` in Cflags, which is no C flag.
    // The headers use `[[deprecated]]` attributes, which C accepts from C2x on.
    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_arg("-std=c2x")
        .allowlist_function("nix_.*")
        .allowlist_type("nix_.*|NIX_.*|Store|StorePath|EvalState|ValueType|PrimOpFun|PrimOp|BindingsBuilder|ListBuilder|ExternalValue")
        .allowlist_var("NIX_.*")
        // `Value` is a deprecated alias of `nix_value`; bind only the new name.
        .blocklist_type("Value")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .layout_tests(true)
        .generate_comments(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for dir in include_dirs {
        builder = builder.clang_arg(format!("-I{}", dir.display()));
    }
    let bindings =
        builder.generate().unwrap_or_else(|e| panic!("nix-sys: bindgen failed on the Nix C API headers: {e}"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings.write_to_file(out.join("bindings.rs")).expect("nix-sys: cannot write bindings.rs");
}
