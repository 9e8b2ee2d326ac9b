//! The replicated key-value state machine with client sessions, shared by every consensus
//! protocol that serves the key-value workload (Raft now, Multi-Paxos next). It knows nothing of
//! logs, terms or ballots: a protocol decides the order of [`Command`]s and feeds them, in that
//! order, to [`KvStore::apply`] on every replica.
//!
//! State: a map from string keys to string values, plus one bounded session per client node.
//!
//! Operations (the [`Op`]s of the workload, Jepsen conventions as in `crate::history`):
//! - `get k`: the value of `k`, or absent;
//! - `put k v`: sets `k` to `v`;
//! - `append k v`: concatenates `v` to `k`'s value (absent counts as empty); a value may not grow
//!   beyond [`MAX_VALUE_BYTES`] (the append then fails, certainly not executed);
//! - `cas k from to`: sets `k` to `to` if its value equals `from` (absent never equals), else fails
//!   (certainly not executed).
//!
//! Exactly-once execution (Raft thesis §6.3, "Implementing linearizable semantics"): a client
//! retries an unanswered request on other servers with the same request id, so the same command
//! can reach the log twice. Each replica remembers, per client node, the outcome of the most
//! recent [`KvStore::session_limit`] request ids it executed. Applying a command whose
//! (client, id) is in that table does not execute it again: it returns the recorded outcome.
//! Because a client runs several requests at once (`[workload] concurrency`) and they complete in
//! any order, the table holds a set of ids, not just the last serial number. When the table is
//! full the smallest id is evicted and remembered as the session's `forgotten_through` mark; a
//! later command with an id at or below the mark that is not in the table may or may not have
//! run before, so it is not executed and is answered `Unknown` (the client records `info`):
//! never a guess, never a second execution. Sessions are part of the replicated state, so they
//! are identical on every replica at the same log position and travel in snapshots.
//!
//! Determinism: only `BTreeMap`s; applying the same commands in the same order gives the same
//! state and the same outcomes on every replica (what state machine safety relies on).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

use crate::families::kv::{ClientContext, Op, OpValue, Outcome, Reply};
use crate::process::{Context, NodeId};

/// Default number of request outcomes remembered per client (4x the largest `concurrency`).
pub const DEFAULT_SESSION_LIMIT: u32 = 256;

/// Largest value, in bytes, an `append` may produce.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A client command as a consensus log carries it: which client asked, its request id (the same
/// across retries), and the operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The client node that sent the request.
    pub client: NodeId,
    /// The client's request id (unique per client node, kept across retries).
    pub request: u64,
    /// The operation.
    pub op: Op,
}

impl Command {
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

/// How [`KvStore::apply`] treated a command.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Execution {
    /// It ran now (its outcome may still be a `Fail`, e.g. a `cas` mismatch).
    Executed,
    /// It had already run: the recorded outcome was returned and nothing changed.
    Duplicate,
    /// Its id is older than the session remembers: not executed, answered `Unknown`.
    Forgotten,
}

/// One client's session: the outcomes of its most recent requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    /// Outcome of each remembered request id.
    results: BTreeMap<u64, Outcome>,
    /// Every id at or below this was evicted or never seen before an eviction: unknown.
    forgotten_through: u64,
}

/// The key-value state machine with client sessions. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvStore {
    data: BTreeMap<String, String>,
    sessions: BTreeMap<NodeId, Session>,
    #[serde(skip)]
    session_limit: u32,
}

impl KvStore {
    /// An empty store remembering `session_limit` (at least 1) outcomes per client.
    pub fn new(session_limit: u32) -> KvStore {
        KvStore {
            data: BTreeMap::new(),
            sessions: BTreeMap::new(),
            session_limit: session_limit.max(1),
        }
    }

    /// The number of outcomes remembered per client.
    pub fn session_limit(&self) -> u32 {
        self.session_limit
    }

    /// The current value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.data.get(key).map(String::as_str)
    }

    /// Number of keys holding a value.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True if no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A read served outside the log (ReadIndex or lease reads): `Ok` with the value of `key`
    /// (absent: `null`). Reads do not touch sessions: they have no effect to deduplicate.
    pub fn read(&self, key: &str) -> Outcome {
        Outcome::Ok {
            value: OpValue::Value(self.data.get(key).cloned()),
        }
    }

    /// The recorded outcome of `(client, request)` if this replica has executed it and still
    /// remembers it: a server may answer a retry with it at once.
    pub fn cached(&self, id: CommandId) -> Option<&Outcome> {
        self.sessions.get(&id.client)?.results.get(&id.request)
    }

    /// Answers a retry from the session (Ongaro's thesis §6.3): if `command` was already
    /// executed and its outcome is remembered, replies it to the client and returns true; the
    /// command must not run again.
    pub fn reply_if_cached(&self, ctx: &mut Context<'_>, command: &Command) -> bool {
        let Some(outcome) = self.cached(command.id()) else {
            return false;
        };
        ctx.reply(
            command.client,
            Reply {
                id: command.request,
                outcome: outcome.clone(),
            },
        );
        true
    }

    /// Applies a command in log order: executes it at most once per (client, request id) and
    /// returns its outcome and how it was treated. Deterministic.
    pub fn apply(&mut self, command: &Command) -> (Outcome, Execution) {
        let limit = self.session_limit as usize;
        let session = self.sessions.entry(command.client).or_default();
        if let Some(outcome) = session.results.get(&command.request) {
            return (outcome.clone(), Execution::Duplicate);
        }
        if command.request <= session.forgotten_through {
            let outcome = Outcome::Unknown {
                error: format!(
                    "session expired: request {} is older than the {} remembered per client",
                    command.request, limit
                ),
            };
            return (outcome, Execution::Forgotten);
        }
        let outcome = execute(&mut self.data, &command.op);
        let session = self
            .sessions
            .get_mut(&command.client)
            .expect("inserted above");
        session.results.insert(command.request, outcome.clone());
        while session.results.len() > limit {
            let (oldest, _) = session.results.pop_first().expect("non-empty");
            session.forgotten_through = session.forgotten_through.max(oldest);
        }
        (outcome, Execution::Executed)
    }

    /// The store as snapshot text (JSON: data and sessions).
    pub fn to_snapshot(&self) -> String {
        serde_json::to_string(self).expect("the store serializes")
    }

    /// Rebuilds a store from [`KvStore::to_snapshot`] text. Errors: the text is not a snapshot.
    pub fn from_snapshot(text: &str, session_limit: u32) -> Result<KvStore, String> {
        let mut store: KvStore =
            serde_json::from_str(text).map_err(|e| format!("bad key-value snapshot: {e}"))?;
        store.session_limit = session_limit.max(1);
        Ok(store)
    }
}

/// Executes one operation on `data` (no sessions).
fn execute(data: &mut BTreeMap<String, String>, op: &Op) -> Outcome {
    let done = Outcome::Ok {
        value: OpValue::Done,
    };
    match op {
        Op::Get { key } => Outcome::Ok {
            value: OpValue::Value(data.get(key).cloned()),
        },
        Op::Put { key, value } => {
            // The key is copied only when it is new (most writes hit an existing key).
            match data.get_mut(key) {
                Some(current) => current.clone_from(value),
                None => {
                    data.insert(key.clone(), value.clone());
                }
            }
            done
        }
        Op::Append { key, value } => {
            let current = data.get(key).map_or(0, String::len);
            if current + value.len() > MAX_VALUE_BYTES {
                return Outcome::Fail {
                    error: format!("value too large: append would exceed {MAX_VALUE_BYTES} bytes"),
                };
            }
            match data.get_mut(key) {
                Some(current) => current.push_str(value),
                None => {
                    data.insert(key.clone(), value.clone());
                }
            }
            done
        }
        Op::Cas { key, from, to } => match data.get_mut(key) {
            Some(current) if current == from => {
                *current = to.clone();
                done
            }
            Some(current) => Outcome::Fail {
                error: format!("cas mismatch: expected {from:?}, found {current:?}"),
            },
            None => Outcome::Fail {
                error: format!("cas mismatch: expected {from:?}, key absent"),
            },
        },
        Op::Broadcast { .. } | Op::Read => Outcome::Fail {
            error: "unsupported: not a key-value operation".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(client: u32, request: u64, op: Op) -> Command {
        Command {
            client: NodeId(client),
            request,
            op,
        }
    }

    fn put(k: &str, v: &str) -> Op {
        Op::Put {
            key: k.into(),
            value: v.into(),
        }
    }

    fn ok_done() -> Outcome {
        Outcome::Ok {
            value: OpValue::Done,
        }
    }

    #[test]
    fn operations_follow_the_jepsen_conventions() {
        let mut kv = KvStore::new(8);
        let get = |kv: &mut KvStore, r| kv.apply(&cmd(9, r, Op::Get { key: "k".into() })).0;
        assert_eq!(
            get(&mut kv, 1),
            Outcome::Ok {
                value: OpValue::Value(None)
            }
        );
        let cas = Op::Cas {
            key: "k".into(),
            from: String::new(),
            to: "x".into(),
        };
        assert!(
            matches!(kv.apply(&cmd(9, 2, cas)).0, Outcome::Fail { .. }),
            "absent never equals"
        );
        let append = |v: &str| Op::Append {
            key: "k".into(),
            value: v.into(),
        };
        assert_eq!(kv.apply(&cmd(9, 3, append("a;"))).0, ok_done());
        assert_eq!(kv.apply(&cmd(9, 4, append("b;"))).0, ok_done());
        assert_eq!(kv.value("k"), Some("a;b;"));
        let cas = Op::Cas {
            key: "k".into(),
            from: "a;b;".into(),
            to: "z".into(),
        };
        assert_eq!(kv.apply(&cmd(9, 5, cas)).0, ok_done());
        assert_eq!(kv.apply(&cmd(9, 6, put("k", "w"))).0, ok_done());
        assert_eq!(
            get(&mut kv, 7),
            Outcome::Ok {
                value: OpValue::Value(Some("w".into()))
            }
        );
        assert_eq!(kv.read("k"), get(&mut kv, 8));
    }

    #[test]
    fn a_retried_command_runs_once_and_gets_the_first_outcome() {
        let mut kv = KvStore::new(8);
        let append = cmd(
            5,
            1,
            Op::Append {
                key: "k".into(),
                value: "x".into(),
            },
        );
        assert_eq!(kv.apply(&append), (ok_done(), Execution::Executed));
        assert_eq!(kv.apply(&append), (ok_done(), Execution::Duplicate));
        assert_eq!(kv.value("k"), Some("x"), "executed once");
        // A failed cas is remembered too: its retry must not run after the value changed.
        let cas = cmd(
            5,
            2,
            Op::Cas {
                key: "k".into(),
                from: "y".into(),
                to: "z".into(),
            },
        );
        let (first, _) = kv.apply(&cas);
        assert!(matches!(first, Outcome::Fail { .. }));
        kv.apply(&cmd(6, 1, put("k", "y")));
        assert_eq!(kv.apply(&cas), (first, Execution::Duplicate));
        assert_eq!(kv.value("k"), Some("y"));
        assert_eq!(
            kv.cached(CommandId {
                client: NodeId(5),
                request: 1
            }),
            Some(&ok_done())
        );
    }

    #[test]
    fn out_of_order_ids_are_deduplicated_and_the_table_is_bounded() {
        let mut kv = KvStore::new(3);
        for id in [3, 1, 2] {
            assert_eq!(kv.apply(&cmd(5, id, put("k", "v"))).1, Execution::Executed);
        }
        assert_eq!(kv.apply(&cmd(5, 1, put("k", "v"))).1, Execution::Duplicate);
        // A fourth id evicts the smallest (1): a retry of 1 is now of unknown fate.
        assert_eq!(kv.apply(&cmd(5, 7, put("k", "v"))).1, Execution::Executed);
        let (outcome, how) = kv.apply(&cmd(5, 1, put("k", "other")));
        assert_eq!(how, Execution::Forgotten);
        assert!(matches!(outcome, Outcome::Unknown { .. }));
        assert_eq!(kv.value("k"), Some("v"), "a forgotten id is never executed");
        // An id above the mark that was never seen still runs (concurrent requests).
        assert_eq!(kv.apply(&cmd(5, 4, put("k", "w"))).1, Execution::Executed);
        assert_eq!(kv.sessions[&NodeId(5)].results.len(), 3);
        assert_eq!(kv.sessions[&NodeId(5)].forgotten_through, 2);
    }

    #[test]
    fn appends_are_bounded() {
        let mut kv = KvStore::new(4);
        let big = "x".repeat(MAX_VALUE_BYTES);
        let append = |r, v: &str| {
            cmd(
                5,
                r,
                Op::Append {
                    key: "k".into(),
                    value: v.into(),
                },
            )
        };
        assert_eq!(kv.apply(&append(1, &big)).0, ok_done());
        assert!(matches!(kv.apply(&append(2, "y")).0, Outcome::Fail { .. }));
        assert_eq!(kv.value("k").map(str::len), Some(MAX_VALUE_BYTES));
    }

    #[test]
    fn snapshots_restore_data_and_sessions() {
        let mut kv = KvStore::new(4);
        kv.apply(&cmd(5, 1, put("a", "1")));
        kv.apply(&cmd(6, 9, put("b", "2")));
        let text = kv.to_snapshot();
        let back = KvStore::from_snapshot(&text, 4).unwrap();
        assert_eq!(back, kv);
        let mut back = back;
        assert_eq!(
            back.apply(&cmd(6, 9, put("b", "3"))).1,
            Execution::Duplicate,
            "sessions travel in the snapshot"
        );
        assert!(KvStore::from_snapshot("nope", 4).is_err());
    }

    #[test]
    fn command_ids_serialize_compactly() {
        let id = cmd(5, 12, Op::Get { key: "k".into() }).id();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"5#12\"");
    }
}
