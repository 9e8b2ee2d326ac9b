//! The `requests` workload: open-loop clients (a request goes out on schedule whether or not
//! the earlier ones were answered, as real users do; Schroeder et al., "Open versus closed: a
//! cautionary tale", NSDI 2006). Each client sends `rate` requests per second, at a fixed
//! interval (with a random phase per client) or as a Poisson process, each for a key drawn
//! from `keys` keys, uniformly or by a Zipf law of exponent `zipf_exponent` (key `k` drawn with
//! probability proportional to `1 / (k + 1)^s`: a few hot keys, a long tail of cold ones).
//!
//! A client talks either to a `balancer` role (it sends each request to its home balancer,
//! by client index, and waits `timeout` for the answer) or straight to backends with the
//! client-side call pipeline ([`Caller`], the same library the balancer uses): a backend role,
//! as a static list of its nodes or, with the `discovery` option, as the instances registered
//! for its service in a registry role.
//!
//! # History
//!
//! One operation per request, `f = "request"`, its key the routing key (a decimal string). A
//! request is its own process (open loop: requests overlap), so process ids are
//! `client index * 2^48 + (incarnation mod 2^16) * 2^32 + request number`: unique across
//! concurrent requests, clients and restarts (a client sends fewer than 2^32 requests in one
//! life: 100,000 per second for an hour is 3.6 * 10^8). `ok`: value `[backend, attempts]` (the node
//! index of the last backend tried, the attempts spent by whoever routed it), with a third
//! element `"fallback"` when the answer was a fallback. `fail` (the request was refused: the
//! system says it was not served): error `error`, `rejected` or `unavailable`, value
//! `[backend, attempts]`. `info` (outcome unknown): error `timeout`.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng;
use rand_distr::{Distribution, Exp, Zipf};
use serde::{Deserialize, Serialize};

use super::caller::{Caller, CallerConfig, CallerTimer, Outcome, build_caller, resolve_discovery};
use super::{BalancingMessage, Status};
use crate::families::{check_duration, check_duration_from};
use crate::family::{
    self, Configured, HistoryTraits, NodeSetup, OptionError, RoleContext, WorkloadInfo,
};
use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{AnyProcess, Context, Message, NodeId, TimerId};
use crate::scenario::Duration;

/// Disk key of a client's incarnation counter.
pub const EPOCH_KEY: &str = "requests/epoch";
/// Highest `rate` (requests per second per client).
pub const MAX_RATE: f64 = 100_000.0;
/// Largest keyspace.
pub const MAX_KEYS: u64 = 1 << 40;
/// Largest Zipf exponent.
pub const MAX_ZIPF_EXPONENT: f64 = 10.0;

/// How requests are spaced.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Arrival {
    /// Every `1 / rate` seconds, from a random phase.
    Fixed,
    /// Exponential gaps of mean `1 / rate` (a Poisson process).
    #[default]
    Poisson,
}

/// How keys are drawn.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyDistribution {
    /// Every key equally likely.
    #[default]
    Uniform,
    /// Key `k` (from 0) with probability proportional to `1 / (k + 1)^zipf_exponent`.
    Zipf,
}

/// Options of a `requests` client group (the caller options apply when it talks straight to
/// backends). Durations are on the client's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RequestsConfig {
    /// Requests per second per client (default 10, above 0, at most 100,000).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// `poisson` (default) or `fixed`.
    #[serde(default)]
    pub arrival: Arrival,
    /// Keys drawn from (default 1,000, from 1 to 2^40).
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// `uniform` (default) or `zipf`.
    #[serde(default)]
    pub key_distribution: KeyDistribution,
    /// The Zipf law's exponent (default 1, above 0, at most 10).
    #[serde(default = "default_zipf_exponent")]
    pub zipf_exponent: f64,
    /// Talking to a balancer: a request without an answer after this long ends in `info`
    /// (default 5s, from 1 ms).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// First request at this local time (default 0s).
    #[serde(default)]
    pub start: Duration,
    /// No request starts at or after this local time (default: never stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
    /// The client-side call pipeline (used when talking straight to backends).
    #[serde(flatten)]
    pub caller: CallerConfig,
}

fn default_rate() -> f64 {
    10.0
}
fn default_keys() -> u64 {
    1000
}
fn default_zipf_exponent() -> f64 {
    1.0
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(5)
}

impl RequestsConfig {
    /// Range problems of the workload's own keys, each at its key.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            errors.push(OptionError::at(
                "rate",
                format!(
                    "expected above 0 and at most {MAX_RATE}, found {}",
                    self.rate
                ),
            ));
        }
        if !(1..=MAX_KEYS).contains(&self.keys) {
            errors.push(OptionError::at(
                "keys",
                format!("expected from 1 to {MAX_KEYS}, found {}", self.keys),
            ));
        }
        if !(self.zipf_exponent > 0.0 && self.zipf_exponent <= MAX_ZIPF_EXPONENT) {
            errors.push(OptionError::at(
                "zipf_exponent",
                format!(
                    "expected above 0 and at most {MAX_ZIPF_EXPONENT}, found {}",
                    self.zipf_exponent
                ),
            ));
        }
        check_duration_from(
            &mut errors,
            "request_timeout",
            self.request_timeout,
            Duration::from_millis(1),
        );
        check_duration(&mut errors, "start", self.start, true);
        if let Some(stop) = self.stop {
            check_duration(&mut errors, "stop", stop, true);
        }
        errors
    }
}

/// Where a client's requests go.
pub enum Target {
    /// A balancer node (the client's home balancer).
    Balancer(NodeId),
    /// Backends, through the client-side pipeline (boxed: it is large).
    Direct(Box<Caller>),
}

/// The client's own timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum ClientTimer {
    /// Time for the next request.
    Next,
    /// Request `id` (to a balancer) got no answer in time.
    Timeout {
        /// The request.
        id: u64,
    },
}

/// A request in flight.
#[derive(Clone, Debug)]
struct Pending {
    process: u64,
    key: u64,
    timer: Option<TimerId>,
}

/// A `requests` client. See the module docs.
pub struct RequestClient {
    client_index: u32,
    config: RequestsConfig,
    target: Target,
    epoch: u64,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    zipf: Option<Zipf<f64>>,
    gap: Option<Exp<f64>>,
    /// Request numbers spent (the low 32 bits of process ids).
    seq: u64,
}

impl RequestClient {
    /// Client number `client_index` (among every client of the cluster).
    pub fn new(client_index: u32, config: RequestsConfig, target: Target) -> RequestClient {
        let zipf = (config.key_distribution == KeyDistribution::Zipf)
            .then(|| Zipf::new(config.keys, config.zipf_exponent).ok())
            .flatten();
        let gap = (config.arrival == Arrival::Poisson)
            .then(|| Exp::new(config.rate).ok())
            .flatten();
        RequestClient {
            client_index,
            config,
            target,
            epoch: 0,
            next_id: 0,
            pending: BTreeMap::new(),
            zipf,
            gap,
            seq: 0,
        }
    }

    fn interval_ns(&self) -> u64 {
        (1e9 / self.config.rate) as u64
    }

    fn next_gap_ns(&mut self, ctx: &mut Context<'_>) -> u64 {
        match &self.gap {
            Some(exp) => (exp.sample(ctx.rng()) * 1e9) as u64,
            None => self.interval_ns(),
        }
        .max(1)
    }

    fn draw_key(&mut self, ctx: &mut Context<'_>) -> u64 {
        match &self.zipf {
            Some(z) => (z.sample(ctx.rng()) as u64).saturating_sub(1),
            None => ctx.rng().gen_range(0..self.config.keys),
        }
    }

    fn max_in_flight(&self) -> usize {
        self.config.caller.max_in_flight as usize
    }

    fn send_next(&mut self, ctx: &mut Context<'_>) {
        let now = super::now_ns(ctx);
        if self.config.stop.is_some_and(|s| now >= s.as_nanos()) {
            return;
        }
        let gap = self.next_gap_ns(ctx);
        ctx.set_timer(std::time::Duration::from_nanos(gap), ClientTimer::Next);
        let key = self.draw_key(ctx);
        self.seq += 1;
        let process = ((self.client_index as u64) << 48)
            | ((self.epoch & 0xffff) << 32)
            | (self.seq & 0xffff_ffff);
        ctx.record(HistoryEvent::new(
            process,
            EventType::Invoke,
            Function::Request,
            Some(key.to_string()),
            Value::Nil,
        ));
        self.next_id += 1;
        let id = self.next_id;
        if self.pending.len() >= self.max_in_flight() {
            self.pending.insert(
                id,
                Pending {
                    process,
                    key,
                    timer: None,
                },
            );
            self.complete(ctx, id, Status::Rejected, ctx.id(), 0);
            return;
        }
        match &mut self.target {
            Target::Balancer(node) => {
                let node = *node;
                ctx.send(node, BalancingMessage::Request { id, key });
                let timer = ctx.set_timer(
                    self.config.request_timeout.to_std(),
                    ClientTimer::Timeout { id },
                );
                self.pending.insert(
                    id,
                    Pending {
                        process,
                        key,
                        timer: Some(timer),
                    },
                );
            }
            Target::Direct(caller) => {
                self.pending.insert(
                    id,
                    Pending {
                        process,
                        key,
                        timer: None,
                    },
                );
                if let Some(outcome) = caller.call(ctx, key, id) {
                    self.outcome(ctx, outcome);
                }
            }
        }
    }

    fn outcome(&mut self, ctx: &mut Context<'_>, o: Outcome) {
        self.complete(ctx, o.tag, o.status, o.backend, o.attempts);
    }

    /// Records how request `id` ended.
    fn complete(
        &mut self,
        ctx: &mut Context<'_>,
        id: u64,
        status: Status,
        backend: NodeId,
        attempts: u32,
    ) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        if let Some(t) = p.timer {
            ctx.cancel_timer(t);
        }
        let mut value = vec![Value::Int(backend.0 as i64), Value::Int(attempts as i64)];
        let (kind, error) = match status {
            Status::Ok => (EventType::Ok, None),
            Status::Fallback => {
                value.push(Value::Str("fallback".into()));
                (EventType::Ok, None)
            }
            Status::Error => (EventType::Fail, Some("error")),
            Status::Rejected => (EventType::Fail, Some("rejected")),
            Status::Unavailable => (EventType::Fail, Some("unavailable")),
            Status::Timeout => (EventType::Info, Some("timeout")),
        };
        let mut event = HistoryEvent::new(
            p.process,
            kind,
            Function::Request,
            Some(p.key.to_string()),
            Value::List(value),
        );
        if let Some(e) = error {
            event = event.with_error(e);
        }
        ctx.record(event);
    }
}

impl AnyProcess for RequestClient {
    fn start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = crate::families::next_incarnation(ctx.disk(), EPOCH_KEY);
        if let Target::Direct(caller) = &mut self.target {
            caller.start(ctx);
        }
        let now = super::now_ns(ctx);
        let mut first = self.config.start.as_nanos().saturating_sub(now);
        // A random phase, so that clients at a fixed rate do not all send at one instant.
        first += ctx.rng().gen_range(0..self.interval_ns().max(1));
        ctx.set_timer(std::time::Duration::from_nanos(first), ClientTimer::Next);
    }

    fn message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        let message = match message.downcast::<BalancingMessage>() {
            Ok(m) => m,
            Err(other) => {
                return match &mut self.target {
                    Target::Direct(caller) => caller.on_other(ctx, from, other),
                    Target::Balancer(_) => Err(other),
                };
            }
        };
        match &mut self.target {
            Target::Balancer(node) => {
                if let BalancingMessage::Response {
                    id,
                    status,
                    backend,
                    attempts,
                } = message
                    && from == *node
                {
                    self.complete(ctx, id, status, backend, attempts);
                }
            }
            Target::Direct(caller) => {
                if let Some(o) = caller.on_message(ctx, from, &message) {
                    self.outcome(ctx, o);
                }
            }
        }
        Ok(())
    }

    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Message) -> Result<(), Message> {
        let timer = match timer.downcast::<ClientTimer>() {
            Ok(ClientTimer::Next) => {
                self.send_next(ctx);
                return Ok(());
            }
            Ok(ClientTimer::Timeout { id }) => {
                if let Some(p) = self.pending.get_mut(&id) {
                    p.timer = None;
                }
                self.complete(ctx, id, Status::Timeout, ctx.id(), 0);
                return Ok(());
            }
            Err(other) => other,
        };
        let Target::Direct(caller) = &mut self.target else {
            return Err(timer);
        };
        match timer.downcast::<CallerTimer>() {
            Ok(t) => {
                if let Some(o) = caller.on_timer(ctx, t) {
                    self.outcome(ctx, o);
                }
                Ok(())
            }
            Err(other) => caller.on_other_timer(ctx, id, other),
        }
    }
}

/// The `requests` workload's name.
pub const WORKLOAD_NAME: &str = "requests";

/// The `requests` workload.
pub const WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: WORKLOAD_NAME,
    summary: "open-loop clients sending requests at a rate (fixed or Poisson) for keys (uniform or Zipf) to a balancer role, or straight to backends (static or from a registry) with the client-side call pipeline",
    // `fail` often means a designed refusal (a rate limit, an open breaker, a spent retry
    // budget), not lost availability: `balancing-bounds` judges success rates with the
    // scenario's thresholds instead of the generic availability and liveness checks.
    history: HistoryTraits {
        model: None,
        availability: false,
        stale_reads: false,
    },
    bugs: &[],
    configure,
};

/// Keys of [`RequestsConfig`] omitted when unset.
const UNLISTED_KEYS: &[&str] = &[
    "stop",
    "health_check",
    "outlier",
    "breaker",
    "rate_limit",
    "discovery",
    "bugs",
];

/// What a client group's `talks_to` resolves to.
#[derive(Clone, Debug)]
enum Route {
    /// The `talks_to` entry at this position is a balancer role.
    Balancer(usize),
    /// Straight to this backend role.
    Backends(String),
    /// Backends from the registry role (its protocol).
    Registry(String),
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let mut config: RequestsConfig = family::parse_flattened_options(ctx.options, UNLISTED_KEYS)?;
    let mut errors = if ctx.checking {
        let mut e = config.validate();
        e.extend(config.caller.validate(&[], WORKLOAD_NAME));
        e
    } else {
        Vec::new()
    };
    let names: Vec<String> = ctx
        .scenario
        .clients
        .iter()
        .find(|g| g.name == ctx.name)
        .map(|g| g.talks_to.clone())
        .unwrap_or_default();
    let protocols: Vec<&str> = ctx.talks_to.iter().map(|p| p.name).collect();
    let route = if let Some(i) = protocols
        .iter()
        .position(|&p| p == super::balancer::PROTOCOL_NAME)
    {
        Some(Route::Balancer(i))
    } else if let Some(i) = protocols
        .iter()
        .position(|&p| p == super::backend::PROTOCOL_NAME)
    {
        match config.caller.discovery.as_mut() {
            // With `discovery`, the backends are the ones registered in the registry.
            Some(d) => match resolve_discovery(ctx, d) {
                Ok(p) => Some(Route::Registry(p)),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
            None => Some(Route::Backends(names.get(i).cloned().unwrap_or_default())),
        }
    } else {
        errors.push(OptionError::of_role(
            "talks_to",
            "a requests client group talks to a balancer role or a backend role (its static list, or with `discovery` the instances registered in a registry role)",
        ));
        None
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let route = route.expect("no errors");
    let resolved = config.clone();
    Ok(Configured {
        options: family::resolved_options(&resolved),
        build: Arc::new(move |setup: &NodeSetup| {
            let target = match &route {
                Route::Balancer(i) => {
                    let nodes = &setup.talks_to[*i].1;
                    Target::Balancer(nodes[setup.client_index as usize % nodes.len()])
                }
                Route::Backends(role) => Target::Direct(Box::new(build_caller(
                    setup,
                    setup.client_index,
                    &config.caller,
                    role,
                    None,
                ))),
                Route::Registry(protocol) => Target::Direct(Box::new(build_caller(
                    setup,
                    setup.client_index,
                    &config.caller,
                    "",
                    Some(protocol),
                ))),
            };
            Box::new(RequestClient::new(
                setup.client_index,
                config.clone(),
                target,
            ))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::Payload;
    use crate::process::{Effect, TestContext, sent_messages, timers_set};

    fn config(text: &str) -> RequestsConfig {
        let table: toml::Table = toml::from_str(text).expect("toml");
        family::parse_flattened_options(&table, UNLISTED_KEYS).expect("options")
    }

    fn history(effects: &[Effect]) -> Vec<HistoryEvent> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some((**h).clone()),
                _ => None,
            })
            .collect()
    }

    fn next(p: &mut RequestClient, tc: &mut TestContext) -> Vec<Effect> {
        p.timer(&mut tc.ctx(), TimerId(0), Payload::new(ClientTimer::Next))
            .expect("a client timer");
        tc.take_effects()
    }

    #[test]
    fn each_request_is_its_own_process_and_its_answer_completes_it() {
        let mut p = RequestClient::new(
            3,
            config("rate = 100\narrival = \"fixed\""),
            Target::Balancer(NodeId(1)),
        );
        let mut tc = TestContext::new(NodeId(7), 1);
        p.start(&mut tc.ctx());
        tc.take_effects();
        let first = next(&mut p, &mut tc);
        let second = next(&mut p, &mut tc);
        let gaps: Vec<_> = timers_set::<ClientTimer>(&first)
            .into_iter()
            .filter(|t| t.2 == ClientTimer::Next)
            .map(|t| t.1)
            .collect();
        assert_eq!(
            gaps,
            [std::time::Duration::from_millis(10)],
            "100 per second, fixed"
        );
        let (h1, h2) = (history(&first), history(&second));
        assert_eq!(
            (h1[0].kind, h1[0].f),
            (EventType::Invoke, Function::Request)
        );
        assert_ne!(
            h1[0].process, h2[0].process,
            "overlapping requests are distinct processes"
        );
        assert_eq!(
            h1[0].process >> 48,
            3,
            "the client index leads the process id"
        );
        let sent = sent_messages::<BalancingMessage>(&first);
        let (to, BalancingMessage::Request { id, key }) = sent[0].clone() else {
            panic!("a request");
        };
        assert_eq!(to, NodeId(1));
        assert_eq!(h1[0].key, Some(key.to_string()));
        let answer = BalancingMessage::Response {
            id,
            status: Status::Ok,
            backend: NodeId(4),
            attempts: 2,
        };
        p.message(&mut tc.ctx(), NodeId(1), Payload::new(answer))
            .unwrap();
        let h = history(&tc.take_effects());
        assert_eq!((h[0].kind, h[0].process), (EventType::Ok, h1[0].process));
        assert_eq!(h[0].value, Value::List(vec![Value::Int(4), Value::Int(2)]));
    }

    #[test]
    fn refusals_fail_and_an_unanswered_request_is_info_after_its_timeout() {
        let mut p = RequestClient::new(
            0,
            config("request_timeout = \"1s\""),
            Target::Balancer(NodeId(1)),
        );
        let mut tc = TestContext::new(NodeId(7), 1);
        p.start(&mut tc.ctx());
        tc.take_effects();
        let sent = sent_messages::<BalancingMessage>(&next(&mut p, &mut tc));
        let BalancingMessage::Request { id, .. } = sent[0].1 else {
            panic!("a request");
        };
        let refused = BalancingMessage::Response {
            id,
            status: Status::Unavailable,
            backend: NodeId(1),
            attempts: 0,
        };
        p.message(&mut tc.ctx(), NodeId(1), Payload::new(refused))
            .unwrap();
        let h = history(&tc.take_effects());
        assert_eq!(
            (h[0].kind, h[0].error.as_deref()),
            (EventType::Fail, Some("unavailable"))
        );
        let effects = next(&mut p, &mut tc);
        let timeout = timers_set::<ClientTimer>(&effects)
            .into_iter()
            .find(|t| matches!(t.2, ClientTimer::Timeout { .. }))
            .expect("a timeout guard");
        assert_eq!(timeout.1, std::time::Duration::from_secs(1));
        p.timer(&mut tc.ctx(), timeout.0, Payload::new(timeout.2))
            .unwrap();
        let h = history(&tc.take_effects());
        assert_eq!(
            (h[0].kind, h[0].error.as_deref()),
            (EventType::Info, Some("timeout"))
        );
    }

    #[test]
    fn zipf_keys_favour_the_first_keys_and_stay_in_the_keyspace() {
        let mut p = RequestClient::new(
            0,
            config("keys = 100\nkey_distribution = \"zipf\"\nzipf_exponent = 1.2"),
            Target::Balancer(NodeId(1)),
        );
        let mut tc = TestContext::new(NodeId(7), 1);
        let keys: Vec<u64> = (0..2000).map(|_| p.draw_key(&mut tc.ctx())).collect();
        assert!(keys.iter().all(|&k| k < 100));
        let hot = keys.iter().filter(|&&k| k == 0).count();
        let cold = keys.iter().filter(|&&k| k == 99).count();
        assert!(hot > 10 * cold.max(1), "hot {hot}, cold {cold}");
    }

    #[test]
    fn requests_options_are_checked_at_their_keys() {
        let c = config("rate = 0\nkeys = 0\nzipf_exponent = 11\nrequest_timeout = \"0s\"");
        let paths: Vec<String> = c.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(paths, ["rate", "keys", "zipf_exponent", "request_timeout"]);
    }
}
