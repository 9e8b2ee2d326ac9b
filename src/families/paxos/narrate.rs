//! Paxos's story for `faultline explain` and the HTML report.
//!
//! Single-decree Paxos (`paxos`): each proposer's ballot per instance (phase 1a), refusals that
//! preempt a proposer (a `nack`: dueling proposers), phase 2a with the value proposed (its own or
//! one taken from a promise), the value chosen in each instance (the first learner to learn it)
//! and any second value learned (agreement broken). Multi-Paxos (`multi-paxos`): phase 1 runs,
//! leaders with the acceptors that promised, step-downs, each leader's first chosen slot, each
//! replica's first snapshot, every snapshot installed, and conflicting learns. State fields `role`, `ballot` (the acceptor's promise, `(round, node)`),
//! `term` (Multi-Paxos: the ballot round), `log` (`learned 12` / `applied 812`); samples
//! `commit index` (Multi-Paxos: the applied slot), at most once per node per
//! [`SAMPLE_PERIOD_NS`].

use std::collections::{BTreeMap, BTreeSet};

use crate::families::narrate::servers_running;
use crate::family::{CastMember, Narration, Narrator, Throttle};
use crate::sim::trace::TraceEvent;

/// Shortest time between two `log` state changes or `commit index` samples of one node.
pub const SAMPLE_PERIOD_NS: u64 = 100_000_000;

/// Makes the narrator of a run's Paxos and Multi-Paxos nodes; `None` if no role runs either.
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let multi: BTreeSet<String> = servers_running(cast, super::multi::PROTOCOL.name)
        .map(str::to_string)
        .collect();
    let synod: BTreeSet<String> = servers_running(cast, super::synod::PROTOCOL.name)
        .map(str::to_string)
        .collect();
    if multi.is_empty() && synod.is_empty() {
        return None;
    }
    Some(Box::new(PaxosNarrator {
        names: cast.iter().map(|m| m.name.clone()).collect(),
        multi,
        synod,
        told: BTreeSet::new(),
        chosen: BTreeMap::new(),
        learned: BTreeMap::new(),
        roles: BTreeMap::new(),
        promises: BTreeMap::new(),
        promisers: BTreeMap::new(),
        leader_applied: BTreeSet::new(),
        snapshotted: BTreeSet::new(),
        log_state: Throttle::new(SAMPLE_PERIOD_NS),
        samples: Throttle::new(SAMPLE_PERIOD_NS),
    }))
}

/// The Paxos narrator (see the module docs).
struct PaxosNarrator {
    names: Vec<String>,
    multi: BTreeSet<String>,
    synod: BTreeSet<String>,
    /// (what, proposer, instance, ballot) already told, so retransmissions are told once.
    told: BTreeSet<(&'static str, String, u64, String)>,
    /// Single-decree: the first value learned per instance.
    chosen: BTreeMap<u64, String>,
    /// Single-decree: instances each node learned.
    learned: BTreeMap<String, u64>,
    /// Multi-Paxos: each node's role and round.
    roles: BTreeMap<String, (String, u64)>,
    /// Multi-Paxos promises in flight: message id → (acceptor, ballot).
    promises: BTreeMap<u64, (String, String)>,
    /// Multi-Paxos: the acceptors whose promise of a ballot reached its candidate.
    promisers: BTreeMap<String, BTreeSet<String>>,
    /// Multi-Paxos leaders (node, round) whose first chosen slot was told.
    leader_applied: BTreeSet<(String, u64)>,
    /// Multi-Paxos replicas whose first snapshot was told.
    snapshotted: BTreeSet<String>,
    log_state: Throttle<String>,
    samples: Throttle<u64>,
}

impl PaxosNarrator {
    /// Multi-Paxos: `n` has applied every slot up to `slot` (its `log` state and its
    /// `commit index` sample, throttled).
    fn show_applied(&mut self, t_ns: u64, n: &str, slot: u64, out: &mut Narration) {
        for (t, v) in self.log_state.update(t_ns, n, format!("applied {slot}")) {
            out.set(t, n, "log", v);
        }
        for (t, v) in self.samples.update(t_ns, n, slot) {
            out.sample(t, "commit index", n, v as f64);
        }
    }

    /// `(2, n3)` for `{"round":2,"node":2}`.
    fn ballot(&self, b: Option<&serde_json::Value>) -> String {
        let Some(b) = b else { return "?".into() };
        let round = b.get("round").and_then(|r| r.as_u64()).unwrap_or(0);
        let node = b
            .get("node")
            .and_then(|n| n.as_u64())
            .and_then(|n| self.names.get(n as usize))
            .map_or("?", String::as_str);
        format!("({round}, {node})")
    }

    fn first(&mut self, what: &'static str, node: &str, instance: u64, ballot: &str) -> bool {
        self.told
            .insert((what, node.to_string(), instance, ballot.to_string()))
    }

    fn send(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(msg) = e.get("msg") else { return };
        let Some(kind) = msg.get("type").and_then(|t| t.as_str()) else {
            return;
        };
        let n = e.node;
        let to = e.str("to").unwrap_or("?");
        let instance = msg.get("instance").and_then(|i| i.as_u64()).unwrap_or(0);
        let single = self.synod.contains(n);
        match kind {
            "prepare" if single => {
                let b = self.ballot(msg.get("ballot"));
                if self.first("prepare", n, instance, &b) {
                    out.say(
                        e.t_ns,
                        Some(n),
                        "election",
                        format!("{n} prepares ballot {b} in instance {instance}"),
                    );
                }
            }
            "nack" if single => {
                let b = self.ballot(msg.get("ballot"));
                let promised = self.ballot(msg.get("promised"));
                if self.first("nack", to, instance, &b) {
                    out.say(
                        e.t_ns,
                        Some(to),
                        "election",
                        format!(
                            "{to}'s ballot {b} is preempted in instance {instance}: {n} promised the higher ballot {promised}"
                        ),
                    );
                }
            }
            "accept" if single => {
                let b = self.ballot(msg.get("ballot"));
                let value = msg.get("value").and_then(|v| v.as_str()).unwrap_or("?");
                if self.first("accept", n, instance, &b)
                    && !self
                        .told
                        .contains(&("proposed", n.to_string(), instance, b.clone()))
                {
                    out.say(
                        e.t_ns,
                        Some(n),
                        "log",
                        format!(
                            "{n} has promises from a majority for {b} in instance {instance} and proposes {value:?}, a value an acceptor had accepted"
                        ),
                    );
                }
            }
            "promise" if self.multi.contains(n) => {
                if let Some(id) = e.u64("msg_id") {
                    let b = self.ballot(msg.get("ballot"));
                    self.promises.insert(id, (n.to_string(), b));
                }
            }
            _ => {}
        }
    }

    fn observe(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(obs) = e.get("obs") else { return };
        let n = e.node;
        let fact = obs.get("fact").and_then(|f| f.as_str()).unwrap_or("");
        let instance = obs
            .get("instance")
            .or_else(|| obs.get("slot"))
            .and_then(|i| i.as_u64())
            .unwrap_or(0);
        let value = obs.get("value").and_then(|v| v.as_str()).unwrap_or("?");
        let single = self.synod.contains(n);
        match fact {
            "promise" | "promise-from" => {
                let b = self.ballot(obs.get("ballot"));
                out.set(e.t_ns, n, "ballot", b);
            }
            "proposed" if single => {
                let b = self.ballot(obs.get("ballot"));
                self.first("proposed", n, instance, &b);
                out.say(
                    e.t_ns,
                    Some(n),
                    "log",
                    format!(
                        "{n} has promises from a majority for {b} in instance {instance} and proposes its own value {value:?}"
                    ),
                );
            }
            "learned" if single => {
                match self.chosen.get(&instance) {
                    None => {
                        self.chosen.insert(instance, value.to_string());
                        out.say(
                            e.t_ns,
                            Some(n),
                            "commit",
                            format!("{value:?} is chosen in instance {instance} ({n} learns it first)"),
                        );
                    }
                    Some(v) if v != value => out.say(
                        e.t_ns,
                        Some(n),
                        "commit",
                        format!(
                            "{n} learns {value:?} in instance {instance}, but {v:?} was learned there before: two values are chosen"
                        ),
                    ),
                    Some(_) => {}
                }
                let count = self.learned.entry(n.to_string()).or_default();
                *count += 1;
                let text = format!("learned {count}");
                for (t, v) in self.log_state.update(e.t_ns, n, text) {
                    out.set(t, n, "log", v);
                }
            }
            "learned" => out.say(
                e.t_ns,
                Some(n),
                "commit",
                format!(
                    "{n} is told slot {instance} holds {value:?}, which conflicts with what it applied there"
                ),
            ),
            "applied" => {
                if let Some((role, round)) = self.roles.get(n)
                    && role == "leader"
                    && self.leader_applied.insert((n.to_string(), *round))
                {
                    out.say(
                        e.t_ns,
                        Some(n),
                        "commit",
                        format!("{n} sees its first slot as leader chosen (slot {instance})"),
                    );
                }
                self.show_applied(e.t_ns, n, instance, out);
            }
            // Told once per node: later snapshots only repeat it.
            "snapshot-taken" if self.snapshotted.insert(n.to_string()) => out.say(
                e.t_ns,
                Some(n),
                "log",
                format!(
                    "{n} takes its first snapshot, at slot {instance}, and forgets the slots up to it (chosen log and acceptor)"
                ),
            ),
            "snapshot-installed" => {
                out.say(
                    e.t_ns,
                    Some(n),
                    "log",
                    format!(
                        "{n} installs a snapshot up to slot {instance} and applies from slot {} on",
                        instance + 1
                    ),
                );
                self.show_applied(e.t_ns, n, instance, out);
            }
            "role" => {
                let role = obs.get("role").and_then(|r| r.as_str()).unwrap_or("?");
                let round = obs.get("term").and_then(|t| t.as_u64()).unwrap_or(0);
                let (was, old_round) = self
                    .roles
                    .insert(n.to_string(), (role.to_string(), round))
                    .unwrap_or_default();
                let own = self
                    .names
                    .iter()
                    .position(|x| x == n)
                    .map(|i| serde_json::json!({"round": round, "node": i}));
                let b = self.ballot(own.as_ref());
                let line = match (role, was.as_str()) {
                    ("candidate", _) => Some(format!(
                        "{n} times out and starts phase 1 with ballot {b}"
                    )),
                    ("leader", _) => {
                        let from: Vec<&str> = self
                            .promisers
                            .get(&b)
                            .map(|s| s.iter().map(String::as_str).collect())
                            .unwrap_or_default();
                        Some(if from.is_empty() {
                            format!("{n} becomes leader with ballot {b}")
                        } else {
                            format!(
                                "{n} becomes leader with ballot {b}: promises from {}",
                                from.join(", ")
                            )
                        })
                    }
                    ("follower", "leader") => Some(format!(
                        "{n} meets a higher ballot (round {round}) and steps down as leader of round {old_round}"
                    )),
                    ("follower", "candidate") => Some(format!(
                        "{n} meets a higher ballot (round {round}) and stops campaigning"
                    )),
                    _ => None,
                };
                if let Some(text) = line {
                    out.say(e.t_ns, Some(n), "election", text);
                }
                out.set_role_and_term(e.t_ns, n, (&was, role), (old_round, round));
            }
            _ => {}
        }
    }
}

impl Narrator for PaxosNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        match e.kind {
            "send" if self.synod.contains(e.node) || self.multi.contains(e.node) => {
                self.send(e, out)
            }
            "deliver" | "drop" if !self.promises.is_empty() => {
                let Some((from, ballot)) = e.u64("msg_id").and_then(|id| self.promises.remove(&id))
                else {
                    return;
                };
                if e.kind == "deliver" && e.node != from {
                    self.promisers.entry(ballot).or_default().insert(from);
                }
            }
            "observe" if self.synod.contains(e.node) || self.multi.contains(e.node) => {
                self.observe(e, out)
            }
            _ => {}
        }
    }

    fn finish(&mut self, end_ns: u64, out: &mut Narration) {
        for (t, n, v) in self.log_state.flush(end_ns) {
            out.set(t, &n, "log", v);
        }
        for (t, n, v) in self.samples.flush(end_ns) {
            out.sample(t, "commit index", &n, v as f64);
        }
    }
}
