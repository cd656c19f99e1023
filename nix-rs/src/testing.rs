//! Throw-away stores for tests and benchmarks.
//!
//! A [`TempStore`] is a real local store in a temporary directory
//! (`local?store=<dir>/nix/store&state=<dir>/state&log=<dir>/log`), removed on drop.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::store::Store;

/// Settings every test store needs on a machine without build users or a sandbox, and without
/// network: `sandbox = false`, `build-users-group =`, `build-hook =`, `substituters =`,
/// `require-sigs = false` (copies from unsigned `file://` caches). Applied once per process,
/// before the first test store opens.
pub const TEST_SETTINGS: &[(&str, &str)] = &[
    ("sandbox", "false"),
    ("build-users-group", ""),
    ("build-hook", ""),
    ("substituters", ""),
    ("require-sigs", "false"),
];

/// Applies [`TEST_SETTINGS`] once.
pub fn apply_test_settings() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        for (k, v) in TEST_SETTINGS {
            crate::settings::set(k, v).map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .clone()
    .map_err(|m| Error::invalid("test settings", m))
}

/// A local store in a temporary directory.
#[derive(Debug)]
pub struct TempStore {
    store: Store,
    uri: String,
    // Dropped last: the store must close before its files go.
    dir: tempfile::TempDir,
}

impl TempStore {
    /// Creates an empty store under the system's temporary directory.
    pub fn new() -> Result<TempStore> {
        Self::with_params(&[])
    }

    /// Creates an empty store and opens it with extra store parameters.
    pub fn with_params(params: &[(&str, &str)]) -> Result<TempStore> {
        apply_test_settings()?;
        let dir = tempfile::Builder::new()
            .prefix("nix-rs-store-")
            .tempdir()
            .map_err(|e| Error::io("creating temporary store", std::env::temp_dir(), e))?;
        let uri = Self::uri_for(dir.path());
        let store = Store::open_with_params(&uri, params)?;
        Ok(TempStore { store, uri, dir })
    }

    /// Creates an empty store whose paths are under `store_dir` but whose files live in its own
    /// temporary directory (Nix's `real` parameter): two such stores with one `store_dir` are
    /// as independent as two machines' `/nix/store`, so paths copy between them. Nix builds
    /// only in a store whose files are at its store dir (or in a sandbox), so this one
    /// receives copies (and can have builds done elsewhere, e.g. by remote builders).
    pub fn with_store_dir(store_dir: &Path) -> Result<TempStore> {
        apply_test_settings()?;
        let dir = tempfile::Builder::new()
            .prefix("nix-rs-store-")
            .tempdir()
            .map_err(|e| Error::io("creating temporary store", std::env::temp_dir(), e))?;
        let (s, d) = (store_dir.display(), dir.path().display());
        let uri = format!("local?store={s}&real={d}/nix/store&state={d}/state&log={d}/log");
        let store = Store::open(&uri)?;
        Ok(TempStore { store, uri, dir })
    }

    /// The URI of a local store rooted at `dir`.
    pub fn uri_for(dir: &Path) -> String {
        let d = dir.display();
        format!("local?store={d}/nix/store&state={d}/state&log={d}/log")
    }

    /// The open store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The URI it was opened with.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The temporary directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the store's files are: `<dir>/nix/store` (for [`TempStore::new`] also the store
    /// directory, the paths' prefix).
    pub fn store_dir_path(&self) -> PathBuf {
        self.dir.path().join("nix/store")
    }
}

impl std::ops::Deref for TempStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// A `std::process::Command` for one of the Nix CLI programs built with the Nix that nix-sys
/// found (`nix`, `nix-store`, `nix-instantiate`, …), aimed at `store_uri` with
/// [`TEST_SETTINGS`] and the `nix-command` feature. For tests and benchmarks that compare
/// against the CLI; nothing in nix-rs runs it.
pub fn nix_cli(program: &str, store_uri: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(Path::new(nix_sys::BINDIR).join(program));
    cmd.env("NIX_REMOTE", store_uri).env("NIX_CONFIG", test_nix_config());
    cmd
}

/// [`TEST_SETTINGS`] (plus `experimental-features = nix-command`) in `nix.conf` syntax, for
/// the `NIX_CONFIG` variable of a child process.
pub fn test_nix_config() -> String {
    let mut config = String::from("experimental-features = nix-command\n");
    for (k, v) in TEST_SETTINGS {
        config.push_str(&format!("{k} = {v}\n"));
    }
    config
}
