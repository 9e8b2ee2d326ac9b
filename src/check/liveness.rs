//! `liveness` (key-value protocols; shared by Raft and Paxos): after the final heal, a leader
//! within a bound, then every operation answered within a bound. A liveness check, reported
//! separately from the safety checks (STYLE.md rule 11: faults first, then heal and require
//! progress).
//!
//! The final heal is `RunRecord.final_heal_ns`: when the last partition healed, the last paused
//! node resumed or the last crashed node restarted. Without one (faults still active at the end)
//! the verdict is `unknown`.
//!
//! 1. **Leader.** Replaying `role` observations (`CommonObservation::Role`) and crashes, the check
//!    looks for the first instant at or after the final heal at which some up server is `leader`
//!    of a term at least as high as every up server's current term (so a deposed leader that has
//!    not heard the news does not count). It must come within `leader_within`.
//! 2. **Operations.** Every operation invoked at or after `final_heal + leader_within` must be
//!    answered (`ok` or `fail`, not `info`) within `answer_within` of its invocation. Operations
//!    whose deadline falls after the end of the run are not judged.
//!
//! The unit of a term is the protocol's (Raft term, Paxos ballot round).

use serde::{Deserialize, Serialize};

use crate::check::ops::operations;
use crate::check::{CheckInfo, CheckResult, ms};
use crate::process::NodeId;
use crate::protocols::{CommonObservation, Observation, WorkloadKind};
use crate::scenario::{Duration, Verdict};
use crate::sim::{LifecycleKind, RunRecord};

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "liveness",
    summary: "after the final heal: a leader within a bound, then every operation answered within a bound",
    applies_to: |p| p.workload == WorkloadKind::KeyValue,
    enabled: |c| c.liveness.enabled,
    run,
};

/// `[check.liveness]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// A leader must exist this soon after the final heal (default 3s).
    #[serde(default = "default_leader_within")]
    pub leader_within: Duration,
    /// Operations invoked from `final_heal + leader_within` on must be answered this soon after
    /// their invocation (default 2s).
    #[serde(default = "default_answer_within")]
    pub answer_within: Duration,
}

fn default_leader_within() -> Duration {
    Duration::from_secs(3)
}

fn default_answer_within() -> Duration {
    Duration::from_secs(2)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            leader_within: default_leader_within(),
            answer_within: default_answer_within(),
        }
    }
}

/// Roles and liveness of servers, replayed.
struct Roles {
    up: Vec<bool>,
    role: Vec<Option<(String, u64)>>,
}

impl Roles {
    /// The leader whose term is at least every up server's term, if any.
    fn leader(&self) -> Option<(NodeId, u64)> {
        let max_term = (0..self.up.len())
            .filter(|&i| self.up[i])
            .filter_map(|i| self.role[i].as_ref().map(|r| r.1))
            .max()?;
        (0..self.up.len())
            .find(|&i| {
                self.up[i]
                    && self.role[i]
                        .as_ref()
                        .is_some_and(|(r, t)| r == "leader" && *t == max_term)
            })
            .map(|i| (NodeId(i as u32), max_term))
    }

    fn describe(&self, record: &RunRecord) -> String {
        (0..self.up.len())
            .map(|i| {
                let name = record.topology.name(NodeId(i as u32));
                match (&self.role[i], self.up[i]) {
                    (_, false) => format!("{name} down"),
                    (Some((r, t)), true) => format!("{name} {r} (term {t})"),
                    (None, true) => format!("{name} no role yet"),
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The first time in `[from, until]` at which a leader of the highest term exists, with it, and
/// the replayed roles at `until` (or at that time).
fn first_leader(record: &RunRecord, from: u64, until: u64) -> (Option<(u64, NodeId, u64)>, Roles) {
    let n = record.topology.servers.len();
    let mut roles = Roles {
        up: vec![true; n],
        role: vec![None; n],
    };
    enum Step<'a> {
        Role(&'a str, u64),
        Life(LifecycleKind),
    }
    let mut steps: Vec<(u64, u64, NodeId, Step<'_>)> = Vec::new();
    for o in &record.observations {
        if let Observation::Common(CommonObservation::Role { role, term }) = &o.observation {
            steps.push((o.seq, o.t_ns, o.node, Step::Role(role, *term)));
        }
    }
    for l in &record.lifecycle {
        steps.push((l.seq, l.t_ns, l.node, Step::Life(l.kind)));
    }
    steps.sort_by_key(|s| s.0);
    let mut checked_at_from = false;
    for (_, t, node, step) in steps {
        if t > until {
            break;
        }
        if t > from && !checked_at_from {
            checked_at_from = true;
            if let Some((l, term)) = roles.leader() {
                return (Some((from, l, term)), roles);
            }
        }
        let i = node.index();
        if i >= n {
            continue;
        }
        match step {
            Step::Role(r, term) => roles.role[i] = Some((r.to_string(), term)),
            Step::Life(LifecycleKind::Crash) => {
                roles.up[i] = false;
                roles.role[i] = None;
            }
            Step::Life(LifecycleKind::Restart) => roles.up[i] = true,
            Step::Life(_) => {}
        }
        if t >= from {
            if let Some((l, term)) = roles.leader() {
                return (Some((t, l, term)), roles);
            }
        }
    }
    let found = roles.leader().map(|(l, term)| (from, l, term));
    (found, roles)
}

fn run(record: &RunRecord) -> CheckResult {
    let config = &record.scenario.check.liveness;
    let Some(heal) = record.final_heal_ns else {
        return CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            "faults were still active at the end of the run: no final heal to measure from",
        );
    };
    let leader_deadline = heal + config.leader_within.as_nanos();
    let (leader, roles) = first_leader(record, heal, leader_deadline);
    let Some((leader_at, leader, term)) = leader else {
        if record.end_ns < leader_deadline {
            return CheckResult::new(
                CHECK.name,
                Verdict::Unknown,
                format!(
                    "no leader yet, and the run ends before the final heal at {} + leader_within {}",
                    ms(heal),
                    config.leader_within
                ),
            );
        }
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "no leader of the highest term within {} of the final heal at {}",
                config.leader_within,
                ms(heal)
            ),
        );
        r.evidence.push(format!(
            "roles at {}: {}",
            ms(leader_deadline),
            roles.describe(record)
        ));
        return r;
    };
    let within = config.answer_within.as_nanos();
    let judged: Vec<_> = operations(&record.history)
        .into_iter()
        .filter(|o| o.invoke_ns >= leader_deadline && o.invoke_ns + within <= record.end_ns)
        .collect();
    let late: Vec<_> = judged
        .iter()
        .filter(|o| !(o.is_answered() && o.complete_ns.is_some_and(|c| c - o.invoke_ns <= within)))
        .collect();
    let slowest = judged
        .iter()
        .filter_map(|o| Some(o.complete_ns? - o.invoke_ns))
        .max()
        .unwrap_or(0);
    let leader_text = format!(
        "leader {} (term {term}) {} after the final heal at {}",
        record.topology.name(leader),
        ms(leader_at - heal),
        ms(heal)
    );
    let mut result = if late.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            if judged.is_empty() {
                format!(
                    "{leader_text}; no operation invoked from {} to judge",
                    ms(leader_deadline)
                )
            } else {
                format!(
                    "{leader_text}; all {} operations invoked from {} answered within {}",
                    judged.len(),
                    ms(leader_deadline),
                    config.answer_within
                )
            },
        )
    } else {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{leader_text}; but {} of {} operations invoked from {} were not answered within {}",
                late.len(),
                judged.len(),
                ms(leader_deadline),
                config.answer_within
            ),
        );
        for o in late.iter().take(5) {
            r.evidence.push(format!(
                "not answered in time: {}{}",
                o.describe(),
                o.error
                    .as_ref()
                    .map_or(String::new(), |e| format!(" ({e})"))
            ));
        }
        r
    };
    result.evidence.push(format!(
        "{} became the leader of the highest term at {}",
        record.topology.name(leader),
        ms(leader_at)
    ));
    let m = &mut result.metrics;
    m.insert("final_heal_ns".into(), heal.into());
    m.insert("leader_after_heal_ns".into(), (leader_at - heal).into());
    m.insert("ops_judged".into(), judged.len().into());
    m.insert("ops_late".into(), late.len().into());
    m.insert("slowest_answer_ns".into(), slowest.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{lifecycle, observe, op, record};
    use crate::history::{EventType, Function, Value};

    fn role(r: &str, term: u64) -> CommonObservation {
        CommonObservation::Role {
            role: r.into(),
            term,
        }
    }

    #[test]
    fn a_leader_of_the_highest_term_must_follow_the_heal() {
        let mut rec = record(3, 1, "[check.liveness]\nleader_within = \"1s\"\n");
        rec.final_heal_ns = Some(2_000_000_000);
        observe(&mut rec, 100, 0, role("leader", 1));
        observe(&mut rec, 100, 1, role("follower", 1));
        observe(&mut rec, 100, 2, role("follower", 1));
        // n3 moves to term 2 during the partition; the old leader n1 has not heard of it.
        observe(&mut rec, 1500, 2, role("candidate", 2));
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("n1 leader (term 1)"),
            "{:?}",
            r.evidence
        );
        // n2 wins term 2 after the heal, within the bound.
        observe(&mut rec, 2400, 1, role("leader", 2));
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["leader_after_heal_ns"], 400_000_000u64);
        // A crashed leader does not count.
        let mut rec2 = rec.clone();
        lifecycle(&mut rec2, 2300, 1, LifecycleKind::Crash);
        rec2.observations.retain(|o| o.t_ns != 2_400_000_000);
        assert_eq!(run(&rec2).verdict, Verdict::Fail);
    }

    #[test]
    fn operations_after_the_leader_bound_must_be_answered() {
        let mut rec = record(3, 1, "[check.liveness]\nleader_within = \"1s\"\n");
        rec.final_heal_ns = Some(1_000_000_000);
        observe(&mut rec, 100, 0, role("leader", 1));
        let v = Value::Str("x".into());
        rec.history = [
            // Before the bound: not judged even though it timed out.
            op(
                1,
                "c1",
                Function::Put,
                v.clone(),
                1500,
                EventType::Info,
                v.clone(),
                2500,
            ),
            op(
                2,
                "c1",
                Function::Put,
                v.clone(),
                2100,
                EventType::Ok,
                v.clone(),
                2110,
            ),
        ]
        .concat();
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        rec.history.extend(op(
            3,
            "c1",
            Function::Get,
            Value::Nil,
            3000,
            EventType::Info,
            Value::Nil,
            4000,
        ));
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["ops_late"], 1);
    }

    #[test]
    fn no_final_heal_is_unknown() {
        let mut rec = record(3, 1, "");
        rec.final_heal_ns = None;
        assert_eq!(run(&rec).verdict, Verdict::Unknown);
    }
}
