//! Paxos integration tests: the teaching claims of the shipped scenarios hold, and proposers
//! make progress on a slow network. (The planted-bug sweeps of every protocol are in
//! `tests/scenarios.rs`.)

use std::path::{Path, PathBuf};

use faultline::check::{overall, run_checks};
use faultline::families::paxos::checks::choices;
use faultline::scenario::{Scenario, Verdict};
use faultline::sim::{RunOptions, run};

fn paxos_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/paxos")
}

#[test]
fn nothing_is_chosen_while_no_side_holds_a_majority_then_the_majority_decides() {
    let s = Scenario::load(&paxos_dir().join("partition-2-2-1.toml")).unwrap();
    let record = run(&s, s.seed, &RunOptions::default());
    let chosen = choices(&record);
    let first = |i: u64| chosen.get(&i).and_then(|l| l.first()).map(|c| c.chosen_ns);
    let instances = s.cluster.roles[0].options["instances"]
        .as_integer()
        .expect("resolved options hold every default") as u64;
    for i in 0..instances {
        let t = first(i).unwrap_or_else(|| panic!("instance {i} was never chosen"));
        // 2|2|1 until 3s: no majority anywhere. 3|2 until 6s: {n1, n2, n3} decides.
        assert!(
            (3_000_000_000..6_000_000_000).contains(&t),
            "instance {i} chosen at {t} ns"
        );
        let c = &chosen[&i][0];
        let acceptors: Vec<&str> = c
            .acceptors
            .iter()
            .filter(|(_, at)| *at <= t)
            .map(|(n, _)| record.topology.name(*n))
            .collect();
        assert!(
            acceptors.iter().all(|n| ["n1", "n2", "n3"].contains(n)),
            "instance {i} chosen by {acceptors:?}"
        );
    }
    assert_eq!(overall(&run_checks(&record)), Verdict::Pass);
}

#[test]
fn paxos_runs_are_deterministic() {
    for file in ["dueling-proposers.toml", "multi-paxos-nemesis.toml"] {
        let s = Scenario::load(&paxos_dir().join(file)).unwrap();
        let a = run(&s, 3, &RunOptions::default());
        let b = run(&s, 3, &RunOptions::default());
        assert_eq!(a.trace_hash, b.trace_hash, "{file}");
        assert!(a.stats.messages_delivered > 1000, "{file}: a real run");
    }
}

/// Multi-Paxos snapshotting every 20 slots under crashes and partitions: every check passes, and
/// the run exercises both ways a replica gets a snapshot: reloading its own from disk when it
/// restarts (at the restart's instant), and installing a peer's when it asks to catch up from a
/// slot that peer has forgotten.
#[test]
fn multi_paxos_replicas_restart_from_their_snapshots_and_catch_up_through_their_peers() {
    use faultline::families::paxos::Observation;
    use faultline::sim::LifecycleKind;
    let s = Scenario::load(&paxos_dir().join("multi-paxos-snapshot-catch-up.toml")).unwrap();
    let options = RunOptions {
        keep_all_observations: true,
        ..RunOptions::default()
    };
    let record = run(&s, s.seed, &options);
    assert_eq!(overall(&run_checks(&record)), Verdict::Pass);
    let restarts: Vec<(u64, _)> = record
        .lifecycle
        .iter()
        .filter(|l| l.kind == LifecycleKind::Restart)
        .map(|l| (l.t_ns, l.node))
        .collect();
    let (mut taken, mut from_disk, mut from_peer) = (0, 0, 0);
    for o in &record.observations {
        match o.get::<Observation>() {
            Some(Observation::SnapshotTaken { slot }) => {
                assert!(*slot >= 20, "a snapshot before the threshold: {slot}");
                taken += 1;
            }
            Some(Observation::SnapshotInstalled { .. }) if restarts.contains(&(o.t_ns, o.node)) => {
                from_disk += 1
            }
            Some(Observation::SnapshotInstalled { .. }) => from_peer += 1,
            _ => {}
        }
    }
    assert!(
        taken >= 5 * 5 && from_disk >= 1 && from_peer >= 5,
        "snapshots taken {taken}, reloaded at restart {from_disk}, installed from a peer {from_peer}"
    );
}

/// Single-decree Paxos on a slow, fault-free network (1-60 ms each way, so round trips up to
/// 120 ms) with a phase timeout of 50 ms, below most round trips: five proposers duel over 200
/// instances. Proposers back off by a randomized, growing delay scaled to the round trip and
/// adapt their phase timeout to the round trips they observe, so every one of the 200 instances
/// is chosen, and each within the 2 s `decision` bound. (Retrying at once on every timeout
/// chose 22-32 of the 200.)
#[test]
fn proposers_back_off_and_adapt_their_timeout_so_every_instance_is_chosen_on_a_slow_network() {
    let s = Scenario::parse(
        Path::new("slow.toml"),
        b"duration = \"10s\"\n[cluster]\nprotocol = \"paxos\"\nnodes = 5\n\
          [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"60ms\" }\n\
          [workload]\nclients = 0\n\
          [paxos]\nproposers = \"servers\"\ninstances = 200\ninstance_interval = \"20ms\"\n\
          retry_timeout = \"50ms\"\n",
    )
    .expect("valid");
    for seed in 1..=3 {
        let record = run(&s, seed, &RunOptions::default());
        let chosen = choices(&record);
        eprintln!(
            "slow network, seed {seed}: {} of 200 instances chosen",
            chosen.len()
        );
        assert_eq!(chosen.len(), 200, "seed {seed}: instances chosen");
        let checks = run_checks(&record);
        for c in &checks {
            assert_eq!(
                c.verdict,
                Verdict::Pass,
                "seed {seed}: {} {:?}",
                c.name,
                c.evidence
            );
        }
    }
}
