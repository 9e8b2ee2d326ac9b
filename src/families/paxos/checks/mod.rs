//! Checks of the Paxos protocols (`paxos`, `multi-paxos`), and the replay they share.
//!
//! "Paxos Made Simple" §2.1 states the safety requirements: only a value that has been proposed
//! may be chosen, only a single value is chosen, and a process never learns that a value has
//! been chosen unless it actually has been. A value is **chosen** in an instance when a majority
//! of the acceptors have accepted the same proposal (ballot, value). The checks derive that from
//! the acceptors' own `accepted` observations (each emitted once the acceptance is on disk),
//! never from what proposers or learners claim:
//!
//! - [`agreement`]: at most one value is chosen per instance (or slot);
//! - [`validity`]: every chosen value was introduced by a proposer (`proposed`) in that instance;
//! - [`learner_agreement`]: learners never learn different values for an instance, and never a
//!   value that was not chosen;
//! - [`applied_prefix`] (Multi-Paxos): every replica applies slots in order from 1, and the
//!   applied logs are prefixes of each other;
//! - [`decision`] (single-decree, liveness): every instance is chosen, and learned by every
//!   learner, within a bound after it starts or after the final heal.

pub mod agreement;
pub mod applied_prefix;
pub mod decision;
pub mod learner_agreement;
pub mod ledger;
pub mod validity;

use std::collections::BTreeMap;

use crate::check::ms;
use crate::families::paxos::{self, Ballot, ValueName};
use crate::process::NodeId;
use crate::scenario::Scenario;
use crate::sim::RunRecord;
pub use ledger::Ledger;

/// True for the protocols these checks apply to.
pub fn applies(scenario: &Scenario) -> bool {
    scenario
        .cluster
        .roles
        .iter()
        .any(|r| paxos::is_paxos(&r.protocol))
}

/// One proposal that a majority of acceptors accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct Choice {
    /// The instance (single-decree) or slot (Multi-Paxos).
    pub instance: u64,
    /// The proposal's ballot.
    pub ballot: Ballot,
    /// The proposal's value.
    pub value: ValueName,
    /// When the acceptance that completed the majority was observed (global ns).
    pub chosen_ns: u64,
    /// Every acceptor that accepted the proposal, with the time of its first acceptance.
    pub acceptors: Vec<(NodeId, u64)>,
}

impl Choice {
    /// One line of evidence: `value "x" chosen with ballot (2, 1) at 12.3ms by n1@10.0ms, ...`.
    pub fn describe(&self, record: &RunRecord) -> String {
        let by: Vec<String> = self
            .acceptors
            .iter()
            .map(|(n, t)| format!("{}@{}", record.topology.name(*n), ms(*t)))
            .collect();
        format!(
            "value {:?} chosen with ballot {} at {} (accepted by {})",
            self.value,
            self.ballot,
            ms(self.chosen_ns),
            by.join(", ")
        )
    }
}

/// Every proposal accepted by a majority of the run's acceptors, by instance, each instance's
/// choices in the order they became chosen (from the run's [`Ledger`]). Only observations of
/// acceptor nodes count.
pub fn choices(record: &RunRecord) -> BTreeMap<u64, Vec<Choice>> {
    Ledger::of(record)
        .instances()
        .filter(|(_, inst)| inst.is_chosen())
        .map(|(i, inst)| (i, inst.choices(i)))
        .collect()
}

#[cfg(test)]
pub(crate) mod testing {
    //! Run records of a Paxos cluster for the checks' unit tests.

    use std::path::Path;
    use std::sync::Arc;

    use crate::check::testing;
    use crate::families::paxos::{Ballot, Observation};
    use crate::scenario::Scenario;
    use crate::scenario::topology::Topology;
    use crate::sim::RunRecord;

    /// A 10 s record of `protocol` on 5 servers (every role on every server), no clients.
    pub fn record(protocol: &str, extra: &str) -> RunRecord {
        let clients = if protocol == "paxos" { 0 } else { 1 };
        let mut rec = testing::record(5, clients, "");
        let text = format!(
            "duration = \"10s\"\n[cluster]\nprotocol = \"{protocol}\"\nnodes = 5\n[workload]\nclients = {clients}\n{extra}"
        );
        let scenario = Scenario::parse(Path::new("test.toml"), text.as_bytes()).expect("valid");
        rec.topology = Arc::new(Topology::new(&scenario));
        rec.scenario = Arc::new(scenario);
        rec
    }

    /// Ballot `(round, node)`.
    pub fn b(round: u64, node: u32) -> Ballot {
        Ballot {
            round,
            node: crate::process::NodeId(node),
        }
    }

    /// Acceptor `node` accepted `(ballot, value)` in `instance` at `t_ms`.
    pub fn accepted(
        rec: &mut RunRecord,
        t_ms: u64,
        node: u32,
        instance: u64,
        ballot: Ballot,
        value: &str,
    ) {
        testing::observe(
            rec,
            t_ms,
            node,
            Observation::Accepted {
                instance,
                ballot,
                value: value.into(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{accepted, b, record};
    use super::*;

    #[test]
    fn a_proposal_is_chosen_when_a_majority_accepts_the_same_ballot_and_value() {
        let mut rec = record("paxos", "");
        accepted(&mut rec, 10, 0, 0, b(1, 0), "x");
        accepted(&mut rec, 11, 1, 0, b(1, 0), "x");
        accepted(&mut rec, 12, 2, 0, b(2, 1), "x");
        assert!(choices(&rec).is_empty(), "different ballots do not add up");
        accepted(&mut rec, 13, 1, 0, b(1, 0), "x"); // a duplicate acceptance counts once
        assert!(choices(&rec).is_empty());
        accepted(&mut rec, 14, 3, 0, b(1, 0), "x");
        accepted(&mut rec, 15, 4, 0, b(1, 0), "x");
        let c = choices(&rec);
        assert_eq!(c[&0].len(), 1);
        assert_eq!(c[&0][0].chosen_ns, 14_000_000, "the third of five");
        assert_eq!(c[&0][0].acceptors.len(), 4);
    }

    #[test]
    fn only_the_configured_acceptors_count() {
        let mut rec = record("paxos", "[paxos]\nacceptors = [\"n1\", \"n2\", \"n3\"]\n");
        accepted(&mut rec, 10, 3, 0, b(1, 0), "x");
        accepted(&mut rec, 11, 4, 0, b(1, 0), "x");
        accepted(&mut rec, 12, 0, 0, b(1, 0), "x");
        assert!(choices(&rec).is_empty(), "n4, n5 are not acceptors");
        accepted(&mut rec, 13, 1, 0, b(1, 0), "x");
        assert_eq!(choices(&rec)[&0][0].chosen_ns, 13_000_000, "2 of 3");
    }
}
