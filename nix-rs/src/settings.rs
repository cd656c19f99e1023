//! Nix's global settings (`nix.conf` keys), read and changed in-process.
//!
//! Settings are process-wide. Change them before other threads use Nix: Nix itself reads them
//! without locks. Client settings of a daemon store are sent when a connection opens, so set
//! them before opening the store.

use std::sync::Mutex;

use crate::context::{Context, StringOut, c_string, string_callback};
use crate::error::Result;

static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// The current value of setting `key`, as Nix prints it.
pub fn get(key: &str) -> Result<String> {
    crate::init()?;
    let key_c = c_string("setting name", key)?;
    let ctx = Context::new();
    let mut out = StringOut::default();
    // SAFETY: live context, NUL-terminated key, callback writes into `out` during the call.
    let rc = unsafe { nix_sys::nix_setting_get(ctx.ptr(), key_c.as_ptr(), Some(string_callback), out.as_user_data()) };
    ctx.check(rc, || format!("reading setting '{key}'"))?;
    Ok(out.0.unwrap_or_default())
}

/// Sets setting `key` to `value` (e.g. `set("max-jobs", "4")`).
pub fn set(key: &str, value: &str) -> Result<()> {
    crate::init()?;
    let key_c = c_string("setting name", key)?;
    let value_c = c_string(&format!("value of setting '{key}'"), value)?;
    let ctx = Context::new();
    let _guard = WRITE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: live context, NUL-terminated strings.
    let rc = unsafe { nix_sys::nix_setting_set(ctx.ptr(), key_c.as_ptr(), value_c.as_ptr()) };
    ctx.check(rc, || format!("setting '{key}' to '{value}'"))
}
