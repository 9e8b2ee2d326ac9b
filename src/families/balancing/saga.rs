//! The `saga` workload: a saga coordinator that runs a multi-step workflow across `ledger`
//! services, with a compensation for each step (Garcia-Molina and Salem, "Sagas", SIGMOD
//! 1987; the saga execution coordinator and its log, as in Caitie McCaffrey's "Distributed
//! Sagas" talk, 2015).
//!
//! # Workflow
//!
//! A saga is a list of steps, one per `ledger` role named in `steps` (for example
//! `["orders", "payments", "inventory"]`: take an order slot, charge the customer, reserve the
//! stock). Step `i` debits `amount` units from account `saga mod accounts` on the node
//! `client index mod nodes` of role `steps[i]`; its compensation credits them back (cancel the
//! order, refund, release the stock). A credit is never refused by a ledger, so compensations
//! can always succeed.
//!
//! Each coordinator runs one saga at a time, `think_time` apart:
//!
//! 1. forward: send step 0, then, once a step is applied, the next one; when the last one is
//!    applied the saga is **committed**;
//! 2. when a step is refused (a ledger declined it, or a stock ran out), run the compensations
//!    of the steps already applied in reverse order; when the first step's compensation is
//!    acknowledged (or when step 0 itself was refused) the saga is **compensated**.
//!
//! Every request (a step or a compensation) has its own idempotency key, used for every
//! attempt: without an answer after `request_timeout` it is sent again after a back-off
//! doubling from `retry_delay_min` to `retry_delay_max`, with no attempt limit, until it is
//! answered (backward recovery requires compensations to be retried until they succeed, and a
//! step whose answer was lost must be learned before deciding). The keys are
//! `saga * 256 + step * 2 + (1 for a compensation)`, the request numbers the same, so the
//! checks can tell which saga and step a ledger applied.
//!
//! # The saga log
//!
//! The coordinator keeps its state on its disk (`saga/log`, synced before each step is sent):
//! the next saga number and the saga in flight (its number, history process, the step it is
//! at and whether it is compensating). A coordinator that crashes resumes the saga in flight
//! at boot, resending the pending request with its key, so a step applied before the crash is
//! answered from the ledger's store and not applied twice.
//!
//! Planted bug `saga-no-compensation`: when a step is refused the coordinator stops, leaving
//! the steps already applied in place: `saga-atomicity` fails.
//!
//! # History
//!
//! One `saga` operation per saga: key the saga number, value the number of steps; `ok` when
//! committed, `fail` when compensated (error `compensated`) or abandoned by the bug (error
//! `abandoned`). A saga resumed after a crash completes with the process that invoked it.
//! Process ids are `client index * 2^32 + incarnation * 2^20`.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::ledger::{LedgerMessage, LedgerObservation, Outcome};
use super::payments::{AMOUNT_MAX, CallerTimer, Pacing, check_count, one, parse_caller_options};
use crate::families::next_incarnation;
use crate::family::{
    self, Bug, Configured, HistoryTraits, NodeSetup, OptionError, RoleContext, WorkloadInfo,
};
use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{Context, NodeId, Process, TimerId};

/// The workload's name.
pub const WORKLOAD_NAME: &str = "saga";
/// Disk key of the saga log.
pub const LOG_KEY: &str = "saga/log";
/// Disk key of a coordinator's incarnation counter.
pub const EPOCH_KEY: &str = "saga/epoch";
/// Most steps in a saga.
pub const STEPS_MAX: usize = 16;

/// The request number (and idempotency key) of step `step` of saga `saga`, or of its
/// compensation.
pub fn request_of(saga: u64, step: u32, compensation: bool) -> u64 {
    (saga << 8) | (u64::from(step) << 1) | u64::from(compensation)
}

/// The (saga, step, compensation) of a request number made by [`request_of`].
pub fn decode_request(request: u64) -> (u64, u32, bool) {
    (
        request >> 8,
        ((request >> 1) & 0x7f) as u32,
        request & 1 == 1,
    )
}

/// The planted bugs of the `saga` workload.
pub const BUGS: [Bug; 1] = [Bug {
    name: "saga-no-compensation",
    summary: "when a step is refused the coordinator stops without compensating the steps already applied",
    caught_by: super::saga_checks::SAGA_ATOMICITY,
}];

/// The `saga` workload.
pub const WORKLOAD: WorkloadInfo = WorkloadInfo {
    name: WORKLOAD_NAME,
    summary: "a saga coordinator: a workflow of steps across ledger roles, compensated in reverse order when a step is refused, with a durable saga log",
    history: HistoryTraits {
        model: None,
        availability: false,
        stale_reads: false,
    },
    bugs: &BUGS,
    configure,
};

fn configure(ctx: &RoleContext<'_>) -> Result<Configured, Vec<OptionError>> {
    let mut config: SagaConfig = parse_caller_options(ctx.options)?;
    let spec = ctx.scenario.clients.iter().find(|g| g.name == ctx.name);
    let talks_to: Vec<&str> = spec
        .map(|g| g.talks_to.iter().map(String::as_str).collect())
        .unwrap_or_default();
    // The roles of `talks_to` that run a ledger (ctx.talks_to is in the same order).
    let ledger_roles: Vec<&str> = talks_to
        .iter()
        .zip(ctx.talks_to)
        .filter(|(_, p)| p.name == super::ledger::PROTOCOL_NAME)
        .map(|(r, _)| *r)
        .collect();
    if config.steps.is_empty() {
        config.steps = ledger_roles.iter().map(|r| r.to_string()).collect();
    }
    let errors = if ctx.checking {
        config.validate(&ledger_roles)
    } else {
        Vec::new()
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let resolved = family::resolved_options(&config);
    Ok(Configured {
        options: resolved,
        build: std::sync::Arc::new(move |setup: &NodeSetup| {
            let ledgers = config
                .steps
                .iter()
                .map(|role| {
                    let nodes = setup.role(role);
                    nodes[setup.client_index as usize % nodes.len()]
                })
                .collect();
            Box::new(SagaCoordinator::new(
                setup.client_index,
                ledgers,
                config.clone(),
            ))
        }),
    })
}

/// Planted bugs of the `saga` workload.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaBug {
    /// On a refused step the coordinator stops without compensating the steps applied.
    #[serde(rename = "saga-no-compensation")]
    NoCompensation,
}

/// Options of a `saga` client group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SagaConfig {
    /// When sagas start and how their requests are retried (a saga's requests have no
    /// attempt limit).
    #[serde(flatten)]
    pub pacing: Pacing,
    /// The `ledger` roles of the steps, in order (default: every `ledger` role of `talks_to`,
    /// in order; from 1 to 16 steps; a role may appear more than once).
    #[serde(default)]
    pub steps: Vec<String>,
    /// Units each step debits and its compensation credits (default 1, from 1 to 1000000).
    #[serde(default = "one")]
    pub amount: i64,
    /// Saga `s` uses account `s mod accounts` of each ledger (default 1, from 1 to 100000).
    #[serde(default = "one_account")]
    pub accounts: u32,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<SagaBug>,
}

fn one_account() -> u32 {
    1
}

impl Default for SagaConfig {
    fn default() -> Self {
        SagaConfig {
            pacing: Pacing::default(),
            steps: Vec::new(),
            amount: 1,
            accounts: 1,
            bugs: Vec::new(),
        }
    }
}

impl SagaConfig {
    /// Every problem with these options, each at its key, given the `ledger` roles the group
    /// talks to (none: valid).
    pub fn validate(&self, ledger_roles: &[&str]) -> Vec<OptionError> {
        let mut errors = Vec::new();
        if self.steps.is_empty() || self.steps.len() > STEPS_MAX {
            errors.push(OptionError::at(
                "steps",
                format!(
                    "expected from 1 to {STEPS_MAX} steps (ledger roles the group talks to), found {}",
                    self.steps.len()
                ),
            ));
        }
        for (i, step) in self.steps.iter().enumerate() {
            if !ledger_roles.contains(&step.as_str()) {
                errors.push(OptionError::at_path(
                    &["steps", &i.to_string()],
                    format!(
                        "expected a ledger role in the group's talks_to ({}), found \"{step}\"",
                        ledger_roles.join(", ")
                    ),
                ));
            }
        }
        check_count(&mut errors, "amount", self.amount, AMOUNT_MAX);
        check_count(
            &mut errors,
            "accounts",
            self.accounts.into(),
            super::ledger::ACCOUNTS_MAX.into(),
        );
        errors.extend(self.pacing.validate());
        errors
    }
}

/// How a saga ended.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SagaOutcome {
    /// Every step applied.
    Committed,
    /// A step was refused and every applied step was compensated.
    Compensated,
    /// A step was refused and the coordinator stopped (the planted bug).
    Abandoned,
}

/// Facts of saga coordinators, for `saga-atomicity`. The node that observed is the record's
/// node (the coordinator).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum SagaObservation {
    /// Saga `saga` of `steps` steps started (logged before its first step is sent).
    Started {
        /// The saga number (unique per coordinator).
        saga: u64,
        /// Its number of steps.
        steps: u32,
    },
    /// The coordinator learned the outcome of a step or compensation.
    Step {
        /// The saga.
        saga: u64,
        /// The step.
        step: u32,
        /// A compensation (else the forward step).
        compensation: bool,
        /// The ledger's answer.
        outcome: Outcome,
    },
    /// A restarted coordinator resumed the saga in flight from its log.
    Resumed {
        /// The saga.
        saga: u64,
        /// The step it is at.
        step: u32,
        /// Compensating (else going forward).
        compensating: bool,
    },
    /// The saga ended.
    Finished {
        /// The saga.
        saga: u64,
        /// How.
        outcome: SagaOutcome,
    },
}

/// The saga in flight, as logged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Running {
    saga: u64,
    process: u64,
    /// The step being applied (forward) or compensated.
    step: u32,
    compensating: bool,
}

/// The saga log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct SagaLog {
    /// Number of the next saga (from 1).
    next_saga: u64,
    current: Option<Running>,
}

/// A saga coordinator.
#[derive(Debug)]
pub struct SagaCoordinator {
    client_index: u32,
    /// The ledger node of each step.
    ledgers: Vec<NodeId>,
    config: SagaConfig,
    epoch: u64,
    log: SagaLog,
    attempt: u32,
    timeout: Option<TimerId>,
}

impl SagaCoordinator {
    /// Coordinator number `client_index` (among every client of the cluster), whose step `i`
    /// goes to `ledgers[i]`.
    pub fn new(client_index: u32, ledgers: Vec<NodeId>, config: SagaConfig) -> Self {
        SagaCoordinator {
            client_index,
            ledgers,
            config,
            epoch: 0,
            log: SagaLog::default(),
            attempt: 0,
            timeout: None,
        }
    }

    fn persist(&self, ctx: &mut Context<'_>) {
        let bytes = serde_json::to_vec(&self.log).expect("the saga log serializes");
        ctx.disk().write(LOG_KEY, bytes);
        ctx.disk().sync();
    }

    fn steps(&self) -> u32 {
        self.ledgers.len() as u32
    }

    fn request(r: &Running) -> u64 {
        request_of(r.saga, r.step, r.compensating)
    }

    /// Sends attempt `self.attempt` of the current request.
    fn send(&mut self, ctx: &mut Context<'_>) {
        let Some(r) = &self.log.current else {
            return;
        };
        let request = Self::request(r);
        let amount = self.config.amount;
        ctx.send(
            self.ledgers[r.step as usize],
            LedgerMessage::Apply {
                key: request,
                request,
                account: (r.saga % u64::from(self.config.accounts)) as u32,
                delta: if r.compensating { amount } else { -amount },
            },
        );
        self.timeout = Some(ctx.set_timer(
            self.config.pacing.request_timeout.to_std(),
            CallerTimer::Timeout {
                request,
                attempt: self.attempt,
            },
        ));
    }

    /// Persists the log and sends the first attempt of the current request.
    fn advance(&mut self, ctx: &mut Context<'_>) {
        self.persist(ctx);
        if let Some(t) = self.timeout.take() {
            ctx.cancel_timer(t);
        }
        self.attempt = 1;
        self.send(ctx);
    }

    fn start_saga(&mut self, ctx: &mut Context<'_>) {
        if self.log.current.is_some() || self.config.pacing.stopped(ctx) {
            return;
        }
        let saga = self.log.next_saga.max(1);
        self.log.next_saga = saga + 1;
        let process = ((self.client_index as u64) << 32) | ((self.epoch & 0x7ff) << 20);
        self.log.current = Some(Running {
            saga,
            process,
            step: 0,
            compensating: false,
        });
        ctx.observe(SagaObservation::Started {
            saga,
            steps: self.steps(),
        });
        ctx.record(HistoryEvent::new(
            process,
            EventType::Invoke,
            Function::Saga,
            Some(saga.to_string()),
            Value::Int(self.steps().into()),
        ));
        self.advance(ctx);
    }

    fn finish(&mut self, ctx: &mut Context<'_>, outcome: SagaOutcome) {
        let Some(r) = self.log.current.take() else {
            return;
        };
        if let Some(t) = self.timeout.take() {
            ctx.cancel_timer(t);
        }
        self.persist(ctx);
        ctx.observe(SagaObservation::Finished {
            saga: r.saga,
            outcome,
        });
        let (kind, error) = match outcome {
            SagaOutcome::Committed => (EventType::Ok, None),
            SagaOutcome::Compensated => (EventType::Fail, Some("compensated")),
            SagaOutcome::Abandoned => (EventType::Fail, Some("abandoned")),
        };
        let mut event = HistoryEvent::new(
            r.process,
            kind,
            Function::Saga,
            Some(r.saga.to_string()),
            Value::Int(self.steps().into()),
        );
        if let Some(e) = error {
            event = event.with_error(e);
        }
        ctx.record(event);
        ctx.set_timer(self.config.pacing.think_time.to_std(), CallerTimer::Next);
    }

    fn on_answer(&mut self, ctx: &mut Context<'_>, outcome: Outcome) {
        let Some(r) = self.log.current.clone() else {
            return;
        };
        ctx.observe(SagaObservation::Step {
            saga: r.saga,
            step: r.step,
            compensation: r.compensating,
            outcome,
        });
        let next = if r.compensating {
            // Whatever the answer, the compensation is settled (a credit is never refused but
            // for an unknown account, whose debit was refused too).
            r.step.checked_sub(1)
        } else if outcome == Outcome::Applied {
            if r.step + 1 == self.steps() {
                return self.finish(ctx, SagaOutcome::Committed);
            }
            self.log.current.as_mut().expect("checked").step += 1;
            return self.advance(ctx);
        } else if self.config.bugs.contains(&SagaBug::NoCompensation) {
            return self.finish(ctx, SagaOutcome::Abandoned);
        } else {
            self.log.current.as_mut().expect("checked").compensating = true;
            r.step.checked_sub(1)
        };
        match next {
            Some(step) => {
                self.log.current.as_mut().expect("checked").step = step;
                self.advance(ctx);
            }
            None => self.finish(ctx, SagaOutcome::Compensated),
        }
    }
}

impl Process for SagaCoordinator {
    type Message = LedgerMessage;
    type Timer = CallerTimer;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.epoch = next_incarnation(ctx.disk(), EPOCH_KEY);
        self.log = ctx
            .disk()
            .read(LOG_KEY)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if let Some(r) = self.log.current.clone() {
            ctx.observe(SagaObservation::Resumed {
                saga: r.saga,
                step: r.step,
                compensating: r.compensating,
            });
            self.attempt = 1;
            self.send(ctx);
            return;
        }
        let wait = self.config.pacing.until_start(ctx);
        // A restarted coordinator starts a little later than its peers (a jitter of up to one
        // think time), so restarts do not line sagas up.
        let jitter = if self.epoch > 0 {
            ctx.rng()
                .gen_range(0..=self.config.pacing.think_time.as_nanos())
        } else {
            0
        };
        ctx.set_timer(
            wait + std::time::Duration::from_nanos(jitter),
            CallerTimer::Next,
        );
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _from: NodeId, message: LedgerMessage) {
        let LedgerMessage::Answer {
            request, outcome, ..
        } = message
        else {
            return;
        };
        if self.log.current.as_ref().map(Self::request) == Some(request) {
            if let Some(t) = self.timeout.take() {
                ctx.cancel_timer(t);
            }
            self.on_answer(ctx, outcome);
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, timer: CallerTimer) {
        let current = self.log.current.as_ref().map(Self::request);
        match timer {
            CallerTimer::Next => self.start_saga(ctx),
            CallerTimer::Timeout { request, attempt } => {
                if current == Some(request) && attempt == self.attempt {
                    self.timeout = None;
                    let delay = self.config.pacing.delay(attempt + 1);
                    ctx.set_timer(delay.to_std(), CallerTimer::Retry { request });
                }
            }
            CallerTimer::Retry { request } => {
                if current == Some(request) && self.timeout.is_none() {
                    self.attempt += 1;
                    let r = self.log.current.as_ref().expect("checked");
                    ctx.observe(LedgerObservation::Retried {
                        ledger: self.ledgers[r.step as usize],
                        request,
                        key: request,
                        attempt: self.attempt,
                    });
                    self.send(ctx);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::{Effect, TestContext, observations, sent_messages};
    use crate::scenario::Duration;

    const C: NodeId = NodeId(9);
    const LEDGERS: [NodeId; 3] = [NodeId(0), NodeId(1), NodeId(2)];

    fn started(bugs: Vec<SagaBug>) -> (SagaCoordinator, TestContext) {
        let mut tc = TestContext::new(C, 3);
        let mut c = SagaCoordinator::new(
            0,
            LEDGERS.to_vec(),
            SagaConfig {
                bugs,
                ..SagaConfig::default()
            },
        );
        c.on_start(&mut tc.ctx());
        tc.take_effects();
        c.on_timer(&mut tc.ctx(), TimerId(0), CallerTimer::Next);
        (c, tc)
    }

    /// The (ledger, request, delta) of every Apply sent.
    fn applies(effects: &[Effect]) -> Vec<(NodeId, u64, i64)> {
        sent_messages::<LedgerMessage>(effects)
            .into_iter()
            .filter_map(|(to, m)| match m {
                LedgerMessage::Apply { request, delta, .. } => Some((to, request, delta)),
                _ => None,
            })
            .collect()
    }

    fn answer(c: &mut SagaCoordinator, tc: &mut TestContext, request: u64, outcome: Outcome) {
        c.on_message(
            &mut tc.ctx(),
            LEDGERS[0],
            LedgerMessage::Answer {
                key: request,
                request,
                outcome,
                balance: 0,
            },
        );
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

    #[test]
    fn requests_encode_saga_step_and_compensation() {
        for (saga, step, comp) in [(1, 0, false), (77, 15, true), (1 << 40, 3, false)] {
            assert_eq!(
                decode_request(request_of(saga, step, comp)),
                (saga, step, comp)
            );
        }
    }

    #[test]
    fn a_saga_runs_its_steps_in_order_and_commits() {
        let (mut c, mut tc) = started(vec![]);
        for step in 0..3 {
            let sent = applies(&tc.take_effects());
            assert_eq!(
                sent,
                vec![(LEDGERS[step as usize], request_of(1, step, false), -1)]
            );
            answer(
                &mut c,
                &mut tc,
                request_of(1, step, false),
                Outcome::Applied,
            );
        }
        let effects = tc.take_effects();
        assert_eq!(history(&effects), vec![(EventType::Ok, None)]);
        assert!(
            observations::<SagaObservation>(&effects).contains(&SagaObservation::Finished {
                saga: 1,
                outcome: SagaOutcome::Committed
            })
        );
    }

    #[test]
    fn a_refused_step_compensates_the_applied_ones_in_reverse_order() {
        let (mut c, mut tc) = started(vec![]);
        answer(&mut c, &mut tc, request_of(1, 0, false), Outcome::Applied);
        answer(&mut c, &mut tc, request_of(1, 1, false), Outcome::Applied);
        tc.take_effects();
        answer(&mut c, &mut tc, request_of(1, 2, false), Outcome::Declined);
        assert_eq!(
            applies(&tc.take_effects()),
            vec![(LEDGERS[1], request_of(1, 1, true), 1)]
        );
        answer(&mut c, &mut tc, request_of(1, 1, true), Outcome::Applied);
        assert_eq!(
            applies(&tc.take_effects()),
            vec![(LEDGERS[0], request_of(1, 0, true), 1)]
        );
        answer(&mut c, &mut tc, request_of(1, 0, true), Outcome::Applied);
        assert_eq!(
            history(&tc.take_effects()),
            vec![(EventType::Fail, Some("compensated".into()))]
        );
    }

    #[test]
    fn bug_saga_no_compensation_stops_at_the_refused_step() {
        let (mut c, mut tc) = started(vec![SagaBug::NoCompensation]);
        answer(&mut c, &mut tc, request_of(1, 0, false), Outcome::Applied);
        tc.take_effects();
        answer(
            &mut c,
            &mut tc,
            request_of(1, 1, false),
            Outcome::Insufficient,
        );
        let effects = tc.take_effects();
        assert!(applies(&effects).is_empty(), "no compensation sent");
        assert_eq!(
            history(&effects),
            vec![(EventType::Fail, Some("abandoned".into()))]
        );
    }

    #[test]
    fn a_compensation_is_retried_with_its_key_until_answered() {
        let (mut c, mut tc) = started(vec![]);
        answer(&mut c, &mut tc, request_of(1, 0, false), Outcome::Applied);
        answer(&mut c, &mut tc, request_of(1, 1, false), Outcome::Declined);
        tc.take_effects();
        let request = request_of(1, 0, true);
        for attempt in 1..30 {
            c.on_timer(
                &mut tc.ctx(),
                TimerId(0),
                CallerTimer::Timeout { request, attempt },
            );
            c.on_timer(&mut tc.ctx(), TimerId(0), CallerTimer::Retry { request });
            let effects = tc.take_effects();
            assert_eq!(applies(&effects), vec![(LEDGERS[0], request, 1)]);
            assert_eq!(
                observations::<LedgerObservation>(&effects)[0],
                LedgerObservation::Retried {
                    ledger: LEDGERS[0],
                    request,
                    key: request,
                    attempt: attempt + 1
                }
            );
        }
    }

    #[test]
    fn a_crashed_coordinator_resumes_its_saga_from_the_log() {
        let (mut c, mut tc) = started(vec![]);
        answer(&mut c, &mut tc, request_of(1, 0, false), Outcome::Applied);
        answer(&mut c, &mut tc, request_of(1, 1, false), Outcome::Declined);
        tc.crash();
        tc.local_time_ns = 5_000_000_000;
        let mut c2 = SagaCoordinator::new(0, LEDGERS.to_vec(), SagaConfig::default());
        c2.on_start(&mut tc.ctx());
        let effects = tc.take_effects();
        assert_eq!(
            observations::<SagaObservation>(&effects),
            vec![SagaObservation::Resumed {
                saga: 1,
                step: 0,
                compensating: true
            }]
        );
        assert_eq!(
            applies(&effects),
            vec![(LEDGERS[0], request_of(1, 0, true), 1)]
        );
        answer(&mut c2, &mut tc, request_of(1, 0, true), Outcome::Applied);
        let effects = tc.take_effects();
        let h: Vec<_> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::History(h) => Some(h.process),
                _ => None,
            })
            .collect();
        assert_eq!(h, vec![0], "completed by the process that invoked it");
        c2.on_timer(&mut tc.ctx(), TimerId(0), CallerTimer::Next);
        assert_eq!(
            observations::<SagaObservation>(&tc.take_effects())[0],
            SagaObservation::Started { saga: 2, steps: 3 },
            "saga numbers survive the crash"
        );
    }

    #[test]
    fn options_have_limits_reported_at_their_keys() {
        let bad = SagaConfig {
            steps: vec!["orders".into(), "nope".into()],
            amount: 0,
            accounts: 0,
            pacing: Pacing {
                think_time: Duration(0),
                ..Pacing::default()
            },
            ..SagaConfig::default()
        };
        let paths: Vec<String> = bad
            .validate(&["orders"])
            .into_iter()
            .map(|e| e.path.join("."))
            .collect();
        assert_eq!(paths, ["steps.1", "amount", "accounts", "think_time"]);
        let none = SagaConfig::default().validate(&["orders"]);
        assert_eq!(none[0].path, ["steps"]);
        let many = SagaConfig {
            steps: vec!["orders".into(); 17],
            ..SagaConfig::default()
        };
        assert_eq!(many.validate(&["orders"]).len(), 1);
    }
}
