//! nix-sys against a real temporary store, through the raw C API.

use std::ffi::{CStr, CString, c_char, c_uint, c_void};
use std::ptr;

use nix_sys::*;

/// Collects a string handed to a `nix_get_string_callback`.
unsafe extern "C" fn collect(start: *const c_char, n: c_uint, user: *mut c_void) {
    // SAFETY: Nix passes `n` bytes at `start`; `user` is the String given below.
    unsafe {
        let bytes = std::slice::from_raw_parts(start.cast::<u8>(), n as usize);
        *user.cast::<String>() = String::from_utf8_lossy(bytes).into_owned();
    }
}

struct Fixture {
    ctx: *mut nix_c_context,
    store: *mut Store,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        // SAFETY: creating a context has no preconditions.
        let ctx = unsafe { nix_c_context_create() };
        assert!(!ctx.is_null());
        // Nix's init functions are not thread-safe, and tests run on several threads: once.
        static INIT: std::sync::Once = std::sync::Once::new();
        INIT.call_once(|| {
            // SAFETY: ctx is live; the Once runs these exactly once, before any store opens.
            unsafe {
                assert_eq!(nix_libutil_init(ctx), NIX_OK);
                assert_eq!(nix_libstore_init(ctx), NIX_OK);
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let uri = CString::new(format!("local?store={d}/nix/store&state={d}/state&log={d}/log")).unwrap();
        // SAFETY: live context, NUL-terminated URI, no extra params.
        let store = unsafe { nix_store_open(ctx, uri.as_ptr(), ptr::null_mut()) };
        assert!(!store.is_null(), "opening a temp store failed: {}", last_message(ctx));
        Fixture { ctx, store, _dir: dir }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: both were created in Fixture::new and are freed once.
        unsafe {
            nix_store_free(self.store);
            nix_c_context_free(self.ctx);
        }
    }
}

fn last_message(ctx: *mut nix_c_context) -> String {
    // SAFETY: a second context receives errors of the reading call; the message pointer is
    // valid until the next call on `ctx` and copied at once.
    unsafe {
        let scratch = nix_c_context_create();
        let mut n: c_uint = 0;
        let p = nix_err_msg(scratch, ctx, &mut n);
        let s = if p.is_null() {
            String::new()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(p.cast::<u8>(), n as usize)).into_owned()
        };
        nix_c_context_free(scratch);
        s
    }
}

#[test]
fn version_matches_pkg_config() {
    // SAFETY: nix_version_get returns a static string.
    let v = unsafe { CStr::from_ptr(nix_version_get()) }.to_str().unwrap().to_owned();
    assert_eq!(v, BUILT_VERSION);
}

#[test]
fn open_store_and_query() {
    let f = Fixture::new();
    let mut dir = String::new();
    let mut version = String::new();
    // SAFETY: live context and store; `collect` writes into the given Strings.
    unsafe {
        assert_eq!(nix_store_get_storedir(f.ctx, f.store, Some(collect), (&mut dir as *mut String).cast()), NIX_OK);
        assert_eq!(nix_store_get_version(f.ctx, f.store, Some(collect), (&mut version as *mut String).cast()), NIX_OK);
    }
    assert!(dir.ends_with("/nix/store") && dir.starts_with(&*std::env::temp_dir().to_string_lossy()), "{dir}");
    assert_eq!(version, BUILT_VERSION);

    let missing = CString::new(format!("{dir}/ffffffffffffffffffffffffffffffff-missing")).unwrap();
    // SAFETY: live context and store; NUL-terminated path.
    let path = unsafe { nix_store_parse_path(f.ctx, f.store, missing.as_ptr()) };
    assert!(!path.is_null(), "{}", last_message(f.ctx));
    let mut name = String::new();
    // SAFETY: live path and context.
    unsafe {
        nix_store_path_name(path, Some(collect), (&mut name as *mut String).cast());
        assert!(!nix_store_is_valid_path(f.ctx, f.store, path));
        assert_eq!(nix_err_code(f.ctx), NIX_OK);
        nix_store_path_free(path);
    }
    assert_eq!(name, "missing");
}

#[test]
fn malformed_path_is_rejected() {
    let f = Fixture::new();
    let bad = CString::new("/tmp/not-a-store-path").unwrap();
    // SAFETY: live context and store.
    let path = unsafe { nix_store_parse_path(f.ctx, f.store, bad.as_ptr()) };
    assert!(path.is_null());
    // SAFETY: live context.
    assert_eq!(unsafe { nix_err_code(f.ctx) }, NIX_ERR_NIX_ERROR);
    assert!(last_message(f.ctx).contains("not in the Nix store"), "{}", last_message(f.ctx));
}

#[test]
fn bad_store_uri_gives_code_and_message() {
    let f = Fixture::new();
    let uri = CString::new("nosuchscheme://nowhere").unwrap();
    // SAFETY: live context; NUL-terminated URI.
    let store = unsafe { nix_store_open(f.ctx, uri.as_ptr(), ptr::null_mut()) };
    assert!(store.is_null());
    // SAFETY: live context.
    assert_ne!(unsafe { nix_err_code(f.ctx) }, NIX_OK);
    let msg = last_message(f.ctx);
    assert!(msg.contains("nosuchscheme"), "message should name the URI: {msg}");
}
