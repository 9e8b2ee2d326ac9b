//! The client-server vocabulary shared by every protocol family: operations, requests, replies.
//!
//! Requests and replies travel through the simulated network like any message, so partitions
//! cut clients off too. A request id is unique per client node and stays the same when the client
//! retries the same operation on another server, so a server can execute it exactly once
//! (Raft thesis §6.3, client sessions: the session is the client node, the sequence number is the
//! id).

use serde::{Deserialize, Serialize};

use crate::history::{Function, Value};
use crate::process::NodeId;

/// Requests and replies between key-value (and broadcast) clients and servers: the payload
/// their client traffic travels in.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientMessage {
    /// A client's request to a server.
    Request(Request),
    /// A server's reply to a client.
    Reply(Reply),
}

/// A client operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum Op {
    /// Key-value read.
    Get {
        /// The key.
        key: String,
    },
    /// Key-value write.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Key-value append (concatenation; an absent key counts as empty).
    Append {
        /// The key.
        key: String,
        /// The suffix.
        value: String,
    },
    /// Key-value compare-and-set: set `to` if the current value equals `from` (absent never
    /// equals).
    Cas {
        /// The key.
        key: String,
        /// The expected current value.
        from: String,
        /// The new value.
        to: String,
    },
    /// Broadcast `value` to every node (Maelstrom's broadcast workload).
    Broadcast {
        /// The value.
        value: u64,
    },
    /// Read every broadcast value the node holds.
    Read,
}

impl Op {
    /// The history function of this operation.
    pub fn function(&self) -> Function {
        match self {
            Op::Get { .. } => Function::Get,
            Op::Put { .. } => Function::Put,
            Op::Append { .. } => Function::Append,
            Op::Cas { .. } => Function::Cas,
            Op::Broadcast { .. } => Function::Broadcast,
            Op::Read => Function::Read,
        }
    }

    /// The key this operation touches, if it is a key-value operation.
    pub fn key(&self) -> Option<&str> {
        match self {
            Op::Get { key }
            | Op::Put { key, .. }
            | Op::Append { key, .. }
            | Op::Cas { key, .. } => Some(key),
            Op::Broadcast { .. } | Op::Read => None,
        }
    }

    /// The history value of the invocation (Jepsen convention: reads invoke with `nil`).
    pub fn invoke_value(&self) -> Value {
        match self {
            Op::Get { .. } | Op::Read => Value::Nil,
            Op::Put { value, .. } | Op::Append { value, .. } => Value::Str(value.clone()),
            Op::Cas { from, to, .. } => {
                Value::List(vec![Value::Str(from.clone()), Value::Str(to.clone())])
            }
            Op::Broadcast { value } => Value::Int(*value as i64),
        }
    }

    /// True if the operation only reads state.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. } | Op::Read)
    }
}

/// A client request: an operation and the client's id for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Unique per client node; identical across retries of the same operation.
    pub id: u64,
    /// The operation.
    pub op: Op,
}

impl Request {
    /// The reply of a process that does not serve client requests.
    pub fn reply_unsupported(&self) -> Reply {
        Reply::unsupported(self.id)
    }

    /// The reply of a server that is not the leader: try `leader` (if it knows one, and not
    /// itself) or another server.
    pub fn reply_redirect(&self, leader: Option<NodeId>) -> Reply {
        Reply::redirect(self.id, leader)
    }
}

/// What an operation returned when it took effect.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OpValue {
    /// A write without a result.
    Done,
    /// The value read from a key (`None`: absent).
    Value(Option<String>),
    /// The broadcast values a node holds, ascending.
    Values(Vec<u64>),
}

impl OpValue {
    /// The history value of an `ok` completion of `op` with this result. Writes complete with
    /// the value they wrote (Jepsen convention).
    pub fn history_value(&self, op: &Op) -> Value {
        match self {
            OpValue::Done => op.invoke_value(),
            OpValue::Value(v) => v.clone().map_or(Value::Nil, Value::Str),
            OpValue::Values(vs) => Value::List(vs.iter().map(|v| Value::Int(*v as i64)).collect()),
        }
    }
}

/// How a server answered a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    /// The operation took effect, with this result.
    Ok {
        /// The result.
        value: OpValue,
    },
    /// The operation certainly did not take effect (e.g. a `cas` whose expected value did not
    /// match, or a request refused before it was proposed).
    Fail {
        /// Why.
        error: String,
    },
    /// This server cannot serve the request; it did not take effect. `leader` is a hint.
    Redirect {
        /// The leader, if this server knows it.
        leader: Option<NodeId>,
    },
    /// The server does not know whether the operation took effect (e.g. it lost leadership after
    /// proposing it). The client records `info`.
    Unknown {
        /// Why.
        error: String,
    },
}

/// A server's reply to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the request this answers.
    pub id: u64,
    /// The answer.
    pub outcome: Outcome,
}

impl Reply {
    /// The reply to request `id` of a process that does not serve its operation.
    pub fn unsupported(id: u64) -> Reply {
        Reply {
            id,
            outcome: Outcome::Fail {
                error: "unsupported".into(),
            },
        }
    }

    /// The reply to request `id` of a server that is not the leader: try `leader` (if it knows
    /// one, and not itself) or another server.
    pub fn redirect(id: u64, leader: Option<NodeId>) -> Reply {
        Reply {
            id,
            outcome: Outcome::Redirect { leader },
        }
    }
}

/// Client traffic helpers on a process's [`Context`](crate::process::Context): what key-value (and broadcast) servers and
/// clients send.
pub trait ClientContext {
    /// Sends `reply` to the client that made a request.
    fn reply(&mut self, client: NodeId, reply: Reply);
    /// Sends `request` to a server (clients only).
    fn request(&mut self, server: NodeId, request: Request);
}

impl ClientContext for crate::process::Context<'_> {
    fn reply(&mut self, client: NodeId, reply: Reply) {
        self.send(client, ClientMessage::Reply(reply));
    }

    fn request(&mut self, server: NodeId, request: Request) {
        self.send(server, ClientMessage::Request(request));
    }
}

/// The request inside `message`, or the message back if it is not a client request: for a
/// server's [`crate::process::Process::on_other`].
pub fn into_request(message: crate::process::Message) -> Result<Request, crate::process::Message> {
    match message.downcast::<ClientMessage>()? {
        ClientMessage::Request(request) => Ok(request),
        reply => Err(crate::process::Payload::new(reply)),
    }
}
