//! The load-balancing and resilience family: backends that serve requests with a latency, a
//! capacity and an error rate; balancers (a proxy role, or a library inside clients) that pick
//! a backend by a strategy, check backends' health and eject outliers; and the resilience
//! patterns around a call (timeouts, retries with back-off, jitter and a budget, circuit
//! breakers, rate limiters, fallbacks, idempotency keys, sagas with compensation).
//!
//! # Shape of a scenario
//!
//! - `backend` (role): a service instance (it may register with a registry role of the
//!   registry family, or be listed statically) that serves [`BalancingMessage::Request`]s.
//!   It may call a downstream service before answering (layers of services).
//! - `balancer` (role): a proxy. Clients send it requests; it forwards each to a backend
//!   chosen by its strategy, with the resilience options it is given, and answers the client.
//! - `requests` (workload): clients that send requests at a rate, to a balancer role or
//!   straight to backends with a client-side balancer (the same library).
//!
//! # Invariants and measurements
//!
//! - Per backend and over time: load share, in-flight requests, latency percentiles, errors,
//!   rejections. Per client: success rate, latency percentiles, attempts per request
//!   (amplification). Consistent hashing: keys remapped when the backend set changes, against
//!   the ideal 1/N. Breaker state changes and time spent open. Requests sent to dead or
//!   ejected backends.
//! - Checks turn those into verdicts with thresholds the scenario gives.
//!
//! Sources: nginx (smooth weighted round robin), Envoy (load balancers, outlier detection,
//! health checking, panic threshold, circuit breaking, retry budgets), Finagle and Linkerd
//! (peak EWMA), Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing" (2001),
//! Karger et al., "Consistent Hashing and Random Trees" (1997), Mirrokni, Thorup and
//! Zadimoghaddam, "Consistent Hashing with Bounded Loads" (2018), Google's SRE book,
//! "Handling Overload" and "Addressing Cascading Failures", AWS Architecture Blog,
//! "Exponential Backoff and Jitter" (Brooker, 2015), Hystrix and resilience4j (circuit
//! breakers), Garcia-Molina and Salem, "Sagas" (1987), Stripe's idempotency keys.

pub mod backend;
pub mod balancer;
pub mod breaker;
pub mod caller;
pub mod checks;
pub mod client;
pub mod health;
pub mod ledger;
pub mod limiter;
pub mod narrate;
pub mod options;
pub mod payments;
pub mod retry;
pub mod saga;
pub mod saga_checks;
pub mod strategy;
pub mod window;

use serde::Serialize;

use crate::family::Family;
use crate::process::NodeId;

/// Messages of the service traffic between clients, balancers and backends (and between a
/// backend and its downstream service). Every field is a number, so a message costs no
/// allocation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum BalancingMessage {
    /// Serve request `id` (unique per sending node) for `key` (the routing key consistent
    /// hashing uses: a user or cache key).
    Request {
        /// The sender's request id; the answer carries it back.
        id: u64,
        /// The routing key.
        key: u64,
    },
    /// The answer to request `id` from whoever the sender sent it to.
    Response {
        /// The request answered.
        id: u64,
        /// What happened.
        status: Status,
        /// The backend that served it (for a balancer's answer, the last backend tried; for
        /// `unavailable`, the node answering).
        backend: NodeId,
        /// Attempts spent on it by the node answering (1 = no retry); a balancer reports its
        /// own attempts.
        attempts: u32,
    },
    /// An active health check probe (Envoy's health checker).
    Probe {
        /// The prober's probe id.
        id: u64,
    },
    /// A backend's answer to a probe: `healthy` is false while it fails (a failing or
    /// flapping condition, or it has left).
    ProbeReply {
        /// The probe answered.
        id: u64,
        /// The backend considers itself healthy.
        healthy: bool,
    },
}

/// The outcome of a request or an attempt.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Served.
    Ok,
    /// The backend (or a downstream call it made) failed the request (an HTTP 5xx).
    Error,
    /// Refused for overload: over the backend's capacity or queue, or rate limited (HTTP 429 /
    /// 503 with a retry hint). A refusal costs the backend almost nothing.
    Rejected,
    /// No backend could be tried: none eligible, every breaker open, or the retry budget spent.
    Unavailable,
    /// The caller gave up waiting (the attempt's timeout).
    Timeout,
    /// A degraded answer: the dependency failed and a fallback answered instead.
    Fallback,
}

/// Health of a backend as one balancer (or client-side balancer) sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    /// Eligible for traffic.
    Healthy,
    /// Active health checks failed `unhealthy_threshold` times in a row.
    Unhealthy,
    /// Ejected by outlier detection until its ejection time passes.
    Ejected,
}

/// A circuit breaker's state (Hystrix, resilience4j).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BreakerState {
    /// Requests pass; failures are counted.
    Closed,
    /// Requests fail fast until the open duration passes.
    Open,
    /// A limited number of probe requests pass; their outcome closes or reopens the breaker.
    HalfOpen,
}

/// The family's facts of a run, reported by balancers, clients and backends for the checks.
/// The node that observed is the record's node; its time is the record's time.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Observation {
    /// A caller (client, balancer, or a backend calling downstream) finished one attempt
    /// at `backend`: reported when the answer (or the timeout) came, `latency_ns` after the
    /// attempt was sent.
    Attempt {
        /// The backend tried.
        backend: NodeId,
        /// 1 for the first attempt of a request, 2 for its first retry, ...
        attempt: u32,
        /// The attempt's outcome (`timeout` if the caller stopped waiting).
        status: Status,
        /// Nanoseconds from sending to the answer or the timeout (global time).
        latency_ns: u64,
    },
    /// A backend's load over the last second (reported once per second of its local clock
    /// while it runs).
    Load {
        /// Requests it finished (served, failed or rejected).
        finished: u32,
        /// Of those, failed with `error`.
        errors: u32,
        /// Of those, rejected for overload.
        rejected: u32,
        /// Most requests in service at once.
        in_flight_max: u32,
        /// Longest queue.
        queue_max: u32,
    },
    /// A caller's view of a backend's health changed.
    Health {
        /// The backend.
        backend: NodeId,
        /// Its health now.
        state: HealthState,
    },
    /// A caller's circuit breaker for `backend` changed state.
    Breaker {
        /// The backend.
        backend: NodeId,
        /// The state before.
        from: BreakerState,
        /// The state now.
        to: BreakerState,
    },
    /// A caller entered (`on`) or left panic mode: too few backends were healthy, so it
    /// balanced over all of them (Envoy's panic threshold).
    Panic {
        /// Panic mode on or off.
        on: bool,
    },
    /// A caller's backend set changed, and with it the hash ring (or modulo table): the
    /// share of a fixed sample of keys that now map to another backend.
    Remap {
        /// Backends before.
        before: u32,
        /// Backends after.
        after: u32,
        /// Share of the sampled keys that moved, from 0 to 1.
        moved_fraction: f64,
        /// The least share that must move: |before - after| / max(before, after).
        ideal_fraction: f64,
    },
}

/// The node's local clock in nanoseconds, clamped at 0 (a clock jumped before the epoch reads
/// 0): the time every library of the family takes.
pub(crate) fn now_ns(ctx: &crate::process::Context<'_>) -> u64 {
    ctx.local_time_ns().max(0) as u64
}

/// The balancing family.
pub static FAMILY: Family = Family {
    name: "balancing",
    summary: "backends with latency, capacity and errors; balancers (a proxy role or a client-side library) with strategies, health checks and outlier detection; retries, budgets, circuit breakers, rate limiters, fallbacks, idempotency keys and sagas",
    protocols: &[backend::PROTOCOL, balancer::PROTOCOL, ledger::PROTOCOL],
    workloads: &[client::WORKLOAD, payments::WORKLOAD, saga::WORKLOAD],
    checks: &[
        checks::BOUNDS_CHECK,
        saga_checks::NO_DOUBLE_APPLY_CHECK,
        saga_checks::SAGA_ATOMICITY_CHECK,
    ],
    decisions: None,
    narrator: Some(narrate::narrator),
    fold: None,
};
