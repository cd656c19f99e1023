//! Realising derivations, with one code path per C API generation:
//!
//! - 2.26–2.31: the output callback gets each output's full path as a string, and a failed
//!   build returns `NIX_OK` without calling it: success is checked by every output being valid.
//! - 2.32: the callback gets a C `StorePath`; no C function prints it whole and 2.32 has no
//!   `nix_store_path_hash`, so the path is the one the `.drv` names for that output (checked
//!   against the name the callback's path carries). nix-rs creates only input-addressed
//!   derivations, whose output paths the `.drv` holds.
//! - 2.33+: the callback's `StorePath` is printed from the store dir, its hash and its name;
//!   a failed build is an error of `nix_store_realise` itself (`nix::BuildError`), turned into
//!   [`Error::BuildFailed`] with the log tail.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_void};
use std::path::Path;

use crate::context::Context;
use crate::error::{BuildFailure, Error, NixErrorCode, Result};
use crate::store::{LOG_TAIL_LINES, Store, StorePath};

/// What the output callback collected: output name → path, in the form each version gives.
#[cfg(not(nix_at_least_2_32))]
type Collected = Vec<(String, String)>;
#[cfg(nix_at_least_2_32)]
type Collected = crate::c_path::PathSink;

/// The output callback of `nix_store_realise` (2.26–2.31): copies what C lends at once.
///
/// # Safety
/// `userdata` must point to a live `Collected`; the strings must be NUL-terminated.
#[cfg(not(nix_at_least_2_32))]
unsafe extern "C" fn collect_output(userdata: *mut c_void, outname: *const c_char, out: *const c_char) {
    // SAFETY: the caller (Store::realise) passes a live Vec; C passes NUL-terminated strings.
    unsafe {
        let outputs = &mut *userdata.cast::<Collected>();
        outputs.push((crate::context::borrowed_c_str(outname), crate::context::borrowed_c_str(out)));
    }
}

/// The output callback of `nix_store_realise` (2.32+): copies the lent path at once.
///
/// # Safety
/// `userdata` must point to a live `Collected`; `outname` NUL-terminated; `out` a live path.
#[cfg(nix_at_least_2_32)]
unsafe extern "C" fn collect_output(userdata: *mut c_void, outname: *const c_char, out: *const nix_sys::StorePath) {
    // SAFETY: the caller (Store::realise) passes a live PathSink; C passes a NUL-terminated
    // name and a path that lives for the call.
    unsafe {
        let sink = &mut *userdata.cast::<Collected>();
        sink.push(crate::context::borrowed_c_str(outname), out);
    }
}

impl Store {
    /// Builds (or substitutes) the derivation `drv_path` and returns its outputs by name.
    ///
    /// A failed build is an [`Error::BuildFailed`] carrying the derivation, what is known of
    /// the builder's failure and the tail of its log, on every version (on 2.26–2.32 the C API
    /// reports a failed build as success; nix-rs checks the outputs).
    ///
    /// After [`crate::interrupt`], a realise in progress stops (its builder is killed) and
    /// returns [`Error::Interrupted`], and so does every later one, without building.
    pub fn realise(&self, drv_path: &StorePath) -> Result<BTreeMap<String, StorePath>> {
        // Registered before the check below, so an interrupt that comes after the check finds
        // this thread and wakes it.
        let _blocking = crate::interrupt::Blocking::enter();
        let interrupted = || Error::Interrupted(format!("realising '{drv_path}'"));
        if crate::is_interrupted() {
            return Err(interrupted());
        }
        if !drv_path.name().ends_with(".drv") {
            return Err(Error::invalid("derivation path", format!("'{drv_path}' is not a .drv store path")));
        }
        if !self.is_valid_path(drv_path)? {
            return Err(Error::invalid(
                "derivation path",
                format!("'{drv_path}' is not valid in store '{}'", self.requested_uri()),
            ));
        }
        let p = self.c_path(drv_path.as_str())?;
        let ctx = Context::new();
        let mut collected = Collected::default();
        // SAFETY: live context, store and path; `collected` outlives the call and is only
        // touched by `collect_output` during it.
        let rc = unsafe {
            nix_sys::nix_store_realise(
                ctx.ptr(),
                self.as_ptr(),
                p.0.as_ptr(),
                (&mut collected as *mut Collected).cast(),
                Some(collect_output),
            )
        };
        let checked = ctx.check(rc, || format!("realising '{drv_path}'"));
        let outputs = match &checked {
            Ok(()) => self.output_paths(drv_path, collected)?,
            Err(_) => Vec::new(),
        };
        if crate::is_interrupted() && (checked.is_err() || !self.all_valid(&outputs)) {
            // Nix's "interrupted by the user", or a build cut short: not a build failure.
            return Err(interrupted());
        }
        if let Err(Error::Nix { code: NixErrorCode::NixError, name: Some(name), message, .. }) = &checked {
            // 2.33+: the build's own failure.
            if name == "nix::BuildError" {
                return Err(self.build_failure(drv_path, Vec::new(), Some(message.clone())));
            }
        }
        checked?;

        let mut result = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, sp) in outputs {
            if self.is_valid_path(&sp)? {
                result.insert(name, sp);
            } else {
                missing.push(name);
            }
        }
        if result.is_empty() || !missing.is_empty() {
            return Err(self.build_failure(drv_path, missing, None));
        }
        Ok(result)
    }

    /// The outputs the callback reported, as full store paths.
    #[cfg(not(nix_at_least_2_32))]
    fn output_paths(&self, _drv_path: &StorePath, collected: Collected) -> Result<Vec<(String, StorePath)>> {
        Ok(collected.into_iter().map(|(name, path)| (name, StorePath::from_valid(&path))).collect())
    }

    /// The outputs the callback reported, as full store paths: on 2.32, the `.drv`'s path for
    /// each output name, checked against the name part of the path Nix reported.
    #[cfg(all(nix_at_least_2_32, not(nix_at_least_2_33)))]
    fn output_paths(&self, drv_path: &StorePath, collected: Collected) -> Result<Vec<(String, StorePath)>> {
        if collected.paths.is_empty() {
            return Ok(Vec::new());
        }
        let drv = self.read_derivation(drv_path)?;
        let mut out = Vec::new();
        for (name, path) in collected.paths {
            let full = drv.outputs.get(&name).filter(|p| !p.is_empty()).ok_or_else(|| {
                Error::invalid(
                    "derivation",
                    format!(
                        "'{drv_path}' has no fixed path for output '{name}' (content-addressed outputs                          need Nix 2.33+, whose C API prints store paths)"
                    ),
                )
            })?;
            let sp = StorePath::from_valid(full);
            if sp.name() != path.name() {
                return Err(Error::invalid(
                    "derivation",
                    format!("Nix built '{}' for output '{name}' of '{drv_path}', which names '{full}'", path.name()),
                ));
            }
            out.push((name, sp));
        }
        Ok(out)
    }

    /// The outputs the callback reported, as full store paths (2.33+: store dir, hash, name).
    #[cfg(nix_at_least_2_33)]
    fn output_paths(&self, _drv_path: &StorePath, collected: Collected) -> Result<Vec<(String, StorePath)>> {
        if collected.paths.is_empty() {
            return Ok(Vec::new());
        }
        let store_dir = self.store_dir()?;
        collected.paths.iter().map(|(name, p)| Ok((name.clone(), self.path_from_c(&store_dir, p)?))).collect()
    }

    /// Whether every output the realise reported is valid (false if it reported none).
    fn all_valid(&self, outputs: &[(String, StorePath)]) -> bool {
        !outputs.is_empty() && outputs.iter().all(|(_, p)| self.is_valid_path(p).unwrap_or(false))
    }

    /// Assembles what is known about a failed build.
    fn build_failure(&self, drv_path: &StorePath, mut missing: Vec<String>, nix_message: Option<String>) -> Error {
        let drv = self.read_derivation(drv_path).ok();
        if missing.is_empty() {
            if let Some(d) = &drv {
                missing = d.outputs.keys().cloned().collect();
            }
        }
        let log = self.build_log(drv_path).ok().flatten();
        let log_tail: Vec<String> = log
            .as_deref()
            .map(|l| {
                let lines: Vec<&str> = l.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].iter().map(|s| s.to_string()).collect()
            })
            .unwrap_or_default();
        let builder = drv.as_ref().map(|d| d.builder.clone());
        let reason = match (&builder, &log) {
            (Some(b), _)
                if b.starts_with('/')
                    && !Path::new(b).exists()
                    && !b.starts_with(&self.store_dir().unwrap_or_default()) =>
            {
                format!("the builder '{b}' does not exist")
            }
            (Some(b), _) if b.starts_with('/') && Path::new(b).is_file() && !is_executable(Path::new(b)) => {
                format!("the builder '{b}' is not executable")
            }
            _ if nix_message.is_some() => nix_message.unwrap_or_default().lines().next().unwrap_or_default().to_owned(),
            (_, Some(_)) => "the builder failed (exited with a non-zero status or was killed)".to_owned(),
            (_, None) => "the build failed before the builder produced a log".to_owned(),
        };
        Error::BuildFailed(Box::new(BuildFailure {
            drv_path: drv_path.to_string(),
            builder,
            reason,
            missing_outputs: missing,
            log_tail,
        }))
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).map(|m| m.permissions().mode() & 0o111 != 0).unwrap_or(false)
}
