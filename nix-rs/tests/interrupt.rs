//! `nix_rs::interrupt()` stops a realise in progress and kills its builder.
//!
//! A test binary of its own: an interrupt cannot be undone, so it must not share a process
//! with other tests.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use nix_rs::Error;
use nix_rs::testing::{TempStore, nix_cli};

/// Whether process `pid` is gone (or a zombie nobody reaps, which is as good as gone).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_for_file(p: &Path, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "{} did not appear", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interrupt_kills_the_builder_and_realise_reports_interrupted() {
    let t = TempStore::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pids");
    // The builder's child (a grandchild of Nix) must die too: Nix kills the process group.
    let script = format!(
        "/bin/sleep 60 & echo \"$$ $!\" > {p}.tmp && /bin/mv {p}.tmp {p}; wait; echo done > $out",
        p = pid_file.display()
    );
    let d = common::sh_drv(&t, "sleeper", &script);
    let out = d.outputs["out"].clone();
    // Made now: after the interrupt, the evaluator's own work is interrupted too.
    let again = common::sh_drv(&t, "after", "echo x > $out");

    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _ = tx.send(t.realise(&d.drv_path));
        });
        let pids = wait_for_file(&pid_file, Duration::from_secs(60));
        let pids: Vec<i32> = pids.split_whitespace().map(|p| p.parse().unwrap()).collect();
        assert!(pids.iter().all(|&p| !process_gone(p)), "the builder is running");

        nix_rs::interrupt();
        assert!(nix_rs::is_interrupted());
        // The builder sleeps 60 s: returning before that is the interrupt's doing.
        let result = rx.recv_timeout(Duration::from_secs(30)).expect("realise did not return after interrupt()");
        let e = result.unwrap_err();
        assert!(matches!(e, Error::Interrupted(_)), "{e:?}");
        assert!(e.is_interrupted() && e.as_build_failure().is_none());
        assert!(e.to_string().contains(d.drv_path.as_str()), "{e}");
        for p in pids {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !process_gone(p) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(process_gone(p), "process {p} of the builder survived the interrupt");
        }
    });
    // Nothing was registered, and the store is consistent.
    let verify = nix_cli("nix-store", t.uri()).args(["--verify", "--check-contents"]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
    assert!(!t.is_valid_path(&out).unwrap());
    assert!(!out.as_path().exists() && !t.store_dir_path().join(out.base_name()).exists(), "half-written output");

    // Later realises do not build.
    let e = t.realise(&again.drv_path).unwrap_err();
    assert!(e.is_interrupted(), "{e:?}");
    assert!(!t.is_valid_path(&again.outputs["out"]).unwrap(), "built after the interrupt");
}
