//! The workload client process. See the module docs of [`crate::families::kv`].

use std::collections::BTreeMap;

use rand::Rng;
use rand_distr::{Distribution, Exp};
use serde::Serialize;

use crate::families::kv::{ClientContext, ClientMessage, Op, Outcome, Reply, Request};
use crate::families::kv::{WorkloadKind, WorkloadOptions};
use crate::family::NodeSetup;
use crate::history::{EventType, HistoryEvent};
use crate::process::{Context, NodeId, Process, TimerId};

/// Redirects followed in a row before the client pauses for `retry_delay`.
const MAX_REDIRECTS_IN_A_ROW: u32 = 3;
/// Process ids within one client incarnation stay below this many rounds per slot.
const ROUNDS_PER_EPOCH: u64 = 1 << 20;
/// Disk key of the client's incarnation counter (so process ids stay unique across restarts).
const EPOCH_KEY: &str = "client/epoch";

/// Client timers. Stale ones (for an operation that already ended) are ignored by `request`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum ClientTimer {
    /// Closed loop: slot `slot` may invoke its next operation.
    Invoke {
        /// The process slot.
        slot: u32,
    },
    /// Open loop: the next operation arrives.
    Arrival,
    /// The current attempt of request `request` got no answer: try the next server.
    Attempt {
        /// The process slot.
        slot: u32,
        /// The request id.
        request: u64,
    },
    /// Retry request `request` after a pause.
    Retry {
        /// The process slot.
        slot: u32,
        /// The request id.
        request: u64,
    },
    /// Request `request` timed out: record `info`.
    Timeout {
        /// The process slot.
        slot: u32,
        /// The request id.
        request: u64,
    },
}

/// `prefix` followed by `n` in decimal (`k7`), without `format!`'s machinery: clients build
/// one or two per operation.
pub(crate) fn numbered(prefix: &str, n: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(n);
    let mut s = String::with_capacity(prefix.len() + digits.len() + 8);
    s.push_str(prefix);
    s.push_str(digits);
    s
}

/// The next value client `client_index` writes: `c<client_index + 1>-<n>`, unique in the run.
fn fresh_value(next_value: &mut u64, client_index: u32) -> String {
    *next_value += 1;
    let mut value = numbered("c", u64::from(client_index) + 1);
    value.push('-');
    value.push_str(itoa::Buffer::new().format(*next_value));
    value
}

/// The operation mix, as cumulative weights.
#[derive(Clone, Debug)]
struct Mix {
    choices: Vec<(String, f64)>,
    total: f64,
}

impl Mix {
    fn new(kind: WorkloadKind, configured: &BTreeMap<String, f64>) -> Self {
        let pairs: Vec<(String, f64)> = if configured.is_empty() {
            kind.default_mix()
                .iter()
                .map(|(f, w)| (f.to_string(), *w))
                .collect()
        } else {
            configured.iter().map(|(f, w)| (f.clone(), *w)).collect()
        };
        let mut total = 0.0;
        let choices = pairs
            .into_iter()
            .filter(|(_, w)| *w > 0.0)
            .map(|(f, w)| {
                total += w;
                (f, total)
            })
            .collect();
        Mix { choices, total }
    }

    fn pick(&self, rng: &mut impl Rng) -> &str {
        let x = rng.gen_range(0.0..self.total);
        let idx = self
            .choices
            .iter()
            .position(|(_, c)| x < *c)
            .unwrap_or(self.choices.len() - 1);
        &self.choices[idx].0
    }
}

#[derive(Clone, Debug)]
struct Pending {
    request: Request,
    server: NodeId,
    redirects: u32,
    attempt_timer: Option<TimerId>,
    timeout_timer: TimerId,
}

#[derive(Clone, Debug)]
struct Slot {
    round: u64,
    pending: Option<Pending>,
}

/// A client node: generates operations from the `[workload]` mix, sends them, follows redirects,
/// retries, times out, and records the history.
#[derive(Debug)]
pub struct Client {
    index: u32,
    servers: Vec<NodeId>,
    leader_hint: NodeId,
    kind: WorkloadKind,
    config: WorkloadOptions,
    mix: Mix,
    total_slots: u64,
    epoch: u64,
    slots: Vec<Slot>,
    next_request_id: u64,
    next_value: u64,
    clients: u64,
    last_value: BTreeMap<String, String>,
    start_ns: i64,
    stop_ns: i64,
}

impl Client {
    /// A client for `setup` (its `home` is the first server it talks to; its `client_index`
    /// and `client_count` make its process ids unique in the run).
    pub fn new(setup: &NodeSetup, kind: WorkloadKind, config: &WorkloadOptions) -> Self {
        let (index, clients, duration_ns) = (setup.client_index, setup.client_count, setup.end_ns);
        let slots = config.concurrency.max(1);
        Client {
            index,
            servers: setup.servers.clone(),
            leader_hint: setup.home.unwrap_or(setup.servers[0]),
            kind,
            mix: Mix::new(kind, &config.mix),
            config: config.clone(),
            total_slots: u64::from(clients) * u64::from(slots),
            epoch: 0,
            slots: vec![
                Slot {
                    round: 0,
                    pending: None
                };
                slots as usize
            ],
            next_request_id: 0,
            next_value: 0,
            clients: u64::from(clients.max(1)),
            last_value: BTreeMap::new(),
            start_ns: config.start.as_nanos() as i64,
            stop_ns: config.stop.map_or(duration_ns, |s| s.as_nanos()) as i64,
        }
    }

    fn process_id(&self, slot: u32) -> u64 {
        let round = self.epoch * ROUNDS_PER_EPOCH + self.slots[slot as usize].round;
        round * self.total_slots + u64::from(self.index) * self.slots.len() as u64 + u64::from(slot)
    }

    fn generate(&mut self, ctx: &mut Context<'_>) -> Op {
        let f = self.mix.pick(ctx.rng());
        match self.kind {
            WorkloadKind::Broadcast => match f {
                "read" => Op::Read,
                _ => {
                    let value = self.next_value * self.clients + u64::from(self.index);
                    self.next_value += 1;
                    Op::Broadcast { value }
                }
            },
            WorkloadKind::KeyValue => {
                let key = numbered("k", ctx.rng().gen_range(1..=self.config.keys.max(1)).into());
                let fresh = &mut self.next_value;
                match f {
                    "get" => Op::Get { key },
                    "append" => {
                        let mut value = fresh_value(fresh, self.index);
                        value.push(';');
                        Op::Append { key, value }
                    }
                    "cas" => {
                        let from = self.last_value.get(&key).cloned().unwrap_or_default();
                        let to = fresh_value(fresh, self.index);
                        Op::Cas { key, from, to }
                    }
                    _ => Op::Put {
                        key,
                        value: fresh_value(fresh, self.index),
                    },
                }
            }
        }
    }

    fn free_slot(&self) -> Option<u32> {
        self.slots
            .iter()
            .position(|s| s.pending.is_none())
            .map(|i| i as u32)
    }

    fn invoke(&mut self, ctx: &mut Context<'_>, slot: u32) {
        let op = self.generate(ctx);
        self.next_request_id += 1;
        let request = Request {
            id: self.next_request_id,
            op,
        };
        let process = self.process_id(slot);
        ctx.record(HistoryEvent::new(
            process,
            EventType::Invoke,
            request.op.function(),
            request.op.key().map(str::to_string),
            request.op.invoke_value(),
        ));
        let timeout_timer = ctx.set_timer(
            self.config.request_timeout.to_std(),
            ClientTimer::Timeout {
                slot,
                request: request.id,
            },
        );
        self.slots[slot as usize].pending = Some(Pending {
            request,
            server: self.leader_hint,
            redirects: 0,
            attempt_timer: None,
            timeout_timer,
        });
        self.attempt(ctx, slot);
    }

    /// Sends the pending request of `slot` to its current server and arms the attempt timer.
    fn attempt(&mut self, ctx: &mut Context<'_>, slot: u32) {
        let attempt_timeout = self.config.attempt_timeout.to_std();
        let Some(p) = self.slots[slot as usize].pending.as_mut() else {
            return;
        };
        if let Some(t) = p.attempt_timer.take() {
            ctx.cancel_timer(t);
        }
        ctx.request(p.server, p.request.clone());
        p.attempt_timer = Some(ctx.set_timer(
            attempt_timeout,
            ClientTimer::Attempt {
                slot,
                request: p.request.id,
            },
        ));
    }

    fn next_server(&self, after: NodeId) -> NodeId {
        let pos = self.servers.iter().position(|&s| s == after).unwrap_or(0);
        self.servers[(pos + 1) % self.servers.len()]
    }

    /// Ends the pending operation of `slot` with `kind` and schedules the slot's next invoke.
    fn complete(&mut self, ctx: &mut Context<'_>, slot: u32, kind: EventType, outcome: &Outcome) {
        let process = self.process_id(slot);
        let Some(p) = self.slots[slot as usize].pending.take() else {
            return;
        };
        if let Some(t) = p.attempt_timer {
            ctx.cancel_timer(t);
        }
        ctx.cancel_timer(p.timeout_timer);
        let op = &p.request.op;
        let (value, error) = match outcome {
            Outcome::Ok { value } => (value.history_value(op), None),
            Outcome::Fail { error } | Outcome::Unknown { error } => {
                (op.invoke_value(), Some(error.clone()))
            }
            Outcome::Redirect { .. } => (op.invoke_value(), Some("redirect".to_string())),
        };
        if let (Outcome::Ok { value }, Some(key)) = (outcome, op.key()) {
            let seen = match (op, value) {
                (Op::Get { .. }, crate::families::kv::OpValue::Value(Some(v))) => Some(v.clone()),
                (Op::Put { value, .. }, _) | (Op::Cas { to: value, .. }, _) => Some(value.clone()),
                _ => None,
            };
            if let Some(v) = seen {
                self.last_value.insert(key.to_string(), v);
            }
        }
        let mut event = HistoryEvent::new(
            process,
            kind,
            op.function(),
            op.key().map(str::to_string),
            value,
        );
        event.error = error;
        ctx.record(event);
        if kind == EventType::Info {
            self.slots[slot as usize].round += 1;
        }
        if self.config.rate_per_s.is_none() {
            ctx.set_timer(
                self.config.think_time.to_std(),
                ClientTimer::Invoke { slot },
            );
        }
    }

    fn pending_matches(&self, slot: u32, request: u64) -> bool {
        self.slots
            .get(slot as usize)
            .and_then(|s| s.pending.as_ref())
            .is_some_and(|p| p.request.id == request)
    }

    fn schedule_arrival(&self, ctx: &mut Context<'_>) {
        let rate = self.config.rate_per_s.unwrap_or(1.0);
        let gap_s: f64 = Exp::new(rate)
            .expect("validated: rate > 0")
            .sample(ctx.rng());
        ctx.set_timer(
            std::time::Duration::from_secs_f64(gap_s),
            ClientTimer::Arrival,
        );
    }

    fn may_invoke(&self, ctx: &Context<'_>) -> bool {
        ctx.local_time_ns() < self.stop_ns
    }
}

impl Process for Client {
    type Message = ClientMessage;
    type Timer = ClientTimer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = ctx
            .disk()
            .read(EPOCH_KEY)
            .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
            .unwrap_or(0);
        ctx.disk().write(EPOCH_KEY, (self.epoch + 1).to_string());
        ctx.disk().sync();
        let delay_ns = (self.start_ns - ctx.local_time_ns()).max(0) as u64;
        if self.config.rate_per_s.is_some() {
            let gap = std::time::Duration::from_nanos(delay_ns);
            ctx.set_timer(gap, ClientTimer::Arrival);
        } else {
            for slot in 0..self.slots.len() as u32 {
                // Stagger the first invokes so processes do not move in lockstep.
                let jitter = ctx.rng().gen_range(0..=self.config.think_time.as_nanos());
                ctx.set_timer(
                    std::time::Duration::from_nanos(delay_ns + jitter),
                    ClientTimer::Invoke { slot },
                );
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: ClientMessage) {
        // Clients only receive replies; a request sent to a client is ignored.
        if let ClientMessage::Reply(reply) = message {
            self.on_reply(ctx, from, reply);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: ClientTimer) {
        match timer {
            ClientTimer::Invoke { slot } => {
                if self.may_invoke(ctx) && self.slots[slot as usize].pending.is_none() {
                    self.invoke(ctx, slot);
                }
            }
            ClientTimer::Arrival => {
                if self.may_invoke(ctx) {
                    if let Some(slot) = self.free_slot() {
                        self.invoke(ctx, slot);
                    }
                    self.schedule_arrival(ctx);
                }
            }
            ClientTimer::Attempt { slot, request } => {
                if self.pending_matches(slot, request) {
                    let current = self.slots[slot as usize]
                        .pending
                        .as_ref()
                        .expect("matched")
                        .server;
                    let next = self.next_server(current);
                    let p = self.slots[slot as usize].pending.as_mut().expect("matched");
                    p.attempt_timer = None;
                    p.server = next;
                    p.redirects = 0;
                    self.attempt(ctx, slot);
                }
            }
            ClientTimer::Retry { slot, request } => {
                if self.pending_matches(slot, request) {
                    self.attempt(ctx, slot);
                }
            }
            ClientTimer::Timeout { slot, request } => {
                if self.pending_matches(slot, request) {
                    let outcome = Outcome::Unknown {
                        error: crate::history::TIMEOUT_ERROR.into(),
                    };
                    self.complete(ctx, slot, EventType::Info, &outcome);
                }
            }
        }
    }
}

impl Client {
    fn on_reply(&mut self, ctx: &mut Context<'_>, from: NodeId, reply: Reply) {
        let Some(slot) = self
            .slots
            .iter()
            .position(|s| s.pending.as_ref().is_some_and(|p| p.request.id == reply.id))
        else {
            return; // a late or duplicate reply to an operation that already ended
        };
        let slot = slot as u32;
        match &reply.outcome {
            Outcome::Ok { .. } => {
                self.leader_hint = from;
                self.complete(ctx, slot, EventType::Ok, &reply.outcome);
            }
            Outcome::Fail { .. } => self.complete(ctx, slot, EventType::Fail, &reply.outcome),
            Outcome::Unknown { .. } => self.complete(ctx, slot, EventType::Info, &reply.outcome),
            Outcome::Redirect { leader } => {
                let retry_delay = self.config.retry_delay.to_std();
                let next = leader.unwrap_or_else(|| self.next_server(from));
                if let Some(l) = leader {
                    self.leader_hint = *l;
                }
                let p = self.slots[slot as usize]
                    .pending
                    .as_mut()
                    .expect("found above");
                if p.server != from {
                    return; // a stale answer from a server we already moved away from
                }
                p.server = next;
                p.redirects += 1;
                if leader.is_some() && p.redirects <= MAX_REDIRECTS_IN_A_ROW {
                    self.attempt(ctx, slot);
                } else {
                    p.redirects = 0;
                    let request = p.request.id;
                    if let Some(t) = p.attempt_timer.take() {
                        ctx.cancel_timer(t);
                    }
                    ctx.set_timer(retry_delay, ClientTimer::Retry { slot, request });
                }
            }
        }
    }
}
