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

pub mod checks;
pub mod cp;
pub mod discovery;
pub mod eureka;
pub mod instance;
pub mod narrate;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::family::{
    self, Configured, Family, HistoryTraits, NodeSetup, OptionError, ProtocolInfo, RoleContext,
    WorkloadInfo,
};
use crate::process::{AnyProcess, Context, NodeId, TimerId};
use crate::scenario::Duration;

use discovery::{Discoverer, DiscoveryConfig};
use instance::{InstanceConfig, ServiceInstance};

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
    fn lookup(
        &mut self,
        ctx: &mut Context<'_>,
        lookup: u64,
        service: &str,
        consistency: Consistency,
    );

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
    fn on_timer(
        &mut self,
        ctx: &mut Context<'_>,
        id: TimerId,
        timer: Self::Timer,
    ) -> Vec<AgentEvent>;
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
pub const REGISTRY_PROTOCOLS: &[&str] = &[
    crate::families::lock::coord::server::PROTOCOL_NAME,
    eureka::PROTOCOL_NAME,
];

/// Builds `host` over the agent of the registry protocol `protocol` (one of
/// [`REGISTRY_PROTOCOLS`]); `None` for any other protocol.
pub fn with_agent<B: HostBuilder>(
    protocol: &str,
    host: B,
    config: AgentConfig,
) -> Option<Box<dyn crate::process::AnyProcess>> {
    match protocol {
        crate::families::lock::coord::server::PROTOCOL_NAME => {
            Some(host.build::<cp::CoordAgent>(config))
        }
        eureka::PROTOCOL_NAME => Some(host.build::<eureka::EurekaAgent>(config)),
        _ => None,
    }
}

/// The `service-instance` protocol's name.
pub const SERVICE_INSTANCE_NAME: &str = "service-instance";
/// Protocols whose nodes register themselves with a registry role: service instances, and the
/// balancing family's `backend`s (each wraps a service instance).
pub const REGISTERING_PROTOCOLS: &[&str] = &[
    SERVICE_INSTANCE_NAME,
    crate::families::balancing::backend::PROTOCOL_NAME,
];
/// The `discovery` workload's name.
pub const DISCOVERY_NAME: &str = "discovery";

/// The `service-instance` role: nodes that register themselves with a registry role, renew by
/// heartbeat and serve calls.
pub const SERVICE_INSTANCE: ProtocolInfo = ProtocolInfo {
    name: SERVICE_INSTANCE_NAME,
    summary: "a service instance: registers itself (service, tags, weight, TTL) with a registry role, renews by heartbeat, serves calls, optionally leaves gracefully",
    serves: &[],
    bugs: &[],
    built_on: &[],
    configure: configure_instance,
};

/// The `discovery` workload: clients that look a service up and call its instances.
pub const DISCOVERY: WorkloadInfo = WorkloadInfo {
    name: DISCOVERY_NAME,
    summary: "look a service's instances up in the registry (polling, optionally watching) and call them round robin",
    history: HistoryTraits {
        model: None,
        availability: false,
        stale_reads: false,
    },
    bugs: &[],
    configure: configure_discovery,
};

/// The registry family.
pub static FAMILY: Family = Family {
    name: "registry",
    summary: "service instances registering with TTL heartbeats, discovering clients, and a CP or AP registry (measured side by side)",
    protocols: &[SERVICE_INSTANCE, eureka::PROTOCOL],
    workloads: &[DISCOVERY],
    checks: &[
        checks::CONVERGENCE_CHECK,
        checks::BOUNDS_CHECK,
        eureka::EVICTION_SAFETY_CHECK,
        cp::linearizable::CHECK,
    ],
    decisions: None,
    narrator: Some(narrate::narrator),
    fold: None,
};

/// The registry role an instance role registers with: `name` if given, else the one role
/// running a registry protocol. Returns (role name, protocol).
pub(crate) fn registry_role(
    ctx: &RoleContext<'_>,
    name: &str,
) -> Result<(String, String), OptionError> {
    let roles = &ctx.scenario.cluster.roles;
    let registries: Vec<_> = roles
        .iter()
        .filter(|r| REGISTRY_PROTOCOLS.contains(&r.protocol.as_str()))
        .collect();
    let found = if name.is_empty() {
        match registries.as_slice() {
            [one] => Some(*one),
            _ => {
                return Err(OptionError::at(
                    "registry",
                    format!(
                        "expected the name of the registry role (one running {}); the scenario has {} such roles",
                        REGISTRY_PROTOCOLS.join(" or "),
                        registries.len()
                    ),
                ));
            }
        }
    } else {
        registries.iter().copied().find(|r| r.name == name)
    };
    found
        .map(|r| (r.name.clone(), r.protocol.clone()))
        .ok_or_else(|| {
            OptionError::at(
                "registry",
                format!(
                    "expected a role running {}, found \"{name}\"",
                    REGISTRY_PROTOCOLS.join(" or ")
                ),
            )
        })
}

/// The service of an instance role: its `service` option, else the role's name.
fn service_of(role: &crate::scenario::RoleSpec) -> String {
    let option = role.options.get("service").and_then(|v| v.as_str());
    service_or_role(option.unwrap_or(""), &role.name)
}

/// An instance role's service: its `service` option, or the role's name when that is empty.
fn service_or_role(service: &str, role: &str) -> String {
    if service.is_empty() { role } else { service }.to_string()
}

fn configure_instance(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let mut config: InstanceConfig = family::parse_options(ctx.options)?;
    config.service = service_or_role(&config.service, ctx.name);
    let mut errors = if ctx.checking {
        config.validate()
    } else {
        Vec::new()
    };
    let registry = match registry_role(ctx, &config.registry) {
        Ok(found) => Some(found),
        Err(e) => {
            errors.push(e);
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let (role, protocol) = registry.expect("no errors");
    config.registry = role.clone();
    let resolved = config.clone();
    Ok(Configured {
        options: family::resolved_options(&resolved),
        build: Arc::new(move |setup: &NodeSetup| {
            instance_process(setup, &config, &role, &protocol)
        }),
    })
}

/// The `service-instance` process of node `setup.id`, registering as `config` says with the
/// registry role `role` running `protocol` (one of [`REGISTRY_PROTOCOLS`]); its index among
/// its own role's nodes picks its home registry node. The load-balancing family's backends
/// embed it too.
pub(crate) fn instance_process(
    setup: &NodeSetup,
    config: &InstanceConfig,
    role: &str,
    protocol: &str,
) -> Box<dyn AnyProcess> {
    let registry = setup.topology.resolve_static(role).unwrap_or_default();
    let index = setup
        .servers
        .iter()
        .position(|&s| s == setup.id)
        .unwrap_or(0);
    let home = registry[index % registry.len()];
    let info = InstanceInfo {
        service: config.service.clone(),
        instance: setup.topology.name(setup.id).to_string(),
        node: setup.id,
        tags: config.tags.clone(),
        weight: config.weight,
    };
    let agent = config.agent(setup.id, registry, home);
    let host = InstanceHost {
        info,
        leave_at: config.leave_at,
    };
    with_agent(protocol, host, agent).expect("a registry protocol, validated")
}

struct InstanceHost {
    info: InstanceInfo,
    leave_at: Option<Duration>,
}

impl HostBuilder for InstanceHost {
    fn build<A: RegistryAgent>(self, config: AgentConfig) -> Box<dyn AnyProcess> {
        Box::new(ServiceInstance::<A>::new(self.info, self.leave_at, config))
    }
}

struct DiscoveryHost {
    client_index: u32,
    config: DiscoveryConfig,
}

impl HostBuilder for DiscoveryHost {
    fn build<A: RegistryAgent>(self, agent: AgentConfig) -> Box<dyn AnyProcess> {
        Box::new(Discoverer::<A>::new(self.client_index, self.config, agent))
    }
}

fn configure_discovery(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let mut config: DiscoveryConfig = family::parse_options(ctx.options)?;
    let mut errors = if ctx.checking {
        config.validate()
    } else {
        Vec::new()
    };
    let Some(position) = ctx
        .talks_to
        .iter()
        .position(|p| REGISTRY_PROTOCOLS.contains(&p.name))
    else {
        return Err(vec![OptionError::of_role(
            "talks_to",
            format!(
                "a discovery client group talks to a registry role (one running {})",
                REGISTRY_PROTOCOLS.join(" or ")
            ),
        )]);
    };
    let protocol = ctx.talks_to[position].name;
    if config.service.is_empty() {
        let services: Vec<String> = ctx
            .scenario
            .cluster
            .roles
            .iter()
            .filter(|r| r.protocol == SERVICE_INSTANCE_NAME)
            .map(service_of)
            .collect();
        match services.as_slice() {
            [one] => config.service = one.clone(),
            _ => errors.push(OptionError::at(
                "service",
                format!(
                    "expected the service to look up; the scenario has {} service-instance roles",
                    services.len()
                ),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolved = config.clone();
    Ok(Configured {
        options: family::resolved_options(&resolved),
        build: Arc::new(move |setup: &NodeSetup| {
            let registry = setup.talks_to[position].1.clone();
            let home = registry[setup.client_index as usize % registry.len()];
            let agent = config.agent(setup.id, registry, home);
            let host = DiscoveryHost {
                client_index: setup.client_index,
                config: config.clone(),
            };
            with_agent(protocol, host, agent).expect("a registry protocol, validated")
        }),
    })
}

/// A registry agent for unit tests of the hosts: it logs what the host asked and, for each
/// [`fake::Reply`] message, returns the events it carries.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// A message that makes the fake agent report `0`.
    #[derive(Clone, Debug, PartialEq, Serialize)]
    pub struct Reply(pub Vec<AgentEvent>);

    /// The fake agent.
    pub struct FakeAgent {
        /// What the host asked, in order.
        pub log: Vec<String>,
    }

    impl RegistryAgent for FakeAgent {
        type Message = Reply;
        type Timer = ();

        fn new(_: AgentConfig) -> Self {
            FakeAgent { log: Vec::new() }
        }
        fn register(&mut self, _: &mut Context<'_>, instance: &InstanceInfo) {
            self.log.push(format!("register {}", instance.instance));
        }
        fn deregister(&mut self, _: &mut Context<'_>) {
            self.log.push("deregister".into());
        }
        fn lookup(&mut self, _: &mut Context<'_>, lookup: u64, service: &str, c: Consistency) {
            self.log.push(format!("lookup {lookup} {service} {c:?}"));
        }
        fn watch(&mut self, _: &mut Context<'_>, service: &str) -> bool {
            self.log.push(format!("watch {service}"));
            true
        }
        fn on_message(&mut self, _: &mut Context<'_>, _: NodeId, m: Reply) -> Vec<AgentEvent> {
            m.0
        }
        fn on_timer(&mut self, _: &mut Context<'_>, _: TimerId, _: ()) -> Vec<AgentEvent> {
            Vec::new()
        }
    }

    /// An instance `name` of service `web` on node `node`.
    pub fn instance(name: &str, node: u32) -> InstanceInfo {
        InstanceInfo {
            service: "web".into(),
            instance: name.into(),
            node: NodeId(node),
            tags: Vec::new(),
            weight: 1,
        }
    }

    /// An agent configuration for node `id` of a 3-node registry.
    pub fn config(id: u32) -> AgentConfig {
        AgentConfig {
            id: NodeId(id),
            registry: vec![NodeId(0), NodeId(1), NodeId(2)],
            home: NodeId(0),
            ttl_ms: 3000,
            heartbeat_interval_ms: 1000,
            request_timeout_ms: 500,
        }
    }
}
