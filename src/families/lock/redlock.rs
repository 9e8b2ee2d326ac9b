//! Redlock (the `redlock` workload): a lock client that takes the same lock on N independent
//! single-instance lock servers and holds it only if a majority granted it in time. See the
//! family docs in [`crate::families::lock`] and `docs/locks.md`, "Redlock".
//!
//! Sources: the Redis documentation, "Distributed Locks with Redis", section "The Redlock
//! algorithm" (the steps, the validity time, the clock drift allowance, releasing on every
//! instance, delayed restarts); M. Kleppmann, "How to do distributed locking" (2016), for why
//! Redlock has no fencing token and depends on bounded pauses and clock drift; S. Sanfilippo
//! (antirez), "Is Redlock safe?" (2016), for the reply and the delayed restart.
//!
//! # Algorithm (one acquisition attempt)
//!
//! 1. Take the local time `t0` and a fresh random `value`.
//! 2. Send `Acquire { value }` (`SET key value NX PX ttl`) to all N servers of the `lock-server`
//!    role at once. Each answer must arrive within `server_timeout` of `t0` (small next to the
//!    TTL, so an unreachable server does not eat the validity time); a server that has not
//!    answered by then counts as not granted.
//! 3. When every server has answered, or `server_timeout` has passed: let `granted` be the
//!    servers that answered `granted`, `ttl` the smallest TTL among their grants, `elapsed` the
//!    local time since `t0`, `drift = ttl * drift_factor + 2 ms` (the docs' allowance for clock
//!    drift between the client and the servers), and `validity = ttl - elapsed - drift`. The
//!    client holds the lock if `|granted| >= N/2 + 1` **and** `validity > 0`.
//! 4. Otherwise the attempt fails: release on **all** N servers (also those that seemed not to
//!    grant: a grant may have been lost on its way back), then retry after a random back-off
//!    (the `lock` client's `retry_delay_min`/`retry_delay_max`).
//! 5. Holding works as for the single-instance client ([`super::client::LockClient`]): `hold`
//!    of local time with `writes_per_hold` writes to the fenced storage, then a release sent to
//!    all N servers. The client's belief ends at the earlier of its release and `t0 + ttl -
//!    drift` on its local clock (the end of the validity time): after that it writes nothing.
//!
//! # Invariants and what they rest on
//!
//! - **Majority.** Two clients that both hold must have been granted by a common server (two
//!   majorities intersect), so that server granted twice while the first grant was valid on its
//!   clock. That can only happen if the server's grant ended early in real time: its clock
//!   jumped or ran fast (bounded clock drift is assumed), or it restarted without the grant
//!   (persistence or a delayed restart of at least the TTL is assumed, server option
//!   `restart_delay`), or the first client believed longer than the servers' TTL in real
//!   time (a pause after the validity check, or a client clock running slow: no long pauses is
//!   assumed). The scenarios in `scenarios/locks/redlock-*.toml` break each assumption.
//! - **Validity.** The belief ends `drift` before the earliest server grant could end, measured
//!   from `t0` (before any server received the acquire), so with drift within `drift_factor`
//!   and no pause it ends before every granting server's deadline.
//! - **Fencing token.** Redlock has none (Kleppmann's point): each server counts its own grants.
//!   The client writes with the *largest* token its granting servers gave. That is monotonic
//!   between successive holders only while their majorities share servers whose counters have
//!   seen every earlier grant; servers that missed grants (partitioned, restarted, or left
//!   holding a failed attempt's partial grant) fall behind, and then a later holder may write
//!   with a smaller or an equal token than an earlier one. The storage then refuses a correct
//!   holder's writes or accepts two holders' writes under one token; `fenced-writes` reports the
//!   latter. Fencing with these tokens is a heuristic, not a guarantee.
//!
//! # Options (a `redlock` client group; unknown keys are errors)
//!
//! Every option of the `lock` workload ([`ClientConfig`]) except `validity_check` (Redlock always
//! checks its validity), plus [`RedlockOptions`]: `server_timeout` (`"50ms"`), `drift_factor`
//! (0.01), `bugs` ([`RedlockBug`] names). A group talks to one `lock-server` role (all of its
//! nodes; N odd, typically 5) and one `fenced-storage` role (one node, round robin by client
//! index).
//!
//! # History
//!
//! As the `lock` client's: one `acquire` per attempt (ok with the token; fail with
//! `no-majority: k of N granted` or `validity-expired`), `write`, and one `release` per hold
//! (ok once a majority released, fail `not-owner` once a majority can no longer release, info on
//! `request_timeout`). The release of a failed attempt is not an operation: the attempt already
//! failed.

use serde::{Deserialize, Serialize};

use super::client::ClientConfig;
use super::{
    BUGS, FENCED_STORAGE, LOCK_SERVER, LockClient, Message, OptionError, check_duration,
    lock_and_storage, pick,
};
use crate::family::{self, Bug, Configured, HistoryTraits, NodeSetup, RoleContext, WorkloadInfo};
use crate::history::ModelKind;
use crate::process::{Context, NodeId};
use crate::scenario::Duration;

/// The Redlock workload's name.
pub const REDLOCK_WORKLOAD_NAME: &str = "redlock";

/// The smallest clock drift allowance, added to `ttl * drift_factor` (the Redis docs' 2 ms).
pub const MIN_DRIFT_NS: u64 = 2_000_000;

/// The options of a `redlock` group that the `lock` workload does not have.
const REDLOCK_KEYS: [&str; 3] = ["server_timeout", "drift_factor", "bugs"];

/// Planted bugs of the Redlock client (`bugs = [...]` in its group's options).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RedlockBug {
    /// Holds even when the validity time is not positive (a lock whose TTL ran out while it was
    /// being acquired), and keeps believing past the end of the validity time.
    #[serde(rename = "redlock-no-validity-check")]
    NoValidityCheck,
    /// Holds with fewer than a majority of grants (at least one).
    #[serde(rename = "redlock-minority-ok")]
    MinorityOk,
}

impl RedlockBug {
    /// Its entry in [`BUGS`].
    pub fn info(self) -> &'static Bug {
        match self {
            RedlockBug::NoValidityCheck => &BUGS[4],
            RedlockBug::MinorityOk => &BUGS[5],
        }
    }
}

/// Redlock's own options (the rest of a `redlock` group's options are a [`ClientConfig`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedlockOptions {
    /// How long after sending its acquires the client waits for the servers' answers; a server
    /// that has not answered by then counts as not granted (default 50ms; positive, at most 1h;
    /// keep it small next to the TTL).
    #[serde(default = "default_server_timeout")]
    pub server_timeout: Duration,
    /// The clock drift allowance per unit of TTL: `drift = ttl * drift_factor + 2ms` (default
    /// 0.01, the Redis docs'; from 0 to below 1).
    #[serde(default = "default_drift_factor")]
    pub drift_factor: f64,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<RedlockBug>,
}

fn default_server_timeout() -> Duration {
    Duration::from_millis(50)
}
fn default_drift_factor() -> f64 {
    0.01
}

impl Default for RedlockOptions {
    fn default() -> Self {
        RedlockOptions {
            server_timeout: default_server_timeout(),
            drift_factor: default_drift_factor(),
            bugs: Vec::new(),
        }
    }
}

impl RedlockOptions {
    fn bug(&self, bug: RedlockBug) -> bool {
        self.bugs.contains(&bug)
    }
}

/// The options of a `redlock` client group: the `lock` client's and Redlock's own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RedlockConfig {
    /// Hold, writes, think time, timeouts, back-off, start and stop, as for a `lock` client.
    pub client: ClientConfig,
    /// Server timeout, drift factor and bugs.
    pub redlock: RedlockOptions,
}

impl RedlockConfig {
    /// Reads a group's options table: Redlock's keys ([`RedlockOptions`]) and the rest as a
    /// [`ClientConfig`]. Errors name the key.
    pub fn parse(options: &toml::Table) -> Result<Self, Vec<OptionError>> {
        let (own, rest): (toml::Table, toml::Table) = options
            .clone()
            .into_iter()
            .partition(|(k, _)| REDLOCK_KEYS.contains(&k.as_str()));
        // An unknown key is reported by the `lock` client's options: name Redlock's keys there.
        let client = family::parse_options::<ClientConfig>(&rest).map_err(|errors| {
            let mut errors = errors;
            for e in errors.iter_mut().filter(|e| e.at_key) {
                e.message = e.message.replace(
                    "`validity_check`",
                    "`server_timeout`, `drift_factor`, `bugs`",
                );
            }
            errors
        });
        match (client, family::parse_options::<RedlockOptions>(&own)) {
            (Ok(client), Ok(redlock)) => Ok(RedlockConfig { client, redlock }),
            (client, redlock) => Err(client
                .err()
                .into_iter()
                .chain(redlock.err())
                .flatten()
                .collect()),
        }
    }

    /// The options with every default filled in (the resolved scenario shows them).
    pub fn resolved(&self) -> toml::Table {
        let mut table = family::resolved_options(&self.client);
        table.remove("validity_check");
        table.extend(family::resolved_options(&self.redlock));
        table
    }

    /// Every problem with these options (none: valid): the `lock` client's rules, no
    /// `validity_check` (always on), `server_timeout` positive and at most 1h, `drift_factor` in
    /// `[0, 1)`.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = self.client.validate();
        if self.client.validity_check {
            errors.push(OptionError::at(
                "validity_check",
                "a redlock client always ends its hold at its validity time; leave validity_check out (the planted bug redlock-no-validity-check switches the check off)",
            ));
        }
        let r = &self.redlock;
        check_duration(&mut errors, "server_timeout", r.server_timeout, false);
        if !(r.drift_factor.is_finite() && (0.0..1.0).contains(&r.drift_factor)) {
            errors.push(OptionError::at(
                "drift_factor",
                format!(
                    "expected a number from 0 to below 1, found {}",
                    r.drift_factor
                ),
            ));
        }
        errors
    }
}

/// The `redlock` workload: Redlock clients over N lock servers, writing to a fenced storage. Its
/// acquire/release history follows the mutex model.
pub const REDLOCK_WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: REDLOCK_WORKLOAD_NAME,
    summary: "Redlock: acquire on all N lock servers, hold if a majority granted within the validity time (TTL - elapsed - drift), release on all",
    history: HistoryTraits {
        model: Some(ModelKind::Mutex),
        availability: false,
        stale_reads: false,
    },
    bugs: &[BUGS[4], BUGS[5]],
    configure: configure_redlock,
};

/// A `redlock` group talks to one `lock-server` role (every node of it) and one
/// `fenced-storage` role (one node per client, round robin).
fn configure_redlock(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let config = RedlockConfig::parse(ctx.options)?;
    let (lock, storage) = lock_and_storage(ctx, config.validate())?;
    debug_assert_eq!(ctx.talks_to[lock].name, LOCK_SERVER.name);
    debug_assert_eq!(ctx.talks_to[storage].name, FENCED_STORAGE.name);
    Ok(Configured {
        options: config.resolved(),
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            let servers = setup.talks_to[lock].1.clone();
            Box::new(LockClient::redlock(
                setup.id,
                servers,
                pick(setup, storage),
                config.clone(),
            ))
        }),
    })
}

/// One server's answer to the request in flight.
#[derive(Copy, Clone, Debug, PartialEq)]
enum Answer {
    Granted { token: u64, ttl_ns: u64 },
    Busy,
    Released,
    NotOwner,
}

/// What one acquisition attempt comes to ([`decide`]).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Hold with `token` (the largest granted). The belief ends `valid_ns` after the acquire
    /// was sent (`ttl - drift`), or never by validity (`None`: `redlock-no-validity-check`).
    Hold {
        /// The fencing token to write with.
        token: u64,
        /// Nanoseconds after sending during which the lock is valid.
        valid_ns: Option<u64>,
    },
    /// The attempt failed: release on all servers and back off. `why` is the history error.
    Fail {
        /// `no-majority: k of N granted` or `validity-expired: ...`.
        why: String,
    },
}

/// Redlock's decision (step 3 of the module docs): `servers` is N, `grants` the `(token,
/// ttl_ns)` of every grant received in time, `elapsed_ns` the local time since sending.
pub fn decide(
    servers: usize,
    grants: &[(u64, u64)],
    elapsed_ns: u64,
    options: &RedlockOptions,
) -> Outcome {
    let majority = servers / 2 + 1;
    let needed = if options.bug(RedlockBug::MinorityOk) {
        1
    } else {
        majority
    };
    let (Some(token), Some(ttl_ns)) = (
        grants.iter().map(|g| g.0).max(),
        grants.iter().map(|g| g.1).min(),
    ) else {
        return Outcome::Fail {
            why: format!("no-majority: 0 of {servers} granted"),
        };
    };
    if grants.len() < needed {
        return Outcome::Fail {
            why: format!("no-majority: {} of {servers} granted", grants.len()),
        };
    }
    let valid_ns = ttl_ns.saturating_sub(drift_ns(ttl_ns, options.drift_factor));
    if options.bug(RedlockBug::NoValidityCheck) {
        return Outcome::Hold {
            token,
            valid_ns: None,
        };
    }
    if valid_ns <= elapsed_ns {
        return Outcome::Fail {
            why: format!(
                "validity-expired: ttl {ttl_ns} ns - elapsed {elapsed_ns} ns - drift {} ns is not positive",
                ttl_ns - valid_ns
            ),
        };
    }
    Outcome::Hold {
        token,
        valid_ns: Some(valid_ns),
    }
}

/// The clock drift allowance for `ttl_ns`: `ttl * drift_factor + 2 ms`, in nanoseconds.
pub fn drift_ns(ttl_ns: u64, drift_factor: f64) -> u64 {
    ((ttl_ns as f64 * drift_factor) as u64).saturating_add(MIN_DRIFT_NS)
}

/// A Redlock client's servers and the answers to its request in flight (kept by
/// [`LockClient`]).
#[derive(Clone, Debug)]
pub(super) struct Quorum {
    servers: Vec<NodeId>,
    options: RedlockOptions,
    /// First answer of each server to the request in flight, in arrival order.
    answers: Vec<(NodeId, Answer)>,
}

impl Quorum {
    pub(super) fn new(servers: Vec<NodeId>, options: RedlockOptions) -> Self {
        Quorum {
            servers,
            options,
            answers: Vec::new(),
        }
    }

    /// How long an acquire waits for the servers' answers.
    pub(super) fn server_timeout(&self) -> Duration {
        self.options.server_timeout
    }

    fn majority(&self) -> usize {
        self.servers.len() / 2 + 1
    }

    /// Sends `message` to every server and forgets the answers to the previous request.
    pub(super) fn send_to_all(&mut self, ctx: &mut Context<'_>, message: Message) {
        self.answers.clear();
        for &server in &self.servers {
            ctx.send(server, message.clone());
        }
    }

    /// Records `from`'s answer to the request in flight. `None`: not a lock server's answer
    /// (a storage answer, for the caller to handle); `Some(true)`: the request's outcome is
    /// decided (every server answered an acquire; a majority released, or can no longer);
    /// `Some(false)`: wait for more answers.
    pub(super) fn record(&mut self, from: NodeId, message: &Message) -> Option<bool> {
        let answer = match *message {
            Message::Granted { token, ttl_ns, .. } => Answer::Granted { token, ttl_ns },
            Message::Busy { .. } => Answer::Busy,
            Message::Released { .. } => Answer::Released,
            Message::NotOwner { .. } => Answer::NotOwner,
            _ => return None,
        };
        if self.servers.contains(&from) && !self.answers.iter().any(|(s, _)| *s == from) {
            self.answers.push((from, answer));
        }
        Some(match answer {
            Answer::Released | Answer::NotOwner => self.release_outcome().is_some(),
            Answer::Granted { .. } | Answer::Busy => self.answers.len() == self.servers.len(),
        })
    }

    /// The outcome of the acquire in flight, `elapsed_ns` after it was sent, from the answers
    /// so far (a server that has not answered did not grant).
    pub(super) fn acquire_outcome(&self, elapsed_ns: u64) -> Outcome {
        let grants: Vec<(u64, u64)> = self
            .answers
            .iter()
            .filter_map(|(_, a)| match *a {
                Answer::Granted { token, ttl_ns } => Some((token, ttl_ns)),
                _ => None,
            })
            .collect();
        decide(self.servers.len(), &grants, elapsed_ns, &self.options)
    }

    /// The outcome of the release in flight: `Some(true)` once a majority released, `Some(false)`
    /// once more than N - majority refused (a majority can no longer release), else `None`.
    pub(super) fn release_outcome(&self) -> Option<bool> {
        let count = |a: Answer| self.answers.iter().filter(|(_, x)| *x == a).count();
        if count(Answer::Released) >= self.majority() {
            Some(true)
        } else if count(Answer::NotOwner) > self.servers.len() - self.majority() {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::families::lock::{Observation, StopReason, Timer, observed, sent, timers};
    use crate::history::{EventType, Function};
    use crate::process::{Effect, Process, TestContext, TimerId};

    const SERVERS: [NodeId; 5] = [NodeId(0), NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
    const STORAGE: NodeId = NodeId(5);
    const ME: NodeId = NodeId(6);
    const MS: u64 = 1_000_000;
    const TTL: u64 = 10_000 * MS;

    fn options(bugs: Vec<RedlockBug>) -> RedlockOptions {
        RedlockOptions {
            bugs,
            ..RedlockOptions::default()
        }
    }

    #[test]
    fn decide_needs_a_majority_of_all_servers() {
        let o = options(vec![]);
        let three = [(4, TTL), (9, TTL), (2, TTL)];
        assert!(matches!(
            decide(5, &three, 10 * MS, &o),
            Outcome::Hold { token: 9, .. }
        ));
        assert_eq!(
            decide(5, &three[..2], 10 * MS, &o),
            Outcome::Fail {
                why: "no-majority: 2 of 5 granted".into()
            }
        );
        assert!(matches!(decide(5, &[], 0, &o), Outcome::Fail { .. }));
        // Bug: a minority (even one grant) is enough.
        assert!(matches!(
            decide(
                5,
                &three[..1],
                10 * MS,
                &options(vec![RedlockBug::MinorityOk])
            ),
            Outcome::Hold { token: 4, .. }
        ));
    }

    #[test]
    fn validity_is_ttl_minus_drift_from_the_send_and_must_outlast_the_elapsed_time() {
        let o = options(vec![]);
        // drift = 10s * 0.01 + 2ms = 102ms; valid for 9.898s after sending.
        assert_eq!(drift_ns(TTL, 0.01), 102 * MS);
        let grants = [(1, TTL), (1, TTL), (1, TTL)];
        assert_eq!(
            decide(5, &grants, 30 * MS, &o),
            Outcome::Hold {
                token: 1,
                valid_ns: Some(9_898 * MS)
            }
        );
        // The smallest TTL among the grants counts.
        let mixed = [(1, TTL), (1, 200 * MS), (1, TTL)];
        assert_eq!(
            decide(5, &mixed, 30 * MS, &o),
            Outcome::Hold {
                token: 1,
                valid_ns: Some(196 * MS)
            }
        );
        // Elapsed at or past ttl - drift: no lock.
        assert!(matches!(
            decide(5, &grants, 9_898 * MS, &o),
            Outcome::Fail { why } if why.starts_with("validity-expired")
        ));
        // Bug: held anyway, and without a validity end.
        assert_eq!(
            decide(
                5,
                &grants,
                20_000 * MS,
                &options(vec![RedlockBug::NoValidityCheck])
            ),
            Outcome::Hold {
                token: 1,
                valid_ns: None
            }
        );
    }

    fn client(bugs: Vec<RedlockBug>) -> (LockClient, TestContext) {
        let config = RedlockConfig {
            client: ClientConfig {
                writes_per_hold: 0,
                ..ClientConfig::default()
            },
            redlock: options(bugs),
        };
        let mut tc = TestContext::new(ME, 3);
        let mut c = LockClient::redlock(ME, SERVERS.to_vec(), STORAGE, config);
        c.on_start(&mut tc.ctx());
        let (id, _, t) = timers(&tc.take_effects()).remove(0);
        c.on_timer(&mut tc.ctx(), id, t);
        (c, tc)
    }

    fn history(effects: &[Effect]) -> Vec<(EventType, Function, Option<String>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some((h.kind, h.f, h.error.clone())),
                _ => None,
            })
            .collect()
    }

    /// The request number and value of the acquire (or release) sent to every server.
    fn sent_to_all(effects: &[Effect]) -> (u64, u64) {
        let msgs = sent(effects);
        let to: Vec<NodeId> = msgs.iter().map(|(to, _)| *to).collect();
        assert_eq!(to, SERVERS.to_vec(), "sent to every server: {msgs:?}");
        match msgs[0].1 {
            Message::Acquire { request, value, .. } | Message::Release { request, value, .. } => {
                assert!(
                    msgs.iter().all(|(_, m)| *m == msgs[0].1),
                    "the same message"
                );
                (request, value)
            }
            ref m => panic!("not an acquire or release: {m:?}"),
        }
    }

    fn grant(c: &mut LockClient, tc: &mut TestContext, server: usize, request: u64, token: u64) {
        let m = Message::Granted {
            request,
            token,
            ttl_ns: TTL,
        };
        c.on_message(&mut tc.ctx(), SERVERS[server], m);
    }

    #[test]
    fn acquire_goes_to_every_server_with_one_value_and_observes_acquiring() {
        let mut tc = TestContext::new(ME, 3);
        let mut c = LockClient::redlock(ME, SERVERS.to_vec(), STORAGE, RedlockConfig::default());
        c.on_start(&mut tc.ctx());
        let (id, _, t) = timers(&tc.take_effects()).remove(0);
        c.on_timer(&mut tc.ctx(), id, t);
        let e = tc.take_effects();
        sent_to_all(&e);
        assert_eq!(observed(&e), vec![Observation::Acquiring]);
        let timeout = timers(&e).remove(0);
        assert_eq!(
            timeout.1,
            50 * MS,
            "the acquire waits server_timeout, not request_timeout"
        );
    }

    #[test]
    fn a_majority_of_grants_in_time_holds_with_the_largest_token_until_the_validity_end() {
        let (mut c, mut tc) = client(vec![]);
        let (request, _) = sent_to_all(&tc.take_effects());
        tc.local_time_ns = 20 * MS as i64;
        for (server, token) in [(0, 7), (1, 9), (2, 8), (3, 1)] {
            grant(&mut c, &mut tc, server, request, token);
        }
        assert!(
            tc.take_effects().is_empty(),
            "4 of 5 answered: wait for the last until server_timeout"
        );
        c.on_message(&mut tc.ctx(), SERVERS[4], Message::Busy { request });
        let e = tc.take_effects();
        assert_eq!(observed(&e), vec![Observation::Holding { token: 9 }]);
        assert_eq!(history(&e), vec![(EventType::Ok, Function::Acquire, None)]);
        let validity = timers(&e)
            .into_iter()
            .find(|(_, _, t)| *t == Timer::ValidityEnd { token: 9 })
            .expect("a validity timer");
        // ttl - drift from the send (at 0), now 20ms later.
        assert_eq!(validity.1, 9_898 * MS - 20 * MS);
        tc.local_time_ns = 9_898 * MS as i64;
        c.on_timer(&mut tc.ctx(), validity.0, validity.2);
        assert_eq!(
            observed(&tc.take_effects()),
            vec![Observation::StoppedHolding {
                token: 9,
                why: StopReason::ValidityExpired
            }]
        );
    }

    #[test]
    fn too_few_grants_by_the_server_timeout_fail_and_release_on_every_server() {
        let (mut c, mut tc) = client(vec![]);
        let e = tc.take_effects();
        let (request, value) = sent_to_all(&e);
        grant(&mut c, &mut tc, 0, request, 1);
        grant(&mut c, &mut tc, 1, request, 1);
        c.on_message(&mut tc.ctx(), SERVERS[2], Message::Busy { request });
        assert!(tc.take_effects().is_empty());
        // Servers 3 and 4 never answer.
        tc.local_time_ns = 50 * MS as i64;
        c.on_timer(&mut tc.ctx(), TimerId(1), Timer::RequestTimeout { request });
        let e = tc.take_effects();
        let why = Some("no-majority: 2 of 5 granted".to_string());
        assert_eq!(history(&e), vec![(EventType::Fail, Function::Acquire, why)]);
        assert!(observed(&e).is_empty(), "never held");
        let (_, released) = sent_to_all(&e);
        assert_eq!(
            released, value,
            "released with the attempt's value on all five"
        );
        assert!(
            sent(&e)
                .iter()
                .all(|(_, m)| matches!(m, Message::Release { .. }))
        );
        assert_eq!(timers(&e)[0].2, Timer::Acquire, "then back off and retry");
        // A late grant of the failed attempt is ignored.
        grant(&mut c, &mut tc, 3, request, 1);
        assert!(tc.take_effects().is_empty());
    }

    #[test]
    fn a_majority_that_arrives_after_the_validity_time_is_no_lock_unless_the_bug_is_on() {
        for (bugs, holds) in [(vec![], false), (vec![RedlockBug::NoValidityCheck], true)] {
            let (mut c, mut tc) = client(bugs);
            let (request, _) = sent_to_all(&tc.take_effects());
            tc.local_time_ns = 10_000 * MS as i64; // answers took the whole TTL
            for server in 0..5 {
                grant(&mut c, &mut tc, server, request, 4);
            }
            let e = tc.take_effects();
            assert_eq!(
                observed(&e) == vec![Observation::Holding { token: 4 }],
                holds,
                "{e:?}"
            );
            let no_validity_end = !timers(&e)
                .iter()
                .any(|(_, _, t)| matches!(t, Timer::ValidityEnd { .. }));
            assert!(no_validity_end);
        }
    }

    #[test]
    fn a_minority_holds_only_with_the_bug() {
        for (bugs, holds) in [(vec![], false), (vec![RedlockBug::MinorityOk], true)] {
            let (mut c, mut tc) = client(bugs);
            let (request, _) = sent_to_all(&tc.take_effects());
            grant(&mut c, &mut tc, 0, request, 2);
            for &server in &SERVERS[1..] {
                c.on_message(&mut tc.ctx(), server, Message::Busy { request });
            }
            let e = tc.take_effects();
            assert_eq!(
                observed(&e) == vec![Observation::Holding { token: 2 }],
                holds
            );
        }
    }

    #[test]
    fn release_goes_to_every_server_and_is_ok_once_a_majority_released() {
        let (mut c, mut tc) = client(vec![]);
        let (request, value) = sent_to_all(&tc.take_effects());
        for server in 0..5 {
            grant(&mut c, &mut tc, server, request, 3);
        }
        let e = tc.take_effects();
        let hold_end = timers(&e)
            .into_iter()
            .find(|(_, _, t)| *t == Timer::HoldEnd { token: 3 })
            .expect("hold end");
        c.on_timer(&mut tc.ctx(), hold_end.0, hold_end.2);
        let e = tc.take_effects();
        let (release, released_value) = sent_to_all(&e);
        assert_eq!(released_value, value);
        assert_eq!(
            observed(&e),
            vec![Observation::StoppedHolding {
                token: 3,
                why: StopReason::Released
            }]
        );
        c.on_message(
            &mut tc.ctx(),
            SERVERS[0],
            Message::NotOwner { request: release },
        );
        c.on_message(
            &mut tc.ctx(),
            SERVERS[1],
            Message::Released { request: release },
        );
        c.on_message(
            &mut tc.ctx(),
            SERVERS[2],
            Message::Released { request: release },
        );
        assert!(history(&tc.take_effects()).is_empty(), "2 of 3 needed");
        c.on_message(
            &mut tc.ctx(),
            SERVERS[3],
            Message::Released { request: release },
        );
        let e = tc.take_effects();
        assert_eq!(history(&e), vec![(EventType::Ok, Function::Release, None)]);
        assert_eq!(timers(&e)[0].2, Timer::Acquire, "think, then acquire again");
    }

    #[test]
    fn release_refused_by_a_majority_fails_not_owner() {
        let mut q = Quorum::new(SERVERS.to_vec(), RedlockOptions::default());
        let not_owner = Message::NotOwner { request: 1 };
        assert_eq!(q.record(SERVERS[0], &not_owner), Some(false));
        assert_eq!(
            q.record(SERVERS[0], &not_owner),
            Some(false),
            "counted once"
        );
        assert_eq!(q.record(SERVERS[1], &not_owner), Some(false));
        assert_eq!(q.record(SERVERS[2], &not_owner), Some(true));
        assert_eq!(q.release_outcome(), Some(false));
        assert_eq!(q.record(STORAGE, &Message::WriteOk { request: 1 }), None);
    }

    #[test]
    fn options_parse_split_and_validate_by_key() {
        let table: toml::Table = toml::from_str(
            "hold = \"2s\"\nserver_timeout = \"20ms\"\nbugs = [\"redlock-minority-ok\"]",
        )
        .unwrap();
        let c = RedlockConfig::parse(&table).unwrap();
        assert_eq!(c.client.hold, Duration::from_secs(2));
        assert_eq!(c.redlock.server_timeout, Duration::from_millis(20));
        assert_eq!(c.redlock.bugs, vec![RedlockBug::MinorityOk]);
        assert!(c.validate().is_empty());
        let resolved = c.resolved();
        assert!(resolved.contains_key("drift_factor") && !resolved.contains_key("validity_check"));
        let bad: toml::Table =
            toml::from_str("validity_check = true\nserver_timeout = \"0s\"\ndrift_factor = 1.5")
                .unwrap();
        let keys: Vec<String> = RedlockConfig::parse(&bad)
            .unwrap()
            .validate()
            .into_iter()
            .map(|e| e.path.join("."))
            .collect();
        assert_eq!(keys, ["validity_check", "server_timeout", "drift_factor"]);
        let unknown: toml::Table = toml::from_str("holds = \"1s\"\nbugs = [\"nope\"]").unwrap();
        let errors = RedlockConfig::parse(&unknown).unwrap_err();
        let paths: Vec<String> = errors.iter().map(|e| e.path.join(".")).collect();
        assert_eq!(paths, ["holds", "bugs.0"]);
        assert!(
            errors[0]
                .message
                .ends_with("`stop`, `server_timeout`, `drift_factor`, `bugs`"),
            "an unknown key's message lists Redlock's keys, not validity_check: {}",
            errors[0].message
        );
    }
}
