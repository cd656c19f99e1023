//! `cargo nix` as a normal user on a multi-user Nix: a `nix-daemon` run by root with build
//! users (`build-users-group = nixbld`) on a temporary store, the sandbox off and on.
//!
//! The tests run as root to set the machine up (they create the `nixbld` group, its users and
//! two normal users, `cnx-alice` and `cnx-bob`), and run `cargo nix` as those users through
//! `setpriv`. The users see what they would on a real install: the workspace's `cargo-nix`
//! and Nix's libraries in a directory everyone can read, their own toolchain in their private
//! home (hard links to this one's, as a rustup install there would be), a shared checkout of
//! `tests/fixtures/basic` they can read but not write, and their own target directories.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::users::{Daemon, User, open_up};

/// The workspace's binaries and Nix's libraries, copied where every user can read them (the
/// originals are under root's home).
struct Tools {
    dir: tempfile::TempDir,
}

impl Tools {
    fn new() -> Tools {
        let dir = tempfile::Builder::new().prefix("cargo-nix-tools-").tempdir().unwrap();
        open_up(dir.path());
        for d in ["bin", "lib"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            open_up(&dir.path().join(d));
        }
        for b in ["cargo-nix", "cargo-nix-unit"] {
            std::fs::copy(support::bin_dir().join(b), dir.path().join("bin").join(b)).unwrap();
        }
        let out = Command::new("cp").arg("-a").args(libs()).arg(dir.path().join("lib")).output().unwrap();
        assert!(out.status.success(), "copying Nix's libraries: {}", String::from_utf8_lossy(&out.stderr));
        Tools { dir }
    }

    fn cargo_nix(&self) -> PathBuf {
        self.dir.path().join("bin/cargo-nix")
    }
}

/// Nix's shared libraries (and libgit2 beside them).
fn libs() -> Vec<PathBuf> {
    std::fs::read_dir(nix_sys::LIBDIR)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(".so")))
        .collect()
}

/// rustc's sysroot as this test process sees it.
fn sysroot() -> PathBuf {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A normal user set up to run `cargo nix` against `daemon`.
struct Developer<'a> {
    user: User,
    tools: &'a Tools,
    daemon: &'a Daemon,
}

impl<'a> Developer<'a> {
    fn new(name: &str, tools: &'a Tools, daemon: &'a Daemon) -> Developer<'a> {
        let user = User::new(name);
        // The toolchain in the private home: the part of the sysroot builds use.
        let tc = user.dir("toolchain");
        let bin = user.dir("toolchain/bin");
        let sysroot = sysroot();
        for b in ["rustc", "rustdoc", "cargo"] {
            std::fs::hard_link(sysroot.join("bin").join(b), bin.join(b)).unwrap();
        }
        let out = Command::new("cp").arg("-al").arg(sysroot.join("lib")).arg(tc.join("lib")).output().unwrap();
        assert!(out.status.success(), "linking the toolchain: {}", String::from_utf8_lossy(&out.stderr));
        user.dir(".cargo");
        Developer { user, tools, daemon }
    }

    fn target(&self) -> PathBuf {
        self.user.home().join("target")
    }

    /// `cargo-nix nix <args>` as this user.
    fn cargo_nix(&self, args: &[&str]) -> Output {
        self.cargo_nix_cmd(args).output().unwrap()
    }

    fn cargo_nix_cmd(&self, args: &[&str]) -> Command {
        let home = self.user.home();
        let path = format!("{}:/usr/bin:/bin", home.join("toolchain/bin").display());
        let mut cmd = self.user.command(&self.tools.cargo_nix());
        cmd.arg("nix")
            .args(args)
            .env("PATH", path)
            .env("LD_LIBRARY_PATH", self.tools.dir.path().join("lib"))
            .env("NIX_CONF_DIR", self.daemon.client_conf_dir())
            .env("NIX_LOG_DIR", self.daemon.log_dir())
            .env("CARGO_HOME", home.join(".cargo"));
        cmd
    }

    /// `cargo nix <sub>` of the checkout at `manifest` into this user's target directory, on
    /// the daemon's store.
    fn run(&self, sub: &str, manifest: &Path, extra: &[&str]) -> support::NixRun {
        let (manifest, target, store) =
            (manifest.to_string_lossy(), self.target().to_string_lossy().into_owned(), self.daemon.uri());
        let mut args = vec![sub, "--manifest-path", &manifest, "--target-dir", &target, "--store", &store];
        args.extend_from_slice(extra);
        support::NixRun::from_output(self.cargo_nix(&args))
    }

    fn clean(&self) {
        let target = self.target();
        let out = self.cargo_nix(&["clean", "--target-dir", &target.to_string_lossy()]);
        assert!(out.status.success(), "cargo nix clean: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!target.exists());
    }

    /// The store files this user's target directory links to (through its artifacts and its
    /// GC roots).
    fn linked_store_paths(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let store = self.daemon.store_dir();
        for dir in [self.target().join("debug"), self.target().join("debug/.nix-roots")] {
            for e in std::fs::read_dir(&dir).unwrap().flatten() {
                if let Ok(to) = std::fs::read_link(e.path()) {
                    if to.starts_with(&store) {
                        out.push(to);
                    }
                }
            }
        }
        assert!(!out.is_empty(), "nothing linked into the store under {}", self.target().display());
        out
    }
}

/// A copy of `tests/fixtures/basic` that every user can read and none can write.
fn shared_checkout(daemon: &Daemon) -> PathBuf {
    let dir = daemon.dir().join("src/basic");
    std::fs::create_dir_all(daemon.dir().join("src")).unwrap();
    let out =
        Command::new("cp").arg("-r").arg(support::repo().join("tests/fixtures/basic")).arg(&dir).output().unwrap();
    assert!(out.status.success(), "copying the fixture: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir.join("target"));
    open_up(&daemon.dir().join("src"));
    let out = Command::new("chmod").args(["-R", "a+rX,go-w"]).arg(&dir).output().unwrap();
    assert!(out.status.success());
    dir.join("Cargo.toml")
}

fn run_program(dev: &Developer, program: &Path) -> String {
    let out = dev.user.command(program).output().unwrap();
    assert!(out.status.success(), "{} failed: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sandbox off: builds and tests as a normal user, GC roots root's collector keeps, the build
/// log of a failed unit, a second user reusing every unit, and `cargo nix clean` releasing.
#[test]
fn normal_users_on_a_daemon_store() {
    let daemon = Daemon::start(false);
    let tools = Tools::new();
    let manifest = shared_checkout(&daemon);
    let alice = Developer::new("cnx-alice", &tools, &daemon);

    let first = alice.run("build", &manifest, &[]);
    assert!(first.success(), "{}\ndaemon log:\n{}", first.stderr, daemon.log());
    assert!(first.stderr.contains("Added toolchain"), "the toolchain went to the store: {}", first.stderr);
    eprintln!("alice's first build:\n{}", first.stderr);
    let app = alice.target().join("debug/app");
    let printed = run_program(&alice, &app);
    assert!(printed.contains("answer: 42") && printed.contains("cfg true"), "{printed}");
    assert_eq!(daemon.store_owner(), 0, "the daemon (root) owns the store");
    // target/ holds a copy or hard link of the executable (cargo's layout); the marker beside
    // it names the store file it came from, which the daemon (root) registered.
    let marker = alice.target().join("debug/.nix-links/app");
    assert_eq!(
        std::fs::symlink_metadata(std::fs::read_link(&marker).unwrap()).unwrap().uid(),
        0,
        "outputs are registered by the daemon"
    );

    let test = alice.run("test", &manifest, &[]);
    assert!(test.success(), "{}", test.stderr);
    let stdout = String::from_utf8_lossy(&test.output.stdout);
    assert!(stdout.contains("test binary_runs_and_greets ... ok"), "{stdout}");

    // Roots an older cargo nix failed to register (the daemon's gcroots/auto emptied here)
    // are registered by the next build, even one with nothing to build.
    let auto = daemon.dir().join("state/gcroots/auto");
    let registered = std::fs::read_dir(&auto).unwrap().count();
    assert!(registered > 0, "alice's build registered its roots with the daemon");
    for e in std::fs::read_dir(&auto).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    for sub in ["build", "test"] {
        let again = alice.run(sub, &manifest, &[]);
        assert!(again.success() && again.built == 0, "{}", again.stderr);
    }
    assert_eq!(std::fs::read_dir(&auto).unwrap().count(), registered, "every root registered again");

    // Root's collector keeps everything alice's target/ links to.
    let linked = alice.linked_store_paths();
    daemon.collect_garbage();
    for p in &linked {
        assert!(p.exists(), "GC removed {} that alice's target/ links to", p.display());
    }

    // A second user, building the same checkout, builds nothing.
    let bob = Developer::new("cnx-bob", &tools, &daemon);
    let second = bob.run("build", &manifest, &[]);
    assert!(second.success(), "{}", second.stderr);
    eprintln!("bob's first build:\n{}", second.stderr);
    assert_eq!(second.built, 0, "bob reuses alice's units:\n{}", second.stderr);
    assert_eq!(second.reused, first.built, "{}", second.stderr);

    // alice cleans: bob's roots still hold the shared outputs; once bob cleans, they go.
    alice.clean();
    daemon.collect_garbage();
    let bobs = bob.linked_store_paths();
    for p in &bobs {
        assert!(p.exists(), "GC removed {} that bob's target/ links to", p.display());
    }
    bob.clean();
    daemon.collect_garbage();
    for p in bobs.iter().chain(&linked) {
        assert!(!p.exists(), "after both cleaned, GC reclaims {}", p.display());
    }

    // A failing unit: its diagnostics come from the build log the daemon wrote.
    let broken = alice.user.dir("broken");
    let out = Command::new("cp").arg("-r").arg(manifest.parent().unwrap()).arg(&broken).output().unwrap();
    assert!(out.status.success());
    let lib = broken.join("basic/greeter/src/lib.rs");
    let mut text = std::fs::read_to_string(&lib).unwrap();
    text.push_str("\npub fn broken() -> u32 { \"not a number\" }\n");
    std::fs::write(&lib, text).unwrap();
    let run = alice.run("build", &broken.join("basic/Cargo.toml"), &[]);
    assert!(!run.success());
    assert!(run.stderr.contains("error[E0308]: mismatched types"), "{}", run.stderr);
}

/// Sandbox on (busybox as `/bin/sh`, the host's toolchain directories visible): builds and
/// tests as a normal user, with roots root's collector keeps.
#[test]
fn normal_user_on_a_sandboxed_daemon_store() {
    let daemon = Daemon::start(true);
    let tools = Tools::new();
    let manifest = shared_checkout(&daemon);
    let alice = Developer::new("cnx-alice", &tools, &daemon);
    // Where the sandbox cannot work, cargo nix says what to set before building: here this
    // user's nix.conf is read with sandbox-paths replaced, so the host paths are missing.
    let target = alice.target();
    let (m, t, store) = (manifest.to_string_lossy(), target.to_string_lossy(), daemon.uri());
    let out = alice
        .cargo_nix_cmd(&["build", "--manifest-path", &m, "--target-dir", &t, "--store", &store])
        .env("NIX_CONFIG", "sandbox-paths = /bin/sh=/bin/busybox")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("add `extra-sandbox-paths = /usr /lib /lib64 /etc/alternatives` to nix.conf"), "{stderr}");
    let out = alice
        .cargo_nix_cmd(&["build", "--manifest-path", &m, "--target-dir", &t, "--store", &store, "--toolchain", "host"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("use `--toolchain store`"), "{stderr}");

    let first = alice.run("build", &manifest, &[]);
    assert!(first.success(), "{}\ndaemon log:\n{}", first.stderr, daemon.log());
    let printed = run_program(&alice, &alice.target().join("debug/app"));
    assert!(printed.contains("answer: 42") && printed.contains("cfg true"), "{printed}");
    let test = alice.run("test", &manifest, &[]);
    assert!(test.success(), "{}", test.stderr);
    assert!(String::from_utf8_lossy(&test.output.stdout).contains("test binary_runs_and_greets ... ok"));
    let linked = alice.linked_store_paths();
    daemon.collect_garbage();
    assert!(linked.iter().all(|p| p.exists()), "GC kept what target/ links to");
    alice.clean();
    daemon.collect_garbage();
    assert!(linked.iter().all(|p| !p.exists()), "after clean, GC reclaims it");
}

/// Another user creates alice's lock directory first, in a temporary directory they share: as
/// a symlink to a directory of theirs, then as a directory of theirs. Both are refused with an
/// error naming the directory, and nothing is created through them.
#[test]
fn lock_directory_planted_by_another_user_is_refused() {
    let daemon = Daemon::start(false);
    let tools = Tools::new();
    let manifest = shared_checkout(&daemon);
    let alice = Developer::new("cnx-alice", &tools, &daemon);
    let mallory = User::new("cnx-bob");
    let shared_tmp = tempfile::Builder::new().prefix("shared-tmp-").tempdir().unwrap();
    std::fs::set_permissions(shared_tmp.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let planted = shared_tmp.path().join(format!("cargo-nix-locks-{}", alice.user.uid));
    let bait = mallory.dir("bait");
    std::fs::set_permissions(&bait, std::fs::Permissions::from_mode(0o777)).unwrap();
    let as_mallory = |args: &[&str]| {
        let out = mallory.command(Path::new("/usr/bin/env")).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let build = || {
        let (m, t, s) = (manifest.to_string_lossy(), alice.target(), daemon.uri());
        let home = alice.user.home();
        let out = alice
            .user
            .command(&tools.cargo_nix())
            .args(["nix", "build", "--toolchain", "host", "--manifest-path", &m, "--store", &s, "--target-dir"])
            .arg(t)
            .env("PATH", format!("{}:/usr/bin:/bin", home.join("toolchain/bin").display()))
            .env("LD_LIBRARY_PATH", tools.dir.path().join("lib"))
            .env("NIX_CONF_DIR", daemon.client_conf_dir())
            .env("CARGO_HOME", home.join(".cargo"))
            .env("TMPDIR", shared_tmp.path())
            .output()
            .unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };

    as_mallory(&["ln", "-s", &bait.to_string_lossy(), &planted.to_string_lossy()]);
    let (ok, stderr) = build();
    assert!(!ok, "a planted symlink must stop the build:\n{stderr}");
    assert!(
        stderr.contains(&format!("refusing the lock directory {} (it is a symbolic link)", planted.display())),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(&bait).unwrap().count(), 0, "nothing was created through the link");

    as_mallory(&["rm", &planted.to_string_lossy()]);
    as_mallory(&["mkdir", "-m", "700", &planted.to_string_lossy()]);
    let (ok, stderr) = build();
    assert!(!ok, "a planted directory must stop the build:\n{stderr}");
    let owner = format!("it is owned by uid {}, not by uid {}", mallory.uid, alice.user.uid);
    assert!(stderr.contains(&owner), "{stderr}");
    assert_eq!(std::fs::read_dir(&planted).unwrap().count(), 0, "nothing was created in it");
}
