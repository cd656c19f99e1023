//! A multi-user Nix on this machine, for tests run as root: the `nixbld` group and build users,
//! normal users, and a `nix-daemon` serving a temporary store through a socket of its own.
//! Nothing here touches `/nix`: the store, its state, logs, configuration and socket live in a
//! temporary directory. Every process started here is stopped by the drop of its owner.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The group of the build users.
pub const BUILD_GROUP: &str = "nixbld";
const BUILD_USERS: usize = 4;

/// Fails the test unless it runs as root (it creates users and runs a daemon).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    assert_eq!(uid, 0, "this test sets up a multi-user Nix (users, a daemon): run it as root");
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn id_of(kind: &str, name: &str) -> Option<u32> {
    let out = Command::new("getent").args([kind, name]).output().ok()?;
    let line = String::from_utf8_lossy(&out.stdout).into_owned();
    line.split(':').nth(2)?.trim().parse().ok()
}

/// Creates the `nixbld` group and its build users `nixbld1..4` if missing.
pub fn ensure_build_users() {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    if id_of("group", BUILD_GROUP).is_none() {
        run(Command::new("groupadd").args(["--system", BUILD_GROUP]));
    }
    for i in 1..=BUILD_USERS {
        let name = format!("{BUILD_GROUP}{i}");
        if id_of("passwd", &name).is_none() {
            run(Command::new("useradd").args([
                "--system",
                "--no-create-home",
                "--home-dir",
                "/var/empty",
                "--shell",
                "/usr/sbin/nologin",
                "--gid",
                BUILD_GROUP,
                "--groups",
                BUILD_GROUP,
                "--comment",
                "Nix build user (libnix tests)",
                &name,
            ]));
        }
    }
}

/// A normal (non-root) user with a private home directory of its own (mode 0700), removed on
/// drop. The account itself stays, for the next run.
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    home: tempfile::TempDir,
}

impl User {
    /// Creates the account `name` if missing, and a fresh home for it.
    pub fn new(name: &str) -> User {
        static LOCK: Mutex<()> = Mutex::new(());
        let _g = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        if id_of("passwd", name).is_none() {
            run(Command::new("useradd").args(["--no-create-home", "--user-group", "--shell", "/bin/sh", name]));
        }
        let uid = id_of("passwd", name).expect("user just created");
        let gid = id_of("group", name).expect("user group just created");
        let home = tempfile::Builder::new().prefix(&format!("home-{name}-")).tempdir().unwrap();
        std::os::unix::fs::chown(home.path(), Some(uid), Some(gid)).unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        User { name: name.to_owned(), uid, gid, home }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// A directory `rel` in the home, owned by the user.
    pub fn dir(&self, rel: &str) -> PathBuf {
        let d = self.home().join(rel);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(self.uid), Some(self.gid)).unwrap();
        d
    }

    /// `program args…` run as this user (`setpriv`, no supplementary groups), with a clean
    /// environment: `HOME`, `USER`, `PATH`, `TMPDIR`, plus what the caller adds.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(program)
            .env_clear()
            .env("HOME", self.home())
            .env("USER", &self.name)
            .env("PATH", "/usr/bin:/bin")
            .env("TMPDIR", self.dir("tmp"));
        cmd
    }
}

/// Makes `dir` and its parents up to `/tmp` traversable by everyone (temporary directories
/// are created 0700).
pub fn open_up(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `nix-daemon` running as root on a temporary store, with build users.
pub struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    /// The daemon's `build-dir`, when [`build_dir_base`] found a place for it.
    _build_dir: Option<tempfile::TempDir>,
    pub sandbox: bool,
}

/// Where the daemon's build directories can go: Nix 2.35 refuses to build as a build user in a
/// build directory with a world-writable ancestor ("Path … is world-writable or a symlink";
/// 2.26.3 has no such check), and its default, `<state>/builds`, is under `/tmp` here. The test's own
/// `CARGO_TARGET_TMPDIR` qualifies when no ancestor is world-writable and all are searchable
/// by others (the build users must reach their directory); otherwise `None`, and Nix's default
/// stays (older releases, such as the 2.26.3 CI tests, do not check).
fn build_dir_base() -> Option<PathBuf> {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).canonicalize().ok()?;
    let fits = base.ancestors().all(|a| {
        std::fs::metadata(a).is_ok_and(|m| m.permissions().mode() & 0o002 == 0 && m.permissions().mode() & 0o001 != 0)
    });
    fits.then_some(base)
}

impl Daemon {
    /// Starts a daemon with `build-users-group = nixbld` and `sandbox` on or off; with the
    /// sandbox, Debian's static busybox is its `/bin/sh` and the host's toolchain directories
    /// are visible (`extra-sandbox-paths`).
    pub fn start(sandbox: bool) -> Daemon {
        require_root();
        ensure_build_users();
        let dir = tempfile::Builder::new().prefix("nix-daemon-test-").tempdir().unwrap();
        open_up(dir.path());
        for sub in ["daemon-conf", "client-conf"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            open_up(&dir.path().join(sub));
        }
        let common = format!(
            "sandbox = {sandbox}\n{}substituters =\nbuild-hook =\nexperimental-features = nix-command\n",
            if sandbox {
                assert!(Path::new("/bin/busybox").exists(), "the sandbox needs /bin/busybox (Debian: busybox-static)");
                "sandbox-paths = /bin/sh=/bin/busybox\nextra-sandbox-paths = /usr /lib /lib64 /etc/alternatives\n\
                 sandbox-fallback = false\n"
            } else {
                ""
            }
        );
        // scripts/setup-nix builds Nix without seccomp (Debian 12's libseccomp is too old), and
        // such a Nix refuses builds by build users unless syscall filtering is off.
        let mut daemon_conf =
            format!("{common}build-users-group = {BUILD_GROUP}\nmax-jobs = 2\nfilter-syscalls = false\n");
        let build_dir = build_dir_base().map(|base| {
            let b = tempfile::Builder::new().prefix("nix-daemon-builds-").tempdir_in(base).unwrap();
            open_up(b.path());
            daemon_conf.push_str(&format!("build-dir = {}\n", b.path().display()));
            b
        });
        std::fs::write(dir.path().join("daemon-conf/nix.conf"), daemon_conf).unwrap();
        std::fs::write(dir.path().join("client-conf/nix.conf"), common).unwrap();
        // The store directory exists before any client connects, as an installed multi-user
        // Nix's does (root:nixbld, 1775): Nix 2.35's daemon client opens it before connecting,
        // and the daemon would create it only when its first client connects.
        let store_dir = dir.path().join("nix/store");
        std::fs::create_dir_all(&store_dir).unwrap();
        open_up(&dir.path().join("nix"));
        std::os::unix::fs::chown(&store_dir, Some(0), id_of("group", BUILD_GROUP)).unwrap();
        std::fs::set_permissions(&store_dir, std::fs::Permissions::from_mode(0o1775)).unwrap();
        let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
        let d = dir.path().display();
        let child = Command::new(Path::new(nix_sys::BINDIR).join("nix-daemon"))
            .args(["--option", "store", &format!("local?store={d}/nix/store&state={d}/state&log={d}/log")])
            .env("NIX_CONF_DIR", dir.path().join("daemon-conf"))
            .env("NIX_DAEMON_SOCKET_PATH", dir.path().join("socket"))
            .env_remove("NIX_CONFIG")
            .env_remove("NIX_REMOTE")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("starting nix-daemon");
        let mut d = Daemon { child, dir, _build_dir: build_dir, sandbox };
        let start = Instant::now();
        // Ready once a client has talked to it, as to an installed daemon (the socket file
        // appears before the daemon listens, and 2.35 sets its store up on the first
        // connection).
        while nix_rs::Store::open(&d.uri()).and_then(|s| s.version()).is_err() {
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("nix-daemon exited ({status}):\n{}", d.log());
            }
            assert!(start.elapsed() < Duration::from_secs(30), "nix-daemon did not listen:\n{}", d.log());
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's own view of the store.
    pub fn local_uri(&self) -> String {
        let d = self.dir.path().display();
        format!("local?store={d}/nix/store&state={d}/state&log={d}/log")
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("socket")
    }

    /// The URI clients use (with the daemon's store dir, which a real install shares with its
    /// clients as `/nix/store`).
    pub fn uri(&self) -> String {
        format!("unix://{}?store={}", self.socket().display(), self.store_dir().display())
    }

    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("nix/store")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The configuration directory clients read (as `/etc/nix` on a real install).
    pub fn client_conf_dir(&self) -> PathBuf {
        self.dir.path().join("client-conf")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `nix-store --gc` as root through the daemon (the collection runs in the daemon).
    pub fn collect_garbage(&self) -> String {
        let out = Command::new(Path::new(nix_sys::BINDIR).join("nix-store"))
            .arg("--gc")
            .env("NIX_REMOTE", self.uri())
            .env("NIX_CONF_DIR", self.client_conf_dir())
            .env_remove("NIX_CONFIG")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "nix-store --gc failed: {text}\ndaemon log:\n{}", self.log());
        text
    }

    /// Who owns the store's files (uid of the store directory).
    pub fn store_owner(&self) -> u32 {
        std::fs::metadata(self.store_dir()).unwrap().uid()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The daemon and the workers it forked for connections form one process group.
        let pgid = self.child.id() as libc::pid_t;
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signals the process group of a child this value started and has not
            // reaped, so the id cannot belong to another process.
            unsafe { libc::kill(-pgid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}
