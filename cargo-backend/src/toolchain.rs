//! The Rust toolchain (and C compiler) that units are built with, and its identity.
//!
//! Every unit's derivation carries the toolchain's identity (a hash of `rustc -vV`, the
//! sysroot, and the C compiler's path and `--version`), so a toolchain change rebuilds.
//!
//! Pure case: the sysroot is a path in the Nix store that is valid in the target store; it is
//! then an input of every unit. Impure case (the usual rustup install): rustc is called by
//! absolute path from outside the store, which needs the sandbox off; the identity hash still
//! makes a toolchain change visible.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::Error;

/// A detected toolchain.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Toolchain {
    /// `<sysroot>/bin/rustc` (not a rustup proxy, which needs `$HOME` inside the build).
    pub rustc: PathBuf,
    /// `<sysroot>/bin/rustdoc`.
    pub rustdoc: PathBuf,
    /// The cargo running us (`$CARGO`), else `<sysroot>/bin/cargo`.
    pub cargo: PathBuf,
    /// `rustc --print sysroot`.
    pub sysroot: PathBuf,
    /// The host triple.
    pub host: String,
    /// `rustc -vV`.
    pub version: String,
    /// `rustc --print cfg` for the host, as (name, value).
    pub cfgs: Vec<(String, Option<String>)>,
    /// The C compiler build scripts and the linker use (`cc` on `PATH`), if any.
    pub cc: Option<PathBuf>,
    /// `PATH` inside builds: the sysroot's `bin`, the C compiler's directory, `/usr/bin`, `/bin`.
    pub path_env: String,
    /// A hash of everything above that affects outputs.
    pub identity: String,
}

fn output(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| Error::Toolchain(format!("running {cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Toolchain(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

impl Toolchain {
    /// Finds rustc (`$RUSTC`, else `rustc` on `PATH`) and the C compiler.
    pub fn detect() -> Result<Toolchain, Error> {
        let rustc_cmd = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
        let sysroot = PathBuf::from(output(Command::new(&rustc_cmd).args(["--print", "sysroot"]))?.trim());
        let rustc = sysroot.join("bin/rustc");
        if !rustc.is_file() {
            return Err(Error::Toolchain(format!("no rustc at {} (from `rustc --print sysroot`)", rustc.display())));
        }
        let version = output(Command::new(&rustc).arg("-vV"))?;
        let host = version
            .lines()
            .find_map(|l| l.strip_prefix("host: "))
            .ok_or_else(|| Error::Toolchain("`rustc -vV` printed no host".into()))?
            .to_owned();
        let cfgs = parse_cfgs(&output(Command::new(&rustc).args(["--print", "cfg"]))?);
        let cargo = std::env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| sysroot.join("bin/cargo"));
        let cc = find_in_path("cc").map(|p| p.canonicalize().unwrap_or(p));
        let cc_version = match &cc {
            Some(cc) => output(Command::new(cc).arg("--version")).unwrap_or_default(),
            None => String::new(),
        };
        let mut dirs = vec![sysroot.join("bin")];
        if let Some(dir) = cc.as_deref().and_then(Path::parent) {
            dirs.push(dir.to_path_buf());
        }
        for d in ["/usr/local/bin", "/usr/bin", "/bin"] {
            if !dirs.iter().any(|x| x == Path::new(d)) {
                dirs.push(d.into());
            }
        }
        let path_env = std::env::join_paths(&dirs).map_err(|e| Error::Toolchain(e.to_string()))?;
        let mut h = Sha256::new();
        for part in [
            &version,
            &sysroot.display().to_string(),
            &format!("{cc:?}"),
            &cc_version,
            &path_env.to_string_lossy().into_owned(),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        Ok(Toolchain {
            rustdoc: sysroot.join("bin/rustdoc"),
            rustc,
            cargo,
            sysroot,
            host,
            version,
            cfgs,
            cc,
            path_env: path_env.to_string_lossy().into_owned(),
            identity: hex(&h.finalize()),
        })
    }

    /// Like [`Toolchain::detect`], but reuses the toolchain in `cache` while nothing that
    /// selects or changes it has (see [`crate::cache`]).
    pub fn detect_cached(cache: &mut crate::cache::Cache) -> Result<Toolchain, Error> {
        let key = |tc: &Toolchain| {
            let mut k = crate::cache::KeyBuilder::default();
            for v in ["RUSTC", "RUSTUP_TOOLCHAIN", "RUSTUP_HOME", "CARGO", "PATH", "HOME"] {
                k.env(v);
            }
            let rustup = std::env::var_os("RUSTUP_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
            if let Some(r) = rustup {
                k.stat(&r.join("settings.toml"));
            }
            if let Ok(cwd) = std::env::current_dir() {
                for dir in cwd.ancestors() {
                    k.stat(&dir.join("rust-toolchain")).stat(&dir.join("rust-toolchain.toml"));
                }
            }
            k.stat(&tc.rustc).stat(&tc.cargo).stat(&tc.rustdoc);
            if let Some(cc) = &tc.cc {
                k.stat(cc);
            }
            k.finish()
        };
        if let Some(tc) = &cache.toolchain {
            if key(tc) == cache.toolchain_key {
                return Ok(tc.clone());
            }
        }
        let tc = Self::detect()?;
        cache.toolchain_key = key(&tc);
        cache.toolchain = Some(tc.clone());
        Ok(tc)
    }

    /// `CARGO_CFG_*` variables for a build script, as cargo sets them: one per cfg name,
    /// values joined with `,`; `debug_assertions` only when the profile enables them.
    pub fn cargo_cfg_env(&self, debug_assertions: bool) -> Vec<(String, String)> {
        let mut map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (name, value) in &self.cfgs {
            if name == "debug_assertions" {
                continue;
            }
            let entry = map.entry(name.clone()).or_default();
            if let Some(v) = value {
                entry.push(v.clone());
            }
        }
        if debug_assertions {
            map.entry("debug_assertions".into()).or_default();
        }
        map.into_iter()
            .map(|(k, v)| (format!("CARGO_CFG_{}", crate::build_script::envify(&k).replace('-', "_")), v.join(",")))
            .collect()
    }
}

fn parse_cfgs(text: &str) -> Vec<(String, Option<String>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), Some(v.trim_matches('"').to_owned())),
            None => (l.to_owned(), None),
        })
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_env_joins_values_and_follows_the_profile() {
        let t = Toolchain {
            rustc: "/r".into(),
            rustdoc: "/d".into(),
            cargo: "/c".into(),
            sysroot: "/s".into(),
            host: "x86_64-unknown-linux-gnu".into(),
            version: String::new(),
            cfgs: parse_cfgs(
                "debug_assertions\npanic=\"unwind\"\ntarget_feature=\"fxsr\"\ntarget_feature=\"sse\"\nunix\n",
            ),
            cc: None,
            path_env: String::new(),
            identity: String::new(),
        };
        let env = t.cargo_cfg_env(false);
        assert!(env.contains(&("CARGO_CFG_TARGET_FEATURE".into(), "fxsr,sse".into())));
        assert!(env.contains(&("CARGO_CFG_UNIX".into(), String::new())));
        assert!(!env.iter().any(|(k, _)| k == "CARGO_CFG_DEBUG_ASSERTIONS"));
        assert!(t.cargo_cfg_env(true).iter().any(|(k, _)| k == "CARGO_CFG_DEBUG_ASSERTIONS"));
    }
}
