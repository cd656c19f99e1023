//! What a unit produces and where cargo puts it: a pure function of the unit and its hash.

use serde::{Deserialize, Serialize};

use super::rustc_args::crate_name;
use crate::units::{Mode, Unit};

/// What a unit produces, for installing it into the target directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArtifactKind {
    /// An rlib (or dylib/staticlib/cdylib) of a library target.
    Lib,
    /// A `[[bin]]` executable.
    Bin,
    /// A test executable (`cargo test`).
    Test,
    /// An example executable.
    Example,
    /// A benchmark executable.
    Bench,
    /// The metadata of a checked unit (`cargo check`).
    Metadata,
    /// Anything else (build scripts, proc-macros): not installed.
    Internal,
}

/// One file a unit produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// Its kind.
    pub kind: ArtifactKind,
    /// Path relative to the unit's output, e.g. `bin/hello-0123abcd`.
    pub file: String,
    /// Where cargo puts it, relative to `target/<profile>/`, e.g. `hello` or `deps/t-0123abcd`.
    pub install_as: String,
}

/// The subdirectory of the unit's output rustc writes to: `lib` for libraries and checked
/// units, `bin` for executables.
pub fn out_subdir(unit: &Unit) -> &'static str {
    if is_library_output(unit) { "lib" } else { "bin" }
}

fn is_library_output(unit: &Unit) -> bool {
    matches!(unit.mode, Mode::Check { .. }) || (unit.is_lib() && !unit.mode.is_any_test())
}

/// The files rustc writes for `unit` compiled with `-C extra-filename=-<hash>`.
pub fn artifacts(unit: &Unit, hash: &str) -> Vec<Artifact> {
    let name = crate_name(unit);
    if matches!(unit.mode, Mode::Check { .. }) {
        let file = format!("lib/lib{name}-{hash}.rmeta");
        return vec![Artifact {
            kind: ArtifactKind::Metadata,
            install_as: format!("deps/lib{name}-{hash}.rmeta"),
            file,
        }];
    }
    if is_library_output(unit) {
        let mut out = Vec::new();
        for t in &unit.target.crate_types {
            let (file, install_as) = match t.as_str() {
                "lib" | "rlib" => (format!("lib{name}-{hash}.rlib"), format!("lib{name}.rlib")),
                "proc-macro" | "dylib" | "cdylib" => (format!("lib{name}-{hash}.so"), format!("lib{name}.so")),
                "staticlib" => (format!("lib{name}-{hash}.a"), format!("lib{name}.a")),
                _ => continue,
            };
            out.push(Artifact { kind: ArtifactKind::Lib, file: format!("lib/{file}"), install_as });
        }
        return out;
    }
    let file = format!("bin/{name}-{hash}");
    // cargo's `CompilationFiles::out_dir`: examples live in `examples/` whatever the mode (an
    // example built as a test, `test = true` or `--examples`, too), everything else in `deps/`.
    let dir = if unit.is_example() { "examples" } else { "deps" };
    let (kind, install_as) = if unit.has_kind("custom-build") {
        (ArtifactKind::Internal, String::new())
    } else if unit.mode.is_any_test() && unit.is_bench() {
        (ArtifactKind::Bench, format!("{dir}/{name}-{hash}"))
    } else if unit.mode.is_any_test() {
        (ArtifactKind::Test, format!("{dir}/{name}-{hash}"))
    } else if unit.is_example() {
        (ArtifactKind::Example, format!("examples/{}", unit.target.name))
    } else if unit.is_bench() {
        (ArtifactKind::Bench, format!("deps/{name}-{hash}"))
    } else {
        (ArtifactKind::Bin, unit.target.name.clone())
    };
    vec![Artifact { kind, file, install_as }]
}

/// The file a dependent passes to `--extern` for library unit `dep`: its `.rmeta` when the
/// dependent only compiles against it (cargo's `only_requires_rmeta`, or a checked dependency),
/// else the linkable file. Only the crate types rustc can link against count (cargo's
/// `CrateType::is_linkable`: `lib`, `rlib`, `dylib`, `proc-macro`), the rlib first: a
/// `cdylib` or `staticlib` listed before the `rlib` is not one (its `.so` has no metadata).
pub fn extern_file(dependent: &Unit, dep: &Unit, artifacts: &[Artifact]) -> Option<String> {
    let rmeta_only = matches!(dep.mode, Mode::Check { .. })
        || (super::rustc_args::emits_metadata(dependent)
            && dependent.mode == Mode::Build
            && super::rustc_args::emits_metadata(dep));
    let types = &dep.target.crate_types;
    let has = |t: &str| types.iter().any(|x| x == t);
    let suffix = if matches!(dep.mode, Mode::Check { .. }) {
        ".rmeta"
    } else if has("lib") || has("rlib") {
        ".rlib"
    } else if has("dylib") || has("proc-macro") {
        ".so"
    } else {
        return None;
    };
    let linkable = artifacts.iter().find(|a| a.file.ends_with(suffix))?;
    match linkable.file.strip_suffix(".rlib") {
        Some(stem) if rmeta_only => Some(format!("{stem}.rmeta")),
        _ => Some(linkable.file.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lib_unit(crate_types: &str) -> Unit {
        crate::units::test_unit(crate_types, crate_types, "build", "a")
    }

    fn unit(kind: &str, mode: &str, name: &str) -> Unit {
        crate::units::test_unit(&format!("\"{kind}\""), r#""bin""#, mode, name)
    }

    #[test]
    fn executables_go_where_cargo_puts_them() {
        let install = |kind: &str, mode: &str, name: &str| {
            let a = artifacts(&unit(kind, mode, name), "h").remove(0);
            (a.kind, a.install_as)
        };
        assert_eq!(install("bin", "build", "app"), (ArtifactKind::Bin, "app".into()));
        assert_eq!(install("example", "build", "demo"), (ArtifactKind::Example, "examples/demo".into()));
        assert_eq!(install("test", "test", "cli"), (ArtifactKind::Test, "deps/cli-h".into()));
        assert_eq!(install("bin", "test", "app"), (ArtifactKind::Test, "deps/app-h".into()));
        assert_eq!(install("bench", "test", "speed"), (ArtifactKind::Bench, "deps/speed-h".into()));
        // An example's test executable (`test = true`, `--examples`) stays among the examples:
        // cargo prints `Running unittests examples/demo.rs (target/debug/examples/demo-…)`.
        assert_eq!(install("example", "test", "demo"), (ArtifactKind::Test, "examples/demo-h".into()));
    }

    #[test]
    fn a_dependent_links_the_rlib_whatever_order_the_crate_types_are_listed_in() {
        let app = unit("bin", "build", "app");
        for types in [r#""cdylib", "rlib""#, r#""rlib", "cdylib""#, r#""staticlib", "lib""#] {
            let dep = lib_unit(types);
            let files = artifacts(&dep, "h");
            assert_eq!(extern_file(&app, &dep, &files).as_deref(), Some("lib/liba-h.rlib"), "{types}");
        }
        let dylib = lib_unit(r#""cdylib", "dylib""#);
        assert_eq!(extern_file(&app, &dylib, &artifacts(&dylib, "h")).as_deref(), Some("lib/liba-h.so"));
        // Nothing to link against: no `--extern`, as under cargo.
        let cdylib = lib_unit(r#""cdylib""#);
        assert_eq!(extern_file(&app, &cdylib, &artifacts(&cdylib, "h")), None);
    }
}
