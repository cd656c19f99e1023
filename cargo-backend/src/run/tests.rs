//! The run-time environment, cargo's lines and rustdoc's doctest command for small units,
//! against what cargo 1.95 gives them (`tests/run_like_cargo.rs` checks whole fixtures
//! against cargo itself).
use std::path::{Path, PathBuf};

use super::doctest::{DoctestInvocation, library_closure, rustdoc_args};
use super::*;
use crate::plan::rustc_args::Extern;
use crate::units::UnitGraph;

const DEV: &str = r#"{"name": "dev", "opt_level": "0", "debuginfo": 2, "debug_assertions": true,
    "overflow_checks": true, "lto": "false", "panic": "unwind"}"#;

/// A graph: 0 = helper lib, 1 = rt lib (depends on 0), 2 = rt's doctest, 3 = integration
/// test `cli`, 4 = rt's unit tests.
fn graph() -> UnitGraph {
    let unit = |name: &str, kind: &str, mode: &str, src: &str, deps: &str| {
        format!(
            r#"{{"pkg_id": "path+file:///w/{pkg}#0.3.1-beta.2", "mode": "{mode}", "features": ["default", "loud"],
                "profile": {DEV}, "dependencies": [{deps}],
                "target": {{"kind": ["{kind}"], "crate_types": ["{ct}"], "name": "{name}",
                            "src_path": "/w/{pkg}/{src}", "edition": "2021"}}}}"#,
            pkg = if name == "helper" { "helper" } else { "rt" },
            ct = if kind == "lib" { "lib" } else { "bin" },
        )
    };
    let json = format!(
        r#"{{"version": 1, "roots": [2, 3, 4], "units": [{}, {}, {}, {}, {}]}}"#,
        unit("helper", "lib", "build", "src/lib.rs", ""),
        unit("rt", "lib", "build", "src/lib.rs", r#"{"index": 0, "extern_crate_name": "helper"}"#),
        unit(
            "rt",
            "lib",
            "doctest",
            "src/lib.rs",
            r#"{"index": 0, "extern_crate_name": "helper"}, {"index": 1, "extern_crate_name": "rt"}"#
        ),
        unit("cli", "test", "test", "tests/cli.rs", r#"{"index": 1, "extern_crate_name": "rt"}"#),
        unit("rt", "lib", "test", "src/lib.rs", r#"{"index": 0, "extern_crate_name": "helper"}"#),
    );
    UnitGraph::parse(&json).unwrap()
}

fn pkg() -> PackageInfo {
    PackageInfo {
        name: "rt".into(),
        version: "0.3.1-beta.2".into(),
        manifest_dir: "/w/rt".into(),
        links: None,
        authors: String::new(),
        description: "run-time fixture".into(),
        homepage: String::new(),
        repository: String::new(),
        license: String::new(),
        license_file: String::new(),
        rust_version: String::new(),
        readme: String::new(),
        features: ["default".to_owned(), "loud".to_owned()].into(),
        is_member: true,
        is_primary: true,
        lint_rustflags: Vec::new(),
        source: "path".into(),
    }
}

fn cx<'a>(inherited: &'a [PathBuf], env_config: &'a [EnvVar], bins: &'a [String]) -> RunContext<'a> {
    RunContext {
        cargo: "/bin/cargo",
        profile_dir: Path::new("/w/target/debug"),
        sysroot_target_libdir: Path::new("/sys/lib/rustlib/x/lib"),
        inherited_dylib_path: inherited,
        env_config,
        package_bins: bins,
        script_env: &[],
        native_dirs: &[],
    }
}

#[test]
fn native_dirs_inside_script_outputs_only() {
    let a = Path::new("/nix/store/aaa-run");
    let b = Path::new("/nix/store/bbb-run");
    let pa = vec![
        "native=/nix/store/aaa-run/out-dir/lib".to_owned(),
        "/usr/lib".to_owned(),
        "all=/nix/store/aaa-run/out-dir".to_owned(),
    ];
    let pb = vec![
        "/nix/store/bbb-run/out-dir/lib".to_owned(),
        "native=/nix/store/aaa-run/out-dir/lib".to_owned(),
        "dependency=/opt/x".to_owned(),
    ];
    let dirs = native_dirs([(a, pa.as_slice()), (b, pb.as_slice())]);
    let want: Vec<PathBuf> =
        ["/nix/store/aaa-run/out-dir", "/nix/store/aaa-run/out-dir/lib", "/nix/store/bbb-run/out-dir/lib"]
            .iter()
            .map(PathBuf::from)
            .collect();
    assert_eq!(dirs, want);
    // First on the dynamic-library path.
    let g = graph();
    let mut c = cx(&[], &[], &[]);
    c.native_dirs = &want;
    let env = run_env(&g.units[0], &pkg(), &c);
    assert!(
        env["LD_LIBRARY_PATH"].starts_with(
            "/nix/store/aaa-run/out-dir:/nix/store/aaa-run/out-dir/lib:/nix/store/bbb-run/out-dir/lib:/w/target/debug:"
        ),
        "{}",
        env["LD_LIBRARY_PATH"]
    );
}

#[test]
fn integration_tests_see_the_package_and_its_binaries() {
    let g = graph();
    let bins = vec!["rt-tool".to_owned()];
    let cfg = vec![EnvVar { key: "FROM_CONFIG".into(), value: "1".into() }];
    let env = run_env(&g.units[3], &pkg(), &cx(&[], &cfg, &bins));
    let get = |k: &str| env.get(k).map(String::as_str);
    assert_eq!(get("CARGO_MANIFEST_DIR"), Some("/w/rt"));
    assert_eq!(get("CARGO_MANIFEST_PATH"), Some("/w/rt/Cargo.toml"));
    assert_eq!(get("CARGO_PKG_VERSION_PRE"), Some("beta.2"));
    assert_eq!(get("CARGO_PKG_DESCRIPTION"), Some("run-time fixture"));
    assert_eq!(get("CARGO_BIN_EXE_rt-tool"), Some("/w/target/debug/rt-tool"));
    assert_eq!(get("FROM_CONFIG"), Some("1"));
    assert_eq!(get("CARGO"), Some("/bin/cargo"));
    assert_eq!(get("LD_LIBRARY_PATH"), Some("/w/target/debug:/w/target/debug/deps:/sys/lib/rustlib/x/lib"));
    // Compile-time only variables are not set at run time.
    assert_eq!(get("CARGO_CRATE_NAME"), None);
    assert_eq!(get("CARGO_TARGET_TMPDIR"), None);
}

#[test]
fn unit_tests_get_no_binary_paths_and_keep_the_inherited_library_path() {
    let g = graph();
    let bins = vec!["rt-tool".to_owned()];
    let inherited = vec![PathBuf::from("/opt/lib")];
    let env = run_env(&g.units[4], &pkg(), &cx(&inherited, &[], &bins));
    assert!(!env.keys().any(|k| k.starts_with("CARGO_BIN_EXE_")), "{env:?}");
    assert_eq!(env["LD_LIBRARY_PATH"], "/w/target/debug:/w/target/debug/deps:/sys/lib/rustlib/x/lib:/opt/lib");
    // An inherited path that already starts with cargo's is kept as it is (cargo's rule).
    let inherited: Vec<PathBuf> =
        ["/w/target/debug", "/w/target/debug/deps", "/sys/lib/rustlib/x/lib", "/o"].iter().map(PathBuf::from).collect();
    let env = run_env(&g.units[4], &pkg(), &cx(&inherited, &[], &bins));
    assert_eq!(env["LD_LIBRARY_PATH"], "/w/target/debug:/w/target/debug/deps:/sys/lib/rustlib/x/lib:/o");
}

#[test]
fn build_script_env_is_over_config_and_under_cargos_own() {
    let g = graph();
    let cfg = vec![EnvVar { key: "GEN".into(), value: "config".into() }];
    let script = [
        ("OUT_DIR".to_owned(), "/s/out-dir".to_owned()),
        ("GEN".to_owned(), "script".to_owned()),
        ("CARGO_PKG_NAME".to_owned(), "script".to_owned()),
    ];
    let mut c = cx(&[], &cfg, &[]);
    c.script_env = &script;
    let env = run_env(&g.units[3], &pkg(), &c);
    assert_eq!(
        (env["OUT_DIR"].as_str(), env["GEN"].as_str(), env["CARGO_PKG_NAME"].as_str()),
        ("/s/out-dir", "script", "rt")
    );
}

#[test]
fn config_env_never_overrides_cargos_variables() {
    let g = graph();
    let cfg = vec![EnvVar { key: "CARGO_PKG_NAME".into(), value: "other".into() }];
    assert_eq!(run_env(&g.units[3], &pkg(), &cx(&[], &cfg, &[]))["CARGO_PKG_NAME"], "rt");
}

#[test]
fn running_lines_are_cargos() {
    let g = graph();
    let exe = Path::new("/w/target/debug/deps/cli-0123");
    assert_eq!(running_line(&g.units[3], &pkg(), exe, Path::new("/w")), "tests/cli.rs (target/debug/deps/cli-0123)");
    let exe = Path::new("/w/target/debug/deps/rt-4567");
    assert_eq!(
        running_line(&g.units[4], &pkg(), exe, Path::new("/elsewhere")),
        "unittests src/lib.rs (/w/target/debug/deps/rt-4567)"
    );
}

#[test]
fn rerun_hints_and_the_closing_message_are_cargos() {
    let g = graph();
    assert_eq!(rerun_args(&g.units[3], &pkg(), false, false), "--test cli");
    assert_eq!(rerun_args(&g.units[4], &pkg(), false, true), "-p rt --lib");
    assert_eq!(rerun_args(&g.units[2], &pkg(), true, false), "--doc");
    assert_eq!(failed_targets_message(&[]), None);
    assert_eq!(failed_targets_message(&["--lib".into()]).unwrap(), "1 target failed:\n    `--lib`");
    assert_eq!(
        failed_targets_message(&["--lib".into(), "--doc".into()]).unwrap(),
        "2 targets failed:\n    `--lib`\n    `--doc`"
    );
    assert_eq!(fail_fast_code(Some(101)), 101);
    assert_eq!(fail_fast_code(Some(3)), 3);
    assert_eq!(fail_fast_code(None), 101);
}

/// cargo 1.95's `cargo test --doc -v` on `tests/fixtures/runtime` (paths shortened).
#[test]
fn doctest_command_is_cargos() {
    let g = graph();
    let externs = [
        Extern { name: "helper".into(), path: "/d/libhelper-1.rlib".into(), noprelude: false },
        Extern { name: "rt".into(), path: "/d/librt-2.rlib".into(), noprelude: false },
    ];
    let args = rustdoc_args(&DoctestInvocation {
        unit: &g.units[2],
        pkg: &pkg(),
        src_path: "rt/src/lib.rs".into(),
        color: "auto",
        externs: &externs,
        lib_dirs: &["/d".to_owned()],
        test_args: &["double".to_owned()],
        script_args: &[],
        rustdocflags: &[],
        error_format: "human",
        native_link_paths: &[],
    });
    let want = "--edition=2021 --crate-type lib --color auto --crate-name rt --test rt/src/lib.rs \
        --test-run-directory /w/rt --test-args double --extern helper=/d/libhelper-1.rlib \
        --extern rt=/d/librt-2.rlib -L dependency=/d -C embed-bitcode=no";
    let mut want: Vec<String> = want.split_whitespace().map(str::to_owned).collect();
    for a in [
        "--cfg",
        "feature=\"default\"",
        "--cfg",
        "feature=\"loud\"",
        "--check-cfg",
        "cfg(docsrs,test)",
        "--check-cfg",
        "cfg(feature, values(\"default\", \"loud\"))",
        "--error-format",
        "human",
    ] {
        want.push(a.to_owned());
    }
    assert_eq!(args, want);
}

#[test]
fn doctests_read_every_library_below_them() {
    let g = graph();
    assert_eq!(library_closure(&g, &g.units[2]), vec![0, 1]);
    assert_eq!(library_closure(&g, &g.units[3]), vec![0, 1]);
}
