//! The `payments` workload: clients that charge accounts on a `ledger` role, retrying each
//! charge under the same idempotency key until it is answered (Stripe's idempotency keys;
//! Brandur Leach, "Implementing Stripe-like Idempotency Keys in Postgres", 2017).
//!
//! Each client talks to one node of the first `ledger` role of its `talks_to` (node
//! `client index mod nodes`) and runs one payment at a time: a debit of `amount` units from a
//! random account below `accounts`, with a fresh idempotency key. Without an answer after
//! `request_timeout` it sends the same request again with the same key, after a back-off
//! that doubles from `retry_delay_min` up to `retry_delay_max`, at most `attempts_max`
//! attempts in all. A lost request or a lost answer both look like a timeout, so under loss
//! and partitions a payment the ledger already applied is sent again: the key makes the
//! ledger answer it from its store instead of charging twice.
//!
//! Planted bug `no-idempotency-key`: every attempt carries a fresh key (the key is made inside
//! the retry loop), so a retry of an applied payment is applied again: `no-double-apply`
//! fails.
//!
//! # History
//!
//! One `pay` operation per payment: key the account (as a string), value the amount; `ok`
//! when the ledger applied it, `fail` (error: the outcome, e.g. `declined`) when it refused
//! it, `info` (error `timeout`) when `attempts_max` attempts went unanswered. Process ids are
//! `client index * 2^32 + incarnation * 2^20 + round`, a new round after every `info`.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::ledger::{LedgerMessage, LedgerObservation, Outcome};
use crate::families::{check_duration, check_duration_from, next_incarnation};
use crate::family::{
    self, Bug, Configured, HistoryTraits, NodeSetup, OptionError, RoleContext, WorkloadInfo,
};
use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{Context, NodeId, Process, TimerId};
use crate::scenario::Duration;

/// The workload's name.
pub const WORKLOAD_NAME: &str = "payments";
/// Disk key of a payments client's incarnation counter.
pub const EPOCH_KEY: &str = "payments/epoch";
/// Shortest request timeout, think time or retry delay (1 ms).
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);
/// Most attempts per request.
pub const ATTEMPTS_MAX: u32 = 1000;
/// Largest amount of one payment or saga step.
pub const AMOUNT_MAX: i64 = 1_000_000;

/// The planted bugs of the `payments` workload.
pub const BUGS: [Bug; 1] = [Bug {
    name: "no-idempotency-key",
    summary: "every retry of a payment carries a fresh idempotency key, so a payment whose answer was lost is charged again",
    caught_by: super::saga_checks::NO_DOUBLE_APPLY,
}];

/// The `payments` workload.
pub const WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: WORKLOAD_NAME,
    summary: "charge accounts on a ledger, retrying each payment under its idempotency key until answered",
    history: HistoryTraits {
        model: None,
        availability: false,
        stale_reads: false,
    },
    bugs: &BUGS,
    configure,
};

/// The position in `ctx.talks_to` of the first `ledger` role, or the error at `talks_to`.
pub fn ledger_position(ctx: &RoleContext<'_>, workload: &str) -> Result<usize, OptionError> {
    ctx.talks_to
        .iter()
        .position(|p| p.name == super::ledger::PROTOCOL_NAME)
        .ok_or_else(|| {
            OptionError::of_role(
                "talks_to",
                format!("a {workload} client group talks to at least one ledger role"),
            )
        })
}

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let config: PaymentsConfig = parse_caller_options(ctx.options)?;
    let mut errors = if ctx.checking {
        config.validate()
    } else {
        Vec::new()
    };
    let position = ledger_position(ctx, WORKLOAD_NAME).map_err(|e| errors.push(e));
    if !errors.is_empty() {
        return Err(errors);
    }
    let position = position.expect("no errors");
    let resolved = family::resolved_options(&config);
    Ok(Configured {
        options: resolved,
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            let nodes = &setup.talks_to[position].1;
            let ledger = nodes[setup.client_index as usize % nodes.len()];
            Box::new(PaymentsClient::new(
                setup.client_index,
                ledger,
                config.clone(),
            ))
        }),
    })
}

/// Planted bugs of the `payments` workload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentsBug {
    /// Every attempt carries a fresh idempotency key, so a retried payment applies twice.
    #[serde(rename = "no-idempotency-key")]
    NoIdempotencyKey,
}

/// When a caller starts requests and how it retries them: the options `payments` and `saga`
/// share (flattened into each). Durations are on the caller's local clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pacing {
    /// Pause between the end of one payment or saga and the start of the next (default 100ms,
    /// from 1ms to 1h).
    #[serde(default = "default_think_time")]
    pub think_time: Duration,
    /// An attempt without an answer after this long is retried (default 100ms, 1ms to 1h).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: Duration,
    /// Back-off before the first retry, doubling after (default 20ms, 1ms to 1h).
    #[serde(default = "default_retry_delay_min")]
    pub retry_delay_min: Duration,
    /// The back-off's cap (default 500ms, from `retry_delay_min` to 1h).
    #[serde(default = "default_retry_delay_max")]
    pub retry_delay_max: Duration,
    /// The first one starts at this local time (default 0s, at most 1h).
    #[serde(default)]
    pub start: Duration,
    /// None starts at or after this local time (default: never stop; at most 1h); the one in
    /// flight runs to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Duration>,
}

fn default_think_time() -> Duration {
    Duration::from_millis(100)
}
fn default_request_timeout() -> Duration {
    Duration::from_millis(100)
}
fn default_retry_delay_min() -> Duration {
    Duration::from_millis(20)
}
fn default_retry_delay_max() -> Duration {
    Duration::from_millis(500)
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            think_time: default_think_time(),
            request_timeout: default_request_timeout(),
            retry_delay_min: default_retry_delay_min(),
            retry_delay_max: default_retry_delay_max(),
            start: Duration(0),
            stop: None,
        }
    }
}

impl Pacing {
    /// The back-off before attempt `attempt` (2 is the first retry):
    /// `min(retry_delay_max, retry_delay_min * 2^(attempt - 2))`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(2).min(40);
        let d = self
            .retry_delay_min
            .as_nanos()
            .saturating_mul(1u64 << doublings);
        Duration(d.min(self.retry_delay_max.as_nanos()))
    }

    /// True once the local clock has reached `stop`.
    pub fn stopped(&self, ctx: &Context<'_>) -> bool {
        self.stop
            .is_some_and(|s| ctx.local_time_ns() >= s.as_nanos() as i64)
    }

    /// How long from now (local clock) until `start`: zero once it has passed.
    pub fn until_start(&self, ctx: &Context<'_>) -> std::time::Duration {
        let wait = (self.start.as_nanos() as i64).saturating_sub(ctx.local_time_ns());
        std::time::Duration::from_nanos(wait.max(0) as u64)
    }

    /// Every problem with these options, each at its key: the durations from 1ms to 1h
    /// (`start` and `stop` from 0s), and `retry_delay_max` at least `retry_delay_min`.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        for (key, value) in [
            ("think_time", self.think_time),
            ("request_timeout", self.request_timeout),
            ("retry_delay_min", self.retry_delay_min),
            ("retry_delay_max", self.retry_delay_max),
        ] {
            check_duration_from(&mut errors, key, value, MIN_INTERVAL);
        }
        if self.retry_delay_max < self.retry_delay_min {
            errors.push(OptionError::at(
                "retry_delay_max",
                format!(
                    "expected at least retry_delay_min ({}), found {}",
                    self.retry_delay_min, self.retry_delay_max
                ),
            ));
        }
        check_duration(&mut errors, "start", self.start, true);
        if let Some(stop) = self.stop {
            check_duration(&mut errors, "stop", stop, true);
        }
        errors
    }
}

/// Timers of a `payments` client and of a `saga` coordinator.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "timer", rename_all = "kebab-case")]
pub enum CallerTimer {
    /// Start the next payment or saga.
    Next,
    /// Attempt `attempt` of `request` got no answer in time.
    Timeout {
        /// The request.
        request: u64,
        /// The attempt.
        attempt: u32,
    },
    /// Send the next attempt of `request` (the back-off ended).
    Retry {
        /// The request.
        request: u64,
    },
}

/// Parses a `payments` or `saga` group's options, a config flattening a [`Pacing`]: unknown
/// keys are errors at the key (`stop` and `bugs` are written out only when set).
pub fn parse_caller_options<T>(options: &toml::Table) -> Result<T, Vec<OptionError>>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    family::parse_flattened_options(options, &["stop", "bugs"]).map_err(|errors| {
        errors
            .into_iter()
            .map(|e| {
                if !e.path.is_empty() {
                    return e;
                }
                // serde loses the path through a flattened struct: the key is the one whose
                // value fails alone (every key has a default).
                let key = options.iter().find(|(k, v)| {
                    let alone = toml::Table::from_iter([((*k).clone(), (*v).clone())]);
                    family::parse_options::<T>(&alone).is_err()
                });
                OptionError {
                    path: key.map(|(k, _)| vec![k.clone()]).unwrap_or_default(),
                    ..e
                }
            })
            .collect()
    })
}

/// Pushes an error at `key` unless `value` is within `[1, max]`.
pub fn check_count(errors: &mut Vec<OptionError>, key: &str, value: i64, max: i64) {
    if !(1..=max).contains(&value) {
        errors.push(OptionError::at(
            key,
            format!("expected from 1 to {max}, found {value}"),
        ));
    }
}

/// Options of a `payments` client group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaymentsConfig {
    /// When payments start and how they are retried.
    #[serde(flatten)]
    pub pacing: Pacing,
    /// Units each payment debits (default 1, from 1 to 1000000).
    #[serde(default = "one")]
    pub amount: i64,
    /// Accounts paid from, chosen at random below this (default 10, from 1 to 100000).
    #[serde(default = "default_accounts")]
    pub accounts: u32,
    /// Attempts per payment before it ends in `info` (default 10, from 1 to 1000).
    #[serde(default = "default_attempts_max")]
    pub attempts_max: u32,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<PaymentsBug>,
}

pub(crate) fn one() -> i64 {
    1
}
fn default_accounts() -> u32 {
    10
}
fn default_attempts_max() -> u32 {
    10
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        PaymentsConfig {
            pacing: Pacing::default(),
            amount: 1,
            accounts: default_accounts(),
            attempts_max: default_attempts_max(),
            bugs: Vec::new(),
        }
    }
}

impl PaymentsConfig {
    /// Every problem with these options, each at its key (none: valid).
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = self.pacing.validate();
        check_count(&mut errors, "amount", self.amount, AMOUNT_MAX);
        check_count(
            &mut errors,
            "accounts",
            self.accounts.into(),
            super::ledger::ACCOUNTS_MAX.into(),
        );
        check_count(
            &mut errors,
            "attempts_max",
            self.attempts_max.into(),
            ATTEMPTS_MAX.into(),
        );
        errors
    }
}

/// The payment in flight.
#[derive(Clone, Debug)]
struct Payment {
    request: u64,
    key: u64,
    account: u32,
    attempt: u32,
    process: u64,
    timeout: Option<TimerId>,
}

/// A payments client.
#[derive(Debug)]
pub struct PaymentsClient {
    client_index: u32,
    ledger: NodeId,
    config: PaymentsConfig,
    epoch: u64,
    round: u64,
    requests: u64,
    keys: u64,
    current: Option<Payment>,
}

impl PaymentsClient {
    /// Client number `client_index` (among every client of the cluster) paying on `ledger`.
    pub fn new(client_index: u32, ledger: NodeId, config: PaymentsConfig) -> Self {
        PaymentsClient {
            client_index,
            ledger,
            config,
            epoch: 0,
            round: 0,
            requests: 0,
            keys: 0,
            current: None,
        }
    }

    fn process(&self) -> u64 {
        ((self.client_index as u64) << 32) | ((self.epoch & 0x7ff) << 20) | (self.round & 0xf_ffff)
    }

    fn fresh_key(&mut self) -> u64 {
        self.keys += 1;
        (self.epoch << 32) | self.keys
    }

    fn event(&self, p: &Payment, kind: EventType) -> HistoryEvent {
        HistoryEvent::new(
            p.process,
            kind,
            Function::Pay,
            Some(p.account.to_string()),
            Value::Int(self.config.amount),
        )
    }

    fn send(&self, ctx: &mut Context<'_>, p: &mut Payment) {
        ctx.send(
            self.ledger,
            LedgerMessage::Apply {
                key: p.key,
                request: p.request,
                account: p.account,
                delta: -self.config.amount,
            },
        );
        p.timeout = Some(ctx.set_timer(
            self.config.pacing.request_timeout.to_std(),
            CallerTimer::Timeout {
                request: p.request,
                attempt: p.attempt,
            },
        ));
    }

    fn start_payment(&mut self, ctx: &mut Context<'_>) {
        if self.current.is_some() || self.config.pacing.stopped(ctx) {
            return;
        }
        self.requests += 1;
        let mut p = Payment {
            request: (self.epoch << 32) | self.requests,
            key: self.fresh_key(),
            account: ctx.rng().gen_range(0..self.config.accounts),
            attempt: 1,
            process: self.process(),
            timeout: None,
        };
        ctx.record(self.event(&p, EventType::Invoke));
        self.send(ctx, &mut p);
        self.current = Some(p);
    }

    fn finish(&mut self, ctx: &mut Context<'_>, kind: EventType, error: Option<&str>) {
        let Some(p) = self.current.take() else {
            return;
        };
        if let Some(t) = p.timeout {
            ctx.cancel_timer(t);
        }
        let mut event = self.event(&p, kind);
        if let Some(e) = error {
            event = event.with_error(e);
        }
        ctx.record(event);
        if kind == EventType::Info {
            self.round += 1;
        }
        ctx.set_timer(self.config.pacing.think_time.to_std(), CallerTimer::Next);
    }
}

impl Process for PaymentsClient {
    type Message = LedgerMessage;
    type Timer = CallerTimer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = next_incarnation(ctx.disk(), EPOCH_KEY);
        ctx.set_timer(self.config.pacing.until_start(ctx), CallerTimer::Next);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _from: NodeId, message: LedgerMessage) {
        let LedgerMessage::Answer {
            request, outcome, ..
        } = message
        else {
            return;
        };
        if self.current.as_ref().is_none_or(|p| p.request != request) {
            return; // a late answer to an earlier payment (or to a bugged key's first copy)
        }
        match outcome {
            Outcome::Applied => self.finish(ctx, EventType::Ok, None),
            refused => self.finish(ctx, EventType::Fail, Some(refused.name())),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: CallerTimer) {
        match timer {
            CallerTimer::Next => self.start_payment(ctx),
            CallerTimer::Timeout { request, attempt } => {
                let Some(p) = self.current.as_mut() else {
                    return;
                };
                if p.request != request || p.attempt != attempt {
                    return;
                }
                p.timeout = None;
                if attempt >= self.config.attempts_max {
                    self.finish(ctx, EventType::Info, Some("timeout"));
                } else {
                    let delay = self.config.pacing.delay(attempt + 1);
                    ctx.set_timer(delay.to_std(), CallerTimer::Retry { request });
                }
            }
            CallerTimer::Retry { request } => {
                let Some(mut p) = self.current.take_if(|p| p.request == request) else {
                    return;
                };
                p.attempt += 1;
                if self.config.bugs.contains(&PaymentsBug::NoIdempotencyKey) {
                    p.key = self.fresh_key();
                }
                ctx.observe(LedgerObservation::Retried {
                    ledger: self.ledger,
                    request,
                    key: p.key,
                    attempt: p.attempt,
                });
                self.send(ctx, &mut p);
                self.current = Some(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Effect, TestContext, sent_messages, timers_set};

    const L: NodeId = NodeId(0);
    const C: NodeId = NodeId(3);

    fn started(config: PaymentsConfig) -> (PaymentsClient, TestContext) {
        let mut tc = TestContext::new(C, 7);
        let mut c = PaymentsClient::new(2, L, config);
        c.on_start(&mut tc.ctx());
        tc.take_effects();
        c.on_timer(&mut tc.ctx(), TimerId(0), CallerTimer::Next);
        (c, tc)
    }

    fn history(effects: &[Effect]) -> Vec<(EventType, Option<String>)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some((h.kind, h.error.clone())),
                _ => None,
            })
            .collect()
    }

    fn applies(effects: &[Effect]) -> Vec<(u64, u64)> {
        sent_messages::<LedgerMessage>(effects)
            .into_iter()
            .filter_map(|(_, m)| match m {
                LedgerMessage::Apply { key, request, .. } => Some((key, request)),
                _ => None,
            })
            .collect()
    }

    /// Times the pending attempt out and fires the retry it schedules.
    fn time_out(c: &mut PaymentsClient, tc: &mut TestContext) {
        let p = c.current.clone().unwrap();
        c.on_timer(
            &mut tc.ctx(),
            TimerId(0),
            CallerTimer::Timeout {
                request: p.request,
                attempt: p.attempt,
            },
        );
        c.on_timer(
            &mut tc.ctx(),
            TimerId(0),
            CallerTimer::Retry { request: p.request },
        );
    }

    #[test]
    fn a_timed_out_payment_is_retried_with_the_same_key() {
        let (mut c, mut tc) = started(PaymentsConfig::default());
        time_out(&mut c, &mut tc);
        let effects = tc.take_effects();
        let sent = applies(&effects);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], sent[1], "same key, same request");
        assert_eq!(history(&effects), vec![(EventType::Invoke, None)]);
        let request = sent[0].1;
        c.on_message(
            &mut tc.ctx(),
            L,
            LedgerMessage::Answer {
                key: sent[0].0,
                request,
                outcome: Outcome::Applied,
                balance: 5,
            },
        );
        let effects = tc.take_effects();
        assert_eq!(history(&effects), vec![(EventType::Ok, None)]);
        assert!(
            timers_set::<CallerTimer>(&effects)
                .iter()
                .any(|t| t.2 == CallerTimer::Next)
        );
    }

    #[test]
    fn bug_no_idempotency_key_gives_each_retry_a_fresh_key() {
        let (mut c, mut tc) = started(PaymentsConfig {
            bugs: vec![PaymentsBug::NoIdempotencyKey],
            ..PaymentsConfig::default()
        });
        time_out(&mut c, &mut tc);
        let sent = applies(&tc.take_effects());
        assert_eq!(sent[0].1, sent[1].1, "the same payment");
        assert_ne!(sent[0].0, sent[1].0, "a fresh key");
    }

    #[test]
    fn a_refusal_fails_and_attempts_max_unanswered_attempts_end_in_info() {
        let (mut c, mut tc) = started(PaymentsConfig {
            attempts_max: 2,
            ..PaymentsConfig::default()
        });
        let (key, request) = applies(&tc.take_effects())[0];
        c.on_message(
            &mut tc.ctx(),
            L,
            LedgerMessage::Answer {
                key,
                request,
                outcome: Outcome::Declined,
                balance: 0,
            },
        );
        assert_eq!(
            history(&tc.take_effects()),
            vec![(EventType::Fail, Some("declined".into()))]
        );
        c.on_timer(&mut tc.ctx(), TimerId(0), CallerTimer::Next);
        time_out(&mut c, &mut tc);
        let p = c.current.clone().unwrap();
        c.on_timer(
            &mut tc.ctx(),
            TimerId(0),
            CallerTimer::Timeout {
                request: p.request,
                attempt: 2,
            },
        );
        let h = history(&tc.take_effects());
        assert_eq!(h.last(), Some(&(EventType::Info, Some("timeout".into()))));
        assert!(c.current.is_none());
    }

    #[test]
    fn back_off_doubles_up_to_its_cap() {
        let r = Pacing::default();
        let ms: Vec<u64> = (2..9).map(|a| r.delay(a).as_nanos() / 1_000_000).collect();
        assert_eq!(ms, [20, 40, 80, 160, 320, 500, 500]);
        assert_eq!(r.delay(u32::MAX), Duration::from_millis(500));
    }

    #[test]
    fn options_have_limits_reported_at_their_keys() {
        let bad = PaymentsConfig {
            pacing: Pacing {
                think_time: Duration(0),
                retry_delay_min: Duration::from_secs(2),
                retry_delay_max: Duration::from_secs(1),
                ..Pacing::default()
            },
            amount: 0,
            accounts: 0,
            attempts_max: 0,
            ..PaymentsConfig::default()
        };
        let keys: Vec<String> = bad
            .validate()
            .into_iter()
            .map(|e| e.path[0].clone())
            .collect();
        assert_eq!(
            keys,
            [
                "think_time",
                "retry_delay_max",
                "amount",
                "accounts",
                "attempts_max"
            ]
        );
        let defaults = PaymentsConfig::default();
        let parsed: PaymentsConfig = parse_caller_options(&toml::Table::new()).unwrap();
        assert_eq!(parsed, defaults);
        assert!(defaults.validate().is_empty());
        let table = |text: &str| text.parse::<toml::Table>().unwrap();
        assert!(parse_caller_options::<PaymentsConfig>(&table("bugs = [\"no-such\"]")).is_err());
        let unknown = parse_caller_options::<PaymentsConfig>(&table("think = \"1s\""));
        assert_eq!(unknown.unwrap_err()[0].path, ["think"]);
        let wrong = parse_caller_options::<PaymentsConfig>(&table("amount = 1\nstop = 5"));
        assert_eq!(
            wrong.unwrap_err()[0].path,
            ["stop"],
            "at the key, through the flatten"
        );
    }
}
