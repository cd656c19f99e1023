//! The backend called exactly as a patched cargo calls it: cargo's library makes the
//! `BuildContext` in this process, [`cargo_nix::from_cargo::describe`] turns it into the
//! neutral description, and [`cargo_backend::build_with_cache`] builds that on a temporary
//! store. The program it installs prints what the same program built by cargo prints.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cargo::core::Shell;
use cargo::core::compiler::UnitInterner;
use cargo::util::context::GlobalContext;
use cargo_backend::cache::Cache;
use cargo_backend::{BuildOptions, CargoArgs, CargoCommand, Silent, Toolchain};
use cargo_nix::cargo;
use common::{copy_dir, repo};
use nix_rs::testing::TempStore;

/// `cargo-nix-unit`, built in a target directory of its own (this test runs while the outer
/// cargo holds the workspace's).
fn unit_builder() -> PathBuf {
    let target = repo().join("target/cargo-nix-unit-for-tests");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(repo())
        .args(["build", "-q", "-p", "cargo-nix-unit", "--bin", "cargo-nix-unit", "--target-dir"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    target.join("debug/cargo-nix-unit")
}

fn run(bin: &Path) -> String {
    let out = Command::new(bin).output().unwrap();
    assert!(out.status.success(), "{}: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_build_context_made_by_cargo_is_built_by_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_dir(&repo().join("tests/fixtures/oracle"), root);

    // What a patched cargo has at hand: its GlobalContext, Workspace and BuildContext.
    let mut gctx = GlobalContext::new(Shell::new(), root.to_path_buf(), cargo::util::homedir(root).unwrap());
    // The copied workspace's own `target/`, as for a user who sets no target directory: a
    // `CARGO_TARGET_DIR` exported around `cargo test` must not send this build into the
    // outer workspace's target directory.
    gctx.set_env(std::env::vars().filter(|(k, _)| k != "CARGO_TARGET_DIR" && k != "CARGO_BUILD_TARGET_DIR").collect());
    let ws = cargo::core::Workspace::new(&root.join("Cargo.toml"), &gctx).unwrap();
    let args = CargoArgs { workspace: true, ..Default::default() };
    let opts = cargo_nix::from_cargo::compile_options(&gctx, CargoCommand::Build, &args).unwrap();
    let interner = UnitInterner::new();
    let bcx = cargo::ops::create_bcx(&ws, &opts, &interner, None).unwrap();
    let description = cargo_nix::from_cargo::describe(&bcx).unwrap();
    assert_eq!(description.graph.units.len(), bcx.unit_graph.len(), "no doc units in a build");

    let store = TempStore::new().unwrap();
    let options = BuildOptions { unit_builder: Some(unit_builder()), jobs: 2, ..BuildOptions::default() };
    let report = cargo_backend::build_with_cache(
        store.store(),
        None,
        &description,
        &Toolchain::detect().unwrap(),
        &options,
        &mut Silent,
        &mut Cache::default(),
    )
    .unwrap();
    assert!(report.success(), "{:?}", report.units.iter().map(|u| (&u.label, &u.outcome)).collect::<Vec<_>>());
    assert_eq!(report.built(), description.graph.units.len());
    assert_eq!(report.profile_dir, root.join("target/debug"));

    // cargo's own build of the same workspace, for comparison.
    let cargo_target = root.join("target-cargo");
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(root)
        .args(["build", "-q", "--workspace", "--target-dir"])
        .arg(&cargo_target)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = run(&cargo_target.join("debug/app"));
    assert_eq!(run(&root.join("target/debug/app")), expected);
    assert!(expected.contains("crates/helper/src/lib.rs"), "{expected}");
}
