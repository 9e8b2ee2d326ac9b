//! Broadcast's story for `faultline explain`: when a value is first held by a server, and when
//! every server holds it (convergence of that value); the state field `log` (`holds 12`, at most
//! once per node per [`SAMPLE_PERIOD_NS`]). Read from the `holds` observations (topic `gossip`).

use std::collections::{BTreeMap, BTreeSet};

use crate::families::narrate::servers_running;
use crate::family::{CastMember, Narration, Narrator, Throttle, seconds};
use crate::sim::trace::TraceEvent;

/// Shortest time between two `log` state changes of one node.
pub const SAMPLE_PERIOD_NS: u64 = 100_000_000;

/// Makes the narrator of a run's broadcast servers; `None` if no role runs `broadcast`.
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let servers: BTreeSet<String> = servers_running(cast, super::PROTOCOL.name)
        .map(str::to_string)
        .collect();
    if servers.is_empty() {
        return None;
    }
    Some(Box::new(BroadcastNarrator {
        servers,
        holders: BTreeMap::new(),
        held: BTreeMap::new(),
        log_state: Throttle::new(SAMPLE_PERIOD_NS),
    }))
}

struct BroadcastNarrator {
    servers: BTreeSet<String>,
    /// Per value: when it was first held, and by whom.
    holders: BTreeMap<u64, (u64, BTreeSet<String>)>,
    /// Per server: how many values it holds.
    held: BTreeMap<String, u64>,
    log_state: Throttle<String>,
}

impl Narrator for BroadcastNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        if e.kind != "observe" || e.fact() != Some("holds") || !self.servers.contains(e.node) {
            return;
        }
        let Some(value) = e
            .get("obs")
            .and_then(|o| o.get("value"))
            .and_then(|v| v.as_u64())
        else {
            return;
        };
        let n = e.node;
        let (first_ns, holders) = self
            .holders
            .entry(value)
            .or_insert_with(|| (e.t_ns, BTreeSet::new()));
        if holders.is_empty() {
            out.say(
                e.t_ns,
                Some(n),
                "gossip",
                format!("{n} first holds {value}"),
            );
        }
        if holders.insert(n.to_string()) {
            let count = self.held.entry(n.to_string()).or_default();
            *count += 1;
            if holders.len() == self.servers.len() && holders.len() > 1 {
                out.say(
                    e.t_ns,
                    None,
                    "gossip",
                    format!(
                        "every server holds {value} ({} after the first)",
                        seconds(e.t_ns - *first_ns)
                    ),
                );
            }
            for (t, v) in self.log_state.update(e.t_ns, n, format!("holds {count}")) {
                out.set(t, n, "log", v);
            }
        }
    }

    fn finish(&mut self, end_ns: u64, out: &mut Narration) {
        for (t, n, v) in self.log_state.flush(end_ns) {
            out.set(t, &n, "log", v);
        }
    }
}
