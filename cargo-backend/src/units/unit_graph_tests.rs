//! Tests of the unit-graph JSON adapter.
use super::*;
use crate::units::{DebugInfo, Mode, PackageIdParts, SourceKind, UnitDep};

/// A graph shaped like cargo 1.95's output for a package `app` (lib + bin) with a build
/// script, a `links` dependency `zsys` with its own build script, and a proc macro
/// `derive-it` from crates.io. Fields are spelled in every shape cargo has used.
const GRAPH: &str = r#"{
  "version": 1,
  "units": [
    {
      "pkg_id": "path+file:///home/u/ws/app#0.1.0",
      "target": {"kind": ["lib"], "crate_types": ["lib"], "name": "app",
                 "src_path": "/home/u/ws/app/src/lib.rs", "edition": "2021",
                 "doc": true, "doctest": true, "test": true},
      "profile": {"name": "release", "opt_level": "3", "lto": "thin",
                  "codegen_backend": null, "codegen_units": 4,
                  "debuginfo": "line-tables-only", "split_debuginfo": null,
                  "debug_assertions": false, "overflow_checks": false, "rpath": false,
                  "incremental": false, "panic": "unwind",
                  "strip": {"resolved": {"Named": "symbols"}}},
      "platform": null, "mode": "build", "features": ["default", "zlib"],
      "dependencies": [
        {"index": 3, "extern_crate_name": "build_script_build", "public": false,
         "noprelude": false},
        {"index": 4, "extern_crate_name": "derive_it"},
        {"index": 5, "extern_crate_name": "zsys"}
      ]
    },
    {
      "pkg_id": "path+file:///home/u/ws/app#0.1.0",
      "target": {"kind": ["bin"], "crate_types": ["bin"], "name": "app-cli",
                 "src_path": "/home/u/ws/app/src/main.rs", "edition": "2021",
                 "required-features": ["cli"], "doc": true, "doctest": false,
                 "test": true, "some_future_field": {"x": [1, 2]}},
      "profile": {"name": "release", "opt_level": "3", "lto": true, "codegen_units": null,
                  "debuginfo": 2, "debug_assertions": false, "overflow_checks": false,
                  "rpath": false, "incremental": false, "panic": "abort",
                  "strip": "debuginfo", "trim_paths": "all"},
      "platform": "x86_64-unknown-linux-gnu", "mode": "build", "features": [],
      "dependencies": [
        {"index": 0, "extern_crate_name": "app"},
        {"index": 3, "extern_crate_name": "build_script_build"}
      ]
    },
    {
      "pkg_id": "path+file:///home/u/ws/app#0.1.0",
      "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                 "name": "build-script-build", "src_path": "/home/u/ws/app/build.rs",
                 "edition": "2021", "doc": false, "doctest": false, "test": false},
      "profile": {"name": "release", "opt_level": "0", "lto": "false", "codegen_units": null,
                  "debuginfo": 0, "debug_assertions": false, "overflow_checks": false,
                  "rpath": false, "incremental": false, "panic": "unwind",
                  "strip": {"deferred": "None"}},
      "platform": null, "mode": "build", "features": [], "dependencies": []
    },
    {
      "pkg_id": "path+file:///home/u/ws/app#0.1.0",
      "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                 "name": "build-script-build", "src_path": "/home/u/ws/app/build.rs",
                 "edition": "2021", "doc": false, "doctest": false, "test": false},
      "profile": {"name": "release", "opt_level": "3", "lto": "false", "codegen_units": null,
                  "debuginfo": null, "debug_assertions": false, "overflow_checks": false,
                  "rpath": false, "incremental": false, "panic": "unwind",
                  "strip": {"deferred": "None"}},
      "platform": null, "mode": "run-custom-build", "features": [],
      "dependencies": [
        {"index": 2, "extern_crate_name": "build_script_build"},
        {"index": 7, "extern_crate_name": "build_script_build"}
      ]
    },
    {
      "pkg_id": "registry+https://github.com/rust-lang/crates.io-index#derive-it@1.2.3",
      "target": {"kind": ["proc-macro"], "crate_types": ["proc-macro"], "name": "derive_it",
                 "src_path": "/home/u/.cargo/registry/src/x/derive-it-1.2.3/src/lib.rs",
                 "edition": "2018", "doc": true, "doctest": true, "test": true},
      "profile": {"name": "release", "opt_level": "0", "lto": "off", "codegen_units": null,
                  "debuginfo": "limited", "debug_assertions": false,
                  "overflow_checks": false, "rpath": false, "incremental": false,
                  "panic": "unwind", "strip": {"resolved": "None"}},
      "platform": null, "mode": "build", "features": [], "dependencies": []
    },
    {
      "pkg_id": "path+file:///home/u/ws/z-sys#zsys@0.3.0",
      "target": {"kind": ["lib"], "crate_types": ["lib"], "name": "zsys",
                 "src_path": "/home/u/ws/z-sys/src/lib.rs", "edition": "2015",
                 "doc": true, "doctest": true, "test": true},
      "profile": {"name": "release", "opt_level": "3"},
      "platform": null, "mode": "build", "features": [], "is_std": false,
      "dependencies": [{"index": 7, "extern_crate_name": "build_script_build"}]
    },
    {
      "pkg_id": "path+file:///home/u/ws/z-sys#zsys@0.3.0",
      "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                 "name": "build-script-build", "src_path": "/home/u/ws/z-sys/build.rs",
                 "edition": "2015", "doc": false, "doctest": false, "test": false},
      "profile": {"name": "release", "opt_level": "0", "lto": "false",
                  "debuginfo": {"deferred": 0}, "strip": "none"},
      "platform": null, "mode": "build", "features": [], "dependencies": []
    },
    {
      "pkg_id": "path+file:///home/u/ws/z-sys#zsys@0.3.0",
      "target": {"kind": ["custom-build"], "crate_types": ["bin"],
                 "name": "build-script-build", "src_path": "/home/u/ws/z-sys/build.rs",
                 "edition": "2015", "doc": false, "doctest": false, "test": false},
      "profile": {"name": "release", "opt_level": "3"},
      "platform": null, "mode": "run-custom-build", "features": [],
      "dependencies": [{"index": 6, "extern_crate_name": "build_script_build"}]
    }
  ],
  "roots": [0, 1],
  "extra_top_level": true
}"#;

fn graph() -> UnitGraph {
    UnitGraph::parse(GRAPH).expect("sample graph parses")
}

/// A minimal unit as JSON, depending on `deps`.
fn unit_json(name: &str, deps: &[usize]) -> String {
    let deps: Vec<String> = deps.iter().map(|d| format!(r#"{{"index": {d}, "extern_crate_name": "d{d}"}}"#)).collect();
    format!(
        r#"{{"pkg_id": "registry+https://example.org/index#{name}@1.0.0",
            "target": {{"kind": ["lib"], "crate_types": ["lib"], "name": "{name}",
                        "src_path": "/src/{name}/lib.rs", "edition": "2021"}},
            "mode": "build", "dependencies": [{}]}}"#,
        deps.join(", ")
    )
}

fn graph_json(units: &[(&str, &[usize])], roots: &[usize]) -> String {
    let units: Vec<String> = units.iter().map(|(n, d)| unit_json(n, d)).collect();
    let roots: Vec<String> = roots.iter().map(usize::to_string).collect();
    format!(r#"{{"version": 1, "units": [{}], "roots": [{}]}}"#, units.join(", "), roots.join(", "))
}

#[test]
fn parses_realistic_graph() {
    let g = graph();
    assert_eq!(g.version, 1);
    assert_eq!(g.units.len(), 8);
    assert_eq!(g.roots, vec![0, 1]);

    let lib = &g.units[0];
    assert_eq!(lib.target.name, "app");
    assert_eq!(lib.target.edition, "2021");
    assert_eq!(lib.target.src_path, PathBuf::from("/home/u/ws/app/src/lib.rs"));
    assert_eq!(lib.features, vec!["default", "zlib"]);
    assert_eq!(lib.platform, None);
    assert_eq!(lib.mode, Mode::Build);
    assert!(!lib.is_std);
    assert_eq!(lib.dependencies.len(), 3);
    assert_eq!(lib.dependencies[0].extern_crate_name, "build_script_build");
    assert!(!lib.dependencies[1].public && !lib.dependencies[1].noprelude);

    let p = &lib.profile;
    assert_eq!(p.name, "release");
    assert_eq!(p.opt_level, "3");
    assert_eq!(p.lto, "thin");
    assert_eq!(p.codegen_units, Some(4));
    assert_eq!(p.debuginfo, Some(DebugInfo::LineTablesOnly));
    assert_eq!(p.debuginfo.unwrap().rustc_value(), "line-tables-only");
    assert_eq!(p.strip, "symbols");
    assert_eq!(p.panic, "unwind");

    let bin = &g.units[1];
    assert!(bin.is_bin() && !bin.is_lib());
    assert_eq!(bin.target.required_features, Some(vec!["cli".to_owned()]));
    assert_eq!(bin.platform.as_deref(), Some("x86_64-unknown-linux-gnu"));
    assert_eq!(bin.profile.lto, "true");
    assert_eq!(bin.profile.debuginfo, Some(DebugInfo::Full));
    assert_eq!(bin.profile.debuginfo.unwrap().rustc_value(), "2");
    assert_eq!(bin.profile.strip, "debuginfo");
    assert_eq!(bin.profile.panic, "abort");
    assert_eq!(lib.target.required_features, None);
}

#[test]
fn polymorphic_profile_fields() {
    let g = graph();
    let build_compile = &g.units[2].profile;
    assert_eq!(build_compile.debuginfo, Some(DebugInfo::None));
    assert_eq!(build_compile.debuginfo.unwrap().rustc_value(), "0");
    assert_eq!(build_compile.strip, "none");
    assert_eq!(build_compile.lto, "false");
    assert_eq!(g.units[3].profile.debuginfo, None);
    let pm = &g.units[4].profile;
    assert_eq!(pm.lto, "off");
    assert_eq!(pm.debuginfo, Some(DebugInfo::Limited));
    assert_eq!(pm.debuginfo.unwrap().rustc_value(), "1");
    assert_eq!(pm.strip, "none");
    assert_eq!(g.units[6].profile.debuginfo, Some(DebugInfo::None));
    // A profile with most fields missing takes the defaults.
    let sparse = &g.units[5].profile;
    assert_eq!(sparse.opt_level, "3");
    assert_eq!(sparse.lto, "false");
    assert_eq!(sparse.strip, "none");
    assert_eq!(sparse.panic, "unwind");
    assert_eq!(sparse.debuginfo, None);
    assert_eq!(sparse.codegen_units, None);
}

#[test]
fn unit_kinds() {
    let g = graph();
    let u = &g.units;
    assert!(u[0].is_lib() && !u[0].is_proc_macro() && !u[0].is_build_script_compile());
    assert!(u[2].is_build_script_compile() && !u[2].is_build_script_run());
    assert!(u[3].is_build_script_run() && !u[3].is_build_script_compile());
    assert!(u[4].is_proc_macro() && u[4].is_lib());
    assert!(u[6].is_build_script_compile() && u[7].is_build_script_run());
    assert!(!u[2].is_lib() && !u[2].is_bin() && !u[2].is_test());
    assert_eq!(u[4].package_name(), Some("derive-it"));
    assert_eq!(u[4].package_version(), Some("1.2.3"));
    assert_eq!(u[4].source_kind(), SourceKind::Registry);
    assert_eq!(u[0].package_name(), Some("app"));
    assert_eq!(u[0].package_version(), Some("0.1.0"));
    assert_eq!(u[0].source_kind(), SourceKind::Path(PathBuf::from("/home/u/ws/app")));
    assert_eq!(u[5].package_name(), Some("zsys"));
    assert_eq!(u[5].package_version(), Some("0.3.0"));
}

#[test]
fn topological_order_puts_dependencies_first() {
    let g = graph();
    let order = g.topological_order();
    assert_eq!(order.len(), g.units.len());
    let mut position = vec![usize::MAX; g.units.len()];
    for (pos, &unit) in order.iter().enumerate() {
        assert_eq!(position[unit], usize::MAX, "unit {unit} listed twice");
        position[unit] = pos;
    }
    for (i, unit) in g.units.iter().enumerate() {
        for dep in &unit.dependencies {
            assert!(position[dep.index] < position[i], "{} before {i}", dep.index);
        }
    }
    // Deterministic: the same graph always gives the same order.
    assert_eq!(order, g.topological_order());
    assert_eq!(order, vec![2, 6, 7, 3, 4, 5, 0, 1]);
}

#[test]
fn dependents_are_reverse_edges() {
    let g = graph();
    let rev = g.dependents();
    assert_eq!(rev[3], vec![0, 1]);
    assert_eq!(rev[7], vec![3, 5]);
    assert!(rev[1].is_empty());
}

#[test]
fn malformed_json_is_a_syntax_error() {
    let err = UnitGraph::parse(r#"{"version": 1, "units": [}"#).unwrap_err();
    match &err {
        UnitGraphError::Syntax { line, column, truncated, .. } => {
            assert_eq!((*line, *column), (1, 26));
            assert!(!truncated);
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("syntax error at line 1, column 26"), "{text}");
}

#[test]
fn truncated_json_says_so() {
    let cut = &GRAPH[..GRAPH.len() / 2];
    let err = UnitGraph::parse(cut).unwrap_err();
    assert!(matches!(err, UnitGraphError::Syntax { truncated: true, .. }), "{err:?}");
    assert!(err.to_string().contains("truncated"), "{err}");
    let err = UnitGraph::parse("").unwrap_err();
    assert!(matches!(err, UnitGraphError::Syntax { truncated: true, .. }));
}

#[test]
fn wrong_shape_is_a_schema_error() {
    let err = UnitGraph::parse(r#"{"version": 1, "roots": []}"#).unwrap_err();
    assert!(matches!(err, UnitGraphError::Schema { .. }), "{err:?}");
    assert!(err.to_string().contains("units"), "{err}");
    let err = UnitGraph::parse(r#"{"units": [], "roots": []}"#).unwrap_err();
    assert!(err.to_string().contains("version"), "{err}");
    let bad_debuginfo = GRAPH.replace(r#""debuginfo": 2,"#, r#""debuginfo": 7,"#);
    let err = UnitGraph::parse(&bad_debuginfo).unwrap_err();
    assert!(matches!(err, UnitGraphError::Schema { .. }), "{err:?}");
    assert!(err.to_string().contains("debuginfo"), "{err}");
}

#[test]
fn version_2_is_rejected_before_its_shape_is_read() {
    let err = UnitGraph::parse(r#"{"version": 2, "nodes": {"a": 1}}"#).unwrap_err();
    assert!(matches!(err, UnitGraphError::UnsupportedVersion(2)), "{err:?}");
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn dependency_out_of_range() {
    let json = graph_json(&[("a", &[]), ("b", &[0, 9])], &[1]);
    let err = UnitGraph::parse(&json).unwrap_err();
    match &err {
        UnitGraphError::DependencyOutOfRange { unit, pkg_id, index, len } => {
            assert_eq!((*unit, *index, *len), (1, 9, 2));
            assert!(pkg_id.ends_with("#b@1.0.0"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("unit 1") && text.contains("#b@1.0.0") && text.contains("9"));
}

#[test]
fn root_out_of_range() {
    let json = graph_json(&[("a", &[])], &[0, 3]);
    let err = UnitGraph::parse(&json).unwrap_err();
    assert!(matches!(err, UnitGraphError::RootOutOfRange { index: 3, len: 1 }), "{err:?}");
}

#[test]
fn cycle_is_reported_with_its_units() {
    let json = graph_json(&[("a", &[1]), ("b", &[2]), ("c", &[0]), ("d", &[0])], &[3]);
    let err = UnitGraph::parse(&json).unwrap_err();
    let UnitGraphError::Cycle { units } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(units.len(), 3);
    for name in ["a [build]", "b [build]", "c [build]"] {
        assert!(units.iter().any(|u| u.starts_with(name)), "{units:?}");
    }
    assert!(units[0].contains("#a@1.0.0"), "{units:?}");
    assert!(units[1].contains("#b@1.0.0"), "{units:?}");
    assert!(err.to_string().contains(" -> "), "{err}");
}

#[test]
fn self_dependency_is_rejected() {
    let json = graph_json(&[("a", &[]), ("b", &[0, 1])], &[1]);
    let err = UnitGraph::parse(&json).unwrap_err();
    assert!(matches!(&err, UnitGraphError::SelfDependency { unit: 1, pkg_id } if pkg_id.contains("#b@")), "{err:?}");
}

#[test]
fn topological_order_of_a_hand_built_cyclic_graph_lists_every_unit() {
    let json = graph_json(&[("a", &[1]), ("b", &[])], &[0]);
    let mut g = UnitGraph::parse(&json).unwrap();
    g.units[1].dependencies.push(UnitDep {
        index: 0,
        extern_crate_name: "a".into(),
        public: false,
        noprelude: false,
        nounused: false,
    });
    let mut order = g.topological_order();
    order.sort_unstable();
    assert_eq!(order, vec![0, 1]);
}

#[test]
fn check_units_for_tests_are_told_apart() {
    let mut units: Vec<String> = Vec::new();
    let check = unit_json("a", &[]).replace(r#""mode": "build""#, r#""mode": "check""#);
    units.push(check.clone());
    units.push(check.replace(r#""dependencies": []"#, r#""dependencies": [{"index": 2}]"#));
    units.push(unit_json("dev", &[]));
    let json = format!(r#"{{"version": 1, "units": [{}], "roots": [0, 1]}}"#, units.join(","));
    let g = UnitGraph::parse(&json).unwrap();
    assert_eq!(g.units[0].mode, Mode::Check { test: false });
    assert_eq!(g.units[1].mode, Mode::Check { test: true });
    assert!(g.units[1].mode.is_any_test() && !g.units[0].mode.is_any_test());
    assert_eq!(g.units[1].mode.to_string(), "check");
}

#[test]
fn unknown_modes_are_kept() {
    let json = graph_json(&[("a", &[])], &[0]).replace(r#""build""#, r#""docscrape""#);
    let g = UnitGraph::parse(&json).unwrap();
    assert_eq!(g.units[0].mode, Mode::Other("docscrape".into()));
}

fn parts(id: &str) -> (String, Option<String>, SourceKind) {
    let p = PackageIdParts::parse(id).unwrap_or_else(|| panic!("{id} did not parse"));
    (p.name.to_owned(), p.version.map(str::to_owned), p.source_kind())
}

#[test]
fn package_id_spec_forms() {
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        parts("registry+https://github.com/rust-lang/crates.io-index#serde@1.0.219"),
        ("serde".into(), some("1.0.219"), SourceKind::Registry)
    );
    assert_eq!(
        parts("sparse+https://index.crates.io/#serde_json@1.0.140"),
        ("serde_json".into(), some("1.0.140"), SourceKind::Registry)
    );
    assert_eq!(
        parts("path+file:///home/x/proj/foo#0.1.0"),
        ("foo".into(), some("0.1.0"), SourceKind::Path("/home/x/proj/foo".into()))
    );
    assert_eq!(
        parts("path+file:///home/x/proj/foo#bar@0.1.0"),
        ("bar".into(), some("0.1.0"), SourceKind::Path("/home/x/proj/foo".into()))
    );
    assert_eq!(
        parts("path+file:///home/x/my%20proj/foo#0.1.0-alpha.1+build.5"),
        ("foo".into(), some("0.1.0-alpha.1+build.5"), SourceKind::Path("/home/x/my proj/foo".into()))
    );
    assert_eq!(parts("git+https://github.com/a/b?branch=x#0.2.0"), ("b".into(), some("0.2.0"), SourceKind::Git));
    assert_eq!(
        parts("git+https://github.com/a/b.git?rev=0123abcd#c@0.2.0"),
        ("c".into(), some("0.2.0"), SourceKind::Git)
    );
    assert_eq!(parts("directory+file:///vendor#d@1.0.0"), ("d".into(), some("1.0.0"), SourceKind::Other));
    assert_eq!(parts("serde@1.0.0"), ("serde".into(), some("1.0.0"), SourceKind::Other));
    assert_eq!(parts("serde"), ("serde".into(), None, SourceKind::Other));
    let p = PackageIdParts::parse("path+file:///home/x/foo#bar@0.1.0").unwrap();
    assert_eq!(p.source, Some("path+file:///home/x/foo"));
}

#[test]
fn package_id_old_forms() {
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        parts("serde 1.0.219 (registry+https://github.com/rust-lang/crates.io-index)"),
        ("serde".into(), some("1.0.219"), SourceKind::Registry)
    );
    assert_eq!(
        parts("foo 0.1.0 (path+file:///home/x/foo)"),
        ("foo".into(), some("0.1.0"), SourceKind::Path("/home/x/foo".into()))
    );
    assert_eq!(
        parts("b 0.2.0 (git+https://github.com/a/b?branch=x#0123456789abcdef)"),
        ("b".into(), some("0.2.0"), SourceKind::Git)
    );
    // Cargo's human-readable form.
    assert_eq!(parts("serde v1.0.219"), ("serde".into(), some("1.0.219"), SourceKind::Other));
    let p = PackageIdParts::parse("b 0.2.0 (git+https://github.com/a/b?branch=x#abc)").unwrap();
    assert_eq!(p.source, Some("git+https://github.com/a/b?branch=x#abc"));
}

#[test]
fn package_id_garbage() {
    assert_eq!(PackageIdParts::parse(""), None);
    assert_eq!(PackageIdParts::parse("path+file:///x/#0.1.0"), None);
    assert_eq!(PackageIdParts::parse("#@1.0"), None);
    assert_eq!(PackageIdParts::parse("path+relative/foo#0.1.0").map(|p| p.source_kind()), Some(SourceKind::Other));
}
