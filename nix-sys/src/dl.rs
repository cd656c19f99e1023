//! The `dlopen` feature: the Nix libraries are opened on first use instead of being linked.
//!
//! A process linked against `libnixstorec` pays, before `main`, for the dynamic loader mapping
//! it and the ~60 shared objects it pulls in (curl, gnutls, boost, ICU, sqlite, …) and for
//! their static constructors: ~14 ms on the machines this was measured on. A program that
//! often has nothing to ask Nix (a no-op `cargo nix build`) should not pay that. With this
//! feature nothing of Nix is linked: the first call of any function of this crate opens
//! `libnixutilc`, `libnixstorec`, `libnixexprc` and `libnixmainc` (and with them, through
//! their own dependencies, the C++ libraries) and resolves every function once.
//!
//! Where from: the directory named by `NIX_SYS_DLOPEN_DIR` at run time; else the absolute
//! paths the build script found (pkg-config's libdir, or `NIX_SYS_LIB_DIR`), and when one
//! cannot be opened, the library's file name where a linked program would find it
//! (`LD_LIBRARY_PATH`, the program's RUNPATH, the system's directories).
//!
//! Errors: [`load`] returns a [`LoadError`] naming the library or symbol; nix-rs calls it
//! before its first Nix call and turns it into its own error. A function of this crate called
//! while the libraries cannot be loaded prints that error and aborts the process (it cannot
//! return an error through a C signature, and must not unwind out of an `extern "C"` function).

use std::ffi::{CStr, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

use crate::Api;

/// The run-time override of the directory the libraries are loaded from.
pub const DIR_VAR: &str = "NIX_SYS_DLOPEN_DIR";

/// The libraries opened, in this order, with the absolute paths the build script recorded.
const LIBRARIES: [(&str, &str); 4] = [
    ("nixutilc", env!("NIX_SYS_DLOPEN_NIXUTILC")),
    ("nixstorec", env!("NIX_SYS_DLOPEN_NIXSTOREC")),
    ("nixexprc", env!("NIX_SYS_DLOPEN_NIXEXPRC")),
    ("nixmainc", env!("NIX_SYS_DLOPEN_NIXMAINC")),
];

/// Why the Nix libraries could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadError {
    /// A library could not be opened.
    Library {
        /// Its path.
        path: PathBuf,
        /// What the dynamic loader said.
        reason: String,
    },
    /// A symbol nix-sys needs is in none of the libraries.
    Symbol {
        /// The symbol.
        name: String,
        /// The libraries searched.
        libraries: Vec<PathBuf>,
    },
    /// The libraries are of another minor release than the headers nix-sys was built with.
    Version {
        /// What `nix_version_get` says.
        found: String,
        /// The libraries.
        libraries: Vec<PathBuf>,
    },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Library { path, reason } => write!(
                f,
                "cannot load the Nix library {}: {reason} (nix-sys was built against Nix {}; set {DIR_VAR} \
                 to the directory holding libnixstorec etc. of that version)",
                path.display(),
                crate::BUILT_VERSION
            ),
            LoadError::Symbol { name, libraries } => write!(
                f,
                "the Nix libraries loaded ({}) have no function `{name}`: they are not Nix {} (set {DIR_VAR} \
                 to the directory of that version's libraries)",
                libraries.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                crate::BUILT_VERSION
            ),
            LoadError::Version { found, libraries } => write!(
                f,
                "the Nix libraries loaded ({}) are Nix {found}, but nix-sys was built against Nix {} (its C API \
                 differs between minor releases); set {DIR_VAR} to the directory of that version's libraries",
                libraries.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                crate::BUILT_VERSION
            ),
        }
    }
}

impl std::error::Error for LoadError {}

/// What was loaded: the libraries (kept open for the life of the process) and the functions.
pub(crate) struct Loaded {
    /// Never read: held so that the libraries stay loaded (dropping one would `dlclose` it).
    _libraries: Vec<Library>,
    api: Api,
    cxx: crate::cxx::Symbols,
}

static LOADED: OnceLock<Result<Loaded, LoadError>> = OnceLock::new();

/// The paths the libraries are opened from: `$NIX_SYS_DLOPEN_DIR/lib<name>.so` when that is
/// set, else the ones found at build time.
pub fn library_paths() -> Vec<PathBuf> {
    let dir = std::env::var_os(DIR_VAR).filter(|d| !d.is_empty()).map(PathBuf::from);
    LIBRARIES
        .iter()
        .map(|(name, built)| match &dir {
            Some(d) => d.join(format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)),
            None => PathBuf::from(built),
        })
        .collect()
}

fn open_all() -> Result<Loaded, LoadError> {
    let paths = library_paths();
    let mut libraries = Vec::with_capacity(paths.len());
    let by_name_too = std::env::var_os(DIR_VAR).is_none_or(|d| d.is_empty());
    for path in &paths {
        // SAFETY: opening a library runs its initialisers (and those of its dependencies):
        // Nix's libraries are made to be loaded by any program (they are what `nix` links),
        // and this runs once (inside LOADED's initialisation). RTLD_GLOBAL makes them visible
        // to each other as when linked; RTLD_NOW reports a missing dependency here, not later.
        let open = |p: &std::ffi::OsStr| unsafe { Library::open(Some(p), RTLD_NOW | RTLD_GLOBAL) };
        let lib = match open(path.as_os_str()) {
            Ok(lib) => lib,
            // Where a linked program would look (`LD_LIBRARY_PATH`, this program's RUNPATH,
            // the system's directories), e.g. when the build-time directory is not readable
            // by the user running the program.
            Err(e) => match path.file_name().filter(|_| by_name_too).map(open) {
                Some(Ok(lib)) => lib,
                Some(Err(by_name)) => {
                    return Err(LoadError::Library { path: path.clone(), reason: format!("{e}; by name: {by_name}") });
                }
                None => return Err(LoadError::Library { path: path.clone(), reason: e.to_string() }),
            },
        };
        libraries.push(lib);
    }
    let find = |name: &CStr| -> Option<*mut c_void> {
        libraries.iter().find_map(|lib| {
            // SAFETY: the symbol's address is only read here, as a data pointer; what it points
            // to is given its type by `Api::resolve` from the header's declaration.
            unsafe { lib.get::<*mut c_void>(name.to_bytes_with_nul()) }.ok().map(|s| *s)
        })
    };
    let api = Api::resolve(&find);
    let Some(version_get) = api.nix_version_get else {
        return Err(LoadError::Symbol { name: "nix_version_get".into(), libraries: paths });
    };
    // SAFETY: nix_version_get takes nothing and returns a static NUL-terminated string; it
    // needs no initialisation.
    let found = unsafe { CStr::from_ptr(version_get()) }.to_string_lossy().into_owned();
    if minor_release(&found) != minor_release(crate::BUILT_VERSION) {
        return Err(LoadError::Version { found, libraries: paths });
    }
    let cxx = crate::cxx::Symbols::resolve(&find).map_err(|name| LoadError::Symbol { name, libraries: paths })?;
    Ok(Loaded { _libraries: libraries, api, cxx })
}

/// `2.26` of `2.26.3` (and of `2.26.3pre…`).
fn minor_release(version: &str) -> String {
    version.split('.').take(2).map(|p| p.trim_end_matches(|c: char| !c.is_ascii_digit())).collect::<Vec<_>>().join(".")
}

/// Stops the process: a function the headers declare is not in the loaded libraries (where a
/// linked program would not have linked).
pub(crate) fn missing(name: &str) -> ! {
    eprintln!(
        "error: the Nix libraries loaded ({}) have no function `{name}`",
        library_paths().iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    std::process::abort()
}

/// Loads the Nix libraries now (once per process; later calls return the first result).
pub fn load() -> Result<(), LoadError> {
    LOADED.get_or_init(open_all).as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Whether the Nix libraries have been loaded into this process (by [`load`] or a first call).
pub fn is_loaded() -> bool {
    LOADED.get().is_some_and(|r| r.is_ok())
}

/// What was loaded, loading the libraries first if needed; a process that cannot load them
/// stops here, with the error (see the module docs).
fn loaded() -> &'static Loaded {
    match LOADED.get_or_init(open_all) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::abort()
        }
    }
}

/// The resolved C functions (see [`loaded`]).
pub(crate) fn api() -> &'static Api {
    &loaded().api
}

/// The resolved C++ symbols (see [`loaded`]).
pub(crate) fn cxx() -> &'static crate::cxx::Symbols {
    &loaded().cxx
}

#[cfg(test)]
mod tests {
    use super::minor_release;

    #[test]
    fn minor_release_ignores_patch_and_suffixes() {
        assert_eq!(minor_release("2.26.3"), "2.26");
        assert_eq!(minor_release("2.26"), "2.26");
        assert_eq!(minor_release("2.33.0pre20251101"), "2.33");
        assert_ne!(minor_release("2.26.3"), minor_release("2.27.0"));
    }
}
