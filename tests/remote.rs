//! Builds beyond one machine, on Nix's own engine: `cargo nix build` against a store reached
//! over `ssh-ng://`, and with Nix's `builders` setting handing every unit to a remote builder.
//!
//! The "remote machine" is a real OpenSSH `sshd` that the test starts on 127.0.0.1 (its own
//! config, host key, client key and high port) whose only allowed command, forced in
//! `authorized_keys`, is our Nix's `nix-daemon --stdio` serving a temporary store. Host keys
//! are checked for real: the client knows the server's key only from the store URI's
//! `base64-ssh-public-host-key` (or the `builders` line's last field), which Nix writes to a
//! known-hosts file of its own. Nothing under `~/.ssh` is read or written.
//!
//! One machine stands in for two: the remote store's files are at its store dir, while the
//! local store has the same store dir but keeps its files elsewhere (Nix's `real` parameter,
//! [`TempStore::with_store_dir`]), so a path exists on the local side only once it has been
//! copied there, as on two machines.

mod support;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix_rs::testing::{TempStore, test_nix_config};
use support::{Fixture, NixRun};

/// What the basic fixture's `app` prints (see tests/cargo_nix.rs, which checks it against cargo).
const APP_PRINTS: [&str; 3] = ["Good day, world.", "answer: 42", "cfg true"];

/// How long one `cargo nix build` of the basic fixture may take before the test gives up.
const BUILD_TIMEOUT: Duration = Duration::from_secs(600);

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs `cmd`, killing it after `limit` (a hung ssh must fail the test, not stall it).
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let mut child =
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    // Drain the pipes while waiting so a chatty child never blocks.
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let err = err_reader.join().unwrap();
            panic!("{cmd:?} did not finish within {limit:?}; stderr so far:\n{}", String::from_utf8_lossy(&err));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: out_reader.join().unwrap(), stderr: err_reader.join().unwrap() }
}

/// The unit output paths a `cargo nix build -v` listed (`Unit … <drv> -> <out>`).
fn unit_outputs(run: &NixRun) -> Vec<String> {
    let outs: Vec<String> = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Unit "))
        .filter_map(|l| l.rsplit_once(" -> ").map(|(_, out)| out.trim().to_owned()))
        .collect();
    assert!(!outs.is_empty(), "no units listed:\n{}", run.stderr);
    outs
}

fn sshd_program() -> PathBuf {
    // sshd must be started by its absolute path (it re-executes itself).
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("sshd")).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/sshd"), PathBuf::from("/usr/local/sbin/sshd")]);
    for c in candidates {
        if c.is_absolute() && c.is_file() {
            return c;
        }
    }
    panic!("no sshd found (on PATH, /usr/sbin, /usr/local/sbin): install openssh-server (scripts/setup-nix does)");
}

/// A key pair made by `ssh-keygen`: (private key file, public key line).
fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"]).arg(&key));
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap().trim().to_owned();
    (key, public)
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn user() -> String {
    let out = run(Command::new("id").arg("-un"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A running `sshd` on 127.0.0.1 whose one key runs `nix-daemon --stdio` on one store.
struct Sshd {
    child: Child,
    port: u16,
    client_key: PathBuf,
    /// The server's public host key, base64-encoded as Nix wants it.
    host_key_b64: String,
    /// Appended to by every session the daemon serves.
    sessions: PathBuf,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd; sessions run our `nix-daemon --stdio --store <store_uri>`.
    fn start(store_uri: &str) -> Sshd {
        let sshd = sshd_program();
        let dir = tempfile::Builder::new().prefix("sshd-").tempdir().unwrap();
        let d = dir.path();
        let (host_key, host_public) = keygen(d, "host_key");
        let (client_key, client_public) = keygen(d, "client_key");

        // The far side: our nix-daemon on the remote store, with the test settings. The far
        // side reads no nix.conf of ours (ssh passes no environment; a Nix built with another
        // sysconfdir, as the hand-built 2.35, reads none at all), so its configuration is all
        // here: like the daemon in `support::users`, no syscall filtering, since the Nix
        // scripts/setup-nix builds has no seccomp and refuses builds otherwise.
        let daemon = d.join("remote-daemon");
        let sessions = d.join("sessions");
        let nix_daemon = Path::new(nix_sys::BINDIR).join("nix-daemon");
        std::fs::write(
            &daemon,
            format!(
                "#!/bin/sh\necho \"$SSH_ORIGINAL_COMMAND\" >>'{}'\nexport NIX_CONFIG='{}filter-syscalls = false\n'\nexec '{}' --stdio --store '{}'\n",
                sessions.display(),
                test_nix_config(),
                nix_daemon.display(),
                store_uri
            ),
        )
        .unwrap();
        std::fs::set_permissions(&daemon, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let authorized = d.join("authorized_keys");
        std::fs::write(&authorized, format!("command=\"{}\",restrict {client_public}\n", daemon.display())).unwrap();

        // sshd refuses to start without its privilege-separation directory, which the Debian
        // service creates at boot; a machine that never ran the service lacks it.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd").expect("creating /run/sshd for sshd (run the tests as root)");
        }

        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let config = d.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\nLogLevel VERBOSE\n",
                host_key.display(),
                authorized.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(d.join("sshd.log")).unwrap();
        let mut child = Command::new(&sshd)
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", sshd.display()));

        // Ready once it answers with its banner.
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("sshd exited ({st}) at start:\n{}", std::fs::read_to_string(d.join("sshd.log")).unwrap());
            }
            if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
                let mut banner = [0u8; 4];
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                if c.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    break;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(20), "sshd did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        let host_key_b64 = base64(format!("{host_public}\n").as_bytes());
        Sshd { child, port, client_key, host_key_b64, sessions, dir }
    }

    /// `NIX_SSHOPTS` for reaching it: its port, and no ssh configuration files of the user's
    /// or the system's. The host key is looked up under the bare address (`HostKeyAlias`),
    /// which is how Nix writes it into its known-hosts file (without the port).
    fn ssh_opts(&self) -> String {
        format!("-p {} -oHostKeyAlias=127.0.0.1 -F none -oBatchMode=yes -oIdentitiesOnly=yes", self.port)
    }

    /// An `ssh-ng://` URI for the remote store (whose store dir is `store_dir`), with the
    /// client key and the server's host key.
    fn store_uri(&self, store_dir: &Path) -> String {
        format!(
            "ssh-ng://{}@127.0.0.1?ssh-key={}&base64-ssh-public-host-key={}&store={}",
            user(),
            self.client_key.display(),
            self.host_key_b64,
            store_dir.display()
        )
    }

    /// How many sessions the remote daemon served.
    fn sessions(&self) -> usize {
        std::fs::read_to_string(&self.sessions).map(|s| s.lines().count()).unwrap_or(0)
    }

    /// How many SSH connections it accepted (its log has a line per authenticated login).
    fn logins(&self) -> usize {
        self.log().lines().filter(|l| l.contains("Accepted publickey")).count()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A remote store (served through sshd) and a local store with the same store dir whose files
/// live elsewhere.
struct Machines {
    remote: TempStore,
    local: TempStore,
    sshd: Sshd,
}

impl Machines {
    fn new() -> Machines {
        let remote = TempStore::new().unwrap();
        let local = TempStore::with_store_dir(&remote.store_dir_path()).unwrap();
        let sshd = Sshd::start(remote.uri());
        Machines { remote, local, sshd }
    }

    fn ssh_ng_uri(&self) -> String {
        self.sshd.store_uri(&self.remote.store_dir_path())
    }

    /// Checks that every listed unit output is valid in both stores, and that `app` in
    /// `target/debug` links into the local store's own files and prints what the fixture prints.
    fn check_outputs_and_app(&self, fx: &Fixture, outs: &[String]) {
        for out in outs {
            let p = self.remote.parse_path(out).unwrap();
            assert!(self.remote.is_valid_path(&p).unwrap(), "the remote store lacks {out}");
            assert!(self.local.is_valid_path(&p).unwrap(), "the local store lacks {out}");
        }
        let app = fx.nix_target().join("debug/app");
        // The binary is a file (a hard link or a copy); its marker names the store file.
        let real = std::fs::canonicalize(fx.nix_target().join("debug/.nix-links/app")).unwrap();
        assert!(
            real.starts_with(self.local.dir()),
            "{} should link into the local store's files ({}), not {}",
            app.display(),
            self.local.dir().display(),
            real.display()
        );
        let printed = fx.run(&app);
        for want in APP_PRINTS {
            assert!(printed.contains(want), "app printed {printed:?}, expected {want:?}");
        }
    }
}

/// `cargo nix build --store ssh-ng://…`: every unit is built on the remote store; the outputs
/// target/ links to (and the workspace members') are copied back to the local store
/// (`--local-store`), linked and rooted there. A wrong host key is refused.
#[test]
fn build_on_an_ssh_ng_store_and_copy_artifacts_back() {
    let m = Machines::new();
    let fx = Fixture::new("basic");

    // A host key that is not the server's: ssh refuses, nothing is built or linked.
    let (_, other_public) = keygen(m.sshd.dir.path(), "not_the_host_key");
    let wrong = m.ssh_ng_uri().replace(&m.sshd.host_key_b64, &base64(format!("{other_public}\n").as_bytes()));
    let out = run_with_timeout(
        fx.cargo_nix_build_cmd(&wrong).args(["--local-store", m.local.uri()]).env("NIX_SSHOPTS", m.sshd.ssh_opts()),
        BUILD_TIMEOUT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong host key was accepted:\n{err}");
    assert!(err.contains("127.0.0.1"), "the error names the host:\n{err}");
    assert!(!fx.nix_target().exists());
    assert_eq!(m.sshd.sessions(), 0, "a session ran despite the wrong host key");

    let build = || {
        let start = Instant::now();
        let out = run_with_timeout(
            fx.cargo_nix_build_cmd(&m.ssh_ng_uri())
                .args(["-v", "--local-store", m.local.uri()])
                .env("NIX_SSHOPTS", m.sshd.ssh_opts()),
            BUILD_TIMEOUT,
        );
        let run = NixRun::from_output(out);
        assert!(run.success(), "cargo nix build on ssh-ng failed:\n{}\nsshd log:\n{}", run.stderr, m.sshd.log());
        eprintln!("ssh-ng build: {:.1}s", start.elapsed().as_secs_f64());
        run
    };
    let first = build();
    let outs = unit_outputs(&first);
    assert_eq!(first.built, outs.len(), "{}", first.stderr);
    // A store per worker and, with Nix 2.26, a new connection per path copied back: many
    // remote daemons, all over the one SSH connection cargo nix asks ssh to share.
    assert!(m.sshd.sessions() > 1, "{} session(s)", m.sshd.sessions());
    assert_eq!(m.sshd.logins(), 1, "SSH connections not shared; sshd log:\n{}", m.sshd.log());
    m.check_outputs_and_app(&fx, &outs);
    // target/ holds GC roots in the local store.
    let roots = std::fs::read_dir(fx.nix_target().join("debug/.nix-roots")).unwrap().count();
    assert!(roots > 0);
    assert!(std::fs::read_dir(m.local.dir().join("state/gcroots/auto")).unwrap().count() >= roots);

    // A second run finds everything on the remote store and builds nothing.
    let again = build();
    assert_eq!((again.built, again.reused), (0, outs.len()), "{}", again.stderr);
    m.check_outputs_and_app(&fx, &outs);
}

/// A local store with Nix's `builders` setting (an `ssh-ng://` builder, its key and host key)
/// and `max-jobs = 0`: Nix's build hook builds every unit on the remote machine and copies the
/// outputs back; nothing is built locally.
#[test]
fn every_unit_built_by_a_remote_builder() {
    let m = Machines::new();
    let fx = Fixture::new("basic");
    let bindir = Path::new(nix_sys::BINDIR);
    // URI, systems, SSH key, max jobs, speed factor, features, mandatory features, host key.
    let builders = format!(
        "ssh-ng://{}@127.0.0.1?store={} {}-linux {} 2 1 - - {}",
        user(),
        m.remote.store_dir_path().display(),
        std::env::consts::ARCH,
        m.sshd.client_key.display(),
        m.sshd.host_key_b64
    );
    let config = format!(
        "{}max-jobs = 0\nbuild-hook = {} __build-remote\nbuilders = {builders}\n",
        test_nix_config(),
        bindir.join("nix").display()
    );
    let start = Instant::now();
    let out = run_with_timeout(
        fx.cargo_nix_build_cmd(m.local.uri())
            .arg("-v")
            .env("NIX_CONFIG", &config)
            .env("NIX_SSHOPTS", m.sshd.ssh_opts()),
        BUILD_TIMEOUT,
    );
    let run = NixRun::from_output(out);
    assert!(run.success(), "cargo nix build with builders failed:\n{}\nsshd log:\n{}", run.stderr, m.sshd.log());
    eprintln!("build with a remote builder: {:.1}s", start.elapsed().as_secs_f64());
    let outs = unit_outputs(&run);
    assert_eq!(run.built, outs.len(), "{}", run.stderr);
    // One hook session per unit at least (max-jobs = 0: the local store cannot build).
    assert!(m.sshd.sessions() >= outs.len(), "{} sessions for {} units", m.sshd.sessions(), outs.len());
    m.check_outputs_and_app(&fx, &outs);
}

/// `-j 2` on an ssh-ng store builds two units at once (a store connection per worker): the
/// fixture's two build scripts each wait for the other's to start, so a build that ran them one
/// at a time fails.
#[test]
fn ssh_ng_builds_as_many_units_at_once_as_jobs() {
    let m = Machines::new();
    let fx = Fixture::new("rendezvous");
    let _ = std::fs::remove_dir_all("/tmp/libnix-rendezvous");
    let out = run_with_timeout(
        fx.cargo_nix_build_cmd(&m.ssh_ng_uri())
            .args(["-j", "2", "--local-store", m.local.uri()])
            .env("NIX_SSHOPTS", m.sshd.ssh_opts()),
        BUILD_TIMEOUT,
    );
    let run = NixRun::from_output(out);
    assert!(run.success(), "the two build scripts did not run at once:\n{}\nsshd log:\n{}", run.stderr, m.sshd.log());
    assert!(m.sshd.sessions() >= 2, "{} ssh sessions for two workers", m.sshd.sessions());
    let _ = std::fs::remove_dir_all("/tmp/libnix-rendezvous");
}
