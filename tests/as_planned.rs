//! Units realised as they are planned (`scheduler::realise_as_planned`, what `cargo nix` does
//! without pipelining), on a real temporary store with trivial derivations: a unit builds before
//! the units after it are planned, and when planning ends early the unit in flight finishes and
//! the others are skipped, without an error from the scheduler (the planner reports its own).

use std::sync::mpsc;
use std::time::Duration;

use cargo_backend::plan::{NodeRef, PlannedUnit};
use cargo_backend::{Outcome, Reporter, SchedulerOptions, scheduler};
use nix_rs::DerivationBuilder;
use nix_rs::testing::TempStore;

/// Long enough for a trivial build on a loaded machine; only reached when the scheduler waits
/// for units it was not given yet.
const PATIENCE: Duration = Duration::from_secs(120);

/// Unit `index` of a graph of trivial derivations, reading the outputs of `deps` (planned first).
fn unit(store: &TempStore, index: usize, deps: &[&PlannedUnit]) -> PlannedUnit {
    let system = nix_rs::settings::get("system").unwrap();
    let mut script = format!("echo {index}");
    let mut b = DerivationBuilder::new(format!("unit-{index}"), "/bin/sh");
    for d in deps {
        script.push_str(&format!(" {}", d.out));
        b.input_derivation(&d.drv, ["out"]);
    }
    script.push_str(" > $out");
    let drv = b.system(&system).args(["-c", &script]).create(store.store()).unwrap();
    PlannedUnit {
        index,
        label: format!("unit-{index}"),
        package: format!("unit-{index}@0.1.0"),
        target_name: format!("unit_{index}"),
        hash: String::new(),
        out: drv.outputs["out"].clone(),
        drv: drv.drv_path,
        metadata: None,
        inputs: deps.iter().map(|d| NodeRef::Unit(d.index)).collect(),
        artifacts: Vec::new(),
        is_build_script_run: false,
        is_member: false,
        reuse: None,
    }
}

/// Tells the test, by unit index, which units finished and how.
struct Finished(mpsc::Sender<(usize, Outcome)>);

impl Reporter for Finished {
    fn finished(&mut self, index: usize, outcome: &Outcome) {
        let _ = self.0.send((index, outcome.clone()));
    }
}

fn options(jobs: usize) -> SchedulerOptions {
    SchedulerOptions { jobs, keep_going: false, stop: Default::default(), worker_stores: Vec::new(), jobserver: None }
}

#[test]
fn each_unit_builds_before_the_next_is_planned() {
    nix_rs::testing::apply_test_settings().unwrap();
    let store = TempStore::new().unwrap();
    let (plan_tx, plan_rx) = crossbeam_channel::unbounded::<PlannedUnit>();
    let (done_tx, done_rx) = mpsc::channel();
    let outcomes = std::thread::scope(|s| {
        // The planner: a chain 0 <- 1 <- 2, each unit planned only once the one before is built.
        let store = &store;
        let planner = s.spawn(move || {
            let mut planned: Vec<PlannedUnit> = Vec::new();
            for i in 0..3 {
                let u = unit(store, i, &planned.iter().rev().take(1).collect::<Vec<_>>());
                plan_tx.send(u.clone()).unwrap();
                planned.push(u);
                let (index, outcome): (usize, Outcome) = done_rx
                    .recv_timeout(PATIENCE)
                    .unwrap_or_else(|_| panic!("unit {i} was planned but not built before the rest of the plan"));
                assert_eq!((index, outcome.is_success()), (i, true), "{outcome:?}");
            }
            drop(plan_tx);
        });
        let deps = vec![vec![], vec![0], vec![1]];
        let outcomes =
            scheduler::realise_as_planned(store.store(), None, deps, plan_rx, &options(2), &mut Finished(done_tx));
        planner.join().unwrap();
        outcomes.unwrap()
    });
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Built(_))), "{outcomes:?}");
}

#[test]
fn planning_that_ends_early_lets_the_unit_in_flight_finish_and_starts_nothing_else() {
    nix_rs::testing::apply_test_settings().unwrap();
    let store = TempStore::new().unwrap();
    let gate = tempfile::tempdir().unwrap();
    let go = gate.path().join("go");
    // 0 <- 1, and 2, which is never planned (as after a planning error at unit 2). Unit 0 runs
    // until the test opens the gate, which it does once the scheduler says it is stopping.
    let system = nix_rs::settings::get("system").unwrap();
    // (It gives up after about two minutes, failing the unit and the test.)
    let wait = format!(
        "i=0; while [ ! -e {} ]; do i=$((i+1)); [ $i -gt 2400 ] && exit 1; /bin/sleep 0.05; done; echo 0 > $out",
        go.display()
    );
    let drv =
        DerivationBuilder::new("unit-0", "/bin/sh").system(&system).args(["-c", &wait]).create(store.store()).unwrap();
    let mut u0 = unit(&store, 0, &[]);
    (u0.drv, u0.out) = (drv.drv_path, drv.outputs["out"].clone());
    let u1 = unit(&store, 1, &[&u0]);
    let (plan_tx, plan_rx) = crossbeam_channel::unbounded::<PlannedUnit>();
    plan_tx.send(u0.clone()).unwrap();
    plan_tx.send(u1.clone()).unwrap();
    drop(plan_tx);
    struct OpensTheGate(std::path::PathBuf, Vec<(usize, Outcome)>);
    impl Reporter for OpensTheGate {
        fn stopping(&mut self, in_flight: usize) {
            assert_eq!(in_flight, 1, "unit 0 is in flight");
            std::fs::write(&self.0, "").unwrap();
        }
        fn finished(&mut self, index: usize, outcome: &Outcome) {
            self.1.push((index, outcome.clone()));
        }
    }
    let mut reporter = OpensTheGate(go.clone(), Vec::new());
    let deps = vec![vec![], vec![0], vec![]];
    let outcomes =
        scheduler::realise_as_planned(store.store(), None, deps, plan_rx, &options(2), &mut reporter).unwrap();
    assert!(go.exists(), "the scheduler said it was stopping");
    assert!(matches!(outcomes[0], Outcome::Built(_)), "{outcomes:?}");
    assert_eq!(outcomes[1..], [Outcome::Skipped, Outcome::Skipped]);
    assert!(!store.store().is_valid_path(&u1.out).unwrap(), "unit 1 was planned but not started");
    assert_eq!(reporter.1.len(), 1, "only unit 0 is reported finished: {:?}", reporter.1);
}
