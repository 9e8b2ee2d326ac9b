//! `convergence` (liveness, broadcast): after the final heal, every server that is up holds every
//! value that was acknowledged to a client, within `within`.
//!
//! What a node holds is replayed from its `holds` observations, cleared by each crash (a node
//! keeps only what it reloads and re-observes on restart). A value acknowledged at time `a` must
//! be held by every up server at `max(final_heal, a) + within`. If the run ends before that
//! deadline, or faults were still active at the end, the verdict is `unknown`: the run cannot
//! tell. The reported time to converge (`converge_ns`) is the longest any acknowledged value took
//! to reach the last up server, measured from the final heal or from its acknowledgement,
//! whichever is later.

use std::collections::{BTreeMap, BTreeSet};

use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::families::broadcast;
use crate::history::{EventType, Function, Value};
use crate::process::NodeId;
use crate::scenario::Verdict;
use crate::sim::{LifecycleKind, RunRecord, is_up};

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "convergence",
    summary: "after the final heal every up node holds every acknowledged value within a bound",
    applies_to: |s| s.runs_protocol(super::PROTOCOL.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_within,
    resolve: check::resolve_as::<Config>,
    run,
};

/// `[check.convergence]` options: `within` is how long after the final heal (or after a later
/// acknowledgement) every up node must hold the value.
pub type Config = check::Within;

/// When each server (last) came to hold each value, replaying crashes.
fn holdings(record: &RunRecord) -> BTreeMap<NodeId, BTreeMap<u64, u64>> {
    enum Step {
        Holds(u64),
        Crash,
    }
    let mut steps: Vec<(u64, u64, NodeId, Step)> = Vec::new();
    for o in &record.observations {
        if let Some(&broadcast::Observation::Holds { value }) = o.get() {
            steps.push((o.t_ns, o.seq, o.node, Step::Holds(value)));
        }
    }
    for l in &record.lifecycle {
        if l.kind == LifecycleKind::Crash {
            steps.push((l.t_ns, l.seq, l.node, Step::Crash));
        }
    }
    steps.sort_by_key(|s| (s.0, s.1));
    let mut held: BTreeMap<NodeId, BTreeMap<u64, u64>> = BTreeMap::new();
    for (t, _, node, step) in steps {
        let values = held.entry(node).or_default();
        match step {
            Step::Holds(v) => {
                values.entry(v).or_insert(t);
            }
            Step::Crash => values.clear(),
        }
    }
    held
}

fn run(record: &RunRecord) -> CheckResult {
    let config: Config = record.scenario.check_options(CHECK.name);
    let config = &config;
    let within = config.within.as_nanos();
    let Some(final_heal) = record.final_heal_ns else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            "faults were still active at the end of the run (cut links or paused nodes): no final heal to measure from",
        );
        r.evidence.push(
            "add a `duration` to each fault, a `heal`/`resume` fault, or a nemesis `final_heal`"
                .into(),
        );
        return r;
    };
    let acked: BTreeMap<u64, u64> = record
        .history
        .iter()
        .filter(|e| e.kind == EventType::Ok && e.f == Function::Broadcast)
        .filter_map(|e| match e.value {
            Value::Int(v) => Some((*v as u64, e.time_ns)),
            _ => None,
        })
        .collect();
    let topo = &record.topology;
    let up: Vec<NodeId> = topo
        .servers
        .iter()
        .copied()
        .filter(|s| is_up(record.final_status[s.index()]))
        .collect();
    let down: Vec<NodeId> = topo
        .servers
        .iter()
        .copied()
        .filter(|s| !up.contains(s))
        .collect();
    let held = holdings(record);
    let empty = BTreeMap::new();

    let mut missing: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
    let mut unjudged: BTreeSet<u64> = BTreeSet::new();
    // Per value: how long after it became deliverable (final heal or acknowledgement, whichever
    // is later) the last up server learned it.
    let mut converge_ns = 0u64;
    let mut slowest: Option<(u64, NodeId)> = None;
    let mut judged = 0usize;
    for (&value, &acked_at) in &acked {
        let from = final_heal.max(acked_at);
        let deadline = from + within;
        if deadline > record.end_ns {
            unjudged.insert(value);
            continue;
        }
        judged += 1;
        for &node in &up {
            match held.get(&node).unwrap_or(&empty).get(&value) {
                Some(&t) if t <= deadline => {
                    let took = t.saturating_sub(from);
                    if took >= converge_ns {
                        converge_ns = took;
                        slowest = Some((value, node));
                    }
                }
                _ => missing.entry(node).or_default().push(value),
            }
        }
    }
    let mut result = if !missing.is_empty() {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{} of {} up nodes lack acknowledged values {} after the final heal at {}",
                missing.len(),
                up.len(),
                config.within,
                ms(final_heal)
            ),
        );
        for (node, values) in &missing {
            let shown: Vec<String> = values.iter().take(10).map(|v| v.to_string()).collect();
            let more = if values.len() > 10 {
                format!(" and {} more", values.len() - 10)
            } else {
                String::new()
            };
            r.evidence.push(format!(
                "{} lacked value(s) {}{} at their deadline (acknowledged to clients from {} on)",
                topo.name(*node),
                shown.join(", "),
                more,
                ms(acked[&values[0]])
            ));
        }
        r
    } else if judged == 0 {
        CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            if acked.is_empty() {
                "no value was acknowledged to a client, so there is nothing to converge on"
                    .to_string()
            } else {
                format!(
                    "the run ends before final heal + {} for every acknowledged value; lengthen `duration`",
                    config.within
                )
            },
        )
    } else {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "all {} up nodes held all {} judged acknowledged values; slowest took {} after the final heal at {} or its acknowledgement",
                up.len(),
                judged,
                ms(converge_ns),
                ms(final_heal)
            ),
        )
    };
    if let Some((value, node)) = slowest {
        result.evidence.push(format!(
            "slowest: value {value} reached {} last",
            topo.name(node)
        ));
    }
    if !down.is_empty() {
        result.evidence.push(format!(
            "not judged (down at the end): {}",
            topo.names_of(&down).join(", ")
        ));
    }
    if !unjudged.is_empty() {
        result.evidence.push(format!(
            "{} value(s) acknowledged too late to judge (deadline after the end of the run)",
            unjudged.len()
        ));
    }
    result
        .metrics
        .insert("final_heal_ns".into(), final_heal.into());
    result
        .metrics
        .insert("converge_ns".into(), converge_ns.into());
    result
        .metrics
        .insert("acknowledged_values".into(), acked.len().into());
    result
}
