//! The store-scripting API against real temporary stores: what each Nix version can do
//! (`capabilities()`), and a typed error where it cannot.

mod common;

use std::fs;

use common::sh_drv;
use nix_rs::testing::TempStore;
use nix_rs::{Capability, DerivationBuilder, Error, StorePath, capabilities};

#[test]
fn capabilities_follow_the_linked_version() {
    let caps = capabilities();
    assert_eq!(caps.version(), nix_sys::BUILT_VERSION);
    for c in [Capability::AddText, Capability::InterruptBuilds, Capability::QuietBuildLogs] {
        assert!(caps.has(c), "{c}");
    }
    assert_eq!(caps.has(Capability::Closure), cfg!(nix_at_least_2_33));
    assert_eq!(caps.has(Capability::NativeDerivations), cfg!(nix_at_least_2_33));
    assert_eq!(caps.has(Capability::CopyPath), cfg!(nix_at_least_2_34));
    assert_eq!(Capability::CopyPath.needs(), "2.34");
}

#[test]
fn add_text_writes_the_file_once_per_content() {
    let t = TempStore::new().unwrap();
    let p = t.add_text("greeting.txt", "hello\n", &[]).unwrap();
    assert!(t.is_valid_path(&p).unwrap());
    assert_eq!(p.name(), "greeting.txt");
    assert_eq!(fs::read_to_string(t.real_path(&p).unwrap()).unwrap(), "hello\n");
    assert_eq!(t.add_text("greeting.txt", "hello\n", &[]).unwrap(), p, "same name and text, same path");
    assert_ne!(t.add_text("greeting.txt", "bye\n", &[]).unwrap(), p);
}

#[test]
fn add_text_with_a_reference_keeps_it_in_the_closure() {
    let t = TempStore::new().unwrap();
    let dep = t.add_text("dep", "dep\n", &[]).unwrap();
    let top = t.add_text("top", &format!("uses {dep}\n"), std::slice::from_ref(&dep)).unwrap();
    assert_ne!(top, t.add_text("top", &format!("uses {dep}\n"), &[]).unwrap(), "references are part of the path");
    match t.closure(&top) {
        Ok(closure) => {
            assert!(capabilities().has(Capability::Closure));
            assert_eq!(closure, [dep.clone(), top.clone()].into_iter().collect());
        }
        Err(e) => {
            assert!(!capabilities().has(Capability::Closure), "{e}");
            assert!(matches!(e, Error::Unsupported { capability: Capability::Closure, needs: "2.33", .. }), "{e:?}");
            assert!(e.to_string().contains(nix_sys::BUILT_VERSION), "{e}");
        }
    }
}

#[test]
fn add_text_rejects_bad_input_naming_it() {
    let t = TempStore::new().unwrap();
    let e = t.add_text("bad name!", "x", &[]).unwrap_err();
    assert!(e.to_string().contains("'bad name!'"), "{e}");
    let e = t.add_text("ok", "a\0b", &[]).unwrap_err();
    assert!(matches!(e, Error::NulByte { .. }), "{e:?}");
    let other = TempStore::new().unwrap();
    let foreign = other.add_text("elsewhere", "x", &[]).unwrap();
    let e = t.add_text("ok", "x", std::slice::from_ref(&foreign)).unwrap_err();
    assert!(e.to_string().contains(foreign.as_str()), "{e}");
    let missing =
        t.parse_path(&format!("{}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-gone", t.store_dir_path().display())).unwrap();
    let e = t.add_text("ok", "x", std::slice::from_ref(&missing)).unwrap_err();
    assert!(e.to_string().contains("not valid") && e.to_string().contains(missing.as_str()), "{e}");
}

#[test]
fn derivation_behind_a_drv_path_and_its_outputs() {
    let t = TempStore::new().unwrap();
    let src = t.add_text("script", "echo hi\n", &[]).unwrap();
    let dep = sh_drv(&t, "dep", "echo dep > $out");
    let made = DerivationBuilder::new("top", "/bin/sh")
        .args(["-c", "echo top > $out; echo doc > $doc"])
        .env("GREETING", "hello")
        .outputs(["out", "doc"])
        .input_source(&src)
        .input_derivation(&dep.drv_path, ["out"])
        .create(&t)
        .unwrap();
    let d = t.derivation(&made.drv_path).unwrap();
    assert_eq!(d.builder, "/bin/sh");
    assert_eq!(d.args, ["-c", "echo top > $out; echo doc > $doc"]);
    assert_eq!(d.env["GREETING"], "hello");
    assert_eq!(d.env["outputs"], "out doc");
    assert_eq!(d.input_srcs, vec![src.to_string()]);
    assert_eq!(d.input_drvs[dep.drv_path.as_str()], vec!["out"]);
    for (name, path) in &made.outputs {
        assert_eq!(&d.outputs[name], path.as_str(), "output {name}");
        assert_eq!(d.env[name], path.as_str(), "output {name} in the environment");
    }
    // The same answer as reading the .drv file.
    assert_eq!(d, t.read_derivation(&made.drv_path).unwrap());
}

#[test]
fn derivation_rejects_what_is_not_a_valid_drv() {
    let t = TempStore::new().unwrap();
    let text = t.add_text("plain", "x", &[]).unwrap();
    let e = t.derivation(&text).unwrap_err();
    assert!(e.to_string().contains("not a .drv") && e.to_string().contains(text.as_str()), "{e}");
    let gone =
        t.parse_path(&format!("{}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-gone.drv", t.store_dir_path().display())).unwrap();
    let e = t.derivation(&gone).unwrap_err();
    assert!(e.to_string().contains(gone.as_str()), "{e}");
}

#[test]
fn closure_of_a_built_output() {
    let t = TempStore::new().unwrap();
    let a = sh_drv(&t, "a", "echo a > $out");
    let a_out = a.output("out").unwrap().clone();
    let b = DerivationBuilder::new("b", "/bin/sh")
        .args(["-c", &format!("echo {a_out} > $out")])
        .input_derivation(&a.drv_path, ["out"])
        .create(&t)
        .unwrap();
    let b_out = t.realise(&b.drv_path).unwrap()["out"].clone();
    match t.closure(&b_out) {
        Ok(c) => assert_eq!(c, [a_out, b_out].into_iter().collect()),
        Err(e) => assert!(!capabilities().has(Capability::Closure) && matches!(e, Error::Unsupported { .. }), "{e:?}"),
    }
    // An invalid path is an error on every version.
    let gone: StorePath =
        t.parse_path(&format!("{}/g1w7hy3qg1w7hy3qg1w7hy3qg1w7hy3q-gone", t.store_dir_path().display())).unwrap();
    assert!(t.closure(&gone).is_err());
}

#[test]
fn copy_one_path_between_stores() {
    let src = TempStore::new().unwrap();
    let dst = TempStore::with_store_dir(&src.store_dir_path()).unwrap();
    let p = src.add_text("copied", "copied\n", &[]).unwrap();
    match src.copy_path_to(&dst, &p) {
        Ok(()) => {
            assert!(capabilities().has(Capability::CopyPath));
            assert!(dst.is_valid_path(&p).unwrap());
            assert_eq!(fs::read_to_string(dst.real_path(&p).unwrap()).unwrap(), "copied\n");
            // A path whose reference the destination lacks is refused, naming it.
            let top = src.add_text("top", &format!("{p}"), std::slice::from_ref(&p)).unwrap();
            let fresh = TempStore::with_store_dir(&src.store_dir_path()).unwrap();
            let e = src.copy_path_to(&fresh, &top).unwrap_err().to_string();
            assert!(e.contains(&format!("refers to '{p}'")), "names the missing reference: {e}");
            assert!(!fresh.is_valid_path(&top).unwrap(), "nothing half-written");
        }
        Err(e) => {
            assert!(!capabilities().has(Capability::CopyPath), "{e}");
            assert!(matches!(e, Error::Unsupported { capability: Capability::CopyPath, needs: "2.34", .. }), "{e:?}");
            assert!(!dst.is_valid_path(&p).unwrap(), "nothing copied");
        }
    }
}

#[test]
fn create_all_makes_the_same_derivations_as_one_by_one() {
    let t = TempStore::new().unwrap();
    let builders: Vec<DerivationBuilder> = (0..5)
        .map(|i| {
            let mut b = DerivationBuilder::new(format!("batch-{i}"), "/bin/sh");
            b.args(["-c", &format!("echo {i} > $out")]);
            b
        })
        .collect();
    let all = DerivationBuilder::create_all(&t, &builders).unwrap();
    assert_eq!(all.len(), 5);
    for (b, made) in builders.iter().zip(&all) {
        assert_eq!(&b.create(&t).unwrap(), made, "batch and single agree");
        assert!(t.is_valid_path(&made.drv_path).unwrap());
    }
    let out = t.realise(&all[3].drv_path).unwrap();
    assert_eq!(fs::read_to_string(out["out"].as_path()).unwrap(), "3\n");
    assert!(DerivationBuilder::create_all(&t, &[]).unwrap().is_empty());
}

#[test]
fn create_all_validates_everything_before_writing() {
    let t = TempStore::new().unwrap();
    let good = DerivationBuilder::new("good-first", "/bin/sh");
    let bad = DerivationBuilder::new("bad name!", "/bin/sh");
    let e = DerivationBuilder::create_all(&t, &[good.clone(), bad]).unwrap_err();
    assert!(e.to_string().contains("'bad name!'"), "{e}");
    // The good one was not written: the store holds no path at all yet.
    let entries: Vec<String> = fs::read_dir(t.store_dir_path())
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    assert!(entries.iter().all(|e| e.starts_with('.')), "nothing written before the batch validated: {entries:?}");
}
