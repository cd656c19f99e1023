//! One builder per unit output across `cargo nix` processes sharing a store.
//!
//! Nix's own output locks already make sure that two processes never run the builder of one
//! output at once: the second waits, then finds the output valid and does not build it. But
//! through the 2.26 C API the second cannot tell that it did not build (`nix_store_realise`
//! does not say), and Nix's waiter polls the lock only every `pollInterval` (5 s). So before
//! realising, a worker takes this lock (a `flock` on a file named after the output's real path)
//! and then checks again whether the output is valid: the second process then waits here,
//! wakes within milliseconds of the first finishing, and reports the unit as reused.
//!
//! Best effort: if the lock directory cannot be used, the worker goes on without it (Nix's lock
//! still keeps the build itself single).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix_rs::{Store, StorePath};
use sha2::{Digest, Sha256};

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct UnitLock {
    /// Holds the lock while open.
    _file: File,
    path: PathBuf,
}

/// Where the lock files live: one directory per user, shared by every `cargo nix` of that user.
fn lock_dir() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_dir());
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    match base {
        Some(d) => d.join("cargo-nix-locks"),
        None => std::env::temp_dir().join(format!("cargo-nix-locks-{uid}")),
    }
}

/// The lock file for `out` on `store`: named after where the output lives on this machine (so
/// two URIs for one store share it) and, for stores elsewhere, the store's URI.
fn lock_file(store: &Store, out: &StorePath) -> Option<PathBuf> {
    let real = store.real_path(out).ok()?;
    let mut key = real.to_string_lossy().into_owned();
    if store.state_dir().is_none() {
        key.push('\0');
        key.push_str(&store.uri().ok()?);
    }
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Some(lock_dir().join(format!("{hex}.lock")))
}

impl UnitLock {
    /// Takes the lock for `out`, waiting while another process holds it. `Ok(None)`: no lock
    /// could be used (go on without it). `Err(())`: `stop()` became true while waiting.
    pub fn acquire(store: &Store, out: &StorePath, stop: impl Fn() -> bool) -> Result<Option<UnitLock>, ()> {
        let Some(path) = lock_file(store, out) else { return Ok(None) };
        if let Some(dir) = path.parent() {
            if std::fs::create_dir_all(dir).is_err() {
                return Ok(None);
            }
        }
        loop {
            let Ok(file) = File::options().read(true).write(true).create(true).truncate(false).open(&path) else {
                return Ok(None);
            };
            loop {
                // SAFETY: flock on a descriptor this function owns; LOCK_NB makes it return at once.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc == 0 {
                    break;
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.kind() != std::io::ErrorKind::Interrupted {
                    return Ok(None);
                }
                if stop() {
                    return Err(());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The holder before us removes the file before releasing it: if ours is no longer
            // the file at `path`, someone may hold the new one. Start again.
            if same_file(&file, &path) {
                return Ok(Some(UnitLock { _file: file, path }));
            }
        }
    }
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

impl Drop for UnitLock {
    fn drop(&mut self) {
        // Removed while still locked, so that no one locks the old file after us (see acquire);
        // closing the file then releases the lock.
        let _ = std::fs::remove_file(&self.path);
    }
}
