//! Raft consensus replicating a state machine chosen by `[raft] state_machine`: any
//! [`crate::families::replicated::StateMachine`] that serves key-value clients
//! ([`crate::families::kv::ServesKvClients`]); `"kv"`, the key-value store, by default. The node
//! ([`Node`]), its log, entries and messages are generic over the machine; nothing here depends
//! on what the machine does, beyond which commands are read-only (served by ReadIndex or lease).
//!
//! Sources: D. Ongaro and J. Ousterhout, "In Search of an Understandable Consensus Algorithm
//! (Extended Version)" (the paper, §n below), and D. Ongaro, "Consensus: Bridging Theory and
//! Practice" (the thesis).
//!
//! # Algorithm
//!
//! Each server is a follower, a pre-candidate, a candidate or the leader, and keeps a log of
//! entries, each stamped with the term in which a leader created it.
//!
//! - **Election (§5.2).** A follower that hears nothing from a leader for a randomized election
//!   timeout (uniform in `[election_timeout_min, election_timeout_max]`, drawn again at every
//!   reset, on the node's local clock) starts an election: it increments its term, votes for
//!   itself, persists both, and asks every server for a vote. A server grants at most one vote
//!   per term (first come, first served), and only to a candidate whose log is at least as
//!   up-to-date as its own: a higher last term, or the same last term and a last index at least
//!   as high (§5.4.1). A candidate with votes from a majority becomes leader. Any message with a
//!   higher term makes a server adopt that term and become a follower.
//! - **PreVote (thesis §9.6, `pre_vote`).** Before incrementing its term a server asks "would you
//!   vote for me in term + 1?"; servers answer without changing state, and say no if they heard
//!   from a leader within `election_timeout_min`. Only with a majority of yeses does the real
//!   election start, so a server that was partitioned away cannot disrupt the cluster by coming
//!   back with an inflated term.
//! - **CheckQuorum (thesis §6.2 and §9.6, `check_quorum`).** Every `election_timeout_min` the
//!   leader checks that a majority (itself included) answered it during that interval, and steps
//!   down otherwise, so a leader cut off in a minority stops accepting requests. With it (and
//!   with lease reads), a follower that heard from a leader within `election_timeout_min` ignores
//!   vote requests (thesis §4.2.3, disruptive servers).
//! - **Replication (§5.3).** The leader appends client commands to its log and sends
//!   AppendEntries carrying the entries after `prev_log_index`/`prev_log_term`. A follower accepts
//!   only if its log has an entry at `prev_log_index` with `prev_log_term` (the consistency
//!   check); it then deletes the first conflicting entry and everything after it, and appends the
//!   new entries, never truncating on entries it already has. On a rejection the follower reports
//!   the conflicting term and the first index it holds for that term (or its last index + 1), so
//!   the leader skips a whole term per round trip (fast back-up, §5.3 end). Per follower the
//!   leader probes (one AppendEntries at a time) until an append succeeds, then streams batches
//!   of at most `max_entries_per_append` entries with at most 8 batches in flight. Heartbeats
//!   (empty AppendEntries) go out every `heartbeat_interval`.
//! - **Commitment (§5.4.2).** The leader marks index N committed when a majority's match index is
//!   at least N **and the entry at N is of its current term**; earlier entries are committed
//!   indirectly (Figure 8 shows why counting replicas of an old-term entry is unsafe). A new
//!   leader appends a no-op entry of its term at once so that it can commit, and learns its
//!   commit index, promptly. Followers learn the commit index from `leader_commit`.
//! - **Persistence (Figure 2).** `currentTerm`, `votedFor` and the log are written to the disk and
//!   synced before the server answers anything that depends on them (a vote, an append reply, a
//!   client reply); a handler never returns with unsynced writes. The commit index and the state
//!   machine are volatile and rebuilt from the snapshot and the log after a restart.
//! - **Log compaction (§7).** When `snapshot_threshold_entries` applied entries follow the last
//!   snapshot, a server snapshots its state machine (data and client sessions) at its applied
//!   index and drops the log prefix. A leader whose follower needs a dropped entry sends
//!   InstallSnapshot (in one message: snapshots here are small); the follower keeps the log
//!   suffix that follows the snapshot if it matches, else discards its log.
//! - **Client sessions (thesis §6.3).** Commands carry (client node, request id); the key-value
//!   state machine's sessions execute each at most once (see `replicated`). A leader answers a retry of a command
//!   it already applied from the session table, and does not append a second copy of a command
//!   it has pending.
//! - **Reads (thesis §6.4).** `read_mode = "read-index"` (default): the leader records its commit
//!   index as the read index (after committing an entry of its term), confirms it is still
//!   leader by a round of heartbeats answered by a majority (rounds are numbered; a read needs a
//!   round started after it arrived; concurrent reads share rounds), waits until it has applied
//!   the read index, and answers from its state machine. `"lease"` (thesis §6.4.1): the leader
//!   skips the round while its lease holds: `lease_duration` of its *local* clock from the start
//!   of the last round a majority answered; safe only if clocks drift less than the margin
//!   between `lease_duration` and `election_timeout_min`, so a drifting clock breaks it (a
//!   scenario shows this). `"log"`: reads go through the log like writes.
//!
//! # Invariants
//!
//! Checked across nodes from observations by the `election-safety`, `log-matching`,
//! `leader-completeness`, `state-machine-safety` and `leader-append-only` checks (Figure 3), and
//! asserted by each node after every step ([`Node`]): commit index within the log, applied index
//! at most the commit index, snapshot at most the applied index, log terms non-decreasing and at
//! most the current term, a leader has voted for itself and holds an entry of its term, no
//! committed entry is ever truncated, and no write is left unsynced when a handler returns.
//!
//! # Planted bugs (`[raft] bugs = [...]`)
//!
//! - `commit-previous-term-by-counting`: the leader commits any entry a majority holds, whatever
//!   its term (the Figure 8 bug).
//! - `vote-without-log-check`: votes are granted without the up-to-date check of §5.4.1.
//! - `forget-vote-on-restart`: `votedFor` is never written to disk, so a restarted server can vote
//!   twice in one term.
//! - `truncate-on-stale-append`: a follower deletes every entry after the ones an AppendEntries
//!   carries, so a reordered, older AppendEntries truncates a longer matching log.
//! - `read-from-local-state`: the leader answers reads from its local state machine at once,
//!   without ReadIndex or a lease.

pub mod checks;
mod log;
pub mod narrate;
mod node;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::{Deserialize, Serialize, Serializer};

use crate::families::kv::{self, CommandId, Op};
use crate::families::replicated::Command;
use crate::family::{self, Bug, Configured, OptionError, ProtocolInfo, RoleContext};
use crate::process::NodeId;
use crate::scenario::Duration;

pub use log::Log;
pub use node::{Node, Role};

/// Planted bug: commit old-term entries by counting replicas (Figure 8).
pub const BUG_COMMIT_PREVIOUS_TERM: &str = "commit-previous-term-by-counting";
/// Planted bug: grant votes without the §5.4.1 log comparison.
pub const BUG_VOTE_WITHOUT_LOG_CHECK: &str = "vote-without-log-check";
/// Planted bug: `votedFor` is not persisted.
pub const BUG_FORGET_VOTE_ON_RESTART: &str = "forget-vote-on-restart";
/// Planted bug: truncate after the entries of any AppendEntries, even a stale one.
pub const BUG_TRUNCATE_ON_STALE_APPEND: &str = "truncate-on-stale-append";
/// Planted bug: serve reads from the leader's local state without confirming leadership.
pub const BUG_READ_FROM_LOCAL_STATE: &str = "read-from-local-state";

/// The registry entry: Raft, its safety checks and its commits for `no-decision`.
pub static FAMILY: family::Family = family::Family {
    name: "raft",
    summary: "Raft consensus (Ongaro's thesis) replicating the key-value store",
    protocols: &[PROTOCOL],
    workloads: &[],
    checks: &[
        checks::election_safety::CHECK,
        checks::log_matching::CHECK,
        checks::leader_completeness::CHECK,
        checks::leader_append_only::CHECK,
        checks::state_machine_safety::CHECK,
    ],
    decisions: Some(decisions),
    narrator: Some(narrate::narrator),
    fold: Some(checks::fold),
};

/// Every advance of the commit index, for the generic `no-decision` check.
fn decisions(record: &crate::sim::RunRecord) -> Vec<(u64, NodeId, String)> {
    let mut committed: Option<u64> = None;
    let mut out = Vec::new();
    for o in &record.observations {
        if let Some(&Observation::Commit { index }) = o.get()
            && committed.is_none_or(|c| index > c)
        {
            committed = Some(index);
            out.push((o.t_ns, o.node, format!("committed up to index {index}")));
        }
    }
    out
}

/// The registry entry.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: "raft",
    summary: "Raft consensus (PreVote, CheckQuorum, ReadIndex/lease reads, sessions, snapshots) serving a replicated key-value store",
    serves: &[kv::WORKLOAD_NAME],
    bugs: &[
        Bug {
            name: BUG_COMMIT_PREVIOUS_TERM,
            summary: "the leader commits entries of earlier terms by counting replicas (Figure 8)",
            caught_by: "state-machine-safety",
        },
        Bug {
            name: BUG_VOTE_WITHOUT_LOG_CHECK,
            summary: "votes are granted without checking that the candidate's log is up to date",
            caught_by: "leader-completeness",
        },
        Bug {
            name: BUG_FORGET_VOTE_ON_RESTART,
            summary: "votedFor is not persisted, so a restarted server votes twice in a term",
            caught_by: "election-safety",
        },
        Bug {
            name: BUG_TRUNCATE_ON_STALE_APPEND,
            summary: "a follower drops every entry after those of an AppendEntries, even a stale reordered one",
            caught_by: "leader-completeness",
        },
        Bug {
            name: BUG_READ_FROM_LOCAL_STATE,
            summary: "the leader answers reads from local state without ReadIndex or a lease",
            caught_by: "linearizability",
        },
    ],
    built_on: &[],
    configure,
};

/// How the leader serves `get` (thesis §6.4).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReadMode {
    /// ReadIndex: confirm leadership with a heartbeat round, then read at the commit index.
    ReadIndex,
    /// Leader lease on the local clock, falling back to ReadIndex when it has expired.
    Lease,
    /// Through the log, like a write.
    Log,
}

/// `[raft]` options. Durations are on each node's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Lower end of the randomized election timeout (default 150ms).
    #[serde(default = "default_election_timeout_min")]
    pub election_timeout_min: Duration,
    /// Upper end of the randomized election timeout (default 300ms).
    #[serde(default = "default_election_timeout_max")]
    pub election_timeout_max: Duration,
    /// Period of the leader's heartbeats (default 50ms); must be below `election_timeout_min`.
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: Duration,
    /// Most entries in one AppendEntries (default 64).
    #[serde(default = "default_max_entries_per_append")]
    pub max_entries_per_append: u32,
    /// Most entries the leader holds beyond its commit index; further writes are refused with
    /// `overloaded`, answered as unknown outcomes (`info`: an earlier copy of a retried request
    /// may still commit) (default 1024).
    #[serde(default = "default_max_uncommitted_entries")]
    pub max_uncommitted_entries: u32,
    /// Most reads waiting for a ReadIndex round; further reads fail with `overloaded` (default
    /// 1024).
    #[serde(default = "default_max_pending_reads")]
    pub max_pending_reads: u32,
    /// Take a snapshot when this many applied entries follow the last one (default 1000).
    #[serde(default = "default_snapshot_threshold_entries")]
    pub snapshot_threshold_entries: u32,
    /// Outcomes remembered per client for exactly-once execution (default 256).
    #[serde(default = "default_session_limit")]
    pub session_limit: u32,
    /// PreVote (thesis §9.6; default true).
    #[serde(default = "crate::scenario::yes")]
    pub pre_vote: bool,
    /// CheckQuorum (thesis §6.2, §9.6; default true).
    #[serde(default = "crate::scenario::yes")]
    pub check_quorum: bool,
    /// `"read-index"` (default), `"lease"` or `"log"`.
    #[serde(default = "default_read_mode")]
    pub read_mode: ReadMode,
    /// Lease length for `read_mode = "lease"`, measured on the leader's local clock from the
    /// start of the last heartbeat round a majority answered (default 100ms; must be below
    /// `election_timeout_min`).
    #[serde(default = "default_lease_duration")]
    pub lease_duration: Duration,
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
fn default_max_entries_per_append() -> u32 {
    64
}
fn default_max_uncommitted_entries() -> u32 {
    1024
}
fn default_max_pending_reads() -> u32 {
    1024
}
fn default_snapshot_threshold_entries() -> u32 {
    1000
}
fn default_session_limit() -> u32 {
    kv::DEFAULT_SESSION_LIMIT
}
fn default_read_mode() -> ReadMode {
    ReadMode::ReadIndex
}
fn default_lease_duration() -> Duration {
    Duration::from_millis(100)
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("the empty [raft] table deserializes")
    }
}

impl Config {
    /// True if the planted bug `name` is switched on.
    pub fn bug(&self, name: &str) -> bool {
        self.bugs.iter().any(|b| b == name)
    }
}

/// One log entry: the term of the leader that created it, and what it carries. `C` is the
/// replicated state machine's command type (the key-value [`Op`] by default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C = Op> {
    /// The term in which a leader created it.
    pub term: u64,
    /// Its payload.
    pub payload: Payload<C>,
}

/// What an entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Payload<C = Op> {
    /// The no-op a new leader appends (§5.4.2, thesis §6.4).
    Noop,
    /// A client command, shared (not copied) by the log, the AppendEntries that carry it to
    /// each follower and the state machine; serialized as the command itself.
    Command(Arc<Command<C>>),
}

impl<C> Entry<C> {
    /// The entry as an observation reference: term and command identity.
    pub fn reference(&self) -> EntryRef {
        EntryRef {
            term: self.term,
            cmd: match &self.payload {
                Payload::Noop => None,
                Payload::Command(c) => Some(c.id()),
            },
        }
    }
}

/// An entry as observations name it: its term and its command's identity (`None`: the no-op).
/// Serializes as `{"term":3,"cmd":"5#12"}`, or `"cmd":"noop"`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct EntryRef {
    /// The entry's term.
    pub term: u64,
    /// The command, `None` for a no-op.
    #[serde(serialize_with = "serialize_cmd")]
    pub cmd: Option<CommandId>,
}

fn serialize_cmd<S: Serializer>(cmd: &Option<CommandId>, s: S) -> Result<S::Ok, S::Error> {
    match cmd {
        Some(c) => c.serialize(s),
        None => s.serialize_str("noop"),
    }
}

impl std::fmt::Display for EntryRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cmd {
            Some(c) => write!(f, "{c} (term {})", self.term),
            None => write!(f, "no-op (term {})", self.term),
        }
    }
}

/// Peer messages. The sender is the message's `from`. `C` is the replicated state machine's
/// command type, as in [`Entry`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message<C = Op> {
    /// RequestVote (§5.2), or a PreVote request (`pre_vote`, for `term` = the sender's term + 1).
    RequestVote {
        /// The candidate's term (for a PreVote: the term it would campaign in).
        term: u64,
        /// Index of the candidate's last log entry (§5.4.1).
        last_log_index: u64,
        /// Term of the candidate's last log entry (§5.4.1).
        last_log_term: u64,
        /// True for a PreVote request (thesis §9.6): no state changes on either side.
        pre_vote: bool,
    },
    /// The answer to a RequestVote.
    Vote {
        /// The voter's current term (or the PreVote term it answers).
        term: u64,
        /// True if the vote (or pre-vote) was granted.
        granted: bool,
        /// True if this answers a PreVote request.
        pre_vote: bool,
    },
    /// AppendEntries (§5.3); `round` numbers the leader's heartbeat rounds for ReadIndex.
    AppendEntries {
        /// The leader's term.
        term: u64,
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Term of that entry (the consistency check).
        prev_log_term: u64,
        /// Entries to store (empty for a heartbeat), at most `max_entries_per_append`.
        entries: Vec<Entry<C>>,
        /// The leader's commit index.
        leader_commit: u64,
        /// The leader's heartbeat round (ReadIndex, thesis §6.4).
        round: u64,
    },
    /// The answer to AppendEntries. On success `match_index` is the last index known to match
    /// the leader; on a rejection `conflict_index`/`conflict_term` guide the back-up.
    AppendReply {
        /// The follower's current term.
        term: u64,
        /// True if the consistency check passed and the entries are stored.
        success: bool,
        /// On success: the last index known to match the leader's log.
        match_index: u64,
        /// On a rejection: where the leader should back up to (fast back-up, §5.3).
        conflict_index: u64,
        /// On a rejection: the term of the follower's conflicting entry, if any.
        conflict_term: Option<u64>,
        /// The round of the AppendEntries answered.
        round: u64,
    },
    /// InstallSnapshot (§7), in one message; `data` is the state machine's snapshot text.
    InstallSnapshot {
        /// The leader's term.
        term: u64,
        /// Last index the snapshot covers.
        last_index: u64,
        /// Term of that entry.
        last_term: u64,
        /// The state machine's snapshot text (`Sessions::to_snapshot`).
        data: String,
        /// The leader's heartbeat round.
        round: u64,
    },
    /// The answer to InstallSnapshot: the receiver's log now matches up to `last_index`.
    SnapshotReply {
        /// The follower's current term.
        term: u64,
        /// Last index the follower now matches.
        last_index: u64,
        /// The round of the InstallSnapshot answered.
        round: u64,
    },
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Check whether the election deadline has passed.
    Election,
    /// Leader of `term`: send heartbeats.
    Heartbeat {
        /// The term the leader set it in (stale after a term change).
        term: u64,
    },
    /// Leader of `term`: did a majority answer during the last interval?
    CheckQuorum {
        /// The term the leader set it in (stale after a term change).
        term: u64,
    },
}

/// Raft facts for the checkers (besides `CommonObservation::Role` on every role or term change).
/// Every fact describes durable state: it is emitted in the step that syncs it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum Observation {
    /// `currentTerm` and `votedFor` changed (and were persisted, except for the vote under
    /// `forget-vote-on-restart`).
    HardState {
        /// currentTerm.
        term: u64,
        /// votedFor in that term.
        voted_for: Option<NodeId>,
    },
    /// Entries were appended at `index`, `index + 1`, ...
    Append {
        /// Index of the first appended entry.
        index: u64,
        /// The entries, in order.
        entries: Vec<EntryRef>,
    },
    /// Every entry from `index` to `last` was deleted.
    Truncate {
        /// First deleted index.
        index: u64,
        /// Last deleted index.
        last: u64,
    },
    /// The leader advanced its commit index to `index`.
    Commit {
        /// The new commit index.
        index: u64,
    },
    /// Entries `index`, `index + 1`, ... were applied to the state machine, in order.
    Apply {
        /// Index of the first applied entry.
        index: u64,
        /// The entries, in order.
        entries: Vec<EntryRef>,
    },
    /// The node snapshotted its state machine at `index` (term `term`) and dropped the log
    /// prefix.
    SnapshotTaken {
        /// Last index the snapshot covers.
        index: u64,
        /// Term of that entry.
        term: u64,
    },
    /// The node installed a snapshot from `leader` ending at `index` (term `term`); its state
    /// machine now reflects every entry up to `index`.
    SnapshotInstalled {
        /// Last index the snapshot covers.
        index: u64,
        /// Term of that entry.
        term: u64,
        /// The leader that sent it.
        leader: NodeId,
    },
    /// The node booted from its disk with this state.
    Restored {
        /// currentTerm on disk.
        term: u64,
        /// votedFor on disk.
        voted_for: Option<NodeId>,
        /// Last index covered by the snapshot on disk (0: none).
        snapshot_index: u64,
        /// Term of that entry.
        snapshot_term: u64,
        /// Last index in the log on disk.
        last_index: u64,
        /// Term of that entry.
        last_term: u64,
    },
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    family::configure(ctx, validate, |setup, c: &Config| {
        node::spawn(setup, c.clone())
    })
}

/// Every problem with `[raft]` options `c` (none: valid); also the Raft part of the lock
/// family's `coordination` options.
pub(crate) fn validate(c: &Config, _: &RoleContext<'_>) -> Vec<OptionError> {
    let mut errors = Vec::new();
    let err = |key: &str, message: String| OptionError::at(key, message);
    if c.election_timeout_min.as_nanos() == 0 {
        errors.push(err(
            "election_timeout_min",
            "expected a positive duration".into(),
        ));
    }
    if c.election_timeout_max < c.election_timeout_min {
        errors.push(err(
            "election_timeout_max",
            format!(
                "expected at least election_timeout_min ({})",
                c.election_timeout_min
            ),
        ));
    }
    // Compared with election_timeout_min only when that is valid (else its own error says so).
    let min_ok = c.election_timeout_min.as_nanos() > 0;
    if c.heartbeat_interval.as_nanos() == 0
        || (min_ok && c.heartbeat_interval >= c.election_timeout_min)
    {
        errors.push(err(
            "heartbeat_interval",
            format!(
                "expected a positive duration below election_timeout_min ({})",
                c.election_timeout_min
            ),
        ));
    }
    let counts: [(&'static str, u32, u32); 5] = [
        ("max_entries_per_append", c.max_entries_per_append, 100_000),
        (
            "max_uncommitted_entries",
            c.max_uncommitted_entries,
            1_000_000,
        ),
        ("max_pending_reads", c.max_pending_reads, 1_000_000),
        (
            "snapshot_threshold_entries",
            c.snapshot_threshold_entries,
            10_000_000,
        ),
        ("session_limit", c.session_limit, 1_000_000),
    ];
    for (key, value, max) in counts {
        if !(1..=max).contains(&value) {
            errors.push(err(
                key,
                format!("expected between 1 and {max}, found {value}"),
            ));
        }
    }
    if c.read_mode == ReadMode::Lease
        && (c.lease_duration.as_nanos() == 0
            || (min_ok && c.lease_duration >= c.election_timeout_min))
    {
        errors.push(err(
            "lease_duration",
            format!(
                "expected a positive duration below election_timeout_min ({}): a follower may vote for a new leader after that long",
                c.election_timeout_min
            ),
        ));
    }
    errors.extend(kv::validate_state_machine(&c.state_machine));
    errors.extend(family::check_bugs(&c.bugs, PROTOCOL.bugs, PROTOCOL.name));
    errors
}
