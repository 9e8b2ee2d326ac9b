//! `faultline list [--json]`: what this build can simulate and check.

use serde::Serialize;

use crate::check::{CHECKS, checks_for};
use crate::cli::exit;
use crate::families::PROTOCOLS;
use crate::scenario::{FaultKind, NemesisFault, PartitionShape};

#[derive(Serialize)]
struct Listing {
    protocols: Vec<ProtocolEntry>,
    fault_kinds: Vec<Named>,
    partition_shapes: Vec<&'static str>,
    nemesis_faults: Vec<&'static str>,
    checks: Vec<Named>,
}

#[derive(Serialize)]
struct ProtocolEntry {
    name: &'static str,
    summary: &'static str,
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
struct Named {
    name: &'static str,
    summary: &'static str,
}

fn listing() -> Listing {
    Listing {
        protocols: PROTOCOLS
            .iter()
            .map(|p| ProtocolEntry {
                name: p.name,
                summary: p.summary,
                checks: checks_for(p).map(|c| c.name).collect(),
                bugs: p
                    .bugs
                    .iter()
                    .map(|b| BugEntry {
                        name: b.name,
                        summary: b.summary,
                        caught_by: b.caught_by,
                    })
                    .collect(),
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
            .map(|c| Named {
                name: c.name,
                summary: c.summary,
            })
            .collect(),
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
    println!("protocols:");
    for p in &l.protocols {
        println!("  {:<16} {}", p.name, p.summary);
        println!("  {:<16} checks: {}", "", p.checks.join(", "));
        for b in &p.bugs {
            println!(
                "  {:<16} planted bug {:<34} {} (caught by {})",
                "", b.name, b.summary, b.caught_by
            );
        }
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
