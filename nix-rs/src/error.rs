//! The one error type of nix-rs.

use std::fmt;
use std::path::PathBuf;

/// A `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The C API's error codes (`nix_err`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NixErrorCode {
    /// `NIX_ERR_UNKNOWN`: an error not otherwise classified (or a C++ exception of another kind).
    Unknown,
    /// `NIX_ERR_OVERFLOW`: a value did not fit.
    Overflow,
    /// `NIX_ERR_KEY`: a key (setting, attribute) does not exist.
    Key,
    /// `NIX_ERR_NIX_ERROR`: a `nix::Error`, with a name and info message.
    NixError,
    /// A code this version of nix-rs does not know.
    Other(i32),
}

impl NixErrorCode {
    pub(crate) fn from_raw(code: nix_sys::nix_err) -> Self {
        match code {
            nix_sys::NIX_ERR_UNKNOWN => Self::Unknown,
            nix_sys::NIX_ERR_OVERFLOW => Self::Overflow,
            nix_sys::NIX_ERR_KEY => Self::Key,
            nix_sys::NIX_ERR_NIX_ERROR => Self::NixError,
            other => Self::Other(other),
        }
    }
}

/// What went wrong when a derivation was realised but did not produce its outputs.
#[derive(Debug, Clone)]
pub struct BuildFailure {
    /// The derivation that failed (`/nix/store/…-name.drv`).
    pub drv_path: String,
    /// Its builder, if the `.drv` could be read.
    pub builder: Option<String>,
    /// What is known about the builder's failure.
    pub reason: String,
    /// The outputs that are not valid after the build.
    pub missing_outputs: Vec<String>,
    /// The last lines of the build log (oldest first), if the store keeps logs here.
    pub log_tail: Vec<String>,
}

impl fmt::Display for BuildFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "building '{}' failed: {}", self.drv_path, self.reason)?;
        if !self.missing_outputs.is_empty() {
            write!(f, " (missing outputs: {})", self.missing_outputs.join(", "))?;
        }
        if !self.log_tail.is_empty() {
            write!(f, "\nlast {} log lines:", self.log_tail.len())?;
            for line in &self.log_tail {
                write!(f, "\n> {line}")?;
            }
        }
        Ok(())
    }
}

/// Every error nix-rs returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A call into Nix failed; `message` is Nix's own.
    #[error("{doing}: {message}")]
    Nix {
        /// What nix-rs was doing, naming the culprit (e.g. "opening store 'foo://'").
        doing: String,
        /// The C API's error code.
        code: NixErrorCode,
        /// The `nix::Error` class name (for [`NixErrorCode::NixError`]).
        name: Option<String>,
        /// Nix's message.
        message: String,
    },
    /// A string given to Nix contains a NUL byte, which C strings cannot carry.
    #[error("{what} contains a NUL byte: {value:?}")]
    NulByte {
        /// Which argument.
        what: String,
        /// The offending value.
        value: String,
    },
    /// An argument was rejected before it reached Nix.
    #[error("invalid {what}: {message}")]
    InvalidArgument {
        /// Which argument.
        what: String,
        /// Why.
        message: String,
    },
    /// A build ran (or was attempted) and did not produce its outputs.
    #[error("{0}")]
    BuildFailed(Box<BuildFailure>),
    /// The operation was stopped by [`crate::interrupt`] (e.g. on Ctrl-C); the text says what
    /// was being done. Not a build failure: nothing was registered for it.
    #[error("interrupted while {0}")]
    Interrupted(String),
    /// A file or directory under a tree given to [`Store::add_path`](crate::Store::add_path)
    /// disappeared while the tree was being read (e.g. another program deleted it). Nothing was
    /// added to the store.
    #[error(
        "'{}' disappeared while '{}' was being added to the store; nothing was added ({message})",
        path.display(),
        root.display()
    )]
    SourceVanished {
        /// The tree being added.
        root: PathBuf,
        /// What disappeared (`root` itself, or a file or directory under it).
        path: PathBuf,
        /// Nix's message.
        message: String,
    },
    /// A file-system operation failed.
    #[error("{doing} '{}': {source}", path.display())]
    Io {
        /// What nix-rs was doing.
        doing: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A Rust callback called by Nix (e.g. a source filter) panicked; the panic was caught.
    #[error("a callback panicked inside Nix: {0}")]
    CallbackPanicked(String),
    /// The linked Nix cannot do this: its C API lacks what the operation needs (see
    /// [`crate::capabilities`]). Nothing was done.
    #[error("{capability} needs Nix {needs} or newer; nix-rs was built against Nix {found}")]
    Unsupported {
        /// What was asked for.
        capability: crate::Capability,
        /// The first Nix release that can do it (e.g. `2.33`).
        needs: &'static str,
        /// The Nix version nix-rs was built against.
        found: &'static str,
    },
    /// The evaluator thread is gone (it panicked earlier); derivations can no longer be created.
    #[error("the Nix evaluator thread is not running")]
    EvaluatorGone,
}

impl Error {
    pub(crate) fn io(doing: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { doing, path: path.into(), source }
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument { what: what.into(), message: message.into() }
    }

    /// Whether this error is an [`Error::Interrupted`].
    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Interrupted(_))
    }

    /// The build failure, if this is one.
    pub fn as_build_failure(&self) -> Option<&BuildFailure> {
        match self {
            Error::BuildFailed(b) => Some(b),
            _ => None,
        }
    }
}
