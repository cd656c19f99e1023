//! What a build depends on besides its sources: the environment build scripts see (a -sys
//! crate found through a `.pc` file that only `PKG_CONFIG_PATH` names, a variable a script
//! declared with `rerun-if-env-changed`), which scripts rerun when one changes, which units
//! rebuild when fewer packages are selected (`CARGO_PRIMARY_PACKAGE`), and `cargo nix build`
//! of this very workspace's Nix bindings.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use nix_rs::testing::{TempStore, test_nix_config};
use support::{Fixture, NixRun, bin_dir, repo};

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// A -sys crate that finds its library with the `pkg-config` crate, its `.pc` file in a
/// directory only `PKG_CONFIG_PATH` names, next to a script reading a variable of no
/// documented set (`FIXTURE_KNOB`, declared with `rerun-if-env-changed`).
#[test]
fn build_scripts_see_the_users_environment_and_rerun_exactly_when_what_they_read_changes() {
    let fx = Fixture::new("pkgconf");
    let pc_a = fx.path("native/a").display().to_string();
    let pc_b = fx.path("native/b").display().to_string();
    let app = fx.nix_target().join("debug/app");
    let env_a = [("PKG_CONFIG_PATH", Some(pc_a.as_str())), ("FIXTURE_KNOB", None)];

    // As under cargo.
    fx.cargo_env("build", &[], &env_a);
    let expected = fx.run(&fx.cargo_target().join("debug/app"));
    assert_eq!(expected, "answer 42 (version 1.0), knob unset\n");
    let first = fx.cargo_nix_env("build", &[], &env_a);
    assert!(first.success(), "{}", first.stderr);
    assert_eq!(fx.run(&app), expected);

    // Nothing changed: nothing runs (twice: the first rebuild plans with what the scripts
    // declared, the second from the cached plan).
    for _ in 0..2 {
        let again = fx.cargo_nix_env("build", &[], &env_a);
        assert_eq!(again.built, 0, "{}", again.stderr);
    }

    // A variable only `knob`'s script declared: it reruns, and so do its dependents; the
    // pkg-config script does not.
    let env_knob = [("PKG_CONFIG_PATH", Some(pc_a.as_str())), ("FIXTURE_KNOB", Some("on"))];
    let knob = fx.cargo_nix_env("build", &[], &env_knob);
    assert!(knob.success(), "{}", knob.stderr);
    assert_eq!(knob.compiled, set(&["knob", "app"]), "{}", knob.stderr);
    assert_eq!(fx.run(&app), "answer 42 (version 1.0), knob on\n");

    // Another `PKG_CONFIG_PATH`: the script that declared it (through the pkg-config crate)
    // reruns and finds the other `.pc` file; `knob`'s does not.
    let env_b = [("PKG_CONFIG_PATH", Some(pc_b.as_str())), ("FIXTURE_KNOB", Some("on"))];
    let moved = fx.cargo_nix_env("build", &[], &env_b);
    assert!(moved.success(), "{}", moved.stderr);
    assert_eq!(moved.compiled, set(&["answer-sys", "app"]), "{}", moved.stderr);
    fx.cargo_env("build", &[], &env_b);
    assert_eq!(fx.run(&app), fx.run(&fx.cargo_target().join("debug/app")));
    assert_eq!(fx.run(&app), "answer 43 (version 2.0), knob on\n");

    // A variable no script declared (and `PATH`, which cargo does not watch either): nothing
    // reruns.
    let path = format!("{}:{}", std::env::var("PATH").unwrap_or_default(), fx.path("native").display());
    let unrelated = [
        ("PKG_CONFIG_PATH", Some(pc_b.as_str())),
        ("FIXTURE_KNOB", Some("on")),
        ("FIXTURE_UNRELATED", Some("x")),
        ("PATH", Some(path.as_str())),
    ];
    let quiet = fx.cargo_nix_env("build", &[], &unrelated);
    assert!(quiet.success(), "{}", quiet.stderr);
    assert_eq!(quiet.built, 0, "{}", quiet.stderr);

    // Without the `.pc` file's directory the script fails as under cargo, naming the library.
    let missing = fx.cargo_nix_env("build", &[], &[("PKG_CONFIG_PATH", Some("/nonexistent")), ("FIXTURE_KNOB", None)]);
    assert!(!missing.success());
    assert!(missing.stderr.contains("answer not found through pkg-config"), "{}", missing.stderr);
}

/// A script that declared a variable which was already set before its first run could not
/// see it then (nothing says what it reads before it ran): it runs again in the same build,
/// with it, so the first build is already cargo's; the next one runs nothing.
#[test]
fn a_variable_declared_on_the_first_run_is_seen_in_the_same_build() {
    let fx = Fixture::new("pkgconf");
    let pc_a = fx.path("native/a").display().to_string();
    let env = [("PKG_CONFIG_PATH", Some(pc_a.as_str())), ("FIXTURE_KNOB", Some("early"))];
    fx.cargo_env("build", &[], &env);
    let expected = fx.run(&fx.cargo_target().join("debug/app"));
    assert_eq!(expected, "answer 42 (version 1.0), knob early\n");
    let first = fx.cargo_nix_env("build", &[], &env);
    assert!(first.success(), "{}", first.stderr);
    assert_eq!(fx.run(&fx.nix_target().join("debug/app")), expected);
    let second = fx.cargo_nix_env("build", &[], &env);
    assert!(second.success(), "{}", second.stderr);
    assert_eq!(second.built, 0, "{}", second.stderr);
}

/// A member reading files of its workspace outside its own directory (`include_str!` of the
/// workspace README, a build script reading `../../proto`) builds as under cargo, and what it
/// read decides what rebuilds: an edit to a file nobody read rebuilds nothing, an edit in
/// another member rebuilds that member only, and an edit to a file read rebuilds its reader.
#[test]
fn files_outside_the_package_are_read_and_decide_what_rebuilds() {
    let fx = Fixture::new("outside");
    let app = fx.nix_target().join("debug/app");
    fx.cargo("build", &[]);
    let expected = fx.run(&fx.cargo_target().join("debug/app"));
    assert_eq!(expected, "shared readme v1 / proto v1\n");
    let first = fx.cargo_nix("build", &[]);
    assert!(first.success(), "{}", first.stderr);
    assert_eq!(fx.run(&app), expected);
    let again = fx.cargo_nix("build", &[]);
    assert_eq!(again.built, 0, "{}", again.stderr);
    // The target directory is tagged as cargo tags it (and so left out of the copy).
    let tag = |dir: &std::path::Path| std::fs::read_to_string(dir.join("CACHEDIR.TAG")).unwrap();
    assert_eq!(tag(&fx.nix_target()), tag(&fx.cargo_target()));

    // A file no unit read.
    std::fs::write(fx.path("unrelated.txt"), "edited").unwrap();
    let unrelated = fx.cargo_nix("build", &[]);
    assert!(unrelated.success(), "{}", unrelated.stderr);
    assert_eq!(unrelated.built, 0, "{}", unrelated.stderr);

    // Another member: only it rebuilds.
    std::fs::write(fx.path("crates/other/src/lib.rs"), "pub fn other() -> u32 {\n    2\n}\n").unwrap();
    let other = fx.cargo_nix("build", &[]);
    assert!(other.success(), "{}", other.stderr);
    assert_eq!(other.compiled, set(&["other"]), "{}", other.stderr);

    // The README `include_str!` read: its reader rebuilds and sees the edit.
    std::fs::write(fx.path("README.md"), "shared readme v2\n").unwrap();
    let readme = fx.cargo_nix("build", &[]);
    assert!(readme.success(), "{}", readme.stderr);
    assert_eq!(readme.compiled, set(&["reader"]), "{}", readme.stderr);
    assert_eq!(fx.run(&app), "shared readme v2 / proto v1\n");

    // The directory the build script declared: it reruns, and what depends on it rebuilds.
    std::fs::write(fx.path("proto/msg.txt"), "proto v2\n").unwrap();
    let proto = fx.cargo_nix("build", &[]);
    assert!(proto.success(), "{}", proto.stderr);
    assert_eq!(proto.compiled, set(&["reader"]), "{}", proto.stderr);
    fx.cargo("build", &[]);
    assert_eq!(fx.run(&app), fx.run(&fx.cargo_target().join("debug/app")));
    assert_eq!(fx.run(&app), "shared readme v2 / proto v2\n");
}

/// cargo sets `CARGO_PRIMARY_PACKAGE=1` for the packages the command selected and does not
/// track it (not even for a crate that reads it), so `build -p app` after `build --workspace`
/// compiles again only what the narrower selection really changes (here the proc-macro, which
/// as a dependency gets the host's profile), not every member left out (as clap's workspace
/// did here).
#[test]
fn selecting_fewer_packages_rebuilds_what_cargo_rebuilds() {
    let fx = Fixture::new("basic");
    fx.append(
        "greeter/src/lib.rs",
        "\n/// Whether this package was selected.\npub const PRIMARY: Option<&str> = option_env!(\"CARGO_PRIMARY_PACKAGE\");\n",
    );
    let compiled = |out: &std::process::Output| -> BTreeSet<String> {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        stderr
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("Compiling ")?.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    };
    fx.cargo("build", &["--workspace"]);
    let expected = compiled(&fx.cargo("build", &["-p", "app"]));
    assert!(expected.contains("app") && !expected.contains("greeter"), "cargo compiled {expected:?}");
    let all = fx.cargo_nix("build", &["--workspace"]);
    assert!(all.success(), "{}", all.stderr);
    let app = fx.cargo_nix("build", &["-p", "app"]);
    assert!(app.success(), "{}", app.stderr);
    assert_eq!(app.compiled, expected, "{}", app.stderr);
    // And back: no more than cargo compiles (what the first build made is still in the store).
    let expected_back = compiled(&fx.cargo("build", &["--workspace"]));
    let back = fx.cargo_nix("build", &["--workspace"]);
    assert!(back.success(), "{}", back.stderr);
    assert!(
        back.compiled.is_subset(&expected_back),
        "{:?} vs cargo's {expected_back:?}\n{}",
        back.compiled,
        back.stderr
    );
}

/// `cargo nix build -p nix-sys -p nix-rs` of this repository: nix-sys's build script finds
/// Nix's C API through `PKG_CONFIG_PATH` (or `HOME`'s cache), runs bindgen, and nix-rs
/// compiles against it. Not the whole workspace: the `cargo` crate's ~320 dependencies would
/// add many minutes to CI.
#[test]
fn this_workspace_builds_its_nix_bindings() {
    let store = TempStore::new().unwrap();
    let target = tempfile::tempdir().unwrap();
    let output = Command::new(bin_dir().join("cargo-nix"))
        .current_dir(repo())
        .args(["nix", "build", "--locked", "-p", "nix-sys", "-p", "nix-rs", "--manifest-path"])
        .arg(repo().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target.path())
        .args(["--store", store.uri()])
        .env("NIX_CONFIG", test_nix_config())
        .output()
        .expect("running cargo-nix");
    let run = NixRun::from_output(output);
    assert!(run.success(), "{}", run.stderr);
    assert!(run.compiled.contains("nix-sys") && run.compiled.contains("nix-rs"), "{}", run.stderr);
    for lib in ["libnix_sys.rlib", "libnix_rs.rlib"] {
        assert!(target.path().join("debug").join(lib).is_file(), "{lib} missing:\n{}", run.stderr);
    }
}
