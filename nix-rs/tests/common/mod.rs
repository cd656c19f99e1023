//! Helpers shared by nix-rs's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix_rs::{DerivationBuilder, DerivationOutputs, Store};

/// A derivation whose builder is `/bin/sh -c <script>` (PATH is unset inside builds).
pub fn sh_drv(store: &Store, name: &str, script: &str) -> DerivationOutputs {
    DerivationBuilder::new(name, "/bin/sh").args(["-c", script]).create(store).expect("creating derivation")
}

/// A `nix-daemon` from our Nix, serving a temp local store on a temp socket; killed on drop.
pub struct TestDaemon {
    child: Child,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

impl TestDaemon {
    pub fn start() -> TestDaemon {
        let dir = tempfile::Builder::new().prefix("nix-rs-daemon-").tempdir().unwrap();
        let socket = dir.path().join("daemon.sock");
        let store_uri = nix_rs::testing::TempStore::uri_for(&dir.path().join("store"));
        // Nix 2.35's daemon client opens the store dir before connecting; the daemon creates
        // it only on its first connection.
        std::fs::create_dir_all(dir.path().join("store/nix/store")).unwrap();
        let daemon = Path::new(nix_sys::BINDIR).join("nix-daemon");
        let mut cmd = Command::new(&daemon);
        cmd.env("NIX_DAEMON_SOCKET_PATH", &socket).args(["--option", "store", &store_uri]);
        for (k, v) in nix_rs::testing::TEST_SETTINGS {
            cmd.args(["--option", k, v]);
        }
        // Its own process group, so that drop stops the workers it forks per connection too.
        let child = std::os::unix::process::CommandExt::process_group(&mut cmd, 0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", daemon.display()));
        // Ready once a client has talked to it, as to an installed daemon: the socket file
        // appears at `bind`, before the daemon listens (a client in between gets "Connection
        // refused"), and a 2.35 daemon sets its store up on the first connection (a bare
        // connect-and-close probe racing the test's first client got "Connection reset").
        let d = TestDaemon { child, socket, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = None;
        while Instant::now() < deadline {
            match Store::open(&d.uri()).and_then(|s| s.version()) {
                Ok(_) => return d,
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("nix-daemon on {} did not answer: {last:?}", d.socket.display());
    }

    pub fn uri(&self) -> String {
        // The client must use the daemon's store dir.
        format!("unix://{}?store={}/store/nix/store", self.socket.display(), self.dir.path().display())
    }

    /// Where the daemon's store keeps its build logs.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("store/log")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: signals the process group of a child we started and have not reaped, so
            // its id cannot belong to anyone else.
            unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}
