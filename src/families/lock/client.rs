//! The lock client (the `lock` workload): acquire with back-off, hold while writing to the fenced
//! storage with the token, release, think, repeat. See the family docs in
//! [`crate::families::lock`].
//!
//! # History
//!
//! Every request is one Jepsen operation of a sequential process: `acquire` (invoke value `nil`,
//! ok value the token), `write` (value the token) and `release` (value the token), each
//! completed by `ok`, `fail` (`busy`, `not-owner`, `fenced`) or `info` (`timeout`). After an
//! `info` the client continues as a new process. Process ids are
//! `node index * 2^32 + incarnation * 2^20 + round`, so they stay unique across clients and
//! restarts. The mutex model of the linearizability checker reads the `acquire` and `release`
//! events; `write` events are for people and for the fencing story.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::Message;
use super::redlock::{Outcome, Quorum, RedlockConfig};
use super::{Observation, OptionError, StopReason, Timer, check_duration, next_incarnation};
use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Disk key of the client's incarnation counter (so process ids stay unique across restarts).
pub const EPOCH_KEY: &str = "lock-client/epoch";
/// Process ids within one client incarnation stay below this many rounds.
const ROUNDS_PER_EPOCH: u64 = 1 << 20;
/// Most writes one hold may do (`writes_per_hold`).
pub const MAX_WRITES_PER_HOLD: u32 = 1000;

/// Options of a `lock` client group. Durations are on the client's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// How long the client holds the lock once granted, before releasing (default 500ms).
    #[serde(default = "default_hold")]
    pub hold: Duration,
    /// Writes to the storage per hold, evenly spread over it (default 2, at most 1000).
    #[serde(default = "default_writes_per_hold")]
    pub writes_per_hold: u32,
    /// Pause after a release before the next acquire (default 100ms).
    #[serde(default = "default_think_time")]
    pub think_time: Duration,
    /// A request without an answer after this long ends in `info` (default 1s).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// First back-off after a `busy` or timed-out acquire (default 50ms); doubled per failure.
    #[serde(default = "default_retry_delay_min")]
    pub retry_delay_min: Duration,
    /// Cap of the back-off (default 1s). Each back-off is drawn uniformly in `[d/2, d]`.
    #[serde(default = "default_retry_delay_max")]
    pub retry_delay_max: Duration,
    /// First acquire at this local time (default 0s).
    #[serde(default)]
    pub start: Duration,
    /// No acquire starts at or after this local time (default: never stop); a hold in progress
    /// still ends with its release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
    /// Stop writing (and believing it holds) once the local clock passes acquire time + TTL, as
    /// the Redis docs advise (default false: the client trusts its hold, as in Kleppmann's
    /// article).
    #[serde(default)]
    pub validity_check: bool,
}

fn default_hold() -> Duration {
    Duration::from_millis(500)
}
fn default_writes_per_hold() -> u32 {
    2
}
fn default_think_time() -> Duration {
    Duration::from_millis(100)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_delay_min() -> Duration {
    Duration::from_millis(50)
}
fn default_retry_delay_max() -> Duration {
    Duration::from_secs(1)
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            hold: default_hold(),
            writes_per_hold: default_writes_per_hold(),
            think_time: default_think_time(),
            request_timeout: default_request_timeout(),
            retry_delay_min: default_retry_delay_min(),
            retry_delay_max: default_retry_delay_max(),
            start: Duration(0),
            stop: None,
            validity_check: false,
        }
    }
}

impl ClientConfig {
    /// Every problem with these options (none: valid): `hold`, `request_timeout` and
    /// `retry_delay_min` positive, every duration at most 1h, `retry_delay_max` at least
    /// `retry_delay_min`, `writes_per_hold` at most 1000, `stop` after `start`.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        check_duration(&mut errors, "hold", self.hold, false);
        check_duration(&mut errors, "think_time", self.think_time, true);
        check_duration(&mut errors, "request_timeout", self.request_timeout, false);
        check_duration(&mut errors, "retry_delay_min", self.retry_delay_min, false);
        check_duration(&mut errors, "retry_delay_max", self.retry_delay_max, false);
        if self.retry_delay_max < self.retry_delay_min {
            errors.push(OptionError::at(
                "retry_delay_max",
                format!(
                    "expected at least retry_delay_min ({}), found {}",
                    self.retry_delay_min, self.retry_delay_max
                ),
            ));
        }
        if self.writes_per_hold > MAX_WRITES_PER_HOLD {
            errors.push(OptionError::at(
                "writes_per_hold",
                format!(
                    "expected at most {MAX_WRITES_PER_HOLD}, found {}",
                    self.writes_per_hold
                ),
            ));
        }
        if let Some(stop) = self.stop
            && stop <= self.start
        {
            errors.push(OptionError::at(
                "stop",
                format!("expected a time after start ({}), found {stop}", self.start),
            ));
        }
        errors
    }
}

/// The history process id of client `id` in incarnation `epoch` at `round`:
/// `node index * 2^32 + epoch * 2^20 + round` (unique across clients and restarts). Shared by
/// every lock client (`lock`, `etcd-lock`, `zk-lock`).
pub(crate) fn process_id(id: NodeId, epoch: u64, round: u64) -> u64 {
    (u64::from(id.0) << 32) + epoch * ROUNDS_PER_EPOCH + round
}

/// The next back-off after `failures` failed attempts in a row (then counted one more): the cap
/// doubles from `retry_delay_min` per failure up to `retry_delay_max`, and the delay is drawn
/// uniformly in `[cap/2, cap]`. Shared by every lock client.
pub(crate) fn back_off_delay(
    ctx: &mut Context<'_>,
    config: &ClientConfig,
    failures: &mut u32,
) -> std::time::Duration {
    let min = config.retry_delay_min.as_nanos();
    let max = config.retry_delay_max.as_nanos();
    let cap = min.saturating_mul(1u64 << (*failures).min(40)).min(max);
    *failures = failures.saturating_add(1);
    std::time::Duration::from_nanos(ctx.rng().gen_range(cap / 2..=cap))
}

/// What client `id` writes in its `n`-th write with `token`: `c<id>-<token>-<n>`, unique in the
/// run. Shared by every lock client.
pub(crate) fn write_data(id: NodeId, token: u64, n: u64) -> String {
    // Built without `format!`: one per write.
    let mut data = crate::families::kv::client::numbered("c", u64::from(id.0));
    for n in [token, n] {
        data.push('-');
        data.push_str(itoa::Buffer::new().format(n));
    }
    data
}

/// When the writes of a hold are due, after its grant: `writes_per_hold` writes evenly spread
/// over `hold` (at `hold / (n + 1) * i`). Shared by every lock client.
pub(crate) fn write_offsets(config: &ClientConfig) -> impl Iterator<Item = std::time::Duration> {
    let hold_ns = config.hold.as_nanos();
    let writes = u64::from(config.writes_per_hold);
    (1..=writes).map(move |i| std::time::Duration::from_nanos(hold_ns / (writes + 1) * i))
}

/// The request in flight (at most one: the client is one sequential process).
#[derive(Clone, Debug)]
struct Pending {
    request: u64,
    op: Op,
    timeout: TimerId,
}

#[derive(Copy, Clone, Debug, PartialEq)]
enum Op {
    Acquire { value: u64, sent_local_ns: i64 },
    Write { token: u64 },
    Release { token: u64 },
}

impl Op {
    fn function(self) -> Function {
        match self {
            Op::Acquire { .. } => Function::Acquire,
            Op::Write { .. } => Function::Write,
            Op::Release { .. } => Function::Release,
        }
    }
    /// The value recorded at invoke and at fail/info.
    fn invoke_value(self) -> Value {
        match self {
            Op::Acquire { .. } => Value::Nil,
            Op::Write { token } | Op::Release { token } => Value::Int(token as i64),
        }
    }
}

/// The hold the client believes it has.
#[derive(Clone, Debug)]
struct Hold {
    token: u64,
    value: u64,
    /// Writes that are due but not yet sent.
    writes_due: u32,
    /// `hold` has elapsed: release once the writes due are done.
    ended: bool,
    /// The client still believes it holds (false after `validity_check` ended it).
    believed: bool,
}

/// The lock client process. Build a fresh one at boot and after every restart.
#[derive(Debug)]
pub struct LockClient {
    id: NodeId,
    lock_server: NodeId,
    storage: NodeId,
    /// A Redlock client's lock servers and the answers to its request in flight (`None`: the
    /// single-instance client of `lock_server`).
    quorum: Option<Quorum>,
    config: ClientConfig,
    epoch: u64,
    round: u64,
    next_request: u64,
    writes_done: u64,
    backoff_failures: u32,
    pending: Option<Pending>,
    hold: Option<Hold>,
    /// An acquisition is under way (its `acquiring` was observed, no grant yet): retries after
    /// `busy` or a timeout belong to it and report nothing new.
    acquiring: bool,
}

impl LockClient {
    /// A client on node `id` that takes the lock from `lock_server` and writes to `storage`,
    /// with `config` (validated by [`ClientConfig::validate`]).
    pub fn new(id: NodeId, lock_server: NodeId, storage: NodeId, config: ClientConfig) -> Self {
        LockClient {
            id,
            lock_server,
            storage,
            quorum: None,
            config,
            epoch: 0,
            round: 0,
            next_request: 0,
            writes_done: 0,
            backoff_failures: 0,
            pending: None,
            hold: None,
            acquiring: false,
        }
    }

    /// A Redlock client on node `id` (the `redlock` workload, see [`super::redlock`]): it takes
    /// the lock from a majority of `lock_servers` (at least one) and writes to `storage`, with
    /// `config` (validated by [`RedlockConfig::validate`]).
    pub fn redlock(
        id: NodeId,
        lock_servers: Vec<NodeId>,
        storage: NodeId,
        config: RedlockConfig,
    ) -> Self {
        let mut client = LockClient::new(id, lock_servers[0], storage, config.client);
        client.quorum = Some(Quorum::new(lock_servers, config.redlock));
        client
    }

    fn process_id(&self) -> u64 {
        process_id(self.id, self.epoch, self.round)
    }

    fn may_acquire(&self, ctx: &Context<'_>) -> bool {
        self.config
            .stop
            .is_none_or(|stop| ctx.local_time_ns() < stop.as_nanos() as i64)
    }

    /// Sends a request for `op`, records its invoke and arms its timeout.
    fn invoke(&mut self, ctx: &mut Context<'_>, op: Op) {
        self.next_request += 1;
        let request = self.next_request;
        ctx.record(HistoryEvent::new(
            self.process_id(),
            EventType::Invoke,
            op.function(),
            None,
            op.invoke_value(),
        ));
        match op {
            Op::Acquire {
                value,
                sent_local_ns,
            } => self.send_to_lock_servers(
                ctx,
                Message::Acquire {
                    request,
                    value,
                    client_now_ns: sent_local_ns,
                },
            ),
            Op::Write { token } => {
                self.writes_done += 1;
                let data = write_data(self.id, token, self.writes_done);
                ctx.send(
                    self.storage,
                    Message::Write {
                        request,
                        token,
                        data,
                    },
                );
            }
            Op::Release { token } => {
                if let Some(h) = self.hold.as_mut().filter(|h| h.believed) {
                    h.believed = false;
                    ctx.observe(Observation::StoppedHolding {
                        token,
                        why: StopReason::Released,
                    });
                }
                let value = self.hold.as_ref().map_or(0, |h| h.value);
                self.send_to_lock_servers(
                    ctx,
                    Message::Release {
                        request,
                        value,
                        token,
                    },
                );
            }
        }
        let timeout = match (&self.quorum, op) {
            (Some(q), Op::Acquire { .. }) => q.server_timeout(),
            _ => self.config.request_timeout,
        };
        let timeout = ctx.set_timer(timeout.to_std(), Timer::RequestTimeout { request });
        self.pending = Some(Pending {
            request,
            op,
            timeout,
        });
    }

    /// Sends an acquire or release to the lock server, or to every Redlock server.
    fn send_to_lock_servers(&mut self, ctx: &mut Context<'_>, message: Message) {
        match &mut self.quorum {
            Some(q) => q.send_to_all(ctx, message),
            None => ctx.send(self.lock_server, message),
        }
    }

    /// Ends the pending request with `kind`, recording `value` (ok) or the invoke value and
    /// `error` (fail, info). Returns the op.
    fn complete(
        &mut self,
        ctx: &mut Context<'_>,
        kind: EventType,
        value: Option<Value>,
        error: Option<String>,
    ) -> Op {
        let p = self
            .pending
            .take()
            .expect("callers check a request is pending");
        ctx.cancel_timer(p.timeout);
        let mut event = HistoryEvent::new(
            self.process_id(),
            kind,
            p.op.function(),
            None,
            value.unwrap_or_else(|| p.op.invoke_value()),
        );
        event.error = error;
        ctx.record(event);
        if kind == EventType::Info {
            self.round += 1; // Jepsen: a process with an unknown outcome never invokes again
        }
        p.op
    }

    /// The pending request if it is `request`.
    fn pending_is(&self, request: u64) -> bool {
        self.pending.as_ref().is_some_and(|p| p.request == request)
    }

    /// Sends an acquire attempt; the first attempt of an acquisition observes `acquiring`.
    fn start_acquire(&mut self, ctx: &mut Context<'_>) {
        if !self.acquiring {
            self.acquiring = true;
            ctx.observe(Observation::Acquiring);
        }
        let value = ctx.rng().r#gen::<u64>();
        let sent_local_ns = ctx.local_time_ns();
        self.invoke(
            ctx,
            Op::Acquire {
                value,
                sent_local_ns,
            },
        );
    }

    /// Arms the next acquire after a capped exponential back-off with jitter: the cap doubles
    /// from `retry_delay_min` per failure up to `retry_delay_max`, and the delay is drawn
    /// uniformly in `[cap/2, cap]`.
    fn back_off(&mut self, ctx: &mut Context<'_>) {
        let delay = back_off_delay(ctx, &self.config, &mut self.backoff_failures);
        ctx.set_timer(delay, Timer::Acquire);
    }

    /// Sends the next request of the hold, if any and none is in flight.
    fn advance(&mut self, ctx: &mut Context<'_>) {
        if self.pending.is_some() {
            return;
        }
        let Some(h) = self.hold.as_mut() else {
            return;
        };
        if !h.believed {
            h.writes_due = 0;
        }
        let token = h.token;
        if h.writes_due > 0 {
            h.writes_due -= 1;
            self.invoke(ctx, Op::Write { token });
        } else if h.ended {
            self.invoke(ctx, Op::Release { token });
        }
    }

    /// The hold is over (its release was answered, refused or timed out); think, then acquire
    /// again. The belief ended when the release was sent.
    fn end_hold(&mut self, ctx: &mut Context<'_>) {
        self.hold = None;
        ctx.set_timer(self.config.think_time.to_std(), Timer::Acquire);
    }

    /// The acquire in flight succeeded with `token`: hold. With `valid_ns`, the belief ends at
    /// send time + `valid_ns` on the local clock (the validity time: the TTL for the
    /// single-instance client with `validity_check`, TTL - drift for Redlock).
    fn on_granted(&mut self, ctx: &mut Context<'_>, token: u64, valid_ns: Option<u64>) {
        let op = self.complete(ctx, EventType::Ok, Some(Value::Int(token as i64)), None);
        let Op::Acquire {
            value,
            sent_local_ns,
        } = op
        else {
            unreachable!("a grant answers an acquire")
        };
        self.backoff_failures = 0;
        self.acquiring = false;
        self.hold = Some(Hold {
            token,
            value,
            writes_due: 0,
            ended: false,
            believed: true,
        });
        ctx.observe(Observation::Holding { token });
        for at in write_offsets(&self.config) {
            ctx.set_timer(at, Timer::WriteDue { token });
        }
        ctx.set_timer(self.config.hold.to_std(), Timer::HoldEnd { token });
        if let Some(valid_ns) = valid_ns {
            let valid_until = sent_local_ns.saturating_add(valid_ns as i64);
            let left = (valid_until - ctx.local_time_ns()).max(0) as u64;
            ctx.set_timer(
                std::time::Duration::from_nanos(left),
                Timer::ValidityEnd { token },
            );
        }
    }
}

/// Redlock (see [`super::redlock`]): deciding the request in flight from the servers' answers.
impl LockClient {
    /// The acquire in flight has every answer or reached `server_timeout`, or the release in
    /// flight is decided: complete it.
    fn on_quorum_answers(&mut self, ctx: &mut Context<'_>) {
        let q = self
            .quorum
            .as_ref()
            .expect("only Redlock clients decide by quorum");
        let Some(Pending { op, request, .. }) = self.pending.clone() else {
            return;
        };
        match op {
            Op::Acquire {
                value,
                sent_local_ns,
            } => {
                let elapsed_ns = (ctx.local_time_ns() - sent_local_ns).max(0) as u64;
                match q.acquire_outcome(elapsed_ns) {
                    Outcome::Hold { token, valid_ns } => self.on_granted(ctx, token, valid_ns),
                    Outcome::Fail { why } => {
                        self.complete(ctx, EventType::Fail, None, Some(why));
                        let release = Message::Release {
                            request,
                            value,
                            token: 0,
                        };
                        self.send_to_lock_servers(ctx, release);
                        self.back_off(ctx);
                    }
                }
            }
            Op::Release { .. } => {
                if q.release_outcome() == Some(true) {
                    self.complete(ctx, EventType::Ok, None, None);
                } else {
                    self.complete(ctx, EventType::Fail, None, Some("not-owner".into()));
                }
                self.end_hold(ctx);
            }
            Op::Write { .. } => {}
        }
    }
}

impl Process for LockClient {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = next_incarnation(ctx.disk(), EPOCH_KEY);
        let delay_ns = (self.config.start.as_nanos() as i64 - ctx.local_time_ns()).max(0) as u64;
        ctx.set_timer(std::time::Duration::from_nanos(delay_ns), Timer::Acquire);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        let request = match &message {
            Message::Granted { request, .. }
            | Message::Busy { request }
            | Message::Released { request }
            | Message::NotOwner { request }
            | Message::WriteOk { request }
            | Message::WriteRefused { request, .. } => *request,
            Message::Acquire { .. } | Message::Release { .. } | Message::Write { .. } => return,
        };
        if !self.pending_is(request) {
            return; // a late or duplicate answer to a request that already ended
        }
        if let Some(q) = &mut self.quorum
            && let Some(decided) = q.record(from, &message)
        {
            if decided {
                self.on_quorum_answers(ctx);
            }
            return;
        }
        match message {
            Message::Granted { token, ttl_ns, .. } => {
                let valid_ns = self.config.validity_check.then_some(ttl_ns);
                self.on_granted(ctx, token, valid_ns);
            }
            Message::Busy { .. } => {
                self.complete(ctx, EventType::Fail, None, Some("busy".into()));
                self.back_off(ctx);
            }
            Message::Released { .. } => {
                let op = self.complete(ctx, EventType::Ok, None, None);
                debug_assert!(matches!(op, Op::Release { .. }));
                self.end_hold(ctx);
            }
            Message::NotOwner { .. } => {
                self.complete(ctx, EventType::Fail, None, Some("not-owner".into()));
                self.end_hold(ctx);
            }
            Message::WriteOk { .. } => {
                self.complete(ctx, EventType::Ok, None, None);
                self.advance(ctx);
            }
            Message::WriteRefused { highest, .. } => {
                let error = format!("fenced: the storage has seen token {highest}");
                self.complete(ctx, EventType::Fail, None, Some(error));
                self.advance(ctx);
            }
            Message::Acquire { .. } | Message::Release { .. } | Message::Write { .. } => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: Timer) {
        let holds = |s: &Self, token: u64| s.hold.as_ref().is_some_and(|h| h.token == token);
        match timer {
            Timer::Acquire => {
                if self.pending.is_none() && self.hold.is_none() && self.may_acquire(ctx) {
                    self.start_acquire(ctx);
                }
            }
            Timer::RequestTimeout { request } => {
                if !self.pending_is(request) {
                    return;
                }
                if self.quorum.is_some()
                    && matches!(
                        self.pending.as_ref().map(|p| p.op),
                        Some(Op::Acquire { .. })
                    )
                {
                    return self.on_quorum_answers(ctx);
                }
                let op = self.complete(ctx, EventType::Info, None, Some("timeout".into()));
                match op {
                    Op::Acquire { .. } => self.back_off(ctx),
                    Op::Write { .. } => self.advance(ctx),
                    Op::Release { .. } => self.end_hold(ctx),
                }
            }
            Timer::WriteDue { token } => {
                if holds(self, token) {
                    self.hold.as_mut().expect("checked").writes_due += 1;
                    self.advance(ctx);
                }
            }
            Timer::HoldEnd { token } => {
                if holds(self, token) {
                    self.hold.as_mut().expect("checked").ended = true;
                    self.advance(ctx);
                }
            }
            Timer::ValidityEnd { token } => {
                if holds(self, token) {
                    let h = self.hold.as_mut().expect("checked");
                    if h.believed {
                        h.believed = false;
                        h.writes_due = 0;
                        ctx.observe(Observation::StoppedHolding {
                            token,
                            why: StopReason::ValidityExpired,
                        });
                    }
                }
            }
            Timer::Expire { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::lock::{observed, sent, timers};
    use crate::process::{Effect, TestContext};

    const SERVER: NodeId = NodeId(0);
    const STORAGE: NodeId = NodeId(1);
    const ME: NodeId = NodeId(2);
    const MS: u64 = 1_000_000;

    fn history(effects: &[Effect]) -> Vec<(EventType, Function, Value, Option<String>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some((h.kind, h.f, h.value.clone(), h.error.clone())),
                _ => None,
            })
            .collect()
    }

    fn processes(effects: &[Effect]) -> Vec<u64> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some(h.process),
                _ => None,
            })
            .collect()
    }

    /// The last request number sent.
    fn last_request(effects: &[Effect]) -> u64 {
        sent(effects)
            .into_iter()
            .filter_map(|(_, m)| match m {
                Message::Acquire { request, .. }
                | Message::Release { request, .. }
                | Message::Write { request, .. } => Some(request),
                _ => None,
            })
            .next_back()
            .expect("a request was sent")
    }

    /// Delivers `reply(r)` from `from`, where `r` is the last request sent in `effects`.
    fn answer(
        c: &mut LockClient,
        tc: &mut TestContext,
        from: NodeId,
        effects: &[Effect],
        reply: impl Fn(u64) -> Message,
    ) {
        c.on_message(&mut tc.ctx(), from, reply(last_request(effects)));
    }

    /// A started client whose first acquire is in flight; returns its request number.
    fn acquiring(config: ClientConfig) -> (LockClient, TestContext, u64) {
        let mut tc = TestContext::new(ME, 7);
        let mut c = LockClient::new(ME, SERVER, STORAGE, config);
        c.on_start(&mut tc.ctx());
        let (id, delay, t) = timers(&tc.take_effects()).remove(0);
        assert_eq!((delay, &t), (0, &Timer::Acquire));
        c.on_timer(&mut tc.ctx(), id, t);
        let effects = tc.take_effects();
        let request = last_request(&effects);
        (c, tc, request)
    }

    /// Fires every timer in `effects` that matches `pick`, in order, returning the new effects.
    fn fire(
        c: &mut LockClient,
        tc: &mut TestContext,
        effects: &[Effect],
        pick: impl Fn(&Timer) -> bool,
    ) -> Vec<Effect> {
        for (id, _, t) in timers(effects).into_iter().filter(|(_, _, t)| pick(t)) {
            c.on_timer(&mut tc.ctx(), id, t);
        }
        tc.take_effects()
    }

    #[test]
    fn acquire_hold_write_release_sequence_and_its_history() {
        let (mut c, mut tc, req) = acquiring(ClientConfig::default());
        c.on_message(
            &mut tc.ctx(),
            SERVER,
            Message::Granted {
                request: req,
                token: 5,
                ttl_ns: 10_000 * MS,
            },
        );
        let effects = tc.take_effects();
        assert_eq!(observed(&effects), vec![Observation::Holding { token: 5 }]);
        assert_eq!(
            history(&effects),
            vec![(EventType::Ok, Function::Acquire, Value::Int(5), None)]
        );
        let delays: Vec<(u64, Timer)> = timers(&effects)
            .into_iter()
            .map(|(_, d, t)| (d, t))
            .collect();
        let third = 500 * MS / 3;
        assert_eq!(
            delays,
            vec![
                (third, Timer::WriteDue { token: 5 }),
                (third * 2, Timer::WriteDue { token: 5 }),
                (500 * MS, Timer::HoldEnd { token: 5 }),
            ]
        );
        // First write.
        let mut all = Vec::new();
        let e = fire(&mut c, &mut tc, &effects[..], |t| {
            *t == Timer::WriteDue { token: 5 }
        });
        // Both writes are due but only one is in flight at a time.
        let writes: Vec<_> = sent(&e)
            .into_iter()
            .filter(|(to, m)| *to == STORAGE && matches!(m, Message::Write { token: 5, .. }))
            .collect();
        assert_eq!(writes.len(), 1);
        all.extend(history(&e));
        answer(&mut c, &mut tc, STORAGE, &e, |request| Message::WriteOk {
            request,
        });
        let e = tc.take_effects();
        assert_eq!(
            sent(&e).len(),
            1,
            "the second due write follows the first's answer"
        );
        all.extend(history(&e));
        answer(&mut c, &mut tc, STORAGE, &e, |request| Message::WriteOk {
            request,
        });
        all.extend(history(&tc.take_effects()));
        let e = fire(&mut c, &mut tc, &effects[..], |t| {
            *t == Timer::HoldEnd { token: 5 }
        });
        assert!(matches!(
            sent(&e)[..],
            [(SERVER, Message::Release { token: 5, .. })]
        ));
        assert_eq!(
            observed(&e),
            vec![Observation::StoppedHolding {
                token: 5,
                why: StopReason::Released
            }],
            "the hold ends when the release is sent: the client writes nothing after it"
        );
        all.extend(history(&e));
        answer(&mut c, &mut tc, SERVER, &e, |request| Message::Released {
            request,
        });
        let e = tc.take_effects();
        all.extend(history(&e));
        assert!(observed(&e).is_empty(), "the belief already ended");
        assert_eq!(timers(&e)[0].2, Timer::Acquire, "think, then acquire again");
        assert_eq!(timers(&e)[0].1, 100 * MS);
        let t5 = Value::Int(5);
        assert_eq!(
            all,
            vec![
                (EventType::Invoke, Function::Write, t5.clone(), None),
                (EventType::Ok, Function::Write, t5.clone(), None),
                (EventType::Invoke, Function::Write, t5.clone(), None),
                (EventType::Ok, Function::Write, t5.clone(), None),
                (EventType::Invoke, Function::Release, t5.clone(), None),
                (EventType::Ok, Function::Release, t5, None),
            ]
        );
    }

    #[test]
    fn acquire_invoke_is_recorded_and_sent_to_the_lock_server() {
        let mut tc = TestContext::new(ME, 7);
        let mut c = LockClient::new(ME, SERVER, STORAGE, ClientConfig::default());
        c.on_start(&mut tc.ctx());
        let e = tc.take_effects();
        tc.local_time_ns = 42;
        let e = fire(&mut c, &mut tc, &e, |t| *t == Timer::Acquire);
        assert_eq!(
            history(&e),
            vec![(EventType::Invoke, Function::Acquire, Value::Nil, None)]
        );
        assert_eq!(observed(&e), vec![Observation::Acquiring]);
        assert!(matches!(
            sent(&e)[..],
            [(
                SERVER,
                Message::Acquire {
                    client_now_ns: 42,
                    ..
                }
            )]
        ));
        assert_eq!(processes(&e), vec![u64::from(ME.0) << 32]);
    }

    #[test]
    fn acquiring_is_observed_once_per_acquisition_not_per_retry() {
        let config = ClientConfig {
            writes_per_hold: 0,
            ..ClientConfig::default()
        };
        let (mut c, mut tc, req) = acquiring(config);
        // A busy answer and a timed-out attempt: both retries belong to the same acquisition.
        c.on_message(&mut tc.ctx(), SERVER, Message::Busy { request: req });
        let e = tc.take_effects();
        let e = fire(&mut c, &mut tc, &e, |t| *t == Timer::Acquire);
        assert_eq!(sent(&e).len(), 1, "the retry is sent");
        assert!(observed(&e).is_empty(), "a retry is no new acquisition");
        c.on_timer(
            &mut tc.ctx(),
            TimerId(1),
            Timer::RequestTimeout {
                request: last_request(&e),
            },
        );
        let e = tc.take_effects();
        let e = fire(&mut c, &mut tc, &e, |t| *t == Timer::Acquire);
        assert!(observed(&e).is_empty(), "a retry is no new acquisition");
        answer(&mut c, &mut tc, SERVER, &e, |request| Message::Granted {
            request,
            token: 3,
            ttl_ns: 10_000 * MS,
        });
        let granted = tc.take_effects();
        assert_eq!(observed(&granted), vec![Observation::Holding { token: 3 }]);
        // Release, think, and the next acquisition is a new one.
        let e = fire(&mut c, &mut tc, &granted, |t| {
            matches!(t, Timer::HoldEnd { .. })
        });
        answer(&mut c, &mut tc, SERVER, &e, |request| Message::Released {
            request,
        });
        let e = tc.take_effects();
        let e = fire(&mut c, &mut tc, &e, |t| *t == Timer::Acquire);
        assert_eq!(observed(&e), vec![Observation::Acquiring]);
    }

    #[test]
    fn busy_backs_off_exponentially_with_jitter_up_to_the_cap() {
        let (mut c, mut tc, mut req) = acquiring(ClientConfig {
            retry_delay_min: Duration::from_millis(10),
            retry_delay_max: Duration::from_millis(100),
            ..ClientConfig::default()
        });
        let mut caps = Vec::new();
        for _ in 0..6 {
            c.on_message(&mut tc.ctx(), SERVER, Message::Busy { request: req });
            let e = tc.take_effects();
            assert_eq!(
                history(&e),
                vec![(
                    EventType::Fail,
                    Function::Acquire,
                    Value::Nil,
                    Some("busy".into())
                )]
            );
            let (id, delay, t) = timers(&e).remove(0);
            assert_eq!(t, Timer::Acquire);
            caps.push(delay);
            c.on_timer(&mut tc.ctx(), id, t);
            req = last_request(&tc.take_effects());
        }
        let expected_caps = [10, 20, 40, 80, 100, 100];
        for (delay, cap) in caps.iter().zip(expected_caps) {
            assert!(
                (cap * MS / 2..=cap * MS).contains(delay),
                "delay {delay} outside [{}, {}]",
                cap * MS / 2,
                cap * MS
            );
        }
    }

    #[test]
    fn back_off_resets_after_a_grant() {
        let (mut c, mut tc, req) = acquiring(ClientConfig::default());
        c.on_message(&mut tc.ctx(), SERVER, Message::Busy { request: req });
        let before = tc.take_effects();
        let e = fire(&mut c, &mut tc, &before, |t| *t == Timer::Acquire);
        answer(&mut c, &mut tc, SERVER, &e, |request| Message::Busy {
            request,
        });
        assert_eq!(c.backoff_failures, 2);
        let before = tc.take_effects();
        let e = fire(&mut c, &mut tc, &before, |t| *t == Timer::Acquire);
        c.on_message(
            &mut tc.ctx(),
            SERVER,
            Message::Granted {
                request: last_request(&e),
                token: 1,
                ttl_ns: 10_000 * MS,
            },
        );
        assert_eq!(c.backoff_failures, 0);
    }

    #[test]
    fn late_grant_for_an_acquire_that_already_failed_is_ignored() {
        let (mut c, mut tc, req) = acquiring(ClientConfig::default());
        c.on_message(&mut tc.ctx(), SERVER, Message::Busy { request: req });
        tc.take_effects();
        c.on_message(
            &mut tc.ctx(),
            SERVER,
            Message::Granted {
                request: req,
                token: 1,
                ttl_ns: 10_000 * MS,
            },
        );
        let e = tc.take_effects();
        assert!(e.is_empty(), "{e:?}");
        assert!(c.hold.is_none());
    }

    #[test]
    fn acquire_timeout_records_info_and_continues_as_a_new_process() {
        let (mut c, mut tc, req) = acquiring(ClientConfig::default());
        let first = c.process_id();
        c.on_timer(
            &mut tc.ctx(),
            TimerId(1),
            Timer::RequestTimeout { request: req },
        );
        let e = tc.take_effects();
        assert_eq!(
            history(&e),
            vec![(
                EventType::Info,
                Function::Acquire,
                Value::Nil,
                Some("timeout".into())
            )]
        );
        assert_eq!(processes(&e), vec![first]);
        assert_eq!(timers(&e)[0].2, Timer::Acquire);
        let e = fire(&mut c, &mut tc, &e, |t| *t == Timer::Acquire);
        assert_eq!(processes(&e), vec![first + 1]);
    }

    fn holding(
        config: ClientConfig,
        token: u64,
        ttl_ns: u64,
    ) -> (LockClient, TestContext, Vec<Effect>) {
        let (mut c, mut tc, req) = acquiring(config);
        c.on_message(
            &mut tc.ctx(),
            SERVER,
            Message::Granted {
                request: req,
                token,
                ttl_ns,
            },
        );
        let e = tc.take_effects();
        (c, tc, e)
    }

    #[test]
    fn paused_client_resumes_believing_it_holds_and_writes_with_its_old_token() {
        let (mut c, mut tc, granted) = holding(ClientConfig::default(), 33, 10_000 * MS);
        // A 15s pause: every timer of the hold fires late, past the TTL.
        tc.local_time_ns = 15_000 * MS as i64;
        let e = fire(&mut c, &mut tc, &granted, |t| {
            matches!(t, Timer::WriteDue { .. })
        });
        assert!(matches!(
            sent(&e)[..],
            [(STORAGE, Message::Write { token: 33, .. })]
        ));
        assert!(observed(&e).is_empty(), "it still believes it holds");
        // The storage refuses it (a newer holder wrote with token 34): recorded as a failed write.
        c.on_message(
            &mut tc.ctx(),
            STORAGE,
            Message::WriteRefused {
                request: last_request(&e),
                highest: 34,
            },
        );
        let e = tc.take_effects();
        assert_eq!(history(&e)[0].0, EventType::Fail);
        assert!(matches!(
            sent(&e)[..],
            [(STORAGE, Message::Write { token: 33, .. })]
        ));
    }

    #[test]
    fn validity_check_stops_writing_once_acquire_time_plus_ttl_passes() {
        let config = ClientConfig {
            validity_check: true,
            ..ClientConfig::default()
        };
        let (mut c, mut tc, granted) = holding(config, 33, 10_000 * MS);
        let validity = timers(&granted)
            .into_iter()
            .find(|(_, _, t)| *t == Timer::ValidityEnd { token: 33 })
            .expect("validity timer");
        assert_eq!(validity.1, 10_000 * MS);
        tc.local_time_ns = 15_000 * MS as i64;
        // Timers fire in deadline order after the pause: write 1, write 2, hold end, validity.
        let e = fire(&mut c, &mut tc, &granted, |t| {
            *t == Timer::ValidityEnd { token: 33 }
        });
        assert_eq!(
            observed(&e),
            vec![Observation::StoppedHolding {
                token: 33,
                why: StopReason::ValidityExpired
            }]
        );
        let e = fire(&mut c, &mut tc, &granted, |t| {
            matches!(t, Timer::WriteDue { .. } | Timer::HoldEnd { .. })
        });
        assert!(
            matches!(sent(&e)[..], [(SERVER, Message::Release { token: 33, .. })]),
            "no write, only the release: {e:?}"
        );
        answer(&mut c, &mut tc, SERVER, &e, |request| Message::NotOwner {
            request,
        });
        assert!(
            observed(&tc.take_effects()).is_empty(),
            "the belief already ended"
        );
    }

    #[test]
    fn a_refused_release_is_a_failed_release_after_the_belief_ended() {
        let config = ClientConfig {
            writes_per_hold: 0,
            ..ClientConfig::default()
        };
        let (mut c, mut tc, granted) = holding(config, 7, 10_000 * MS);
        let e = fire(&mut c, &mut tc, &granted, |t| {
            matches!(t, Timer::HoldEnd { .. })
        });
        answer(&mut c, &mut tc, SERVER, &e, |request| Message::NotOwner {
            request,
        });
        let e = tc.take_effects();
        assert_eq!(
            history(&e),
            vec![(
                EventType::Fail,
                Function::Release,
                Value::Int(7),
                Some("not-owner".into())
            )]
        );
        assert!(
            observed(&e).is_empty(),
            "the belief ended when the release was sent"
        );
    }

    #[test]
    fn unanswered_release_gives_the_lock_up() {
        let config = ClientConfig {
            writes_per_hold: 0,
            ..ClientConfig::default()
        };
        let (mut c, mut tc, granted) = holding(config, 7, 10_000 * MS);
        let e = fire(&mut c, &mut tc, &granted, |t| {
            matches!(t, Timer::HoldEnd { .. })
        });
        let e = fire(&mut c, &mut tc, &e, |t| {
            matches!(t, Timer::RequestTimeout { .. })
        });
        assert_eq!(history(&e)[0].0, EventType::Info);
        assert!(
            observed(&e).is_empty(),
            "the belief ended when the release was sent"
        );
        assert_eq!(timers(&e)[0].2, Timer::Acquire, "the client moves on");
    }

    #[test]
    fn restarted_client_records_under_new_process_ids() {
        let (c, mut tc, _) = acquiring(ClientConfig::default());
        let before = c.process_id();
        tc.crash();
        let mut c = LockClient::new(ME, SERVER, STORAGE, ClientConfig::default());
        c.on_start(&mut tc.ctx());
        assert_eq!(c.process_id(), before + ROUNDS_PER_EPOCH);
    }

    #[test]
    fn no_acquire_starts_at_or_after_stop() {
        let mut tc = TestContext::new(ME, 7);
        let mut c = LockClient::new(
            ME,
            SERVER,
            STORAGE,
            ClientConfig {
                stop: Some(Duration::from_secs(1)),
                ..ClientConfig::default()
            },
        );
        c.on_start(&mut tc.ctx());
        let e = tc.take_effects();
        tc.local_time_ns = 1_000 * MS as i64;
        let e = fire(&mut c, &mut tc, &e, |t| *t == Timer::Acquire);
        assert!(sent(&e).is_empty());
        assert!(history(&e).is_empty());
    }

    #[test]
    fn config_validation_names_the_key() {
        assert!(ClientConfig::default().validate().is_empty());
        let bad = ClientConfig {
            retry_delay_min: Duration::from_secs(2),
            retry_delay_max: Duration::from_secs(1),
            writes_per_hold: 5000,
            stop: Some(Duration(0)),
            hold: Duration(0),
            ..ClientConfig::default()
        };
        let errors = bad.validate();
        let keys: Vec<&str> = errors.iter().map(|e| e.path[0].as_str()).collect();
        assert_eq!(
            keys,
            vec!["hold", "retry_delay_max", "writes_per_hold", "stop"]
        );
        assert!(toml::from_str::<ClientConfig>("holds = \"1s\"").is_err());
        let c: ClientConfig = toml::from_str("hold = \"2s\"\nwrites_per_hold = 4").unwrap();
        assert_eq!((c.hold, c.writes_per_hold), (Duration::from_secs(2), 4));
    }
}
