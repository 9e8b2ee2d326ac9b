//! Paxos, after L. Lamport, "Paxos Made Simple" (2001): the single-decree Synod protocol (§2) as
//! protocol `paxos`, and Multi-Paxos (§3) serving the shared key-value store as protocol
//! `multi-paxos`. This module holds what the two share: ballots, the acceptor, the rule a
//! proposer uses to pick its value, the planted bugs and the observations the checks read.
//!
//! # The Synod algorithm (§2.2)
//!
//! Three roles, played by nodes: *proposers* propose values, *acceptors* accept them, *learners*
//! find out which value was chosen. A value is **chosen** when a majority of acceptors have
//! accepted the same proposal (ballot, value). A proposal is numbered by a [`Ballot`]
//! `(round, node)`: the node id makes ballots of different proposers distinct (§2.2, "different
//! proposers choose their numbers from disjoint sets"), the round makes one proposer's ballots
//! increase (it is persisted before use, so a restart never reuses one).
//!
//! - **Phase 1a.** A proposer picks a ballot `b` above every ballot it has seen and sends
//!   *prepare(b)* to the acceptors.
//! - **Phase 1b.** An acceptor whose promise is at most `b` promises `b` — never again to accept
//!   a ballot below `b` — and answers with the proposal it has accepted, if any. (Lamport's
//!   acceptor answers prepares *greater* than its promise; answering an equal one again is the
//!   same promise, and makes retransmitted or duplicated prepares harmless. It is only safe
//!   because two proposers never share a ballot, which the planted bug `duplicate-ballots`
//!   breaks.) Otherwise it answers *nack* with its promise, so the proposer can give up early.
//! - **Phase 2a.** With promises from a majority, the proposer sends *accept(b, v)* where `v` is
//!   the value of the highest-ballot proposal reported in those promises, or, if none reported
//!   one, any value (its own).
//! - **Phase 2b.** An acceptor accepts `(b, v)` unless it has promised a ballot above `b`.
//!
//! Acceptors write their promise and accepted proposal to disk and **sync before answering**
//! (§2.2: "an acceptor must remember this information even if it fails and then restarts").
//!
//! **Learning (§2.3).** Each acceptor sends every acceptance to the learners (and to the
//! proposer); a learner that sees a majority accept the same proposal has learned the value. A
//! proposer that sees a majority accept its own proposal also tells the learners, and repeats
//! that until each acknowledges, which repairs lost messages and crashed learners.
//!
//! **Progress (§2.4).** Two proposers can preempt each other forever. A proposer whose ballot
//! was preempted waits a random back-off before trying a higher one, drawn from a range that
//! doubles with each consecutive failure, so one of them eventually gets both phases through.
//!
//! # Multi-Paxos (§3)
//!
//! A sequence of Synod instances, one per log slot, with a distinguished leader that runs phase
//! 1 once for every slot it does not know as chosen and then only phase 2 per command. Details
//! in [`multi`].
//!
//! # Invariants
//!
//! - P2c (§2.2), which makes at most one value chosen per instance: if a proposal `(b, v)` is
//!   issued, then some majority has either accepted no proposal below `b`, or `v` is the value
//!   of the highest-ballot proposal below `b` accepted by one of them. It rests on the acceptor
//!   keeping its promise across crashes and the proposer taking the highest-ballot value.
//! - Checked across nodes from acceptor observations (`agreement`, `validity`), from learners
//!   (`learner-agreement`) and from the replicas' applied logs (`applied-prefix`, Multi-Paxos).
//! - Each node asserts after every step that it left nothing unsynced on disk, that every
//!   accepted ballot is at most its promise, and that its ballots never exceed its persisted
//!   round.
//!
//! # Planted bugs
//!
//! Named switches in `[paxos] bugs = [...]` (and `[multi-paxos]`), each breaking one rule above;
//! see [`BUGS`].

pub mod acceptor;
pub mod checks;
pub mod multi;
pub mod narrate;
pub mod synod;

/// The registry entry: single-decree Paxos and Multi-Paxos, their safety checks and their
/// decisions for `no-decision`.
pub static FAMILY: crate::family::Family = crate::family::Family {
    name: "paxos",
    summary: "single-decree Paxos (the Synod protocol) and Multi-Paxos replicating the key-value store",
    protocols: &[multi::PROTOCOL, synod::PROTOCOL],
    workloads: &[],
    checks: &[
        checks::agreement::CHECK,
        checks::validity::CHECK,
        checks::learner_agreement::CHECK,
        checks::applied_prefix::CHECK,
        checks::decision::CHECK,
    ],
    decisions: Some(decisions),
    narrator: Some(narrate::narrator),
    fold: Some(checks::ledger::fold),
};

/// Every new value learned or applied, for the generic `no-decision` check.
fn decisions(record: &crate::sim::RunRecord) -> Vec<(u64, NodeId, String)> {
    #[derive(PartialEq, Eq, PartialOrd, Ord)]
    enum Decided {
        Learned(u64, ValueName),
        Applied(u64),
    }
    let mut seen: BTreeSet<Decided> = BTreeSet::new();
    let mut out = Vec::new();
    for o in &record.observations {
        let what = match o.get() {
            Some(Observation::Learned { instance, value }) => seen
                .insert(Decided::Learned(*instance, value.clone()))
                .then(|| format!("learned {value:?} in instance {instance}")),
            Some(Observation::Applied { slot, value }) => seen
                .insert(Decided::Applied(*slot))
                .then(|| format!("applied {value:?} at slot {slot}")),
            _ => None,
        };
        if let Some(what) = what {
            out.push((o.t_ns, o.node, what));
        }
    }
    out
}

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::family::{Bug, OptionError};
use crate::process::NodeId;
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;

/// Planted bug: a promise does not report the proposal the acceptor accepted.
pub const BUG_ACCEPTOR_OMITS_ACCEPTED: &str = "acceptor-omits-accepted";
/// Planted bug: the proposer proposes its own value whatever the promises report.
pub const BUG_PROPOSER_IGNORES_ACCEPTED: &str = "proposer-ignores-accepted";
/// Planted bug: the proposer takes the lowest-ballot reported value instead of the highest.
pub const BUG_PROPOSER_TAKES_LOWEST: &str = "proposer-takes-lowest-accepted";
/// Planted bug: an acceptor accepts a ballot below its promise.
pub const BUG_ACCEPT_IGNORES_PROMISE: &str = "accept-ignores-promise";
/// Planted bug: the promise is kept in memory only, so a restart forgets it.
pub const BUG_PROMISE_NOT_PERSISTED: &str = "promise-not-persisted";
/// Planted bug: ballots leave out the proposer's id, so two proposers can use the same one.
pub const BUG_DUPLICATE_BALLOTS: &str = "duplicate-ballots";
/// Planted bug: no randomized back-off after a preempted ballot (§2.4).
pub const BUG_NO_BACKOFF: &str = "no-backoff";
/// Planted bug (Multi-Paxos only): the leader answers reads from its state at once, without a
/// confirmed heartbeat round or the slots it assigned applied.
pub const BUG_READ_FROM_LOCAL_STATE: &str = "read-from-local-state";

/// Every planted bug of the Paxos protocols, with the check that catches it.
pub const BUGS: &[Bug] = &[
    Bug {
        name: BUG_ACCEPTOR_OMITS_ACCEPTED,
        summary: "a promise does not report the proposal the acceptor accepted, so a later proposer overrides a chosen value",
        caught_by: "agreement",
    },
    Bug {
        name: BUG_PROPOSER_IGNORES_ACCEPTED,
        summary: "the proposer proposes its own value even when promises carry accepted values",
        caught_by: "agreement",
    },
    Bug {
        name: BUG_PROPOSER_TAKES_LOWEST,
        summary: "the proposer takes the value of the lowest-ballot accepted proposal, not the highest",
        caught_by: "agreement",
    },
    Bug {
        name: BUG_ACCEPT_IGNORES_PROMISE,
        summary: "an acceptor accepts a ballot lower than the one it promised",
        caught_by: "agreement",
    },
    Bug {
        name: BUG_PROMISE_NOT_PERSISTED,
        summary: "the promise is not written to disk, so a restarted acceptor forgets it",
        caught_by: "agreement",
    },
    Bug {
        name: BUG_DUPLICATE_BALLOTS,
        summary: "ballots leave out the proposer id, so two proposers can use the same ballot",
        caught_by: "agreement",
    },
    Bug {
        name: BUG_NO_BACKOFF,
        summary: "a preempted proposer retries at once, without randomized back-off: dueling proposers livelock (§2.4)",
        caught_by: "decision",
    },
];

/// A proposal number: `(round, node)`, ordered by round, then node. Unique per proposer
/// because it carries the proposer's id; increasing per proposer because the round is persisted
/// before use. [`Ballot::ZERO`] is below every ballot a proposer uses (rounds start at 1).
#[derive(
    Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The round: above every round the proposer had seen when it picked the ballot.
    pub round: u64,
    /// The proposer (or node 0 for every proposer under the `duplicate-ballots` bug).
    pub node: NodeId,
}

impl Ballot {
    /// "No ballot": below every real ballot.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };

    /// The ballot of `node` in `round`; with `duplicate` (the planted bug) the node id is left
    /// out, so two proposers in the same round share a ballot.
    pub fn new(round: u64, node: NodeId, duplicate: bool) -> Ballot {
        Ballot {
            round,
            node: if duplicate { NodeId(0) } else { node },
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.round, self.node.0)
    }
}

/// A value's name as observations and checks carry it: the single-decree value itself, or
/// `noop` / a command id such as `5#12` in Multi-Paxos. Shared text (`Arc<str>`): a Multi-Paxos
/// command is named in about eleven observations (proposed, accepted and applied on every
/// replica), and each holds the one name the command made; it serializes as a string.
pub type ValueName = Arc<str>;

/// A value as observations and checks identify it (see [`ValueName`]).
pub trait ValueId {
    /// The value's identity.
    fn value_id(&self) -> ValueName;
}

impl ValueId for String {
    fn value_id(&self) -> ValueName {
        self.as_str().into()
    }
}

/// The planted bugs switched on in a protocol section, decoded once.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Bugs {
    /// See [`BUG_ACCEPTOR_OMITS_ACCEPTED`].
    pub acceptor_omits_accepted: bool,
    /// See [`BUG_PROPOSER_IGNORES_ACCEPTED`].
    pub proposer_ignores_accepted: bool,
    /// See [`BUG_PROPOSER_TAKES_LOWEST`].
    pub proposer_takes_lowest: bool,
    /// See [`BUG_ACCEPT_IGNORES_PROMISE`].
    pub accept_ignores_promise: bool,
    /// See [`BUG_PROMISE_NOT_PERSISTED`].
    pub promise_not_persisted: bool,
    /// See [`BUG_DUPLICATE_BALLOTS`].
    pub duplicate_ballots: bool,
    /// See [`BUG_NO_BACKOFF`].
    pub no_backoff: bool,
    /// See [`BUG_READ_FROM_LOCAL_STATE`].
    pub read_from_local_state: bool,
}

impl Bugs {
    /// Decodes bug names (already validated).
    pub fn from_names(names: &[String]) -> Bugs {
        let on = |n: &str| names.iter().any(|b| b == n);
        Bugs {
            acceptor_omits_accepted: on(BUG_ACCEPTOR_OMITS_ACCEPTED),
            proposer_ignores_accepted: on(BUG_PROPOSER_IGNORES_ACCEPTED),
            proposer_takes_lowest: on(BUG_PROPOSER_TAKES_LOWEST),
            accept_ignores_promise: on(BUG_ACCEPT_IGNORES_PROMISE),
            promise_not_persisted: on(BUG_PROMISE_NOT_PERSISTED),
            duplicate_ballots: on(BUG_DUPLICATE_BALLOTS),
            no_backoff: on(BUG_NO_BACKOFF),
            read_from_local_state: on(BUG_READ_FROM_LOCAL_STATE),
        }
    }
}

/// Phase 2a's choice (§2.2): given the proposals reported by a majority of promises, the value
/// to propose: that of the highest-ballot one, or `None` (free to propose any value) if none
/// was reported. The planted bugs `proposer-ignores-accepted` (always `None`) and
/// `proposer-takes-lowest-accepted` (the lowest-ballot one) change the rule.
pub fn choose_value<'a, V>(
    reported: impl IntoIterator<Item = &'a (Ballot, V)>,
    bugs: &Bugs,
) -> Option<&'a V>
where
    V: 'a,
{
    if bugs.proposer_ignores_accepted {
        return None;
    }
    let mut iter = reported.into_iter();
    let first = iter.next()?;
    let pick = iter.fold(first, |best, p| {
        let better = if bugs.proposer_takes_lowest {
            p.0 < best.0
        } else {
            p.0 > best.0
        };
        if better { p } else { best }
    });
    Some(&pick.1)
}

/// The randomized back-off of §2.4 before a proposer's next attempt after `failures`
/// consecutive preempted ballots: uniform in `[min, min(max, min * 2^failures)]`.
pub fn backoff(
    rng: &mut impl rand::Rng,
    min: std::time::Duration,
    max: std::time::Duration,
    failures: u32,
) -> std::time::Duration {
    let min_ns = min.as_nanos() as u64;
    let cap = min_ns
        .saturating_mul(1u64 << failures.min(20))
        .min(max.as_nanos() as u64)
        .max(min_ns);
    std::time::Duration::from_nanos(rng.gen_range(min_ns..=cap))
}

/// A round-trip estimate and the phase timeout derived from it, as TCP's retransmission timer
/// (RFC 6298 §2): `srtt` and `rttvar` are smoothed from every sample; the timeout is
/// `srtt + 4 * rttvar`, but never below the configured floor nor above [`MAX_PHASE_TIMEOUT`].
/// Times in nanoseconds of the proposer's local clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoundTrip {
    /// Smoothed round trip; `None` before the first sample.
    srtt_ns: Option<u64>,
    /// Smoothed mean deviation.
    rttvar_ns: u64,
}

/// The longest phase timeout [`RoundTrip::timeout`] gives, however slow the replies.
pub const MAX_PHASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl RoundTrip {
    /// Folds in one measured round trip (a request sent, its reply received).
    pub fn sample(&mut self, rtt: std::time::Duration) {
        let r = rtt.as_nanos().min(u128::from(u64::MAX)) as u64;
        match self.srtt_ns {
            None => {
                self.srtt_ns = Some(r);
                self.rttvar_ns = r / 2;
            }
            Some(srtt) => {
                self.rttvar_ns = (3 * (self.rttvar_ns / 4)).saturating_add(srtt.abs_diff(r) / 4);
                self.srtt_ns = Some((7 * (srtt / 8)).saturating_add(r / 8));
            }
        }
    }

    /// The smoothed round trip, if any sample was taken.
    pub fn srtt(&self) -> Option<std::time::Duration> {
        self.srtt_ns.map(std::time::Duration::from_nanos)
    }

    /// Folds in the round trip of a request sent at local time `sent_ns` and answered at
    /// `now_ns` (a clock stepped backwards in between gives a zero sample).
    pub fn sample_since(&mut self, sent_ns: i64, now_ns: i64) {
        let rtt = now_ns.saturating_sub(sent_ns).max(0) as u64;
        self.sample(std::time::Duration::from_nanos(rtt));
    }

    /// The phase timeout after `failures` consecutive failed attempts: `srtt + 4 * rttvar`
    /// (just `floor` before any sample), at least `floor`, doubled per failure up to 16 times
    /// (RFC 6298 §5.5: a timer that expired backs off until a reply shows the real round trip),
    /// at most [`MAX_PHASE_TIMEOUT`].
    pub fn timeout(&self, floor: std::time::Duration, failures: u32) -> std::time::Duration {
        let estimate = self.srtt_ns.map_or(0, |srtt| {
            srtt.saturating_add(self.rttvar_ns.saturating_mul(4))
        });
        std::time::Duration::from_nanos(estimate)
            .max(floor)
            .saturating_mul(1 << failures.min(4))
            .min(MAX_PHASE_TIMEOUT.max(floor))
    }
}

/// Facts the Paxos checks read. Acceptors report what they promised and accepted (after it is
/// durable), proposers the values they introduce, learners what they learned, replicas what they
/// applied. "Instance" is the single-decree instance number, or the Multi-Paxos log slot.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum Observation {
    /// An acceptor promised `ballot` in `instance` (single-decree).
    Promise {
        /// The instance.
        instance: u64,
        /// The ballot promised.
        ballot: Ballot,
    },
    /// An acceptor promised `ballot` for every slot from `from_slot` on (Multi-Paxos phase 1).
    PromiseFrom {
        /// The first slot the promise covers (it covers every later slot too).
        from_slot: u64,
        /// The ballot promised.
        ballot: Ballot,
    },
    /// An acceptor accepted proposal `(ballot, value)` in `instance`, durably.
    Accepted {
        /// The instance or slot.
        instance: u64,
        /// The proposal's ballot.
        ballot: Ballot,
        /// The proposal's value.
        value: ValueName,
    },
    /// A proposer introduced `value` in `instance` with `ballot`: a value of its own (a
    /// single-decree proposer's value, a client command, a gap-filling no-op), not one taken from
    /// a promise.
    Proposed {
        /// The instance or slot.
        instance: u64,
        /// The ballot it was proposed with.
        ballot: Ballot,
        /// The value.
        value: ValueName,
    },
    /// A learner learned that `value` is chosen in `instance` (single-decree: every learn, and
    /// again after a restart for the values it kept on disk; Multi-Paxos: only a value that
    /// conflicts with one the replica knows, `applied` standing for ordinary learns). A second
    /// value for one instance is a conflict.
    Learned {
        /// The instance or slot.
        instance: u64,
        /// The value.
        value: ValueName,
    },
    /// A Multi-Paxos replica applied `value` at `slot` to its key-value store (slots apply in
    /// order from 1, or from the slot after its last snapshot; after a restart the replica
    /// applies again from there).
    Applied {
        /// The log slot.
        slot: u64,
        /// The value (`noop` or a command id).
        value: ValueName,
    },
    /// A Multi-Paxos replica wrote a snapshot of its state machine through `slot` (its applied
    /// slot) to disk and compacted its chosen log and its acceptor through it.
    SnapshotTaken {
        /// The last slot the snapshot covers.
        slot: u64,
    },
    /// A Multi-Paxos replica installed a snapshot through `slot`: a peer's (answering its
    /// catch-up), or its own reloaded from disk at restart. It applies from `slot + 1` on.
    SnapshotInstalled {
        /// The last slot the snapshot covers.
        slot: u64,
    },
}

/// A set of nodes in a protocol section: one node reference (`"servers"`, `"n1"`, a group) or a
/// list of them (`["n1", "n2"]`). See docs/scenario-format.md, "Node references".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NodeRefs {
    /// One reference.
    One(String),
    /// Several references.
    Many(Vec<String>),
}

impl Default for NodeRefs {
    fn default() -> Self {
        NodeRefs::One("servers".into())
    }
}

impl NodeRefs {
    /// The references, as a list.
    pub fn refs(&self) -> Vec<&str> {
        match self {
            NodeRefs::One(r) => vec![r.as_str()],
            NodeRefs::Many(rs) => rs.iter().map(String::as_str).collect(),
        }
    }

    /// The nodes named, sorted and without duplicates (unknown references are skipped: validation
    /// rejects them).
    pub fn resolve(&self, topology: &Topology) -> Vec<NodeId> {
        let set: BTreeSet<NodeId> = self
            .refs()
            .into_iter()
            .flat_map(|r| topology.resolve_static(r).unwrap_or_default())
            .collect();
        set.into_iter().collect()
    }

    /// Validates the references at option `key`: each must name at least one node, and only
    /// servers (clients cannot play Paxos roles).
    pub fn validate(&self, topology: &Topology, key: &str) -> Result<(), OptionError> {
        let refs = self.refs();
        if refs.is_empty() {
            return Err(OptionError::at(key, "expected at least one node"));
        }
        for (i, r) in refs.iter().enumerate() {
            let index = i.to_string();
            let at: Vec<&str> = match self {
                NodeRefs::One(_) => vec![key],
                NodeRefs::Many(_) => vec![key, &index],
            };
            let Some(ids) = topology.resolve_static(r) else {
                return Err(OptionError::at_path(
                    &at,
                    format!(
                        "unknown node or group \"{r}\"; expected one of {}, a group, \"servers\"",
                        topology.names_of(&topology.servers).join(", ")
                    ),
                ));
            };
            if ids.is_empty() {
                return Err(OptionError::at_path(
                    &at,
                    format!("\"{r}\" names no node (an empty group)"),
                ));
            }
            if let Some(client) = ids.iter().find(|id| !topology.servers.contains(id)) {
                return Err(OptionError::at_path(
                    &at,
                    format!(
                        "\"{r}\" includes client node {}; only servers can play Paxos roles",
                        topology.name(*client)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The options of the single-decree `paxos` role, if one runs.
fn synod_config(scenario: &Scenario) -> Option<synod::Config> {
    let role = scenario
        .cluster
        .roles
        .iter()
        .find(|r| r.protocol == synod::PROTOCOL.name)?;
    Some(crate::family::parse_options(&role.options).unwrap_or_default())
}

/// The nodes of every role running a Paxos protocol.
fn paxos_nodes(scenario: &Scenario, topology: &Topology) -> Vec<NodeId> {
    let mut nodes: Vec<NodeId> = scenario
        .cluster
        .roles
        .iter()
        .filter(|r| is_paxos(&r.protocol))
        .flat_map(|r| topology.groups.get(&r.name).cloned().unwrap_or_default())
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The acceptors of a Paxos run (for the checks): the `paxos` role's `acceptors`, or every node
/// of the `multi-paxos` role.
pub fn acceptors(scenario: &Scenario, topology: &Topology) -> Vec<NodeId> {
    match synod_config(scenario) {
        Some(c) => c.acceptors.resolve(topology),
        None => paxos_nodes(scenario, topology),
    }
}

/// The learners of a Paxos run (for the checks): the `paxos` role's `learners`, or every node
/// of the `multi-paxos` role.
pub fn learners(scenario: &Scenario, topology: &Topology) -> Vec<NodeId> {
    match synod_config(scenario) {
        Some(c) => c.learners.resolve(topology),
        None => paxos_nodes(scenario, topology),
    }
}

/// True for the two Paxos protocols (for the checks' `applies_to`).
pub fn is_paxos(protocol: &str) -> bool {
    protocol == synod::PROTOCOL.name || protocol == multi::PROTOCOL.name
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn b(round: u64, node: u32) -> Ballot {
        Ballot {
            round,
            node: NodeId(node),
        }
    }

    #[test]
    fn ballots_order_by_round_then_node_and_the_bug_drops_the_node() {
        assert!(b(2, 0) > b(1, 4));
        assert!(b(1, 2) > b(1, 1));
        assert!(Ballot::ZERO < b(1, 0));
        assert_eq!(Ballot::new(3, NodeId(2), false), b(3, 2));
        assert_eq!(
            Ballot::new(3, NodeId(2), true),
            Ballot::new(3, NodeId(4), true),
            "duplicate-ballots: two proposers share a ballot"
        );
    }

    #[test]
    fn phase_2a_takes_the_highest_ballot_value_unless_a_bug_says_otherwise() {
        // §2.2: the value of the highest-numbered proposal among the responses.
        let reported = vec![(b(1, 0), "a"), (b(3, 1), "c"), (b(2, 2), "b")];
        let correct = Bugs::default();
        assert_eq!(choose_value(&reported, &correct), Some(&"c"));
        assert_eq!(choose_value(&Vec::<(Ballot, &str)>::new(), &correct), None);
        let lowest = Bugs {
            proposer_takes_lowest: true,
            ..Bugs::default()
        };
        assert_eq!(choose_value(&reported, &lowest), Some(&"a"));
        let ignores = Bugs {
            proposer_ignores_accepted: true,
            ..Bugs::default()
        };
        assert_eq!(choose_value(&reported, &ignores), None);
    }

    #[test]
    fn backoff_stays_in_a_range_that_doubles_up_to_the_cap() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let ms = std::time::Duration::from_millis;
        for failures in 0..30 {
            for _ in 0..50 {
                let d = backoff(&mut rng, ms(5), ms(100), failures);
                let cap = (5u64 << failures.min(20)).min(100);
                assert!(d >= ms(5) && d <= ms(cap), "{failures}: {d:?}");
            }
        }
        let many: BTreeSet<std::time::Duration> = (0..50)
            .map(|_| backoff(&mut rng, ms(5), ms(100), 6))
            .collect();
        assert!(many.len() > 10, "randomized: {many:?}");
    }

    #[test]
    fn phase_timeout_grows_above_the_slowest_round_trips_and_never_below_its_floor() {
        let ms = std::time::Duration::from_millis;
        let mut rtt = RoundTrip::default();
        assert_eq!(
            rtt.timeout(ms(50), 0),
            ms(50),
            "the floor before any sample"
        );
        assert_eq!(rtt.timeout(ms(50), 2), ms(200), "doubled per failure");
        // Round trips spread uniformly over 2..=120 ms, as over links of 1 to 60 ms each way.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..500 {
            rtt.sample(ms(rng.gen_range(2..=120)));
        }
        let t = rtt.timeout(ms(50), 0);
        assert!(t > ms(120) && t < ms(400), "{t:?}");
        let mut fast = RoundTrip::default();
        for _ in 0..100 {
            fast.sample(ms(2));
        }
        assert_eq!(fast.timeout(ms(100), 0), ms(100), "never below the floor");
        let mut slow = RoundTrip::default();
        slow.sample(std::time::Duration::from_secs(3600));
        assert_eq!(slow.timeout(ms(100), 0), MAX_PHASE_TIMEOUT, "capped");
        assert_eq!(slow.timeout(ms(100), 30), MAX_PHASE_TIMEOUT, "capped");
    }

    #[test]
    fn bug_names_decode_and_every_bug_is_listed_once() {
        let names: Vec<String> = BUGS.iter().map(|b| b.name.to_string()).collect();
        let all = Bugs::from_names(&names);
        assert!(
            all.acceptor_omits_accepted
                && all.proposer_ignores_accepted
                && all.proposer_takes_lowest
                && all.accept_ignores_promise
                && all.promise_not_persisted
                && all.duplicate_ballots
                && all.no_backoff
        );
        assert_eq!(Bugs::from_names(&[]), Bugs::default());
        let unique: BTreeSet<&str> = BUGS.iter().map(|b| b.name).collect();
        assert_eq!(unique.len(), 7);
    }
}
