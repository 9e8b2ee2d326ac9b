//! The Eureka client library ([`EurekaAgent`]): what Eureka's `DiscoveryClient` does inside a
//! service instance or a discovering client.
//!
//! - **Register** with the current server (the home first), answered `Registered`; retried on
//!   the next server after every attempt timeout until answered.
//! - **Renew** every `heartbeat_interval_ms` (the `HeartbeatThread`); a renew answered
//!   `NotFound` (Eureka's 404) reports [`AgentEvent::RegistrationLost`] and registers again at
//!   once. A renew without an answer is retried on the next servers, then left to the next
//!   heartbeat.
//! - **Fail over**: an attempt gets `request_timeout_ms / attempts` to be answered, `attempts`
//!   being the number of registry nodes, at most 3 (`RetryableEurekaHttpClient`'s
//!   `numberOfRetries`); a timeout moves the agent to the next registry node, and it stays on
//!   the node that answers (requests after it go there too).
//! - **Cancel** on [`RegistryAgent::deregister`]: heartbeats stop, a `Cancel` goes out (with
//!   the same fail-over), [`AgentEvent::Deregistered`] when answered.
//! - **Lookups** ask the current server (failing over within `request_timeout_ms`) and answer
//!   from its registry (`revision: None`). Every consistency level reads the same: the server's
//!   local registry. There are no watches: [`RegistryAgent::watch`] returns false and the host
//!   polls, as the Eureka client's registry fetch does.

use std::collections::BTreeMap;

use super::super::{
    AgentConfig, AgentEvent, Consistency, InstanceInfo, RegistryAgent, set_agent_timer,
};
use super::EurekaMessage;
use crate::process::{Context, NodeId, TimerId};

/// Most registry nodes one request tries (Eureka's `RetryableEurekaHttpClient`, 3).
pub const MAX_ATTEMPTS: u32 = 3;

/// Timers of a [`EurekaAgent`].
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum AgentTimer {
    /// Renew now (every heartbeat interval).
    Heartbeat,
    /// The current attempt of request `request` got no answer in time.
    Timeout {
        /// The request.
        request: u64,
    },
}

/// What a pending request is.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    Register,
    Renew,
    Cancel,
    Lookup { lookup: u64, service: String },
}

#[derive(Clone, Debug)]
struct Pending {
    kind: Kind,
    /// Attempts left after the current one (`u32::MAX`: unbounded, for registrations).
    retries_left: u32,
    timer: TimerId,
}

/// The Eureka client library of one node. See the module docs.
#[derive(Debug)]
pub struct EurekaAgent {
    config: AgentConfig,
    /// Index in `config.registry` of the server requests go to.
    server: usize,
    next_request: u64,
    instance: Option<InstanceInfo>,
    registered: bool,
    heartbeat: Option<TimerId>,
    pending: BTreeMap<u64, Pending>,
}

impl EurekaAgent {
    fn attempts(&self) -> u32 {
        (self.config.registry.len() as u32).clamp(1, MAX_ATTEMPTS)
    }

    fn attempt_timeout(&self) -> std::time::Duration {
        let ms = (self.config.request_timeout_ms / u64::from(self.attempts())).max(1);
        std::time::Duration::from_millis(ms)
    }

    fn current(&self) -> NodeId {
        self.config.registry[self.server]
    }

    /// The message of request `request` of kind `kind`.
    fn message(&self, request: u64, kind: &Kind) -> Option<EurekaMessage> {
        let instance = self.instance.as_ref();
        Some(match kind {
            Kind::Register => EurekaMessage::Register {
                request,
                instance: instance?.clone(),
                ttl_ms: self.config.ttl_ms,
                renewal_interval_ms: self.config.heartbeat_interval_ms,
            },
            Kind::Renew => EurekaMessage::Renew {
                request,
                service: instance?.service.clone(),
                instance: instance?.instance.clone(),
            },
            Kind::Cancel => EurekaMessage::Cancel {
                request,
                service: instance?.service.clone(),
                instance: instance?.instance.clone(),
            },
            Kind::Lookup { service, .. } => EurekaMessage::Lookup {
                request,
                service: service.clone(),
            },
        })
    }

    /// Sends the current attempt of `request` to the current server and arms its timeout.
    fn send_attempt(&mut self, ctx: &mut Context<'_>, request: u64) {
        let Some(kind) = self.pending.get(&request).map(|p| p.kind.clone()) else {
            return;
        };
        if let Some(message) = self.message(request, &kind) {
            ctx.send(self.current(), message);
        }
        let timer = set_agent_timer(ctx, self.attempt_timeout(), AgentTimer::Timeout { request });
        if let Some(p) = self.pending.get_mut(&request) {
            p.timer = timer;
        }
    }

    /// Starts a request of `kind`; a request of the same kind (but lookups) still pending is
    /// dropped first.
    fn start(&mut self, ctx: &mut Context<'_>, kind: Kind) -> u64 {
        if !matches!(kind, Kind::Lookup { .. }) {
            self.drop_pending(ctx, |k| *k == kind);
        }
        self.next_request += 1;
        let request = self.next_request;
        let retries_left = match kind {
            Kind::Register => u32::MAX,
            _ => self.attempts() - 1,
        };
        self.pending.insert(
            request,
            Pending {
                kind,
                retries_left,
                timer: TimerId(u64::MAX),
            },
        );
        self.send_attempt(ctx, request);
        request
    }

    fn drop_pending(&mut self, ctx: &mut Context<'_>, which: impl Fn(&Kind) -> bool) {
        let gone: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| which(&p.kind))
            .map(|(r, _)| *r)
            .collect();
        for r in gone {
            if let Some(p) = self.pending.remove(&r) {
                ctx.cancel_timer(p.timer);
            }
        }
    }

    /// Ends request `request` as answered; its kind, if it was pending.
    fn answered(&mut self, ctx: &mut Context<'_>, request: u64) -> Option<Kind> {
        let p = self.pending.remove(&request)?;
        ctx.cancel_timer(p.timer);
        Some(p.kind)
    }

    fn arm_heartbeat(&mut self, ctx: &mut Context<'_>) {
        let delay = std::time::Duration::from_millis(self.config.heartbeat_interval_ms.max(1));
        self.heartbeat = Some(set_agent_timer(ctx, delay, AgentTimer::Heartbeat));
    }
}

impl RegistryAgent for EurekaAgent {
    type Message = EurekaMessage;
    type Timer = AgentTimer;

    fn new(config: AgentConfig) -> Self {
        assert!(
            !config.registry.is_empty(),
            "a eureka agent needs registry nodes"
        );
        let server = config
            .registry
            .iter()
            .position(|&n| n == config.home)
            .unwrap_or(0);
        EurekaAgent {
            config,
            server,
            next_request: 0,
            instance: None,
            registered: false,
            heartbeat: None,
            pending: BTreeMap::new(),
        }
    }

    fn register(&mut self, ctx: &mut Context<'_>, instance: &InstanceInfo) {
        self.instance = Some(instance.clone());
        self.registered = false;
        self.start(ctx, Kind::Register);
        if let Some(t) = self.heartbeat.take() {
            ctx.cancel_timer(t);
        }
        self.arm_heartbeat(ctx);
    }

    fn deregister(&mut self, ctx: &mut Context<'_>) {
        if let Some(t) = self.heartbeat.take() {
            ctx.cancel_timer(t);
        }
        self.drop_pending(ctx, |k| matches!(k, Kind::Register | Kind::Renew));
        self.registered = false;
        if self.instance.is_some() {
            self.start(ctx, Kind::Cancel);
        }
    }

    fn lookup(&mut self, ctx: &mut Context<'_>, lookup: u64, service: &str, _: Consistency) {
        self.start(
            ctx,
            Kind::Lookup {
                lookup,
                service: service.to_string(),
            },
        );
    }

    fn watch(&mut self, _: &mut Context<'_>, _: &str) -> bool {
        false
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: EurekaMessage,
    ) -> Vec<AgentEvent> {
        match message {
            EurekaMessage::Registered { request } => {
                if self.answered(ctx, request).is_none() {
                    return Vec::new();
                }
                self.registered = true;
                vec![AgentEvent::Registered]
            }
            EurekaMessage::Renewed { request } => {
                self.answered(ctx, request);
                Vec::new()
            }
            EurekaMessage::NotFound { request } => {
                if self.answered(ctx, request).is_none() || self.heartbeat.is_none() {
                    return Vec::new();
                }
                self.registered = false;
                if !self.pending.values().any(|p| p.kind == Kind::Register) {
                    self.start(ctx, Kind::Register);
                }
                vec![AgentEvent::RegistrationLost]
            }
            EurekaMessage::Cancelled { request, .. } => match self.answered(ctx, request) {
                Some(_) => vec![AgentEvent::Deregistered],
                None => Vec::new(),
            },
            EurekaMessage::Instances {
                request,
                mut instances,
            } => match self.answered(ctx, request) {
                Some(Kind::Lookup { lookup, .. }) => {
                    instances.sort_by(|a, b| a.instance.cmp(&b.instance));
                    vec![AgentEvent::LookupOk {
                        lookup,
                        instances,
                        server: from,
                        revision: None,
                    }]
                }
                _ => Vec::new(),
            },
            // Peer traffic and requests are for servers.
            _ => Vec::new(),
        }
    }

    fn on_timer(
        &mut self,
        ctx: &mut Context<'_>,
        id: TimerId,
        timer: AgentTimer,
    ) -> Vec<AgentEvent> {
        match timer {
            AgentTimer::Heartbeat => {
                if self.heartbeat != Some(id) {
                    return Vec::new();
                }
                self.arm_heartbeat(ctx);
                if self.registered {
                    self.start(ctx, Kind::Renew);
                } else if !self.pending.values().any(|p| p.kind == Kind::Register) {
                    self.start(ctx, Kind::Register);
                }
                Vec::new()
            }
            AgentTimer::Timeout { request } => {
                let Some(p) = self.pending.get_mut(&request).filter(|p| p.timer == id) else {
                    return Vec::new();
                };
                // Fail over: the next request goes to the next registry node too.
                self.server = (self.server + 1) % self.config.registry.len();
                if p.retries_left > 0 {
                    if p.retries_left != u32::MAX {
                        p.retries_left -= 1;
                    }
                    self.send_attempt(ctx, request);
                    return Vec::new();
                }
                match self.pending.remove(&request).map(|p| p.kind) {
                    Some(Kind::Lookup { lookup, .. }) => vec![AgentEvent::LookupFailed {
                        lookup,
                        error: format!(
                            "no eureka server answered within {} ms",
                            self.config.request_timeout_ms
                        ),
                        definite: false,
                    }],
                    _ => Vec::new(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::RegistryTimer;
    use super::super::test_support::{sent, timers};
    use super::*;
    use crate::process::TestContext;

    const ME: NodeId = NodeId(7);
    const S: [NodeId; 3] = [NodeId(0), NodeId(1), NodeId(2)];

    fn agent() -> (EurekaAgent, TestContext) {
        let a = EurekaAgent::new(AgentConfig {
            id: ME,
            registry: S.to_vec(),
            home: S[1],
            ttl_ms: 3_000,
            heartbeat_interval_ms: 1_000,
            request_timeout_ms: 900,
        });
        (a, TestContext::new(ME, 3))
    }

    fn info() -> InstanceInfo {
        InstanceInfo {
            service: "web".into(),
            instance: "w1".into(),
            node: ME,
            tags: Vec::new(),
            weight: 1,
        }
    }

    /// The agent timers set, unwrapped from the host's timer type.
    fn agent_timers(effects: &[crate::process::Effect]) -> Vec<(TimerId, u64, AgentTimer)> {
        timers::<RegistryTimer<AgentTimer>>(effects)
            .into_iter()
            .filter_map(|(id, ms, t)| match t {
                RegistryTimer::Agent { timer } => Some((id, ms, timer)),
                RegistryTimer::Host { .. } => None,
            })
            .collect()
    }

    fn fire(
        a: &mut EurekaAgent,
        tc: &mut TestContext,
        timer: &(TimerId, u64, AgentTimer),
    ) -> Vec<AgentEvent> {
        a.on_timer(&mut tc.ctx(), timer.0, timer.2.clone())
    }

    #[test]
    fn registers_with_the_home_server_with_its_lease_and_heartbeats_every_interval() {
        let (mut a, mut tc) = agent();
        a.register(&mut tc.ctx(), &info());
        let effects = tc.take_effects();
        assert_eq!(
            sent::<EurekaMessage>(&effects),
            vec![(
                S[1],
                EurekaMessage::Register {
                    request: 1,
                    instance: info(),
                    ttl_ms: 3_000,
                    renewal_interval_ms: 1_000
                }
            )]
        );
        let t = agent_timers(&effects);
        assert_eq!(
            (t[0].1, &t[0].2),
            (300, &AgentTimer::Timeout { request: 1 })
        );
        assert_eq!((t[1].1, &t[1].2), (1_000, &AgentTimer::Heartbeat));
        assert_eq!(
            a.on_message(
                &mut tc.ctx(),
                S[1],
                EurekaMessage::Registered { request: 1 }
            ),
            vec![AgentEvent::Registered]
        );
        tc.take_effects();
        fire(&mut a, &mut tc, &t[1]);
        let effects = tc.take_effects();
        assert_eq!(
            sent::<EurekaMessage>(&effects),
            vec![(
                S[1],
                EurekaMessage::Renew {
                    request: 2,
                    service: "web".into(),
                    instance: "w1".into()
                }
            )]
        );
        assert!(
            agent_timers(&effects)
                .iter()
                .any(|t| t.2 == AgentTimer::Heartbeat)
        );
    }

    #[test]
    fn renew_answered_not_found_reports_the_loss_and_registers_again() {
        let (mut a, mut tc) = agent();
        a.register(&mut tc.ctx(), &info());
        let heartbeat = agent_timers(&tc.take_effects())[1].clone();
        a.on_message(
            &mut tc.ctx(),
            S[1],
            EurekaMessage::Registered { request: 1 },
        );
        fire(&mut a, &mut tc, &heartbeat);
        tc.take_effects();
        let events = a.on_message(&mut tc.ctx(), S[1], EurekaMessage::NotFound { request: 2 });
        assert_eq!(events, vec![AgentEvent::RegistrationLost]);
        let sent = sent::<EurekaMessage>(&tc.take_effects());
        assert!(
            matches!(sent[..], [(to, EurekaMessage::Register { request: 3, .. })] if to == S[1])
        );
        assert_eq!(
            a.on_message(
                &mut tc.ctx(),
                S[1],
                EurekaMessage::Registered { request: 3 }
            ),
            vec![AgentEvent::Registered]
        );
    }

    #[test]
    fn timed_out_register_fails_over_to_the_next_server_until_answered() {
        let (mut a, mut tc) = agent();
        a.register(&mut tc.ctx(), &info());
        let mut timeout = agent_timers(&tc.take_effects())[0].clone();
        let mut to = Vec::new();
        for _ in 0..4 {
            assert!(fire(&mut a, &mut tc, &timeout).is_empty());
            let effects = tc.take_effects();
            to.push(sent::<EurekaMessage>(&effects)[0].0);
            timeout = agent_timers(&effects)[0].clone();
        }
        assert_eq!(to, vec![S[2], S[0], S[1], S[2]]);
        // A late answer to the same request is taken.
        assert_eq!(
            a.on_message(
                &mut tc.ctx(),
                S[0],
                EurekaMessage::Registered { request: 1 }
            ),
            vec![AgentEvent::Registered]
        );
    }

    #[test]
    fn lookup_answers_from_the_server_it_asked_with_no_revision() {
        let (mut a, mut tc) = agent();
        a.lookup(&mut tc.ctx(), 42, "web", Consistency::Consistent);
        let sent = sent::<EurekaMessage>(&tc.take_effects());
        assert_eq!(
            sent,
            vec![(
                S[1],
                EurekaMessage::Lookup {
                    request: 1,
                    service: "web".into()
                }
            )]
        );
        let events = a.on_message(
            &mut tc.ctx(),
            S[1],
            EurekaMessage::Instances {
                request: 1,
                instances: vec![info()],
            },
        );
        assert_eq!(
            events,
            vec![AgentEvent::LookupOk {
                lookup: 42,
                instances: vec![info()],
                server: S[1],
                revision: None
            }]
        );
        // A duplicate answer ends nothing twice.
        let again = a.on_message(
            &mut tc.ctx(),
            S[1],
            EurekaMessage::Instances {
                request: 1,
                instances: vec![],
            },
        );
        assert!(again.is_empty());
    }

    #[test]
    fn lookup_tries_three_servers_then_fails_indefinitely_within_the_request_timeout() {
        let (mut a, mut tc) = agent();
        a.lookup(&mut tc.ctx(), 5, "web", Consistency::Stale);
        let mut timeout = agent_timers(&tc.take_effects())[0].clone();
        let mut waited_ms = timeout.1;
        let mut asked = vec![S[1]];
        loop {
            let events = fire(&mut a, &mut tc, &timeout);
            let effects = tc.take_effects();
            if !events.is_empty() {
                assert!(matches!(
                    events[..],
                    [AgentEvent::LookupFailed {
                        lookup: 5,
                        definite: false,
                        ..
                    }]
                ));
                break;
            }
            asked.push(sent::<EurekaMessage>(&effects)[0].0);
            timeout = agent_timers(&effects)[0].clone();
            waited_ms += timeout.1;
        }
        assert_eq!(asked, vec![S[1], S[2], S[0]]);
        assert!(waited_ms <= 900, "{waited_ms}");
        // The next request goes to the server after the last one that did not answer.
        a.lookup(&mut tc.ctx(), 6, "web", Consistency::Stale);
        assert_eq!(sent::<EurekaMessage>(&tc.take_effects())[0].0, S[1]);
    }

    #[test]
    fn deregister_stops_heartbeats_cancels_and_reports_once_answered() {
        let (mut a, mut tc) = agent();
        a.register(&mut tc.ctx(), &info());
        let heartbeat = agent_timers(&tc.take_effects())[1].clone();
        a.on_message(
            &mut tc.ctx(),
            S[1],
            EurekaMessage::Registered { request: 1 },
        );
        a.deregister(&mut tc.ctx());
        let sent_now = sent::<EurekaMessage>(&tc.take_effects());
        assert!(matches!(
            sent_now[..],
            [(_, EurekaMessage::Cancel { request: 2, .. })]
        ));
        // The old heartbeat timer (cancelled) does nothing if it fires anyway.
        fire(&mut a, &mut tc, &heartbeat);
        assert!(sent::<EurekaMessage>(&tc.take_effects()).is_empty());
        assert_eq!(
            a.on_message(
                &mut tc.ctx(),
                S[1],
                EurekaMessage::Cancelled {
                    request: 2,
                    existed: true
                }
            ),
            vec![AgentEvent::Deregistered]
        );
    }

    #[test]
    fn eureka_has_no_watches() {
        let (mut a, mut tc) = agent();
        assert!(!a.watch(&mut tc.ctx(), "web"));
        assert!(tc.take_effects().is_empty());
    }
}
