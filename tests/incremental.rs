//! Workspace members compile with rustc's incremental state, as under cargo: the state is kept
//! per unit under the target directory and found again by the next build of that unit; the
//! rebuilt programs behave as cargo's (compiled with state, and from scratch); damaged or
//! missing state only costs time; `cargo nix clean` removes it.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use support::Fixture;

/// The unit directories under `target/debug/.nix-incremental`, by crate name.
fn state_units(target: &Path) -> BTreeSet<String> {
    let Ok(dir) = fs::read_dir(target.join("debug/.nix-incremental")) else { return BTreeSet::new() };
    dir.map(|e| e.unwrap().file_name().to_string_lossy().rsplit_once('-').unwrap().0.to_owned()).collect()
}

/// rustc's session directories of one unit (`rustc/<crate>-<id>/s-…`).
fn sessions(target: &Path, krate: &str) -> BTreeSet<PathBuf> {
    let root = target.join("debug/.nix-incremental");
    let mut out = BTreeSet::new();
    for unit in fs::read_dir(&root).unwrap() {
        let unit = unit.unwrap().path();
        if !unit.file_name().unwrap().to_string_lossy().starts_with(&format!("{krate}-")) {
            continue;
        }
        for c in fs::read_dir(unit.join("rustc")).unwrap() {
            for s in fs::read_dir(c.unwrap().path()).unwrap() {
                let s = s.unwrap().path();
                if s.is_dir() {
                    out.insert(s);
                }
            }
        }
    }
    out
}

/// Every file of rustc's state in every unit directory (`<unit>/rustc/`), overwritten with
/// garbage. Not `deps/`: its files are links to the store's.
fn damage(target: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                walk(&p, n);
            } else if p.is_file() && !p.is_symlink() && p.file_name().unwrap() != "lock" {
                fs::write(&p, b"not what rustc wrote").unwrap();
                *n += 1;
            }
        }
    }
    let mut n = 0;
    for unit in fs::read_dir(target.join("debug/.nix-incremental")).unwrap() {
        walk(&unit.unwrap().path().join("rustc"), &mut n);
    }
    n
}

fn replace(fx: &Fixture, rel: &str, from: &str, to: &str) {
    let p = fx.path(rel);
    let s = fs::read_to_string(&p).unwrap();
    assert!(s.contains(from), "{rel} has no {from:?}");
    fs::write(p, s.replace(from, to)).unwrap();
}

/// Builds with both, checks the programs agree, and returns cargo nix's run.
fn build_both(fx: &Fixture) -> (String, support::NixRun) {
    let (expected, got, run) = fx.both_outputs("app", &[]);
    assert_eq!(got, expected, "cargo nix's program differs from cargo's\n{}", run.stderr);
    (got, run)
}

#[test]
fn members_keep_incremental_state_that_only_costs_time() {
    let fx = Fixture::new("basic");
    let target = fx.nix_target();
    let (_, cold) = build_both(&fx);
    // One directory per member rustc unit that cargo compiles incrementally; none for build
    // scripts' runs.
    let units = state_units(&target);
    assert!(
        units.is_superset(&["app", "greeter", "gen", "clib"].map(String::from).into()),
        "{units:?}\n{}",
        cold.stderr
    );
    let before = sessions(&target, "greeter");
    assert!(!before.is_empty(), "rustc wrote no session for greeter");

    // An edit in a library: it and its dependents compile again, with their state.
    replace(&fx, "greeter/src/lib.rs", "Good day, {name}", "Hello, {name}");
    let (out, edit) = build_both(&fx);
    assert!(out.contains("Hello, world."), "{out}");
    assert_eq!(edit.compiled, ["greeter", "app"].map(String::from).into(), "{}", edit.stderr);
    let after = sessions(&target, "greeter");
    assert!(!after.is_empty() && after != before, "greeter's state was not used: {before:?} then {after:?}");

    // Damaged state: the build still succeeds, from scratch, and the program is cargo's.
    assert!(damage(&target) > 0);
    replace(&fx, "greeter/src/lib.rs", "Hello, {name}", "Howdy, {name}");
    let (out, damaged) = build_both(&fx);
    assert!(out.contains("Howdy, world."), "{out}\n{}", damaged.stderr);

    // Missing state: the same. The app is compiled from scratch here, and behaves as the
    // incremental compiles before it did (all checked against cargo's).
    fs::remove_dir_all(target.join("debug/.nix-incremental")).unwrap();
    replace(&fx, "app/src/main.rs", "println!(\"app {}\"", "println!(\"app v{}\"");
    let (out, missing) = build_both(&fx);
    assert!(out.contains("app v1.0.0"), "{out}\n{}", missing.stderr);
    assert_eq!(missing.compiled, ["app"].map(String::from).into(), "{}", missing.stderr);

    // `cargo nix clean` removes the state with the target directory.
    let clean = fx.cargo_nix("clean", &[]);
    assert!(clean.success(), "{}", clean.stderr);
    assert!(!target.join("debug/.nix-incremental").exists());
}
