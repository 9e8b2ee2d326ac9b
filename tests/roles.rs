//! Roles and client groups (issue 12, item 1): the shorthand means exactly its role form, the
//! limits on roles and groups, fault targets and partition sides that name a role or a client
//! group, and `[check.<name>]` tables. (Errors of single files are golden files in
//! `tests/bad-scenarios/`, checked by `tests/validate.rs`.)

use std::path::Path;

use faultline::api::Runner;
use faultline::process::NodeId;
use faultline::scenario::{Scenario, Verdict, limits};
use faultline::sim::{LifecycleKind, RunOptions, run};

fn parse(text: &str) -> Scenario {
    Scenario::parse(Path::new("roles.toml"), text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

/// Every problem of `text`, as `line:col: message`.
fn problems(text: &str) -> Vec<String> {
    Scenario::parse_all(Path::new("roles.toml"), text.as_bytes())
        .expect_err("the scenario must be refused")
        .iter()
        .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
        .collect()
}

// ----- the shorthand is one role and one client group -----

const RAFT_SHORTHAND: &str = r#"duration = "3s"
[cluster]
protocol = "raft"
nodes = 3
[raft]
election_timeout_min = "200ms"
election_timeout_max = "400ms"
[workload]
clients = 2
think_time = "20ms"
"#;

const RAFT_ROLES: &str = r#"duration = "3s"
[[cluster.role]]
name = "raft"
protocol = "raft"
nodes = ["n1", "n2", "n3"]
options = { election_timeout_min = "200ms", election_timeout_max = "400ms" }
[[clients]]
name = "c"
workload = "kv"
count = 2
talks_to = ["raft"]
[clients.options]
think_time = "20ms"
"#;

/// Both forms run under the same fault.
const ISOLATE_LEADER: &str =
    "[[fault]]\nat = \"1s\"\nkind = \"isolate\"\ntarget = \"leader\"\nduration = \"500ms\"\n";

#[test]
fn the_shorthand_and_its_role_form_run_the_same() {
    let short = parse(&format!("{RAFT_SHORTHAND}{ISOLATE_LEADER}"));
    let long = parse(&format!("{RAFT_ROLES}{ISOLATE_LEADER}"));
    for seed in [1, 2] {
        let a = run(&short, seed, &RunOptions::hash_only());
        let b = run(&long, seed, &RunOptions::hash_only());
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed}");
        assert_eq!(a.topology.names, ["n1", "n2", "n3", "c1", "c2"]);
        assert_eq!(b.topology.names, a.topology.names);
        assert!(a.history.len() > 10, "the clients did work");
        assert_eq!(
            a.stats.faults_applied, 1,
            "the leader was found and isolated"
        );
    }
    // Both resolve to the same roles, groups and options.
    assert_eq!(
        short.cluster.roles[0].options,
        long.cluster.roles[0].options
    );
    assert_eq!(short.clients[0].options, long.clients[0].options);
    assert_eq!(short.clients[0].talks_to, long.clients[0].talks_to);
}

// ----- limits -----

fn lock_roles(roles: usize, groups: usize) -> String {
    let mut text = String::from("duration = \"1s\"\n");
    for i in 0..roles {
        text.push_str(&format!(
            "[[cluster.role]]\nname = \"s{i}x\"\nprotocol = \"fenced-storage\"\nnodes = 1\n"
        ));
    }
    text.push_str("[[cluster.role]]\nname = \"locks\"\nprotocol = \"lock-server\"\nnodes = 1\n");
    for i in 0..groups {
        text.push_str(&format!(
            "[[clients]]\nname = \"w{i}x\"\nworkload = \"lock\"\ncount = 1\ntalks_to = [\"locks\", \"s0x\"]\n"
        ));
    }
    text
}

#[test]
fn the_number_of_roles_is_limited_and_the_error_names_the_limit() {
    parse(&lock_roles(limits::MAX_ROLES - 1, 1));
    let errors = problems(&lock_roles(limits::MAX_ROLES, 1));
    assert_eq!(
        errors,
        [format!(
            "2:1: cluster.role: expected at most {} roles (the limit), found {}",
            limits::MAX_ROLES,
            limits::MAX_ROLES + 1
        )]
    );
}

#[test]
fn the_number_of_client_groups_is_limited_and_the_error_names_the_limit() {
    parse(&lock_roles(1, limits::MAX_CLIENT_GROUPS));
    let errors = problems(&lock_roles(1, limits::MAX_CLIENT_GROUPS + 1));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].ends_with(&format!(
            "clients: expected at most {} client groups (the limit), found {}",
            limits::MAX_CLIENT_GROUPS,
            limits::MAX_CLIENT_GROUPS + 1
        )),
        "{errors:?}"
    );
}

// ----- fault targets and partition sides naming roles and client groups -----

fn locks_with(faults: &str) -> String {
    format!(
        r#"duration = "3s"
[[cluster.role]]
name = "locks"
protocol = "lock-server"
nodes = 1
options = {{ ttl = "2s" }}
[[cluster.role]]
name = "storage"
protocol = "fenced-storage"
nodes = ["disk"]
[[clients]]
name = "workers"
workload = "lock"
count = 3
talks_to = ["locks", "storage"]
options = {{ hold = "100ms" }}
{faults}"#
    )
}

fn ids(record: &faultline::sim::RunRecord, names: &[&str]) -> Vec<NodeId> {
    names
        .iter()
        .map(|n| record.topology.node(n).unwrap())
        .collect()
}

#[test]
fn a_fault_target_naming_a_role_isolates_every_node_of_that_role() {
    let s = parse(&locks_with(
        "[[fault]]\nat = \"1s\"\nkind = \"isolate\"\ntarget = \"storage\"\nduration = \"1s\"\n",
    ));
    let record = run(&s, 1, &RunOptions::default());
    assert_eq!(record.partitions.len(), 1, "{:?}", record.partitions);
    let p = &record.partitions[0];
    assert_eq!((p.start_ns, p.end_ns), (1_000_000_000, Some(2_000_000_000)));
    let disk = ids(&record, &["disk"])[0];
    assert!(!p.cut_links.is_empty());
    assert!(
        p.cut_links.iter().all(|&(a, b)| a == disk || b == disk),
        "only the storage's links are cut: {:?}",
        p.cut_links
    );
    for other in ids(&record, &["locks1", "workers1", "workers2", "workers3"]) {
        assert!(p.cut_links.contains(&(disk, other)), "{other:?}");
        assert!(p.cut_links.contains(&(other, disk)), "{other:?}");
    }
}

#[test]
fn a_fault_target_naming_a_client_group_pauses_every_client_of_it() {
    let s = parse(&locks_with(
        "[[fault]]\nat = \"1s\"\nkind = \"pause\"\ntarget = \"workers\"\nduration = \"500ms\"\n",
    ));
    let record = run(&s, 1, &RunOptions::default());
    let paused: Vec<NodeId> = record
        .lifecycle
        .iter()
        .filter(|l| l.kind == LifecycleKind::Pause)
        .map(|l| l.node)
        .collect();
    assert_eq!(paused, ids(&record, &["workers1", "workers2", "workers3"]));
    assert!(
        record
            .lifecycle
            .iter()
            .filter(|l| l.kind == LifecycleKind::Resume)
            .all(|l| l.t_ns == 1_500_000_000)
    );
}

#[test]
fn partition_sides_naming_roles_resolve_to_their_nodes() {
    let s = parse(&locks_with(
        "[[fault]]\nat = \"1s\"\nkind = \"partition\"\ngroups = [[\"locks\", \"workers\"], [\"storage\"]]\n",
    ));
    let record = run(&s, 1, &RunOptions::default());
    let p = &record.partitions[0];
    let sides = p.sides.clone().expect("a side-based partition");
    assert!(
        sides.contains(&ids(&record, &["disk"])),
        "the storage role is one side: {sides:?}"
    );
    assert!(sides.iter().any(|side| {
        ids(&record, &["locks1", "workers1", "workers2", "workers3"])
            .iter()
            .all(|n| side.contains(n))
    }));
    let disk = ids(&record, &["disk"])[0];
    let lock = ids(&record, &["locks1"])[0];
    assert!(p.cut_links.contains(&(lock, disk)));
    assert_eq!(p.end_ns, None, "never healed");
    // The storage accepts writes before the cut and none after it (the last in flight arrive
    // within the 5 ms of the default latency).
    use faultline::families::lock::Observation;
    let accepted: Vec<u64> = record
        .observations
        .iter()
        .filter(|o| {
            matches!(
                o.get::<Observation>(),
                Some(Observation::WriteAccepted { .. })
            )
        })
        .map(|o| o.t_ns)
        .collect();
    assert!(accepted.iter().any(|&t| t < 1_000_000_000), "{accepted:?}");
    assert!(accepted.iter().all(|&t| t <= 1_005_000_000), "{accepted:?}");
}

// ----- [check.<name>] tables -----

#[test]
fn an_unknown_option_in_a_check_table_is_an_error_at_its_key() {
    let errors = problems(&locks_with(
        "[check.mutual-exclusion]\nenabled = true\nstrict = true\n",
    ));
    assert_eq!(
        errors,
        ["19:1: check.mutual-exclusion.strict: unknown field `strict`, expected `enabled`"]
    );
    let errors = problems(&locks_with("[check.mutual-exclusion]\nenabled = \"no\"\n"));
    assert_eq!(
        errors,
        ["18:11: check.mutual-exclusion.enabled: expected true or false, found \"no\""]
    );
}

#[test]
fn a_check_that_does_not_run_for_the_scenario_is_refused() {
    let errors = problems(&locks_with("[check.election-safety]\nenabled = false\n"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(
            "17:8: check.election-safety: the election-safety check does not run for lock-server, fenced-storage; its checks are: "
        ),
        "{errors:?}"
    );
    assert!(errors[0].contains("mutual-exclusion"), "{errors:?}");
}

#[test]
fn the_resolved_scenario_shows_each_running_check_with_its_defaults() {
    let s = parse(&locks_with("[check.fenced-writes]\nenabled = false\n"));
    let resolved = faultline::report::resolved_scenario(&s);
    let checks = resolved["check"].as_object().unwrap();
    let mut names: Vec<&str> = checks.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "bounds",
            "fenced-writes",
            "linearizability",
            "lock-bounds",
            "mutual-exclusion",
            "no-decision",
            "node-invariants"
        ]
    );
    assert_eq!(
        checks["fenced-writes"],
        serde_json::json!({ "enabled": false })
    );
    assert_eq!(
        checks["mutual-exclusion"],
        serde_json::json!({ "enabled": true })
    );
    assert!(
        checks["linearizability"]["memory_limit_mib"].is_u64(),
        "defaults filled in: {}",
        checks["linearizability"]
    );
    // A disabled check does not run; the others do.
    let outcome = Runner::builtin().run(&s, 1);
    let ran: Vec<&str> = outcome.checks.iter().map(|c| c.name.as_str()).collect();
    assert!(!ran.contains(&"fenced-writes"), "{ran:?}");
    assert!(ran.contains(&"mutual-exclusion"), "{ran:?}");
    assert_eq!(outcome.verdict, Verdict::Pass, "{:?}", outcome.checks);
}

/// A `requests` group that talks to a backend role with `discovery` takes its backends from the
/// registry: a backend that left (deregistered at 0 s, still answering what reaches it) gets
/// no request once the clients looked it up, while the static list keeps sending to it.
#[test]
fn client_side_discovery_takes_the_backends_from_the_registry() {
    let scenario = |discovery: &str| {
        parse(&format!(
            "duration = \"5s\"\n\
             [[cluster.role]]\nname = \"reg\"\nprotocol = \"eureka\"\nnodes = 1\n\
             [[cluster.role]]\nname = \"web\"\nprotocol = \"backend\"\nnodes = 2\n\
             options = {{ registration = {{ leave_at = \"0s\" }}, conditions = [] }}\n\
             [[clients]]\nname = \"users\"\nworkload = \"requests\"\ncount = 2\ntalks_to = [\"web\"]\n\
             options = {{ rate = 50{discovery} }}\n"
        ))
    };
    let attempts = |s: &Scenario| {
        let outcome = Runner::builtin().run(s, 1);
        outcome
            .checks
            .iter()
            .find(|r| r.name == "balancing-bounds")
            .and_then(|r| r.metrics["attempts"].as_u64())
            .expect("balancing-bounds measures attempts")
    };
    let static_list = attempts(&scenario(""));
    let discovered = attempts(&scenario(", discovery = { lookup_interval = \"100ms\" }"));
    assert!(
        static_list > 400,
        "the static list sends to both: {static_list}"
    );
    assert_eq!(
        discovered, 0,
        "both backends left the registry before any lookup answered"
    );
}
