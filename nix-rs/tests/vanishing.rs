//! Files and directories that disappear while a tree is being added to the store: a clear
//! error naming them, nothing added, and the evaluator keeps working (also for that very tree
//! once it is whole again).

use std::fs;
use std::path::{Path, PathBuf};

use nix_rs::testing::TempStore;
use nix_rs::{AddPathOptions, Error};

/// Store entries other than Nix's bookkeeping (`.links`, lock files).
fn store_entries(t: &TempStore) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(t.store_dir_path())
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != ".links" && !n.ends_with(".lock"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `root/a`, `root/b/sub/{x,y}`, `root/c`: Nix lists a directory, then for each entry in
/// sorted order calls the filter and reads it.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("b/sub")).unwrap();
    fs::write(root.join("a"), "a").unwrap();
    fs::write(root.join("b/sub/x"), "x").unwrap();
    fs::write(root.join("b/sub/y"), "y").unwrap();
    fs::write(root.join("c"), "c").unwrap();
}

/// Adds `root` with a filter that, when it is called for `trigger`, removes `victim` (which
/// Nix has listed already, and not read yet).
fn add_removing(t: &TempStore, root: &Path, trigger: &str, victim: &Path) -> Result<nix_rs::StorePath, Error> {
    let removed = std::sync::atomic::AtomicBool::new(false);
    t.add_path(
        root,
        AddPathOptions::new().name("tree").filter(|p: &Path, _| {
            if p == Path::new(trigger) && !removed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                if victim.is_dir() {
                    fs::remove_dir_all(victim).unwrap();
                } else {
                    fs::remove_file(victim).unwrap();
                }
            }
            true
        }),
    )
}

#[test]
fn a_file_or_directory_vanishing_mid_walk_is_named_and_nothing_is_added() {
    let t = TempStore::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("tree");
    make_tree(&root);
    let cases: [(&str, PathBuf); 4] = [
        ("a", root.join("c")),             // a file of the root
        ("a", root.join("b")),             // a directory of the root
        ("b/sub/x", root.join("b/sub/y")), // a file deeper down
        ("b/sub/x", root.join("b/sub/x")), // the file being looked at (stat'ed, not yet read)
    ];
    for (trigger, victim) in &cases {
        let before = store_entries(&t);
        let e = match add_removing(&t, &root, trigger, victim) {
            Err(e) => e,
            Ok(p) => {
                let listing = std::process::Command::new("find").arg(t.real_path(&p).unwrap()).output().unwrap();
                panic!("{}: added {p}:\n{}", victim.display(), String::from_utf8_lossy(&listing.stdout))
            }
        };
        match &e {
            Error::SourceVanished { root: r, path, .. } => {
                assert_eq!(r, &root);
                assert_eq!(path, victim, "{e}");
            }
            other => panic!("{}: expected SourceVanished, got {other:?}", victim.display()),
        }
        let text = e.to_string();
        assert!(text.contains(&format!("'{}' disappeared", victim.display())), "{text}");
        assert_eq!(store_entries(&t), before, "{}: something was added", victim.display());

        // The tree is whole again: adding it works, in the same process (Nix 2.26 caches
        // lstat results process-wide, including "missing").
        make_tree(&root);
        let p = t.add_path(&root, AddPathOptions::new().name("tree")).unwrap();
        let real = t.real_path(&p).unwrap();
        assert_eq!(fs::read_to_string(real.join("c")).unwrap(), "c");
        assert_eq!(fs::read_to_string(real.join("b/sub/x")).unwrap(), "x");
    }
    // The root itself gone: named too.
    let e = t.add_path(d.path().join("nothing-here"), AddPathOptions::new()).unwrap_err();
    assert!(e.to_string().contains("nothing-here"), "{e}");
    // The evaluator still creates derivations.
    let drv = nix_rs::DerivationBuilder::new("after", "/bin/sh").args(["-c", "echo > $out"]).create(&t).unwrap();
    assert!(t.is_valid_path(&drv.drv_path).unwrap());
}
