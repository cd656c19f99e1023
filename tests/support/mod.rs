//! Shared helpers for the workspace's integration tests: fixture workspaces copied to a
//! temporary directory, `cargo nix` (built on demand) against a temporary store, and plain
//! cargo to compare with.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use nix_rs::testing::{TempStore, test_nix_config};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds `cargo-nix` and `cargo-nix-unit` (once per test process) and returns the directory
/// holding them: the workspace's own `target/debug`. `cargo test` holds no lock on the target
/// directory while tests run. `--workspace --bins --tests` resolves features exactly as
/// `cargo test --workspace` does, so every dependency (the `cargo` crate's ~320 among them) is
/// the one `cargo test` just compiled and only the binaries are linked; `-p cargo-nix` alone
/// would unify features differently and compile the `cargo` crate a second time.
pub fn bin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = cargo()
            .current_dir(repo())
            .args(["build", "-q", "--workspace", "--bins", "--tests"])
            .output()
            .expect("running cargo build for cargo-nix");
        assert!(out.status.success(), "building cargo-nix failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| repo().join("target"), PathBuf::from);
        target.join("debug")
    })
}

/// A fixture workspace copied into a temporary directory, with its own store.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub store: TempStore,
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "target" {
            continue;
        }
        let (src, dst) = (e.path(), to.join(&name));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// What one `cargo nix` run said.
#[derive(Debug)]
pub struct NixRun {
    pub output: Output,
    pub stderr: String,
    pub built: usize,
    pub reused: usize,
    pub substituted: usize,
    /// Package names from the "Compiling" lines.
    pub compiled: BTreeSet<String>,
}

impl NixRun {
    pub fn success(&self) -> bool {
        self.output.status.success()
    }

    /// What a finished `cargo nix` run printed: the counts of its `Finished` line (`usize::MAX`
    /// when absent) and the packages of its `Compiling` lines.
    pub fn from_output(output: Output) -> NixRun {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        // Status lines as a terminal would show them (a forced progress bar leaves `\r` and
        // ANSI codes in front of them).
        let plain = nix_rs::strip_ansi(&stderr);
        let lines = || plain.lines().map(|l| l.rsplit('\r').next().unwrap_or(l));
        let (mut built, mut reused, mut substituted) = (usize::MAX, usize::MAX, usize::MAX);
        if let Some(l) = lines().find(|l| l.trim_start().starts_with("Finished")) {
            let counts = l.rsplit_once('(').map(|(_, c)| c).unwrap_or("");
            let nums: Vec<usize> = counts.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
            if let [b, r, s] = nums[..] {
                (built, reused, substituted) = (b, r, s);
            }
        }
        let compiled = lines()
            .filter_map(|l| l.trim_start().strip_prefix("Compiling "))
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .collect();
        NixRun { output, stderr, built, reused, substituted, compiled }
    }
}

impl Fixture {
    pub fn new(name: &str) -> Fixture {
        let dir = tempfile::Builder::new().prefix(&format!("fixture-{name}-")).tempdir().unwrap();
        copy_dir(&repo().join("tests/fixtures").join(name), dir.path());
        Fixture { dir, store: TempStore::new().unwrap() }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn manifest(&self) -> PathBuf {
        self.path("Cargo.toml")
    }

    pub fn nix_target(&self) -> PathBuf {
        self.path("target-nix")
    }

    pub fn cargo_target(&self) -> PathBuf {
        self.path("target-cargo")
    }

    /// Appends `text` to a file of the fixture.
    pub fn append(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        let mut s = std::fs::read_to_string(&p).unwrap();
        s.push_str(text);
        std::fs::write(p, s).unwrap();
    }

    /// `cargo nix build` of this fixture into its `target-nix`, on `store`, with the test
    /// settings; the caller adds arguments and runs it.
    pub fn cargo_nix_build_cmd(&self, store: &str) -> Command {
        let mut cmd = Command::new(bin_dir().join("cargo-nix"));
        cmd.args(["nix", "build", "--manifest-path"])
            .arg(self.manifest())
            .arg("--target-dir")
            .arg(self.nix_target())
            .args(["--store", store])
            .env("NIX_CONFIG", test_nix_config());
        cmd
    }

    /// `cargo nix <sub> <args>` on this fixture and its store.
    pub fn cargo_nix(&self, sub: &str, args: &[&str]) -> NixRun {
        self.cargo_nix_env(sub, args, &[])
    }

    /// [`Fixture::cargo_nix`] with environment changes: `(name, Some(value))` sets a variable,
    /// `(name, None)` removes it.
    pub fn cargo_nix_env(&self, sub: &str, args: &[&str], envs: &[(&str, Option<&str>)]) -> NixRun {
        let mut cmd = Command::new(bin_dir().join("cargo-nix"));
        for (k, v) in envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        // Run inside the project, as a user would (cargo reads `.cargo/config.toml` from there).
        cmd.current_dir(self.dir.path());
        cmd.arg("nix").arg(sub).arg("--manifest-path").arg(self.manifest()).arg("--target-dir").arg(self.nix_target());
        if matches!(sub, "build" | "test") {
            cmd.args(["--store", self.store.uri()]);
        }
        let output = cmd.args(args).env("NIX_CONFIG", test_nix_config()).output().expect("running cargo-nix");
        NixRun::from_output(output)
    }

    /// `cargo <sub> <args>` (plain cargo) on this fixture.
    pub fn cargo(&self, sub: &str, args: &[&str]) -> Output {
        self.cargo_env(sub, args, &[])
    }

    /// [`Fixture::cargo`] with environment changes, as [`Fixture::cargo_nix_env`] takes them.
    pub fn cargo_env(&self, sub: &str, args: &[&str], envs: &[(&str, Option<&str>)]) -> Output {
        let out = self.cargo_output(sub, args, envs);
        assert!(out.status.success(), "cargo {sub} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        out
    }

    /// [`Fixture::cargo_env`], whether or not cargo succeeds.
    pub fn cargo_output(&self, sub: &str, args: &[&str], envs: &[(&str, Option<&str>)]) -> Output {
        let mut cmd = cargo();
        for (k, v) in envs {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.current_dir(self.dir.path())
            .arg(sub)
            .arg("--manifest-path")
            .arg(self.manifest())
            .arg("--target-dir")
            .arg(self.cargo_target())
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs a binary and returns its stdout.
    pub fn run(&self, bin: &Path) -> String {
        let out = Command::new(bin).output().unwrap_or_else(|e| panic!("running {}: {e}", bin.display()));
        assert!(out.status.success(), "{} failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Builds `bin` with plain cargo and with cargo nix (same extra args) and returns both
    /// programs' output.
    pub fn both_outputs(&self, bin: &str, args: &[&str]) -> (String, String, NixRun) {
        self.cargo("build", args);
        let expected = self.run(&self.cargo_target().join("debug").join(bin));
        let run = self.cargo_nix("build", args);
        assert!(run.success(), "cargo nix build failed:\n{}", run.stderr);
        let got = self.run(&self.nix_target().join("debug").join(bin));
        (expected, got, run)
    }
}

pub mod users;
