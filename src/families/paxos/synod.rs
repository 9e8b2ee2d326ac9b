//! Single-decree Paxos, the Synod protocol of "Paxos Made Simple" §2, as protocol `paxos`: many
//! independent instances, each choosing one value.
//!
//! Roles are assigned to server nodes by `[paxos] proposers`, `acceptors` and `learners`; a node
//! may play any of them. Instance `i` (0-based) starts at `start + i * instance_interval` on each
//! proposer's local clock: every proposer then tries to get its own value, `i<i>:n<k>` (`k` is
//! the proposer's position in the server list, from 1), chosen. The algorithm, its invariants and
//! the planted bugs are described in [`crate::families::paxos`]; this file adds the message flow:
//!
//! - proposer: `prepare` → `promise`/`nack` → `accept` → `accepted`/`nack`. A ballot preempted
//!   by a `nack`, or whose phase is not complete within the phase timeout, is retried with a
//!   higher ballot after the randomized back-off of §2.4, drawn from the node's seeded random
//!   stream: uniform between `min` and `min * 2^failures` (consecutive failures), capped at
//!   `max`, where `min` is `backoff_min` or the smoothed round trip if longer, and `max` is
//!   `backoff_max` or four phase-timeout estimates if longer (a rival needs about two round
//!   trips to get both phases through, so shorter back-offs only collide again). The phase
//!   timeout adapts to observed round trips: `srtt + 4 * rttvar` as in TCP (RFC 6298), never
//!   below `retry_timeout`, doubled per consecutive failure ([`paxos::RoundTrip`]); every reply
//!   to one of the proposer's last phases in the instance is a sample, late ones included. So a
//!   network slower than `retry_timeout` does not make proposers abandon phases about to
//!   succeed. Before a ballot is used its round is synced to disk (`proposer/round`), so
//!   ballots stay unique across restarts.
//! - acceptor ([`super::acceptor`]): answers `prepare` and `accept`; sends every acceptance to
//!   the proposer and to every learner (§2.3).
//! - learner: learns a value when a majority of acceptors accepted the same proposal, or when a
//!   proposer tells it (`decided`). Learned values are synced (`learner/learned/<i>`) before they
//!   are observed or acknowledged.
//! - a proposer that sees a majority accept its proposal (or whose own learner learns a value)
//!   has *decided* the instance: it syncs the decision (`proposer/decided/<i>`), stops proposing
//!   there, and tells every learner, resending every `notify_interval` until each acknowledges
//!   (at most 256 decisions per message), also after its own restarts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::families::paxos::acceptor::{Acceptor, Scope};
use crate::families::paxos::{self, BUGS, Ballot, Bugs, NodeRefs, Observation, choose_value};
use crate::family::{self, Configured, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// The registry entry.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: "paxos",
    summary: "single-decree Paxos (Synod, Paxos Made Simple §2): proposers, acceptors, learners; many independent instances",
    serves: &[],
    bugs: BUGS,
    built_on: &[],
    configure,
};

/// Most instances a scenario may run.
pub const MAX_INSTANCES: u32 = 10_000;
/// Most decisions in one `decided` message.
const NOTIFY_BATCH: usize = 256;

const ROUND_KEY: &str = "proposer/round";
const DECIDED_PREFIX: &str = "proposer/decided/";
const LEARNED_PREFIX: &str = "learner/learned/";

/// `[paxos]` options. Durations are on each node's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Nodes that propose (default `"servers"`).
    #[serde(default)]
    pub proposers: NodeRefs,
    /// Nodes that accept; a majority of them chooses (default `"servers"`).
    #[serde(default)]
    pub acceptors: NodeRefs,
    /// Nodes that learn (default `"servers"`).
    #[serde(default)]
    pub learners: NodeRefs,
    /// Number of independent instances (default 1, at most 10000).
    #[serde(default = "default_instances")]
    pub instances: u32,
    /// When instance 0 starts (default 0s).
    #[serde(default)]
    pub start: Duration,
    /// Gap between the starts of consecutive instances (default 0s: all at once).
    #[serde(default)]
    pub instance_interval: Duration,
    /// Least phase timeout (default 100ms): a phase not complete after
    /// `max(retry_timeout, srtt + 4 * rttvar)` of observed round trips is retried with a higher
    /// ballot after a back-off.
    #[serde(default = "default_retry_timeout")]
    pub retry_timeout: Duration,
    /// Smallest back-off after a preempted ballot (default 5ms).
    #[serde(default = "default_backoff_min")]
    pub backoff_min: Duration,
    /// Largest back-off after a preempted ballot (default 200ms).
    #[serde(default = "default_backoff_max")]
    pub backoff_max: Duration,
    /// Period at which proposers resend unacknowledged decisions to learners (default 100ms).
    #[serde(default = "default_notify_interval")]
    pub notify_interval: Duration,
    /// Planted bugs to switch on (see `faultline list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<String>,
}

fn default_instances() -> u32 {
    1
}
fn default_retry_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_backoff_min() -> Duration {
    Duration::from_millis(5)
}
fn default_backoff_max() -> Duration {
    Duration::from_millis(200)
}
fn default_notify_interval() -> Duration {
    Duration::from_millis(100)
}

impl Default for Config {
    fn default() -> Self {
        toml::from_str("").expect("the empty [paxos] table deserializes")
    }
}

impl Config {
    /// Local-clock time at which `instance` starts, in nanoseconds.
    pub fn start_ns(&self, instance: u64) -> u64 {
        self.start
            .as_nanos()
            .saturating_add(instance.saturating_mul(self.instance_interval.as_nanos()))
    }
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    family::configure(ctx, validate, |setup: &NodeSetup, c: &Config| {
        let roles = Roles {
            proposers: c.proposers.resolve(&setup.topology),
            acceptors: c.acceptors.resolve(&setup.topology),
            learners: c.learners.resolve(&setup.topology),
        };
        Box::new(Node::new(setup.id, roles, c.clone()))
    })
}

fn validate(c: &Config, ctx: &RoleContext<'_>) -> Vec<OptionError> {
    let mut errors = Vec::new();
    let err = |key: &str, message: String| OptionError::at(key, message);
    let topology = ctx.topology;
    errors.extend(c.proposers.validate(topology, "proposers").err());
    errors.extend(c.acceptors.validate(topology, "acceptors").err());
    errors.extend(c.learners.validate(topology, "learners").err());
    if !(1..=MAX_INSTANCES).contains(&c.instances) {
        errors.push(err(
            "instances",
            format!("expected between 1 and {MAX_INSTANCES}"),
        ));
    } else {
        // Only with a valid count: the last instance is number `instances - 1`.
        let last_start = c.start_ns(u64::from(c.instances - 1));
        if last_start >= ctx.scenario.duration.as_nanos() {
            errors.push(err(
                "instance_interval",
                format!(
                    "the last instance would start at {}, not before the end of the run ({})",
                    Duration(last_start),
                    ctx.scenario.duration
                ),
            ));
        }
    }
    for (key, d) in [
        ("retry_timeout", c.retry_timeout),
        ("backoff_min", c.backoff_min),
        ("notify_interval", c.notify_interval),
    ] {
        if d.as_nanos() == 0 {
            errors.push(err(key, "expected a positive duration".into()));
        }
    }
    if c.backoff_max < c.backoff_min {
        errors.push(err(
            "backoff_max",
            format!(
                "expected at least backoff_min ({}), found {}",
                c.backoff_min, c.backoff_max
            ),
        ));
    }
    errors.extend(family::check_bugs(&c.bugs, PROTOCOL.bugs, PROTOCOL.name));
    errors
}

/// Which nodes play which role.
#[derive(Clone, Debug, PartialEq)]
pub struct Roles {
    /// Proposers, sorted.
    pub proposers: Vec<NodeId>,
    /// Acceptors, sorted.
    pub acceptors: Vec<NodeId>,
    /// Learners, sorted.
    pub learners: Vec<NodeId>,
}

/// Peer messages (one instance each, except the batched `decided`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Message {
    /// Phase 1a: "promise me `ballot` in `instance`".
    Prepare {
        /// The instance.
        instance: u64,
        /// The proposer's ballot.
        ballot: Ballot,
    },
    /// Phase 1b: the promise, with the proposal the acceptor accepted before, if any.
    Promise {
        /// The instance.
        instance: u64,
        /// The ballot promised.
        ballot: Ballot,
        /// The accepted proposal `(ballot, value)`.
        accepted: Option<(Ballot, String)>,
    },
    /// Phase 2a: "accept `(ballot, value)` in `instance`".
    Accept {
        /// The instance.
        instance: u64,
        /// The proposal's ballot.
        ballot: Ballot,
        /// The proposal's value.
        value: String,
    },
    /// Phase 2b: the acceptor accepted the proposal (sent to its proposer and every learner).
    Accepted {
        /// The instance.
        instance: u64,
        /// The proposal's ballot.
        ballot: Ballot,
        /// The proposal's value.
        value: String,
    },
    /// A prepare or accept for `ballot` was refused: the acceptor promised `promised`.
    Nack {
        /// The instance.
        instance: u64,
        /// The refused ballot.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
    },
    /// A proposer tells a learner which values were chosen.
    Decided {
        /// `(instance, value)` pairs, at most 256.
        decisions: Vec<(u64, String)>,
    },
    /// A learner acknowledges `decided` (it holds these instances durably).
    DecidedAck {
        /// The instances.
        instances: Vec<u64>,
    },
}

/// Timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum Timer {
    /// Instance `instance` is due to start.
    Start {
        /// The instance.
        instance: u64,
    },
    /// The attempt with `ballot` in `instance` timed out, or its back-off ended.
    Retry {
        /// The instance.
        instance: u64,
        /// The attempt's ballot.
        ballot: Ballot,
    },
    /// Resend unacknowledged decisions.
    Notify,
}

/// Where a proposer's attempt in one instance is.
#[derive(Clone, Debug, PartialEq)]
enum Phase {
    /// Phase 1: promises so far, each with the proposal it reported.
    Preparing(BTreeMap<NodeId, Option<(Ballot, String)>>),
    /// Phase 2: the value proposed and the acceptors that accepted it.
    Accepting(String, BTreeSet<NodeId>),
    /// Preempted: waiting for the back-off to end.
    BackingOff,
}

#[derive(Clone, Debug)]
struct Attempt {
    ballot: Ballot,
    phase: Phase,
    failures: u32,
    timer: Option<TimerId>,
    /// The latest phases sent in this instance (at most [`SENT_KEPT`]): ballot, whether it
    /// was phase 2, and the local time it was sent. Every reply to one of them, late ones
    /// included, is a round-trip sample; sampling only replies to the current phase would
    /// only ever see those faster than the timeout.
    sent: Vec<(Ballot, bool, i64)>,
}

/// Phases per instance whose send times a proposer keeps for round-trip samples.
const SENT_KEPT: usize = 8;

impl Attempt {
    /// Notes that phase `accept` (2 if true, else 1) of `ballot` was sent at `now_ns`.
    fn sent(&mut self, ballot: Ballot, accept: bool, now_ns: i64) {
        if self.sent.len() >= SENT_KEPT {
            self.sent.remove(0);
        }
        self.sent.push((ballot, accept, now_ns));
    }
}

/// One single-decree Paxos node, playing the roles its configuration gives it.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    config: Config,
    bugs: Bugs,
    roles: Roles,
    majority: usize,
    acceptor: Option<Acceptor<String>>,
    /// Highest round this proposer used (persisted before use).
    round: u64,
    /// Highest round seen in any ballot.
    round_seen: u64,
    /// Round trips to the acceptors, for the phase timeout.
    rtt: paxos::RoundTrip,
    attempts: BTreeMap<u64, Attempt>,
    next_start: u64,
    decided: BTreeMap<u64, String>,
    unacked: BTreeMap<NodeId, BTreeSet<u64>>,
    learned: BTreeMap<u64, String>,
    tallies: BTreeMap<u64, BTreeMap<(Ballot, String), BTreeSet<NodeId>>>,
}

/// The value proposer `id` proposes in `instance` when free to choose: `i<instance>:n<k>`, `k`
/// being the proposer's position in the server list from 1.
pub fn own_value(id: NodeId, instance: u64) -> String {
    format!("i{instance}:n{}", id.0 + 1)
}

fn instance_key(prefix: &str, instance: u64) -> String {
    format!("{prefix}{instance:020}")
}

impl Node {
    /// A fresh node (state is loaded from disk in `on_start`).
    pub fn new(id: NodeId, roles: Roles, config: Config) -> Node {
        let bugs = Bugs::from_names(&config.bugs);
        Node {
            id,
            majority: roles.acceptors.len() / 2 + 1,
            config,
            bugs,
            roles,
            acceptor: None,
            round: 0,
            round_seen: 0,
            rtt: paxos::RoundTrip::default(),
            attempts: BTreeMap::new(),
            next_start: 0,
            decided: BTreeMap::new(),
            unacked: BTreeMap::new(),
            learned: BTreeMap::new(),
            tallies: BTreeMap::new(),
        }
    }

    fn is_proposer(&self) -> bool {
        self.roles.proposers.contains(&self.id)
    }

    fn is_learner(&self) -> bool {
        self.roles.learners.contains(&self.id)
    }

    /// The learned values (for tests).
    pub fn learned(&self) -> &BTreeMap<u64, String> {
        &self.learned
    }

    // ----- proposer -----

    /// Starts every instance whose start time has come, and arms the timer for the next one.
    fn start_due(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.local_time_ns();
        while self.next_start < u64::from(self.config.instances) {
            let at = self.config.start_ns(self.next_start) as i64;
            if at > now {
                let delay = std::time::Duration::from_nanos((at - now) as u64);
                ctx.set_timer(
                    delay,
                    Timer::Start {
                        instance: self.next_start,
                    },
                );
                return;
            }
            let instance = self.next_start;
            self.next_start += 1;
            if !self.decided.contains_key(&instance) && !self.learned.contains_key(&instance) {
                self.prepare(ctx, instance, 0);
            }
        }
    }

    /// Phase 1a with a fresh ballot above every round seen (its round synced first).
    fn prepare(&mut self, ctx: &mut Context<'_>, instance: u64, failures: u32) {
        self.round = self.round.max(self.round_seen) + 1;
        ctx.disk().write(ROUND_KEY, self.round.to_string());
        ctx.disk().sync();
        let ballot = Ballot::new(self.round, self.id, self.bugs.duplicate_ballots);
        let previous = self.attempts.remove(&instance);
        if let Some(old) = previous.as_ref().and_then(|a| a.timer) {
            ctx.cancel_timer(old);
        }
        let timer = ctx.set_timer(
            self.phase_timeout(failures),
            Timer::Retry { instance, ballot },
        );
        let mut attempt = Attempt {
            ballot,
            phase: Phase::Preparing(BTreeMap::new()),
            failures,
            timer: Some(timer),
            sent: previous.map(|a| a.sent).unwrap_or_default(),
        };
        attempt.sent(ballot, false, ctx.local_time_ns());
        self.attempts.insert(instance, attempt);
        for &a in &self.roles.acceptors {
            ctx.send(a, Message::Prepare { instance, ballot });
        }
    }

    fn on_promise(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        instance: u64,
        ballot: Ballot,
        accepted: Option<(Ballot, String)>,
    ) {
        let majority = self.majority;
        let Some(attempt) = self.attempts.get_mut(&instance) else {
            return;
        };
        let Phase::Preparing(promises) = &mut attempt.phase else {
            return;
        };
        if attempt.ballot != ballot {
            return;
        }
        promises.insert(from, accepted);
        if promises.len() < majority {
            return;
        }
        // Phase 2a (§2.2): the highest-ballot reported value, else our own.
        let reported: Vec<(Ballot, String)> = promises.values().flatten().cloned().collect();
        let value = match choose_value(&reported, &self.bugs) {
            Some(v) => v.clone(),
            None => {
                let value = own_value(self.id, instance);
                ctx.observe(Observation::Proposed {
                    instance,
                    ballot,
                    value: value.as_str().into(),
                });
                value
            }
        };
        attempt.phase = Phase::Accepting(value.clone(), BTreeSet::new());
        if let Some(t) = attempt.timer.take() {
            ctx.cancel_timer(t);
        }
        attempt.sent(ballot, true, ctx.local_time_ns());
        // `self.phase_timeout`, field by field (the attempt is borrowed from `self.attempts`).
        let timeout = self
            .rtt
            .timeout(self.config.retry_timeout.to_std(), attempt.failures);
        attempt.timer = Some(ctx.set_timer(timeout, Timer::Retry { instance, ballot }));
        for &a in &self.roles.acceptors {
            ctx.send(
                a,
                Message::Accept {
                    instance,
                    ballot,
                    value: value.clone(),
                },
            );
        }
    }

    /// The phase timeout after `failures` consecutive failed attempts (see the module docs).
    fn phase_timeout(&self, failures: u32) -> std::time::Duration {
        self.rtt
            .timeout(self.config.retry_timeout.to_std(), failures)
    }

    /// A reply from an acceptor to phase 1 (`accept` false), phase 2 (true) or either (`None`,
    /// a `nack`) of `ballot` in `instance`: a round-trip sample if this proposer sent it.
    fn sample_reply(
        &mut self,
        ctx: &mut Context<'_>,
        instance: u64,
        ballot: Ballot,
        accept: Option<bool>,
    ) {
        let Some(attempt) = self.attempts.get(&instance) else {
            return;
        };
        let sent = attempt
            .sent
            .iter()
            .rev()
            .find(|(b, a, _)| *b == ballot && accept.is_none_or(|x| x == *a));
        if let Some(&(_, _, sent_ns)) = sent {
            self.rtt.sample_since(sent_ns, ctx.local_time_ns());
        }
    }

    /// A `nack` for our ballot: back off (§2.4), then retry higher.
    fn on_nack(&mut self, ctx: &mut Context<'_>, instance: u64, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        let Some(attempt) = self.attempts.get(&instance) else {
            return;
        };
        if attempt.ballot != ballot || attempt.phase == Phase::BackingOff {
            return;
        }
        self.back_off(ctx, instance);
    }

    /// The current attempt in `instance` failed (preempted, or its phase timed out): wait the
    /// randomized back-off of §2.4, then retry with a higher ballot (at once under the planted
    /// bug `no-backoff`).
    fn back_off(&mut self, ctx: &mut Context<'_>, instance: u64) {
        let Some(attempt) = self.attempts.get_mut(&instance) else {
            return;
        };
        let failures = attempt.failures + 1;
        if self.bugs.no_backoff {
            return self.prepare(ctx, instance, failures);
        }
        let ballot = attempt.ballot;
        attempt.failures = failures;
        attempt.phase = Phase::BackingOff;
        if let Some(t) = attempt.timer.take() {
            ctx.cancel_timer(t);
        }
        // The back-off range scales with the round trip: a rival needs about two of them to
        // get both phases through, so ranges far shorter than that only collide again.
        let srtt = self.rtt.srtt().unwrap_or_default();
        let min = self.config.backoff_min.to_std().max(srtt);
        let max = self
            .config
            .backoff_max
            .to_std()
            .max(self.rtt.timeout(std::time::Duration::ZERO, 0) * 4)
            .max(min);
        let delay = paxos::backoff(ctx.rng(), min, max, failures);
        attempt.timer = Some(ctx.set_timer(delay, Timer::Retry { instance, ballot }));
    }

    /// The proposer knows `value` is chosen in `instance`: stop, record, tell the learners.
    fn decide(&mut self, ctx: &mut Context<'_>, instance: u64, value: String) {
        if let Some(attempt) = self.attempts.remove(&instance)
            && let Some(t) = attempt.timer
        {
            ctx.cancel_timer(t);
        }
        if self.decided.contains_key(&instance) {
            return;
        }
        ctx.disk()
            .write(instance_key(DECIDED_PREFIX, instance), value.clone());
        ctx.disk().sync();
        self.decided.insert(instance, value.clone());
        if self.is_learner() {
            self.learn(ctx, instance, value.clone(), false);
        }
        for &l in &self.roles.learners {
            if l != self.id {
                self.unacked.entry(l).or_default().insert(instance);
                ctx.send(
                    l,
                    Message::Decided {
                        decisions: vec![(instance, value.clone())],
                    },
                );
            }
        }
    }

    fn notify(&mut self, ctx: &mut Context<'_>) {
        for (&learner, pending) in &self.unacked {
            if pending.is_empty() {
                continue;
            }
            let decisions = pending
                .iter()
                .take(NOTIFY_BATCH)
                .map(|i| (*i, self.decided[i].clone()))
                .collect();
            ctx.send(learner, Message::Decided { decisions });
        }
        ctx.set_timer(self.config.notify_interval.to_std(), Timer::Notify);
    }

    // ----- learner -----

    /// Learns that `value` is chosen in `instance` (durably, then observed). A different value
    /// for an instance already learned is observed as a conflict and otherwise ignored.
    /// `adopt`: the learner counted the acceptances itself, so the proposer on this node (if
    /// any) takes the decision over and tells the other learners.
    fn learn(&mut self, ctx: &mut Context<'_>, instance: u64, value: String, adopt: bool) {
        match self.learned.get(&instance) {
            Some(known) if *known == value => return,
            Some(_) => {
                ctx.observe(Observation::Learned {
                    instance,
                    value: value.into(),
                });
                return;
            }
            None => {}
        }
        ctx.disk()
            .write(instance_key(LEARNED_PREFIX, instance), value.clone());
        ctx.disk().sync();
        self.learned.insert(instance, value.clone());
        self.tallies.remove(&instance);
        ctx.observe(Observation::Learned {
            instance,
            value: value.as_str().into(),
        });
        if self.is_proposer() {
            if adopt {
                self.decide(ctx, instance, value);
            } else if let Some(attempt) = self.attempts.remove(&instance)
                && let Some(t) = attempt.timer
            {
                ctx.cancel_timer(t);
            }
        }
    }

    fn on_accepted(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        instance: u64,
        ballot: Ballot,
        value: String,
    ) {
        let majority = self.majority;
        // As the proposer of `ballot`.
        if let Some(attempt) = self.attempts.get_mut(&instance)
            && let Phase::Accepting(proposed, acks) = &mut attempt.phase
            && attempt.ballot == ballot
            && *proposed == value
        {
            acks.insert(from);
            if acks.len() >= majority {
                let value = proposed.clone();
                return self.decide(ctx, instance, value);
            }
        }
        // As a learner (§2.3): a majority accepted the same proposal.
        if self.is_learner() && !self.learned.contains_key(&instance) {
            let voters = self
                .tallies
                .entry(instance)
                .or_default()
                .entry((ballot, value.clone()))
                .or_default();
            voters.insert(from);
            if voters.len() >= majority {
                self.learn(ctx, instance, value, true);
            }
        }
    }

    /// Local invariants, asserted after every step.
    fn check_invariants(&mut self, ctx: &mut Context<'_>) {
        assert!(
            !ctx.disk().has_unsynced(),
            "paxos node {:?} left unsynced state on disk",
            self.id
        );
        for (instance, attempt) in &self.attempts {
            assert!(
                attempt.ballot.round <= self.round,
                "proposer: ballot {} in instance {instance} above the persisted round {}",
                attempt.ballot,
                self.round
            );
        }
        if let Some(a) = &mut self.acceptor {
            a.check_invariants();
        }
    }
}

impl Process for Node {
    type Message = Message;
    type Timer = Timer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        if self.roles.acceptors.contains(&self.id) {
            self.acceptor = Some(Acceptor::load(ctx.disk(), Scope::PerInstance, self.bugs));
        }
        for key in ctx.disk().keys_with_prefix(LEARNED_PREFIX) {
            let instance = key[LEARNED_PREFIX.len()..].parse().expect("instance keys");
            let value = String::from_utf8_lossy(&ctx.disk().read(&key).expect("listed")).into();
            self.learned.insert(instance, value);
        }
        for (&instance, value) in &self.learned {
            ctx.observe(Observation::Learned {
                instance,
                value: value.as_str().into(),
            });
        }
        if self.is_proposer() {
            self.round = ctx
                .disk()
                .read(ROUND_KEY)
                .map(|b| String::from_utf8_lossy(&b).parse().expect("a round"))
                .unwrap_or(0);
            for key in ctx.disk().keys_with_prefix(DECIDED_PREFIX) {
                let instance = key[DECIDED_PREFIX.len()..].parse().expect("instance keys");
                let value = String::from_utf8_lossy(&ctx.disk().read(&key).expect("listed")).into();
                self.decided.insert(instance, value);
            }
            // After a restart nothing is known about what learners hold: offer them everything.
            for &l in &self.roles.learners {
                if l != self.id {
                    self.unacked
                        .insert(l, self.decided.keys().copied().collect());
                }
            }
            ctx.set_timer(self.config.notify_interval.to_std(), Timer::Notify);
            self.start_due(ctx);
        }
        self.check_invariants(ctx);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Message) {
        match message {
            Message::Prepare { instance, ballot } => {
                self.round_seen = self.round_seen.max(ballot.round);
                if let Some(acceptor) = self.acceptor.as_mut() {
                    let reply = match acceptor.prepare(ctx, instance, ballot) {
                        Ok(accepted) => Message::Promise {
                            instance,
                            ballot,
                            accepted,
                        },
                        Err(promised) => Message::Nack {
                            instance,
                            ballot,
                            promised,
                        },
                    };
                    ctx.send(from, reply);
                }
            }
            Message::Accept {
                instance,
                ballot,
                value,
            } => {
                self.round_seen = self.round_seen.max(ballot.round);
                if let Some(acceptor) = self.acceptor.as_mut() {
                    match acceptor.accept(ctx, ballot, vec![(instance, value.clone())]) {
                        Ok(_) => {
                            let mut to: BTreeSet<NodeId> =
                                self.roles.learners.iter().copied().collect();
                            to.insert(from);
                            for node in to {
                                ctx.send(
                                    node,
                                    Message::Accepted {
                                        instance,
                                        ballot,
                                        value: value.clone(),
                                    },
                                );
                            }
                        }
                        Err(promised) => ctx.send(
                            from,
                            Message::Nack {
                                instance,
                                ballot,
                                promised,
                            },
                        ),
                    }
                }
            }
            Message::Promise {
                instance,
                ballot,
                accepted,
            } => {
                if let Some((b, _)) = &accepted {
                    self.round_seen = self.round_seen.max(b.round);
                }
                self.sample_reply(ctx, instance, ballot, Some(false));
                self.on_promise(ctx, from, instance, ballot, accepted);
            }
            Message::Accepted {
                instance,
                ballot,
                value,
            } => {
                if self.roles.acceptors.contains(&from) {
                    self.sample_reply(ctx, instance, ballot, Some(true));
                }
                self.on_accepted(ctx, from, instance, ballot, value)
            }
            Message::Nack {
                instance,
                ballot,
                promised,
            } => {
                self.sample_reply(ctx, instance, ballot, None);
                self.on_nack(ctx, instance, ballot, promised)
            }
            Message::Decided { decisions } => {
                if self.is_learner() {
                    let instances = decisions.iter().map(|(i, _)| *i).collect();
                    for (instance, value) in decisions {
                        self.learn(ctx, instance, value, false);
                    }
                    ctx.send(from, Message::DecidedAck { instances });
                }
            }
            Message::DecidedAck { instances } => {
                if let Some(pending) = self.unacked.get_mut(&from) {
                    for i in instances {
                        pending.remove(&i);
                    }
                }
            }
        }
        self.check_invariants(ctx);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: Timer) {
        match timer {
            Timer::Start { .. } => self.start_due(ctx),
            Timer::Retry { instance, ballot } => {
                if let Some(attempt) = self.attempts.get(&instance)
                    && attempt.ballot == ballot
                {
                    if attempt.phase == Phase::BackingOff {
                        let failures = attempt.failures;
                        self.prepare(ctx, instance, failures);
                    } else {
                        // The phase timed out (lost messages, a partition, a crash).
                        self.back_off(ctx, instance);
                    }
                }
            }
            Timer::Notify => self.notify(ctx),
        }
        self.check_invariants(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Effect, TestContext};

    fn roles(proposers: &[u32]) -> Roles {
        let ids = |v: &[u32]| v.iter().map(|&i| NodeId(i)).collect();
        Roles {
            proposers: ids(proposers),
            acceptors: ids(&[0, 1, 2]),
            learners: ids(&[0, 1, 2]),
        }
    }

    fn sends(tc: &mut TestContext) -> Vec<(NodeId, Message)> {
        tc.take_effects()
            .into_iter()
            .filter_map(|e| match e {
                Effect::Send { to, message } => message.downcast().ok().map(|m| (to, m)),
                _ => None,
            })
            .collect()
    }

    fn b(round: u64, node: u32) -> Ballot {
        Ballot {
            round,
            node: NodeId(node),
        }
    }

    #[test]
    fn a_proposer_runs_both_phases_and_takes_the_highest_reported_value() {
        let mut tc = TestContext::new(NodeId(0), 1);
        let mut node = Node::new(NodeId(0), roles(&[0]), Config::default());
        node.on_start(&mut tc.ctx());
        let sent = sends(&mut tc);
        // Phase 1a to every acceptor with ballot (1, 0), the round synced first.
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.iter().all(|(_, m)| *m
            == Message::Prepare {
                instance: 0,
                ballot: b(1, 0)
            }));
        assert_eq!(tc.disk.read(ROUND_KEY).as_deref(), Some(&b"1"[..]));
        // Promises from n2 and n3 report different proposals: the higher ballot's value wins.
        for (from, accepted) in [(1, Some((b(1, 2), "low"))), (2, Some((b(0, 9), "lower")))] {
            node.on_message(
                &mut tc.ctx(),
                NodeId(from),
                Message::Promise {
                    instance: 0,
                    ballot: b(1, 0),
                    accepted: accepted.map(|(b, v)| (b, v.to_string())),
                },
            );
        }
        let sent = sends(&mut tc);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.iter().all(|(_, m)| *m
            == Message::Accept {
                instance: 0,
                ballot: b(1, 0),
                value: "low".into()
            }));
        // Two acceptances decide it: the proposer tells the other learners.
        for from in [1, 2] {
            node.on_message(
                &mut tc.ctx(),
                NodeId(from),
                Message::Accepted {
                    instance: 0,
                    ballot: b(1, 0),
                    value: "low".into(),
                },
            );
        }
        assert_eq!(node.learned().get(&0).map(String::as_str), Some("low"));
        let sent = sends(&mut tc);
        assert!(sent.contains(&(
            NodeId(1),
            Message::Decided {
                decisions: vec![(0, "low".into())]
            }
        )));
        assert!(node.attempts.is_empty());
    }

    #[test]
    fn a_nack_backs_off_at_random_and_the_bug_retries_at_once() {
        for (bugs, immediate) in [(vec![], false), (vec![paxos::BUG_NO_BACKOFF.into()], true)] {
            let config = Config {
                bugs,
                ..Config::default()
            };
            let mut tc = TestContext::new(NodeId(0), 1);
            let mut node = Node::new(NodeId(0), roles(&[0]), config);
            node.on_start(&mut tc.ctx());
            tc.take_effects();
            node.on_message(
                &mut tc.ctx(),
                NodeId(1),
                Message::Nack {
                    instance: 0,
                    ballot: b(1, 0),
                    promised: b(4, 2),
                },
            );
            let effects = tc.take_effects();
            let prepares: Vec<&Effect> = effects
                .iter()
                .filter(|e| matches!(e, Effect::Send { .. }))
                .collect();
            if immediate {
                assert_eq!(prepares.len(), 3, "{effects:?}");
                assert_eq!(node.attempts[&0].ballot, b(5, 0), "above the nack's round");
            } else {
                assert!(prepares.is_empty(), "{effects:?}");
                assert_eq!(node.attempts[&0].phase, Phase::BackingOff);
                let delay = effects.iter().find_map(|e| match e {
                    Effect::SetTimer { delay, .. } => Some(*delay),
                    _ => None,
                });
                let d = delay.expect("a back-off timer");
                assert!(d >= std::time::Duration::from_millis(5), "{d:?}");
                assert!(d <= std::time::Duration::from_millis(10), "{d:?}");
            }
        }
    }

    #[test]
    fn a_learner_learns_from_a_majority_of_the_same_proposal_only() {
        let mut tc = TestContext::new(NodeId(2), 1);
        let mut node = Node::new(NodeId(2), roles(&[0]), Config::default());
        node.on_start(&mut tc.ctx());
        let accepted = |ballot, value: &str| Message::Accepted {
            instance: 3,
            ballot,
            value: value.into(),
        };
        node.on_message(&mut tc.ctx(), NodeId(0), accepted(b(1, 0), "a"));
        node.on_message(&mut tc.ctx(), NodeId(1), accepted(b(2, 1), "a"));
        assert!(node.learned().is_empty(), "different ballots do not add up");
        node.on_message(&mut tc.ctx(), NodeId(2), accepted(b(2, 1), "a"));
        assert_eq!(node.learned().get(&3).map(String::as_str), Some("a"));
        assert!(!tc.disk.has_unsynced());
        // Restart: the learned value is reloaded and observed again.
        tc.crash();
        let mut node = Node::new(NodeId(2), roles(&[0]), Config::default());
        node.on_start(&mut tc.ctx());
        assert_eq!(node.learned().get(&3).map(String::as_str), Some("a"));
    }
}
