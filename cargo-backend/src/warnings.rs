//! What cargo prints about a unit's diagnostics besides the diagnostics themselves: each
//! rendered diagnostic once per build (later identical ones are counted as duplicates), the
//! `generated N warnings (k duplicates) (run `cargo fix …` to apply n suggestions)` line, and
//! `could not compile `name` (lib) due to N previous errors; M warnings emitted` (cargo's
//! `JobState::emit_diag`, `report_warning_count` and `on_stderr_line`, 1.95).

use std::collections::HashSet;

use crate::messages::{is_unit_test, target_description, target_named};
use crate::units::Unit;

/// The diagnostics already shown in this build, by their rendered text.
#[derive(Debug, Default)]
pub struct Dedupe {
    seen: HashSet<String>,
}

impl Dedupe {
    /// Whether `rendered` is shown now: false when the same text was shown before.
    pub fn first_time(&mut self, rendered: &str) -> bool {
        self.seen.insert(rendered.to_owned())
    }
}

/// One unit's diagnostics, as cargo counts them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Warnings, duplicates included.
    pub warnings: usize,
    /// Warnings not shown because an identical one was.
    pub duplicates: usize,
    /// Shown warnings with a machine-applicable suggestion.
    pub fixable: usize,
    /// Errors.
    pub errors: usize,
}

impl Counts {
    /// Counts `diagnostic` (rustc's JSON), `shown` false when it was a duplicate. rustc's
    /// closing summary (`aborting due to …`) is not counted.
    pub fn add(&mut self, diagnostic: &serde_json::Value, shown: bool) {
        if crate::messages::is_summary(diagnostic) {
            return;
        }
        match diagnostic.get("level").and_then(|l| l.as_str()) {
            Some("warning") => {
                self.warnings += 1;
                if !shown {
                    self.duplicates += 1;
                } else if machine_applicable(diagnostic) {
                    self.fixable += 1;
                }
            }
            Some("error") => self.errors += 1,
            _ => {}
        }
    }
}

/// Whether one of `diagnostic`'s suggestions is machine-applicable (what `cargo fix` applies).
pub fn machine_applicable(diagnostic: &serde_json::Value) -> bool {
    let children = diagnostic.get("children").and_then(|c| c.as_array()).map(Vec::as_slice).unwrap_or_default();
    children.iter().any(|c| {
        let spans = c.get("spans").and_then(|s| s.as_array()).map(Vec::as_slice).unwrap_or_default();
        spans.iter().any(|s| s.get("suggestion_applicability").and_then(|a| a.as_str()) == Some("MachineApplicable"))
    })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// cargo's `` `name` (lib) generated 2 warnings (1 duplicate) (run `cargo fix --lib -p name`
/// to apply 1 suggestion) `` for `unit` of package `package`, or `None` without warnings. The
/// `cargo fix` hint is for a unit of the user's (`local`) without errors, not a build script.
pub fn generated_line(unit: &Unit, package: &str, counts: Counts, local: bool) -> Option<String> {
    if counts.warnings == 0 {
        return None;
    }
    let mut line =
        format!("`{package}` ({}) generated {}", target_description(unit), plural(counts.warnings, "warning"));
    if counts.duplicates > 0 {
        line.push_str(&format!(" ({})", plural(counts.duplicates, "duplicate")));
    }
    if local && counts.errors == 0 && counts.fixable > 0 && !unit.has_kind("custom-build") {
        let mut args = format!("{} -p {package}", target_named(unit));
        if is_unit_test(unit) {
            args.push_str(" --tests");
        }
        line.push_str(&format!(" (run `cargo fix --{args}` to apply {})", plural(counts.fixable, "suggestion")));
    }
    Some(line)
}

/// cargo's `` could not compile `name` (lib) due to 1 previous error; 2 warnings emitted ``.
pub fn could_not_compile(unit: &Unit, package: &str, counts: Counts) -> String {
    let mut line = format!("could not compile `{package}` ({})", target_description(unit));
    if counts.errors > 0 {
        line.push_str(&format!(" due to {}", plural(counts.errors, "previous error")));
    }
    if counts.warnings > 0 {
        line.push_str(&format!("; {} emitted", plural(counts.warnings, "warning")));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(kind: &str, mode: &str) -> Unit {
        let quoted = format!("\"{kind}\"");
        crate::units::test_unit(&quoted, &quoted, mode, "p")
    }

    fn warning(fixable: bool) -> serde_json::Value {
        let applicability = if fixable { "MachineApplicable" } else { "MaybeIncorrect" };
        serde_json::json!({"level": "warning", "message": "unused", "children": [
            {"level": "help", "spans": [{"suggestion_applicability": applicability}]}]})
    }

    #[test]
    fn counts_as_cargo_does() {
        let mut dedupe = Dedupe::default();
        let mut c = Counts::default();
        for (d, text) in [(warning(true), "a"), (warning(false), "b"), (warning(true), "a")] {
            let shown = dedupe.first_time(text);
            c.add(&d, shown);
        }
        c.add(&serde_json::json!({"level": "warning", "message": "3 warnings emitted"}), true);
        assert_eq!(c, Counts { warnings: 3, duplicates: 1, fixable: 1, errors: 0 });
    }

    #[test]
    fn lines_as_cargo_prints_them() {
        let lib = unit("lib", "build");
        let c = Counts { warnings: 2, duplicates: 0, fixable: 1, errors: 0 };
        assert_eq!(
            generated_line(&lib, "tokei", c, true).unwrap(),
            "`tokei` (lib) generated 2 warnings (run `cargo fix --lib -p tokei` to apply 1 suggestion)"
        );
        assert_eq!(generated_line(&lib, "tokei", c, false).unwrap(), "`tokei` (lib) generated 2 warnings");
        let test = unit("lib", "test");
        let c = Counts { warnings: 2, duplicates: 2, fixable: 0, errors: 0 };
        assert_eq!(
            generated_line(&test, "tokei", c, true).unwrap(),
            "`tokei` (lib test) generated 2 warnings (2 duplicates)"
        );
        let c = Counts { warnings: 1, duplicates: 0, fixable: 3, errors: 0 };
        assert_eq!(
            generated_line(&test, "p", c, true).unwrap(),
            "`p` (lib test) generated 1 warning (run `cargo fix --lib -p p --tests` to apply 3 suggestions)"
        );
        let bin = unit("bin", "build");
        let c = Counts { warnings: 2, duplicates: 0, fixable: 1, errors: 1 };
        assert_eq!(generated_line(&bin, "sd", c, true).unwrap(), "`sd` (bin \"p\") generated 2 warnings");
        let c = Counts { warnings: 1, duplicates: 0, fixable: 1, errors: 0 };
        assert_eq!(
            generated_line(&bin, "sd", c, true).unwrap(),
            "`sd` (bin \"p\") generated 1 warning (run `cargo fix --bin \"p\" -p sd` to apply 1 suggestion)"
        );
        assert_eq!(
            could_not_compile(&lib, "tokei", Counts { warnings: 2, duplicates: 0, fixable: 0, errors: 1 }),
            "could not compile `tokei` (lib) due to 1 previous error; 2 warnings emitted"
        );
        assert_eq!(
            could_not_compile(&bin, "sd", Counts { warnings: 0, duplicates: 0, fixable: 0, errors: 3 }),
            "could not compile `sd` (bin \"p\") due to 3 previous errors"
        );
        assert_eq!(generated_line(&bin, "sd", Counts::default(), true), None);
    }
}
