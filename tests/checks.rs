//! The generic run checks judged on whole simulated runs: regressions of issue 11's checker
//! soundness items (liveness and availability with crashed servers, empty liveness windows) and
//! the quantitative checks `bounds` and `no-decision` on real runs, each shown able to fail.

use std::path::{Path, PathBuf};

use faultline::check::{CheckResult, run_checks};
use faultline::scenario::{Scenario, Verdict};
use faultline::sim::{self, RunOptions, RunRecord};

fn scenario(text: &str) -> Scenario {
    Scenario::parse(Path::new("test.toml"), text.as_bytes()).expect("valid scenario")
}

fn run(s: &Scenario) -> (RunRecord, Vec<CheckResult>) {
    let record = sim::run(s, s.seed, &RunOptions::hash_only());
    let checks = run_checks(&record);
    (record, checks)
}

fn check<'a>(checks: &'a [CheckResult], name: &str) -> &'a CheckResult {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("check {name} did not run"))
}

fn shipped(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&file).expect("shipped scenario is readable")
}

const RAFT: &str = "[cluster]\nprotocol = \"raft\"\nnodes = 3\n\
    [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }\n\
    [workload]\nclients = 3\nthink_time = \"10ms\"\n";

#[test]
fn liveness_does_not_pass_with_every_node_crashed_for_good() {
    let s = scenario(&format!(
        "duration = \"10s\"\n{RAFT}[[fault]]\nat = \"500ms\"\nkind = \"crash\"\ntarget = \"all\"\n"
    ));
    let (record, checks) = run(&s);
    assert!(
        record.final_heal_ns.is_some(),
        "the kernel calls a run without partitions or pauses healed; liveness must look further"
    );
    let l = check(&checks, "liveness");
    assert_eq!(l.verdict, Verdict::Unknown, "{l:?}");
    assert!(
        l.summary.contains("only 0 of 3 servers are up"),
        "{}",
        l.summary
    );
}

#[test]
fn liveness_does_not_credit_a_leader_that_crashed_for_good() {
    // The leader crashes at 2s and never restarts; two of three servers remain, so a new leader
    // must be elected and found after the crash, not the old one before it.
    let s = scenario(&format!(
        "duration = \"10s\"\n{RAFT}[[fault]]\nat = \"2s\"\nkind = \"crash\"\ntarget = \"leader\"\n"
    ));
    let (record, checks) = run(&s);
    let l = check(&checks, "liveness");
    assert_eq!(l.verdict, Verdict::Pass, "{l:?}");
    let crashed = record.lifecycle[0].node;
    assert!(
        l.summary.contains(&format!(
            "after the crash of {} at 2000.0ms",
            record.topology.name(crashed)
        )),
        "{}",
        l.summary
    );
    assert!(
        !l.summary
            .contains(&format!("leader {} ", record.topology.name(crashed)))
    );
}

#[test]
fn liveness_window_after_the_end_of_the_run_is_unknown() {
    // The partition heals at 9s of 10s: a leader may exist, but no operation can be judged
    // (9s + leader_within 3s is after the end).
    let s = scenario(&format!(
        "duration = \"10s\"\n{RAFT}[[fault]]\nat = \"8s\"\nkind = \"partition\"\nshape = \"halves\"\nduration = \"1s\"\n"
    ));
    let (_, checks) = run(&s);
    let l = check(&checks, "liveness");
    assert_eq!(l.verdict, Verdict::Unknown, "{l:?}");
    // The same faults in a longer run: a window, operations, a pass.
    let s = scenario(&format!(
        "duration = \"15s\"\n{RAFT}[[fault]]\nat = \"8s\"\nkind = \"partition\"\nshape = \"halves\"\nduration = \"1s\"\n"
    ));
    let (_, checks) = run(&s);
    assert_eq!(check(&checks, "liveness").verdict, Verdict::Pass);
}

#[test]
fn availability_does_not_count_a_side_of_crashed_servers_as_majority() {
    // n2 and n3 crash for good at 1s; at 2s n1, n2, n3 are cut off from n4, n5. The side of
    // n1..n3 holds only one up server: no side can serve, so nothing is a majority-side failure.
    let s = scenario(
        "duration = \"8s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 5\n\
         [workload]\nclients = 5\nthink_time = \"10ms\"\n\
         [[fault]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"n2\"\n\
         [[fault]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"n3\"\n\
         [[fault]]\nat = \"2s\"\nkind = \"partition\"\ngroups = [[\"n1\", \"n2\", \"n3\"], [\"n4\", \"n5\"]]\nduration = \"3s\"\n\
         [check.availability]\nmajority_ok_min = 0.5\nminority_ok_max = 0.0\n",
    );
    let (_, checks) = run(&s);
    let a = check(&checks, "availability");
    assert_eq!(a.metrics["majority_ops"], 0, "{a:?}");
    assert!(a.metrics["minority_ops"].as_u64().unwrap() > 0, "{a:?}");
    assert_eq!(a.verdict, Verdict::Unknown, "{a:?}");
    assert!(a.evidence[0].contains("(down: n2,n3)"), "{:?}", a.evidence);
}

#[test]
fn no_decision_fails_when_the_deciding_majority_is_named() {
    let text = shipped("scenarios/raft/minority-does-not-decide.toml");
    let (_, checks) = run(&scenario(&text));
    assert_eq!(check(&checks, "no-decision").verdict, Verdict::Pass);
    let majority = text.replace(
        "nodes = [\"n4\", \"n5\", \"c4\", \"c5\"]",
        "nodes = [\"n1\", \"n2\", \"n3\", \"c1\"]",
    );
    assert_ne!(majority, text);
    let (_, checks) = run(&scenario(&majority));
    let n = check(&checks, "no-decision");
    assert_eq!(n.verdict, Verdict::Fail, "{n:?}");
    assert!(n.metrics["decisions"].as_u64().unwrap() > 0, "{n:?}");
    assert!(n.metrics["ok_answers"].as_u64().unwrap() > 0, "{n:?}");
}

#[test]
fn no_decision_catches_a_deposed_leader_answering_from_local_state() {
    // The planted bug lets the old leader, cut off with one follower from 3s to 8s, answer reads
    // from its own state: ok answers on a side that cannot decide. At seed 1 the halves shape
    // puts the leader and one follower, n4 and n5 (clients c4, c5), on the minority side.
    let text = shipped("scenarios/raft/bugs/read-from-local-state.toml").replace(
        "[expect]",
        "[check.no-decision]\nfrom = \"3050ms\"\nuntil = \"8s\"\nnodes = [\"c4\", \"c5\"]\n[expect]",
    );
    let (record, checks) = run(&scenario(&text));
    let sides = record.partitions[0]
        .sides
        .clone()
        .expect("halves has sides");
    let minority = sides.iter().min_by_key(|s| s.len()).expect("two sides");
    assert_eq!(
        record.topology.names_of(minority),
        ["n4", "n5"],
        "the seed's partition moved"
    );
    let n = check(&checks, "no-decision");
    assert_eq!(n.verdict, Verdict::Fail, "{n:?}");
    assert!(n.evidence[0].contains("answered ok: c"), "{:?}", n.evidence);
}

#[test]
fn bounds_fail_when_the_run_exceeds_them() {
    let text = shipped("scenarios/raft/bounds-leader-crash.toml");
    let (_, checks) = run(&scenario(&text));
    let b = check(&checks, "bounds");
    assert_eq!(b.verdict, Verdict::Pass, "{b:?}");
    assert!(
        b.metrics["elections"].as_u64().unwrap() >= 1,
        "the crash forces an election"
    );
    for (from, to) in [
        ("elections_max = 4", "elections_max = 0"),
        ("messages_per_op_max = 30", "messages_per_op_max = 2"),
        ("bytes_per_op_max = 4000", "bytes_per_op_max = 100"),
        ("latency_mean_max = \"30ms\"", "latency_mean_max = \"1ms\""),
        (
            "latency_percentile_max = \"100ms\"",
            "latency_percentile_max = \"2ms\"",
        ),
    ] {
        let tight = text.replace(from, to);
        assert_ne!(tight, text, "{from}");
        let (_, checks) = run(&scenario(&tight));
        let b = check(&checks, "bounds");
        assert_eq!(b.verdict, Verdict::Fail, "{to}: {b:?}");
        assert_eq!(b.summary, "1 of 5 bounds exceeded", "{to}");
    }
}

#[test]
fn byte_bounds_are_judged_without_a_trace_and_agree_with_a_traced_run() {
    let text = format!(
        "duration = \"3s\"\n{RAFT}[check.bounds]\nbytes_per_op_max = 100000\ndurable_bytes_max = 100000000\n"
    );
    let s = scenario(&text);
    // Without a kept trace (as in `faultline test`) both bounds are judged.
    let (untraced, checks) = run(&s);
    let b = check(&checks, "bounds");
    assert_eq!(b.verdict, Verdict::Pass, "{b:?}");
    let bytes = b.metrics["bytes_per_op"].as_f64().expect("measured");
    assert!(bytes > 20.0, "{bytes}");
    let durable = b.metrics["durable_bytes_max"].as_u64().expect("measured");
    assert!(durable > 0, "a Raft server's log is on its disk: {durable}");
    // Keeping the trace changes nothing: the counts come from the record.
    let traced = sim::run(&s, s.seed, &RunOptions::default());
    assert!(!traced.trace_jsonl.is_empty());
    assert_eq!(
        traced.stats.message_bytes_sent,
        untraced.stats.message_bytes_sent
    );
    assert_eq!(traced.final_durable_bytes, untraced.final_durable_bytes);
    let tb = run_checks(&traced)
        .into_iter()
        .find(|c| c.name == "bounds")
        .expect("bounds ran");
    assert_eq!(tb.metrics, b.metrics);
    // The bytes bound can fail: just below the measured value.
    let tight = text.replace(
        "bytes_per_op_max = 100000",
        &format!("bytes_per_op_max = {}", bytes * 0.99),
    );
    let (_, checks) = run(&scenario(&tight));
    assert_eq!(check(&checks, "bounds").verdict, Verdict::Fail);
    let tight = text.replace(
        "durable_bytes_max = 100000000",
        &format!("durable_bytes_max = {}", durable - 1),
    );
    let (_, checks) = run(&scenario(&tight));
    assert_eq!(check(&checks, "bounds").verdict, Verdict::Fail);
}
