//! The lock server (role `lock-server`): one lock, granted to one client at a time for a TTL on
//! the server's local clock, with a fencing token per grant. See the family docs in
//! [`crate::families::lock`].

use serde::{Deserialize, Serialize};

use super::Message;
use super::{
    Observation, OptionError, ServerBug, Timer, check_duration, next_incarnation, read_record,
    write_record,
};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// Disk key of the server's record (token counter and current grant, one JSON value).
pub const STATE_KEY: &str = "lock/state";
/// Disk key of the server's boot counter (always synced: a server knows it restarted, even when
/// it forgot its grants), so `restart_delay` applies to restarts and not to the first boot.
pub const BOOTS_KEY: &str = "lock/boots";

/// Options of a `lock-server` role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// How long a grant lasts on the server's local clock (default 10s; at most 1h).
    #[serde(default = "default_ttl")]
    pub ttl: Duration,
    /// Sync each grant, release and expiry to disk before answering (default true). With false
    /// the record is written but never synced: a crash loses every grant and token since boot,
    /// so the restarted server may grant again, with a reused token, while the old holder holds.
    #[serde(default = "crate::scenario::yes")]
    pub sync_grants: bool,
    /// After a restart (not the first boot), answer `busy` to every acquire for this long on the
    /// local clock (default 0s, at most 1h): antirez's delayed restart for Redlock, so a server
    /// that forgot its grants (`sync_grants = false`) cannot grant a lock someone may still
    /// hold. Safe when at least the longest TTL a client may still hold.
    #[serde(default)]
    pub restart_delay: Duration,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<ServerBug>,
}

fn default_ttl() -> Duration {
    Duration::from_secs(10)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            ttl: default_ttl(),
            sync_grants: true,
            restart_delay: Duration(0),
            bugs: Vec::new(),
        }
    }
}

impl ServerConfig {
    /// Every problem with these options (none: valid). `ttl` must be positive and at most 1h,
    /// `restart_delay` at most 1h.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        check_duration(&mut errors, "ttl", self.ttl, false);
        check_duration(&mut errors, "restart_delay", self.restart_delay, true);
        errors
    }

    fn bug(&self, bug: ServerBug) -> bool {
        self.bugs.contains(&bug)
    }
}

/// The current grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Grant {
    client: NodeId,
    value: u64,
    token: u64,
    /// Deadline on the server's local clock.
    expires_local_ns: i64,
}

/// What the server keeps on disk: one record, so the token counter and the grant are synced
/// together.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct State {
    last_token: u64,
    holder: Option<Grant>,
}

/// The lock server process. Build a fresh one at boot and after every restart; its state comes
/// back from the disk record [`STATE_KEY`].
#[derive(Debug)]
pub struct LockServer {
    id: NodeId,
    config: ServerConfig,
    state: State,
    expiry_timer: Option<TimerId>,
    /// Until this local time (ns) every acquire is answered `busy` (`restart_delay`).
    busy_until_local_ns: i64,
}

impl LockServer {
    /// A lock server on node `id` with `config` (validated by [`ServerConfig::validate`]).
    pub fn new(id: NodeId, config: ServerConfig) -> Self {
        LockServer {
            id,
            config,
            state: State::default(),
            expiry_timer: None,
            busy_until_local_ns: i64::MIN,
        }
    }

    /// The node this server runs on.
    pub fn id(&self) -> NodeId {
        self.id
    }

    fn persist(&self, ctx: &mut Context<'_>) {
        write_record(ctx.disk(), STATE_KEY, &self.state, self.config.sync_grants);
    }

    /// Arms the expiry timer for the current grant, for what remains of it on the local clock.
    fn arm_expiry(&mut self, ctx: &mut Context<'_>) {
        if let Some(t) = self.expiry_timer.take() {
            ctx.cancel_timer(t);
        }
        if let Some(g) = &self.state.holder {
            let remaining_ns = (g.expires_local_ns - ctx.local_time_ns()).max(0) as u64;
            let token = g.token;
            self.expiry_timer = Some(ctx.set_timer(
                std::time::Duration::from_nanos(remaining_ns),
                Timer::Expire { token },
            ));
        }
    }

    /// Ends the current grant if its deadline has passed on the local clock.
    fn expire_if_due(&mut self, ctx: &mut Context<'_>) {
        let due = self
            .state
            .holder
            .as_ref()
            .is_some_and(|g| ctx.local_time_ns() >= g.expires_local_ns);
        if due {
            let g = self.state.holder.take().expect("checked above");
            if let Some(t) = self.expiry_timer.take() {
                ctx.cancel_timer(t);
            }
            self.persist(ctx);
            ctx.observe(Observation::Expired {
                client: g.client,
                token: g.token,
            });
        }
    }

    fn on_acquire(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        request: u64,
        value: u64,
        client_now_ns: i64,
    ) {
        self.expire_if_due(ctx);
        if ctx.local_time_ns() < self.busy_until_local_ns {
            ctx.send(client, Message::Busy { request });
            return;
        }
        if let Some(g) = &self.state.holder {
            if g.client == client && g.value == value {
                // A duplicate of the acquire that got this grant: answer it the same way.
                let token = g.token;
                let ttl_ns = self.config.ttl.as_nanos();
                ctx.send(
                    client,
                    Message::Granted {
                        request,
                        token,
                        ttl_ns,
                    },
                );
            } else {
                ctx.send(client, Message::Busy { request });
            }
            return;
        }
        let ttl_ns = self.config.ttl.as_nanos();
        let base_ns = if self.config.bug(ServerBug::ExpiryByClientClock) {
            client_now_ns
        } else {
            ctx.local_time_ns()
        };
        let expires_local_ns = base_ns.saturating_add(ttl_ns as i64);
        self.state.last_token += 1;
        let token = self.state.last_token;
        self.state.holder = Some(Grant {
            client,
            value,
            token,
            expires_local_ns,
        });
        self.persist(ctx);
        ctx.observe(Observation::Granted {
            client,
            token,
            ttl_ns,
            expires_local_ns,
        });
        self.arm_expiry(ctx);
        ctx.send(
            client,
            Message::Granted {
                request,
                token,
                ttl_ns,
            },
        );
    }

    fn on_release(
        &mut self,
        ctx: &mut Context<'_>,
        client: NodeId,
        request: u64,
        value: u64,
        token: u64,
    ) {
        self.expire_if_due(ctx);
        let owner = self
            .state
            .holder
            .as_ref()
            .is_some_and(|g| g.client == client && g.value == value);
        let unchecked = self.config.bug(ServerBug::ReleaseWithoutOwnerCheck);
        if owner || (unchecked && self.state.holder.is_some()) {
            let g = self.state.holder.take().expect("checked above");
            if let Some(t) = self.expiry_timer.take() {
                ctx.cancel_timer(t);
            }
            self.persist(ctx);
            ctx.observe(Observation::Released {
                client: g.client,
                token: g.token,
            });
            ctx.send(client, Message::Released { request });
        } else if unchecked {
            // Nothing held: the buggy compare-free delete succeeds on a missing key.
            ctx.send(client, Message::Released { request });
        } else {
            ctx.observe(Observation::RefusedRelease { client, token });
            ctx.send(client, Message::NotOwner { request });
        }
    }
}

impl Process for LockServer {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let boots = next_incarnation(ctx.disk(), BOOTS_KEY);
        if boots > 0 && !self.config.bug(ServerBug::ForgetfulRestart) {
            self.busy_until_local_ns = ctx
                .local_time_ns()
                .saturating_add(self.config.restart_delay.as_nanos() as i64);
        }
        self.state = read_record(ctx.disk(), STATE_KEY).unwrap_or_default();
        ctx.observe(Observation::Restored {
            last_token: self.state.last_token,
            holder: self.state.holder.as_ref().map(|g| (g.client, g.token)),
        });
        self.expiry_timer = None;
        self.arm_expiry(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        match message {
            Message::Acquire {
                request,
                value,
                client_now_ns,
            } => self.on_acquire(ctx, from, request, value, client_now_ns),
            Message::Release {
                request,
                value,
                token,
            } => self.on_release(ctx, from, request, value, token),
            // Replies and storage traffic are not for a lock server.
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Timer) {
        let Timer::Expire { token } = timer else {
            return;
        };
        if self.expiry_timer != Some(id) {
            return; // a timer of a grant that already ended
        }
        self.expiry_timer = None;
        if self.state.holder.as_ref().is_some_and(|g| g.token == token) {
            self.expire_if_due(ctx);
            // A backward clock jump can fire the timer before the deadline: wait for the rest.
            if self.state.holder.is_some() {
                self.arm_expiry(ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::lock::{observed, sent, timers};
    use crate::process::TestContext;

    const SERVER: NodeId = NodeId(0);
    const C1: NodeId = NodeId(2);
    const C2: NodeId = NodeId(3);
    const SEC: i64 = 1_000_000_000;

    fn acquire(request: u64, value: u64) -> Message {
        Message::Acquire {
            request,
            value,
            client_now_ns: 0,
        }
    }

    fn release(request: u64, value: u64, token: u64) -> Message {
        Message::Release {
            request,
            value,
            token,
        }
    }

    fn started(config: ServerConfig) -> (LockServer, TestContext) {
        let mut tc = TestContext::new(SERVER, 1);
        let mut s = LockServer::new(SERVER, config);
        s.on_start(&mut tc.ctx());
        tc.take_effects();
        (s, tc)
    }

    fn granted_token(tc: &mut TestContext) -> Option<u64> {
        sent(&tc.take_effects())
            .into_iter()
            .find_map(|(_, m)| match m {
                Message::Granted { token, .. } => Some(token),
                _ => None,
            })
    }

    #[test]
    fn grants_a_free_lock_with_token_one_and_an_expiry_timer_of_ttl() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        let effects = tc.take_effects();
        assert_eq!(
            sent(&effects),
            vec![(
                C1,
                Message::Granted {
                    request: 1,
                    token: 1,
                    ttl_ns: 10 * SEC as u64
                }
            )]
        );
        assert_eq!(
            observed(&effects),
            vec![Observation::Granted {
                client: C1,
                token: 1,
                ttl_ns: 10 * SEC as u64,
                expires_local_ns: 10 * SEC
            }]
        );
        let t = timers(&effects);
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].1, &t[0].2),
            (10 * SEC as u64, &Timer::Expire { token: 1 })
        );
    }

    #[test]
    fn answers_busy_while_another_client_holds() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        tc.local_time_ns = 5 * SEC;
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(
            sent(&tc.take_effects()),
            vec![(C2, Message::Busy { request: 1 })]
        );
    }

    #[test]
    fn token_increases_with_every_grant() {
        let (mut s, mut tc) = started(ServerConfig::default());
        let mut tokens = Vec::new();
        for (i, client) in [C1, C2, C1].into_iter().enumerate() {
            let value = 100 + i as u64;
            s.on_message(&mut tc.ctx(), client, acquire(i as u64, value));
            let token = granted_token(&mut tc).expect("granted");
            tokens.push(token);
            s.on_message(
                &mut tc.ctx(),
                client,
                Message::Release {
                    request: 9,
                    value,
                    token,
                },
            );
            tc.take_effects();
        }
        assert_eq!(tokens, vec![1, 2, 3]);
    }

    #[test]
    fn synced_grant_and_token_survive_a_crash() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        tc.crash();
        let mut s = LockServer::new(SERVER, ServerConfig::default());
        s.on_start(&mut tc.ctx());
        let effects = tc.take_effects();
        assert_eq!(
            observed(&effects),
            vec![Observation::Restored {
                last_token: 1,
                holder: Some((C1, 1))
            }]
        );
        assert_eq!(timers(&effects)[0].2, Timer::Expire { token: 1 });
        // Still held by C1 after the restart.
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(
            sent(&tc.take_effects()),
            vec![(C2, Message::Busy { request: 1 })]
        );
        // After expiry the next grant gets a higher token than before the crash.
        tc.local_time_ns = 11 * SEC;
        s.on_message(&mut tc.ctx(), C2, acquire(2, 88));
        assert_eq!(granted_token(&mut tc), Some(2));
    }

    #[test]
    fn unsynced_grant_is_lost_on_crash_and_the_lock_is_granted_again_with_a_reused_token() {
        let config = ServerConfig {
            sync_grants: false,
            ..ServerConfig::default()
        };
        let (mut s, mut tc) = started(config.clone());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        assert_eq!(granted_token(&mut tc), Some(1));
        tc.crash();
        let mut s = LockServer::new(SERVER, config);
        s.on_start(&mut tc.ctx());
        tc.take_effects();
        tc.local_time_ns = SEC; // well within C1's TTL
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(granted_token(&mut tc), Some(1));
    }

    /// A server without synced grants, restarted at `restart_ns` with `config` after granting
    /// to C1 at 0; returns the token C2 gets (if any) asking at `ask_ns`.
    fn forgetful_restart(config: ServerConfig, restart_ns: i64, ask_ns: i64) -> Option<u64> {
        let (mut s, mut tc) = started(config.clone());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        assert_eq!(granted_token(&mut tc), Some(1));
        tc.crash();
        tc.local_time_ns = restart_ns;
        let mut s = LockServer::new(SERVER, config);
        s.on_start(&mut tc.ctx());
        tc.take_effects();
        tc.local_time_ns = ask_ns;
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        granted_token(&mut tc)
    }

    #[test]
    fn restart_delay_answers_busy_after_a_restart_for_that_long() {
        let config = ServerConfig {
            sync_grants: false,
            restart_delay: Duration::from_secs(10),
            ..ServerConfig::default()
        };
        assert_eq!(forgetful_restart(config.clone(), SEC, 2 * SEC), None);
        assert_eq!(forgetful_restart(config.clone(), SEC, 11 * SEC - 1), None);
        assert_eq!(forgetful_restart(config, SEC, 11 * SEC), Some(1));
    }

    #[test]
    fn restart_delay_does_not_apply_to_the_first_boot() {
        let (mut s, mut tc) = started(ServerConfig {
            restart_delay: Duration::from_secs(10),
            ..ServerConfig::default()
        });
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        assert_eq!(granted_token(&mut tc), Some(1));
    }

    #[test]
    fn bug_forgetful_restart_grants_at_once_after_a_restart() {
        let config = ServerConfig {
            sync_grants: false,
            restart_delay: Duration::from_secs(10),
            bugs: vec![ServerBug::ForgetfulRestart],
            ..ServerConfig::default()
        };
        assert_eq!(forgetful_restart(config, SEC, 2 * SEC), Some(1));
    }

    #[test]
    fn release_by_the_owner_frees_the_lock() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C1, release(2, 77, 1));
        let effects = tc.take_effects();
        assert_eq!(sent(&effects), vec![(C1, Message::Released { request: 2 })]);
        assert_eq!(
            observed(&effects),
            vec![Observation::Released {
                client: C1,
                token: 1
            }]
        );
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(granted_token(&mut tc), Some(2));
    }

    #[test]
    fn release_by_a_non_owner_is_refused() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C2, release(5, 88, 1));
        let effects = tc.take_effects();
        assert_eq!(sent(&effects), vec![(C2, Message::NotOwner { request: 5 })]);
        assert_eq!(
            observed(&effects),
            vec![Observation::RefusedRelease {
                client: C2,
                token: 1
            }]
        );
        s.on_message(&mut tc.ctx(), C2, acquire(6, 88));
        assert_eq!(
            sent(&tc.take_effects()),
            vec![(C2, Message::Busy { request: 6 })]
        );
    }

    #[test]
    fn release_with_the_right_client_but_an_old_value_is_refused() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C1, release(2, 76, 0));
        assert_eq!(
            sent(&tc.take_effects()),
            vec![(C1, Message::NotOwner { request: 2 })]
        );
    }

    #[test]
    fn bug_release_without_owner_check_lets_any_client_free_the_lock() {
        let (mut s, mut tc) = started(ServerConfig {
            bugs: vec![ServerBug::ReleaseWithoutOwnerCheck],
            ..ServerConfig::default()
        });
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C2, release(5, 88, 0));
        let effects = tc.take_effects();
        assert_eq!(sent(&effects), vec![(C2, Message::Released { request: 5 })]);
        assert_eq!(
            observed(&effects),
            vec![Observation::Released {
                client: C1,
                token: 1
            }]
        );
    }

    #[test]
    fn grant_expires_when_its_timer_fires_on_the_local_clock() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        let (id, _, timer) = timers(&tc.take_effects()).remove(0);
        tc.local_time_ns = 10 * SEC;
        s.on_timer(&mut tc.ctx(), id, timer);
        assert_eq!(
            observed(&tc.take_effects()),
            vec![Observation::Expired {
                client: C1,
                token: 1
            }]
        );
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(granted_token(&mut tc), Some(2));
    }

    #[test]
    fn forward_clock_jump_on_the_server_ends_the_grant_early() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        let (id, _, timer) = timers(&tc.take_effects()).remove(0);
        // 1s of global time later the server's clock jumps 20s ahead; the timer fires at once.
        tc.local_time_ns = 21 * SEC;
        s.on_timer(&mut tc.ctx(), id, timer);
        assert_eq!(
            observed(&tc.take_effects()),
            vec![Observation::Expired {
                client: C1,
                token: 1
            }]
        );
    }

    #[test]
    fn forward_clock_jump_is_noticed_by_an_acquire_before_the_timer_fires() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        tc.local_time_ns = 21 * SEC;
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        let effects = tc.take_effects();
        assert_eq!(
            observed(&effects)[0],
            Observation::Expired {
                client: C1,
                token: 1
            }
        );
        assert!(sent(&effects).contains(&(
            C2,
            Message::Granted {
                request: 1,
                token: 2,
                ttl_ns: 10 * SEC as u64
            }
        )));
    }

    #[test]
    fn timer_fired_early_after_a_backward_jump_rearms_for_the_rest() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        let (id, _, timer) = timers(&tc.take_effects()).remove(0);
        tc.local_time_ns = 7 * SEC;
        s.on_timer(&mut tc.ctx(), id, timer);
        let effects = tc.take_effects();
        assert!(observed(&effects).is_empty());
        let t = timers(&effects);
        assert_eq!(
            (t[0].1, &t[0].2),
            (3 * SEC as u64, &Timer::Expire { token: 1 })
        );
    }

    #[test]
    fn bug_expiry_by_client_clock_ends_the_grant_at_once_for_a_client_clock_behind() {
        let (mut s, mut tc) = started(ServerConfig {
            bugs: vec![ServerBug::ExpiryByClientClock],
            ..ServerConfig::default()
        });
        tc.local_time_ns = 100 * SEC;
        // The client's clock reads 80s: 20s behind the server's.
        s.on_message(
            &mut tc.ctx(),
            C1,
            Message::Acquire {
                request: 1,
                value: 77,
                client_now_ns: 80 * SEC,
            },
        );
        let effects = tc.take_effects();
        assert_eq!(
            observed(&effects),
            vec![Observation::Granted {
                client: C1,
                token: 1,
                ttl_ns: 10 * SEC as u64,
                expires_local_ns: 90 * SEC
            }]
        );
        assert_eq!(timers(&effects)[0].1, 0, "the expiry timer fires at once");
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(granted_token(&mut tc), Some(2));
    }

    #[test]
    fn correct_server_ignores_the_client_clock() {
        let (mut s, mut tc) = started(ServerConfig::default());
        tc.local_time_ns = 100 * SEC;
        s.on_message(
            &mut tc.ctx(),
            C1,
            Message::Acquire {
                request: 1,
                value: 77,
                client_now_ns: 80 * SEC,
            },
        );
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C2, acquire(1, 88));
        assert_eq!(
            sent(&tc.take_effects()),
            vec![(C2, Message::Busy { request: 1 })]
        );
    }

    #[test]
    fn duplicate_acquire_of_the_holder_is_answered_with_the_same_grant() {
        let (mut s, mut tc) = started(ServerConfig::default());
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        tc.take_effects();
        s.on_message(&mut tc.ctx(), C1, acquire(1, 77));
        let effects = tc.take_effects();
        assert!(observed(&effects).is_empty());
        assert_eq!(
            granted_token(&mut TestContext {
                effects,
                ..TestContext::new(SERVER, 1)
            }),
            Some(1)
        );
    }

    #[test]
    fn config_rejects_zero_ttl_and_unknown_keys() {
        let zero = ServerConfig {
            ttl: Duration(0),
            ..ServerConfig::default()
        };
        assert_eq!(zero.validate()[0].path, ["ttl"]);
        let long = ServerConfig {
            restart_delay: Duration::from_secs(3601),
            ..ServerConfig::default()
        };
        assert_eq!(long.validate()[0].path, ["restart_delay"]);
        assert!(ServerConfig::default().validate().is_empty());
        assert!(toml::from_str::<ServerConfig>("tll = \"1s\"").is_err());
        let parsed: ServerConfig =
            toml::from_str("ttl = \"2s\"\nbugs = [\"expiry-by-client-clock\"]").unwrap();
        assert_eq!(parsed.ttl, Duration::from_secs(2));
        assert_eq!(parsed.bugs, vec![ServerBug::ExpiryByClientClock]);
        assert!(parsed.sync_grants);
    }
}
