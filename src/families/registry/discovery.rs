//! The `discovery` workload: clients that look a service's instances up in the registry and
//! call them.
//!
//! Each client keeps a view of the service (its cache, as Eureka's `DiscoveryClient` and
//! Consul's agents do), refreshed by a lookup every `lookup_interval` and, with `watch`, by
//! the registry's watch notifications between lookups (etcd and ZooKeeper). Every
//! `call_interval` it calls the next instance of its view (round robin).
//!
//! # History
//!
//! Two sequential processes per client, in Jepsen's vocabulary:
//! - `lookup` (key: the service; invoke value `nil`; `ok` value the list of instance ids found;
//!   `fail` when the registry refused, e.g. no leader for a consistent read; `info` on timeout);
//! - `call` (key: the service; value the instance called; `ok` when it answered; `info` when it
//!   did not within `call_timeout`; `fail` with error `no-instances` when the view was empty).
//!
//! Process ids are `client index * 2^32 + stream * 2^31 + incarnation * 2^20 + round` (stream
//! 0: lookups, 1: calls; a new round after every `info`), unique across clients and restarts.

use serde::{Deserialize, Serialize};

use super::instance::MIN_INTERVAL;
use super::{
    AgentConfig, AgentEvent, Consistency, HostTimer, InstanceInfo, Observation, RegistryAgent,
    RegistryTimer, ServiceMessage, ms,
};
use crate::families::{check_duration, check_duration_from};
use crate::family::OptionError;
use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{Context, Message, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Disk key of a discovering client's incarnation counter.
pub const EPOCH_KEY: &str = "discovery/epoch";

/// Options of a `discovery` client group. Durations are on the client's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// The service looked up (default: the service of the one `service-instance` role).
    #[serde(default)]
    pub service: String,
    /// Time between lookups (default 1s).
    #[serde(default = "default_lookup_interval")]
    pub lookup_interval: Duration,
    /// Consistency level of lookups (default `default`; `consistent` or `stale`).
    #[serde(default)]
    pub consistency: Consistency,
    /// Also watch the service between lookups, where the registry has watches (default false).
    #[serde(default)]
    pub watch: bool,
    /// Time between calls to instances (default 100ms).
    #[serde(default = "default_call_interval")]
    pub call_interval: Duration,
    /// A call without an answer after this long ends in `info` (default 200ms).
    #[serde(default = "default_call_timeout")]
    pub call_timeout: Duration,
    /// A lookup without an answer after this long ends in `info` (default 500ms).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// First lookup at this local time (default 0s); the first call one call interval later.
    #[serde(default)]
    pub start: Duration,
    /// No lookup or call starts at or after this local time (default: never stop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
}

fn default_lookup_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_call_interval() -> Duration {
    Duration::from_millis(100)
}
fn default_call_timeout() -> Duration {
    Duration::from_millis(200)
}
fn default_request_timeout() -> Duration {
    Duration::from_millis(500)
}

impl DiscoveryConfig {
    /// Range problems, each at its key.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("lookup_interval", self.lookup_interval),
            ("call_interval", self.call_interval),
            ("call_timeout", self.call_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            check_duration_from(&mut errors, key, value, MIN_INTERVAL);
        }
        check_duration(&mut errors, "start", self.start, true);
        if let Some(stop) = self.stop {
            check_duration(&mut errors, "stop", stop, true);
        }
        errors
    }

    /// The agent configuration of client `id` looking up in `registry`.
    pub fn agent(&self, id: NodeId, registry: Vec<NodeId>, home: NodeId) -> AgentConfig {
        AgentConfig {
            id,
            registry,
            home,
            ttl_ms: 0,
            heartbeat_interval_ms: 0,
            request_timeout_ms: ms(self.request_timeout),
        }
    }
}

/// One operation in flight.
#[derive(Clone, Debug)]
struct Pending {
    id: u64,
    process: u64,
    /// The instance called (calls only).
    instance: String,
}

/// A discovering client over registry agent `A`.
pub struct Discoverer<A: RegistryAgent> {
    client_index: u32,
    config: DiscoveryConfig,
    agent: A,
    epoch: u64,
    /// Rounds of the lookup and call processes (a new round after each `info`).
    rounds: [u64; 2],
    next_id: u64,
    view: Vec<InstanceInfo>,
    next_instance: usize,
    lookup: Option<Pending>,
    call: Option<Pending>,
}

impl<A: RegistryAgent> Discoverer<A> {
    /// Client number `client_index` (among every client of the cluster) with its options and
    /// agent configuration.
    pub fn new(client_index: u32, config: DiscoveryConfig, agent: AgentConfig) -> Self {
        Discoverer {
            client_index,
            config,
            agent: A::new(agent),
            epoch: 0,
            rounds: [0; 2],
            next_id: 0,
            view: Vec::new(),
            next_instance: 0,
            lookup: None,
            call: None,
        }
    }

    fn process_id(&self, stream: usize) -> u64 {
        ((self.client_index as u64) << 32)
            | ((stream as u64) << 31)
            | ((self.epoch & 0x7ff) << 20)
            | (self.rounds[stream] & 0xf_ffff)
    }

    fn may_start(&self, ctx: &Context<'_>) -> bool {
        self.config
            .stop
            .is_none_or(|stop| ctx.local_time_ns() < stop.as_nanos() as i64)
    }

    fn host_timer(ctx: &mut Context<'_>, delay: Duration, timer: HostTimer) {
        ctx.set_timer(delay.to_std(), RegistryTimer::<A::Timer>::Host { timer });
    }

    fn record(
        &self,
        ctx: &mut Context<'_>,
        process: u64,
        kind: EventType,
        f: Function,
        value: Value,
    ) {
        ctx.record(HistoryEvent::new(
            process,
            kind,
            f,
            Some(self.config.service.clone()),
            value,
        ));
    }

    fn start_lookup(&mut self, ctx: &mut Context<'_>) {
        if self.lookup.is_some() || !self.may_start(ctx) {
            return;
        }
        self.next_id += 1;
        let pending = Pending {
            id: self.next_id,
            process: self.process_id(0),
            instance: String::new(),
        };
        self.record(
            ctx,
            pending.process,
            EventType::Invoke,
            Function::Lookup,
            Value::Nil,
        );
        let (id, service) = (pending.id, self.config.service.clone());
        self.lookup = Some(pending);
        // The agent answers within the request timeout; this guard only catches an agent
        // that breaks its contract.
        let guard = Duration(self.config.request_timeout.as_nanos() * 2);
        Self::host_timer(ctx, guard, HostTimer::LookupTimeout { lookup: id });
        self.agent
            .lookup(ctx, id, &service, self.config.consistency);
    }

    /// Ends the pending lookup `lookup` (if it is the pending one) with `kind`.
    fn end_lookup(
        &mut self,
        ctx: &mut Context<'_>,
        lookup: u64,
        kind: EventType,
        value: Value,
        error: Option<&str>,
    ) -> bool {
        let Some(pending) = self.lookup.take_if(|p| p.id == lookup) else {
            return false;
        };
        let mut event = HistoryEvent::new(
            pending.process,
            kind,
            Function::Lookup,
            Some(self.config.service.clone()),
            value,
        );
        if let Some(error) = error {
            event = event.with_error(error);
        }
        ctx.record(event);
        if kind == EventType::Info {
            self.rounds[0] += 1;
        }
        Self::host_timer(ctx, self.config.lookup_interval, HostTimer::Lookup);
        true
    }

    fn set_view(&mut self, ctx: &mut Context<'_>, instances: Vec<InstanceInfo>) {
        if instances != self.view {
            self.view = instances;
            ctx.observe(Observation::ClientView {
                service: self.config.service.clone(),
                instances: self.view.iter().map(|i| i.instance.clone()).collect(),
            });
        }
    }

    fn start_call(&mut self, ctx: &mut Context<'_>) {
        if self.call.is_some() || !self.may_start(ctx) {
            return;
        }
        let process = self.process_id(1);
        if self.view.is_empty() {
            self.record(ctx, process, EventType::Invoke, Function::Call, Value::Nil);
            ctx.record(
                HistoryEvent::new(
                    process,
                    EventType::Fail,
                    Function::Call,
                    Some(self.config.service.clone()),
                    Value::Nil,
                )
                .with_error("no-instances"),
            );
            Self::host_timer(ctx, self.config.call_interval, HostTimer::Call);
            return;
        }
        let target = self.view[self.next_instance % self.view.len()].clone();
        self.next_instance = self.next_instance.wrapping_add(1);
        self.next_id += 1;
        let id = self.next_id;
        let value = Value::Str(target.instance.clone());
        self.record(ctx, process, EventType::Invoke, Function::Call, value);
        ctx.send(target.node, ServiceMessage::Call { id });
        Self::host_timer(ctx, self.config.call_timeout, HostTimer::CallTimeout { id });
        self.call = Some(Pending {
            id,
            process,
            instance: target.instance,
        });
    }

    fn end_call(&mut self, ctx: &mut Context<'_>, id: u64, kind: EventType) {
        let Some(pending) = self.call.take_if(|p| p.id == id) else {
            return;
        };
        let mut event = HistoryEvent::new(
            pending.process,
            kind,
            Function::Call,
            Some(self.config.service.clone()),
            Value::Str(pending.instance),
        );
        if kind == EventType::Info {
            event = event.with_error("timeout");
            self.rounds[1] += 1;
        }
        ctx.record(event);
        Self::host_timer(ctx, self.config.call_interval, HostTimer::Call);
    }

    fn handle(&mut self, ctx: &mut Context<'_>, events: Vec<AgentEvent>) {
        for event in events {
            match event {
                AgentEvent::LookupOk {
                    lookup, instances, ..
                } => {
                    let names = instances
                        .iter()
                        .map(|i| Value::Str(i.instance.clone()))
                        .collect();
                    if self.end_lookup(ctx, lookup, EventType::Ok, Value::List(names), None) {
                        self.set_view(ctx, instances);
                    }
                }
                AgentEvent::LookupFailed {
                    lookup,
                    error,
                    definite,
                } => {
                    let kind = if definite {
                        EventType::Fail
                    } else {
                        EventType::Info
                    };
                    self.end_lookup(ctx, lookup, kind, Value::Nil, Some(&error));
                }
                AgentEvent::View { service, instances } if service == self.config.service => {
                    self.set_view(ctx, instances);
                }
                _ => {}
            }
        }
    }
}

impl<A: RegistryAgent> Process for Discoverer<A> {
    type Message = ServiceMessage;
    type Timer = RegistryTimer<A::Timer>;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = crate::families::next_incarnation(ctx.disk(), EPOCH_KEY);
        let now = ctx.local_time_ns().max(0) as u64;
        let first = Duration(self.config.start.as_nanos().saturating_sub(now));
        Self::host_timer(ctx, first, HostTimer::Lookup);
        let first_call = Duration(first.as_nanos() + self.config.call_interval.as_nanos());
        Self::host_timer(ctx, first_call, HostTimer::Call);
        if self.config.watch {
            let service = self.config.service.clone();
            self.agent.watch(ctx, &service);
        }
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _from: NodeId, message: ServiceMessage) {
        if let ServiceMessage::CallReply { id, .. } = message {
            self.end_call(ctx, id, EventType::Ok);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Self::Timer) {
        match timer {
            RegistryTimer::Agent { timer } => {
                let events = self.agent.on_timer(ctx, id, timer);
                self.handle(ctx, events);
            }
            RegistryTimer::Host { timer } => match timer {
                HostTimer::Lookup => self.start_lookup(ctx),
                HostTimer::Call => self.start_call(ctx),
                HostTimer::CallTimeout { id } => self.end_call(ctx, id, EventType::Info),
                HostTimer::LookupTimeout { lookup } => {
                    self.end_lookup(ctx, lookup, EventType::Info, Value::Nil, Some("timeout"));
                }
                HostTimer::Leave => {}
            },
        }
    }

    fn on_other(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        let message = message.downcast::<A::Message>()?;
        let events = self.agent.on_message(ctx, from, message);
        self.handle(ctx, events);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::registry::fake::{self, FakeAgent, Reply};
    use crate::payload::Payload;
    use crate::process::{Effect, TestContext};

    fn config() -> DiscoveryConfig {
        let mut c: DiscoveryConfig =
            crate::family::parse_options(&toml::Table::new()).expect("defaults");
        c.service = "web".into();
        c
    }

    fn history(effects: &[Effect]) -> Vec<(EventType, Function, Value, u64)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some((h.kind, h.f, h.value.clone(), h.process)),
                _ => None,
            })
            .collect()
    }

    fn lookup_ok(lookup: u64, names: &[(&str, u32)]) -> Payload {
        Payload::new(Reply(vec![AgentEvent::LookupOk {
            lookup,
            instances: names.iter().map(|(n, id)| fake::instance(n, *id)).collect(),
            server: NodeId(0),
            revision: None,
        }]))
    }

    fn host(timer: HostTimer) -> RegistryTimer<()> {
        RegistryTimer::Host { timer }
    }

    #[test]
    fn a_lookup_is_one_operation_whose_answer_becomes_the_view_that_calls_use() {
        let mut tc = TestContext::new(NodeId(7), 1);
        let mut p = Discoverer::<FakeAgent>::new(2, config(), fake::config(7));
        p.on_start(&mut tc.ctx());
        tc.take_effects();
        // With an empty view a call fails at once.
        p.on_timer(&mut tc.ctx(), TimerId(1), host(HostTimer::Call));
        let h = history(&tc.take_effects());
        assert_eq!(h.len(), 2);
        assert_eq!((h[1].0, h[1].1), (EventType::Fail, Function::Call));
        p.on_timer(&mut tc.ctx(), TimerId(0), host(HostTimer::Lookup));
        assert_eq!(p.agent.log, ["lookup 1 web Default"]);
        let invoke = history(&tc.take_effects());
        assert_eq!(invoke[0].0, EventType::Invoke);
        p.on_other(
            &mut tc.ctx(),
            NodeId(0),
            lookup_ok(1, &[("web1", 4), ("web2", 5)]),
        )
        .expect("the agent's message");
        let effects = tc.take_effects();
        let h = history(&effects);
        let list = Value::List(vec![Value::Str("web1".into()), Value::Str("web2".into())]);
        assert_eq!(h, [(EventType::Ok, Function::Lookup, list, invoke[0].3)]);
        assert!(effects.iter().any(|e| matches!(e, Effect::Observe(o)
            if matches!(o.downcast_ref::<Observation>(), Some(Observation::ClientView { instances, .. }) if instances.len() == 2))));
        // Calls go round robin over the view; an answered call is ok.
        p.on_timer(&mut tc.ctx(), TimerId(2), host(HostTimer::Call));
        let effects = tc.take_effects();
        assert!(
            effects
                .iter()
                .any(|e| matches!(e, Effect::Send { to, .. } if *to == NodeId(4)))
        );
        let id = p.call.as_ref().expect("a call in flight").id;
        p.on_message(
            &mut tc.ctx(),
            NodeId(4),
            ServiceMessage::CallReply {
                id,
                instance: "web1".into(),
            },
        );
        let h = history(&tc.take_effects());
        assert_eq!(
            (h[0].0, h[0].1, h[0].2.clone()),
            (EventType::Ok, Function::Call, Value::Str("web1".into()))
        );
        p.on_timer(&mut tc.ctx(), TimerId(3), host(HostTimer::Call));
        assert!(
            tc.take_effects()
                .iter()
                .any(|e| matches!(e, Effect::Send { to, .. } if *to == NodeId(5)))
        );
    }

    #[test]
    fn an_unanswered_call_ends_in_info_and_the_next_call_is_a_new_process() {
        let mut tc = TestContext::new(NodeId(7), 1);
        let mut p = Discoverer::<FakeAgent>::new(2, config(), fake::config(7));
        p.on_start(&mut tc.ctx());
        p.on_timer(&mut tc.ctx(), TimerId(0), host(HostTimer::Lookup));
        p.on_other(&mut tc.ctx(), NodeId(0), lookup_ok(1, &[("web1", 4)]))
            .expect("agent message");
        tc.take_effects();
        p.on_timer(&mut tc.ctx(), TimerId(2), host(HostTimer::Call));
        let first = history(&tc.take_effects())[0].3;
        let id = p.call.as_ref().expect("in flight").id;
        p.on_timer(
            &mut tc.ctx(),
            TimerId(3),
            host(HostTimer::CallTimeout { id }),
        );
        let h = history(&tc.take_effects());
        assert_eq!((h[0].0, h[0].3), (EventType::Info, first));
        p.on_timer(&mut tc.ctx(), TimerId(4), host(HostTimer::Call));
        let next = history(&tc.take_effects())[0].3;
        assert_ne!(
            next, first,
            "a process that ended in info never invokes again"
        );
        // A late reply to the timed-out call is ignored.
        p.on_message(
            &mut tc.ctx(),
            NodeId(4),
            ServiceMessage::CallReply {
                id,
                instance: "web1".into(),
            },
        );
        assert!(history(&tc.take_effects()).is_empty());
    }

    #[test]
    fn a_refused_lookup_fails_and_a_timed_out_one_is_info() {
        let mut tc = TestContext::new(NodeId(7), 1);
        let mut p = Discoverer::<FakeAgent>::new(2, config(), fake::config(7));
        p.on_start(&mut tc.ctx());
        for (lookup, definite, kind) in [(1, true, EventType::Fail), (2, false, EventType::Info)] {
            p.on_timer(&mut tc.ctx(), TimerId(0), host(HostTimer::Lookup));
            tc.take_effects();
            let failed = AgentEvent::LookupFailed {
                lookup,
                error: "no leader".into(),
                definite,
            };
            p.on_other(&mut tc.ctx(), NodeId(0), Payload::new(Reply(vec![failed])))
                .expect("agent message");
            assert_eq!(history(&tc.take_effects())[0].0, kind);
        }
    }
}
