//! Stores and store paths.

use std::ffi::{CString, c_char, c_void};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::{Context, StringOut, c_string, string_callback};
use crate::derivation::Derivation;
use crate::error::{Error, Result};

/// How many lines of a failed build's log an [`Error::BuildFailed`] carries.
pub const LOG_TAIL_LINES: usize = 25;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// An open Nix store.
///
/// `Send + Sync`: see the crate documentation on threads.
pub struct Store {
    ptr: NonNull<nix_sys::Store>,
    /// Identifies this store to the evaluator thread (which keeps one evaluator per store).
    pub(crate) id: u64,
    requested_uri: String,
    params: Vec<(String, String)>,
    log_dir_override: Option<PathBuf>,
    /// The store dir, read once (it never changes for an open store).
    store_dir: std::sync::OnceLock<String>,
}

// SAFETY: nix_sys::Store wraps a nix::ref<nix::Store>. Nix's store implementations guard their
// mutable state with their own locks (nix::Sync<>, connection pools) and are used from many
// threads by Nix itself (e.g. `nix copy`'s thread pool). nix-rs never shares a nix_c_context
// between threads: every call creates its own.
unsafe impl Send for Store {}
// SAFETY: as above; all methods take &self and are safe to call concurrently.
unsafe impl Sync for Store {}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("uri", &self.requested_uri).field("params", &self.params).finish()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        crate::eval::forget_store(self.id);
        // SAFETY: the pointer came from nix_store_open and is freed once. The evaluator thread
        // holds its own reference to the underlying nix::Store, not to this wrapper.
        unsafe { nix_sys::nix_store_free(self.ptr.as_ptr()) }
    }
}

impl Store {
    /// Opens the store at `uri`: `auto` (what Nix's settings say), `daemon`, `unix:///socket`,
    /// `local`, `local?root=/dir`, `local?store=…&state=…&log=…`, `file:///dir` (a binary
    /// cache), `ssh-ng://host`, … Parameters may be given in the URI's query string.
    pub fn open(uri: &str) -> Result<Store> {
        Self::open_with_params(uri, &[])
    }

    /// Opens the store at `uri` with extra parameters, e.g. `[("max-connections", "8")]`.
    pub fn open_with_params(uri: &str, params: &[(&str, &str)]) -> Result<Store> {
        crate::init()?;
        let uri_c = c_string("store URI", uri)?;
        let mut owned: Vec<[CString; 2]> = Vec::with_capacity(params.len());
        for (k, v) in params {
            owned.push([c_string("store parameter name", k)?, c_string(&format!("store parameter '{k}'"), v)?]);
        }
        let pairs: Vec<[*const c_char; 2]> = owned.iter().map(|[k, v]| [k.as_ptr(), v.as_ptr()]).collect();
        let mut rows: Vec<*mut *const c_char> = pairs.iter().map(|p| p.as_ptr().cast_mut()).collect();
        rows.push(ptr::null_mut());
        let ctx = Context::new();
        // SAFETY: live context; uri is NUL-terminated; `rows` is a NULL-terminated array of
        // pointers to [key, value] pairs of NUL-terminated strings, all alive for the call.
        let raw = unsafe {
            nix_sys::nix_store_open(
                ctx.ptr(),
                uri_c.as_ptr(),
                if params.is_empty() { ptr::null_mut() } else { rows.as_mut_ptr() },
            )
        };
        let ptr = match NonNull::new(raw) {
            Some(p) => p,
            None => {
                ctx.check_last(|| format!("opening store '{uri}'"))?;
                return Err(Error::invalid("store URI", format!("Nix returned no store for '{uri}'")));
            }
        };
        Ok(Store {
            ptr,
            id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            requested_uri: uri.to_owned(),
            params: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            log_dir_override: None,
            store_dir: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut nix_sys::Store {
        self.ptr.as_ptr()
    }

    fn get_string(
        &self,
        doing: &str,
        f: unsafe extern "C" fn(
            *mut nix_sys::nix_c_context,
            *mut nix_sys::Store,
            nix_sys::nix_get_string_callback,
            *mut c_void,
        ) -> nix_sys::nix_err,
    ) -> Result<String> {
        let ctx = Context::new();
        let mut out = StringOut::default();
        // SAFETY: live context and store; the callback copies into `out` during the call.
        let rc = unsafe { f(ctx.ptr(), self.as_ptr(), Some(string_callback), out.as_user_data()) };
        ctx.check(rc, || format!("{doing} of store '{}'", self.requested_uri))?;
        Ok(out.0.unwrap_or_default())
    }

    /// The store's canonical URI (e.g. `local`, `daemon`, `file:///tmp/cache`).
    pub fn uri(&self) -> Result<String> {
        self.get_string("reading the URI", nix_sys::nix_store_get_uri)
    }

    /// The store directory, e.g. `/nix/store`.
    pub fn store_dir(&self) -> Result<String> {
        if let Some(dir) = self.store_dir.get() {
            return Ok(dir.clone());
        }
        let dir = self.get_string("reading the store dir", nix_sys::nix_store_get_storedir)?;
        Ok(self.store_dir.get_or_init(|| dir).clone())
    }

    /// The version of the Nix that serves the store (for a daemon: the daemon's).
    pub fn version(&self) -> Result<String> {
        self.get_string("reading the version", nix_sys::nix_store_get_version)
    }

    /// Parses a full store path (`/nix/store/<hash>-<name>`), rejecting anything else with
    /// Nix's message.
    pub fn parse_path(&self, path: &str) -> Result<StorePath> {
        drop(self.c_path(path)?);
        Ok(StorePath::from_valid(path))
    }

    /// A C `StorePath` for a call, parsed by Nix.
    pub(crate) fn c_path(&self, path: &str) -> Result<CStorePath> {
        let path_c = c_string("store path", path)?;
        let ctx = Context::new();
        // SAFETY: live context and store; NUL-terminated path.
        let raw = unsafe { nix_sys::nix_store_parse_path(ctx.ptr(), self.as_ptr(), path_c.as_ptr()) };
        match NonNull::new(raw) {
            Some(p) => Ok(CStorePath(p)),
            None => {
                ctx.check_last(|| format!("parsing store path '{path}'"))?;
                Err(Error::invalid("store path", format!("Nix rejected '{path}'")))
            }
        }
    }

    /// Whether `path` is valid (registered) in this store.
    pub fn is_valid_path(&self, path: &StorePath) -> Result<bool> {
        let p = self.c_path(path.as_str())?;
        let ctx = Context::new();
        // SAFETY: live context, store and path.
        let valid = unsafe { nix_sys::nix_store_is_valid_path(ctx.ptr(), self.as_ptr(), p.0.as_ptr()) };
        ctx.check_last(|| format!("checking validity of '{path}'"))?;
        Ok(valid)
    }

    /// Where `path` lives on this machine's file system (differs from the store path for
    /// stores with another `root` or `real` directory).
    ///
    /// An error for a store that is not on this machine ([`Store::is_on_this_machine`]): the
    /// path's files are elsewhere (copy them to a local store first with
    /// [`Store::copy_closure_to`]).
    pub fn real_path(&self, path: &StorePath) -> Result<PathBuf> {
        if !self.is_on_this_machine() {
            return Err(Error::invalid(
                "store path",
                format!(
                    "'{path}' has no file on this machine: store '{}' is not on this machine \
                     (copy the path to a local store first)",
                    self.requested_uri
                ),
            ));
        }
        let p = self.c_path(path.as_str())?;
        let ctx = Context::new();
        let mut out = StringOut::default();
        // SAFETY: live context, store and path; the callback copies into `out`.
        let rc = unsafe {
            nix_sys::nix_store_real_path(
                ctx.ptr(),
                self.as_ptr(),
                p.0.as_ptr(),
                Some(string_callback),
                out.as_user_data(),
            )
        };
        ctx.check(rc, || format!("finding the real path of '{path}'"))?;
        Ok(PathBuf::from(out.0.unwrap_or_default()))
    }

    /// Copies `path` and everything it references from this store to `dst`.
    pub fn copy_closure_to(&self, dst: &Store, path: &StorePath) -> Result<()> {
        let p = self.c_path(path.as_str())?;
        let ctx = Context::new();
        // SAFETY: live context, both stores and the path.
        let rc = unsafe { nix_sys::nix_store_copy_closure(ctx.ptr(), self.as_ptr(), dst.as_ptr(), p.0.as_ptr()) };
        ctx.check(rc, || {
            format!("copying the closure of '{path}' from '{}' to '{}'", self.requested_uri, dst.requested_uri)
        })
    }

    /// Reads the derivation `drv_path` (which must be valid in this store and readable from
    /// this machine).
    pub fn read_derivation(&self, drv_path: &StorePath) -> Result<Derivation> {
        let real = self.real_path(drv_path)?;
        let text = std::fs::read_to_string(&real).map_err(|e| Error::io("reading derivation", &real, e))?;
        Derivation::parse_aterm(&text).map_err(|m| Error::invalid("derivation", format!("'{drv_path}': {m}")))
    }

    /// A parameter of the store as opened (URI query or extra parameters; the last one wins).
    pub(crate) fn param(&self, key: &str) -> Option<String> {
        let from_uri = self
            .requested_uri
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='));
        let from_params = self.params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        from_uri.chain(from_params).rfind(|(k, _)| *k == key).map(|(_, v)| v.to_owned())
    }

    /// Whether the store's files live on this machine, judged by the URI it was opened with:
    /// `auto`, `local`, `daemon`, `unix://…`, a path, and `mounted-ssh-ng://…` (a remote
    /// daemon over a store mounted here) are; `ssh-ng://…`, `ssh://…`, binary caches
    /// (`file://…`, `http(s)://…`, `s3://…`) and anything else are not.
    pub fn is_on_this_machine(&self) -> bool {
        self.has_local_state() || self.scheme() == "mounted-ssh-ng"
    }

    fn scheme(&self) -> &str {
        self.requested_uri.split(['?', ':']).next().unwrap_or("")
    }

    /// Whether the store's state (database, GC roots, logs) is on this machine, under Nix's
    /// usual layout unless the URI says otherwise: a local store or a daemon on this machine.
    fn has_local_state(&self) -> bool {
        matches!(self.scheme(), "auto" | "local" | "daemon" | "unix" | "") || self.requested_uri.starts_with('/')
    }

    /// The URI this store was opened with, as given (see [`Store::uri`] for Nix's canonical one).
    pub fn requested_uri(&self) -> &str {
        &self.requested_uri
    }

    /// The URI this store was opened with, its extra parameters appended to the query string.
    pub fn uri_with_params(&self) -> String {
        let mut uri = self.requested_uri.clone();
        for (k, v) in &self.params {
            uri.push(if uri.contains('?') { '&' } else { '?' });
            uri.push_str(&format!("{k}={v}"));
        }
        uri
    }

    /// Makes this store the one Nix's helper processes open: sets Nix's process-wide `store`
    /// setting to [`Store::uri_with_params`].
    ///
    /// Remote builds (Nix's `builders` setting) need it. Nix hands a build to a remote machine
    /// through the build hook (`build-hook`, normally `nix __build-remote`), a separate process
    /// that learns Nix's settings from this one and opens the store the `store` setting names
    /// to copy the derivation's inputs from and its outputs back into. A store opened by URI
    /// in-process is not that store unless this is called; without it the hook would use the
    /// default store (`auto`). Like every setting change, call it before other threads use Nix
    /// (see [`crate::settings`]).
    pub fn set_as_default(&self) -> Result<()> {
        crate::settings::set("store", &self.uri_with_params())
    }

    /// A directory of the store's files on this machine: the `param` parameter, else
    /// `<root>/<under_root>` for a `root` parameter (or a URI that is a path), else the
    /// environment variable `env`, else `default`. `None` when the store is elsewhere.
    fn local_dir(&self, param: &str, env: &str, under_root: &str) -> Option<PathBuf> {
        if let Some(dir) = self.param(param) {
            return Some(PathBuf::from(dir));
        }
        if let Some(root) = self.param("root") {
            return Some(Path::new(&root).join(under_root));
        }
        if self.requested_uri.starts_with('/') {
            return Some(Path::new(self.requested_uri.split('?').next().unwrap_or("")).join(under_root));
        }
        if !self.has_local_state() {
            return None;
        }
        Some(std::env::var_os(env).map(PathBuf::from).unwrap_or_else(|| Path::new("/").join(under_root)))
    }

    /// Tells nix-rs where this store's build logs are on this machine, when the URI does not
    /// say (e.g. a daemon serving a store with its own `log` directory).
    pub fn set_log_dir(&mut self, dir: impl Into<PathBuf>) {
        self.log_dir_override = Some(dir.into());
    }

    /// The directory where this store keeps build logs, when it is on this machine: the one
    /// given to [`Store::set_log_dir`], else the URI's `log` or `root` parameter, else
    /// `$NIX_LOG_DIR` or `/nix/var/log/nix` for local and daemon stores.
    pub fn log_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.log_dir_override {
            return Some(dir.clone());
        }
        self.local_dir("log", "NIX_LOG_DIR", "nix/var/log/nix")
    }

    /// The state directory (database, GC roots) of a store on this machine: the `state` or
    /// `root` parameter, else `$NIX_STATE_DIR` or `/nix/var/nix`.
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.local_dir("state", "NIX_STATE_DIR", "nix/var/nix")
    }

    /// The build log of `drv_path`, if this store keeps one on this machine.
    pub fn build_log(&self, drv_path: &StorePath) -> Result<Option<String>> {
        let Some(dir) = self.log_dir() else { return Ok(None) };
        let base = drv_path.base_name();
        if base.len() < 3 {
            return Ok(None);
        }
        let stem = dir.join("drvs").join(&base[..2]).join(&base[2..]);
        let compressed = stem.with_file_name(format!("{}.bz2", &base[2..]));
        if let Ok(f) = std::fs::File::open(&compressed) {
            let mut text = Vec::new();
            bzip2::read::MultiBzDecoder::new(f)
                .read_to_end(&mut text)
                .map_err(|e| Error::io("decompressing build log", &compressed, e))?;
            return Ok(Some(String::from_utf8_lossy(&text).into_owned()));
        }
        match std::fs::read(&stem) {
            Ok(text) => Ok(Some(String::from_utf8_lossy(&text).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading build log", &stem, e)),
        }
    }
}

/// An owned C `StorePath`, freed on drop.
pub(crate) struct CStorePath(pub(crate) NonNull<nix_sys::StorePath>);

impl Drop for CStorePath {
    fn drop(&mut self) {
        // SAFETY: the pointer came from nix_store_parse_path and is freed once.
        unsafe { nix_sys::nix_store_path_free(self.0.as_ptr()) }
    }
}

/// A store path such as `/nix/store/2ggm…6bc0-hello-2.12.1`, checked by Nix when made by
/// [`Store::parse_path`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StorePath {
    full: String,
    base_start: usize,
}

impl StorePath {
    /// Wraps a path that Nix produced or accepted (so it is well formed).
    pub(crate) fn from_valid(full: &str) -> Self {
        let base_start = full.rfind('/').map_or(0, |i| i + 1);
        StorePath { full: full.to_owned(), base_start }
    }

    /// A store path read back from a record this program wrote earlier (a cache), checked
    /// without Nix: `path` must be `<store_dir>/<hash>-<name>` with the syntax Nix requires
    /// (`StorePath` in Nix's `path.cc`: a 32-character hash in Nix's base-32 alphabet, a name
    /// of at most 211 characters from `[A-Za-z0-9+-._?=]`, not starting with `.`). This says
    /// nothing about whether the path is valid in any store; [`Store::parse_path`] asks Nix.
    pub fn from_recorded(store_dir: &str, path: &str) -> Result<StorePath> {
        let bad = |why: &str| Error::invalid("store path", format!("'{path}': {why}"));
        let dir = store_dir.trim_end_matches('/');
        let base = path
            .strip_prefix(dir)
            .and_then(|rest| rest.strip_prefix('/'))
            .ok_or_else(|| bad(&format!("not in the store dir {store_dir}")))?;
        const NIX32: &str = "0123456789abcdfghijklmnpqrsvwxyz";
        let (hash, name) = base.split_at_checked(32).ok_or_else(|| bad("too short"))?;
        if !hash.chars().all(|c| NIX32.contains(c)) {
            return Err(bad("the hash part is not Nix base-32"));
        }
        let name = name.strip_prefix('-').ok_or_else(|| bad("no '-' after the hash"))?;
        let name_ok = !name.is_empty()
            && name.len() <= 211
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c));
        if !name_ok {
            return Err(bad("invalid name"));
        }
        Ok(StorePath::from_valid(path))
    }

    /// The full path, e.g. `/nix/store/<hash>-<name>`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// `<hash>-<name>`.
    pub fn base_name(&self) -> &str {
        &self.full[self.base_start..]
    }

    /// The 32-character hash part.
    pub fn hash_part(&self) -> &str {
        let base = self.base_name();
        &base[..base.len().min(32)]
    }

    /// The name after the hash (e.g. `hello-2.12.1`, `foo.drv`).
    pub fn name(&self) -> &str {
        self.base_name().get(33..).unwrap_or("")
    }

    /// The path as a `Path`.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.full)
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorePath({:?})", self.full)
    }
}

impl AsRef<Path> for StorePath {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

#[cfg(test)]
mod tests {
    use super::StorePath;

    #[test]
    fn recorded_paths_are_checked_without_nix() {
        let hash = "0123456789abcdfghijklmnpqrsvwxyz";
        let ok = StorePath::from_recorded("/nix/store", &format!("/nix/store/{hash}-foo-1.0.drv")).unwrap();
        assert_eq!(ok.name(), "foo-1.0.drv");
        assert_eq!(ok.hash_part(), hash);
        assert!(StorePath::from_recorded("/tmp/s/nix/store/", &format!("/tmp/s/nix/store/{hash}-x")).is_ok());
        for bad in [
            format!("/other/store/{hash}-foo"),
            format!("/nix/store/{hash}foo"),
            format!("/nix/store/{hash}-"),
            format!("/nix/store/{hash}-.hidden"),
            format!("/nix/store/{hash}-a/b"),
            format!("/nix/store/{hash}-a b"),
            "/nix/store/eeee0123456789abcdfghijklmnpqrsv-foo".to_string(),
            "/nix/store/short-foo".to_string(),
            format!("/nix/store/{hash}-{}", "a".repeat(212)),
        ] {
            assert!(StorePath::from_recorded("/nix/store", &bad).is_err(), "{bad}");
        }
    }
}
