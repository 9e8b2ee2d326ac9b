//! The replicated state machine that consensus families (Raft, Multi-Paxos) order commands for,
//! and the client sessions that make each command execute once.
//!
//! A consensus protocol decides the order of [`Command`]s and feeds them, in that order, to
//! [`Sessions::apply`] on every replica; [`Sessions`] deduplicates retries by (client, request id)
//! and runs the rest on the wrapped [`StateMachine`]. The protocol knows nothing of what the
//! machine does: the key-value store ([`crate::families::kv::KvMachine`]) is one machine, and a
//! later family (a lease lock, an ephemeral-node store, a service registry) brings its own by
//! implementing [`StateMachine`], without touching the protocols.
//!
//! This module depends on no family: the protocols and the machines both build on it.
//!
//! Exactly-once execution (Raft thesis §6.3, "Implementing linearizable semantics"): a client
//! retries an unanswered request on other servers with the same request id, so the same command
//! can reach the log twice. Each replica remembers, per client node, the outcome of the most
//! recent `session_limit` request ids it executed. Applying a command whose (client, id) is in
//! that table does not execute it again: it returns the recorded outcome. Because a client runs
//! several requests at once and they complete in any order, the table holds a set of ids, not
//! just the last serial number. When the table is full the smallest id is evicted and remembered
//! as the session's `forgotten_through` mark; a later command with an id at or below the mark
//! that is not in the table may or may not have run before, so it is not executed and is
//! reported [`Applied::Forgotten`] (the client records `info`): never a guess, never a second
//! execution. Sessions are part of the replicated state, so they are identical on every replica
//! at the same log position and travel in snapshots.
//!
//! Snapshots are JSON text (what Raft's InstallSnapshot and its snapshot file carry): the
//! machine's own fields, then `"sessions"`. Text rather than bytes keeps every shipped trace
//! unchanged since the store was written this way before the machine became pluggable.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize, Serializer};

use crate::process::{Context, Message, NodeId};

/// A deterministic state machine replicated by consensus.
///
/// Contract (state machine safety rests on it):
/// - [`StateMachine::apply`] is a pure function of the current state and the command: the same
///   commands applied in the same order to equal states give equal states and equal outcomes on
///   every replica. No time, randomness, IO, global state or `HashMap` iteration order may enter
///   it; the node, its clock and its disk are not in reach.
/// - [`StateMachine::read`] answers a command for which [`StateMachine::is_read`] is true from the
///   state without changing it, with the outcome `apply` would give at the same state; the
///   protocol may then serve it without a log entry (ReadIndex, lease reads).
/// - The machine's `Serialize`/`Deserialize` round-trip its whole state (it is the snapshot), as
///   a struct with named fields (the snapshot adds a `sessions` field next to them, so a machine
///   may not have a field of that name).
pub trait StateMachine:
    Clone + fmt::Debug + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// What the log carries for one client request (without the client and request id).
    type Command: Clone
        + fmt::Debug
        + PartialEq
        + Eq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync
        + 'static;
    /// What applying or reading a command answers the client.
    type Outcome: Clone + fmt::Debug + PartialEq + Eq + Serialize + DeserializeOwned + Send + Sync;

    /// Executes `command` (deterministically, see the trait docs) and returns its outcome.
    fn apply(&mut self, command: &Self::Command) -> Self::Outcome;

    /// True if `command` only reads: it may be answered by [`StateMachine::read`] outside the log.
    fn is_read(command: &Self::Command) -> bool;

    /// The outcome of the read-only `command` at the current state (called only when
    /// [`StateMachine::is_read`] holds).
    fn read(&self, command: &Self::Command) -> Self::Outcome;
}

/// A replicated machine's client vocabulary: how a server replicating it (a Raft or
/// Multi-Paxos node) reads its clients' requests and answers them. The protocol handles every
/// request the same way (redirect when not the leader, propose, answer when applied, serve
/// reads by ReadIndex); only the wire format is the machine's. The key-value machines speak the
/// key-value clients' vocabulary through [`crate::families::kv::ServesKvClients`]; a machine
/// with its own clients (the lock family's coordination service) implements this directly.
pub trait Served: StateMachine {
    /// A client request as it arrives.
    type Request;

    /// The client request inside `message`, or `message` back if it is not one (the server's
    /// [`crate::process::Process::on_other`] then leaves it unhandled).
    fn parse_request(message: Message) -> Result<Self::Request, Message>;

    /// The request's id (unique per client node, kept across retries) and the machine's command
    /// for it, `None` if this machine does not support the operation (answered
    /// [`Answer::Unsupported`], certainly not executed).
    fn split_request(request: Self::Request) -> (u64, Option<Self::Command>);

    /// Sends `answer` to `client` as the reply to its request `id`.
    fn send_reply(ctx: &mut Context<'_>, client: NodeId, id: u64, answer: Answer<Self::Outcome>);
}

/// A server's answer to a client request, in any machine's vocabulary ([`Served::send_reply`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer<O> {
    /// The command ran (or was read) with this outcome.
    Done(O),
    /// This server is not the leader; `leader` is a hint. Not executed here.
    Redirect(Option<NodeId>),
    /// Refused, and certainly never executed anywhere (not for a refusal that only speaks for
    /// this server: a retried request may have been proposed elsewhere before).
    Fail(String),
    /// The server does not know whether the command ran (a session forgot it; an overloaded
    /// leader refused a request an earlier copy of which may still run); the client records
    /// `info`.
    Unknown(String),
    /// The machine does not support the operation; certainly not executed.
    Unsupported,
}

impl<O> From<Applied<O>> for Answer<O> {
    fn from(applied: Applied<O>) -> Answer<O> {
        match applied {
            Applied::Executed(o) | Applied::Duplicate(o) => Answer::Done(o),
            Applied::Forgotten { error } => Answer::Unknown(error),
        }
    }
}

/// A client command as a consensus log carries it: which client asked, its request id (the same
/// across retries), and the machine's command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command<C> {
    /// The client node that sent the request.
    pub client: NodeId,
    /// The client's request id (unique per client node, kept across retries).
    pub request: u64,
    /// The state machine's command.
    pub op: C,
}

impl<C> Command<C> {
    /// The command's identity: (client, request id).
    pub fn id(&self) -> CommandId {
        CommandId {
            client: self.client,
            request: self.request,
        }
    }
}

/// The identity of a client command: (client node, request id). Serializes as `"<client>#<id>"`
/// with the client's numeric node id, e.g. `"5#12"`, in human-readable formats (JSON), and as
/// the pair `(client, request)` in binary ones (the trace's records).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId {
    /// The client node.
    pub client: NodeId,
    /// Its request id.
    pub request: u64,
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.client.0, self.request)
    }
}

impl Serialize for CommandId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if !serializer.is_human_readable() {
            // Binary forms (the trace's records): the pair, without building text.
            return (self.client.0, self.request).serialize(serializer);
        }
        // The Display text, built without the formatting machinery: observations name
        // thousands of commands per simulated second.
        let mut text = [0u8; 41];
        let mut client_buf = itoa::Buffer::new();
        let client = client_buf.format(self.client.0).as_bytes();
        let mut request_buf = itoa::Buffer::new();
        let request = request_buf.format(self.request).as_bytes();
        let len = client.len() + 1 + request.len();
        text[..client.len()].copy_from_slice(client);
        text[client.len()] = b'#';
        text[client.len() + 1..len].copy_from_slice(request);
        serializer.serialize_str(std::str::from_utf8(&text[..len]).expect("ASCII digits"))
    }
}

/// What [`Sessions::apply`] did with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied<O> {
    /// It ran now, with this outcome (which may still be a failure, e.g. a `cas` mismatch).
    Executed(O),
    /// It had already run: its recorded outcome, and nothing changed.
    Duplicate(O),
    /// Its id is older than the session remembers: not executed, its fate unknown; `error`
    /// says why.
    Forgotten {
        /// Why the fate is unknown.
        error: String,
    },
}

/// One client's session: the outcomes of its most recent requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "O: Serialize + DeserializeOwned")]
struct Session<O> {
    /// Outcome of each remembered request id.
    results: BTreeMap<u64, O>,
    /// Every id at or below this was evicted or never seen before an eviction: unknown.
    forgotten_through: u64,
}

impl<O> Default for Session<O> {
    fn default() -> Self {
        Session {
            results: BTreeMap::new(),
            forgotten_through: 0,
        }
    }
}

/// A state machine with client sessions: the replicated state of a consensus family. See the
/// module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "M: StateMachine")]
pub struct Sessions<M: StateMachine> {
    #[serde(flatten)]
    machine: M,
    sessions: BTreeMap<NodeId, Session<M::Outcome>>,
    #[serde(skip)]
    session_limit: u32,
}

impl<M: StateMachine> Sessions<M> {
    /// An empty machine remembering `session_limit` (at least 1) outcomes per client.
    pub fn new(session_limit: u32) -> Sessions<M> {
        Sessions {
            machine: M::default(),
            sessions: BTreeMap::new(),
            session_limit: session_limit.max(1),
        }
    }

    /// The number of outcomes remembered per client.
    pub fn session_limit(&self) -> u32 {
        self.session_limit
    }

    /// The wrapped state machine.
    pub fn machine(&self) -> &M {
        &self.machine
    }

    /// The recorded outcome of `id` if this replica has executed it and still remembers it: a
    /// server may answer a retry with it at once (thesis §6.3) instead of proposing it again.
    pub fn cached(&self, id: CommandId) -> Option<&M::Outcome> {
        self.sessions.get(&id.client)?.results.get(&id.request)
    }

    /// Applies a command in log order: executes it at most once per (client, request id).
    /// Deterministic.
    pub fn apply(&mut self, command: &Command<M::Command>) -> Applied<M::Outcome> {
        let limit = self.session_limit as usize;
        let session = self.sessions.entry(command.client).or_default();
        if let Some(outcome) = session.results.get(&command.request) {
            return Applied::Duplicate(outcome.clone());
        }
        if command.request <= session.forgotten_through {
            return Applied::Forgotten {
                error: format!(
                    "session expired: request {} is older than the {} remembered per client",
                    command.request, limit
                ),
            };
        }
        let outcome = self.machine.apply(&command.op);
        session.results.insert(command.request, outcome.clone());
        while session.results.len() > limit {
            let (oldest, _) = session.results.pop_first().expect("non-empty");
            session.forgotten_through = session.forgotten_through.max(oldest);
        }
        Applied::Executed(outcome)
    }

    /// Answers a retry from the session (Ongaro's thesis §6.3): if `command` was already
    /// executed and its outcome is remembered, replies it to the client and returns true; the
    /// command must not run again.
    pub fn reply_if_cached(&self, ctx: &mut Context<'_>, command: &Command<M::Command>) -> bool
    where
        M: Served,
    {
        let Some(outcome) = self.cached(command.id()) else {
            return false;
        };
        M::send_reply(
            ctx,
            command.client,
            command.request,
            Answer::Done(outcome.clone()),
        );
        true
    }

    /// Answers the read-only `command` (see [`StateMachine::read`]); sessions are not touched:
    /// a read has no effect to deduplicate.
    pub fn read(&self, command: &M::Command) -> M::Outcome {
        self.machine.read(command)
    }

    /// The machine and its sessions as snapshot text (JSON).
    pub fn to_snapshot(&self) -> String {
        serde_json::to_string(self).expect("the state machine serializes")
    }

    /// Rebuilds from [`Sessions::to_snapshot`] text, remembering `session_limit` outcomes per
    /// client. Errors: the text is not such a snapshot.
    pub fn from_snapshot(text: &str, session_limit: u32) -> Result<Sessions<M>, String> {
        let mut back: Sessions<M> =
            serde_json::from_str(text).map_err(|e| format!("bad state machine snapshot: {e}"))?;
        back.session_limit = session_limit.max(1);
        Ok(back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A machine that sums numbers: enough to test sessions apart from any family.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    struct Sum {
        total: u64,
    }

    impl StateMachine for Sum {
        type Command = Option<u64>; // None: read the total
        type Outcome = u64;
        fn apply(&mut self, command: &Option<u64>) -> u64 {
            self.total += command.unwrap_or(0);
            self.total
        }
        fn is_read(command: &Option<u64>) -> bool {
            command.is_none()
        }
        fn read(&self, _: &Option<u64>) -> u64 {
            self.total
        }
    }

    fn cmd(client: u32, request: u64, op: Option<u64>) -> Command<Option<u64>> {
        Command {
            client: NodeId(client),
            request,
            op,
        }
    }

    #[test]
    fn sessions_run_a_retried_command_once_for_any_machine() {
        let mut s: Sessions<Sum> = Sessions::new(8);
        assert_eq!(s.apply(&cmd(5, 1, Some(3))), Applied::Executed(3));
        assert_eq!(s.apply(&cmd(5, 1, Some(3))), Applied::Duplicate(3));
        assert_eq!(s.machine().total, 3, "executed once");
        assert_eq!(s.cached(cmd(5, 1, None).id()), Some(&3));
        assert_eq!(s.read(&None), 3);
    }

    #[test]
    fn session_tables_are_bounded_and_forgotten_ids_never_run() {
        let mut s: Sessions<Sum> = Sessions::new(2);
        for id in [2, 1, 3] {
            assert!(matches!(
                s.apply(&cmd(5, id, Some(1))),
                Applied::Executed(_)
            ));
        }
        assert!(matches!(
            s.apply(&cmd(5, 1, Some(100))),
            Applied::Forgotten { .. }
        ));
        assert_eq!(s.machine().total, 3);
        assert_eq!(s.sessions[&NodeId(5)].forgotten_through, 1);
    }

    #[test]
    fn snapshots_put_the_machine_fields_next_to_the_sessions() {
        let mut s: Sessions<Sum> = Sessions::new(4);
        s.apply(&cmd(5, 1, Some(7)));
        let text = s.to_snapshot();
        assert_eq!(
            text,
            r#"{"total":7,"sessions":{"5":{"results":{"1":7},"forgotten_through":0}}}"#
        );
        let mut back = Sessions::<Sum>::from_snapshot(&text, 4).unwrap();
        assert_eq!(back, s);
        assert!(matches!(
            back.apply(&cmd(5, 1, Some(7))),
            Applied::Duplicate(7)
        ));
        assert!(Sessions::<Sum>::from_snapshot("nope", 4).is_err());
    }
}
