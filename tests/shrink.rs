//! `faultline shrink` and `faultline run --export-faults` end to end, and the scenario writer's
//! round trip (`Scenario::to_toml_text`).

mod common;

use std::path::Path;

use common::{faultline, repo, text};
use faultline::scenario::Scenario;
use faultline::sim::{self, RunOptions};

/// The checks that failed in a `run --json` report.
fn failing_checks(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// `faultline run FILE --json --no-trace` into a temporary folder: (exit code, report).
fn run_json(file: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let mut args = vec![
        "run",
        file.to_str().unwrap(),
        "--json",
        "--no-trace",
        "--out",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = faultline(&args);
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}{}", text(&out.stdout), text(&out.stderr)));
    (out.status.code(), report)
}

/// Shrinks a shipped planted-bug scenario with a small budget and checks the result: it loads,
/// `faultline run` on it fails every check the original's `[expect]` names (and the shrunk
/// file's own `[expect]`, which `faultline test` accepts), with no more faults than the original
/// run's schedule written out.
fn shrunk_scenario_still_fails(path: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("shrunk.toml");
    let out = faultline(&[
        "shrink",
        path,
        "--max-runs",
        "25",
        "--quiet",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{path}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("before:") && stdout.contains("after:"),
        "{stdout}"
    );
    let original = Scenario::load(&repo(path)).unwrap();
    let shrunk = Scenario::load(&out_file).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert!(
        shrunk.nemesis.is_none(),
        "{path}: the nemesis is written out"
    );
    let exported = sim::run(&original, original.seed, &RunOptions::hash_only())
        .faults
        .len();
    assert!(
        shrunk.faults.len() <= exported,
        "{path}: {} faults after, {exported} before",
        shrunk.faults.len()
    );
    let header = std::fs::read_to_string(&out_file).unwrap();
    assert!(
        header.starts_with("# Shrunk by faultline") && header.contains(path),
        "{header}"
    );
    let (code, report) = run_json(&out_file, &[]);
    assert_eq!(code, Some(1), "{path}: the shrunk scenario fails");
    let failed = failing_checks(&report);
    for check in &original.expect.failing_checks {
        assert!(failed.contains(check), "{path}: {check} not in {failed:?}");
    }
    let tested = faultline(&["test", out_file.to_str().unwrap()]);
    assert_eq!(
        tested.status.code(),
        Some(0),
        "{path}: {}",
        text(&tested.stdout)
    );
}

macro_rules! shrink_tests {
    ($($name:ident => $path:literal,)*) => {
        $(
            #[test]
            fn $name() {
                shrunk_scenario_still_fails($path);
            }
        )*

        /// Every shipped Raft and Paxos planted bug has a test above.
        #[test]
        fn every_raft_and_paxos_bug_scenario_is_shrunk_by_a_test() {
            let listed = [$($path),*];
            for dir in ["scenarios/raft/bugs", "scenarios/paxos/bugs"] {
                for entry in std::fs::read_dir(repo(dir)).unwrap() {
                    let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                    let path = format!("{dir}/{name}");
                    assert!(listed.contains(&path.as_str()), "{path} has no shrink test");
                }
            }
        }
    };
}

shrink_tests! {
    shrinks_raft_commit_previous_term_by_counting => "scenarios/raft/bugs/commit-previous-term-by-counting.toml",
    shrinks_raft_forget_vote_on_restart => "scenarios/raft/bugs/forget-vote-on-restart.toml",
    shrinks_raft_read_from_local_state => "scenarios/raft/bugs/read-from-local-state.toml",
    shrinks_raft_truncate_on_stale_append => "scenarios/raft/bugs/truncate-on-stale-append.toml",
    shrinks_raft_vote_without_log_check => "scenarios/raft/bugs/vote-without-log-check.toml",
    shrinks_paxos_accept_ignores_promise => "scenarios/paxos/bugs/accept-ignores-promise.toml",
    shrinks_paxos_acceptor_omits_accepted => "scenarios/paxos/bugs/acceptor-omits-accepted.toml",
    shrinks_paxos_duplicate_ballots => "scenarios/paxos/bugs/duplicate-ballots.toml",
    shrinks_multi_paxos_accept_ignores_promise => "scenarios/paxos/bugs/multi-paxos-accept-ignores-promise.toml",
    shrinks_multi_paxos_acceptor_omits_accepted => "scenarios/paxos/bugs/multi-paxos-acceptor-omits-accepted.toml",
    shrinks_multi_paxos_duplicate_ballots => "scenarios/paxos/bugs/multi-paxos-duplicate-ballots.toml",
    shrinks_multi_paxos_no_backoff => "scenarios/paxos/bugs/multi-paxos-no-backoff.toml",
    shrinks_multi_paxos_proposer_ignores_accepted => "scenarios/paxos/bugs/multi-paxos-proposer-ignores-accepted.toml",
    shrinks_multi_paxos_proposer_takes_lowest_accepted => "scenarios/paxos/bugs/multi-paxos-proposer-takes-lowest-accepted.toml",
    shrinks_multi_paxos_read_from_local_state => "scenarios/paxos/bugs/multi-paxos-read-from-local-state.toml",
    shrinks_paxos_no_backoff => "scenarios/paxos/bugs/no-backoff.toml",
    shrinks_paxos_promise_not_persisted => "scenarios/paxos/bugs/promise-not-persisted.toml",
    shrinks_paxos_proposer_ignores_accepted => "scenarios/paxos/bugs/proposer-ignores-accepted.toml",
    shrinks_paxos_proposer_takes_lowest_accepted => "scenarios/paxos/bugs/proposer-takes-lowest-accepted.toml",
}

#[test]
fn shrinking_is_deterministic_for_the_same_budget() {
    let dir = tempfile::tempdir().unwrap();
    let shrink_to = |name: &str| {
        let file = dir.path().join(name);
        let out = faultline(&[
            "shrink",
            "scenarios/raft/bugs/truncate-on-stale-append.toml",
            "--max-runs",
            "20",
            "--quiet",
            "--out",
            file.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        std::fs::read_to_string(file).unwrap()
    };
    assert_eq!(shrink_to("a.toml"), shrink_to("b.toml"));
}

#[test]
fn shrink_prints_one_progress_line_per_accepted_reduction_unless_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let args = [
        "shrink",
        "scenarios/paxos/bugs/promise-not-persisted.toml",
        "--max-runs",
        "15",
        "--out",
        file.to_str().unwrap(),
    ];
    let out = faultline(&args);
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("shrink: exported: run 0:"), "{stderr}");
    assert!(stderr.lines().count() >= 2, "{stderr}");
    let mut quiet = args.to_vec();
    quiet.push("--quiet");
    assert_eq!(text(&faultline(&quiet).stderr), "");
}

#[test]
fn shrinking_a_scenario_that_does_not_fail_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let out = faultline(&[
        "shrink",
        "scenarios/paxos/dueling-proposers.toml",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("does not fail"),
        "{}",
        text(&out.stderr)
    );
    assert!(!file.exists());
    let named = faultline(&[
        "shrink",
        "scenarios/raft/bugs/forget-vote-on-restart.toml",
        "--check",
        "liveness",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(named.status.code(), Some(1), "{}", text(&named.stderr));
    assert!(text(&named.stderr).contains("does not fail liveness"));
}

#[test]
fn shrink_bad_input_exits_2_before_any_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    let bug = "scenarios/raft/bugs/forget-vote-on-restart.toml";
    let cases: [(Vec<&str>, &str); 5] = [
        (vec!["shrink", "no/such/file.toml"], "no/such/file.toml"),
        (
            vec!["shrink", bug, "--check", "no-such-check"],
            "no such check",
        ),
        (
            vec!["shrink", bug, "--out", dir.path().to_str().unwrap()],
            "is a folder",
        ),
        (vec!["shrink", bug, "--max-seconds=0"], "--max-seconds"),
        (vec!["shrink", bug, "--max-runs", "0"], "--max-runs"),
    ];
    for (args, says) in cases {
        let mut args = args;
        if !args.contains(&"--out") {
            args.extend(["--out", file.to_str().unwrap()]);
        }
        let out = faultline(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(text(&out.stdout).is_empty(), "{args:?}: nothing ran");
    }
}

/// The exported schedule replays the run: the same verdict and the same failing checks, for a
/// failing nemesis run and a passing one; the file has no `[nemesis]`, one `[[fault]]` per planned
/// fault and the run's seed.
#[test]
fn export_faults_writes_a_scripted_scenario_with_the_same_verdict_and_failing_checks() {
    let dir = tempfile::tempdir().unwrap();
    for (scenario, seed) in [
        ("scenarios/raft/bugs/forget-vote-on-restart.toml", "3"),
        ("scenarios/raft/nemesis.toml", "2"),
    ] {
        let file = dir.path().join("exported.toml");
        let (code, report) = run_json(
            &repo(scenario),
            &["--seed", seed, "--export-faults", file.to_str().unwrap()],
        );
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.starts_with("# Exported by faultline") && text.contains(scenario),
            "{text}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&file).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o644,
                "an ordinary file, not a private temporary one"
            );
        }
        let exported = Scenario::load(&file).unwrap();
        assert!(exported.nemesis.is_none());
        assert_eq!(exported.seed.to_string(), seed);
        let original = Scenario::load(&repo(scenario)).unwrap();
        let planned = sim::run(&original, seed.parse().unwrap(), &RunOptions::hash_only()).faults;
        assert!(!planned.is_empty());
        assert_eq!(exported.faults.len(), planned.len(), "{scenario}");
        let (again_code, again) = run_json(&file, &[]);
        assert_eq!(again_code, code, "{scenario}");
        assert_eq!(again["verdict"], report["verdict"], "{scenario}");
        assert_eq!(
            failing_checks(&again),
            failing_checks(&report),
            "{scenario}"
        );
    }
}

#[test]
fn export_faults_into_a_folder_is_bad_input_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let out = faultline(&[
        "run",
        "scenarios/raft/nemesis.toml",
        "--export-faults",
        dir.path().to_str().unwrap(),
        "--out",
        dir.path().join("run").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(!dir.path().join("run").exists(), "no run happened");
}

/// Every shipped scenario written by `Scenario::to_toml_text` loads back and writes the same
/// text again; the first scenario of every folder (a representative set: running them all twice
/// is too slow for the debug suite) also runs at its seed to the same trace hash.
#[test]
fn written_scenarios_load_back_and_run_to_the_same_trace_hash() {
    let files = faultline::cli::test::find_scenarios(&[repo("scenarios")]).unwrap();
    let mut folders_run = std::collections::BTreeSet::new();
    for path in files {
        let original = Scenario::load(&path).unwrap();
        let written = original.to_toml_text().unwrap();
        let loaded = Scenario::parse(&path, written.as_bytes())
            .unwrap_or_else(|e| panic!("{}: {e}\n{written}", path.display()));
        assert_eq!(
            loaded.to_toml_text().unwrap(),
            written,
            "{}",
            path.display()
        );
        if folders_run.insert(path.parent().unwrap().to_path_buf()) {
            let options = RunOptions::hash_only();
            let a = sim::run(&original, original.seed, &options);
            let b = sim::run(&loaded, loaded.seed, &options);
            assert_eq!(a.trace_hash, b.trace_hash, "{}", path.display());
        }
    }
    assert!(folders_run.len() >= 10, "{folders_run:?}");
}
