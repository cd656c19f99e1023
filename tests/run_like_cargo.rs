//! `cargo nix test` and `cargo nix run` against `cargo test` and `cargo run` on
//! `tests/fixtures/runtime` (a library with doctests using a dependency, a binary, an
//! integration test that finds the binary beside `current_exe()` and through
//! `CARGO_BIN_EXE_<name>`, a `harness = false` test): what the tests see, the lines printed,
//! fail-fast and `--no-fail-fast`, `--doc`, a test-name filter, exit statuses, and the doctests'
//! rustdoc command (cargo's `-v` is the oracle).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use nix_rs::testing::test_nix_config;
use support::{Fixture, bin_dir};

/// Runs `cargo <sub>` (`nix` = through cargo-nix) in the fixture with `args` and extra `env`.
fn run(fx: &Fixture, nix: bool, sub: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = if nix {
        let mut c = Command::new(bin_dir().join("cargo-nix"));
        c.arg("nix").arg(sub).arg("--target-dir").arg(fx.nix_target()).args(["--store", fx.store.uri()]);
        c.env("NIX_CONFIG", test_nix_config());
        c
    } else {
        let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        c.arg(sub).arg("--target-dir").arg(fx.cargo_target());
        c
    };
    cmd.current_dir(fx.dir.path()).args(args).envs(env.iter().copied());
    cmd.output().unwrap()
}

/// Output with both target directories and cargo's 16-digit hashes made alike.
fn normalize(fx: &Fixture, out: &[u8]) -> String {
    let text = String::from_utf8_lossy(out)
        .replace(&fx.cargo_target().display().to_string(), "<target>")
        .replace(&fx.nix_target().display().to_string(), "<target>")
        .replace("target-cargo/", "<target>/")
        .replace("target-nix/", "<target>/");
    let mut s = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find('-') {
        s.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let hex = rest.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 16 {
            s.push_str("HASH");
            rest = &rest[16..];
        }
    }
    s.push_str(rest);
    s
}

/// The lines starting (after indentation) with one of `prefixes`, in order.
fn lines_with(text: &str, prefixes: &[&str]) -> Vec<String> {
    text.lines().map(str::trim_start).filter(|l| prefixes.iter().any(|p| l.starts_with(p))).map(str::to_owned).collect()
}

#[test]
fn tests_see_what_they_see_under_cargo() {
    let fx = Fixture::new("runtime");
    // The fixture reports on stderr, libtest's "test x ... ok" goes to stdout, and one test
    // thread keeps two tests' reports from interleaving: the lines compare the same every run.
    let args = ["--", "--nocapture", "--test-threads=1"];
    // Tests run through the platform's runner, as under cargo (the fixture reports `CARGO*`).
    let var = host_runner_var();
    let runner = [(var.as_str(), "env CARGO_RT_RUNNER=yes")];
    let cargo = run(&fx, false, "test", &args, &runner);
    let nix = run(&fx, true, "test", &args, &runner);
    assert!(cargo.status.success(), "{}", String::from_utf8_lossy(&cargo.stderr));
    assert!(nix.status.success(), "{}", String::from_utf8_lossy(&nix.stderr));
    let (c_out, n_out) = (normalize(&fx, &cargo.stdout), normalize(&fx, &nix.stdout));
    let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
    let mut c_reports = lines_with(&c_err, &["REPORT"]);
    let mut n_reports = lines_with(&n_err, &["REPORT"]);
    c_reports.sort();
    n_reports.sort();
    assert_eq!(n_reports, c_reports);
    // Not vacuous: the binary is beside the test, under its own name, and the harness = false
    // test ran its main.
    for want in [
        "REPORT integration exe-dir=deps",
        "REPORT integration bin-beside=true",
        "REPORT integration compile-time-bin-name=rt-tool",
        "REPORT integration env CARGO_BIN_EXE_rt-tool=<target>/debug/rt-tool",
        "REPORT noharness main ran with 2 args",
        "REPORT unit env CARGO_RT_RUNNER=yes",
        "REPORT integration env CARGO_RT_RUNNER=yes",
    ] {
        assert!(c_reports.iter().any(|l| l == want), "{want} missing from {c_reports:#?}");
    }
    // Same executables in the same order, the same results, the doctests run.
    assert_eq!(lines_with(&n_err, &["Running", "Doc-tests"]), lines_with(&c_err, &["Running", "Doc-tests"]));
    assert_eq!(lines_with(&n_out, &["test result:"]).len(), lines_with(&c_out, &["test result:"]).len());
    let results = |o: &str| {
        let mut v: Vec<String> = o
            .lines()
            .filter(|l| l.starts_with("test ") && !l.starts_with("test result"))
            .map(|l| l.split(" - ").next().unwrap().to_owned() + l.rsplit(' ').next().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(results(&n_out), results(&c_out));
    assert!(c_out.contains("rt/src/lib.rs - double (line 16) ... ok"), "{c_out}");
}

#[test]
fn failures_stop_and_exit_as_cargos() {
    let fx = Fixture::new("runtime");
    // With backtraces: frames in the workspace's code name its files as under cargo (an
    // incrementally built unit runs rustc elsewhere, which its debug info must not show).
    let fail = [("RT_FAIL", "1"), ("RUST_BACKTRACE", "1")];
    // Fail-fast: cargo stops after the first failing executable, with its status.
    let cargo = run(&fx, false, "test", &[], &fail);
    let nix = run(&fx, true, "test", &[], &fail);
    assert_eq!(cargo.status.code(), Some(101));
    assert_eq!(nix.status.code(), Some(101), "{}", String::from_utf8_lossy(&nix.stderr));
    let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
    let heads = ["Running", "Doc-tests", "error:"];
    assert_eq!(lines_with(&n_err, &heads), lines_with(&c_err, &heads));
    assert!(c_err.contains("error: test failed, to rerun pass `-p rt --test cli`"), "{c_err}");
    let frames = |o: &Output| -> Vec<String> {
        lines_with(&normalize(&fx, &o.stdout), &["at "]).into_iter().filter(|l| !l.starts_with("at /rustc/")).collect()
    };
    assert!(frames(&cargo).iter().any(|l| l == "at ./tests/cli.rs:29:5"), "{}", String::from_utf8_lossy(&cargo.stdout));
    assert_eq!(frames(&nix), frames(&cargo));
    // Without incremental state too (rustc then runs in the workspace's store copy), as CI
    // jobs often build.
    let no_state =
        run(&fx, true, "test", &[], &[("RT_FAIL", "1"), ("RUST_BACKTRACE", "1"), ("CARGO_INCREMENTAL", "0")]);
    assert_eq!(no_state.status.code(), Some(101), "{}", String::from_utf8_lossy(&no_state.stderr));
    assert_eq!(frames(&no_state), frames(&cargo));

    // --no-fail-fast: everything runs, and the closing message names each failed target.
    let cargo = run(&fx, false, "test", &["--no-fail-fast"], &fail);
    let nix = run(&fx, true, "test", &["--no-fail-fast"], &fail);
    assert_eq!(cargo.status.code(), Some(101));
    assert_eq!(nix.status.code(), Some(101));
    let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
    let heads = ["Running", "Doc-tests", "error:", "`--"];
    assert_eq!(lines_with(&n_err, &heads), lines_with(&c_err, &heads));
    assert!(c_err.contains("2 targets failed"), "{c_err}");
}

#[test]
fn doc_and_test_name_select_as_cargo() {
    let fx = Fixture::new("runtime");
    for args in [&["--doc"][..], &["double"][..], &["--doc", "-p", "rt", "--", "line"][..]] {
        let cargo = run(&fx, false, "test", args, &[]);
        let nix = run(&fx, true, "test", args, &[]);
        assert!(cargo.status.success() && nix.status.success(), "{args:?}: {}", String::from_utf8_lossy(&nix.stderr));
        let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
        assert_eq!(
            lines_with(&n_err, &["Running", "Doc-tests"]),
            lines_with(&c_err, &["Running", "Doc-tests"]),
            "{args:?}"
        );
        let (c_out, n_out) = (normalize(&fx, &cargo.stdout), normalize(&fx, &nix.stdout));
        let summary = |o: &str| -> Vec<String> {
            lines_with(o, &["test result:"]).iter().map(|l| l.split("; finished").next().unwrap().to_owned()).collect()
        };
        assert_eq!(summary(&n_out), summary(&c_out), "{args:?}");
    }
}

/// The words of a `Running `rustdoc …`` line, with what differs on purpose rewritten: the
/// program's path, `-L dependency=` (cargo: one `deps` directory; cargo nix: one store
/// directory per library) and the directories of `--extern` files (the file names stay,
/// without their hashes).
fn rustdoc_words(line: &str) -> Vec<String> {
    let line = line.trim_start().trim_start_matches("Running `").trim_end_matches('`');
    let mut words = line.split(' ').skip(1).map(str::to_owned).peekable();
    let mut out = Vec::new();
    while let Some(w) = words.next() {
        if w == "-L" && words.peek().is_some_and(|n| n.starts_with("dependency=")) {
            words.next();
            continue;
        }
        if w == "--extern" {
            let e = words.next().unwrap_or_default();
            let (name, path) = e.split_once('=').unwrap_or((&e, ""));
            let file = Path::new(path).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            out.extend([w, format!("{name}={}", file.replace("-HASH", ""))]);
            continue;
        }
        out.push(w);
    }
    out
}

#[test]
fn doctest_command_is_cargos() {
    let fx = Fixture::new("runtime");
    // RUSTDOCFLAGS and the platform's runner (`--test-runtool`) reach the doctests' rustdoc,
    // as under cargo.
    let var = host_runner_var();
    let flags = [("RUSTDOCFLAGS", "--cfg rt_docflag"), (var.as_str(), "env RT_RUNNER=doc")];
    let cargo = run(&fx, false, "test", &["--doc", "-v", "-p", "rt"], &flags);
    let nix = run(&fx, true, "test", &["--doc", "-v", "-p", "rt"], &flags);
    assert!(nix.status.success(), "{}", String::from_utf8_lossy(&nix.stderr));
    let pick = |o: &Output| -> Vec<Vec<String>> {
        let text = normalize(&fx, &o.stderr);
        lines_with(&text, &["Running `"]).iter().filter(|l| l.contains(" --test ")).map(|l| rustdoc_words(l)).collect()
    };
    let (theirs, ours) = (pick(&cargo), pick(&nix));
    assert_eq!(theirs.len(), 1, "{}", String::from_utf8_lossy(&cargo.stderr));
    assert_eq!(ours, theirs);
    assert!(theirs[0].iter().any(|w| w == "rt=librt.rlib") && theirs[0].iter().any(|w| w == "helper=libhelper.rlib"));
    assert!(theirs[0].windows(2).any(|w| w == ["--cfg", "rt_docflag"]), "{:?}", theirs[0]);
    assert!(theirs[0].windows(2).any(|w| w == ["--test-runtool-arg", "RT_RUNNER=doc"]), "{:?}", theirs[0]);
}

/// The variable naming the runner of the host's platform (`CARGO_TARGET_<TRIPLE>_RUNNER`).
fn host_runner_var() -> String {
    let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into())).arg("-vV").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let host = text.lines().find_map(|l| l.strip_prefix("host: ")).expect("rustc -vV names the host");
    format!("CARGO_TARGET_{}_RUNNER", host.to_uppercase().replace('-', "_"))
}

#[test]
fn run_is_cargo_run() {
    let fx = Fixture::new("runtime");
    let args = ["--bin", "rt-tool", "--", "5"];
    let cargo = run(&fx, false, "run", &args, &[]);
    let nix = run(&fx, true, "run", &args, &[]);
    assert_eq!(cargo.status.code(), Some(5));
    assert_eq!(nix.status.code(), Some(5), "{}", String::from_utf8_lossy(&nix.stderr));
    assert_eq!(String::from_utf8_lossy(&nix.stdout), String::from_utf8_lossy(&cargo.stdout));
    let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
    assert_eq!(lines_with(&n_err, &["Running"]), lines_with(&c_err, &["Running"]));
    // The program is a file of its own in target/, not a link into the store.
    let bin = fx.nix_target().join("debug/rt-tool");
    assert!(std::fs::symlink_metadata(&bin).unwrap().file_type().is_file());

    // No `--bin`: the package's `default-run` (it has two binaries), run through the runner
    // configured for the platform, shown as cargo shows it.
    let var = host_runner_var();
    let runner = [(var.as_str(), "env RT_RUNNER=yes")];
    let cargo = run(&fx, false, "run", &["--", "3"], &runner);
    let nix = run(&fx, true, "run", &["--", "3"], &runner);
    assert_eq!(cargo.status.code(), Some(3), "{}", String::from_utf8_lossy(&cargo.stderr));
    assert_eq!(nix.status.code(), Some(3), "{}", String::from_utf8_lossy(&nix.stderr));
    let out = String::from_utf8_lossy(&cargo.stdout);
    assert!(out.contains("through the runner yes"), "{out}");
    assert_eq!(String::from_utf8_lossy(&nix.stdout), out);
    let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
    assert_eq!(lines_with(&n_err, &["Running"]), lines_with(&c_err, &["Running"]));

    // No single executable: cargo's error, before anything is compiled.
    for args in [&["-p", "helper"][..], &["--bin", "rt-tool", "--bin", "rt-other"][..]] {
        let cargo = run(&fx, false, "run", args, &[]);
        let nix = run(&fx, true, "run", args, &[]);
        assert_eq!(cargo.status.code(), Some(101));
        assert_eq!(nix.status.code(), Some(101), "{args:?}");
        let (c_err, n_err) = (normalize(&fx, &cargo.stderr), normalize(&fx, &nix.stderr));
        assert_eq!(lines_with(&n_err, &["error", "help", "bin "]), lines_with(&c_err, &["error", "help", "bin "]));
        assert!(!n_err.contains("Compiling") && !n_err.contains("Finished"), "{args:?}: {n_err}");
    }
}

/// A build script that builds a shared library into its output and links against it: the
/// tests and doctests find it on the dynamic-library path, as under cargo (which puts search
/// paths inside `target/` there; ours are inside the script's store output).
#[test]
fn native_libraries_of_build_scripts_load() {
    let fx = Fixture::new("dylib");
    let cargo = run(&fx, false, "test", &[], &[]);
    let nix = run(&fx, true, "test", &[], &[]);
    assert!(cargo.status.success(), "{}", String::from_utf8_lossy(&cargo.stderr));
    assert!(nix.status.success(), "{}", String::from_utf8_lossy(&nix.stderr));
    let results = |o: &Output| -> Vec<String> {
        let text = String::from_utf8_lossy(&o.stdout);
        lines_with(&text, &["test result:"]).iter().map(|l| l.split("; finished").next().unwrap().to_owned()).collect()
    };
    assert_eq!(results(&cargo).len(), 3, "unit, integration and doctests");
    assert_eq!(results(&nix), results(&cargo));
}
