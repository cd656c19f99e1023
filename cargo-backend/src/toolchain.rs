//! The Rust toolchain (and C compiler) that units are built with, and its identity.
//!
//! Every unit's derivation carries the toolchain's identity (a hash of `rustc -vV`, the
//! sysroot, and the C compiler's path and `--version`), so a toolchain change rebuilds.
//!
//! Pure case: the sysroot is a path in the Nix store that is valid in the target store; it is
//! then an input of every unit. Impure case (the usual rustup install): rustc is called by
//! absolute path from outside the store, which needs the sandbox off and the build users able
//! to read it; the identity hash still makes a toolchain change visible.
//!
//! [`Toolchain::into_store`] turns the second into the first: it adds the part of rustc's
//! sysroot that builds use (`bin/rustc`, `bin/rustdoc`, `bin/cargo`, `lib/` without the
//! sources) to the store, by content and once per sysroot (cached by the files' stamps). Two
//! users with the same rustup toolchain get the same store path, hence the same units. What a
//! toolchain from a non-Nix distribution still takes from the host is declared in
//! [`HOST_PATHS`] and is part of the identity (glibc's and the linker's versions): the C
//! compiler and linker (`/usr/bin/cc`, `ld`), glibc and its dynamic loader, which rustc, the
//! unit builder and linked programs need. With `sandbox = true` these must be visible in
//! the sandbox: `extra-sandbox-paths = /usr /lib /lib64 /etc/alternatives` ([`check_sandbox`]
//! says so, naming those that exist here).

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
    /// `cc --version` (empty without a C compiler).
    #[serde(default)]
    pub cc_version: String,
    /// The host's part of the toolchain: the paths in [`HOST_PATHS`] that exist, and the
    /// versions of glibc (`ldd --version`) and the linker (`ld --version`), first lines.
    #[serde(default)]
    pub host_inputs: HostToolchain,
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
            Some(cc) => output(Command::new(cc).arg("--version"))?,
            None => String::new(),
        };
        let mut tc = Toolchain {
            rustdoc: sysroot.join("bin/rustdoc"),
            rustc,
            cargo,
            sysroot,
            host,
            version,
            cfgs,
            cc,
            cc_version,
            host_inputs: HostToolchain::detect(),
            path_env: String::new(),
            identity: String::new(),
        };
        tc.path_env = tc.build_path()?;
        tc.identity = tc.compute_identity();
        Ok(tc)
    }

    /// `PATH` inside builds: the sysroot's `bin`, the C compiler's directory, `/usr/local/bin`,
    /// `/usr/bin`, `/bin`.
    fn build_path(&self) -> Result<String, Error> {
        let mut dirs = vec![self.sysroot.join("bin")];
        if let Some(dir) = self.cc.as_deref().and_then(Path::parent) {
            dirs.push(dir.to_path_buf());
        }
        for d in ["/usr/local/bin", "/usr/bin", "/bin"] {
            if !dirs.iter().any(|x| x == Path::new(d)) {
                dirs.push(d.into());
            }
        }
        let path_env = std::env::join_paths(&dirs).map_err(|e| Error::Toolchain(e.to_string()))?;
        Ok(path_env.to_string_lossy().into_owned())
    }

    /// A hash of everything that affects outputs: rustc's version and sysroot, the C compiler
    /// and its version, `PATH` inside builds, and the host's part.
    fn compute_identity(&self) -> String {
        let mut h = Sha256::new();
        for part in [
            &self.version,
            &self.sysroot.display().to_string(),
            &format!("{:?}", self.cc),
            &self.cc_version,
            &self.path_env,
            &format!("{:?}", self.host_inputs),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex(&h.finalize())
    }

    /// Like [`Toolchain::detect`], but reuses the toolchain in `cache` while nothing that
    /// selects or changes it has (see [`crate::cache`]).
    pub fn detect_cached(cache: &mut crate::cache::Cache) -> Result<Toolchain, Error> {
        let key = |k: &mut crate::cache::KeyBuilder, tc: &Toolchain| {
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
            true
        };
        if let Some(tc) = &cache.toolchain {
            if crate::cache::key_holds(&cache.toolchain_key, |k| key(k, tc)) {
                return Ok(tc.clone());
            }
        }
        let started = crate::cache::Racy::now();
        let tc = Self::detect()?;
        cache.toolchain_key = crate::cache::key_after(started, |k| key(k, &tc)).unwrap_or_default();
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

/// What a toolchain outside Nix takes from the host at build time, beside its sysroot: the C
/// compiler and the linker it drives (`/usr/bin/cc`, `ld`, their libraries), glibc with its
/// dynamic loader (`/lib64/ld-linux-*.so.2`, needed by rustc, the unit builder and every
/// program linked), and their headers. On Debian `/lib` and `/lib64` are links into `/usr`, and
/// `/usr/bin/cc` (which rustc runs as the linker) is a link through `/etc/alternatives`.
pub const HOST_PATHS: &[&str] = &["/usr", "/lib", "/lib64", "/etc/alternatives"];

/// The host's part of a toolchain, declared (see [`HOST_PATHS`]) and part of its identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostToolchain {
    /// The paths of [`HOST_PATHS`] that exist here.
    pub paths: Vec<PathBuf>,
    /// First line of `ldd --version` (glibc's version), if it runs.
    pub libc: String,
    /// First line of `ld --version`, if it runs.
    pub linker: String,
}

impl HostToolchain {
    /// Looks at this machine.
    pub fn detect() -> HostToolchain {
        let first_line = |prog: &str| {
            Command::new(prog)
                .arg("--version")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
                .unwrap_or_default()
        };
        HostToolchain {
            paths: HOST_PATHS.iter().map(PathBuf::from).filter(|p| p.symlink_metadata().is_ok()).collect(),
            libc: first_line("ldd"),
            linker: first_line("ld"),
        }
    }
}

/// Where the toolchain used by builds comes from (`cargo nix --toolchain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolchainSource {
    /// Store when the store is served by a daemon (its build users cannot be assumed to read
    /// the user's home) or Nix's sandbox is on; host otherwise.
    Auto,
    /// rustc's sysroot added to the store ([`Toolchain::into_store`]).
    Store,
    /// rustc from where it is installed (needs `sandbox = false` and build users that can read
    /// it).
    Host,
}

/// Whether Nix's `sandbox` setting (as this process reads `nix.conf`) is on.
pub fn sandbox_enabled() -> Result<bool, Error> {
    let v = nix_rs::settings::get("sandbox").map_err(|e| Error::Nix("reading the sandbox setting".into(), e))?;
    Ok(sandbox_on(&v))
}

/// Whether a value of Nix's `sandbox` setting turns the sandbox on (`relaxed` does too).
pub fn sandbox_on(value: &str) -> bool {
    matches!(value.trim(), "true" | "relaxed")
}

/// The paths that Nix's `sandbox-paths` setting (with `extra-sandbox-paths`) makes visible in
/// the sandbox, from a value such as `/bin/sh=/bin/busybox /usr /lib?`.
pub fn sandbox_targets(setting: &str) -> Vec<PathBuf> {
    setting
        .split_whitespace()
        .map(|e| e.trim_end_matches('?'))
        .map(|e| e.split_once('=').map_or(e, |(target, _)| target))
        .map(PathBuf::from)
        .collect()
}

/// With the sandbox on, an error saying what to set when `tc` cannot work there: a sysroot
/// outside the store, or host paths it needs missing from `sandbox_paths` (the value of Nix's
/// `sandbox-paths`).
pub fn check_sandbox(tc: &Toolchain, store_dir: &str, sandbox: bool, sandbox_paths: &str) -> Result<(), Error> {
    if !sandbox {
        return Ok(());
    }
    if !tc.sysroot.starts_with(store_dir) {
        return Err(Error::Toolchain(format!(
            "Nix's sandbox is on (sandbox = true) but rustc's sysroot {} is outside the store: \
             use `--toolchain store` to add it to the store, or set `sandbox = false`",
            tc.sysroot.display()
        )));
    }
    let visible = sandbox_targets(sandbox_paths);
    let missing: Vec<String> = tc
        .host_inputs
        .paths
        .iter()
        .filter(|p| !visible.iter().any(|v| p.starts_with(v)))
        .map(|p| p.display().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::Toolchain(format!(
            "Nix's sandbox is on (sandbox = true) but the host part of the toolchain (the C \
             compiler, linker and glibc) is not visible in it: add `extra-sandbox-paths = {}` \
             to nix.conf (the daemon's, for a daemon store), or set `sandbox = false`",
            missing.join(" ")
        )));
    }
    Ok(())
}

/// What of rustc's sysroot builds use: `bin/rustc`, `bin/rustdoc`, `bin/cargo`, and `lib/`
/// without the standard library's sources (`lib/rustlib/src`, `lib/rustlib/rustc-src`).
pub fn sysroot_part_kept(rel: &Path) -> bool {
    let s = rel.to_string_lossy();
    match s.as_ref() {
        "bin" | "bin/rustc" | "bin/rustdoc" | "bin/cargo" | "lib" => true,
        _ => s.starts_with("lib/") && !rel.starts_with("lib/rustlib/src") && !rel.starts_with("lib/rustlib/rustc-src"),
    }
}

impl Toolchain {
    /// This toolchain with its sysroot in `store` (see the module documentation): the part of
    /// the sysroot that builds use is added by content, once (`cache` remembers it while the
    /// files' stamps hold). Returns the toolchain and, when it was added now, how long that
    /// took. A toolchain already in the store is returned as it is.
    pub fn into_store(
        &self,
        store: &nix_rs::Store,
        cache: &mut crate::cache::Cache,
    ) -> Result<(Toolchain, Option<std::time::Duration>), Error> {
        let store_dir = store.store_dir().map_err(|e| Error::Nix("reading the store dir".into(), e))?;
        if self.sysroot.starts_with(&store_dir) {
            return Ok((self.clone(), None));
        }
        let uri = store.uri().map_err(|e| Error::Nix("reading the store URI".into(), e))?;
        let cache_key = format!("{uri}\0{}", self.sysroot.display());
        let sysroot = self.sysroot.clone();
        let excluded = |rel: &Path| !sysroot_part_kept(rel);
        let fingerprint = |k: &mut crate::cache::KeyBuilder| crate::cache::tree_fingerprint(&sysroot, &excluded, k);
        let mut found = None;
        if let Some((fp, path)) = cache.toolchain_imports.get_mut(&cache_key) {
            if crate::cache::key_holds_refreshing(fp, fingerprint) {
                if let Ok(p) = store.parse_path(path) {
                    if store.is_valid_path(&p).map_err(|e| Error::Nix(format!("checking {p}"), e))? {
                        found = Some(p);
                    }
                }
            }
        }
        let mut took = None;
        let path = match found {
            Some(p) => p,
            None => {
                let start = std::time::Instant::now();
                let fp = crate::cache::key_before(fingerprint);
                let release = self.version.lines().find_map(|l| l.strip_prefix("release: ")).unwrap_or("unknown");
                let name = format!("rust-{release}-{}", self.host);
                let p = store
                    .add_path(
                        &self.sysroot,
                        nix_rs::AddPathOptions::new().name(name).filter(|rel, _| sysroot_part_kept(rel)),
                    )
                    .map_err(|e| {
                        Error::Nix(format!("adding the toolchain {} to the store", self.sysroot.display()), e)
                    })?;
                match fp {
                    Some(fp) => cache.toolchain_imports.insert(cache_key, (fp, p.to_string())),
                    None => cache.toolchain_imports.remove(&cache_key),
                };
                took = Some(start.elapsed());
                p
            }
        };
        let root = path.as_path().to_path_buf();
        let mut tc = Toolchain {
            rustc: root.join("bin/rustc"),
            rustdoc: root.join("bin/rustdoc"),
            cargo: root.join("bin/cargo"),
            sysroot: root,
            ..self.clone()
        };
        tc.path_env = tc.build_path()?;
        tc.identity = tc.compute_identity();
        Ok((tc, took))
    }

    /// The toolchain `source` asks for on `store` (see [`ToolchainSource`]), checked against
    /// Nix's sandbox settings ([`check_sandbox`]).
    pub fn for_store(
        &self,
        source: ToolchainSource,
        store: &nix_rs::Store,
        cache: &mut crate::cache::Cache,
    ) -> Result<(Toolchain, Option<std::time::Duration>), Error> {
        let sandbox = sandbox_enabled()?;
        let to_store = match source {
            ToolchainSource::Store => true,
            ToolchainSource::Host => false,
            ToolchainSource::Auto => {
                sandbox || store.daemon_socket().map_err(|e| Error::Nix("reading the store URI".into(), e))?.is_some()
            }
        };
        let (tc, took) = if to_store { self.into_store(store, cache)? } else { (self.clone(), None) };
        let store_dir = store.store_dir().map_err(|e| Error::Nix("reading the store dir".into(), e))?;
        let paths =
            nix_rs::settings::get("sandbox-paths").map_err(|e| Error::Nix("reading sandbox-paths".into(), e))?;
        check_sandbox(&tc, &store_dir, sandbox, &paths)?;
        Ok((tc, took))
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
            cc_version: String::new(),
            host_inputs: HostToolchain::default(),
            path_env: String::new(),
            identity: String::new(),
        };
        let env = t.cargo_cfg_env(false);
        assert!(env.contains(&("CARGO_CFG_TARGET_FEATURE".into(), "fxsr,sse".into())));
        assert!(env.contains(&("CARGO_CFG_UNIX".into(), String::new())));
        assert!(!env.iter().any(|(k, _)| k == "CARGO_CFG_DEBUG_ASSERTIONS"));
        assert!(t.cargo_cfg_env(true).iter().any(|(k, _)| k == "CARGO_CFG_DEBUG_ASSERTIONS"));
    }

    fn toolchain_at(sysroot: &str) -> Toolchain {
        Toolchain {
            rustc: Path::new(sysroot).join("bin/rustc"),
            rustdoc: Path::new(sysroot).join("bin/rustdoc"),
            cargo: Path::new(sysroot).join("bin/cargo"),
            sysroot: sysroot.into(),
            host: "x86_64-unknown-linux-gnu".into(),
            version: "rustc 1.95.0\nrelease: 1.95.0\n".into(),
            cfgs: Vec::new(),
            cc: Some("/usr/bin/x86_64-linux-gnu-gcc-12".into()),
            cc_version: "gcc 12".into(),
            host_inputs: HostToolchain {
                paths: vec!["/usr".into(), "/lib".into(), "/lib64".into(), "/etc/alternatives".into()],
                libc: "ldd (Debian GLIBC 2.36-9+deb12u10) 2.36".into(),
                linker: "GNU ld (GNU Binutils for Debian) 2.40".into(),
            },
            path_env: String::new(),
            identity: String::new(),
        }
    }

    #[test]
    fn the_sandbox_needs_a_store_toolchain_and_the_host_paths() {
        let host = toolchain_at("/home/u/.rustup/toolchains/stable");
        let store = toolchain_at("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-rust-1.95.0");
        assert!(check_sandbox(&host, "/nix/store", false, "").is_ok(), "no sandbox, no requirement");
        let e = check_sandbox(&host, "/nix/store", true, "/usr /lib /lib64 /etc/alternatives").unwrap_err().to_string();
        assert!(e.contains("outside the store") && e.contains("--toolchain store"), "{e}");
        let e = check_sandbox(&store, "/nix/store", true, "/bin/sh=/bin/busybox").unwrap_err().to_string();
        assert!(e.contains("extra-sandbox-paths = /usr /lib /lib64 /etc/alternatives"), "{e}");
        let e = check_sandbox(&store, "/nix/store", true, "/bin/sh=/bin/busybox /usr").unwrap_err().to_string();
        assert!(e.contains("extra-sandbox-paths = /lib /lib64 /etc/alternatives"), "only what is missing: {e}");
        let all = "/bin/sh=/bin/busybox /usr /lib? /lib64=/lib64 /etc/alternatives";
        assert!(check_sandbox(&store, "/nix/store", true, all).is_ok());
    }

    #[test]
    fn sandbox_paths_name_their_targets() {
        let t = sandbox_targets("/bin/sh=/bin/busybox /usr /lib? /opt/x=/srv/y?");
        assert_eq!(t, [PathBuf::from("/bin/sh"), "/usr".into(), "/lib".into(), "/opt/x".into()]);
    }

    #[test]
    fn the_store_copy_keeps_what_builds_use() {
        for kept in ["bin", "bin/rustc", "bin/rustdoc", "bin/cargo", "lib", "lib/librustc_driver-x.so"] {
            assert!(sysroot_part_kept(Path::new(kept)), "{kept}");
        }
        assert!(sysroot_part_kept(Path::new("lib/rustlib/x86_64-unknown-linux-gnu/lib/libstd-x.rlib")));
        for dropped in ["share", "share/doc/rust/html", "bin/rust-gdb", "bin/clippy-driver", "etc", "lib/rustlib/src"] {
            assert!(!sysroot_part_kept(Path::new(dropped)), "{dropped}");
        }
    }

    #[test]
    fn identity_follows_the_sysroot_and_the_host_not_the_user() {
        let mut a = toolchain_at("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-rust-1.95.0");
        a.path_env = a.build_path().unwrap();
        let b = a.clone();
        assert_eq!(a.compute_identity(), b.compute_identity());
        let mut newer_libc = a.clone();
        newer_libc.host_inputs.libc = "ldd (GNU libc) 2.41".into();
        assert_ne!(a.compute_identity(), newer_libc.compute_identity(), "the host part is in the identity");
        let mut elsewhere = a.clone();
        elsewhere.sysroot = "/home/u/.rustup/toolchains/stable".into();
        assert_ne!(a.compute_identity(), elsewhere.compute_identity());
        assert!(
            a.path_env.starts_with("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-rust-1.95.0/bin:"),
            "{}",
            a.path_env
        );
    }
}
