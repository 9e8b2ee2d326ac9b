//! Multi-Paxos ("Paxos Made Simple" §3) replicating the state machine chosen by
//! `[multi-paxos] state_machine` (any [`crate::families::replicated::StateMachine`] serving
//! key-value clients; `"kv"`, the shared key-value store, by default), as protocol
//! `multi-paxos`. The node, slot values and messages are generic over the machine.
//!
//! Every server is a proposer, an acceptor and a learner (§3: "each server plays all the roles").
//! The replicated log is a sequence of Synod instances, one per slot (slots count from 1); the
//! value of a slot is a client [`Command`] or a no-op.
//!
//! # Algorithm
//!
//! - **Leader (§3, "distinguished proposer").** A server that hears nothing from a leader for a
//!   randomized election timeout (uniform in `[election_timeout_min, election_timeout_max]`,
//!   drawn again at every reset, on its local clock) picks a ballot above every round it has
//!   seen (the round synced to disk first) and runs **phase 1 once for every slot it does not
//!   know as chosen**: `prepare(ballot, from_slot)`, where `from_slot` is the first slot it has
//!   not applied. An acceptor promises the ballot for all slots at once and reports every
//!   proposal it accepted from `from_slot` on ([`super::acceptor`], `Scope::AllSlots`).
//! - **Taking over (§3).** With promises from a majority, the new leader, for every slot from
//!   `from_slot` up to the highest reported, that it does not know as chosen: re-proposes the
//!   value of the highest-ballot proposal reported there, or **fills the gap with a no-op** if
//!   none was. Then it serves clients: each new command gets the next slot and goes straight to
//!   **phase 2** (`accept(ballot, slot, value)`); a majority of `accepted` replies chooses it.
//! - **Learning.** The leader is the distinguished learner (§2.3): it broadcasts each chosen
//!   value (`chosen`), and every `heartbeat_interval` sends `heartbeat(ballot, chosen_through)`;
//!   a server that is behind asks the leader for the missing slots (`catch-up`, at most
//!   `max_entries_per_message` per reply). Heartbeats also reset followers' election timers, and
//!   carry the leader's id as the clients' redirect hint. The leader resends unanswered
//!   `accept`s with each heartbeat.
//! - **Applying.** Every server applies chosen slots to its state machine (in [`Sessions`])
//!   strictly in slot order; the leader answers the client when it applies the command. The
//!   sessions make each command execute once however often it is proposed or chosen (a client retries the same
//!   request id on other servers).
//! - **Stepping down.** A leader or candidate that meets a higher ballot (a `nack`, a prepare it
//!   promised, a heartbeat) becomes a follower; a stale leader's heartbeats are answered with a
//!   `nack`. Commands it was waiting for are not answered: their clients retry elsewhere.
//! - **Reads** (commands the machine calls read-only) take no slot with `read_mode =
//!   "read-index"` (the default): Raft's ReadIndex (Ongaro's dissertation §6.4) carried over to
//!   ballots and slots. The leader notes its highest assigned slot, starts a heartbeat round
//!   (heartbeats carrying a round number) unless one is in flight, and answers from its state
//!   once a majority (itself included) acknowledged a round started after the read arrived and
//!   it applied every slot up to the noted one. A server acknowledges (`heartbeat-ack`) only
//!   while its acceptor has promised no higher ballot. So no higher ballot had a majority of
//!   promises when the read arrived: every slot chosen by then was chosen by this leader, or
//!   reported to it in phase 1 (or applied before it), and lies at or below the noted slot.
//!   With `read_mode = "log"` reads go through the log like writes.
//! - **Back-off (§2.4).** A preempted candidate waits a fresh randomized election timeout.
//!
//! - **Snapshots and log compaction** (as "Paxos Made Live" §5.5 and Raft §7 do). When
//!   `snapshot_threshold_slots` applied slots follow the last snapshot, and at least one per
//!   `snapshot_bytes_per_slot` bytes of it (a large state is snapshotted less often), a server
//!   writes a snapshot of its state machine (data and client sessions) at its applied slot to
//!   disk, and with it, in the same sync, forgets every slot up to there: its chosen log's prefix
//!   and its acceptor's proposals ([`super::acceptor`], "Compaction"). A server asked to catch up
//!   from a slot it has forgotten answers with its snapshot (`snapshot`), which the asker
//!   installs and writes to its own disk (compacting its own acceptor the same way). A promise
//!   carries the acceptor's compaction point; a new leader proposes nothing at or below the
//!   highest one among its promises (those slots are chosen) and catches up from the server
//!   that reported it. An acceptor asked to accept in a slot it compacted answers `compacted`:
//!   the leader is behind, and catches up from it.
//!
//! Durable state: the acceptor's promise, accepted proposals and compaction point, the
//! proposer's round and the last snapshot, all synced before the server answers. The chosen log
//! after the snapshot and the store are volatile: a restarted server reloads its snapshot and
//! catches up from the leader from the slot after it (from slot 1 if it has none).
//!
//! Observations: acceptors report `promise-from` and `accepted`; the leader `proposed` for each
//! client command and gap-filling no-op; every replica `applied` for each slot it applies (which
//! also stands for "learned": a replica applies chosen slots in order as soon as it knows them),
//! and `learned` only when it is told a value that conflicts with one it knows; every replica
//! `snapshot-taken` when it compacts, and `snapshot-installed` when it installs a peer's
//! snapshot or reloads its own at restart (its next slot to apply is the one after).
//!
//! Role observations (`CommonObservation::Role`, term = ballot round): `leader` when phase 1
//! succeeds, `candidate` when it starts, `follower` when a higher ballot is met, so that
//! `target = "leader"` faults and the `liveness` check work as for Raft.
//!
//! Invariants asserted after every step: nothing unsynced on disk, the acceptor's accepted
//! ballots at most its promise, the applied slot chosen and contiguous from the snapshot (from 1
//! without one), the acceptor compacted exactly through the snapshot, a leader's ballot at most
//! its persisted round and its pending slots above the applied one and not chosen.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, OnceLock};

use rand::Rng;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::families::kv::{self, CommandId, KvMachine, Op};
use crate::families::paxos::acceptor::{Acceptor, Proposal, Scope};
use crate::families::paxos::{
    BUG_ACCEPT_IGNORES_PROMISE, BUG_ACCEPTOR_OMITS_ACCEPTED, BUG_DUPLICATE_BALLOTS, BUG_NO_BACKOFF,
    BUG_PROPOSER_IGNORES_ACCEPTED, BUG_PROPOSER_TAKES_LOWEST, BUG_READ_FROM_LOCAL_STATE, BUGS,
    Ballot, Bugs, Observation, ValueId, ValueName, choose_value,
};
use crate::families::replicated::{Answer, Command, Served, Sessions, StateMachine};
use crate::family::{self, Bug, Configured, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use crate::process::AnyProcess;
use crate::process::{CommonObservation, NodeRole};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// The registry entry.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: "multi-paxos",
    summary: "Multi-Paxos (Paxos Made Simple §3): a leader runs phase 1 once for all slots, then phase 2 per command, serving a replicated key-value store",
    serves: &[kv::WORKLOAD_NAME],
    bugs: MULTI_BUGS,
    built_on: &[],
    configure,
};

/// The planted bugs of Multi-Paxos: the switches of single-decree Paxos that a shipped
/// Multi-Paxos scenario demonstrates, with the check that catches each in a key-value run, and
/// `read-from-local-state`, which Multi-Paxos alone has (it is the only one with reads).
///
/// `promise-not-persisted` is left out: here a leader steps down at the first refusal and the
/// next leader's accepts raise every acceptor's promise again within milliseconds, so forgetting
/// a promise across a restart needs a fault timing that no scenario produced in our sweeps
/// (single-decree Paxos demonstrates it: `scenarios/paxos/bugs/promise-not-persisted.toml`).
pub const MULTI_BUGS: &[Bug] = &[
    multi_bug(BUG_ACCEPTOR_OMITS_ACCEPTED, "agreement"),
    multi_bug(BUG_PROPOSER_IGNORES_ACCEPTED, "agreement"),
    multi_bug(BUG_PROPOSER_TAKES_LOWEST, "agreement"),
    multi_bug(BUG_ACCEPT_IGNORES_PROMISE, "agreement"),
    multi_bug(BUG_DUPLICATE_BALLOTS, "agreement"),
    Bug {
        name: BUG_NO_BACKOFF,
        summary: "election timeouts are not randomized and a preempted candidate campaigns again at once: candidates duel and no leader emerges (§2.4)",
        caught_by: "liveness",
    },
    Bug {
        name: BUG_READ_FROM_LOCAL_STATE,
        summary: "the leader answers reads from its state at once, without a heartbeat round a majority acknowledges or the slots it assigned applied: a deposed leader serves stale values",
        caught_by: "linearizability",
    },
];

const fn multi_bug(name: &'static str, caught_by: &'static str) -> Bug {
    let mut i = 0;
    while i < BUGS.len() {
        if const_eq(BUGS[i].name, name) {
            return Bug {
                name,
                summary: BUGS[i].summary,
                caught_by,
            };
        }
        i += 1;
    }
    panic!("unknown Paxos bug")
}

const fn const_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Highest slot a log may reach (a run's log is bounded by its operations; this is a guard).
pub const MAX_SLOT: u64 = 10_000_000;

const ROUND_KEY: &str = "proposer/round";
/// The slot of the last snapshot (decimal), written and synced with [`SNAPSHOT_KEY`].
const SNAPSHOT_SLOT_KEY: &str = "replica/snapshot-slot";
/// The last snapshot's data ([`Sessions::to_snapshot`]).
const SNAPSHOT_KEY: &str = "replica/snapshot";

/// How a Multi-Paxos leader serves reads.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// Without a slot: the leader confirms its ballot with a heartbeat round started after the
    /// read arrived, and answers from its state once it has applied every slot it had assigned
    /// then (Raft's ReadIndex, Ongaro's dissertation §6.4, carried over to ballots and slots).
    #[default]
    ReadIndex,
    /// Through the log, like a write: the read takes a slot and is answered when applied.
    Log,
}

/// `[multi-paxos]` options. Durations are on each node's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Lower end of the randomized election timeout (default 150ms).
    #[serde(default = "default_election_timeout_min")]
    pub election_timeout_min: Duration,
    /// Upper end of the randomized election timeout (default 300ms).
    #[serde(default = "default_election_timeout_max")]
    pub election_timeout_max: Duration,
    /// Period of the leader's heartbeats and `accept` retransmissions (default 50ms); must be
    /// below `election_timeout_min`.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: Duration,
    /// Most slots the leader has proposed but not yet seen chosen; further commands are refused
    /// with `overloaded`, answered as unknown outcomes (`info`: an earlier copy of a retried
    /// request may still be chosen) (default 1024).
    #[serde(default = "default_max_uncommitted_slots")]
    pub max_uncommitted_slots: u32,
    /// Most log entries in one `accept`, `chosen` or catch-up message (default 256).
    #[serde(default = "default_max_entries_per_message")]
    pub max_entries_per_message: u32,
    /// How the leader serves reads (commands the state machine calls read-only,
    /// [`StateMachine::is_read`]): `"read-index"` (default) or `"log"`.
    #[serde(default)]
    pub read_mode: ReadMode,
    /// Most reads waiting for a confirmed heartbeat round (`read_mode = "read-index"`); further
    /// reads fail with `overloaded` (default 1024).
    #[serde(default = "default_max_pending_reads")]
    pub max_pending_reads: u32,
    /// Outcomes remembered per client for exactly-once execution (default 256).
    #[serde(default = "default_session_limit")]
    pub session_limit: u32,
    /// Take a snapshot, and compact the chosen log and the acceptor, when this many applied
    /// slots follow the last one (default 1000), and [`Config::snapshot_bytes_per_slot`]
    /// allows it.
    #[serde(default = "default_snapshot_threshold_slots")]
    pub snapshot_threshold_slots: u32,
    /// Spaces snapshots by their size: after a snapshot of `n` bytes, the next waits for at
    /// least `n / snapshot_bytes_per_slot` applied slots, so that snapshotting costs in
    /// proportion to the log it replaces, not to the state times the slots (Ongaro's
    /// dissertation §5.1.1 weighs the log against the previous snapshot). A slot's share of the
    /// log, in bytes (default 100, about an acceptance record of a key-value command); 0 turns
    /// this off (a snapshot every `snapshot_threshold_slots`).
    #[serde(default = "default_snapshot_bytes_per_slot")]
    pub snapshot_bytes_per_slot: u32,
    /// The replicated state machine, by name (default `"kv"`, the key-value store; the names
    /// are `families::kv::STATE_MACHINES`).
    #[serde(default = "kv::default_state_machine")]
    pub state_machine: String,
    /// Planted bugs to switch on (see `faultline list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

fn default_election_timeout_min() -> Duration {
    Duration::from_millis(150)
}
fn default_election_timeout_max() -> Duration {
    Duration::from_millis(300)
}
fn default_heartbeat_interval() -> Duration {
    Duration::from_millis(50)
}
fn default_max_uncommitted_slots() -> u32 {
    1024
}
fn default_max_entries_per_message() -> u32 {
    256
}
fn default_max_pending_reads() -> u32 {
    1024
}
fn default_session_limit() -> u32 {
    kv::DEFAULT_SESSION_LIMIT
}
fn default_snapshot_threshold_slots() -> u32 {
    1000
}
fn default_snapshot_bytes_per_slot() -> u32 {
    100
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("the empty [multi-paxos] table deserializes")
    }
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    family::configure(ctx, validate, |setup, c: &Config| spawn(setup, c.clone()))
}

fn validate(c: &Config, _: &RoleContext<'_>) -> Vec<OptionError> {
    let mut errors = Vec::new();
    let err = |key: &str, message: String| OptionError::at(key, message);
    for (key, d) in [
        ("election_timeout_min", c.election_timeout_min),
        ("heartbeat_interval", c.heartbeat_interval),
    ] {
        if d.as_nanos() == 0 {
            errors.push(err(key, "expected a positive duration".into()));
        }
    }
    if c.election_timeout_max < c.election_timeout_min {
        errors.push(err(
            "election_timeout_max",
            format!(
                "expected at least election_timeout_min ({}), found {}",
                c.election_timeout_min, c.election_timeout_max
            ),
        ));
    }
    // Compared with election_timeout_min only when that is valid (else its own error says so).
    if c.election_timeout_min.as_nanos() > 0 && c.heartbeat_interval >= c.election_timeout_min {
        errors.push(err(
            "heartbeat_interval",
            format!(
                "expected less than election_timeout_min ({}), or followers time out between heartbeats",
                c.election_timeout_min
            ),
        ));
    }
    for (key, n, max) in [
        ("max_uncommitted_slots", c.max_uncommitted_slots, 1_000_000),
        (
            "max_entries_per_message",
            c.max_entries_per_message,
            100_000,
        ),
        ("max_pending_reads", c.max_pending_reads, 1_000_000),
        ("session_limit", c.session_limit, 1_000_000),
        (
            "snapshot_threshold_slots",
            c.snapshot_threshold_slots,
            1_000_000,
        ),
    ] {
        if !(1..=max).contains(&n) {
            errors.push(err(key, format!("expected between 1 and {max}, found {n}")));
        }
    }
    if c.snapshot_bytes_per_slot > 1_000_000 {
        errors.push(err(
            "snapshot_bytes_per_slot",
            format!(
                "expected between 0 (off) and 1000000, found {}",
                c.snapshot_bytes_per_slot
            ),
        ));
    }
    errors.extend(kv::validate_state_machine(&c.state_machine));
    errors.extend(family::check_bugs(&c.bugs, PROTOCOL.bugs, PROTOCOL.name));
    errors
}

/// The value of a log slot. `C` is the replicated state machine's command type (the key-value
/// [`Op`] by default).
///
/// A command is shared, not copied: the leader's pending slot, every `accept` it sends, each
/// acceptor's accepted proposal and each replica's chosen log hold the same immutable
/// [`SlotCommand`] (an `Arc`, so a clone costs a reference count, not the command's strings).
/// Its encodings (JSON on disk and in the trace, postcard in the trace hash) are the command's
/// own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Value<C = Op> {
    /// Fills a slot no command was chosen for (§3).
    Noop,
    /// A client command.
    Command(Arc<SlotCommand<C>>),
}

impl<C> Value<C> {
    /// The slot value of `command`.
    pub fn command(command: Command<C>) -> Value<C> {
        Value::Command(Arc::new(SlotCommand::new(command)))
    }
}

/// A client command in a log slot, as [`Value::Command`] shares it: the command, its name (the
/// one every observation of it holds), and the JSON of its slot value once some acceptor has
/// written it (every acceptor of the cluster writes the same bytes to its disk, so the first one
/// encodes them and the others copy). Serializes, compares and dereferences as the command
/// alone.
#[derive(Debug)]
pub struct SlotCommand<C> {
    command: Command<C>,
    /// `<client>#<request>`, as `CommandId`'s `Display` writes it.
    name: ValueName,
    /// The JSON of `Value::Command(this)`, as `serde_json` writes it.
    json: OnceLock<Box<[u8]>>,
}

impl<C> SlotCommand<C> {
    fn new(command: Command<C>) -> SlotCommand<C> {
        // The name without the formatting machinery: one per client command.
        let id = command.id();
        let mut name = String::with_capacity(24);
        name.push_str(itoa::Buffer::new().format(id.client.0));
        name.push('#');
        name.push_str(itoa::Buffer::new().format(id.request));
        SlotCommand {
            command,
            name: name.into(),
            json: OnceLock::new(),
        }
    }
}

impl<C> std::ops::Deref for SlotCommand<C> {
    type Target = Command<C>;
    fn deref(&self) -> &Command<C> {
        &self.command
    }
}

impl<C: PartialEq> PartialEq for SlotCommand<C> {
    fn eq(&self, other: &Self) -> bool {
        self.command == other.command
    }
}

impl<C: Eq> Eq for SlotCommand<C> {}

impl<C: Serialize> Serialize for SlotCommand<C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.command.serialize(serializer)
    }
}

impl<'de, C: Deserialize<'de>> Deserialize<'de> for SlotCommand<C> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(SlotCommand::new(Command::deserialize(deserializer)?))
    }
}

impl<C: Clone + Serialize + DeserializeOwned> Proposal for Value<C> {
    fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Value::Noop => serde_json::to_writer(out, self).expect("slot values serialize"),
            Value::Command(c) => out.extend_from_slice(c.json.get_or_init(|| {
                serde_json::to_vec(self)
                    .expect("slot values serialize")
                    .into_boxed_slice()
            })),
        }
    }
}

impl<C> ValueId for Value<C> {
    fn value_id(&self) -> ValueName {
        match self {
            Value::Noop => "noop".into(),
            Value::Command(c) => c.name.clone(),
        }
    }
}

/// Peer messages. `C` is the replicated state machine's command type, as in [`Value`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message<C = Op> {
    /// Phase 1a for every slot from `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// The first slot the candidate does not know as chosen.
        from_slot: u64,
    },
    /// Phase 1b: the promise and every proposal accepted from `from_slot` on (after the
    /// acceptor's compaction point).
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// `(slot, ballot, value)` of each accepted proposal.
        accepted: Vec<(u64, Ballot, Value<C>)>,
        /// The acceptor's compaction point: every slot up to it is chosen, and its proposals
        /// there are forgotten (omitted when 0).
        #[serde(skip_serializing_if = "is_zero")]
        compacted_through: u64,
    },
    /// Phase 2a for some slots, and news of slots chosen since the last message. The leader
    /// sends the same batch to every follower: the lists are shared between the copies
    /// (immutable; they serialize as lists).
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// `(slot, value)` pairs.
        entries: Arc<[(u64, Value<C>)]>,
        /// Slots now chosen with the value this leader proposed there with `ballot`.
        chosen: Arc<[u64]>,
    },
    /// Phase 2b: the acceptor accepted `ballot` in these slots.
    Accepted {
        /// The ballot.
        ballot: Ballot,
        /// The slots.
        slots: Vec<u64>,
    },
    /// A prepare, accept or heartbeat with `ballot` was refused: the sender promised `promised`.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The refusing acceptor's promise.
        promised: Ballot,
    },
    /// The leader is alive; it has applied every slot up to `chosen_through`.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// The leader's last applied slot.
        chosen_through: u64,
        /// Slots now chosen with the value this leader proposed there with `ballot`.
        chosen: Vec<u64>,
        /// The leader's heartbeat round, when reads wait for one (`heartbeat-ack` asked; omitted
        /// when 0, no answer wanted).
        #[serde(skip_serializing_if = "is_zero")]
        round: u64,
    },
    /// The answer to a heartbeat of `round` from an acceptor that has promised no ballot above
    /// `ballot` (the leader's, still current there).
    HeartbeatAck {
        /// The heartbeat's ballot.
        ballot: Ballot,
        /// The heartbeat's round.
        round: u64,
    },
    /// These slots are chosen with these values (the answer to `catch-up`).
    Chosen {
        /// `(slot, value)` pairs.
        entries: Vec<(u64, Value<C>)>,
    },
    /// "Send me the chosen values from `from_slot` on."
    CatchUp {
        /// The first slot wanted.
        from_slot: u64,
    },
    /// The answer to `catch-up` from a slot the sender compacted: its state machine (data and
    /// client sessions, [`Sessions::to_snapshot`]) after applying every slot up to `slot`.
    Snapshot {
        /// The last slot the snapshot covers.
        slot: u64,
        /// The snapshot (shared by the copies of the message).
        data: Arc<str>,
    },
    /// The answer to an `accept` in slots the sender compacted: every slot up to `through` is
    /// chosen and applied there.
    Compacted {
        /// The sender's compaction point.
        through: u64,
    },
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Check whether the election deadline has passed.
    Election,
    /// Leader: send heartbeats and resend unanswered accepts.
    Heartbeat,
}

/// Multi-Paxos slot values for the machine `M`.
type Val<M> = Value<<M as StateMachine>::Command>;
/// Multi-Paxos peer messages for the machine `M`.
type Msg<M> = Message<<M as StateMachine>::Command>;

#[derive(Clone, Debug)]
struct Pending<C> {
    value: Value<C>,
    acks: BTreeSet<NodeId>,
    sent_ns: i64,
}

#[derive(Clone, Debug)]
struct Leader<C> {
    ballot: Ballot,
    next_slot: u64,
    /// Slots proposed with our ballot and not yet known chosen.
    pending: BTreeMap<u64, Pending<C>>,
    /// The pending slot of each command.
    by_command: BTreeMap<CommandId, u64>,
    /// Commands whose client waits for our answer.
    awaiting: BTreeSet<CommandId>,
    /// Slots chosen but not yet announced to the followers.
    unannounced: Vec<u64>,
    /// Reads waiting for their heartbeat round and slot (`read_mode = "read-index"`).
    reads: ReadRounds<C>,
}

/// A read waiting to be answered without a slot ([`ReadMode::ReadIndex`]).
#[derive(Clone, Debug)]
struct PendingRead<C> {
    client: NodeId,
    request: u64,
    /// The read-only command ([`StateMachine::is_read`]).
    command: C,
    /// The highest slot the leader had assigned when the read arrived: answered once applied.
    read_slot: u64,
    /// The heartbeat round a majority must acknowledge: the first started after the read came.
    round: u64,
}

/// A leader's heartbeat rounds and the reads that wait for them. A round is acknowledged by a
/// server whose acceptor has promised no ballot above the leader's; a round acknowledged by a
/// majority (the leader counting itself) proves that no higher ballot had a majority of
/// promises when the round started, so every slot chosen before then was chosen by this
/// leader, or reported to it in phase 1: at or below its highest assigned slot.
#[derive(Clone, Debug)]
struct ReadRounds<C> {
    /// The last round started (0: none).
    started: u64,
    /// The highest round a majority acknowledged.
    confirmed: u64,
    /// The highest round each other server acknowledged.
    acked: BTreeMap<NodeId, u64>,
    /// Waiting reads, in arrival order (their slots and rounds never decrease).
    waiting: VecDeque<PendingRead<C>>,
}

impl<C> Default for ReadRounds<C> {
    fn default() -> Self {
        ReadRounds {
            started: 0,
            confirmed: 0,
            acked: BTreeMap::new(),
            waiting: VecDeque::new(),
        }
    }
}

impl<C> ReadRounds<C> {
    /// Whether the newest waiting read needs a round above `round` (reads arrive in order, so
    /// it needs the highest).
    fn wanted_above(&self, round: u64) -> bool {
        self.waiting.back().is_some_and(|r| r.round > round)
    }

    /// Starts the next round; returns its number.
    fn start(&mut self) -> u64 {
        self.started += 1;
        self.started
    }

    /// Recomputes the confirmed round from the acknowledgements, the leader's own counting as
    /// the last started round, with `majority` servers needed.
    fn confirm(&mut self, majority: usize) {
        let mut acked: SmallVec<[u64; 8]> = self.acked.values().copied().collect();
        acked.push(self.started);
        acked.sort_unstable_by(|a, b| b.cmp(a));
        if let Some(&q) = acked.get(majority - 1) {
            self.confirmed = self.confirmed.max(q);
        }
    }
}

/// What one acceptor promised a candidate: `(slot, ballot, value)` of each proposal it accepted
/// after its compaction point, and that point.
type Promised<C> = (Vec<(u64, Ballot, Value<C>)>, u64);

#[derive(Clone, Debug)]
enum Role<C> {
    Follower,
    Candidate {
        ballot: Ballot,
        from_slot: u64,
        /// Each promiser's accepted proposals and compaction point.
        promises: BTreeMap<NodeId, Promised<C>>,
    },
    Leader(Box<Leader<C>>),
}

/// The values known chosen, by slot, after the last compaction point. Dense (indexed by slot):
/// a log's slots are numbered consecutively by its leaders (gaps are filled with no-ops), so
/// nearly every slot up to the highest known is chosen, and a replica reads and writes them on
/// every step. Every slot up to the compaction point is chosen, and covered by the snapshot.
#[derive(Clone, Debug)]
struct ChosenLog<V> {
    /// Slots up to this one are compacted away (0: none).
    compacted_through: u64,
    /// `slots[i]`: the value chosen at slot `compacted_through + 1 + i`, if known.
    slots: Vec<Option<V>>,
}

impl<V> Default for ChosenLog<V> {
    fn default() -> Self {
        ChosenLog {
            compacted_through: 0,
            slots: Vec::new(),
        }
    }
}

impl<V> ChosenLog<V> {
    /// The index of `slot` in `slots`, if it is after the compaction point.
    fn index(&self, slot: u64) -> Option<usize> {
        usize::try_from(slot.checked_sub(self.compacted_through + 1)?).ok()
    }

    /// The value chosen at `slot`, if known and not compacted away.
    fn get(&self, slot: u64) -> Option<&V> {
        self.slots.get(self.index(slot)?)?.as_ref()
    }

    /// Whether `slot` is known chosen (compacted away, or with its value).
    fn contains(&self, slot: u64) -> bool {
        (1..=self.compacted_through).contains(&slot) || self.get(slot).is_some()
    }

    /// Records `value` at `slot` (below [`MAX_SLOT`]); a compacted slot is left as it is.
    fn insert(&mut self, slot: u64, value: V) {
        let Some(index) = self.index(slot) else {
            return;
        };
        if index >= self.slots.len() {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(value);
    }

    /// The highest slot known chosen.
    fn last_slot(&self) -> Option<u64> {
        match self.slots.iter().rposition(Option::is_some) {
            Some(i) => Some(self.compacted_through + 1 + i as u64),
            None => (self.compacted_through > 0).then_some(self.compacted_through),
        }
    }

    /// The known chosen slots from `from_slot` on (after the compaction point), in order.
    fn from(&self, from_slot: u64) -> impl Iterator<Item = (u64, &V)> {
        let start = self
            .index(from_slot.max(self.compacted_through + 1))
            .map_or(self.slots.len(), |s| s.min(self.slots.len()));
        let base = self.compacted_through + 1;
        self.slots[start..]
            .iter()
            .enumerate()
            .filter_map(move |(i, v)| v.as_ref().map(|v| (base + (start + i) as u64, v)))
    }

    /// Forgets every slot up to `slot` (no effect at or below the compaction point).
    fn compact_through(&mut self, slot: u64) {
        let Some(index) = self.index(slot) else {
            return;
        };
        self.slots.drain(..(index + 1).min(self.slots.len()));
        self.compacted_through = slot;
    }
}

/// One Multi-Paxos server.
#[derive(Debug)]
pub struct Node<M: Served = KvMachine> {
    id: NodeId,
    servers: Vec<NodeId>,
    majority: usize,
    config: Config,
    bugs: Bugs,
    acceptor: Acceptor<Val<M>>,
    /// Highest round this node used as a proposer (persisted before use).
    round: u64,
    /// Highest round seen in any ballot.
    round_seen: u64,
    role: Role<M::Command>,
    /// The leader this node follows (redirect hint).
    leader: Option<NodeId>,
    election_deadline_ns: i64,
    chosen: ChosenLog<Val<M>>,
    applied: u64,
    machine: Sessions<M>,
    /// Highest `chosen_through` heard from a leader.
    leader_chosen_through: u64,
    /// The outstanding catch-up request: first slot asked for, and when.
    catch_up: Option<(u64, i64)>,
    /// Where a leader that is behind catches up from (a server that reported a compaction
    /// point above its applied slot).
    catch_up_from: Option<NodeId>,
    /// The last snapshot taken or installed (also on disk): the state machine after every slot
    /// up to the chosen log's compaction point.
    snapshot: Option<Arc<str>>,
    last_role: Option<(NodeRole, u64)>,
}

impl<M: Served> Node<M> {
    /// A fresh server (its durable state is loaded in `on_start`).
    pub fn new(setup: &NodeSetup, config: Config) -> Self {
        let bugs = Bugs::from_names(&config.bugs);
        Node {
            id: setup.id,
            servers: setup.servers.clone(),
            majority: setup.servers.len() / 2 + 1,
            machine: Sessions::new(config.session_limit),
            config,
            bugs,
            acceptor: Acceptor::load(&Default::default(), Scope::AllSlots, bugs),
            round: 0,
            round_seen: 0,
            role: Role::Follower,
            leader: None,
            election_deadline_ns: 0,
            chosen: ChosenLog::default(),
            applied: 0,
            leader_chosen_through: 0,
            catch_up: None,
            catch_up_from: None,
            snapshot: None,
            last_role: None,
        }
    }

    /// The last applied slot.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// True if this node believes it is the leader.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader(_))
    }

    /// The ballot this node leads or campaigns with, if any.
    fn own_ballot(&self) -> Option<Ballot> {
        match &self.role {
            Role::Follower => None,
            Role::Candidate { ballot, .. } => Some(*ballot),
            Role::Leader(l) => Some(l.ballot),
        }
    }

    fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.servers.iter().copied().filter(move |&s| s != self.id)
    }

    fn observe_role(&mut self, ctx: &mut Context<'_>, role: NodeRole, round: u64) {
        if self.last_role != Some((role, round)) {
            self.last_role = Some((role, round));
            ctx.observe(CommonObservation::Role { role, term: round });
        }
    }

    fn election_timeout(&self, ctx: &mut Context<'_>) -> std::time::Duration {
        let (min, max) = (
            self.config.election_timeout_min.as_nanos(),
            self.config.election_timeout_max.as_nanos(),
        );
        if self.bugs.no_backoff {
            return std::time::Duration::from_nanos(min);
        }
        std::time::Duration::from_nanos(ctx.rng().gen_range(min..=max))
    }

    fn reset_election_deadline(&mut self, ctx: &mut Context<'_>) {
        let timeout = self.election_timeout(ctx);
        self.election_deadline_ns = ctx.local_time_ns() + timeout.as_nanos() as i64;
    }

    // ----- roles -----

    /// Phase 1a for every slot not known as chosen, with a fresh ballot (its round synced).
    fn campaign(&mut self, ctx: &mut Context<'_>) {
        self.round = self.round.max(self.round_seen) + 1;
        ctx.disk().write(ROUND_KEY, self.round.to_string());
        ctx.disk().sync();
        let ballot = Ballot::new(self.round, self.id, self.bugs.duplicate_ballots);
        let from_slot = self.applied + 1;
        self.step_down_state();
        self.role = Role::Candidate {
            ballot,
            from_slot,
            promises: BTreeMap::new(),
        };
        self.leader = None;
        self.observe_role(ctx, NodeRole::Candidate, ballot.round);
        self.reset_election_deadline(ctx);
        for &s in &self.servers {
            ctx.send(s, Msg::<M>::Prepare { ballot, from_slot });
        }
    }

    fn step_down_state(&mut self) {
        // Clients of commands we were waiting for retry elsewhere with the same request id.
        self.role = Role::Follower;
    }

    /// Meets `ballot` from another proposer, above our own: follow (its node, if `leader`).
    fn follow(&mut self, ctx: &mut Context<'_>, ballot: Ballot, leader: Option<NodeId>) {
        let was_leading = self.own_ballot().is_some();
        if was_leading {
            self.step_down_state();
        }
        if leader.is_some() {
            self.leader = leader;
        }
        self.observe_role(ctx, NodeRole::Follower, ballot.round);
        if was_leading && self.bugs.no_backoff && leader.is_none() {
            // No back-off: a preempted candidate tries again at once.
            self.campaign(ctx);
        }
    }

    fn become_leader(&mut self, ctx: &mut Context<'_>) {
        let Role::Candidate {
            ballot,
            from_slot,
            promises,
        } = std::mem::replace(&mut self.role, Role::Follower)
        else {
            unreachable!("only a candidate becomes leader");
        };
        // Every slot up to the highest compaction point among the promises is chosen (see
        // `super::acceptor`, "Compaction"): nothing is proposed there, and this leader catches
        // up from the promiser that reported it.
        let (compacted, source) = promises
            .iter()
            .map(|(&node, (_, c))| (*c, node))
            .max()
            .unwrap_or((0, self.id));
        let mut reported: BTreeMap<u64, Vec<(Ballot, Val<M>)>> = BTreeMap::new();
        for (accepted, _) in promises.into_values() {
            for (slot, b, v) in accepted {
                if slot >= from_slot && slot > compacted {
                    reported.entry(slot).or_default().push((b, v));
                }
            }
        }
        let max_slot = reported
            .keys()
            .next_back()
            .copied()
            .into_iter()
            .chain(self.chosen.last_slot())
            .max()
            .unwrap_or(0)
            .max(from_slot - 1)
            .max(compacted);
        assert!(max_slot < MAX_SLOT, "the log outgrew MAX_SLOT");
        let now = ctx.local_time_ns();
        let mut leader = Leader {
            ballot,
            next_slot: max_slot + 1,
            pending: BTreeMap::new(),
            by_command: BTreeMap::new(),
            awaiting: BTreeSet::new(),
            unannounced: Vec::new(),
            reads: ReadRounds::default(),
        };
        // §3: re-propose the highest-ballot value of every slot not known chosen; fill gaps.
        for slot in from_slot.max(compacted + 1)..=max_slot {
            if self.chosen.contains(slot) {
                continue;
            }
            let proposals = reported.remove(&slot).unwrap_or_default();
            let value = match choose_value(&proposals, &self.bugs) {
                Some(v) => v.clone(),
                None => {
                    ctx.observe(Observation::Proposed {
                        instance: slot,
                        ballot,
                        value: Val::<M>::Noop.value_id(),
                    });
                    Val::<M>::Noop
                }
            };
            if let Val::<M>::Command(c) = &value {
                leader.by_command.insert(c.id(), slot);
            }
            leader.pending.insert(
                slot,
                Pending {
                    value,
                    acks: BTreeSet::new(),
                    sent_ns: now,
                },
            );
        }
        let entries: Vec<(u64, Val<M>)> = leader
            .pending
            .iter()
            .map(|(&s, p)| (s, p.value.clone()))
            .collect();
        self.role = Role::Leader(Box::new(leader));
        self.leader = Some(self.id);
        self.observe_role(ctx, NodeRole::Leader, ballot.round);
        self.propose(ctx, ballot, entries, None);
        if compacted > self.applied {
            self.behind(ctx, source, compacted);
        }
        self.heartbeat(ctx);
    }

    /// `peer` has applied (and compacted) every slot up to `through`, beyond ours: catch up
    /// from it (a leader keeps asking it, or the next server, with its heartbeats).
    fn behind(&mut self, ctx: &mut Context<'_>, peer: NodeId, through: u64) {
        if through <= self.applied || peer == self.id {
            return;
        }
        self.leader_chosen_through = self.leader_chosen_through.max(through);
        self.catch_up_from = Some(peer);
        self.ask_catch_up(ctx, peer);
    }

    /// Phase 2a for `entries`: `accept` messages in batches to every other server (or only to
    /// `only`), carrying the slots chosen since the last announcement; the leader's own acceptor
    /// (if addressed) accepts in place, without a message to itself.
    fn propose(
        &mut self,
        ctx: &mut Context<'_>,
        ballot: Ballot,
        entries: Vec<(u64, Val<M>)>,
        only: Option<NodeId>,
    ) {
        let batch = self.config.max_entries_per_message as usize;
        let mut chosen = match (&mut self.role, only) {
            (Role::Leader(l), None) => std::mem::take(&mut l.unannounced),
            _ => Vec::new(),
        };
        for chunk in entries.chunks(batch) {
            let shared: Arc<[(u64, Val<M>)]> = chunk.into();
            let news: Arc<[u64]> = std::mem::take(&mut chosen).into();
            for s in self.others() {
                if only.is_none_or(|o| o == s) {
                    ctx.send(
                        s,
                        Msg::<M>::Accept {
                            ballot,
                            entries: shared.clone(),
                            chosen: news.clone(),
                        },
                    );
                }
            }
        }
        if only.is_none_or(|o| o == self.id) && !entries.is_empty() {
            match self.acceptor.accept(ctx, ballot, entries) {
                Ok(slots) => self.on_accepted(ctx, self.id, ballot, slots),
                Err(promised) => self.on_nack(ctx, ballot, promised),
            }
        }
    }

    /// Leader: heartbeats to every other server, and resend accepts not yet answered.
    fn heartbeat(&mut self, ctx: &mut Context<'_>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let ballot = leader.ballot;
        let now = ctx.local_time_ns();
        let interval = self.config.heartbeat_interval.as_nanos() as i64;
        let batch = self.config.max_entries_per_message as usize;
        let mut resend: BTreeMap<NodeId, Vec<(u64, Val<M>)>> = BTreeMap::new();
        for (&slot, p) in leader.pending.iter_mut() {
            if now - p.sent_ns < interval {
                continue;
            }
            let mut any = false;
            for &s in self.servers.iter().filter(|&&s| s != self.id) {
                let entries = resend.entry(s).or_default();
                if !p.acks.contains(&s) && entries.len() < batch {
                    entries.push((slot, p.value.clone()));
                    any = true;
                }
            }
            if any {
                p.sent_ns = now;
            }
        }
        // Reads waiting for an unconfirmed round get a new one (its heartbeats or their answers
        // may be lost); otherwise the heartbeats ask for no answer.
        let reads = &mut leader.reads;
        let round = if reads.wanted_above(reads.confirmed) {
            reads.start()
        } else {
            0
        };
        for (s, entries) in resend {
            if !entries.is_empty() {
                self.propose(ctx, ballot, entries, Some(s));
            }
        }
        self.send_heartbeats(ctx, ballot, round);
        ctx.set_timer(self.config.heartbeat_interval.to_std(), Timer::Heartbeat);
        if self.applied < self.leader_chosen_through
            && let Some(mut peer) = self.catch_up_from
        {
            if self
                .catch_up
                .is_some_and(|(_, at)| now - at >= 2 * interval)
            {
                // Unanswered (the server may be down): ask the next one.
                peer = self
                    .others()
                    .skip_while(|&s| s != peer)
                    .nth(1)
                    .or_else(|| self.others().next())
                    .unwrap_or(peer);
                self.catch_up_from = Some(peer);
            }
            self.ask_catch_up(ctx, peer);
        }
    }

    /// Sends a heartbeat of `round` (0: no answer wanted) to every other server, announcing the
    /// slots chosen since the last announcement. A round is confirmed at once when the leader
    /// alone is a majority.
    fn send_heartbeats(&mut self, ctx: &mut Context<'_>, ballot: Ballot, round: u64) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let chosen = std::mem::take(&mut leader.unannounced);
        let chosen_through = self.applied;
        let id = self.id;
        for &s in self.servers.iter().filter(|&&s| s != id) {
            ctx.send(
                s,
                Msg::<M>::Heartbeat {
                    ballot,
                    chosen_through,
                    chosen: chosen.clone(),
                    round,
                },
            );
        }
        if round > 0 {
            leader.reads.confirm(self.majority);
            self.serve_reads(ctx);
        }
    }

    /// Starts the heartbeat round waiting reads need, unless a round is in flight (its answers
    /// are awaited first: concurrent reads share rounds).
    fn carry_read_round(&mut self, ctx: &mut Context<'_>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let reads = &mut leader.reads;
        if !reads.wanted_above(reads.started) || reads.confirmed < reads.started {
            return;
        }
        let (ballot, round) = (leader.ballot, reads.start());
        self.send_heartbeats(ctx, ballot, round);
    }

    /// Queues the read-only `command` until a heartbeat round started after now is confirmed
    /// and every slot assigned by now is applied ([`ReadMode::ReadIndex`]).
    fn start_read(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        request: u64,
        command: M::Command,
    ) {
        let max = self.config.max_pending_reads as usize;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.reads.waiting.len() >= max {
            return M::send_reply(
                ctx,
                client,
                request,
                Answer::Fail("overloaded: too many pending reads".into()),
            );
        }
        let read = PendingRead {
            client,
            request,
            command,
            read_slot: leader.next_slot - 1,
            round: leader.reads.started + 1,
        };
        leader.reads.waiting.push_back(read);
        self.carry_read_round(ctx);
    }

    /// Answers every waiting read whose round is confirmed and whose slot is applied.
    fn serve_reads(&mut self, ctx: &mut Context<'_>) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let reads = &mut leader.reads;
        while let Some(read) = reads.waiting.front() {
            if read.round > reads.confirmed || read.read_slot > self.applied {
                break;
            }
            let read = reads.waiting.pop_front().expect("peeked");
            let outcome = self.machine.read(&read.command);
            M::send_reply(ctx, read.client, read.request, Answer::Done(outcome));
        }
    }

    /// A server acknowledged heartbeat `round` of `ballot`: confirms rounds, serves the reads
    /// they make ready, and starts the next round reads wait for.
    fn on_heartbeat_ack(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        ballot: Ballot,
        round: u64,
    ) {
        let majority = self.majority;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.ballot != ballot || round > leader.reads.started {
            return;
        }
        let acked = leader.reads.acked.entry(from).or_default();
        *acked = (*acked).max(round);
        leader.reads.confirm(majority);
        self.serve_reads(ctx);
        self.carry_read_round(ctx);
    }

    // ----- learner -----

    /// Learns that `value` is chosen at `slot`; a conflicting value is observed (`learned`) and
    /// ignored. A first learn is not observed: the `applied` observation, emitted when the slot
    /// is applied (in order, as soon as the slots below it are known), stands for it.
    fn learn(&mut self, ctx: &mut Context<'_>, slot: u64, value: Val<M>) {
        assert!(slot < MAX_SLOT, "the log outgrew MAX_SLOT");
        if let Role::Leader(leader) = &mut self.role {
            // Our proposal there is decided (ours or, for a stale leader, another leader's), and
            // our next proposals go after every slot known chosen.
            if let Some(p) = leader.pending.remove(&slot)
                && let Val::<M>::Command(c) = &p.value
            {
                leader.by_command.remove(&c.id());
            }
            leader.next_slot = leader.next_slot.max(slot + 1);
        }
        if let Some(known) = self.chosen.get(slot) {
            if *known != value {
                ctx.observe(Observation::Learned {
                    instance: slot,
                    value: value.value_id(),
                });
            }
            return;
        }
        self.chosen.insert(slot, value);
    }

    /// Applies chosen slots in order; the leader answers the clients waiting for them.
    fn apply(&mut self, ctx: &mut Context<'_>) {
        while let Some(value) = self.chosen.get(self.applied + 1) {
            let slot = self.applied + 1;
            if let Val::<M>::Command(command) = value {
                let applied = self.machine.apply(command);
                let id = command.id();
                if let Role::Leader(leader) = &mut self.role
                    && leader.awaiting.remove(&id)
                {
                    M::send_reply(ctx, id.client, id.request, applied.into());
                }
            }
            ctx.observe(Observation::Applied {
                slot,
                value: value.value_id(),
            });
            self.applied = slot;
        }
        self.serve_reads(ctx);
        self.maybe_snapshot(ctx);
    }

    /// Snapshots the state machine at the applied slot and compacts the chosen log and the
    /// acceptor through it, once `snapshot_threshold_slots` applied slots follow the last
    /// snapshot.
    fn maybe_snapshot(&mut self, ctx: &mut Context<'_>) {
        let last_bytes = self.snapshot.as_ref().map_or(0, |s| s.len() as u64);
        let since = self.applied - self.chosen.compacted_through;
        let per_slot = u64::from(self.config.snapshot_bytes_per_slot);
        if since < u64::from(self.config.snapshot_threshold_slots)
            || (per_slot > 0 && since < last_bytes / per_slot)
        {
            return;
        }
        let data: Arc<str> = self.machine.to_snapshot().into();
        self.write_snapshot(ctx, self.applied, &data);
        self.hold_snapshot(self.applied, data);
        ctx.observe(Observation::SnapshotTaken { slot: self.applied });
    }

    /// Writes the snapshot `data` through `slot` to disk with the acceptor's compaction through
    /// it, and syncs.
    fn write_snapshot(&mut self, ctx: &mut Context<'_>, slot: u64, data: &str) {
        let disk = ctx.disk();
        disk.write(SNAPSHOT_KEY, data.as_bytes());
        disk.write(SNAPSHOT_SLOT_KEY, slot.to_string());
        self.acceptor.compact_through(disk, slot);
        disk.sync();
    }

    /// Keeps the snapshot `data` through `slot` (written to disk) as this server's, and
    /// compacts the chosen log through it.
    fn hold_snapshot(&mut self, slot: u64, data: Arc<str>) {
        self.chosen.compact_through(slot);
        self.snapshot = Some(data);
    }

    /// Makes the state machine the snapshot `data`: the state after every slot up to `slot`.
    fn restore(&mut self, slot: u64, data: &str) {
        self.machine = Sessions::from_snapshot(data, self.config.session_limit)
            .expect("snapshots are the state machine's own text");
        self.applied = slot;
    }

    fn ask_catch_up(&mut self, ctx: &mut Context<'_>, to: NodeId) {
        let now = ctx.local_time_ns();
        let patience = 2 * self.config.heartbeat_interval.as_nanos() as i64;
        if self.applied >= self.leader_chosen_through {
            return;
        }
        if let Some((_, at)) = self.catch_up
            && now - at < patience
        {
            return;
        }
        let from_slot = self.applied + 1;
        self.catch_up = Some((from_slot, now));
        ctx.send(to, Msg::<M>::CatchUp { from_slot });
    }

    // ----- handlers -----

    fn on_prepare(&mut self, ctx: &mut Context<'_>, from: NodeId, ballot: Ballot, from_slot: u64) {
        match self.acceptor.prepare_from(ctx, from_slot, ballot) {
            Ok(accepted) => {
                if from != self.id && self.own_ballot().is_none_or(|b| b < ballot) {
                    self.follow(ctx, ballot, None);
                    // Give the candidate time to finish before competing with it.
                    self.reset_election_deadline(ctx);
                }
                let compacted_through = self.acceptor.compacted_through();
                ctx.send(
                    from,
                    Msg::<M>::Promise {
                        ballot,
                        accepted,
                        compacted_through,
                    },
                );
            }
            Err(promised) => ctx.send(from, Msg::<M>::Nack { ballot, promised }),
        }
    }

    fn on_promise(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        ballot: Ballot,
        accepted: Vec<(u64, Ballot, Val<M>)>,
        compacted_through: u64,
    ) {
        let majority = self.majority;
        if let Role::Candidate {
            ballot: mine,
            promises,
            ..
        } = &mut self.role
            && *mine == ballot
        {
            promises.insert(from, (accepted, compacted_through));
            if promises.len() >= majority {
                self.become_leader(ctx);
            }
        }
    }

    fn on_accept(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        ballot: Ballot,
        entries: Arc<[(u64, Val<M>)]>,
        chosen: Arc<[u64]>,
    ) {
        let result = if entries.is_empty() {
            Ok(Vec::new())
        } else {
            self.acceptor.accept(ctx, ballot, entries.iter().cloned())
        };
        let through = self.acceptor.compacted_through();
        if result.is_ok() && entries.first().is_some_and(|&(slot, _)| slot <= through) {
            // The leader proposes in slots chosen and compacted here: it is behind.
            ctx.send(from, Msg::<M>::Compacted { through });
        }
        match result {
            Ok(slots) => {
                self.learn_announced(ctx, from, ballot, &chosen);
                if from != self.id {
                    if self.own_ballot().is_some_and(|b| b < ballot) {
                        self.follow(ctx, ballot, Some(from));
                    }
                    if self.own_ballot().is_none() {
                        self.leader = Some(from);
                        self.observe_role(ctx, NodeRole::Follower, ballot.round);
                        self.reset_election_deadline(ctx);
                    }
                }
                if !slots.is_empty() {
                    ctx.send(from, Msg::<M>::Accepted { ballot, slots });
                }
            }
            Err(promised) => ctx.send(from, Msg::<M>::Nack { ballot, promised }),
        }
    }

    /// The leader of `ballot` announced that `slots` are chosen with the values it proposed
    /// there: learn those whose accepted proposal here has that ballot (one value per slot and
    /// ballot), and fetch the others from the leader.
    fn learn_announced(
        &mut self,
        ctx: &mut Context<'_>,
        leader: NodeId,
        ballot: Ballot,
        slots: &[u64],
    ) {
        let mut missing = false;
        for &slot in slots {
            match self.acceptor.accepted(slot) {
                Some((b, v)) if *b == ballot => {
                    let v = v.clone();
                    self.learn(ctx, slot, v);
                }
                _ => {
                    missing |= !self.chosen.contains(slot);
                    self.leader_chosen_through = self.leader_chosen_through.max(slot);
                }
            }
        }
        self.apply(ctx);
        if missing {
            self.ask_catch_up(ctx, leader);
        }
    }

    fn on_accepted(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        ballot: Ballot,
        slots: Vec<u64>,
    ) {
        let majority = self.majority;
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        if leader.ballot != ballot {
            return;
        }
        let mut newly: Vec<(u64, Val<M>)> = Vec::new();
        for slot in slots {
            if let Some(p) = leader.pending.get_mut(&slot) {
                p.acks.insert(from);
                if p.acks.len() >= majority {
                    newly.push((slot, p.value.clone()));
                }
            }
        }
        if newly.is_empty() {
            return;
        }
        for (slot, value) in &newly {
            self.learn(ctx, *slot, value.clone());
        }
        if let Role::Leader(leader) = &mut self.role {
            // Announced with the next accept or heartbeat, whichever comes first.
            leader
                .unannounced
                .extend(newly.iter().map(|(slot, _)| *slot));
        }
        self.apply(ctx);
    }

    fn on_nack(&mut self, ctx: &mut Context<'_>, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if self.own_ballot() == Some(ballot) && promised > ballot {
            self.follow(ctx, promised, None);
            self.reset_election_deadline(ctx);
        }
    }

    fn on_heartbeat(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        ballot: Ballot,
        chosen_through: u64,
        chosen: Vec<u64>,
        round: u64,
    ) {
        let promised = self.acceptor.promised(0);
        if ballot < promised {
            // A stale leader: tell it about the higher ballot.
            return ctx.send(from, Msg::<M>::Nack { ballot, promised });
        }
        if round > 0 {
            // No ballot above the leader's promised here: its reads may count this server.
            ctx.send(from, Msg::<M>::HeartbeatAck { ballot, round });
        }
        if self.own_ballot().is_some_and(|b| b >= ballot) {
            return; // we lead or campaign with a ballot at least as high
        }
        self.follow(ctx, ballot, Some(from));
        self.leader = Some(from);
        self.reset_election_deadline(ctx);
        self.leader_chosen_through = self.leader_chosen_through.max(chosen_through);
        self.learn_announced(ctx, from, ballot, &chosen);
        self.ask_catch_up(ctx, from);
    }

    fn on_chosen(&mut self, ctx: &mut Context<'_>, from: NodeId, entries: Vec<(u64, Val<M>)>) {
        let answered = self
            .catch_up
            .is_some_and(|(slot, _)| entries.iter().any(|(s, _)| *s == slot));
        for (slot, value) in entries {
            self.learn(ctx, slot, value);
        }
        self.apply(ctx);
        if answered {
            self.catch_up = None;
            self.ask_catch_up(ctx, from);
        }
    }

    fn on_catch_up(&mut self, ctx: &mut Context<'_>, from: NodeId, from_slot: u64) {
        let slot = self.chosen.compacted_through;
        if let Some(data) = &self.snapshot
            && from_slot <= slot
        {
            let data = data.clone();
            return ctx.send(from, Msg::<M>::Snapshot { slot, data });
        }
        let entries: Vec<(u64, Val<M>)> = self
            .chosen
            .from(from_slot)
            .take(self.config.max_entries_per_message as usize)
            .map(|(s, v)| (s, v.clone()))
            .collect();
        if !entries.is_empty() {
            ctx.send(from, Msg::<M>::Chosen { entries });
        }
    }

    /// Installs a peer's snapshot through `slot` if it is beyond the applied slot (and makes it
    /// this server's, on disk); then asks for what follows.
    fn on_snapshot(&mut self, ctx: &mut Context<'_>, from: NodeId, slot: u64, data: Arc<str>) {
        if slot > self.applied {
            self.restore(slot, &data);
            self.leader_chosen_through = self.leader_chosen_through.max(slot);
            self.write_snapshot(ctx, slot, &data);
            self.hold_snapshot(slot, data);
            ctx.observe(Observation::SnapshotInstalled { slot });
            self.drop_pending_through(ctx, slot);
            self.apply(ctx);
        }
        if self.catch_up.is_some() {
            self.catch_up = None;
            self.ask_catch_up(ctx, from);
        }
    }

    /// A leader that installed a snapshot through `slot` forgets its pending proposals there
    /// (chosen, whatever they were): a client waiting for one is answered from the sessions if
    /// its command was applied, and otherwise retries.
    fn drop_pending_through(&mut self, ctx: &mut Context<'_>, slot: u64) {
        let Role::Leader(leader) = &mut self.role else {
            return;
        };
        let kept = leader.pending.split_off(&(slot + 1));
        for (_, p) in std::mem::replace(&mut leader.pending, kept) {
            if let Val::<M>::Command(c) = &p.value {
                leader.by_command.remove(&c.id());
                if leader.awaiting.remove(&c.id()) {
                    self.machine.reply_if_cached(ctx, c);
                }
            }
        }
        leader.next_slot = leader.next_slot.max(slot + 1);
    }

    /// A client request arrived (routed here by [`Process::on_other`]).
    pub fn on_request(&mut self, ctx: &mut Context<'_>, client: NodeId, request: M::Request) {
        self.on_client(ctx, client, request);
        self.check_invariants(ctx);
    }

    fn on_client(&mut self, ctx: &mut Context<'_>, client: NodeId, request: M::Request) {
        let (request_id, op) = M::split_request(request);
        let Some(op) = op else {
            return M::send_reply(ctx, client, request_id, Answer::Unsupported);
        };
        let max_pending = self.config.max_uncommitted_slots as usize;
        if !self.is_leader() {
            let leader = self.leader.filter(|&l| l != self.id);
            return M::send_reply(ctx, client, request_id, Answer::Redirect(leader));
        }
        if M::is_read(&op) {
            if self.bugs.read_from_local_state {
                let outcome = self.machine.read(&op);
                return M::send_reply(ctx, client, request_id, Answer::Done(outcome));
            }
            if self.config.read_mode == ReadMode::ReadIndex {
                return self.start_read(ctx, client, request_id, op);
            }
        }
        let Role::Leader(leader) = &mut self.role else {
            unreachable!("checked above");
        };
        let command = Command {
            client,
            request: request_id,
            op,
        };
        if self.machine.reply_if_cached(ctx, &command) {
            return; // already applied: answered from the session, not run again
        }
        let id = command.id();
        if leader.by_command.contains_key(&id) {
            leader.awaiting.insert(id);
            return; // already proposed: answered when applied
        }
        if leader.pending.len() >= max_pending {
            // Not `fail`: this may be a retry (or a duplicate) of a request an earlier leader, or
            // this node under an earlier ballot, already proposed; it may still be chosen.
            return M::send_reply(
                ctx,
                client,
                request_id,
                Answer::Unknown("overloaded: too many slots not yet chosen".into()),
            );
        }
        let slot = leader.next_slot;
        assert!(slot < MAX_SLOT, "the log outgrew MAX_SLOT");
        leader.next_slot += 1;
        let ballot = leader.ballot;
        let value = Val::<M>::command(command);
        ctx.observe(Observation::Proposed {
            instance: slot,
            ballot,
            value: value.value_id(),
        });
        leader.by_command.insert(id, slot);
        leader.awaiting.insert(id);
        leader.pending.insert(
            slot,
            Pending {
                value: value.clone(),
                acks: BTreeSet::new(),
                sent_ns: ctx.local_time_ns(),
            },
        );
        self.propose(ctx, ballot, vec![(slot, value)], None);
    }

    /// Local invariants, asserted after every step.
    fn check_invariants(&mut self, ctx: &mut Context<'_>) {
        assert!(
            !ctx.disk().has_unsynced(),
            "multi-paxos node {:?} left unsynced state on disk",
            self.id
        );
        self.acceptor.check_invariants();
        assert!(
            self.applied == 0 || self.chosen.contains(self.applied),
            "applied slot {} is not chosen",
            self.applied
        );
        let snapshot_slot = self.chosen.compacted_through;
        assert!(
            snapshot_slot <= self.applied
                && self.snapshot.is_some() == (snapshot_slot > 0)
                && self.acceptor.compacted_through() == snapshot_slot,
            "snapshot at slot {snapshot_slot} (held: {}), applied {}, acceptor compacted through {}",
            self.snapshot.is_some(),
            self.applied,
            self.acceptor.compacted_through()
        );
        if let Some(b) = self.own_ballot() {
            assert!(
                b.round <= self.round,
                "ballot {b} above the persisted round {}",
                self.round
            );
        }
        if let Role::Leader(leader) = &self.role {
            for &slot in leader.pending.keys() {
                assert!(
                    slot > self.applied && slot < leader.next_slot,
                    "pending slot {slot} outside ({}, {})",
                    self.applied,
                    leader.next_slot
                );
                assert!(
                    !self.chosen.contains(slot),
                    "pending slot {slot} is already chosen"
                );
            }
        }
    }
}

/// A Multi-Paxos server replicating the state machine `config.state_machine` names (validated
/// before: an unknown name panics).
fn spawn(setup: &NodeSetup, config: Config) -> Box<dyn AnyProcess> {
    kv::build_replica::<MultiPaxos>(&config.state_machine.clone(), setup, config)
}

/// The Multi-Paxos family as a [`kv::Replica`]: its [`Node`] for any machine.
struct MultiPaxos;

impl kv::Replica for MultiPaxos {
    type Config = Config;
    fn build<M: Served>(setup: &NodeSetup, config: Config) -> Box<dyn AnyProcess> {
        Box::new(Node::<M>::new(setup, config))
    }
}

impl<M: Served> Process for Node<M> {
    type Message = Msg<M>;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.acceptor = Acceptor::load(ctx.disk(), Scope::AllSlots, self.bugs);
        self.round = ctx
            .disk()
            .read(ROUND_KEY)
            .map(|b| String::from_utf8_lossy(&b).parse().expect("a round"))
            .unwrap_or(0);
        self.round_seen = self.round.max(self.acceptor.promised(0).round);
        if let Some(slot) = ctx.disk().read(SNAPSHOT_SLOT_KEY) {
            let slot: u64 = String::from_utf8_lossy(&slot).parse().expect("a slot");
            let data: Arc<str> = String::from_utf8(
                ctx.disk()
                    .read(SNAPSHOT_KEY)
                    .expect("written with its slot")
                    .into_owned(),
            )
            .expect("snapshots are UTF-8")
            .into();
            self.restore(slot, &data);
            self.hold_snapshot(slot, data);
            ctx.observe(Observation::SnapshotInstalled { slot });
        }
        self.observe_role(ctx, NodeRole::Follower, self.round_seen);
        self.reset_election_deadline(ctx);
        let timeout = self.election_timeout(ctx);
        ctx.set_timer(timeout, Timer::Election);
        self.check_invariants(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Msg<M>) {
        match &message {
            Msg::<M>::Prepare { ballot, .. }
            | Msg::<M>::Accept { ballot, .. }
            | Msg::<M>::Heartbeat { ballot, .. } => {
                self.round_seen = self.round_seen.max(ballot.round);
            }
            _ => {}
        }
        match message {
            Msg::<M>::Prepare { ballot, from_slot } => {
                self.on_prepare(ctx, from, ballot, from_slot)
            }
            Msg::<M>::Promise {
                ballot,
                accepted,
                compacted_through,
            } => self.on_promise(ctx, from, ballot, accepted, compacted_through),
            Msg::<M>::Accept {
                ballot,
                entries,
                chosen,
            } => self.on_accept(ctx, from, ballot, entries, chosen),
            Msg::<M>::Accepted { ballot, slots } => self.on_accepted(ctx, from, ballot, slots),
            Msg::<M>::Nack { ballot, promised } => self.on_nack(ctx, ballot, promised),
            Msg::<M>::Heartbeat {
                ballot,
                chosen_through,
                chosen,
                round,
            } => self.on_heartbeat(ctx, from, ballot, chosen_through, chosen, round),
            Msg::<M>::HeartbeatAck { ballot, round } => {
                self.on_heartbeat_ack(ctx, from, ballot, round)
            }
            Msg::<M>::Chosen { entries } => self.on_chosen(ctx, from, entries),
            Msg::<M>::CatchUp { from_slot } => self.on_catch_up(ctx, from, from_slot),
            Msg::<M>::Snapshot { slot, data } => self.on_snapshot(ctx, from, slot, data),
            Msg::<M>::Compacted { through } => self.behind(ctx, from, through),
        }
        self.check_invariants(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: Timer) {
        match timer {
            Timer::Election => {
                let now = ctx.local_time_ns();
                if self.is_leader() {
                    self.reset_election_deadline(ctx);
                } else if now >= self.election_deadline_ns {
                    self.campaign(ctx);
                }
                let wait = (self.election_deadline_ns - now).max(1) as u64;
                ctx.set_timer(std::time::Duration::from_nanos(wait), Timer::Election);
            }
            Timer::Heartbeat => self.heartbeat(ctx),
        }
        self.check_invariants(ctx);
    }

    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        message: crate::process::Message,
    ) -> Result<(), crate::process::Message> {
        let request = M::parse_request(message)?;
        self.on_request(ctx, client, request);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::kv::{ClientMessage, Outcome, Reply, Request};
    use crate::families::paxos::acceptor::tests::{logged_slots, observed};
    use crate::process::{Effect, TestContext};

    fn setup(id: u32) -> NodeSetup {
        NodeSetup::server(NodeId(id), (0..3).map(NodeId).collect())
    }

    fn b(round: u64, node: u32) -> Ballot {
        Ballot {
            round,
            node: NodeId(node),
        }
    }

    fn sends(tc: &mut TestContext) -> Vec<(NodeId, Message)> {
        tc.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Send { to, message } => message.downcast().ok().map(|m| (to, m)),
                _ => None,
            })
            .collect()
    }

    /// A heartbeat of `ballot` announcing nothing, asking for an answer to `round` (0: none).
    fn heartbeat(ballot: Ballot, round: u64) -> Message {
        Message::Heartbeat {
            ballot,
            chosen_through: 0,
            chosen: vec![],
            round,
        }
    }

    /// The `accept` messages of `sent`.
    fn accepts(sent: &[(NodeId, Message)]) -> Vec<&Message> {
        sent.iter()
            .filter(|(_, m)| matches!(m, Message::Accept { .. }))
            .map(|(_, m)| m)
            .collect()
    }

    fn put(client: u32, request: u64, key: &str, value: &str) -> kv::Command {
        Command {
            client: NodeId(client),
            request,
            op: Op::Put {
                key: key.into(),
                value: value.into(),
            },
        }
    }

    /// The slot value of [`put`]'s command.
    fn command(client: u32, request: u64, key: &str, value: &str) -> Value {
        Value::command(put(client, request, key, value))
    }

    /// Boots node 0 and makes it campaign with ballot (1, 0) from slot 1.
    fn candidate() -> (TestContext, Node) {
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut node = Node::new(&setup(0), Config::default());
        node.on_start(&mut tc.ctx());
        tc.local_time_ns = 1_000_000_000;
        node.on_timer(&mut tc.ctx(), TimerId(0), Timer::Election);
        let sent = sends(&mut tc);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.iter().all(|(_, m)| *m
            == Message::Prepare {
                ballot: b(1, 0),
                from_slot: 1
            }));
        (tc, node)
    }

    /// A candidate elected by empty promises from itself and node 1 (ballot (1, 0)).
    fn leader() -> (TestContext, Node) {
        let (mut tc, mut node) = candidate();
        for from in [0, 1] {
            node.on_message(
                &mut tc.ctx(),
                NodeId(from),
                Message::Promise {
                    ballot: b(1, 0),
                    accepted: vec![],
                    compacted_through: 0,
                },
            );
        }
        assert!(node.is_leader());
        (tc, node)
    }

    #[test]
    fn a_new_leader_re_proposes_the_highest_ballot_values_and_fills_gaps_with_noops() {
        let (mut tc, mut node) = candidate();
        // n2 reports slot 1 at (0, 1) and slot 3 at (0, 2); n3 reports slot 1 at (0, 2).
        let a = command(9, 1, "k", "a");
        let c = command(9, 2, "k", "c");
        let a2 = command(9, 3, "k", "a2");
        node.on_message(
            &mut tc.ctx(),
            NodeId(1),
            Message::Promise {
                ballot: b(1, 0),
                accepted: vec![(1, b(0, 1), a.clone()), (3, b(0, 2), c.clone())],
                compacted_through: 0,
            },
        );
        assert!(!node.is_leader(), "one promise is not a majority of 3");
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::Promise {
                ballot: b(1, 0),
                accepted: vec![(1, b(0, 2), a2.clone())],
                compacted_through: 0,
            },
        );
        assert!(node.is_leader());
        let sent = sends(&mut tc);
        let accepts = accepts(&sent);
        assert_eq!(
            accepts.len(),
            2,
            "to the others; its own acceptor accepts in place"
        );
        assert_eq!(
            *accepts[0],
            Message::Accept {
                ballot: b(1, 0),
                entries: vec![(1, a2.clone()), (2, Value::Noop), (3, c)].into(),
                chosen: vec![].into(),
            }
        );
        assert_eq!(node.acceptor.accepted(1), Some(&(b(1, 0), a2)));
        let effects_roles = node.last_role;
        assert_eq!(effects_roles, Some((NodeRole::Leader, 1)));
    }

    #[test]
    fn a_leader_chooses_applies_and_answers_once_per_command() {
        let (mut tc, mut node) = leader();
        tc.take_effects();
        let request = Request {
            id: 1,
            op: Op::Put {
                key: "k".into(),
                value: "v".into(),
            },
        };
        node.on_request(&mut tc.ctx(), NodeId(9), request.clone());
        node.on_request(&mut tc.ctx(), NodeId(9), request.clone());
        let accepts = accepts(&sends(&mut tc)).len();
        assert_eq!(
            accepts, 2,
            "a retry of a pending command is not proposed again"
        );
        // Its own acceptor accepted in place: one more acceptance makes a majority of 3.
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::Accepted {
                ballot: b(1, 0),
                slots: vec![1],
            },
        );
        assert_eq!(node.applied(), 1);
        let effects = tc.take_effects();
        let replies: Vec<&Effect> = effects
            .iter()
            .filter(|e| matches!(e, Effect::Send { message, .. } if message.is::<ClientMessage>()))
            .collect();
        assert_eq!(replies.len(), 1, "{effects:?}");
        // A retry after it applied is answered from the session.
        node.on_request(&mut tc.ctx(), NodeId(9), request);
        let sent = tc.take_effects();
        assert!(
            sent.iter().any(|e| matches!(
                e,
                Effect::Send { message, .. } if message.is::<ClientMessage>()
            )),
            "{sent:?}"
        );
        assert!(
            !sent.iter().any(|e| matches!(
                e,
                Effect::Send { message, .. }
                    if matches!(message.downcast_ref::<Message>(), Some(Message::Accept { .. }))
            )),
            "{sent:?}"
        );
    }

    #[test]
    fn the_chosen_log_reads_like_a_map_of_slots() {
        let mut log: ChosenLog<&str> = ChosenLog::default();
        assert_eq!(
            (log.last_slot(), log.get(0), log.get(u64::MAX)),
            (None, None, None)
        );
        log.insert(3, "c");
        log.insert(1, "a");
        assert!(log.contains(1) && !log.contains(2) && log.contains(3) && !log.contains(4));
        assert_eq!(log.last_slot(), Some(3));
        assert_eq!(log.from(0).collect::<Vec<_>>(), vec![(1, &"a"), (3, &"c")]);
        assert_eq!(log.from(2).collect::<Vec<_>>(), vec![(3, &"c")]);
        assert_eq!(log.from(9).count(), 0);
        log.insert(1, "b");
        assert_eq!(log.get(1), Some(&"b"));
    }

    #[test]
    fn the_chosen_log_forgets_its_prefix_when_compacted_and_knows_it_chosen() {
        let mut log: ChosenLog<&str> = ChosenLog::default();
        for (slot, v) in [(1, "a"), (2, "b"), (3, "c"), (5, "e")] {
            log.insert(slot, v);
        }
        log.compact_through(2);
        assert_eq!(
            (log.get(1), log.get(2), log.get(3)),
            (None, None, Some(&"c"))
        );
        assert!(log.contains(1) && log.contains(2) && log.contains(3) && !log.contains(4));
        assert!(!log.contains(0), "slots count from 1");
        assert_eq!(log.from(1).collect::<Vec<_>>(), vec![(3, &"c"), (5, &"e")]);
        assert_eq!(log.last_slot(), Some(5));
        log.insert(2, "late");
        assert_eq!(log.get(2), None, "a compacted slot stays forgotten");
        log.compact_through(1);
        assert_eq!(log.compacted_through, 2, "compaction never goes back");
        log.compact_through(7);
        assert_eq!((log.last_slot(), log.from(0).count()), (Some(7), 0));
        log.insert(8, "h");
        assert_eq!(log.from(0).collect::<Vec<_>>(), vec![(8, &"h")]);
    }

    /// A follower (node 1 of 3) with `snapshot_threshold_slots = 2` that accepted slots 1 to 3
    /// from leader 0 (ballot (1, 0)) and was told they are chosen.
    fn compacted_follower() -> (TestContext, Node) {
        let mut tc = TestContext::new(NodeId(1), 1);
        let config = Config {
            snapshot_threshold_slots: 2,
            ..Config::default()
        };
        let mut node = Node::new(&setup(1), config);
        node.on_start(&mut tc.ctx());
        accept_chosen(&mut tc, &mut node, 1..=3);
        (tc, node)
    }

    /// `node` accepts a put in each of `slots` from leader 0 (ballot (1, 0)) and is told they
    /// are chosen.
    fn accept_chosen(tc: &mut TestContext, node: &mut Node, slots: std::ops::RangeInclusive<u64>) {
        let entries: Vec<(u64, Value)> = slots
            .clone()
            .map(|i| (i, command(9, i, &format!("k{i}"), "v")))
            .collect();
        node.on_message(
            &mut tc.ctx(),
            NodeId(0),
            Message::Accept {
                ballot: b(1, 0),
                entries: entries.into(),
                chosen: vec![].into(),
            },
        );
        node.on_message(
            &mut tc.ctx(),
            NodeId(0),
            Message::Heartbeat {
                ballot: b(1, 0),
                chosen_through: *slots.end(),
                chosen: slots.collect(),
                round: 0,
            },
        );
    }

    #[test]
    fn snapshots_are_spaced_by_the_size_of_the_last_one_unless_that_is_off() {
        for (bytes_per_slot, next) in [(0, 5), (10, 3)] {
            let (mut tc, mut node) = compacted_follower();
            node.config.snapshot_bytes_per_slot = bytes_per_slot;
            let size = node.snapshot.as_ref().unwrap().len() as u64;
            assert!(size > 40, "a snapshot of {size} bytes");
            // Two slots more: the threshold (2) is met; 2 < size / 10 slots are not.
            accept_chosen(&mut tc, &mut node, 4..=5);
            assert_eq!(node.applied(), 5);
            assert_eq!(
                node.chosen.compacted_through, next,
                "bytes per slot {bytes_per_slot}"
            );
        }
    }

    #[test]
    fn a_replica_snapshots_durably_and_forgets_the_slots_its_snapshot_covers() {
        let (mut tc, mut node) = compacted_follower();
        assert_eq!(node.applied(), 3);
        assert!(
            observed(&mut tc).contains(&Observation::SnapshotTaken { slot: 3 }),
            "applied 3 slots in one step, past the threshold of 2: one snapshot, at slot 3"
        );
        assert_eq!(node.chosen.compacted_through, 3);
        assert_eq!(node.acceptor.compacted_through(), 3);
        assert_eq!(node.acceptor.accepted_count(), 0);
        assert_eq!(logged_slots(&tc.disk), Vec::<u64>::new());
        assert!(!tc.disk.has_unsynced());
        // A promise reports the compaction point instead of the forgotten proposals.
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::Prepare {
                ballot: b(2, 2),
                from_slot: 1,
            },
        );
        assert_eq!(
            sends(&mut tc),
            vec![(
                NodeId(2),
                Message::Promise {
                    ballot: b(2, 2),
                    accepted: vec![],
                    compacted_through: 3,
                }
            )]
        );
        // An accept in a compacted slot is neither accepted nor refused: the sender is behind.
        let noop_in_slot_2 = |ballot| Message::Accept {
            ballot,
            entries: vec![(2, Value::Noop)].into(),
            chosen: vec![].into(),
        };
        node.on_message(&mut tc.ctx(), NodeId(2), noop_in_slot_2(b(2, 2)));
        let sent = sends(&mut tc);
        assert_eq!(
            sent,
            vec![(NodeId(2), Message::Compacted { through: 3 })],
            "no accepted, no nack"
        );
        assert_eq!(node.acceptor.accepted(2), None);
        // A stale leader's accept there is refused by the promise first, as anywhere.
        node.on_message(&mut tc.ctx(), NodeId(0), noop_in_slot_2(b(1, 0)));
        assert_eq!(
            sends(&mut tc),
            vec![(
                NodeId(0),
                Message::Nack {
                    ballot: b(1, 0),
                    promised: b(2, 2)
                }
            )]
        );
        assert_eq!(node.leader, Some(NodeId(2)), "still following (2, 2)");
        // After a crash it restarts from its snapshot, not from slot 1.
        tc.disk.crash();
        let mut restarted = Node::new(&setup(1), node.config.clone());
        restarted.on_start(&mut tc.ctx());
        assert_eq!(restarted.applied(), 3);
        assert_eq!(restarted.machine.value("k2"), Some("v"));
        assert!(observed(&mut tc).contains(&Observation::SnapshotInstalled { slot: 3 }));
        assert_eq!(restarted.acceptor.compacted_through(), 3);
    }

    #[test]
    fn a_server_asked_for_compacted_slots_sends_its_snapshot_and_the_asker_installs_it() {
        let (mut tc, mut node) = compacted_follower();
        tc.take_effects();
        node.on_message(&mut tc.ctx(), NodeId(2), Message::CatchUp { from_slot: 2 });
        let sent = sends(&mut tc);
        let [(to, Message::Snapshot { slot, data })] = &sent[..] else {
            panic!("one snapshot to n2: {sent:?}");
        };
        assert_eq!((*to, *slot), (NodeId(2), 3));
        // n2 is behind and asked for slot 1 on: it installs the snapshot, keeps it on its disk
        // (its acceptor compacted with it) and asks for what follows.
        let mut tc2 = TestContext::new(NodeId(2), 2);
        let mut n2: Node = Node::new(&setup(2), Config::default());
        n2.on_start(&mut tc2.ctx());
        n2.on_message(
            &mut tc2.ctx(),
            NodeId(1),
            Message::Heartbeat {
                ballot: b(1, 1),
                chosen_through: 3,
                chosen: vec![],
                round: 0,
            },
        );
        assert_eq!(
            sends(&mut tc2),
            vec![(NodeId(1), Message::CatchUp { from_slot: 1 })]
        );
        n2.on_message(
            &mut tc2.ctx(),
            NodeId(1),
            Message::Snapshot {
                slot: 3,
                data: data.clone(),
            },
        );
        assert_eq!(n2.applied(), 3);
        assert_eq!(n2.machine.value("k3"), Some("v"));
        assert_eq!(n2.acceptor.compacted_through(), 3);
        assert!(tc2.disk.read(SNAPSHOT_KEY).is_some() && !tc2.disk.has_unsynced());
        let effects = tc2.take_effects();
        assert!(
            effects.iter().any(|e| matches!(
                e,
                Effect::Observe(o) if o.downcast_ref() == Some(&Observation::SnapshotInstalled { slot: 3 })
            )),
            "{effects:?}"
        );
        // A snapshot it already covers changes nothing.
        n2.on_message(
            &mut tc2.ctx(),
            NodeId(1),
            Message::Snapshot {
                slot: 2,
                data: data.clone(),
            },
        );
        assert_eq!(n2.applied(), 3);
    }

    #[test]
    fn a_new_leader_proposes_nothing_up_to_a_reported_compaction_point_and_catches_up() {
        let (mut tc, mut node) = candidate();
        let late = command(9, 7, "k", "late");
        node.on_message(
            &mut tc.ctx(),
            NodeId(1),
            Message::Promise {
                ballot: b(1, 0),
                accepted: vec![(6, b(0, 1), late.clone())],
                compacted_through: 5,
            },
        );
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::Promise {
                ballot: b(1, 0),
                accepted: vec![(2, b(0, 2), command(9, 2, "k", "old"))],
                compacted_through: 0,
            },
        );
        assert!(node.is_leader());
        let sent = sends(&mut tc);
        let accepts = accepts(&sent);
        assert_eq!(
            *accepts[0],
            Message::Accept {
                ballot: b(1, 0),
                entries: vec![(6, late)].into(),
                chosen: vec![].into(),
            },
            "slots 1 to 5 are chosen (n1 compacted them): only slot 6 is proposed again"
        );
        assert!(
            sent.contains(&(NodeId(1), Message::CatchUp { from_slot: 1 })),
            "{sent:?}"
        );
        let Role::Leader(leader) = &node.role else {
            unreachable!()
        };
        assert_eq!(leader.next_slot, 7);
    }

    #[test]
    fn slot_values_round_trip_through_the_disk_format() {
        for value in [Value::Noop, command(9, 3, "k", "v")] {
            let bytes = serde_json::to_vec(&(b(2, 1), &value)).unwrap();
            let back: (Ballot, Value) = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, (b(2, 1), value.clone()));
            // What an acceptor writes, the first time (encoded) and later (copied).
            for _ in 0..2 {
                let mut written = Vec::new();
                value.write_json(&mut written);
                assert_eq!(written, serde_json::to_vec(&value).unwrap());
            }
        }
        assert_eq!(&*Value::<Op>::Noop.value_id(), "noop");
        assert_eq!(&*command(9, 3, "k", "v").value_id(), "9#3");
        assert_eq!(
            &*command(u32::MAX, u64::MAX, "k", "v").value_id(),
            format!(
                "{}",
                CommandId {
                    client: NodeId(u32::MAX),
                    request: u64::MAX
                }
            ),
            "named as CommandId displays"
        );
    }

    #[test]
    fn a_follower_learns_announced_slots_it_accepted_and_fetches_the_others() {
        let mut tc = TestContext::new(NodeId(1), 1);
        let mut node = Node::new(&setup(1), Config::default());
        node.on_start(&mut tc.ctx());
        let v1 = command(9, 1, "k", "a");
        node.on_message(
            &mut tc.ctx(),
            NodeId(0),
            Message::Accept {
                ballot: b(1, 0),
                entries: vec![(1, v1.clone())].into(),
                chosen: vec![].into(),
            },
        );
        tc.take_effects();
        // Slot 1 is announced chosen (it accepted it with that ballot); slot 2 it never saw.
        node.on_message(
            &mut tc.ctx(),
            NodeId(0),
            Message::Heartbeat {
                ballot: b(1, 0),
                chosen_through: 2,
                chosen: vec![1, 2],
                round: 0,
            },
        );
        assert_eq!(node.applied(), 1);
        assert_eq!(node.machine.value("k"), Some("a"));
        assert_eq!(
            sends(&mut tc),
            vec![(NodeId(0), Message::CatchUp { from_slot: 2 })]
        );
        node.on_message(
            &mut tc.ctx(),
            NodeId(0),
            Message::Chosen {
                entries: vec![(2, Value::Noop)],
            },
        );
        assert_eq!(node.applied(), 2);
    }

    #[test]
    fn a_higher_ballot_deposes_the_leader_and_a_follower_redirects() {
        let (mut tc, mut node) = leader();
        node.on_message(&mut tc.ctx(), NodeId(2), heartbeat(b(2, 2), 0));
        assert!(!node.is_leader());
        tc.take_effects();
        node.on_request(
            &mut tc.ctx(),
            NodeId(9),
            Request {
                id: 1,
                op: Op::Get { key: "k".into() },
            },
        );
        let sent = tc.take_effects();
        assert!(
            sent.iter().any(|e| matches!(
                e,
                Effect::Send { message, .. } if matches!(
                    message.downcast_ref(),
                    Some(ClientMessage::Reply(Reply {
                        outcome: Outcome::Redirect {
                            leader: Some(NodeId(2))
                        },
                        ..
                    }))
                )
            )),
            "{sent:?}"
        );
        // The stale leader's heartbeat is refused with the higher promise... once n1 promised it.
        let mut tc1 = TestContext::new(NodeId(1), 2);
        let mut n1: Node = Node::new(&setup(1), Config::default());
        n1.on_start(&mut tc1.ctx());
        n1.on_message(
            &mut tc1.ctx(),
            NodeId(2),
            Message::Prepare {
                ballot: b(2, 2),
                from_slot: 1,
            },
        );
        tc1.take_effects();
        n1.on_message(&mut tc1.ctx(), NodeId(0), heartbeat(b(1, 0), 0));
        assert_eq!(
            sends(&mut tc1),
            vec![(
                NodeId(0),
                Message::Nack {
                    ballot: b(1, 0),
                    promised: b(2, 2)
                }
            )]
        );
    }

    /// A client's `get` of `key` as request `id`.
    fn get(id: u64, key: &str) -> Request {
        Request {
            id,
            op: Op::Get { key: key.into() },
        }
    }

    /// The outcomes of the client replies in `effects`, by request id.
    fn replies(effects: &[Effect]) -> Vec<(u64, Outcome)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { message, .. } => match message.downcast_ref() {
                    Some(ClientMessage::Reply(r)) => Some((r.id, r.outcome.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }

    /// The messages of `effects` to peers.
    fn peer_sends(effects: &[Effect]) -> Vec<(NodeId, Message)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, message } => {
                    message.downcast_ref().map(|m: &Message| (*to, m.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The round of every peer message in `effects`, which must all be heartbeats.
    fn heartbeat_rounds(effects: &[Effect]) -> Vec<u64> {
        peer_sends(effects)
            .into_iter()
            .map(|(_, m)| match m {
                Message::Heartbeat { round, .. } => round,
                other => panic!("not a heartbeat: {other:?}"),
            })
            .collect()
    }

    fn read_ok(value: Option<&str>) -> Outcome {
        Outcome::Ok {
            value: kv::OpValue::Value(value.map(str::to_string)),
        }
    }

    #[test]
    fn a_read_takes_no_slot_and_is_answered_once_a_majority_acknowledges_a_later_round() {
        let (mut tc, mut node) = leader();
        tc.take_effects();
        node.on_request(&mut tc.ctx(), NodeId(9), get(1, "k"));
        let effects = tc.take_effects();
        assert!(
            replies(&effects).is_empty(),
            "not before a round is confirmed"
        );
        let sent = peer_sends(&effects);
        assert_eq!(
            sent,
            [1, 2]
                .map(|to| (NodeId(to), heartbeat(b(1, 0), 1)))
                .to_vec(),
            "a heartbeat round, no accept"
        );
        // An answer for another ballot, or for a round not started, does not count.
        for (ballot, round) in [(b(0, 1), 1), (b(1, 0), 2)] {
            node.on_message(
                &mut tc.ctx(),
                NodeId(1),
                Message::HeartbeatAck { ballot, round },
            );
        }
        assert!(replies(&tc.take_effects()).is_empty());
        // n2 and the leader are a majority of 3.
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::HeartbeatAck {
                ballot: b(1, 0),
                round: 1,
            },
        );
        assert_eq!(replies(&tc.take_effects()), vec![(1, read_ok(None))]);
        let Role::Leader(leader) = &node.role else {
            panic!("still leader")
        };
        assert_eq!(leader.next_slot, 1, "the read took no slot");
        assert!(observed(&mut tc).is_empty(), "nothing proposed or applied");
    }

    #[test]
    fn a_read_waits_for_the_slots_assigned_before_it_and_concurrent_reads_share_rounds() {
        let (mut tc, mut node) = leader();
        node.on_request(
            &mut tc.ctx(),
            NodeId(8),
            Request {
                id: 1,
                op: Op::Put {
                    key: "k".into(),
                    value: "v".into(),
                },
            },
        );
        node.on_request(&mut tc.ctx(), NodeId(9), get(1, "k"));
        tc.take_effects();
        // A second read while round 1 is in flight waits for round 2, not yet started.
        node.on_request(&mut tc.ctx(), NodeId(9), get(2, "k"));
        assert!(
            peer_sends(&tc.take_effects()).is_empty(),
            "no second round in flight"
        );
        node.on_message(
            &mut tc.ctx(),
            NodeId(1),
            Message::HeartbeatAck {
                ballot: b(1, 0),
                round: 1,
            },
        );
        let effects = tc.take_effects();
        assert!(
            replies(&effects).is_empty(),
            "slot 1 (the put) is not applied yet"
        );
        assert_eq!(
            heartbeat_rounds(&effects),
            vec![2, 2],
            "round 1 confirmed: round 2 starts for the second read"
        );
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::Accepted {
                ballot: b(1, 0),
                slots: vec![1],
            },
        );
        let answered = replies(&tc.take_effects());
        assert_eq!(
            answered,
            vec![
                (
                    1,
                    Outcome::Ok {
                        value: kv::OpValue::Done
                    }
                ),
                (1, read_ok(Some("v")))
            ],
            "the put, then the first read, which sees it"
        );
        node.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::HeartbeatAck {
                ballot: b(1, 0),
                round: 2,
            },
        );
        assert_eq!(replies(&tc.take_effects()), vec![(2, read_ok(Some("v")))]);
    }

    #[test]
    fn unconfirmed_reads_get_a_new_round_with_the_next_heartbeat_and_die_with_the_leadership() {
        let (mut tc, mut node) = leader();
        node.on_request(&mut tc.ctx(), NodeId(9), get(1, "k"));
        tc.take_effects();
        // Round 1's heartbeats were lost: the periodic heartbeat starts round 2.
        node.on_timer(&mut tc.ctx(), TimerId(1), Timer::Heartbeat);
        assert_eq!(heartbeat_rounds(&tc.take_effects()), vec![2, 2]);
        // A higher ballot deposes the leader: its waiting reads are never answered (the client
        // retries elsewhere), even if an old round's answer arrives.
        node.on_message(&mut tc.ctx(), NodeId(2), heartbeat(b(2, 2), 0));
        node.on_message(
            &mut tc.ctx(),
            NodeId(1),
            Message::HeartbeatAck {
                ballot: b(1, 0),
                round: 2,
            },
        );
        assert!(replies(&tc.take_effects()).is_empty());
        // With no reads waiting, heartbeats ask for no answer.
        let (mut tc, mut node) = leader();
        tc.take_effects();
        node.on_timer(&mut tc.ctx(), TimerId(1), Timer::Heartbeat);
        assert_eq!(heartbeat_rounds(&tc.take_effects()), vec![0, 0]);
    }

    #[test]
    fn an_acceptor_acknowledges_a_round_only_while_it_promised_no_higher_ballot() {
        let mut tc = TestContext::new(NodeId(1), 2);
        let mut n1: Node = Node::new(&setup(1), Config::default());
        n1.on_start(&mut tc.ctx());
        n1.on_message(&mut tc.ctx(), NodeId(0), heartbeat(b(1, 0), 3));
        assert_eq!(
            sends(&mut tc),
            vec![(
                NodeId(0),
                Message::HeartbeatAck {
                    ballot: b(1, 0),
                    round: 3
                }
            )]
        );
        n1.on_message(&mut tc.ctx(), NodeId(0), heartbeat(b(1, 0), 0));
        assert_eq!(sends(&mut tc), vec![], "round 0 asks for no answer");
        n1.on_message(
            &mut tc.ctx(),
            NodeId(2),
            Message::Prepare {
                ballot: b(2, 2),
                from_slot: 1,
            },
        );
        tc.take_effects();
        n1.on_message(&mut tc.ctx(), NodeId(0), heartbeat(b(1, 0), 4));
        assert_eq!(
            sends(&mut tc),
            vec![(
                NodeId(0),
                Message::Nack {
                    ballot: b(1, 0),
                    promised: b(2, 2)
                }
            )]
        );
    }

    #[test]
    fn a_lone_server_confirms_its_rounds_itself_and_log_reads_take_a_slot() {
        let mut tc = TestContext::new(NodeId(0), 1);
        let alone = NodeSetup::server(NodeId(0), vec![NodeId(0)]);
        let mut node: Node = Node::new(&alone, Config::default());
        node.on_start(&mut tc.ctx());
        tc.local_time_ns = 1_000_000_000;
        node.on_timer(&mut tc.ctx(), TimerId(0), Timer::Election);
        node.on_message(
            &mut tc.ctx(),
            NodeId(0),
            Message::Prepare {
                ballot: b(1, 0),
                from_slot: 1,
            },
        );
        let promise = sends(&mut tc).pop().expect("a promise to itself").1;
        node.on_message(&mut tc.ctx(), NodeId(0), promise);
        assert!(node.is_leader());
        tc.take_effects();
        node.on_request(&mut tc.ctx(), NodeId(9), get(1, "k"));
        assert_eq!(replies(&tc.take_effects()), vec![(1, read_ok(None))]);

        let (mut tc, mut node) = leader();
        node.config.read_mode = ReadMode::Log;
        tc.take_effects();
        node.on_request(&mut tc.ctx(), NodeId(9), get(1, "k"));
        let sent = sends(&mut tc);
        assert_eq!(accepts(&sent).len(), 2, "{sent:?}");
    }
}
