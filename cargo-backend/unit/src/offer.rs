//! What the `cargo nix` running a build offers the builders Nix forks from it, with nothing in
//! the derivation (whose every byte is part of the unit's identity): memfds it keeps open,
//! found among the parent's descriptors. With a local store and no sandbox, Nix forks the
//! builder from the `cargo nix` process itself; anywhere else (a daemon's build, a sandbox with
//! its own PID namespace, a build user that may not read the parent's `/proc` entries) nothing
//! is found, and the builder does without.

use std::os::unix::ffi::OsStrExt;

/// The text of the memfd named `marker` that process `pid` keeps open, if this process can
/// read it.
pub fn read(pid: u32, marker: &str) -> Option<String> {
    let prefix = format!("/memfd:{marker} ");
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let target = target.as_os_str().as_bytes();
        if target.starts_with(prefix.as_bytes()) || target == &prefix.as_bytes()[..prefix.len() - 1] {
            return std::fs::read_to_string(entry.path()).ok();
        }
    }
    None
}

/// [`read`] from this process's parent.
pub fn from_parent(marker: &str) -> Option<String> {
    read(std::os::unix::process::parent_id(), marker)
}
