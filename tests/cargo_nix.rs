//! `cargo nix build` / `cargo nix test` on the fixture workspaces in tests/fixtures, against
//! plain cargo: same program output, no rebuild when nothing changed, only the edited crate and
//! its dependents rebuilt after an edit, and the fixtures' own tests passing.

mod support;

use std::collections::BTreeSet;

use support::Fixture;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// lib + bin, path dependencies, a build script writing OUT_DIR, a proc-macro, features.
#[test]
fn basic_workspace() {
    let fx = Fixture::new("basic");
    let (expected, got, first) = fx.both_outputs("app", &[]);
    assert_eq!(got, expected);
    assert!(got.contains("answer: 42") && got.contains("cfg true"), "{got}");
    assert_eq!(first.reused, 0, "{}", first.stderr);
    // cargo's layout: these are there, even empty.
    for d in ["deps", "examples", "build", "incremental"] {
        assert!(fx.nix_target().join("debug").join(d).is_dir(), "{d}");
        assert!(fx.cargo_target().join("debug").join(d).is_dir(), "cargo: {d}");
    }
    // The dep-info files beside the artifacts name what cargo's name (a generated file aside:
    // cargo's is in its target directory, ours in the store). A library of several crate types
    // has one, naming one of its files (which one, under cargo, depends on a hash map's order).
    let depinfo = |target: &std::path::Path| -> BTreeSet<(String, Vec<String>)> {
        let dir = target.join("debug");
        let mut all = BTreeSet::new();
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            if e.path().extension().is_none_or(|x| x != "d") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap();
            let (artifact, inputs) = text.trim_end().split_once(": ").unwrap_or((text.trim_end(), ""));
            assert!(std::path::Path::new(artifact).exists(), "{artifact} named by {}", e.path().display());
            assert_eq!(std::path::Path::new(artifact).with_extension("d"), e.path());
            let inputs = inputs
                .split(' ')
                .map(|i| if i.ends_with("/generated.rs") { "<OUT_DIR>/generated.rs".to_owned() } else { i.to_owned() })
                .collect();
            all.insert((e.file_name().to_string_lossy().into_owned(), inputs));
        }
        all
    };
    let cargo_d = depinfo(&fx.cargo_target());
    assert!(cargo_d.iter().any(|(d, i)| d == "app.d" && i.iter().any(|i| i.ends_with("greeter/src/lib.rs"))));
    assert_eq!(depinfo(&fx.nix_target()), cargo_d);

    let again = fx.cargo_nix("build", &[]);
    assert!(again.success(), "{}", again.stderr);
    assert_eq!(again.built, 0, "a second build builds nothing:\n{}", again.stderr);
    assert_eq!(again.reused, first.built);

    // Edit the leaf crate: it and its dependent rebuild, nothing else.
    fx.append("greeter/src/lib.rs", "\n/// Added by the test.\npub fn added() {}\n");
    let edited = fx.cargo_nix("build", &[]);
    assert!(edited.success(), "{}", edited.stderr);
    assert_eq!(edited.compiled, set(&["app", "greeter"]), "{}", edited.stderr);
    assert_eq!(edited.built, 2, "{}", edited.stderr);

    // A new file cargo discovers by its existence (a bin) changes the unit graph: the cached
    // plan must not hide it.
    std::fs::create_dir_all(fx.path("app/src/bin")).unwrap();
    std::fs::write(fx.path("app/src/bin/extra.rs"), "fn main() { println!(\"extra\"); }\n").unwrap();
    let added = fx.cargo_nix("build", &[]);
    assert!(added.success(), "{}", added.stderr);
    assert_eq!(fx.run(&fx.nix_target().join("debug/extra")), "extra\n");
    std::fs::remove_file(fx.path("app/src/bin/extra.rs")).unwrap();

    // Features change the program as they do under cargo.
    let (expected, got, _) = fx.both_outputs("app", &["-p", "app", "--features", "loud"]);
    assert_eq!(got, expected);
    assert!(got.contains("GOOD DAY, WORLD!"), "{got}");
    let (expected, got, _) = fx.both_outputs("app", &["-p", "greeter", "-p", "app", "--no-default-features"]);
    assert_eq!(got, expected);

    let test = fx.cargo_nix("test", &[]);
    assert!(test.success(), "cargo nix test failed:\n{}", test.stderr);
    let stdout = String::from_utf8_lossy(&test.output.stdout);
    assert!(stdout.contains("test tests::greets ... ok"), "{stdout}");
    assert!(stdout.contains("test binary_runs_and_greets ... ok"), "{stdout}");
}

/// A -sys crate compiling C with `cc`, passing `links` metadata to a dependent's build script.
#[test]
fn sys_crate_with_links_metadata() {
    let fx = Fixture::new("sys");
    let (expected, got, _) = fx.both_outputs("user", &[]);
    assert_eq!(got, expected);
    assert_eq!(got.trim(), "hello_add(2, 3) = 12 (magic 7, lib version 1.2)");
    let again = fx.cargo_nix("build", &[]);
    assert_eq!(again.built, 0, "{}", again.stderr);

    // Editing the C source rebuilds the -sys crate and its dependent, not cc.
    std::fs::write(fx.path("hello-sys/csrc/hello.h"), "#define HELLO_MAGIC 8\nint hello_add(int a, int b);\n").unwrap();
    let edited = fx.cargo_nix("build", &[]);
    assert!(edited.success(), "{}", edited.stderr);
    assert_eq!(edited.compiled, set(&["hello-sys", "user"]), "{}", edited.stderr);
    assert!(fx.run(&fx.nix_target().join("debug/user")).contains("= 13 (magic 8"));

    let test = fx.cargo_nix("test", &[]);
    assert!(test.success(), "{}", test.stderr);
    assert!(String::from_utf8_lossy(&test.output.stdout).contains("test tests::c_code_links ... ok"));
}

/// Registry dependencies: serde + serde_json with derive (a proc-macro from the registry).
#[test]
fn registry_dependencies() {
    let fx = Fixture::new("registry");
    let (expected, got, first) = fx.both_outputs("registry-user", &[]);
    assert_eq!(got, expected);
    assert!(first.compiled.contains("serde_derive"), "{}", first.stderr);
    let again = fx.cargo_nix("build", &[]);
    assert_eq!(again.built, 0, "{}", again.stderr);

    fx.append("src/main.rs", "\n// edited\n");
    let edited = fx.cargo_nix("build", &[]);
    assert_eq!(edited.compiled, set(&["registry-user"]), "{}", edited.stderr);
    assert_eq!(edited.built, 1, "{}", edited.stderr);

    let test = fx.cargo_nix("test", &[]);
    assert!(test.success(), "{}", test.stderr);
    assert!(String::from_utf8_lossy(&test.output.stdout).contains("test tests::round_trips ... ok"));
}

/// A compile error fails the build with rustc's own diagnostics and a non-zero exit.
#[test]
fn compile_errors_show_rustc_diagnostics() {
    let fx = Fixture::new("basic");
    fx.append("greeter/src/lib.rs", "\npub fn broken() -> u32 { \"not a number\" }\n");
    let run = fx.cargo_nix("build", &[]);
    assert!(!run.success());
    assert!(run.stderr.contains("error[E0308]: mismatched types"), "{}", run.stderr);
    assert!(run.stderr.contains("greeter/src/lib.rs"), "{}", run.stderr);
    assert!(!fx.nix_target().join("debug/app").exists(), "no artifact for a failed build");
    // keep-going still builds what does not depend on the failure.
    let run = fx.cargo_nix("build", &["--keep-going"]);
    assert!(!run.success());
    assert!(fx.nix_target().join("debug/libgen.rlib").exists(), "{}", run.stderr);
}

/// cargo's lines about a unit's diagnostics: identical warnings shown once and counted as
/// duplicates, the `cargo fix` hint, and "could not compile `x` (lib) due to …".
#[test]
fn warning_and_error_lines_match_cargo() {
    let fx = Fixture::new("basic");
    // Machine-applicable, and the same text in `greeter`'s lib and lib test units.
    fx.append("greeter/src/lib.rs", "\nuse std::collections::HashMap;\n");
    let lines = |stderr: &str| -> Vec<String> {
        let mut l: Vec<String> = stderr
            .lines()
            .filter(|l| l.starts_with("warning: `") || l.starts_with("error: could not compile"))
            .map(str::to_owned)
            .collect();
        l.sort();
        l
    };
    let nix = fx.cargo_nix("test", &["--no-run"]);
    assert!(nix.success(), "{}", nix.stderr);
    let cargo = fx.cargo("test", &["--no-run"]);
    let cargo = String::from_utf8_lossy(&cargo.stderr).into_owned();
    assert_eq!(nix.stderr.matches("warning: unused import").count(), 1, "shown once:\n{}", nix.stderr);
    // `--no-run` names the test executables and runs none.
    let executables = |s: &str| s.lines().filter(|l| l.trim_start().starts_with("Executable ")).count();
    assert_eq!(executables(&nix.stderr), executables(&cargo), "{}", nix.stderr);
    assert!(!nix.stderr.contains("Running"), "{}", nix.stderr);
    // Which of the two units shows the warning (and the hint) is the order they finish in.
    let unordered = |l: Vec<String>| -> Vec<String> {
        let mut l: Vec<String> = l.iter().map(|l| l.split(" (").take(2).collect::<Vec<_>>().join(" (")).collect();
        l.sort();
        l
    };
    assert_eq!(unordered(lines(&nix.stderr)), unordered(lines(&cargo)), "cargo:\n{cargo}\ncargo nix:\n{}", nix.stderr);
    for want in ["(1 duplicate)", "(run `cargo fix --lib -p greeter"] {
        assert_eq!(nix.stderr.matches(want).count(), cargo.matches(want).count(), "{want}:\n{}", nix.stderr);
    }

    // Replayed for fresh units, in the queue's order as cargo's: the library (which the
    // integration tests wait on) shows the warning and the hint, its unit tests count it as a
    // duplicate.
    let nix = fx.cargo_nix("build", &["--all-targets"]);
    assert!(nix.success(), "{}", nix.stderr);
    let cargo = fx.cargo("build", &["--all-targets"]);
    let cargo = String::from_utf8_lossy(&cargo.stderr).into_owned();
    let greeter = |s: &str| -> Vec<String> { lines(s).into_iter().filter(|l| l.contains("`greeter`")).collect() };
    assert_eq!(greeter(&nix.stderr), greeter(&cargo), "cargo:\n{cargo}\ncargo nix:\n{}", nix.stderr);

    // `-q`: rustc's warnings only, no status or summary lines (as `cargo build -q`).
    let nix = fx.cargo_nix("build", &["-q"]);
    assert!(nix.success(), "{}", nix.stderr);
    let cargo = fx.cargo("build", &["-q"]);
    let cargo = String::from_utf8_lossy(&cargo.stderr).into_owned();
    let heads = |s: &str| -> Vec<String> {
        let mut l: Vec<String> =
            s.lines().filter(|l| !l.starts_with(' ') && !l.is_empty()).map(str::to_owned).collect();
        l.sort();
        l
    };
    assert_eq!(heads(&nix.stderr), heads(&cargo), "cargo:\n{cargo}\ncargo nix:\n{}", nix.stderr);
    assert!(nix.stderr.contains("warning: unused import") && !nix.stderr.contains("Finished"), "{}", nix.stderr);

    fx.append("greeter/src/lib.rs", "\npub fn broken() -> u32 { \"not a number\" }\n");
    let nix = fx.cargo_nix("build", &[]);
    let cargo = fx.cargo_output("build", &[], &[]);
    assert!(!nix.success() && !cargo.status.success());
    let cargo = String::from_utf8_lossy(&cargo.stderr).into_owned();
    assert_eq!(lines(&nix.stderr), lines(&cargo), "cargo:\n{cargo}\ncargo nix:\n{}", nix.stderr);
    assert!(cargo.contains("error: could not compile `greeter` (lib) due to 1 previous error; 1 warning emitted"));
    // Nothing after the errors but what cargo prints: its "waiting for other jobs" warning
    // when other units were still running (timing decides that, under either).
    let waiting = "warning: build failed, waiting for other jobs to finish...";
    let others = |s: &str| -> Vec<String> { heads(s).into_iter().filter(|l| l != waiting).collect() };
    assert_eq!(others(&nix.stderr), others(&cargo), "cargo:\n{cargo}\ncargo nix:\n{}", nix.stderr);
}

/// Artifacts linked from target/ survive garbage collection; once target/ is gone
/// (`cargo nix clean`), a collection reclaims them.
#[test]
fn gc_roots_keep_artifacts_until_clean() {
    let fx = Fixture::new("basic");
    let run = fx.cargo_nix("build", &["-p", "greeter"]);
    assert!(run.success(), "{}", run.stderr);
    let rlib = fx.nix_target().join("debug/libgreeter.rlib");
    let store_file = std::fs::read_link(&rlib).unwrap();
    let gc = || {
        let o = nix_rs::testing::nix_cli("nix-store", fx.store.uri()).arg("--gc").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    gc();
    assert!(store_file.exists(), "GC removed a rooted artifact");

    let roots = fx.cargo_nix("roots", &[]);
    assert!(String::from_utf8_lossy(&roots.output.stdout).contains(".nix-roots/"), "{}", roots.stderr);
    let clean = std::process::Command::new(support::bin_dir().join("cargo-nix"))
        .args(["nix", "clean", "--target-dir"])
        .arg(fx.nix_target())
        .output()
        .unwrap();
    assert!(clean.status.success(), "{}", String::from_utf8_lossy(&clean.stderr));
    assert!(!fx.nix_target().exists());
    gc();
    assert!(!store_file.exists(), "after clean, GC reclaims the artifact");
}

/// A no-op build is answered from the plan cache without loading Nix (`cargo_backend::noop`;
/// cargo-nix links nix-rs with `dlopen`). The dynamic loader's log (`LD_DEBUG=files`) names
/// every library a process opens, `dlopen` included: the first build, which needs Nix, shows
/// it (so the check can fail). A deleted artifact and a deleted unit output are still
/// rebuilt, through Nix.
#[test]
fn noop_build_does_not_load_nix() {
    let fx = Fixture::new("basic");
    let debug = [("LD_DEBUG", Some("files"))];
    let loads_nix = |run: &support::NixRun| run.stderr.contains("libnixstorec");
    let first = fx.cargo_nix_env("build", &[], &debug);
    assert!(first.success(), "{}", first.stderr);
    assert!(first.built > 0 && loads_nix(&first), "{}", first.stderr);
    // Keys made on files the fixture copy had just written are racy (see cargo_backend::cache)
    // until a clock tick has passed; the first no-op after that refreshes them, through the
    // full path, and the next one has nothing left to refresh. Without the wait, no-ops that
    // all ran within the tick left the refresh to the checked one below (a flaky failure).
    std::thread::sleep(cargo_backend::cache::TIMESTAMP_GRANULARITY);
    for _ in 0..2 {
        let again = fx.cargo_nix_env("build", &[], &debug);
        assert!(again.success() && again.built == 0, "{}", again.stderr);
    }
    let noop = fx.cargo_nix_env("build", &[], &debug);
    assert!(noop.success() && noop.built == 0 && noop.reused == first.built, "{}", noop.stderr);
    assert!(!loads_nix(&noop), "a no-op build loaded Nix:\n{}", noop.stderr);

    // A deleted artifact is installed again.
    let app = fx.nix_target().join("debug/app");
    std::fs::remove_file(&app).unwrap();
    let relinked = fx.cargo_nix("build", &[]);
    assert!(relinked.success() && relinked.built == 0, "{}", relinked.stderr);
    assert!(fx.run(&app).contains("answer: 42"));

    // A deleted output (its root dropped, then deleted from the store) is built again.
    let rlib = std::fs::read_link(fx.nix_target().join("debug/libgreeter.rlib")).unwrap();
    let out = rlib.ancestors().find(|a| a.parent() == Some(fx.store.store_dir_path().as_path())).unwrap();
    std::fs::remove_file(fx.nix_target().join("debug/.nix-roots").join(out.file_name().unwrap())).unwrap();
    let o = nix_rs::testing::nix_cli("nix-store", fx.store.uri()).arg("--delete").arg(out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.exists());
    let rebuilt = fx.cargo_nix("build", &[]);
    assert!(rebuilt.success() && rebuilt.built >= 1, "{}", rebuilt.stderr);
    assert!(rlib.exists(), "{}", rebuilt.stderr);
    assert!(fx.run(&app).contains("answer: 42"));
}

/// A git dependency (a local repository, fetched by cargo) builds like any other source.
#[test]
fn git_dependency() {
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .current_dir(repo.path())
            .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    std::fs::create_dir_all(repo.path().join("src")).unwrap();
    std::fs::write(
        repo.path().join("Cargo.toml"),
        "[package]\nname = \"from-git\"\nversion = \"0.4.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(repo.path().join("src/lib.rs"), "pub fn origin() -> &'static str { \"git\" }\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-qm", "init"]);

    let fx = Fixture::new("basic");
    std::fs::write(
        fx.path("app/Cargo.toml"),
        format!(
            "[package]\nname = \"app\"\nversion = \"1.0.0\"\nedition = \"2021\"\n\n[dependencies]\n\
             greeter = {{ path = \"../greeter\" }}\nmacros = {{ path = \"../macros\" }}\ngen = {{ path = \"../gen\" }}\n\
             from-git = {{ git = \"file://{}\" }}\n\n[features]\nloud = [\"greeter/loud\"]\n",
            repo.path().display()
        ),
    )
    .unwrap();
    fx.append("app/src/main.rs", "\n#[allow(dead_code)]\nfn from_git() -> &'static str { from_git::origin() }\n");
    let (expected, got, run) = fx.both_outputs("app", &[]);
    assert_eq!(got, expected);
    assert!(run.compiled.contains("from-git"), "{}", run.stderr);
}

/// cdylib and staticlib crate types, `--release --workspace --all-features`, build-script
/// warnings and `rustc-link-arg-cdylib`.
#[test]
fn release_workspace_all_features_with_c_libraries() {
    let fx = Fixture::new("basic");
    let args = ["--release", "--workspace", "--all-features"];
    fx.cargo("build", &args);
    let expected = fx.run(&fx.cargo_target().join("release/app"));
    let run = fx.cargo_nix("build", &args);
    assert!(run.success(), "{}", run.stderr);
    assert!(run.stderr.contains("`release` profile [optimized]"), "{}", run.stderr);
    assert_eq!(fx.run(&fx.nix_target().join("release/app")), expected);
    assert!(expected.contains("GOOD DAY, WORLD!"), "--all-features turns on `loud`: {expected}");
    let release = fx.nix_target().join("release");
    assert!(release.join("libclib.a").is_file(), "staticlib installed");
    let so = release.join("libclib.so");
    assert!(so.is_file(), "cdylib installed");
    assert!(
        run.stderr.contains("warning: clib@0.5.0: clib's build script says hello"),
        "build-script warnings are shown as cargo shows them:\n{}",
        run.stderr
    );
    // The cdylib-only link argument reached the cdylib.
    let dynamic = std::process::Command::new("readelf").arg("-d").arg(&so).output().unwrap();
    assert!(
        String::from_utf8_lossy(&dynamic.stdout).contains("libclib-custom.so"),
        "soname from rustc-link-arg-cdylib"
    );
}

/// `--cache`: a first store builds and pushes every unit output to a `file://` binary cache; a
/// second, independent store (empty, at the same store dir) substitutes all of them and builds
/// nothing.
#[test]
fn binary_cache_shares_units_between_stores() {
    let fx = Fixture::new("basic");
    let root = tempfile::tempdir().unwrap();
    let store_dir = root.path().join("nix/store");
    let store_uri = |name: &str| {
        let state = root.path().join(name);
        format!("local?store={}&state={}/state&log={}/log", store_dir.display(), state.display(), state.display())
    };
    let cache_dir = root.path().join("cache");
    let cache = format!("file://{}?store={}&compression=none", cache_dir.display(), store_dir.display());
    let build = |store: &str, target: &str| {
        let out = std::process::Command::new(support::bin_dir().join("cargo-nix"))
            .args(["nix", "build", "--manifest-path"])
            .arg(fx.manifest())
            .arg("--target-dir")
            .arg(fx.path(target))
            .args(["--store", store, "--cache", &cache])
            .env("NIX_CONFIG", nix_rs::testing::test_nix_config())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        err
    };
    let first = build(&store_uri("first"), "t1");
    assert!(first.contains("reused, 0 substituted)") && !first.contains("(0 built"), "{first}");
    let expected = fx.run(&fx.path("t1/debug/app"));

    // An independent store: the first one's files and database are gone.
    std::fs::remove_dir_all(&store_dir).unwrap();
    std::fs::remove_dir_all(root.path().join("first")).unwrap();
    let second = build(&store_uri("second"), "t2");
    assert!(second.contains("(0 built, 0 reused,"), "the second store built units:\n{second}");
    assert_eq!(fx.run(&fx.path("t2/debug/app")), expected);
}

/// `--pipelining on`: a library that another library depends on gets a metadata-only
/// derivation, its library dependents compile against that `.rmeta`, binaries still link the
/// full rlibs, and the program is the one cargo builds. Metadata nobody needs is not rebuilt.
#[test]
fn pipelining_compiles_libraries_against_metadata() {
    let fx = Fixture::new("registry");
    fx.cargo("build", &[]);
    let expected = fx.run(&fx.cargo_target().join("debug/registry-user"));
    let first = fx.cargo_nix("build", &["--pipelining", "on", "-v"]);
    assert!(first.success(), "{}", first.stderr);
    assert_eq!(fx.run(&fx.nix_target().join("debug/registry-user")), expected);

    // The `Unit` lines of -v: "<label> [<target> <mode>] <outcome>: <drv> -> <out>".
    let drv_of = |target: &str| -> String {
        let line = first
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("Unit") && l.contains(&format!("[{target} ")))
            .unwrap_or_else(|| panic!("no unit for {target} in:\n{}", first.stderr));
        line.split_whitespace().find(|w| w.ends_with(".drv")).unwrap().to_owned()
    };
    let store = fx.store.store();
    let inputs = |target: &str| -> Vec<String> {
        let drv = store.parse_path(&drv_of(target)).unwrap();
        store.read_derivation(&drv).unwrap().input_drvs.into_keys().collect()
    };
    let metadata_inputs = |target: &str| inputs(target).into_iter().filter(|d| d.ends_with("-metadata.drv")).count();
    // serde_json is a library depending on libraries (serde, itoa, memchr, ...): it compiles
    // against their metadata. The binary links rlibs and reads no metadata derivation.
    assert!(metadata_inputs("serde_json") > 0, "{:?}", inputs("serde_json"));
    assert_eq!(metadata_inputs("registry-user"), 0, "{:?}", inputs("registry-user"));

    let again = fx.cargo_nix("build", &["--pipelining", "on"]);
    assert_eq!(again.built, 0, "{}", again.stderr);

    // After a collection the metadata outputs are gone (nothing roots them); an edit of the
    // binary rebuilds the binary only: no dependent of that metadata is built, so it stays gone.
    let gc = nix_rs::testing::nix_cli("nix-store", fx.store.uri()).arg("--gc").output().unwrap();
    assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
    let metadata_outs: Vec<String> = std::fs::read_dir(fx.store.store_dir_path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with("-metadata"))
        .collect();
    assert!(metadata_outs.is_empty(), "metadata outputs survived the GC: {metadata_outs:?}");
    fx.append("src/main.rs", "\n// edited\n");
    let edited = fx.cargo_nix("build", &["--pipelining", "on"]);
    assert!(edited.success(), "{}", edited.stderr);
    assert_eq!(edited.built, 1, "{}", edited.stderr);
    assert!(
        !std::fs::read_dir(fx.store.store_dir_path()).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with("-metadata")),
        "metadata was rebuilt though nothing needed it"
    );
}

/// `--progress always` draws cargo's bar (`Building [=> ] n/total: names`) even without a
/// terminal, and clears it before `Finished`; by default (no terminal) there is none.
#[test]
fn progress_bar_when_forced() {
    let fx = Fixture::new("basic");
    let run = fx.cargo_nix("build", &["--progress", "always"]);
    assert!(run.success(), "{}", run.stderr);
    let total = run.built + run.reused + run.substituted;
    assert!(run.stderr.contains("    Building ["), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("] {total}/{total}")), "done/total:\n{}", run.stderr);
    // The bar names the units running: every name it shows is one of the fixture's packages
    // (which ones run at a given moment depends on scheduling), and it shows some.
    let packages = ["app", "greeter", "gen", "clib", "macros"];
    let shown: Vec<String> = nix_rs::strip_ansi(&run.stderr)
        .split(['\r', '\n'])
        .filter(|l| l.contains("Building ["))
        .filter_map(|l| l.split_once(": ").map(|(_, names)| names.to_owned()))
        .flat_map(|names| names.split(", ").map(|n| n.trim().to_owned()).collect::<Vec<_>>())
        .filter(|n| !n.is_empty())
        .collect();
    assert!(!shown.is_empty(), "the bar names running units:\n{}", run.stderr);
    for name in &shown {
        let package = name.split('(').next().unwrap_or("");
        assert!(packages.contains(&package), "{name:?} is not a unit of the fixture:\n{}", run.stderr);
    }
    // Status lines start on a line of their own, and the bar is gone before Finished.
    assert!(run.stderr.contains("\x1b[2K   Compiling "), "{}", run.stderr);
    let tail = &run.stderr[run.stderr.rfind("Building [").unwrap()..];
    assert!(tail.contains("\r\x1b[2K    Finished"), "bar cleared before Finished: {tail:?}");

    let quiet = fx.cargo_nix("build", &[]);
    assert!(!quiet.stderr.contains("Building ["), "{}", quiet.stderr);
    let run = fx.cargo_nix("build", &["--progress", "never"]);
    assert!(!run.stderr.contains("Building ["), "{}", run.stderr);
    // cargo's own settings work too (cargo wants a width with `always`).
    let out = fx
        .cargo_nix_build_cmd(fx.store.uri())
        .env("CARGO_TERM_PROGRESS_WHEN", "always")
        .env("CARGO_TERM_PROGRESS_WIDTH", "60")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains(&format!("] {total}/{total}")), "{stderr}");
}

/// `-v` shows each unit's command as it starts (with its derivation), and fresh units.
#[test]
fn build_scripts_get_a_usable_jobserver_as_under_cargo() {
    // cargo hands build scripts (and rustc) its jobserver; cargo nix hands them its own, found
    // by the builder through its parent process, not through the derivation, in cargo's form.
    let fx = Fixture::new("jobserver");
    let (expected, got, run) = fx.both_outputs("jobserver-probe", &["-j", "3"]);
    // GNU make takes it too (make 4.3 refuses the `fifo:` form that cargo nix once passed), and
    // `NUM_JOBS` is `-j` (not in the derivation: it said 1).
    assert_eq!(
        expected,
        "build script saw: a jobserver with a token\nmake under it ran: two jobs at once\nNUM_JOBS: 3\n"
    );
    assert_eq!(got, expected, "{}", run.stderr);
}

#[test]
fn verbose_shows_commands() {
    let fx = Fixture::new("basic");
    let run = fx.cargo_nix("build", &["-v"]);
    assert!(run.success(), "{}", run.stderr);
    let running: Vec<&str> = run.stderr.lines().filter(|l| l.trim_start().starts_with("Running `")).collect();
    assert_eq!(running.len(), run.built, "one command per built unit:\n{}", run.stderr);
    let greeter = running.iter().find(|l| l.contains("--crate-name greeter")).expect("greeter's rustc");
    // As cargo passes it: relative to the workspace root, where rustc runs.
    assert!(greeter.contains("rustc --crate-name greeter --edition=2021 greeter/src/lib.rs"), "{greeter}");
    assert!(greeter.contains(" --out-dir ") && greeter.contains("'feature=\"default\"'"), "{greeter}");
    assert!(running.iter().any(|l| l.contains("/bin/build_script_build-")), "build-script runs:\n{}", run.stderr);
    assert!(run.stderr.lines().any(|l| l.trim_start().starts_with("Derivation ") && l.ends_with(".drv")));
    // Every built unit gets a line saying how long its realise took.
    let timed = run
        .stderr
        .lines()
        .filter(|l| l.trim_start().starts_with("Realised ") && l.contains("] in ") && l.ends_with('s'))
        .count();
    assert_eq!(timed, run.built, "one `Realised` line per built unit:\n{}", run.stderr);
    let again = fx.cargo_nix("build", &["-v"]);
    assert!(again.stderr.contains("       Fresh greeter v0.1.0 ("), "{}", again.stderr);
    assert!(!again.stderr.contains("Running `"), "{}", again.stderr);
}
