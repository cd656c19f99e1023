//! `cargo nix` planning with cargo's own library: what the resulting programs see is what
//! cargo's do (rustflags, config `[env]`, `file!()` paths, `harness = false`), `cargo nix test`
//! after `cargo nix build` rebuilds only the units that differ, `cargo nix check`, and bad
//! input gets cargo's own error with nothing written.

mod support;

use support::Fixture;

/// The oracle fixture with `[build] rustflags` in its config.
fn oracle() -> Fixture {
    let fx = Fixture::new("oracle");
    fx.append(".cargo/config.toml", "\n[build]\nrustflags = [\"--cfg\", \"from_build\"]\n");
    fx
}

#[test]
fn programs_see_what_they_see_under_cargo() {
    let fx = oracle();
    let (expected, got, run) = fx.both_outputs("app", &["--workspace"]);
    assert_eq!(got, expected, "{}", run.stderr);
    // Not vacuous: the flags, the [env] values and the workspace-relative paths are there.
    assert!(expected.contains(r#"["from_build"]"#), "{expected}");
    assert!(expected.contains(r#"Some("plain")"#) && expected.contains(r#"Some("forced")"#), "{expected}");
    assert!(expected.contains("crates/helper/src/lib.rs") && expected.contains("crates/app/src/main.rs"), "{expected}");
}

/// The `Unit` lines of `-v`: (mode, outcome) per unit.
fn unit_outcomes(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Unit "))
        .filter_map(|l| {
            let (_, rest) = l.split_once('[')?;
            let (target_mode, rest) = rest.split_once(']')?;
            let mode = target_mode.rsplit(' ').next()?.to_owned();
            let outcome = rest.trim_start().split(':').next()?.to_owned();
            Some((mode, outcome))
        })
        .collect()
}

/// How many rustc runs and build-script runs cargo's `-v` output shows.
fn cargo_runs(stderr: &str) -> (usize, usize) {
    let running = || stderr.lines().filter(|l| l.trim_start().starts_with("Running `"));
    let rustc = running().filter(|l| l.contains(" --crate-name ")).count();
    (rustc, running().count() - rustc)
}

#[test]
fn test_after_build_builds_only_the_units_that_differ() {
    let fx = oracle();
    // cargo itself is the oracle: what `cargo test` recompiles after `cargo build`.
    fx.cargo("build", &["--workspace"]);
    let out = fx.cargo("test", &["--workspace", "--no-run", "-v"]);
    let (cargo_rustc, cargo_scripts) = cargo_runs(&String::from_utf8_lossy(&out.stderr));

    let build = fx.cargo_nix("build", &["--workspace", "-v"]);
    assert!(build.success(), "{}", build.stderr);
    let test = fx.cargo_nix("test", &["--workspace", "-v"]);
    assert!(test.success(), "{}", test.stderr);
    let units = unit_outcomes(&test.stderr);
    let built =
        |script: bool| units.iter().filter(|(mode, o)| o == "built" && (mode == "run-custom-build") == script).count();
    // Not the profile name: the libraries built for `cargo build` are reused by `cargo test`
    // (which asks for them with the `test` profile); only what cargo recompiles is built.
    assert_eq!((built(false), built(true)), (cargo_rustc, cargo_scripts), "{units:?}\n{}", test.stderr);
    let test_units = units.iter().filter(|(mode, _)| mode == "test").count();
    assert!(test_units >= 4 && built(false) < units.len(), "{units:?}");
    assert!(units.iter().any(|(mode, o)| mode == "build" && o == "reused"), "{units:?}");
    // The harness = false test ran its own main.
    assert!(String::from_utf8_lossy(&test.output.stdout).contains("own main ran"), "{}", test.stderr);
}

#[test]
fn check_builds_metadata_and_reports_errors() {
    let fx = oracle();
    let run = fx.cargo_nix("check", &["--workspace"]);
    assert!(run.success(), "{}", run.stderr);
    assert!(run.built > 0, "{}", run.stderr);
    fx.append("crates/helper/src/lib.rs", "\npub fn broken() -> u32 { \"no\" }\n");
    let run = fx.cargo_nix("check", &["--workspace"]);
    assert!(!run.success());
    assert!(
        run.stderr.contains("mismatched types") && run.stderr.contains("crates/helper/src/lib.rs"),
        "{}",
        run.stderr
    );
}

#[test]
fn selection_flags_pick_units_as_cargo_does() {
    let fx = oracle();
    let run = fx.cargo_nix("build", &["-p", "helper", "--lib"]);
    assert!(run.success(), "{}", run.stderr);
    assert_eq!(run.compiled, ["helper".to_owned()].into(), "{}", run.stderr);
    let run = fx.cargo_nix("build", &["-p", "app", "--bin", "app", "--profile", "ci"]);
    assert!(run.success(), "{}", run.stderr);
    assert!(fx.nix_target().join("ci/app").exists(), "{}", run.stderr);
}

/// Every file under `dir` (none when it does not exist).
fn files(dir: &std::path::Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    rd.flat_map(|e| {
        let p = e.unwrap().path();
        if p.is_dir() { walk(&p) } else { vec![p] }
    })
    .collect()
}

#[test]
fn bad_input_gets_cargos_error_and_writes_nothing() {
    let fx = oracle();
    let store_before = std::fs::read_dir(fx.store.store_dir_path()).map(|d| d.count()).unwrap_or(0);
    let check = |what: &str, args: &[&str], text: &str| {
        let run = fx.cargo_nix("build", args);
        assert_eq!(run.output.status.code(), Some(101), "{what}: {}", run.stderr);
        assert!(run.stderr.contains(text), "{what}: {}", run.stderr);
        // cargo's format (other lines may be cargo's, e.g. "Blocking waiting for file lock").
        let errors: Vec<&str> = run.stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{what}: one error: {}", run.stderr);
        assert!(run.stderr.contains(text), "{what}: {}", run.stderr);
        assert_eq!(files(&fx.nix_target()), 0, "{what}: wrote to target/");
    };
    check("unknown profile", &["--profile", "nope"], "profile `nope` is not defined");
    check("unknown package", &["-p", "nope"], "package ID specification `nope` did not match any packages");
    check(
        "a target whose standard library is not installed",
        &["--target", "riscv64gc-unknown-linux-gnu"],
        "the `riscv64gc-unknown-linux-gnu` target may not be installed",
    );
    // A lock file that does not list the workspace's packages, with --locked.
    std::fs::write(fx.path("Cargo.lock"), "# This file is automatically @generated by Cargo.\nversion = 4\n").unwrap();
    check("--locked with a stale lock file", &["--locked"], "cannot update the lock file");
    // A manifest cargo rejects: the very text plain cargo prints.
    std::fs::write(
        fx.path("Cargo.lock"),
        std::fs::read(support::repo().join("tests/fixtures/oracle/Cargo.lock")).unwrap(),
    )
    .unwrap();
    std::fs::write(fx.path("crates/helper/Cargo.toml"), "[package]\nname = \"helper\"\nversion = 1\n").unwrap();
    let run = fx.cargo_nix("build", &[]);
    assert_eq!(run.output.status.code(), Some(101), "{}", run.stderr);
    let cargo = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(fx.dir.path())
        .arg("build")
        .output()
        .unwrap();
    let cargo_err = String::from_utf8_lossy(&cargo.stderr);
    assert!(cargo_err.contains("expected SemVer version"), "{cargo_err}");
    assert_eq!(run.stderr, cargo_err, "cargo's own error");
    assert_eq!(files(&fx.nix_target()), 0, "wrote to target/");
    let store_after = std::fs::read_dir(fx.store.store_dir_path()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(store_before, store_after, "nothing added to the store");
}
