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
//! ([`rustc_input`], [`script_input`]). Files a build script generated stay at their store path, which is where they
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

/// Where the store copies of the workspace's path packages are on disk.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Store path of a path package's copy, the directory it was made from.
    pub copies: Vec<(PathBuf, PathBuf)>,
    /// The store directory and the workspace root: any workspace copy there (`<hash>-workspace-src`,
    /// also one an earlier build made, which a reused unit ran in) is the workspace root.
    pub workspace: Option<(PathBuf, PathBuf)>,
}

impl Origins {
    /// `p` (absolute) moved from a store copy to where it was copied from; as it is when it
    /// is in none.
    pub fn on_disk(&self, p: &Path) -> PathBuf {
        if let Some(moved) =
            self.copies.iter().find_map(|(store, orig)| p.strip_prefix(store).ok().map(|r| join(orig, r)))
        {
            return moved;
        }
        if let Some((store_dir, root)) = &self.workspace {
            if let Ok(rest) = p.strip_prefix(store_dir) {
                let mut parts = rest.components();
                if parts.next().is_some_and(|c| c.as_os_str().to_string_lossy().ends_with("-workspace-src")) {
                    return join(root, parts.as_path());
                }
            }
        }
        p.to_path_buf()
    }
}

/// Where an input named in a rustc unit's dep-info is on disk, as cargo names it: a relative
/// `named` is taken from `cwd` (where cargo runs rustc: the workspace root, or the package's
/// directory outside it), an absolute one moved out of a store copy ([`Origins::on_disk`]).
/// As cargo's `translate_dep_info`: when the file, symlinks resolved (`canonical`), is inside
/// the package (`pkg_root`, resolved the same way), it is named `pkg_root` joined with its
/// place there; else as joined.
pub fn rustc_input(
    named: &str,
    cwd: &Path,
    origins: &Origins,
    pkg_root: &Path,
    canonical: &dyn Fn(&Path) -> PathBuf,
) -> PathBuf {
    let p = Path::new(named);
    let abs = if p.is_absolute() { origins.on_disk(p) } else { join(cwd, p) };
    match canonical(&abs).strip_prefix(canonical(pkg_root)) {
        Ok(inside) => join(pkg_root, inside),
        Err(_) => abs,
    }
}

/// Where a build script's `rerun-if-changed` path is, as cargo names it: the package's
/// directory joined with it, as written (an absolute one moved out of a store copy).
pub fn script_input(named: &str, origins: &Origins, pkg_root: &Path) -> PathBuf {
    let p = Path::new(named);
    if p.is_absolute() { origins.on_disk(p) } else { join(pkg_root, p) }
}

/// A path with its symlinks resolved, or as given when it cannot be (cargo's
/// `try_canonicalize`).
fn canonicalize(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
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
            Some(base) => match normalize(p).strip_prefix(normalize(base)) {
                Ok(rel) => rel.to_path_buf(),
                Err(_) => p.to_path_buf(),
            },
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
fn origins(ws: &Workspace, plan: &Plan) -> Origins {
    // Any workspace copy in the store directory the current one is in (see `Origins`).
    let tree = plan.units.iter().find_map(|u| u.reuse.as_ref()?.tree.as_ref());
    let workspace = tree.and_then(|t| Some((Path::new(&t.tree).parent()?.to_path_buf(), ws.root.clone())));
    let path_dirs: HashSet<&Path> =
        ws.packages.values().filter(|p| p.source == "path").map(|p| p.manifest_dir.as_path()).collect();
    let copies = plan.sources.iter().filter(|(_, dir)| path_dirs.contains(dir.as_path())).cloned().collect();
    Origins { copies, workspace }
}

/// The inputs of root unit `root` of `plan` (see the module docs), or `None` when a unit's
/// dep-info cannot be read from its output in `store`.
fn inputs(store: &Store, ws: &Workspace, plan: &Plan, origins: &Origins, root: usize) -> Option<BTreeSet<PathBuf>> {
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
        if unit.is_build_script_run() {
            let bytes = std::fs::read(out.join("output")).ok()?;
            let parsed = cargo_nix_unit::build_script::BuildScriptOutput::parse(&bytes, &planned.package).ok()?;
            for p in &parsed.rerun_if_changed {
                found.insert(script_input(p, origins, &pkg.manifest_dir));
            }
        } else {
            // Where cargo runs rustc for it: the workspace root, or the package outside it.
            let in_root = crate::plan::rustc_args::workspace_subdir(pkg, &ws.root).is_some();
            let rustc_cwd = if in_root { ws.root.as_path() } else { &pkg.manifest_dir };
            let dir = out.join(crate::plan::artifacts::out_subdir(unit));
            let d = std::fs::read_dir(&dir).ok()?.flatten().find(|e| e.path().extension().is_some_and(|x| x == "d"))?;
            let text = std::fs::read_to_string(d.path()).ok()?;
            for p in outside::dep_info_inputs(&text) {
                found.insert(rustc_input(&p, rustc_cwd, origins, &pkg.manifest_dir, &canonicalize));
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

/// Writes the dep-info files of the artifacts `installed` of the requested units (see the
/// module docs).
pub fn write_all(
    store: &Store,
    ws: &Workspace,
    plan: &Plan,
    installed: &[crate::install::Installed],
    profile_dir: &Path,
) -> Result<(), crate::Error> {
    let origins = origins(ws, plan);
    for &root in &ws.graph.roots {
        let mut inputs_of_root = None;
        for i in installed.iter().filter(|i| i.unit == root) {
            let Some(file) = file_for(&i.path, profile_dir) else { continue };
            let inputs = inputs_of_root.get_or_insert_with(|| inputs(store, ws, plan, &origins, root));
            write(&file, &i.path, inputs.as_ref(), ws.dep_info_basedir.as_deref())
                .map_err(|e| crate::Error::Io(format!("writing {}", file.display()), e))?;
        }
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
        let origins = Origins {
            copies: vec![(PathBuf::from("/s/bbb-outer"), "/home/me/outer".into())],
            workspace: Some(("/s".into(), ws.into())),
        };
        // Symlinks resolved lexically here: `core/README.md` is a link to the root's.
        let canonical = |p: &Path| -> PathBuf {
            let n = normalize(p);
            if n == Path::new("/home/me/ws/core/README.md") { "/home/me/ws/README.md".into() } else { n }
        };
        let o = |named: &str, cwd: &Path, pkg: &Path| rustc_input(named, cwd, &origins, pkg, &canonical);
        // rustc's relative paths are the workspace root's; inside the package, resolved.
        assert_eq!(o("core/src/lib.rs", ws, core), Path::new("/home/me/ws/core/src/lib.rs"));
        assert_eq!(o("core/src/../src/x.rs", ws, core), Path::new("/home/me/ws/core/src/x.rs"));
        // Outside the package, or a link out of it: as joined (cargo keeps that form).
        assert_eq!(o("core/src/../../README.md", ws, core), Path::new("/home/me/ws/core/src/../../README.md"));
        assert_eq!(o("core/src/../README.md", ws, core), Path::new("/home/me/ws/core/src/../README.md"));
        // Absolute paths in a store copy go back to the original, also in an earlier copy of
        // the workspace (a reused unit's).
        assert_eq!(o("/s/aaa-workspace-src/core/data.txt", ws, core), Path::new("/home/me/ws/core/data.txt"));
        assert_eq!(o("/s/zzz-workspace-src/core/data.txt", ws, core), Path::new("/home/me/ws/core/data.txt"));
        let outer = Path::new("/home/me/outer");
        assert_eq!(o("/s/bbb-outer/src/lib.rs", outer, outer), Path::new("/home/me/outer/src/lib.rs"));
        // Elsewhere (a build script's OUT_DIR, system headers): as named.
        assert_eq!(o("/s/ccc-run/out-dir/gen.rs", ws, core), Path::new("/s/ccc-run/out-dir/gen.rs"));
        // A build script's `rerun-if-changed` is its package's, joined as written.
        assert_eq!(script_input("build.rs", &origins, core), Path::new("/home/me/ws/core/build.rs"));
        assert_eq!(script_input("./build.rs", &origins, core), Path::new("/home/me/ws/core/./build.rs"));
        assert_eq!(script_input("", &origins, core), core);
        assert_eq!(script_input("/s/aaa-workspace-src/proto", &origins, core), Path::new("/home/me/ws/proto"));
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
        // Outside the base directory: as given, not normalized.
        let outside: BTreeSet<PathBuf> = [PathBuf::from("/v/a/../b.rs")].into();
        assert_eq!(render(Path::new("/w/app"), &outside, Some(Path::new("/w"))), "app: /v/a/../b.rs\n");
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
