//! `registry-linearizable`: the CP registry's `consistent` lookups are linearizable with the
//! registrations, deregistrations and expiries the coordination service's Raft log applied.
//!
//! General linearizability checking is NP-complete (Gibbons and Korach, 1997) because the
//! checker must guess the order in which concurrent operations took effect. Here it need not:
//! every change of the registry is one entry of Raft's log, every change raises the machine's
//! one revision counter, and every lookup answer carries the revision it was read at. The
//! revisions are a known total order of the writes, and each read names its place in it, so each
//! read is checked alone, in time linear in the history (Gibbons and Korach's "read-mapping"
//! case: each read is mapped to the write it read from).
//!
//! # Definition
//!
//! The **log** of service `s` is the sequence of `(revision, instances)` the replicas report as
//! [`super::Observation::Applied`]: after the change at `revision`, `s`'s instance ids were
//! `instances`. A change's **commit time** is the earliest time any replica reported applying it
//! (a replica applies an entry only after it is committed, so the true commit is no later). The
//! log's instance set of `s` **at revision `r`** is the `instances` of the last change of `s` at
//! or below `r` (empty before the first).
//!
//! A lookup `L` of service `s` at `consistent` that completed `ok` at revision `r_L` with
//! instance ids `I_L`, invoked at time `t_L`, must satisfy:
//!
//! - **(a) real-time order of reads:** `r_L >= r'` for every `ok` lookup (at any consistency
//!   level, of any service) that completed, with revision `r'`, strictly before `t_L`. Every
//!   answer is read from a replica's applied, hence committed, state, so a revision once
//!   answered is committed; a linearizable read invoked later must see at least it.
//! - **(b) real-time order of writes:** `r_L >= r` for every change (of any service) whose commit
//!   time is strictly before `t_L`.
//! - **(c) the value:** `I_L` equals the log's instance set of `s` at `r_L`.
//!
//! Together these say that `L` can take effect at the point of the log named by `r_L`, which
//! lies after everything that finished before `L` began: a linearization exists (each read
//! placed at its revision; reads of one revision in real-time order, which (a) allows). The
//! check is sound (each failure is a real violation, given the replicas' reports) and, for
//! reads, complete up to what the replicas report: registrations are writes ordered by the log,
//! which Raft's own checks judge.
//!
//! Replicas that disagree on a service's instances at one revision are also reported (a
//! failure: the log is not one log; `state-machine-safety` names the cause).
//!
//! **Unknown** when the run has no `ok` consistent lookup against a coordination role.

use std::collections::BTreeMap;

use super::Observation;
use crate::check::ops::operations;
use crate::check::{self, CheckInfo, ms};
use crate::families::lock::coord::server::PROTOCOL_NAME as COORDINATION;
use crate::families::registry::{Consistency, DISCOVERY_NAME};
use crate::family::CheckResult;
use crate::history::{Function, Value};
use crate::process::NodeId;
use crate::scenario::{Scenario, Verdict};
use crate::sim::RunRecord;

/// The check's name.
pub const CHECK_NAME: &str = "registry-linearizable";

/// The `registry-linearizable` check.
pub const CHECK: CheckInfo = CheckInfo {
    name: CHECK_NAME,
    summary: "every ok consistent lookup of the CP registry saw every change and answer completed before it began, and the log's instances at its revision",
    applies_to: consistent_discovery,
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

/// True if a `discovery` group of `scenario` looks up at `consistent` and the scenario runs a
/// `coordination` role.
pub fn consistent_discovery(scenario: &Scenario) -> bool {
    scenario.runs_protocol(COORDINATION)
        && scenario.clients.iter().any(|g| {
            g.workload == DISCOVERY_NAME
                && g.options.get("consistency").and_then(|v| v.as_str()) == Some("consistent")
        })
}

/// The check on a run: the replicas' [`Observation::Applied`] facts, and the history's `ok`
/// lookups, each with the revision and level its agent observed ([`Observation::Answered`],
/// in the step that recorded the `ok`).
fn run(record: &RunRecord) -> CheckResult {
    let mut applied = Vec::new();
    let mut answered: BTreeMap<(NodeId, u64), (Consistency, u64)> = BTreeMap::new();
    for o in &record.observations {
        match o.get::<Observation>() {
            Some(Observation::Applied {
                service,
                revision,
                instances,
            }) => applied.push(AppliedFact {
                t_ns: o.t_ns,
                node: o.node,
                service,
                revision: *revision,
                instances,
            }),
            Some(Observation::Answered {
                consistency,
                revision,
                ..
            }) => {
                answered.insert((o.node, o.t_ns), (*consistency, *revision));
            }
            None => {}
        }
    }
    let names = &record.topology.names;
    let node_of: BTreeMap<&str, NodeId> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), NodeId(i as u32)))
        .collect();
    let lookups: Vec<Lookup> = operations(&record.history)
        .into_iter()
        .filter(|op| op.f == Function::Lookup && op.is_ok())
        .filter_map(|op| {
            let client = *node_of.get(op.node)?;
            let complete_ns = op.complete_ns?;
            let &(consistency, revision) = answered.get(&(client, complete_ns))?;
            let Value::List(items) = &op.result else {
                return None;
            };
            let mut instances: Vec<String> = items
                .iter()
                .filter_map(|v| match v {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .collect();
            instances.sort();
            Some(Lookup {
                client,
                service: op.key.unwrap_or_default().to_string(),
                consistent: consistency == Consistency::Consistent,
                invoke_ns: op.invoke_ns,
                complete_ns,
                revision,
                instances,
            })
        })
        .collect();
    check(&applied, &lookups, names)
}

/// Most evidence lines written; the summary counts them all.
pub const MAX_EVIDENCE_LINES: usize = 20;

/// One replica's report of a change (global time ns, replica, service, revision, instance ids).
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedFact<'a> {
    /// Global time of the report, in ns.
    pub t_ns: u64,
    /// The replica.
    pub node: NodeId,
    /// The service.
    pub service: &'a str,
    /// The change's revision.
    pub revision: u64,
    /// The service's instance ids after it, sorted.
    pub instances: &'a [String],
}

/// One `ok` lookup of the history.
#[derive(Clone, Debug, PartialEq)]
pub struct Lookup {
    /// The looking-up client.
    pub client: NodeId,
    /// The service.
    pub service: String,
    /// Read at `consistent` (only these are judged; every one bounds later ones by (a)).
    pub consistent: bool,
    /// Invocation time, global ns.
    pub invoke_ns: u64,
    /// Completion time, global ns.
    pub complete_ns: u64,
    /// The answer's revision.
    pub revision: u64,
    /// The answer's instance ids, sorted.
    pub instances: Vec<String>,
}

/// One change of the log: its commit time and instance set.
#[derive(Clone, Debug)]
struct Change {
    commit_ns: u64,
    instances: Vec<String>,
    /// The replica that reported it first.
    first: NodeId,
}

/// Runs the check (see the module docs) on the replicas' reports and the `ok` lookups;
/// `names` are the node names by index, for evidence.
pub fn check(applied: &[AppliedFact<'_>], lookups: &[Lookup], names: &[String]) -> CheckResult {
    let name = |n: NodeId| {
        names
            .get(n.index())
            .cloned()
            .unwrap_or_else(|| format!("node{}", n.0))
    };
    let mut problems: Vec<String> = Vec::new();
    // The log: service -> revision -> change.
    let mut log: BTreeMap<&str, BTreeMap<u64, Change>> = BTreeMap::new();
    for f in applied {
        let changes = log.entry(f.service).or_default();
        match changes.get_mut(&f.revision) {
            None => {
                changes.insert(
                    f.revision,
                    Change {
                        commit_ns: f.t_ns,
                        instances: f.instances.to_vec(),
                        first: f.node,
                    },
                );
            }
            Some(c) => {
                if c.instances != f.instances {
                    problems.push(format!(
                        "replicas disagree on service {} at revision {}: {} reported {:?} at {}, {} reported {:?} at {}",
                        f.service,
                        f.revision,
                        name(c.first),
                        c.instances,
                        ms(c.commit_ns),
                        name(f.node),
                        f.instances,
                        ms(f.t_ns)
                    ));
                }
                if f.t_ns < c.commit_ns {
                    c.commit_ns = f.t_ns;
                    c.first = f.node;
                }
            }
        }
    }
    // Every change by commit time, for (b): (commit_ns, revision, service).
    let mut commits: Vec<(u64, u64, &str)> = log
        .iter()
        .flat_map(|(s, changes)| changes.iter().map(move |(&r, c)| (c.commit_ns, r, *s)))
        .collect();
    commits.sort();
    let commit_max = prefix_max(commits.iter().map(|&(t, r, _)| (t, r)));
    // Every ok lookup by completion time, for (a).
    let mut done: Vec<(u64, u64, usize)> = lookups
        .iter()
        .enumerate()
        .map(|(i, l)| (l.complete_ns, l.revision, i))
        .collect();
    done.sort();
    let done_max = prefix_max(done.iter().map(|&(t, r, _)| (t, r)));

    let mut judged = 0u64;
    for l in lookups.iter().filter(|l| l.consistent) {
        judged += 1;
        let who = format!(
            "{}'s consistent lookup of {} invoked at {} (ok at {}, revision {}, {:?})",
            name(l.client),
            l.service,
            ms(l.invoke_ns),
            ms(l.complete_ns),
            l.revision,
            l.instances
        );
        if let Some((r, i)) = before(&done_max, l.invoke_ns)
            && r > l.revision
        {
            let o = &lookups[done[i].2];
            problems.push(format!(
                "(a) {who} read an older revision than {}'s lookup of {} that completed at {} with revision {r}",
                name(o.client),
                o.service,
                ms(o.complete_ns)
            ));
        }
        if let Some((r, i)) = before(&commit_max, l.invoke_ns)
            && r > l.revision
        {
            let (t, _, s) = commits[i];
            problems.push(format!(
                "(b) {who} misses the change of {s} at revision {r}, applied (so committed) by {}",
                ms(t)
            ));
        }
        let at = log
            .get(l.service.as_str())
            .and_then(|c| c.range(..=l.revision).next_back())
            .map(|(&r, c)| (r, c.instances.clone()))
            .unwrap_or((0, Vec::new()));
        if at.1 != l.instances {
            problems.push(format!(
                "(c) {who} answered instances the log never had at that revision: the log had {:?} since revision {}",
                at.1, at.0
            ));
        }
    }
    let verdict = if judged == 0 {
        Verdict::Unknown
    } else if problems.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    let summary = match verdict {
        Verdict::Unknown => "no ok consistent lookup to judge".to_string(),
        Verdict::Pass => format!(
            "{judged} consistent lookups each saw every change and answer committed before it began, and the log's instances at their revision"
        ),
        Verdict::Fail => format!(
            "{} violations among {judged} consistent lookups (a consistent read served stale or wrong data)",
            problems.len()
        ),
    };
    let mut result = CheckResult::new(CHECK_NAME, verdict, summary);
    result
        .metrics
        .insert("consistent_lookups".into(), serde_json::json!(judged));
    result
        .metrics
        .insert("violations".into(), serde_json::json!(problems.len()));
    result.evidence = problems.into_iter().take(MAX_EVIDENCE_LINES).collect();
    result
}

/// Running maxima of `(time, revision)` pairs sorted by time: entry `i` is the highest revision
/// among the first `i + 1`, with the index of the pair that has it.
fn prefix_max(pairs: impl Iterator<Item = (u64, u64)>) -> Vec<(u64, u64, usize)> {
    let mut best: Option<(u64, usize)> = None;
    pairs
        .enumerate()
        .map(|(i, (t, r))| {
            if best.is_none_or(|(b, _)| r > b) {
                best = Some((r, i));
            }
            let (b, at) = best.expect("set");
            (t, b, at)
        })
        .collect()
}

/// The highest revision among pairs strictly before `t_ns`, and the index of its pair.
fn before(maxima: &[(u64, u64, usize)], t_ns: u64) -> Option<(u64, usize)> {
    let n = maxima.partition_point(|&(t, _, _)| t < t_ns);
    n.checked_sub(1).map(|i| (maxima[i].1, maxima[i].2))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn lookup(invoke: u64, complete: u64, revision: u64, instances: &[&str]) -> Lookup {
        Lookup {
            client: NodeId(9),
            service: "web".into(),
            consistent: true,
            invoke_ns: invoke * MS,
            complete_ns: complete * MS,
            revision,
            instances: ids(instances),
        }
    }

    fn names() -> Vec<String> {
        (0..10).map(|i| format!("n{i}")).collect()
    }

    /// web: a at revision 2 (applied at 10 ms), a+b at 4 (20 ms), b at 7 (30 ms, a expired).
    fn log() -> (Vec<Vec<String>>, Vec<(u64, u64)>) {
        (
            vec![ids(&["a"]), ids(&["a", "b"]), ids(&["b"])],
            vec![(10, 2), (20, 4), (30, 7)],
        )
    }

    fn applied<'a>(sets: &'a [Vec<String>], at: &[(u64, u64)]) -> Vec<AppliedFact<'a>> {
        let mut out = Vec::new();
        for (i, &(t, r)) in at.iter().enumerate() {
            for (node, delay) in [(0, 0), (1, 3)] {
                out.push(AppliedFact {
                    t_ns: (t + delay) * MS,
                    node: NodeId(node),
                    service: "web",
                    revision: r,
                    instances: &sets[i],
                });
            }
        }
        out
    }

    #[test]
    fn lookups_that_read_their_revisions_set_after_every_earlier_change_pass() {
        let (sets, at) = log();
        let facts = applied(&sets, &at);
        // Concurrent with the change at 20 ms: either revision will do.
        let ok = [
            lookup(12, 14, 2, &["a"]),
            lookup(18, 25, 2, &["a"]),
            lookup(19, 26, 5, &["a", "b"]),
            lookup(31, 33, 7, &["b"]),
        ];
        let r = check(&facts, &ok, &names());
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.evidence);
        assert_eq!(r.metrics["consistent_lookups"], 4);
    }

    #[test]
    fn a_consistent_lookup_missing_a_change_committed_before_it_began_fails_b() {
        let (sets, at) = log();
        let facts = applied(&sets, &at);
        // Invoked at 35 ms, after b-only was applied at 30 ms, yet read revision 4.
        let r = check(&facts, &[lookup(35, 36, 4, &["a", "b"])], &names());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.evidence[0].starts_with("(b)"), "{:?}", r.evidence);
        assert!(r.evidence[0].contains("revision 7"), "{:?}", r.evidence);
    }

    #[test]
    fn a_lookup_older_than_one_completed_before_it_fails_a_even_at_any_level() {
        let (sets, at) = log();
        let facts = applied(&sets, &at);
        let mut earlier = lookup(21, 22, 4, &["a", "b"]);
        earlier.consistent = false; // a stale read's revision was committed all the same
        // The second lookup began at 23 ms and went back to revision 2 (commit of 4 at 20 ms
        // would catch it too: (a) and (b) both fire).
        let r = check(&facts, &[earlier, lookup(23, 24, 2, &["a"])], &names());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence.iter().any(|e| e.starts_with("(a)")),
            "{:?}",
            r.evidence
        );
        assert_eq!(
            r.metrics["consistent_lookups"], 1,
            "only consistent ones are judged"
        );
    }

    #[test]
    fn a_lookup_whose_instances_differ_from_the_log_at_its_revision_fails_c() {
        let (sets, at) = log();
        let facts = applied(&sets, &at);
        let r = check(&facts, &[lookup(31, 32, 7, &["a", "b"])], &names());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.evidence[0].starts_with("(c)"), "{:?}", r.evidence);
        // Before the first change the log's set is empty.
        let r = check(&facts, &[lookup(1, 2, 1, &[])], &names());
        assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.evidence);
    }

    #[test]
    fn the_commit_time_is_the_first_replicas_apply() {
        let (sets, at) = log();
        let facts = applied(&sets, &at);
        // Replica 1 applied revision 7 at 33 ms; replica 0 at 30 ms: a lookup invoked at 31 ms
        // must see it.
        let r = check(&facts, &[lookup(31, 40, 4, &["a", "b"])], &names());
        assert_eq!(r.verdict, Verdict::Fail);
    }

    #[test]
    fn replicas_that_disagree_at_a_revision_fail_and_no_consistent_lookup_is_unknown() {
        let a = ids(&["a"]);
        let b = ids(&["b"]);
        let facts = vec![
            AppliedFact {
                t_ns: MS,
                node: NodeId(0),
                service: "web",
                revision: 2,
                instances: &a,
            },
            AppliedFact {
                t_ns: 2 * MS,
                node: NodeId(1),
                service: "web",
                revision: 2,
                instances: &b,
            },
        ];
        let r = check(&facts, &[lookup(5, 6, 2, &["a"])], &names());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(r.evidence[0].contains("disagree"), "{:?}", r.evidence);
        let mut stale = lookup(5, 6, 2, &["a"]);
        stale.consistent = false;
        assert_eq!(check(&facts, &[stale], &names()).verdict, Verdict::Unknown);
    }
}
