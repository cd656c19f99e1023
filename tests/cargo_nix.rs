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
    assert!(run.stderr.contains("greeter/src/lib.rs") || run.stderr.contains("src/lib.rs"), "{}", run.stderr);
    assert!(!fx.nix_target().join("debug/app").exists(), "no artifact for a failed build");
    // keep-going still builds what does not depend on the failure.
    let run = fx.cargo_nix("build", &["--keep-going"]);
    assert!(!run.success());
    assert!(fx.nix_target().join("debug/libgen.rlib").exists(), "{}", run.stderr);
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

    // The `Unit` lines of -v: "<label> [<target>] <drv> -> <out>".
    let drv_of = |target: &str| -> String {
        let line = first
            .stderr
            .lines()
            .find(|l| l.trim_start().starts_with("Unit") && l.contains(&format!("[{target}]")))
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
