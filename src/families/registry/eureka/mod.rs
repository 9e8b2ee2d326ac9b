//! The AP registry (protocol `eureka`): the Eureka model of peer-replicated registry servers,
//! and its client library ([`EurekaAgent`]).
//!
//! Sources: Netflix Eureka's wiki, "Understanding eureka client/server communication" (register,
//! renew every 30 s, cancel, fetch registry, the 90 s lease) and "Server Self Preservation Mode"
//! (expected renewals per minute, the 85% threshold); Eureka's source for the names:
//! `PeerAwareInstanceRegistryImpl` (`register`, `renew`, `cancel`, `syncUp`,
//! `isLeaseExpirationEnabled`, `numberOfRenewsPerMinThreshold`), `AbstractInstanceRegistry`
//! (`evict`, `renewsLastMin`), `PeerEurekaNodes` / `PeerEurekaNode` (batched replication,
//! `ReplicationTask`'s 404-on-heartbeat re-registration), `Lease` (`durationInSecs`,
//! `lastUpdateTimestamp`) and the client's `DiscoveryClient` (`HeartbeatThread`,
//! `RetryableEurekaHttpClient`).
//!
//! # Algorithm
//!
//! - **Register / renew / cancel on any node** ([`server::EurekaServer`]). A client's
//!   [`EurekaMessage::Register`] (carrying the instance, its lease duration `ttl_ms`, Eureka's
//!   `leaseExpirationDurationInSeconds`, and its renewal interval) puts a lease in the local
//!   registry; [`EurekaMessage::Renew`] sets the lease's last renewal to now (answered
//!   [`EurekaMessage::NotFound`] when the server has no such lease: the client registers
//!   again, as Eureka's 404 on a heartbeat makes it do); [`EurekaMessage::Cancel`] removes it.
//! - **Asynchronous peer replication.** Every accepted client request is queued for every peer
//!   and sent in batches ([`EurekaMessage::Replicate`]) after `replication_batch_delay`, at most
//!   `replication_batch_max` items a batch, at most `replication_queue_max` queued per peer
//!   (the oldest dropped beyond, as Eureka's replication pool does). Batches are not
//!   acknowledged nor retried: a replicated renew of an unknown instance makes the peer answer
//!   [`EurekaMessage::ReplicaNotFound`], and the origin replicates the registration again
//!   (Eureka's `ReplicationTask.handleFailure` on a 404). A lost cancel is repaired by the
//!   peer's own eviction. Replicated items are never replicated again.
//! - **Lookups** ([`EurekaMessage::Lookup`]) are answered from the local registry, always (AP):
//!   a server cut off from the instances keeps serving what it has.
//! - **Eviction.** Every `eviction_interval` (Eureka's `evictionIntervalTimerInMs`, default
//!   60 s) the server evicts every lease whose last renewal (received or replicated) is at
//!   least its `ttl_ms` old, unless self-preservation holds. Evictions are local, never
//!   replicated (each peer evicts on its own, as in Eureka).
//! - **Self-preservation** (`PeerAwareInstanceRegistryImpl.isLeaseExpirationEnabled`). The
//!   server counts the renewals it accepted (direct or replicated) in the last
//!   `renewal_window` (default 60 s: Eureka's `renewsLastMin`). It expects, from each lease in
//!   its registry, one renewal per renewal interval over the part of the window the lease has
//!   existed: for a lease older than the window, `window / interval` (Eureka's expected
//!   renewals per minute, `instances × 60 s / renewal interval`). While the count is below
//!   `renewal_percent_threshold` (default 0.85) of the expectation, eviction stops. A
//!   partition that cuts a server off from its instances stops their renewals all at once, so
//!   the count falls below the threshold long before a lease runs out, and the registry keeps
//!   them (possibly stale) instead of emptying. Simplifications: the expectation follows the
//!   registry continuously (Eureka recomputes it every 15 minutes and on register and cancel);
//!   there is no 15% cap on evictions a run.
//! - **Crash and restart.** The registry is in memory only (as Eureka's): a crash loses it.
//!   On start the server asks every peer for its registry ([`EurekaMessage::SyncRequest`],
//!   Eureka's `syncUp`) and takes the first answer's leases as renewed now; until then (or if
//!   no peer answers) it serves what it has, and the instances' heartbeats, answered
//!   `NotFound`, make them register again.
//!
//! # Invariants (check `eviction-safety`, [`check`])
//!
//! No server evicts an instance before its lease ran out at that server (no renewal received
//! or replicated for `ttl_ms`), nor while self-preservation should hold by the counts the
//! server reported and the role's resolved options (recomputed by the check, not read from the
//! server's flag).
//!
//! # Options of a `eureka` role ([`EurekaConfig`]; unknown keys are errors)
//!
//! `eviction_interval` (`"60s"`, from 1ms to 1h), `renewal_window` (`"60s"`, from 1ms to 1h),
//! `renewal_percent_threshold` (0.85, in (0, 1]), `self_preservation` (true),
//! `replication_batch_delay` (`"500ms"`, from 0s to 1h), `replication_batch_max` (250, 1 to
//! 10 000), `replication_queue_max` (10 000, 1 to 1 000 000), `bugs` (list of [`EurekaBug`]
//! names).
//!
//! # Planted bugs
//!
//! | name | what it breaks | caught by |
//! |---|---|---|
//! | `no-self-preservation` | the server evicts expired leases whatever the renewal count: a partition empties the registry on a side | `eviction-safety` |
//! | `evict-on-first-miss` | a lease is evicted once one renewal interval passes without a renewal: instances flap | `eviction-safety` |

pub mod agent;
pub mod check;
pub mod server;
#[cfg(test)]
mod sim_tests;

use serde::{Deserialize, Serialize};

use super::InstanceInfo;
use crate::family::{self, Bug, OptionError, ProtocolInfo};
use crate::process::NodeId;
use crate::scenario::Duration;

pub use agent::{AgentTimer, EurekaAgent};
pub use check::EVICTION_SAFETY_CHECK;
pub use server::EurekaServer;

/// The protocol's name, as a role's `protocol`.
pub const PROTOCOL_NAME: &str = "eureka";
/// Name of the eviction-safety check.
pub const CHECK_EVICTION_SAFETY: &str = "eviction-safety";

/// Messages of the Eureka model: between agents and servers, and between peer servers.
/// `request` numbers an agent's requests so it can tell a late answer from the current one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EurekaMessage {
    /// Agent to server: register `instance` with a lease of `ttl_ms`, renewed every
    /// `renewal_interval_ms` (Eureka's `POST /eureka/v2/apps/{app}` with its `LeaseInfo`).
    Register {
        /// The agent's request number.
        request: u64,
        /// The instance.
        instance: InstanceInfo,
        /// Lease duration in milliseconds (`leaseExpirationDurationInSeconds`).
        ttl_ms: u64,
        /// Renewal interval in milliseconds (`leaseRenewalIntervalInSeconds`).
        renewal_interval_ms: u64,
    },
    /// Server to agent: registered.
    Registered {
        /// The register answered.
        request: u64,
    },
    /// Agent to server: renew the lease of `instance` of `service` (a heartbeat, `PUT
    /// /eureka/v2/apps/{app}/{id}`).
    Renew {
        /// The agent's request number.
        request: u64,
        /// The service.
        service: String,
        /// The instance.
        instance: String,
    },
    /// Server to agent: renewed.
    Renewed {
        /// The renew answered.
        request: u64,
    },
    /// Server to agent: no such lease here (Eureka's 404 on a heartbeat): register again.
    NotFound {
        /// The renew answered.
        request: u64,
    },
    /// Agent to server: remove the registration (graceful shutdown, `DELETE`).
    Cancel {
        /// The agent's request number.
        request: u64,
        /// The service.
        service: String,
        /// The instance.
        instance: String,
    },
    /// Server to agent: the registration is gone (`existed` false if there was none).
    Cancelled {
        /// The cancel answered.
        request: u64,
        /// The server had the lease.
        existed: bool,
    },
    /// Agent to server: the instances of `service` (a registry fetch).
    Lookup {
        /// The agent's request number.
        request: u64,
        /// The service.
        service: String,
    },
    /// Server to agent: the instances of the service in the server's registry, sorted by id.
    Instances {
        /// The lookup answered.
        request: u64,
        /// The instances.
        instances: Vec<InstanceInfo>,
    },
    /// Server to peer: a batch of replicated client requests, in the order accepted.
    Replicate {
        /// The items.
        items: Vec<ReplicationItem>,
    },
    /// Peer to origin server: a replicated renew found no lease; replicate the registration.
    ReplicaNotFound {
        /// The service.
        service: String,
        /// The instance.
        instance: String,
    },
    /// Restarted server to its peers: send me your registry (Eureka's `syncUp`).
    SyncRequest,
    /// Peer to restarted server: every lease of its registry.
    SyncReply {
        /// The leases.
        leases: Vec<LeaseInfo>,
    },
}

/// A lease as replicated: the instance, its lease duration and renewal interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LeaseInfo {
    /// The instance.
    pub instance: InstanceInfo,
    /// Lease duration in milliseconds.
    pub ttl_ms: u64,
    /// Renewal interval in milliseconds.
    pub renewal_interval_ms: u64,
}

/// One replicated client request (Eureka's `ReplicationInstance` with its `action`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum ReplicationItem {
    /// A registration.
    Register {
        /// The lease.
        lease: LeaseInfo,
    },
    /// A heartbeat.
    Renew {
        /// The service.
        service: String,
        /// The instance.
        instance: String,
    },
    /// A cancel.
    Cancel {
        /// The service.
        service: String,
        /// The instance.
        instance: String,
    },
}

/// Timers of a `eureka` server.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum ServerTimer {
    /// Run the eviction task (every `eviction_interval`).
    Evict,
    /// Send the replication batch queued for `peer`.
    Flush {
        /// The peer.
        peer: NodeId,
    },
}

/// The facts a `eureka` server reports for the `eviction-safety` check and for people (besides
/// [`super::Observation::ServerView`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "fact", rename_all = "kebab-case")]
pub enum EurekaObservation {
    /// The server evicted `instance`: its counters at that moment, on its local clock.
    Evicted {
        /// The service.
        service: String,
        /// The instance.
        instance: String,
        /// Milliseconds since the lease's last renewal (received or replicated) or
        /// registration.
        lease_age_ms: u64,
        /// The lease duration.
        ttl_ms: u64,
        /// Renewals the server accepted in the last `renewal_window`.
        renewals_in_window: u64,
        /// Renewals it expected in that window from the leases in its registry.
        expected_renewals_in_window: f64,
        /// Whether the server itself believed self-preservation held (false unless a bug
        /// evicts anyway).
        self_preservation: bool,
    },
    /// Self-preservation started (`active`) or ended, at an eviction run.
    SelfPreservation {
        /// On or off.
        active: bool,
        /// Renewals accepted in the last `renewal_window`.
        renewals_in_window: u64,
        /// Renewals expected in that window.
        expected_renewals_in_window: f64,
    },
    /// A (re)started server took `leases` leases from `peer`'s registry (`syncUp`).
    WarmedUp {
        /// The peer that answered first.
        peer: NodeId,
        /// How many leases it took.
        leases: u64,
    },
}

/// Planted bugs of the `eureka` server (`bugs = [...]` in the role's options).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EurekaBug {
    /// Evicts expired leases whatever the renewal count (self-preservation ignored).
    NoSelfPreservation,
    /// Evicts a lease once one renewal interval passes without a renewal, not its lease
    /// duration.
    EvictOnFirstMiss,
}

/// The planted bugs of the `eureka` protocol, in [`EurekaBug`] order.
pub const BUGS: &[Bug] = &[
    Bug {
        name: "no-self-preservation",
        summary: "the eureka server evicts expired leases even while renewals are below the self-preservation threshold: a partition empties the registry on a side",
        caught_by: CHECK_EVICTION_SAFETY,
    },
    Bug {
        name: "evict-on-first-miss",
        summary: "the eureka server evicts a lease as soon as one renewal interval passes without a renewal, not its lease duration: instances flap",
        caught_by: CHECK_EVICTION_SAFETY,
    },
];

/// Most items one replication batch may hold (`replication_batch_max`).
pub const MAX_BATCH_ITEMS: u32 = 10_000;
/// Most items queued for one peer (`replication_queue_max`).
pub const MAX_QUEUE_ITEMS: u32 = 1_000_000;
/// Most renewal times a server keeps for its window count: beyond it the oldest are dropped
/// (the count saturates; a cluster would need over a million renewals per window).
pub const MAX_WINDOW_RENEWALS: usize = 1_000_000;

/// Options of a `eureka` role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EurekaConfig {
    /// Time between eviction runs (Eureka's `evictionIntervalTimerInMs`; default 60s).
    #[serde(default = "sixty_seconds")]
    pub eviction_interval: Duration,
    /// The window renewals are counted over for self-preservation (Eureka's `renewsLastMin`:
    /// default 60s).
    #[serde(default = "sixty_seconds")]
    pub renewal_window: Duration,
    /// Share of the expected renewals below which eviction stops (Eureka's
    /// `renewalPercentThreshold`; default 0.85).
    #[serde(default = "default_threshold")]
    pub renewal_percent_threshold: f64,
    /// Self-preservation on (Eureka's `enableSelfPreservation`; default true).
    #[serde(default = "crate::scenario::yes")]
    pub self_preservation: bool,
    /// How long accepted requests wait to be replicated in one batch (Eureka's
    /// `maxBatchingDelay`; default 500ms).
    #[serde(default = "default_batch_delay")]
    pub replication_batch_delay: Duration,
    /// Most items in one replication batch (Eureka's `maxBatchingSize`; default 250).
    #[serde(default = "default_batch_max")]
    pub replication_batch_max: u32,
    /// Most items queued for one peer; the oldest are dropped beyond (Eureka's
    /// `maxElementsInPeerReplicationPool`; default 10 000).
    #[serde(default = "default_queue_max")]
    pub replication_queue_max: u32,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<EurekaBug>,
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}
fn default_threshold() -> f64 {
    0.85
}
fn default_batch_delay() -> Duration {
    Duration::from_millis(500)
}
fn default_batch_max() -> u32 {
    250
}
fn default_queue_max() -> u32 {
    10_000
}

impl Default for EurekaConfig {
    fn default() -> Self {
        EurekaConfig {
            eviction_interval: sixty_seconds(),
            renewal_window: sixty_seconds(),
            renewal_percent_threshold: default_threshold(),
            self_preservation: true,
            replication_batch_delay: default_batch_delay(),
            replication_batch_max: default_batch_max(),
            replication_queue_max: default_queue_max(),
            bugs: Vec::new(),
        }
    }
}

impl EurekaConfig {
    /// Every problem with these options (none: valid), each at its key: durations within
    /// their ranges (see the module docs), `renewal_percent_threshold` in (0, 1], the batch and
    /// queue sizes within theirs.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        let mut duration = |key: &str, value: Duration, zero_ok: bool| {
            let min = Duration::from_millis(if zero_ok { 0 } else { 1 });
            crate::families::check_duration_from(&mut errors, key, value, min);
        };
        duration("eviction_interval", self.eviction_interval, false);
        duration("renewal_window", self.renewal_window, false);
        duration(
            "replication_batch_delay",
            self.replication_batch_delay,
            true,
        );
        let t = self.renewal_percent_threshold;
        if !(t > 0.0 && t <= 1.0) {
            errors.push(OptionError::at(
                "renewal_percent_threshold",
                format!("expected a share in (0, 1], found {t}"),
            ));
        }
        let mut count = |key: &str, value: u32, max: u32| {
            if value == 0 || value > max {
                errors.push(OptionError::at(
                    key,
                    format!("expected from 1 to {max}, found {value}"),
                ));
            }
        };
        count(
            "replication_batch_max",
            self.replication_batch_max,
            MAX_BATCH_ITEMS,
        );
        count(
            "replication_queue_max",
            self.replication_queue_max,
            MAX_QUEUE_ITEMS,
        );
        errors
    }

    /// True if planted bug `bug` is on.
    pub fn bug(&self, bug: EurekaBug) -> bool {
        self.bugs.contains(&bug)
    }

    /// True if `renewals` accepted in the window are below the self-preservation threshold of
    /// `expected` (and self-preservation is on): eviction must stop. The one rule the server
    /// and the `eviction-safety` check share.
    pub fn preserving(&self, renewals: u64, expected: f64) -> bool {
        self.self_preservation
            && expected > 0.0
            && (renewals as f64) < self.renewal_percent_threshold * expected
    }
}

/// The `eureka` protocol.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: PROTOCOL_NAME,
    summary: "Eureka-model AP registry: register/renew/cancel on any node, asynchronous batched peer replication, local lookups, lease eviction with self-preservation",
    serves: &["discovery"],
    bugs: BUGS,
    built_on: &[],
    configure: |ctx| {
        family::configure(
            ctx,
            |c: &EurekaConfig, _| c.validate(),
            |setup, c| Box::new(EurekaServer::new(setup.id, setup.peers(), c.clone())),
        )
    },
};

#[cfg(test)]
mod test_support {
    //! Effects of a handler, by kind, for unit tests.
    use crate::process::{Effect, TimerId, Wire};

    pub use crate::process::{observations as observed, sent_messages as sent};

    /// Timers of type `T` set: (id, delay in ms, payload).
    pub fn timers<T: Wire>(effects: &[Effect]) -> Vec<(TimerId, u64, T)> {
        crate::process::timers_set(effects)
            .into_iter()
            .map(|(id, delay, t)| (id, delay.as_millis() as u64, t))
            .collect()
    }
}
