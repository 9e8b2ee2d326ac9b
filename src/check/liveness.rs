//! `liveness` (key-value protocols; shared by Raft and Paxos): after the final heal, a leader
//! within a bound, then every operation answered within a bound. A liveness check, reported
//! separately from the safety checks (STYLE.md rule 11: faults first, then heal and require
//! progress).
//!
//! **Window start.** The final heal is `RunRecord.final_heal_ns`: when the last partition healed,
//! the last `degrade` fault (a changed network condition) ended, the last paused node resumed or
//! the last crashed node restarted. Without one (faults still active at the end, a degrade still
//! in force included) the verdict is `unknown`. A node crashed and never restarted is a fault that
//! never ends, so the window starts at the later of the final heal and the last crash of a node
//! that is still down at the end. From then on no node changes state.
//!
//! **Only up nodes count.** A crashed or paused server is never credited as a leader. If fewer
//! than a majority of the servers are up from the window start on (e.g. `crash target = "all"`,
//! never restarted), a quorum protocol owes no progress: the verdict is `unknown`, as for faults
//! still active at the end, rather than a pass (nothing was shown) or a fail (nothing was owed).
//!
//! 1. **Leader.** Replaying `role` observations (`CommonObservation::Role`), crashes and pauses,
//!    the check looks for the first instant at or after the window start at which some up server
//!    is `leader` of a term at least as high as every up server's current term (so a deposed
//!    leader that has not heard the news does not count). It must come within `leader_within`.
//! 2. **Operations.** Every operation invoked at or after that instant (once the cluster has
//!    its leader) must be answered (`ok`, `fail`, or an `info` a server sent, such as an
//!    overloaded leader's refusal; not the client's own timeout) within `answer_within` of its
//!    invocation, or its client must hear an answer to a later operation by then: a client
//!    that hears nothing for `answer_within` while it waits is stalled, but one request timing
//!    out on a lossy network, followed by an answered retry, is not a loss of liveness (the
//!    client gives up after `request_timeout`, below the default `answer_within`). Operations
//!    whose deadline falls after the end of the run are not judged.
//!    (Judging from the leader's arrival rather than from `start + leader_within` keeps the
//!    window open in runs whose quiet period is shorter than `leader_within + answer_within`.)
//!
//! **Empty windows are `unknown`.** If the window starts at or after the end of the run, if the
//! run ends before operations can be judged (the leader's arrival + `answer_within` after the
//! end), or if no operation was invoked in the judged window, the check cannot show liveness and
//! says `unknown` (naming which window was empty) instead of passing.
//!
//! **Leaderless protocols.** If no server reports a role during the whole run (the quorum
//! store: any node coordinates), step 1 is skipped and operations are judged from the window
//! start.
//!
//! The unit of a term is the protocol's (Raft term, Paxos ballot round).

use serde::{Deserialize, Serialize};

use std::collections::BTreeMap;

use crate::check::ops::{Operation, operations};
use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::family::OptionError;
use crate::process::NodeId;
use crate::process::{CommonObservation, NodeRole};
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, Verdict};
use crate::sim::host::Status;
use crate::sim::{LifecycleKind, RunRecord};

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "liveness",
    summary: "after the final heal: a leader within a bound, then every operation answered within a bound",
    applies_to: |s| s.workloads().iter().any(|w| w.history.availability),
    enabled: check::on_unless_disabled,
    validate: validate_options,
    resolve: check::resolve_as::<Config>,
    run,
};

fn validate_options(table: &toml::Table, _: &Scenario, _: &Topology) -> Vec<OptionError> {
    check::validate_with(table, |c: &Config| {
        check::zero_durations(&[
            ("leader_within", c.leader_within),
            ("answer_within", c.answer_within),
        ])
    })
}

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
    /// Operations invoked once the leader exists (at most `leader_within` after the window
    /// start) must be answered this soon after their invocation (default 3s).
    #[serde(default = "default_answer_within")]
    pub answer_within: Duration,
}

fn default_leader_within() -> Duration {
    Duration::from_secs(3)
}

/// Three seconds: above two default `request_timeout`s (1s each) and a think time, so a
/// client whose request timed out on a lossy network and whose retry took a full timeout is
/// still judged live; two timeouts in a row, or silence, are not.
fn default_answer_within() -> Duration {
    Duration::from_secs(3)
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
    role: Vec<Option<(NodeRole, u64)>>,
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
                        .is_some_and(|&(r, t)| r == NodeRole::Leader && t == max_term)
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
/// the replayed roles at `until` (or at that time). Every change of one instant is applied before
/// the instant is judged, so a leader that crashes at the instant it is elected never counts.
fn first_leader(record: &RunRecord, from: u64, until: u64) -> (Option<(u64, NodeId, u64)>, Roles) {
    let n = record.topology.servers.len();
    let mut roles = Roles {
        up: vec![true; n],
        role: vec![None; n],
    };
    enum Step {
        Role(NodeRole, u64),
        Life(LifecycleKind),
    }
    let mut steps: Vec<(u64, u64, NodeId, Step)> = Vec::new();
    for o in &record.observations {
        if let Some(CommonObservation::Role { role, term }) = o.get() {
            steps.push((o.seq, o.t_ns, o.node, Step::Role(*role, *term)));
        }
    }
    for l in &record.lifecycle {
        steps.push((l.seq, l.t_ns, l.node, Step::Life(l.kind)));
    }
    steps.sort_by_key(|s| s.0);
    let mut checked_at_from = false;
    let mut steps = steps.into_iter().peekable();
    while let Some(&(_, t, _, _)) = steps.peek() {
        if t > until {
            break;
        }
        if t > from && !checked_at_from {
            checked_at_from = true;
            if let Some((l, term)) = roles.leader() {
                return (Some((from, l, term)), roles);
            }
        }
        while let Some((_, _, node, step)) = steps.next_if(|s| s.1 == t) {
            let i = node.index();
            if i >= n {
                continue;
            }
            match step {
                Step::Role(r, term) => roles.role[i] = Some((r, term)),
                Step::Life(LifecycleKind::Crash) => {
                    roles.up[i] = false;
                    roles.role[i] = None;
                }
                Step::Life(LifecycleKind::Pause) => roles.up[i] = false,
                Step::Life(LifecycleKind::Restart | LifecycleKind::Resume) => roles.up[i] = true,
            }
        }
        if t >= from
            && let Some((l, term)) = roles.leader()
        {
            return (Some((t, l, term)), roles);
        }
    }
    let found = roles.leader().map(|(l, term)| (from, l, term));
    (found, roles)
}

/// The last crash of a server that is still crashed at the end of the run, if any (a client
/// crashed for good owes the servers nothing).
fn last_permanent_crash(record: &RunRecord) -> Option<(u64, NodeId)> {
    record
        .lifecycle
        .iter()
        .filter(|l| l.kind == LifecycleKind::Crash && record.topology.servers.contains(&l.node))
        .filter(|l| record.final_status.get(l.node.index()) == Some(&Status::Crashed))
        .map(|l| (l.t_ns, l.node))
        .max()
}

fn run(record: &RunRecord) -> CheckResult {
    let config: Config = record.scenario.check_options(CHECK.name);
    let config = &config;
    let Some(heal) = record.final_heal_ns else {
        return CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            "faults were still active at the end of the run: no final heal to measure from",
        );
    };
    let (start, start_text) = match last_permanent_crash(record) {
        Some((t, node)) if t > heal => (
            t,
            format!(
                "the crash of {} at {} (never restarted)",
                record.topology.name(node),
                ms(t)
            ),
        ),
        _ => (heal, format!("the final heal at {}", ms(heal))),
    };
    if start >= record.end_ns {
        return CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            format!(
                "the liveness window starts at {start_text}, at or after the end of the run at {}: nothing to judge",
                ms(record.end_ns)
            ),
        );
    }
    let servers = &record.topology.servers;
    let up: Vec<NodeId> = servers
        .iter()
        .copied()
        .filter(|s| record.final_status.get(s.index()) == Some(&Status::Up))
        .collect();
    if up.len() < servers.len() / 2 + 1 {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            format!(
                "only {} of {} servers are up from {start_text} to the end: no majority, so no progress is owed",
                up.len(),
                servers.len()
            ),
        );
        r.evidence.push(format!(
            "up at the end: {}",
            if up.is_empty() {
                "none".to_string()
            } else {
                record.topology.names_of(&up).join(",")
            }
        ));
        return r;
    }
    // A leaderless protocol (no server ever reports a role, e.g. the quorum store, where any
    // node coordinates) owes no leader: operations are judged from the window start.
    let leaderless = !record
        .observations
        .iter()
        .any(|o| o.get::<CommonObservation>().is_some());
    let (leader_at, leader, leader_text) = if leaderless {
        let text = format!("no leader to wait for (no server reports a role) from {start_text}");
        (start, None, text)
    } else {
        let leader_deadline = start + config.leader_within.as_nanos();
        let (leader, roles) = first_leader(record, start, leader_deadline);
        let Some((leader_at, leader, term)) = leader else {
            if record.end_ns < leader_deadline {
                return CheckResult::new(
                    CHECK.name,
                    Verdict::Unknown,
                    format!(
                        "no leader yet, and the run ends before {start_text} + leader_within {}",
                        config.leader_within
                    ),
                );
            }
            let mut r = CheckResult::new(
                CHECK.name,
                Verdict::Fail,
                format!(
                    "no leader of the highest term within {} of {start_text}",
                    config.leader_within,
                ),
            );
            r.evidence.push(format!(
                "roles at {}: {}",
                ms(leader_deadline),
                roles.describe(record)
            ));
            return r;
        };
        let leader_text = format!(
            "leader {} (term {term}) {} after {start_text}",
            record.topology.name(leader),
            ms(leader_at - start),
        );
        (leader_at, Some(leader), leader_text)
    };
    let within = config.answer_within.as_nanos();
    let judged_from = leader_at;
    let all = operations(&record.history);
    let judged: Vec<_> = all
        .iter()
        .filter(|o| o.invoke_ns >= judged_from && o.invoke_ns + within <= record.end_ns)
        .collect();
    // Answer times per client node, sorted by invocation, for the "followed by an answer" rule.
    let mut answers: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for o in &all {
        if let (true, Some(c)) = (o.heard_back(), o.complete_ns) {
            answers.entry(o.node).or_default().push((o.invoke_ns, c));
        }
    }
    for list in answers.values_mut() {
        list.sort_unstable();
    }
    let heard_within = |o: &Operation| {
        let deadline = o.invoke_ns + within;
        answers.get(o.node).is_some_and(|list| {
            let from = list.partition_point(|&(invoke, _)| invoke < o.invoke_ns);
            list[from..]
                .iter()
                .take_while(|&&(invoke, _)| invoke <= deadline)
                .any(|&(_, complete)| complete <= deadline)
        })
    };
    let late: Vec<_> = judged.iter().filter(|o| !heard_within(o)).collect();
    let slowest = judged
        .iter()
        .filter_map(|o| Some(o.complete_ns? - o.invoke_ns))
        .max()
        .unwrap_or(0);
    let mut result = if !late.is_empty() {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{leader_text}; but {} of {} operations invoked from {} were not answered within {}",
                late.len(),
                judged.len(),
                ms(judged_from),
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
    } else if judged_from + within > record.end_ns {
        CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            format!(
                "{leader_text}; but the run ends at {}, before any operation invoked from {} can be judged (answer_within {})",
                ms(record.end_ns),
                ms(judged_from),
                config.answer_within
            ),
        )
    } else if judged.is_empty() {
        CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            format!(
                "{leader_text}; but no operation was invoked from {} to {} to judge",
                ms(judged_from),
                ms(record.end_ns - within)
            ),
        )
    } else {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "{leader_text}; all {} operations invoked from {} answered within {}",
                judged.len(),
                ms(judged_from),
                config.answer_within
            ),
        )
    };
    if let Some(leader) = leader {
        result.evidence.push(format!(
            "{} became the leader of the highest term at {}",
            record.topology.name(leader),
            ms(leader_at)
        ));
    }
    let m = &mut result.metrics;
    m.insert("final_heal_ns".into(), heal.into());
    m.insert("window_start_ns".into(), start.into());
    m.insert("leader_after_start_ns".into(), (leader_at - start).into());
    m.insert("ops_judged".into(), judged.len().into());
    m.insert("ops_late".into(), late.len().into());
    m.insert("slowest_answer_ns".into(), slowest.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{lifecycle, observe, op, put, record};
    use crate::history::{EventType, Function, Value};

    fn role(r: &str, term: u64) -> CommonObservation {
        let role = match r {
            "leader" => NodeRole::Leader,
            "candidate" => NodeRole::Candidate,
            _ => NodeRole::Follower,
        };
        CommonObservation::Role { role, term }
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
        // n2 wins term 2 after the heal, within the bound, and answers an operation.
        observe(&mut rec, 2400, 1, role("leader", 2));
        rec.history = put(1, "c1", "x", 3500, EventType::Ok, 3510).into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["leader_after_start_ns"], 400_000_000u64);
        // A crashed leader does not count.
        let mut rec2 = rec.clone();
        lifecycle(&mut rec2, 2300, 1, LifecycleKind::Crash);
        rec2.observations.retain(|o| o.t_ns != 2_400_000_000);
        assert_eq!(run(&rec2).verdict, Verdict::Fail);
    }

    #[test]
    fn operations_after_the_leader_arrives_must_be_answered() {
        let mut rec = record(3, 1, "[check.liveness]\nleader_within = \"1s\"\n");
        rec.final_heal_ns = Some(1_000_000_000);
        observe(&mut rec, 100, 0, role("leader", 1));
        rec.history = [
            // Before the window (the heal, when the leader is credited): not judged even though
            // it timed out.
            put(1, "c1", "x", 900, EventType::Info, 1900),
            put(2, "c1", "x", 2100, EventType::Ok, 2110),
        ]
        .concat()
        .into();
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
    fn a_servers_info_answer_counts_and_a_client_timeout_does_not() {
        let mut rec = record(3, 1, "[check.liveness]\nleader_within = \"1s\"\n");
        rec.final_heal_ns = Some(1_000_000_000);
        observe(&mut rec, 100, 0, role("leader", 1));
        let ended = |error: &str| {
            let mut h = put(1, "c1", "x", 3000, EventType::Info, 3010);
            h[1].error = Some(error.to_string());
            h
        };
        // An overloaded leader refused the write at once: the cluster answered, without knowing
        // whether an earlier copy of the request will run.
        rec.history = ended("overloaded: too many uncommitted entries").into();
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        // The client gave up waiting: no answer.
        rec.history = ended(crate::history::TIMEOUT_ERROR).into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["ops_late"], 1);
    }

    #[test]
    fn one_timeout_followed_by_an_answered_retry_is_not_a_stall() {
        let mut rec = record(3, 2, "[check.liveness]\nleader_within = \"1s\"\n");
        rec.final_heal_ns = Some(1_000_000_000);
        observe(&mut rec, 100, 0, role("leader", 1));
        // c1's request at 3s times out at 4s (a lost message); its next one, invoked at 4.02s,
        // is answered at 4.03s, within answer_within (3s) of the first.
        rec.history = [
            put(1, "c1", "x", 3000, EventType::Info, 4000),
            put(3, "c1", "y", 4020, EventType::Ok, 4030),
        ]
        .concat()
        .into();
        assert_eq!(run(&rec).verdict, Verdict::Pass);
        // Another client's answer does not count for c1, and neither does an answer to an
        // operation c1 invoked before the one that timed out.
        rec.history = [
            put(1, "c1", "x", 2990, EventType::Ok, 3500),
            put(2, "c1", "x", 3000, EventType::Info, 4000),
            put(4, "c2", "y", 4020, EventType::Ok, 4030),
        ]
        .concat()
        .into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["ops_late"], 1);
        // An answer that comes after the deadline does not count either.
        rec.history = [
            put(1, "c1", "x", 3000, EventType::Info, 4000),
            put(3, "c1", "y", 4020, EventType::Ok, 6100),
        ]
        .concat()
        .into();
        assert_eq!(run(&rec).verdict, Verdict::Fail);
    }

    #[test]
    fn servers_crashed_for_good_are_never_credited() {
        // Every server crashes at 0.5s and never restarts; the final heal (no partition, no
        // pause) is at 0: n1's leadership before the crash must not count.
        let mut rec = record(3, 1, "");
        observe(&mut rec, 100, 0, role("leader", 1));
        for node in 0..3 {
            lifecycle(&mut rec, 500, node, LifecycleKind::Crash);
            rec.final_status[node as usize] = Status::Crashed;
        }
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(
            r.summary.contains("only 0 of 3 servers are up"),
            "{}",
            r.summary
        );
        // Only the leader crashes for good: the window starts at its crash, and without a new
        // leader the check fails even though n1 led before.
        let mut rec = record(3, 1, "");
        observe(&mut rec, 100, 0, role("leader", 1));
        observe(&mut rec, 100, 1, role("follower", 1));
        observe(&mut rec, 100, 2, role("follower", 1));
        lifecycle(&mut rec, 500, 0, LifecycleKind::Crash);
        rec.final_status[0] = Status::Crashed;
        rec.history = put(1, "c1", "x", 5000, EventType::Info, 6000).into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.summary.contains("crash of n1 at 500.0ms"),
            "{}",
            r.summary
        );
        // n2 takes over 300ms after the crash: pass, measured from the crash.
        observe(&mut rec, 800, 1, role("leader", 2));
        rec.history = put(1, "c1", "x", 5000, EventType::Ok, 5010).into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["leader_after_start_ns"], 300_000_000u64);
    }

    #[test]
    fn a_paused_leader_is_not_credited() {
        let mut rec = record(3, 1, "[check.liveness]\nleader_within = \"1s\"\n");
        rec.final_heal_ns = Some(2_000_000_000);
        observe(&mut rec, 100, 0, role("leader", 1));
        lifecycle(&mut rec, 1000, 0, LifecycleKind::Pause);
        lifecycle(&mut rec, 2000, 0, LifecycleKind::Resume);
        rec.history = put(1, "c1", "x", 4000, EventType::Ok, 4010).into();
        assert_eq!(run(&rec).verdict, Verdict::Pass, "resumed at the heal");
        // Paused again in the same instant it resumed: not up at the heal.
        lifecycle(&mut rec, 2000, 0, LifecycleKind::Pause);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
    }

    #[test]
    fn an_empty_liveness_window_is_unknown_not_pass() {
        let mut rec = record(3, 1, "");
        observe(&mut rec, 100, 0, role("leader", 1));
        // The window starts at the end of the run.
        rec.final_heal_ns = Some(10_000_000_000);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(
            r.summary.contains("at or after the end of the run"),
            "{}",
            r.summary
        );
        // A leader exists from the heal on, but heal + answer_within (8.5s + 3s) passes the end.
        rec.final_heal_ns = Some(8_500_000_000);
        rec.history = put(1, "c1", "x", 9000, EventType::Ok, 9010).into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(r.summary.contains("before any operation"), "{}", r.summary);
        // The window is long enough but no operation was invoked in it.
        rec.final_heal_ns = Some(1_000_000_000);
        rec.history = put(1, "c1", "x", 500, EventType::Ok, 510).into();
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
        assert!(
            r.summary.contains("no operation was invoked"),
            "{}",
            r.summary
        );
        // With one, the same run passes.
        rec.history
            .extend(put(1, "c1", "x", 5000, EventType::Ok, 5010));
        assert_eq!(run(&rec).verdict, Verdict::Pass);
    }

    #[test]
    fn no_final_heal_is_unknown() {
        let mut rec = record(3, 1, "");
        rec.final_heal_ns = None;
        assert_eq!(run(&rec).verdict, Verdict::Unknown);
    }
}
