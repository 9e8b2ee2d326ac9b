//! `faultline explain` end to end: story lines of real scenarios (Raft elections with their
//! voters, the Figure 8 story of `--check`, Paxos dueling proposers), the filters, bad input
//! (exit 2), and determinism (same bytes twice).

mod common;

use common::{faultline, text};
use std::process::Command;

/// Runs `explain ARGS`, asserts exit 0, returns stdout.
fn explain(args: &[&str]) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let out = faultline(&all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `explain ARGS`, asserts exit 2 and no panic, returns stderr.
fn explain_fails(args: &[&str]) -> String {
    let mut all = vec!["explain"];
    all.extend_from_slice(args);
    let out = faultline(&all);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

const LEADER_ISOLATED: &str = "scenarios/raft/leader-isolated.toml";
const FIGURE_8: &str = "scenarios/raft/bugs/commit-previous-term-by-counting.toml";

#[test]
fn raft_leader_isolated_tells_elections_with_named_voters_and_the_checkquorum_step_down() {
    let story = explain(&[LEADER_ISOLATED, "--kinds", "election,fault"]);
    assert!(
        story.contains("  0.167 s  n5 becomes leader of term 1 with votes from n2, n3\n"),
        "{story}"
    );
    assert!(
        story.contains("n2 becomes leader of term 2 with votes from n1, n3"),
        "{story}"
    );
    assert!(
        story.contains("n5 steps down: CheckQuorum finds no majority answering it in term 1"),
        "{story}"
    );
    assert!(
        story.contains("3.000 s  isolate n1 n2 n3 n4 | n5 begins"),
        "{story}"
    );
    assert!(
        story.contains("n2 times out in term 1 and starts PreVote"),
        "{story}"
    );
    // --kinds left out the other topics.
    assert!(!story.contains("messages ("), "{story}");
    assert!(!story.contains("snapshot"), "{story}");
}

#[test]
fn explain_reads_a_report_folder_like_the_scenario_and_filters_by_node_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let run = faultline(&["run", LEADER_ISOLATED, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let from_folder = explain(&[out_dir.to_str().unwrap()]);
    let from_scenario = explain(&[LEADER_ISOLATED]);
    assert_eq!(from_folder, from_scenario);
    let window = explain(&[
        out_dir.to_str().unwrap(),
        "--from",
        "3s",
        "--to",
        "3500ms",
        "--node",
        "n2",
    ]);
    let times: Vec<f64> = window
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!times.is_empty(), "{window}");
    assert!(times.iter().all(|t| (3.0..=3.5).contains(t)), "{window}");
    assert!(window.contains("n2 becomes leader of term 2"), "{window}");
    assert!(!window.contains("n5 steps down"), "{window}");
    // Whole-run lines (faults, traffic) stay.
    assert!(window.contains("3.000-4.000 s:"), "{window}");
}

#[test]
fn explain_check_tells_figure_8_in_a_few_lines_naming_the_lost_committed_entry() {
    let story = explain(&[FIGURE_8, "--check", "state-machine-safety"]);
    let lines: Vec<&str> = story.lines().filter(|l| l.contains(" s  ")).collect();
    assert!(lines.len() <= 20, "{} lines:\n{story}", lines.len());
    assert!(
        story.contains("n3 commits index 39 (term 190) by counting replicas, as leader of term 396: an entry of an earlier term"),
        "{story}"
    );
    assert!(
        story.contains(
            "n2's entries 39-40 (term 190) are replaced, though entries 39-40 were committed by n3 at 36.394 s: a committed entry is lost"
        ),
        "{story}"
    );
}

#[test]
fn paxos_dueling_proposers_are_told_as_preempted_ballots_and_chosen_values() {
    let story = explain(&["scenarios/paxos/dueling-proposers.toml", "--to", "200ms"]);
    assert!(
        story.contains("n5 prepares ballot (1, n5) in instance 0"),
        "{story}"
    );
    assert!(
        story.contains(
            "'s ballot (1, n3) is preempted in instance 0: n1 promised the higher ballot (1, n4)"
        ),
        "{story}"
    );
    assert!(story.contains("is chosen in instance 0"), "{story}");
}

#[test]
fn multi_paxos_and_broadcast_runs_tell_their_leaders_and_values() {
    let story = explain(&[
        "scenarios/paxos/multi-paxos-leader-isolated.toml",
        "--kinds",
        "election",
    ]);
    assert!(
        story.contains("n4 becomes leader with ballot (1, n4): promises from n2, n3, n5"),
        "{story}"
    );
    let story = explain(&[
        "scenarios/broadcast/partition-heal.toml",
        "--kinds",
        "gossip",
    ]);
    assert!(story.contains(" first holds "), "{story}");
    assert!(story.contains("every server holds "), "{story}");
}

#[test]
fn explain_messages_lists_each_message_of_the_window() {
    let story = explain(&[
        LEADER_ISOLATED,
        "--messages",
        "--from",
        "3s",
        "--to",
        "3010ms",
        "--kinds",
        "message",
    ]);
    assert!(story.contains(" -> "), "{story}");
    assert!(story.contains("dropped (partition) at"), "{story}");
    assert!(!story.contains("3.000-4.000 s:"), "{story}");
}

#[test]
fn explain_twice_gives_the_same_bytes() {
    assert_eq!(explain(&[FIGURE_8]), explain(&[FIGURE_8]));
}

#[test]
fn bad_explain_input_exits_2_naming_the_flag_or_file() {
    assert!(
        explain_fails(&["no/such/place"])
            .contains("no/such/place: no such report folder or scenario file")
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(
        explain_fails(&[empty.path().to_str().unwrap()])
            .contains("not a report folder (no report.json)")
    );
    assert!(
        explain_fails(&[LEADER_ISOLATED, "--from", "3"]).contains("--from 3: expected a duration")
    );
    assert!(
        explain_fails(&[LEADER_ISOLATED, "--from", "5s", "--to", "1s"])
            .contains("--from 5s is after --to 1s")
    );
    assert!(
        explain_fails(&[LEADER_ISOLATED, "--node", "n9"])
            .contains("--node n9: no such node in this run; expected one of n1,")
    );
    assert!(
        explain_fails(&[LEADER_ISOLATED, "--kinds", "elections"])
            .contains("--kinds elections: no such topic")
    );
    let stderr = explain_fails(&[LEADER_ISOLATED, "--check", "nope"]);
    assert!(
        stderr.contains("--check nope: no such check in this run; expected one of"),
        "{stderr}"
    );
    assert!(stderr.contains("election-safety"), "{stderr}");
}

#[test]
fn explain_into_a_closed_pipe_ends_quietly() {
    use std::io::Read;
    let mut child = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .args(["explain", LEADER_ISOLATED, "--messages"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn explain_streams_a_report_folders_trace_and_history_naming_an_unreadable_line() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let run = faultline(&["run", LEADER_ISOLATED, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let folder = out_dir.to_str().unwrap();
    let whole = explain(&[folder]);
    let count = |name: &str| {
        std::fs::read_to_string(out_dir.join(name))
            .unwrap()
            .lines()
            .count()
    };
    let (trace_lines, history_lines) = (count("trace.jsonl"), count("history.jsonl"));
    assert!(trace_lines > 1000, "{trace_lines}");
    // A line that is not UTF-8 after the last one: the error names the file and that line.
    let append = |name: &str, bytes: &[u8]| {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(out_dir.join(name))
            .unwrap();
        f.write_all(bytes).unwrap();
    };
    let trace = std::fs::read(out_dir.join("trace.jsonl")).unwrap();
    append("trace.jsonl", b"{\"t_ns\": \xff}\n");
    let stderr = explain_fails(&[folder]);
    assert!(
        stderr.contains(&format!("trace.jsonl:{}: cannot read", trace_lines + 1)),
        "{stderr}"
    );
    std::fs::write(out_dir.join("trace.jsonl"), &trace).unwrap();
    append("history.jsonl", b"{\"not\": \"an event\"}\n");
    let stderr = explain_fails(&[folder]);
    assert!(
        stderr.contains(&format!(
            "history.jsonl:{}: not a history event",
            history_lines + 1
        )),
        "{stderr}"
    );
    // A folder without its trace still tells what the report and history know.
    std::fs::remove_file(out_dir.join("history.jsonl")).unwrap();
    std::fs::remove_file(out_dir.join("trace.jsonl")).unwrap();
    let bare = explain(&[folder]);
    assert_ne!(bare, whole);
}
