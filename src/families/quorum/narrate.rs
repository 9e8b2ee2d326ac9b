//! The quorum store's narrator: a run's story in Dynamo's terms, summarised per simulated
//! second (never one line per operation).
//!
//! Story lines (topic `quorum`): per second with traffic, the writes and reads clients got
//! answered (by outcome) and how many replicas acknowledged a write on average; per second and
//! node, the hints it stored for an unreachable owner (sloppy quorum) and the hints it handed
//! back (hinted handoff); per second, the read repairs sent and the keys anti-entropy shipped;
//! a key that comes to hold concurrent siblings (version vectors), and when its siblings are
//! merged into one version again on every node.
//!
//! State field: a node's `hints` (hints it holds for other nodes; empty when none).

use std::collections::{BTreeMap, BTreeSet};

use crate::families::narrate::{self, Cast};
use crate::family::{CastMember, Narration, Narrator};
use crate::sim::trace::TraceEvent;

/// Makes the quorum narrator for a run with `quorum-store` nodes.
pub fn narrator(cast: &[CastMember]) -> Option<Box<dyn Narrator>> {
    let cast = Cast::new(cast);
    cast.runs_any(&[super::PROTOCOL_NAME])
        .then(|| Box::new(QuorumNarrator::new(cast)) as Box<dyn Narrator>)
}

/// Most client requests awaiting their reply that the narrator remembers (a bound: requests
/// whose replies never come are forgotten past it).
const MAX_OPEN_REQUESTS: usize = 100_000;

/// One second's counts.
#[derive(Debug, Default)]
struct Second {
    /// Writes and reads answered, by outcome (`ok`, `fail`, `unknown`).
    writes: BTreeMap<&'static str, u64>,
    reads: BTreeMap<&'static str, u64>,
    /// Write operations coordinated (coordinator, op) and write acknowledgements delivered.
    write_ops: BTreeSet<(String, u64)>,
    acks: u64,
    /// Hints stored: (node, owner) -> count; hints handed back: (from, owner) -> count.
    hinted: BTreeMap<(String, String), u64>,
    handed: BTreeMap<(String, String), u64>,
    repairs: u64,
    synced_keys: u64,
}

/// An acknowledgement in flight.
#[derive(Debug)]
enum Ack {
    /// A replica's `write-ack` of operation `op` to its coordinator (the receiver).
    Write { op: u64 },
    /// An owner's `handoff-ack` of the hint of `key` (to the fallback that held it).
    Handoff { key: String },
}

/// See the module docs.
struct QuorumNarrator {
    cast: Cast,
    second: u64,
    now: Second,
    /// Client requests awaiting a reply: (client, id) -> is a write.
    open: BTreeMap<(String, u64), bool>,
    /// Acks in flight by msg id.
    acks_in_flight: BTreeMap<u64, Ack>,
    /// Hints each node holds: (key, owner).
    hints: BTreeMap<String, BTreeSet<(String, String)>>,
    /// Sibling counts per key and node, for keys that ever had more than one.
    siblings: BTreeMap<String, BTreeMap<String, usize>>,
}

fn outcome_of(status: &str) -> &'static str {
    match status {
        "ok" | "done" | "siblings" | "count" => "ok",
        "fail" => "fail",
        _ => "unknown",
    }
}

fn tally(counts: &BTreeMap<&'static str, u64>) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl QuorumNarrator {
    fn new(cast: Cast) -> Self {
        QuorumNarrator {
            cast,
            second: 0,
            now: Second::default(),
            open: BTreeMap::new(),
            acks_in_flight: BTreeMap::new(),
            hints: BTreeMap::new(),
            siblings: BTreeMap::new(),
        }
    }

    /// Tells the second that ended (at `end_ns`).
    fn flush(&mut self, end_ns: u64, out: &mut Narration) {
        let s = std::mem::take(&mut self.now);
        let (writes, reads): (u64, u64) = (s.writes.values().sum(), s.reads.values().sum());
        if writes + reads > 0 {
            let part = |n: u64, noun: &str, counts: &BTreeMap<&'static str, u64>| {
                (n > 0).then(|| format!("{} ({})", narrate::count(n, noun), tally(counts)))
            };
            let parts: Vec<String> = [
                part(writes, "write", &s.writes),
                part(reads, "read", &s.reads),
            ]
            .into_iter()
            .flatten()
            .collect();
            let mut text = format!(
                "in the second to {}: {} answered",
                narrate::duration(end_ns),
                parts.join(" and ")
            );
            if !s.write_ops.is_empty() {
                text.push_str(&format!(
                    "; {:.1} replicas acknowledged each write on average",
                    s.acks as f64 / s.write_ops.len() as f64
                ));
            }
            out.say(end_ns, None, "quorum", text);
        }
        for ((node, owner), n) in &s.hinted {
            out.say(
                end_ns,
                Some(node),
                "quorum",
                format!(
                    "{node} stores {} for {owner}, which it cannot reach (sloppy quorum)",
                    narrate::count(*n, "hint")
                ),
            );
        }
        for ((node, owner), n) in &s.handed {
            out.say(
                end_ns,
                Some(node),
                "quorum",
                format!(
                    "{node} hands {} back to {owner} (hinted handoff)",
                    narrate::count(*n, "hint")
                ),
            );
        }
        if s.repairs > 0 {
            out.say(
                end_ns,
                None,
                "quorum",
                format!(
                    "coordinators send {} to replicas that answered an older state",
                    narrate::count(s.repairs, "read repair")
                ),
            );
        }
        if s.synced_keys > 0 {
            out.say(
                end_ns,
                None,
                "quorum",
                format!(
                    "anti-entropy ships {} whose digests differed",
                    narrate::count(s.synced_keys, "key state")
                ),
            );
        }
    }

    fn set_hints(&self, t: u64, node: &str, out: &mut Narration) {
        let held = self.hints.get(node).map_or(0, BTreeSet::len);
        out.set(
            t,
            node,
            "hints",
            if held == 0 {
                String::new()
            } else {
                held.to_string()
            },
        );
    }

    fn send(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(msg) = e.get("msg") else {
            return;
        };
        let to = e.str("to").unwrap_or("?");
        match msg.get("type").and_then(|t| t.as_str()).unwrap_or("") {
            "request" => {
                let f = msg["op"]["f"].as_str().unwrap_or("");
                let write = !matches!(f, "get" | "read");
                if self.open.len() < MAX_OPEN_REQUESTS
                    && let Some(id) = msg["id"].as_u64()
                {
                    self.open.insert((e.node.to_string(), id), write);
                }
            }
            "reply" => {
                let Some(write) = msg["id"]
                    .as_u64()
                    .and_then(|id| self.open.remove(&(to.to_string(), id)))
                else {
                    return;
                };
                let status = msg
                    .get("outcome")
                    .or_else(|| msg.get("answer"))
                    .and_then(|o| o["status"].as_str())
                    .unwrap_or("");
                let counts = if write {
                    &mut self.now.writes
                } else {
                    &mut self.now.reads
                };
                *counts.entry(outcome_of(status)).or_default() += 1;
            }
            "write" => {
                if let Some(op) = msg["op"].as_u64() {
                    self.now.write_ops.insert((e.node.to_string(), op));
                }
            }
            "write-ack" => {
                if let (Some(id), Some(op)) = (e.u64("msg_id"), msg["op"].as_u64()) {
                    self.acks_in_flight.insert(id, Ack::Write { op });
                }
            }
            "handoff-ack" => {
                if let Some(id) = e.u64("msg_id") {
                    let key = msg["key"].as_str().unwrap_or("").to_string();
                    self.acks_in_flight.insert(id, Ack::Handoff { key });
                }
            }
            "repair" => self.now.repairs += 1,
            "sync" => {
                self.now.synced_keys += msg["states"].as_array().map_or(0, |s| s.len() as u64);
            }
            _ => {}
        }
        let _ = out;
    }

    fn observe(&mut self, e: &TraceEvent, out: &mut Narration) {
        let Some(obs) = narrate::observation(e) else {
            return;
        };
        match narrate::tag(obs) {
            "hinted" => {
                let owner = self.cast.name(obs.get("owner"));
                let key = narrate::text(obs, "key").to_string();
                *self
                    .now
                    .hinted
                    .entry((e.node.to_string(), owner.clone()))
                    .or_default() += 1;
                if self
                    .hints
                    .entry(e.node.to_string())
                    .or_default()
                    .insert((key, owner))
                {
                    self.set_hints(e.t_ns, e.node, out);
                }
            }
            "stored" => {
                let state = obs.get("state");
                let versions = state
                    .filter(|s| s["kind"] == "siblings")
                    .and_then(|s| s["versions"].as_array())
                    .map_or(0, |v| v.len());
                let key = narrate::text(obs, "key");
                if versions > 1 || self.siblings.contains_key(key) {
                    let before_max = self
                        .siblings
                        .get(key)
                        .and_then(|m| m.values().max().copied())
                        .unwrap_or(1);
                    let per_node = self.siblings.entry(key.to_string()).or_default();
                    per_node.insert(e.node.to_string(), versions.max(1));
                    let max = per_node.values().max().copied().unwrap_or(1);
                    if max > before_max && versions == max {
                        out.say(
                            e.t_ns,
                            Some(e.node),
                            "quorum",
                            format!("{key} now has {versions} concurrent siblings on {}", e.node),
                        );
                    } else if max == 1 && before_max > 1 {
                        out.say(
                            e.t_ns,
                            Some(e.node),
                            "quorum",
                            format!(
                                "{key}'s siblings are merged: every node holding it has one version"
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
    }
}

impl Narrator for QuorumNarrator {
    fn event(&mut self, e: &TraceEvent, out: &mut Narration) {
        let second = narrate::second_of(e.t_ns);
        if second > self.second {
            self.flush(second * 1_000_000_000, out);
            self.second = second;
        }
        match e.kind {
            "send" => self.send(e, out),
            "observe" => self.observe(e, out),
            "deliver" | "drop" if !self.acks_in_flight.is_empty() => {
                let Some(ack) = e
                    .u64("msg_id")
                    .and_then(|id| self.acks_in_flight.remove(&id))
                else {
                    return;
                };
                if e.kind == "drop" {
                    return;
                }
                match ack {
                    // Counted with the writes coordinated in this second (an ack crossing
                    // into the next second is left out, so the average never exceeds N).
                    Ack::Write { op } => {
                        if self.now.write_ops.contains(&(e.node.to_string(), op)) {
                            self.now.acks += 1;
                        }
                    }
                    Ack::Handoff { key } => {
                        let owner = e.str("from").unwrap_or("?").to_string();
                        *self
                            .now
                            .handed
                            .entry((e.node.to_string(), owner.clone()))
                            .or_default() += 1;
                        if self
                            .hints
                            .get_mut(e.node)
                            .is_some_and(|h| h.remove(&(key, owner)))
                        {
                            self.set_hints(e.t_ns, e.node, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn finish(&mut self, end_ns: u64, out: &mut Narration) {
        self.flush(end_ns, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::families::narrate::testing::{self, texts};

    fn cast() -> Vec<CastMember> {
        testing::cast(&[
            ("n1", false, "quorum-store"),
            ("n2", false, "quorum-store"),
            ("n3", false, "quorum-store"),
            ("c1", true, "kv"),
        ])
    }

    #[test]
    fn a_second_of_traffic_is_one_summary_and_hints_are_counted() {
        let out = testing::tell(
            narrator(&cast()),
            &[
                r#"{"t_ns":1,"node":"c1","kind":"send","to":"n1","msg_id":0,"msg":{"type":"request","id":1,"op":{"f":"put","key":"k1","value":"a"}}}"#,
                r#"{"t_ns":2,"node":"n1","kind":"send","to":"n2","msg_id":1,"msg":{"type":"write","op":7,"key":"k1","state":{},"hint":null}}"#,
                r#"{"t_ns":2,"node":"n1","kind":"send","to":"n3","msg_id":2,"msg":{"type":"write","op":7,"key":"k1","state":{},"hint":2}}"#,
                r#"{"t_ns":3,"node":"n2","kind":"send","to":"n1","msg_id":3,"msg":{"type":"write-ack","op":7}}"#,
                r#"{"t_ns":3,"node":"n3","kind":"observe","obs":{"fact":"hinted","key":"k1","owner":1}}"#,
                r#"{"t_ns":4,"node":"n1","kind":"deliver","from":"n2","msg_id":3}"#,
                r#"{"t_ns":5,"node":"n1","kind":"send","to":"c1","msg_id":4,"msg":{"type":"reply","id":1,"outcome":{"status":"ok","value":null}}}"#,
                r#"{"t_ns":6,"node":"c1","kind":"send","to":"n1","msg_id":5,"msg":{"type":"request","id":2,"op":{"f":"get","key":"k1"}}}"#,
                r#"{"t_ns":7,"node":"n1","kind":"send","to":"c1","msg_id":6,"msg":{"type":"reply","id":2,"outcome":{"status":"fail","value":null}}}"#,
                r#"{"t_ns":1500000000,"node":"n3","kind":"send","to":"n2","msg_id":7,"msg":{"type":"handoff","key":"k1","state":{}}}"#,
                r#"{"t_ns":1500000001,"node":"n2","kind":"send","to":"n3","msg_id":8,"msg":{"type":"handoff-ack","key":"k1","digest":1}}"#,
                r#"{"t_ns":1500000002,"node":"n3","kind":"deliver","from":"n2","msg_id":8}"#,
            ],
            2_000_000_000,
        );
        assert_eq!(
            texts(&out),
            vec![
                "in the second to 1 s: 1 write (1 ok) and 1 read (1 fail) answered; 1.0 replicas acknowledged each write on average",
                "n3 stores 1 hint for n2, which it cannot reach (sloppy quorum)",
                "n3 hands 1 hint back to n2 (hinted handoff)",
            ]
        );
        let hints: Vec<&str> = out
            .states
            .iter()
            .filter(|s| s.node == "n3" && s.field == "hints")
            .map(|s| s.value.as_str())
            .collect();
        assert_eq!(hints, vec!["1", ""]);
    }

    #[test]
    fn siblings_appearing_and_merging_are_told() {
        let out = testing::tell(
            narrator(&cast()),
            &[
                r#"{"t_ns":1,"node":"n1","kind":"observe","obs":{"fact":"stored","key":"k1","state":{"kind":"siblings","versions":[{"v":"a"}],"seen":[]}}}"#,
                r#"{"t_ns":2,"node":"n1","kind":"observe","obs":{"fact":"stored","key":"k1","state":{"kind":"siblings","versions":[{"v":"a"},{"v":"b"}],"seen":[]}}}"#,
                r#"{"t_ns":3,"node":"n1","kind":"observe","obs":{"fact":"stored","key":"k1","state":{"kind":"siblings","versions":[{"v":"c"}],"seen":[]}}}"#,
            ],
            u64::MAX,
        );
        assert_eq!(
            texts(&out),
            vec![
                "k1 now has 2 concurrent siblings on n1",
                "k1's siblings are merged: every node holding it has one version",
            ]
        );
    }
}
