//! The `balancer` role: a proxy (nginx, HAProxy, Envoy as an edge proxy). Clients send it
//! [`BalancingMessage::Request`]s; it routes each through its [`Caller`] (strategy, health
//! checks, outlier detection, breakers, retries, timeouts, rate limit, fallback) to a backend
//! and answers the client with a [`BalancingMessage::Response`] carrying the final status, the
//! last backend tried and the attempts it spent. A request it cannot route (no eligible
//! backend, rate limited, too many in flight) is answered at once (`unavailable`, `rejected`).
//!
//! Several balancer nodes are independent proxies (each with its own view, health and
//! breakers), as a fleet of Envoys is.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::BalancingMessage;
use super::caller::{
    BUGS, Caller, CallerConfig, CallerTimer, Outcome, UNLISTED, backend_roles, build_caller,
    index_in_role, resolve_discovery,
};
use crate::family::{self, Configured, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use crate::process::{AnyProcess, Context, Message, NodeId, TimerId};

/// A `balancer` node.
pub struct Proxy {
    caller: Caller,
    /// Requests being routed: tag -> (client, the client's request id).
    routing: BTreeMap<u64, (NodeId, u64)>,
    next_tag: u64,
}

impl Proxy {
    /// A proxy routing with `caller`.
    pub fn new(caller: Caller) -> Proxy {
        Proxy {
            caller,
            routing: BTreeMap::new(),
            next_tag: 0,
        }
    }

    fn answer(&mut self, ctx: &mut Context<'_>, outcome: Outcome) {
        if let Some((client, id)) = self.routing.remove(&outcome.tag) {
            ctx.send(
                client,
                BalancingMessage::Response {
                    id,
                    status: outcome.status,
                    backend: outcome.backend,
                    attempts: outcome.attempts,
                },
            );
        }
    }
}

impl AnyProcess for Proxy {
    fn start(&mut self, ctx: &mut Context<'_>) {
        self.caller.start(ctx);
    }

    fn message(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        message: Message,
    ) -> Result<(), Message> {
        match message.downcast::<BalancingMessage>() {
            Ok(BalancingMessage::Request { id, key }) => {
                self.next_tag += 1;
                let tag = self.next_tag;
                self.routing.insert(tag, (from, id));
                if let Some(outcome) = self.caller.call(ctx, key, tag) {
                    self.answer(ctx, outcome);
                }
                Ok(())
            }
            Ok(BalancingMessage::Probe { id }) => {
                ctx.send(from, BalancingMessage::ProbeReply { id, healthy: true });
                Ok(())
            }
            Ok(other) => {
                if let Some(outcome) = self.caller.on_message(ctx, from, &other) {
                    self.answer(ctx, outcome);
                }
                Ok(())
            }
            Err(other) => self.caller.on_other(ctx, from, other),
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Message) -> Result<(), Message> {
        match timer.downcast::<CallerTimer>() {
            Ok(t) => {
                if let Some(outcome) = self.caller.on_timer(ctx, t) {
                    self.answer(ctx, outcome);
                }
                Ok(())
            }
            Err(other) => self.caller.on_other_timer(ctx, id, other),
        }
    }
}

/// The `balancer` protocol's name.
pub const PROTOCOL_NAME: &str = "balancer";

/// Options of a `balancer` role: the backends and the call pipeline's options (flattened).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BalancerConfig {
    /// The backend role routed to (default: the one `backend` role); ignored with
    /// `discovery`.
    #[serde(default)]
    pub backends: String,
    /// How requests are routed.
    #[serde(flatten)]
    pub caller: CallerConfig,
}

/// The `balancer` role.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: PROTOCOL_NAME,
    summary: "a proxy routing clients' requests to backends (static or from a registry) with a strategy, health checks, outlier detection, breakers, retries with back-off, jitter and budget, timeouts, a rate limit and fallbacks",
    serves: &[super::client::WORKLOAD_NAME],
    bugs: BUGS,
    built_on: &[],
    configure,
};

/// Resolves the backend role of a caller without discovery: `name`, or the one backend role.
pub fn backend_role(ctx: &RoleContext<'_>, key: &str, name: &str) -> Result<String, OptionError> {
    let roles = backend_roles(ctx.scenario);
    if name.is_empty() {
        return match roles.as_slice() {
            [one] => Ok(one.name.clone()),
            _ => Err(OptionError::at(
                key,
                format!(
                    "expected the name of the backend role; the scenario has {} backend roles",
                    roles.len()
                ),
            )),
        };
    }
    if roles.iter().any(|r| r.name == name) {
        Ok(name.to_string())
    } else {
        Err(OptionError::at(
            key,
            format!("expected a role running backend, found \"{name}\""),
        ))
    }
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let mut config: BalancerConfig = family::parse_flattened_options(ctx.options, UNLISTED)?;
    let mut errors = if ctx.checking {
        config.caller.validate(BUGS, PROTOCOL_NAME)
    } else {
        Vec::new()
    };
    let mut protocol = None;
    if let Some(d) = config.caller.discovery.as_mut() {
        match resolve_discovery(ctx, d) {
            Ok(p) => protocol = Some(p),
            Err(e) => errors.extend(e),
        }
    } else {
        match backend_role(ctx, "backends", &config.backends) {
            Ok(r) => config.backends = r,
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolved = config.clone();
    Ok(Configured {
        options: family::resolved_options(&resolved),
        build: Arc::new(move |setup: &NodeSetup| {
            let caller = build_caller(
                setup,
                index_in_role(setup),
                &config.caller,
                &config.backends,
                protocol.as_deref(),
            );
            Box::new(Proxy::new(caller))
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::balancing::Status;
    use crate::families::balancing::backend::static_endpoints;
    use crate::payload::Payload;
    use crate::process::{TestContext, sent_messages};

    #[test]
    fn the_proxy_forwards_a_clients_request_and_answers_it_with_the_backends_outcome() {
        let table = toml::Table::new();
        let config: BalancerConfig = family::parse_flattened_options(&table, UNLISTED).unwrap();
        let caller = Caller::new(&config.caller, static_endpoints(&[NodeId(10)]), None);
        let mut p = Proxy::new(caller);
        let mut tc = TestContext::new(NodeId(1), 1);
        p.start(&mut tc.ctx());
        tc.take_effects();
        p.message(
            &mut tc.ctx(),
            NodeId(30),
            Payload::new(BalancingMessage::Request { id: 4, key: 9 }),
        )
        .unwrap();
        let sent = sent_messages::<BalancingMessage>(&tc.take_effects());
        let [(NodeId(10), BalancingMessage::Request { id, key: 9 })] = sent[..] else {
            panic!("forwarded: {sent:?}");
        };
        let answer = BalancingMessage::Response {
            id,
            status: Status::Ok,
            backend: NodeId(10),
            attempts: 1,
        };
        p.message(&mut tc.ctx(), NodeId(10), Payload::new(answer))
            .unwrap();
        assert_eq!(
            sent_messages::<BalancingMessage>(&tc.take_effects()),
            [(
                NodeId(30),
                BalancingMessage::Response {
                    id: 4,
                    status: Status::Ok,
                    backend: NodeId(10),
                    attempts: 1
                }
            )]
        );
    }

    #[test]
    fn bad_roles_and_groups_get_every_problem_at_its_line_and_key() {
        let text = r#"name = "bad"
seed = 1
duration = "5s"

[[cluster.role]]
name = "a"
protocol = "backend"
nodes = 2
options = { capacity = 0, downstream = { role = "b", retry = { max_attempts = 0 }, bogus = 1 } }

[[cluster.role]]
name = "b"
protocol = "backend"
nodes = 2
options = { downstream = { role = "a" }, conditions = [{ at = "1s", kind = "slow", nodes = ["zz"] }] }

[[cluster.role]]
name = "lb"
protocol = "balancer"
nodes = 1
options = { backends = "a", bugs = ["nope"], retry = { bugs = ["retry-without-budget"] } }

[[clients]]
name = "users"
workload = "requests"
count = 1
talks_to = ["lb"]
options = { rate = 1e9, bugs = ["modulo-hashing"] }
"#;
        let errors = crate::scenario::Scenario::parse_all_with(
            std::path::Path::new("bad.toml"),
            text.as_bytes(),
            &crate::families::builtin(),
        )
        .expect_err("invalid");
        let found: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        for expected in [
            "bad.toml:9:24: cluster.role[0].options.capacity",
            "cluster.role[0].options.downstream.bogus: unknown field",
            "cluster.role[1].options.downstream.role: the downstream chain b -> a -> b is a cycle",
            "cluster.role[1].options.conditions[0].nodes[0]: expected a node of role b",
            "cluster.role[2].options.bugs[0]: unknown planted bug \"nope\"",
            "cluster.role[2].options.retry.bugs: write planted bugs in the top-level `bugs`",
            "clients[0].options.rate: expected above 0",
            "clients[0].options.bugs[0]: requests takes no planted bugs",
        ] {
            assert!(
                found.iter().any(|f| f.contains(expected)),
                "missing {expected:?} in {found:#?}"
            );
        }
    }
}
