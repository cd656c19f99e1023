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
        let root = auto.join(auto_root_name(&link));
        let tmp = auto.join(format!(".tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&link, &tmp).map_err(|e| Error::io("creating GC root", &tmp, e))?;
        std::fs::rename(&tmp, &root).map_err(|e| Error::io("creating GC root", &root, e))
    }

    /// Like [`Store::add_indirect_root`], but without asking anyone when the state directory
    /// of the store on this machine already holds the root (`gcroots/auto/<name>` → `link`,
    /// named as Nix names it): cheap enough to call for every root on every build, so a root
    /// whose registration once failed (or predates it) is registered by the next build.
    pub fn ensure_indirect_root(&self, link: &Path) -> Result<()> {
        let link = std::path::absolute(link).map_err(|e| Error::io("resolving GC root", link, e))?;
        if let Some(state) = self.state_dir() {
            let root = state.join("gcroots/auto").join(auto_root_name(&link));
            if std::fs::read_link(&root).is_ok_and(|t| t == link) {
                return Ok(());
            }
        }
        self.add_indirect_root(&link)
    }

    /// The socket of the daemon serving this store, when it is one: Nix's canonical URI is
    /// `daemon` (the default socket: `$NIX_DAEMON_SOCKET_PATH`, else
    /// `<state dir>/daemon-socket/socket`) or `unix://<socket>`.
    pub fn daemon_socket(&self) -> Result<Option<PathBuf>> {
        let uri = self.uri()?;
        Ok(daemon_socket_of(&uri))
    }
}

/// Whether `link` is registered as an indirect GC root in the state directory `state`
/// (`<state>/gcroots/auto/<name>` → `link`, named as Nix names it): what
/// [`Store::ensure_indirect_root`] checks before registering, without a store.
pub fn indirect_root_registered(state: &Path, link: &Path) -> bool {
    let Ok(link) = std::path::absolute(link) else { return false };
    std::fs::read_link(state.join("gcroots/auto").join(auto_root_name(&link))).is_ok_and(|t| t == link)
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

/// The name Nix gives the root of `link` in `gcroots/auto`: the SHA-1 of the path in Nix's
/// base-32 (`LocalStore::addIndirectRoot`).
pub(crate) fn auto_root_name(link: &Path) -> String {
    use sha1::Digest;
    use std::os::unix::ffi::OsStrExt;
    nix32(&sha1::Sha1::digest(link.as_os_str().as_bytes()))
}

/// Nix's base-32 (`printHash32`): its own alphabet, the last 5-bit group first.
fn nix32(hash: &[u8]) -> String {
    const CHARS: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let len = (hash.len() * 8 - 1) / 5 + 1;
    (0..len)
        .rev()
        .map(|n| {
            let (i, j) = (n * 5 / 8, n * 5 % 8);
            let low = hash[i] >> j;
            let high = if i + 1 < hash.len() { u16::from(hash[i + 1]) << (8 - j) } else { 0 };
            CHARS[((u16::from(low) | high) & 0x1f) as usize] as char
        })
        .collect()
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
    fn nix32_follows_nix() {
        // Store path hashes are nix32 of 20 bytes: all-zero bytes print as 32 zeros, and one
        // bit at each end lands at the other end of the string.
        assert_eq!(nix32(&[0; 20]), "0".repeat(32));
        let mut first = [0u8; 20];
        first[0] = 1;
        assert_eq!(nix32(&first), format!("{}1", "0".repeat(31)));
        let mut last = [0u8; 20];
        last[19] = 0x80;
        assert_eq!(nix32(&last), format!("h{}", "0".repeat(31)), "bit 159 is the top bit of the first digit");
        assert_eq!(auto_root_name(Path::new("/a/b")).len(), 32);
        assert_ne!(auto_root_name(Path::new("/a/b")), auto_root_name(Path::new("/a/c")));
    }
}
