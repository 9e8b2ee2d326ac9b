//! End to end through the simulator (`sim::run`, then every check that applies): three `coordination` servers and a
//! scripted client role (a test family) that takes a lease, creates a key with it, writes through
//! a guarded transaction, goes silent, and checks that the lease expired and the key is gone.

use serde::Serialize;

use super::{CoordAnswer, CoordCommand, CoordMessage, CoordOutcome, LeaseId};
use crate::families::lock::Observation;
use crate::family::{self, Family, NodeSetup, ProtocolInfo};
use crate::process::{AnyProcess, Context, NodeId, Process, TimerId};
use crate::scenario::{Scenario, Verdict};

const MS: i64 = 1_000_000;
/// The scripted client stops its keep-alives at this local time.
const SILENT_AT_MS: i64 = 2500;
const TTL_MS: u64 = 500;

/// The script's timers.
#[derive(Clone, Debug, PartialEq, Serialize)]
enum Tick {
    /// Send the request again (to the next server) if send number `attempt` is still
    /// unanswered.
    Retry {
        attempt: u64,
    },
    KeepAlive,
    /// Run request `id` (the steps after the hold).
    Later {
        id: u64,
    },
}

/// What the script saw: request `id` answered `outcome`.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Answered {
    id: u64,
    outcome: CoordOutcome,
}

/// A client that runs a fixed sequence of requests (ids 1..=5), each until answered.
struct Script {
    id: NodeId,
    servers: Vec<NodeId>,
    target: usize,
    pending: Option<(u64, CoordCommand)>,
    /// Sends so far.
    attempt: u64,
    lease: LeaseId,
    revision: u64,
}

impl Script {
    fn send(&mut self, ctx: &mut Context<'_>, id: u64, command: CoordCommand) {
        self.pending = Some((id, command.clone()));
        ctx.send(
            self.servers[self.target],
            CoordMessage::Request { id, command },
        );
        self.attempt += 1;
        let attempt = self.attempt;
        ctx.set_timer(
            std::time::Duration::from_millis(300),
            Tick::Retry { attempt },
        );
    }

    fn txn(&self) -> CoordCommand {
        CoordCommand::Txn {
            guard_key: "/lock/a".into(),
            guard_revision: self.revision,
            key: "/resource".into(),
            value: "written".into(),
            writer: self.id,
            token: self.revision,
        }
    }

    fn next(&mut self, ctx: &mut Context<'_>, id: u64) {
        match id {
            2 => self.send(
                ctx,
                2,
                CoordCommand::Create {
                    key: "/lock/a".into(),
                    value: "script".into(),
                    lease: Some(self.lease),
                    sequential: false,
                },
            ),
            3 => self.send(ctx, 3, self.txn()),
            4 => self.send(ctx, 4, self.txn()),
            5 => self.send(ctx, 5, CoordCommand::range("/lock/")),
            _ => {}
        }
    }
}

impl Process for Script {
    type Message = CoordMessage;
    type Timer = Tick;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(std::time::Duration::from_millis(500), Tick::Later { id: 1 });
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: CoordMessage) {
        match message {
            CoordMessage::Reply { id, answer }
                if self.pending.as_ref().is_some_and(|p| p.0 == id) =>
            {
                match answer {
                    CoordAnswer::Done { outcome } => {
                        self.pending = None;
                        self.target = self.servers.iter().position(|&s| s == from).unwrap_or(0);
                        ctx.observe(Answered {
                            id,
                            outcome: outcome.clone(),
                        });
                        match (id, outcome) {
                            (1, CoordOutcome::Lease { lease, .. }) => {
                                self.lease = lease;
                                ctx.set_timer(
                                    std::time::Duration::from_millis(150),
                                    Tick::KeepAlive,
                                );
                                self.next(ctx, 2);
                            }
                            (2, CoordOutcome::Created { revision, .. }) => {
                                self.revision = revision;
                                self.next(ctx, 3);
                            }
                            (3, _) => {
                                ctx.set_timer(
                                    std::time::Duration::from_millis(
                                        4000 - ctx.local_time_ns().div_euclid(MS) as u64,
                                    ),
                                    Tick::Later { id: 4 },
                                );
                            }
                            (4, _) => self.next(ctx, 5),
                            _ => {}
                        }
                    }
                    CoordAnswer::Redirect { leader } => {
                        if let Some(i) =
                            leader.and_then(|l| self.servers.iter().position(|&s| s == l))
                        {
                            self.target = i;
                            let (id, command) = self.pending.clone().expect("matched");
                            self.send(ctx, id, command);
                        }
                    }
                    CoordAnswer::Fail { .. } | CoordAnswer::Unknown { .. } => {}
                }
            }
            CoordMessage::KeepAliveRedirect { leader, .. } => {
                if let Some(i) = leader.and_then(|l| self.servers.iter().position(|&s| s == l)) {
                    self.target = i;
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _: TimerId, timer: Tick) {
        match timer {
            Tick::Later { id: 1 } => self.send(ctx, 1, CoordCommand::LeaseGrant { ttl_ms: TTL_MS }),
            Tick::Later { id } => self.next(ctx, id),
            Tick::Retry { attempt } => {
                if let Some((id, command)) = self.pending.clone()
                    && attempt == self.attempt
                {
                    self.target = (self.target + 1) % self.servers.len();
                    self.send(ctx, id, command);
                }
            }
            Tick::KeepAlive => {
                if ctx.local_time_ns() < SILENT_AT_MS * MS {
                    let lease = self.lease;
                    ctx.send(self.servers[self.target], CoordMessage::KeepAlive { lease });
                    ctx.set_timer(std::time::Duration::from_millis(150), Tick::KeepAlive);
                }
            }
        }
    }
}

const SCRIPT: ProtocolInfo = ProtocolInfo {
    name: "coord-script",
    summary: "a scripted coordination client (tests)",
    serves: &[],
    bugs: &[],
    built_on: &[],
    configure: |ctx| {
        family::configure(
            ctx,
            |_: &toml::Table, _| Vec::new(),
            |setup: &NodeSetup, _| -> Box<dyn AnyProcess> {
                Box::new(Script {
                    id: setup.id,
                    servers: setup.topology.groups["coord"].clone(),
                    target: 0,
                    pending: None,
                    attempt: 0,
                    lease: 0,
                    revision: 0,
                })
            },
        )
    },
};

static SCRIPT_FAMILY: Family = Family {
    name: "coord-script",
    summary: "a scripted coordination client (tests)",
    protocols: &[SCRIPT],
    workloads: &[],
    checks: &[],
    decisions: None,
    narrator: None,
    fold: None,
};

const SCENARIO: &str = r#"name = "coordination-lease-expiry"
seed = 3
duration = "6s"

[[cluster.role]]
name = "coord"
protocol = "coordination"
nodes = 3
options = { lease_check_interval = "20ms" }

[[cluster.role]]
name = "script"
protocol = "coord-script"
nodes = 1
"#;

#[test]
fn a_silent_clients_lease_expires_and_its_key_is_gone_on_every_replica_with_raft_checks_passing() {
    let registry = crate::families::builtin().with(&SCRIPT_FAMILY);
    let scenario = Scenario::parse_all_with(
        std::path::Path::new("coord.toml"),
        SCENARIO.as_bytes(),
        &registry,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        scenario.runs_protocol("raft") && scenario.runs_protocol("fenced-storage"),
        "a coordination role counts as the protocols it is built on"
    );
    assert!(!scenario.runs_protocol("lock-server"));
    let record = crate::sim::run(&scenario, 3, &crate::sim::RunOptions::default());
    let checks = crate::check::run_checks(&record);
    let coord: Vec<NodeId> = record.topology.groups["coord"].clone();
    let script = record.topology.groups["script"][0];
    // Raft's checks and fenced-writes ran on the coordination role, and passed.
    for name in [
        "election-safety",
        "log-matching",
        "leader-completeness",
        "leader-append-only",
        "state-machine-safety",
        "fenced-writes",
    ] {
        let check = checks
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} did not run: {checks:?}"));
        assert_eq!(check.verdict, Verdict::Pass, "{check:?}");
    }
    let answers: Vec<(u64, &Answered)> = record
        .observations
        .iter()
        .filter(|o| o.node == script)
        .filter_map(|o| o.get::<Answered>().map(|a| (o.t_ns, a)))
        .collect();
    let ids: Vec<u64> = answers.iter().map(|(_, a)| a.id).collect();
    assert_eq!(ids, [1, 2, 3, 4, 5], "{answers:?}");
    let CoordOutcome::Lease { lease, .. } = answers[0].1.outcome else {
        panic!("{answers:?}")
    };
    assert!(matches!(
        answers[2].1.outcome,
        CoordOutcome::TxnDone {
            succeeded: true,
            ..
        }
    ));
    assert!(
        matches!(
            answers[3].1.outcome,
            CoordOutcome::TxnDone {
                succeeded: false,
                ..
            }
        ),
        "the lease and its key are gone: the guarded write fails"
    );
    assert_eq!(
        answers[4].1.outcome,
        match &answers[4].1.outcome {
            CoordOutcome::Keys { revision, .. } => CoordOutcome::Keys {
                keys: Vec::new(),
                revision: *revision
            },
            other => panic!("{other:?}"),
        },
        "no key left under /lock/"
    );
    // One expiry, by a coordination server, after the last keep-alive plus the TTL.
    let expired: Vec<(u64, NodeId)> = record
        .observations
        .iter()
        .filter(|o| {
            matches!(o.get::<Observation>(), Some(Observation::LeaseExpired { lease: l, .. }) if *l == lease)
        })
        .map(|o| (o.t_ns, o.node))
        .collect();
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert!(coord.contains(&expired[0].1));
    assert!(expired[0].0 >= (SILENT_AT_MS as u64 - 150 + TTL_MS) * 1_000_000);
    // Every replica applied the write (accepted) and then found the key gone (refused).
    for &n in &coord {
        let facts: Vec<&Observation> = record
            .observations
            .iter()
            .filter(|o| o.node == n)
            .filter_map(|o| o.get::<Observation>())
            .filter(|f| !matches!(f, Observation::LeaseExpired { .. }))
            .collect();
        assert!(
            matches!(
                facts[..],
                [Observation::WriteAccepted { client: a, .. }, Observation::WriteRefused { client: b, .. }]
                    if *a == script && *b == script
            ),
            "replica {n:?}: {facts:?}"
        );
    }
}
