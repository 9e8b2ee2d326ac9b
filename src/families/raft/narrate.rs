//! Raft's story for `faultline explain` and the HTML report: elections (PreVote, votes, leaders,
//! step-downs, CheckQuorum), log truncations, the first commit of each leader, commits of
//! old-term entries by counting replicas (the Figure 8 bug), snapshots; the state fields `role`,
//! `term` and `log` (`last 812 · commit 800`), and the `commit index` samples per node.
//!
//! It reads the trace only (`docs/trace-format.md`): the `observe` lines of Raft's facts
//! ([`super::Observation`] and the common `role` fact), the `timer` lines (which timer made a
//! node campaign or step down), and the `vote` messages delivered to candidates (who voted).
//! Commit advances are summarised: one line when a new leader first commits, and the `log` state
//! and `commit index` samples at most once per node per [`SAMPLE_PERIOD_NS`].

use std::collections::{BTreeMap, BTreeSet};

use crate::families::narrate::servers_running;
use crate::family::{CastMember, Narration, Narrator, Throttle, seconds};
use crate::sim::trace::TraceEvent;

/// Shortest time between two `log` state changes or two `commit index` samples of one node.
pub const SAMPLE_PERIOD_NS: u64 = 100_000_000;

/// Makes the narrator of a run's Raft nodes (those whose role runs `raft`); `None` if none does.
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let nodes: Vec<&str> = servers_running(cast, super::PROTOCOL.name).collect();
    if nodes.is_empty() {
        return None;
    }
    Some(Box::new(RaftNarrator::new(cast, &nodes)))
}

/// The parts of a Raft observation (`docs/trace-format.md`) the narrator tells, decoded from
/// the line without parsing the rest (an entry's command, a vote).
#[derive(serde::Deserialize)]
struct Obs<'a> {
    #[serde(borrow)]
    fact: &'a str,
    #[serde(default, borrow)]
    role: Option<&'a str>,
    #[serde(default)]
    term: Option<u64>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    last: Option<u64>,
    #[serde(default)]
    last_index: Option<u64>,
    #[serde(default)]
    last_term: Option<u64>,
    #[serde(default)]
    snapshot_index: Option<u64>,
    #[serde(default)]
    leader: Option<u64>,
    #[serde(default)]
    entries: Option<Vec<EntryTerm>>,
}

/// A log entry's term (its command skipped).
#[derive(serde::Deserialize)]
struct EntryTerm {
    #[serde(default)]
    term: Option<u64>,
}

/// A log as runs of equal terms: `(first index, term)`, in index order, up to `last`.
#[derive(Clone, Debug, Default)]
struct TermRuns {
    runs: Vec<(u64, u64)>,
    last: u64,
}

impl TermRuns {
    fn push(&mut self, index: u64, term: u64) {
        if index <= self.last {
            self.truncate_from(index);
        }
        if self.runs.last().is_none_or(|&(_, t)| t != term) {
            self.runs.push((index, term));
        }
        self.last = index;
    }

    fn truncate_from(&mut self, index: u64) {
        while self.runs.last().is_some_and(|&(first, _)| first >= index) {
            self.runs.pop();
        }
        self.last = self.last.min(index.saturating_sub(1));
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        if index == 0 || index > self.last {
            return None;
        }
        let i = self.runs.partition_point(|&(first, _)| first <= index);
        (i > 0).then(|| self.runs[i - 1].1)
    }

    /// The entries `from..=to` as `(first, last, term)` segments.
    fn segments(&self, from: u64, to: u64) -> Vec<(u64, u64, u64)> {
        let to = to.min(self.last);
        let mut out = Vec::new();
        for (i, &(first, term)) in self.runs.iter().enumerate() {
            let end = self
                .runs
                .get(i + 1)
                .map_or(self.last, |&(next, _)| next - 1);
            let (a, b) = (first.max(from), end.min(to));
            if a <= b {
                out.push((a, b, term));
            }
        }
        out
    }

    /// A snapshot now covers `..=index` (term `term`); later entries stay.
    fn replace_prefix(&mut self, index: u64, term: u64) {
        let suffix = self.segments(index + 1, self.last);
        let last = self.last.max(index);
        self.runs = vec![(1, term)];
        for (first, _, t) in suffix {
            self.runs.push((first, t));
        }
        self.last = last;
    }
}

/// What the narrator knows of one Raft node.
#[derive(Clone, Debug, Default)]
struct NodeState {
    role: String,
    term: u64,
    /// The last timer that fired here: (time, its name).
    timer: Option<(u64, String)>,
    /// PreVote rounds in a row without becoming candidate.
    prevote_rounds: u32,
    /// Votes delivered to this node as candidate of `vote_term`.
    voters: BTreeSet<String>,
    vote_term: u64,
    log: TermRuns,
    commit: u64,
    /// True once this node, as leader of `term`, committed an entry of its term.
    committed_in_term: bool,
    /// True once it took a snapshot.
    snapshotted: bool,
}

/// The Raft narrator (see the module docs).
pub struct RaftNarrator {
    /// Every node's name, by topology index (observations name nodes by index).
    names: Vec<String>,
    nodes: BTreeMap<String, NodeState>,
    /// Granted votes in flight: message id → (voter, term).
    votes: BTreeMap<u64, (String, u64)>,
    /// The committed log, as the leaders declared it.
    committed: TermRuns,
    /// Each advance of the committed log: (new commit index, time, leader's index in `names`).
    advances: Vec<(u64, u64, u32)>,
    log_state: Throttle<String>,
    commit_samples: Throttle<u64>,
}

impl RaftNarrator {
    /// A narrator for the Raft nodes `nodes` of a run with this cast.
    pub fn new(cast: &[CastMember], nodes: &[&str]) -> RaftNarrator {
        RaftNarrator {
            names: cast.iter().map(|m| m.name.clone()).collect(),
            nodes: nodes
                .iter()
                .map(|n| (n.to_string(), NodeState::default()))
                .collect(),
            votes: BTreeMap::new(),
            committed: TermRuns::default(),
            advances: Vec::new(),
            log_state: Throttle::new(SAMPLE_PERIOD_NS),
            commit_samples: Throttle::new(SAMPLE_PERIOD_NS),
        }
    }

    fn name(&self, index: Option<u64>) -> String {
        index
            .and_then(|i| self.names.get(i as usize))
            .cloned()
            .unwrap_or_else(|| "?".to_string())
    }

    fn observe(&mut self, e: &TraceEvent, out: &mut Narration) {
        // Only the parts told are decoded (an entry's command is skipped, not parsed).
        let Some(obs) = e.decode::<Obs>("obs") else {
            return;
        };
        let u = |v: Option<u64>| v.unwrap_or(0);
        match obs.fact {
            "role" => {
                let role = obs.role.unwrap_or("?");
                self.role(e, role, u(obs.term), out);
            }
            "append" => {
                let Some(entries) = obs.entries else {
                    return;
                };
                let first = u(obs.index);
                let node = self.nodes.get_mut(e.node).expect("a Raft node");
                for (i, entry) in entries.iter().enumerate() {
                    node.log.push(first + i as u64, u(entry.term));
                }
                self.show_log(e.t_ns, e.node, out);
            }
            "truncate" => self.truncate(e, u(obs.index), u(obs.last), out),
            "commit" => self.commit(e, u(obs.index), out),
            "apply" => {
                let n = obs.entries.map_or(0, |e| e.len()) as u64;
                let node = self.nodes.get_mut(e.node).expect("a Raft node");
                node.commit = node.commit.max((u(obs.index) + n).saturating_sub(1));
                self.show_log(e.t_ns, e.node, out);
            }
            "snapshot-taken" => {
                let node = self.nodes.get_mut(e.node).expect("a Raft node");
                // Told once per node: later snapshots only repeat it.
                if !std::mem::replace(&mut node.snapshotted, true) {
                    out.say(
                        e.t_ns,
                        Some(e.node),
                        "log",
                        format!(
                            "{} takes its first snapshot, at index {} (term {}), and compacts its log",
                            e.node,
                            u(obs.index),
                            u(obs.term)
                        ),
                    );
                }
            }
            "snapshot-installed" => {
                let (index, term) = (u(obs.index), u(obs.term));
                let leader = self.name(obs.leader);
                let node = self.nodes.get_mut(e.node).expect("a Raft node");
                node.log.replace_prefix(index, term);
                node.commit = node.commit.max(index);
                out.say(
                    e.t_ns,
                    Some(e.node),
                    "log",
                    format!(
                        "{} installs a snapshot from {leader} up to index {index} (term {term})",
                        e.node
                    ),
                );
                self.show_log(e.t_ns, e.node, out);
            }
            "restored" => {
                let (last, last_term) = (u(obs.last_index), u(obs.last_term));
                let node = self.nodes.get_mut(e.node).expect("a Raft node");
                node.log.truncate_from(last + 1);
                node.commit = u(obs.snapshot_index);
                if e.t_ns > 0 {
                    out.say(
                        e.t_ns,
                        Some(e.node),
                        "node",
                        format!(
                            "{} reads term {} and a log up to index {last} (term {last_term}) from its disk",
                            e.node,
                            u(obs.term)
                        ),
                    );
                }
                self.show_log(e.t_ns, e.node, out);
            }
            _ => {}
        }
    }

    fn role(&mut self, e: &TraceEvent, role: &str, term: u64, out: &mut Narration) {
        let n = e.node;
        let node = self.nodes.get_mut(n).expect("a Raft node");
        let (was, old_term) = (
            std::mem::replace(&mut node.role, role.to_string()),
            node.term,
        );
        node.term = term;
        let timer = node
            .timer
            .as_ref()
            .filter(|(t, _)| *t == e.t_ns)
            .map(|(_, name)| name.as_str());
        let timed_out = timer == Some("election");
        let line = match role {
            "pre-candidate" if was == "pre-candidate" && term == old_term => {
                node.prevote_rounds += 1;
                None
            }
            "pre-candidate" => {
                node.prevote_rounds = 1;
                Some(if timed_out {
                    format!("{n} times out in term {term} and starts PreVote")
                } else {
                    format!("{n} starts PreVote in term {term}")
                })
            }
            "candidate" => {
                node.voters.clear();
                node.vote_term = term;
                node.prevote_rounds = 0;
                Some(if was == "pre-candidate" {
                    format!("{n} wins PreVote and starts an election for term {term}")
                } else if timed_out {
                    format!(
                        "{n} times out in term {old_term} and starts an election for term {term}"
                    )
                } else {
                    format!("{n} starts an election for term {term}")
                })
            }
            "leader" => {
                node.committed_in_term = false;
                let voters: Vec<&str> = if node.vote_term == term {
                    node.voters.iter().map(String::as_str).collect()
                } else {
                    Vec::new()
                };
                Some(if voters.is_empty() {
                    format!("{n} becomes leader of term {term}")
                } else {
                    format!(
                        "{n} becomes leader of term {term} with votes from {}",
                        voters.join(", ")
                    )
                })
            }
            "follower" => {
                let rounds = std::mem::take(&mut node.prevote_rounds);
                match was.as_str() {
                    "leader" if term == old_term => Some(if timer == Some("check-quorum") {
                        format!(
                            "{n} steps down: CheckQuorum finds no majority answering it in term {term}"
                        )
                    } else {
                        format!("{n} steps down in term {term}")
                    }),
                    "leader" => Some(format!("{n} learns term {term} and steps down")),
                    // A lost election is told only when the node campaigned in vain for
                    // several PreVote rounds (e.g. cut off by a partition).
                    "candidate" | "pre-candidate" if rounds > 1 => {
                        let tries = format!("{rounds} PreVote rounds failed in term {old_term}");
                        Some(if term > old_term {
                            format!("{n} learns term {term} and stops campaigning ({tries})")
                        } else {
                            format!("{n} hears from a leader and stops campaigning ({tries})")
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(text) = line {
            out.say(e.t_ns, Some(n), "election", text);
        }
        out.set_role_and_term(e.t_ns, n, (&was, role), (old_term, term));
    }

    fn truncate(&mut self, e: &TraceEvent, index: u64, last: u64, out: &mut Narration) {
        let node = self.nodes.get_mut(e.node).expect("a Raft node");
        let segments = node.log.segments(index, last);
        node.log.truncate_from(index);
        let terms: Vec<u64> = segments.iter().map(|s| s.2).collect();
        let term_text = match (terms.first(), terms.last()) {
            (Some(a), Some(b)) if a == b => format!(" (term {a})"),
            (Some(a), Some(b)) => format!(" (terms {a}-{b})"),
            _ => String::new(),
        };
        let range = if index == last {
            format!("entry {index}")
        } else {
            format!("entries {index}-{last}")
        };
        // Were any of them committed? (Only a broken Raft replaces a committed entry.)
        let mut lost = Vec::new();
        for (a, b, term) in segments {
            for (ca, cb, ct) in self.committed.segments(a, b) {
                if ct == term {
                    lost.push((ca, cb));
                }
            }
        }
        let mut text = format!("{}'s {range}{term_text} are replaced", e.node);
        if let Some(&(a, _)) = lost.first() {
            let b = lost.last().map_or(a, |l| l.1);
            let at = self.advances.partition_point(|&(n, _, _)| n < a);
            let by = self
                .advances
                .get(at)
                .map(|&(_, t, who)| {
                    format!(" by {} at {}", self.name(Some(u64::from(who))), seconds(t))
                })
                .unwrap_or_default();
            let what = if a == b {
                format!("entry {a} was")
            } else {
                format!("entries {a}-{b} were")
            };
            text.push_str(&format!(
                ", though {what} committed{by}: a committed entry is lost"
            ));
        }
        out.say(e.t_ns, Some(e.node), "log", text);
        self.show_log(e.t_ns, e.node, out);
    }

    fn commit(&mut self, e: &TraceEvent, index: u64, out: &mut Narration) {
        let who = self.names.iter().position(|n| *n == e.node).unwrap_or(0) as u32;
        let node = self.nodes.get_mut(e.node).expect("a Raft node");
        node.commit = node.commit.max(index);
        let entry_term = node.log.term_at(index);
        if entry_term.is_some_and(|t| t != node.term) {
            out.say(
                e.t_ns,
                Some(e.node),
                "commit",
                format!(
                    "{} commits index {index} (term {}) by counting replicas, as leader of term {}: an entry of an earlier term, which Raft never commits so (Figure 8)",
                    e.node,
                    entry_term.unwrap_or(0),
                    node.term
                ),
            );
        } else if node.role == "leader" && !node.committed_in_term {
            node.committed_in_term = true;
            out.say(
                e.t_ns,
                Some(e.node),
                "commit",
                format!(
                    "{} commits its first entry of term {} (index {index})",
                    e.node, node.term
                ),
            );
        }
        if index > self.committed.last {
            let segments = node.log.segments(self.committed.last + 1, index);
            for (a, b, term) in segments {
                self.committed.push(a, term);
                self.committed.push(b, term);
            }
            self.advances.push((index, e.t_ns, who));
        }
        self.show_log(e.t_ns, e.node, out);
    }

    /// The `log` state and the `commit index` sample of `n`, throttled.
    fn show_log(&mut self, t_ns: u64, n: &str, out: &mut Narration) {
        let node = &self.nodes[n];
        let text = format!("last {} · commit {}", node.log.last, node.commit);
        let commit = node.commit;
        for (t, v) in self.log_state.update(t_ns, n, text) {
            out.set(t, n, "log", v);
        }
        for (t, v) in self.commit_samples.update(t_ns, n, commit) {
            out.sample(t, "commit index", n, v as f64);
        }
    }
}

impl Narrator for RaftNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        match e.kind {
            "send" if e.msg_type() == Some("vote") => {
                let Some(msg) = e.get("msg") else { return };
                if msg.get("type").and_then(|t| t.as_str()) == Some("vote")
                    && msg.get("granted").and_then(|g| g.as_bool()) == Some(true)
                    && msg.get("pre_vote").and_then(|g| g.as_bool()) == Some(false)
                    && self.nodes.contains_key(e.node)
                    && let (Some(id), Some(term)) =
                        (e.u64("msg_id"), msg.get("term").and_then(|t| t.as_u64()))
                {
                    self.votes.insert(id, (e.node.to_string(), term));
                }
            }
            "deliver" | "drop" if !self.votes.is_empty() => {
                let Some((voter, term)) = e.u64("msg_id").and_then(|id| self.votes.remove(&id))
                else {
                    return;
                };
                if e.kind == "deliver"
                    && let Some(node) = self.nodes.get_mut(e.node)
                    && node.role == "candidate"
                    && node.vote_term == term
                {
                    node.voters.insert(voter);
                }
            }
            "timer" => {
                if let Some(node) = self.nodes.get_mut(e.node) {
                    let name = e
                        .get("timer")
                        .and_then(|t| t.get("timer"))
                        .and_then(|t| t.as_str())
                        .unwrap_or("");
                    node.timer = Some((e.t_ns, name.to_string()));
                }
            }
            "crash" => {
                if let Some(node) = self.nodes.get_mut(e.node) {
                    node.role.clear();
                    node.commit = 0;
                    out.set(e.t_ns, e.node, "role", "");
                }
            }
            "observe" if self.nodes.contains_key(e.node) => self.observe(e, out),
            _ => {}
        }
    }

    fn finish(&mut self, end_ns: u64, out: &mut Narration) {
        for (t, n, v) in self.log_state.flush(end_ns) {
            out.set(t, &n, "log", v);
        }
        for (t, n, v) in self.commit_samples.flush(end_ns) {
            out.sample(t, "commit index", &n, v as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn story(trace: &str) -> Narration {
        let cast: Vec<CastMember> = ["n1", "n2", "n3"]
            .iter()
            .map(|n| CastMember {
                name: n.to_string(),
                client: false,
                part: "raft".into(),
                runs: "raft".into(),
            })
            .collect();
        let mut narrator = narrator(&cast).expect("a Raft cast");
        let mut out = Narration::default();
        for line in trace.lines().filter(|l| !l.trim().is_empty()) {
            narrator.event(&TraceEvent::parse(line.trim()).unwrap(), &mut out);
        }
        narrator.finish(1_000_000_000, &mut out);
        out
    }

    fn texts(n: &Narration) -> Vec<&str> {
        n.lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn a_leader_is_told_with_the_voters_whose_granted_votes_reached_it() {
        let n = story(
            r#"
            {"t_ns":10,"node":"n1","kind":"timer","timer_id":1,"timer":{"timer":"election"}}
            {"t_ns":10,"node":"n1","kind":"observe","obs":{"fact":"role","role":"candidate","term":1}}
            {"t_ns":11,"node":"n2","kind":"send","to":"n1","msg_id":5,"msg":{"type":"vote","term":1,"granted":true,"pre_vote":false}}
            {"t_ns":11,"node":"n3","kind":"send","to":"n1","msg_id":6,"msg":{"type":"vote","term":1,"granted":true,"pre_vote":false}}
            {"t_ns":12,"node":"n1","kind":"drop","from":"n3","msg_id":6,"reason":"loss"}
            {"t_ns":13,"node":"n1","kind":"deliver","from":"n2","msg_id":5}
            {"t_ns":13,"node":"n1","kind":"observe","obs":{"fact":"role","role":"leader","term":1}}
            {"t_ns":13,"node":"n1","kind":"observe","obs":{"fact":"append","index":1,"entries":[{"term":1,"cmd":"noop"}]}}
            {"t_ns":15,"node":"n1","kind":"observe","obs":{"fact":"commit","index":1}}
            {"t_ns":16,"node":"n1","kind":"observe","obs":{"fact":"commit","index":1}}
            "#,
        );
        assert_eq!(
            texts(&n),
            vec![
                "n1 times out in term 0 and starts an election for term 1",
                "n1 becomes leader of term 1 with votes from n2",
                "n1 commits its first entry of term 1 (index 1)",
            ]
        );
        let roles: Vec<&str> = n
            .states
            .iter()
            .filter(|s| s.field == "role")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(roles, vec!["candidate", "leader"]);
        assert_eq!(n.states.last().unwrap().value, "last 1 · commit 1");
    }

    #[test]
    fn check_quorum_step_downs_and_replaced_committed_entries_are_told() {
        let n = story(
            r#"
            {"t_ns":1,"node":"n1","kind":"observe","obs":{"fact":"role","role":"leader","term":2}}
            {"t_ns":1,"node":"n1","kind":"observe","obs":{"fact":"append","index":1,"entries":[{"term":1,"cmd":"1#1"},{"term":2,"cmd":"noop"}]}}
            {"t_ns":1,"node":"n2","kind":"observe","obs":{"fact":"append","index":1,"entries":[{"term":1,"cmd":"1#1"},{"term":1,"cmd":"1#2"}]}}
            {"t_ns":2,"node":"n1","kind":"observe","obs":{"fact":"commit","index":1}}
            {"t_ns":3,"node":"n1","kind":"timer","timer_id":4,"timer":{"timer":"check-quorum","term":2}}
            {"t_ns":3,"node":"n1","kind":"observe","obs":{"fact":"role","role":"follower","term":2}}
            {"t_ns":4,"node":"n2","kind":"observe","obs":{"fact":"truncate","index":1,"last":2}}
            "#,
        );
        let t = texts(&n);
        assert_eq!(t[0], "n1 becomes leader of term 2");
        assert!(
            t[1].starts_with(
                "n1 commits index 1 (term 1) by counting replicas, as leader of term 2"
            ),
            "{t:?}"
        );
        assert_eq!(
            t[2],
            "n1 steps down: CheckQuorum finds no majority answering it in term 2"
        );
        assert_eq!(
            t[3],
            "n2's entries 1-2 (term 1) are replaced, though entry 1 was committed by n1 at 0.000 s: a committed entry is lost"
        );
        let samples: Vec<f64> = n.samples.iter().map(|s| s.value).collect();
        assert_eq!(samples, vec![0.0, 0.0, 1.0], "{:?}", n.samples);
    }

    #[test]
    fn term_runs_answer_terms_and_segments() {
        let mut log = TermRuns::default();
        for (i, t) in [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3)] {
            log.push(i, t);
        }
        assert_eq!(log.term_at(4), Some(2));
        assert_eq!(log.segments(2, 5), vec![(2, 2, 1), (3, 4, 2), (5, 5, 3)]);
        log.truncate_from(4);
        assert_eq!(
            (log.last, log.term_at(4), log.term_at(3)),
            (3, None, Some(2))
        );
        log.replace_prefix(10, 7);
        assert_eq!((log.last, log.term_at(10)), (10, Some(7)));
    }
}
