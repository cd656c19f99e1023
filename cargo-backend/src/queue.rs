//! A pure dependency queue: which unit may start now, and which one should.
//!
//! The queue knows nothing about units, processes or Nix: it holds nodes of any ordered type,
//! the dependencies between them and a cost estimate for each, and answers three questions for
//! the coordinator that owns it — what is ready ([`DependencyQueue::dequeue`]), what a finished
//! node unlocks ([`DependencyQueue::finish`]), and whether anything is left.
//!
//! # Design
//!
//! * **Priority by waiting work** (as in cargo's `dependency_queue.rs`): a node's priority is its
//!   own cost plus the cost of every node that depends on it, directly or transitively (each
//!   counted once). Starting the nodes that the most work waits on first keeps the critical path
//!   short. Among ready nodes of equal priority the smallest node (by `Ord`) goes first, so a run
//!   is reproducible.
//! * **Everything checked up front.** [`DependencyQueue::new`] rejects duplicate nodes, unknown
//!   dependencies and cycles, so later calls never find the graph inconsistent. Misuse at run time
//!   (finishing a node that is not running) is reported as a [`QueueError`], not a panic.
//! * **Keep going after failures.** When a node fails, every node that depends on it, directly
//!   or transitively, is marked skipped and reported; independent nodes stay in the queue, so the
//!   coordinator can drain all the work that can still succeed.
//! * **Cost.** Priorities are computed once, with one bitset of transitive dependents per node
//!   (`n²/8` bytes in all, about 12 MB for 10 000 nodes) filled in reverse topological order.
//!   After that, `dequeue` is `O(log n)` and `finish` is linear in the edges it touches.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::fmt::Debug;
use std::hash::Hash;

/// Where a node is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Some dependencies have not finished yet.
    Waiting,
    /// All dependencies succeeded; waiting to be dequeued.
    Ready,
    /// Dequeued and not finished yet.
    InFlight,
    /// Finished successfully.
    Succeeded,
    /// Finished with a failure.
    Failed,
    /// Will never run: a dependency failed, directly or transitively.
    Skipped,
}

/// Misuse of a [`DependencyQueue`], or a graph it cannot schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError<N: Debug> {
    /// The same node was given twice to [`DependencyQueue::new`].
    #[error("node {0:?} was queued twice")]
    DuplicateNode(N),
    /// A node depends on a node that was not given to [`DependencyQueue::new`].
    #[error("node {node:?} depends on {dependency:?}, which is not in the queue")]
    UnknownDependency {
        /// The dependent node.
        node: N,
        /// The missing dependency.
        dependency: N,
    },
    /// The dependencies form a cycle; each node listed depends on the next, and the last on the
    /// first. A node that depends on itself is a cycle of one.
    #[error("dependency cycle: {0:?}")]
    Cycle(Vec<N>),
    /// A node that is not in the queue was passed to a method.
    #[error("node {0:?} is not in the queue")]
    UnknownNode(N),
    /// [`DependencyQueue::finish`] was called for a node that is not in flight.
    #[error("node {node:?} cannot finish: it is {state:?}, not in flight")]
    NotInFlight {
        /// The node.
        node: N,
        /// Its state at the time of the call.
        state: NodeState,
    },
}

/// What finishing a node changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished<N> {
    /// Nodes that became ready (after a success), smallest first.
    pub ready: Vec<N>,
    /// Nodes that will now never run (after a failure), smallest first.
    pub skipped: Vec<N>,
}

/// Per-node bookkeeping.
#[derive(Debug)]
struct Slot<N> {
    node: N,
    /// Indices of the nodes that depend directly on this one.
    dependents: Vec<usize>,
    /// Number of dependencies that have not succeeded yet.
    unfinished_deps: usize,
    priority: u64,
    state: NodeState,
}

/// An entry of the ready heap: highest priority first, then the smallest node.
#[derive(Debug, PartialEq, Eq)]
struct ReadyEntry<N> {
    priority: u64,
    node: Reverse<N>,
    slot: usize,
}

impl<N: Ord> Ord for ReadyEntry<N> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.priority, &self.node).cmp(&(other.priority, &other.node))
    }
}

impl<N: Ord> PartialOrd for ReadyEntry<N> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A queue of nodes that become ready as their dependencies finish. See the module docs.
#[derive(Debug)]
pub struct DependencyQueue<N> {
    slots: Vec<Slot<N>>,
    index: HashMap<N, usize>,
    ready: BinaryHeap<ReadyEntry<N>>,
    /// Waiting or ready nodes.
    pending: usize,
    in_flight: usize,
}

impl<N: Copy + Eq + Hash + Ord + Debug> DependencyQueue<N> {
    /// Builds a queue from `(node, dependencies, cost)` triples. Costs are in any unit the caller
    /// likes; only their ratios matter. Duplicate entries in a dependency list count once.
    ///
    /// # Errors
    ///
    /// [`QueueError::DuplicateNode`], [`QueueError::UnknownDependency`], or
    /// [`QueueError::Cycle`] (which includes a node depending on itself).
    pub fn new<I, D>(nodes: I) -> Result<Self, QueueError<N>>
    where
        I: IntoIterator<Item = (N, D, u64)>,
        D: IntoIterator<Item = N>,
    {
        let mut slots = Vec::new();
        let mut index = HashMap::new();
        let mut deps_by_slot: Vec<Vec<N>> = Vec::new();
        let mut costs = Vec::new();
        for (node, deps, cost) in nodes {
            if index.insert(node, slots.len()).is_some() {
                return Err(QueueError::DuplicateNode(node));
            }
            slots.push(Slot {
                node,
                dependents: Vec::new(),
                unfinished_deps: 0,
                priority: 0,
                state: NodeState::Waiting,
            });
            deps_by_slot.push(deps.into_iter().collect());
            costs.push(cost);
        }

        // Resolve dependencies to indices and build the reverse edges.
        let mut dependencies: Vec<Vec<usize>> = Vec::with_capacity(slots.len());
        for (i, deps) in deps_by_slot.into_iter().enumerate() {
            let mut resolved = Vec::with_capacity(deps.len());
            for dep in deps {
                let &d =
                    index.get(&dep).ok_or(QueueError::UnknownDependency { node: slots[i].node, dependency: dep })?;
                if d == i {
                    return Err(QueueError::Cycle(vec![dep]));
                }
                resolved.push(d);
            }
            resolved.sort_unstable();
            resolved.dedup();
            for &d in &resolved {
                slots[d].dependents.push(i);
            }
            slots[i].unfinished_deps = resolved.len();
            dependencies.push(resolved);
        }

        let order = topological_order(&slots, &dependencies)?;
        compute_priorities(&mut slots, &order, &costs);

        let mut queue = DependencyQueue { pending: slots.len(), slots, index, ready: BinaryHeap::new(), in_flight: 0 };
        for i in 0..queue.slots.len() {
            if queue.slots[i].unfinished_deps == 0 {
                queue.make_ready(i);
            }
        }
        Ok(queue)
    }

    fn make_ready(&mut self, slot: usize) {
        let s = &mut self.slots[slot];
        s.state = NodeState::Ready;
        self.ready.push(ReadyEntry { priority: s.priority, node: Reverse(s.node), slot });
    }

    /// Takes the ready node with the highest priority and marks it in flight, or returns `None`
    /// when nothing is ready (everything left waits on nodes in flight, or nothing is left).
    pub fn dequeue(&mut self) -> Option<N> {
        let entry = self.ready.pop()?;
        self.slots[entry.slot].state = NodeState::InFlight;
        self.pending -= 1;
        self.in_flight += 1;
        Some(entry.node.0)
    }

    /// The node [`DependencyQueue::dequeue`] would return, without taking it.
    pub fn peek(&self) -> Option<N> {
        self.ready.peek().map(|entry| entry.node.0)
    }

    /// Records that `node` (which must be in flight) finished.
    ///
    /// On success, dependents whose dependencies have now all succeeded become ready. On
    /// failure, every node that depends on `node`, directly or transitively, is skipped; nodes
    /// that do not depend on it are unaffected.
    ///
    /// # Errors
    ///
    /// [`QueueError::UnknownNode`] if `node` is not in the queue, and
    /// [`QueueError::NotInFlight`] if it was not dequeued or has already finished; the queue is
    /// left unchanged in both cases.
    pub fn finish(&mut self, node: N, success: bool) -> Result<Finished<N>, QueueError<N>> {
        let slot = self.slot_of(node)?;
        let state = self.slots[slot].state;
        if state != NodeState::InFlight {
            return Err(QueueError::NotInFlight { node, state });
        }
        self.in_flight -= 1;
        let mut finished = Finished { ready: Vec::new(), skipped: Vec::new() };
        if success {
            self.slots[slot].state = NodeState::Succeeded;
            for k in 0..self.slots[slot].dependents.len() {
                let d = self.slots[slot].dependents[k];
                let dependent = &mut self.slots[d];
                dependent.unfinished_deps -= 1;
                if dependent.unfinished_deps == 0 && dependent.state == NodeState::Waiting {
                    finished.ready.push(dependent.node);
                    self.make_ready(d);
                }
            }
            finished.ready.sort_unstable();
        } else {
            self.slots[slot].state = NodeState::Failed;
            let mut stack = self.slots[slot].dependents.clone();
            while let Some(d) = stack.pop() {
                let dependent = &mut self.slots[d];
                // A skipped node's dependents were skipped along with it.
                if dependent.state == NodeState::Waiting {
                    dependent.state = NodeState::Skipped;
                    self.pending -= 1;
                    finished.skipped.push(dependent.node);
                    stack.extend_from_slice(&dependent.dependents);
                }
            }
            finished.skipped.sort_unstable();
        }
        Ok(finished)
    }

    /// Whether nothing is left to do: no node is waiting, ready or in flight.
    pub fn is_empty(&self) -> bool {
        self.pending == 0 && self.in_flight == 0
    }

    /// Number of nodes not yet dequeued that may still run (waiting or ready).
    pub fn pending_count(&self) -> usize {
        self.pending
    }

    /// Number of nodes ready to be dequeued now.
    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    /// Number of nodes dequeued and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Total number of nodes, in any state.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// The state of `node`, or `None` if it is not in the queue.
    pub fn state(&self, node: N) -> Option<NodeState> {
        self.index.get(&node).map(|&i| self.slots[i].state)
    }

    /// The priority of `node` (its cost plus the cost of all its transitive dependents).
    pub fn priority(&self, node: N) -> Option<u64> {
        self.index.get(&node).map(|&i| self.slots[i].priority)
    }

    /// All nodes currently in `state`, in the order they were given to
    /// [`DependencyQueue::new`].
    pub fn nodes_in_state(&self, state: NodeState) -> Vec<N> {
        self.slots.iter().filter(|s| s.state == state).map(|s| s.node).collect()
    }

    fn slot_of(&self, node: N) -> Result<usize, QueueError<N>> {
        self.index.get(&node).copied().ok_or(QueueError::UnknownNode(node))
    }
}

/// Kahn's algorithm: slot indices with every node after its dependencies, or the nodes of a cycle.
fn topological_order<N: Copy + Debug>(
    slots: &[Slot<N>],
    dependencies: &[Vec<usize>],
) -> Result<Vec<usize>, QueueError<N>> {
    let mut unfinished: Vec<usize> = dependencies.iter().map(Vec::len).collect();
    let mut order: Vec<usize> = (0..slots.len()).filter(|&i| unfinished[i] == 0).collect();
    let mut next = 0;
    while let Some(&i) = order.get(next) {
        next += 1;
        for &d in &slots[i].dependents {
            unfinished[d] -= 1;
            if unfinished[d] == 0 {
                order.push(d);
            }
        }
    }
    if order.len() == slots.len() {
        return Ok(order);
    }
    // Every node left has a dependency that is also left, so following such dependencies must
    // come back to a node already seen.
    let start = (0..slots.len()).find(|&i| unfinished[i] > 0).unwrap_or(0);
    let mut seen_at = vec![usize::MAX; slots.len()];
    let mut path = Vec::new();
    let mut current = start;
    while seen_at[current] == usize::MAX {
        seen_at[current] = path.len();
        path.push(current);
        current = dependencies[current].iter().copied().find(|&d| unfinished[d] > 0).unwrap_or(current);
    }
    Err(QueueError::Cycle(path[seen_at[current]..].iter().map(|&i| slots[i].node).collect()))
}

/// Sets each slot's priority to its cost plus the costs of its transitive dependents.
fn compute_priorities<N>(slots: &mut [Slot<N>], order: &[usize], costs: &[u64]) {
    let n = slots.len();
    let words = n.div_ceil(64);
    let mut dependents_of = vec![0u64; n * words];
    // Dependents come later in `order`, so walking it backwards finishes a node's dependents
    // before the node itself.
    for &i in order.iter().rev() {
        for k in 0..slots[i].dependents.len() {
            let d = slots[i].dependents[k];
            // `d != i` (no self-loops), so the two ranges do not overlap.
            let (mine, theirs) = if i < d {
                let (low, high) = dependents_of.split_at_mut(d * words);
                (&mut low[i * words..(i + 1) * words], &high[..words])
            } else {
                let (low, high) = dependents_of.split_at_mut(i * words);
                (&mut high[..words], &low[d * words..(d + 1) * words])
            };
            for (a, b) in mine.iter_mut().zip(theirs) {
                *a |= b;
            }
            mine[d / 64] |= 1 << (d % 64);
        }
        let set = &dependents_of[i * words..(i + 1) * words];
        let mut priority = costs[i];
        for (w, &bits) in set.iter().enumerate() {
            let mut bits = bits;
            while bits != 0 {
                let j = w * 64 + bits.trailing_zeros() as usize;
                priority = priority.saturating_add(costs[j]);
                bits &= bits - 1;
            }
        }
        slots[i].priority = priority;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Q = DependencyQueue<u32>;

    fn queue(nodes: &[(u32, &[u32], u64)]) -> Q {
        Q::new(nodes.iter().map(|&(n, d, c)| (n, d.to_vec(), c))).unwrap()
    }

    fn ok(q: &mut Q, node: u32) -> Vec<u32> {
        q.finish(node, true).unwrap().ready
    }

    /// Dequeues everything ready now.
    fn drain(q: &mut Q) -> Vec<u32> {
        std::iter::from_fn(|| q.dequeue()).collect()
    }

    #[test]
    fn chain_runs_in_order() {
        let mut q = queue(&[(3, &[2], 1), (2, &[1], 1), (1, &[], 1)]);
        assert_eq!(q.priority(1), Some(3));
        assert_eq!(q.priority(3), Some(1));
        assert_eq!(q.pending_count(), 3);
        assert_eq!(drain(&mut q), vec![1]);
        assert_eq!(q.in_flight(), 1);
        assert_eq!(q.pending_count(), 2);
        assert_eq!(ok(&mut q, 1), vec![2]);
        assert_eq!(drain(&mut q), vec![2]);
        assert_eq!(ok(&mut q, 2), vec![3]);
        assert_eq!(drain(&mut q), vec![3]);
        assert!(!q.is_empty());
        assert_eq!(ok(&mut q, 3), Vec::<u32>::new());
        assert!(q.is_empty());
        assert_eq!(q.dequeue(), None);
    }

    #[test]
    fn diamond_waits_for_both_sides() {
        //   4
        //  / \
        // 2   3
        //  \ /
        //   1
        let mut q = queue(&[(1, &[], 1), (2, &[1], 1), (3, &[1], 1), (4, &[2, 3], 1)]);
        // 1's dependents are 2, 3 and 4, each counted once.
        assert_eq!(q.priority(1), Some(4));
        assert_eq!(drain(&mut q), vec![1]);
        assert_eq!(ok(&mut q, 1), vec![2, 3]);
        assert_eq!(drain(&mut q), vec![2, 3]);
        assert_eq!(ok(&mut q, 3), Vec::<u32>::new());
        assert_eq!(q.state(4), Some(NodeState::Waiting));
        assert_eq!(q.dequeue(), None);
        assert_eq!(ok(&mut q, 2), vec![4]);
        assert_eq!(drain(&mut q), vec![4]);
        ok(&mut q, 4);
        assert!(q.is_empty());
    }

    #[test]
    fn most_waited_on_work_goes_first() {
        // Same shapes as cargo's tests: 3 is expensive, so the node it unlocks goes first.
        let mut q = queue(&[(1, &[], 1), (2, &[1], 1), (3, &[], 4), (4, &[2, 3], 1)]);
        assert_eq!(q.priority(3), Some(5));
        assert_eq!(q.priority(1), Some(3));
        assert_eq!(q.peek(), Some(3));
        assert_eq!(drain(&mut q), vec![3, 1]);

        // Equal costs: the deeper chain first.
        let mut q = queue(&[(1, &[], 1), (2, &[1], 1), (3, &[], 1), (4, &[2, 3], 1), (5, &[4, 3], 1)]);
        assert_eq!(q.priority(1), Some(4));
        assert_eq!(q.priority(3), Some(3));
        assert_eq!(drain(&mut q), vec![1, 3]);
    }

    #[test]
    fn ties_go_to_the_smallest_node() {
        let mut q = queue(&[(9, &[], 2), (4, &[], 2), (7, &[], 2), (1, &[], 1)]);
        assert_eq!(drain(&mut q), vec![4, 7, 9, 1]);
    }

    #[test]
    fn failure_skips_dependents_only() {
        // 1 <- 2 <- 3 <- 5, and 4 independent, and 6 depends on both 4 and 2.
        let mut q = queue(&[(1, &[], 1), (2, &[1], 1), (3, &[2], 1), (4, &[], 1), (5, &[3], 1), (6, &[4, 2], 1)]);
        assert_eq!(drain(&mut q), vec![1, 4]);
        assert_eq!(ok(&mut q, 1), vec![2]);
        assert_eq!(drain(&mut q), vec![2]);
        let outcome = q.finish(2, false).unwrap();
        assert_eq!(outcome.skipped, vec![3, 5, 6]);
        assert!(outcome.ready.is_empty());
        assert_eq!(q.state(2), Some(NodeState::Failed));
        assert_eq!(q.nodes_in_state(NodeState::Skipped), vec![3, 5, 6]);
        // 4 is still in flight and finishes normally; 6 stays skipped.
        assert_eq!(q.pending_count(), 0);
        assert!(!q.is_empty());
        assert_eq!(ok(&mut q, 4), Vec::<u32>::new());
        assert_eq!(q.state(6), Some(NodeState::Skipped));
        assert!(q.is_empty());
        assert_eq!(q.dequeue(), None);
    }

    #[test]
    fn second_failure_reports_only_newly_skipped() {
        let mut q = queue(&[(1, &[], 1), (2, &[], 1), (3, &[1, 2], 1), (4, &[2], 1)]);
        // 2 has more dependents, so it goes first.
        assert_eq!(drain(&mut q), vec![2, 1]);
        assert_eq!(q.finish(1, false).unwrap().skipped, vec![3]);
        assert_eq!(q.finish(2, false).unwrap().skipped, vec![4]);
        assert!(q.is_empty());
    }

    #[test]
    fn misuse_is_an_error() {
        let mut q = queue(&[(1, &[], 1), (2, &[1], 1)]);
        assert_eq!(q.finish(7, true), Err(QueueError::UnknownNode(7)));
        assert_eq!(q.finish(1, true), Err(QueueError::NotInFlight { node: 1, state: NodeState::Ready }));
        assert_eq!(q.dequeue(), Some(1));
        ok(&mut q, 1);
        let err = q.finish(1, true).unwrap_err();
        assert_eq!(err, QueueError::NotInFlight { node: 1, state: NodeState::Succeeded });
        assert!(err.to_string().contains("Succeeded"), "{err}");
        assert_eq!(q.state(7), None);
    }

    #[test]
    fn bad_graphs_are_rejected() {
        let new = |nodes: &[(u32, &[u32], u64)]| Q::new(nodes.iter().map(|&(n, d, c)| (n, d.to_vec(), c))).unwrap_err();
        assert_eq!(new(&[(1, &[], 1), (1, &[], 1)]), QueueError::DuplicateNode(1));
        assert_eq!(new(&[(1, &[5], 1)]), QueueError::UnknownDependency { node: 1, dependency: 5 });
        assert_eq!(new(&[(1, &[1], 1)]), QueueError::Cycle(vec![1]));
        assert_eq!(
            new(&[(0, &[], 1), (1, &[2], 1), (2, &[3], 1), (3, &[1], 1), (4, &[1], 1)]),
            QueueError::Cycle(vec![1, 2, 3])
        );
    }

    #[test]
    fn duplicate_dependencies_count_once() {
        let mut q = queue(&[(1, &[], 1), (2, &[1, 1, 1], 1)]);
        assert_eq!(drain(&mut q), vec![1]);
        assert_eq!(ok(&mut q, 1), vec![2]);
    }

    #[test]
    fn empty_queue() {
        let mut q = queue(&[]);
        assert!(q.is_empty());
        assert_eq!(q.dequeue(), None);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn everything_is_eventually_dequeued() {
        // A layered graph of 300 nodes with irregular edges and costs; run it with up to
        // 4 nodes in flight, finishing the oldest first.
        let n = 300u32;
        let nodes: Vec<(u32, Vec<u32>, u64)> = (0..n)
            .map(|i| {
                let deps = (1..=3).filter_map(|k| i.checked_sub(k * 7 + i % 5)).collect();
                (i, deps, u64::from(i % 11 + 1))
            })
            .collect();
        let mut q = Q::new(nodes.clone()).unwrap();
        let mut done = vec![false; n as usize];
        let mut running = std::collections::VecDeque::new();
        let mut order = Vec::new();
        while !q.is_empty() {
            while running.len() < 4 {
                let Some(node) = q.dequeue() else { break };
                for dep in &nodes[node as usize].1 {
                    assert!(done[*dep as usize], "{node} started before {dep}");
                }
                running.push_back(node);
            }
            let node = running.pop_front().expect("something must be in flight");
            q.finish(node, true).unwrap();
            done[node as usize] = true;
            order.push(node);
        }
        assert_eq!(order.len(), n as usize);
        assert!(done.iter().all(|&d| d));
        assert_eq!(q.nodes_in_state(NodeState::Succeeded).len(), n as usize);
    }

    #[test]
    fn priorities_match_a_naive_computation() {
        let n = 130u32; // more than two bitset words
        let nodes: Vec<(u32, Vec<u32>, u64)> = (0..n)
            .map(|i| {
                let deps = [i / 2, i / 3, i.saturating_sub(64)].into_iter().filter(|&d| d < i).collect();
                (i, deps, u64::from(i % 7 + 1))
            })
            .collect();
        let q = Q::new(nodes.clone()).unwrap();
        for i in 0..n {
            // Transitive dependents of i, by repeated scanning.
            let mut set = std::collections::BTreeSet::from([i]);
            loop {
                let before = set.len();
                for (node, deps, _) in &nodes {
                    if deps.iter().any(|d| set.contains(d)) {
                        set.insert(*node);
                    }
                }
                if set.len() == before {
                    break;
                }
            }
            let expected: u64 = set.iter().map(|&j| nodes[j as usize].2).sum();
            assert_eq!(q.priority(i), Some(expected), "node {i}");
        }
    }
}
