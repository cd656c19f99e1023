//! Store scripting: what a program asks of a store besides building, completed per version
//! (see [`crate::capabilities`]).
//!
//! | operation | 2.26–2.32 | 2.33 | 2.34+ |
//! |---|---|---|---|
//! | [`Store::derivation`] | reads the `.drv` file (stores on this machine) | `nix_store_drv_from_store_path` | same |
//! | [`Store::closure`] | [`Error::Unsupported`] | `nix_store_get_fs_closure` | same |
//! | [`Store::copy_path_to`] | [`Error::Unsupported`] ([`Store::copy_closure_to`] works) | same | `nix_store_copy_path` |
//! | [`Store::add_text`] | evaluator, `builtins.toFile` | same | same |
//!
//! No release has a C function that lists a path's references or its deriver, so there is no
//! closure before 2.33 short of reading Nix's database behind its back, which nix-rs does not do.

use std::collections::BTreeSet;
#[cfg(nix_at_least_2_33)]
use std::ffi::c_void;
#[cfg(nix_at_least_2_33)]
use std::ptr::NonNull;

use crate::capabilities::{Capability, capabilities};
#[cfg(nix_at_least_2_33)]
use crate::context::{Context, StringOut, c_string, string_callback};
use crate::derivation::{Derivation, check_name};
use crate::error::{Error, Result};
use crate::store::{Store, StorePath};

/// An owned `nix_derivation`, freed on drop (2.33+).
#[cfg(nix_at_least_2_33)]
struct CDerivation(NonNull<nix_sys::nix_derivation>);

#[cfg(nix_at_least_2_33)]
impl Drop for CDerivation {
    fn drop(&mut self) {
        // SAFETY: the pointer came from nix_derivation_from_json or nix_store_drv_from_store_path
        // and is freed once.
        unsafe { nix_sys::nix_derivation_free(self.0.as_ptr()) }
    }
}

/// The callback of `nix_store_get_fs_closure`: copies each lent path at once.
///
/// # Safety
/// `userdata` must point to a live `PathSink`; `path` to a live `StorePath` (or be NULL).
#[cfg(nix_at_least_2_33)]
unsafe extern "C" fn collect_path(
    _context: *mut nix_sys::nix_c_context,
    userdata: *mut c_void,
    path: *const nix_sys::StorePath,
) {
    // SAFETY: Store::closure passes a live PathSink; Nix lends the path for the call.
    unsafe { (*userdata.cast::<crate::c_path::PathSink>()).push(String::new(), path) }
}

impl Store {
    /// The derivation `drv_path` (a valid `.drv` in this store): its outputs and their paths,
    /// inputs, builder, arguments and environment.
    ///
    /// Nix 2.33+ asks the store (any store, also a remote one); older releases read the `.drv`
    /// file, so the store must be on this machine ([`Store::read_derivation`]).
    pub fn derivation(&self, drv_path: &StorePath) -> Result<Derivation> {
        if !drv_path.name().ends_with(".drv") {
            return Err(Error::invalid("derivation path", format!("'{drv_path}' is not a .drv store path")));
        }
        self.derivation_impl(drv_path)
    }

    #[cfg(not(nix_at_least_2_33))]
    fn derivation_impl(&self, drv_path: &StorePath) -> Result<Derivation> {
        if !self.is_valid_path(drv_path)? {
            return Err(Error::invalid(
                "derivation path",
                format!("'{drv_path}' is not valid in store '{}'", self.requested_uri()),
            ));
        }
        self.read_derivation(drv_path)
    }

    #[cfg(nix_at_least_2_33)]
    fn derivation_impl(&self, drv_path: &StorePath) -> Result<Derivation> {
        let p = self.c_path(drv_path.as_str())?;
        let ctx = Context::new();
        // SAFETY: live context, store and path.
        let raw = unsafe { nix_sys::nix_store_drv_from_store_path(ctx.ptr(), self.as_ptr(), p.0.as_ptr()) };
        let Some(drv) = NonNull::new(raw).map(CDerivation) else {
            ctx.check_last(|| format!("reading derivation '{drv_path}'"))?;
            return Err(Error::invalid("derivation path", format!("Nix returned no derivation for '{drv_path}'")));
        };
        let mut out = StringOut::default();
        // SAFETY: live context and derivation; the callback copies into `out`.
        let rc = unsafe {
            nix_sys::nix_derivation_to_json(ctx.ptr(), drv.0.as_ptr(), Some(string_callback), out.as_user_data())
        };
        ctx.check(rc, || format!("printing derivation '{drv_path}' as JSON"))?;
        crate::derivation_json::from_json_v4(&out.0.unwrap_or_default(), &self.store_dir()?)
            .map_err(|m| Error::invalid("derivation", format!("'{drv_path}': {m}")))
    }

    /// Writes derivation JSON (version 4) to the store; returns the `.drv` path (2.33+).
    #[cfg(nix_at_least_2_33)]
    pub(crate) fn add_derivation_json(&self, json: &str, name: &str) -> Result<StorePath> {
        let json_c = c_string(&format!("derivation '{name}'"), json)?;
        let ctx = Context::new();
        // SAFETY: live context and store; NUL-terminated JSON.
        let raw = unsafe { nix_sys::nix_derivation_from_json(ctx.ptr(), self.as_ptr(), json_c.as_ptr()) };
        let Some(drv) = NonNull::new(raw).map(CDerivation) else {
            ctx.check_last(|| format!("creating derivation '{name}'"))?;
            return Err(Error::invalid("derivation", format!("Nix rejected derivation '{name}'")));
        };
        // SAFETY: live context, store and derivation; the returned path is owned by us.
        let raw = unsafe { nix_sys::nix_add_derivation(ctx.ptr(), self.as_ptr(), drv.0.as_ptr()) };
        let Some(path) = NonNull::new(raw) else {
            ctx.check_last(|| format!("creating derivation '{name}'"))?;
            return Err(Error::invalid("derivation", format!("Nix wrote no derivation for '{name}'")));
        };
        let path = crate::c_path::OwnedCPath::from_owned(path);
        self.path_from_c(&self.store_dir()?, &path)
    }

    /// Every store path `path` refers to, directly or not, and `path` itself (Nix's closure;
    /// 2.33+, `nix_store_get_fs_closure`; [`Error::Unsupported`] before). `path` must be valid.
    pub fn closure(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        capabilities().require(Capability::Closure)?;
        self.closure_impl(path)
    }

    #[cfg(not(nix_at_least_2_33))]
    fn closure_impl(&self, _path: &StorePath) -> Result<BTreeSet<StorePath>> {
        unreachable!("guarded by capabilities().require")
    }

    #[cfg(nix_at_least_2_33)]
    fn closure_impl(&self, path: &StorePath) -> Result<BTreeSet<StorePath>> {
        let p = self.c_path(path.as_str())?;
        let ctx = Context::new();
        let mut sink = crate::c_path::PathSink::default();
        // SAFETY: live context, store and path; `sink` outlives the call and is only touched by
        // `collect_path` during it.
        let rc = unsafe {
            nix_sys::nix_store_get_fs_closure(
                ctx.ptr(),
                self.as_ptr(),
                p.0.as_ptr(),
                false,
                false,
                false,
                sink.as_user_data(),
                Some(collect_path),
            )
        };
        ctx.check(rc, || format!("computing the closure of '{path}'"))?;
        if sink.lost > 0 {
            return Err(Error::invalid("closure", format!("Nix lent {} paths that could not be copied", sink.lost)));
        }
        let store_dir = self.store_dir()?;
        sink.paths.iter().map(|(_, p)| self.path_from_c(&store_dir, p)).collect()
    }

    /// Copies the one path `path` (not its references, which `dst` must already have: if one is
    /// missing this is an error naming it and nothing is copied) from this store to `dst`
    /// (2.34+, `nix_store_copy_path`; [`Error::Unsupported`] before, where
    /// [`Store::copy_closure_to`] copies it with its closure). Signatures are checked as `dst`'s
    /// settings require.
    pub fn copy_path_to(&self, dst: &Store, path: &StorePath) -> Result<()> {
        capabilities().require(Capability::CopyPath)?;
        self.copy_path_impl(dst, path)
    }

    #[cfg(not(nix_at_least_2_34))]
    fn copy_path_impl(&self, _dst: &Store, _path: &StorePath) -> Result<()> {
        unreachable!("guarded by capabilities().require")
    }

    #[cfg(nix_at_least_2_34)]
    fn copy_path_impl(&self, dst: &Store, path: &StorePath) -> Result<()> {
        // Nix 2.34/2.35 copy the path even when `dst` lacks one of its references, and leave it
        // valid there with a dangling reference. Refuse first, naming the missing path. The
        // closure (not only the direct references: no C function lists those) is checked,
        // which is the same under the store's invariant that a valid path's closure is valid.
        for r in self.closure_impl(path)? {
            if &r != path && !dst.is_valid_path(&r)? {
                return Err(Error::invalid(
                    "store path",
                    format!(
                        "cannot copy '{path}' from '{}' to '{}': it refers to '{r}', which is not valid there \
                         (copy it first, or use copy_closure_to); nothing was copied",
                        self.requested_uri(),
                        dst.requested_uri()
                    ),
                ));
            }
        }
        let p = self.c_path(path.as_str())?;
        let ctx = Context::new();
        // SAFETY: live context, both stores and the path.
        let rc =
            unsafe { nix_sys::nix_store_copy_path(ctx.ptr(), self.as_ptr(), dst.as_ptr(), p.0.as_ptr(), false, true) };
        ctx.check(rc, || format!("copying '{path}' from '{}' to '{}'", self.requested_uri(), dst.requested_uri()))
    }

    /// Adds a text file called `name` holding `text` to the store and returns its path. The
    /// file refers to `references` (store paths valid in this store, e.g. ones named in the
    /// text), which the collector then keeps with it. The same name, text and references give
    /// the same path. Every version, through the evaluator's `builtins.toFile` (no release has
    /// a C function that adds files).
    pub fn add_text(&self, name: &str, text: &str, references: &[StorePath]) -> Result<StorePath> {
        check_name(name)?;
        if text.contains('\0') {
            return Err(Error::NulByte { what: format!("text file '{name}'"), value: text.chars().take(80).collect() });
        }
        for r in references {
            if !self.is_valid_path(r)? {
                return Err(Error::invalid(
                    "reference",
                    format!("'{r}' of text file '{name}' is not valid in store '{}'", self.requested_uri()),
                ));
            }
        }
        let refs: Vec<&str> = references.iter().map(StorePath::as_str).collect();
        let refs_json = serde_json::to_string(&refs).map_err(|e| Error::invalid("reference", e.to_string()))?;
        let out = crate::eval::add_text(self, name, text.to_owned(), refs_json)?;
        Ok(StorePath::from_valid(&out))
    }
}
