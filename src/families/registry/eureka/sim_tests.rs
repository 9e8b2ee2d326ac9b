//! End to end through the simulator: three `eureka` servers and eight service instances (a test
//! role that registers through the [`EurekaAgent`] and keeps heartbeating), with one server cut
//! off from everything for 20 s. Self-preservation keeps its registry whole; the planted bug
//! `no-self-preservation` empties it and the `eviction-safety` check says so; a crashed
//! instance is evicted by every server after its lease.

use super::super::{AgentConfig, InstanceInfo, Observation, RegistryAgent, RegistryTimer};
use super::{AgentTimer, EurekaAgent, EurekaMessage};
use crate::family::{self, Family, NodeSetup, ProtocolInfo};
use crate::process::{AnyProcess, Context, NodeId, Process, TimerId};
use crate::scenario::{Scenario, Verdict};
use crate::sim::RunRecord;

/// A service instance reduced to its registration: registers at start, heartbeats forever.
struct Instance {
    agent: EurekaAgent,
    info: InstanceInfo,
}

impl Process for Instance {
    type Message = EurekaMessage;
    type Timer = RegistryTimer<AgentTimer>;

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let info = self.info.clone();
        self.agent.register(ctx, &info);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: NodeId, message: EurekaMessage) {
        self.agent.on_message(ctx, from, message);
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, id: TimerId, timer: Self::Timer) {
        if let RegistryTimer::Agent { timer } = timer {
            self.agent.on_timer(ctx, id, timer);
        }
    }
}

const INSTANCE: ProtocolInfo = ProtocolInfo {
    name: "eureka-test-instance",
    summary: "a service instance that only registers and heartbeats (tests)",
    serves: &[],
    bugs: &[],
    built_on: &[],
    configure: |ctx| {
        family::configure(
            ctx,
            |_: &toml::Table, _| Vec::new(),
            |setup: &NodeSetup, _| -> Box<dyn AnyProcess> {
                let registry = setup.topology.groups["eureka"].clone();
                let me = setup.topology.groups["web"]
                    .iter()
                    .position(|&n| n == setup.id)
                    .expect("an instance of web");
                let config = AgentConfig {
                    id: setup.id,
                    home: registry[me % registry.len()],
                    registry,
                    ttl_ms: 5_000,
                    heartbeat_interval_ms: 1_000,
                    request_timeout_ms: 900,
                };
                Box::new(Instance {
                    agent: EurekaAgent::new(config),
                    info: InstanceInfo {
                        service: "web".into(),
                        instance: setup.topology.names[setup.id.index()].clone(),
                        node: setup.id,
                        tags: Vec::new(),
                        weight: 1,
                    },
                })
            },
        )
    },
};

static TEST_FAMILY: Family = Family {
    name: "eureka-test",
    summary: "eureka servers and bare instances (tests)",
    protocols: &[INSTANCE],
    workloads: &[],
    checks: &[],
    decisions: None,
    narrator: None,
    fold: None,
};

/// Three servers, eight instances; `faults` and the servers' `bugs` as given.
fn run(bugs: &str, faults: &str, seed: u64) -> RunRecord {
    run_on(bugs, faults, "", seed)
}

/// [`run`] with more `[network]` keys.
fn run_on(bugs: &str, faults: &str, network: &str, seed: u64) -> RunRecord {
    let text = format!(
        r#"name = "eureka-sim"
duration = "45s"

[[cluster.role]]
name = "eureka"
protocol = "eureka"
nodes = 3
options = {{ eviction_interval = "1s", renewal_window = "5s", replication_batch_delay = "100ms", bugs = [{bugs}] }}

[[cluster.role]]
name = "web"
protocol = "eureka-test-instance"
nodes = 8

[network]
latency = {{ distribution = "uniform", min = "1ms", max = "20ms" }}
{network}

{faults}
"#
    );
    let registry = crate::families::builtin().with(&TEST_FAMILY);
    let scenario = Scenario::parse_all_with(
        std::path::Path::new("eureka.toml"),
        text.as_bytes(),
        &registry,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    crate::sim::run(&scenario, seed, &crate::sim::RunOptions::default())
}

/// (global ms, instance count) of every view change of `server`.
fn views(record: &RunRecord, server: &str) -> Vec<(u64, usize)> {
    let node = NodeId(
        record
            .topology
            .names
            .iter()
            .position(|n| n == server)
            .unwrap() as u32,
    );
    record
        .observations
        .iter()
        .filter(|o| o.node == node)
        .filter_map(|o| match o.get::<Observation>() {
            Some(Observation::ServerView { instances, .. }) => {
                Some((o.t_ns / 1_000_000, instances.len()))
            }
            _ => None,
        })
        .collect()
}

fn eviction_safety(record: &RunRecord) -> crate::family::CheckResult {
    crate::check::run_checks(record)
        .into_iter()
        .find(|c| c.name == super::CHECK_EVICTION_SAFETY)
        .expect("eviction-safety applies to a eureka role")
}

const ISOLATE_E3: &str = r#"[[fault]]
at = "10s"
kind = "isolate"
target = "eureka3"
duration = "20s""#;

#[test]
fn self_preservation_keeps_an_isolated_servers_registry_whole_and_eviction_safety_passes() {
    for seed in 1..=3 {
        let record = run("", ISOLATE_E3, seed);
        let e3 = views(&record, "eureka3");
        assert!(e3.iter().any(|&(_, n)| n == 8), "seed {seed}: {e3:?}");
        let first_full = e3.iter().position(|&(_, n)| n == 8).unwrap();
        assert!(
            e3[first_full..].iter().all(|&(_, n)| n == 8),
            "seed {seed}: eureka3 lost instances: {e3:?}"
        );
        let check = eviction_safety(&record);
        assert_eq!(check.verdict, Verdict::Pass, "seed {seed}: {check:?}");
        assert_eq!(check.metrics["evictions"], 0, "seed {seed}: {check:?}");
    }
}

#[test]
fn correct_twin_of_evict_on_first_miss_keeps_every_instance_through_the_same_losses() {
    for seed in 1..=3 {
        let record = run_on("", "", "loss_probability = 0.02", seed);
        let check = eviction_safety(&record);
        assert_eq!(check.verdict, Verdict::Pass, "seed {seed}: {check:?}");
        assert_eq!(check.metrics["evictions"], 0, "seed {seed}: {check:?}");
    }
}

#[test]
fn bug_no_self_preservation_empties_the_isolated_servers_registry_and_is_caught() {
    let record = run("\"no-self-preservation\"", ISOLATE_E3, 1);
    let e3 = views(&record, "eureka3");
    let emptied = e3.iter().find(|&&(t, n)| n == 0 && t > 10_000);
    assert!(emptied.is_some_and(|&(t, _)| t < 30_000), "{e3:?}");
    let check = eviction_safety(&record);
    assert_eq!(check.verdict, Verdict::Fail, "{check:?}");
    assert!(
        check.evidence[0].contains("eureka3 evicted web/"),
        "{check:?}"
    );
    assert!(
        check.evidence[0].contains("while self-preservation should hold"),
        "{check:?}"
    );
}

#[test]
fn bug_evict_on_first_miss_makes_instances_flap_and_is_caught() {
    // 2% of the messages are lost: a lost heartbeat is one missed renewal.
    let record = run_on("\"evict-on-first-miss\"", "", "loss_probability = 0.02", 1);
    let flaps = views(&record, "eureka1")
        .windows(2)
        .filter(|w| w[1].1 < w[0].1)
        .count();
    assert!(flaps >= 2, "{:?}", views(&record, "eureka1"));
    let check = eviction_safety(&record);
    assert_eq!(check.verdict, Verdict::Fail, "{check:?}");
    assert!(
        check.evidence[0].contains("before its lease ran out"),
        "{check:?}"
    );
}

#[test]
fn a_crashed_instance_is_evicted_by_every_server_after_its_lease() {
    let record = run(
        "",
        r#"[[fault]]
at = "10s"
kind = "crash"
target = "web1""#,
        2,
    );
    for server in ["eureka1", "eureka2", "eureka3"] {
        let v = views(&record, server);
        let (t, n) = *v.last().unwrap();
        assert_eq!(n, 7, "{server}: {v:?}");
        // Last heartbeat before 10 s, lease 5 s, eviction every 1 s, replication 100 ms.
        assert!(
            (14_000..=17_000).contains(&t),
            "{server} removed web1 at {t} ms: {v:?}"
        );
    }
    assert_eq!(eviction_safety(&record).verdict, Verdict::Pass);
}

#[test]
fn a_bad_eureka_option_is_refused_at_its_key_before_any_run() {
    let text = r#"name = "bad"
duration = "5s"

[[cluster.role]]
name = "registry"
protocol = "eureka"
nodes = 2
options = { renewal_percent_threshold = 1.5, eviction_interval = "0s" }
"#;
    let errors = Scenario::parse_all_with(
        std::path::Path::new("bad.toml"),
        text.as_bytes(),
        &crate::families::builtin(),
    )
    .expect_err("invalid options");
    let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert!(
        shown.iter().any(|e| e.starts_with("bad.toml:8:")
            && e.contains(
                "options.renewal_percent_threshold: expected a share in (0, 1], found 1.5"
            )),
        "{shown:?}"
    );
    assert!(
        shown
            .iter()
            .any(|e| e.contains("options.eviction_interval: expected from 1ms")),
        "{shown:?}"
    );
}
