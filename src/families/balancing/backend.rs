//! The `backend` role: a service instance that serves [`BalancingMessage::Request`]s.
//!
//! Each request takes a service time drawn from `latency` (the same distributions as the
//! network's `[network] latency`), on one of `capacity` slots (concurrent requests). A request
//! that finds every slot busy waits in a FIFO queue of at most `queue_limit` requests; beyond
//! it the backend answers `rejected` at once (Google SRE book, "Handling Overload": a
//! refusal costs almost nothing). A served request fails with probability `error_rate`. An
//! optional `rate_limit` (token bucket, sliding window or leaky bucket) rejects or holds
//! requests before they reach the slots.
//!
//! **Conditions** (the issue's backend condition fault) change a backend over time, on its
//! local clock: `slow` multiplies the service time by `factor`; `failing` fails requests with
//! probability `error_rate` (default 1), answered at once (a fast failure: a 503 from a broken
//! dependency); `flapping` alternates failing and healthy every `period`, failing first;
//! `dead` answers nothing (requests and probes are dropped; it still sends heartbeats, so a
//! registry keeps listing it: a gray failure). The simulator's own faults make a backend slow
//! or dead too: a `degrade` fault on its links (latency), a `crash` (and `restart`), a `pause`.
//!
//! **Registration.** When the scenario has a registry role (`coordination` or `eureka`), each
//! backend registers itself with it through the registry family's [`ServiceInstance`] (TTL
//! heartbeats, graceful `leave_at`), composed, not copied: the backend routes the instance's
//! agent messages and timers to it. With no registry role the backends are a static list.
//!
//! **Downstream.** With `downstream = { role = "db", ... }` every request, after its service
//! time and while holding its slot, calls the backends of role `db` through a [`Caller`] (its
//! strategy, retries, breakers, timeouts, with the caller options in the same table); the
//! request is answered `ok` when the downstream call succeeded, else `error`, or `fallback`
//! when the table says `fallback = true`. Layers of such backends make the retry storm.
//!
//! Every second of its local clock a backend reports [`Observation::Load`]; it answers every
//! [`BalancingMessage::Probe`] with whether it considers itself healthy (not failing).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::caller::{Caller, CallerConfig, CallerTimer, Outcome, build_caller, index_in_role};
use super::limiter::{Admission, RateLimitConfig, RateLimiter};
use super::strategy::Endpoint;
use super::{BalancingMessage, Observation, Status};
use crate::families::registry::instance::InstanceConfig;
use crate::families::registry::{REGISTRY_PROTOCOLS, instance_process, registry_role};
use crate::families::{MAX_OPTION_DURATION, check_duration};
use crate::family::{self, Configured, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use crate::process::{AnyProcess, Context, Message, NodeId, TimerId};
use crate::scenario::{Duration, LatencyDistribution, LatencySpec};
use crate::sim::network::Latency;

/// Most concurrent requests (`capacity`) and most queued ones (`queue_limit`).
pub const MAX_CAPACITY: u32 = 100_000;
/// Most conditions one backend role may list.
pub const MAX_CONDITIONS: usize = 64;
/// Largest `slow` factor.
pub const MAX_SLOW_FACTOR: f64 = 1000.0;
/// Time between load reports (1 s of the backend's local clock).
pub const LOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Options of a `backend` role. Durations are on the backend's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// Service time of one request (default a constant `10ms`; any `[network] latency`
    /// form; at most 1 hour).
    #[serde(default = "default_latency")]
    pub latency: LatencySpec,
    /// Requests served at once (default 100, from 1 to 100,000).
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// Requests waiting for a slot (default 0, at most 100,000); beyond it: `rejected`.
    #[serde(default)]
    pub queue_limit: u32,
    /// Probability (0 to 1) that a served request fails (default 0).
    #[serde(default)]
    pub error_rate: f64,
    /// A rate limit on incoming requests (default none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Time-varying conditions (at most 64).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ConditionSpec>,
    /// Registration with the registry role, when the scenario has one (the registry family's
    /// `service-instance` options: `registry`, `service`, `ttl`, `heartbeat_interval`,
    /// `request_timeout`, `tags`, `weight`, `leave_at`).
    #[serde(default = "default_registration")]
    pub registration: InstanceConfig,
    /// A downstream service called for every request: `role` (a backend role) and the
    /// caller options (strategy, retry, breaker, timeout, fallback, ...). Default none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downstream: Option<toml::Table>,
}

fn default_latency() -> LatencySpec {
    LatencySpec::Constant(Duration::from_millis(10))
}
fn default_capacity() -> u32 {
    100
}
fn default_registration() -> InstanceConfig {
    crate::family::parse_options(&toml::Table::new()).expect("instance defaults")
}

/// The `downstream` table of a backend: the role called and the caller's options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownstreamConfig {
    /// The backend role called.
    pub role: String,
    /// How it is called.
    #[serde(flatten)]
    pub caller: CallerConfig,
}

/// What a condition does while it lasts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConditionKind {
    /// Service times multiplied by `factor`.
    Slow,
    /// Requests fail at once with probability `error_rate`; probes answer unhealthy.
    Failing,
    /// Failing for `period`, healthy for `period`, and so on.
    Flapping,
    /// Answers nothing.
    Dead,
}

/// One time-varying condition of a backend role (every node of the role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionSpec {
    /// Start, on the backend's local clock.
    pub at: Duration,
    /// How long it lasts (default: to the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// What it does.
    pub kind: ConditionKind,
    /// `slow`: the service-time factor (default 10, from 1 to 1000).
    #[serde(default = "default_factor")]
    pub factor: f64,
    /// `failing`, `flapping`: the probability a request fails (default 1).
    #[serde(default = "default_failing_rate")]
    pub error_rate: f64,
    /// `flapping`: the length of each failing and each healthy spell (default 1s, from 1 ms).
    #[serde(default = "default_period")]
    pub period: Duration,
    /// Only these nodes of the role (names; default: every node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

fn default_factor() -> f64 {
    10.0
}
fn default_failing_rate() -> f64 {
    1.0
}
fn default_period() -> Duration {
    Duration::from_secs(1)
}

fn check_probability(errors: &mut Vec<OptionError>, path: &[&str], p: f64) {
    if !(0.0..=1.0).contains(&p) {
        errors.push(OptionError::at_path(
            path,
            format!("expected a probability from 0 to 1, found {p}"),
        ));
    }
}

/// Problems of a latency option at `key`: the `[network] latency` rules with the family's
/// 1-hour limit.
pub fn check_latency(errors: &mut Vec<OptionError>, key: &str, spec: &LatencySpec) {
    let mut at = |sub: Option<&str>, d: Duration| {
        let path: Vec<&str> = std::iter::once(key).chain(sub).collect();
        if d > MAX_OPTION_DURATION {
            errors.push(OptionError::at_path(
                &path,
                format!("expected at most {MAX_OPTION_DURATION}, found {d}"),
            ));
        }
    };
    match spec {
        LatencySpec::Constant(d) => at(None, *d),
        LatencySpec::Distribution(LatencyDistribution::Constant { value }) => {
            at(Some("value"), *value)
        }
        LatencySpec::Distribution(LatencyDistribution::Uniform { min, max }) => {
            at(Some("max"), *max);
            if min > max {
                errors.push(OptionError::at_path(
                    &[key, "max"],
                    format!("empty range: max ({max}) is below min ({min})"),
                ));
            }
        }
        LatencySpec::Distribution(LatencyDistribution::Exponential { mean, min, max }) => {
            at(Some("mean"), *mean);
            if mean <= min {
                errors.push(OptionError::at_path(
                    &[key, "mean"],
                    format!("expected mean ({mean}) above min ({min})"),
                ));
            }
            if max.is_some_and(|m| m < *mean) {
                errors.push(OptionError::at_path(
                    &[key, "max"],
                    "expected max at least the mean",
                ));
            }
        }
        LatencySpec::Distribution(LatencyDistribution::Normal { mean, std_dev, max }) => {
            at(Some("mean"), *mean);
            at(Some("std_dev"), *std_dev);
            if max.is_some_and(|m| m < *mean) {
                errors.push(OptionError::at_path(
                    &[key, "max"],
                    "expected max at least the mean",
                ));
            }
        }
    }
}

impl BackendConfig {
    /// Range problems of the backend's own options, each at its key (the downstream table is
    /// checked by the role's configure).
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        check_latency(&mut errors, "latency", &self.latency);
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            errors.push(OptionError::at(
                "capacity",
                format!("expected from 1 to {MAX_CAPACITY}, found {}", self.capacity),
            ));
        }
        if self.queue_limit > MAX_CAPACITY {
            errors.push(OptionError::at(
                "queue_limit",
                format!(
                    "expected at most {MAX_CAPACITY}, found {}",
                    self.queue_limit
                ),
            ));
        }
        check_probability(&mut errors, &["error_rate"], self.error_rate);
        if let Some(r) = &self.rate_limit {
            errors.extend(under("rate_limit", r.validate()));
        }
        errors.extend(under("registration", self.registration.validate()));
        if self.conditions.len() > MAX_CONDITIONS {
            errors.push(OptionError::at(
                "conditions",
                format!(
                    "expected at most {MAX_CONDITIONS} conditions, found {}",
                    self.conditions.len()
                ),
            ));
        }
        for (i, c) in self.conditions.iter().enumerate() {
            let i = i.to_string();
            let mut found = Vec::new();
            check_duration(&mut found, "at", c.at, true);
            if let Some(d) = c.duration {
                check_duration(&mut found, "duration", d, false);
            }
            crate::families::check_duration_from(
                &mut found,
                "period",
                c.period,
                Duration::from_millis(1),
            );
            if !(1.0..=MAX_SLOW_FACTOR).contains(&c.factor) {
                found.push(OptionError::at(
                    "factor",
                    format!("expected from 1 to {MAX_SLOW_FACTOR}, found {}", c.factor),
                ));
            }
            check_probability(&mut found, &["error_rate"], c.error_rate);
            errors.extend(under("conditions", under(&i, found).collect()));
        }
        errors
    }
}

/// A condition as one node applies it, in local nanoseconds.
#[derive(Clone, Debug)]
struct Condition {
    start: u64,
    end: u64,
    kind: ConditionKind,
    factor: f64,
    error_rate: f64,
    period: u64,
}

/// What the conditions in force say at one instant.
#[derive(Copy, Clone, Debug, PartialEq)]
struct State {
    dead: bool,
    /// Probability of a fast failure.
    failing: f64,
    slow: f64,
}

/// The backend's own timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum BackendTimer {
    /// Request `id` of `from` finished its service time.
    Done {
        /// The requester.
        from: NodeId,
        /// Its request id.
        id: u64,
        /// The routing key (for the downstream call).
        key: u64,
    },
    /// Request `id` of `from`, held by the rate limiter, may go on now.
    Admitted {
        /// The requester.
        from: NodeId,
        /// Its request id.
        id: u64,
        /// The routing key.
        key: u64,
    },
    /// Time for the load report.
    Report,
}

/// Counters of the current load-report second.
#[derive(Clone, Debug, Default)]
struct Load {
    finished: u32,
    errors: u32,
    rejected: u32,
    in_flight_max: u32,
    queue_max: u32,
}

/// A `backend` node. See the module docs.
pub struct Backend {
    latency: Latency,
    capacity: u32,
    queue_limit: u32,
    error_rate: f64,
    limiter: Option<RateLimiter>,
    conditions: Vec<Condition>,
    registration: Option<Box<dyn AnyProcess>>,
    downstream: Option<Caller>,
    /// Downstream calls in flight: tag -> (requester, its id).
    waiting: BTreeMap<u64, (NodeId, u64)>,
    next_tag: u64,
    in_service: u32,
    queue: VecDeque<(NodeId, u64, u64)>,
    load: Load,
}

impl Backend {
    /// Backend node `me` (a name of the role, for conditions that name nodes) with its
    /// options, its registration (an erased [`ServiceInstance`], if registering) and its
    /// downstream caller (if any).
    pub fn new(
        config: &BackendConfig,
        me: &str,
        registration: Option<Box<dyn AnyProcess>>,
        downstream: Option<Caller>,
    ) -> Backend {
        let conditions = config
            .conditions
            .iter()
            .filter(|c| c.nodes.is_empty() || c.nodes.iter().any(|n| n == me))
            .map(|c| Condition {
                start: c.at.as_nanos(),
                end: c
                    .duration
                    .map_or(u64::MAX, |d| c.at.as_nanos().saturating_add(d.as_nanos())),
                kind: c.kind,
                factor: c.factor,
                error_rate: c.error_rate,
                period: c.period.as_nanos().max(1),
            })
            .collect();
        Backend {
            latency: Latency::from_spec(&config.latency),
            capacity: config.capacity,
            queue_limit: config.queue_limit,
            error_rate: config.error_rate,
            limiter: config.rate_limit.as_ref().map(RateLimiter::new),
            conditions,
            registration,
            downstream,
            waiting: BTreeMap::new(),
            next_tag: 0,
            in_service: 0,
            queue: VecDeque::new(),
            load: Load::default(),
        }
    }

    fn state(&self, now: u64) -> State {
        let mut s = State {
            dead: false,
            failing: 0.0,
            slow: 1.0,
        };
        for c in &self.conditions {
            if now < c.start || now >= c.end {
                continue;
            }
            match c.kind {
                ConditionKind::Dead => s.dead = true,
                ConditionKind::Slow => s.slow *= c.factor,
                ConditionKind::Failing => s.failing = s.failing.max(c.error_rate),
                ConditionKind::Flapping => {
                    if ((now - c.start) / c.period).is_multiple_of(2) {
                        s.failing = s.failing.max(c.error_rate);
                    }
                }
            }
        }
        s
    }

    fn answer(
        &mut self,
        ctx: &mut Context<'_>,
        to: NodeId,
        id: u64,
        status: Status,
        attempts: u32,
    ) {
        self.load.finished += 1;
        match status {
            Status::Error => self.load.errors += 1,
            Status::Rejected => self.load.rejected += 1,
            _ => {}
        }
        ctx.send(
            to,
            BalancingMessage::Response {
                id,
                status,
                backend: ctx.id(),
                attempts,
            },
        );
    }

    fn on_request(&mut self, ctx: &mut Context<'_>, from: NodeId, id: u64, key: u64) {
        let now = super::now_ns(ctx);
        if self.state(now).dead {
            return;
        }
        if let Some(limiter) = self.limiter.as_mut() {
            match limiter.admit(now) {
                Admission::Now => {}
                Admission::After { delay_ns } => {
                    ctx.set_timer(
                        std::time::Duration::from_nanos(delay_ns),
                        BackendTimer::Admitted { from, id, key },
                    );
                    return;
                }
                Admission::Reject => {
                    self.answer(ctx, from, id, Status::Rejected, 1);
                    return;
                }
            }
        }
        self.admitted(ctx, from, id, key);
    }

    fn admitted(&mut self, ctx: &mut Context<'_>, from: NodeId, id: u64, key: u64) {
        let now = super::now_ns(ctx);
        let state = self.state(now);
        if state.dead {
            return;
        }
        if state.failing > 0.0 && rand::Rng::gen_bool(ctx.rng(), state.failing) {
            self.answer(ctx, from, id, Status::Error, 1);
            return;
        }
        if self.in_service < self.capacity {
            self.serve(ctx, from, id, key, state.slow);
        } else if (self.queue.len() as u32) < self.queue_limit {
            self.queue.push_back((from, id, key));
            self.load.queue_max = self.load.queue_max.max(self.queue.len() as u32);
        } else {
            self.answer(ctx, from, id, Status::Rejected, 1);
        }
    }

    fn serve(&mut self, ctx: &mut Context<'_>, from: NodeId, id: u64, key: u64, slow: f64) {
        self.in_service += 1;
        self.load.in_flight_max = self.load.in_flight_max.max(self.in_service);
        let base = self.latency.sample(ctx.rng());
        let time = if slow == 1.0 {
            base
        } else {
            (base as f64 * slow) as u64
        };
        ctx.set_timer(
            std::time::Duration::from_nanos(time),
            BackendTimer::Done { from, id, key },
        );
    }

    /// A slot is free: the next queued request takes it.
    fn release(&mut self, ctx: &mut Context<'_>) {
        self.in_service = self.in_service.saturating_sub(1);
        let now = super::now_ns(ctx);
        let state = self.state(now);
        if let Some((from, id, key)) = self.queue.pop_front() {
            self.serve(ctx, from, id, key, state.slow);
        }
    }

    fn done(&mut self, ctx: &mut Context<'_>, from: NodeId, id: u64, key: u64) {
        let now = super::now_ns(ctx);
        if let Some(caller) = self.downstream.as_mut() {
            self.next_tag += 1;
            let tag = self.next_tag;
            self.waiting.insert(tag, (from, id));
            if let Some(outcome) = caller.call(ctx, key, tag) {
                self.downstream_done(ctx, outcome);
            }
            return;
        }
        let dead = self.state(now).dead;
        let failed = self.error_rate > 0.0 && rand::Rng::gen_bool(ctx.rng(), self.error_rate);
        if !dead {
            let status = if failed { Status::Error } else { Status::Ok };
            self.answer(ctx, from, id, status, 1);
        }
        self.release(ctx);
    }

    fn downstream_done(&mut self, ctx: &mut Context<'_>, outcome: Outcome) {
        let Some((from, id)) = self.waiting.remove(&outcome.tag) else {
            return;
        };
        let now = super::now_ns(ctx);
        let status = match outcome.status {
            Status::Ok => {
                if self.error_rate > 0.0 && rand::Rng::gen_bool(ctx.rng(), self.error_rate) {
                    Status::Error
                } else {
                    Status::Ok
                }
            }
            Status::Fallback => Status::Fallback,
            _ => Status::Error,
        };
        if !self.state(now).dead {
            self.answer(ctx, from, id, status, outcome.attempts.max(1));
        }
        self.release(ctx);
    }

    fn report(&mut self, ctx: &mut Context<'_>) {
        let load = std::mem::take(&mut self.load);
        ctx.observe(Observation::Load {
            finished: load.finished,
            errors: load.errors,
            rejected: load.rejected,
            in_flight_max: load.in_flight_max,
            queue_max: load.queue_max,
        });
        self.load.in_flight_max = self.in_service;
        self.load.queue_max = self.queue.len() as u32;
        ctx.set_timer(LOAD_INTERVAL.to_std(), BackendTimer::Report);
    }

    fn on_balancing(&mut self, ctx: &mut Context<'_>, from: NodeId, message: BalancingMessage) {
        match message {
            BalancingMessage::Request { id, key } => self.on_request(ctx, from, id, key),
            BalancingMessage::Probe { id } => {
                let now = super::now_ns(ctx);
                let state = self.state(now);
                if !state.dead {
                    ctx.send(
                        from,
                        BalancingMessage::ProbeReply {
                            id,
                            healthy: state.failing == 0.0,
                        },
                    );
                }
            }
            other => {
                if let Some(caller) = self.downstream.as_mut()
                    && let Some(outcome) = caller.on_message(ctx, from, &other)
                {
                    self.downstream_done(ctx, outcome);
                }
            }
        }
    }

    fn on_own_timer(&mut self, ctx: &mut Context<'_>, timer: BackendTimer) {
        match timer {
            BackendTimer::Done { from, id, key } => self.done(ctx, from, id, key),
            BackendTimer::Admitted { from, id, key } => self.admitted(ctx, from, id, key),
            BackendTimer::Report => self.report(ctx),
        }
    }
}

impl AnyProcess for Backend {
    fn start(&mut self, ctx: &mut Context<'_>) {
        if let Some(r) = self.registration.as_mut() {
            r.start(ctx);
        }
        if let Some(c) = self.downstream.as_mut() {
            c.start(ctx);
        }
        ctx.set_timer(LOAD_INTERVAL.to_std(), BackendTimer::Report);
    }

    fn message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        let message = match message.downcast::<BalancingMessage>() {
            Ok(m) => {
                self.on_balancing(ctx, from, m);
                return Ok(());
            }
            Err(other) => other,
        };
        match self.registration.as_mut() {
            Some(r) => r.message(ctx, from, message),
            None => Err(message),
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Message) -> Result<(), Message> {
        let timer = match timer.downcast::<BackendTimer>() {
            Ok(t) => {
                self.on_own_timer(ctx, t);
                return Ok(());
            }
            Err(other) => other,
        };
        let timer = match timer.downcast::<CallerTimer>() {
            Ok(t) => {
                if let Some(caller) = self.downstream.as_mut()
                    && let Some(outcome) = caller.on_timer(ctx, t)
                {
                    self.downstream_done(ctx, outcome);
                }
                return Ok(());
            }
            Err(other) => other,
        };
        match self.registration.as_mut() {
            Some(r) => r.timer(ctx, id, timer),
            None => Err(timer),
        }
    }
}

/// The static endpoints of a role's nodes (weight 1 each).
pub fn static_endpoints(nodes: &[NodeId]) -> Vec<Endpoint> {
    nodes
        .iter()
        .map(|&node| Endpoint { node, weight: 1 })
        .collect()
}

/// The `backend` protocol's name.
pub const PROTOCOL_NAME: &str = "backend";

/// The `backend` role.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: PROTOCOL_NAME,
    summary: "a service instance serving requests with a latency distribution, a capacity and queue, an error rate, a rate limit and time-varying conditions (slow, failing, flapping, dead); registers with a registry role if there is one; may call a downstream backend role",
    serves: &[super::client::WORKLOAD_NAME],
    bugs: &[],
    built_on: &[],
    configure,
};

/// Prefixes every error's path with `key`.
pub fn under(key: &str, errors: Vec<OptionError>) -> impl Iterator<Item = OptionError> + '_ {
    errors.into_iter().map(move |mut e| {
        e.path.insert(0, key.to_string());
        e
    })
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let mut config: BackendConfig = family::parse_options(ctx.options)?;
    if config.registration.service.is_empty() {
        config.registration.service = ctx.name.to_string();
    }
    let mut errors = if ctx.checking {
        config.validate()
    } else {
        Vec::new()
    };
    if ctx.checking {
        for (i, c) in config.conditions.iter().enumerate() {
            for (j, n) in c.nodes.iter().enumerate() {
                if !ctx.nodes.iter().any(|&id| ctx.topology.name(id) == n) {
                    errors.push(OptionError::at_path(
                        &["conditions", &i.to_string(), "nodes", &j.to_string()],
                        format!("expected a node of role {}, found \"{n}\"", ctx.name),
                    ));
                }
            }
        }
    }
    let any_registry = ctx
        .scenario
        .cluster
        .roles
        .iter()
        .any(|r| REGISTRY_PROTOCOLS.contains(&r.protocol.as_str()));
    let registry = if any_registry || !config.registration.registry.is_empty() {
        match registry_role(ctx, &config.registration.registry) {
            Ok(found) => {
                config.registration.registry = found.0.clone();
                Some(found)
            }
            Err(e) => {
                errors.extend(under("registration", vec![e]));
                None
            }
        }
    } else {
        None
    };
    let downstream = match &config.downstream {
        None => None,
        Some(table) => {
            match family::parse_flattened_options::<DownstreamConfig>(
                table,
                super::caller::UNLISTED,
            ) {
                Ok(d) => {
                    if ctx.checking {
                        errors.extend(under("downstream", d.caller.validate(&[], PROTOCOL_NAME)));
                        errors.extend(under("downstream", check_downstream(ctx, &d)));
                    }
                    Some(d)
                }
                Err(e) => {
                    errors.extend(under("downstream", e));
                    None
                }
            }
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolved = config.clone();
    Ok(Configured {
        options: family::resolved_options(&resolved),
        build: Arc::new(move |setup: &NodeSetup| {
            let me = setup.topology.name(setup.id);
            let index = index_in_role(setup);
            let registration = registry.as_ref().map(|(role, protocol)| {
                instance_process(setup, &config.registration, role, protocol)
            });
            let caller = downstream
                .as_ref()
                .map(|d| build_caller(setup, index, &d.caller, &d.role, None));
            Box::new(Backend::new(&config, me, registration, caller))
        }),
    })
}

/// The downstream role exists, runs `backend`, and no chain of downstreams leads back here.
fn check_downstream(ctx: &RoleContext<'_>, d: &DownstreamConfig) -> Vec<OptionError> {
    let mut errors = Vec::new();
    if d.caller.discovery.is_some() {
        errors.push(OptionError::at(
            "discovery",
            "a backend calls its downstream role's nodes directly (a static list); discovery is for balancers and clients",
        ));
    }
    let roles = &ctx.scenario.cluster.roles;
    let downstream_of = |name: &str| -> Option<String> {
        let role = roles.iter().find(|r| r.name == name)?;
        role.options
            .get("downstream")?
            .get("role")?
            .as_str()
            .map(str::to_string)
    };
    match roles.iter().find(|r| r.name == d.role) {
        Some(r) if r.protocol == PROTOCOL_NAME => {
            let mut seen = vec![ctx.name.to_string()];
            let mut next = Some(d.role.clone());
            while let Some(name) = next {
                if seen.contains(&name) {
                    errors.push(OptionError::at(
                        "role",
                        format!(
                            "the downstream chain {} -> {name} is a cycle",
                            seen.join(" -> ")
                        ),
                    ));
                    break;
                }
                next = downstream_of(&name);
                seen.push(name);
            }
        }
        _ => errors.push(OptionError::at(
            "role",
            format!(
                "expected a role running {PROTOCOL_NAME}, found \"{}\"",
                d.role
            ),
        )),
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use crate::process::{TestContext, observations, sent_messages, timers_set};

    fn config(text: &str) -> BackendConfig {
        let table: toml::Table = toml::from_str(text).expect("toml");
        family::parse_options(&table).expect("options")
    }

    fn request(p: &mut Backend, tc: &mut TestContext, from: u32, id: u64) {
        p.message(
            &mut tc.ctx(),
            NodeId(from),
            Payload::new(BalancingMessage::Request { id, key: 7 }),
        )
        .expect("a balancing message");
    }

    fn fire(p: &mut Backend, tc: &mut TestContext, timer: BackendTimer) {
        p.timer(&mut tc.ctx(), TimerId(0), Payload::new(timer))
            .expect("a backend timer");
    }

    fn answers(tc: &mut TestContext) -> Vec<(NodeId, u64, Status)> {
        sent_messages::<BalancingMessage>(&tc.take_effects())
            .into_iter()
            .filter_map(|(to, m)| match m {
                BalancingMessage::Response { id, status, .. } => Some((to, id, status)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_request_is_served_after_its_service_time_and_over_capacity_it_queues_then_is_rejected() {
        let c = config("latency = \"20ms\"\ncapacity = 1\nqueue_limit = 1");
        let mut p = Backend::new(&c, "web1", None, None);
        let mut tc = TestContext::new(NodeId(3), 1);
        p.start(&mut tc.ctx());
        tc.take_effects();
        request(&mut p, &mut tc, 9, 1);
        let timers = timers_set::<BackendTimer>(&tc.take_effects());
        assert_eq!(timers.len(), 1);
        assert_eq!(timers[0].1, std::time::Duration::from_millis(20));
        request(&mut p, &mut tc, 9, 2); // queued
        request(&mut p, &mut tc, 9, 3); // queue full
        assert_eq!(answers(&mut tc), [(NodeId(9), 3, Status::Rejected)]);
        fire(&mut p, &mut tc, timers[0].2.clone());
        let effects = tc.take_effects();
        let sent = sent_messages::<BalancingMessage>(&effects);
        assert!(matches!(
            sent[0].1,
            BalancingMessage::Response {
                id: 1,
                status: Status::Ok,
                attempts: 1,
                ..
            }
        ));
        // The queued request took the freed slot.
        assert_eq!(timers_set::<BackendTimer>(&effects).len(), 1);
        fire(&mut p, &mut tc, BackendTimer::Report);
        let load = observations::<Observation>(&tc.take_effects());
        assert_eq!(
            load,
            [Observation::Load {
                finished: 2,
                errors: 0,
                rejected: 1,
                in_flight_max: 1,
                queue_max: 1
            }]
        );
    }

    #[test]
    fn conditions_make_a_backend_slow_failing_flapping_or_dead_on_its_local_clock() {
        let c = config(
            r#"latency = "10ms"
conditions = [
  { at = "1s", duration = "1s", kind = "slow", factor = 5 },
  { at = "2s", duration = "1s", kind = "failing" },
  { at = "3s", duration = "2s", kind = "flapping", period = "500ms" },
  { at = "5s", kind = "dead", nodes = ["web2"] },
]"#,
        );
        let mut p = Backend::new(&c, "web1", None, None);
        let mut dead = Backend::new(&c, "web2", None, None);
        let mut tc = TestContext::new(NodeId(3), 1);
        let at = |s: f64| (s * 1e9) as i64;
        tc.local_time_ns = at(1.5);
        request(&mut p, &mut tc, 9, 1);
        let t = timers_set::<BackendTimer>(&tc.take_effects());
        assert_eq!(t[0].1, std::time::Duration::from_millis(50), "slow: 5x");
        tc.local_time_ns = at(2.5);
        request(&mut p, &mut tc, 9, 2);
        assert_eq!(
            answers(&mut tc),
            [(NodeId(9), 2, Status::Error)],
            "fails fast"
        );
        p.message(
            &mut tc.ctx(),
            NodeId(9),
            Payload::new(BalancingMessage::Probe { id: 5 }),
        )
        .unwrap();
        assert_eq!(
            sent_messages::<BalancingMessage>(&tc.take_effects()),
            [(
                NodeId(9),
                BalancingMessage::ProbeReply {
                    id: 5,
                    healthy: false
                }
            )]
        );
        tc.local_time_ns = at(3.2); // flapping: failing spell
        request(&mut p, &mut tc, 9, 3);
        assert_eq!(answers(&mut tc), [(NodeId(9), 3, Status::Error)]);
        tc.local_time_ns = at(3.7); // healthy spell
        request(&mut p, &mut tc, 9, 4);
        assert!(answers(&mut tc).is_empty(), "served, not failed");
        tc.local_time_ns = at(6.0);
        request(&mut dead, &mut tc, 9, 5);
        dead.message(
            &mut tc.ctx(),
            NodeId(9),
            Payload::new(BalancingMessage::Probe { id: 6 }),
        )
        .unwrap();
        assert!(
            tc.take_effects().is_empty(),
            "a dead backend answers nothing"
        );
        request(&mut p, &mut tc, 9, 6);
        assert_eq!(
            timers_set::<BackendTimer>(&tc.take_effects()).len(),
            1,
            "only web2 is dead"
        );
    }

    #[test]
    fn backend_options_are_checked_at_their_keys() {
        let c = config(
            r#"capacity = 0
error_rate = 2.0
latency = { distribution = "uniform", min = "5ms", max = "1ms" }
conditions = [{ at = "1s", kind = "slow", factor = 0.5 }]"#,
        );
        let paths: Vec<String> = c.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(
            paths,
            [
                "latency.max",
                "capacity",
                "error_rate",
                "conditions.0.factor"
            ]
        );
    }

    #[test]
    fn a_backend_with_a_downstream_answers_after_the_downstream_call_with_its_fallback() {
        let c = config("latency = \"1ms\"");
        let table: toml::Table =
            toml::from_str("role = \"db\"\nfallback = true\nretry = { max_attempts = 1 }").unwrap();
        let d: DownstreamConfig =
            family::parse_flattened_options(&table, crate::families::balancing::caller::UNLISTED)
                .unwrap();
        let caller = Caller::new(&d.caller, static_endpoints(&[NodeId(20)]), None);
        let mut p = Backend::new(&c, "web1", None, Some(caller));
        let mut tc = TestContext::new(NodeId(3), 1);
        p.start(&mut tc.ctx());
        tc.take_effects();
        request(&mut p, &mut tc, 9, 1);
        let t = timers_set::<BackendTimer>(&tc.take_effects());
        fire(&mut p, &mut tc, t[0].2.clone());
        let sent = sent_messages::<BalancingMessage>(&tc.take_effects());
        let [(NodeId(20), BalancingMessage::Request { id, key: 7 })] = sent[..] else {
            panic!("expected a downstream request, got {sent:?}");
        };
        p.message(
            &mut tc.ctx(),
            NodeId(20),
            Payload::new(BalancingMessage::Response {
                id,
                status: Status::Error,
                backend: NodeId(20),
                attempts: 1,
            }),
        )
        .unwrap();
        assert_eq!(answers(&mut tc), [(NodeId(9), 1, Status::Fallback)]);
    }
}
