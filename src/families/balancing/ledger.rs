//! The `ledger` role: a service that applies counted operations on accounts and keeps an
//! idempotency store, as a payment API does with Stripe's idempotency keys.
//!
//! # Model
//!
//! Each node of a `ledger` role is one independent service (one shard): `accounts` accounts
//! numbered from 0, each starting at `initial_balance` units. A caller sends
//! [`LedgerMessage::Apply`]: add `delta` units to `account` (a debit when negative: a charge,
//! a stock reservation, an order slot taken; a credit when positive: a refund, a release, a
//! cancellation). The ledger answers [`LedgerMessage::Answer`] with an [`Outcome`]:
//!
//! - a **debit** is refused with `insufficient` when the balance would go below zero (stock
//!   runs out), and with `declined` at random with `fail_probability` (a card declined, a
//!   service's business rule); else it is applied;
//! - a **credit** is always applied: it is what compensations do, and a compensation must be
//!   able to succeed when retried (Garcia-Molina and Salem, "Sagas", 1987, section 3);
//! - an account the ledger does not have is refused with `unknown-account`.
//!
//! # Idempotency keys
//!
//! Every request carries an idempotency key, chosen by the caller and scoped to it (Stripe
//! scopes keys to the API key; here to the calling node). The first request with a key is
//! applied or refused, and its outcome and the balance after it are stored under the key; a
//! later request with the same key (a retry whose first answer was lost, a duplicate, a
//! coordinator resuming after a crash) gets the stored answer and changes nothing
//! ([`LedgerObservation::Replayed`]). A refusal is stored too, so a retried declined charge
//! stays declined (as Stripe replays errors).
//!
//! The store holds at most `keys_max` keys; beyond that the oldest key is forgotten (Stripe
//! forgets keys after 24 hours), and a retry carrying a forgotten key would be applied again:
//! keep `keys_max` above the keys one retry window can span.
//!
//! # Durability
//!
//! The balances and the store are the service's database: every new entry is appended to a
//! log on the node's disk and synced before the answer leaves (`ledger/log`, one JSON entry a
//! line; rewritten as one snapshot `ledger/snapshot` when the log grows past
//! `max(keys_max, 1024)` lines). A crash therefore never forgets an applied operation or its
//! key, and a restarted ledger answers retries from the store exactly as before.
//!
//! # Observations
//!
//! [`LedgerObservation`]: `applied` and `refused` for each new key, `replayed` for each answer
//! from the store, `restored` at boot; the callers (the `payments` and `saga` workloads) add
//! `retried` for each retry they send. The checks `no-double-apply` and `saga-atomicity`
//! ([`super::saga_checks`]) read them.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::family::{self, OptionError, ProtocolInfo};
use crate::process::{Context, NodeId, Process, TimerId};

/// The `ledger` protocol's name.
pub const PROTOCOL_NAME: &str = "ledger";
/// Disk key of the ledger's log of entries since the last snapshot (JSON lines).
pub const LOG_KEY: &str = "ledger/log";
/// Disk key of the ledger's last snapshot (JSON).
pub const SNAPSHOT_KEY: &str = "ledger/snapshot";
/// Most accounts one ledger node may have.
pub const ACCOUNTS_MAX: u32 = 100_000;
/// Most idempotency keys one ledger node may store.
pub const KEYS_MAX: u32 = 1_000_000;
/// Largest absolute initial balance.
pub const BALANCE_MAX: i64 = 1_000_000_000_000;

/// The `ledger` role.
pub const PROTOCOL: ProtocolInfo = ProtocolInfo {
    name: PROTOCOL_NAME,
    summary: "a service applying debits and credits on accounts, once per idempotency key (a durable store answers retries), failing debits by a rule (insufficient balance, fail_probability)",
    serves: &[super::payments::WORKLOAD_NAME, super::saga::WORKLOAD_NAME],
    bugs: &[],
    built_on: &[],
    configure: |ctx| {
        family::configure(
            ctx,
            |c: &LedgerConfig, _| c.validate(),
            |_, c| Box::new(Ledger::new(c.clone())),
        )
    },
};

/// Options of a `ledger` role.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerConfig {
    /// Number of accounts, numbered from 0 (default 10, from 1 to 100000).
    #[serde(default = "default_accounts")]
    pub accounts: u32,
    /// Units each account starts with (default 1000000, from 0 to 10^12).
    #[serde(default = "default_initial_balance")]
    pub initial_balance: i64,
    /// Probability that a debit that the balance allows is declined anyway (default 0, from 0
    /// to 1): the failures sagas compensate.
    #[serde(default)]
    pub fail_probability: f64,
    /// Most idempotency keys stored; the oldest is forgotten beyond (default 100000, from 1
    /// to 1000000).
    #[serde(default = "default_keys_max")]
    pub keys_max: u32,
}

fn default_accounts() -> u32 {
    10
}
fn default_initial_balance() -> i64 {
    1_000_000
}
fn default_keys_max() -> u32 {
    100_000
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            accounts: default_accounts(),
            initial_balance: default_initial_balance(),
            fail_probability: 0.0,
            keys_max: default_keys_max(),
        }
    }
}

impl LedgerConfig {
    /// Every problem with these options, each at its key (none: valid).
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        if !(1..=ACCOUNTS_MAX).contains(&self.accounts) {
            errors.push(OptionError::at(
                "accounts",
                format!("expected from 1 to {ACCOUNTS_MAX}, found {}", self.accounts),
            ));
        }
        if !(0..=BALANCE_MAX).contains(&self.initial_balance) {
            errors.push(OptionError::at(
                "initial_balance",
                format!(
                    "expected from 0 to {BALANCE_MAX}, found {}",
                    self.initial_balance
                ),
            ));
        }
        check_probability(&mut errors, "fail_probability", self.fail_probability);
        if !(1..=KEYS_MAX).contains(&self.keys_max) {
            errors.push(OptionError::at(
                "keys_max",
                format!("expected from 1 to {KEYS_MAX}, found {}", self.keys_max),
            ));
        }
        errors
    }
}

/// Pushes an error at `key` unless `p` is a probability (from 0 to 1).
pub fn check_probability(errors: &mut Vec<OptionError>, key: &str, p: f64) {
    if !(0.0..=1.0).contains(&p) {
        errors.push(OptionError::at(
            key,
            format!("expected a probability from 0 to 1, found {p}"),
        ));
    }
}

/// What a ledger did with a request's key.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The operation was applied.
    Applied,
    /// A debit larger than the balance (the stock ran out).
    Insufficient,
    /// A debit declined by the ledger's `fail_probability` rule.
    Declined,
    /// No such account on this ledger.
    UnknownAccount,
}

impl Outcome {
    /// The kebab-case name (history errors, evidence).
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Insufficient => "insufficient",
            Outcome::Declined => "declined",
            Outcome::UnknownAccount => "unknown-account",
        }
    }
}

/// Messages between callers and ledgers. Numbers only.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LedgerMessage {
    /// Caller to ledger: add `delta` to `account`, once per `key`.
    Apply {
        /// The idempotency key (scoped to the caller).
        key: u64,
        /// The caller's logical request (a payment, a saga step): carried for the answer and
        /// the checks; the ledger never decides anything by it.
        request: u64,
        /// The account.
        account: u32,
        /// Units to add (negative: a debit).
        delta: i64,
    },
    /// Ledger to caller: what happened to `key` (now or when it was first seen).
    Answer {
        /// The key answered.
        key: u64,
        /// The request the key was first seen with.
        request: u64,
        /// The outcome stored under the key.
        outcome: Outcome,
        /// The account's balance right after the key was first handled.
        balance: i64,
    },
}

/// Facts of ledgers and of their callers, for the checks `no-double-apply` and
/// `saga-atomicity`. The node that observed is the record's node.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LedgerObservation {
    /// A ledger applied a request under a new key.
    Applied {
        /// The caller.
        client: NodeId,
        /// The caller's logical request.
        request: u64,
        /// The key.
        key: u64,
        /// The account.
        account: u32,
        /// Units added.
        delta: i64,
        /// Balance after.
        balance: i64,
    },
    /// A ledger refused a request under a new key (the refusal is stored too).
    Refused {
        /// The caller.
        client: NodeId,
        /// The caller's logical request.
        request: u64,
        /// The key.
        key: u64,
        /// Why.
        outcome: Outcome,
    },
    /// A ledger answered a known key from its store, changing nothing.
    Replayed {
        /// The caller.
        client: NodeId,
        /// The request of this copy.
        request: u64,
        /// The key.
        key: u64,
        /// The stored outcome.
        outcome: Outcome,
    },
    /// A ledger booted with this many stored keys (after a crash: what it kept).
    Restored {
        /// Keys in the store.
        keys: u64,
    },
    /// A caller sent request `request` again (attempt 2 is the first retry).
    Retried {
        /// The ledger retried.
        ledger: NodeId,
        /// The logical request.
        request: u64,
        /// The key the retry carries (the first attempt's, unless a bug made a new one).
        key: u64,
        /// The attempt number.
        attempt: u32,
    },
}

/// One stored key: a line of the log and an entry of the snapshot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Entry {
    client: NodeId,
    key: u64,
    request: u64,
    account: u32,
    delta: i64,
    outcome: Outcome,
    balance: i64,
}

impl Entry {
    /// Sends the entry's answer to its caller.
    fn answer(&self, ctx: &mut Context<'_>) {
        ctx.send(
            self.client,
            LedgerMessage::Answer {
                key: self.key,
                request: self.request,
                outcome: self.outcome,
                balance: self.balance,
            },
        );
    }
}

/// What the snapshot holds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Snapshot {
    balances: Vec<i64>,
    entries: Vec<Entry>,
}

/// A ledger node. Build a fresh one at boot and after every restart; its state comes back
/// from its disk.
#[derive(Debug)]
pub struct Ledger {
    config: LedgerConfig,
    balances: Vec<i64>,
    store: BTreeMap<(NodeId, u64), Entry>,
    /// Keys in the order they were stored (oldest first), for forgetting beyond `keys_max`.
    order: VecDeque<(NodeId, u64)>,
    log_lines: usize,
}

impl Ledger {
    /// A ledger with `config` (validated by [`LedgerConfig::validate`]).
    pub fn new(config: LedgerConfig) -> Self {
        Ledger {
            balances: vec![config.initial_balance; config.accounts as usize],
            config,
            store: BTreeMap::new(),
            order: VecDeque::new(),
            log_lines: 0,
        }
    }

    /// The balance of `account` (`None`: no such account).
    pub fn balance(&self, account: u32) -> Option<i64> {
        self.balances.get(account as usize).copied()
    }

    /// Number of keys stored.
    pub fn keys(&self) -> usize {
        self.store.len()
    }

    fn log_limit(&self) -> usize {
        (self.config.keys_max as usize).max(1024)
    }

    /// Stores `entry` in memory, forgetting the oldest key beyond `keys_max`; sets its
    /// account's balance to the entry's when `newest` (not when restoring a snapshot's
    /// entries, which are older than the snapshot's balances).
    fn remember(&mut self, entry: Entry, newest: bool) {
        if newest
            && entry.outcome == Outcome::Applied
            && let Some(b) = self.balances.get_mut(entry.account as usize)
        {
            *b = entry.balance;
        }
        let id = (entry.client, entry.key);
        if self.store.insert(id, entry).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > self.config.keys_max as usize {
            if let Some(old) = self.order.pop_front() {
                self.store.remove(&old);
            }
        }
    }

    /// Makes `entry` durable: appends it to the log (or writes a snapshot when the log is
    /// long), then syncs.
    fn persist(&mut self, ctx: &mut Context<'_>, entry: &Entry) {
        if self.log_lines >= self.log_limit() {
            let snapshot = Snapshot {
                balances: self.balances.clone(),
                entries: self.order.iter().map(|id| self.store[id].clone()).collect(),
            };
            let bytes = serde_json::to_vec(&snapshot).expect("a snapshot serializes");
            ctx.disk().write(SNAPSHOT_KEY, bytes);
            ctx.disk().remove(LOG_KEY);
            self.log_lines = 0;
        } else {
            let mut line = serde_json::to_vec(entry).expect("an entry serializes");
            line.push(b'\n');
            ctx.disk().append(LOG_KEY, line);
            self.log_lines += 1;
        }
        ctx.disk().sync();
    }

    /// Draws the `fail_probability` rule (no draw when it is 0).
    fn declines(&self, ctx: &mut Context<'_>) -> bool {
        let p = self.config.fail_probability;
        p > 0.0 && ctx.rng().r#gen::<f64>() < p
    }

    fn on_apply(
        &mut self,
        ctx: &mut Context<'_>,
        from: NodeId,
        key: u64,
        request: u64,
        account: u32,
        delta: i64,
    ) {
        if let Some(stored) = self.store.get(&(from, key)) {
            ctx.observe(LedgerObservation::Replayed {
                client: from,
                request,
                key,
                outcome: stored.outcome,
            });
            return stored.answer(ctx);
        }
        let balance = self.balance(account);
        let outcome = match balance {
            None => Outcome::UnknownAccount,
            Some(b) if delta < 0 && b.checked_add(delta).is_none_or(|after| after < 0) => {
                Outcome::Insufficient
            }
            Some(_) if delta < 0 && self.declines(ctx) => Outcome::Declined,
            Some(_) => Outcome::Applied,
        };
        let before = balance.unwrap_or(0);
        let after = if outcome == Outcome::Applied {
            before.saturating_add(delta)
        } else {
            before
        };
        let entry = Entry {
            client: from,
            key,
            request,
            account,
            delta,
            outcome,
            balance: after,
        };
        self.remember(entry.clone(), true);
        self.persist(ctx, &entry);
        ctx.observe(if outcome == Outcome::Applied {
            LedgerObservation::Applied {
                client: from,
                request,
                key,
                account,
                delta,
                balance: after,
            }
        } else {
            LedgerObservation::Refused {
                client: from,
                request,
                key,
                outcome,
            }
        });
        entry.answer(ctx);
    }
}

impl Process for Ledger {
    type Message = LedgerMessage;
    type Timer = ();

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let snapshot: Snapshot = ctx
            .disk()
            .read(SNAPSHOT_KEY)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if snapshot.balances.len() == self.balances.len() {
            self.balances = snapshot.balances;
        }
        for entry in snapshot.entries {
            self.remember(entry, false);
        }
        let log = ctx.disk().read(LOG_KEY).map(|b| b.into_owned());
        self.log_lines = 0;
        for line in log.as_deref().unwrap_or(&[]).split(|&b| b == b'\n') {
            if let Ok(entry) = serde_json::from_slice::<Entry>(line) {
                self.remember(entry, true);
                self.log_lines += 1;
            }
        }
        ctx.observe(LedgerObservation::Restored {
            keys: self.store.len() as u64,
        });
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: LedgerMessage) {
        if let LedgerMessage::Apply {
            key,
            request,
            account,
            delta,
        } = message
        {
            self.on_apply(ctx, from, key, request, account, delta);
        }
    }

    fn on_timer(&mut self, _: &mut Context<'_>, _: TimerId, _: ()) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{TestContext, observations, sent_messages};

    const L: NodeId = NodeId(0);
    const C: NodeId = NodeId(5);
    const D: NodeId = NodeId(6);

    fn started(config: LedgerConfig) -> (Ledger, TestContext) {
        let mut tc = TestContext::new(L, 1);
        let mut l = Ledger::new(config);
        l.on_start(&mut tc.ctx());
        tc.take_effects();
        (l, tc)
    }

    fn apply(key: u64, account: u32, delta: i64) -> LedgerMessage {
        LedgerMessage::Apply {
            key,
            request: key * 10,
            account,
            delta,
        }
    }

    fn answers(tc: &mut TestContext) -> Vec<(Outcome, i64)> {
        sent_messages::<LedgerMessage>(&tc.take_effects())
            .into_iter()
            .map(|(_, m)| match m {
                LedgerMessage::Answer {
                    outcome, balance, ..
                } => (outcome, balance),
                other => panic!("not an answer: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_retried_key_is_answered_from_the_store_and_applied_once() {
        let (mut l, mut tc) = started(LedgerConfig::default());
        l.on_message(&mut tc.ctx(), C, apply(1, 3, -100));
        l.on_message(&mut tc.ctx(), C, apply(1, 3, -100));
        let effects = tc.take_effects();
        let obs = observations::<LedgerObservation>(&effects);
        assert!(matches!(obs[0], LedgerObservation::Applied { key: 1, .. }));
        assert!(matches!(
            obs[1],
            LedgerObservation::Replayed {
                key: 1,
                outcome: Outcome::Applied,
                ..
            }
        ));
        let sent = sent_messages::<LedgerMessage>(&effects);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1], "the replay is the first answer");
        assert_eq!(l.balance(3), Some(1_000_000 - 100));
    }

    #[test]
    fn keys_are_scoped_to_the_caller() {
        let (mut l, mut tc) = started(LedgerConfig::default());
        l.on_message(&mut tc.ctx(), C, apply(1, 0, -1));
        l.on_message(&mut tc.ctx(), D, apply(1, 0, -1));
        assert_eq!(
            answers(&mut tc),
            vec![(Outcome::Applied, 999_999), (Outcome::Applied, 999_998)]
        );
    }

    #[test]
    fn a_debit_beyond_the_balance_is_refused_and_a_credit_always_applies() {
        let (mut l, mut tc) = started(LedgerConfig {
            initial_balance: 2,
            fail_probability: 1.0,
            ..LedgerConfig::default()
        });
        l.on_message(&mut tc.ctx(), C, apply(1, 0, -3));
        l.on_message(&mut tc.ctx(), C, apply(2, 0, -1));
        l.on_message(&mut tc.ctx(), C, apply(3, 0, 5));
        l.on_message(&mut tc.ctx(), C, apply(4, 99, 5));
        assert_eq!(
            answers(&mut tc),
            vec![
                (Outcome::Insufficient, 2),
                (Outcome::Declined, 2),
                (Outcome::Applied, 7),
                (Outcome::UnknownAccount, 0)
            ]
        );
    }

    #[test]
    fn a_refusal_is_stored_and_replayed_even_when_the_balance_would_now_allow_it() {
        let (mut l, mut tc) = started(LedgerConfig {
            initial_balance: 0,
            ..LedgerConfig::default()
        });
        l.on_message(&mut tc.ctx(), C, apply(1, 0, -1));
        l.on_message(&mut tc.ctx(), C, apply(2, 0, 10));
        l.on_message(&mut tc.ctx(), C, apply(1, 0, -1));
        let a = answers(&mut tc);
        assert_eq!(a[2], (Outcome::Insufficient, 0));
        assert_eq!(l.balance(0), Some(10));
    }

    #[test]
    fn the_store_and_balances_survive_a_crash_because_they_are_synced_before_the_answer() {
        let (mut l, mut tc) = started(LedgerConfig::default());
        l.on_message(&mut tc.ctx(), C, apply(1, 0, -7));
        l.on_message(&mut tc.ctx(), C, apply(2, 1, 3));
        tc.take_effects();
        tc.crash();
        let mut l2 = Ledger::new(LedgerConfig::default());
        l2.on_start(&mut tc.ctx());
        assert_eq!(
            observations::<LedgerObservation>(&tc.take_effects()),
            vec![LedgerObservation::Restored { keys: 2 }]
        );
        assert_eq!(l2.balance(0), Some(1_000_000 - 7));
        assert_eq!(l2.balance(1), Some(1_000_003));
        l2.on_message(&mut tc.ctx(), C, apply(1, 0, -7));
        assert_eq!(answers(&mut tc), vec![(Outcome::Applied, 1_000_000 - 7)]);
        assert_eq!(l2.balance(0), Some(1_000_000 - 7), "not applied twice");
        drop(l);
    }

    #[test]
    fn a_long_log_becomes_a_snapshot_that_restores_the_same_state() {
        let config = LedgerConfig {
            keys_max: 5,
            ..LedgerConfig::default()
        };
        let (mut l, mut tc) = started(config.clone());
        for key in 0..2500 {
            l.on_message(&mut tc.ctx(), C, apply(key, (key % 10) as u32, -1));
        }
        tc.take_effects();
        assert_eq!(l.keys(), 5, "the oldest keys are forgotten beyond keys_max");
        assert!(tc.disk.read(SNAPSHOT_KEY).is_some());
        tc.crash();
        let mut l2 = Ledger::new(config);
        l2.on_start(&mut tc.ctx());
        assert_eq!(l2.keys(), 5);
        assert_eq!(l2.balances, l.balances);
        assert_eq!(l2.store, l.store);
        assert!(l2.log_lines < 1024);
    }

    #[test]
    fn options_have_limits_reported_at_their_keys() {
        let bad = LedgerConfig {
            accounts: 0,
            initial_balance: -1,
            fail_probability: 1.5,
            keys_max: 0,
        };
        let keys: Vec<String> = bad
            .validate()
            .into_iter()
            .map(|e| e.path[0].clone())
            .collect();
        assert_eq!(
            keys,
            [
                "accounts",
                "initial_balance",
                "fail_probability",
                "keys_max"
            ]
        );
        assert!(LedgerConfig::default().validate().is_empty());
        assert!(toml::from_str::<LedgerConfig>("acounts = 3").is_err());
        let nan = LedgerConfig {
            fail_probability: f64::NAN,
            ..LedgerConfig::default()
        };
        assert_eq!(nan.validate().len(), 1);
    }
}
