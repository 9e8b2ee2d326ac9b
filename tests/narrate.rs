//! The lock, registry, quorum and balancing narrators on shipped scenarios: each run goes
//! through `faultline::api::Runner`, its view is built the way `faultline run` builds it, and
//! the tests look for the story lines, state changes and samples a teacher would point at.
//!
//! `NARRATE_DUMP=1 cargo test --test narrate -- --nocapture` prints each run's family lines.

use std::path::Path;

use faultline::api::Runner;
use faultline::report::{Report, view::RunView, view_of_run};

fn view(scenario: &str) -> RunView<'static> {
    let runner = Runner::builtin();
    let path = Path::new(scenario);
    let s = runner.load(path).expect("shipped scenarios load");
    let outcome = runner.run(&s, s.seed);
    let report = Report::new(&outcome.record, outcome.checks, path, 0);
    let v = view_of_run(&report, &outcome.record);
    if std::env::var_os("NARRATE_DUMP").is_some() {
        for l in &v.narration.lines {
            if l.topic != "fault" && l.topic != "node" {
                println!("{:>9.3} s  [{}] {}", l.t_ns as f64 / 1e9, l.topic, l.text);
            }
        }
    }
    v.into_owned()
}

/// The first story line containing every one of `words`, as (time ns, text).
fn line(v: &RunView, topic: &str, words: &[&str]) -> (u64, String) {
    v.narration
        .lines
        .iter()
        .find(|l| l.topic == topic && words.iter().all(|w| l.text.contains(w)))
        .map(|l| (l.t_ns, l.text.clone()))
        .unwrap_or_else(|| panic!("no `{topic}` line with {words:?}"))
}

fn lines_of(v: &RunView, topic: &str) -> usize {
    v.narration
        .lines
        .iter()
        .filter(|l| l.topic == topic)
        .count()
}

#[test]
fn the_kleppmann_story_shows_the_paused_holder_the_next_holder_and_the_stale_write() {
    let v = view("scenarios/locks/kleppmann-pause-without-fencing.toml");
    let (granted, _) = line(&v, "lock", &["victim1 acquires the lock with token 1"]);
    let (paused, _) = line(&v, "lock", &["victim1 is paused while it holds the lock"]);
    let (expired, _) = line(
        &v,
        "lock",
        &["victim1's grant (token 1) expires", "still believes"],
    );
    let (second, text) = line(&v, "lock", &["acquires the lock with token 2"]);
    assert!(text.starts_with("workers"), "{text}");
    assert!(text.contains("victim1 (token 1) still believes"), "{text}");
    let (resumed, _) = line(&v, "lock", &["victim1 resumes still believing", "token 1"]);
    let (stale, _) = line(
        &v,
        "lock",
        &["disk accepts victim1's write with stale token 1"],
    );
    assert!(granted < paused && paused < expired && expired < second);
    assert!(second < resumed && resumed <= stale);
    // The scrubber: victim1 still holds (in its belief) during its pause, next to the new holder.
    let during = v.state_at((expired + resumed) / 2);
    assert_eq!(during["victim1"]["role"], "holder");
    assert_eq!(during["victim1"]["status"], "paused");
    assert!(
        during
            .values()
            .filter(|s| s.get("role") == Some(&"holder"))
            .count()
            >= 1
    );
}

#[test]
fn with_fencing_the_storage_refuses_the_stale_token() {
    let v = view("scenarios/locks/kleppmann-pause-with-fencing.toml");
    line(
        &v,
        "lock",
        &["disk refuses victim1's write with stale token 1"],
    );
}

#[test]
fn a_zookeeper_session_expiry_is_told_in_session_terms() {
    let v = view("scenarios/locks/zk-session-expiry.toml");
    line(
        &v,
        "election",
        &["becomes the coordination service's leader"],
    );
    line(&v, "session", &["holder1 opens session"]);
    line(&v, "session", &["holder1's session ends by its clock"]);
    line(
        &v,
        "session",
        &["expires holder1's session", "no keep-alive"],
    );
    line(&v, "lock", &["(its key /lock/"]);
}

#[test]
fn a_server_crash_without_sync_tells_the_lost_grant() {
    let v = view("scenarios/locks/server-crash-loses-grants.toml");
    let (_, text) = line(
        &v,
        "lock",
        &["restarts without", "the grant was lost with the crash"],
    );
    assert!(text.starts_with("locks1"), "{text}");
}

#[test]
fn a_cp_registry_partition_shows_registrations_and_expiries() {
    let v = view("scenarios/registry/cp-partition-3-2.toml");
    line(&v, "registry", &["the registry lists"]);
    line(&v, "registry", &["is registered as an instance of"]);
    line(&v, "registry", &["now sees"]);
    line(&v, "session", &["expires", "registration lease"]);
}

#[test]
fn an_ap_registry_shows_evictions_and_self_preservation() {
    let v = view("scenarios/registry/cap-lesson-ap.toml");
    let (_, evict) = line(&v, "registry", &["evicts", "no renewal for"]);
    let (_, preserve) = line(&v, "registry", &["enters self-preservation"]);
    assert!(evict.starts_with("registry") && preserve.starts_with("registry"));
    // Every instance gets a registry role and the servers that list it.
    let (entered, _) = line(&v, "registry", &["enters self-preservation"]);
    let then = v.state_at(entered);
    assert!(
        then.values()
            .any(|s| s.get("role") == Some(&"self-preservation"))
    );
    let end = v.state_at(v.end_ns);
    assert!(end.values().any(|s| s.contains_key("listed by")));
}

#[test]
fn a_sloppy_quorum_partition_stores_hints_and_hands_them_back() {
    let v = view("scenarios/quorum/sloppy-quorum-partition.toml");
    let (_, summary) = line(
        &v,
        "quorum",
        &["in the second to", "write", "replicas acknowledged"],
    );
    assert!(summary.contains("answered"), "{summary}");
    let (stored, _) = line(&v, "quorum", &["stores", "hint", "sloppy quorum"]);
    let (handed, _) = line(&v, "quorum", &["back to", "hinted handoff"]);
    assert!(stored < handed);
    // Summaries, not one line per operation: at most a few lines per simulated second.
    let seconds = v.end_ns / 1_000_000_000 + 1;
    assert!(
        lines_of(&v, "quorum") as u64 <= 12 * seconds,
        "{}",
        lines_of(&v, "quorum")
    );
}

#[test]
fn a_slow_backend_gets_a_small_load_share_and_a_high_p99() {
    let v = view("scenarios/balancing/slow-backend-p2c.toml");
    let share = |t: u64| -> f64 {
        v.narration
            .samples
            .iter()
            .filter(|s| s.chart == "load share (%)" && s.t_ns == t)
            .map(|s| s.value)
            .sum()
    };
    let seconds: std::collections::BTreeSet<u64> = v
        .narration
        .samples
        .iter()
        .filter(|s| s.chart == "load share (%)")
        .map(|s| s.t_ns)
        .collect();
    assert!(seconds.len() >= 5, "{seconds:?}");
    for t in &seconds {
        assert!(
            (share(*t) - 100.0).abs() < 0.01,
            "load shares at {t} sum to {}",
            share(*t)
        );
    }
    let p99 = |backend: &str| -> f64 {
        v.narration
            .samples
            .iter()
            .filter(|s| s.chart == "p99 latency (ms)" && s.series == backend)
            .map(|s| s.value)
            .fold(0.0, f64::max)
    };
    assert!(
        p99("web3") > 3.0 * p99("web1"),
        "web3 {} web1 {}",
        p99("web3"),
        p99("web1")
    );
    line(&v, "health", &["web3 is slow"]);
    // One sample per backend per second at most.
    let per_second = v
        .narration
        .samples
        .iter()
        .filter(|s| s.chart == "p99 latency (ms)")
        .count();
    assert!(per_second as u64 <= 10 * (v.end_ns / 1_000_000_000 + 1));
}

#[test]
fn a_fast_failing_backend_is_ejected_and_restored() {
    let v = view("scenarios/balancing/fast-failing-backend.toml");
    let (ejected, _) = line(&v, "health", &["ejects web3 (outlier detection)"]);
    let (restored, _) = line(&v, "health", &["restores web3"]);
    assert!(ejected < restored);
    line(&v, "health", &["web3 fails"]);
    let s = v.state_at(ejected);
    assert_eq!(s["web3"]["role"], "ejected");
    assert!(s["web3"]["health"].starts_with("ejected by"));
}

#[test]
fn a_flapping_breaker_opens_and_goes_half_open() {
    let v = view("scenarios/balancing/breaker-flapping.toml");
    let (open, _) = line(&v, "breaker", &["opens: calls to it fail fast"]);
    line(&v, "breaker", &["goes half-open"]);
    assert!(
        v.state_at(open)
            .values()
            .any(|s| s.get("breaker").is_some_and(|b| b.starts_with("open at")))
    );
}

#[test]
fn a_naive_retry_storm_is_told_once_it_starts() {
    let v = view("scenarios/balancing/retry-storm-naive.toml");
    line(&v, "retry", &["retries heavily"]);
    assert!(lines_of(&v, "retry") < 50, "{}", lines_of(&v, "retry"));
}

#[test]
fn sagas_under_faults_tell_compensations_and_idempotent_replays() {
    let v = view("scenarios/balancing/saga-compensations-under-faults.toml");
    line(&v, "saga", &["fails", "compensations run"]);
    line(&v, "saga", &["ends compensated"]);
    line(&v, "saga", &["from its idempotency store"]);
    line(&v, "saga", &["resumes saga"]);
    line(&v, "saga", &["commits"]);
}

/// The view `faultline run` builds while the run goes (from a tap on the trace, on another
/// thread) is the view read back from the trace afterwards, on scenarios of every narrating
/// family; a run that ends before its scenario's duration falls back to reading the trace.
#[test]
fn the_view_built_while_the_run_goes_is_the_view_read_back_from_the_trace() {
    use faultline::family::CastMember;
    use faultline::report::view::LiveView;
    use faultline::sim::{RunOptions, topology::Topology};
    let runner = Runner::builtin();
    let dir = tempfile::tempdir().unwrap();
    for scenario in [
        "scenarios/raft/nemesis.toml",
        "scenarios/paxos/multi-paxos-nemesis.toml",
        "scenarios/locks/zk-lock-under-network-faults.toml",
        "scenarios/lessons/08b-registry-ap-under-partition.toml",
        "scenarios/quorum/quorum-nemesis.toml",
        "scenarios/balancing/breaker-flapping.toml",
    ] {
        let path = Path::new(scenario);
        let s = runner.load(path).expect("shipped scenarios load");
        let cast = CastMember::cast(&s, &Topology::new(&s));
        let (live, tap) = LiveView::start(runner.registry(), &cast, s.duration.as_nanos());
        // The caller may still hold the tap when the view is finished (`faultline run` keeps
        // its run options for a second run).
        let options = RunOptions {
            trace_tap: Some(tap.clone()),
            ..RunOptions::streaming_to(dir.path().join("trace.jsonl"))
        };
        let outcome = runner.clone().options(options).run(&s, s.seed);
        let report = Report::new(&outcome.record, outcome.checks, path, 0);
        let read_back = serde_json::to_value(view_of_run(&report, &outcome.record)).unwrap();
        let json = serde_json::to_value(&report).unwrap();
        let built = live
            .finish(
                json.clone(),
                report.nodes.clone(),
                &outcome.record.history,
                true,
            )
            .expect("the run ended at its duration");
        let built = serde_json::to_value(built).unwrap();
        drop(tap);
        assert!(
            read_back["messages"]
                .as_array()
                .is_some_and(|m| !m.is_empty()),
            "{scenario}: a view with messages"
        );
        assert!(built == read_back, "{scenario}: the two views differ");
        // Sized for another end, the live view is not used.
        let (other, _) = LiveView::start(runner.registry(), &cast, s.duration.as_nanos() + 1);
        assert!(
            other
                .finish(json, report.nodes.clone(), &outcome.record.history, true)
                .is_none()
        );
    }
}
