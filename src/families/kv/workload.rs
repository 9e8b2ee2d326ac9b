//! The `kv` and `broadcast` workloads: what their client groups accept as options, how the
//! options are checked, and the registry entries.
//!
//! Both run the same client process ([`Client`]); they differ in their operations (`get`,
//! `put`, `append`, `cas` on keys `k1`..`kN`, or `broadcast` and `read` of integers) and in what
//! the generic checks do with their histories.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::families::kv::Client;
use crate::family::{
    self, Configured, HistoryTraits, NodeSetup, OptionError, RoleContext, WorkloadInfo,
};
use crate::history::ModelKind;
use crate::scenario::{Duration, limits};

/// The key-value workload's name (`workload = "kv"`).
pub const WORKLOAD_NAME: &str = "kv";
/// The broadcast workload's name (`workload = "broadcast"`).
pub const BROADCAST_WORKLOAD_NAME: &str = "broadcast";

/// Which operations a [`Client`] issues.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `broadcast` and `read` of integers (Maelstrom's broadcast).
    Broadcast,
    /// `get`, `put`, `append`, `cas` on string keys.
    KeyValue,
}

impl WorkloadKind {
    /// The operation names a `mix` may use, with their default weights.
    pub fn default_mix(self) -> &'static [(&'static str, f64)] {
        match self {
            WorkloadKind::Broadcast => &[("broadcast", 0.8), ("read", 0.2)],
            WorkloadKind::KeyValue => &[("get", 0.4), ("put", 0.3), ("append", 0.2), ("cas", 0.1)],
        }
    }
}

/// The registry entry of the key-value workload.
pub const KV_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: WORKLOAD_NAME,
    summary: "get, put, append and cas on keys k1..kN, unique values; leader discovery, retries, timeouts",
    history: HistoryTraits {
        model: Some(ModelKind::KeyValue),
        availability: true,
        stale_reads: true,
    },
    bugs: &[],
    configure: |ctx| configure(ctx, WorkloadKind::KeyValue),
};

/// The registry entry of the broadcast workload.
pub const BROADCAST_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: BROADCAST_WORKLOAD_NAME,
    summary: "broadcast unique integers and read every value a node holds (Maelstrom's broadcast)",
    history: HistoryTraits {
        model: None,
        availability: false,
        stale_reads: false,
    },
    bugs: &[],
    configure: |ctx| configure(ctx, WorkloadKind::Broadcast),
};

fn configure(ctx: &RoleContext<'_>, kind: WorkloadKind) -> Result<Configured, Vec<OptionError>> {
    let options: WorkloadOptions = family::parse_options(ctx.options)?;
    let errors = if ctx.checking {
        validate(&options, ctx, kind)
    } else {
        Vec::new()
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Configured {
        options: family::resolved_options(&options),
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            Box::new(Client::new(setup, kind, &options))
        }),
    })
}

fn validate(w: &WorkloadOptions, ctx: &RoleContext<'_>, kind: WorkloadKind) -> Vec<OptionError> {
    let mut errors = Vec::new();
    let mut check = |ok: bool, key: &str, message: &dyn Fn() -> String| {
        if !ok {
            errors.push(OptionError::at(key, message()));
        }
    };
    check(
        (1..=limits::MAX_CONCURRENCY).contains(&w.concurrency),
        "concurrency",
        &|| {
            format!(
                "expected between 1 and {} (the limit), found {}",
                limits::MAX_CONCURRENCY,
                w.concurrency
            )
        },
    );
    if let Some(rate) = w.rate_per_s {
        check(
            rate.is_finite() && rate > 0.0 && rate <= limits::MAX_RATE_PER_S,
            "rate_per_s",
            &|| {
                format!(
                    "expected a rate above 0 and at most {} per second (the limit), found {rate}",
                    limits::MAX_RATE_PER_S
                )
            },
        );
    }
    check(w.request_timeout.as_nanos() > 0, "request_timeout", &|| {
        "expected a positive duration".into()
    });
    check(w.attempt_timeout.as_nanos() > 0, "attempt_timeout", &|| {
        "expected a positive duration".into()
    });
    check((1..=limits::MAX_KEYS).contains(&w.keys), "keys", &|| {
        format!(
            "expected between 1 and {} (the limit), found {}",
            limits::MAX_KEYS,
            w.keys
        )
    });
    let allowed: Vec<&str> = kind.default_mix().iter().map(|(f, _)| *f).collect();
    let served_by = ctx.talks_to.first().map_or(ctx.name, |p| p.name);
    for (f, weight) in &w.mix {
        if !allowed.contains(&f.as_str()) {
            errors.push(OptionError::at_path(
                &["mix", f],
                format!(
                    "unknown operation \"{f}\" for {served_by}; expected one of: {}",
                    allowed.join(", ")
                ),
            ));
        } else if !(weight.is_finite() && *weight >= 0.0) {
            errors.push(OptionError::at_path(
                &["mix", f],
                format!("expected a weight of 0 or more, found {weight}"),
            ));
        }
    }
    if !w.mix.is_empty() && w.mix.values().sum::<f64>() <= 0.0 {
        errors.push(OptionError::at(
            "mix",
            "expected at least one positive weight",
        ));
    }
    let duration = ctx.scenario.duration;
    let stop = w.stop.unwrap_or(duration);
    if stop > duration {
        errors.push(OptionError::at(
            "stop",
            format!("expected at most the run's duration ({duration})"),
        ));
    }
    if w.start >= stop {
        errors.push(OptionError::at(
            "start",
            format!("expected a start before the workload stops ({stop})"),
        ));
    }
    // A latency that is always zero lets a client and a server exchange messages without time
    // passing; with no pause on the client's side either (`think_time` in a closed loop,
    // `retry_delay` after a redirect) that exchange repeats at one instant forever.
    let network = &ctx.scenario.network;
    let zero = network.latency.always_zero()
        || network
            .links
            .iter()
            .any(|l| l.latency.as_ref().is_some_and(|l| l.always_zero()));
    if zero && !ctx.nodes.is_empty() {
        for (key, pause, applies) in [
            ("think_time", w.think_time, w.rate_per_s.is_none()),
            ("retry_delay", w.retry_delay, true),
        ] {
            if applies && pause.as_nanos() == 0 {
                errors.push(OptionError::at(
                    key,
                    format!(
                        "a network latency that is always 0 with {key} = \"0s\" lets a client and a server exchange messages forever without time passing; expected a latency above 0 or a positive {key}"
                    ),
                ));
            }
        }
    }
    errors
}

/// A client group's options for the `kv` and `broadcast` workloads (the shorthand `[workload]`
/// table, without `clients`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadOptions {
    /// Closed loop: operations each client keeps outstanding (one per logical process).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Open loop: if set, each client starts operations at this Poisson rate (per simulated
    /// second) whether or not earlier ones finished, up to `concurrency` outstanding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<f64>,
    /// Closed loop: pause between one operation's completion and the process's next invoke.
    #[serde(default = "default_think_time")]
    pub think_time: Duration,
    /// Time after which an unanswered operation is recorded as `info` (outcome unknown).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// If a server has not answered an attempt within this time, the client retries the same
    /// request (same id, so servers can deduplicate it) on the next server, until
    /// `request_timeout`.
    #[serde(default = "default_attempt_timeout")]
    pub attempt_timeout: Duration,
    /// How long a client waits before retrying on another server after a redirect without a
    /// leader hint.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: Duration,
    /// Number of keys (`k1`..`kN`) for key-value workloads.
    #[serde(default = "default_keys")]
    pub keys: u32,
    /// Operation mix: relative weights by function name (`get`, `put`, `append`, `cas` for
    /// key-value; `broadcast`, `read` for broadcast). Defaults depend on the protocol.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mix: BTreeMap<String, f64>,
    /// Clients start invoking at this time.
    #[serde(default)]
    pub start: Duration,
    /// Clients invoke nothing new after this time (default: the scenario's `duration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
}

fn default_concurrency() -> u32 {
    1
}
fn default_think_time() -> Duration {
    Duration::from_millis(50)
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(1)
}
fn default_attempt_timeout() -> Duration {
    Duration::from_millis(300)
}
fn default_retry_delay() -> Duration {
    Duration::from_millis(20)
}
fn default_keys() -> u32 {
    5
}

impl Default for WorkloadOptions {
    fn default() -> Self {
        toml::from_str("").expect("the empty workload table deserializes")
    }
}
