//! What this process offers the builders Nix forks from it, outside the derivations: a memfd
//! kept open under a known name, which a builder finds among its parent's descriptors
//! (`cargo_nix_unit::offer`). Used for the jobserver ([`crate::jobserver`]) and the units'
//! incremental directories ([`crate::incremental`]).

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::FromRawFd;

/// A memfd named `name` holding `text`, offered while the returned file is open.
pub fn memfd(name: &str, text: &str) -> std::io::Result<File> {
    let name = CString::new(name).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `name` is a NUL-terminated string alive for the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(text.as_bytes())?;
    Ok(file)
}
