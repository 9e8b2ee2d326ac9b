//! `availability` (key-value protocols; shared by Raft and Paxos): for every partition interval,
//! the fraction of client operations that succeeded, split by the side each client was on.
//!
//! Partition intervals come from `RunRecord.partitions`: the run is cut into segments at every
//! partition start and heal; a segment during which at least one partition is active is judged
//! with the union of the links cut at that time (overlapping faults combine).
//!
//! Sides are defined over **up, connected** nodes: a crashed or paused server answers nobody, so
//! it is not part of any side that should serve. Partition segments are therefore also cut at
//! every crash, restart, pause and resume that happens while a partition is active, and each
//! segment is judged with the nodes that are up (neither crashed nor paused) during it.
//!
//! A client's side is decided by what it can actually reach, because that is what its requests
//! can: the up servers it exchanges messages with in both directions. It is on the **majority
//! side** if one of those servers is connected (both ways) to a majority of all the servers
//! (counted over the configured cluster), every one of them up, itself included; otherwise on the
//! **minority side**, which also holds the clients whose reachable servers are crashed or paused
//! (a side of crashed servers cannot serve, so its failures are no availability loss of the
//! majority). For the kernel's side-based partitions a client follows its home server
//! (`topology.homes`), so this is its home server's side; for `isolate` (which cuts only the
//! target's links) a client of the isolated server can still reach the rest of the cluster, and
//! is rightly counted on the majority side.
//!
//! An operation belongs to the segment in which it was invoked. It is counted if it ended (ok,
//! fail or info) before the segment ended, and it *succeeded* if it ended `ok` then. Operations
//! still pending when a segment ends are left out (they are judged by nobody here), so a heal
//! cannot make a minority operation look like a partition-time success.
//!
//! A CP system such as Raft must keep the minority side from completing writes and linearizable
//! reads (`minority_ok_max = 0.0`), and the majority side should keep serving
//! (`majority_ok_min`). Both fractions are always reported (aggregated over every interval, and
//! per interval in the evidence); a threshold is only enforced when the scenario sets it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::check::ops::{Operation, operations};
use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::family::OptionError;
use crate::process::NodeId;
use crate::scenario::Scenario;
use crate::scenario::Verdict;
use crate::scenario::topology::Topology;
use crate::sim::{LifecycleKind, RunRecord};

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "availability",
    summary: "per partition interval, the fraction of operations that succeeded on the majority and on the minority side (thresholds optional)",
    applies_to: |s| s.workloads().iter().any(|w| w.history.availability),
    enabled: check::on_unless_disabled,
    validate: validate_options,
    resolve: check::resolve_as::<Config>,
    run,
};

fn validate_options(table: &toml::Table, _: &Scenario, _: &Topology) -> Vec<OptionError> {
    check::validate_with(table, |c: &Config| {
        [
            ("majority_ok_min", c.majority_ok_min),
            ("minority_ok_max", c.minority_ok_max),
        ]
        .into_iter()
        .filter_map(|(key, p)| Some((key, p?)))
        .filter(|(_, p)| !(0.0..=1.0).contains(p))
        .map(|(key, p)| {
            OptionError::at(
                key,
                format!("expected a probability between 0 and 1, found {p}"),
            )
        })
        .collect()
    })
}

/// `[check.availability]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// If set, at least this fraction (0 to 1) of the counted majority-side operations, over all
    /// partition intervals, must succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub majority_ok_min: Option<f64>,
    /// If set, at most this fraction (0 to 1) of the counted minority-side operations, over all
    /// partition intervals, may succeed (`0.0` for a CP system).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minority_ok_max: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            majority_ok_min: None,
            minority_ok_max: None,
        }
    }
}

/// Which side of a partition a client is on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Side {
    /// It reaches a server that is connected to a majority of the servers.
    Majority,
    /// It does not.
    Minority,
}

/// The side of `client` when the directed links in `cut` are cut and only the nodes with
/// `up[node index]` true are running (neither crashed nor paused), and the up servers it reaches.
pub fn client_side(
    topology: &Topology,
    cut: &BTreeSet<(NodeId, NodeId)>,
    up: &[bool],
    client: NodeId,
) -> (Side, Vec<NodeId>) {
    client_side_among(&topology.servers, cut, up, client)
}

/// [`client_side`] over the nodes `servers` only (e.g. one role's nodes in a cluster of
/// several server roles): the majority counts `servers`.
pub fn client_side_among(
    servers: &[NodeId],
    cut: &BTreeSet<(NodeId, NodeId)>,
    up: &[bool],
    client: NodeId,
) -> (Side, Vec<NodeId>) {
    let is_up = |n: NodeId| up.get(n.index()).copied().unwrap_or(false);
    let linked = |a: NodeId, b: NodeId| !cut.contains(&(a, b)) && !cut.contains(&(b, a));
    let majority = servers.len() / 2 + 1;
    let reach: Vec<NodeId> = servers
        .iter()
        .copied()
        .filter(|&s| is_up(client) && is_up(s) && linked(client, s))
        .collect();
    let side = if reach.iter().any(|&s| {
        servers
            .iter()
            .filter(|&&o| is_up(o) && (o == s || linked(s, o)))
            .count()
            >= majority
    }) {
        Side::Majority
    } else {
        Side::Minority
    };
    (side, reach)
}

/// Which nodes (by index) are up, neither crashed nor paused, once every lifecycle change at or
/// before `t_ns` has happened.
pub fn up_at(record: &RunRecord, t_ns: u64) -> Vec<bool> {
    let mut up = vec![true; record.topology.len()];
    for l in record.lifecycle.iter().filter(|l| l.t_ns <= t_ns) {
        if let Some(u) = up.get_mut(l.node.index()) {
            *u = matches!(l.kind, LifecycleKind::Restart | LifecycleKind::Resume);
        }
    }
    up
}

/// The partition segments of a run, cut further at every lifecycle change inside them, each with
/// the nodes up during it.
pub fn judged_segments(record: &RunRecord) -> Vec<(Segment, Vec<bool>)> {
    let mut out = Vec::new();
    for seg in segments(record) {
        let mut cuts: Vec<u64> = record
            .lifecycle
            .iter()
            .map(|l| l.t_ns)
            .filter(|&t| t > seg.start_ns && t < seg.end_ns)
            .collect();
        cuts.dedup();
        let mut start = seg.start_ns;
        for end in cuts.into_iter().chain([seg.end_ns]) {
            let piece = Segment {
                start_ns: start,
                end_ns: end,
                ..seg.clone()
            };
            out.push((piece, up_at(record, start)));
            start = end;
        }
    }
    out
}

/// A stretch of time during which the same set of partitions was active.
#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    /// Start (global ns).
    pub start_ns: u64,
    /// End (global ns, exclusive).
    pub end_ns: u64,
    /// Union of the links cut.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// The faults whose cuts are active.
    pub fault_ids: Vec<u64>,
}

/// The partition segments of a run, in time order.
pub fn segments(record: &RunRecord) -> Vec<Segment> {
    let end = |p: &crate::sim::PartitionRecord| p.end_ns.unwrap_or(record.end_ns);
    let mut bounds: BTreeSet<u64> = BTreeSet::new();
    for p in &record.partitions {
        bounds.insert(p.start_ns);
        bounds.insert(end(p));
    }
    let bounds: Vec<u64> = bounds.into_iter().collect();
    let mut out: Vec<Segment> = Vec::new();
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        let active: Vec<&crate::sim::PartitionRecord> = record
            .partitions
            .iter()
            .filter(|p| p.start_ns <= a && end(p) > a)
            .collect();
        if active.is_empty() {
            continue;
        }
        let cut: BTreeSet<(NodeId, NodeId)> = active
            .iter()
            .flat_map(|p| p.cut_links.iter().copied())
            .collect();
        let fault_ids = active.iter().map(|p| p.fault_id).collect();
        out.push(Segment {
            start_ns: a,
            end_ns: b,
            cut,
            fault_ids,
        });
    }
    out
}

#[derive(Default)]
struct Tally {
    counted: u64,
    ok: u64,
}

impl Tally {
    fn fraction(&self) -> Option<f64> {
        (self.counted > 0).then(|| self.ok as f64 / self.counted as f64)
    }
    fn describe(&self) -> String {
        match self.fraction() {
            Some(f) => format!("{} of {} ok ({:.1}%)", self.ok, self.counted, f * 100.0),
            None => "no operation counted".into(),
        }
    }
}

fn run(record: &RunRecord) -> CheckResult {
    let config: Config = record.scenario.check_options(CHECK.name);
    let config = &config;
    let topo = &record.topology;
    let segs = judged_segments(record);
    if segs.is_empty() {
        return CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            "no partition during the run: nothing to split by side",
        );
    }
    let ops: Vec<Operation> = operations(&record.history)
        .into_iter()
        .filter(|o| o.key.is_some())
        .collect();
    let (mut majority, mut minority) = (Tally::default(), Tally::default());
    let mut evidence = Vec::new();
    let mut minority_successes: Vec<String> = Vec::new();
    for (seg, up) in &segs {
        let (mut maj, mut min) = (Tally::default(), Tally::default());
        let mut sides_text: Vec<String> = Vec::new();
        for &client in &topo.clients {
            let (side, reach) = client_side(topo, &seg.cut, up, client);
            sides_text.push(format!(
                "{} {} (reaches {})",
                topo.name(client),
                match side {
                    Side::Majority => "majority",
                    Side::Minority => "minority",
                },
                if reach.is_empty() {
                    "no up server".to_string()
                } else {
                    topo.names_of(&reach).join(",")
                }
            ));
            for op in ops.iter().filter(|o| {
                o.node == topo.name(client)
                    && o.invoke_ns >= seg.start_ns
                    && o.invoke_ns < seg.end_ns
                    && o.complete_ns.is_some_and(|c| c <= seg.end_ns)
            }) {
                let tally = match side {
                    Side::Majority => &mut maj,
                    Side::Minority => &mut min,
                };
                tally.counted += 1;
                if op.is_ok() {
                    tally.ok += 1;
                    if side == Side::Minority {
                        minority_successes.push(op.describe());
                    }
                }
            }
        }
        let down: Vec<NodeId> = topo
            .servers
            .iter()
            .copied()
            .filter(|s| !up[s.index()])
            .collect();
        let down_text = if down.is_empty() {
            String::new()
        } else {
            format!(" (down: {})", topo.names_of(&down).join(","))
        };
        evidence.push(format!(
            "[{}, {}) faults {:?}{down_text}: majority side {}; minority side {}; clients: {}",
            ms(seg.start_ns),
            ms(seg.end_ns),
            seg.fault_ids,
            maj.describe(),
            min.describe(),
            sides_text.join(", ")
        ));
        majority.counted += maj.counted;
        majority.ok += maj.ok;
        minority.counted += min.counted;
        minority.ok += min.ok;
    }
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    if let Some(min_ok) = config.majority_ok_min {
        match majority.fraction() {
            Some(f) if f < min_ok => problems.push(format!(
                "majority side: {} is below majority_ok_min = {min_ok}",
                majority.describe()
            )),
            Some(_) => {}
            None => {
                unknown.push("majority_ok_min is set but no majority-side operation was counted")
            }
        }
    }
    if let Some(max_ok) = config.minority_ok_max
        && let Some(f) = minority.fraction()
        && f > max_ok
    {
        problems.push(format!(
            "minority side: {} is above minority_ok_max = {max_ok}",
            minority.describe()
        ));
        for s in minority_successes.iter().take(5) {
            evidence.insert(0, format!("minority-side success: {s}"));
        }
    }
    let totals = format!(
        "{} partition interval(s): majority side {}, minority side {}",
        segs.len(),
        majority.describe(),
        minority.describe()
    );
    let mut result = if !problems.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!("{}; {totals}", problems.join("; ")),
        )
    } else if !unknown.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            format!("{}; {totals}", unknown.join("; ")),
        )
    } else {
        CheckResult::new(CHECK.name, Verdict::Pass, totals)
    };
    result.evidence = evidence;
    let m = &mut result.metrics;
    m.insert("intervals".into(), segs.len().into());
    m.insert("majority_ops".into(), majority.counted.into());
    m.insert("majority_ok".into(), majority.ok.into());
    m.insert("majority_ok_fraction".into(), majority.fraction().into());
    m.insert("minority_ops".into(), minority.counted.into());
    m.insert("minority_ok".into(), minority.ok.into());
    m.insert("minority_ok_fraction".into(), minority.fraction().into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{op, put, record};
    use crate::history::{EventType, Function, Value};
    use crate::sim::PartitionRecord;

    fn ids(v: &[u32]) -> Vec<NodeId> {
        v.iter().map(|&i| NodeId(i)).collect()
    }

    const MS: u64 = 1_000_000;

    /// A partition of five servers into {n1, n3, n4} and {n2, n5} from 100ms to 1s.
    fn partition_2_3(rec: &mut RunRecord) {
        let plan = crate::sim::faults::PartitionPlan::Sides(vec![ids(&[0, 2, 3]), ids(&[1, 4])]);
        rec.partitions.push(PartitionRecord {
            fault_id: 0,
            start_ns: 100 * MS,
            end_ns: Some(1000 * MS),
            sides: None,
            cut_links: crate::sim::faults::cut_links(&plan, &rec.topology, &[]),
        });
    }

    #[test]
    fn clients_are_split_by_what_they_can_reach() {
        let rec = record(5, 3, "");
        let topo = &rec.topology;
        // n1..n5 = 0..4, c1..c3 = 5..7 with homes n1, n2, n3.
        let plan = crate::sim::faults::PartitionPlan::Sides(vec![ids(&[0, 2, 3]), ids(&[1, 4])]);
        let cut: BTreeSet<_> = crate::sim::faults::cut_links(&plan, topo, &[])
            .into_iter()
            .collect();
        let up = vec![true; topo.len()];
        assert_eq!(client_side(topo, &cut, &up, NodeId(5)).0, Side::Majority);
        assert_eq!(client_side(topo, &cut, &up, NodeId(6)).0, Side::Minority);
        // Isolating n1 leaves its client c1 connected to the other four servers.
        let cut: BTreeSet<_> = crate::sim::faults::isolate_links(&ids(&[0]), topo)
            .into_iter()
            .collect();
        let (side, reach) = client_side(topo, &cut, &up, NodeId(5));
        assert_eq!(side, Side::Majority);
        assert_eq!(reach, ids(&[1, 2, 3, 4]));
    }

    #[test]
    fn fractions_are_per_side_and_thresholds_are_enforced() {
        let mut rec = record(
            5,
            2,
            "[check.availability]\nmajority_ok_min = 0.5\nminority_ok_max = 0.0\n",
        );
        partition_2_3(&mut rec);
        // c1 (majority): one ok, one info. c2 (minority): one info, one pending at the heal.
        rec.history = [
            put(1, "c1", "a", 200, EventType::Ok, 210),
            put(1, "c1", "b", 300, EventType::Info, 800),
            put(2, "c2", "c", 200, EventType::Info, 700),
            put(2, "c2", "d", 900, EventType::Ok, 1100),
            put(1, "c1", "e", 50, EventType::Ok, 60),
        ]
        .concat()
        .into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["majority_ops"], 2);
        assert_eq!(r.metrics["majority_ok"], 1);
        assert_eq!(
            r.metrics["minority_ops"], 1,
            "the op pending at the heal is left out"
        );
        assert_eq!(r.metrics["minority_ok"], 0);
        // A minority success inside the interval fails the CP threshold and is cited.
        rec.history.extend(op(
            2,
            "c2",
            Function::Get,
            Value::Nil,
            400,
            EventType::Ok,
            Value::Str("a".into()),
            450,
        ));
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("c2 get"), "{:?}", r.evidence);
    }

    #[test]
    fn a_side_whose_servers_are_crashed_is_not_a_majority_side() {
        let rec = record(5, 3, "");
        let topo = &rec.topology;
        let plan = crate::sim::faults::PartitionPlan::Sides(vec![ids(&[0, 2, 3]), ids(&[1, 4])]);
        let cut: BTreeSet<_> = crate::sim::faults::cut_links(&plan, topo, &[])
            .into_iter()
            .collect();
        // n3 and n4 (indexes 2, 3) crashed: c1's side {n1, n3, n4} has one up server.
        let mut up = vec![true; topo.len()];
        up[2] = false;
        up[3] = false;
        let (side, reach) = client_side(topo, &cut, &up, NodeId(5));
        assert_eq!(side, Side::Minority);
        assert_eq!(reach, ids(&[0]));
        // A paused server counts as down too: without n1, c1 reaches n3 and n4, two of five.
        let mut up = vec![true; topo.len()];
        up[0] = false;
        assert_eq!(
            client_side(topo, &cut, &up, NodeId(5)),
            (Side::Minority, ids(&[2, 3]))
        );
        // A down client reaches nothing.
        let mut up = vec![true; topo.len()];
        up[5] = false;
        assert_eq!(
            client_side(topo, &cut, &up, NodeId(5)),
            (Side::Minority, vec![])
        );
    }

    #[test]
    fn crashes_during_a_partition_split_its_interval_and_move_clients_off_the_majority() {
        let mut rec = record(5, 1, "[check.availability]\nmajority_ok_min = 0.5\n");
        partition_2_3(&mut rec);
        crate::check::testing::lifecycle(&mut rec, 400, 2, LifecycleKind::Crash);
        crate::check::testing::lifecycle(&mut rec, 400, 3, LifecycleKind::Pause);
        rec.history = [
            put(1, "c1", "a", 200, EventType::Ok, 210),
            // After n3 crashed and n4 paused, c1's side cannot serve: these are no majority loss.
            put(1, "c1", "b", 450, EventType::Info, 700),
            put(1, "c1", "c", 710, EventType::Info, 900),
        ]
        .concat()
        .into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["intervals"], 2);
        assert_eq!(r.metrics["majority_ops"], 1);
        assert_eq!(r.metrics["minority_ops"], 2);
        assert!(r.evidence[1].contains("down: n3,n4"), "{:?}", r.evidence);
        // Counting the crashed side as a majority would have failed majority_ok_min (1 of 3).
        crate::check::testing::lifecycle(&mut rec, 440, 2, LifecycleKind::Restart);
        crate::check::testing::lifecycle(&mut rec, 440, 3, LifecycleKind::Resume);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["majority_ops"], 3);
    }

    #[test]
    fn a_run_without_partitions_passes_with_nothing_to_split() {
        let rec = record(3, 1, "");
        assert_eq!(run(&rec).verdict, Verdict::Pass);
    }
}
