//! The `service-instance` role: a node that registers itself with the registry (name, tags,
//! weight, TTL), keeps the registration alive by heartbeat through its [`RegistryAgent`], and
//! serves [`ServiceMessage::Call`]s. A crash or a partition stops its heartbeats; after a
//! restart it registers again. With `leave_at` it leaves gracefully: it deregisters, then
//! stops answering calls (Consul's `leave`, Eureka's `shutdown()` cancelling the lease).

use serde::{Deserialize, Serialize};

use super::{
    AgentConfig, AgentEvent, HostTimer, InstanceInfo, Observation, RegistryAgent, RegistryTimer,
    ServiceMessage, ms,
};
use crate::families::{check_duration, check_duration_from};
use crate::family::OptionError;
use crate::process::{Context, Message, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Shortest interval, timeout or TTL of the family's options (1 ms): shorter ones would
/// only flood the run's event budget.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Most tags an instance may carry.
pub const MAX_TAGS: usize = 64;
/// Largest instance weight.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// Options of a `service-instance` role. Durations are on the instance's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    /// The service the instances provide (default: the role's name).
    #[serde(default)]
    pub service: String,
    /// The registry role the instances register with (default: the one role running a
    /// registry protocol).
    #[serde(default)]
    pub registry: String,
    /// Registration TTL: the registry forgets an instance whose heartbeats stop this long
    /// (default 3s; Eureka's lease duration, etcd's lease TTL).
    #[serde(default = "default_ttl")]
    pub ttl: Duration,
    /// Time between heartbeats (default 1s; must be shorter than `ttl`).
    #[serde(default = "default_heartbeat_interval")]
    pub heartbeat_interval: Duration,
    /// A registry request without an answer after this long is retried on another registry
    /// node (default 500ms).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Tags announced with the registration (at most 64).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Weight announced with the registration (default 1, from 1 to 1,000,000).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Leave gracefully at this local time: deregister, then stop answering calls (default:
    /// never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leave_at: Option<Duration>,
}

fn default_ttl() -> Duration {
    Duration::from_secs(3)
}
fn default_heartbeat_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_request_timeout() -> Duration {
    Duration::from_millis(500)
}
fn default_weight() -> u32 {
    1
}

impl InstanceConfig {
    /// Range and cross-key problems, each at its key.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("ttl", self.ttl),
            ("heartbeat_interval", self.heartbeat_interval),
            ("request_timeout", self.request_timeout),
        ] {
            check_duration_from(&mut errors, key, value, MIN_INTERVAL);
        }
        if let Some(leave_at) = self.leave_at {
            check_duration(&mut errors, "leave_at", leave_at, true);
        }
        if self.heartbeat_interval >= self.ttl {
            errors.push(OptionError::at(
                "heartbeat_interval",
                format!(
                    "expected shorter than ttl ({}), found {}",
                    self.ttl, self.heartbeat_interval
                ),
            ));
        }
        if self.tags.len() > MAX_TAGS {
            errors.push(OptionError::at(
                "tags",
                format!(
                    "expected at most {MAX_TAGS} tags, found {}",
                    self.tags.len()
                ),
            ));
        }
        if !(1..=MAX_WEIGHT).contains(&self.weight) {
            errors.push(OptionError::at(
                "weight",
                format!("expected from 1 to {MAX_WEIGHT}, found {}", self.weight),
            ));
        }
        errors
    }

    /// The agent configuration of instance `id` registering with `registry`.
    pub fn agent(&self, id: NodeId, registry: Vec<NodeId>, home: NodeId) -> AgentConfig {
        AgentConfig {
            id,
            registry,
            home,
            ttl_ms: ms(self.ttl),
            heartbeat_interval_ms: ms(self.heartbeat_interval),
            request_timeout_ms: ms(self.request_timeout),
        }
    }
}

/// A service instance over registry agent `A`.
pub struct ServiceInstance<A: RegistryAgent> {
    info: InstanceInfo,
    leave_at: Option<Duration>,
    agent: A,
    /// Left gracefully: no longer serving.
    left: bool,
}

impl<A: RegistryAgent> ServiceInstance<A> {
    /// Instance `info` with its agent's configuration.
    pub fn new(info: InstanceInfo, leave_at: Option<Duration>, agent: AgentConfig) -> Self {
        ServiceInstance {
            info,
            leave_at,
            agent: A::new(agent),
            left: false,
        }
    }

    fn handle(&mut self, ctx: &mut Context<'_>, events: Vec<AgentEvent>) {
        for event in events {
            let state = match event {
                AgentEvent::Registered => "registered",
                AgentEvent::RegistrationLost => "lost",
                AgentEvent::Deregistered => "deregistered",
                _ => continue,
            };
            ctx.observe(Observation::Registration {
                service: self.info.service.clone(),
                instance: self.info.instance.clone(),
                state: state.to_string(),
            });
        }
    }
}

impl<A: RegistryAgent> Process for ServiceInstance<A> {
    type Message = ServiceMessage;
    type Timer = RegistryTimer<A::Timer>;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.left = false;
        if let Some(at) = self.leave_at {
            let now = ctx.local_time_ns().max(0) as u64;
            if now >= at.as_nanos() {
                self.left = true; // restarted after leaving: stays gone
                return;
            }
            let delay = std::time::Duration::from_nanos(at.as_nanos() - now);
            ctx.set_timer(
                delay,
                RegistryTimer::<A::Timer>::Host {
                    timer: HostTimer::Leave,
                },
            );
        }
        self.agent.register(ctx, &self.info);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: ServiceMessage) {
        if let ServiceMessage::Call { id } = message
            && !self.left
        {
            ctx.send(
                from,
                ServiceMessage::CallReply {
                    id,
                    instance: self.info.instance.clone(),
                },
            );
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Self::Timer) {
        match timer {
            // After leaving, the agent still finishes its deregistration (retries).
            RegistryTimer::Agent { timer } => {
                let events = self.agent.on_timer(ctx, id, timer);
                self.handle(ctx, events);
            }
            RegistryTimer::Host {
                timer: HostTimer::Leave,
            } => {
                self.left = true;
                ctx.observe(Observation::Leaving {
                    service: self.info.service.clone(),
                    instance: self.info.instance.clone(),
                });
                self.agent.deregister(ctx);
            }
            RegistryTimer::Host { .. } => {}
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

    fn observed(effects: &[Effect]) -> Vec<Observation> {
        crate::process::observations(effects)
    }

    #[test]
    fn an_instance_registers_at_start_and_answers_calls() {
        let mut tc = TestContext::new(NodeId(5), 1);
        let mut p =
            ServiceInstance::<FakeAgent>::new(fake::instance("web1", 5), None, fake::config(5));
        p.on_start(&mut tc.ctx());
        assert_eq!(p.agent.log, ["register web1"]);
        tc.take_effects();
        p.on_other(
            &mut tc.ctx(),
            NodeId(0),
            Payload::new(Reply(vec![AgentEvent::Registered])),
        )
        .expect("the agent's message");
        assert_eq!(
            observed(&tc.take_effects()),
            [Observation::Registration {
                service: "web".into(),
                instance: "web1".into(),
                state: "registered".into()
            }]
        );
        p.on_message(&mut tc.ctx(), NodeId(9), ServiceMessage::Call { id: 7 });
        assert_eq!(
            tc.take_effects(),
            [Effect::Send {
                to: NodeId(9),
                message: Payload::new(ServiceMessage::CallReply {
                    id: 7,
                    instance: "web1".into()
                })
            }]
        );
    }

    #[test]
    fn a_leaving_instance_deregisters_then_stops_serving_and_stays_gone_after_a_restart() {
        let mut tc = TestContext::new(NodeId(5), 1);
        let leave = Some(Duration::from_secs(2));
        let mut p =
            ServiceInstance::<FakeAgent>::new(fake::instance("web1", 5), leave, fake::config(5));
        p.on_start(&mut tc.ctx());
        tc.local_time_ns = 2_000_000_000;
        p.on_timer(
            &mut tc.ctx(),
            TimerId(0),
            RegistryTimer::Host {
                timer: HostTimer::Leave,
            },
        );
        assert_eq!(p.agent.log, ["register web1", "deregister"]);
        assert!(
            observed(&tc.take_effects()).contains(&Observation::Leaving {
                service: "web".into(),
                instance: "web1".into()
            })
        );
        p.on_message(&mut tc.ctx(), NodeId(9), ServiceMessage::Call { id: 8 });
        assert!(
            tc.take_effects().is_empty(),
            "a departed instance answers no call"
        );
        // A restart after the leave time does not register again.
        let mut p =
            ServiceInstance::<FakeAgent>::new(fake::instance("web1", 5), leave, fake::config(5));
        p.on_start(&mut tc.ctx());
        assert!(p.agent.log.is_empty());
    }
}
