//! cargo's `--message-format`: the JSON messages cargo prints on stdout, one object per line
//! (`compiler-message`, `compiler-artifact`, `build-script-executed`, `build-finished`), with
//! cargo's field names and shapes, and the names cargo's progress bar gives units.
//!
//! The messages are built from the unit graph (cargo's own package ids and targets) and what a
//! unit left in the store: rustc's JSON diagnostics ([`crate::run_unit::diagnostics`]) and a
//! build script's parsed output.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::Error;
use crate::build_script::BuildScriptOutput;
use crate::plan::{ArtifactKind, PlannedUnit};
use crate::units::Workspace;
use crate::units::{DebugInfo, Mode, Unit};

/// How diagnostics and artifacts are reported (cargo's `--message-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MessageFormat {
    /// rustc's rendered diagnostics on stderr (the default).
    #[default]
    Human,
    /// One line per diagnostic on stderr (`file:line:col: level: message`).
    Short,
    /// JSON messages on stdout.
    Json {
        /// `json-diagnostic-short`: each diagnostic's `rendered` is the short form.
        short: bool,
        /// `json-diagnostic-rendered-ansi`: `rendered` keeps rustc's ANSI colours.
        ansi: bool,
        /// `json-render-diagnostics`: diagnostics are printed on stderr, rendered, and left
        /// out of the JSON.
        render_diagnostics: bool,
    },
}

impl MessageFormat {
    /// Parses the values of one or more `--message-format` options (each may be a comma
    /// separated list), as cargo does: `human`, `short`, `json`, `json-diagnostic-short`,
    /// `json-diagnostic-rendered-ansi`, `json-render-diagnostics`; the `json-*` values imply
    /// `json` and combine with each other.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<MessageFormat, String> {
        let mut format = MessageFormat::Human;
        let mut plain = None;
        let mut json = false;
        let (mut short, mut ansi, mut render_diagnostics) = (false, false, false);
        for v in values.iter().flat_map(|v| v.as_ref().split(',')).map(str::trim).filter(|v| !v.is_empty()) {
            match v.to_ascii_lowercase().as_str() {
                "human" => plain = Some(MessageFormat::Human),
                "short" => plain = Some(MessageFormat::Short),
                "json" => json = true,
                "json-diagnostic-short" => (json, short) = (true, true),
                "json-diagnostic-rendered-ansi" => (json, ansi) = (true, true),
                "json-render-diagnostics" => (json, render_diagnostics) = (true, true),
                other => {
                    return Err(format!(
                        "invalid message format `{other}` (expected human, short, json, json-diagnostic-short, \
                         json-diagnostic-rendered-ansi or json-render-diagnostics)"
                    ));
                }
            }
        }
        match (plain, json) {
            (Some(_), true) => return Err("cannot specify two kinds of `message-format` arguments".into()),
            (Some(p), false) => format = p,
            (None, true) => format = MessageFormat::Json { short, ansi, render_diagnostics },
            (None, false) => {}
        }
        Ok(format)
    }

    /// Whether JSON messages go to stdout.
    pub fn is_json(self) -> bool {
        matches!(self, MessageFormat::Json { .. })
    }

    /// rustc's diagnostic as a `compiler-message` carries it in this format: `rendered` without
    /// ANSI colours unless asked for, in short form for `json-diagnostic-short`.
    pub fn json_diagnostic(self, diagnostic: &serde_json::Value) -> serde_json::Value {
        let mut d = diagnostic.clone();
        let MessageFormat::Json { short, ansi, .. } = self else { return d };
        if let Some(obj) = d.as_object_mut() {
            let rendered = if short {
                Some(short_rendered(diagnostic))
            } else if ansi {
                None
            } else {
                obj.get("rendered").and_then(|r| r.as_str()).map(nix_rs::strip_ansi)
            };
            if let Some(r) = rendered {
                obj.insert("rendered".into(), serde_json::Value::String(r));
            }
        }
        d
    }

    /// The text to print on stderr for a diagnostic in the human formats (`rendered` as rustc
    /// printed it, or the short form), or `None` when the diagnostic is JSON only.
    pub fn human_diagnostic(self, diagnostic: &serde_json::Value) -> Option<String> {
        match self {
            MessageFormat::Short => Some(short_rendered(diagnostic)),
            MessageFormat::Human | MessageFormat::Json { render_diagnostics: true, .. } => {
                diagnostic.get("rendered").and_then(|r| r.as_str()).map(str::to_owned)
            }
            MessageFormat::Json { .. } => None,
        }
    }
}

/// Whether `diagnostic` is rustc's closing summary (`N warnings emitted`, `aborting due to …`),
/// which cargo drops (it counts on its own).
pub fn is_summary(diagnostic: &serde_json::Value) -> bool {
    let m = diagnostic.get("message").and_then(|m| m.as_str()).unwrap_or("");
    m.starts_with("aborting due to") || m.ends_with("warning emitted") || m.ends_with("warnings emitted")
}

/// Makes the file names of `diagnostic` what cargo's would be. The builder runs rustc in the
/// package's source (in the store) with relative paths; cargo runs it in the workspace root, so
/// a relative `file_name` there is `package_dir/file_name` (`package_dir` relative to the
/// workspace root when inside it, else absolute). Rewrites every span (children and macro
/// expansions too) and the `-->` lines of `rendered`.
pub fn relocate(diagnostic: &mut serde_json::Value, package_dir: &Path) {
    fn walk(v: &mut serde_json::Value, dir: &Path, renamed: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(obj) => {
                if let Some(serde_json::Value::String(f)) = obj.get_mut("file_name") {
                    if Path::new(f.as_str()).is_relative() && !f.starts_with('<') {
                        let new = dir.join(f.as_str()).display().to_string();
                        renamed.push((f.clone(), new.clone()));
                        *f = new;
                    }
                }
                for (k, child) in obj.iter_mut() {
                    if k != "rendered" {
                        walk(child, dir, renamed);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| walk(i, dir, renamed)),
            _ => {}
        }
    }
    if package_dir.as_os_str().is_empty() {
        return;
    }
    let mut renamed = Vec::new();
    walk(diagnostic, package_dir, &mut renamed);
    renamed.sort();
    renamed.dedup();
    if let Some(serde_json::Value::String(r)) = diagnostic.get_mut("rendered") {
        for (old, new) in &renamed {
            *r = replace_after_arrow(r, &format!("{old}:"), &format!("{new}:"));
        }
    }
}

/// Replaces `from` by `to` in `text` where it follows `--> ` or `::: ` (rustc's location
/// lines), ANSI colour codes in between allowed.
fn replace_after_arrow(text: &str, from: &str, to: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(from) {
        let mut before = &text[..at];
        // Drop trailing `ESC [ … m` sequences.
        while let Some(esc) = before.rfind("\x1b[") {
            let code = &before[esc + 2..];
            if code.ends_with('m') && code[..code.len() - 1].chars().all(|c| c.is_ascii_digit() || c == ';') {
                before = &before[..esc];
            } else {
                break;
            }
        }
        if before.ends_with("--> ") || before.ends_with("::: ") {
            out.push_str(&text[last..at]);
            out.push_str(to);
            last = at + from.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

/// How cargo names a target in messages such as ``warning: `foo` (lib) generated 1 warning``:
/// `lib`, `bin "app"`, `build script`, `lib test`, `test "cli"`, ...
pub fn target_description(unit: &Unit) -> String {
    let base = target_named(unit);
    if is_unit_test(unit) { format!("{base} test") } else { base }
}

/// Whether `unit` is a target's unit tests (`lib test`, `bin "app" test`): a test-mode unit of
/// a target that is not itself a test or bench.
pub(crate) fn is_unit_test(unit: &Unit) -> bool {
    unit.mode == Mode::Test && !unit.is_test() && !unit.is_bench()
}

/// The target as cargo names it (its `description_named`): `lib`, `bin "app"`, `build script`,
/// `test "cli"`, ...
pub(crate) fn target_named(unit: &Unit) -> String {
    let t = &unit.target.name;
    if unit.is_lib() {
        "lib".to_owned()
    } else if unit.has_kind("custom-build") {
        "build script".to_owned()
    } else if unit.is_bin() {
        format!("bin \"{t}\"")
    } else if unit.is_test() {
        format!("test \"{t}\"")
    } else if unit.is_bench() {
        format!("bench \"{t}\"")
    } else if unit.is_example() {
        format!("example \"{t}\"")
    } else {
        t.clone()
    }
}

/// A diagnostic in rustc's `--error-format=short` shape: `file:line:col: level[code]: message`
/// (the primary span's position; no position when there is no span).
pub fn short_rendered(diagnostic: &serde_json::Value) -> String {
    let level = diagnostic.get("level").and_then(|l| l.as_str()).unwrap_or("error");
    let message = diagnostic.get("message").and_then(|m| m.as_str()).unwrap_or("");
    let code = diagnostic.get("code").and_then(|c| c.get("code")).and_then(|c| c.as_str());
    let spans = diagnostic.get("spans").and_then(|s| s.as_array());
    let primary = spans.and_then(|s| {
        s.iter().find(|s| s.get("is_primary").and_then(|p| p.as_bool()) == Some(true)).or_else(|| s.first())
    });
    let mut out = String::new();
    if let Some(span) = primary {
        let file = span.get("file_name").and_then(|f| f.as_str()).unwrap_or("");
        let line = span.get("line_start").and_then(|l| l.as_u64()).unwrap_or(0);
        let col = span.get("column_start").and_then(|c| c.as_u64()).unwrap_or(0);
        out.push_str(&format!("{file}:{line}:{col}: "));
    }
    out.push_str(level);
    if let Some(code) = code {
        out.push_str(&format!("[{code}]"));
    }
    out.push_str(": ");
    out.push_str(message);
    out.push('\n');
    out
}

/// The name cargo's progress bar shows for a unit being built (cargo's `name_for_progress`):
/// `serde`, `foo(build)`, `foo(build.rs)`, `app(bin)`, `app(test)`, ...
pub fn progress_name(unit: &Unit, package: &str) -> String {
    let target = &unit.target.name;
    let is_lib = unit.is_lib();
    match &unit.mode {
        Mode::Doc => format!("{package}(doc)"),
        Mode::RunCustomBuild => format!("{package}(build)"),
        Mode::Test | Mode::Check { test: true } => {
            if is_lib || unit.is_test() {
                format!("{target}(test)")
            } else if unit.is_bin() {
                format!("{target}(bin test)")
            } else if unit.is_bench() {
                format!("{target}(bench)")
            } else if unit.is_example() {
                format!("{target}(example test)")
            } else {
                format!("{target}(test)")
            }
        }
        _ if unit.has_kind("custom-build") => format!("{package}(build.rs)"),
        _ if is_lib => package.to_owned(),
        _ if unit.is_bin() => format!("{target}(bin)"),
        _ if unit.is_test() => format!("{target}(test)"),
        _ if unit.is_bench() => format!("{target}(bench)"),
        _ if unit.is_example() => format!("{target}(example)"),
        _ => package.to_owned(),
    }
}

/// cargo's `target` object (its `SerializedTarget`).
#[derive(Debug, Serialize)]
struct TargetJson<'a> {
    kind: &'a [String],
    crate_types: &'a [String],
    name: &'a str,
    src_path: &'a Path,
    edition: &'a str,
    #[serde(rename = "required-features", skip_serializing_if = "Option::is_none")]
    required_features: Option<&'a [String]>,
    doc: bool,
    doctest: bool,
    test: bool,
}

impl<'a> TargetJson<'a> {
    fn of(unit: &'a Unit) -> Self {
        let t = &unit.target;
        TargetJson {
            kind: &t.kind,
            crate_types: &t.crate_types,
            name: &t.name,
            src_path: &t.src_path,
            edition: &t.edition,
            required_features: t.required_features.as_deref(),
            doc: t.doc,
            doctest: t.doctest,
            test: t.test,
        }
    }
}

/// cargo's `profile` object (its `ArtifactProfile`): `debuginfo` is `0`, `1`, `2` or the name of
/// the other levels.
#[derive(Debug, Serialize)]
struct ProfileJson<'a> {
    opt_level: &'a str,
    debuginfo: Option<serde_json::Value>,
    debug_assertions: bool,
    overflow_checks: bool,
    test: bool,
}

fn debuginfo_json(d: DebugInfo) -> serde_json::Value {
    match d {
        DebugInfo::None => 0.into(),
        DebugInfo::Limited => 1.into(),
        DebugInfo::Full => 2.into(),
        DebugInfo::LineDirectivesOnly | DebugInfo::LineTablesOnly => d.rustc_value().into(),
    }
}

#[derive(Debug, Serialize)]
struct CompilerMessage<'a> {
    reason: &'static str,
    package_id: &'a str,
    manifest_path: PathBuf,
    target: TargetJson<'a>,
    message: serde_json::Value,
}

#[derive(Debug, Serialize)]
struct CompilerArtifact<'a> {
    reason: &'static str,
    package_id: &'a str,
    manifest_path: PathBuf,
    target: TargetJson<'a>,
    profile: ProfileJson<'a>,
    features: &'a [String],
    filenames: &'a [PathBuf],
    executable: Option<&'a Path>,
    fresh: bool,
}

#[derive(Debug, Serialize)]
struct BuildScriptExecuted<'a> {
    reason: &'static str,
    package_id: &'a str,
    linked_libs: &'a [String],
    linked_paths: &'a [String],
    cfgs: &'a [String],
    env: &'a [(String, String)],
    out_dir: &'a Path,
}

#[derive(Debug, Serialize)]
struct BuildFinished {
    reason: &'static str,
    success: bool,
}

fn to_line(value: &impl Serialize) -> String {
    serde_json::to_string(value).expect("messages serialize")
}

fn manifest_path(ws: &Workspace, index: usize) -> Result<PathBuf, Error> {
    Ok(ws.package_of(index)?.manifest_dir.join("Cargo.toml"))
}

/// The `compiler-message` line for rustc's diagnostic `message` (already in the wanted format,
/// see [`MessageFormat::json_diagnostic`]) of unit `index`.
pub fn compiler_message(ws: &Workspace, index: usize, message: serde_json::Value) -> Result<String, Error> {
    let unit = &ws.graph.units[index];
    Ok(to_line(&CompilerMessage {
        reason: "compiler-message",
        package_id: &unit.pkg_id,
        manifest_path: manifest_path(ws, index)?,
        target: TargetJson::of(unit),
        message,
    }))
}

/// The files a compiled unit reports as `filenames`, and its `executable`: where the unit's
/// artifacts are installed in the target directory when they are (root units), else the files
/// in its store output (`out` is the output's real path on this machine).
pub fn artifact_files(
    ws: &Workspace,
    unit: &PlannedUnit,
    out: &Path,
    profile_dir: &Path,
) -> (Vec<PathBuf>, Option<PathBuf>) {
    let installed: Vec<(ArtifactKind, PathBuf)> = if ws.graph.roots.contains(&unit.index) {
        crate::install::install_paths(unit, profile_dir).map(|(a, p)| (a.kind.clone(), p)).collect()
    } else {
        Vec::new()
    };
    let files = if installed.is_empty() {
        unit.artifacts.iter().map(|a| (a.kind.clone(), out.join(&a.file))).collect()
    } else {
        installed
    };
    let executable = files
        .iter()
        .find(|(k, _)| {
            matches!(k, ArtifactKind::Bin | ArtifactKind::Test | ArtifactKind::Example | ArtifactKind::Bench)
        })
        .map(|(_, p)| p.clone());
    (files.into_iter().map(|(_, p)| p).collect(), executable)
}

/// The `compiler-artifact` line of unit `index`; `fresh` when it was not compiled by this run.
pub fn compiler_artifact(
    ws: &Workspace,
    index: usize,
    filenames: &[PathBuf],
    executable: Option<&Path>,
    fresh: bool,
) -> Result<String, Error> {
    let unit = &ws.graph.units[index];
    let p = &unit.profile;
    Ok(to_line(&CompilerArtifact {
        reason: "compiler-artifact",
        package_id: &unit.pkg_id,
        manifest_path: manifest_path(ws, index)?,
        target: TargetJson::of(unit),
        profile: ProfileJson {
            opt_level: &p.opt_level,
            debuginfo: p.debuginfo.map(debuginfo_json),
            debug_assertions: p.debug_assertions,
            overflow_checks: p.overflow_checks,
            test: unit.mode.is_any_test(),
        },
        features: &unit.features,
        filenames,
        executable,
        fresh,
    }))
}

/// The `build-script-executed` line of the build-script run `index`, from the script's parsed
/// `output` and its `OUT_DIR`.
pub fn build_script_executed(ws: &Workspace, index: usize, output: &BuildScriptOutput, out_dir: &Path) -> String {
    to_line(&BuildScriptExecuted {
        reason: "build-script-executed",
        package_id: &ws.graph.units[index].pkg_id,
        linked_libs: &output.library_links,
        linked_paths: &output.library_paths,
        cfgs: &output.cfgs,
        env: &output.env,
        out_dir,
    })
}

/// The final `build-finished` line.
pub fn build_finished(success: bool) -> String {
    to_line(&BuildFinished { reason: "build-finished", success })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::UnitGraph;

    fn graph() -> UnitGraph {
        let unit = |kind: &str, name: &str, mode: &str| {
            format!(
                r#"{{"pkg_id": "path+file:///w/foo#0.1.0", "mode": "{mode}", "features": ["default"],
                    "profile": {{"name": "dev", "opt_level": "0", "lto": "false", "debuginfo": 2,
                                 "debug_assertions": true, "overflow_checks": true, "rpath": false,
                                 "incremental": false, "panic": "unwind", "strip": "none"}},
                    "target": {{"kind": ["{kind}"], "crate_types": ["bin"], "name": "{name}",
                                "src_path": "/w/foo/src/x.rs", "edition": "2021",
                                "doc": true, "doctest": false, "test": true}}}}"#
            )
        };
        let units = [
            unit("lib", "foo", "build"),
            unit("custom-build", "build-script-build", "build"),
            unit("custom-build", "build-script-build", "run-custom-build"),
            unit("bin", "app", "build"),
            unit("lib", "foo", "test"),
            unit("bin", "app", "test"),
            unit("test", "it", "test"),
        ];
        UnitGraph::parse(&format!(r#"{{"version": 1, "units": [{}], "roots": [0]}}"#, units.join(","))).unwrap()
    }

    #[test]
    fn progress_names_follow_cargo() {
        let g = graph();
        let names: Vec<String> = g.units.iter().map(|u| progress_name(u, "foo")).collect();
        assert_eq!(names, ["foo", "foo(build.rs)", "foo(build)", "app(bin)", "foo(test)", "app(bin test)", "it(test)"]);
    }

    #[test]
    fn message_formats_parse_like_cargo() {
        assert_eq!(MessageFormat::parse::<&str>(&[]), Ok(MessageFormat::Human));
        assert_eq!(MessageFormat::parse(&["short"]), Ok(MessageFormat::Short));
        assert_eq!(
            MessageFormat::parse(&["json"]),
            Ok(MessageFormat::Json { short: false, ansi: false, render_diagnostics: false })
        );
        assert_eq!(
            MessageFormat::parse(&["json-diagnostic-short,json-diagnostic-rendered-ansi"]),
            Ok(MessageFormat::Json { short: true, ansi: true, render_diagnostics: false })
        );
        assert_eq!(
            MessageFormat::parse(&["json-render-diagnostics"]),
            Ok(MessageFormat::Json { short: false, ansi: false, render_diagnostics: true })
        );
        assert!(MessageFormat::parse(&["human", "json"]).is_err());
        assert!(MessageFormat::parse(&["yaml"]).unwrap_err().contains("yaml"));
    }

    #[test]
    fn diagnostics_follow_the_format() {
        let d = serde_json::json!({
            "$message_type": "diagnostic", "level": "warning", "message": "unused variable: `x`",
            "code": {"code": "unused_variables", "explanation": null},
            "spans": [{"file_name": "src/lib.rs", "line_start": 3, "column_start": 9, "is_primary": true}],
            "rendered": "\u{1b}[1m\u{1b}[33mwarning\u{1b}[0m: unused variable\n"
        });
        let json = MessageFormat::parse(&["json"]).unwrap();
        assert_eq!(json.json_diagnostic(&d)["rendered"], "warning: unused variable\n");
        assert_eq!(json.human_diagnostic(&d), None);
        let ansi = MessageFormat::parse(&["json-diagnostic-rendered-ansi"]).unwrap();
        assert_eq!(ansi.json_diagnostic(&d)["rendered"], d["rendered"]);
        let short = "src/lib.rs:3:9: warning[unused_variables]: unused variable: `x`\n";
        assert_eq!(MessageFormat::Short.human_diagnostic(&d).as_deref(), Some(short));
        assert_eq!(MessageFormat::parse(&["json-diagnostic-short"]).unwrap().json_diagnostic(&d)["rendered"], short);
        let render = MessageFormat::parse(&["json-render-diagnostics"]).unwrap();
        assert_eq!(render.human_diagnostic(&d).as_deref(), d["rendered"].as_str());
    }

    #[test]
    fn diagnostics_are_relocated_to_the_workspace_root() {
        let mut d = serde_json::json!({
            "message": "m", "rendered": "warning: m\n --> src/lib.rs:3:9\n",
            "spans": [{"file_name": "src/lib.rs", "expansion": {"span": {"file_name": "/abs/x.rs"}}}],
            "children": [{"spans": [{"file_name": "src/lib.rs"}]}]
        });
        relocate(&mut d, Path::new("greeter"));
        assert_eq!(d["spans"][0]["file_name"], "greeter/src/lib.rs");
        assert_eq!(d["spans"][0]["expansion"]["span"]["file_name"], "/abs/x.rs");
        assert_eq!(d["children"][0]["spans"][0]["file_name"], "greeter/src/lib.rs");
        assert_eq!(d["rendered"], "warning: m\n --> greeter/src/lib.rs:3:9\n");
        let coloured = "\u{1b}[1m\u{1b}[38;5;12m--> \u{1b}[0m\u{1b}[0msrc/lib.rs:22:28 src/lib.rs:1";
        assert_eq!(
            replace_after_arrow(coloured, "src/lib.rs:", "g/src/lib.rs:"),
            "\u{1b}[1m\u{1b}[38;5;12m--> \u{1b}[0m\u{1b}[0mg/src/lib.rs:22:28 src/lib.rs:1"
        );
        assert!(is_summary(&serde_json::json!({"message": "2 warnings emitted"})));
        assert!(!is_summary(&d));
        let g = graph();
        let names: Vec<String> = g.units.iter().map(target_description).collect();
        assert_eq!(
            names,
            ["lib", "build script", "build script", "bin \"app\"", "lib test", "bin \"app\" test", "test \"it\""]
        );
    }

    #[test]
    fn profile_and_target_have_cargos_shape() {
        let g = graph();
        let target = serde_json::to_value(TargetJson::of(&g.units[0])).unwrap();
        assert_eq!(
            target,
            serde_json::json!({"kind": ["lib"], "crate_types": ["bin"], "name": "foo", "src_path": "/w/foo/src/x.rs",
                               "edition": "2021", "doc": true, "doctest": false, "test": true})
        );
        assert_eq!(debuginfo_json(DebugInfo::Full), serde_json::json!(2));
        assert_eq!(debuginfo_json(DebugInfo::LineTablesOnly), serde_json::json!("line-tables-only"));
        assert_eq!(build_finished(false), r#"{"reason":"build-finished","success":false}"#);
    }
}
