//! The dep-info files cargo writes beside the artifacts it puts in `target/<profile>/`
//! (`target/debug/app.d`, `target/debug/libcore.d`), for build systems that call cargo and
//! need to know when to call it again (cargo's `output_depinfo`).
//!
//! One line: `<artifact>: <input> <input> …`, the inputs sorted, spaces escaped, paths absolute
//! unless `build.dep-info-basedir` says otherwise ([`render`]). The inputs are those of the
//! artifact's unit and, transitively, of every unit of a path package it depends on (registry
//! packages are left out: `Cargo.lock` names them): what rustc's dep-info of each rustc unit
//! lists, and the `rerun-if-changed` paths of their build scripts. Our units read the store
//! copies of the sources, so each path is put back where cargo would name it: the workspace
//! root for the workspace copy, the package's directory for a path package outside the root
//! ([`original`]). Files a build script generated stay at their store path, which is where they
//! are (cargo names its `target/<profile>/build/<pkg>-<hash>/out/`).
//!
//! Artifacts in `deps/` (tests, benches, checked libraries) get none, as under cargo. When an
//! input list cannot be read (a unit's output has no dep-info), the file is removed, as cargo
//! does, so that a build system reruns the build. An unchanged file is not rewritten (its
//! modification time is what a build system compares).

use std::collections::{BTreeSet, HashSet};
use std::path::{Component, Path, PathBuf};

use nix_rs::Store;

use crate::plan::{Plan, outside};
use crate::units::Workspace;

/// Where a path a unit named is on disk, as cargo names it. `named` is as written in a dep-info
/// file or a build script's `rerun-if-changed`; a relative one is taken from `cwd` (where cargo
/// runs that tool: the workspace root for rustc, the package's directory for a build script);
/// an absolute one inside a store copy (`origins`: store path, original directory) is moved to
/// the original. As cargo: a path inside `pkg_root` is normalized (`..` resolved), one outside
/// is left as joined.
pub fn original(named: &str, cwd: &Path, origins: &[(PathBuf, PathBuf)], pkg_root: &Path) -> PathBuf {
    let p = Path::new(named);
    let abs = if p.is_absolute() {
        origins
            .iter()
            .find_map(|(store, orig)| p.strip_prefix(store).ok().map(|rest| join(orig, rest)))
            .unwrap_or_else(|| p.to_path_buf())
    } else {
        join(cwd, p)
    };
    let norm = normalize(&abs);
    if norm.starts_with(pkg_root) { norm } else { abs }
}

/// `base` joined with `rest`, without the trailing separator an empty `rest` would add.
fn join(base: &Path, rest: &Path) -> PathBuf {
    if rest.as_os_str().is_empty() { base.to_path_buf() } else { base.join(rest) }
}

/// `path` with `.` dropped and `..` resolved lexically (cargo's `normalize_path`).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

/// The dep-info file for `artifact` listing `inputs`: paths relative to `basedir` when under
/// it (both normalized), spaces escaped.
pub fn render(artifact: &Path, inputs: &BTreeSet<PathBuf>, basedir: Option<&Path>) -> String {
    let name = |p: &Path| -> String {
        let shown = match basedir {
            Some(base) => {
                let (p, base) = (normalize(p), normalize(base));
                match p.strip_prefix(&base) {
                    Ok(rel) => rel.to_path_buf(),
                    Err(_) => p,
                }
            }
            None => p.to_path_buf(),
        };
        shown.to_string_lossy().replace(' ', "\\ ")
    };
    let mut s = format!("{}:", name(artifact));
    for i in inputs {
        s.push(' ');
        s.push_str(&name(i));
    }
    s.push('\n');
    s
}

/// Where the dep-info file of the artifact at `installed` goes: beside it, its extension `.d`;
/// none for artifacts cargo does not put there itself (`deps/`).
pub fn file_for(installed: &Path, profile_dir: &Path) -> Option<PathBuf> {
    let rel = installed.strip_prefix(profile_dir).ok()?;
    (!rel.starts_with("deps")).then(|| installed.with_extension("d"))
}

/// The store copies of the workspace's path packages and where each is on disk.
fn origins(ws: &Workspace, plan: &Plan) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for u in &plan.units {
        let Some(r) = &u.reuse else { continue };
        if let Some(t) = &r.tree {
            out.push((PathBuf::from(&t.tree), ws.root.clone()));
        }
    }
    let path_dirs: HashSet<&Path> =
        ws.packages.values().filter(|p| p.source == "path").map(|p| p.manifest_dir.as_path()).collect();
    for (store, dir) in &plan.sources {
        if path_dirs.contains(dir.as_path()) {
            out.push((store.clone(), dir.clone()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The inputs of root unit `root` of `plan` (see the module docs), or `None` when a unit's
/// dep-info cannot be read from its output in `store`.
pub fn inputs(store: &Store, ws: &Workspace, plan: &Plan, root: usize) -> Option<BTreeSet<PathBuf>> {
    let origins = origins(ws, plan);
    let mut found = BTreeSet::new();
    let mut seen = HashSet::new();
    let mut stack = vec![root];
    while let Some(i) = stack.pop() {
        if !seen.insert(i) {
            continue;
        }
        let unit = ws.graph.units.get(i)?;
        let pkg = ws.package_of(i).ok()?;
        let planned = plan.units.get(i)?;
        let out = store.real_path(&planned.out).ok()?;
        let rustc_cwd = if pkg.manifest_dir.starts_with(&ws.root) { ws.root.as_path() } else { &pkg.manifest_dir };
        if unit.is_build_script_run() {
            let bytes = std::fs::read(out.join("output")).ok()?;
            let parsed = cargo_nix_unit::build_script::BuildScriptOutput::parse(&bytes, &planned.package).ok()?;
            for p in &parsed.rerun_if_changed {
                found.insert(original(p, &pkg.manifest_dir, &origins, &pkg.manifest_dir));
            }
        } else {
            let dir = out.join(crate::plan::artifacts::out_subdir(unit));
            let d = std::fs::read_dir(&dir).ok()?.flatten().find(|e| e.path().extension().is_some_and(|x| x == "d"))?;
            let text = std::fs::read_to_string(d.path()).ok()?;
            for p in outside::dep_info_inputs(&text) {
                found.insert(original(&p, rustc_cwd, &origins, &pkg.manifest_dir));
            }
        }
        for d in &unit.dependencies {
            if ws.package_of(d.index).is_ok_and(|p| p.source == "path") {
                stack.push(d.index);
            }
        }
    }
    Some(found)
}

/// Writes the dep-info files of the artifacts `installed` from root unit `root` (see the module
/// docs).
pub fn write_for(
    store: &Store,
    ws: &Workspace,
    plan: &Plan,
    root: usize,
    installed: &[crate::install::Installed],
    profile_dir: &Path,
) -> Result<(), crate::Error> {
    let mut inputs_of_root = None;
    for i in installed {
        let Some(file) = file_for(&i.path, profile_dir) else { continue };
        let inputs = inputs_of_root.get_or_insert_with(|| inputs(store, ws, plan, root));
        write(&file, &i.path, inputs.as_ref(), ws.dep_info_basedir.as_deref())
            .map_err(|e| crate::Error::Io(format!("writing {}", file.display()), e))?;
    }
    Ok(())
}

/// Writes (or, without `inputs`, removes) the dep-info file `file` for `artifact`; leaves one
/// with the same inputs alone, as cargo does, whatever artifact it names (a library with two
/// crate types has one file, naming the artifact first written).
pub fn write(
    file: &Path,
    artifact: &Path,
    inputs: Option<&BTreeSet<PathBuf>>,
    basedir: Option<&Path>,
) -> std::io::Result<()> {
    let Some(inputs) = inputs else {
        return match std::fs::remove_file(file) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    };
    let text = render(artifact, inputs, basedir);
    let tail = |t: &str| t.split_once(':').map(|(_, rest)| rest.to_owned());
    if std::fs::read_to_string(file).is_ok_and(|old| tail(&old) == tail(&text)) {
        return Ok(());
    }
    std::fs::write(file, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_put_back_where_cargo_names_them() {
        let ws = Path::new("/home/me/ws");
        let core = Path::new("/home/me/ws/core");
        let origins = vec![
            (PathBuf::from("/s/aaa-ws"), ws.to_path_buf()),
            (PathBuf::from("/s/bbb-outer"), "/home/me/outer".into()),
        ];
        let o = |named: &str, cwd: &Path, pkg: &Path| original(named, cwd, &origins, pkg);
        // rustc's relative paths are the workspace root's; inside the package, normalized.
        assert_eq!(o("core/src/lib.rs", ws, core), Path::new("/home/me/ws/core/src/lib.rs"));
        assert_eq!(o("core/src/../src/x.rs", ws, core), Path::new("/home/me/ws/core/src/x.rs"));
        // Outside the package: as joined (cargo does not normalize those).
        assert_eq!(o("core/src/../../README.md", ws, core), Path::new("/home/me/ws/core/src/../../README.md"));
        // Absolute paths in a store copy go back to the original.
        assert_eq!(o("/s/aaa-ws/core/data.txt", ws, core), Path::new("/home/me/ws/core/data.txt"));
        let outer = Path::new("/home/me/outer");
        assert_eq!(o("/s/bbb-outer/src/lib.rs", outer, outer), Path::new("/home/me/outer/src/lib.rs"));
        // Elsewhere (a build script's OUT_DIR, system headers): as named.
        assert_eq!(o("/s/ccc-run/out-dir/gen.rs", ws, core), Path::new("/s/ccc-run/out-dir/gen.rs"));
        // A build script's `rerun-if-changed=build.rs` is its package's; the package itself too.
        assert_eq!(o("build.rs", core, core), Path::new("/home/me/ws/core/build.rs"));
        assert_eq!(o("", core, core), core);
    }

    #[test]
    fn rendered_as_cargo_writes_it() {
        let inputs: BTreeSet<PathBuf> =
            ["/w/b c/lib.rs", "/w/a/main.rs", "/elsewhere/x.rs"].into_iter().map(PathBuf::from).collect();
        assert_eq!(
            render(Path::new("/w/target/debug/app"), &inputs, None),
            "/w/target/debug/app: /elsewhere/x.rs /w/a/main.rs /w/b\\ c/lib.rs\n"
        );
        assert_eq!(
            render(Path::new("/w/target/debug/app"), &inputs, Some(Path::new("/w/./"))),
            "target/debug/app: /elsewhere/x.rs a/main.rs b\\ c/lib.rs\n"
        );
        let dir = Path::new("/w/target/debug");
        assert_eq!(file_for(&dir.join("app"), dir), Some(dir.join("app.d")));
        assert_eq!(file_for(&dir.join("libcore.rlib"), dir), Some(dir.join("libcore.d")));
        assert_eq!(file_for(&dir.join("examples/ex"), dir), Some(dir.join("examples/ex.d")));
        assert_eq!(file_for(&dir.join("deps/t-0123"), dir), None);
    }

    #[test]
    fn an_unchanged_file_is_left_alone() {
        let dir = std::env::temp_dir().join(format!("cargo-backend-depinfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("libx.d");
        let one: BTreeSet<PathBuf> = [PathBuf::from("/w/x/src/lib.rs")].into();
        write(&file, &dir.join("libx.so"), Some(&one), None).unwrap();
        // The rlib of the same unit: the same inputs, so the file still names the `.so`.
        write(&file, &dir.join("libx.rlib"), Some(&one), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{}: /w/x/src/lib.rs\n", dir.join("libx.so").display())
        );
        let two: BTreeSet<PathBuf> = [PathBuf::from("/w/x/src/lib.rs"), PathBuf::from("/w/x/build.rs")].into();
        write(&file, &dir.join("libx.rlib"), Some(&two), None).unwrap();
        assert!(std::fs::read_to_string(&file).unwrap().starts_with(&format!("{}:", dir.join("libx.rlib").display())));
        // Inputs that could not be read: no file, so that a build system reruns the build.
        write(&file, &dir.join("libx.rlib"), None, None).unwrap();
        assert!(!file.exists());
        write(&file, &dir.join("libx.rlib"), None, None).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
