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
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, unbounded};
use nix_rs::{Store, StorePath};

use crate::Error;
use crate::jobserver::Offer;
use crate::plan::{NodeRef, PlannedUnit};
use crate::queue::DependencyQueue;

mod tokens;
mod worker;

use tokens::{TOKEN_POLL, Tokens};
use worker::{Job, Message, failure, worker};

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
    /// The units are planned: every unit's derivation, output path and artifacts, by
    /// unit-graph index. Called once by [`crate::build`] (not by [`realise`]): before any unit
    /// is realised, or, when units are built as they are planned, once planning is done (each
    /// unit was reported by [`Reporter::unit_planned`] before it could start).
    fn planned(&mut self, _plan: &crate::plan::Plan) {}
    /// One unit is planned; called before the unit can start (by [`crate::build`] for every
    /// unit, and by [`realise_as_planned`] as units arrive).
    fn unit_planned(&mut self, _unit: &PlannedUnit) {}
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
    /// The build failed, the first time (a unit failed, or planning ended early): fail-fast
    /// stops scheduling, `--keep-going` goes on; `in_flight` units are still running.
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
    let mut valid = Vec::with_capacity(nodes.len());
    for node in nodes {
        valid.push(store.is_valid_path(&node.out).map_err(|e| Error::Nix(format!("checking {}", node.out), e))?);
    }
    let needed = needed_nodes(
        &nodes.iter().map(|n| n.deps.as_slice()).collect::<Vec<_>>(),
        &nodes.iter().map(|n| n.optional).collect::<Vec<_>>(),
        &valid,
    );
    let deps = nodes.iter().map(|n| n.deps.clone()).collect();
    let known = nodes
        .iter()
        .zip(valid)
        .zip(needed)
        .map(|((node, valid), needed)| Some(Known { drv: node.drv.clone(), out: node.out.clone(), valid, needed }))
        .collect();
    Coordinator::new(store, cache, deps, known, None, options)?.run(reporter)
}

/// [`realise`] for units that arrive as they are planned (from
/// [`crate::plan::Planner::plan_cached`] with `announce`), so that the first units build while
/// the others are planned. One node per unit, by unit index; `deps` holds each unit's direct
/// dependencies in the unit graph (everything a unit reads is reached through them), which
/// order and prioritise the units before they arrive. A unit starts once it has arrived and its
/// dependencies are built, and is reported ([`Reporter::unit_planned`]) when it arrives.
///
/// When `planned` closes before every unit arrived (planning failed), nothing new starts, the
/// units in flight finish, and the others are [`Outcome::Skipped`]: the caller reports the
/// planner's error. Pipelined units (with a metadata derivation) are refused: their optional
/// metadata nodes are decided on the whole plan ([`realise`]).
pub fn realise_as_planned(
    store: &Store,
    cache: Option<&Store>,
    deps: Vec<Vec<usize>>,
    planned: Receiver<PlannedUnit>,
    options: &SchedulerOptions,
    reporter: &mut dyn Reporter,
) -> Result<Vec<Outcome>, Error> {
    let known = vec![None; deps.len()];
    Coordinator::new(store, cache, deps, known, Some(planned), options)?.run(reporter)
}

/// A node the coordinator can start: its derivation, and whether it needs building (its
/// dependencies are the queue's).
#[derive(Debug, Clone)]
struct Known {
    drv: StorePath,
    out: StorePath,
    /// Its output was valid when it became known.
    valid: bool,
    /// Invalid nodes that are not needed are optional ones nothing being built reads.
    needed: bool,
}

/// What wakes the coordinator.
enum Event {
    Worker(Message),
    Planned(Box<PlannedUnit>),
    PlanningEnded,
    TokenPoll,
}

/// The one owner of a run's state: the queue, what is known of each node, the outcomes.
struct Coordinator<'a> {
    store: &'a Store,
    cache: Option<&'a Store>,
    options: &'a SchedulerOptions,
    queue: DependencyQueue<usize>,
    /// Per node, once planned.
    known: Vec<Option<Known>>,
    /// Where the nodes not yet known come from; `None` once every node is known or planning ended.
    planned: Option<Receiver<PlannedUnit>>,
    /// Nodes whose dependencies are done, taken from the queue in priority order, that could
    /// not start yet: not planned yet, or no jobserver token.
    parked: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    /// Nodes not known yet, and nodes with an outcome (kept with `known` and `outcomes`).
    unknown: usize,
    finished: usize,
    in_flight: usize,
    /// Nothing new starts: a failure (fail-fast), a stop request, or planning ended early.
    stopping: bool,
    /// A unit failed or planning ended early, and [`Reporter::stopping`] was told.
    failed: bool,
    interrupted: bool,
}

impl<'a> Coordinator<'a> {
    fn new(
        store: &'a Store,
        cache: Option<&'a Store>,
        deps: Vec<Vec<usize>>,
        known: Vec<Option<Known>>,
        planned: Option<Receiver<PlannedUnit>>,
        options: &'a SchedulerOptions,
    ) -> Result<Self, Error> {
        let n = deps.len();
        let unknown = known.iter().filter(|k| k.is_none()).count();
        let queue = DependencyQueue::new(deps.into_iter().enumerate().map(|(i, d)| (i, d, 1u64))).map_err(graph)?;
        Ok(Coordinator {
            store,
            cache,
            options,
            queue,
            known,
            planned,
            parked: Vec::new(),
            outcomes: vec![None; n],
            unknown,
            finished: 0,
            in_flight: 0,
            stopping: false,
            failed: false,
            interrupted: false,
        })
    }

    fn run(mut self, reporter: &mut dyn Reporter) -> Result<Vec<Outcome>, Error> {
        let n = self.outcomes.len();
        reporter.total(n);
        if self.unknown == 0 {
            self.planned = None;
        }
        let jobs = self.options.jobs.max(1);
        std::thread::scope(|s| -> Result<(), Error> {
            // Made inside the scope: an early return drops the sender, so the workers end.
            let (job_tx, job_rx) = unbounded::<Job>();
            let (msg_tx, msg_rx) = unbounded::<Message>();
            for k in 0..jobs {
                let (rx, tx) = (job_rx.clone(), msg_tx.clone());
                let (stop, cache) = (&self.options.stop, self.cache);
                let own = self.options.worker_stores.get(k).map_or(self.store, |s| &**s);
                s.spawn(move || worker(own, cache, stop, rx, tx));
            }
            drop(msg_tx);
            let mut tokens = Tokens { offer: self.options.jobserver.as_deref(), held: 0 };
            loop {
                if !self.interrupted && self.options.stop.is_requested() {
                    self.interrupted = true;
                    self.stopping = true;
                    reporter.interrupted(self.in_flight);
                }
                let waiting_for_token = self.start_ready(&job_tx, &mut tokens, reporter)?;
                tokens.keep_for(self.in_flight);
                if self.in_flight == 0 && (self.stopping || self.finished == n) {
                    break;
                }
                match self.next_event(&msg_rx, waiting_for_token)? {
                    Event::TokenPoll => {}
                    Event::Planned(u) => self.arrive(*u, reporter)?,
                    Event::PlanningEnded => {
                        self.planned = None;
                        // Planning failed: what was not planned can never start, and the
                        // rest waits for the planner's error (as after a failure).
                        if self.unknown > 0 && !self.stopping {
                            self.stopping = true;
                            if !std::mem::replace(&mut self.failed, true) {
                                reporter.stopping(self.in_flight);
                            }
                        }
                    }
                    Event::Worker(msg) => self.worker_message(msg, reporter)?,
                }
            }
            drop(job_tx);
            Ok(())
        })?;
        Ok(self.outcomes.into_iter().map(|o| o.unwrap_or(Outcome::Skipped)).collect())
    }

    /// Hands ready nodes to workers while fewer than `jobs` run (so that after a failure only
    /// those finish, and nothing queued behind them starts); reused and unneeded nodes finish
    /// at once. Returns whether a ready node waits for a jobserver token.
    fn start_ready(
        &mut self,
        job_tx: &Sender<Job>,
        tokens: &mut Tokens<'_>,
        reporter: &mut dyn Reporter,
    ) -> Result<bool, Error> {
        while !self.stopping && self.in_flight < self.options.jobs.max(1) {
            let Some(i) = self.next_ready() else { return Ok(false) };
            let k = self.known[i].as_ref().expect("next_ready returns known nodes");
            if k.valid || !k.needed {
                let outcome = if k.valid { Outcome::Reused } else { Outcome::NotNeeded };
                self.finish(i, outcome, reporter)?;
                continue;
            }
            if !tokens.allow(self.in_flight) {
                self.parked.insert(0, i);
                return Ok(true);
            }
            self.in_flight += 1;
            let _ = job_tx.send(Job { index: i, drv: k.drv.clone(), out: k.out.clone() });
        }
        Ok(false)
    }

    /// The ready node to start next: a parked one that is known by now, else the queue's next
    /// (parked while it is not known yet).
    fn next_ready(&mut self) -> Option<usize> {
        if let Some(pos) = self.parked.iter().position(|&i| self.known[i].is_some()) {
            return Some(self.parked.remove(pos));
        }
        while let Some(i) = self.queue.dequeue() {
            if self.known[i].is_some() {
                return Some(i);
            }
            self.parked.push(i);
        }
        None
    }

    /// Waits for a worker's message, a planned unit, or (while a ready node waits for a token)
    /// the next look for a free one: builders give tokens back without a message.
    fn next_event(&self, msg_rx: &Receiver<Message>, waiting_for_token: bool) -> Result<Event, Error> {
        let never = crossbeam_channel::never();
        let planned = self.planned.as_ref().unwrap_or(&never);
        let tick = if waiting_for_token { crossbeam_channel::after(TOKEN_POLL) } else { crossbeam_channel::never() };
        crossbeam_channel::select! {
            recv(msg_rx) -> msg => msg.map(Event::Worker).map_err(|_| Error::Graph("all scheduler workers are gone".into())),
            recv(planned) -> unit => Ok(unit.map_or(Event::PlanningEnded, |u| Event::Planned(Box::new(u)))),
            recv(tick) -> _ => Ok(Event::TokenPoll),
        }
    }

    /// A unit the planner just planned becomes a known node.
    fn arrive(&mut self, u: PlannedUnit, reporter: &mut dyn Reporter) -> Result<(), Error> {
        let i = u.index;
        if self.known.get(i).is_none_or(Option::is_some) {
            return Err(Error::Graph(format!("unit {i} ({}) was planned twice or is not in the graph", u.label)));
        }
        if u.metadata.is_some() {
            return Err(Error::Graph(format!("{}: pipelined units are realised on the whole plan", u.label)));
        }
        if u.inputs.iter().any(|r| matches!(r, NodeRef::Metadata(_))) {
            return Err(Error::Graph(format!("{}: reads a metadata node", u.label)));
        }
        let valid = self.store.is_valid_path(&u.out).map_err(|e| Error::Nix(format!("checking {}", u.out), e))?;
        reporter.unit_planned(&u);
        self.known[i] = Some(Known { drv: u.drv, out: u.out, valid, needed: true });
        self.unknown -= 1;
        if self.unknown == 0 {
            self.planned = None;
        }
        Ok(())
    }

    fn worker_message(&mut self, msg: Message, reporter: &mut dyn Reporter) -> Result<(), Error> {
        let (i, outcome) = match msg {
            Message::PushFailed { index, error } => {
                reporter.push_failed(index, &error);
                return Ok(());
            }
            Message::Started { index } => {
                reporter.started(index);
                return Ok(());
            }
            Message::Substituted { index } => (index, Outcome::Substituted),
            Message::Reused { index } => (index, Outcome::Reused),
            Message::Done { index, result: Ok(()), elapsed } => (index, Outcome::Built(elapsed)),
            Message::Done { index, result: Err(e), .. } if e.is_interrupted() => (index, Outcome::Interrupted),
            Message::Done { index, result: Err(e), .. } => {
                let drv = &self.known[index].as_ref().expect("started nodes are known").drv;
                (index, Outcome::Failed(failure(self.store, drv, &e)))
            }
            Message::Panicked { index, message } => (index, Outcome::Failed(Failure::message(message))),
        };
        self.in_flight -= 1;
        let failed = matches!(outcome, Outcome::Failed(_));
        self.finish(i, outcome, reporter)?;
        if failed && !self.options.keep_going {
            self.stopping = true;
        }
        if failed && !self.interrupted && !std::mem::replace(&mut self.failed, true) {
            reporter.stopping(self.in_flight);
        }
        Ok(())
    }

    /// Records `i`'s outcome; a failure skips every node that depends on it.
    fn finish(&mut self, i: usize, outcome: Outcome, reporter: &mut dyn Reporter) -> Result<(), Error> {
        let ok = outcome.is_success() || outcome == Outcome::NotNeeded;
        reporter.finished(i, &outcome);
        self.outcomes[i] = Some(outcome);
        self.finished += 1;
        let finished = self.queue.finish(i, ok).map_err(graph)?;
        for skipped in finished.skipped {
            self.outcomes[skipped] = Some(Outcome::Skipped);
            self.finished += 1;
            self.parked.retain(|&p| p != skipped);
            reporter.finished(skipped, &Outcome::Skipped);
        }
        Ok(())
    }
}

fn graph<N: std::fmt::Debug>(e: crate::queue::QueueError<N>) -> Error {
    Error::Graph(format!("{e:?}"))
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
