//! `faultline list [--json]`: what this build can simulate and check.

use serde::Serialize;

use crate::check::CHECKS;
use crate::cli::exit;
use crate::scenario::{FaultKind, NemesisFault, PartitionShape};

#[derive(Serialize)]
struct Listing {
    families: Vec<FamilyEntry>,
    protocols: Vec<ProtocolEntry>,
    workloads: Vec<WorkloadEntry>,
    fault_kinds: Vec<Named>,
    partition_shapes: Vec<&'static str>,
    nemesis_faults: Vec<&'static str>,
    checks: Vec<Named>,
}

#[derive(Serialize)]
struct FamilyEntry {
    name: &'static str,
    summary: &'static str,
    protocols: Vec<&'static str>,
    workloads: Vec<&'static str>,
    checks: Vec<&'static str>,
}

#[derive(Serialize)]
struct ProtocolEntry {
    name: &'static str,
    summary: &'static str,
    family: &'static str,
    serves: Vec<&'static str>,
    checks: Vec<&'static str>,
    bugs: Vec<BugEntry>,
}

#[derive(Serialize)]
struct BugEntry {
    name: &'static str,
    summary: &'static str,
    caught_by: &'static str,
}

#[derive(Serialize)]
struct WorkloadEntry {
    name: &'static str,
    summary: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bugs: Vec<BugEntry>,
}

fn bug_entries(bugs: &[crate::family::Bug]) -> Vec<BugEntry> {
    bugs.iter()
        .map(|b| BugEntry {
            name: b.name,
            summary: b.summary,
            caught_by: b.caught_by,
        })
        .collect()
}

#[derive(Serialize)]
struct Named {
    name: &'static str,
    summary: &'static str,
}

fn listing() -> Listing {
    let registry = crate::families::builtin();
    let families = registry.families();
    Listing {
        families: families
            .iter()
            .map(|f| FamilyEntry {
                name: f.name,
                summary: f.summary,
                protocols: f.protocols.iter().map(|p| p.name).collect(),
                workloads: f.workloads.iter().map(|w| w.name).collect(),
                checks: f.checks.iter().map(|c| c.name).collect(),
            })
            .collect(),
        protocols: families
            .iter()
            .flat_map(|f| f.protocols.iter().map(move |p| (f, p)))
            .map(|(f, p)| ProtocolEntry {
                name: p.name,
                summary: p.summary,
                family: f.name,
                serves: p.serves.to_vec(),
                checks: f.checks.iter().map(|c| c.name).collect(),
                bugs: bug_entries(p.bugs),
            })
            .collect(),
        workloads: registry
            .workloads()
            .map(|w| WorkloadEntry {
                name: w.name,
                summary: w.summary,
                bugs: bug_entries(w.bugs),
            })
            .collect(),
        fault_kinds: FaultKind::ALL
            .iter()
            .map(|k| Named {
                name: k.name(),
                summary: k.summary(),
            })
            .collect(),
        partition_shapes: PartitionShape::ALL.iter().map(|s| s.name()).collect(),
        nemesis_faults: NemesisFault::ALL.iter().map(|f| f.name()).collect(),
        checks: CHECKS
            .iter()
            .chain(registry.checks())
            .map(|c| Named {
                name: c.name,
                summary: c.summary,
            })
            .collect(),
    }
}

fn print_bugs(bugs: &[BugEntry]) {
    for b in bugs {
        println!(
            "  {:<16} planted bug {:<34} {} (caught by {})",
            "", b.name, b.summary, b.caught_by
        );
    }
}

/// Prints the listing.
pub fn list(json: bool) -> u8 {
    let l = listing();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&l).expect("listing serializes")
        );
        return exit::PASS;
    }
    println!("protocols ([cluster] protocol, [[cluster.role]] protocol):");
    for p in &l.protocols {
        println!("  {:<16} {}", p.name, p.summary);
        if !p.serves.is_empty() {
            println!("  {:<16} serves: {}", "", p.serves.join(", "));
        }
        if !p.checks.is_empty() {
            println!("  {:<16} checks: {}", "", p.checks.join(", "));
        }
        print_bugs(&p.bugs);
    }
    println!("workloads ([[clients]] workload):");
    for w in &l.workloads {
        println!("  {:<16} {}", w.name, w.summary);
        print_bugs(&w.bugs);
    }
    println!("fault kinds ([[fault]] kind = ...):");
    for k in &l.fault_kinds {
        println!("  {:<16} {}", k.name, k.summary);
    }
    println!(
        "partition shapes (shape = ...): {}",
        l.partition_shapes.join(", ")
    );
    println!(
        "nemesis faults ([nemesis] faults = [...]): {}",
        l.nemesis_faults.join(", ")
    );
    println!("checks:");
    for c in &l.checks {
        println!("  {:<16} {}", c.name, c.summary);
    }
    exit::PASS
}
