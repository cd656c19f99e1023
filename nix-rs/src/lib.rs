//! A safe, thread-aware Rust API for the Nix store, in-process.
//!
//! - [`Store`]: open a store by URI (`auto`, `daemon`, `local?…`, `file:///…`, …), parse
//!   [`StorePath`]s, check validity, copy closures between stores, realise derivations and read
//!   their build logs.
//! - [`DerivationBuilder`]: create a derivation in the store and learn its `.drv` path and output
//!   paths before anything is built.
//! - [`Store::add_path`]: add a local file or directory tree (with an exclusion filter).
//! - [`settings`]: read and change Nix's global settings.
//! - [`interrupt`]: stop the builds in progress (for a Ctrl-C handler).
//!
//! Nothing here spawns `nix` or writes a `.nix` file.
//!
//! # Initialisation
//! Every entry point initialises the Nix libraries once ([`init`]); call [`init_with`] first to
//! choose otherwise than the defaults (which keep build output off this process's stderr).
//!
//! # Threads
//! - [`Store`] is `Send + Sync`. Nix's store objects lock their own state, and every call from
//!   nix-rs uses its own `nix_c_context`, so many threads may query, realise and copy through one
//!   `Store` at once. A daemon store serializes concurrent builds unless it is opened with
//!   `max-connections=N` (see [`Store::open`]).
//! - [`StorePath`], [`Derivation`] and [`BuildFailure`] are plain owned data.
//! - The evaluator (Boehm GC) is confined to one thread that nix-rs owns: creating derivations
//!   and adding sources are sent to it over a channel, so callers may be any thread and never
//!   need to register with the garbage collector. Those operations are therefore serialized; each
//!   takes well under a millisecond.
//! - [`settings::set`] changes process-wide state: call it before other threads use Nix.
//!
//! # Nix versions
//! Built against the Nix found by `nix-sys` (2.26 to 2.35), using that release's own C API:
//! one code path per capability, chosen at compile time from nix-sys's `nix_at_least_2_MM`
//! cfgs. [`capabilities()`] says what the linked Nix can do; an operation it cannot do returns
//! [`Error::Unsupported`]. On 2.26–2.32, `nix_store_realise` reports a failed build as success;
//! [`Store::realise`] checks that every output is valid and turns a failure into
//! [`Error::BuildFailed`] with the tail of the build log (2.33+ reports it itself).
//!
//! # Store scripting
//! [`Store::derivation`], [`Store::closure`], [`Store::copy_path_to`] and [`Store::add_text`];
//! see the table in the README ("Supported Nix versions") for how each version does them.

mod c_path;
mod capabilities;
mod context;
mod derivation;
mod derivation_json;
mod error;
mod eval;
mod interrupt;
mod realise;
mod roots;
mod scripting;
pub mod settings;
mod source;
mod store;
pub mod testing;

use std::sync::OnceLock;

pub use capabilities::{Capabilities, Capability, capabilities};
pub use context::strip_ansi;
pub use derivation::{Derivation, DerivationBuilder, DerivationOutputs};
pub use error::{BuildFailure, Error, NixErrorCode, Result};
pub use interrupt::{interrupt, is_interrupted};
pub use roots::indirect_root_registered;
pub use source::{AddPathOptions, FileKind};
pub use store::{Store, StorePath};

use context::Context;

/// Choices that must be made before Nix is initialised.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InitOptions {
    /// Echo builders' output (and Nix's progress messages) to this process's stderr, as the
    /// `nix` CLI does. Default: `false`; logs are always kept in the store's log directory.
    pub echo_build_logs: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions { echo_build_logs: std::env::var_os("LIBNIX_ECHO_BUILD_LOGS").is_some_and(|v| v == "1") }
    }
}

impl InitOptions {
    /// Sets [`InitOptions::echo_build_logs`].
    pub fn echo_build_logs(mut self, echo: bool) -> Self {
        self.echo_build_logs = echo;
        self
    }
}

static INIT: OnceLock<(InitOptions, Result<(), String>)> = OnceLock::new();

/// Initialises the Nix libraries (util and store) with the default [`InitOptions`]. Called by
/// every entry point; safe to call from any thread, any number of times.
pub fn init() -> Result<()> {
    init_with(InitOptions::default())
}

/// Initialises the Nix libraries with `options`. The first call wins: a later call with other
/// options returns an error.
pub fn init_with(options: InitOptions) -> Result<()> {
    let (used, result) = INIT.get_or_init(|| {
        let result = init_libraries(&options);
        (options.clone(), result)
    });
    if let Err(message) = result {
        return Err(Error::Nix {
            doing: "initialising the Nix libraries".into(),
            code: NixErrorCode::Unknown,
            name: None,
            message: message.clone(),
        });
    }
    if *used != options {
        return Err(Error::invalid(
            "init options",
            format!("Nix was already initialised with {used:?}; init_with must come first"),
        ));
    }
    Ok(())
}

fn init_libraries(options: &InitOptions) -> Result<(), String> {
    // With nix-sys's `dlopen` feature (this crate's `dlopen`), the libraries are loaded now.
    nix_sys::load().map_err(|e| e.to_string())?;
    let ctx = Context::new();
    // SAFETY: ctx is live; these init functions run once, guarded by INIT.
    let rc = unsafe { nix_sys::nix_libutil_init(ctx.ptr()) };
    ctx.check(rc, || "nix_libutil_init".into()).map_err(|e| e.to_string())?;
    // SAFETY: as above.
    let rc = unsafe { nix_sys::nix_libstore_init(ctx.ptr()) };
    ctx.check(rc, || "nix_libstore_init".into()).map_err(|e| e.to_string())?;
    quiet_build_logs(options)
}

/// Keeps builders' output and Nix's progress messages ("building '…'") off this process's
/// stderr: the simple logger without build logs (Nix's `raw` log format) and verbosity
/// `error`. Nix 2.32+ has C functions for both; older releases get the same two changes
/// through the C++ functions those C functions wrap (see `nix_sys::cxx`).
#[cfg(nix_at_least_2_32)]
fn quiet_build_logs(options: &InitOptions) -> Result<(), String> {
    if options.echo_build_logs {
        return Ok(());
    }
    let ctx = Context::new();
    // SAFETY: live context; NUL-terminated format name. Runs once inside INIT, before this crate
    // lets any other Nix call happen, so no thread uses the logger meanwhile.
    let rc = unsafe { nix_sys::nix_set_log_format(ctx.ptr(), c"raw".as_ptr()) };
    ctx.check(rc, || "nix_set_log_format(raw)".into()).map_err(|e| e.to_string())?;
    // SAFETY: live context; as above.
    let rc = unsafe { nix_sys::nix_set_verbosity(ctx.ptr(), nix_sys::NIX_LVL_ERROR) };
    ctx.check(rc, || "nix_set_verbosity(error)".into()).map_err(|e| e.to_string())
}

#[cfg(not(nix_at_least_2_32))]
fn quiet_build_logs(options: &InitOptions) -> Result<(), String> {
    if options.echo_build_logs {
        return Ok(());
    }
    let raw = nix_sys::cxx::LOG_FORMAT_RAW;
    // SAFETY: runs once inside INIT, before this crate lets any other Nix call happen, so no
    // thread reads these globals meanwhile. setLogFormat takes a reference to an int-sized
    // enum (a pointer to a live u32 here) and replaces the logger, as the C API's
    // nix_set_log_format does from 2.32 on; it throws only for log formats it does not know.
    // See nix_sys::cxx for why these symbols are the same in every release 2.26–2.31.
    unsafe {
        nix_sys::cxx::setLogFormat(&raw);
        nix_sys::cxx::set_verbosity(nix_sys::cxx::LVL_ERROR);
    }
    Ok(())
}

/// The version of the Nix libraries loaded at run time (e.g. `2.26.3`).
pub fn nix_version() -> String {
    // SAFETY: nix_version_get returns a static NUL-terminated string.
    unsafe { context::borrowed_c_str(nix_sys::nix_version_get()) }
}
