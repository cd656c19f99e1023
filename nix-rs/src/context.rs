//! `nix_c_context` handles, C strings in and out, and panic-safe callbacks.

use std::any::Any;
use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use crate::error::{Error, NixErrorCode, Result};

/// An owned `nix_c_context`. One per call site and thread: a context must not serve two calls
/// at once, so it is `Send` but not `Sync`.
pub(crate) struct Context(NonNull<nix_sys::nix_c_context>);

// SAFETY: a nix_c_context is a plain heap object holding the last error; it is not tied to the
// thread that created it. It is not Sync: two threads must not use it at once.
unsafe impl Send for Context {}

impl Context {
    pub(crate) fn new() -> Self {
        // SAFETY: nix_c_context_create has no preconditions; it returns NULL only when out of
        // memory.
        let ptr = unsafe { nix_sys::nix_c_context_create() };
        Context(NonNull::new(ptr).unwrap_or_else(|| std::alloc::handle_alloc_error(std::alloc::Layout::new::<u8>())))
    }

    pub(crate) fn ptr(&self) -> *mut nix_sys::nix_c_context {
        self.0.as_ptr()
    }

    /// The error code of the last call made with this context.
    pub(crate) fn code(&self) -> nix_sys::nix_err {
        // SAFETY: the pointer is a live context owned by self.
        unsafe { nix_sys::nix_err_code(self.ptr()) }
    }

    /// Turns a C status into a `Result`, reading Nix's message on error.
    pub(crate) fn check(&self, code: nix_sys::nix_err, doing: impl FnOnce() -> String) -> Result<()> {
        if code == nix_sys::NIX_OK { Ok(()) } else { Err(self.error(code, doing())) }
    }

    /// Checks the context's own last error code (for C functions that return no status).
    pub(crate) fn check_last(&self, doing: impl FnOnce() -> String) -> Result<()> {
        self.check(self.code(), doing)
    }

    fn error(&self, code: nix_sys::nix_err, doing: String) -> Error {
        // Reading the message must not overwrite it: errors of the reading calls go to `scratch`.
        let scratch = Context::new();
        let mut len: c_uint = 0;
        // SAFETY: both contexts are live; the returned pointer is valid until the next call on
        // self, and is copied at once.
        let msg = unsafe { nix_sys::nix_err_msg(scratch.ptr(), self.ptr(), &mut len) };
        let mut message = if msg.is_null() {
            "(Nix gave no message)".to_owned()
        } else {
            // SAFETY: nix_err_msg returns a pointer to `len` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(msg.cast::<u8>(), len as usize) };
            String::from_utf8_lossy(bytes).into_owned()
        };
        let mut name = None;
        if code == nix_sys::NIX_ERR_NIX_ERROR {
            let mut n = StringOut::default();
            // SAFETY: live contexts; the callback is string_callback with a StringOut.
            let rc =
                unsafe { nix_sys::nix_err_name(scratch.ptr(), self.ptr(), Some(string_callback), n.as_user_data()) };
            if rc == nix_sys::NIX_OK {
                name = n.0;
            }
            let mut info = StringOut::default();
            // SAFETY: as above.
            let rc = unsafe {
                nix_sys::nix_err_info_msg(scratch.ptr(), self.ptr(), Some(string_callback), info.as_user_data())
            };
            if let (nix_sys::NIX_OK, Some(info)) = (rc, info.0) {
                if !info.is_empty() {
                    message = info;
                }
            }
        }
        Error::Nix { doing, code: NixErrorCode::from_raw(code), name, message: strip_ansi(message.trim_end()) }
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context was created by nix_c_context_create and is freed once.
        unsafe { nix_sys::nix_c_context_free(self.ptr()) }
    }
}

/// Removes ANSI colour sequences (Nix and rustc colour their messages).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Converts a Rust string for C, naming the argument when it contains a NUL byte.
pub(crate) fn c_string(what: &str, value: &str) -> Result<CString> {
    CString::new(value).map_err(|_| Error::NulByte { what: what.to_owned(), value: value.to_owned() })
}

/// Receives a string from a `nix_get_string_callback`.
#[derive(Default)]
pub(crate) struct StringOut(pub(crate) Option<String>);

impl StringOut {
    pub(crate) fn as_user_data(&mut self) -> *mut c_void {
        (self as *mut StringOut).cast()
    }
}

/// A `nix_get_string_callback` that copies the string into a [`StringOut`].
///
/// # Safety
/// `user_data` must point to a live `StringOut`; `start` to `n` readable bytes.
pub(crate) unsafe extern "C" fn string_callback(start: *const c_char, n: c_uint, user_data: *mut c_void) {
    // Nothing here can panic except on allocation failure, which aborts.
    let bytes = if start.is_null() {
        &[][..]
    } else {
        // SAFETY: the caller guarantees `n` readable bytes at `start`.
        unsafe { std::slice::from_raw_parts(start.cast::<u8>(), n as usize) }
    };
    // SAFETY: the caller guarantees user_data is a live StringOut.
    let out = unsafe { &mut *user_data.cast::<StringOut>() };
    out.0 = Some(String::from_utf8_lossy(bytes).into_owned());
}

/// Copies a NUL-terminated C string that C lends for the duration of a callback.
///
/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
pub(crate) unsafe fn borrowed_c_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Runs a closure called from C, catching a panic so that it never unwinds into C.
/// The panic message is returned as the error.
pub(crate) fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panic_message(&*payload))
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colour() {
        assert_eq!(strip_ansi("\u{1b}[31;1merror:\u{1b}[0m bad"), "error: bad");
    }

    #[test]
    fn nul_is_an_error() {
        let e = c_string("store URI", "lo\0cal").unwrap_err();
        assert!(e.to_string().contains("store URI contains a NUL byte"), "{e}");
    }

    #[test]
    fn panics_are_caught() {
        let r: Result<(), String> = catch_panic(|| panic!("boom {}", 1));
        assert_eq!(r.unwrap_err(), "boom 1");
    }
}
