//! `decision` (single-decree Paxos, liveness; §2.4): every instance is chosen, and learned by
//! every learner that is up at the end, within `within` of the later of its start and the final
//! heal. A liveness check, reported separately from the safety checks (STYLE.md rule 11).
//!
//! Instance `i` starts at `[paxos] start + i * instance_interval` (on the proposers' local
//! clocks; the check reads it as global time, which clock faults make approximate); its deadline is
//! `max(start, final heal) + within`. Its choice time is when the first proposal in it reached a
//! majority of acceptors (from acceptor observations, the run's [`Ledger`]); a learner's learn
//! time is its first `learned` observation of the instance (learned values are synced before they are
//! observed, so a crash does not undo them). Instances whose deadline falls after the end of the
//! run are not judged; with no final heal (faults still active at the end) the verdict is
//! `unknown`, as it is if no instance could be judged.
//!
//! The evidence also counts how many instances were chosen during each partition interval, to
//! show that a side without a majority of acceptors decides nothing.

use std::collections::BTreeMap;

use crate::check::availability::segments;
use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::families::paxos;
use crate::families::paxos::checks::Ledger;
use crate::process::NodeId;
use crate::scenario::Verdict;
use crate::sim::{RunRecord, is_up};

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "decision",
    summary: "every instance is chosen and learned by every up learner within a bound after its start or the final heal (single-decree liveness)",
    applies_to: |s| s.runs_protocol(paxos::synod::PROTOCOL.name),
    enabled: check::on_unless_disabled,
    validate: check::validate_within,
    resolve: check::resolve_as::<Config>,
    run,
};

/// `[check.decision]` options: `within` is the bound after `max(instance start, final heal)`.
pub type Config = check::Within;

fn run(record: &RunRecord) -> CheckResult {
    judge(record, &Ledger::of(record))
}

/// The check's result for `record`, read from its `ledger` (as [`Ledger::of`] gives it).
pub fn judge(record: &RunRecord, ledger: &Ledger) -> CheckResult {
    let options: Config = record.scenario.check_options(CHECK.name);
    let within = options.within.as_nanos();
    let config: paxos::synod::Config = record
        .scenario
        .cluster
        .roles
        .iter()
        .find(|r| r.protocol == paxos::synod::PROTOCOL.name)
        .map(|r| crate::family::parse_options(&r.options).unwrap_or_default())
        .unwrap_or_default();
    let config = &config;
    let Some(heal) = record.final_heal_ns else {
        return CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            "faults were still active at the end of the run: no final heal to measure from",
        );
    };
    let topo = &record.topology;
    // Each instance's first choice time, and each learner's first learn there.
    let mut firsts: BTreeMap<u64, u64> = BTreeMap::new();
    let mut learned: BTreeMap<u64, Vec<(NodeId, u64)>> = BTreeMap::new();
    for (instance, inst) in ledger.instances() {
        if let Some(c) = inst.choices(instance).first() {
            firsts.insert(instance, c.chosen_ns);
        }
        if !inst.learners.is_empty() {
            learned.insert(instance, inst.learners.clone());
        }
    }
    let learners: Vec<NodeId> = paxos::learners(&record.scenario, topo)
        .into_iter()
        .filter(|l| is_up(record.final_status[l.index()]))
        .collect();
    let mut judged = 0u64;
    let mut unjudged = 0u64;
    let mut late: Vec<String> = Vec::new();
    let mut slowest = 0u64;
    for instance in 0..u64::from(config.instances) {
        let from = config.start_ns(instance).max(heal);
        let deadline = from + within;
        if deadline > record.end_ns {
            unjudged += 1;
            continue;
        }
        judged += 1;
        match firsts.get(&instance).copied() {
            Some(chosen_ns) if chosen_ns <= deadline => {
                let start = config.start_ns(instance);
                slowest = slowest.max(chosen_ns.saturating_sub(start));
            }
            Some(chosen_ns) => late.push(format!(
                "instance {instance}: chosen only at {}, deadline {}",
                ms(chosen_ns),
                ms(deadline)
            )),
            None => late.push(format!(
                "instance {instance}: never chosen (deadline {})",
                ms(deadline)
            )),
        }
        let events = learned.get(&instance);
        let missing: Vec<&str> = learners
            .iter()
            .filter(|&&l| !events.is_some_and(|e| e.iter().any(|(n, t)| *n == l && *t <= deadline)))
            .map(|&l| topo.name(l))
            .collect();
        if !missing.is_empty() {
            late.push(format!(
                "instance {instance}: not learned by {} at its deadline {}",
                missing.join(", "),
                ms(deadline)
            ));
        }
    }
    let mut result = if !late.is_empty() {
        let mut r = CheckResult::new(
            CHECK.name,
            Verdict::Fail,
            format!(
                "{} problem(s) among {judged} judged instance(s): not decided within {} of their start or the final heal at {}",
                late.len(),
                options.within,
                ms(heal)
            ),
        );
        r.evidence = late.iter().take(10).cloned().collect();
        r
    } else if judged == 0 {
        CheckResult::new(
            CHECK.name,
            Verdict::Unknown,
            "the run ends before the deadline of every instance; lengthen `duration`",
        )
    } else {
        CheckResult::new(
            CHECK.name,
            Verdict::Pass,
            format!(
                "all {judged} judged instance(s) chosen and learned by all {} up learner(s) in time; the slowest was chosen {} after its start",
                learners.len(),
                ms(slowest)
            ),
        )
    };
    // Decisions by partition interval (teaching: no majority of acceptors, no decision).
    for seg in segments(record) {
        let n = firsts
            .values()
            .filter(|&&t| t >= seg.start_ns && t < seg.end_ns)
            .count();
        result.evidence.push(format!(
            "[{}, {}) partition faults {:?}: {n} instance(s) chosen",
            ms(seg.start_ns),
            ms(seg.end_ns),
            seg.fault_ids
        ));
    }
    if unjudged > 0 {
        result.evidence.push(format!(
            "{unjudged} instance(s) not judged: their deadline is after the end of the run"
        ));
    }
    let m = &mut result.metrics;
    m.insert("final_heal_ns".into(), heal.into());
    m.insert("instances_judged".into(), judged.into());
    m.insert("instances_chosen".into(), firsts.len().into());
    m.insert("problems".into(), late.len().into());
    m.insert("slowest_choice_ns".into(), slowest.into());
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::observe;
    use crate::families::paxos::checks::testing::{accepted, b, record};

    #[test]
    fn every_instance_must_be_chosen_and_learned_in_time() {
        let extra = "[paxos]\ninstances = 2\ninstance_interval = \"1s\"\n[check.decision]\nwithin = \"500ms\"\n";
        let mut rec = record("paxos", extra);
        rec.final_heal_ns = Some(0);
        for (instance, t) in [(0, 100), (1, 1200)] {
            for n in 0..3 {
                accepted(&mut rec, t, n, instance, b(1, 0), "v");
            }
            for n in 0..5 {
                observe(
                    &mut rec,
                    t + 10,
                    n,
                    paxos::Observation::Learned {
                        instance,
                        value: "v".into(),
                    },
                );
            }
        }
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["slowest_choice_ns"], 200_000_000u64);
        // Instance 1 starts at 1s: choosing it at 1.6s is too late.
        let mut late = record("paxos", extra);
        late.final_heal_ns = Some(0);
        for n in 0..3 {
            accepted(&mut late, 100, n, 0, b(1, 0), "v");
            accepted(&mut late, 1600, n, 1, b(1, 0), "v");
        }
        let r = run(&late);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence
                .iter()
                .any(|e| e.contains("instance 1: chosen only at 1600.0ms")),
            "{:?}",
            r.evidence
        );
        assert!(
            r.evidence.iter().any(|e| e.contains("not learned by n1")),
            "{:?}",
            r.evidence
        );
        // A final heal at 9.8s leaves nothing to judge.
        late.final_heal_ns = Some(9_800_000_000);
        assert_eq!(run(&late).verdict, Verdict::Unknown);
    }
}
