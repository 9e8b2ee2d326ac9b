//! The checks of idempotency and sagas: `no-double-apply` (safety) and `saga-atomicity`
//! (after the final heal). Both read [`LedgerObservation`]s and [`SagaObservation`]s.
//!
//! - `no-double-apply`: no ledger applied one logical request of one caller twice (a payment,
//!   a saga step or a compensation), whatever keys its copies carried. The ledger applies a
//!   key once, so a second application means the caller sent the same request under another
//!   key (the bug `no-idempotency-key`) or the ledger forgot the key (a store that lost it,
//!   or one smaller than the retry window).
//! - `saga-atomicity`: each saga a coordinator started is, at `within` after the final heal
//!   (or after its start, whichever is later), either fully applied (every step applied and
//!   none compensated) or fully compensated (no step stands: each applied step's
//!   compensation applied too), judged from what the ledgers applied, not from what the
//!   coordinator believes. Sagas of a coordinator down at the end, and sagas whose deadline
//!   falls after the end of the run, are not judged.

use std::collections::BTreeMap;

use super::ledger::{LedgerObservation, PROTOCOL_NAME};
use super::saga::{SagaObservation, WORKLOAD_NAME, decode_request};
use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::process::NodeId;
use crate::scenario::{Scenario, Verdict};
use crate::sim::{RunRecord, is_up};

/// The `no-double-apply` check's name.
pub const NO_DOUBLE_APPLY: &str = "no-double-apply";
/// The `saga-atomicity` check's name.
pub const SAGA_ATOMICITY: &str = "saga-atomicity";

/// Registry entry of `no-double-apply`.
pub const NO_DOUBLE_APPLY_CHECK: CheckInfo = CheckInfo {
    name: NO_DOUBLE_APPLY,
    summary: "no ledger applies one request of a caller twice, whatever idempotency keys its retries carried",
    applies_to: |s| s.runs_protocol(PROTOCOL_NAME),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run: no_double_apply,
};

/// Registry entry of `saga-atomicity`.
pub const SAGA_ATOMICITY_CHECK: CheckInfo = CheckInfo {
    name: SAGA_ATOMICITY,
    summary: "within a bound after the final heal every saga is fully applied or fully compensated",
    applies_to: has_sagas,
    enabled: check::on_unless_disabled,
    validate: check::validate_within,
    resolve: check::resolve_as::<check::Within>,
    run: saga_atomicity,
};

fn has_sagas(s: &Scenario) -> bool {
    s.clients.iter().any(|g| g.workload == WORKLOAD_NAME)
}

/// One application of a request: (global time, ledger, key).
type Application = (u64, NodeId, u64);

/// Every application, by (caller, request), in time order.
fn applications(record: &RunRecord) -> BTreeMap<(NodeId, u64), Vec<Application>> {
    let mut out: BTreeMap<(NodeId, u64), Vec<Application>> = BTreeMap::new();
    for o in &record.observations {
        if let Some(&LedgerObservation::Applied {
            client,
            request,
            key,
            ..
        }) = o.get()
        {
            out.entry((client, request))
                .or_default()
                .push((o.t_ns, o.node, key));
        }
    }
    out
}

/// Counts of the ledger facts: (refused, replayed, retried).
fn counts(record: &RunRecord) -> (u64, u64, u64) {
    let (mut refused, mut replayed, mut retried) = (0, 0, 0);
    for o in &record.observations {
        match o.get() {
            Some(LedgerObservation::Refused { .. }) => refused += 1,
            Some(LedgerObservation::Replayed { .. }) => replayed += 1,
            Some(LedgerObservation::Retried { .. }) => retried += 1,
            _ => {}
        }
    }
    (refused, replayed, retried)
}

fn no_double_apply(record: &RunRecord) -> CheckResult {
    let topo = &record.topology;
    let applied = applications(record);
    let mut twice = Vec::new();
    for ((client, request), apps) in &applied {
        // Per ledger: the same request applied there more than once.
        let mut by_ledger: BTreeMap<NodeId, Vec<&Application>> = BTreeMap::new();
        for a in apps {
            by_ledger.entry(a.1).or_default().push(a);
        }
        for (ledger, apps) in by_ledger {
            if let [first, second, ..] = apps.as_slice() {
                twice.push(format!(
                    "{}'s request {request} applied {} times on {}: key {} at {}, key {} at {}",
                    topo.name(*client),
                    apps.len(),
                    topo.name(ledger),
                    first.2,
                    ms(first.0),
                    second.2,
                    ms(second.0)
                ));
            }
        }
    }
    let total: usize = applied.values().map(Vec::len).sum();
    let (refused, replayed, retried) = counts(record);
    let mut r = if twice.is_empty() {
        CheckResult::new(
            NO_DOUBLE_APPLY,
            Verdict::Pass,
            format!(
                "{} requests applied once each; {replayed} retries or duplicates answered from the idempotency store",
                applied.len()
            ),
        )
    } else {
        let mut r = CheckResult::new(
            NO_DOUBLE_APPLY,
            Verdict::Fail,
            format!(
                "{} requests applied more than once (of {} applied)",
                twice.len(),
                applied.len()
            ),
        );
        r.evidence = twice.iter().take(20).cloned().collect();
        if twice.len() > 20 {
            r.evidence.push(format!("and {} more", twice.len() - 20));
        }
        r
    };
    for (name, value) in [
        ("requests_applied", applied.len() as u64),
        ("applications", total as u64),
        ("requests_applied_twice", twice.len() as u64),
        ("refused", refused),
        ("replayed", replayed),
        ("retries", retried),
    ] {
        r.metrics.insert(name.into(), value.into());
    }
    r
}

/// A saga as started.
struct Saga {
    started_ns: u64,
    steps: u32,
}

fn saga_atomicity(record: &RunRecord) -> CheckResult {
    let config: check::Within = record.scenario.check_options(SAGA_ATOMICITY);
    let Some(final_heal) = record.final_heal_ns else {
        let mut r = CheckResult::new(
            SAGA_ATOMICITY,
            Verdict::Unknown,
            "faults were still active at the end of the run (cut links or paused nodes): no final heal to judge from",
        );
        r.evidence.push(
            "add a `duration` to each fault, a `heal`/`resume` fault, or a nemesis `final_heal`"
                .into(),
        );
        return r;
    };
    let topo = &record.topology;
    let mut sagas: BTreeMap<(NodeId, u64), Saga> = BTreeMap::new();
    let (mut resumed, mut committed_seen) = (0u64, 0u64);
    for o in &record.observations {
        match o.get() {
            Some(&SagaObservation::Started { saga, steps }) => {
                sagas.insert(
                    (o.node, saga),
                    Saga {
                        started_ns: o.t_ns,
                        steps,
                    },
                );
            }
            Some(SagaObservation::Resumed { .. }) => resumed += 1,
            Some(SagaObservation::Finished { outcome, .. })
                if *outcome == super::saga::SagaOutcome::Committed =>
            {
                committed_seen += 1
            }
            _ => {}
        }
    }
    // First application time of each (coordinator, saga, step, compensation).
    let mut applied: BTreeMap<(NodeId, u64, u32, bool), u64> = BTreeMap::new();
    let mut compensations = 0u64;
    for ((client, request), apps) in applications(record) {
        let (saga, step, compensation) = decode_request(request);
        if sagas.contains_key(&(client, saga)) {
            compensations += u64::from(compensation);
            applied.insert((client, saga, step, compensation), apps[0].0);
        }
    }
    let within = config.within.as_nanos();
    let (mut committed, mut compensated, mut unjudged, mut down) = (0u64, 0u64, 0u64, 0u64);
    let mut partial = Vec::new();
    for (&(node, saga), s) in &sagas {
        if !is_up(record.final_status[node.index()]) {
            down += 1;
            continue;
        }
        let deadline = final_heal.max(s.started_ns).saturating_add(within);
        if deadline > record.end_ns {
            unjudged += 1;
            continue;
        }
        let at = |step: u32, comp: bool| {
            applied
                .get(&(node, saga, step, comp))
                .is_some_and(|&t| t <= deadline)
        };
        let mut standing = Vec::new();
        let mut undone_unapplied = Vec::new();
        for step in 0..s.steps {
            match (at(step, false), at(step, true)) {
                (true, false) => standing.push(step),
                (false, true) => undone_unapplied.push(step),
                _ => {}
            }
        }
        if undone_unapplied.is_empty() && standing.len() == s.steps as usize {
            committed += 1;
        } else if undone_unapplied.is_empty() && standing.is_empty() {
            compensated += 1;
        } else {
            let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
            let mut line = format!(
                "{} saga {saga} (started at {}): of its {} steps, step(s) {} stand at {}",
                topo.name(node),
                ms(s.started_ns),
                s.steps,
                if standing.is_empty() {
                    "none".to_string()
                } else {
                    list(&standing)
                },
                ms(deadline)
            );
            if !undone_unapplied.is_empty() {
                line.push_str(&format!(
                    "; step(s) {} compensated without being applied",
                    list(&undone_unapplied)
                ));
            }
            partial.push(line);
        }
    }
    let judged = committed + compensated + partial.len() as u64;
    let mut r = if !partial.is_empty() {
        let mut r = CheckResult::new(
            SAGA_ATOMICITY,
            Verdict::Fail,
            format!(
                "{} of {judged} judged sagas are partly applied {} after the final heal at {}",
                partial.len(),
                config.within,
                ms(final_heal)
            ),
        );
        r.evidence = partial.iter().take(20).cloned().collect();
        if partial.len() > 20 {
            r.evidence.push(format!("and {} more", partial.len() - 20));
        }
        r
    } else if judged == 0 {
        CheckResult::new(
            SAGA_ATOMICITY,
            Verdict::Unknown,
            if sagas.is_empty() {
                "no saga started".to_string()
            } else {
                format!(
                    "no saga could be judged: every one ends after final heal + {} or its coordinator is down at the end",
                    config.within
                )
            },
        )
    } else {
        CheckResult::new(
            SAGA_ATOMICITY,
            Verdict::Pass,
            format!(
                "all {judged} judged sagas are atomic: {committed} fully applied, {compensated} fully compensated"
            ),
        )
    };
    if unjudged + down > 0 {
        r.evidence.push(format!(
            "not judged: {unjudged} saga(s) whose deadline falls after the end of the run, {down} of coordinators down at the end"
        ));
    }
    for (name, value) in [
        ("sagas_started", sagas.len() as u64),
        ("sagas_judged", judged),
        ("sagas_committed", committed),
        ("sagas_compensated", compensated),
        ("sagas_partial", partial.len() as u64),
        ("compensations_applied", compensations),
        ("sagas_resumed", resumed),
        ("commits_seen_by_coordinators", committed_seen),
    ] {
        r.metrics.insert(name.into(), value.into());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{observe, record};
    use crate::families::balancing::ledger::LedgerObservation as L;
    use crate::families::balancing::saga::request_of;

    const LEDGER: u32 = 0;
    const C: u32 = 3;

    /// An empty 10-second record of three ledgers (n1..n3) and one saga coordinator (c1);
    /// `extra` is appended to the scenario (e.g. `[check.saga-atomicity]` options).
    fn saga_record(extra: &str) -> RunRecord {
        let text = format!(
            "duration = \"10s\"\n[[cluster.role]]\nname = \"l\"\nprotocol = \"ledger\"\nnodes = [\"n1\", \"n2\", \"n3\"]\n[[clients]]\nname = \"c\"\nworkload = \"saga\"\ncount = 1\ntalks_to = [\"l\"]\n{extra}"
        );
        let scenario = Scenario::parse(std::path::Path::new("t.toml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut r = record(3, 1, "");
        r.topology = std::sync::Arc::new(crate::scenario::topology::Topology::new(&scenario));
        r.scenario = std::sync::Arc::new(scenario);
        r
    }

    fn applied(r: &mut RunRecord, t_ms: u64, ledger: u32, request: u64, key: u64) {
        observe(
            r,
            t_ms,
            ledger,
            L::Applied {
                client: NodeId(C),
                request,
                key,
                account: 0,
                delta: -1,
                balance: 0,
            },
        );
    }

    #[test]
    fn no_double_apply_passes_on_distinct_requests_and_fails_on_one_applied_twice() {
        let mut r = saga_record("");
        applied(&mut r, 10, LEDGER, 1, 1);
        applied(&mut r, 20, LEDGER, 2, 2);
        applied(&mut r, 30, 1, 2, 2); // another ledger: another service, not a double apply
        let ok = no_double_apply(&r);
        assert_eq!(ok.verdict, Verdict::Pass, "{ok:?}");
        applied(&mut r, 40, LEDGER, 1, 9);
        let bad = no_double_apply(&r);
        assert_eq!(bad.verdict, Verdict::Fail);
        assert_eq!(
            bad.evidence,
            vec!["c1's request 1 applied 2 times on n1: key 1 at 10.0ms, key 9 at 40.0ms"]
        );
        assert_eq!(bad.metrics["requests_applied_twice"], 1);
    }

    fn started(r: &mut RunRecord, t_ms: u64, saga: u64, steps: u32) {
        observe(r, t_ms, C, SagaObservation::Started { saga, steps });
    }

    #[test]
    fn saga_atomicity_passes_on_committed_and_compensated_sagas() {
        let mut r = saga_record("");
        started(&mut r, 100, 1, 2);
        applied(&mut r, 110, 0, request_of(1, 0, false), 1);
        applied(&mut r, 120, 1, request_of(1, 1, false), 2);
        started(&mut r, 200, 2, 2);
        applied(&mut r, 210, 0, request_of(2, 0, false), 3);
        applied(&mut r, 230, 0, request_of(2, 0, true), 4);
        started(&mut r, 300, 3, 2); // refused at step 0: nothing applied
        let result = saga_atomicity(&r);
        assert_eq!(result.verdict, Verdict::Pass, "{result:?}");
        assert_eq!(result.metrics["sagas_committed"], 1);
        assert_eq!(result.metrics["sagas_compensated"], 2);
        assert_eq!(result.metrics["compensations_applied"], 1);
    }

    #[test]
    fn saga_atomicity_fails_on_a_saga_left_partly_applied() {
        let mut r = saga_record("");
        started(&mut r, 100, 1, 3);
        applied(&mut r, 110, 0, request_of(1, 0, false), 1);
        applied(&mut r, 120, 1, request_of(1, 1, false), 2);
        applied(&mut r, 130, 1, request_of(1, 1, true), 3);
        let result = saga_atomicity(&r);
        assert_eq!(result.verdict, Verdict::Fail);
        assert_eq!(
            result.evidence[0],
            "c1 saga 1 (started at 100.0ms): of its 3 steps, step(s) 0 stand at 2100.0ms"
        );
    }

    #[test]
    fn saga_atomicity_judges_at_the_deadline_and_leaves_late_sagas_unjudged() {
        // A compensation that lands after final heal + within does not count.
        let mut r = saga_record("[check.saga-atomicity]\nwithin = \"1s\"\n");
        r.final_heal_ns = Some(1_000_000_000);
        started(&mut r, 100, 1, 2);
        applied(&mut r, 110, 0, request_of(1, 0, false), 1);
        applied(&mut r, 2500, 0, request_of(1, 0, true), 2);
        let result = saga_atomicity(&r);
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(result.evidence[0].ends_with("step(s) 0 stand at 2000.0ms"));
        let mut late = saga_record("");
        started(&mut late, 9_500, 1, 1);
        applied(&mut late, 9_600, 0, request_of(1, 0, false), 1);
        let result = saga_atomicity(&late);
        assert_eq!(result.verdict, Verdict::Unknown);
        let mut open = saga_record("");
        open.final_heal_ns = None;
        assert_eq!(saga_atomicity(&open).verdict, Verdict::Unknown);
    }

    #[test]
    fn a_compensation_without_its_step_is_not_atomic() {
        let mut r = saga_record("");
        started(&mut r, 100, 1, 1);
        applied(&mut r, 130, 1, request_of(1, 0, true), 3);
        let result = saga_atomicity(&r);
        assert_eq!(result.verdict, Verdict::Fail);
        assert!(result.evidence[0].contains("compensated without being applied"));
    }

    #[test]
    fn the_checks_apply_only_to_scenarios_with_ledgers_or_sagas() {
        let raft = record(3, 1, "");
        assert!(!(NO_DOUBLE_APPLY_CHECK.applies_to)(&raft.scenario));
        assert!(!(SAGA_ATOMICITY_CHECK.applies_to)(&raft.scenario));
        let sagas = saga_record("");
        assert!((NO_DOUBLE_APPLY_CHECK.applies_to)(&sagas.scenario));
        assert!((SAGA_ATOMICITY_CHECK.applies_to)(&sagas.scenario));
    }

    /// Runs the shipped scenario `file` at seed 1 and returns its checks' metrics, by
    /// `check.metric`.
    fn shipped(file: &str) -> BTreeMap<String, u64> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
        let scenario = Scenario::load_all_with(&path, &crate::families::builtin())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let record = crate::sim::run(&scenario, 1, &crate::sim::RunOptions::hash_only());
        let mut metrics = BTreeMap::new();
        for c in crate::check::run_checks(&record) {
            assert_eq!(c.verdict, Verdict::Pass, "{file}: {c:?}");
            for (k, v) in c.metrics {
                metrics.insert(format!("{}.{k}", c.name), v.as_u64().unwrap_or(0));
            }
        }
        metrics
    }

    /// The lessons happen: under their faults the shipped scenarios do retry, answer retries
    /// from the store, compensate and resume a saga after a coordinator crash (seed 1).
    #[test]
    fn the_shipped_scenarios_retry_replay_compensate_and_resume() {
        let m = shipped("scenarios/balancing/idempotency-lossy-retries.toml");
        assert!(m["no-double-apply.retries"] >= 50, "{m:?}");
        assert!(m["no-double-apply.replayed"] >= 20, "{m:?}");
        let m = shipped("scenarios/balancing/saga-compensations-under-faults.toml");
        assert!(m["no-double-apply.replayed"] >= 20, "{m:?}");
        assert!(m["saga-atomicity.sagas_committed"] >= 20, "{m:?}");
        assert!(m["saga-atomicity.sagas_compensated"] >= 20, "{m:?}");
        assert!(m["saga-atomicity.compensations_applied"] >= 20, "{m:?}");
        assert!(m["saga-atomicity.sagas_resumed"] >= 1, "{m:?}");
    }
}
