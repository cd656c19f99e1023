//! `cargo nix build --message-format json` against `cargo build --message-format json` on the
//! `basic` fixture: the same messages, a failing unit's error as a compiler-message.

mod support;

use std::collections::BTreeSet;

use support::Fixture;

/// Every stdout line of a `--message-format` run, parsed (each must be one JSON object).
fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}")))
        .collect()
}

fn keys(v: &serde_json::Value) -> BTreeSet<String> {
    v.as_object().unwrap_or_else(|| panic!("not an object: {v}")).keys().cloned().collect()
}

fn with_reason<'a>(msgs: &'a [serde_json::Value], reason: &str) -> Vec<&'a serde_json::Value> {
    msgs.iter().filter(|m| m["reason"] == reason).collect()
}

/// What identifies an artifact or build-script message: (reason, package id, target name, kinds).
fn identity(m: &serde_json::Value) -> (String, String, String, String) {
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("").to_owned();
    (s(&m["reason"]), s(&m["package_id"]), s(&m["target"]["name"]), m["target"]["kind"].to_string())
}

const WARNING: &str = "\n/// Warns: unused variable.\npub fn unused_warning() {\n    let unused = 1;\n}\n";

/// `--message-format json` says what `cargo build --message-format json` says: the same
/// artifacts and build-script runs with the same shapes, a member's warning as a
/// compiler-message, and `build-finished`; a second run replays it all as fresh.
#[test]
fn json_messages_match_cargo() {
    let fx = Fixture::new("basic");
    fx.append("greeter/src/lib.rs", WARNING);
    let run = fx.cargo_nix("build", &["--message-format", "json"]);
    assert!(run.success(), "{}", run.stderr);
    let nix = json_lines(&run.output.stdout);
    let cargo = json_lines(&fx.cargo("build", &["--message-format", "json"]).stdout);

    let relevant = |msgs: &[serde_json::Value]| -> BTreeSet<_> {
        msgs.iter()
            .filter(|m| m["reason"] == "compiler-artifact" || m["reason"] == "build-script-executed")
            .map(identity)
            .collect()
    };
    assert_eq!(relevant(&nix), relevant(&cargo), "artifacts and build-script runs differ from cargo's");
    assert!(relevant(&nix).len() >= 9, "{nix:?}");

    // Same fields, and the same target, profile and features per unit.
    for reason in ["compiler-artifact", "build-script-executed", "compiler-message", "build-finished"] {
        let (n, c) = (with_reason(&nix, reason), with_reason(&cargo, reason));
        assert!(!n.is_empty() && !c.is_empty(), "no {reason} message");
        for m in n.iter().chain(&c) {
            assert_eq!(keys(m), keys(c[0]), "fields of {reason}: {m}");
        }
    }
    for m in with_reason(&nix, "compiler-artifact") {
        let c = with_reason(&cargo, "compiler-artifact").into_iter().find(|c| identity(c) == identity(m)).unwrap();
        for field in ["package_id", "manifest_path", "target", "profile", "features", "fresh"] {
            assert_eq!(m[field], c[field], "{field} of {}", identity(m).2);
        }
        assert_eq!(m["executable"].is_null(), c["executable"].is_null(), "{m}");
        let files = m["filenames"].as_array().unwrap();
        assert!(!files.is_empty(), "{m}");
        for f in files {
            let f = std::path::Path::new(f.as_str().unwrap());
            assert!(f.is_absolute() && f.exists(), "{} does not exist", f.display());
        }
    }
    let app = with_reason(&nix, "compiler-artifact").into_iter().find(|m| m["target"]["name"] == "app").unwrap();
    assert_eq!(app["executable"], app["filenames"][0]);
    assert_eq!(
        fx.run(std::path::Path::new(app["executable"].as_str().unwrap())),
        fx.run(&fx.nix_target().join("debug/app"))
    );
    for m in with_reason(&nix, "build-script-executed") {
        let c = with_reason(&cargo, "build-script-executed")
            .into_iter()
            .find(|c| c["package_id"] == m["package_id"])
            .unwrap();
        for field in ["linked_libs", "linked_paths", "cfgs", "env"] {
            assert_eq!(m[field], c[field], "{field} of {}", m["package_id"]);
        }
        assert!(std::path::Path::new(m["out_dir"].as_str().unwrap()).is_dir(), "{m}");
    }

    // The member's warning, as cargo reports it (paths relative to the workspace root, no ANSI).
    let warning = |msgs: &[serde_json::Value]| -> serde_json::Value {
        let found: Vec<_> =
            with_reason(msgs, "compiler-message").into_iter().filter(|m| m["target"]["name"] == "greeter").collect();
        assert_eq!(found.len(), 1, "one compiler-message (rustc's summary is dropped): {found:?}");
        found[0].clone()
    };
    let (w, cw) = (warning(&nix), warning(&cargo));
    for field in ["package_id", "manifest_path", "target"] {
        assert_eq!(w[field], cw[field]);
    }
    for field in ["level", "message", "code", "rendered"] {
        assert_eq!(w["message"][field], cw["message"][field], "message.{field}");
    }
    assert_eq!(w["message"]["spans"][0]["file_name"], "greeter/src/lib.rs");
    assert!(!w["message"]["rendered"].as_str().unwrap().contains('\u{1b}'), "plain json has no ANSI colours");

    assert_eq!(nix.last().unwrap(), &serde_json::json!({"reason": "build-finished", "success": true}));
    assert!(!run.stderr.contains("unused variable"), "in JSON mode diagnostics go to stdout only:\n{}", run.stderr);
    assert!(run.stderr.contains("Finished"), "{}", run.stderr);

    // Reused units are fresh, and their messages are replayed.
    let again = fx.cargo_nix("build", &["--message-format", "json-diagnostic-rendered-ansi"]);
    assert_eq!(again.built, 0, "{}", again.stderr);
    let replay = json_lines(&again.output.stdout);
    assert_eq!(relevant(&replay), relevant(&nix));
    assert!(with_reason(&replay, "compiler-artifact").iter().all(|m| m["fresh"] == true));
    assert!(warning(&replay)["message"]["rendered"].as_str().unwrap().contains('\u{1b}'), "ANSI colours kept");
}

/// A failing unit in the JSON formats: its error as a compiler-message (its build log's
/// diagnostics; a failed unit has no output), `build-finished` false, and no JSON or
/// prefixed log lines in the text for humans.
#[test]
fn json_messages_for_a_failing_unit() {
    let fx = Fixture::new("basic");
    fx.append("greeter/src/lib.rs", "\npub fn broken() -> u32 { \"not a number\" }\n");
    let run = fx.cargo_nix("build", &["--message-format", "json"]);
    assert!(!run.success());
    let msgs = json_lines(&run.output.stdout);
    let errors: Vec<_> = with_reason(&msgs, "compiler-message")
        .into_iter()
        .filter(|m| m["message"]["level"] == "error" && m["target"]["name"] == "greeter")
        .collect();
    assert_eq!(errors.len(), 1, "{msgs:?}");
    assert_eq!(errors[0]["message"]["code"]["code"], "E0308");
    assert_eq!(errors[0]["message"]["spans"][0]["file_name"], "greeter/src/lib.rs");
    assert!(errors[0]["message"]["rendered"].as_str().unwrap().starts_with("error[E0308]: mismatched types"));
    assert_eq!(msgs.last().unwrap(), &serde_json::json!({"reason": "build-finished", "success": false}));
    // cargo's line, counted from the diagnostics (not the builder's "could not compile" line).
    assert!(
        run.stderr.contains("error: could not compile `greeter` (lib) due to 1 previous error\n"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("exit status"), "{}", run.stderr);
    assert!(!run.stderr.contains("mismatched types"), "the diagnostic is JSON only:\n{}", run.stderr);
    assert!(!run.stderr.contains(cargo_backend::run_unit::DIAGNOSTIC_LOG_PREFIX.trim()), "{}", run.stderr);

    // json-render-diagnostics: rendered on stderr, no compiler-message.
    let run = fx.cargo_nix("build", &["--message-format", "json-render-diagnostics"]);
    assert!(!run.success());
    let msgs = json_lines(&run.output.stdout);
    assert!(with_reason(&msgs, "compiler-message").is_empty(), "{msgs:?}");
    assert!(run.stderr.contains("error[E0308]: mismatched types"), "{}", run.stderr);
    assert_eq!(msgs.last().unwrap()["success"], false);

    // Human output stays free of the log's JSON lines.
    let run = fx.cargo_nix("build", &[]);
    assert!(run.stderr.contains("--> greeter/src/lib.rs"), "{}", run.stderr);
    assert!(!run.stderr.contains("$message_type") && run.output.stdout.is_empty(), "{}", run.stderr);
}
