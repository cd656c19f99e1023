//! rustc's arguments for small units, against what cargo 1.95 passes for them (the oracle
//! test in `cargo-nix/tests/oracle.rs` checks whole fixtures against cargo itself).
use super::*;
use crate::units::UnitGraph;

fn unit(kind: &str, crate_type: &str, mode: &str, profile: &str, extra: &str) -> Unit {
    let json = format!(
        r#"{{"version": 1, "roots": [0], "units": [{{"pkg_id": "path+file:///w/m#0.1.0", "mode": "{mode}",
            "features": ["default"], "profile": {profile},
            "target": {{"kind": ["{kind}"], "crate_types": ["{crate_type}"], "name": "m",
                        "src_path": "/w/m/src/lib.rs", "edition": "2021"{extra}}}}}]}}"#
    );
    UnitGraph::parse(&json).unwrap().units.remove(0)
}

const DEV: &str = r#"{"name": "dev", "opt_level": "0", "debuginfo": 2, "debug_assertions": true,
    "overflow_checks": true, "lto": "false", "panic": "unwind"}"#;

fn pkg() -> PackageInfo {
    PackageInfo {
        name: "m".into(),
        version: "0.1.0".into(),
        manifest_dir: "/w/m".into(),
        links: None,
        authors: String::new(),
        description: String::new(),
        homepage: String::new(),
        repository: String::new(),
        license: String::new(),
        license_file: String::new(),
        rust_version: String::new(),
        readme: String::new(),
        features: ["default".to_owned()].into(),
        is_member: true,
        is_primary: true,
        lint_rustflags: vec!["--warn=unused".into()],
        source: "path".into(),
    }
}

fn args(unit: &Unit, pkg: &PackageInfo) -> Vec<String> {
    let lto = Lto::OnlyObject;
    rustc_args(&RustcInvocation {
        unit,
        pkg,
        src_path: "m/src/lib.rs".into(),
        lto: &lto,
        metadata: "abc",
        extra_filename: Some("abc"),
        out_dir: Some("/o"),
        lib_dirs: &["/d".into()],
        externs: &[Extern { name: "dep".into(), path: "/d/libdep-1.rmeta".into(), noprelude: false }],
    })
}

#[test]
fn a_dev_library_gets_cargos_arguments_in_cargos_order() {
    let mut u = unit("lib", "lib", "build", DEV, "");
    u.rustflags = vec!["--cfg".into(), "from_rustflags".into()];
    let expected = [
        "--crate-name",
        "m",
        "--edition=2021",
        "m/src/lib.rs",
        "--error-format=json",
        "--json=diagnostic-rendered-ansi,artifacts,future-incompat",
        "--crate-type",
        "lib",
        "--emit=dep-info,metadata,link",
        "-C",
        "embed-bitcode=no",
        "-C",
        "debuginfo=2",
        "--warn=unused",
        "--cfg",
        "feature=\"default\"",
        "--check-cfg",
        "cfg(docsrs,test)",
        "--check-cfg",
        "cfg(feature, values(\"default\"))",
        "-C",
        "metadata=abc",
        "-C",
        "extra-filename=-abc",
        "--out-dir",
        "/o",
        "-L",
        "dependency=/d",
        "--extern",
        "dep=/d/libdep-1.rmeta",
        "--cfg",
        "from_rustflags",
    ];
    assert_eq!(args(&u, &pkg()), expected);
}

#[test]
fn harness_false_tests_get_cfg_test_instead_of_test() {
    let mut u = unit("test", "bin", "test", DEV, r#", "harness": false"#);
    let a = args(&u, &pkg());
    assert!(a.windows(2).any(|w| w == ["--cfg", "test"]), "{a:?}");
    assert!(!a.contains(&"--test".to_owned()));
    assert!(!a.contains(&"--crate-type".to_owned()), "tests get no crate type");
    u.target.harness = true;
    assert!(args(&u, &pkg()).contains(&"--test".to_owned()));
}

#[test]
fn release_settings_and_registry_packages() {
    let release = r#"{"name": "release", "opt_level": "3", "lto": "false", "panic": "abort",
        "debug_assertions": false, "overflow_checks": true, "strip": "symbols", "codegen_units": 1}"#;
    let u = unit("bin", "bin", "build", release, "");
    let mut p = pkg();
    p.source = "registry".into();
    let a = args(&u, &p).join(" ");
    assert!(
        a.contains("--emit=dep-info,link -C opt-level=3 -C panic=abort -C embed-bitcode=no -C codegen-units=1"),
        "{a}"
    );
    assert!(a.contains("-C overflow-checks=on"), "{a}");
    assert!(!a.contains("debug-assertions"), "{a}");
    assert!(a.contains("-C strip=symbols"), "{a}");
    assert!(a.ends_with("--cap-lints allow"), "{a}");
}

#[test]
fn proc_macros_prefer_dynamic_and_import_proc_macro() {
    let u = unit("proc-macro", "proc-macro", "build", DEV, "");
    let a = args(&u, &pkg()).join(" ");
    assert!(a.contains("--emit=dep-info,link -C prefer-dynamic"), "{a}");
    assert!(a.contains("--extern proc_macro"), "{a}");
}

#[test]
fn check_units_emit_metadata_only_and_targets_are_explicit() {
    let mut u = unit("lib", "lib", "check", DEV, "");
    u.platform = Some("x86_64-unknown-linux-gnu".into());
    u.linker = Some("/usr/bin/cc".into());
    let a = args(&u, &pkg()).join(" ");
    assert!(a.contains("--emit=dep-info,metadata "), "{a}");
    assert!(a.contains("--out-dir /o --target x86_64-unknown-linux-gnu -C linker=/usr/bin/cc"), "{a}");
}
