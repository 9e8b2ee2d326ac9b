//! The `faultline` command end to end: outputs, exit codes, determinism check, test, list.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn faultline(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn out_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run");
    (dir, path)
}

#[test]
fn a_passing_run_writes_report_trace_and_history_and_exits_0() {
    let (_keep, dir) = out_dir();
    let out = faultline(&[
        "run",
        "scenarios/broadcast/partition-heal.toml",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("verdict: PASS") && stdout.contains("convergence"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    for key in [
        "schema_version",
        "faultline_version",
        "scenario",
        "seed",
        "trace_hash",
        "verdict",
        "checks",
        "stats",
        "virtual_time_ns",
        "wall_time_ms",
    ] {
        assert!(report.get(key).is_some(), "report.json lacks {key}");
    }
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["seed"], 7);
    assert_eq!(
        report["scenario"]["network"]["loss_probability"], 0.0,
        "defaults are resolved"
    );
    assert!(
        report["scenario"].get("chatter").is_none(),
        "only the running protocol's section"
    );
    assert!(
        report["stats"]["messages_dropped"]["partition"]
            .as_u64()
            .unwrap()
            > 0
    );
    let trace = std::fs::read(dir.join("trace.jsonl")).unwrap();
    assert_eq!(
        text(&trace).lines().count() as u64,
        report["trace_lines"].as_u64().unwrap()
    );
    let hash = report["trace_hash"].as_str().unwrap();
    assert!(
        hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "hex XXH3-128: {hash}"
    );
    let history = text(&std::fs::read(dir.join("history.jsonl")).unwrap());
    assert!(history.lines().count() > 50);
    for line in history.lines() {
        serde_json::from_str::<faultline::history::HistoryEvent>(line).unwrap();
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn a_failing_run_exits_1_and_prints_the_reproduction_command() {
    let (_keep, dir) = out_dir();
    let out = faultline(&[
        "run",
        "scenarios/broadcast/bugs/no-retransmit.toml",
        "--seed",
        "7",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("verdict: FAIL"), "{stdout}");
    assert!(
        stdout.contains(
            "reproduce: faultline run scenarios/broadcast/bugs/no-retransmit.toml --seed 7"
        ),
        "{stdout}"
    );
}

#[test]
fn json_output_seed_override_and_determinism_check() {
    let (_keep, dir) = out_dir();
    let d = dir.to_str().unwrap();
    let a = faultline(&[
        "run",
        "scenarios/broadcast/no-faults.toml",
        "--json",
        "--seed",
        "5",
        "--out",
        d,
    ]);
    assert_eq!(a.status.code(), Some(0));
    let a: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    assert_eq!(a["seed"], 5);
    let b = faultline(&[
        "run",
        "scenarios/broadcast/no-faults.toml",
        "--json",
        "--seed",
        "6",
        "--out",
        d,
    ]);
    let b: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_ne!(a["trace_hash"], b["trace_hash"]);
    let c = faultline(&[
        "run",
        "scenarios/broadcast/no-faults.toml",
        "--check-determinism",
        "--seed",
        "5",
        "--out",
        d,
    ]);
    assert_eq!(c.status.code(), Some(0));
    assert!(text(&c.stdout).contains(&format!(
        "same trace_hash {}",
        a["trace_hash"].as_str().unwrap()
    )));
}

#[test]
fn an_inconclusive_check_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("idle.toml");
    // No clients: nothing is acknowledged, so convergence cannot be judged.
    std::fs::write(&file, "duration = \"1s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 3\n[workload]\nclients = 0\n[expect]\nverdict = \"unknown\"\n").unwrap();
    let out = faultline(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        dir.path().join("o").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stdout));
    let out = faultline(&["test", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the expectation (unknown) holds: {}",
        text(&out.stdout)
    );
}

#[test]
fn bad_input_and_bad_usage_exit_2_without_a_panic() {
    let missing = faultline(&["run", "no/such/file.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).starts_with("no/such/file.toml:1:1: cannot read the file"),
        "{}",
        text(&missing.stderr)
    );
    let flag = faultline(&[
        "run",
        "scenarios/broadcast/no-faults.toml",
        "--seed",
        "minus-one",
    ]);
    assert_eq!(flag.status.code(), Some(2));
    assert!(!text(&flag.stderr).contains("panicked"));
    assert_eq!(faultline(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(faultline(&["--help"]).status.code(), Some(0));
}

#[test]
fn test_command_compares_each_scenario_with_its_expectation() {
    let ok = faultline(&["test", "scenarios/broadcast"]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stdout));
    assert!(text(&ok.stdout).contains("scenarios/broadcast/bugs/no-retransmit.toml"));
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.toml");
    let body = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/broadcast/no-faults.toml"),
    )
    .unwrap();
    std::fs::write(
        &wrong,
        body.replace(
            "verdict = \"pass\"",
            "verdict = \"fail\"\nfailing_checks = [\"convergence\"]",
        ),
    )
    .unwrap();
    let out = faultline(&["test", wrong.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("expected verdict fail, got pass") && stdout.contains("reproduce:"),
        "{stdout}"
    );
}

#[test]
fn list_names_protocols_faults_checks_and_bugs() {
    let out = faultline(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let l: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let protocols: Vec<&str> = l["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(protocols.contains(&"broadcast"));
    let broadcast = l["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "broadcast")
        .unwrap();
    assert_eq!(broadcast["bugs"][0]["name"], "no-retransmit");
    assert_eq!(broadcast["bugs"][0]["caught_by"], "convergence");
    assert!(l["fault_kinds"].as_array().unwrap().len() >= 10);
    assert!(
        l["partition_shapes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "majorities-ring")
    );
    let human = text(&faultline(&["list"]).stdout);
    assert!(human.contains("planted bug no-retransmit"), "{human}");
}
