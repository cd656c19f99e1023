//! Builders' output and Nix's progress lines ("building '…'") stay off the embedding process's
//! stderr unless `echo_build_logs` asks for them, on every Nix version (2.32+ through
//! `nix_set_log_format` + `nix_set_verbosity`, older ones through the C++ logger functions).
//!
//! Each case runs in a child process (this test binary again, filtered to [`child`]), since
//! the logger is chosen once per process and only the child's stderr shows what Nix printed.

mod common;

use std::process::Command;

use nix_rs::testing::TempStore;

const MARKER: &str = "quiet-logs-marker-from-the-builder";
const CHILD_ENV: &str = "NIX_RS_QUIET_LOGS_CHILD";

/// Runs in the child only: builds one derivation that writes to stderr, and one that fails.
#[test]
fn child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let t = TempStore::new().unwrap();
    let ok = common::sh_drv(&t, "quiet-ok", &format!("echo {MARKER}-ok >&2; echo done > $out"));
    t.realise(&ok.drv_path).unwrap();
    let bad = common::sh_drv(&t, "quiet-bad", &format!("echo {MARKER}-bad >&2; exit 3"));
    let e = t.realise(&bad.drv_path).unwrap_err();
    // The failure's log tail is in the error, not on stderr.
    assert!(e.to_string().contains(&format!("{MARKER}-bad")), "{e}");
    eprintln!("child done");
}

/// The child's stderr with `LIBNIX_ECHO_BUILD_LOGS` set to `echo`.
fn child_stderr(echo: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("LIBNIX_ECHO_BUILD_LOGS", echo)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success() && stderr.contains("child done"), "child failed:\n{stderr}");
    stderr
}

#[test]
fn builds_print_nothing_by_default() {
    let quiet = child_stderr("0");
    assert!(!quiet.contains(MARKER), "builder output reached stderr:\n{quiet}");
    assert!(!quiet.contains("building '"), "Nix's progress lines reached stderr:\n{quiet}");
}

#[test]
fn echo_build_logs_prints_the_builders_output() {
    // The other side of the same check: with echo on, the builder's line is there, so the
    // test above looks at the right stream.
    let loud = child_stderr("1");
    assert!(loud.contains(&format!("{MARKER}-ok")), "builder output missing with echo on:\n{loud}");
    assert!(loud.contains("building '"), "progress lines missing with echo on:\n{loud}");
}
