//! `faultline validate`: golden error messages for bad scenarios, every problem of a file, the
//! limits, messages in the scenario's own words, and no panic on any input.
//!
//! Each file in `tests/bad-scenarios/` ends with one comment `# expected: LINE:COL: MESSAGE` per
//! problem, in file order: exactly the errors `validate` must report for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::scenario::{Scenario, limits};
use proptest::prelude::*;

fn bad_scenarios() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 15);
    files
}

fn expected(text: &str) -> Vec<&str> {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# expected: "))
        .collect();
    assert!(!lines.is_empty(), "an expected-message comment");
    lines
}

/// Words of serde's and Rust's vocabulary that must never reach a user of the scenario format.
const LEAKS: [&str; 14] = [
    "untagged",
    "enum ",
    "struct ",
    "i128",
    "u128",
    "u64",
    "u32",
    "usize",
    "f64",
    "i64",
    "a sequence",
    "a map",
    "wanted string or table",
    "variant identifier",
];

fn assert_no_leak(message: &str) {
    for leak in LEAKS {
        assert!(!message.contains(leak), "\"{leak}\" leaks into: {message}");
    }
}

#[test]
fn each_bad_scenario_reports_its_golden_messages() {
    for file in bad_scenarios() {
        let text = std::fs::read_to_string(&file).unwrap();
        let errors = Scenario::parse_all(Path::new("bad.toml"), text.as_bytes())
            .expect_err(&file.display().to_string());
        let got: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{}: {}", e.line, e.column, e.message))
            .collect();
        assert_eq!(got, expected(&text), "{}", file.display());
        // `parse` (what `run` uses) reports the first of them.
        let first = Scenario::parse(Path::new("bad.toml"), text.as_bytes()).unwrap_err();
        assert_eq!(first, errors[0]);
    }
}

#[test]
fn no_bad_scenario_message_speaks_serde_or_rust() {
    for file in bad_scenarios() {
        let text = std::fs::read_to_string(&file).unwrap();
        for e in Scenario::parse_all(Path::new("bad.toml"), text.as_bytes()).unwrap_err() {
            assert_no_leak(&e.message);
        }
    }
}

#[test]
fn type_errors_name_toml_types_and_quote_the_value_as_written() {
    let cases = [
        (
            "nodes = 3\n[workload]\nclients = 1.5",
            "workload.clients: expected a whole number from 0 to 4294967295, found 1.5",
        ),
        (
            "nodes = 3\n[network]\nreorder = 1",
            "network.reorder: expected true or false, found 1",
        ),
        (
            "nodes = 3\n[network]\nloss_probability = \"x\"",
            "network.loss_probability: expected a number, found \"x\"",
        ),
        (
            "nodes = 3\n[network]\nlatency = 5",
            "network.latency: expected a latency: a duration such as \"5ms\", or a table such as { distribution = \"uniform\", min = \"1ms\", max = \"5ms\" }, found 5",
        ),
        (
            "nodes = 3\n[network]\nlatency = { distribution = 5 }",
            "network.latency.distribution: expected a name in quotes (a string), found 5",
        ),
        (
            "nodes = 3\ngroups = 5",
            "cluster.groups: expected a table, found 5",
        ),
        (
            "nodes = 3\n[broadcast]\nbugs = \"x\"",
            "broadcast.bugs: expected an array, found \"x\"",
        ),
        (
            "nodes = -3",
            "cluster.nodes: expected a node count from 1 to 256 (such as 5) or a list of node names (such as [\"a\", \"b\"]), found -3",
        ),
        (
            "nodes = 3\n[[fault]]\nat = \"1s\"\nkind = 5",
            "fault[0].kind: expected a name in quotes (a string), found 5",
        ),
        (
            "nodes = 3\n[workload]\nclients = 1979-05-27",
            "workload.clients: expected a whole number from 0 to 4294967295, found 1979-05-27",
        ),
    ];
    for (body, message) in cases {
        let text = format!("duration = \"5s\"\n[cluster]\nprotocol = \"broadcast\"\n{body}\n");
        let err = Scenario::parse(Path::new("t.toml"), text.as_bytes()).unwrap_err();
        assert_eq!(err.message, message, "{text}");
        assert_no_leak(&err.message);
    }
}

#[test]
fn the_validate_command_prints_every_problem_of_every_file_in_a_folder_and_exits_2() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-scenarios");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("validate")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let mut want = Vec::new();
    for file in bad_scenarios() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in expected(&text) {
            want.push(format!("{}:{line}", file.display()));
        }
    }
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want);
}

#[test]
fn the_run_command_prints_every_problem_of_a_bad_scenario_before_running() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad-scenarios/several-problems.toml");
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(out_dir.path().join("run"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let want: Vec<String> = expected(&text)
        .into_iter()
        .map(|line| format!("{}:{line}", file.display()))
        .collect();
    assert!(want.len() > 1, "the file has several problems");
    assert_eq!(stderr.lines().collect::<Vec<_>>(), want);
    assert!(!out_dir.path().join("run").exists(), "nothing written");
}

#[test]
fn the_validate_command_accepts_every_shipped_scenario_given_as_files_or_a_folder() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = faultline::cli::test::find_scenarios(std::slice::from_ref(&root)).unwrap();
    for args in [files, vec![root]] {
        let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
            .arg("validate")
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stderr.is_empty());
    }
}

#[test]
fn the_validate_command_refuses_a_folder_without_scenarios() {
    let dir = std::env::temp_dir().join(format!("faultline-empty-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("validate")
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario files"));
}

const VALID: &str = r#"name = "x"
seed = 3
duration = "5s"
[cluster]
protocol = "broadcast"
nodes = 3
groups = { a = ["n1"] }
[network]
latency = { distribution = "normal", mean = "5ms", std_dev = "1ms" }
loss_probability = 0.1
[[network.link]]
from = "a"
to = "n2"
latency = "20ms"
[clock.n1]
offset = "-5ms"
drift = 0.1
[[fault]]
at = "1s"
kind = "partition"
shape = "halves"
target = "leader"
duration = "1s"
[nemesis]
faults = ["crash", "partition"]
interval = "1s"
fault_duration = "500ms"
final_heal = "1s"
[workload]
clients = 2
[check.convergence]
within = "1s"
[expect]
verdict = "pass"
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Scenario::parse(Path::new("fuzz.toml"), &bytes);
    }

    #[test]
    fn mutated_valid_scenarios_never_panic_and_errors_point_into_the_file(
        edits in prop::collection::vec((0usize..40, 0usize..60, prop::sample::select(vec![
            "", "0", "-1", "1e309", "\"\"", "\"-5ms\"", "\"0s\"", "[", "]", "=", "\"n9\"", "\"leader\"",
            "[[fault]]", "kind = \"heal\"", "nan", "inf", "\"\u{1F600}\"", "\"999999999h\"", "{", "}", "\n",
        ])), 1..6)
    ) {
        let mut lines: Vec<String> = VALID.lines().map(str::to_string).collect();
        for (line, col, token) in edits {
            let i = line % lines.len();
            let l = &mut lines[i];
            let at = l.char_indices().map(|(b, _)| b).chain([l.len()]).nth(col % (l.chars().count() + 1)).unwrap();
            l.insert_str(at, token);
        }
        let text = lines.join("\n");
        for e in Scenario::parse_all(Path::new("m.toml"), text.as_bytes()).err().unwrap_or_default() {
            prop_assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "line {} of {}", e.line, text.lines().count());
            prop_assert!(e.column >= 1);
            prop_assert!(!e.message.is_empty());
            for leak in LEAKS {
                prop_assert!(!e.message.contains(leak), "\"{}\" leaks into: {}", leak, e.message);
            }
        }
    }
}

#[test]
fn the_valid_base_of_the_mutation_test_is_valid() {
    Scenario::parse(Path::new("valid.toml"), VALID.as_bytes()).unwrap();
}

fn fault_text() -> impl Strategy<Value = String> {
    let target = prop::sample::select(vec![
        "n1", "n2", "all", "servers", "clients", "random", "leader",
    ]);
    let kind = prop::sample::select(vec![
        "kind = \"crash\"",
        "kind = \"pause\"",
        "kind = \"isolate\"",
        "kind = \"clock-jump\"\ndelta = \"-2s\"",
        "kind = \"clock-jump\"\ndelta = \"+700ms\"",
        "kind = \"clock-drift\"\ndrift = 3.0",
        "kind = \"clock-drift\"\ndrift = -0.9",
    ]);
    let shape = prop::sample::select(vec![
        "halves",
        "random-halves",
        "majorities-ring",
        "bridge",
        "random-node",
    ]);
    prop_oneof![
        (
            0u64..4000,
            kind,
            target.clone(),
            prop::option::of(1u64..3000)
        )
            .prop_map(|(at, kind, target, d)| format!(
                "[[fault]]\nat = \"{at}ms\"\n{kind}\ntarget = \"{target}\"\n{}",
                d.map(|d| format!("duration = \"{d}ms\"\n"))
                    .unwrap_or_default()
            )),
        (0u64..4000, shape, prop::option::of(1u64..3000)).prop_map(|(at, shape, d)| format!(
            "[[fault]]\nat = \"{at}ms\"\nkind = \"partition\"\nshape = \"{shape}\"\n{}",
            d.map(|d| format!("duration = \"{d}ms\"\n"))
                .unwrap_or_default()
        )),
        (0u64..4000).prop_map(|at| format!(
            "[[fault]]\nat = \"{at}ms\"\nkind = \"cut\"\nfrom = \"servers\"\nto = \"n1\"\n"
        )),
        (0u64..4000).prop_map(|at| format!("[[fault]]\nat = \"{at}ms\"\nkind = \"heal\"\n")),
        (0u64..4000).prop_map(|at| format!("[[fault]]\nat = \"{at}ms\"\nkind = \"restart\"\n")),
        (0u64..4000).prop_map(|at| format!("[[fault]]\nat = \"{at}ms\"\nkind = \"resume\"\n")),
    ]
}

fn generated_scenario() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["broadcast", "chatter", "pingpong"]),
        1u32..6,
        0u32..4,
        1u32..4,
        prop::option::of(1.0f64..200.0),
        prop::sample::select(vec!["\"0ms\"", "\"3ms\"", "{ distribution = \"uniform\", min = \"0ms\", max = \"9ms\" }",
            "{ distribution = \"normal\", mean = \"2ms\", std_dev = \"5ms\" }",
            "{ distribution = \"exponential\", mean = \"3ms\", min = \"1ms\" }"]),
        (0.0f64..=1.0, 0.0f64..=1.0, any::<bool>()),
        prop::collection::vec(fault_text(), 0..5),
        prop::option::of((1u64..500, 1u64..500, 0u64..4)),
        prop::option::of((-3.0f64..3.0, -500i64..500)),
    )
        .prop_map(|(protocol, nodes, clients, concurrency, rate, latency, (loss, dup, reorder), faults, nemesis, clock)| {
            let clients = if protocol == "broadcast" { clients } else { 0 };
            let mut text = format!(
                "duration = \"5s\"\n[cluster]\nprotocol = \"{protocol}\"\nnodes = {nodes}\n\
                 [network]\nlatency = {latency}\nloss_probability = {loss}\nduplicate_probability = {dup}\nreorder = {reorder}\n\
                 [workload]\nclients = {clients}\nconcurrency = {concurrency}\n{}",
                rate.map(|r| format!("rate_per_s = {r}\n")).unwrap_or_default()
            );
            if let Some((drift, offset)) = clock {
                text.push_str(&format!("[clock.n1]\ndrift = {drift}\noffset = \"{offset}ms\"\n"));
            }
            if let Some((interval, length, heal)) = nemesis {
                text.push_str(&format!(
                    "[nemesis]\nfaults = [\"partition\", \"isolate\", \"isolate-leader\", \"crash\", \"crash-leader\", \"pause\", \"clock-jump\", \"clock-drift\"]\n\
                     interval = \"{interval}ms\"\nfault_duration = \"{length}ms\"\nfinal_heal = \"{heal}s\"\n"
                ));
            }
            text.push_str(&faults.concat());
            text
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever passes validation also runs: the simulator never panics on a valid scenario.
    #[test]
    fn every_scenario_that_validates_runs_without_a_kernel_panic(text in generated_scenario(), seed in any::<u64>()) {
        if let Ok(scenario) = Scenario::parse(Path::new("v.toml"), text.as_bytes()) {
            let record = faultline::sim::run(&scenario, seed, &faultline::sim::RunOptions::default());
            let pingpong = scenario.runs_protocol("pingpong");
            prop_assert!(record.halt.is_none() || pingpong, "{:?}\n{text}", record.halt);
            // Only ping-pong on a network that can take no time may run into an event limit.
            prop_assert!(record.limit_exceeded.is_none() || pingpong, "{:?}\n{text}", record.limit_exceeded);
            let _ = faultline::check::run_checks(&record);
        }
    }
}

#[test]
fn most_generated_scenarios_validate() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = generated_scenario();
    let valid = (0..200)
        .filter(|_| {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            Scenario::parse(Path::new("g.toml"), text.as_bytes()).is_ok()
        })
        .count();
    assert!(
        valid >= 100,
        "only {valid} of 200 generated scenarios validate: the generator has drifted"
    );
}

// ----- limits -----

fn broadcast_with(body: &str) -> String {
    format!("duration = \"5s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 3\n{body}\n")
}

/// Every limit of `scenario::limits` a scenario can reach: at the limit the file is valid, one
/// step beyond it `validate` names the key and the limit.
#[test]
fn each_limit_is_checked_by_validate_and_named_in_its_error() {
    let links = |n: usize| "[[network.link]]\nfrom = \"n1\"\nto = \"n2\"\n".repeat(n);
    let faults = |n: usize| "[[fault]]\nat = \"1s\"\nkind = \"crash\"\ntarget = \"n1\"\n".repeat(n);
    let groups = |n: usize| {
        let g: Vec<String> = (0..n).map(|i| format!("g{i} = [\"n1\"]")).collect();
        format!(
            "duration = \"5s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 3\ngroups = {{ {} }}\n",
            g.join(", ")
        )
    };
    let nemesis = |duration: &str| {
        format!(
            "duration = \"{duration}\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[nemesis]\nfaults = [\"crash\"]\ninterval = \"2ns\"\nfault_duration = \"999999999ns\"\n"
        )
    };
    let raft = |body: &str| {
        format!("duration = \"5s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n{body}\n")
    };
    let node_names = |len: usize| {
        format!(
            "duration = \"5s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = [\"{}\", \"b\"]\n",
            "a".repeat(len)
        )
    };
    let cases: Vec<(String, String, &str, String)> = vec![
        (
            raft("").replace("nodes = 3", &format!("nodes = {}", limits::MAX_SERVERS)),
            raft("").replace("nodes = 3", &format!("nodes = {}", limits::MAX_SERVERS + 1)),
            "cluster.nodes",
            limits::MAX_SERVERS.to_string(),
        ),
        (
            broadcast_with(&format!("[workload]\nclients = {}", limits::MAX_CLIENTS)),
            broadcast_with(&format!(
                "[workload]\nclients = {}",
                limits::MAX_CLIENTS + 1
            )),
            "workload.clients",
            limits::MAX_CLIENTS.to_string(),
        ),
        (
            broadcast_with(&format!(
                "[workload]\nconcurrency = {}",
                limits::MAX_CONCURRENCY
            )),
            broadcast_with(&format!(
                "[workload]\nconcurrency = {}",
                limits::MAX_CONCURRENCY + 1
            )),
            "workload.concurrency",
            limits::MAX_CONCURRENCY.to_string(),
        ),
        (
            raft(&format!("[workload]\nkeys = {}", limits::MAX_KEYS)),
            raft(&format!("[workload]\nkeys = {}", limits::MAX_KEYS + 1)),
            "workload.keys",
            limits::MAX_KEYS.to_string(),
        ),
        (
            broadcast_with("[workload]\nrate_per_s = 1000000"),
            broadcast_with("[workload]\nrate_per_s = 1000001"),
            "workload.rate_per_s",
            "1000000".into(),
        ),
        (
            broadcast_with("").replace("\"5s\"", "\"24h\""),
            broadcast_with("").replace("\"5s\"", "\"24h 1ns\""),
            "duration",
            limits::MAX_DURATION.to_string(),
        ),
        (
            broadcast_with("[network]\nlatency = \"1h\""),
            broadcast_with("[network]\nlatency = \"1h 1ns\""),
            "network.latency",
            "1h".into(),
        ),
        (
            broadcast_with(&links(limits::MAX_LINKS)),
            broadcast_with(&links(limits::MAX_LINKS + 1)),
            "network.link",
            limits::MAX_LINKS.to_string(),
        ),
        (
            broadcast_with(&faults(limits::MAX_FAULTS)),
            broadcast_with(&faults(limits::MAX_FAULTS + 1)),
            "fault",
            limits::MAX_FAULTS.to_string(),
        ),
        (
            groups(limits::MAX_GROUPS),
            groups(limits::MAX_GROUPS + 1),
            "cluster.groups",
            limits::MAX_GROUPS.to_string(),
        ),
        (
            nemesis("10000s"),
            nemesis("10001s"),
            "nemesis.interval",
            limits::MAX_NEMESIS_FAULTS.to_string(),
        ),
        (
            format!(
                "name = \"{}\"\n{}",
                "n".repeat(limits::MAX_NAME_CHARS),
                broadcast_with("")
            ),
            format!(
                "name = \"{}\"\n{}",
                "n".repeat(limits::MAX_NAME_CHARS + 1),
                broadcast_with("")
            ),
            "name",
            limits::MAX_NAME_CHARS.to_string(),
        ),
        (
            node_names(limits::MAX_NODE_NAME_CHARS),
            node_names(limits::MAX_NODE_NAME_CHARS + 1),
            "cluster.nodes[0]",
            limits::MAX_NODE_NAME_CHARS.to_string(),
        ),
        (
            raft(&format!(
                "[check.linearizability]\nmemory_limit_mib = {}",
                limits::MAX_CHECK_MEMORY_MIB
            )),
            raft(&format!(
                "[check.linearizability]\nmemory_limit_mib = {}",
                limits::MAX_CHECK_MEMORY_MIB + 1
            )),
            "check.linearizability.memory_limit_mib",
            limits::MAX_CHECK_MEMORY_MIB.to_string(),
        ),
        (
            broadcast_with("[clock.n1]\ndrift = 100.0"),
            broadcast_with("[clock.n1]\ndrift = 100.5"),
            "clock.n1.drift",
            "100".into(),
        ),
    ];
    for (at_limit, over, key, limit) in cases {
        if let Err(errors) = Scenario::parse_all(Path::new("limit.toml"), at_limit.as_bytes()) {
            panic!("{key} at its limit must be valid: {errors:?}");
        }
        let errors = Scenario::parse_all(Path::new("limit.toml"), over.as_bytes()).unwrap_err();
        assert_eq!(errors.len(), 1, "{key}: {errors:?}");
        let message = &errors[0].message;
        assert!(message.starts_with(&format!("{key}: ")), "{key}: {message}");
        assert!(
            message.contains(&limit),
            "{key} names its limit {limit}: {message}"
        );
    }
}

#[test]
fn a_scenario_file_over_the_size_limit_is_refused_unparsed() {
    let mut text = broadcast_with("");
    text.push_str(&"#".repeat(limits::MAX_SCENARIO_BYTES as usize));
    let err = Scenario::parse(Path::new("big.toml"), text.as_bytes()).unwrap_err();
    assert_eq!((err.line, err.column), (1, 1));
    assert!(
        err.message
            .contains(&limits::MAX_SCENARIO_BYTES.to_string()),
        "{}",
        err.message
    );
}

#[test]
fn the_nemesis_worst_case_bounds_every_planned_schedule() {
    use faultline::scenario::nemesis_worst_case_faults;
    for (interval, length, start, heal) in [
        ("1ns", "1ns", "0s", "0s"),
        ("3ns", "2ns", "1us", "5us"),
        ("3us", "2us", "1us", "5us"),
        ("1ms", "1ms", "0s", "0s"),
        ("10ms", "1ns", "5ms", "20ms"),
    ] {
        let text = format!(
            "duration = \"100ms\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[nemesis]\nfaults = [\"crash\", \"partition\"]\n\
             interval = \"{interval}\"\nfault_duration = \"{length}\"\nstart = \"{start}\"\nfinal_heal = \"{heal}\"\n"
        );
        // The nemesis is set after loading, without the limit check (the first cases plan far
        // more than 10,000 faults).
        let valid = text.replace(&format!("interval = \"{interval}\""), "interval = \"1s\"");
        let mut scenario = Scenario::parse(Path::new("n.toml"), valid.as_bytes()).unwrap();
        let table: toml::Table = toml::from_str(&text).unwrap();
        scenario.nemesis = Some(table["nemesis"].clone().try_into().unwrap());
        let nemesis = scenario.nemesis.as_ref().unwrap();
        let worst = nemesis_worst_case_faults(nemesis, scenario.duration);
        if worst > 200_000 {
            continue; // too many to plan in a test; the bound is checked on the smaller cases
        }
        let topology = faultline::sim::topology::Topology::new(&scenario);
        for seed in 0..5 {
            let planned = faultline::sim::faults::plan(
                &scenario,
                &topology,
                &mut faultline::sim::stream_rng(seed, 1),
            );
            assert!(
                planned.len() as u64 <= worst,
                "{interval}/{length}: {} > {worst}",
                planned.len()
            );
            assert!(!planned.is_empty());
        }
    }
}

// ----- runs that would never end -----

#[test]
fn a_zero_latency_closed_loop_without_think_time_is_refused_before_the_run() {
    for (latency, pause) in [
        ("\"0s\"", "think_time = \"0s\""),
        (
            "{ distribution = \"constant\", value = \"0s\" }",
            "think_time = \"0s\"",
        ),
        (
            "{ distribution = \"uniform\", min = \"0s\", max = \"0s\" }",
            "retry_delay = \"0s\"",
        ),
    ] {
        let text = format!(
            "duration = \"5s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[network]\nlatency = {latency}\n[workload]\nclients = 2\n{pause}\n"
        );
        let err = Scenario::parse(Path::new("zero.toml"), text.as_bytes()).unwrap_err();
        assert!(
            err.message
                .starts_with("workload.think_time: a network latency that is always 0")
                || err
                    .message
                    .starts_with("workload.retry_delay: a network latency that is always 0"),
            "{}",
            err.message
        );
    }
    // Zero latency alone is fine, and so is zero think time alone.
    for body in [
        "[network]\nlatency = \"0s\"",
        "[workload]\nthink_time = \"0s\"",
    ] {
        let text =
            format!("duration = \"5s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n{body}\n");
        Scenario::parse(Path::new("ok.toml"), text.as_bytes()).unwrap();
    }
}

fn limited(per_run: u64, per_instant: u64) -> faultline::sim::RunOptions {
    let mut options = faultline::sim::RunOptions::hash_only();
    options.event_limits = faultline::sim::EventLimits {
        per_run,
        per_instant,
        records_per_run: u64::MAX,
    };
    options
}

#[test]
fn the_default_event_limits_are_the_documented_ones() {
    assert_eq!(
        faultline::sim::RunOptions::default().event_limits,
        faultline::sim::EventLimits {
            per_run: limits::MAX_EVENTS_PER_RUN,
            per_instant: limits::MAX_EVENTS_PER_INSTANT,
            records_per_run: limits::MAX_RECORDS_PER_RUN,
        }
    );
    assert_eq!(
        faultline::sim::RunOptions::hash_only().event_limits,
        faultline::sim::RunOptions::default().event_limits
    );
}

/// The issue's runaway (zero latency, zero think time) with validation bypassed: the world stops
/// it at the per-instant limit instead of looping at one instant until memory runs out.
#[test]
fn a_zero_time_cycle_stops_at_the_events_per_instant_limit() {
    let text = "duration = \"20s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[network]\nlatency = \"0s\"\n[workload]\nclients = 4\n";
    let mut scenario = Scenario::parse(Path::new("runaway.toml"), text.as_bytes()).unwrap();
    scenario.clients[0]
        .options
        .insert("think_time".into(), toml::Value::String("0s".into()));
    let record = faultline::sim::run(&scenario, 1, &limited(u64::MAX, 20_000));
    let stop = record
        .limit_exceeded
        .clone()
        .expect("the run must stop at the limit");
    assert_eq!((stop.limit, stop.value), ("events_per_instant", 20_000));
    assert_eq!(record.end_ns, stop.t_ns, "the run ends where it stopped");
    assert!(stop.t_ns < 20_000_000_000);
    assert!(
        stop.to_string().contains("without simulated time passing"),
        "{stop}"
    );
}

/// A 1 ns network with zero think time validates (time does pass) but would fire billions of
/// events; the per-run limit stops it.
#[test]
fn a_run_of_too_many_events_stops_at_the_events_per_run_limit() {
    let text = "duration = \"1h\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[network]\nlatency = \"1ns\"\n[workload]\nclients = 4\nthink_time = \"0s\"\n";
    let scenario = Scenario::parse(Path::new("runaway.toml"), text.as_bytes()).unwrap();
    let record = faultline::sim::run(&scenario, 1, &limited(50_000, u64::MAX));
    let stop = record
        .limit_exceeded
        .clone()
        .expect("the run must stop at the limit");
    assert_eq!((stop.limit, stop.value), ("events_per_run", 50_000));
    let events = record.stats.messages_delivered + record.stats.timers_fired;
    assert!(events <= 50_000, "{events} events");
    assert!(record.end_ns < 3_600_000_000_000);
}

/// A run that keeps more records for its checks than the limit stops there, with the limit named
/// (its events are far from theirs); below the limit it does not stop.
#[test]
fn a_run_that_keeps_too_many_records_stops_at_the_records_per_run_limit() {
    let text = "duration = \"1h\"\n[cluster]\nprotocol = \"raft\"\nnodes = 3\n[network]\nlatency = \"1ns\"\n[workload]\nclients = 4\nthink_time = \"0s\"\n";
    let scenario = Scenario::parse(Path::new("runaway.toml"), text.as_bytes()).unwrap();
    let mut options = limited(u64::MAX, u64::MAX);
    options.event_limits.records_per_run = 20_000;
    let record = faultline::sim::run(&scenario, 1, &options);
    let stop = record
        .limit_exceeded
        .clone()
        .expect("the run must stop at the limit");
    assert_eq!((stop.limit, stop.value), ("records_per_run", 20_000));
    let kept = record.observations.len() + record.history.len();
    assert!((20_000..21_000).contains(&kept), "{kept} records kept");
    assert!(
        record.stats.events > 20_000,
        "{} events",
        record.stats.events
    );
    assert!(stop.to_string().contains("records_per_run"), "{stop}");
}

/// `faultline run` of a scenario that loops without time passing: a clean error and exit 2, no
/// report, instead of exhausting memory. (Ping-pong answers every message at once, so on a
/// zero-latency network validation cannot see the cycle: only the world can.)
#[test]
fn run_reports_a_zero_time_cycle_as_bad_input_with_exit_2() {
    let dir = std::env::temp_dir().join(format!("faultline-runaway-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("pingpong-zero.toml");
    std::fs::write(
        &file,
        "duration = \"10s\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n[network]\nlatency = \"0s\"\n[workload]\nclients = 0\n",
    )
    .unwrap();
    let out_dir = dir.join("out");
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let report_written = out_dir.exists();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:1:1: the run stopped at 0s of simulated time: more than {} events (the limit events_per_instant)", file.display(), limits::MAX_EVENTS_PER_INSTANT)),
        "{stderr}"
    );
    assert!(!report_written, "no verdict, no report");
}

// ----- names -----

fn named(name: &str) -> String {
    format!(
        "name = {}\n{}",
        serde_json::to_string(name).unwrap(),
        broadcast_with("")
    )
}

#[test]
fn scenario_names_that_could_leave_the_output_folder_are_refused_by_validate() {
    let long = "x".repeat(limits::MAX_NAME_CHARS + 1);
    for name in [
        "../../../../tmp/x",
        "/tmp/x",
        "..",
        ".",
        "a/b/c",
        "a\\b",
        ".hidden",
        "-x",
        "a\u{0}b",
        "two words",
        "caf\u{e9}",
        "a:b",
        long.as_str(),
    ] {
        let err = Scenario::parse(Path::new("n.toml"), named(name).as_bytes()).unwrap_err();
        assert_eq!(err.line, 1, "{name:?}");
        assert!(
            err.message
                .starts_with("name: expected 1 to 100 letters, digits"),
            "{name:?}: {}",
            err.message
        );
    }
    for name in [
        "raft-leader-isolated",
        "a.b_c-1",
        "2024.run",
        "x".repeat(limits::MAX_NAME_CHARS).as_str(),
    ] {
        let scenario = Scenario::parse(Path::new("n.toml"), named(name).as_bytes()).unwrap();
        assert_eq!(scenario.name, name);
    }
}

#[test]
fn a_name_taken_from_the_file_name_is_checked_and_the_error_says_so() {
    let text = broadcast_with("");
    let err = Scenario::parse(Path::new("dir/my scenario.toml"), text.as_bytes()).unwrap_err();
    assert_eq!(
        err.message,
        "name: the scenario name comes from the file name, \"my scenario\", which is not a valid name: expected 1 to 100 letters, digits, '.', '-' or '_', starting with a letter or digit (it names the report folder); set `name` or rename the file"
    );
    let scenario = Scenario::parse(Path::new("dir/my-scenario.toml"), text.as_bytes()).unwrap();
    assert_eq!(scenario.name, "my-scenario");
}

// ----- the resolved scenario in report.json -----

#[test]
fn the_resolved_scenario_shows_only_the_check_tables_of_its_protocol() {
    let cases: [(&str, &str, &[&str]); 3] = [
        (
            "broadcast",
            "clients = 1",
            &["bounds", "convergence", "no-decision", "node-invariants"],
        ),
        (
            "raft",
            "clients = 1",
            &[
                "availability",
                "bounds",
                "election-safety",
                "leader-append-only",
                "leader-completeness",
                "linearizability",
                "liveness",
                "log-matching",
                "no-decision",
                "node-invariants",
                "stale-read",
                "state-machine-safety",
            ],
        ),
        (
            "paxos",
            "clients = 0",
            &[
                "agreement",
                "bounds",
                "decision",
                "learner-agreement",
                "no-decision",
                "node-invariants",
                "validity",
            ],
        ),
    ];
    for (protocol, clients, checks) in cases {
        let text = format!(
            "duration = \"5s\"\n[cluster]\nprotocol = \"{protocol}\"\nnodes = 3\n[workload]\n{clients}\n"
        );
        let scenario = Scenario::parse(Path::new("r.toml"), text.as_bytes()).unwrap();
        let resolved = faultline::report::resolved_scenario(&scenario);
        let mut keys: Vec<&str> = resolved["check"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort();
        assert_eq!(keys, checks, "{protocol}");
    }
}
