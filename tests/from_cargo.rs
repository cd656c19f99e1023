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

#[test]
fn test_after_build_builds_only_the_units_that_differ() {
    let fx = oracle();
    let build = fx.cargo_nix("build", &["--workspace", "-v"]);
    assert!(build.success(), "{}", build.stderr);
    let test = fx.cargo_nix("test", &["--workspace", "-v"]);
    assert!(test.success(), "{}", test.stderr);
    let units = unit_outcomes(&test.stderr);
    let test_units = units.iter().filter(|(mode, _)| mode == "test").count();
    let built: Vec<&(String, String)> = units.iter().filter(|(_, o)| o == "built").collect();
    // Only the test executables are new: every library, proc-macro, build script and binary
    // of the build is reused although `cargo test` asks for them with the `test` profile.
    assert!(test_units >= 4, "{units:?}");
    assert_eq!(built.len(), test_units, "{units:?}\n{}", test.stderr);
    assert!(built.iter().all(|(mode, _)| mode == "test"), "{built:?}");
    assert_eq!(units.len() - test_units, build.built + build.reused, "{units:?}");
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
        assert!(run.stderr.starts_with("error: "), "{what}: cargo's own error format: {}", run.stderr);
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
    std::fs::write(fx.path("crates/helper/Cargo.toml"), "[package]\nname = \"helper\"\nversion = 1\n").unwrap();
    let run = fx.cargo_nix("build", &[]);
    assert_eq!(run.output.status.code(), Some(101), "{}", run.stderr);
    assert!(run.stderr.contains("failed to parse manifest at"), "{}", run.stderr);
    assert_eq!(files(&fx.nix_target()), 0, "wrote to target/");
    let store_after = std::fs::read_dir(fx.store.store_dir_path()).map(|d| d.count()).unwrap_or(0);
    assert_eq!(store_before, store_after, "nothing added to the store");
}
