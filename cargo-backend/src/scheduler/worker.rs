//! What a worker does with one derivation: wait for another process building the same unit,
//! reuse or substitute its output when it can, realise it otherwise, and send back one
//! [`Message`]. Workers touch no shared state.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use nix_rs::{Store, StorePath};

use super::{Failure, Stop};
use crate::unit_lock::{NotLocked, UnitLock};

pub(super) struct Job {
    pub(super) index: usize,
    pub(super) drv: StorePath,
    pub(super) out: StorePath,
}

pub(super) enum Message {
    Done {
        index: usize,
        result: Result<(), Box<nix_rs::Error>>,
        elapsed: Duration,
    },
    Substituted {
        index: usize,
    },
    /// Its output became valid (another process built it) before this run started it.
    Reused {
        index: usize,
    },
    /// A worker starts building it (after the checks above).
    Started {
        index: usize,
    },
    PushFailed {
        index: usize,
        error: String,
    },
    Panicked {
        index: usize,
        message: String,
    },
}

/// Sends `Panicked` if the worker unwinds while holding a job.
struct PanicGuard<'a> {
    tx: &'a Sender<Message>,
    index: Option<usize>,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if let (Some(index), true) = (self.index, std::thread::panicking()) {
            let _ = self.tx.send(Message::Panicked { index, message: "worker panicked".into() });
        }
    }
}

pub(super) fn worker(store: &Store, cache: Option<&Store>, stop: &Stop, jobs: Receiver<Job>, tx: Sender<Message>) {
    let stopped = || stop.is_requested() || nix_rs::is_interrupted();
    for job in jobs {
        let mut guard = PanicGuard { tx: &tx, index: Some(job.index) };
        let interrupted = |doing: &str| {
            let result = Err(Box::new(nix_rs::Error::Interrupted(format!("{doing} '{}'", job.drv))));
            Message::Done { index: job.index, result, elapsed: Duration::ZERO }
        };
        if stopped() {
            guard.index = None;
            let _ = tx.send(interrupted("about to realise"));
            continue;
        }
        // Another cargo nix on this store may be building the same unit: wait for it, then
        // reuse its output (see unit_lock).
        let _lock = match UnitLock::acquire(store, &job.out, stopped) {
            Ok(lock) => lock,
            Err(NotLocked::Stopped) => {
                guard.index = None;
                let _ = tx.send(interrupted("waiting for another process building"));
                continue;
            }
            Err(NotLocked::Failed(e)) => {
                guard.index = None;
                let _ = tx.send(Message::Done {
                    index: job.index,
                    result: Err(Box::new(nix_rs::Error::InvalidArgument {
                        what: "unit lock".into(),
                        message: e.to_string(),
                    })),
                    elapsed: Duration::ZERO,
                });
                continue;
            }
        };
        // A failing check (e.g. a dropped daemon connection) fails the unit: guessing "not
        // valid" would rebuild silently, guessing "valid" would install nothing.
        let failed =
            |e: nix_rs::Error| Message::Done { index: job.index, result: Err(Box::new(e)), elapsed: Duration::ZERO };
        match store.is_valid_path(&job.out) {
            Ok(false) => {}
            Ok(true) => {
                guard.index = None;
                let _ = tx.send(Message::Reused { index: job.index });
                continue;
            }
            Err(e) => {
                guard.index = None;
                let _ = tx.send(failed(e));
                continue;
            }
        }
        // Substitute from the binary cache when it has the output (with its closure).
        if let Some(c) = cache {
            let in_cache = match c.is_valid_path(&job.out) {
                Ok(v) => v,
                Err(e) => {
                    guard.index = None;
                    let _ = tx.send(failed(e));
                    continue;
                }
            };
            if in_cache && c.copy_closure_to(store, &job.out).is_ok() {
                guard.index = None;
                let _ = tx.send(Message::Substituted { index: job.index });
                continue;
            }
        }
        let _ = tx.send(Message::Started { index: job.index });
        let start = Instant::now();
        let result = store.realise(&job.drv).map(|_| ()).map_err(Box::new);
        if let (Ok(()), Some(c)) = (&result, cache) {
            if let Err(e) = store.copy_closure_to(c, &job.out) {
                let _ = tx.send(Message::PushFailed { index: job.index, error: e.to_string() });
            }
        }
        guard.index = None;
        let _ = tx.send(Message::Done { index: job.index, result, elapsed: start.elapsed() });
    }
}

/// What to show for a failed unit: its full build log (rustc's output as rustc printed it) when
/// the store keeps one here, else the error; with the diagnostics the log carries.
pub(super) fn failure(store: &Store, drv: &StorePath, error: &nix_rs::Error) -> Failure {
    match store.build_log(drv) {
        Ok(Some(log)) if !log.trim().is_empty() => {
            let (message, diagnostics) = cargo_nix_unit::run_unit::split_build_log(&log);
            Failure { message: with_cause(message, &diagnostics, &error.to_string()), diagnostics }
        }
        _ => Failure::message(error.to_string()),
    }
}

/// A failed build's log `message`, with Nix's `error` after it when neither the log nor its
/// `diagnostics` say what failed (the builder was killed, timed out, or its output could not be
/// registered: its log then holds warnings at most), so that a failure is never silent.
fn with_cause(mut message: String, diagnostics: &[serde_json::Value], error: &str) -> String {
    let diagnosed = diagnostics.iter().any(|d| d.get("level").and_then(|l| l.as_str()) == Some("error"));
    let said = message.lines().any(|l| l.trim_start().starts_with("error"));
    if !diagnosed && !said {
        if !message.is_empty() && !message.ends_with('\n') {
            message.push('\n');
        }
        message.push_str(&format!("error: {error}\n"));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::with_cause;

    #[test]
    fn a_failure_says_why_when_its_log_does_not() {
        let warning = serde_json::json!({"level": "warning"});
        let error = serde_json::json!({"level": "error"});
        // Only warnings in the log (the builder killed after them): Nix's error follows.
        assert_eq!(
            with_cause("warning: unused\n".into(), std::slice::from_ref(&warning), "builder timed out"),
            "warning: unused\nerror: builder timed out\n"
        );
        assert_eq!(with_cause(String::new(), &[], "killed"), "error: killed\n");
        // The log says it already: rustc's error, or the builder's closing line.
        assert_eq!(with_cause(String::new(), &[error], "exit 1"), "");
        let own = "error: could not compile x (exit status: 1)\n";
        assert_eq!(with_cause(own.into(), &[warning], "exit 1"), own);
    }
}
