//! `no-decision` (every protocol): nothing new was chosen, committed or answered `ok` during an
//! interval, by the nodes named. Written for "a minority must not decide": name the servers and
//! clients of the minority side and the interval of the partition (starting a little after the
//! cut, so that answers already in flight are not counted). A safety check; it runs only when
//! `[check.no-decision]` sets `from` and `until`.
//!
//! A decision is, for a node in `nodes`, at a time in `[from, until)`:
//! - Raft: a `commit` observation (the leader advanced its commit index) above every index any
//!   node reported committed before;
//! - single-decree Paxos: a `learned` observation of an instance and value no node had learned
//!   before (a learner re-reading its disk after a restart decides nothing new);
//! - Multi-Paxos: an `applied` observation of a slot no replica had applied before (a value is
//!   applied once chosen), or a `learned` of an instance and value no node had learned before;
//! - every protocol: a client history completion `ok` (an answer the client may act on).
//!
//! "Before" covers the whole run up to the decision, on every node, so a value decided by the
//! majority before the interval and re-reported by a minority node inside it does not count.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::check::ops::operations;
use crate::check::{self, CheckInfo, CheckResult, ms, until_problem};
use crate::family::OptionError;
use crate::process::NodeId;
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, Verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "no-decision",
    summary: "nothing new chosen, committed or answered ok by the named nodes during an interval (a minority must not decide)",
    applies_to: |_| true,
    enabled: |t| {
        check::on_unless_disabled(t) && check::parse_or_default::<Config>(t).from.is_some()
    },
    validate: validate_options,
    resolve: check::resolve_as::<Config>,
    run,
};

fn validate_options(table: &toml::Table, s: &Scenario, topology: &Topology) -> Vec<OptionError> {
    check::validate_with(table, |c: &Config| {
        c.problems(s.duration, topology)
            .into_iter()
            .map(|(key, index, message)| match index {
                Some(i) => OptionError::at_path(&[key, &i.to_string()], message),
                None => OptionError::at(key, message),
            })
            .collect()
    })
}

/// `[check.no-decision]` options. `from` and `until` are required together; without them the
/// check does not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check when an interval is set (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Start of the interval (simulated time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Duration>,
    /// End of the interval (exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Duration>,
    /// The nodes that must not decide: node or group names, `"servers"`, `"clients"` (default:
    /// every node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            from: None,
            until: None,
            nodes: None,
        }
    }
}

impl Config {
    /// True if no interval is set (the check does not run).
    pub fn is_unset(&self) -> bool {
        self.from.is_none() && self.until.is_none()
    }

    /// Problems with the options, as (key, index in `nodes` if any, what was expected), for
    /// scenario validation.
    pub fn problems(
        &self,
        run: Duration,
        topology: &Topology,
    ) -> Vec<(&'static str, Option<usize>, String)> {
        let mut out = Vec::new();
        match (self.from, self.until) {
            (Some(from), Some(until)) => {
                if let Some(problem) = until_problem(from, until, run) {
                    out.push(("until", None, problem));
                }
            }
            (None, None) => {}
            (Some(_), None) => out.push((
                "from",
                None,
                "`from` needs `until`: the interval is [from, until)".into(),
            )),
            (None, Some(_)) => out.push((
                "until",
                None,
                "`until` needs `from`: the interval is [from, until)".into(),
            )),
        }
        if let Some(nodes) = &self.nodes {
            if nodes.is_empty() {
                out.push(("nodes", None, "expected at least one node".into()));
            }
            for (i, r) in nodes.iter().enumerate() {
                if topology.resolve_static(r).is_none_or(|ids| ids.is_empty()) {
                    out.push((
                        "nodes",
                        Some(i),
                        format!(
                            "unknown node or group \"{r}\"; expected one of {}, a group, \"all\", \"servers\", \"clients\"",
                            topology.names.join(", ")
                        ),
                    ));
                }
            }
        }
        out
    }

    /// The nodes named (every node if none).
    fn node_set(&self, topology: &Topology) -> BTreeSet<NodeId> {
        match &self.nodes {
            None => (0..topology.len() as u32).map(NodeId).collect(),
            Some(refs) => refs
                .iter()
                .flat_map(|r| topology.resolve_static(r).unwrap_or_default())
                .collect(),
        }
    }
}

/// (time, node, description) of every decision in the run, from every family that reports
/// decisions (`Family::decisions`), in time order.
fn decisions(record: &RunRecord) -> Vec<(u64, NodeId, String)> {
    let mut out: Vec<(u64, NodeId, String)> = record
        .scenario
        .registry()
        .families()
        .iter()
        .filter_map(|f| f.decisions)
        .flat_map(|decisions| decisions(record))
        .collect();
    out.sort_by_key(|d| d.0);
    out
}

fn run(record: &RunRecord) -> CheckResult {
    let c: Config = record.scenario.check_options(CHECK.name);
    let c = &c;
    let topo = &record.topology;
    let (Some(from), Some(until)) = (c.from, c.until) else {
        return CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            "no interval: set both `from` and `until`",
        );
    };
    let (from, until) = (from.as_nanos(), until.as_nanos());
    let interval = format!("[{}, {})", ms(from), ms(until));
    if from >= record.end_ns {
        return CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            format!(
                "the interval {interval} starts after the run ended at {}",
                ms(record.end_ns)
            ),
        );
    }
    let nodes = c.node_set(topo);
    let inside = |t: u64, node: NodeId| t >= from && t < until && nodes.contains(&node);
    let mut found: Vec<(u64, String)> = decisions(record)
        .into_iter()
        .filter(|(t, node, _)| inside(*t, *node))
        .map(|(t, node, what)| (t, format!("{} {what} at {}", topo.name(node), ms(t))))
        .collect();
    let mut answered = 0u64;
    for o in operations(&record.history) {
        let Some(client) = topo.node(o.node) else {
            continue;
        };
        if let (true, Some(t)) = (o.is_ok(), o.complete_ns)
            && inside(t, client)
        {
            answered += 1;
            found.push((t, format!("answered ok: {}", o.describe())));
        }
    }
    found.sort();
    let names = topo
        .names_of(&nodes.iter().copied().collect::<Vec<_>>())
        .join(",");
    let mut result = if found.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!("{names}: nothing chosen, committed or answered ok in {interval}"),
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{names}: {} decision(s) in {interval}, which must have none",
                found.len()
            ),
        );
        r.evidence = found.iter().take(10).map(|(_, e)| e.clone()).collect();
        r
    };
    if until > record.end_ns {
        result.evidence.push(format!(
            "the run ended at {}, before the interval did",
            ms(record.end_ns)
        ));
    }
    let m = &mut result.metrics;
    m.insert("decisions".into(), (found.len() as u64 - answered).into());
    m.insert("ok_answers".into(), answered.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{enabled, observe, op, put, record};
    use crate::families::{paxos, raft};
    use crate::history::{EventType, Function, Value};

    const OPTS: &str =
        "[check.no-decision]\nfrom = \"2s\"\nuntil = \"4s\"\nnodes = [\"n1\", \"n2\", \"c1\"]\n";

    #[test]
    fn the_check_runs_only_with_an_interval() {
        assert!(!enabled(&CHECK, &record(3, 1, "")));
        assert!(enabled(&CHECK, &record(5, 2, OPTS)));
    }

    #[test]
    fn a_minority_commit_fails_and_a_majority_one_does_not() {
        let mut rec = record(5, 2, OPTS);
        observe(&mut rec, 500, 0, raft::Observation::Commit { index: 3 });
        // The majority (n3) commits during the interval: not a node that must stay quiet.
        observe(&mut rec, 2500, 2, raft::Observation::Commit { index: 5 });
        // The old leader n1 reports an index that is already committed: nothing new.
        observe(&mut rec, 2600, 0, raft::Observation::Commit { index: 4 });
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // n1 commits a new index inside the interval.
        observe(&mut rec, 3000, 0, raft::Observation::Commit { index: 6 });
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("n1 committed up to index 6 at 3000.0ms"),
            "{:?}",
            r.evidence
        );
        // After the interval it is fine again.
        let mut rec = record(5, 2, OPTS);
        observe(&mut rec, 4000, 0, raft::Observation::Commit { index: 6 });
        assert_eq!(run(&rec).verdict, Verdict::Pass);
    }

    #[test]
    fn a_paxos_learn_or_apply_is_new_only_once() {
        let mut rec = record(5, 2, OPTS);
        let learned = |v: &str| paxos::Observation::Learned {
            instance: 1,
            value: v.into(),
        };
        observe(&mut rec, 100, 2, learned("a"));
        // n1 re-learns the same value after a restart, and applies an old slot again.
        observe(
            &mut rec,
            150,
            2,
            paxos::Observation::Applied {
                slot: 1,
                value: "x".into(),
            },
        );
        observe(&mut rec, 2100, 0, learned("a"));
        observe(
            &mut rec,
            2200,
            0,
            paxos::Observation::Applied {
                slot: 1,
                value: "x".into(),
            },
        );
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        observe(
            &mut rec,
            2300,
            1,
            paxos::Observation::Applied {
                slot: 2,
                value: "y".into(),
            },
        );
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("n2 applied \"y\" at slot 2"),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn an_ok_answer_to_a_named_client_fails() {
        let mut rec = record(5, 2, OPTS);
        let v = Value::Str("x".into());
        rec.history = [
            // c2 is not named; c1's info answer and its ok answer before the interval are fine.
            put(2, "c2", "x", 2100, EventType::Ok, 2200),
            put(1, "c1", "x", 1900, EventType::Ok, 1990),
            put(1, "c1", "x", 2100, EventType::Info, 3100),
        ]
        .concat()
        .into();
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        rec.history.extend(op(
            1,
            "c1",
            Function::Get,
            Value::Nil,
            3200,
            EventType::Ok,
            v,
            3300,
        ));
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["ok_answers"], 1);
        assert!(
            r.evidence[0].contains("answered ok: c1 get"),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn options_are_validated() {
        let rec = record(3, 1, "");
        let topo = &rec.topology;
        let ten = Duration::from_secs(10);
        let c = |f: u64, u: u64| Config {
            from: Some(Duration::from_secs(f)),
            until: Some(Duration::from_secs(u)),
            ..Config::default()
        };
        assert!(c(1, 2).problems(ten, topo).is_empty());
        assert_eq!(c(2, 2).problems(ten, topo)[0].0, "until");
        assert_eq!(c(2, 11).problems(ten, topo)[0].0, "until");
        let half = Config {
            from: Some(Duration::from_secs(1)),
            ..Config::default()
        };
        assert_eq!(half.problems(ten, topo)[0].0, "from");
        let bad = Config {
            nodes: Some(vec!["n1".into(), "n9".into()]),
            ..c(1, 2)
        };
        let p = bad.problems(ten, topo);
        assert_eq!((p[0].0, p[0].1), ("nodes", Some(1)));
    }
}
