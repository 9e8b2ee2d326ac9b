//! `faultline validate`: golden error messages for bad scenarios, and no panic on any input.
//!
//! Each file in `tests/bad-scenarios/` ends with a comment `# expected: LINE:COL: MESSAGE`, the
//! exact error `validate` must report for it.

use std::path::{Path, PathBuf};
use std::process::Command;

use faultline::scenario::Scenario;
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

fn expected(text: &str) -> &str {
    text.lines()
        .rev()
        .find_map(|l| l.strip_prefix("# expected: "))
        .expect("an expected-message comment")
}

#[test]
fn each_bad_scenario_reports_its_golden_message() {
    for file in bad_scenarios() {
        let text = std::fs::read_to_string(&file).unwrap();
        let err = Scenario::parse(Path::new("bad.toml"), text.as_bytes())
            .expect_err(&file.display().to_string());
        assert_eq!(
            format!("{}:{}: {}", err.line, err.column, err.message),
            expected(&text),
            "{}",
            file.display()
        );
    }
}

#[test]
fn the_validate_command_prints_file_line_col_and_exits_2() {
    let files = bad_scenarios();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("validate")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), files.len(), "one error per file:\n{stderr}");
    for (file, line) in files.iter().zip(&lines) {
        let text = std::fs::read_to_string(file).unwrap();
        assert_eq!(*line, format!("{}:{}", file.display(), expected(&text)));
    }
}

#[test]
fn the_validate_command_accepts_every_shipped_scenario() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let files = faultline::cli::test::find_scenarios(&[root]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("validate")
        .args(&files)
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
        if let Err(e) = Scenario::parse(Path::new("m.toml"), text.as_bytes()) {
            prop_assert!(e.line >= 1 && e.line <= text.lines().count() + 1, "line {} of {}", e.line, text.lines().count());
            prop_assert!(e.column >= 1);
            prop_assert!(!e.message.is_empty());
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
            prop_assert!(record.halt.is_none() || scenario.cluster.protocol == "pingpong", "{:?}\n{text}", record.halt);
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
