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
//! **Shared machines.** The lock files live in one directory per user: `$XDG_RUNTIME_DIR/
//! cargo-nix-locks`, else `<temp dir>/cargo-nix-locks-<uid>`. In a world-writable temp dir
//! another user could create that name first (a directory they own, or a symlink to one), and
//! see or redirect the lock files. So the directory is created with mode 0700 and then opened
//! without following symlinks (`O_NOFOLLOW`); it is used only if it is a real directory owned
//! by this user that no one else can write (mode 0700; a 0755 one of ours is narrowed), else
//! [`LockDir::open`] refuses with an error naming it. Lock files are then made relative to
//! that open directory (`openat`, `O_NOFOLLOW`), so nothing can redirect them after the check.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix_rs::{Store, StorePath};
use sha2::{Digest, Sha256};

use crate::Error;

/// The verified lock directory, open.
#[derive(Debug)]
pub struct LockDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// The lock directory of this user: `$XDG_RUNTIME_DIR/cargo-nix-locks` when that variable
/// names a directory, else `<temp dir>/cargo-nix-locks-<uid>`.
pub fn default_lock_dir() -> PathBuf {
    let base = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_dir());
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    match base {
        Some(d) => d.join("cargo-nix-locks"),
        None => std::env::temp_dir().join(format!("cargo-nix-locks-{uid}")),
    }
}

fn refuse(path: &Path, why: &str) -> Error {
    Error::Io(
        format!(
            "refusing the lock directory {} ({why}); another user may have created it first. \
             Remove it, or point XDG_RUNTIME_DIR or TMPDIR to a directory only you can write",
            path.display()
        ),
        std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    )
}

fn c_path(path: &Path) -> Result<CString, Error> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| Error::Io(format!("lock directory {}", path.display()), e.into()))
}

impl LockDir {
    /// Creates `path` (mode 0700) if missing and opens it, refusing anything but a real
    /// directory owned by this user that only this user can write: a symlink (not followed),
    /// another file type, another owner, or group/other write permission. One of ours that
    /// others can read is narrowed to 0700.
    pub fn open(path: &Path) -> Result<LockDir, Error> {
        let c = c_path(path)?;
        // SAFETY: `c` is a NUL-terminated path alive for the call.
        let created = unsafe { libc::mkdir(c.as_ptr(), 0o700) } == 0;
        if !created {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EEXIST) {
                return Err(Error::Io(format!("creating the lock directory {}", path.display()), err));
            }
        }
        // SAFETY: as above; O_NOFOLLOW makes a symlink at `path` fail with ELOOP instead of
        // being followed, O_DIRECTORY makes anything but a directory fail with ENOTDIR.
        let raw =
            unsafe { libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC) };
        if raw < 0 {
            let err = std::io::Error::last_os_error();
            // Say why from what is there (lstat follows nothing): ELOOP/ENOTDIR for a symlink
            // or a file, EACCES for another user's private directory.
            // SAFETY: geteuid has no preconditions and cannot fail.
            let me = unsafe { libc::geteuid() };
            return Err(match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => refuse(path, "it is a symbolic link"),
                Ok(m) if !m.is_dir() => refuse(path, "it is not a directory"),
                Ok(m) if m.uid() != me => refuse(path, &format!("it is owned by uid {}, not by uid {me}", m.uid())),
                _ => Error::Io(format!("opening the lock directory {}", path.display()), err),
            });
        }
        // SAFETY: `raw` is a descriptor this function just opened and owns from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        if created {
            // mkdir's mode was narrowed by the umask; make it exactly 0700.
            // SAFETY: fchmod on a descriptor we own.
            if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
                return Err(Error::Io(
                    format!("setting the mode of {}", path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        let st = fstat(&fd).map_err(|e| Error::Io(format!("checking the lock directory {}", path.display()), e))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(refuse(path, "it is not a directory"));
        }
        if st.st_uid != me {
            return Err(refuse(path, &format!("it is owned by uid {}, not by uid {me}", st.st_uid)));
        }
        let mode = st.st_mode & 0o7777;
        if mode & 0o022 != 0 {
            // Others could have put files in it: refuse.
            return Err(refuse(path, &format!("its mode is {mode:o}, not 700")));
        }
        if mode != 0o700 {
            // Ours and writable only by us (e.g. 755, as cargo nix made it before it checked):
            // nothing of anyone else's can be inside; narrow it.
            // SAFETY: fchmod on a descriptor we own.
            if unsafe { libc::fchmod(fd.as_raw_fd(), 0o700) } != 0 {
                return Err(Error::Io(
                    format!("setting the mode of {}", path.display()),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        Ok(LockDir { fd, path: path.to_path_buf() })
    }

    /// This user's lock directory ([`default_lock_dir`]), opened once per process.
    pub fn for_this_user() -> Result<&'static LockDir, Error> {
        static DIR: OnceLock<Result<LockDir, String>> = OnceLock::new();
        DIR.get_or_init(|| LockDir::open(&default_lock_dir()).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|m| Error::Io(m.clone(), std::io::Error::from(std::io::ErrorKind::PermissionDenied)))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens (creating, mode 0600) the file `name` inside, never following a symlink.
    fn open_file(&self, name: &str) -> std::io::Result<File> {
        let c = CString::new(name).map_err(std::io::Error::other)?;
        // SAFETY: openat relative to a directory descriptor we own, a NUL-terminated name.
        let raw = unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a descriptor we just opened; File owns it from here on.
        Ok(unsafe { File::from_raw_fd(raw) })
    }

    /// (device, inode) of `name` inside, without following symlinks.
    fn identity_of(&self, name: &str) -> Option<(u64, u64)> {
        let c = CString::new(name).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstatat relative to our directory descriptor fills `st` on success.
        let rc = unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
        // SAFETY: rc == 0 means `st` was filled.
        (rc == 0).then(|| unsafe { st.assume_init() }).map(|st| (st.st_dev, st.st_ino))
    }

    fn remove(&self, name: &str) {
        if let Ok(c) = CString::new(name) {
            // SAFETY: unlinkat relative to our directory descriptor, a NUL-terminated name.
            unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) };
        }
    }
}

fn fstat(fd: &impl AsRawFd) -> std::io::Result<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat on a live descriptor fills `st` on success.
    if unsafe { libc::fstat(fd.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fstat succeeded, so `st` is initialised.
    Ok(unsafe { st.assume_init() })
}

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct UnitLock {
    /// Holds the lock while open.
    _file: File,
    dir: &'static LockDir,
    name: String,
}

/// Why no lock was taken.
#[derive(Debug)]
pub enum NotLocked {
    /// `stop()` became true while waiting.
    Stopped,
    /// The lock directory or file cannot be used safely.
    Failed(Error),
}

/// The lock file name for `out` on `store`: named after where the output lives on this machine
/// (so two URIs for one store share it) and, for stores elsewhere, the store's URI.
fn lock_name(store: &Store, out: &StorePath) -> Result<String, Error> {
    let mut key = if store.is_on_this_machine() {
        let real = store.real_path(out).map_err(|e| Error::Nix(format!("locating {out}"), e))?;
        real.to_string_lossy().into_owned()
    } else {
        out.to_string()
    };
    if store.state_dir().is_none() {
        key.push('\0');
        key.push_str(&store.uri().map_err(|e| Error::Nix("reading the store URI".into(), e))?);
    }
    let digest = Sha256::digest(key.as_bytes());
    Ok(format!("{}.lock", crate::toolchain::hex(&digest[..16])))
}

impl UnitLock {
    /// Takes the lock for `out`, waiting while another process holds it.
    pub fn acquire(store: &Store, out: &StorePath, stop: impl Fn() -> bool) -> Result<UnitLock, NotLocked> {
        let dir = LockDir::for_this_user().map_err(NotLocked::Failed)?;
        let name = lock_name(store, out).map_err(NotLocked::Failed)?;
        let io =
            |e: std::io::Error| NotLocked::Failed(Error::Io(format!("lock file {}/{name}", dir.path.display()), e));
        loop {
            let file = dir.open_file(&name).map_err(io)?;
            loop {
                // SAFETY: flock on a descriptor this function owns; LOCK_NB makes it return at once.
                let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
                if rc == 0 {
                    break;
                }
                let err = std::io::Error::last_os_error();
                if err.raw_os_error() != Some(libc::EWOULDBLOCK) && err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(io(err));
                }
                if stop() {
                    return Err(NotLocked::Stopped);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            // The holder before us removes the file before releasing it: if ours is no longer
            // the file named `name`, someone may hold the new one. Start again.
            let ours = fstat(&file).map_err(io)?;
            if dir.identity_of(&name) == Some((ours.st_dev, ours.st_ino)) {
                return Ok(UnitLock { _file: file, dir, name });
            }
        }
    }
}

impl Drop for UnitLock {
    fn drop(&mut self) {
        // Removed while still locked, so that no one locks the old file after us (see acquire);
        // closing the file then releases the lock.
        self.dir.remove(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn creates_a_private_directory_and_reuses_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("locks");
        let dir = LockDir::open(&p).unwrap();
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.mode() & 0o7777, 0o700);
        let f = dir.open_file("x.lock").unwrap();
        assert_eq!(f.metadata().unwrap().mode() & 0o777, 0o600);
        assert!(dir.identity_of("x.lock").is_some());
        dir.remove("x.lock");
        assert!(dir.identity_of("x.lock").is_none());
        LockDir::open(&p).expect("our own directory is accepted again");
    }

    #[test]
    fn refuses_symlinks_other_files_and_wide_modes() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let e = LockDir::open(&link).unwrap_err().to_string();
        assert!(e.contains("refusing the lock directory") && e.contains("symbolic link"), "{e}");

        let file = d.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = LockDir::open(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");

        let wide = d.path().join("wide");
        std::fs::create_dir(&wide).unwrap();
        std::fs::set_permissions(&wide, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = LockDir::open(&wide).unwrap_err().to_string();
        assert!(e.contains("its mode is 777, not 700"), "{e}");
        let readable = d.path().join("readable");
        std::fs::create_dir(&readable).unwrap();
        std::fs::set_permissions(&readable, std::fs::Permissions::from_mode(0o755)).unwrap();
        LockDir::open(&readable).expect("ours, writable only by us");
        assert_eq!(std::fs::metadata(&readable).unwrap().mode() & 0o7777, 0o700, "narrowed");
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0, "nothing was created through the link");
    }
}
