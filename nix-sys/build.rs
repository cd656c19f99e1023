//! Finds the Nix C API and generates bindings for it.
//!
//! Order, as in openssl-sys and libgit2-sys:
//! 1. `NIX_SYS_INCLUDE_DIR` + `NIX_SYS_LIB_DIR` (+ `NIX_SYS_VERSION`): use exactly these.
//! 2. pkg-config, `nix-util-c`, `nix-store-c`, `nix-expr-c`, `nix-main-c` in [`MIN_VERSION`, `MAX_VERSION`).
//! 3. pkg-config again, with the prefix that `scripts/setup-nix` builds appended to
//!    `PKG_CONFIG_PATH`, so that after one run of that script plain `cargo build` works.
//!
//! Dependents get `DEP_NIX_VERSION`, `DEP_NIX_INCLUDE`, `DEP_NIX_LIBDIR`, `DEP_NIX_BINDIR` and
//! `DEP_NIX_CFGS` (the version cfgs below, comma separated).
//!
//! Version cfgs: `nix_at_least_2_MM` for every minor release from 2.22 up to the one found, so
//! code reads e.g. `#[cfg(nix_at_least_2_33)]`, and `nix_2_26` when exactly 2.26.x is found.
//!
//! Supported: Nix 2.26 to 2.35 (`build/version.rs`). Anything else stops the build with a
//! message naming the version found, the range and the overrides; `NIX_SYS_ALLOW_UNTESTED=1`
//! accepts a newer release.

use std::env;
use std::path::{Path, PathBuf};

#[path = "build/version.rs"]
mod version;

#[cfg(feature = "dlopen")]
#[path = "build/dlopen.rs"]
mod dlopen;

const MIN_VERSION: &str = "2.26";
/// pkg-config accepts any 2.x from 2.26; the supported range is checked after (see
/// `build/version.rs`), so that a too-new Nix gets a message naming it rather than "not found".
const MAX_VERSION: &str = "3.0";
/// The version `scripts/setup-nix` builds, and so the name of its cache prefix.
const SETUP_NIX_VERSION: &str = "2.26.3";
const LIBRARIES: [&str; 4] = ["nix-util-c", "nix-store-c", "nix-expr-c", "nix-main-c"];
/// The shared libraries of those, as the linker names them (`lib<name>.so`).
const LIBRARY_FILES: [&str; 4] = ["nixutilc", "nixstorec", "nixexprc", "nixmainc"];

/// Whether the Nix libraries are linked (the default) or loaded on first use (the `dlopen`
/// feature: nothing is linked, and `src/dl.rs` opens the libraries found here by absolute path).
fn linked() -> bool {
    env::var_os("CARGO_FEATURE_DLOPEN").is_none()
}

/// Reads an environment variable and tells cargo to rerun when it changes.
fn env(name: &str) -> Option<String> {
    println!("cargo::rerun-if-env-changed={name}");
    env::var(name).ok().filter(|v| !v.is_empty())
}

struct Found {
    version: String,
    /// Where the version came from (for error messages).
    source: String,
    include_dirs: Vec<PathBuf>,
    lib_dirs: Vec<PathBuf>,
    prefix: Option<PathBuf>,
}

fn main() {
    println!("cargo::rerun-if-changed=wrapper.h");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=build/version.rs");
    let found = find_nix().unwrap_or_else(|e| {
        eprintln!("{e}");
        panic!("{e}");
    });
    let allow_untested = env(version::ALLOW_UNTESTED_VAR).is_some_and(|v| v == "1");
    let (major, minor) = version::check_version(&found.version, &found.source, allow_untested).unwrap_or_else(|e| {
        eprintln!("{e}");
        panic!("{e}");
    });

    for name in version::all_cfg_names() {
        println!("cargo::rustc-check-cfg=cfg({name})");
    }
    let cfgs = version::version_cfgs(major, minor);
    // The few C++ symbols nix-rs reaches where the C API has no function (see src/lib.rs,
    // `cxx`): `nix::unix::triggerInterrupt` (libnixutil, every version) and, before 2.32,
    // `nix::setLogFormat` (libnixmain) and `nix::verbosity` (libnixutil).
    if linked() {
        println!("cargo::rustc-link-lib=dylib=nixutil");
        if (major, minor) < (2, 32) {
            println!("cargo::rustc-link-lib=dylib=nixmain");
        }
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
    // The `dlopen` feature opens each library by the absolute path found now (see src/dl.rs);
    // the first directory that has it, else the first library directory.
    for name in LIBRARY_FILES {
        let file = format!("{}{name}{}", env::consts::DLL_PREFIX, env::consts::DLL_SUFFIX);
        let path =
            found.lib_dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()).unwrap_or_else(|| libdir.join(&file));
        println!("cargo::rustc-env=NIX_SYS_DLOPEN_{}={}", name.to_uppercase(), path.display());
    }
    // nix-sys's own tests run without LD_LIBRARY_PATH.
    for dir in &found.lib_dirs {
        println!("cargo::rustc-link-arg=-Wl,-rpath,{}", dir.display());
    }

    generate_bindings(&found.include_dirs);
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
            if linked() {
                for name in LIBRARY_FILES {
                    println!("cargo::rustc-link-lib=dylib={name}");
                }
                println!("cargo::rustc-link-search=native={lib}");
            }
            return Ok(Found {
                version,
                source: "NIX_SYS_VERSION".into(),
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
        let lib = pkg_config::Config::new()
            .range_version(MIN_VERSION..MAX_VERSION)
            .cargo_metadata(linked())
            .probe(name)
            .map_err(|e| e.to_string())?;
        let prefix = pkg_config::get_variable(name, "prefix").ok().map(PathBuf::from);
        match &mut found {
            None => {
                found = Some(Found {
                    source: format!("pkg-config {name}"),
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
    #[cfg(feature = "dlopen")]
    {
        let text = dlopen::rewrite(&bindings.to_string()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(out.join("bindings.rs"), text).expect("nix-sys: cannot write bindings.rs");
    }
    #[cfg(not(feature = "dlopen"))]
    bindings.write_to_file(out.join("bindings.rs")).expect("nix-sys: cannot write bindings.rs");
}
