//! One round of a build: the units planned and realised, with the bookkeeping around the
//! scheduler — events by unit for the caller's reporter, rustc's incremental state offered to
//! each unit once it is planned, and outputs sent to be copied back as their units finish.
//!
//! Without pipelining, units are realised as they are planned: a planner thread hands each
//! unit to the scheduler as soon as its derivation exists
//! ([`crate::scheduler::realise_as_planned`]), so the first units build while the package
//! sources of the later ones are still being added to the store. With pipelining, the
//! optional metadata nodes are decided on the whole plan, which is made first.

use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, unbounded};
use nix_rs::{Store, StorePath};

use crate::scheduler::{self, Node, Outcome, Reporter, SchedulerOptions};
use crate::{Error, Toolchain, Workspace, incremental, plan};

/// What a round works with.
pub(crate) struct Round<'a> {
    pub store: &'a Store,
    /// The binary cache to substitute from and push to.
    pub cache_store: Option<&'a Store>,
    pub ws: &'a Workspace,
    pub toolchain: &'a Toolchain,
    /// `cargo-nix-unit` on this machine.
    pub builder: &'a Path,
    pub pipelining: bool,
    pub workspace_key: &'a str,
    pub sched: &'a SchedulerOptions,
    /// The local store outputs are copied back to, when the build store is elsewhere.
    pub copy_to: Option<&'a Store>,
    /// Whether units keep rustc's incremental state ([`incremental::available`]).
    pub incremental: bool,
}

/// What a round made.
pub(crate) struct Done {
    pub plan: plan::Plan,
    /// By unit index.
    pub outcomes: Vec<Outcome>,
    /// From the round's start to the plan being made.
    pub plan_time: Duration,
    /// While the scheduler ran (overlapping planning when units are built as planned).
    pub build_time: Duration,
    /// When the first unit started building, if one did.
    pub first_started: Option<Instant>,
}

impl Round<'_> {
    /// Plans and realises every unit, recording the plan in `record`. `copy`: where to send
    /// the outputs of the units to copy back ([`copy_back_wanted`]) as they finish.
    pub fn run(
        &self,
        record: &mut plan::Record,
        reporter: &mut dyn Reporter,
        copy: Option<Sender<StorePath>>,
    ) -> Result<Done, Error> {
        // Withdrawn when this round's builds are done.
        let offer = if self.incremental { Some(incremental::Offer::new(self.ws)?) } else { None };
        let mut per_unit = PerUnit::new(reporter, self.ws, offer, copy);
        if self.pipelining {
            self.after_planning(record, &mut per_unit)
        } else {
            self.as_planned(record, &mut per_unit)
        }
    }

    fn plan_options(&self, pipelining: bool, announce: Option<Sender<plan::PlannedUnit>>) -> plan::PlanOptions<'_> {
        plan::PlanOptions {
            builder: self.builder,
            pipelining,
            workspace_key: self.workspace_key,
            announce,
            mirror: self.copy_to,
        }
    }

    fn as_planned(&self, record: &mut plan::Record, per_unit: &mut PerUnit) -> Result<Done, Error> {
        let start = Instant::now();
        let (tx, rx) = unbounded();
        let deps = self.ws.graph.units.iter().map(|u| u.dependencies.iter().map(|d| d.index).collect()).collect();
        let (planned, built) = std::thread::scope(|s| {
            let planner = s.spawn(move || {
                let plan = plan::Planner::plan_cached(
                    self.store,
                    self.ws,
                    self.toolchain,
                    self.plan_options(false, Some(tx)),
                    record,
                );
                (plan, start.elapsed())
            });
            let built = scheduler::realise_as_planned(self.store, self.cache_store, deps, rx, self.sched, per_unit);
            let build_time = start.elapsed();
            let planned = planner.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
            (planned, built.map(|outcomes| (outcomes, build_time)))
        });
        let (plan, plan_time) = planned;
        let plan = plan.map_err(|e| self.planning_failed(e))?;
        let (outcomes, build_time) = built?;
        per_unit.inner.planned(&plan);
        Ok(Done { plan, outcomes, plan_time, build_time, first_started: per_unit.first_started })
    }

    fn after_planning(&self, record: &mut plan::Record, per_unit: &mut PerUnit) -> Result<Done, Error> {
        let start = Instant::now();
        let plan =
            plan::Planner::plan_cached(self.store, self.ws, self.toolchain, self.plan_options(true, None), record)
                .map_err(|e| self.planning_failed(e))?;
        let plan_time = start.elapsed();
        let start = Instant::now();
        per_unit.inner.planned(&plan);
        for u in &plan.units {
            per_unit.unit_planned(u);
        }
        let (nodes, unit_of) = scheduler_nodes(&plan);
        per_unit.unit_of = unit_of.clone();
        let node_outcomes = scheduler::realise(self.store, self.cache_store, &nodes, self.sched, per_unit)?;
        let outcomes = unit_outcomes(node_outcomes, &unit_of, plan.units.len());
        Ok(Done { plan, outcomes, plan_time, build_time: start.elapsed(), first_started: per_unit.first_started })
    }

    /// An interrupt makes Nix fail whatever the planner was doing: report the interrupt.
    fn planning_failed(&self, e: Error) -> Error {
        if self.sched.stop.is_requested() {
            Error::Interrupted("while planning; nothing was installed".into())
        } else {
            e
        }
    }
}

/// The scheduler's nodes for a plan: one per unit (same index), then one per metadata
/// derivation; and for each node, the unit it belongs to.
fn scheduler_nodes(plan: &plan::Plan) -> (Vec<Node>, Vec<usize>) {
    let n = plan.units.len();
    let mut nodes: Vec<Node> = plan
        .units
        .iter()
        .map(|u| Node { drv: u.drv.clone(), out: u.out.clone(), deps: Vec::new(), optional: false })
        .collect();
    let mut unit_of: Vec<usize> = (0..n).collect();
    let mut metadata_node = vec![usize::MAX; n];
    for u in &plan.units {
        if let Some((drv, out)) = &u.metadata {
            metadata_node[u.index] = nodes.len();
            unit_of.push(u.index);
            nodes.push(Node { drv: drv.clone(), out: out.clone(), deps: Vec::new(), optional: true });
        }
    }
    for u in &plan.units {
        let deps: Vec<usize> = u
            .inputs
            .iter()
            .map(|r| match *r {
                plan::NodeRef::Unit(i) => i,
                plan::NodeRef::Metadata(i) => metadata_node[i],
            })
            .collect();
        if u.metadata.is_some() {
            nodes[metadata_node[u.index]].deps = deps.clone();
        }
        nodes[u.index].deps = deps;
    }
    (nodes, unit_of)
}

/// One outcome per unit: the unit node's, unless its metadata node failed first.
fn unit_outcomes(node_outcomes: Vec<Outcome>, unit_of: &[usize], n: usize) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = node_outcomes[..n].to_vec();
    for (node, outcome) in node_outcomes.into_iter().enumerate().skip(n) {
        if matches!(outcome, Outcome::Failed(_)) && !matches!(outcomes[unit_of[node]], Outcome::Failed(_)) {
            outcomes[unit_of[node]] = outcome;
        }
    }
    outcomes
}

/// Whether a build on a store elsewhere copies `u`'s output back: the roots' and the
/// workspace members'.
pub(crate) fn copy_back_wanted(ws: &Workspace, u: &plan::PlannedUnit) -> bool {
    u.is_member || ws.graph.roots.contains(&u.index)
}

/// Turns the scheduler's per-node events into per-unit ones for the caller's reporter: a unit
/// starts when its first node starts, and finishes with its unit node (or with the first
/// failure of either node, reported once). As each unit is planned, its incremental state is
/// offered; as each unit to copy back finishes, its output is sent to be copied.
struct PerUnit<'a> {
    inner: &'a mut dyn Reporter,
    ws: &'a Workspace,
    /// The unit of each scheduler node (the identity when there are no metadata nodes).
    unit_of: Vec<usize>,
    started: Vec<bool>,
    first_started: Option<Instant>,
    reported: Vec<bool>,
    offer: Option<incremental::Offer>,
    /// Where to send the outputs to copy back ([`crate::copy_back`]), and, once planned, the
    /// output of each unit to copy back that is not sent yet. Their sources are in the local
    /// store already (`PlanOptions::mirror`).
    copy: Option<(Sender<StorePath>, Vec<Option<StorePath>>)>,
}

impl<'a> PerUnit<'a> {
    fn new(
        inner: &'a mut dyn Reporter,
        ws: &'a Workspace,
        offer: Option<incremental::Offer>,
        copy: Option<Sender<StorePath>>,
    ) -> Self {
        let units = ws.graph.units.len();
        PerUnit {
            inner,
            ws,
            unit_of: (0..units).collect(),
            started: vec![false; units],
            first_started: None,
            reported: vec![false; units],
            offer,
            copy: copy.map(|tx| (tx, vec![None; units])),
        }
    }
}

impl Reporter for PerUnit<'_> {
    fn unit_planned(&mut self, u: &plan::PlannedUnit) {
        if let Some(offer) = &mut self.offer {
            // Not offered, the unit builds from scratch: it only costs time.
            let _ = offer.add(self.ws, u);
        }
        if let Some((_, outs)) = &mut self.copy {
            if copy_back_wanted(self.ws, u) {
                outs[u.index] = Some(u.out.clone());
            }
        }
        self.inner.unit_planned(u);
    }

    fn started(&mut self, node: usize) {
        let u = self.unit_of[node];
        if !std::mem::replace(&mut self.started[u], true) {
            self.first_started.get_or_insert_with(Instant::now);
            self.inner.started(u);
        }
    }

    fn total(&mut self, _nodes: usize) {
        self.inner.total(self.started.len());
    }

    fn finished(&mut self, node: usize, outcome: &Outcome) {
        let u = self.unit_of[node];
        if self.reported[u] {
            return;
        }
        let units = self.started.len();
        if node < units || matches!(outcome, Outcome::Failed(_)) {
            self.reported[u] = true;
            self.inner.finished(u, outcome);
        }
        if let Some((tx, outs)) = &mut self.copy {
            if node < units && outcome.is_success() {
                if let Some(out) = outs[u].take() {
                    let _ = tx.send(out);
                }
            }
        }
    }

    fn stopping(&mut self, in_flight: usize) {
        self.inner.stopping(in_flight);
    }

    fn push_failed(&mut self, node: usize, error: &str) {
        self.inner.push_failed(self.unit_of[node], error);
    }

    fn interrupted(&mut self, in_flight: usize) {
        self.inner.interrupted(in_flight);
    }
}

/// Tells `reporter` what a build tells it for a plan whose outputs are all valid (a no-op
/// answered without Nix, [`crate::noop`]): the plan, each unit planned, the total, and each
/// unit reused, in the order the scheduler's queue hands them out.
pub(crate) fn report_reused(ws: &Workspace, plan: &plan::Plan, reporter: &mut dyn Reporter) {
    let (nodes, unit_of) = scheduler_nodes(plan);
    reporter.planned(plan);
    let mut per_unit = PerUnit::new(reporter, ws, None, None);
    for u in &plan.units {
        per_unit.unit_planned(u);
    }
    per_unit.unit_of = unit_of;
    per_unit.total(nodes.len());
    let Ok(mut queue) =
        crate::queue::DependencyQueue::new(nodes.iter().enumerate().map(|(i, n)| (i, n.deps.clone(), 1u64)))
    else {
        return;
    };
    while let Some(i) = queue.dequeue() {
        // Metadata nodes are not needed once their unit's output is there; the per-unit
        // reporter says nothing for them either way.
        let outcome = if i < plan.units.len() { Outcome::Reused } else { Outcome::NotNeeded };
        per_unit.finished(i, &outcome);
        let _ = queue.finish(i, true);
    }
}
