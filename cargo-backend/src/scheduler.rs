//! Realising the planned units in parallel: one coordinator, N workers.
//!
//! The coordinator owns all state: the [`DependencyQueue`], the outcome of every unit, and the
//! reporter. Workers only receive a derivation to realise and send back one `Message`; they
//! never touch shared state. A unit whose output is already valid in the store is *reused*
//! without a worker. After the first failure (fail-fast, the default) nothing new starts, the
//! units in flight finish, and the loop returns; with keep-going, every unit that does not
//! depend on a failure is still built. A worker that panics still reports, through a drop guard.
//!
//! Stopping (Ctrl-C): once [`Stop::request`] has been called, nothing new starts, and the
//! units in flight end as soon as their realise returns; after [`nix_rs::interrupt`] that is at
//! once, with their builders killed, and they are reported as [`Outcome::Interrupted`], not as
//! failures.
//!
//! With a jobserver ([`SchedulerOptions::jobserver`]), a unit starts without a token only when
//! none is running; each further unit takes one, as cargo's job queue does (see
//! [`crate::jobserver`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use nix_rs::{Store, StorePath};

use crate::Error;
use crate::jobserver::Offer;
use crate::queue::DependencyQueue;
use crate::unit_lock::{NotLocked, UnitLock};

/// One derivation to realise, with the indices of the nodes it depends on.
#[derive(Debug, Clone)]
pub struct Node {
    /// The derivation.
    pub drv: StorePath,
    /// Its output (if valid already, the node is reused without building).
    pub out: StorePath,
    /// Indices of the nodes whose outputs it needs.
    pub deps: Vec<usize>,
    /// Built only if a node that depends on it is built (e.g. a pipelined library's metadata,
    /// which nothing needs once its dependents are in the store); otherwise
    /// [`Outcome::NotNeeded`].
    pub optional: bool,
}

/// What happened to a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Built by this run.
    Built(Duration),
    /// Its output was already in the store.
    Reused,
    /// Its output was copied from the binary cache instead of being built.
    Substituted,
    /// It failed: what the user should see, and rustc's diagnostics (from the build log).
    Failed(Failure),
    /// Not built because a dependency failed (keep-going), or because the run stopped
    /// (fail-fast, or a [`Stop`] request).
    Skipped,
    /// An optional node that nothing being built needs, left alone.
    NotNeeded,
    /// It was building when the run was stopped ([`Stop`] and [`nix_rs::interrupt`]); its
    /// builder was stopped and nothing was registered for it. Not a failure of the unit.
    Interrupted,
}

/// Why a unit failed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Failure {
    /// The text for the user: the unit's build log (rustc's rendered diagnostics as rustc
    /// printed them, then the builder's error) when the store keeps one, else Nix's error.
    pub message: String,
    /// rustc's JSON diagnostics of the failed compilation, in order, as rustc emitted them
    /// (for `--message-format json`); their rendered texts are part of `message`.
    pub diagnostics: Vec<serde_json::Value>,
}

impl Failure {
    /// A failure with a message only.
    pub fn message(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), diagnostics: Vec::new() }
    }

    /// [`Failure::message`] without the rendered texts of [`Failure::diagnostics`]: what is
    /// left when the diagnostics are shown some other way (as JSON, or in short form).
    pub fn message_without_diagnostics(&self) -> String {
        let mut text = self.message.clone();
        for d in &self.diagnostics {
            if let Some(r) = d.get("rendered").and_then(|r| r.as_str()).filter(|r| !r.is_empty()) {
                if let Some(at) = text.find(r) {
                    text.replace_range(at..at + r.len(), "");
                }
            }
        }
        text
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Outcome {
    /// Whether the unit's output is in the store now (built, reused or substituted).
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Built(_) | Outcome::Reused | Outcome::Substituted)
    }
}

/// Progress events, for a front end (e.g. cargo's progress bar and messages). Every method
/// has a default that does nothing; all are called from the thread running the build.
pub trait Reporter: Send {
    /// The units are planned, before any is realised: every unit's derivation, output path and
    /// artifacts, by unit-graph index. Called once by [`crate::build`] (not by [`realise`]).
    fn planned(&mut self, _plan: &crate::plan::Plan) {}
    /// Whether the units cargo compiles incrementally keep rustc's state in this build
    /// ([`crate::incremental::available`]). Called once by [`crate::build`], before
    /// [`Reporter::planned`].
    fn incremental_state(&mut self, _kept: bool) {}
    /// [`realise`] starts on `units` units in all: each will be reported once by
    /// [`Reporter::finished`] (reused and skipped ones too), so `units` is the progress total.
    fn total(&mut self, _units: usize) {}
    /// A unit starts building.
    fn started(&mut self, _index: usize) {}
    /// A unit finished (built, reused, failed or skipped).
    fn finished(&mut self, _index: usize, _outcome: &Outcome) {}
    /// Fail-fast stopped scheduling; `in_flight` units are still running.
    fn stopping(&mut self, _in_flight: usize) {}
    /// A built unit could not be pushed to the binary cache (the build itself succeeded).
    fn push_failed(&mut self, _index: usize, _error: &str) {}
    /// A [`Stop`] request was seen: nothing new starts; `in_flight` units are being stopped.
    fn interrupted(&mut self, _in_flight: usize) {}
}

/// A request to stop a running [`realise`], shared with whoever asks for it (e.g. a signal
/// handling thread). Cloning shares the request.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks the run to stop: no unit starts after this. To also stop the builds in flight,
    /// call [`nix_rs::interrupt`] as well.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// A reporter that says nothing.
#[derive(Debug, Default)]
pub struct Silent;
impl Reporter for Silent {}

/// Options for [`realise`].
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Units built at once.
    pub jobs: usize,
    /// Keep building what does not depend on a failure.
    pub keep_going: bool,
    /// Stops the run when requested.
    pub stop: Stop,
    /// Stores the first workers realise on, one each (another connection to the same store,
    /// for stores whose one connection would build one unit at a time: see
    /// [`crate::connections`]); the other workers use the store [`realise`] is given.
    pub worker_stores: Vec<Arc<Store>>,
    /// The jobserver the builders share: each unit beyond the first running takes a token
    /// from it. `None`: `jobs` units at once, no tokens.
    pub jobserver: Option<Arc<Offer>>,
}

/// How often the coordinator looks for a free token while a ready unit waits for one.
const TOKEN_POLL: Duration = Duration::from_millis(5);

/// The jobserver tokens the coordinator holds; given back when dropped.
struct Tokens<'a> {
    offer: Option<&'a Offer>,
    held: usize,
}

impl Tokens<'_> {
    /// Whether a unit may start while `running` others run: the first needs no token, each
    /// further one its own (taken now if free); always without a jobserver.
    fn allow(&mut self, running: usize) -> bool {
        let Some(offer) = self.offer else { return true };
        if running == 0 || self.held >= running {
            return true;
        }
        if offer.try_take() {
            self.held += 1;
        }
        self.held >= running
    }

    /// Gives back the tokens `running` units do not need (the first runs without one).
    fn keep_for(&mut self, running: usize) {
        let need = running.saturating_sub(1);
        if let Some(offer) = self.offer.filter(|_| self.held > need) {
            offer.give_back(self.held - need);
            self.held = need;
        }
    }
}

impl Drop for Tokens<'_> {
    fn drop(&mut self) {
        self.keep_for(0);
    }
}

struct Job {
    index: usize,
    drv: StorePath,
    out: StorePath,
}

enum Message {
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

fn worker(store: &Store, cache: Option<&Store>, stop: &Stop, jobs: Receiver<Job>, tx: Sender<Message>) {
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
fn failure(store: &Store, drv: &StorePath, error: &nix_rs::Error) -> Failure {
    match store.build_log(drv) {
        Ok(Some(log)) if !log.trim().is_empty() => {
            let (message, diagnostics) = cargo_nix_unit::run_unit::split_build_log(&log);
            Failure { message, diagnostics }
        }
        _ => Failure::message(error.to_string()),
    }
}

/// Which nodes must be built: every invalid node that is not optional, and every invalid
/// optional node that a node to be built depends on (directly or through other optional ones).
fn needed_nodes(deps: &[&[usize]], optional: &[bool], valid: &[bool]) -> Vec<bool> {
    let mut needed: Vec<bool> = optional.iter().zip(valid).map(|(&o, &v)| !v && !o).collect();
    // A fixpoint over the edges: optional chains are short (metadata nodes depend on each other
    // along the library graph), so a few passes suffice.
    let mut changed = true;
    while changed {
        changed = false;
        for (i, node_deps) in deps.iter().enumerate() {
            if !needed[i] {
                continue;
            }
            for &d in *node_deps {
                if !needed[d] && !valid[d] {
                    needed[d] = true;
                    changed = true;
                }
            }
        }
    }
    needed
}

/// Realises every node on `store`, dependencies first, with `options.jobs` workers; returns
/// each node's outcome (by index). With a binary `cache`, a node whose output the cache has is
/// copied from it instead of built, and each built output is pushed to it (Nix's own copy).
pub fn realise(
    store: &Store,
    cache: Option<&Store>,
    nodes: &[Node],
    options: &SchedulerOptions,
    reporter: &mut dyn Reporter,
) -> Result<Vec<Outcome>, Error> {
    let n = nodes.len();
    reporter.total(n);
    let mut queue = DependencyQueue::new(nodes.iter().enumerate().map(|(i, node)| (i, node.deps.clone(), 1u64)))
        .map_err(|e| Error::Graph(format!("{e:?}")))?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    let mut valid = Vec::with_capacity(n);
    for node in nodes {
        valid.push(store.is_valid_path(&node.out).map_err(|e| Error::Nix(format!("checking {}", node.out), e))?);
    }
    let needed = needed_nodes(
        &nodes.iter().map(|n| n.deps.as_slice()).collect::<Vec<_>>(),
        &nodes.iter().map(|n| n.optional).collect::<Vec<_>>(),
        &valid,
    );

    let (job_tx, job_rx) = unbounded::<Job>();
    let (msg_tx, msg_rx) = unbounded::<Message>();
    let jobs = options.jobs.max(1);
    std::thread::scope(|s| -> Result<(), Error> {
        for k in 0..jobs {
            let (rx, tx) = (job_rx.clone(), msg_tx.clone());
            let stop = &options.stop;
            let own = options.worker_stores.get(k).map_or(store, |s| &**s);
            s.spawn(move || worker(own, cache, stop, rx, tx));
        }
        drop(msg_tx);
        let mut in_flight = 0usize;
        let mut tokens = Tokens { offer: options.jobserver.as_deref(), held: 0 };
        let mut stopping = false;
        let mut interrupted = false;
        loop {
            if !interrupted && options.stop.is_requested() {
                interrupted = true;
                stopping = true;
                reporter.interrupted(in_flight);
            }
            // At most `jobs` units are handed to workers at once, so that after a failure
            // only those finish (fail-fast) and nothing queued behind them starts.
            while let Some(i) = if stopping || in_flight >= jobs || queue.ready_count() == 0 || !tokens.allow(in_flight)
            {
                None
            } else {
                queue.dequeue()
            } {
                if valid[i] || !needed[i] {
                    let outcome = if valid[i] { Outcome::Reused } else { Outcome::NotNeeded };
                    reporter.finished(i, &outcome);
                    outcomes[i] = Some(outcome);
                    queue.finish(i, true).map_err(|e| Error::Graph(format!("{e:?}")))?;
                    continue;
                }
                in_flight += 1;
                let _ = job_tx.send(Job { index: i, drv: nodes[i].drv.clone(), out: nodes[i].out.clone() });
            }
            tokens.keep_for(in_flight);
            if in_flight == 0 {
                break;
            }
            // A ready unit waiting for a token: look for one again soon (builders give them
            // back without a message).
            let waiting = !stopping && in_flight < jobs && queue.ready_count() > 0;
            let msg = match if waiting { msg_rx.recv_timeout(TOKEN_POLL) } else { msg_rx.recv().map_err(Into::into) } {
                Ok(msg) => msg,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Graph("all scheduler workers are gone".into()));
                }
            };
            match &msg {
                Message::PushFailed { index, error } => {
                    reporter.push_failed(*index, error);
                    continue;
                }
                Message::Started { index } => {
                    reporter.started(*index);
                    continue;
                }
                _ => {}
            }
            in_flight -= 1;
            let (i, outcome) = match msg {
                Message::PushFailed { .. } | Message::Started { .. } => unreachable!("handled above"),
                Message::Substituted { index } => (index, Outcome::Substituted),
                Message::Reused { index } => (index, Outcome::Reused),
                Message::Done { index, result: Ok(()), elapsed } => (index, Outcome::Built(elapsed)),
                Message::Done { index, result: Err(e), .. } if e.is_interrupted() => (index, Outcome::Interrupted),
                Message::Done { index, result: Err(e), .. } => {
                    (index, Outcome::Failed(failure(store, &nodes[index].drv, &e)))
                }
                Message::Panicked { index, message } => (index, Outcome::Failed(Failure::message(message))),
            };
            let ok = outcome.is_success();
            reporter.finished(i, &outcome);
            outcomes[i] = Some(outcome);
            let finished = queue.finish(i, ok).map_err(|e| Error::Graph(format!("{e:?}")))?;
            for skipped in finished.skipped {
                outcomes[skipped] = Some(Outcome::Skipped);
                reporter.finished(skipped, &Outcome::Skipped);
            }
            if matches!(outcomes[i], Some(Outcome::Failed(_))) && !options.keep_going && !stopping {
                stopping = true;
                reporter.stopping(in_flight);
            }
        }
        drop(job_tx);
        Ok(())
    })?;
    Ok(outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Skipped)).collect())
}

#[cfg(test)]
mod tests {
    use super::{Tokens, needed_nodes};
    use crate::jobserver::Offer;

    #[test]
    fn units_beyond_the_first_run_on_tokens() {
        let offer = Offer::new(2).unwrap();
        let mut tokens = Tokens { offer: Some(&offer), held: 0 };
        assert!(tokens.allow(0), "the first unit runs on the implicit token");
        assert!(tokens.allow(1) && tokens.allow(2), "then one token per unit");
        assert_eq!(tokens.held, 2);
        assert!(!tokens.allow(3), "none left: the fourth waits");
        // Taken by a builder's rustc meanwhile: the scheduler finds none.
        tokens.keep_for(1);
        assert_eq!(tokens.held, 0, "one unit running needs no token");
        assert!(offer.try_take() && offer.try_take() && !offer.try_take(), "both were given back");
        assert!(!tokens.allow(1));
        offer.give_back(2);
        assert!(tokens.allow(1));
        drop(tokens);
        assert!(offer.try_take() && offer.try_take() && !offer.try_take(), "given back when dropped");
        let mut none = Tokens { offer: None, held: 0 };
        assert!(none.allow(7), "without a jobserver nothing waits");
    }

    #[test]
    fn optional_nodes_are_built_only_for_dependents_that_are() {
        // 0: optional, invalid; 1: valid, needs 0  -> 0 is not needed.
        assert_eq!(needed_nodes(&[&[], &[0]], &[true, false], &[false, true]), [false, false]);
        // 0 optional <- 1 optional <- 2 invalid: the chain is needed.
        assert_eq!(needed_nodes(&[&[], &[0], &[1]], &[true, true, false], &[false, false, false]), [true; 3]);
        // A valid optional node is never built; an invalid plain node always is.
        assert_eq!(needed_nodes(&[&[], &[0], &[]], &[true, false, false], &[true, false, false]), [false, true, true]);
    }
}
