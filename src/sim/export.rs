//! A planned fault timeline written back as scripted `[[fault]]` entries, so that any run (a
//! random `[nemesis]` included) can be turned into a scripted one: `faultline run
//! --export-faults`, and the first step of `faultline shrink`.
//!
//! The entries plan exactly the timeline they came from, at any seed: the same start and undo
//! times, the same actions on the same nodes, in the same order (only each fault's `origin`
//! differs). Nodes are written by name; a set of several nodes by the name of a group with exactly
//! those members, in that order (`all`, `servers`, `clients`, a role, a client group or a
//! `[cluster.groups]` entry), or else by a new `[cluster.groups]` entry named `export-<k>`.
//! `leader` stays `leader` (resolved when the fault fires). Drawn partition orders
//! (`majorities-ring`, `bridge`) are written with the partition's `order` key.

use std::collections::BTreeMap;

use crate::process::NodeId;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, FaultKind, FaultSpec, PartitionShape, Scenario, SignedDuration};
use crate::sim::faults::{FaultAction, LinkSet, PartitionPlan, PlannedFault, Targets};

/// Scripted faults that plan a given timeline, and the named groups they refer to that the
/// scenario does not have yet.
#[derive(Clone, Debug, Default)]
pub struct ExportedFaults {
    /// One `[[fault]]` entry per planned fault, in timeline order.
    pub faults: Vec<FaultSpec>,
    /// New `[cluster.groups]` entries (name to member names), for target sets that no existing
    /// group names.
    pub groups: BTreeMap<String, Vec<String>>,
}

/// Writes `planned` (a timeline planned for `topology`) as scripted faults.
pub fn export_faults(planned: &[PlannedFault], topology: &Topology) -> ExportedFaults {
    let mut names = Names {
        topology,
        groups: BTreeMap::new(),
    };
    let faults = planned.iter().map(|f| names.spec(f)).collect();
    ExportedFaults {
        faults,
        groups: names.groups,
    }
}

/// `scenario` with its `[nemesis]` removed and every fault of `planned` (its timeline at some
/// seed, e.g. `RunRecord::faults`) as a scripted fault, and `seed` as its seed. Loaded (written
/// as text and read back), it plans the same timeline at any seed.
pub fn scripted_scenario(scenario: &Scenario, planned: &[PlannedFault], seed: u64) -> Scenario {
    let topology = Topology::new(scenario);
    let exported = export_faults(planned, &topology);
    let mut out = scenario.clone();
    out.nemesis = None;
    out.faults = exported.faults;
    out.cluster.groups.extend(exported.groups);
    out.seed = seed;
    out
}

/// Names node sets, adding groups as needed.
struct Names<'a> {
    topology: &'a Topology,
    groups: BTreeMap<String, Vec<String>>,
}

impl Names<'_> {
    fn node_names(&self, ids: &[NodeId]) -> Vec<String> {
        self.topology.names_of(ids)
    }

    /// A reference that resolves to exactly `ids` (in that order).
    fn nodes(&mut self, ids: &[NodeId]) -> String {
        if let [one] = ids {
            return self.topology.name(*one).to_string();
        }
        let t = self.topology;
        let standard = ["all", "servers", "clients"];
        let existing = standard
            .iter()
            .map(|s| s.to_string())
            .chain(
                t.groups
                    .keys()
                    .filter(|k| !standard.contains(&k.as_str()))
                    .cloned(),
            )
            .find(|g| t.groups.get(g).is_some_and(|m| m == ids));
        if let Some(name) = existing {
            return name;
        }
        let members = self.node_names(ids);
        if let Some((name, _)) = self.groups.iter().find(|(_, m)| **m == members) {
            return name.clone();
        }
        let name = (1..)
            .map(|k| format!("export-{k}"))
            .find(|n| {
                t.node(n).is_none() && !t.groups.contains_key(n) && !self.groups.contains_key(n)
            })
            .expect("some name is free");
        self.groups.insert(name.clone(), members);
        name
    }

    fn targets(&mut self, targets: &Targets) -> String {
        match targets {
            Targets::Leader => "leader".to_string(),
            Targets::Nodes(ids) => self.nodes(ids),
        }
    }

    fn spec(&mut self, f: &PlannedFault) -> FaultSpec {
        let mut spec = FaultSpec {
            at: Duration(f.at_ns),
            kind: FaultKind::Heal,
            target: None,
            shape: None,
            groups: None,
            order: None,
            from: None,
            to: None,
            latency: None,
            loss_probability: None,
            duplicate_probability: None,
            reorder: None,
            delta: None,
            drift: None,
            duration: f.undo_at_ns.map(|u| Duration(u.saturating_sub(f.at_ns))),
        };
        match &f.action {
            FaultAction::Partition { plan } => {
                spec.kind = FaultKind::Partition;
                match plan {
                    PartitionPlan::Sides(sides) => {
                        spec.groups = Some(sides.iter().map(|s| self.node_names(s)).collect());
                    }
                    PartitionPlan::Halves(minority) => {
                        spec.shape = Some(PartitionShape::Halves);
                        if minority != &Targets::Nodes(Vec::new()) {
                            spec.target = Some(self.targets(minority));
                        }
                    }
                    PartitionPlan::MajoritiesRing(order) => {
                        spec.shape = Some(PartitionShape::MajoritiesRing);
                        spec.order = Some(self.node_names(order));
                    }
                    PartitionPlan::Bridge(order) => {
                        spec.shape = Some(PartitionShape::Bridge);
                        spec.order = Some(self.node_names(order));
                    }
                }
            }
            FaultAction::Isolate { targets } => {
                spec.kind = FaultKind::Isolate;
                spec.target = Some(self.targets(targets));
            }
            FaultAction::Cut { from, to } => {
                spec.kind = FaultKind::Cut;
                spec.from = Some(self.targets(from));
                spec.to = Some(self.targets(to));
            }
            FaultAction::Degrade { links, condition } => {
                spec.kind = FaultKind::Degrade;
                match links {
                    LinkSet::Of(t) => spec.target = Some(self.targets(t)),
                    LinkSet::OneWay { from, to } => {
                        spec.from = Some(self.targets(from));
                        spec.to = Some(self.targets(to));
                    }
                }
                spec.latency = condition.latency.clone();
                spec.loss_probability = condition.loss_probability;
                spec.duplicate_probability = condition.duplicate_probability;
                spec.reorder = condition.reorder;
            }
            FaultAction::Heal => spec.kind = FaultKind::Heal,
            FaultAction::Crash { targets } => {
                spec.kind = FaultKind::Crash;
                spec.target = Some(self.targets(targets));
            }
            FaultAction::Restart { targets } => {
                spec.kind = FaultKind::Restart;
                spec.target = Some(self.targets(targets));
            }
            FaultAction::Pause { targets } => {
                spec.kind = FaultKind::Pause;
                spec.target = Some(self.targets(targets));
            }
            FaultAction::Resume { targets } => {
                spec.kind = FaultKind::Resume;
                spec.target = Some(self.targets(targets));
            }
            FaultAction::ClockJump { targets, delta_ns } => {
                spec.kind = FaultKind::ClockJump;
                spec.target = Some(self.targets(targets));
                spec.delta = Some(SignedDuration(*delta_ns));
            }
            FaultAction::ClockDrift { targets, drift } => {
                spec.kind = FaultKind::ClockDrift;
                spec.target = Some(self.targets(targets));
                spec.drift = Some(*drift);
            }
        }
        spec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use std::path::Path;

    use crate::sim::faults::plan;

    fn without_origin(faults: Vec<PlannedFault>) -> Vec<PlannedFault> {
        faults
            .into_iter()
            .map(|f| PlannedFault {
                origin: String::new(),
                ..f
            })
            .collect()
    }

    /// Every shipped scenario with a fault schedule, over a few seeds: the exported scenario,
    /// written as TOML and loaded back, plans the same timeline as the original.
    #[test]
    fn exported_faults_plan_the_same_timeline_at_every_seed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let files = crate::cli::test::find_scenarios(&[root]).unwrap();
        let mut with_nemesis = 0;
        for path in files {
            let original = Scenario::load(&path).unwrap();
            if original.nemesis.is_none() && original.faults.is_empty() {
                continue;
            }
            with_nemesis += usize::from(original.nemesis.is_some());
            let topology = Topology::new(&original);
            for seed in [1, 2, 7, original.seed] {
                let planned = plan(&original, &topology, &mut ChaCha8Rng::seed_from_u64(seed));
                let scripted = scripted_scenario(&original, &planned, seed);
                let text = scripted.to_toml_text().unwrap();
                let loaded = Scenario::parse(&path, text.as_bytes())
                    .unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()));
                assert!(loaded.nemesis.is_none());
                let again = plan(
                    &loaded,
                    &Topology::new(&loaded),
                    &mut ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
                );
                assert_eq!(
                    without_origin(again),
                    without_origin(planned),
                    "{} seed {seed}",
                    path.display()
                );
            }
        }
        assert!(
            with_nemesis >= 10,
            "only {with_nemesis} scenarios with a nemesis"
        );
    }

    #[test]
    fn a_node_set_no_group_names_becomes_a_new_group() {
        let text = "duration = \"10s\"\n[cluster]\nprotocol = \"raft\"\nnodes = 5\n\
                    [cluster.groups]\nleft = [\"n1\", \"n2\"]\n";
        let s = Scenario::parse(Path::new("g.toml"), text.as_bytes()).unwrap();
        let t = Topology::new(&s);
        let fault = |ids: &[u32]| PlannedFault {
            id: 0,
            at_ns: 1_000_000,
            undo_at_ns: Some(3_000_123),
            origin: "nemesis".into(),
            action: FaultAction::Crash {
                targets: Targets::Nodes(ids.iter().map(|&i| NodeId(i)).collect()),
            },
        };
        let out = export_faults(
            &[
                fault(&[0, 1]),
                fault(&[2, 3]),
                fault(&[0, 1, 2, 3, 4]),
                fault(&[2, 3]),
            ],
            &t,
        );
        let targets: Vec<_> = out
            .faults
            .iter()
            .map(|f| f.target.clone().unwrap())
            .collect();
        assert_eq!(targets, ["left", "export-1", "servers", "export-1"]);
        assert_eq!(out.groups["export-1"], ["n3", "n4"]);
        assert_eq!(out.faults[0].duration, Some(Duration(2_000_123)));
    }
}
