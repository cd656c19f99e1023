//! Store paths that Nix hands back as C `StorePath` objects (2.32+), turned into full paths.
//!
//! No C function prints a whole store path. From 2.33 one is assembled from the store dir,
//! `nix_store_path_hash` (20 raw bytes, printed here in Nix's base-32) and
//! `nix_store_path_name`; 2.32 has only the name (see `realise.rs` for how it copes).
//!
//! Compiled (and its pure parts unit-tested) on every version, used from 2.32.
#![cfg_attr(not(nix_at_least_2_33), allow(dead_code))]

use std::ffi::c_void;
use std::ptr::NonNull;

#[cfg(nix_at_least_2_33)]
use crate::context::Context;
use crate::context::{StringOut, string_callback};
#[cfg(nix_at_least_2_33)]
use crate::error::Result;
#[cfg(nix_at_least_2_33)]
use crate::store::{Store, StorePath};

/// Nix's base-32 alphabet (no e, o, u, t).
const NIX32_CHARS: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Prints `bytes` in Nix's base-32, as in store path hashes: 20 bytes give 32 characters.
pub(crate) fn nix32(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let low = u16::from(bytes[i]) >> j;
        let high = bytes.get(i + 1).map_or(0, |&x| u16::from(x) << (8 - j));
        out.push(NIX32_CHARS[usize::from((low | high) & 0x1f)] as char);
    }
    out
}

/// The name part of a C store path (`<name>` in `<store>/<hash>-<name>`).
///
/// # Safety
/// `path` must point to a live `StorePath`.
pub(crate) unsafe fn path_name(path: *const nix_sys::StorePath) -> String {
    let mut out = StringOut::default();
    // SAFETY: the caller guarantees a live path; the callback copies into `out` during the call.
    unsafe { nix_sys::nix_store_path_name(path, Some(string_callback), out.as_user_data()) };
    out.0.unwrap_or_default()
}

/// An owned copy of a C store path that Nix lends for the duration of a callback.
pub(crate) struct OwnedCPath(NonNull<nix_sys::StorePath>);

// SAFETY: a StorePath is an immutable value object (a hash and a name); it is not tied to a thread.
unsafe impl Send for OwnedCPath {}

impl OwnedCPath {
    /// Copies `path`; `None` only if Nix returns no copy (out of memory).
    ///
    /// # Safety
    /// `path` must point to a live `StorePath`.
    pub(crate) unsafe fn clone_from(path: *const nix_sys::StorePath) -> Option<OwnedCPath> {
        // SAFETY: the caller guarantees a live path.
        NonNull::new(unsafe { nix_sys::nix_store_path_clone(path.cast_mut()) }).map(OwnedCPath)
    }

    /// Takes ownership of a path a C function returned to the caller.
    pub(crate) fn from_owned(path: NonNull<nix_sys::StorePath>) -> OwnedCPath {
        OwnedCPath(path)
    }

    pub(crate) fn as_ptr(&self) -> *const nix_sys::StorePath {
        self.0.as_ptr()
    }

    /// The name part.
    pub(crate) fn name(&self) -> String {
        // SAFETY: self owns a live path.
        unsafe { path_name(self.as_ptr()) }
    }
}

impl Drop for OwnedCPath {
    fn drop(&mut self) {
        // SAFETY: the pointer came from nix_store_path_clone (or another owning constructor)
        // and is freed once.
        unsafe { nix_sys::nix_store_path_free(self.0.as_ptr()) }
    }
}

/// Collects copies of the paths a C callback lends (`nix_store_get_fs_closure`, the 2.32+
/// realise callback), and the first failure to copy one.
#[derive(Default)]
pub(crate) struct PathSink {
    pub(crate) paths: Vec<(String, OwnedCPath)>,
    pub(crate) lost: usize,
}

impl PathSink {
    pub(crate) fn as_user_data(&mut self) -> *mut c_void {
        (self as *mut PathSink).cast()
    }

    /// Records `path` under `label` (an output name, or empty).
    ///
    /// # Safety
    /// `path` must be NULL or point to a live `StorePath`.
    pub(crate) unsafe fn push(&mut self, label: String, path: *const nix_sys::StorePath) {
        // SAFETY: the caller guarantees a live path (or NULL, checked here).
        match (!path.is_null()).then(|| unsafe { OwnedCPath::clone_from(path) }).flatten() {
            Some(p) => self.paths.push((label, p)),
            None => self.lost += 1,
        }
    }
}

#[cfg(nix_at_least_2_33)]
impl Store {
    /// The full path (`<store dir>/<hash>-<name>`) of a C store path.
    pub(crate) fn path_from_c(&self, store_dir: &str, path: &OwnedCPath) -> Result<StorePath> {
        let ctx = Context::new();
        let mut hash = nix_sys::nix_store_path_hash_part { bytes: [0; 20] };
        // SAFETY: live context and path; `hash` is a live 20-byte out parameter.
        let rc = unsafe { nix_sys::nix_store_path_hash(ctx.ptr(), path.as_ptr(), &mut hash) };
        ctx.check(rc, || "reading a store path's hash".into())?;
        Ok(StorePath::from_valid(&format!("{store_dir}/{}-{}", nix32(&hash.bytes), path.name())))
    }
}

#[cfg(test)]
mod tests {
    use super::nix32;

    #[test]
    fn nix32_matches_nix() {
        // From Nix's own tests (tests/functional/hash-convert.sh): a sha1 in base 16 and nix32.
        let hex = "800d59cfcd3c05e900cb4e214be48f6b886a08df";
        let bytes: Vec<u8> = (0..20).map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap()).collect();
        assert_eq!(nix32(&bytes), "vw46m23bizj4n8afrc0fj19wrp7mj3c0");
        assert_eq!(nix32(&[0; 20]), "0".repeat(32));
        assert_eq!(nix32(&[]), "");
    }
}
