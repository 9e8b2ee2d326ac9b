//! `faultline check-history` end to end: verdicts, exit codes, counterexample and error text.

use std::process::Command;

fn run(name: &str, content: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("check-history")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD_LOG: &str = "INFO  jepsen.util - 0\t:invoke\t:write\t1\n\
INFO  jepsen.util - 0\t:ok\t:write\t1\n\
INFO  jepsen.util - 1\t:invoke\t:cas\t[1 2]\n\
INFO  jepsen.util - 1\t:ok\t:cas\t[1 2]\n\
INFO  jepsen.util - 2\t:invoke\t:read\tnil\n\
INFO  jepsen.util - 2\t:ok\t:read\t2\n";

#[test]
fn linearizable_exits_0() {
    let (code, out, _) = run("h.log", GOOD_LOG, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("linearizable: 3 operations (cas-register model)"),
        "{out}"
    );
}

#[test]
fn not_linearizable_exits_1_with_a_counterexample_naming_lines() {
    let bad = GOOD_LOG.replace(":ok\t:read\t2", ":ok\t:read\t1");
    let (code, out, _) = run("h.log", &bad, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not linearizable"), "{out}");
    assert!(
        out.contains("cannot place: process 2: read -> 1  (invoked line 5, completed line 6)"),
        "{out}"
    );
    let (code, out, _) = run("h.log", &bad, &["--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["report"]["verdict"], "not-linearizable");
    assert_eq!(v["report"]["counterexample"]["blocked"]["op"], "read -> 1");
}

#[test]
fn unreadable_input_exits_2_with_file_line_and_expectation() {
    let (code, _, err) = run(
        "h.edn",
        "[{:process 0 :type :invoke :f :read}\n {:process 0, :type :ok}]",
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("h.edn:2: a map without :f; expected :f one of"),
        "{err}"
    );
    let (code, _, err) = run("h.log", "INFO  jepsen.util - 0\t:ok\t:read\t1\n", &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "h.log:1: a completion (ok) of process 0 with no outstanding invoke; expected an invoke"
        ),
        "{err}"
    );
    let (code, _, err) = run("h.bin", "\u{0}\u{1}garbage", &["--format", "jsonl"]);
    assert_eq!(code, 2);
    assert!(err.contains("h.bin:1:"), "{err}");
    let (code, _, _) = run("h.log", GOOD_LOG, &["--model", "nonsense"]);
    assert_eq!(code, 2);
}

#[test]
fn a_spent_budget_exits_3() {
    // 30 concurrent writes, then concurrent reads that disagree: refuting it needs a large search.
    let mut text = String::new();
    for p in 0..30 {
        text.push_str(&format!(
            "{{:process {p}, :type :invoke, :f :write, :value {}}}\n",
            p % 5
        ));
    }
    for p in 0..30 {
        text.push_str(&format!(
            "{{:process {p}, :type :ok, :f :write, :value {}}}\n",
            p % 5
        ));
    }
    for p in 30..36 {
        text.push_str(&format!(
            "{{:process {p}, :type :invoke, :f :read, :value nil}}\n"
        ));
    }
    for p in 30..36 {
        text.push_str(&format!(
            "{{:process {p}, :type :ok, :f :read, :value {}}}\n",
            p % 5
        ));
    }
    let (code, out, _) = run("h.txt", &text, &["--memory-limit-mib", "0"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("unknown: the memory limit"), "{out}");
}
