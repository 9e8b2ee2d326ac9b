//! The `faultline` command end to end: outputs, exit codes, determinism check, test, list.

mod common;

use common::{faultline, faultline_command, text};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The text of a shipped scenario (`path` relative to the repository).
fn shipped_scenario(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
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
    let body = shipped_scenario("scenarios/broadcast/no-faults.toml");
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

#[test]
fn list_shows_the_planted_bugs_of_a_workload() {
    let l: serde_json::Value =
        serde_json::from_slice(&faultline(&["list", "--json"]).stdout).unwrap();
    let redlock = l["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["name"] == "redlock")
        .expect("the redlock workload is listed");
    let bugs: Vec<&str> = redlock["bugs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(bugs, ["redlock-no-validity-check", "redlock-minority-ok"]);
    assert_eq!(redlock["bugs"][1]["caught_by"], "mutual-exclusion");
    let human = text(&faultline(&["list"]).stdout);
    assert!(human.contains("planted bug redlock-minority-ok"), "{human}");
}

/// Runs `faultline run SCENARIO --out OUT extra...`.
fn run_into(scenario: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["run", scenario, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    faultline(&args)
}

/// Names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn report_of(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap()
}

/// A long-running copy of a scenario (clients never stop), in `dir`.
fn long_scenario(dir: &Path) -> PathBuf {
    let body = shipped_scenario("scenarios/broadcast/no-faults.toml");
    let body: String = body
        .lines()
        .filter(|l| !l.starts_with("stop"))
        .map(|l| {
            if l.starts_with("duration") {
                "duration = \"600s\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.join("long.toml");
    std::fs::write(&file, body).unwrap();
    file
}

/// The files of a run without a trace: the report, the history and the charts drawn from it.
const HISTORY_ONLY_FILES: [&str; 5] = [
    "history.jsonl",
    "latency.svg",
    "report.html",
    "report.json",
    "throughput.svg",
];

#[test]
fn a_second_run_replaces_the_whole_folder_and_leaves_no_staging_folder() {
    let (keep, dir) = out_dir();
    let a = run_into("scenarios/broadcast/no-faults.toml", &dir, &["--seed", "1"]);
    assert_eq!(a.status.code(), Some(0), "{}", text(&a.stderr));
    // A stale temporary file of a faultline that renamed files one by one may be replaced too.
    std::fs::write(dir.join(".faultline-old1.tmp"), b"partial").unwrap();
    let b = run_into(
        "scenarios/broadcast/no-faults.toml",
        &dir,
        &["--seed", "2", "--no-trace"],
    );
    assert_eq!(b.status.code(), Some(0), "{}", text(&b.stderr));
    assert_eq!(
        names_in(&dir),
        HISTORY_ONLY_FILES,
        "the trace and node timeline of seed 1 are gone with its folder, not left beside seed 2's report"
    );
    assert_eq!(report_of(&dir)["seed"], 2);
    assert_eq!(names_in(keep.path()), ["run"], "no staging folder is left");
}

#[test]
fn an_existing_folder_that_is_not_a_report_folder_is_refused_before_the_run() {
    let (keep, dir) = out_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    let out = run_into("scenarios/broadcast/no-faults.toml", &dir, &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("is not a faultline report folder") && stderr.contains("notes.txt"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing ran");
    assert_eq!(names_in(&dir), ["notes.txt"]);
    assert_eq!(names_in(keep.path()), ["run"], "no staging folder is left");
}

#[test]
fn an_unwritable_out_or_an_over_long_name_fails_before_the_simulation() {
    let keep = tempfile::tempdir().unwrap();
    // A file where a folder must be: no folder can be created under it (whoever runs the test).
    let blocker = keep.path().join("blocker");
    std::fs::write(&blocker, b"").unwrap();
    // Long enough that the run would take seconds if it started.
    let scenario = long_scenario(keep.path());
    let long_name = keep.path().join("n".repeat(300));
    for out in [blocker.join("run"), long_name] {
        let output = run_into(scenario.to_str().unwrap(), &out, &[]);
        assert_eq!(output.status.code(), Some(2), "{}", out.display());
        assert!(output.stdout.is_empty(), "no summary: nothing ran");
        assert!(
            text(&output.stderr).contains("cannot "),
            "{}",
            text(&output.stderr)
        );
    }
    assert_eq!(names_in(keep.path()), ["blocker", "long.toml"]);
}

#[test]
fn a_scenario_name_that_escapes_the_reports_folder_is_refused_before_the_run() {
    let keep = tempfile::tempdir().unwrap();
    let work = keep.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let body = shipped_scenario("scenarios/broadcast/no-faults.toml");
    for name in ["../../escaped", "/tmp/faultline-escaped", "a/b/c", ".."] {
        let file = work.join("s.toml");
        std::fs::write(
            &file,
            body.replace(
                "name = \"broadcast-no-faults\"",
                &format!("name = {name:?}"),
            ),
        )
        .unwrap();
        // No --out: the default folder reports/<name>/seed-<N>, relative to the working folder.
        let out = faultline_command(&["run", "s.toml"])
            .current_dir(&work)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stdout));
        assert!(out.stdout.is_empty(), "{name}: nothing ran");
        // The writer refuses such names itself ("not a plain folder name"); `validate` may
        // refuse them first with its own message naming the key.
        assert!(
            text(&out.stderr).contains("name"),
            "{name}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(names_in(&work), ["s.toml"]);
    assert_eq!(names_in(keep.path()), ["work"]);
    assert!(!Path::new("/tmp/faultline-escaped").exists());
}

#[test]
fn a_run_killed_mid_way_leaves_the_previous_folder_whole_and_the_next_run_cleans_up() {
    let (keep, dir) = out_dir();
    let first = run_into("scenarios/broadcast/no-faults.toml", &dir, &["--seed", "4"]);
    assert_eq!(first.status.code(), Some(0));
    let before = names_in(&dir);
    let scenario = long_scenario(keep.path());
    let mut child = faultline_command(&[
        "run",
        scenario.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let staging = || {
        names_in(keep.path())
            .into_iter()
            .find(|n| n.starts_with(".faultline-") && n.ends_with(".tmp"))
    };
    let mut waited = 0;
    while staging().is_none() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(waited < 30_000, "no staging folder appeared");
        std::thread::sleep(std::time::Duration::from_millis(10));
        waited += 10;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(names_in(&dir), before, "the previous folder is untouched");
    assert_eq!(report_of(&dir)["seed"], 4);
    let left = staging().expect("the killed run's staging folder is left");
    // A live run's staging folder (its lock held) must survive the cleanup.
    let live = keep.path().join(".faultline-live00.tmp");
    std::fs::create_dir(&live).unwrap();
    let lock = std::fs::File::create(live.join("lock")).unwrap();
    lock.try_lock().unwrap();
    let next = run_into("scenarios/broadcast/no-faults.toml", &dir, &["--seed", "5"]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
    assert_eq!(report_of(&dir)["seed"], 5);
    let names = names_in(keep.path());
    assert!(
        !names.contains(&left),
        "stale staging folder removed: {names:?}"
    );
    assert!(
        names.contains(&".faultline-live00.tmp".to_string()),
        "{names:?}"
    );
}

#[test]
fn a_run_killed_between_its_two_renames_gets_its_previous_folder_back_on_the_next_run() {
    let (keep, dir) = out_dir();
    let first = run_into("scenarios/broadcast/no-faults.toml", &dir, &["--seed", "4"]);
    assert_eq!(first.status.code(), Some(0));
    // What a kill between "move the old folder aside" and "move the new one in" leaves: the
    // target is gone, the previous folder sits in the staging folder's old/, the lock is free.
    let staging = keep.path().join(".faultline-dead00.tmp");
    std::fs::create_dir_all(staging.join("old")).unwrap();
    std::fs::create_dir_all(staging.join("new/run")).unwrap();
    std::fs::write(staging.join("lock"), b"").unwrap();
    std::fs::write(staging.join("new/run/report.json"), b"{\"seed\": 9}").unwrap();
    std::fs::rename(&dir, staging.join("old/run")).unwrap();
    // The next run writes elsewhere in the same folder.
    let other = keep.path().join("other");
    let next = run_into("scenarios/broadcast/no-faults.toml", &other, &[]);
    assert_eq!(next.status.code(), Some(0), "{}", text(&next.stderr));
    assert_eq!(
        report_of(&dir)["seed"],
        4,
        "the previous folder is back, whole"
    );
    assert_eq!(names_in(keep.path()), ["other", "run"]);
}

#[test]
fn a_truncated_trace_is_announced_and_marked_at_its_end() {
    let (_keep, dir) = out_dir();
    let out = run_into(
        "scenarios/broadcast/no-faults.toml",
        &dir,
        &["--trace-limit-bytes", "3000"],
    );
    assert_eq!(out.status.code(), Some(0));
    let stdout = text(&out.stdout);
    let report = report_of(&dir);
    assert_eq!(report["trace_truncated"], true);
    let (written, total) = (
        report["trace_lines_written"].as_u64().unwrap(),
        report["trace_lines"].as_u64().unwrap(),
    );
    assert!(written > 0 && written < total);
    assert!(
        stdout.contains(&format!(
            "TRACE TRUNCATED: trace.jsonl holds the first {written} of {total} lines"
        )),
        "{stdout}"
    );
    let trace = text(&std::fs::read(dir.join("trace.jsonl")).unwrap());
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len() as u64, written + 1);
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["kind"], "trace-truncated");
    assert_eq!(last["node"], "world");
    assert_eq!(last["lines_kept"], written);
    assert_eq!(last["lines"], total);
    assert_eq!(last["limit_bytes"], 3000);
    assert!(trace.len() - lines.last().unwrap().len() - 1 <= 3000);
    // The hash covers every line whatever the cap: the same as an uncapped run's.
    let (_keep2, full) = out_dir();
    run_into("scenarios/broadcast/no-faults.toml", &full, &[]);
    let full_report = report_of(&full);
    assert_eq!(full_report["trace_hash"], report["trace_hash"]);
    assert_eq!(full_report["trace_truncated"], false);
    assert_eq!(
        full_report["trace_lines_written"],
        full_report["trace_lines"]
    );
    assert!(!text(&std::fs::read(full.join("trace.jsonl")).unwrap()).contains("trace-truncated"));
}

#[test]
fn no_trace_writes_no_trace_file_and_keeps_the_hash() {
    let (_keep, dir) = out_dir();
    let out = run_into("scenarios/broadcast/no-faults.toml", &dir, &["--no-trace"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("trace: not written"));
    assert_eq!(
        names_in(&dir),
        HISTORY_ONLY_FILES,
        "the charts drawn from the history alone"
    );
    let report = report_of(&dir);
    assert_eq!(report["trace_written"], false);
    assert_eq!(report["trace_truncated"], false);
    let (_keep2, full) = out_dir();
    run_into("scenarios/broadcast/no-faults.toml", &full, &[]);
    assert_eq!(report_of(&full)["trace_hash"], report["trace_hash"]);
    assert_eq!(report_of(&full)["trace_written"], true);
}

/// Runs the binary with standard output a pipe whose reader is already closed.
fn with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    faultline_command(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_ends_every_command_quietly_with_its_own_exit_code() {
    let (_keep, dir) = out_dir();
    let d = dir.to_str().unwrap();
    for (args, code) in [
        (vec!["list"], 0),
        (vec!["list", "--json"], 0),
        (
            vec![
                "run",
                "scenarios/broadcast/no-faults.toml",
                "--json",
                "--out",
                d,
            ],
            0,
        ),
        (
            vec!["run", "scenarios/broadcast/no-faults.toml", "--out", d],
            0,
        ),
        (vec!["test", "scenarios/broadcast/no-faults.toml"], 0),
        (vec!["validate", "scenarios/broadcast/no-faults.toml"], 0),
        (vec!["--help"], 0),
    ] {
        let out = with_closed_stdout(&args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
    assert_eq!(
        report_of(&dir)["verdict"],
        "pass",
        "the run still wrote its report"
    );
}

#[test]
fn a_run_writes_its_charts_beside_the_report_the_same_bytes_each_time() {
    let scenario = "scenarios/broadcast/partition-heal.toml";
    let (_keep, first) = out_dir();
    let (_keep2, second) = out_dir();
    for dir in [&first, &second] {
        let out = run_into(scenario, dir, &[]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let charts: Vec<String> = names_in(&first)
        .into_iter()
        .filter(|n| n.ends_with(".svg"))
        .collect();
    assert_eq!(
        charts,
        ["latency.svg", "node-timeline.svg", "throughput.svg"]
    );
    for name in &charts {
        let svg = text(&std::fs::read(first.join(name)).unwrap());
        let doc = roxmltree::Document::parse(&svg)
            .unwrap_or_else(|e| panic!("{name} is not well-formed: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        // The partition of the scenario is shaded and labelled on every chart.
        assert!(
            doc.descendants().any(
                |n| n.has_tag_name("text") && n.text().is_some_and(|t| t.trim() == "partition")
            ),
            "{name} names the partition in its legend"
        );
        assert_eq!(
            std::fs::read(second.join(name)).unwrap(),
            svg.as_bytes(),
            "{name} differs between two runs of the same seed"
        );
    }
}

#[test]
fn the_summary_names_the_report_page_that_was_written() {
    let (_keep, dir) = out_dir();
    let out = run_into("scenarios/broadcast/partition-heal.toml", &dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = dir.join("report.html");
    assert!(page.is_file());
    let line = format!("  page:   {} (open it in a browser)", page.display());
    assert!(
        text(&out.stdout).lines().any(|l| l == line),
        "no line {line:?} in:\n{}",
        text(&out.stdout)
    );
}

#[test]
fn bench_scale_quick_measures_every_load_in_a_child_and_each_passes() {
    let out = faultline(&["bench", "scale", "--quick", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let scale = &json["scale"];
    assert_eq!(scale["quick"], true);
    assert!(
        scale["peak_rss_source"].as_str().unwrap().contains("wait4"),
        "{scale}"
    );
    let loads = scale["loads"].as_array().expect("loads");
    let shapes: Vec<(&str, u64, u64, u64)> = loads
        .iter()
        .map(|l| {
            (
                l["protocol"].as_str().unwrap(),
                l["nodes"].as_u64().unwrap(),
                l["clients"].as_u64().unwrap(),
                l["simulated_ms"].as_f64().unwrap() as u64,
            )
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("raft", 5, 5, 4000),
            ("raft", 5, 20, 4000),
            ("raft", 15, 20, 4000),
            ("raft", 5, 50, 4000),
            ("raft", 5, 5, 6000),
            ("raft", 5, 50, 6000),
            ("multi-paxos", 5, 50, 4000),
            ("multi-paxos", 5, 5, 6000)
        ]
    );
    for l in loads {
        assert_eq!(l["verdict"], "pass", "{l}");
        assert!(l["note"].is_null(), "{l}");
        assert!(l["sim_limit_exceeded"].is_null(), "{l}");
        for key in [
            "sim_wall_ms",
            "sim_to_wall",
            "run_wall_ms",
            "run_sim_to_wall",
        ] {
            assert!(l[key].as_f64().unwrap() > 0.0, "{key}: {l}");
        }
        assert!(l["sim_events"].as_u64().unwrap() > 1000, "{l}");
        // The child's own peak memory: more than a bare process, less than the machine.
        let rss = l["peak_rss_bytes"].as_u64().unwrap();
        assert!((1 << 20..64 << 30).contains(&rss), "{l}");
        assert!(l["trace_bytes"].as_u64().unwrap() > 100_000, "{l}");
    }
    // More clients: more events and a bigger trace, over the same simulated time.
    let events = |i: usize| loads[i]["sim_events"].as_u64().unwrap();
    let trace = |i: usize| loads[i]["trace_bytes"].as_u64().unwrap();
    assert!(events(3) > events(1) && events(1) > events(0));
    assert!(trace(3) > trace(0));
    // Text: one row per load.
    let out = faultline(&["bench", "scale", "--quick"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("5 nodes, 50 clients, 6 s"), "{table}");
    assert!(
        table.contains("multi-paxos, 5 nodes, 50 clients, 4 s"),
        "{table}"
    );
    assert_eq!(table.matches(" pass").count(), 8, "{table}");
}
