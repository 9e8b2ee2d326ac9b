//! Raft through the whole simulator: focused scenarios for the paper's rules (§5.1 to §5.4, each
//! test names its section), ReadIndex latency (thesis §6.4) and determinism of the full Raft
//! stack over many seeds. The planted-bug sweeps of every protocol are in `tests/scenarios.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use faultline::check::{CheckResult, overall, run_checks};
use faultline::families::raft::Observation as RaftObs;
use faultline::families::raft::checks::Replay;
use faultline::history::{EventType, Function};
use faultline::process::NodeId;
use faultline::process::{CommonObservation, NodeRole};
use faultline::scenario::{Scenario, Verdict};
use faultline::sim::{self, LifecycleKind, RunOptions, RunRecord};

const MS: u64 = 1_000_000;

fn scenario(text: &str) -> Scenario {
    Scenario::parse(Path::new("test.toml"), text.as_bytes()).expect("valid scenario")
}

fn run(s: &Scenario, seed: u64) -> (RunRecord, Vec<CheckResult>) {
    // These tests read Raft's facts from the record themselves: keep them (Raft's checks
    // otherwise consume them while the run goes).
    let options = RunOptions {
        keep_all_observations: true,
        ..RunOptions::default()
    };
    let record = sim::run(s, seed, &options);
    let checks = run_checks(&record);
    (record, checks)
}

fn assert_all_pass(checks: &[CheckResult], what: &str) {
    for c in checks {
        assert_eq!(
            c.verdict,
            Verdict::Pass,
            "{what}: {} {:?}: {}",
            c.name,
            c.verdict,
            c.evidence.join(" | ")
        );
    }
}

/// (time, node, role, term) of every role observation.
fn roles(record: &RunRecord) -> Vec<(u64, NodeId, NodeRole, u64)> {
    record
        .observations
        .iter()
        .filter_map(|o| match o.get() {
            Some(&CommonObservation::Role { role, term }) => Some((o.t_ns, o.node, role, term)),
            _ => None,
        })
        .collect()
}

/// The highest index each server applied, by the end of the run.
fn applied_through(record: &RunRecord) -> BTreeMap<NodeId, u64> {
    let mut out = BTreeMap::new();
    for o in &record.observations {
        match o.get() {
            Some(RaftObs::Apply { index, entries }) => {
                let last = index + entries.len() as u64 - 1;
                let e = out.entry(o.node).or_insert(0);
                *e = (*e).max(last);
            }
            Some(RaftObs::SnapshotInstalled { index, .. }) => {
                let e = out.entry(o.node).or_insert(0);
                *e = (*e).max(*index);
            }
            _ => {}
        }
    }
    out
}

/// Liveness gets a window inside these short runs (leader 1s after the final heal, then 2s of
/// answers): an empty window is `unknown`, not a pass.
const BASE: &str = "[cluster]\nprotocol = \"raft\"\nnodes = 5\n\
    [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }\n\
    [workload]\nclients = 3\nconcurrency = 2\nthink_time = \"10ms\"\n\
    [check.liveness]\nleader_within = \"1s\"\n";

/// §5.2: a crashed leader is replaced by exactly one new leader in a higher term within a few
/// election timeouts; the old leader restarts as a follower and learns the new term.
#[test]
fn s5_2_a_crashed_leader_is_replaced_by_one_leader_of_a_higher_term() {
    let s = scenario(&format!(
        "duration = \"8s\"\n{BASE}[[fault]]\nat = \"2s\"\nkind = \"crash\"\ntarget = \"leader\"\nduration = \"2s\"\n"
    ));
    let (record, checks) = run(&s, 3);
    assert_all_pass(&checks, "crash leader");
    let roles = roles(&record);
    let (first_leader, first_term) = roles
        .iter()
        .rev()
        .filter(|r| r.0 < 2000 * MS && r.2 == NodeRole::Leader)
        .map(|r| (r.1, r.3))
        .next()
        .expect("a leader before the crash");
    let crash = record
        .lifecycle
        .iter()
        .find(|l| l.kind == LifecycleKind::Crash)
        .expect("the crash");
    assert_eq!(crash.node, first_leader, "the fault targeted the leader");
    let next = roles
        .iter()
        .find(|r| r.0 > 2000 * MS && r.2 == NodeRole::Leader)
        .expect("a new leader");
    assert_ne!(next.1, first_leader);
    assert!(next.3 > first_term, "a higher term: {next:?}");
    assert!(
        next.0 < 3000 * MS,
        "elected within a few election timeouts, at {} ms",
        next.0 / MS
    );
    let rejoined = roles
        .iter()
        .find(|r| r.0 > 4000 * MS && r.1 == first_leader && r.3 >= next.3)
        .expect("the old leader learns the new term after its restart");
    assert_eq!(rejoined.2, NodeRole::Follower);
}

/// §5.1: terms act as logical clocks. An isolated leader (PreVote and CheckQuorum off, so it
/// keeps believing it leads) steps down as soon as it hears of the higher term after the heal,
/// and every server ends in the same term.
#[test]
fn s5_1_a_stale_leader_steps_down_when_it_sees_a_higher_term() {
    let s = scenario(&format!(
        "duration = \"8s\"\n{BASE}[raft]\npre_vote = false\ncheck_quorum = false\n\
         [[fault]]\nat = \"2s\"\nkind = \"isolate\"\ntarget = \"leader\"\nduration = \"2s\"\n"
    ));
    let (record, checks) = run(&s, 5);
    assert_all_pass(&checks, "isolate leader");
    let roles = roles(&record);
    let old = *roles
        .iter()
        .rev()
        .find(|r| r.0 < 2000 * MS && r.2 == NodeRole::Leader)
        .expect("leader");
    assert!(
        !roles
            .iter()
            .any(|r| r.1 == old.1 && r.0 > 2000 * MS && r.0 < 4000 * MS && r.2 != NodeRole::Leader),
        "without CheckQuorum the isolated leader keeps its role while cut off"
    );
    let stepped = roles
        .iter()
        .find(|r| r.1 == old.1 && r.0 >= 4000 * MS)
        .expect("a role change after the heal");
    assert_eq!(stepped.2, NodeRole::Follower);
    assert!(stepped.3 > old.3);
    let mut last_term: BTreeMap<NodeId, u64> = BTreeMap::new();
    for r in &roles {
        last_term.insert(r.1, r.3);
    }
    let terms: Vec<u64> = last_term.values().copied().collect();
    assert!(terms.windows(2).all(|w| w[0] == w[1]), "{terms:?}");
}

/// §5.3: log replication repairs followers. A follower partitioned away for a while, and one
/// crashed, end the run with exactly the entries everyone else applied: clients stop writing 2 s
/// before the end, and by then every server has applied through the last committed index (the
/// same entries at every index: `state-machine-safety` passes), and the Log Matching check finds
/// one version of every (index, term).
#[test]
fn s5_3_followers_that_missed_entries_are_repaired_and_logs_converge() {
    let s = scenario(&format!(
        "duration = \"10s\"\n{}[workload.mix]\nput = 1.0\n\
         [[fault]]\nat = \"1s\"\nkind = \"partition\"\ngroups = [[\"n1\", \"n2\", \"n3\"], [\"n4\", \"n5\"]]\nduration = \"3s\"\n\
         [[fault]]\nat = \"5s\"\nkind = \"crash\"\ntarget = \"n2\"\nduration = \"1s\"\n",
        BASE.replace(
            "think_time = \"10ms\"\n",
            "think_time = \"10ms\"\nstop = \"8s\"\n"
        )
    ));
    let (record, checks) = run(&s, 2);
    assert_all_pass(&checks, "partition and crash");
    let applied = applied_through(&record);
    let replay = Replay::new(&record);
    let committed = replay
        .committed
        .iter()
        .map(|c| c.index)
        .max()
        .expect("entries were committed");
    eprintln!("§5.3: last committed index {committed}, applied through {applied:?}");
    assert_eq!(
        applied.len(),
        5,
        "every server applied entries: {applied:?}"
    );
    for (node, &last) in &applied {
        assert_eq!(
            last, committed,
            "{node:?} applied through {last}, not the last committed index {committed}"
        );
    }
}

/// §5.4: safety across leader changes. Under repeated leader crashes and isolations, every
/// committed entry (derived from observations) is in every later leader's log, every index is
/// applied with one entry everywhere, and at the end every server has applied every entry
/// committed at least 500ms before the end.
#[test]
fn s5_4_committed_entries_survive_every_leader_change() {
    let s = scenario(&format!(
        "duration = \"20s\"\n{BASE}\
         [nemesis]\nfaults = [\"crash-leader\", \"isolate-leader\"]\ninterval = \"1s\"\nfault_duration = \"1s\"\nfinal_heal = \"5s\"\n"
    ));
    let (record, checks) = run(&s, 4);
    assert_all_pass(&checks, "leader faults");
    let replay = Replay::new(&record);
    assert!(
        replay.elections.len() >= 5,
        "several leader changes: {}",
        replay.elections.len()
    );
    // Followers learn a commit in the next AppendEntries, so judge entries committed at least a
    // few heartbeats (500ms) before the end of the run.
    let last_committed = replay
        .committed
        .iter()
        .filter(|c| c.t_ns + 500_000_000 <= record.end_ns)
        .map(|c| c.index)
        .max()
        .expect("commits");
    eprintln!(
        "§5.4: {} leaderships, {} committed entries, last committed index {last_committed}",
        replay.elections.len(),
        replay.committed_count
    );
    for (node, last) in applied_through(&record) {
        assert!(
            last >= last_committed,
            "{node:?} applied through {last} < {last_committed}"
        );
    }
}

/// Figure 2: persistent state survives a crash of every server at once. Everything applied
/// before the crash is applied again, identically, after the restart (state machine safety
/// across incarnations), and the cluster keeps committing.
#[test]
fn figure_2_a_whole_cluster_crash_loses_nothing_committed() {
    let s = scenario(&format!(
        "duration = \"8s\"\n{BASE}[[fault]]\nat = \"3s\"\nkind = \"crash\"\ntarget = \"servers\"\nduration = \"500ms\"\n"
    ));
    let (record, checks) = run(&s, 6);
    assert_all_pass(&checks, "whole-cluster crash");
    let before: u64 = record
        .observations
        .iter()
        .filter(|o| o.t_ns < 3000 * MS)
        .filter_map(|o| match o.get() {
            Some(RaftObs::Apply { index, entries }) => Some(index + entries.len() as u64 - 1),
            _ => None,
        })
        .max()
        .expect("applied before the crash");
    let after = applied_through(&record);
    for (node, last) in after {
        assert!(
            last > before,
            "{node:?} applied through {last}, not beyond {before}"
        );
    }
}

/// Ok `get` latencies (completion time minus invoke time, in ns) from the history, of reads
/// invoked at or after `from_ns`.
fn read_latencies_ns(record: &RunRecord, from_ns: u64) -> Vec<u64> {
    let mut invoked: BTreeMap<u64, (u64, Function)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &record.history {
        match e.kind {
            EventType::Invoke => {
                invoked.insert(e.process, (e.time_ns, e.f));
            }
            EventType::Ok => {
                if let Some((t, Function::Get)) = invoked.remove(&e.process)
                    && t >= from_ns
                {
                    out.push(e.time_ns - t);
                }
            }
            _ => {
                invoked.remove(&e.process);
            }
        }
    }
    out
}

/// Thesis §6.4: a ReadIndex read is confirmed by a heartbeat round started after it arrived and
/// sent to every follower at once, so on a fault-free 1 ms network every read completes within
/// a few round trips, far below the 50 ms heartbeat interval, even when a periodic heartbeat
/// round (which skips followers sent something recently) opened just before it. Checked on
/// the history: every `ok` read invoked after the first election.
#[test]
fn s6_4_readindex_reads_take_round_trips_not_a_heartbeat_interval() {
    // A busy cluster (appends flowing all the time), and a light one where most periodic
    // heartbeats find every follower idle: before reads carried their own round, the light one
    // made reads wait 52-54 ms for the next heartbeat, the busy one up to 13 ms.
    let workloads = [
        "clients = 5\nconcurrency = 2\nthink_time = \"7ms\"\n",
        "clients = 2\nthink_time = \"30ms\"\nmix = { get = 0.5, put = 0.5 }\n",
    ];
    for workload in workloads {
        let s = scenario(&format!(
            "duration = \"10s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 5\n\
             [network]\nlatency = \"1ms\"\n[workload]\n{workload}keys = 5\n\
             [raft]\nheartbeat_interval = \"50ms\"\n"
        ));
        for seed in 1..=2 {
            let (record, checks) = run(&s, seed);
            assert_all_pass(&checks, "1 ms network");
            // From 1 s on: the first election (150-300 ms timeouts) is over by then.
            let reads = read_latencies_ns(&record, 1000 * MS);
            assert!(reads.len() > 100, "seed {seed}: only {} reads", reads.len());
            let max = *reads.iter().max().unwrap();
            eprintln!(
                "§6.4 {workload:?} seed {seed}: {} reads, max latency {:.3} ms",
                reads.len(),
                max as f64 / MS as f64
            );
            // At most four round trips of 2 ms: the request (and a redirect from a follower),
            // the read round in flight when it arrived, its own round, and the reply.
            assert!(
                max <= 8 * MS,
                "{workload:?} seed {seed}: a read took {:.3} ms on a 1 ms network",
                max as f64 / MS as f64
            );
        }
    }
}

/// The same scenario and seed give the same trace, byte for byte, with the full Raft stack under
/// every kind of fault; different seeds give different runs.
#[test]
fn raft_runs_are_deterministic_over_many_seeds() {
    let s = scenario(
        "duration = \"8s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 5\n\
         [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"20ms\" }\n\
         loss_probability = 0.02\nduplicate_probability = 0.02\nreorder = true\n\
         [nemesis]\nfaults = [\"partition\", \"isolate-leader\", \"crash\", \"crash-leader\", \"pause\", \"clock-jump\", \"clock-drift\"]\n\
         interval = \"500ms\"\nfault_duration = \"700ms\"\nfinal_heal = \"2s\"\n\
         [workload]\nclients = 3\nconcurrency = 2\nthink_time = \"5ms\"\n\
         [raft]\nsnapshot_threshold_entries = 100\n\
         [check.liveness]\nleader_within = \"1s\"\nanswer_within = \"1s\"\n",
    );
    let mut hashes = Vec::new();
    for seed in 1..=12 {
        let (a, ca) = run(&s, seed);
        let (b, cb) = run(&s, seed);
        assert_eq!(
            a.trace_hash, b.trace_hash,
            "seed {seed}: reproduce with `faultline run` on this scenario with --seed {seed}"
        );
        assert_eq!(a.history, b.history, "seed {seed}");
        assert_eq!(overall(&ca), overall(&cb), "seed {seed}");
        assert_eq!(overall(&ca), Verdict::Pass, "seed {seed}: {ca:?}");
        hashes.push(a.trace_hash);
    }
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), 12, "every seed gives a different run");
}
