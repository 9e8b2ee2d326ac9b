//! The `siblings` and `counter` workloads: clients of a `quorum-store` that the key-value
//! client cannot express.
//!
//! - `siblings` (for `resolution = "version-vectors"`): `get` a key (the history value is the
//!   list of sibling values, sorted) and `put` a unique value with the context of the client's
//!   last read of that key (Dynamo §4.4: a write names the versions it supersedes); a key never
//!   read is written blind.
//! - `counter` (for `resolution = "counter"`): `add` 1 to a key and `read` it (the history value
//!   is the count), as Jepsen's counter workload.
//!
//! Each client node runs one logical process at a time and sends every request to its current
//! server; a request not answered within `request_timeout` ends `info` and the client moves to
//! the next server with a fresh process id (Jepsen's convention after an indeterminate result).

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::server::{Config as ServerConfig, Resolution};
use super::{Answer, CausalContext, ClientMessage, PROTOCOL_NAME, QOp, Reply, Request};
use crate::family::{
    self, Configured, HistoryTraits, NodeSetup, OptionError, RoleContext, WorkloadInfo,
};
use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::{Duration, limits};

/// The `siblings` workload's name.
pub const SIBLINGS_WORKLOAD_NAME: &str = "siblings";
/// The `counter` workload's name.
pub const COUNTER_WORKLOAD_NAME: &str = "counter";

/// The `siblings` workload.
pub const SIBLINGS_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: SIBLINGS_WORKLOAD_NAME,
    summary: "get siblings and put unique values with the context read (quorum-store, version vectors)",
    history: HistoryTraits {
        model: None,
        availability: true,
        stale_reads: false,
    },
    bugs: &[],
    configure: |ctx| configure(ctx, Kind::Siblings),
};

/// The `counter` workload.
pub const COUNTER_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: COUNTER_WORKLOAD_NAME,
    summary: "add 1 to and read counters (quorum-store, PN-counter), as Jepsen's counter workload",
    history: HistoryTraits {
        model: None,
        availability: true,
        stale_reads: false,
    },
    bugs: &[],
    configure: |ctx| configure(ctx, Kind::Counter),
};

/// Which workload a [`QuorumClient`] runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// get / put with contexts.
    Siblings,
    /// add / read.
    Counter,
}

/// A `siblings` or `counter` client group's options.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Pause between one operation's end and the next invoke.
    #[serde(default = "default_think_time")]
    pub think_time: Duration,
    /// An unanswered operation ends `info` after this long.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Keys `k1`..`kN`.
    #[serde(default = "default_keys")]
    pub keys: u32,
    /// Share of operations that read (0..=1); the rest write (`put` or `add`).
    #[serde(default = "default_read_fraction")]
    pub read_fraction: f64,
    /// Clients start invoking at this time.
    #[serde(default)]
    pub start: Duration,
    /// Clients invoke nothing new after this time (default: the run's duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
}

fn default_think_time() -> Duration {
    Duration::from_millis(50)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_keys() -> u32 {
    3
}
fn default_read_fraction() -> f64 {
    0.5
}

fn configure(ctx: &RoleContext<'_>, kind: Kind) -> Result<Configured, Vec<OptionError>> {
    let options: Options = family::parse_options(ctx.options)?;
    if ctx.checking {
        let errors = validate(&options, ctx, kind);
        if !errors.is_empty() {
            return Err(errors);
        }
    }
    Ok(Configured {
        options: family::resolved_options(&options),
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            Box::new(QuorumClient::new(setup, kind, &options))
        }),
    })
}

/// The resolution this workload needs from its servers.
fn needed(kind: Kind) -> Resolution {
    match kind {
        Kind::Siblings => Resolution::VersionVectors,
        Kind::Counter => Resolution::Counter,
    }
}

fn validate(o: &Options, ctx: &RoleContext<'_>, kind: Kind) -> Vec<OptionError> {
    let mut errors = Vec::new();
    if ctx.talks_to.first().is_none_or(|p| p.name != PROTOCOL_NAME) {
        errors.push(OptionError::of_role(
            "talks_to",
            format!("expected a role running {PROTOCOL_NAME} first"),
        ));
    }
    // The servers must resolve conflicts the way this workload reads them.
    let group = ctx.scenario.clients.iter().find(|g| g.name == ctx.name);
    let first = group
        .and_then(|g| g.talks_to.first())
        .and_then(|name| ctx.scenario.cluster.roles.iter().find(|r| &r.name == name))
        .or_else(|| {
            ctx.scenario
                .cluster
                .roles
                .iter()
                .find(|r| r.protocol == PROTOCOL_NAME)
        });
    if let Some(role) = first.filter(|r| r.protocol == PROTOCOL_NAME) {
        let config: ServerConfig = crate::check::parse_or_default(&role.options);
        if config.resolution != needed(kind) {
            errors.push(OptionError::of_role(
                "talks_to",
                format!(
                    "this workload needs a {PROTOCOL_NAME} role with resolution = \"{}\"; role {} has \"{}\"",
                    needed(kind).name(),
                    role.name,
                    config.resolution.name()
                ),
            ));
        }
    }
    errors.extend(crate::check::zero_durations(&[
        ("think_time", o.think_time),
        ("request_timeout", o.request_timeout),
    ]));
    if !(1..=limits::MAX_KEYS).contains(&o.keys) {
        errors.push(OptionError::at(
            "keys",
            format!(
                "expected between 1 and {} (the limit), found {}",
                limits::MAX_KEYS,
                o.keys
            ),
        ));
    }
    if !(0.0..=1.0).contains(&o.read_fraction) {
        errors.push(OptionError::at(
            "read_fraction",
            format!("expected a fraction from 0 to 1, found {}", o.read_fraction),
        ));
    }
    let duration = ctx.scenario.duration;
    let stop = o.stop.unwrap_or(duration);
    if stop > duration {
        errors.push(OptionError::at(
            "stop",
            format!("expected at most the run's duration ({duration})"),
        ));
    }
    if o.start >= stop {
        errors.push(OptionError::at(
            "start",
            format!("expected a start before the workload stops ({stop})"),
        ));
    }
    errors
}

/// Client timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum ClientTimer {
    /// Invoke the next operation.
    Invoke,
    /// Request `request` timed out.
    Timeout {
        /// The request id.
        request: u64,
    },
}

#[derive(Clone, Debug)]
struct Pending {
    request: Request,
    timer: TimerId,
}

/// A `siblings` or `counter` client node.
#[derive(Debug)]
pub struct QuorumClient {
    kind: Kind,
    options: Options,
    index: u32,
    clients: u64,
    servers: Vec<NodeId>,
    server: NodeId,
    round: u64,
    next_id: u64,
    next_value: u64,
    pending: Option<Pending>,
    /// The context of this client's last read of each key.
    contexts: BTreeMap<String, CausalContext>,
    stop_ns: i64,
}

impl QuorumClient {
    /// A client for `setup`.
    pub fn new(setup: &NodeSetup, kind: Kind, options: &Options) -> QuorumClient {
        QuorumClient {
            kind,
            options: options.clone(),
            index: setup.client_index,
            clients: u64::from(setup.client_count.max(1)),
            servers: setup.servers.clone(),
            server: setup.home.unwrap_or(setup.servers[0]),
            round: 0,
            next_id: 0,
            next_value: 0,
            pending: None,
            contexts: BTreeMap::new(),
            stop_ns: options.stop.map_or(setup.end_ns, |s| s.as_nanos()) as i64,
        }
    }

    fn process(&self) -> u64 {
        self.round * self.clients + u64::from(self.index)
    }

    fn invoke(&mut self, ctx: &mut Context<'_>) {
        let key = format!("k{}", ctx.rng().gen_range(1..=self.options.keys));
        let read = ctx.rng().gen_bool(self.options.read_fraction);
        let op = match (self.kind, read) {
            (Kind::Siblings, true) => QOp::Get { key },
            (Kind::Siblings, false) => {
                self.next_value += 1;
                QOp::Put {
                    context: self.contexts.get(&key).cloned().unwrap_or_default(),
                    value: format!("c{}-{}", self.index + 1, self.next_value),
                    key,
                }
            }
            (Kind::Counter, true) => QOp::Read { key },
            (Kind::Counter, false) => QOp::Add { key, delta: 1 },
        };
        let (f, value) = match &op {
            QOp::Get { .. } | QOp::Read { .. } => (
                if self.kind == Kind::Counter {
                    Function::Read
                } else {
                    Function::Get
                },
                Value::Nil,
            ),
            QOp::Put { value, .. } => (Function::Put, Value::Str(value.clone())),
            QOp::Add { delta, .. } => (Function::Add, Value::Int(*delta)),
        };
        ctx.record(HistoryEvent::new(
            self.process(),
            EventType::Invoke,
            f,
            Some(op.key().to_string()),
            value,
        ));
        self.next_id += 1;
        let request = Request {
            id: self.next_id,
            op,
        };
        let timer = ctx.set_timer(
            self.options.request_timeout.to_std(),
            ClientTimer::Timeout {
                request: request.id,
            },
        );
        ctx.send(self.server, ClientMessage::Request(request.clone()));
        self.pending = Some(Pending { request, timer });
    }

    fn complete(&mut self, ctx: &mut Context<'_>, answer: &Answer) {
        let Some(p) = self.pending.take() else {
            return;
        };
        ctx.cancel_timer(p.timer);
        let op = &p.request.op;
        let (f, invoke_value) = match op {
            QOp::Get { .. } => (Function::Get, Value::Nil),
            QOp::Read { .. } => (Function::Read, Value::Nil),
            QOp::Put { value, .. } => (Function::Put, Value::Str(value.clone())),
            QOp::Add { delta, .. } => (Function::Add, Value::Int(*delta)),
        };
        let (kind, value, error) = match answer {
            Answer::Done => (EventType::Ok, invoke_value, None),
            Answer::Siblings { values, context } => {
                self.contexts.insert(op.key().to_string(), context.clone());
                let values = values.iter().cloned().map(Value::Str).collect();
                (EventType::Ok, Value::List(values), None)
            }
            Answer::Count { value } => (EventType::Ok, Value::Int(*value), None),
            Answer::Fail { error } => (EventType::Fail, invoke_value, Some(error.clone())),
            Answer::Unknown { error } => (EventType::Info, invoke_value, Some(error.clone())),
        };
        let mut event =
            HistoryEvent::new(self.process(), kind, f, Some(op.key().to_string()), value);
        event.error = error;
        ctx.record(event);
        if kind == EventType::Info {
            self.round += 1;
            let at = self
                .servers
                .iter()
                .position(|&s| s == self.server)
                .unwrap_or(0);
            self.server = self.servers[(at + 1) % self.servers.len()];
        }
        ctx.set_timer(self.options.think_time.to_std(), ClientTimer::Invoke);
    }
}

impl Process for QuorumClient {
    type Message = ClientMessage;
    type Timer = ClientTimer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        // A restarted client starts a fresh process: its earlier one may have an operation open.
        self.round = ctx
            .disk()
            .read("client/round")
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            .unwrap_or(0);
        ctx.disk()
            .write("client/round", (self.round + 1_000_000).to_string());
        ctx.disk().sync();
        let start = self.options.start.as_nanos() as i64;
        let jitter = ctx.rng().gen_range(0..=self.options.think_time.as_nanos());
        let delay = (start - ctx.local_time_ns()).max(0) as u64 + jitter;
        ctx.set_timer(std::time::Duration::from_nanos(delay), ClientTimer::Invoke);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _from: NodeId, message: ClientMessage) {
        if let ClientMessage::Reply(Reply { id, answer }) = message
            && self.pending.as_ref().is_some_and(|p| p.request.id == id)
        {
            self.complete(ctx, &answer);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: ClientTimer) {
        match timer {
            ClientTimer::Invoke => {
                if self.pending.is_none() && ctx.local_time_ns() < self.stop_ns {
                    self.invoke(ctx);
                }
            }
            ClientTimer::Timeout { request } => {
                if self
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.request.id == request)
                {
                    let answer = Answer::Unknown {
                        error: "timeout".into(),
                    };
                    self.complete(ctx, &answer);
                }
            }
        }
    }
}
