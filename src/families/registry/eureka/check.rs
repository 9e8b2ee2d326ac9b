//! The `eviction-safety` check: no `eureka` server evicted an instance before its lease ran
//! out at that server, nor while self-preservation should have held.
//!
//! For every [`EurekaObservation::Evicted`] it reads the server's own counters at that moment
//! (the lease's age since its last renewal received or replicated, the lease duration, the
//! renewals accepted in the window and the renewals expected in it) and judges them with the
//! role's resolved options ([`EurekaConfig::preserving`]: `self_preservation`,
//! `renewal_percent_threshold`). The server's own self-preservation flag is shown but never
//! trusted, so a server that ignores it (the planted bug `no-self-preservation`) cannot hide.
//! Evidence names the server, the instance and the global time.

use std::collections::BTreeMap;

use super::{CHECK_EVICTION_SAFETY, EurekaConfig, EurekaObservation, PROTOCOL_NAME};
use crate::check::{self, CheckInfo};
use crate::family::CheckResult;
use crate::process::NodeId;
use crate::scenario::Verdict;
use crate::sim::RunRecord;

/// Most violations listed as evidence (the rest are counted).
const MAX_EVIDENCE: usize = 20;

/// The `eviction-safety` check (applies when a role runs `eureka`).
pub const EVICTION_SAFETY_CHECK: CheckInfo = CheckInfo {
    name: CHECK_EVICTION_SAFETY,
    summary: "no eureka server evicted an instance before its lease ran out there, nor while self-preservation should have held (recomputed from its renewal counts)",
    applies_to: |s| s.runs_protocol(PROTOCOL_NAME),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<check::Toggle>,
    resolve: check::resolve_as::<check::Toggle>,
    run,
};

fn run(record: &RunRecord) -> CheckResult {
    let mut configs: BTreeMap<NodeId, EurekaConfig> = BTreeMap::new();
    for role in record
        .scenario
        .cluster
        .roles
        .iter()
        .filter(|r| r.protocol == PROTOCOL_NAME)
    {
        let config: EurekaConfig = crate::family::parse_options(&role.options).unwrap_or_default();
        for &node in record.topology.groups.get(&role.name).into_iter().flatten() {
            configs.insert(node, config.clone());
        }
    }
    let facts: Vec<(u64, NodeId, &EurekaObservation)> = record
        .observations
        .iter()
        .filter_map(|o| o.get::<EurekaObservation>().map(|f| (o.t_ns, o.node, f)))
        .collect();
    eviction_safety(&facts, &configs, &record.topology.names)
}

/// Judges every eviction in `facts` (global ns, server, fact) with its server's options in
/// `configs`; `names` are node names by id.
pub fn eviction_safety(
    facts: &[(u64, NodeId, &EurekaObservation)],
    configs: &BTreeMap<NodeId, EurekaConfig>,
    names: &[String],
) -> CheckResult {
    let name = |n: NodeId| {
        names
            .get(n.index())
            .cloned()
            .unwrap_or_else(|| n.0.to_string())
    };
    let mut evictions = 0u64;
    let mut wrongful = 0u64;
    let mut violations = Vec::new();
    let mut preservation_starts = 0u64;
    for &(t_ns, server, fact) in facts {
        match fact {
            EurekaObservation::SelfPreservation { active: true, .. } => preservation_starts += 1,
            EurekaObservation::Evicted {
                service,
                instance,
                lease_age_ms,
                ttl_ms,
                renewals_in_window,
                expected_renewals_in_window,
                self_preservation,
            } => {
                evictions += 1;
                let before = violations.len();
                let config = configs.get(&server).cloned().unwrap_or_default();
                let at = format!(
                    "at {} ms {} evicted {service}/{instance}",
                    t_ns / 1_000_000,
                    name(server)
                );
                if lease_age_ms < ttl_ms {
                    violations.push(format!(
                        "{at} before its lease ran out: last renewal {lease_age_ms} ms before, lease {ttl_ms} ms"
                    ));
                }
                if config.preserving(*renewals_in_window, *expected_renewals_in_window) {
                    violations.push(format!(
                        "{at} while self-preservation should hold: {renewals_in_window} renewals in the last {} < {} x {expected_renewals_in_window:.1} expected (the server's flag said {})",
                        config.renewal_window,
                        config.renewal_percent_threshold,
                        if *self_preservation { "on" } else { "off" }
                    ));
                }
                if violations.len() > before {
                    wrongful += 1;
                }
            }
            _ => {}
        }
    }
    let count = violations.len();
    let mut result = if wrongful == 0 {
        CheckResult::new(
            CHECK_EVICTION_SAFETY,
            Verdict::Pass,
            format!(
                "{evictions} evictions, each after the lease ran out and outside self-preservation"
            ),
        )
    } else {
        CheckResult::new(
            CHECK_EVICTION_SAFETY,
            Verdict::Fail,
            format!("{wrongful} of {evictions} evictions were wrongful"),
        )
    };
    if count > MAX_EVIDENCE {
        violations.truncate(MAX_EVIDENCE);
        violations.push(format!("... and {} more", count - MAX_EVIDENCE));
    }
    result.evidence = violations;
    result.metrics.insert("evictions".into(), evictions.into());
    result
        .metrics
        .insert("wrongful_evictions".into(), wrongful.into());
    result.metrics.insert(
        "self_preservation_starts".into(),
        preservation_starts.into(),
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const S1: NodeId = NodeId(0);

    fn evicted(lease_age_ms: u64, renewals: u64, expected: f64) -> EurekaObservation {
        EurekaObservation::Evicted {
            service: "web".into(),
            instance: "w1".into(),
            lease_age_ms,
            ttl_ms: 3_000,
            renewals_in_window: renewals,
            expected_renewals_in_window: expected,
            self_preservation: false,
        }
    }

    fn judge(facts: &[EurekaObservation], config: EurekaConfig) -> CheckResult {
        let facts: Vec<_> = facts.iter().map(|f| (5_000_000_000, S1, f)).collect();
        let configs = BTreeMap::from([(S1, config)]);
        eviction_safety(&facts, &configs, &["e1".to_string()])
    }

    #[test]
    fn eviction_after_the_lease_with_renewals_above_threshold_passes() {
        let r = judge(&[evicted(3_000, 90, 100.0)], EurekaConfig::default());
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["evictions"], 1);
    }

    #[test]
    fn eviction_before_the_lease_ran_out_fails_naming_server_instance_and_time() {
        let r = judge(&[evicted(1_200, 90, 100.0)], EurekaConfig::default());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence[0].starts_with("at 5000 ms e1 evicted web/w1 before its lease ran out"),
            "{r:?}"
        );
    }

    #[test]
    fn eviction_below_the_threshold_fails_even_when_the_server_flag_says_off() {
        let r = judge(&[evicted(9_000, 84, 100.0)], EurekaConfig::default());
        assert_eq!(r.verdict, Verdict::Fail);
        assert!(
            r.evidence[0].contains("while self-preservation should hold"),
            "{r:?}"
        );
        // The same counts under a role that switched self-preservation off are fine.
        let off = EurekaConfig {
            self_preservation: false,
            ..EurekaConfig::default()
        };
        assert_eq!(
            judge(&[evicted(9_000, 84, 100.0)], off).verdict,
            Verdict::Pass
        );
        // And under a lower threshold.
        let low = EurekaConfig {
            renewal_percent_threshold: 0.5,
            ..EurekaConfig::default()
        };
        assert_eq!(
            judge(&[evicted(9_000, 84, 100.0)], low).verdict,
            Verdict::Pass
        );
    }

    #[test]
    fn evidence_is_bounded() {
        let many: Vec<_> = (0..30).map(|_| evicted(10, 0, 10.0)).collect();
        let r = judge(&many, EurekaConfig::default());
        assert_eq!(r.metrics["wrongful_evictions"], 30);
        assert_eq!(r.evidence.len(), MAX_EVIDENCE + 1);
    }
}
