//! The call pipeline: what a client, the `balancer` role and a backend calling its downstream
//! service do to get one request served by one of several backends. A sans-IO object its host
//! process feeds with the pipeline's messages ([`BalancingMessage::Response`],
//! [`BalancingMessage::ProbeReply`]), its timers ([`CallerTimer`]) and, when the backends come
//! from a registry, the registry agent's messages and timers.
//!
//! One request goes through, in order (Envoy's router and cluster manager, Finagle's client
//! stack):
//!
//! 1. **rate limit** (optional, [`RateLimiter`]): rejected at once (`rejected`) or held;
//! 2. **pick** a backend with the strategy ([`Balancer`]) among the eligible ones: healthy by
//!    the [`HealthTracker`] (active probes, outlier ejection, the panic threshold), its
//!    [`CircuitBreaker`] admitting, and (for a retry, when another is eligible) not the
//!    backend the last attempt went to (Envoy's `previous_hosts` retry predicate); none
//!    eligible: `unavailable`;
//! 3. **attempt**: a [`BalancingMessage::Request`] with a per-attempt `timeout`;
//! 4. on `error`, `rejected` or `timeout`: **retry** when the [`Retrier`] allows (attempts
//!    left, the retry budget, after its back-off with jitter), else the request ends with the
//!    last attempt's status (`fallback` instead when `fallback = true`).
//!
//! Each attempt's end is reported as [`Observation::Attempt`], every change of a backend's
//! health, of a breaker, of panic mode and of the endpoint set (with the keys remapped) as the
//! matching [`Observation`]. Latencies are measured on the host's local clock (equal to global
//! time unless the scenario skews clocks).
//!
//! Backends come from a static list (a role's nodes) or from a registry
//! ([`RegistrySource`]): a lookup every `lookup_interval`, and the registry's watch where it
//! has one; between answers the caller uses the last view it got, stale as it may be.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::backend::under;
use super::breaker::{BreakerConfig, CircuitBreaker};
use super::health::{HealthConfig, HealthTracker};
use super::limiter::{Admission, RateLimitConfig, RateLimiter};
use super::retry::{Retrier, RetryConfig};
use super::strategy::{Balancer, Endpoint, StrategyConfig};
use super::{BalancingMessage, HealthState, Observation, Status, now_ns};
use crate::families::check_duration_from;
use crate::families::registry::{
    AgentConfig, AgentEvent, Consistency, InstanceInfo, RegistryAgent, RegistryTimer,
};
use crate::family::{Bug, NodeSetup, OptionError, RoleContext};
use crate::process::{Context, Message, NodeId, TimerId};
use crate::scenario::Duration;

/// Most requests one caller keeps in flight (a limit on `max_in_flight`).
pub const MAX_IN_FLIGHT: u32 = 1_000_000;
/// Shortest per-attempt timeout and lookup interval.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);
/// How often a caller with outlier detection looks for ejections that ended.
const HEALTH_TICK: Duration = Duration::from_millis(100);

/// The planted bugs of the call pipeline, switched on by the top-level `bugs` of a balancer
/// role, a `requests` client group or a backend role with a downstream: each belongs to one
/// of helper libraries' switches (strategy, retry, breaker).
pub const BUGS: &[Bug] = &[
    Bug {
        name: "retry-without-backoff",
        summary: "retries go out at once, with no back-off or jitter: a short outage turns into a retry storm that burns every attempt",
        caught_by: "balancing-bounds",
    },
    Bug {
        name: "retry-without-budget",
        summary: "retries ignore the retry budget: under overload every layer multiplies the load by its attempts",
        caught_by: "balancing-bounds",
    },
    Bug {
        name: "half-open-admits-all",
        summary: "a half-open breaker lets every request through instead of its probes: the recovering (or still failing) backend is flooded",
        caught_by: "balancing-bounds",
    },
    Bug {
        name: "least-conn-ignores-errors",
        summary: "least connections counts only requests in flight: a backend that fails fast always has the fewest and attracts the traffic",
        caught_by: "balancing-bounds",
    },
    Bug {
        name: "modulo-hashing",
        summary: "consistent hashing hashes the key modulo the number of backends: a backend leaving remaps most keys instead of about 1/N",
        caught_by: "balancing-bounds",
    },
];

/// Options of the call pipeline, flattened into the options of the `balancer` role, the
/// `requests` workload and a backend with a `downstream` (parsed with
/// [`crate::family::parse_flattened_options`], which rejects unknown keys). Durations are on
/// the caller's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallerConfig {
    /// The balancing strategy and its options (`strategy`, `virtual_nodes`, `bounded_load`,
    /// `ewma_decay`, `slow_start`; default round robin).
    #[serde(default)]
    pub balancing: StrategyConfig,
    /// Health: active checks (`active`: probes every `interval`, `unhealthy_threshold`
    /// failures in a row make a backend unhealthy, `healthy_threshold` successes healthy
    /// again), passive outlier detection (`outlier`: `consecutive_errors` failed requests
    /// eject a backend for a growing time) and the panic threshold
    /// (`panic_threshold_percent`, default 50: below that share of healthy backends the caller
    /// balances over all of them). Default: neither check, so every backend is eligible.
    #[serde(default)]
    pub health: HealthConfig,
    /// A circuit breaker per backend (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaker: Option<BreakerConfig>,
    /// Retries: attempts, back-off, jitter, budget (defaults in `retry.rs`).
    #[serde(default = "default_retry")]
    pub retry: RetryConfig,
    /// Per-attempt timeout (default 1s, from 1 ms to 1 hour): an attempt without an answer
    /// after this long ends in `timeout`.
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// A rate limit on the requests this caller sends (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitConfig>,
    /// Answer `fallback` (a degraded answer) instead of failing when every attempt failed or
    /// no backend could be tried (default false).
    #[serde(default)]
    pub fallback: bool,
    /// Most requests in flight at once (default 10,000, from 1 to 1,000,000); more are refused
    /// at once with `rejected`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: u32,
    /// Backends from a registry instead of a static role (default: static).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<DiscoveryOptions>,
    /// Planted bugs (names from [`BUGS`]); each is handed to the library it belongs to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

/// The keys of [`CallerConfig`] it omits when unset (for `parse_flattened_options`).
pub const UNLISTED: &[&str] = &["breaker", "rate_limit", "discovery", "bugs"];

fn default_retry() -> RetryConfig {
    crate::family::parse_options(&toml::Table::new()).expect("retry defaults")
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_max_in_flight() -> u32 {
    10_000
}

/// Where a registry-fed caller finds its backends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryOptions {
    /// The registry role (default: the one role running a registry protocol).
    #[serde(default)]
    pub registry: String,
    /// The service looked up (default: the service of the one backend role).
    #[serde(default)]
    pub service: String,
    /// Time between lookups (default 1s, from 1 ms to 1 hour).
    #[serde(default = "default_lookup_interval")]
    pub lookup_interval: Duration,
    /// A lookup without an answer after this long fails (default 500ms).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Consistency of lookups (default `default`; an AP registry reads every level as `stale`).
    #[serde(default)]
    pub consistency: Consistency,
    /// Also watch the service where the registry has watches (default false).
    #[serde(default)]
    pub watch: bool,
}

fn default_lookup_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_request_timeout() -> Duration {
    Duration::from_millis(500)
}

impl CallerConfig {
    /// Range problems, each at its key (nested keys under their table's key); `known_bugs`
    /// are the planted bugs the host accepts.
    pub fn validate(&self, known_bugs: &[Bug], host: &str) -> Vec<OptionError> {
        let mut errors = Vec::new();
        let mut nested = |key: &str, found: Vec<OptionError>| errors.extend(under(key, found));
        nested("balancing", self.balancing.validate());
        nested("health", self.health.validate());
        if let Some(b) = &self.breaker {
            nested("breaker", b.validate());
        }
        nested("retry", self.retry.validate());
        if let Some(r) = &self.rate_limit {
            nested("rate_limit", r.validate());
        }
        if let Some(d) = &self.discovery {
            let mut found = Vec::new();
            check_duration_from(
                &mut found,
                "lookup_interval",
                d.lookup_interval,
                MIN_TIMEOUT,
            );
            check_duration_from(
                &mut found,
                "request_timeout",
                d.request_timeout,
                MIN_TIMEOUT,
            );
            nested("discovery", found);
        }
        check_duration_from(&mut errors, "timeout", self.timeout, MIN_TIMEOUT);
        if !(1..=MAX_IN_FLIGHT).contains(&self.max_in_flight) {
            errors.push(OptionError::at(
                "max_in_flight",
                format!(
                    "expected from 1 to {MAX_IN_FLIGHT}, found {}",
                    self.max_in_flight
                ),
            ));
        }
        if known_bugs.is_empty() {
            errors.extend(self.bugs.iter().enumerate().map(|(i, bug)| {
                OptionError::at_path(
                    &["bugs", &i.to_string()],
                    format!(
                        "{host} takes no planted bugs, found \"{bug}\"; the call pipeline's bugs are switches of the balancer role"
                    ),
                )
            }));
        } else {
            errors.extend(crate::family::check_bugs(&self.bugs, known_bugs, host));
            errors.extend(self.check_bug_placement(known_bugs));
        }
        errors
    }

    /// Planted bugs are written in the top-level `bugs` only (a correct twin drops that list,
    /// so a bug nested in a library's table would stay on), and each must be able to act: a
    /// strategy bug under a strategy it affects, `half-open-admits-all` with a breaker.
    fn check_bug_placement(&self, known_bugs: &[Bug]) -> Vec<OptionError> {
        let mut errors = Vec::new();
        let nested = [
            ("balancing", !self.balancing.bugs.is_empty()),
            ("retry", !self.retry.bugs.is_empty()),
            (
                "breaker",
                self.breaker.as_ref().is_some_and(|b| !b.bugs.is_empty()),
            ),
        ];
        for (table, has) in nested {
            if has {
                errors.push(OptionError::at_path(
                    &[table, "bugs"],
                    "write planted bugs in the top-level `bugs` (its correct twin drops that list)",
                ));
            }
        }
        for (i, bug) in self.bugs.iter().enumerate() {
            if !known_bugs.iter().any(|k| k.name == bug.as_str()) {
                continue;
            }
            let alone = CallerConfig {
                bugs: vec![bug.clone()],
                ..self.clone()
            }
            .with_bugs_applied();
            let at = ["bugs".to_string(), i.to_string()];
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            if let Some(e) = alone
                .balancing
                .validate()
                .into_iter()
                .find(|e| e.path.first().is_some_and(|k| k == "bugs"))
            {
                errors.push(OptionError::at_path(&at, e.message));
            }
            if bug == "half-open-admits-all" && self.breaker.is_none() {
                errors.push(OptionError::at_path(
                    &at,
                    "half-open-admits-all needs a `breaker` table",
                ));
            }
        }
        errors
    }

    /// The configuration with the top-level planted bugs handed to the libraries they belong
    /// to (each library's option struct has its own `bugs`, which scenarios leave empty so
    /// that a correct twin, which drops the top-level `bugs`, has none).
    pub fn with_bugs_applied(&self) -> CallerConfig {
        let mut c = self.clone();
        for bug in &self.bugs {
            let name = toml::Value::String(bug.clone());
            if let Ok(b) = name.clone().try_into() {
                c.balancing.bugs.push(b);
            } else if let Ok(b) = name.clone().try_into() {
                c.retry.bugs.push(b);
            } else if let (Some(breaker), Ok(b)) = (c.breaker.as_mut(), name.try_into()) {
                breaker.bugs.push(b);
            }
        }
        c
    }
}

/// The caller's timers; its host hands them back to [`Caller::on_timer`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum CallerTimer {
    /// Attempt `attempt` got no answer in time.
    AttemptTimeout {
        /// The attempt (its request id on the wire).
        attempt: u64,
    },
    /// Call `call`'s back-off ended: retry now.
    Retry {
        /// The call.
        call: u64,
    },
    /// Call `call` was held by the rate limiter and may go now.
    Admit {
        /// The call.
        call: u64,
    },
    /// Time to probe every backend.
    ProbeRound,
    /// Probe `probe` got no answer in time.
    ProbeTimeout {
        /// The probe.
        probe: u64,
    },
    /// Time to look for outlier ejections that ended.
    HealthTick,
    /// Time for the next registry lookup.
    Lookup,
}

/// How one request ended, for the host.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The host's tag given to [`Caller::call`].
    pub tag: u64,
    /// The request's status.
    pub status: Status,
    /// The backend of the last attempt (the caller itself when none was tried).
    pub backend: NodeId,
    /// Attempts spent (0 when none could be sent).
    pub attempts: u32,
}

/// A source of endpoints other than a static list: a registry read through its agent.
pub trait EndpointSource: Send {
    /// Starts reading (first lookup now; the watch if configured).
    fn start(&mut self, ctx: &mut Context<'_>);
    /// The `Lookup` timer fired.
    fn lookup_due(&mut self, ctx: &mut Context<'_>);
    /// A message that may be the agent's; `Ok(Some(endpoints))` when the view changed.
    fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<Option<Vec<Endpoint>>, Message>;
    /// A timer that may be the agent's.
    fn on_timer(
        &mut self,
        ctx: &mut Context<'_>,
        id: TimerId,
        timer: Message,
    ) -> Result<Option<Vec<Endpoint>>, Message>;
}

/// A registry view kept by agent `A`.
pub struct RegistrySource<A: RegistryAgent> {
    agent: A,
    options: DiscoveryOptions,
    next_lookup: u64,
    pending: Option<u64>,
}

impl<A: RegistryAgent> RegistrySource<A> {
    /// A source reading `options.service` through an agent built from `agent`.
    pub fn new(options: DiscoveryOptions, agent: AgentConfig) -> Self {
        RegistrySource {
            agent: A::new(agent),
            options,
            next_lookup: 0,
            pending: None,
        }
    }

    fn endpoints(instances: &[InstanceInfo]) -> Vec<Endpoint> {
        instances
            .iter()
            .map(|i| Endpoint {
                node: i.node,
                weight: i.weight.max(1),
            })
            .collect()
    }

    fn handle(&mut self, ctx: &mut Context<'_>, events: Vec<AgentEvent>) -> Option<Vec<Endpoint>> {
        let mut view = None;
        for event in events {
            match event {
                AgentEvent::LookupOk {
                    lookup, instances, ..
                } if self.pending == Some(lookup) => {
                    self.pending = None;
                    view = Some(Self::endpoints(&instances));
                    ctx.set_timer(self.options.lookup_interval.to_std(), CallerTimer::Lookup);
                }
                AgentEvent::LookupFailed { lookup, .. } if self.pending == Some(lookup) => {
                    self.pending = None;
                    ctx.set_timer(self.options.lookup_interval.to_std(), CallerTimer::Lookup);
                }
                AgentEvent::View { service, instances } if service == self.options.service => {
                    view = Some(Self::endpoints(&instances));
                }
                _ => {}
            }
        }
        view
    }
}

impl<A: RegistryAgent> EndpointSource for RegistrySource<A> {
    fn start(&mut self, ctx: &mut Context<'_>) {
        if self.options.watch {
            let service = self.options.service.clone();
            self.agent.watch(ctx, &service);
        }
        self.lookup_due(ctx);
    }

    fn lookup_due(&mut self, ctx: &mut Context<'_>) {
        if self.pending.is_some() {
            return;
        }
        self.next_lookup += 1;
        self.pending = Some(self.next_lookup);
        let service = self.options.service.clone();
        self.agent
            .lookup(ctx, self.next_lookup, &service, self.options.consistency);
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<Option<Vec<Endpoint>>, Message> {
        let message = message.downcast::<A::Message>()?;
        let events = self.agent.on_message(ctx, from, message);
        Ok(self.handle(ctx, events))
    }

    fn on_timer(
        &mut self,
        ctx: &mut Context<'_>,
        id: TimerId,
        timer: Message,
    ) -> Result<Option<Vec<Endpoint>>, Message> {
        let RegistryTimer::Agent { timer } = timer.downcast::<RegistryTimer<A::Timer>>()? else {
            return Ok(None);
        };
        let events = self.agent.on_timer(ctx, id, timer);
        Ok(self.handle(ctx, events))
    }
}

/// Builds a [`RegistrySource`] over the agent of registry protocol `protocol` (one of
/// [`crate::families::registry::REGISTRY_PROTOCOLS`]); `None` for any other.
pub fn registry_source(
    protocol: &str,
    options: DiscoveryOptions,
    agent: AgentConfig,
) -> Option<Box<dyn EndpointSource>> {
    use crate::families::registry::{cp, eureka};
    match protocol {
        crate::families::lock::coord::server::PROTOCOL_NAME => {
            Some(Box::new(RegistrySource::<cp::CoordAgent>::new(
                options, agent,
            )))
        }
        eureka::PROTOCOL_NAME => Some(Box::new(RegistrySource::<eureka::EurekaAgent>::new(
            options, agent,
        ))),
        _ => None,
    }
}

/// One request in flight.
#[derive(Clone, Debug)]
struct Call {
    tag: u64,
    key: u64,
    /// Attempts sent so far.
    attempts: u32,
    /// The last back-off, for decorrelated jitter.
    last_delay_ns: u64,
    /// The last attempt's status and backend.
    last_status: Status,
    last_backend: Option<NodeId>,
}

/// One attempt in flight.
#[derive(Clone, Debug)]
struct Attempt {
    call: u64,
    node: NodeId,
    attempt: u32,
    sent_ns: u64,
    timer: TimerId,
}

/// The call pipeline of one node. See the module docs.
pub struct Caller {
    config: CallerConfig,
    balancer: Balancer,
    health: HealthTracker,
    breakers: Vec<CircuitBreaker>,
    retrier: Retrier,
    limiter: Option<RateLimiter>,
    source: Option<Box<dyn EndpointSource>>,
    /// The static endpoints, until [`Caller::start`] hands them to the balancer (whose list,
    /// static or the last registry view, is the one every index here points into).
    initial: Vec<Endpoint>,
    calls: BTreeMap<u64, Call>,
    attempts: BTreeMap<u64, Attempt>,
    probes: BTreeMap<u64, (NodeId, TimerId)>,
    next_id: u64,
    panic: bool,
    /// Reused buffer of eligibility flags.
    eligible: Vec<bool>,
}

impl Caller {
    /// A caller over `endpoints` (static; empty when `source` feeds them) with its options
    /// (planted bugs already applied, see [`CallerConfig::with_bugs_applied`]).
    pub fn new(
        config: &CallerConfig,
        endpoints: Vec<Endpoint>,
        source: Option<Box<dyn EndpointSource>>,
    ) -> Caller {
        Caller {
            balancer: Balancer::new(&config.balancing, 0),
            health: config.health.tracker(),
            breakers: Vec::new(),
            retrier: Retrier::new(&config.retry),
            limiter: config.rate_limit.as_ref().map(RateLimiter::new),
            source,
            initial: endpoints,
            calls: BTreeMap::new(),
            attempts: BTreeMap::new(),
            probes: BTreeMap::new(),
            next_id: 0,
            panic: false,
            eligible: Vec::new(),
            config: config.clone(),
        }
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.calls.len()
    }

    /// Starts the pipeline: the static endpoints, the probe and health timers, the registry
    /// source's first lookup.
    pub fn start(&mut self, ctx: &mut Context<'_>) {
        let initial = std::mem::take(&mut self.initial);
        self.set_endpoints(ctx, initial);
        if let Some(h) = &self.config.health.active {
            ctx.set_timer(h.interval.to_std(), CallerTimer::ProbeRound);
        }
        if self.config.health.outlier.is_some() {
            ctx.set_timer(HEALTH_TICK.to_std(), CallerTimer::HealthTick);
        }
        if let Some(source) = self.source.as_mut() {
            source.start(ctx);
        }
    }

    fn set_endpoints(&mut self, ctx: &mut Context<'_>, endpoints: Vec<Endpoint>) {
        let now = now_ns(ctx);
        let nodes: Vec<NodeId> = endpoints.iter().map(|e| e.node).collect();
        let current = self.balancer.endpoints();
        if !current.is_empty() && current.iter().map(|e| e.node).eq(nodes.iter().copied()) {
            return;
        }
        if let Some(breaker) = &self.config.breaker {
            let mut old: Vec<(NodeId, CircuitBreaker)> = current
                .iter()
                .map(|e| e.node)
                .zip(self.breakers.drain(..))
                .collect();
            self.breakers = nodes
                .iter()
                .map(|n| match old.iter().position(|(o, _)| o == n) {
                    Some(i) => old.swap_remove(i).1,
                    None => CircuitBreaker::new(breaker),
                })
                .collect();
        }
        self.health.set_endpoints(&nodes);
        if let Some(remap) = self.balancer.set_endpoints(endpoints, now) {
            ctx.observe(Observation::Remap {
                before: remap.before,
                after: remap.after,
                moved_fraction: remap.moved_fraction,
                ideal_fraction: remap.ideal_fraction,
            });
        }
    }

    fn index_of(&self, node: NodeId) -> Option<usize> {
        self.balancer.index_of(node)
    }

    /// The node of endpoint `index` of the current list.
    fn node(&self, index: usize) -> NodeId {
        self.balancer.endpoints()[index].node
    }

    /// Starts a request for `key`; `tag` comes back in its [`Outcome`]. Returns the outcome
    /// at once when the request cannot start (too many in flight, rate limited, no backend).
    pub fn call(&mut self, ctx: &mut Context<'_>, key: u64, tag: u64) -> Option<Outcome> {
        let now = now_ns(ctx);
        if self.calls.len() >= self.config.max_in_flight as usize {
            return Some(Outcome {
                tag,
                status: Status::Rejected,
                backend: ctx.id(),
                attempts: 0,
            });
        }
        self.retrier.on_request(now);
        self.next_id += 1;
        let id = self.next_id;
        self.calls.insert(
            id,
            Call {
                tag,
                key,
                attempts: 0,
                last_delay_ns: 0,
                last_status: Status::Unavailable,
                last_backend: None,
            },
        );
        if let Some(limiter) = self.limiter.as_mut() {
            match limiter.admit(now) {
                Admission::Now => {}
                Admission::After { delay_ns } => {
                    ctx.set_timer(
                        std::time::Duration::from_nanos(delay_ns),
                        CallerTimer::Admit { call: id },
                    );
                    return None;
                }
                Admission::Reject => {
                    self.calls.get_mut(&id).expect("just inserted").last_status = Status::Rejected;
                    return self.finish(ctx, id);
                }
            }
        }
        self.attempt(ctx, id)
    }

    /// Sends the next attempt of call `id`, or ends it when no backend is eligible.
    fn attempt(&mut self, ctx: &mut Context<'_>, id: u64) -> Option<Outcome> {
        let now = now_ns(ctx);
        let mut eligible = std::mem::take(&mut self.eligible);
        let panic = {
            let (flags, panic) = self.health.eligible(now);
            eligible.clear();
            eligible.extend_from_slice(flags);
            panic
        };
        if panic != self.panic {
            self.panic = panic;
            ctx.observe(Observation::Panic { on: panic });
        }
        let call = self.calls.get(&id).expect("a call in flight");
        let key = call.key;
        // A retry avoids the backend that just failed when another one is eligible.
        if let Some(last) = call.last_backend.and_then(|n| self.index_of(n))
            && eligible.iter().filter(|&&e| e).count() > 1
        {
            eligible[last] = false;
        }
        let picked = loop {
            let Some(index) = self.balancer.pick(key, &eligible, now, ctx.rng()) else {
                break None;
            };
            let Some(breaker) = self.breakers.get_mut(index) else {
                break Some(index);
            };
            let (admitted, change) = breaker.allow(now);
            if let Some((from, to)) = change {
                ctx.observe(Observation::Breaker {
                    backend: self.node(index),
                    from,
                    to,
                });
            }
            if admitted {
                break Some(index);
            }
            eligible[index] = false;
        };
        self.eligible = eligible;
        let Some(index) = picked else {
            let call = self.calls.get_mut(&id).expect("a call in flight");
            if call.attempts == 0 {
                call.last_status = Status::Unavailable;
            }
            return self.finish(ctx, id);
        };
        let node = self.node(index);
        self.balancer.on_send(index, now);
        let call = self.calls.get_mut(&id).expect("a call in flight");
        call.attempts += 1;
        call.last_backend = Some(node);
        let attempt = call.attempts;
        self.next_id += 1;
        let attempt_id = self.next_id;
        ctx.send(
            node,
            BalancingMessage::Request {
                id: attempt_id,
                key,
            },
        );
        let timer = ctx.set_timer(
            self.config.timeout.to_std(),
            CallerTimer::AttemptTimeout {
                attempt: attempt_id,
            },
        );
        self.attempts.insert(
            attempt_id,
            Attempt {
                call: id,
                node,
                attempt,
                sent_ns: now,
                timer,
            },
        );
        None
    }

    /// Ends call `id` with its last status (or `fallback`).
    fn finish(&mut self, ctx: &mut Context<'_>, id: u64) -> Option<Outcome> {
        let call = self.calls.remove(&id)?;
        let mut status = call.last_status;
        if self.config.fallback && !matches!(status, Status::Ok | Status::Fallback) {
            status = Status::Fallback;
        }
        Some(Outcome {
            tag: call.tag,
            status,
            backend: call.last_backend.unwrap_or(ctx.id()),
            attempts: call.attempts,
        })
    }

    /// Attempt `attempt_id` ended with `status`.
    fn attempt_done(
        &mut self,
        ctx: &mut Context<'_>,
        attempt_id: u64,
        status: Status,
    ) -> Option<Outcome> {
        let attempt = self.attempts.remove(&attempt_id)?;
        let now = now_ns(ctx);
        let latency = now.saturating_sub(attempt.sent_ns);
        let ok = matches!(status, Status::Ok | Status::Fallback);
        ctx.observe(Observation::Attempt {
            backend: attempt.node,
            attempt: attempt.attempt,
            status,
            latency_ns: latency,
        });
        if let Some(index) = self.index_of(attempt.node) {
            self.balancer.on_result(index, now, latency, ok);
            if let Some(state) = self.health.request_result(index, ok, now) {
                self.health_changed(ctx, index, state);
            }
            if let Some(breaker) = self.breakers.get_mut(index)
                && let Some((from, to)) = breaker.on_result(ok, now)
            {
                ctx.observe(Observation::Breaker {
                    backend: attempt.node,
                    from,
                    to,
                });
            }
        }
        let call = self.calls.get_mut(&attempt.call)?;
        call.last_status = status;
        if ok {
            return self.finish(ctx, attempt.call);
        }
        let next = call.attempts + 1;
        match self
            .retrier
            .next_retry(next, call.last_delay_ns, now, ctx.rng())
        {
            None => self.finish(ctx, attempt.call),
            Some(0) => self.attempt(ctx, attempt.call),
            Some(delay) => {
                call.last_delay_ns = delay;
                ctx.set_timer(
                    std::time::Duration::from_nanos(delay),
                    CallerTimer::Retry { call: attempt.call },
                );
                None
            }
        }
    }

    fn health_changed(&mut self, ctx: &mut Context<'_>, index: usize, state: HealthState) {
        if state == HealthState::Healthy {
            self.balancer.rejoined(index, now_ns(ctx));
        }
        ctx.observe(Observation::Health {
            backend: self.node(index),
            state,
        });
    }

    /// A pipeline message: a backend's answer to an attempt or a probe. Returns the outcome
    /// of the request it ended, if any.
    pub fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: &BalancingMessage,
    ) -> Option<Outcome> {
        match *message {
            BalancingMessage::Response { id, status, .. } => {
                let attempt = self.attempts.get(&id)?;
                if attempt.node != from {
                    return None;
                }
                ctx.cancel_timer(attempt.timer);
                self.attempt_done(ctx, id, status)
            }
            BalancingMessage::ProbeReply { id, healthy } => {
                let (node, timer) = self.probes.remove(&id)?;
                ctx.cancel_timer(timer);
                self.probe_done(ctx, node, healthy);
                None
            }
            _ => None,
        }
    }

    fn probe_done(&mut self, ctx: &mut Context<'_>, node: NodeId, healthy: bool) {
        if let Some(index) = self.index_of(node)
            && let Some(state) = self.health.probe_result(index, healthy, now_ns(ctx))
        {
            self.health_changed(ctx, index, state);
        }
    }

    /// One of the caller's timers fired. Returns the outcome of the request it ended, if any.
    pub fn on_timer(&mut self, ctx: &mut Context<'_>, timer: CallerTimer) -> Option<Outcome> {
        match timer {
            CallerTimer::AttemptTimeout { attempt } => {
                self.attempt_done(ctx, attempt, Status::Timeout)
            }
            CallerTimer::Retry { call } | CallerTimer::Admit { call } => {
                if self.calls.contains_key(&call) {
                    self.attempt(ctx, call)
                } else {
                    None
                }
            }
            CallerTimer::ProbeRound => {
                let h = self.config.health.active.clone()?;
                for i in 0..self.balancer.endpoints().len() {
                    self.next_id += 1;
                    let probe = self.next_id;
                    let node = self.node(i);
                    ctx.send(node, BalancingMessage::Probe { id: probe });
                    let t = ctx.set_timer(h.timeout.to_std(), CallerTimer::ProbeTimeout { probe });
                    self.probes.insert(probe, (node, t));
                }
                ctx.set_timer(h.interval.to_std(), CallerTimer::ProbeRound);
                None
            }
            CallerTimer::ProbeTimeout { probe } => {
                if let Some((node, _)) = self.probes.remove(&probe) {
                    self.probe_done(ctx, node, false);
                }
                None
            }
            CallerTimer::HealthTick => {
                for (index, state) in self.health.tick(now_ns(ctx)) {
                    self.health_changed(ctx, index, state);
                }
                ctx.set_timer(HEALTH_TICK.to_std(), CallerTimer::HealthTick);
                None
            }
            CallerTimer::Lookup => {
                if let Some(source) = self.source.as_mut() {
                    source.lookup_due(ctx);
                }
                None
            }
        }
    }

    /// A message of another vocabulary: the registry agent's, if this caller has one.
    pub fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        let Some(source) = self.source.as_mut() else {
            return Err(message);
        };
        if let Some(endpoints) = source.on_message(ctx, from, message)? {
            self.set_endpoints(ctx, endpoints);
        }
        Ok(())
    }

    /// A timer of another type: the registry agent's, if this caller has one.
    pub fn on_other_timer(
        &mut self,
        ctx: &mut Context<'_>,
        id: TimerId,
        timer: Message,
    ) -> Result<(), Message> {
        let Some(source) = self.source.as_mut() else {
            return Err(timer);
        };
        if let Some(endpoints) = source.on_timer(ctx, id, timer)? {
            self.set_endpoints(ctx, endpoints);
        }
        Ok(())
    }
}

/// The service a backend role provides: its `registration.service` option, else its name.
pub fn service_of_backend(role: &crate::scenario::RoleSpec) -> String {
    let service = role
        .options
        .get("registration")
        .and_then(|r| r.get("service"))
        .and_then(|s| s.as_str())
        .unwrap_or("");
    if service.is_empty() {
        role.name.clone()
    } else {
        service.to_string()
    }
}

/// The backend roles of a scenario.
pub fn backend_roles(scenario: &crate::scenario::Scenario) -> Vec<&crate::scenario::RoleSpec> {
    scenario
        .cluster
        .roles
        .iter()
        .filter(|r| r.protocol == super::backend::PROTOCOL_NAME)
        .collect()
}

/// Fills in a caller's discovery options (the registry role, the service) and returns the
/// registry role's protocol; errors are at `discovery.*`.
pub fn resolve_discovery(
    ctx: &RoleContext<'_>,
    options: &mut DiscoveryOptions,
) -> Result<String, Vec<OptionError>> {
    let mut errors = Vec::new();
    let protocol = match crate::families::registry::registry_role(ctx, &options.registry) {
        Ok((role, protocol)) => {
            options.registry = role;
            Some(protocol)
        }
        Err(mut e) => {
            e.path.insert(0, "discovery".into());
            errors.push(e);
            None
        }
    };
    if options.service.is_empty() {
        let services: Vec<String> = backend_roles(ctx.scenario)
            .into_iter()
            .map(service_of_backend)
            .collect();
        match services.as_slice() {
            [one] => options.service = one.clone(),
            _ => errors.push(OptionError::at_path(
                &["discovery", "service"],
                format!(
                    "expected the service to look up; the scenario has {} backend roles",
                    services.len()
                ),
            )),
        }
    }
    match protocol {
        Some(p) if errors.is_empty() => Ok(p),
        _ => Err(errors),
    }
}

/// The index of node `setup.id` among its role's nodes (0 if absent).
pub fn index_in_role(setup: &NodeSetup) -> u32 {
    setup
        .servers
        .iter()
        .position(|&s| s == setup.id)
        .unwrap_or(0) as u32
}

/// The caller of node `setup.id` (whose index among its peers is `index`): static over
/// `backends`' nodes, or fed by the registry when `discovery` is set (`protocol` is then the
/// registry role's protocol).
pub fn build_caller(
    setup: &NodeSetup,
    index: u32,
    config: &CallerConfig,
    backends: &str,
    protocol: Option<&str>,
) -> Caller {
    let config = config.with_bugs_applied();
    match (&config.discovery, protocol) {
        (Some(d), Some(protocol)) => {
            let registry = setup
                .topology
                .resolve_static(&d.registry)
                .unwrap_or_default();
            let home = registry
                .get(index as usize % registry.len().max(1))
                .copied()
                .unwrap_or(setup.id);
            let agent = AgentConfig {
                id: setup.id,
                registry,
                home,
                ttl_ms: 0,
                heartbeat_interval_ms: 0,
                request_timeout_ms: crate::families::registry::ms(d.request_timeout),
            };
            let source = registry_source(protocol, d.clone(), agent);
            Caller::new(&config, Vec::new(), source)
        }
        _ => {
            let nodes = setup.topology.resolve_static(backends).unwrap_or_default();
            Caller::new(&config, super::backend::static_endpoints(&nodes), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::balancing::BreakerState;
    use crate::families::balancing::backend::static_endpoints;
    use crate::process::{Effect, TestContext, observations, sent_messages, timers_set};

    fn config(text: &str) -> CallerConfig {
        let table: toml::Table = toml::from_str(text).expect("toml");
        crate::family::parse_flattened_options(&table, UNLISTED).expect("options")
    }

    fn caller(text: &str, backends: u32) -> (Caller, TestContext) {
        let nodes: Vec<NodeId> = (10..10 + backends).map(NodeId).collect();
        let mut c = Caller::new(
            &config(text).with_bugs_applied(),
            static_endpoints(&nodes),
            None,
        );
        let mut tc = TestContext::new(NodeId(1), 1);
        c.start(&mut tc.ctx());
        tc.take_effects();
        (c, tc)
    }

    /// The attempts sent among `effects`: (backend, attempt id).
    fn requests(effects: &[Effect]) -> Vec<(NodeId, u64)> {
        sent_messages::<BalancingMessage>(effects)
            .into_iter()
            .filter_map(|(to, m)| match m {
                BalancingMessage::Request { id, .. } => Some((to, id)),
                _ => None,
            })
            .collect()
    }

    fn answer(
        c: &mut Caller,
        tc: &mut TestContext,
        from: NodeId,
        id: u64,
        status: Status,
    ) -> Option<Outcome> {
        let m = BalancingMessage::Response {
            id,
            status,
            backend: from,
            attempts: 1,
        };
        c.on_message(&mut tc.ctx(), from, &m)
    }

    #[test]
    fn a_failed_attempt_is_retried_after_its_back_off_on_another_backend() {
        let (mut c, mut tc) = caller(
            "retry = { max_attempts = 3, base = \"100ms\", jitter = \"none\" }",
            2,
        );
        assert_eq!(c.call(&mut tc.ctx(), 5, 77), None);
        let first = requests(&tc.take_effects());
        assert_eq!(first.len(), 1);
        let (b1, id1) = first[0];
        assert_eq!(answer(&mut c, &mut tc, b1, id1, Status::Error), None);
        let effects = tc.take_effects();
        let obs = observations::<Observation>(&effects);
        assert!(matches!(
            obs[0],
            Observation::Attempt {
                attempt: 1,
                status: Status::Error,
                ..
            }
        ));
        let timers = timers_set::<CallerTimer>(&effects);
        assert_eq!(timers.len(), 1);
        assert_eq!(
            timers[0].1,
            std::time::Duration::from_millis(100),
            "back-off, no jitter"
        );
        assert_eq!(c.on_timer(&mut tc.ctx(), timers[0].2.clone()), None);
        let second = requests(&tc.take_effects());
        assert_ne!(second[0].0, b1, "a retry avoids the backend that failed");
        let done = answer(&mut c, &mut tc, second[0].0, second[0].1, Status::Ok);
        assert_eq!(
            done,
            Some(Outcome {
                tag: 77,
                status: Status::Ok,
                backend: second[0].0,
                attempts: 2
            })
        );
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn an_attempt_without_an_answer_times_out_and_the_last_status_ends_the_request() {
        let (mut c, mut tc) = caller("retry = { max_attempts = 1 }\ntimeout = \"50ms\"", 1);
        c.call(&mut tc.ctx(), 5, 1);
        let effects = tc.take_effects();
        let (_, _, t) = timers_set::<CallerTimer>(&effects)[0].clone();
        tc.local_time_ns = 50_000_000;
        let o = c.on_timer(&mut tc.ctx(), t).expect("the request ended");
        assert_eq!((o.status, o.attempts), (Status::Timeout, 1));
        let obs = observations::<Observation>(&tc.take_effects());
        assert_eq!(
            obs,
            [Observation::Attempt {
                backend: NodeId(10),
                attempt: 1,
                status: Status::Timeout,
                latency_ns: 50_000_000
            }]
        );
    }

    #[test]
    fn an_open_breaker_fails_fast_with_unavailable_and_fallback_answers_instead() {
        let text = "retry = { max_attempts = 1 }\nbreaker = { trip = { kind = \"consecutive-failures\", failures = 2 }, open_duration = \"5s\" }";
        let (mut c, mut tc) = caller(text, 1);
        for tag in 0..2 {
            c.call(&mut tc.ctx(), 5, tag);
            let (b, id) = requests(&tc.take_effects())[0];
            let o = answer(&mut c, &mut tc, b, id, Status::Error).expect("ended");
            assert_eq!(o.status, Status::Error);
        }
        let obs = observations::<Observation>(&tc.take_effects());
        assert!(obs.contains(&Observation::Breaker {
            backend: NodeId(10),
            from: BreakerState::Closed,
            to: BreakerState::Open
        }));
        let o = c.call(&mut tc.ctx(), 5, 9).expect("fails fast");
        assert_eq!((o.status, o.attempts), (Status::Unavailable, 0));
        assert!(requests(&tc.take_effects()).is_empty());
        let (mut c, mut tc) = caller(&format!("{text}\nfallback = true"), 1);
        for tag in 0..2 {
            c.call(&mut tc.ctx(), 5, tag);
            let (b, id) = requests(&tc.take_effects())[0];
            answer(&mut c, &mut tc, b, id, Status::Error);
        }
        assert_eq!(
            c.call(&mut tc.ctx(), 5, 9).map(|o| o.status),
            Some(Status::Fallback)
        );
    }

    #[test]
    fn planted_bugs_go_in_the_top_level_list_and_reach_their_library() {
        let c = config(
            "bugs = [\"retry-without-backoff\", \"modulo-hashing\"]\nbalancing = { strategy = \"consistent-hash\" }",
        );
        assert!(c.validate(BUGS, "balancer").is_empty());
        let applied = c.with_bugs_applied();
        assert_eq!(applied.retry.bugs.len(), 1);
        assert_eq!(applied.balancing.bugs.len(), 1);
        let nested = config("retry = { bugs = [\"retry-without-budget\"] }");
        let paths: Vec<String> = nested
            .validate(BUGS, "balancer")
            .iter()
            .map(|e| e.path.join("."))
            .collect();
        assert_eq!(paths, ["retry.bugs"]);
        let misplaced = config("bugs = [\"half-open-admits-all\", \"modulo-hashing\"]");
        let paths: Vec<String> = misplaced
            .validate(BUGS, "balancer")
            .iter()
            .map(|e| e.path.join("."))
            .collect();
        assert_eq!(
            paths,
            ["bugs.0", "bugs.1"],
            "no breaker; round robin has no hashing"
        );
        let not_here = config("bugs = [\"modulo-hashing\"]");
        let errors = not_here.validate(&[], "requests");
        assert!(
            errors.len() == 1 && errors[0].message.contains("takes no planted bugs"),
            "clients take no bugs: {errors:?}"
        );
    }

    #[test]
    fn every_backend_is_probed_and_failed_probes_make_it_unhealthy() {
        let (mut c, mut tc) = caller(
            "health = { active = { interval = \"1s\", timeout = \"100ms\", unhealthy_threshold = 1 }, panic_threshold_percent = 0 }",
            2,
        );
        c.on_timer(&mut tc.ctx(), CallerTimer::ProbeRound);
        let effects = tc.take_effects();
        let probes = sent_messages::<BalancingMessage>(&effects);
        assert_eq!(probes.len(), 2);
        let BalancingMessage::Probe { id } = probes[0].1 else {
            panic!("a probe");
        };
        let reply = BalancingMessage::ProbeReply { id, healthy: false };
        c.on_message(&mut tc.ctx(), probes[0].0, &reply);
        let obs = observations::<Observation>(&tc.take_effects());
        assert_eq!(
            obs,
            [Observation::Health {
                backend: probes[0].0,
                state: HealthState::Unhealthy
            }]
        );
        for tag in 0..4 {
            c.call(&mut tc.ctx(), tag, tag);
        }
        let sent = requests(&tc.take_effects());
        assert!(sent.iter().all(|(b, _)| *b != probes[0].0), "{sent:?}");
    }
}
