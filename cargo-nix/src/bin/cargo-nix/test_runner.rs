//! `cargo nix test`'s second half: run the built test executables as cargo runs them.

use anyhow::{Context, Result};
use cargo_backend::plan::ArtifactKind;
use cargo_backend::{BuildReport, Stop, Workspace};

use crate::status::Status;

/// Runs every installed test executable from its package's directory (as cargo does) with
/// `test_args`, with config `[env]` set; returns whether all passed.
pub fn run_tests(
    report: &BuildReport,
    ws: &Workspace,
    test_args: &[String],
    status: &Status,
    stop: &Stop,
) -> Result<bool> {
    let tmp = ws.target_dir.join("tmp");
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut failed = Vec::new();
    for inst in report.installed.iter().filter(|i| i.kind == ArtifactKind::Test) {
        if stop.is_requested() {
            break;
        }
        let unit = &ws.graph.units[inst.unit];
        let pkg = ws.package_of(inst.unit)?;
        let shown = unit.target.src_path.strip_prefix(&ws.root).unwrap_or(&unit.target.src_path);
        status.line("Running", &format!("{} ({})", shown.display(), inst.path.display()));
        let mut cmd = std::process::Command::new(&inst.path);
        cmd.args(test_args).current_dir(&pkg.manifest_dir);
        for v in &ws.env_config {
            cmd.env(&v.key, &v.value);
        }
        let st = cmd.status().with_context(|| format!("running {}", inst.path.display()))?;
        if !st.success() {
            failed.push(inst.path.display().to_string());
        }
    }
    if !failed.is_empty() {
        status.error(&format!("test failed: {}", failed.join(", ")));
    }
    Ok(failed.is_empty())
}
