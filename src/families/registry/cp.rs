//! The CP registry: service discovery on the lock family's coordination service (protocol
//! `coordination`: etcd's keys, leases and watches on faultline's Raft), as etcd's gRPC naming
//! guide, Consul's catalog with TTL sessions and ZooKeeper's ephemeral nodes do it. This module
//! holds the registry's client library ([`CoordAgent`], the [`RegistryAgent`] service instances
//! and discovering clients use), its facts ([`Observation`]) and its check
//! (`registry-linearizable`, [`linearizable`]).
//!
//! Sources: etcd's documentation (Lease API: `LeaseGrant`, `LeaseKeepAlive`, `LeaseRevoke`; KV
//! `Range` with linearizable or serializable reads; Watch; "gRPC naming and discovery"),
//! Consul's (consistency modes `consistent`, `default`, `stale`; TTL checks; blocking
//! queries), ZooKeeper's Programmer's Guide (ephemeral nodes, one-shot watches), Jepsen's etcd
//! 3.4.3 analysis (2020).
//!
//! # The agent, step by step
//!
//! - **Register** (an instance): `LeaseGrant(ttl)`, then `Create /services/<service>/<instance>`
//!   with that lease (an ephemeral key) and the [`InstanceInfo`] as JSON value; `Created` →
//!   [`AgentEvent::Registered`]. If the key already exists (a registration of the instance's
//!   previous life, on a lease not yet expired), the agent deletes it and creates it again on its
//!   own lease; if the lease is gone before the create ran, it grants a new one.
//! - **Heartbeat**: a `KeepAlive(lease)` to the leader every `heartbeat_interval_ms`. A
//!   `KeepAliveRedirect` names the leader (the agent sends again at once, at most once per
//!   server and heartbeat); a heartbeat whose predecessor went unanswered goes to the next
//!   server. `KeepAliveAck { found: false }` (the leader's lessor revoked the lease) →
//!   [`AgentEvent::RegistrationLost`] and the agent registers again.
//! - **Deregister**: `LeaseRevoke(lease)` (the key goes with it); answered →
//!   [`AgentEvent::Deregistered`].
//! - **Lookup**: `Range /services/<service>/` with values at the requested [`Consistency`]:
//!   `consistent` and `default` to the server the agent takes for the leader, `stale` to its home
//!   server (the one it is "connected" to). A redirect is followed at once (to the named leader,
//!   or the next server); an attempt unanswered for a quarter of `request_timeout_ms` is sent to
//!   the next server; `request_timeout_ms` after the start the lookup ends
//!   [`AgentEvent::LookupFailed`] (`definite: false`); a server's refusal ends it at once
//!   (`definite: true`). The answer lists the instances parsed from the values and the
//!   machine's revision.
//! - **Watch** (ZooKeeper style, on the home server): read the service at `stale` (the home
//!   server's applied state), report [`AgentEvent::View`], then `Watch` the prefix from the read's
//!   revision on the same server. The watch fires once; the agent reads again, reports the view
//!   if it changed, and watches again from the new revision. A read or watch registration that
//!   gets no answer moves to the next server.
//!
//! Request ids are `incarnation << 32 | n` (the incarnation is counted on the node's disk), so a
//! restarted node's requests are never taken by Raft's session table for retries of its earlier
//! life's. Requests of the registration are retried until answered (same id, so the service runs
//! each once); lookups end by their deadline.
//!
//! # Limits
//!
//! At most [`MAX_LOOKUPS`] lookups in flight (one more fails at once) and [`MAX_WATCHES`]
//! watched services (further ones are refused: `watch` returns false); a lookup beyond the
//! limit fails (`definite`) a millisecond later. A watch held by a server
//! that crashes is lost with it (as in ZooKeeper without a session to tell the client); this
//! agent does not notice: see docs/registry.md.

pub mod linearizable;

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    AgentConfig, AgentEvent, Consistency, InstanceInfo, RegistryAgent, SERVICES_PREFIX,
    set_agent_timer,
};
use crate::families::lock::coord::{
    CoordAnswer, CoordCommand, CoordMessage, CoordOutcome, KeyInfo, LeaseId,
};
use crate::process::{Context, NodeId, TimerId};

/// Most lookups one agent has in flight.
pub const MAX_LOOKUPS: usize = 1024;
/// Most services one agent watches.
pub const MAX_WATCHES: usize = 64;
/// Most redirects one attempt follows at once before waiting for its attempt timer.
const MAX_REDIRECTS: u32 = 8;
/// Disk key of the agent's incarnation counter.
const INCARNATION_KEY: &str = "registry/cp-incarnation";

/// The CP registry's facts, reported by every coordination replica beside
/// [`super::Observation::ServerView`]: the same change with the revision that made it, for
/// `registry-linearizable`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Observation {
    /// This replica applied the change of `service`'s instances made at `revision`; the
    /// service's instance ids are now `instances` (sorted). Replayed changes (a restarted
    /// replica applying its log again) are reported again with their original revision.
    Applied {
        /// The service.
        service: String,
        /// The revision of the change.
        revision: u64,
        /// The instance ids after it, sorted.
        instances: Vec<String>,
    },
    /// A discovering client's agent got lookup `lookup`'s answer, read at `consistency` at
    /// `revision` (observed in the step its host records the lookup `ok`).
    Answered {
        /// The host's id for the lookup.
        lookup: u64,
        /// The level it was read at.
        consistency: Consistency,
        /// The machine's revision of the answer.
        revision: u64,
    },
}

/// The agent's timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum CpTimer {
    /// Send the next keep-alive.
    Heartbeat,
    /// Request `id`'s attempt got no answer: send it to the next server.
    Attempt {
        /// The request.
        id: u64,
    },
    /// Lookup request `id` ran out of time.
    Deadline {
        /// The request.
        id: u64,
    },
    /// Lookup `lookup` was refused: [`MAX_LOOKUPS`] were in flight.
    Refused {
        /// The host's id for the lookup.
        lookup: u64,
    },
}

/// What a request in flight is for.
#[derive(Clone, Debug, PartialEq)]
enum Purpose {
    Grant,
    Create {
        lease: LeaseId,
    },
    /// Delete the previous life's key, then create it on `lease`.
    DeleteOld {
        lease: LeaseId,
    },
    Revoke,
    Lookup {
        lookup: u64,
        consistency: Consistency,
    },
    /// A watched service's read.
    WatchRead {
        service: String,
    },
}

/// A request in flight.
#[derive(Clone, Debug)]
struct Pending {
    purpose: Purpose,
    command: CoordCommand,
    server: NodeId,
    redirects: u32,
    attempt: TimerId,
    deadline: Option<TimerId>,
}

/// One watched service.
#[derive(Clone, Debug)]
struct Watched {
    /// The watch id on the wire (a new one per registration).
    watch: u64,
    /// The server that holds the watch (and answers the reads).
    server: NodeId,
    /// The revision of the last read.
    revision: u64,
    /// The last view reported.
    view: Option<Vec<InstanceInfo>>,
}

/// The registration state.
#[derive(Clone, Debug, PartialEq)]
enum Registration {
    None,
    /// Granting or creating.
    Registering,
    Registered {
        lease: LeaseId,
    },
    Deregistering,
}

/// The CP registry's agent. See the module docs.
#[derive(Debug)]
pub struct CoordAgent {
    config: AgentConfig,
    /// The server taken for the leader.
    leader: NodeId,
    incarnation: Option<u64>,
    next_request: u64,
    next_watch: u64,
    pending: BTreeMap<u64, Pending>,
    instance: Option<InstanceInfo>,
    registration: Registration,
    /// The last keep-alive was answered (else the next goes to another server).
    keepalive_answered: bool,
    /// Keep-alive redirects followed since the last heartbeat.
    keepalive_redirects: u32,
    heartbeat: Option<TimerId>,
    watched: BTreeMap<String, Watched>,
}

/// The server after `server` in `servers` (round robin).
fn next_of(servers: &[NodeId], server: NodeId) -> NodeId {
    let i = servers.iter().position(|&s| s == server).unwrap_or(0);
    servers[(i + 1) % servers.len()]
}

/// The key of `instance`.
fn instance_key(instance: &InstanceInfo) -> String {
    format!(
        "{SERVICES_PREFIX}{}/{}",
        instance.service, instance.instance
    )
}

/// The prefix of `service`'s keys.
fn service_prefix(service: &str) -> String {
    format!("{SERVICES_PREFIX}{service}/")
}

/// The instances of a range's answer, sorted by instance id (keys whose value is not an
/// [`InstanceInfo`] are skipped).
fn instances_of(keys: &[KeyInfo]) -> Vec<InstanceInfo> {
    let mut out: Vec<InstanceInfo> = keys
        .iter()
        .filter_map(|k| serde_json::from_str(k.value.as_deref()?).ok())
        .collect();
    out.sort_by(|a, b| a.instance.cmp(&b.instance));
    out
}

impl CoordAgent {
    fn next_server(&self, server: NodeId) -> NodeId {
        next_of(&self.config.registry, server)
    }

    fn attempt_delay(&self) -> std::time::Duration {
        std::time::Duration::from_millis((self.config.request_timeout_ms / 4).max(1))
    }

    /// Sends a new request for `purpose` to `server`.
    fn request(
        &mut self,
        ctx: &mut Context<'_>,
        purpose: Purpose,
        command: CoordCommand,
        server: NodeId,
    ) -> u64 {
        let incarnation = *self
            .incarnation
            .get_or_insert_with(|| crate::families::next_incarnation(ctx.disk(), INCARNATION_KEY));
        self.next_request += 1;
        let id = (incarnation << 32) | (self.next_request & 0xffff_ffff);
        let deadline = matches!(purpose, Purpose::Lookup { .. }).then(|| {
            let delay = std::time::Duration::from_millis(self.config.request_timeout_ms.max(1));
            set_agent_timer(ctx, delay, CpTimer::Deadline { id })
        });
        let attempt = set_agent_timer(ctx, self.attempt_delay(), CpTimer::Attempt { id });
        ctx.send(
            server,
            CoordMessage::Request {
                id,
                command: command.clone(),
            },
        );
        self.pending.insert(
            id,
            Pending {
                purpose,
                command,
                server,
                redirects: 0,
                attempt,
                deadline,
            },
        );
        id
    }

    /// Sends request `id` again, to `server`.
    fn resend(&mut self, ctx: &mut Context<'_>, id: u64, server: NodeId) {
        let delay = self.attempt_delay();
        let Some(p) = self.pending.get_mut(&id) else {
            return;
        };
        ctx.cancel_timer(p.attempt);
        p.server = server;
        p.attempt = set_agent_timer(ctx, delay, CpTimer::Attempt { id });
        let command = p.command.clone();
        ctx.send(server, CoordMessage::Request { id, command });
    }

    /// Ends request `id` (its timers cancelled).
    fn finish(&mut self, ctx: &mut Context<'_>, id: u64) -> Option<Pending> {
        let p = self.pending.remove(&id)?;
        ctx.cancel_timer(p.attempt);
        if let Some(t) = p.deadline {
            ctx.cancel_timer(t);
        }
        Some(p)
    }

    fn grant(&mut self, ctx: &mut Context<'_>) {
        self.registration = Registration::Registering;
        let ttl_ms = self.config.ttl_ms;
        self.request(
            ctx,
            Purpose::Grant,
            CoordCommand::LeaseGrant { ttl_ms },
            self.leader,
        );
    }

    fn create(&mut self, ctx: &mut Context<'_>, lease: LeaseId) {
        let Some(instance) = &self.instance else {
            return;
        };
        let command = CoordCommand::Create {
            key: instance_key(instance),
            value: serde_json::to_string(instance).expect("an instance serializes"),
            lease: Some(lease),
            sequential: false,
        };
        self.request(ctx, Purpose::Create { lease }, command, self.leader);
    }

    fn start_heartbeats(&mut self, ctx: &mut Context<'_>) {
        if self.heartbeat.is_none() {
            let delay = std::time::Duration::from_millis(self.config.heartbeat_interval_ms.max(1));
            self.heartbeat = Some(set_agent_timer(ctx, delay, CpTimer::Heartbeat));
        }
    }

    fn send_keepalive(&mut self, ctx: &mut Context<'_>) {
        if let Registration::Registered { lease } = self.registration {
            ctx.send(self.leader, CoordMessage::KeepAlive { lease });
        }
    }

    fn send_watch_read(&mut self, ctx: &mut Context<'_>, service: &str) {
        let Some(w) = self.watched.get(service) else {
            return;
        };
        let command = CoordCommand::Range {
            prefix: service_prefix(service),
            consistency: Consistency::Stale,
            with_values: true,
        };
        let purpose = Purpose::WatchRead {
            service: service.to_string(),
        };
        let server = w.server;
        self.request(ctx, purpose, command, server);
    }

    /// A request's answer.
    fn on_reply(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        id: u64,
        answer: CoordAnswer,
    ) -> Vec<AgentEvent> {
        let Some(p) = self.pending.get_mut(&id) else {
            return vec![]; // an answer to a finished request (a retry's twin)
        };
        let outcome = match answer {
            CoordAnswer::Done { outcome } => outcome,
            CoordAnswer::Redirect { leader } => {
                p.redirects += 1;
                if p.redirects > MAX_REDIRECTS {
                    return vec![]; // wait for the attempt timer
                }
                let next = leader.unwrap_or_else(|| next_of(&self.config.registry, from));
                if !matches!(p.purpose, Purpose::WatchRead { .. }) {
                    self.leader = next;
                }
                self.resend(ctx, id, next);
                return vec![];
            }
            CoordAnswer::Fail { error } => {
                if let Purpose::Lookup { lookup, .. } = p.purpose {
                    self.finish(ctx, id);
                    return vec![AgentEvent::LookupFailed {
                        lookup,
                        error,
                        definite: true,
                    }];
                }
                return vec![]; // the attempt timer sends it elsewhere
            }
            CoordAnswer::Unknown { .. } => return vec![], // the attempt timer sends it again
        };
        let p = self.finish(ctx, id).expect("pending");
        match (p.purpose, outcome) {
            (
                Purpose::Lookup {
                    lookup,
                    consistency,
                },
                CoordOutcome::Keys { keys, revision },
            ) => {
                ctx.observe(Observation::Answered {
                    lookup,
                    consistency,
                    revision,
                });
                vec![AgentEvent::LookupOk {
                    lookup,
                    instances: instances_of(&keys),
                    server: from,
                    revision: Some(revision),
                }]
            }
            (Purpose::WatchRead { service }, CoordOutcome::Keys { keys, revision }) => {
                self.on_watch_read(ctx, &service, from, &keys, revision)
            }
            (_, _) if self.registration == Registration::None => vec![], // deregistered meanwhile
            (Purpose::Grant, CoordOutcome::Lease { lease, .. }) => {
                self.leader = from;
                self.create(ctx, lease);
                vec![]
            }
            (Purpose::Create { lease }, CoordOutcome::Created { .. }) => {
                self.leader = from;
                self.registration = Registration::Registered { lease };
                self.keepalive_answered = true;
                self.start_heartbeats(ctx);
                vec![AgentEvent::Registered]
            }
            (Purpose::Create { lease }, CoordOutcome::Exists { .. }) => {
                let key = self.instance.as_ref().map(instance_key).unwrap_or_default();
                self.request(
                    ctx,
                    Purpose::DeleteOld { lease },
                    CoordCommand::Delete { key },
                    from,
                );
                vec![]
            }
            (Purpose::DeleteOld { lease }, CoordOutcome::Deleted { .. }) => {
                self.create(ctx, lease);
                vec![]
            }
            (Purpose::Create { .. }, CoordOutcome::Error { .. }) => {
                self.grant(ctx); // the lease expired before the create ran
                vec![]
            }
            (Purpose::Revoke, CoordOutcome::Revoked { .. }) => {
                self.registration = Registration::None;
                vec![AgentEvent::Deregistered]
            }
            (purpose, outcome) => {
                // A grant refused (too many leases): try again after an attempt's delay.
                debug_assert!(
                    matches!(outcome, CoordOutcome::Error { .. }),
                    "{purpose:?} answered {outcome:?}"
                );
                if matches!(purpose, Purpose::Grant) {
                    self.grant(ctx);
                }
                vec![]
            }
        }
    }

    fn on_watch_read(
        &mut self,
        ctx: &mut Context<'_>,
        service: &str,
        from: NodeId,
        keys: &[KeyInfo],
        revision: u64,
    ) -> Vec<AgentEvent> {
        self.next_watch += 1;
        let watch = self.next_watch;
        let Some(w) = self.watched.get_mut(service) else {
            return vec![];
        };
        let instances = instances_of(keys);
        w.server = from;
        w.revision = w.revision.max(revision);
        w.watch = watch;
        ctx.send(
            from,
            CoordMessage::Watch {
                watch,
                key: service_prefix(service),
                prefix: true,
                after_revision: w.revision,
            },
        );
        if w.view.as_ref() == Some(&instances) {
            return vec![];
        }
        w.view = Some(instances.clone());
        vec![AgentEvent::View {
            service: service.to_string(),
            instances,
        }]
    }
}

impl RegistryAgent for CoordAgent {
    type Message = CoordMessage;
    type Timer = CpTimer;

    fn new(config: AgentConfig) -> Self {
        assert!(
            !config.registry.is_empty(),
            "a CP registry agent needs coordination servers"
        );
        CoordAgent {
            leader: config.home,
            config,
            incarnation: None,
            next_request: 0,
            next_watch: 0,
            pending: BTreeMap::new(),
            instance: None,
            registration: Registration::None,
            keepalive_answered: true,
            keepalive_redirects: 0,
            heartbeat: None,
            watched: BTreeMap::new(),
        }
    }

    fn register(&mut self, ctx: &mut Context<'_>, instance: &InstanceInfo) {
        self.instance = Some(instance.clone());
        self.grant(ctx);
    }

    fn deregister(&mut self, ctx: &mut Context<'_>) {
        if let Some(t) = self.heartbeat.take() {
            ctx.cancel_timer(t);
        }
        let registration = std::mem::replace(&mut self.registration, Registration::Deregistering);
        // Requests of the registration still in flight are dropped.
        let stale: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                matches!(
                    p.purpose,
                    Purpose::Grant | Purpose::Create { .. } | Purpose::DeleteOld { .. }
                )
            })
            .map(|(&id, _)| id)
            .collect();
        let mut dropped_lease = None;
        for id in stale {
            if let Some(Pending {
                purpose: Purpose::Create { lease } | Purpose::DeleteOld { lease },
                ..
            }) = self.finish(ctx, id)
            {
                dropped_lease = Some(lease);
            }
        }
        let lease = match registration {
            Registration::Registered { lease } => Some(lease),
            _ => dropped_lease,
        };
        match lease {
            Some(lease) => {
                self.request(
                    ctx,
                    Purpose::Revoke,
                    CoordCommand::LeaseRevoke { lease },
                    self.leader,
                );
            }
            // Nothing registered yet (or a grant in flight, whose lease will expire alone).
            None => self.registration = Registration::None,
        }
    }

    fn lookup(
        &mut self,
        ctx: &mut Context<'_>,
        lookup: u64,
        service: &str,
        consistency: Consistency,
    ) {
        let lookups = self
            .pending
            .values()
            .filter(|p| matches!(p.purpose, Purpose::Lookup { .. }))
            .count();
        if lookups >= MAX_LOOKUPS {
            let delay = std::time::Duration::from_millis(1);
            set_agent_timer(ctx, delay, CpTimer::Refused { lookup });
            return;
        }
        let server = match consistency {
            Consistency::Stale => self.config.home,
            Consistency::Consistent | Consistency::Default => self.leader,
        };
        let command = CoordCommand::Range {
            prefix: service_prefix(service),
            consistency,
            with_values: true,
        };
        let purpose = Purpose::Lookup {
            lookup,
            consistency,
        };
        self.request(ctx, purpose, command, server);
    }

    fn watch(&mut self, ctx: &mut Context<'_>, service: &str) -> bool {
        if self.watched.contains_key(service) {
            return true;
        }
        if self.watched.len() >= MAX_WATCHES {
            return false;
        }
        self.watched.insert(
            service.to_string(),
            Watched {
                watch: 0,
                server: self.config.home,
                revision: 0,
                view: None,
            },
        );
        self.send_watch_read(ctx, service);
        true
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: CoordMessage,
    ) -> Vec<AgentEvent> {
        match message {
            CoordMessage::Reply { id, answer } => self.on_reply(ctx, from, id, answer),
            CoordMessage::KeepAliveAck { lease, found, .. } => {
                let Registration::Registered { lease: ours } = self.registration else {
                    return vec![];
                };
                if lease != ours {
                    return vec![]; // an earlier lease's answer
                }
                self.keepalive_answered = true;
                self.leader = from;
                if found {
                    return vec![];
                }
                self.grant(ctx);
                vec![AgentEvent::RegistrationLost]
            }
            CoordMessage::KeepAliveRedirect { lease, leader } => {
                let Registration::Registered { lease: ours } = self.registration else {
                    return vec![];
                };
                if lease != ours || self.keepalive_redirects >= self.config.registry.len() as u32 {
                    return vec![];
                }
                self.keepalive_redirects += 1;
                self.leader = leader.unwrap_or_else(|| self.next_server(from));
                self.send_keepalive(ctx);
                vec![]
            }
            CoordMessage::WatchEvent { watch, .. } => {
                let service = self
                    .watched
                    .iter()
                    .find(|(_, w)| w.watch == watch)
                    .map(|(s, _)| s.clone());
                if let Some(service) = service {
                    self.send_watch_read(ctx, &service);
                }
                vec![]
            }
            CoordMessage::Request { .. }
            | CoordMessage::KeepAlive { .. }
            | CoordMessage::Watch { .. } => vec![], // messages only servers take
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: CpTimer) -> Vec<AgentEvent> {
        match timer {
            CpTimer::Heartbeat => {
                if self.heartbeat != Some(id) {
                    return vec![];
                }
                self.heartbeat = None;
                if !matches!(self.registration, Registration::Registered { .. }) {
                    return vec![];
                }
                if !self.keepalive_answered {
                    self.leader = self.next_server(self.leader);
                }
                self.keepalive_answered = false;
                self.keepalive_redirects = 0;
                self.send_keepalive(ctx);
                self.start_heartbeats(ctx);
                vec![]
            }
            CpTimer::Attempt { id: request } => {
                let Some(p) = self.pending.get_mut(&request) else {
                    return vec![];
                };
                if p.attempt != id {
                    return vec![];
                }
                p.redirects = 0;
                let next = next_of(&self.config.registry, p.server);
                if !matches!(p.purpose, Purpose::WatchRead { .. }) {
                    self.leader = next;
                } else if let Purpose::WatchRead { service } = &p.purpose
                    && let Some(w) = self.watched.get_mut(service)
                {
                    w.server = next;
                }
                self.resend(ctx, request, next);
                vec![]
            }
            CpTimer::Refused { lookup } => vec![AgentEvent::LookupFailed {
                lookup,
                error: format!("too many lookups in flight: at most {MAX_LOOKUPS}"),
                definite: true,
            }],
            CpTimer::Deadline { id: request } => {
                let Some(Purpose::Lookup { lookup, .. }) = self
                    .pending
                    .get(&request)
                    .filter(|p| p.deadline == Some(id))
                    .map(|p| p.purpose.clone())
                else {
                    return vec![];
                };
                self.finish(ctx, request);
                vec![AgentEvent::LookupFailed {
                    lookup,
                    error: "timeout".into(),
                    definite: false,
                }]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::registry::RegistryTimer;
    use crate::process::{Effect, TestContext};

    const ME: NodeId = NodeId(7);
    const S: [NodeId; 3] = [NodeId(0), NodeId(1), NodeId(2)];

    type Sent = Vec<(NodeId, CoordMessage)>;

    struct Harness {
        agent: CoordAgent,
        tc: TestContext,
    }

    impl Harness {
        fn new() -> Harness {
            let config = AgentConfig {
                id: ME,
                registry: S.to_vec(),
                home: S[1],
                ttl_ms: 3000,
                heartbeat_interval_ms: 1000,
                request_timeout_ms: 800,
            };
            Harness {
                agent: CoordAgent::new(config),
                tc: TestContext::new(ME, 1),
            }
        }

        /// Sends and timers (id, timer) since the last call.
        fn effects(&mut self) -> (Sent, Vec<(TimerId, CpTimer)>) {
            let mut sends = Vec::new();
            let mut timers = Vec::new();
            for e in self.tc.take_effects() {
                match e {
                    Effect::Send { to, message } => {
                        sends.push((to, message.downcast_ref::<CoordMessage>().unwrap().clone()));
                    }
                    Effect::SetTimer { id, timer, .. } => {
                        match timer.downcast_ref::<RegistryTimer<CpTimer>>().unwrap() {
                            RegistryTimer::Agent { timer } => timers.push((id, timer.clone())),
                            RegistryTimer::Host { .. } => panic!("an agent sets agent timers"),
                        }
                    }
                    _ => {}
                }
            }
            (sends, timers)
        }

        fn reply(&mut self, from: NodeId, id: u64, answer: CoordAnswer) -> Vec<AgentEvent> {
            let m = CoordMessage::Reply { id, answer };
            self.agent.on_message(&mut self.tc.ctx(), from, m)
        }

        fn done(&mut self, from: NodeId, id: u64, outcome: CoordOutcome) -> Vec<AgentEvent> {
            self.reply(from, id, CoordAnswer::Done { outcome })
        }

        fn fire(&mut self, id: TimerId, timer: CpTimer) -> Vec<AgentEvent> {
            self.agent.on_timer(&mut self.tc.ctx(), id, timer)
        }
    }

    fn info(instance: &str) -> InstanceInfo {
        InstanceInfo {
            service: "web".into(),
            instance: instance.into(),
            node: NodeId(5),
            tags: vec![],
            weight: 1,
        }
    }

    fn request(sends: &[(NodeId, CoordMessage)]) -> (NodeId, u64, CoordCommand) {
        match sends {
            [(to, CoordMessage::Request { id, command })] => (*to, *id, command.clone()),
            other => panic!("expected one request, got {other:?}"),
        }
    }

    fn key_info(instance: &str) -> KeyInfo {
        KeyInfo {
            key: format!("/services/web/{instance}"),
            create_revision: 3,
            lease: Some(2),
            value: Some(serde_json::to_string(&info(instance)).unwrap()),
        }
    }

    /// Registers `i1` with lease 2 on S[1]; returns the heartbeat timer.
    fn registered(h: &mut Harness) -> (TimerId, CpTimer) {
        h.agent.register(&mut h.tc.ctx(), &info("i1"));
        let (to, id, command) = request(&h.effects().0);
        assert_eq!(
            (to, command),
            (S[1], CoordCommand::LeaseGrant { ttl_ms: 3000 })
        );
        let lease = CoordOutcome::Lease {
            lease: 2,
            ttl_ms: 3000,
        };
        assert_eq!(h.done(S[1], id, lease), vec![]);
        let (to, id, command) = request(&h.effects().0);
        assert_eq!(to, S[1]);
        let CoordCommand::Create {
            key,
            value,
            lease,
            sequential,
        } = command
        else {
            panic!("{command:?}")
        };
        assert_eq!(
            (key.as_str(), lease, sequential),
            ("/services/web/i1", Some(2), false)
        );
        assert_eq!(
            serde_json::from_str::<InstanceInfo>(&value).unwrap(),
            info("i1")
        );
        let created = CoordOutcome::Created { key, revision: 3 };
        assert_eq!(h.done(S[1], id, created), vec![AgentEvent::Registered]);
        let (_, timers) = h.effects();
        timers
            .into_iter()
            .find(|(_, t)| *t == CpTimer::Heartbeat)
            .expect("heartbeats start")
    }

    #[test]
    fn register_grants_a_lease_creates_the_ephemeral_key_and_keeps_the_lease_alive() {
        let mut h = Harness::new();
        let (id, t) = registered(&mut h);
        assert_eq!(h.fire(id, t), vec![]);
        let (sends, timers) = h.effects();
        assert_eq!(sends, vec![(S[1], CoordMessage::KeepAlive { lease: 2 })]);
        assert!(timers.iter().any(|(_, t)| *t == CpTimer::Heartbeat));
    }

    #[test]
    fn a_keepalive_that_finds_no_lease_reports_registration_lost_and_registers_again() {
        let mut h = Harness::new();
        registered(&mut h);
        let ack = CoordMessage::KeepAliveAck {
            lease: 2,
            found: false,
            ttl_ms: 0,
        };
        let events = h.agent.on_message(&mut h.tc.ctx(), S[1], ack);
        assert_eq!(events, vec![AgentEvent::RegistrationLost]);
        let (_, _, command) = request(&h.effects().0);
        assert_eq!(command, CoordCommand::LeaseGrant { ttl_ms: 3000 });
    }

    #[test]
    fn an_unanswered_keepalive_moves_to_the_next_server_and_a_redirect_is_followed() {
        let mut h = Harness::new();
        let (id, t) = registered(&mut h);
        h.fire(id, t);
        let (_, timers) = h.effects();
        let (id, t) = timers
            .into_iter()
            .find(|(_, t)| *t == CpTimer::Heartbeat)
            .unwrap();
        h.fire(id, t);
        let (sends, _) = h.effects();
        assert_eq!(sends, vec![(S[2], CoordMessage::KeepAlive { lease: 2 })]);
        let redirect = CoordMessage::KeepAliveRedirect {
            lease: 2,
            leader: Some(S[0]),
        };
        h.agent.on_message(&mut h.tc.ctx(), S[2], redirect);
        assert_eq!(
            h.effects().0,
            vec![(S[0], CoordMessage::KeepAlive { lease: 2 })]
        );
    }

    #[test]
    fn an_existing_key_of_an_earlier_life_is_deleted_and_created_on_the_new_lease() {
        let mut h = Harness::new();
        h.agent.register(&mut h.tc.ctx(), &info("i1"));
        let (_, id, _) = request(&h.effects().0);
        h.done(
            S[1],
            id,
            CoordOutcome::Lease {
                lease: 9,
                ttl_ms: 3000,
            },
        );
        let (_, id, _) = request(&h.effects().0);
        h.done(S[1], id, CoordOutcome::Exists { create_revision: 1 });
        let (_, id, command) = request(&h.effects().0);
        assert_eq!(
            command,
            CoordCommand::Delete {
                key: "/services/web/i1".into()
            }
        );
        h.done(S[1], id, CoordOutcome::Deleted { existed: true });
        let (_, _, command) = request(&h.effects().0);
        assert!(
            matches!(command, CoordCommand::Create { lease: Some(9), .. }),
            "{command:?}"
        );
    }

    #[test]
    fn deregister_revokes_the_lease() {
        let mut h = Harness::new();
        registered(&mut h);
        h.agent.deregister(&mut h.tc.ctx());
        let (_, id, command) = request(&h.effects().0);
        assert_eq!(command, CoordCommand::LeaseRevoke { lease: 2 });
        let events = h.done(S[1], id, CoordOutcome::Revoked { existed: true });
        assert_eq!(events, vec![AgentEvent::Deregistered]);
    }

    #[test]
    fn a_lookup_follows_redirects_and_answers_the_parsed_instances_with_the_revision() {
        let mut h = Harness::new();
        h.agent
            .lookup(&mut h.tc.ctx(), 4, "web", Consistency::Consistent);
        let (to, id, command) = request(&h.effects().0);
        assert_eq!(to, S[1]);
        assert_eq!(
            command,
            CoordCommand::Range {
                prefix: "/services/web/".into(),
                consistency: Consistency::Consistent,
                with_values: true
            }
        );
        h.reply(S[1], id, CoordAnswer::Redirect { leader: Some(S[2]) });
        let (to, id2, _) = request(&h.effects().0);
        assert_eq!((to, id2), (S[2], id), "the same request, to the leader");
        let keys = vec![key_info("i2"), key_info("i1")];
        let events = h.done(S[2], id, CoordOutcome::Keys { keys, revision: 11 });
        assert_eq!(
            events,
            vec![AgentEvent::LookupOk {
                lookup: 4,
                instances: vec![info("i1"), info("i2")],
                server: S[2],
                revision: Some(11)
            }]
        );
    }

    #[test]
    fn a_lookup_ends_failed_on_a_refusal_or_at_its_deadline_and_stale_goes_home() {
        let mut h = Harness::new();
        h.agent
            .lookup(&mut h.tc.ctx(), 1, "web", Consistency::Stale);
        let (sends, timers) = h.effects();
        let (to, id, _) = request(&sends);
        assert_eq!(to, S[1], "a stale read goes to the home server");
        let refused = h.reply(
            S[1],
            id,
            CoordAnswer::Fail {
                error: "overloaded".into(),
            },
        );
        assert!(matches!(
            refused[..],
            [AgentEvent::LookupFailed {
                lookup: 1,
                definite: true,
                ..
            }]
        ));
        // An attempt timer of a finished lookup does nothing.
        let (tid, t) = timers
            .into_iter()
            .find(|(_, t)| matches!(t, CpTimer::Attempt { .. }))
            .unwrap();
        assert_eq!(h.fire(tid, t), vec![]);
        h.agent
            .lookup(&mut h.tc.ctx(), 2, "web", Consistency::Default);
        let (sends, timers) = h.effects();
        let (_, id, _) = request(&sends);
        let (aid, at) = timers
            .iter()
            .find(|(_, t)| matches!(t, CpTimer::Attempt { .. }))
            .cloned()
            .unwrap();
        assert_eq!(h.fire(aid, at), vec![]);
        let (to, again, _) = request(&h.effects().0);
        assert_eq!(
            (to, again),
            (S[2], id),
            "an unanswered attempt moves to the next server"
        );
        let (did, dt) = timers
            .into_iter()
            .find(|(_, t)| matches!(t, CpTimer::Deadline { .. }))
            .unwrap();
        let failed = h.fire(did, dt);
        assert!(matches!(
            failed[..],
            [AgentEvent::LookupFailed {
                lookup: 2,
                definite: false,
                ..
            }]
        ));
    }

    #[test]
    fn a_watch_reads_watches_from_the_read_revision_and_reads_again_when_it_fires() {
        let mut h = Harness::new();
        assert!(h.agent.watch(&mut h.tc.ctx(), "web"));
        let (to, id, command) = request(&h.effects().0);
        assert_eq!(to, S[1]);
        assert!(matches!(
            command,
            CoordCommand::Range {
                consistency: Consistency::Stale,
                ..
            }
        ));
        let events = h.done(
            S[1],
            id,
            CoordOutcome::Keys {
                keys: vec![key_info("i1")],
                revision: 5,
            },
        );
        assert_eq!(
            events,
            vec![AgentEvent::View {
                service: "web".into(),
                instances: vec![info("i1")]
            }]
        );
        let (sends, _) = h.effects();
        let [
            (
                to,
                CoordMessage::Watch {
                    watch,
                    key,
                    prefix: true,
                    after_revision: 5,
                },
            ),
        ] = &sends[..]
        else {
            panic!("{sends:?}")
        };
        assert_eq!((*to, key.as_str()), (S[1], "/services/web/"));
        let fired = CoordMessage::WatchEvent {
            watch: *watch,
            key: "/services/web/i2".into(),
            deleted: false,
            revision: 6,
            compacted: false,
        };
        assert_eq!(h.agent.on_message(&mut h.tc.ctx(), S[1], fired), vec![]);
        let (to, id, _) = request(&h.effects().0);
        assert_eq!(to, S[1]);
        let keys = vec![key_info("i1"), key_info("i2")];
        let events = h.done(S[1], id, CoordOutcome::Keys { keys, revision: 6 });
        assert_eq!(
            events,
            vec![AgentEvent::View {
                service: "web".into(),
                instances: vec![info("i1"), info("i2")]
            }]
        );
        assert!(
            matches!(
                h.effects().0[..],
                [(
                    _,
                    CoordMessage::Watch {
                        after_revision: 6,
                        ..
                    }
                )]
            ),
            "re-armed"
        );
    }
}
