//! The lock family's checks: pure functions over the run's lock observations, each given as
//! `(t_ns, node, &Observation)` with `t_ns` the global simulated time in nanoseconds, in the
//! order they were recorded, plus the node names (indexed by [`NodeId::index`]) for evidence.
//!
//! # `mutual-exclusion` ([`mutual_exclusion`])
//!
//! A client's **belief** interval for a token runs from its `holding {token}` to its
//! `stopped-holding {token}`; if the client reports `holding` again first (e.g. it restarted
//! and acquired anew), the older belief ends there; a belief still open at the end of the record
//! lasts until `end_ns`. The check **fails** if two beliefs of *different* clients overlap in
//! global time (`a.start < b.end && b.start < a.end`; touching intervals do not overlap). The
//! evidence names both clients, their tokens and intervals in ms, and the overlap.
//!
//! Server-side overlaps are reported as evidence too (they do not decide the verdict on their
//! own, since a client may have given the lock up before the server granted it again): a
//! `granted` while an earlier grant of the same server has neither `expired` nor been
//! `released`, and a grant whose token is not above every token that server granted before (a
//! token reused after a crash lost unsynced grants). A grant the server no longer has after a
//! restart (`restored` without it) is taken to last until its grant time + TTL in global time.
//!
//! **Unknown** when the record has no `granted` and no `holding` at all: there is nothing to
//! judge.
//!
//! # `fenced-writes` ([`fenced_writes`])
//!
//! For each storage node, in record order: a `write-accepted {client, token}` **fails** the check
//! if the storage had already accepted a higher token, or the same token from another client (a
//! token reused by the lock server). Evidence: both writes with clients, tokens and times.
//! Refused writes (`write-refused`) are counted and cited: they are fencing at work.
//!
//! What fencing (and so this check) cannot catch: a stale holder's write that reaches the
//! storage *before* the new holder's first write carries the highest token seen so far and is
//! accepted; the storage cannot tell it is stale. Only `mutual-exclusion` reports that case.
//!
//! **Unknown** when the storage accepted no write at all.

use std::collections::BTreeMap;

use super::{CHECK_FENCED_WRITES, CHECK_MUTUAL_EXCLUSION, Observation, StopReason};
use crate::check::{CheckResult, ms};
use crate::process::NodeId;
use crate::scenario::Verdict;

/// Most evidence lines a lock check writes; the summary and metrics count them all.
pub const MAX_EVIDENCE_LINES: usize = 20;

/// One lock observation: global time in nanoseconds, the node that made it, the fact.
pub type LockFact<'a> = (u64, NodeId, &'a Observation);

fn name(names: &[String], node: NodeId) -> String {
    names
        .get(node.index())
        .cloned()
        .unwrap_or_else(|| format!("node{}", node.0))
}

/// A client's belief that it holds the lock: from its `holding` to its `stopped-holding`, its
/// crash, its next `holding`, or the end of the run.
#[derive(Clone, Debug)]
pub(super) struct Belief {
    pub(super) client: NodeId,
    pub(super) token: u64,
    pub(super) start_ns: u64,
    pub(super) end_ns: u64,
    /// How it ended (`None`: still open at the end, or replaced by a newer `holding`).
    pub(super) why: Option<StopReason>,
}

/// Every client's beliefs, sorted by start (then client, token). `crashes` are (time, node) of
/// every crash; `end_ns` is the end of the run.
pub(super) fn beliefs(
    facts: &[LockFact<'_>],
    crashes: &[(u64, NodeId)],
    end_ns: u64,
) -> Vec<Belief> {
    let mut open: BTreeMap<NodeId, (u64, u64)> = BTreeMap::new();
    let mut done = Vec::new();
    for &(t, node, o) in facts {
        match o {
            Observation::Holding { token } => {
                if let Some((old, start)) = open.insert(node, (*token, t)) {
                    done.push(Belief {
                        client: node,
                        token: old,
                        start_ns: start,
                        end_ns: t,
                        why: None,
                    });
                }
            }
            Observation::StoppedHolding { token, why }
                if open.get(&node).is_some_and(|(held, _)| held == token) =>
            {
                let (_, start) = open.remove(&node).expect("checked");
                done.push(Belief {
                    client: node,
                    token: *token,
                    start_ns: start,
                    end_ns: t,
                    why: Some(*why),
                });
            }
            _ => {}
        }
    }
    for (client, (token, start)) in open {
        done.push(Belief {
            client,
            token,
            start_ns: start,
            end_ns: end_ns.max(start),
            why: None,
        });
    }
    // A belief ends at its client's first crash after it began: the process that held it is gone.
    for b in &mut done {
        if let Some(&(t, _)) = crashes
            .iter()
            .find(|&&(t, node)| node == b.client && t >= b.start_ns && t < b.end_ns)
        {
            b.end_ns = t;
            b.why = Some(StopReason::Crashed);
        }
    }
    done.sort_by_key(|b| (b.start_ns, b.client, b.token));
    done
}

fn describe_belief(b: &Belief, names: &[String]) -> String {
    let until = match b.why {
        Some(why) => format!(
            "{} (stopped: {})",
            ms(b.end_ns),
            serde_json::to_value(why)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        ),
        None => format!("{} (still believed)", ms(b.end_ns)),
    };
    format!(
        "{} believed it held token {} from {} to {until}",
        name(names, b.client),
        b.token,
        ms(b.start_ns)
    )
}

/// A grant as the server reported it.
#[derive(Clone, Debug)]
struct OpenGrant {
    client: NodeId,
    token: u64,
    granted_ns: u64,
    /// Set when a restart lost it: taken to end at grant time + TTL.
    lost_until_ns: Option<u64>,
    ttl_ns: u64,
}

/// Server-side anomalies: grants while another grant was open, reused tokens, lost grants.
fn server_anomalies(facts: &[LockFact<'_>], names: &[String]) -> Vec<String> {
    let mut open: BTreeMap<NodeId, Vec<OpenGrant>> = BTreeMap::new();
    let mut highest: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut notes = Vec::new();
    for &(t, server, o) in facts {
        let grants = open.entry(server).or_default();
        grants.retain(|g| g.lost_until_ns.is_none_or(|until| t < until));
        match o {
            Observation::Granted {
                client,
                token,
                ttl_ns,
                ..
            } => {
                for g in grants.iter() {
                    notes.push(format!(
                        "server {} granted token {token} to {} at {} while token {} of {} (granted at {}{}) had neither expired nor been released",
                        name(names, server),
                        name(names, *client),
                        ms(t),
                        g.token,
                        name(names, g.client),
                        ms(g.granted_ns),
                        if g.lost_until_ns.is_some() { ", lost by a restart" } else { "" },
                    ));
                }
                let top = highest.entry(server).or_insert(0);
                if *token <= *top {
                    notes.push(format!(
                        "server {} granted token {token} to {} at {}, not above token {} it had granted before (token reused)",
                        name(names, server),
                        name(names, *client),
                        ms(t),
                        *top
                    ));
                }
                *top = (*top).max(*token);
                grants.push(OpenGrant {
                    client: *client,
                    token: *token,
                    granted_ns: t,
                    lost_until_ns: None,
                    ttl_ns: *ttl_ns,
                });
            }
            Observation::Released { client, token } | Observation::Expired { client, token } => {
                if let Some(i) = grants
                    .iter()
                    .position(|g| g.client == *client && g.token == *token)
                {
                    grants.remove(i);
                }
            }
            Observation::Restored { holder, .. } => {
                for g in grants.iter_mut() {
                    if *holder != Some((g.client, g.token)) && g.lost_until_ns.is_none() {
                        g.lost_until_ns = Some(g.granted_ns.saturating_add(g.ttl_ns));
                        notes.push(format!(
                            "server {} restarted at {} without the grant of token {} to {} (granted at {}): it was not synced",
                            name(names, server),
                            ms(t),
                            g.token,
                            name(names, g.client),
                            ms(g.granted_ns)
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    notes
}

/// Every pair of beliefs of different clients that overlap in global time (`a` starts first),
/// with the length of the overlap in nanoseconds. `beliefs` are sorted by start.
pub(super) fn overlapping(beliefs: &[Belief]) -> Vec<(&Belief, &Belief, u64)> {
    let mut pairs = Vec::new();
    for (i, a) in beliefs.iter().enumerate() {
        for b in &beliefs[i + 1..] {
            if b.start_ns >= a.end_ns {
                break; // sorted by start: no later belief overlaps `a`
            }
            if b.client != a.client {
                pairs.push((a, b, a.end_ns.min(b.end_ns) - b.start_ns));
            }
        }
    }
    pairs
}

/// Pushes `line` unless the evidence is full.
fn cite(evidence: &mut Vec<String>, line: String) {
    if evidence.len() < MAX_EVIDENCE_LINES {
        evidence.push(line);
    }
}

/// The `mutual-exclusion` check (see the module docs for the exact definition). `facts` are the
/// run's lock observations in record order; `crashes` the (time, node) of every node crash (a
/// crashed client holds nothing: its belief ends there); `names` the node names by index;
/// `end_ns` the end of the run in global nanoseconds (where beliefs still open end).
///
/// Metrics: `grants_count`, `beliefs_count`, `overlaps_count`, `overlap_ms_max`,
/// `server_anomalies_count`.
pub fn mutual_exclusion(
    facts: &[LockFact<'_>],
    crashes: &[(u64, NodeId)],
    names: &[String],
    end_ns: u64,
) -> CheckResult {
    let grants = facts
        .iter()
        .filter(|(_, _, o)| matches!(o, Observation::Granted { .. }))
        .count();
    let beliefs = beliefs(facts, crashes, end_ns);
    if grants == 0 && beliefs.is_empty() {
        return CheckResult::new(
            CHECK_MUTUAL_EXCLUSION,
            Verdict::Unknown,
            "nothing to judge: no lock was granted",
        );
    }
    let pairs = overlapping(&beliefs);
    let overlaps = pairs.len();
    let mut overlap_max_ns = 0u64;
    let mut evidence = Vec::new();
    for (a, b, overlap) in pairs {
        overlap_max_ns = overlap_max_ns.max(overlap);
        cite(
            &mut evidence,
            format!(
                "{}, and {}: both for {} from {}",
                describe_belief(a, names),
                describe_belief(b, names),
                ms(overlap),
                ms(b.start_ns)
            ),
        );
    }
    let notes = server_anomalies(facts, names);
    for note in &notes {
        cite(&mut evidence, note.clone());
    }
    let (verdict, summary) = if overlaps > 0 {
        (
            Verdict::Fail,
            format!(
                "{overlaps} pair(s) of clients believed they held the lock at the same time (longest overlap {})",
                ms(overlap_max_ns)
            ),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "no two of {} holds overlapped ({grants} grants)",
                beliefs.len()
            ),
        )
    };
    let mut result = CheckResult::new(CHECK_MUTUAL_EXCLUSION, verdict, summary);
    result.evidence = evidence;
    let m = &mut result.metrics;
    m.insert("grants_count".into(), grants.into());
    m.insert("beliefs_count".into(), beliefs.len().into());
    m.insert("overlaps_count".into(), overlaps.into());
    m.insert(
        "overlap_ms_max".into(),
        serde_json::json!(overlap_max_ns as f64 / 1e6),
    );
    m.insert("server_anomalies_count".into(), notes.len().into());
    result
}

/// A write the storage accepted although it had accepted a higher token before, or the same
/// token from another client: a write fencing should have refused.
#[derive(Clone, Debug)]
pub(super) struct UnsafeAccept {
    pub(super) t_ns: u64,
    pub(super) storage: NodeId,
    pub(super) client: NodeId,
    pub(super) token: u64,
    /// The highest token the storage had accepted, its writer and when.
    pub(super) top: u64,
    pub(super) top_writer: NodeId,
    pub(super) top_ns: u64,
}

/// The storages' writes: accepted and refused counts, and the unsafe accepts in record order.
#[derive(Clone, Debug, Default)]
pub(super) struct WriteTally {
    pub(super) accepted: usize,
    pub(super) refused: usize,
    pub(super) unsafe_accepts: Vec<UnsafeAccept>,
}

/// Scans every storage's `write-accepted` and `write-refused` facts, in record order.
pub(super) fn tally_writes(facts: &[LockFact<'_>]) -> WriteTally {
    // Per storage: the highest accepted token, with its writer and time.
    let mut highest: BTreeMap<NodeId, (u64, NodeId, u64)> = BTreeMap::new();
    let mut tally = WriteTally::default();
    for &(t, storage, o) in facts {
        match o {
            Observation::WriteAccepted { client, token } => {
                tally.accepted += 1;
                match highest.get(&storage) {
                    Some(&(top, writer, at))
                        if *token < top || (*token == top && *client != writer) =>
                    {
                        tally.unsafe_accepts.push(UnsafeAccept {
                            t_ns: t,
                            storage,
                            client: *client,
                            token: *token,
                            top,
                            top_writer: writer,
                            top_ns: at,
                        });
                    }
                    Some(&(top, _, _)) if *token <= top => {}
                    _ => {
                        highest.insert(storage, (*token, *client, t));
                    }
                }
            }
            Observation::WriteRefused { .. } => tally.refused += 1,
            _ => {}
        }
    }
    tally
}

/// The `fenced-writes` check (see the module docs for the exact definition). `facts` are the
/// run's lock observations in record order; `names` the node names by index.
///
/// Metrics: `writes_accepted_count`, `writes_refused_count`, `violations_count`.
pub fn fenced_writes(facts: &[LockFact<'_>], names: &[String]) -> CheckResult {
    let tally = tally_writes(facts);
    let (accepted, refused, violations) =
        (tally.accepted, tally.refused, tally.unsafe_accepts.len());
    let mut evidence = Vec::new();
    for u in &tally.unsafe_accepts {
        let why = if u.token < u.top {
            "a lower token"
        } else {
            "the same token from another client (token reused)"
        };
        cite(
            &mut evidence,
            format!(
                "storage {} accepted token {} from {} at {}, {why}, after accepting token {} from {} at {}",
                name(names, u.storage),
                u.token,
                name(names, u.client),
                ms(u.t_ns),
                u.top,
                name(names, u.top_writer),
                ms(u.top_ns)
            ),
        );
    }
    let refusals = facts.iter().filter_map(|&(t, storage, o)| match o {
        Observation::WriteRefused {
            client,
            token,
            highest,
        } => Some(format!(
            "storage {} refused token {token} from {} at {} (it had accepted token {highest})",
            name(names, storage),
            name(names, *client),
            ms(t)
        )),
        _ => None,
    });
    if accepted == 0 {
        return CheckResult::new(
            CHECK_FENCED_WRITES,
            Verdict::Unknown,
            "nothing to judge: the storage accepted no write",
        );
    }
    for line in refusals {
        cite(&mut evidence, line);
    }
    let (verdict, summary) = if violations > 0 {
        (
            Verdict::Fail,
            format!(
                "the storage accepted {violations} write(s) from a superseded grant ({accepted} accepted, {refused} refused)"
            ),
        )
    } else {
        (
            Verdict::Pass,
            format!(
                "every accepted write carried the newest token ({accepted} accepted, {refused} stale writes refused)"
            ),
        )
    };
    let mut result = CheckResult::new(CHECK_FENCED_WRITES, verdict, summary);
    result.evidence = evidence;
    let m = &mut result.metrics;
    m.insert("writes_accepted_count".into(), accepted.into());
    m.insert("writes_refused_count".into(), refused.into());
    m.insert("violations_count".into(), violations.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: NodeId = NodeId(0);
    const STORAGE: NodeId = NodeId(1);
    const C1: NodeId = NodeId(2);
    const C2: NodeId = NodeId(3);
    const MS: u64 = 1_000_000;
    const TTL: u64 = 10_000 * MS;

    fn names() -> Vec<String> {
        ["lock1", "disk", "c1", "c2"].map(String::from).to_vec()
    }

    fn granted(client: NodeId, token: u64) -> Observation {
        Observation::Granted {
            client,
            token,
            ttl_ns: TTL,
            expires_local_ns: 0,
        }
    }

    fn run(record: &[(u64, NodeId, Observation)]) -> Vec<LockFact<'_>> {
        record.iter().map(|(t, n, o)| (*t, *n, o)).collect()
    }

    /// Kleppmann's story: c1 is granted token 33, pauses past its TTL, c2 gets token 34 and
    /// writes; c1 resumes and writes with 33.
    fn kleppmann(storage_accepts_stale: bool) -> Vec<(u64, NodeId, Observation)> {
        let mut r = vec![
            (0, SERVER, granted(C1, 33)),
            (MS, C1, Observation::Holding { token: 33 }),
            (
                TTL,
                SERVER,
                Observation::Expired {
                    client: C1,
                    token: 33,
                },
            ),
            (TTL + MS, SERVER, granted(C2, 34)),
            (TTL + 2 * MS, C2, Observation::Holding { token: 34 }),
            (
                TTL + 5 * MS,
                STORAGE,
                Observation::WriteAccepted {
                    client: C2,
                    token: 34,
                },
            ),
        ];
        let stale = if storage_accepts_stale {
            Observation::WriteAccepted {
                client: C1,
                token: 33,
            }
        } else {
            Observation::WriteRefused {
                client: C1,
                token: 33,
                highest: 34,
            }
        };
        r.push((15_000 * MS, STORAGE, stale));
        r.push((
            15_500 * MS,
            C2,
            Observation::StoppedHolding {
                token: 34,
                why: StopReason::Released,
            },
        ));
        r
    }

    #[test]
    fn mutual_exclusion_passes_for_holds_one_after_another() {
        let record = vec![
            (0, SERVER, granted(C1, 1)),
            (MS, C1, Observation::Holding { token: 1 }),
            (
                500 * MS,
                C1,
                Observation::StoppedHolding {
                    token: 1,
                    why: StopReason::Released,
                },
            ),
            (
                500 * MS,
                SERVER,
                Observation::Released {
                    client: C1,
                    token: 1,
                },
            ),
            (600 * MS, SERVER, granted(C2, 2)),
            (601 * MS, C2, Observation::Holding { token: 2 }),
        ];
        let r = mutual_exclusion(&run(&record), &[], &names(), 2_000 * MS);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["beliefs_count"], 2);
        assert!(r.evidence.is_empty());
    }

    #[test]
    fn mutual_exclusion_fails_when_a_paused_holder_still_believes_after_a_new_grant() {
        let record = kleppmann(false);
        let r = mutual_exclusion(&run(&record), &[], &names(), 20_000 * MS);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert_eq!(r.metrics["overlaps_count"], 1);
        let e = &r.evidence[0];
        assert!(
            e.contains("c1 believed it held token 33 from 1.0ms to 20000.0ms (still believed)"),
            "{e}"
        );
        assert!(
            e.contains("c2 believed it held token 34 from 10002.0ms"),
            "{e}"
        );
        assert!(e.contains("both for 5498.0ms"), "{e}");
    }

    #[test]
    fn mutual_exclusion_reports_a_grant_lost_by_a_restart_and_the_reused_token() {
        let record = vec![
            (0, SERVER, granted(C1, 1)),
            (MS, C1, Observation::Holding { token: 1 }),
            (
                100 * MS,
                SERVER,
                Observation::Restored {
                    last_token: 0,
                    holder: None,
                },
            ),
            (200 * MS, SERVER, granted(C2, 1)),
            (201 * MS, C2, Observation::Holding { token: 1 }),
            (
                500 * MS,
                C1,
                Observation::StoppedHolding {
                    token: 1,
                    why: StopReason::Released,
                },
            ),
        ];
        let r = mutual_exclusion(&run(&record), &[], &names(), 1_000 * MS);
        assert_eq!(r.verdict, Verdict::Fail);
        let all = r.evidence.join("\n");
        assert!(
            all.contains("server lock1 restarted at 100.0ms without the grant of token 1 to c1"),
            "{all}"
        );
        assert!(
            all.contains("while token 1 of c1 (granted at 0.0ms, lost by a restart)"),
            "{all}"
        );
        assert!(all.contains("token reused"), "{all}");
        assert_eq!(r.metrics["server_anomalies_count"], 3);
    }

    #[test]
    fn a_crashed_holder_holds_nothing_after_its_crash() {
        // c1 holds token 1 and crashes at 300 ms; its lease expires and c2 gets token 2 at
        // 1100 ms. c1 never reported the end of its hold (it could not), but it held nothing.
        let record = vec![
            (0, SERVER, granted(C1, 1)),
            (1, C1, Observation::Holding { token: 1 }),
            (1_100 * MS, SERVER, granted(C2, 2)),
            (1_101 * MS, C2, Observation::Holding { token: 2 }),
        ];
        let without = mutual_exclusion(&run(&record), &[], &names(), 2_000 * MS);
        assert_eq!(without.verdict, Verdict::Fail, "{without:?}");
        let r = mutual_exclusion(&run(&record), &[(300 * MS, C1)], &names(), 2_000 * MS);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // A crash before the belief began does not end it.
        let early = mutual_exclusion(&run(&record), &[(0, C2)], &names(), 2_000 * MS);
        assert_eq!(early.verdict, Verdict::Fail, "{early:?}");
    }

    #[test]
    fn mutual_exclusion_is_unknown_without_any_grant() {
        let record = vec![(
            5,
            STORAGE,
            Observation::WriteAccepted {
                client: C1,
                token: 1,
            },
        )];
        let r = mutual_exclusion(&run(&record), &[], &names(), MS);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(
            mutual_exclusion(&[], &[], &names(), MS).verdict,
            Verdict::Unknown
        );
    }

    #[test]
    fn touching_holds_do_not_overlap() {
        let record = vec![
            (0, SERVER, granted(C1, 1)),
            (0, C1, Observation::Holding { token: 1 }),
            (
                10,
                C1,
                Observation::StoppedHolding {
                    token: 1,
                    why: StopReason::Released,
                },
            ),
            (10, C2, Observation::Holding { token: 2 }),
        ];
        assert_eq!(
            mutual_exclusion(&run(&record), &[], &names(), 20).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn fenced_writes_passes_when_the_stale_write_is_refused() {
        let record = kleppmann(false);
        let r = fenced_writes(&run(&record), &names());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["writes_refused_count"], 1);
        assert!(r.evidence[0].contains("storage disk refused token 33 from c1 at 15000.0ms"));
    }

    #[test]
    fn fenced_writes_fails_when_the_storage_accepts_a_lower_token() {
        let record = kleppmann(true);
        let r = fenced_writes(&run(&record), &names());
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(
            r.evidence[0],
            "storage disk accepted token 33 from c1 at 15000.0ms, a lower token, after accepting token 34 from c2 at 10005.0ms"
        );
    }

    #[test]
    fn fenced_writes_fails_on_a_token_reused_by_another_client() {
        let record = vec![
            (
                1,
                STORAGE,
                Observation::WriteAccepted {
                    client: C1,
                    token: 1,
                },
            ),
            (
                2,
                STORAGE,
                Observation::WriteAccepted {
                    client: C1,
                    token: 1,
                },
            ),
            (
                3,
                STORAGE,
                Observation::WriteAccepted {
                    client: C2,
                    token: 1,
                },
            ),
        ];
        let r = fenced_writes(&run(&record), &names());
        assert_eq!(r.verdict, Verdict::Fail);
        assert_eq!(r.metrics["violations_count"], 1);
        assert!(r.evidence[0].contains("token reused"));
    }

    #[test]
    fn fenced_writes_cannot_see_a_stale_write_that_lands_first() {
        // c1's stale write (token 33) reaches the storage before c2's first write (34): accepted,
        // and rightly not a fenced-writes violation; mutual exclusion reports the overlap.
        let record = vec![
            (0, SERVER, granted(C1, 33)),
            (0, C1, Observation::Holding { token: 33 }),
            (TTL, SERVER, granted(C2, 34)),
            (TTL, C2, Observation::Holding { token: 34 }),
            (
                TTL + 1,
                STORAGE,
                Observation::WriteAccepted {
                    client: C1,
                    token: 33,
                },
            ),
            (
                TTL + 2,
                STORAGE,
                Observation::WriteAccepted {
                    client: C2,
                    token: 34,
                },
            ),
        ];
        assert_eq!(
            fenced_writes(&run(&record), &names()).verdict,
            Verdict::Pass
        );
        assert_eq!(
            mutual_exclusion(&run(&record), &[], &names(), TTL + 10).verdict,
            Verdict::Fail
        );
    }

    #[test]
    fn fenced_writes_is_unknown_without_any_accepted_write() {
        let record = vec![(0, SERVER, granted(C1, 1))];
        assert_eq!(
            fenced_writes(&run(&record), &names()).verdict,
            Verdict::Unknown
        );
    }
}
