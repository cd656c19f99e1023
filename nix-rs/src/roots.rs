//! Garbage-collector roots that any user can make.
//!
//! An indirect root is a symlink outside the store (`./result`, `target/…/.nix-roots/x`) that
//! points into it, registered with the collector by a second link in the state directory,
//! `<state>/gcroots/auto/<hash>` → the first link. The collector follows both; once the first
//! link is gone the second is stale and it removes it.
//!
//! Only the owner of the state directory (root, on a multi-user install) can write
//! `gcroots/auto`. Nix's own client therefore asks the daemon to write it, with the worker
//! operation `AddIndirectRoot` (`UDSRemoteStore::addIndirectRoot`), which the daemon grants to
//! every user it lets connect. The 2.26 C API has no function for roots, so nix-rs does what
//! Nix's client does:
//!
//! - a store served by a daemon (`daemon`, `unix://…`, or `auto` resolving to one): the same
//!   worker operation, over a connection of its own to the daemon's socket ([`daemon`]);
//! - a local store: the `gcroots/auto` link itself, as `LocalStore::addIndirectRoot` does
//!   (this needs write access to the state directory, as building in that store does).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::store::Store;

mod daemon;

impl Store {
    /// Registers `link`, a symlink outside the store that points into it, as an indirect
    /// garbage-collector root (what `nix build` does for `./result`): while `link` exists and
    /// points to a store path, the collector keeps that path; once `link` is removed, the root
    /// is stale and the path can be collected.
    ///
    /// Works for any user: a daemon store is asked to register it (Nix's `AddIndirectRoot`
    /// operation), a local store gets `<state>/gcroots/auto/<hash>` → `link` written directly
    /// (see the module documentation). An error for stores not on this machine.
    pub fn add_indirect_root(&self, link: &Path) -> Result<()> {
        let link = std::path::absolute(link).map_err(|e| Error::io("resolving GC root", link, e))?;
        if let Some(socket) = self.daemon_socket()? {
            return daemon::add_indirect_root(&socket, &link);
        }
        let state = self.state_dir().ok_or_else(|| {
            Error::invalid(
                "GC root",
                format!("store '{}' is not on this machine; cannot add a root", self.requested_uri()),
            )
        })?;
        let auto = state.join("gcroots/auto");
        std::fs::create_dir_all(&auto).map_err(|e| Error::io("creating GC roots directory", &auto, e))?;
        let root = auto.join(format!("libnix-{}", link_hash(&link)));
        let tmp = auto.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&link, &tmp).map_err(|e| Error::io("creating GC root", &tmp, e))?;
        std::fs::rename(&tmp, &root).map_err(|e| Error::io("creating GC root", &root, e))
    }

    /// The socket of the daemon serving this store, when it is one: Nix's canonical URI is
    /// `daemon` (the default socket: `$NIX_DAEMON_SOCKET_PATH`, else
    /// `<state dir>/daemon-socket/socket`) or `unix://<socket>`.
    pub fn daemon_socket(&self) -> Result<Option<PathBuf>> {
        let uri = self.uri()?;
        Ok(daemon_socket_of(&uri))
    }
}

/// The socket named by a canonical store URI (see [`Store::daemon_socket`]).
fn daemon_socket_of(uri: &str) -> Option<PathBuf> {
    let without_query = uri.split('?').next().unwrap_or("");
    if without_query == "daemon" || without_query == "unix://" {
        if let Some(p) = std::env::var_os("NIX_DAEMON_SOCKET_PATH").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let state = std::env::var_os("NIX_STATE_DIR")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/nix/var/nix"));
        return Some(state.join("daemon-socket/socket"));
    }
    without_query.strip_prefix("unix://").map(PathBuf::from)
}

/// A stable name for the root of `link` (hex of a 64-bit FNV-1a of the path).
fn link_hash(link: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in link.as_os_str().as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uris_name_their_socket() {
        assert_eq!(daemon_socket_of("unix:///run/x/socket"), Some(PathBuf::from("/run/x/socket")));
        assert_eq!(daemon_socket_of("unix:///run/x/socket?max-connections=2"), Some(PathBuf::from("/run/x/socket")));
        assert_eq!(daemon_socket_of("local"), None);
        assert_eq!(daemon_socket_of("ssh-ng://host"), None);
        // `daemon` depends on the environment; it is always some socket.
        assert!(daemon_socket_of("daemon").is_some_and(|p| p.ends_with("socket")));
    }

    #[test]
    fn link_hash_is_stable_and_distinguishes_paths() {
        assert_eq!(link_hash(Path::new("/a/b")), link_hash(Path::new("/a/b")));
        assert_ne!(link_hash(Path::new("/a/b")), link_hash(Path::new("/a/c")));
        assert_eq!(link_hash(Path::new("")), "cbf29ce484222325");
    }
}
