//! The nemesis at work: applying each planned fault when its time comes, and undoing it.
//!
//! [`faults`](super::faults) plans the timeline before the run; here a fault's targets are
//! resolved at the instant it starts (`leader` is the up server with the highest-term leader
//! observation, or the fault is skipped), the network, clocks or node lifecycles are changed
//! (through [`host`](super::host)), and what must be undone when its duration ends is kept as an
//! [`Undo`]. Partitions and heals are recorded for the checkers.

use std::cmp::Reverse;

use crate::process::{NodeId, NodeRole};
use crate::sim::faults::{self, FaultAction, LinkSet, PartitionPlan, PlannedFault, Targets};
use crate::sim::host::Status;
use crate::sim::record::PartitionRecord;
use crate::sim::world::World;

/// How to undo an active fault when its duration ends.
#[derive(Debug)]
pub(super) enum Undo {
    Nothing,
    Cuts,
    Restore,
    Restart(Vec<NodeId>),
    Resume(Vec<NodeId>),
    ClockJump(Vec<NodeId>, i64),
    ClockDrift(Vec<(NodeId, f64)>),
}

impl World {
    fn resolve(&self, targets: &Targets) -> Option<Vec<NodeId>> {
        match targets {
            Targets::Nodes(nodes) => Some(nodes.clone()),
            Targets::Leader => self.leader().map(|l| vec![l]),
        }
    }

    /// The up server whose latest role observation is `leader` with the highest term.
    pub fn leader(&self) -> Option<NodeId> {
        self.topology
            .servers
            .iter()
            .filter(|&&s| self.nodes[s.index()].status != Status::Crashed)
            .filter_map(|&s| match &self.nodes[s.index()].last_role {
                Some((NodeRole::Leader, term)) => Some((*term, Reverse(s))),
                _ => None,
            })
            .max()
            .map(|(_, Reverse(s))| s)
    }

    pub(super) fn fault_start(&mut self, index: usize) {
        let fault = self.faults[index].clone();
        self.stats.faults_applied += 1;
        let targets = match &fault.action {
            FaultAction::Isolate { targets }
            | FaultAction::Crash { targets }
            | FaultAction::Restart { targets }
            | FaultAction::Pause { targets }
            | FaultAction::Resume { targets }
            | FaultAction::ClockJump { targets, .. }
            | FaultAction::ClockDrift { targets, .. }
            | FaultAction::Partition {
                plan: PartitionPlan::Halves(targets),
            } => match self.resolve(targets) {
                Some(nodes) => nodes,
                None => return self.skip_leaderless(&fault),
            },
            _ => Vec::new(),
        };
        let undo = match &fault.action {
            FaultAction::Partition { plan } => {
                let links = faults::cut_links(plan, &self.topology, &targets);
                let sides = match plan {
                    PartitionPlan::Sides(sides) => {
                        // Servers listed in no side form one more side.
                        let mut sides = sides.clone();
                        let rest: Vec<NodeId> = self
                            .topology
                            .servers
                            .iter()
                            .copied()
                            .filter(|s| !sides.iter().any(|side| side.contains(s)))
                            .collect();
                        if !rest.is_empty() {
                            sides.push(rest);
                        }
                        Some(sides)
                    }
                    PartitionPlan::Halves(_) => {
                        Some(faults::halves(&self.topology.servers, &targets))
                    }
                    _ => None,
                };
                self.cut(&fault, links, sides);
                Undo::Cuts
            }
            FaultAction::Isolate { .. } => {
                let links = faults::isolate_links(&targets, &self.topology);
                // Every target is cut off alone, from the rest and from the other targets.
                let rest: Vec<NodeId> = self
                    .topology
                    .servers
                    .iter()
                    .copied()
                    .filter(|s| !targets.contains(s))
                    .collect();
                let mut sides = vec![rest];
                sides.extend(targets.iter().map(|&t| vec![t]));
                self.cut(&fault, links, Some(sides));
                Undo::Cuts
            }
            FaultAction::Cut { from, to } => {
                let (Some(from), Some(to)) = (self.resolve(from), self.resolve(to)) else {
                    return self.skip_leaderless(&fault);
                };
                self.cut(&fault, faults::one_way_links(&from, &to), None);
                Undo::Cuts
            }
            FaultAction::Degrade { links, condition } => {
                // `target` lists the nodes whose every link changes; `senders` and `receivers`
                // the ends of one-way links.
                let resolved = match links {
                    LinkSet::Of(targets) => self.resolve(targets).map(|t| {
                        let names = vec![("target", self.topology.names_of(&t))];
                        (faults::isolate_links(&t, &self.topology), names)
                    }),
                    LinkSet::OneWay { from, to } => match (self.resolve(from), self.resolve(to)) {
                        (Some(from), Some(to)) => Some((
                            faults::one_way_links(&from, &to),
                            vec![
                                ("senders", self.topology.names_of(&from)),
                                ("receivers", self.topology.names_of(&to)),
                            ],
                        )),
                        _ => None,
                    },
                };
                let Some((resolved, names)) = resolved else {
                    return self.skip_leaderless(&fault);
                };
                let mut line = self.trace.line(self.now_ns, None, "degrade");
                line.u64("fault_id", fault.id).name("origin", &fault.origin);
                for (key, nodes) in &names {
                    line.json(key, nodes);
                }
                line.json("condition", condition).end();
                self.network.degrade(fault.id, &resolved, condition);
                Undo::Restore
            }
            FaultAction::Heal => {
                self.heal_all();
                Undo::Nothing
            }
            FaultAction::Crash { .. } => {
                let crashed: Vec<NodeId> = targets
                    .iter()
                    .copied()
                    .filter(|&n| self.crash(n, &fault))
                    .collect();
                Undo::Restart(crashed)
            }
            FaultAction::Restart { .. } => {
                for &n in &targets {
                    self.restart(n, &fault.origin);
                }
                Undo::Nothing
            }
            FaultAction::Pause { .. } => {
                let paused: Vec<NodeId> = targets
                    .iter()
                    .copied()
                    .filter(|&n| self.pause(n, &fault.origin))
                    .collect();
                Undo::Resume(paused)
            }
            FaultAction::Resume { .. } => {
                for &n in &targets {
                    self.resume(n, &fault.origin);
                }
                Undo::Nothing
            }
            FaultAction::ClockJump { delta_ns, .. } => {
                for &n in &targets {
                    self.clock_jump(n, *delta_ns, &fault.origin);
                }
                Undo::ClockJump(targets.clone(), -*delta_ns)
            }
            FaultAction::ClockDrift { drift, .. } => {
                let old: Vec<(NodeId, f64)> = targets
                    .iter()
                    .map(|&n| (n, self.nodes[n.index()].clock.drift()))
                    .collect();
                for &n in &targets {
                    self.clock_drift(n, *drift, &fault.origin);
                }
                Undo::ClockDrift(old)
            }
        };
        if fault.undo_at_ns.is_some() {
            self.active.insert(fault.id, undo);
        }
    }

    pub(super) fn fault_end(&mut self, index: usize) {
        let fault = self.faults[index].clone();
        let Some(undo) = self.active.remove(&fault.id) else {
            return; // skipped at start
        };
        self.stats.faults_undone += 1;
        let origin = format!("{} (end)", fault.origin);
        match undo {
            Undo::Nothing => {}
            Undo::Restore => {
                if self.network.restore(fault.id) {
                    self.last_heal_ns = self.now_ns;
                    self.trace
                        .line(self.now_ns, None, "restore")
                        .u64("fault_id", fault.id)
                        .name("origin", &origin)
                        .end();
                }
            }
            Undo::Cuts => {
                if self.network.heal_fault(fault.id) > 0
                    || self
                        .partitions
                        .iter()
                        .any(|p| p.fault_id == fault.id && p.end_ns.is_none())
                {
                    self.end_partition(fault.id);
                    self.trace
                        .line(self.now_ns, None, "heal")
                        .u64("fault_id", fault.id)
                        .name("origin", &origin)
                        .end();
                }
            }
            Undo::Restart(nodes) => {
                for n in nodes {
                    self.restart(n, &origin);
                }
            }
            Undo::Resume(nodes) => {
                for n in nodes {
                    self.resume(n, &origin);
                }
            }
            Undo::ClockJump(nodes, delta) => {
                for n in nodes {
                    self.clock_jump(n, delta, &origin);
                }
            }
            Undo::ClockDrift(old) => {
                for (n, drift) in old {
                    self.clock_drift(n, drift, &origin);
                }
            }
        }
    }

    /// Skips a fault aimed at the leader when no node is observed as leader.
    fn skip_leaderless(&mut self, fault: &PlannedFault) {
        self.stats.faults_applied -= 1;
        self.stats.faults_skipped += 1;
        self.trace
            .line(self.now_ns, None, "fault-skipped")
            .u64("fault_id", fault.id)
            .name("origin", &fault.origin)
            .name("reason", "no node observed as leader")
            .end();
    }

    fn cut(
        &mut self,
        fault: &PlannedFault,
        links: Vec<(NodeId, NodeId)>,
        sides: Option<Vec<Vec<NodeId>>>,
    ) {
        let kind = match fault.action {
            FaultAction::Isolate { .. } => "isolate",
            FaultAction::Cut { .. } => "cut",
            _ => "partition",
        };
        let mut line = self.trace.line(self.now_ns, None, kind);
        line.u64("fault_id", fault.id).name("origin", &fault.origin);
        match &sides {
            Some(sides) => {
                let named: Vec<Vec<&str>> = sides
                    .iter()
                    .map(|s| {
                        s.iter()
                            .map(|&n| self.topology.names[n.index()].as_str())
                            .collect()
                    })
                    .collect();
                line.json("sides", &named);
            }
            None => {
                let named: Vec<[&str; 2]> = links
                    .iter()
                    .map(|&(a, b)| {
                        [
                            self.topology.names[a.index()].as_str(),
                            self.topology.names[b.index()].as_str(),
                        ]
                    })
                    .collect();
                line.json("cut_links", &named);
            }
        }
        line.end();
        self.partitions.push(PartitionRecord {
            fault_id: fault.id,
            start_ns: self.now_ns,
            end_ns: None,
            sides,
            cut_links: links.clone(),
        });
        self.network.cut(fault.id, links);
    }

    fn end_partition(&mut self, fault_id: u64) {
        for p in self
            .partitions
            .iter_mut()
            .filter(|p| p.fault_id == fault_id && p.end_ns.is_none())
        {
            p.end_ns = Some(self.now_ns);
        }
        self.last_heal_ns = self.now_ns;
    }

    fn heal_all(&mut self) {
        for id in self.network.heal_all() {
            self.end_partition(id);
        }
        self.last_heal_ns = self.now_ns;
        self.trace
            .line(self.now_ns, None, "heal")
            .name("origin", "heal")
            .end();
    }
}
