//! The service registry family: service instances that register themselves with a TTL and
//! renew it by heartbeat, a registry that forgets instances whose heartbeats stop, and
//! discovering clients that look instances up and call them. Two registries serve the same
//! instances and clients, so one partition shows CAP side by side:
//!
//! - **CP** (the etcd / Consul servers / ZooKeeper model): the lock family's coordination
//!   service (`coordination`, Raft-replicated keys, leases expired by the leader, watches). An
//!   instance is a key `/services/<service>/<instance>` attached to a lease of its TTL; a
//!   heartbeat is a lease keep-alive; a lookup is a prefix read at the client's consistency
//!   level (Consul's `consistent`, `default`, `stale`). A minority side can neither register,
//!   renew nor read consistently.
//! - **AP** (the Eureka model): peer-replicated registry servers (`eureka`) that accept
//!   registrations and renewals on any node, replicate them asynchronously, evict instances
//!   whose lease ran out, and stop evicting while renewals fall below a threshold
//!   (self-preservation). A minority side keeps serving, possibly stale.
//!
//! Instances (`service-instance`, a role) and discovering clients (`discovery`, a workload)
//! are written once and speak to either registry through a [`RegistryAgent`]: the client
//! library of one registry (etcd's clientv3 and Eureka's `DiscoveryClient` play that part in
//! production), a sans-IO object the host process feeds with the agent's messages and timers.
//!
//! # Invariants and measurements
//!
//! - Convergence: after the final heal (and a settle time the scenario gives), every registry
//!   server and every client view agree on each service's instances.
//! - Removal: an instance that dies leaves every registry server's and every client's view;
//!   the time it takes, the share of calls sent to dead instances and the stale window are
//!   measured.
//! - CP: registry reads at `consistent` are linearizable with the registrations; Raft's checks
//!   hold. AP: no instance is evicted before its lease ran out or while self-preservation
//!   should hold.
//!
//! Sources: Consul's documentation (agents, health checks and TTL checks, consistency modes,
//! blocking queries), etcd's (leases, watches; the gRPC naming and discovery guide), ZooKeeper's
//! Programmer's Guide (ephemeral nodes, watches), Eureka's wiki ("Understanding eureka
//! client/server communication", self-preservation), Jepsen's Consul (2014) and etcd (2020)
//! analyses.

pub mod cp;

use serde::{Deserialize, Serialize};

use crate::process::{Context, NodeId, TimerId};
use crate::scenario::Duration;

/// Prefix under which the CP registry stores instances in the coordination service:
/// `/services/<service>/<instance>`.
pub const SERVICES_PREFIX: &str = "/services/";

/// One registered instance of a service, as instances announce it and registries store it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InstanceInfo {
    /// The service's name.
    pub service: String,
    /// The instance's id: its node's name (unique in the cluster).
    pub instance: String,
    /// The node that serves it (its "address").
    pub node: NodeId,
    /// Free-form tags (Consul's tags, Eureka's metadata).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Relative weight for weighted balancing (default 1).
    pub weight: u32,
}

/// Messages between discovering clients (or balancers) and service instances: the service's
/// own traffic, which registry faults do not touch.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServiceMessage {
    /// Client to instance: serve request `id` (unique per client node).
    Call {
        /// The caller's request id.
        id: u64,
    },
    /// Instance to client: request `id` was served by `instance`.
    CallReply {
        /// The request answered.
        id: u64,
        /// The serving instance's id.
        instance: String,
    },
}

/// A lookup's consistency level (Consul's consistency modes; etcd's linearizable and
/// serializable reads).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Linearizable: the leader confirms it still leads (ReadIndex) before answering.
    Consistent,
    /// The leader answers from its state without confirming (Consul's default): stale only
    /// in the short window where a deposed leader does not know it yet.
    #[default]
    Default,
    /// Any server answers from its own state (Consul's `stale`, etcd's serializable read;
    /// the only level an AP registry has).
    Stale,
}

/// What a host process hands its agent when it builds it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentConfig {
    /// This node.
    pub id: NodeId,
    /// The registry role's nodes, in scenario order.
    pub registry: Vec<NodeId>,
    /// The registry node to try first (round robin over the registry by client index).
    pub home: NodeId,
    /// Registration TTL in milliseconds: the registry forgets an instance whose heartbeats
    /// stop for this long (Eureka's lease duration, etcd's lease TTL, Consul's TTL check).
    pub ttl_ms: u64,
    /// Milliseconds between heartbeats (Eureka's renewal interval, etcd's keep-alive).
    pub heartbeat_interval_ms: u64,
    /// A request without an answer after this many milliseconds is given up (a lookup ends
    /// in [`AgentEvent::LookupFailed`] with `definite: false`) or retried on another server.
    pub request_timeout_ms: u64,
}

/// What an agent reports to its host, returned by every agent call that handles input.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum AgentEvent {
    /// The registry confirmed the instance's registration (first time or again).
    Registered,
    /// The registry no longer has the registration (a renewal found no lease / entry); the
    /// agent registers again by itself.
    RegistrationLost,
    /// The graceful deregistration was acknowledged.
    Deregistered,
    /// Lookup `lookup` was answered by registry node `server`.
    LookupOk {
        /// The host's id for the lookup.
        lookup: u64,
        /// The service's instances, sorted by instance id.
        instances: Vec<InstanceInfo>,
        /// The registry node that answered.
        server: NodeId,
        /// The registry's revision of the answer (CP), or `None` (AP).
        revision: Option<u64>,
    },
    /// Lookup `lookup` did not succeed: `definite` if the registry refused it (e.g. no leader
    /// reachable for a consistent read), else it timed out.
    LookupFailed {
        /// The host's id for the lookup.
        lookup: u64,
        /// Why.
        error: String,
        /// The registry answered with a refusal (else: no answer in time).
        definite: bool,
    },
    /// A watched service's instances changed (a watch fired and the agent read the new set).
    View {
        /// The service.
        service: String,
        /// Its instances now, sorted by instance id.
        instances: Vec<InstanceInfo>,
    },
}

/// The timers of a host process over agent `T`: the agent's own timers and the host's.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "of", rename_all = "kebab-case")]
pub enum RegistryTimer<T> {
    /// An agent timer, handed to [`RegistryAgent::on_timer`].
    Agent {
        /// The agent's timer.
        timer: T,
    },
    /// A host timer.
    Host {
        /// The host's timer.
        timer: HostTimer,
    },
}

/// Timers of the host processes (service instances and discovering clients).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum HostTimer {
    /// An instance leaves gracefully now.
    Leave,
    /// A discovering client's next lookup.
    Lookup,
    /// A discovering client's next call.
    Call,
    /// Call `id` got no answer in time.
    CallTimeout {
        /// The request.
        id: u64,
    },
    /// Lookup `lookup` got no answer in time (the host's own guard).
    LookupTimeout {
        /// The lookup.
        lookup: u64,
    },
}

/// Sets an agent timer of `delay` on a host process over agents whose timers are `T`.
pub fn set_agent_timer<T: crate::payload::Wire>(
    ctx: &mut Context<'_>,
    delay: std::time::Duration,
    timer: T,
) -> TimerId {
    ctx.set_timer(delay, RegistryTimer::Agent { timer })
}

/// The client library of one registry, inside a service instance or a discovering client: a
/// sans-IO object that turns the host's intents (register, deregister, look up, watch) into
/// the registry's messages and the registry's answers into [`AgentEvent`]s.
///
/// Contract:
/// - The host hands the agent every message of type `Self::Message` it receives and every
///   timer the agent set (through [`set_agent_timer`]).
/// - After [`RegistryAgent::register`], the agent keeps the instance registered (heartbeats
///   every `heartbeat_interval_ms`, retries on other registry nodes, registering again after
///   [`AgentEvent::RegistrationLost`]) until [`RegistryAgent::deregister`].
/// - Every [`RegistryAgent::lookup`] ends in exactly one `LookupOk` or `LookupFailed` with its
///   id, at the latest `request_timeout_ms` after it started (the agent may retry on other
///   servers within that time).
/// - Faults belong to the simulator: an agent never drops or delays on its own.
pub trait RegistryAgent: Send + 'static {
    /// Messages between the agent and registry servers.
    type Message: crate::payload::Wire;
    /// The agent's timers (set through [`set_agent_timer`]).
    type Timer: crate::payload::Wire;

    /// An agent for one node.
    fn new(config: AgentConfig) -> Self;

    /// Registers `instance` and keeps it registered until [`RegistryAgent::deregister`].
    fn register(&mut self, ctx: &mut Context<'_>, instance: &InstanceInfo);

    /// Removes the registration (graceful shutdown) and stops the heartbeats; reports
    /// [`AgentEvent::Deregistered`] once acknowledged.
    fn deregister(&mut self, ctx: &mut Context<'_>);

    /// Starts lookup `lookup` of `service` at `consistency` (an AP registry reads every level
    /// as [`Consistency::Stale`]).
    fn lookup(&mut self, ctx: &mut Context<'_>, lookup: u64, service: &str, consistency: Consistency);

    /// Subscribes to changes of `service`: each change (after an initial read) is reported as
    /// [`AgentEvent::View`]. Returns false if this registry has no watches (the host polls).
    fn watch(&mut self, ctx: &mut Context<'_>, service: &str) -> bool;

    /// A message from a registry server.
    fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Self::Message,
    ) -> Vec<AgentEvent>;

    /// An agent timer fired.
    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Self::Timer)
    -> Vec<AgentEvent>;
}

/// The registry family's facts of a run, reported by instances, registry servers and
/// discovering clients for the family's checks.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Observation {
    /// A registry server's set of instances of `service` changed (registration, expiry or
    /// eviction, deregistration, replication from a peer). Every registry server reports it
    /// for every service, CP replicas when they apply the change.
    ServerView {
        /// The service.
        service: String,
        /// Its instance ids now, sorted.
        instances: Vec<String>,
    },
    /// A discovering client's view (its cache) of `service` changed.
    ClientView {
        /// The service.
        service: String,
        /// Its instance ids now, sorted.
        instances: Vec<String>,
    },
    /// An instance's registration state changed, as its agent learned it.
    Registration {
        /// The service.
        service: String,
        /// The instance.
        instance: String,
        /// `registered`, `lost` or `deregistered`.
        state: String,
    },
    /// An instance starts leaving gracefully (it deregisters, then stops serving).
    Leaving {
        /// The service.
        service: String,
        /// The instance.
        instance: String,
    },
}

/// A duration option in milliseconds (helper for agents' and hosts' configs).
pub fn ms(d: Duration) -> u64 {
    d.as_nanos() / 1_000_000
}

/// Builds a host process (instance or discovering client) over a given agent type.
pub trait HostBuilder {
    /// The host over agent `A`.
    fn build<A: RegistryAgent>(self, config: AgentConfig) -> Box<dyn crate::process::AnyProcess>;
}

/// The registry protocols instances and discovering clients can use, by role protocol name.
/// Each registry adds its name here and its arm in [`with_agent`].
pub const REGISTRY_PROTOCOLS: &[&str] = &["coordination"];

/// Builds `host` over the agent of the registry protocol `protocol` (one of
/// [`REGISTRY_PROTOCOLS`]); `None` for any other protocol.
pub fn with_agent<B: HostBuilder>(
    protocol: &str,
    host: B,
    config: AgentConfig,
) -> Option<Box<dyn crate::process::AnyProcess>> {
    match protocol {
        "coordination" => Some(host.build::<cp::CoordAgent>(config)), // CP registry
        // "eureka" => Some(host.build::<eureka::EurekaAgent>(config)),     (AP registry)
        _ => None,
    }
}
