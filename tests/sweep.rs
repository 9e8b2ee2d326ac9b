//! `faultline sweep` and `faultline sweep merge` end to end (the built binary), and the
//! deployment examples of `docs/sweeping.md`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{faultline, faultline_command, repo, text};
use faultline::outcome::run_seed;
use faultline::scenario::{Scenario, Verdict};
use faultline::sim::RunOptions;

const BUG: &str = "scenarios/raft/bugs/forget-vote-on-restart.toml";

/// `faultline sweep ARGS... --out OUT`.
fn sweep_into(out: &Path, args: &[&str]) -> Output {
    let mut all = vec!["sweep"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", out.to_str().unwrap()]);
    faultline(&all)
}

/// The correct twin of the planted-bug scenario (its bug switched off), 10 simulated seconds
/// long, written into `dir`.
fn correct_twin(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(repo(BUG)).unwrap();
    let twin: String = text
        .lines()
        .filter(|l| !l.starts_with("bugs = ") && !l.starts_with("failing_checks"))
        .map(|l| match l {
            "duration = \"30s\"" => "duration = \"10s\"",
            "verdict = \"fail\"" => "verdict = \"pass\"",
            l if l.starts_with("name = ") => "name = \"twin\"",
            l => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join("twin.toml");
    std::fs::write(&path, twin).unwrap();
    path
}

/// Every line of a sweep's `sweep.jsonl`, as JSON.
fn lines(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("sweep.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (scenario, seed) -> how many lines record it.
fn per_seed(lines: &[serde_json::Value]) -> BTreeMap<(String, u64), usize> {
    let mut count = BTreeMap::new();
    for l in lines {
        let key = (
            l["scenario"].as_str().unwrap().to_string(),
            l["seed"].as_u64().unwrap(),
        );
        *count.entry(key).or_insert(0) += 1;
    }
    count
}

fn summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap()
}

fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

#[test]
fn a_sweep_finds_exactly_the_failing_seeds_single_runs_find() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let run = faultline(&[
        "sweep",
        BUG,
        "--seeds",
        "1..8",
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ]);
    let scenario = Scenario::load(&repo(BUG)).unwrap();
    let mut expected = Vec::new();
    for seed in 1..=8 {
        let checked = run_seed(&scenario, seed, &RunOptions::hash_only()).unwrap();
        if checked.verdict() != Verdict::Pass {
            expected.push((seed, checked.record.trace_hash.clone()));
        }
    }
    assert!(
        !expected.is_empty(),
        "the planted bug fails at some seed in 1..8"
    );
    assert_code(&run, 1);
    let lines = lines(&out);
    assert_eq!(lines.len(), 8, "one line per seed");
    let mut found: Vec<(u64, String)> = lines
        .iter()
        .filter(|l| l["verdict"] != "pass")
        .map(|l| {
            assert_eq!(l["failing_checks"][0], "election-safety", "{l}");
            let folder = out.join(l["report"].as_str().expect("a report folder"));
            assert!(folder.join("report.json").is_file() && folder.join("trace.jsonl").is_file());
            (
                l["seed"].as_u64().unwrap(),
                l["trace_hash"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(found, expected);
    let s = summary(&out);
    assert_eq!(s["total"]["fail"], expected.len());
    let group = &s["groups"][0];
    assert_eq!(group["smallest_seed"], expected[0].0);
    assert_eq!(
        group["reproduce"],
        format!("faultline run {BUG} --seed {}", expected[0].0)
    );
    assert!(text(&run.stdout).contains("election-safety"));
}

#[test]
fn a_correct_twin_passes_every_seed_with_exit_0_and_writes_no_report_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = correct_twin(tmp.path());
    let out = tmp.path().join("sweep");
    let run = sweep_into(
        &out,
        &[twin.to_str().unwrap(), "--seeds", "1..10", "--json"],
    );
    assert_code(&run, 0);
    let printed: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed["total"]["pass"], 10);
    assert_eq!(printed, summary(&out), "--json prints summary.json");
    assert!(
        !out.join("twin").exists(),
        "no report folder for passing seeds"
    );
}

#[test]
fn a_killed_sweep_resumes_with_every_seed_once_and_none_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = correct_twin(tmp.path());
    let out = tmp.path().join("sweep");
    let args = [
        "sweep",
        twin.to_str().unwrap(),
        "--seeds",
        "1..400",
        "--jobs",
        "1",
        "--out",
        out.to_str().unwrap(),
        "-q",
    ];
    let mut child = faultline_command(&args).spawn().unwrap();
    while lines(&out).len() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = per_seed(&lines(&out));
    assert!(
        before.len() < 400,
        "killed before the end ({} seeds)",
        before.len()
    );
    let again = faultline(&args);
    assert_code(&again, 0);
    assert!(
        text(&again.stderr).contains(&format!("{} of 400 seeds already done", before.len())),
        "{}",
        text(&again.stderr)
    );
    let after = per_seed(&lines(&out));
    assert_eq!(after.len(), 400, "every seed");
    assert!(
        after.values().all(|&n| n == 1),
        "each exactly once: none redone"
    );
    assert_eq!(summary(&out)["total"]["pass"], 400);
}

#[test]
fn a_torn_last_line_is_dropped_and_its_seed_run_again() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = correct_twin(tmp.path());
    let out = tmp.path().join("sweep");
    let sweep = |seeds: &str| sweep_into(&out, &[twin.to_str().unwrap(), "--seeds", seeds]);
    assert_code(&sweep("1..3"), 0);
    let results = out.join("sweep.jsonl");
    let mut bytes = std::fs::read(&results).unwrap();
    let torn = format!("{{\"scenario\":\"{}\",\"seed\":4,\"verd", twin.display());
    bytes.extend_from_slice(torn.as_bytes());
    std::fs::write(&results, bytes).unwrap();
    assert_code(&sweep("1..5"), 0);
    let after = per_seed(&lines(&out));
    assert_eq!(
        after.keys().map(|k| k.1).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(after.values().all(|&n| n == 1), "{after:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(manifest["seeds"]["last"], 5, "the range grew to hold both");
}

/// A summary without what may differ between a sweep and the merge of its shards.
fn comparable(mut s: serde_json::Value) -> serde_json::Value {
    for key in ["wall_time_ms", "seeds_per_s", "run_time_ms", "shards"] {
        s.as_object_mut().unwrap().remove(key);
    }
    for g in s["groups"].as_array_mut().unwrap() {
        g.as_object_mut().unwrap().remove("report");
    }
    s
}

#[test]
fn sharded_then_merged_equals_unsharded() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = correct_twin(tmp.path());
    let dir = |name: &str| tmp.path().join(name);
    let sweep = |extra: &[&str], out: &Path| {
        let mut args = vec![
            "sweep",
            BUG,
            twin.to_str().unwrap(),
            "--seeds",
            "1..7",
            "--max-reports",
            "0",
            "-q",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        faultline(&args)
    };
    assert_code(&sweep(&[], &dir("whole")), 1);
    for k in 1..=3 {
        let shard = format!("{k}/3");
        assert_code(&sweep(&["--shard", &shard], &dir(&format!("s{k}"))), 1);
    }
    let shard_seeds: Vec<usize> = (1..=3)
        .map(|k| lines(&dir(&format!("s{k}"))).len() / 2)
        .collect();
    assert_eq!(shard_seeds, [3, 2, 2], "round robin over 7 seeds");
    let merged = faultline(&[
        "sweep",
        "merge",
        dir("s1").to_str().unwrap(),
        dir("s2").to_str().unwrap(),
        dir("s3").to_str().unwrap(),
        "--out",
        dir("merged").to_str().unwrap(),
        "--json",
    ]);
    assert_code(&merged, 1);
    let whole = summary(&dir("whole"));
    assert!(
        whole["groups"][0]["report"].is_string(),
        "the smallest seed has its folder"
    );
    assert_eq!(comparable(summary(&dir("merged"))), comparable(whole));
    let printed: serde_json::Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(printed["shards"], serde_json::json!(["1/3", "2/3", "3/3"]));
}

#[test]
fn merging_a_seed_recorded_twice_with_different_hashes_reports_nondeterminism() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = correct_twin(tmp.path());
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for out in [&a, &b] {
        let run = sweep_into(out, &[twin.to_str().unwrap(), "--seeds", "1..2"]);
        assert_code(&run, 0);
    }
    let results = b.join("sweep.jsonl");
    let changed = std::fs::read_to_string(&results).unwrap().replacen(
        "\"trace_hash\":\"",
        "\"trace_hash\":\"ff",
        1,
    );
    std::fs::write(&results, changed).unwrap();
    let merged = faultline(&[
        "sweep",
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
    ]);
    assert_code(&merged, 1);
    let s: serde_json::Value = serde_json::from_slice(&merged.stdout).unwrap();
    assert_eq!(s["nondeterministic"].as_array().unwrap().len(), 1, "{s}");
    assert_eq!(
        (s["total"]["pass"].clone(), s["total"]["error"].clone()),
        (1.into(), 1.into())
    );
}

#[test]
fn check_determinism_passes_on_a_correct_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let twin = correct_twin(tmp.path());
    let out = tmp.path().join("sweep");
    let run = sweep_into(
        &out,
        &[
            twin.to_str().unwrap(),
            "--seeds",
            "1..6",
            "--jobs",
            "2",
            "--check-determinism",
        ],
    );
    assert_code(&run, 0);
    assert_eq!(per_seed(&lines(&out)).len(), 6);
}

#[test]
fn a_seed_at_an_event_limit_is_that_seeds_error_and_the_sweep_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    let zero = tmp.path().join("zero.toml");
    std::fs::write(
        &zero,
        "name = \"zero\"\nduration = \"10s\"\n[cluster]\nprotocol = \"pingpong\"\nnodes = 2\n\
         [network]\nlatency = \"0s\"\n[workload]\nclients = 0\n",
    )
    .unwrap();
    let twin = correct_twin(tmp.path());
    let out = tmp.path().join("sweep");
    let run = sweep_into(
        &out,
        &[
            zero.to_str().unwrap(),
            twin.to_str().unwrap(),
            "--seeds",
            "1..3",
            "--json",
        ],
    );
    assert_code(&run, 1);
    let s: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(s["scenarios"][0]["error"], 3);
    assert_eq!(
        s["scenarios"][1]["pass"], 3,
        "the other scenario's seeds still ran"
    );
    assert_eq!(s["groups"][0]["verdict"], "error");
    assert!(lines(&out).iter().any(|l| {
        l["error"]
            .as_str()
            .is_some_and(|e| e.contains("events_per_instant"))
    }));
    assert!(
        text(&run.stderr).is_empty(),
        "no panic text: {}",
        text(&run.stderr)
    );
}

#[test]
fn bad_input_exits_2_before_any_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let o = out.to_str().unwrap();
    let bad = repo("tests/bad-scenarios");
    let bad_file = std::fs::read_dir(&bad)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .unwrap();
    for args in [
        vec![
            "sweep",
            BUG,
            bad_file.to_str().unwrap(),
            "--seeds",
            "1..3",
            "--out",
            o,
        ],
        vec!["sweep", BUG, "--seeds", "5..1", "--out", o],
        vec![
            "sweep", BUG, "--seeds", "1..3", "--shard", "4/3", "--out", o,
        ],
        vec![
            "sweep",
            BUG,
            "--seeds",
            "1..3",
            "--until-fail",
            "--keep-going",
            "--out",
            o,
        ],
        vec!["sweep", BUG, BUG, "--seeds", "1..3", "--out", o],
        vec![
            "sweep", BUG, "--seeds", "1..2", "--shard", "3/3", "--out", o,
        ],
    ] {
        let run = faultline(&args);
        assert_code(&run, 2);
        assert!(!out.exists(), "{args:?}: nothing written");
    }
    // A folder of another sweep, or of something else, is refused before running.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let run = faultline(&["sweep", BUG, "--seeds", "1..2", "--out", o]);
    assert_code(&run, 2);
    assert!(text(&run.stderr).contains("not a faultline sweep folder"));
    std::fs::remove_file(out.join("notes.txt")).unwrap();
    let twin = correct_twin(tmp.path());
    assert_code(
        &faultline(&["sweep", twin.to_str().unwrap(), "--seeds", "1", "--out", o]),
        0,
    );
    let run = faultline(&["sweep", BUG, "--seeds", "1..2", "--out", o]);
    assert_code(&run, 2);
    assert!(
        text(&run.stderr).contains("holds a different sweep"),
        "{}",
        text(&run.stderr)
    );
    assert_eq!(lines(&out).len(), 1, "nothing run");
}

/// The `faultline sweep ...` command lines of a deployment file: every line holding
/// `faultline sweep` (comments left out), from there to the end of the command, shell
/// variables replaced by examples.
fn sweep_commands(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.find("faultline sweep").map(|i| &l[i..]))
        .map(|c| {
            // The command ends where the shell goes on (`; test $? -ne 2`, `|| ...`).
            let end = c.find([';', '|']).unwrap_or(c.len());
            c[..end]
                .trim_end_matches(['"', '\'', ' '])
                .replace("$((JOB_COMPLETION_INDEX + 1))", "1")
                .replace("${{ matrix.shard }}", "1")
                .replace("${CI_NODE_INDEX}", "1")
                .replace("${CI_NODE_TOTAL}", "8")
                .replace("${SLURM_ARRAY_TASK_ID}", "1")
        })
        .collect()
}

#[test]
fn the_deployment_examples_are_in_the_docs_and_their_commands_parse() {
    let docs = std::fs::read_to_string(repo("docs/sweeping.md")).unwrap();
    let mut commands = 0;
    for file in ["deploy/k8s/sweep-job.yaml", "deploy/github/sweep.yml"] {
        let body = std::fs::read_to_string(repo(file)).unwrap();
        assert!(
            docs.contains(&body),
            "docs/sweeping.md embeds {file} as it is"
        );
        for command in sweep_commands(&body) {
            let words: Vec<&str> = command.split_whitespace().filter(|w| *w != "\\").collect();
            let parsed = faultline::cli::sweep::SweepCommandLine::parse_words(&words);
            let args = parsed.unwrap_or_else(|e| panic!("{file}: {command}: {e}"));
            assert!(
                args.shard.is_some() || args.command.is_some(),
                "{file}: each job runs a shard, or merges them: {command}"
            );
            commands += 1;
        }
    }
    let shown = docs
        .lines()
        .filter(|l| l.trim_start().starts_with("faultline sweep"));
    for command in sweep_commands(&shown.collect::<Vec<_>>().join("\n")) {
        let words: Vec<&str> = command.split_whitespace().filter(|w| *w != "\\").collect();
        if let Err(e) = faultline::cli::sweep::SweepCommandLine::parse_words(&words) {
            panic!("docs/sweeping.md: {command}: {e}");
        }
    }
    assert!(commands >= 2, "both files run faultline sweep");
}
