//! Families from outside the crate (issue 12, item 5): a tiny family defined entirely in this
//! file, with only faultline's public API, runs under faultline's network, faults, checks and
//! reports through `api::Runner::builtin().with(&FAMILY)`.
//!
//! The `beacon` protocol: every node sends a numbered heartbeat to each of its peers every
//! `interval` (of its local clock) and observes each heartbeat it receives. Its family check
//! `heard-from-all`: once the network has healed for good, every up beacon node hears from every
//! other up beacon node within `within`.

use std::path::Path;

use faultline::api::Runner;
use faultline::check::{self, CheckInfo, CheckResult};
use faultline::family::{self, Family, NodeSetup, OptionError, ProtocolInfo, RoleContext};
use faultline::process::{Context, NodeId, Process, TimerId};
use faultline::scenario::{Duration, Scenario, Verdict};
use faultline::sim::RunRecord;
use serde::{Deserialize, Serialize};

// ----- the family -----

/// The beacon's options (`options = { interval = "100ms" }`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BeaconConfig {
    /// Time between two heartbeats, on the node's local clock; positive.
    #[serde(default = "default_interval")]
    interval: Duration,
}

fn default_interval() -> Duration {
    Duration::from_millis(100)
}

/// The one message: heartbeat number `seq` of its sender.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Beat {
    seq: u64,
}

/// The one timer: time to send the next heartbeats.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Tick;

/// The one fact: this node received heartbeat `seq` from `from`.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Heard {
    from: NodeId,
    seq: u64,
}

struct Beacon {
    peers: Vec<NodeId>,
    interval: std::time::Duration,
    seq: u64,
}

impl Process for Beacon {
    type Message = Beat;
    type Timer = Tick;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(self.interval, Tick);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: Beat) {
        ctx.observe(Heard {
            from,
            seq: message.seq,
        });
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, _id: TimerId, _timer: Tick) {
        for &peer in &self.peers {
            ctx.send(peer, Beat { seq: self.seq });
        }
        self.seq += 1;
        ctx.set_timer(self.interval, Tick);
    }
}

fn beacon_rules(config: &BeaconConfig, _: &RoleContext<'_>) -> Vec<OptionError> {
    if config.interval.as_nanos() == 0 {
        vec![OptionError::at(
            "interval",
            format!("expected a positive duration, found {}", config.interval),
        )]
    } else {
        Vec::new()
    }
}

fn build_beacon(
    setup: &NodeSetup,
    config: &BeaconConfig,
) -> Box<dyn faultline::process::AnyProcess> {
    Box::new(Beacon {
        peers: setup.peers(),
        interval: config.interval.to_std(),
        seq: 0,
    })
}

const BEACON: ProtocolInfo = ProtocolInfo {
    name: "beacon",
    summary: "every node sends a numbered heartbeat to its peers each interval",
    serves: &[],
    bugs: &[],
    built_on: &[],
    configure: |ctx| family::configure(ctx, beacon_rules, build_beacon),
};

/// `[check.heard-from-all]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeardConfig {
    #[serde(default = "yes")]
    enabled: bool,
    /// How soon after the final heal every up node must have heard from every other.
    #[serde(default = "default_within")]
    within: Duration,
}

fn yes() -> bool {
    true
}

fn default_within() -> Duration {
    Duration::from_millis(500)
}

impl Default for HeardConfig {
    fn default() -> Self {
        HeardConfig {
            enabled: true,
            within: default_within(),
        }
    }
}

const HEARD_FROM_ALL: &str = "heard-from-all";

/// Every up beacon node heard from every other up beacon node in `[heal, heal + within]`, where
/// `heal` is the final heal (or, if the run never healed, the last `within` of the run).
fn heard_from_all(record: &RunRecord) -> CheckResult {
    let config: HeardConfig = record.scenario.check_options(HEARD_FROM_ALL);
    let within = config.within.as_nanos();
    let from = record
        .final_heal_ns
        .unwrap_or(record.end_ns.saturating_sub(within));
    let until = from.saturating_add(within).min(record.end_ns);
    let topo = &record.topology;
    let beacons: Vec<NodeId> = record
        .scenario
        .cluster
        .roles
        .iter()
        .filter(|r| r.protocol == BEACON.name)
        .flat_map(|r| topo.groups[&r.name].iter().copied())
        .filter(|n| faultline::sim::is_up(record.final_status[n.index()]))
        .collect();
    let mut missing = Vec::new();
    for &to in &beacons {
        for &from_node in beacons.iter().filter(|&&n| n != to) {
            let heard = record.observations.iter().any(|o| {
                o.node == to
                    && (from..=until).contains(&o.t_ns)
                    && o.get::<Heard>().is_some_and(|h| h.from == from_node)
            });
            if !heard {
                missing.push(format!(
                    "{} heard nothing from {} between {} and {}",
                    topo.name(to),
                    topo.name(from_node),
                    check::ms(from),
                    check::ms(until)
                ));
            }
        }
    }
    let (verdict, summary) = if missing.is_empty() {
        (
            Verdict::Pass,
            format!("all {} beacons heard from each other", beacons.len()),
        )
    } else {
        (
            Verdict::Fail,
            format!(
                "{} pairs of beacons did not hear from each other",
                missing.len()
            ),
        )
    };
    let mut result = CheckResult::new(HEARD_FROM_ALL, verdict, summary);
    result.evidence = missing;
    result
}

const HEARD_CHECK: CheckInfo = CheckInfo {
    name: HEARD_FROM_ALL,
    summary: "after the final heal every up beacon hears from every other within `within`",
    applies_to: |s| s.runs_protocol(BEACON.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<HeardConfig>,
    resolve: check::resolve_as::<HeardConfig>,
    run: heard_from_all,
};

static FAMILY: Family = Family {
    name: "beacon",
    summary: "heartbeats between peers (a family defined outside faultline, in a test)",
    protocols: &[BEACON],
    workloads: &[],
    checks: &[HEARD_CHECK],
    decisions: None,
    narrator: None,
    fold: None,
};

// ----- scenarios -----

fn runner() -> Runner {
    Runner::builtin().with(&FAMILY)
}

/// Three beacons; `faults` and `extra` are appended as written.
fn beacons(faults: &str, extra: &str) -> String {
    format!(
        r#"name = "beacons"
seed = 7
duration = "3s"

[[cluster.role]]
name = "beacons"
protocol = "beacon"
nodes = 3
options = {{ interval = "100ms" }}
{faults}
[check.heard-from-all]
within = "500ms"
{extra}"#
    )
}

/// Isolates beacons1 at 500ms, healing after 1s (`true`) or never (`false`).
fn isolate_beacons1(heals: bool) -> String {
    let duration = if heals { "duration = \"1s\"\n" } else { "" };
    format!("\n[[fault]]\nat = \"500ms\"\nkind = \"isolate\"\ntarget = \"beacons1\"\n{duration}")
}

const PARTITION_FOREVER: &str = r#"
[[fault]]
at = "500ms"
kind = "partition"
groups = [["beacons1", "beacons2"], ["beacons3"]]
"#;

fn load(text: &str) -> Scenario {
    runner()
        .parse(Path::new("beacons.toml"), text)
        .unwrap_or_else(|e| panic!("{e:?}"))
}

fn check<'a>(outcome: &'a faultline::api::Outcome, name: &str) -> &'a CheckResult {
    outcome
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("check {name} did not run: {:?}", outcome.checks))
}

// ----- tests -----

#[test]
fn an_external_family_runs_from_a_file_and_its_check_passes_after_the_heal() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("beacons.toml");
    std::fs::write(&file, beacons(&isolate_beacons1(true), "")).unwrap();
    let runner = runner();
    let scenario = runner.load(&file).unwrap_or_else(|e| panic!("{e:?}"));
    let outcome = runner.run(&scenario, scenario.seed);
    assert_eq!(outcome.verdict, Verdict::Pass, "{:?}", outcome.checks);
    let heard = check(&outcome, HEARD_FROM_ALL);
    assert_eq!(heard.verdict, Verdict::Pass, "{heard:?}");
    assert_eq!(heard.summary, "all 3 beacons heard from each other");
    // The family's messages, facts and node names went through the simulator and its trace.
    let record = &outcome.record;
    assert!(record.stats.messages_delivered > 0);
    assert!(
        record
            .observations
            .iter()
            .any(|o| o.get::<Heard>().is_some())
    );
    assert_eq!(record.topology.names, ["beacons1", "beacons2", "beacons3"]);
    let trace = String::from_utf8(record.trace_jsonl.to_vec()).unwrap();
    assert!(trace.contains("beacons1"), "node names in the trace");
    // The isolation cut beacons1 off and healed at 1.5s.
    assert_eq!(record.final_heal_ns, Some(1_500_000_000));
    assert!(
        record
            .stats
            .messages_dropped
            .get("partition")
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn an_external_family_check_fails_when_a_node_stays_isolated() {
    let outcome = runner().run(&load(&beacons(&isolate_beacons1(false), "")), 7);
    assert_eq!(outcome.verdict, Verdict::Fail);
    let heard = check(&outcome, HEARD_FROM_ALL);
    assert_eq!(heard.verdict, Verdict::Fail);
    // beacons1 hears nobody and nobody hears beacons1: 4 of the 6 ordered pairs.
    assert_eq!(heard.evidence.len(), 4, "{:?}", heard.evidence);
    assert!(heard.evidence.iter().all(|e| e.contains("beacons1")));
}

#[test]
fn an_external_family_check_fails_when_a_partition_never_heals() {
    let outcome = runner().run(&load(&beacons(PARTITION_FOREVER, "")), 7);
    let heard = check(&outcome, HEARD_FROM_ALL);
    assert_eq!(heard.verdict, Verdict::Fail);
    assert!(
        heard
            .evidence
            .iter()
            .any(|e| e.starts_with("beacons3 heard nothing from beacons1")),
        "{:?}",
        heard.evidence
    );
    assert!(
        !heard
            .evidence
            .iter()
            .any(|e| e.starts_with("beacons1 heard nothing from beacons2")),
        "beacons1 and beacons2 are on one side: {:?}",
        heard.evidence
    );
}

#[test]
fn an_external_family_runs_deterministically_under_a_seed() {
    let runner = runner();
    let scenario = load(&beacons(
        &isolate_beacons1(true),
        "[network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"20ms\" }\n",
    ));
    let a = runner.run(&scenario, 11);
    let b = runner.run(&scenario, 11);
    assert_eq!(a.record.trace_hash, b.record.trace_hash);
    assert_eq!(a.record.trace_jsonl.to_vec(), b.record.trace_jsonl.to_vec());
    let c = runner.run(&scenario, 12);
    assert_ne!(
        a.record.trace_hash, c.record.trace_hash,
        "another seed draws other latencies"
    );
}

#[test]
fn a_bad_option_of_an_external_family_names_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad-beacons.toml");
    let runner = runner();
    let interval = |option: &str| beacons("", "").replace("interval = \"100ms\"", option);
    let cases = [
        (
            interval("interval = \"0s\""),
            (9, 24),
            "cluster.role[0].options.interval: expected a positive duration, found 0s",
        ),
        (
            interval("interval = 5"),
            (9, 24),
            "cluster.role[0].options.interval: expected a duration string with a unit, such as \"150ms\" or \"2s\", found 5",
        ),
        (
            interval("intervall = \"1s\""),
            (9, 13),
            "cluster.role[0].options.intervall: unknown field `intervall`, expected `interval`",
        ),
        (
            beacons("", "within = \"1s\"\nlouder = true\n").replace("within = \"500ms\"\n", ""),
            (13, 1),
            "check.heard-from-all.louder: unknown field `louder`",
        ),
    ];
    for (text, (line, column), message) in cases {
        std::fs::write(&file, &text).unwrap();
        let errors = runner.load(&file).unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = &errors[0];
        assert_eq!(e.file, file);
        assert!(e.message.starts_with(message), "{}\n{text}", e);
        assert_eq!((e.line, e.column), (line, column), "{e}\n{text}");
        assert!(
            e.to_string()
                .starts_with(&format!("{}:{line}:{column}: ", file.display()))
        );
    }
}

#[test]
fn without_the_family_the_builtin_registry_refuses_its_protocol() {
    let text = beacons("", "");
    let errors = Runner::builtin()
        .parse(Path::new("beacons.toml"), &text)
        .unwrap_err();
    assert_eq!((errors[0].line, errors[0].column), (7, 12), "{:?}", errors);
    assert!(
        errors[0].message.starts_with(
            "cluster.role[0].protocol: unknown protocol \"beacon\"; expected one of: "
        ),
        "{}",
        errors[0].message
    );
    // The same text loads once the family is added, and its check is listed.
    let scenario = load(&text);
    assert!(scenario.check.contains_key(HEARD_FROM_ALL));
    assert_eq!(
        scenario.cluster.roles[0].options["interval"].as_str(),
        Some("100ms")
    );
}
