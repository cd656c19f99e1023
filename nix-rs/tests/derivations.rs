//! Creating and realising derivations, adding sources, copying closures: real temp stores.

mod common;

use std::fs;

use common::sh_drv;
use nix_rs::testing::TempStore;
use nix_rs::{AddPathOptions, DerivationBuilder, Error, FileKind, Store};

#[test]
fn creates_then_realises_a_derivation() {
    let t = TempStore::new().unwrap();
    let d = sh_drv(&t, "hello", "echo hello > $out");
    assert!(d.drv_path.name().ends_with("hello.drv"));
    let out = d.output("out").unwrap().clone();
    assert_eq!(out.name(), "hello");
    // Known before anything is built.
    assert!(t.is_valid_path(&d.drv_path).unwrap());
    assert!(!t.is_valid_path(&out).unwrap());
    // The .drv reads back with what we asked for.
    let drv = t.read_derivation(&d.drv_path).unwrap();
    assert_eq!(drv.builder, "/bin/sh");
    assert_eq!(drv.args, vec!["-c", "echo hello > $out"]);
    assert_eq!(drv.outputs["out"], out.as_str());

    let outputs = t.realise(&d.drv_path).unwrap();
    assert_eq!(outputs["out"], out);
    assert_eq!(fs::read_to_string(t.real_path(&out).unwrap()).unwrap(), "hello\n");
    // The log is kept and readable.
    assert_eq!(t.build_log(&d.drv_path).unwrap().as_deref(), Some("")); // nothing on stderr/stdout
    // Same description, same paths.
    let again = sh_drv(&t, "hello", "echo hello > $out");
    assert_eq!(again, d);
}

#[test]
fn multiple_outputs_and_env() {
    let t = TempStore::new().unwrap();
    let d = DerivationBuilder::new("multi", "/bin/sh")
        .args(["-c", "echo $greeting > $out; echo dev > $dev"])
        .env("greeting", "hi there")
        .outputs(["out", "dev"])
        .create(&t)
        .unwrap();
    assert_eq!(d.outputs.len(), 2);
    let outs = t.realise(&d.drv_path).unwrap();
    assert_eq!(fs::read_to_string(outs["out"].as_path()).unwrap(), "hi there\n");
    assert_eq!(fs::read_to_string(outs["dev"].as_path()).unwrap(), "dev\n");
}

#[test]
fn failing_builder_is_an_error_with_log_tail() {
    let t = TempStore::new().unwrap();
    let d = sh_drv(&t, "fails", "echo line-one; echo 'about to fail' >&2; exit 3");
    let e = t.realise(&d.drv_path).unwrap_err();
    let f = e.as_build_failure().unwrap_or_else(|| panic!("expected a build failure, got {e:?}"));
    assert_eq!(f.drv_path, d.drv_path.to_string());
    assert_eq!(f.missing_outputs, vec!["out"]);
    assert!(f.log_tail.iter().any(|l| l == "about to fail"), "{:?}", f.log_tail);
    assert!(f.log_tail.iter().any(|l| l == "line-one"), "{:?}", f.log_tail);
    let msg = e.to_string();
    assert!(msg.contains(d.drv_path.as_str()) && msg.contains("about to fail"), "{msg}");
}

#[test]
fn missing_builder_is_an_error_naming_it() {
    let t = TempStore::new().unwrap();
    let d = DerivationBuilder::new("nobuilder", "/nonexistent/builder").create(&t).unwrap();
    let e = t.realise(&d.drv_path).unwrap_err();
    let f = e.as_build_failure().expect("build failure");
    assert!(f.reason.contains("'/nonexistent/builder' does not exist"), "{}", f.reason);
}

#[test]
fn realise_rejects_non_derivations() {
    let t = TempStore::new().unwrap();
    let p = t.parse_path(&format!("{}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-x.drv", t.store_dir_path().display())).unwrap();
    let e = t.realise(&p).unwrap_err();
    assert!(e.to_string().contains("is not valid in store"), "{e}");
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("f"), "x").unwrap();
    let s = t.add_path(src.path(), AddPathOptions::new().name("src")).unwrap();
    let e = t.realise(&s).unwrap_err();
    assert!(e.to_string().contains("is not a .drv"), "{e}");
}

#[test]
fn chain_of_three_dependent_derivations() {
    let t = TempStore::new().unwrap();
    let a = sh_drv(&t, "a", "echo a > $out");
    let a_out = a.output("out").unwrap();
    let b = DerivationBuilder::new("b", "/bin/sh")
        .args(["-c", &format!("read x < {a_out}; echo \"$x b\" > $out")])
        .input_derivation(&a.drv_path, ["out"])
        .create(&t)
        .unwrap();
    let b_out = b.output("out").unwrap();
    let c = DerivationBuilder::new("c", "/bin/sh")
        .args(["-c", "read x < $dep; echo \"$x c\" > $out"])
        .env("dep", b_out.as_str())
        .input_derivation(&b.drv_path, ["out"])
        .create(&t)
        .unwrap();
    let drv = t.read_derivation(&c.drv_path).unwrap();
    assert_eq!(drv.input_drvs[b.drv_path.as_str()], vec!["out"]);
    // Realising the last one builds the whole chain.
    let outs = t.realise(&c.drv_path).unwrap();
    assert_eq!(fs::read_to_string(outs["out"].as_path()).unwrap(), "a b c\n");
    assert!(t.is_valid_path(a_out).unwrap());
}

#[test]
fn input_derivation_must_exist() {
    let t = TempStore::new().unwrap();
    let other = TempStore::new().unwrap();
    let a = sh_drv(&other, "a", "echo a > $out");
    // Same store dir layout differs, so this path is not even in `t`'s store.
    let e = DerivationBuilder::new("b", "/bin/sh").input_derivation(&a.drv_path, ["out"]).create(&t).unwrap_err();
    assert!(e.to_string().contains("creating derivation 'b'"), "{e}");
}

#[test]
fn bad_derivation_input_is_rejected() {
    let t = TempStore::new().unwrap();
    let e = DerivationBuilder::new("x", "/bin/sh").env("k", "a\0b").create(&t).unwrap_err();
    assert!(matches!(e, Error::NulByte { .. }), "{e:?}");
    let e = DerivationBuilder::new("bad name!", "/bin/sh").create(&t).unwrap_err();
    assert!(e.to_string().contains("'bad name!'"), "{e}");
    let e = DerivationBuilder::new("x", "/bin/sh").system("a\0").create(&t).unwrap_err();
    assert!(matches!(e, Error::NulByte { .. }));
}

#[test]
fn adds_sources_with_a_filter_and_same_content_same_path() {
    let t = TempStore::new().unwrap();
    let make = || {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("src")).unwrap();
        fs::create_dir_all(d.path().join("target/debug")).unwrap();
        fs::write(d.path().join("src/lib.rs"), "pub fn f() {}\n").unwrap();
        fs::write(d.path().join("Cargo.toml"), "[package]\n").unwrap();
        fs::write(d.path().join("target/debug/junk"), "junk").unwrap();
        d
    };
    let (one, two) = (make(), make());
    let opts = || AddPathOptions::new().name("crate-src").exclude_names(["target"]);
    let p1 = t.add_path(one.path(), opts()).unwrap();
    let p2 = t.add_path(two.path(), opts()).unwrap();
    assert_eq!(p1, p2, "same content, same path");
    assert_eq!(p1.name(), "crate-src");
    let real = t.real_path(&p1).unwrap();
    assert!(real.join("src/lib.rs").is_file());
    assert!(!real.join("target").exists());

    // A different filtered-in file changes the path; a filtered-out one does not.
    fs::write(two.path().join("target/debug/junk"), "changed").unwrap();
    assert_eq!(t.add_path(two.path(), opts()).unwrap(), p1);
    fs::write(two.path().join("src/lib.rs"), "pub fn g() {}\n").unwrap();
    assert_ne!(t.add_path(two.path(), opts()).unwrap(), p1);

    // The filter sees relative paths and kinds.
    let seen = std::sync::Mutex::new(Vec::new());
    t.add_path(
        one.path(),
        AddPathOptions::new().filter(|p, k| {
            seen.lock().unwrap().push((p.to_path_buf(), k));
            true
        }),
    )
    .unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.contains(&("src".into(), FileKind::Directory)), "{seen:?}");
    assert!(seen.contains(&("src/lib.rs".into(), FileKind::Regular)), "{seen:?}");

    // A single file.
    let f = t.add_path(one.path().join("Cargo.toml"), AddPathOptions::new()).unwrap();
    assert_eq!(f.name(), "Cargo.toml");
    assert_eq!(fs::read_to_string(t.real_path(&f).unwrap()).unwrap(), "[package]\n");
}

#[test]
fn missing_source_dir_is_an_error_naming_it() {
    let t = TempStore::new().unwrap();
    let e = t.add_path("/nonexistent/source/dir", AddPathOptions::new()).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/source/dir"), "{e}");
    let e = t.add_path("/tmp", AddPathOptions::new().name("bad/name")).unwrap_err();
    assert!(e.to_string().contains("bad/name"), "{e}");
}

#[test]
fn panicking_filter_surfaces_as_an_error() {
    let t = TempStore::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("f"), "x").unwrap();
    let e = t.add_path(d.path(), AddPathOptions::new().filter(|_, _| panic!("filter exploded"))).unwrap_err();
    assert!(matches!(e, Error::CallbackPanicked(ref m) if m.contains("filter exploded")), "{e:?}");
    // The evaluator keeps working.
    t.add_path(d.path(), AddPathOptions::new()).unwrap();
}

#[test]
fn copies_a_closure_to_a_binary_cache_and_back() {
    let t = TempStore::new().unwrap();
    let a = sh_drv(&t, "dep", "echo dep > $out");
    let a_out = a.output("out").unwrap().clone();
    let b = DerivationBuilder::new("top", "/bin/sh")
        .args(["-c", &format!("echo {a_out} > $out")])
        .input_derivation(&a.drv_path, ["out"])
        .create(&t)
        .unwrap();
    let top = t.realise(&b.drv_path).unwrap()["out"].clone();

    let cache_dir = tempfile::tempdir().unwrap();
    // The binary cache has to use the same store dir as the source store.
    let cache_uri = format!("file://{}?store={}", cache_dir.path().display(), t.store_dir_path().display());
    let cache = Store::open(&cache_uri).unwrap();
    t.copy_closure_to(&cache, &top).unwrap();
    assert!(cache.is_valid_path(&top).unwrap());
    assert!(cache.is_valid_path(&a_out).unwrap(), "the closure includes the reference");

    // A fresh store with the same store dir, filled from the cache.
    let fresh_dir = tempfile::tempdir().unwrap();
    let fresh = Store::open(&format!(
        "local?store={}&state={}/state&log={}/log&real={}/real",
        t.store_dir_path().display(),
        fresh_dir.path().display(),
        fresh_dir.path().display(),
        fresh_dir.path().display()
    ))
    .unwrap();
    assert!(!fresh.is_valid_path(&top).unwrap());
    cache.copy_closure_to(&fresh, &top).unwrap();
    assert!(fresh.is_valid_path(&top).unwrap() && fresh.is_valid_path(&a_out).unwrap());
    let real = fresh.real_path(&top).unwrap();
    assert!(real.starts_with(fresh_dir.path()), "{}", real.display());
    assert_eq!(fs::read_to_string(real).unwrap(), format!("{a_out}\n"));
}

#[test]
fn in_process_derivation_is_the_one_nix_instantiate_makes() {
    let t = TempStore::new().unwrap();
    let system = nix_rs::settings::get("system").unwrap();
    let ours = DerivationBuilder::new("same", "/bin/sh")
        .system(&system)
        .args(["-c", "echo $greeting > $out"])
        .env("greeting", "hi")
        .create(&t)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("same.nix");
    fs::write(
        &file,
        format!(
            "derivation {{ name = \"same\"; system = \"{system}\"; builder = \"/bin/sh\"; args = [ \"-c\" \"echo $greeting > $out\" ]; greeting = \"hi\"; }}"
        ),
    )
    .unwrap();
    let out = nix_rs::testing::nix_cli("nix-instantiate", t.uri()).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ours.drv_path.as_str());
}

#[test]
fn input_sources_are_available_to_the_builder() {
    let t = TempStore::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    fs::write(d.path().join("data.txt"), "from a source\n").unwrap();
    let src = t.add_path(d.path(), AddPathOptions::new().name("data")).unwrap();
    let drv = DerivationBuilder::new("reads-src", "/bin/sh")
        .args(["-c", &format!("read x < {src}/data.txt; echo \"$x!\" > $out")])
        .input_source(&src)
        .create(&t)
        .unwrap();
    assert_eq!(t.read_derivation(&drv.drv_path).unwrap().input_srcs, vec![src.to_string()]);
    let out = &t.realise(&drv.drv_path).unwrap()["out"];
    assert_eq!(fs::read_to_string(out.as_path()).unwrap(), "from a source!\n");
}

#[test]
fn indirect_gc_root_keeps_a_path_until_its_link_goes() {
    let t = TempStore::new().unwrap();
    assert_eq!(t.state_dir(), Some(t.dir().join("state")));
    assert_eq!(t.log_dir(), Some(t.dir().join("log")));
    let d = sh_drv(&t, "rooted", "echo rooted > $out");
    let out = t.realise(&d.drv_path).unwrap()["out"].clone();
    let links = tempfile::tempdir().unwrap();
    let link = links.path().join("result");
    std::os::unix::fs::symlink(out.as_path(), &link).unwrap();
    t.add_indirect_root(&link).unwrap();
    let roots = || {
        let o = nix_rs::testing::nix_cli("nix-store", t.uri()).args(["--gc", "--print-roots"]).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let listed = roots();
    // `<link> -> <out>`; Nix 2.35 quotes the link (2.35.2 with double quotes).
    let link_s = link.display().to_string();
    assert!(listed.lines().any(|l| l.replace(['\'', '"'], "") == format!("{link_s} -> {out}")), "{listed}");
    let o = nix_rs::testing::nix_cli("nix-store", t.uri()).arg("--gc").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(t.is_valid_path(&out).unwrap(), "the root keeps the output");
    // Without its link the root is stale. (The output itself stays while this process lives:
    // Nix keeps temporary roots for the paths a live process built.)
    fs::remove_file(&link).unwrap();
    assert!(!roots().contains(&link.display().to_string()));
}

#[test]
fn remote_stores_have_no_local_dirs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Store::open(&format!("file://{}", dir.path().display())).unwrap();
    assert_eq!(cache.log_dir(), None);
    assert_eq!(cache.state_dir(), None);
    let e = cache.add_indirect_root(dir.path()).unwrap_err();
    assert!(e.to_string().contains("not on this machine"), "{e}");
}
