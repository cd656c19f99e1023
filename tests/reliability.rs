//! Bad input and faults: a clear error naming the culprit, and nothing half-written.

mod support;

use std::os::unix::process::CommandExt;
use std::process::Command;

use support::Fixture;

/// The store has no valid paths (nothing was written to it).
fn store_is_empty(fx: &Fixture) -> bool {
    let dir = fx.store.store_dir_path();
    std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).all(|e| e.file_name() == ".links")).unwrap_or(true)
}

fn unit_graph(fx: &Fixture) -> serde_json::Value {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--unit-graph", "-Z", "unstable-options", "--manifest-path"])
        .arg(fx.manifest())
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn malformed_unit_graphs_are_rejected_and_nothing_is_written() {
    let fx = Fixture::new("basic");
    let good = unit_graph(&fx);
    let text = serde_json::to_string(&good).unwrap();
    let mut wrong_version = good.clone();
    wrong_version["version"] = 2.into();
    let mut out_of_range = good.clone();
    out_of_range["units"][0]["dependencies"] = serde_json::json!([{"index": 999, "extern_crate_name": "x"}]);
    let mut cycle = good.clone();
    let n = cycle["units"].as_array().unwrap().len();
    // Find a unit with a dependency and make that dependency depend back on it.
    let (a, b) = (0..n)
        .find_map(|i| cycle["units"][i]["dependencies"].get(0).map(|d| (i, d["index"].as_u64().unwrap() as usize)))
        .expect("some unit has a dependency");
    cycle["units"][b]["dependencies"] = serde_json::json!([{"index": a, "extern_crate_name": "back"}]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("garbage", "this is not json".into(), "line 1"),
        ("truncated", text[..text.len() / 2].to_owned(), "truncated"),
        ("version", wrong_version.to_string(), "version 2"),
        ("out-of-range", out_of_range.to_string(), "999"),
        ("cycle", cycle.to_string(), "cycle"),
    ];
    for (name, json, expected) in cases {
        let file = fx.path(&format!("{name}.json"));
        std::fs::write(&file, json).unwrap();
        let run = fx.cargo_nix("build", &["--unit-graph", file.to_str().unwrap()]);
        assert!(!run.success(), "{name}: accepted");
        assert!(
            run.stderr.contains(&format!("{}", file.display())),
            "{name}: the error names the file:\n{}",
            run.stderr
        );
        assert!(run.stderr.to_lowercase().contains(expected), "{name}: expected {expected:?} in:\n{}", run.stderr);
        assert!(store_is_empty(&fx), "{name}: something was written to the store");
        assert!(!fx.nix_target().exists(), "{name}: target/ was created");
    }
}

#[test]
fn bad_store_uris_name_the_culprit() {
    let fx = Fixture::new("basic");
    let run_with = |store: &str| {
        let out = fx.cargo_nix_build_cmd(store).output().unwrap();
        assert!(!out.status.success(), "{store}: accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run_with("nosuchscheme://nowhere");
    assert!(e.contains("nosuchscheme://nowhere"), "{e}");
    let socket = fx.path("no-daemon.sock");
    let e = run_with(&format!("unix://{}", socket.display()));
    assert!(e.contains(&socket.display().to_string()), "{e}");
    assert!(!fx.nix_target().exists());
}

#[test]
fn a_vanished_package_is_named() {
    let fx = Fixture::new("basic");
    let graph = fx.path("graph.json");
    std::fs::write(&graph, serde_json::to_string(&unit_graph(&fx)).unwrap()).unwrap();
    std::fs::remove_dir_all(fx.path("gen")).unwrap();
    let run = fx.cargo_nix("build", &["--unit-graph", graph.to_str().unwrap()]);
    assert!(!run.success());
    assert!(run.stderr.contains("gen"), "{}", run.stderr);
    assert!(!fx.nix_target().exists());
}

/// A workspace of `n` independent library crates and one binary that uses them all; crate
/// `broken` (if given) does not compile.
fn wide_workspace(dir: &std::path::Path, n: usize, broken: Option<usize>) {
    let mut members = Vec::new();
    let mut deps = String::new();
    let mut uses = String::new();
    for i in 0..n {
        let name = format!("leaf{i}");
        std::fs::create_dir_all(dir.join(&name).join("src")).unwrap();
        std::fs::write(
            dir.join(&name).join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n"),
        )
        .unwrap();
        let body = if Some(i) == broken {
            "pub fn v() -> u32 { \"broken\" }\n".to_owned()
        } else {
            format!("pub fn v() -> u32 {{ {i} }}\n")
        };
        std::fs::write(dir.join(&name).join("src/lib.rs"), body).unwrap();
        members.push(format!("\"{name}\""));
        deps.push_str(&format!("{name} = {{ path = \"../{name}\" }}\n"));
        uses.push_str(&format!(" + {name}::v()"));
    }
    std::fs::create_dir_all(dir.join("top/src")).unwrap();
    std::fs::write(
        dir.join("top/Cargo.toml"),
        format!("[package]\nname = \"top\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\n{deps}"),
    )
    .unwrap();
    std::fs::write(dir.join("top/src/main.rs"), format!("fn main() {{ println!(\"{{}}\", 0{uses}); }}\n")).unwrap();
    members.push("\"top\"".into());
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("[workspace]\nmembers = [{}]\nresolver = \"2\"\n", members.join(", ")),
    )
    .unwrap();
}

#[test]
fn a_failure_in_a_50_unit_graph_fail_fast_and_keep_going() {
    let fx = Fixture::new("basic");
    let ws = fx.path("wide");
    wide_workspace(&ws, 49, Some(20));
    let manifest = ws.join("Cargo.toml");
    let run = |extra: &[&str], target: &str| {
        let t = fx.path(target);
        let out = Command::new(support::bin_dir().join("cargo-nix"))
            .args(["nix", "build", "-j", "2", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&t)
            .args(["--store", fx.store.uri()])
            .args(extra)
            .env("NIX_CONFIG", nix_rs::testing::test_nix_config())
            .output()
            .unwrap();
        (String::from_utf8_lossy(&out.stderr).into_owned(), out.status.success(), t)
    };
    let (fail_fast, ok, t1) = run(&["-v"], "t-fail-fast");
    assert!(!ok);
    assert!(fail_fast.contains("error[E0308]: mismatched types"), "{fail_fast}");
    assert!(fail_fast.contains("leaf20"), "{fail_fast}");
    assert!(!t1.join("debug/top").exists(), "no binary from a failed build");

    let (keep_going, ok, t2) = run(&["--keep-going", "-v"], "t-keep-going");
    assert!(!ok);
    // Every leaf but the broken one is built (some may be reused from the fail-fast run).
    let summary = keep_going.lines().find(|l| l.contains("Failed ")).unwrap_or_default().to_owned();
    assert!(summary.contains("1 unit(s) failed, 1 not built"), "{summary}\n{keep_going}");
    assert!(!t2.join("debug/top").exists());
    // Fail-fast stopped early: it did not build everything keep-going did.
    let built = |s: &str| -> usize {
        let l = s.lines().find(|l| l.contains("Failed ")).unwrap_or_default();
        l.rsplit_once('(').and_then(|(_, c)| c.split_whitespace().next()?.parse().ok()).unwrap_or(usize::MAX)
    };
    assert!(built(&fail_fast) < 48, "fail-fast kept scheduling:\n{fail_fast}");
}

#[test]
fn two_backends_share_one_store() {
    let a = Fixture::new("basic");
    let b = Fixture::new("basic");
    // Both build on a's store at once.
    let store = a.store.uri().to_owned();
    let spawn = |fx: &Fixture| fx.cargo_nix_build_cmd(&store).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let (pa, pb) = (spawn(&a), spawn(&b));
    let (oa, ob) = (pa.wait_with_output().unwrap(), pb.wait_with_output().unwrap());
    assert!(oa.status.success(), "{}", String::from_utf8_lossy(&oa.stderr));
    assert!(ob.status.success(), "{}", String::from_utf8_lossy(&ob.stderr));
    assert_eq!(a.run(&a.nix_target().join("debug/app")), b.run(&b.nix_target().join("debug/app")));
    // Same sources, same derivations: both were made from the same store file (the marker
    // beside an installed executable names it).
    assert_eq!(
        std::fs::read_link(a.nix_target().join("debug/.nix-links/app")).unwrap(),
        std::fs::read_link(b.nix_target().join("debug/.nix-links/app")).unwrap()
    );
    let verify = nix_rs::testing::nix_cli("nix-store", &store).args(["--verify", "--check-contents"]).output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stderr));
}

/// `cargo nix build` of the fixture on its store, with SIGINT's default action: a test run in
/// the background (a non-interactive `cmd &`) inherits SIGINT ignored; the child gets it back,
/// as under an interactive terminal.
fn interruptible_build_cmd(fx: &Fixture) -> Command {
    let mut cmd = fx.cargo_nix_build_cmd(fx.store.uri());
    // SAFETY: signal() is async-signal-safe, and the closure touches nothing else between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd
}

#[test]
fn killed_mid_build_then_run_again_completes() {
    for signal in ["INT", "KILL"] {
        // A cold build of the registry fixture (24 units) takes well over the delay below.
        let fx = Fixture::new("registry");
        let mut cmd = interruptible_build_cmd(&fx);
        cmd.args(["-j", "2"]).stderr(std::process::Stdio::null());
        let child = cmd.spawn().unwrap();
        // Kill once at least one unit has finished: with -j 2, a third unit output in the
        // store means one of them is complete.
        let unit_outputs = || {
            std::fs::read_dir(fx.store.store_dir_path())
                .map(|d| {
                    d.filter_map(Result::ok)
                        .filter(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.contains("-rust-") && !n.ends_with(".drv") && !n.ends_with(".lock")
                        })
                        .count()
                })
                .unwrap_or(0)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        while unit_outputs() < 3 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Killing a build that already ended would prove nothing (and the pid must be ours:
        // the child is not reaped until wait below, so it cannot have been reused).
        let mut child = child;
        assert!(unit_outputs() >= 3, "SIG{signal}: no unit finished within 300 s");
        assert!(child.try_wait().unwrap().is_none(), "SIG{signal}: the build ended before it could be killed");
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "the build was not interrupted by SIG{signal}");
        assert!(!fx.nix_target().join("debug/registry-user").exists(), "no artifact from an interrupted build");

        let again = fx.cargo_nix("build", &[]);
        assert!(again.success(), "SIG{signal}: {}", again.stderr);
        assert!(again.reused > 0, "SIG{signal}: units finished before the kill are reused:\n{}", again.stderr);
        assert!(fx.run(&fx.nix_target().join("debug/registry-user")).contains("origin-ish"));
        let verify = nix_rs::testing::nix_cli("nix-store", fx.store.uri())
            .args(["--verify", "--check-contents"])
            .output()
            .unwrap();
        assert!(verify.status.success(), "SIG{signal}: {}", String::from_utf8_lossy(&verify.stderr));
    }
}

#[test]
fn a_read_only_store_is_an_error_naming_it() {
    let fx = Fixture::new("basic");
    let uri = format!("{}&read-only=true", fx.store.uri());
    let out = fx.cargo_nix_build_cmd(&uri).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "built into a read-only store:\n{err}");
    assert!(err.to_lowercase().contains("read-only"), "{err}");
    assert!(store_is_empty(&fx), "something was written to the read-only store");
    assert!(!fx.nix_target().exists());
}

/// Build-script output that is huge, not UTF-8, or has unknown old-style keys is handled as
/// cargo handles it: non-UTF-8 lines skipped, unknown `cargo:` keys are metadata.
#[test]
fn odd_build_script_output_is_handled_as_cargo_does() {
    let fx = Fixture::new("basic");
    std::fs::write(
        fx.path("gen/build.rs"),
        r#"use std::io::Write;
fn main() {
    let mut out = std::io::stdout().lock();
    let line = "x".repeat(1023) + "\n";
    for _ in 0..20 * 1024 {
        out.write_all(line.as_bytes()).unwrap(); // 20 MB of chatter
    }
    out.write_all(b"cargo::rustc-cfg=\xff\xfe_not_utf8\n").unwrap();
    out.write_all(b"cargo:some-unknown-key=becomes-metadata\n").unwrap();
    out.write_all(b"cargo::rustc-cfg=generated_cfg\ncargo::rustc-check-cfg=cfg(generated_cfg)\n").unwrap();
    out.write_all(b"cargo:rustc-env=GEN_ENV=from-build-script\n").unwrap();
    let dir = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{dir}/generated.rs"), "pub const GENERATED: &str = \"big\";\n").unwrap();
}
"#,
    )
    .unwrap();
    let (expected, got, run) = fx.both_outputs("app", &[]);
    assert_eq!(got, expected);
    assert!(got.contains("generated: big / from-build-script / cfg true"), "{got}\n{}", run.stderr);
}

#[test]
fn garbage_collection_during_a_build_loses_nothing() {
    let fx = Fixture::new("registry");
    let mut child =
        fx.cargo_nix_build_cmd(fx.store.uri()).args(["-j", "2"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut collections = 0;
    while child.try_wait().unwrap().is_none() && collections < 100 {
        let gc = nix_rs::testing::nix_cli("nix-store", fx.store.uri()).arg("--gc").output().unwrap();
        assert!(gc.status.success(), "{}", String::from_utf8_lossy(&gc.stderr));
        collections += 1;
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the build failed under GC:\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(collections > 1, "the build finished before any collection ran");
    let gc = nix_rs::testing::nix_cli("nix-store", fx.store.uri()).arg("--gc").output().unwrap();
    assert!(gc.status.success());
    let bin = fx.nix_target().join("debug/registry-user");
    assert!(
        bin.exists(),
        "{} is missing or dangling ({:?}) after the final GC; the build said:\n{}",
        bin.display(),
        std::fs::read_link(&bin),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fx.run(&bin).contains("origin-ish"), "artifacts survive GC");
}

/// Whether process `pid` is gone (or a zombie that nobody has reaped yet).
fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

/// Waits until `p` holds a line (written with a rename, so complete) and returns it.
fn wait_for_line(p: &std::path::Path, timeout: std::time::Duration) -> Option<String> {
    let deadline = std::time::Instant::now() + timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(s) = std::fs::read_to_string(p) {
            return Some(s);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

/// A build script that writes its pid to `<dir>/pid` and then sleeps for 60 s, unless
/// `<dir>/no-sleep` exists (a file, not an environment variable: builders see only the
/// derivation's environment, and the switch must not change the derivation).
fn sleepy_build_script(dir: &std::path::Path) -> String {
    format!(
        r#"fn main() {{
    let dir = std::path::Path::new({dir:?});
    std::fs::write(dir.join("pid.tmp"), format!("{{}}\n", std::process::id())).unwrap();
    std::fs::rename(dir.join("pid.tmp"), dir.join("pid")).unwrap();
    if !dir.join("no-sleep").exists() {{
        std::thread::sleep(std::time::Duration::from_secs(60));
    }}
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{{out}}/generated.rs"), "pub const GENERATED: &str = \"slept\";\n").unwrap();
    println!("cargo::rustc-cfg=generated_cfg");
    println!("cargo::rustc-check-cfg=cfg(generated_cfg)");
    println!("cargo:rustc-env=GEN_ENV=from-build-script");
}}
"#
    )
}

#[test]
fn ctrl_c_stops_the_builders_and_exits_130() {
    let fx = Fixture::new("basic");
    let marks = fx.path("marks");
    std::fs::create_dir_all(&marks).unwrap();
    std::fs::write(fx.path("gen/build.rs"), sleepy_build_script(&marks)).unwrap();
    for (signal, name, code) in [(libc::SIGINT, "SIGINT", 130), (libc::SIGTERM, "SIGTERM", 143)] {
        let _ = std::fs::remove_file(marks.join("pid"));
        let mut cmd = interruptible_build_cmd(&fx);
        cmd.args(["-j", "2"]).stderr(std::process::Stdio::piped());
        let child = cmd.spawn().unwrap();
        let pid = wait_for_line(&marks.join("pid"), std::time::Duration::from_secs(300))
            .expect("the build script did not start")
            .trim()
            .parse::<i32>()
            .unwrap();
        assert!(!process_gone(pid), "{name}: the build script is running");
        // SAFETY: kill() with a pid we spawned and have not waited for (so it cannot have been
        // reused); the build script sleeps 60 s, so cargo-nix is still running.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = rx
            // The build script sleeps 60 s: exiting well before that is the signal's doing.
            .recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name}: cargo-nix did not exit within 30 s"))
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(&format!("interrupted by {name}")), "{name}: no message:\n{stderr}");
        assert!(stderr.contains("nothing was installed"), "{name}: {stderr}");
        // Reported as an interrupt, not as a failure of the unit with its log.
        assert!(
            !stderr.contains("build failed") && !stderr.contains("error[") && !stderr.contains("panicked"),
            "{stderr}"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !process_gone(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(process_gone(pid), "{name}: the build script (pid {pid}) survived cargo-nix");
        assert!(!fx.nix_target().join("debug/app").exists(), "{name}: an artifact of an interrupted build");
        let verify = nix_rs::testing::nix_cli("nix-store", fx.store.uri())
            .args(["--verify", "--check-contents"])
            .output()
            .unwrap();
        assert!(verify.status.success(), "{name}: {}", String::from_utf8_lossy(&verify.stderr));
    }
    // Nothing of the interrupted runs is left in the way: without the sleep, the build completes.
    std::fs::write(marks.join("no-sleep"), "").unwrap();
    std::fs::remove_file(marks.join("pid")).unwrap();
    let again = fx.cargo_nix("build", &[]);
    assert!(again.success(), "{}", again.stderr);
    assert!(marks.join("pid").exists(), "the interrupted build script ran again");
    assert!(fx.run(&fx.nix_target().join("debug/app")).contains("slept"));
}

/// Per unit of package `pkg`, its outcome word from a `cargo nix build -v` run ("Unit <label>
/// [<target>] <outcome>: <drv> -> <out>"), keyed by output path.
fn unit_outcomes(stderr: &str, pkg: &str) -> std::collections::BTreeMap<String, String> {
    stderr
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("Unit "))
        .filter(|l| l.starts_with(&format!("{pkg} v")))
        .filter_map(|l| {
            let (head, paths) = l.rsplit_once(": ")?;
            let outcome = head.rsplit_once(' ')?.1.to_owned();
            Some((paths.rsplit_once(" -> ")?.1.to_owned(), outcome))
        })
        .collect()
}

#[test]
fn two_backends_build_each_shared_unit_once() {
    let fx = Fixture::new("basic");
    let root = fx.path("overlap");
    let counter = root.join("build-script-runs");
    // `shared` (with a build script that counts its runs in a file outside the store and takes
    // a while, so that both backends reach it together) and two workspaces using it.
    std::fs::create_dir_all(root.join("shared/src")).unwrap();
    std::fs::write(
        root.join("shared/Cargo.toml"),
        "[package]\nname = \"shared\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n",
    )
    .unwrap();
    std::fs::write(
        root.join("shared/build.rs"),
        format!(
            r#"use std::io::Write;
fn main() {{
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open({counter:?}).unwrap();
    writeln!(f, "run by {{}}", std::process::id()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    println!("cargo::rustc-env=SHARED=yes");
}}
"#
        ),
    )
    .unwrap();
    std::fs::write(root.join("shared/src/lib.rs"), "pub const SHARED: &str = env!(\"SHARED\");\n").unwrap();
    for ws in ["wa", "wb"] {
        let member = format!("{ws}-app");
        std::fs::create_dir_all(root.join(ws).join(&member).join("src")).unwrap();
        std::fs::write(root.join(ws).join("Cargo.toml"), format!("[workspace]\nmembers = [\"{member}\"]\n")).unwrap();
        std::fs::write(
            root.join(ws).join(&member).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{member}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
                 [dependencies]\nshared = {{ path = \"../../shared\" }}\n"
            ),
        )
        .unwrap();
        std::fs::write(
            root.join(ws).join(&member).join("src/main.rs"),
            format!("fn main() {{ println!(\"{ws} {{}}\", shared::SHARED); }}\n"),
        )
        .unwrap();
    }
    let spawn = |ws: &str| {
        Command::new(support::bin_dir().join("cargo-nix"))
            .args(["nix", "build", "-v", "--manifest-path"])
            .arg(root.join(ws).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(root.join(ws).join("target-nix"))
            .args(["--store", fx.store.uri()])
            .env("NIX_CONFIG", nix_rs::testing::test_nix_config())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("wa"), spawn("wb"));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ea, eb) = (String::from_utf8_lossy(&a.stderr), String::from_utf8_lossy(&b.stderr));
    assert!(a.status.success(), "{ea}");
    assert!(b.status.success(), "{eb}");
    assert_eq!(fx.run(&root.join("wa/target-nix/debug/wa-app")), "wa yes\n");
    assert_eq!(fx.run(&root.join("wb/target-nix/debug/wb-app")), "wb yes\n");

    // The build script ran once, for both.
    let runs = std::fs::read_to_string(&counter).unwrap();
    assert_eq!(runs.lines().count(), 1, "the shared build script ran more than once:\n{runs}\n{ea}\n{eb}");
    // Both planned the same shared units (same outputs), and each was built by exactly one of
    // them and reused by the other.
    let (oa, ob) = (unit_outcomes(&ea, "shared"), unit_outcomes(&eb, "shared"));
    assert_eq!(oa.len(), 3, "build script, its run, the library:\n{ea}");
    assert_eq!(oa.keys().collect::<Vec<_>>(), ob.keys().collect::<Vec<_>>(), "{ea}\n{eb}");
    for (out, x) in &oa {
        let y = &ob[out];
        let mut pair = [x.as_str(), y.as_str()];
        pair.sort();
        assert_eq!(pair, ["built", "reused"], "{out}: {x} and {y}\n{ea}\n{eb}");
    }
}

#[test]
fn a_path_dependency_removed_mid_build_builds_from_the_store_then_is_named() {
    use std::io::BufRead;
    let fx = Fixture::new("basic");
    let mut child =
        fx.cargo_nix_build_cmd(fx.store.uri()).args(["-j", "1"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    // Planning (which adds every package's sources to the store) is over once a unit starts.
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.trim_start().starts_with("Compiling") {
            break;
        }
    }
    assert!(seen.contains("Compiling"), "no unit started:\n{seen}");
    std::fs::remove_dir_all(fx.path("gen")).unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "the running build needed the removed sources:\n{seen}{}", rest.join("\n"));
    assert!(fx.run(&fx.nix_target().join("debug/app")).contains("generated:"));

    let again = fx.cargo_nix("build", &[]);
    assert!(!again.success());
    assert!(again.stderr.contains(&fx.path("gen").display().to_string()), "{}", again.stderr);
}
