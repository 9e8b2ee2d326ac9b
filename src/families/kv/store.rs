//! The key-value state machine ([`KvMachine`]), the one every shipped consensus scenario
//! replicates (`state_machine = "kv"`, the default), and the bridge that lets any state machine
//! serve the key-value clients' requests ([`ServesKvClients`]). It knows nothing of logs, terms
//! or ballots: a protocol decides the order of [`Command`]s and feeds them, in that order, to
//! [`KvStore::apply`] on every replica.
//!
//! State: a map from string keys to string values; [`KvStore`] adds one bounded session per
//! client node for exactly-once execution ([`crate::families::replicated`]).
//!
//! Operations (the [`Op`]s of the workload, Jepsen conventions as in `crate::history`):
//! - `get k`: the value of `k`, or absent (read-only: Raft serves it by ReadIndex or lease);
//! - `put k v`: sets `k` to `v`;
//! - `append k v`: concatenates `v` to `k`'s value (absent counts as empty); a value may not grow
//!   beyond [`MAX_VALUE_BYTES`] (the append then fails, certainly not executed);
//! - `cas k from to`: sets `k` to `to` if its value equals `from` (absent never equals), else fails
//!   (certainly not executed).
//!
//! Which machine a consensus family replicates is its `state_machine` option; the names it
//! accepts are [`STATE_MACHINES`], and [`with_state_machine`] turns a name into a type for the
//! family's node. A new machine served to key-value clients is one more entry there; the
//! protocols do not change.
//!
//! Determinism: only `BTreeMap`s; applying the same commands in the same order gives the same
//! state and the same outcomes on every replica (what state machine safety relies on).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::families::kv::{ClientContext, Op, OpValue, Outcome, Reply};
use crate::families::kv::{Request, into_request};
use crate::families::replicated::{Answer, Served, Sessions, StateMachine};
pub use crate::families::replicated::{Applied, CommandId};
use crate::family::NodeSetup;
use crate::process::{AnyProcess, Context};
use crate::process::{Message, NodeId};

/// Default number of request outcomes remembered per client (4x the largest `concurrency`).
pub const DEFAULT_SESSION_LIMIT: u32 = 256;

/// Largest value, in bytes, an `append` may produce.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// A key-value command as a consensus log carries it: client, request id and [`Op`].
pub type Command = crate::families::replicated::Command<Op>;

/// The key-value store with client sessions: what Raft and Multi-Paxos replicate under
/// `state_machine = "kv"`.
pub type KvStore = Sessions<KvMachine>;

/// The key-value state machine: string keys to string values. See the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMachine {
    data: BTreeMap<String, String>,
}

impl StateMachine for KvMachine {
    type Command = Op;
    type Outcome = Outcome;

    fn apply(&mut self, op: &Op) -> Outcome {
        execute(&mut self.data, op)
    }

    fn is_read(op: &Op) -> bool {
        matches!(op, Op::Get { .. })
    }

    fn read(&self, op: &Op) -> Outcome {
        let Op::Get { key } = op else {
            unreachable!("only a get is read-only")
        };
        Outcome::Ok {
            value: OpValue::Value(self.data.get(key).cloned()),
        }
    }
}

impl ServesKvClients for KvMachine {
    fn command(op: Op) -> Option<Op> {
        matches!(
            op,
            Op::Get { .. } | Op::Put { .. } | Op::Append { .. } | Op::Cas { .. }
        )
        .then_some(op)
    }

    fn outcome(outcome: Outcome) -> Outcome {
        outcome
    }
}

impl KvStore {
    /// The current value of `key`.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.machine().data.get(key).map(String::as_str)
    }

    /// Number of keys holding a value.
    pub fn len(&self) -> usize {
        self.machine().data.len()
    }

    /// True if no key holds a value.
    pub fn is_empty(&self) -> bool {
        self.machine().data.is_empty()
    }
}

/// A state machine that key-value clients can drive: their [`Op`]s become its commands and its
/// outcomes become their [`Outcome`]s. Raft and Multi-Paxos serve the key-value client vocabulary
/// ([`crate::families::kv::ClientMessage`]), so every machine they replicate implements this.
/// Both conversions are pure.
pub trait ServesKvClients: StateMachine {
    /// The machine's command for `op`, or `None` if the machine does not support it (the
    /// server answers `unsupported`).
    fn command(op: Op) -> Option<Self::Command>;

    /// The client's outcome for one of the machine's outcomes.
    fn outcome(outcome: Self::Outcome) -> Outcome;
}

/// Every machine served to key-value clients speaks their vocabulary
/// ([`crate::families::kv::ClientMessage`]).
impl<M: ServesKvClients> Served for M {
    type Request = Request;

    fn parse_request(message: Message) -> Result<Request, Message> {
        into_request(message)
    }

    fn split_request(request: Request) -> (u64, Option<M::Command>) {
        (request.id, M::command(request.op))
    }

    fn send_reply(ctx: &mut Context<'_>, client: NodeId, id: u64, answer: Answer<M::Outcome>) {
        let outcome = match answer {
            Answer::Done(o) => M::outcome(o),
            Answer::Redirect(leader) => Outcome::Redirect { leader },
            Answer::Fail(error) => Outcome::Fail { error },
            Answer::Unknown(error) => Outcome::Unknown { error },
            Answer::Unsupported => return ctx.reply(client, Reply::unsupported(id)),
        };
        ctx.reply(client, Reply { id, outcome });
    }
}

/// The `state_machine` names a consensus family serving key-value clients accepts.
pub const STATE_MACHINES: &[&str] = &["kv"];

/// Builds something for the state machine type a name stands for (a family's node, typically):
/// see [`with_state_machine`].
pub trait MachineVisitor {
    /// What is built.
    type Output;
    /// Builds it for machine `M`.
    fn visit<M: ServesKvClients>(self) -> Self::Output;
}

/// Calls `visitor` with the machine type named `name` (one of [`STATE_MACHINES`]); `None` for
/// an unknown name (validation rejects it first: [`validate_state_machine`]).
pub fn with_state_machine<V: MachineVisitor>(name: &str, visitor: V) -> Option<V::Output> {
    match name {
        "kv" => Some(visitor.visit::<KvMachine>()),
        _ => None,
    }
}

/// A consensus family's server, buildable for any machine served to key-value clients: what
/// [`build_replica`] builds.
pub trait Replica {
    /// The family's options.
    type Config;
    /// A server of the family replicating the machine `M`.
    fn build<M: Served>(setup: &NodeSetup, config: Self::Config) -> Box<dyn AnyProcess>;
}

/// `R`'s server for `setup`, replicating the machine named `name` (validated before by
/// [`validate_state_machine`]: an unknown name panics).
pub fn build_replica<R: Replica>(
    name: &str,
    setup: &NodeSetup,
    config: R::Config,
) -> Box<dyn AnyProcess> {
    struct Build<'a, R: Replica>(&'a NodeSetup, R::Config);
    impl<R: Replica> MachineVisitor for Build<'_, R> {
        type Output = Box<dyn AnyProcess>;
        fn visit<M: ServesKvClients>(self) -> Box<dyn AnyProcess> {
            R::build::<M>(self.0, self.1)
        }
    }
    with_state_machine(name, Build::<R>(setup, config))
        .unwrap_or_else(|| panic!("unknown state machine {name:?} passed validation"))
}

/// The default `state_machine` option: `"kv"`.
pub fn default_state_machine() -> String {
    "kv".into()
}

/// Checks a family's `state_machine` option: an unknown name is an error (at the options key
/// `state_machine`) listing the known ones.
pub fn validate_state_machine(name: &str) -> Option<crate::family::OptionError> {
    (!STATE_MACHINES.contains(&name)).then(|| {
        crate::family::OptionError::at(
            "state_machine",
            format!(
                "unknown state machine \"{name}\"; expected one of: {}",
                STATE_MACHINES.join(", ")
            ),
        )
    })
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
    use crate::process::NodeId;

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

    /// The outcome a client gets for applying `command`.
    fn run(kv: &mut KvStore, command: &Command) -> Outcome {
        answer(kv.apply(command))
    }

    /// The client's outcome for what the sessions did with a command.
    fn answer(applied: Applied<Outcome>) -> Outcome {
        match Answer::from(applied) {
            Answer::Done(outcome) => outcome,
            Answer::Unknown(error) => Outcome::Unknown { error },
            other => panic!("applying never answers {other:?}"),
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
        let get = |kv: &mut KvStore, r| run(kv, &cmd(9, r, Op::Get { key: "k".into() }));
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
            matches!(run(&mut kv, &cmd(9, 2, cas)), Outcome::Fail { .. }),
            "absent never equals"
        );
        let append = |v: &str| Op::Append {
            key: "k".into(),
            value: v.into(),
        };
        assert_eq!(run(&mut kv, &cmd(9, 3, append("a;"))), ok_done());
        assert_eq!(run(&mut kv, &cmd(9, 4, append("b;"))), ok_done());
        assert_eq!(kv.value("k"), Some("a;b;"));
        let cas = Op::Cas {
            key: "k".into(),
            from: "a;b;".into(),
            to: "z".into(),
        };
        assert_eq!(run(&mut kv, &cmd(9, 5, cas)), ok_done());
        assert_eq!(run(&mut kv, &cmd(9, 6, put("k", "w"))), ok_done());
        assert_eq!(
            get(&mut kv, 7),
            Outcome::Ok {
                value: OpValue::Value(Some("w".into()))
            }
        );
        assert_eq!(kv.read(&Op::Get { key: "k".into() }), get(&mut kv, 8));
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
        assert_eq!(kv.apply(&append), Applied::Executed(ok_done()));
        assert_eq!(kv.apply(&append), Applied::Duplicate(ok_done()));
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
        let first = run(&mut kv, &cas);
        assert!(matches!(first, Outcome::Fail { .. }));
        kv.apply(&cmd(6, 1, put("k", "y")));
        assert_eq!(kv.apply(&cas), Applied::Duplicate(first));
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
            assert!(matches!(
                kv.apply(&cmd(5, id, put("k", "v"))),
                Applied::Executed(_)
            ));
        }
        assert!(matches!(
            kv.apply(&cmd(5, 1, put("k", "v"))),
            Applied::Duplicate(_)
        ));
        // A fourth id evicts the smallest (1): a retry of 1 is now of unknown fate.
        assert!(matches!(
            kv.apply(&cmd(5, 7, put("k", "v"))),
            Applied::Executed(_)
        ));
        let applied = kv.apply(&cmd(5, 1, put("k", "other")));
        assert!(matches!(applied, Applied::Forgotten { .. }));
        assert!(matches!(answer(applied), Outcome::Unknown { .. }));
        assert_eq!(kv.value("k"), Some("v"), "a forgotten id is never executed");
        // An id above the mark that was never seen still runs (concurrent requests).
        assert!(matches!(
            kv.apply(&cmd(5, 4, put("k", "w"))),
            Applied::Executed(_)
        ));
        let forgotten = |request| {
            matches!(
                kv.clone().apply(&cmd(5, request, put("k", "x"))),
                Applied::Forgotten { .. }
            )
        };
        assert!(forgotten(2) && !forgotten(3), "ids 1 and 2 were evicted");
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
        assert_eq!(run(&mut kv, &append(1, &big)), ok_done());
        assert!(matches!(
            run(&mut kv, &append(2, "y")),
            Outcome::Fail { .. }
        ));
        assert_eq!(kv.value("k").map(str::len), Some(MAX_VALUE_BYTES));
    }

    #[test]
    fn snapshots_restore_data_and_sessions() {
        let mut kv = KvStore::new(4);
        kv.apply(&cmd(5, 1, put("a", "1")));
        kv.apply(&cmd(6, 9, put("b", "2")));
        let text = kv.to_snapshot();
        assert!(
            text.starts_with(r#"{"data":{"a":"1","b":"2"},"sessions":{"5":{"results":{"1":"#),
            "the snapshot text keeps the layout the traces were recorded with: {text}"
        );
        let back = KvStore::from_snapshot(&text, 4).unwrap();
        assert_eq!(back, kv);
        let mut back = back;
        assert_eq!(
            back.apply(&cmd(6, 9, put("b", "3"))),
            Applied::Duplicate(ok_done()),
            "sessions travel in the snapshot"
        );
        assert!(KvStore::from_snapshot("nope", 4).is_err());
    }

    #[test]
    fn command_ids_serialize_compactly() {
        let id = cmd(5, 12, Op::Get { key: "k".into() }).id();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"5#12\"");
    }

    #[test]
    fn every_listed_state_machine_builds_and_unknown_names_do_not() {
        struct Name;
        impl MachineVisitor for Name {
            type Output = &'static str;
            fn visit<M: ServesKvClients>(self) -> &'static str {
                std::any::type_name::<M>()
            }
        }
        for name in STATE_MACHINES {
            assert!(
                with_state_machine(name, Name).is_some(),
                "{name} is listed but not built"
            );
            assert!(validate_state_machine(name).is_none());
        }
        assert_eq!(
            with_state_machine("kv", Name),
            Some(std::any::type_name::<KvMachine>())
        );
        assert_eq!(with_state_machine("nope", Name), None);
        let error = validate_state_machine("nope").unwrap();
        assert_eq!(error.path, ["state_machine"]);
        assert!(error.message.contains("expected one of: kv"), "{error:?}");
    }
}
