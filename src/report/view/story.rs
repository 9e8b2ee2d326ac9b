//! faultline's own summaries in a run's story: client operations (topic `client`) and message
//! traffic (topic `message`), each told in a few lines rather than one per operation or
//! message.

use std::collections::BTreeMap;

use crate::families::narrate::duration;
use crate::family::{Narration, seconds};
use crate::history::{EventRef, EventType, Events};
use crate::sim::trace::TraceEvent;

/// A stretch at least this long without an `ok` completion, while operations are outstanding,
/// is told as an unavailability gap.
pub const GAP_NS: u64 = 250_000_000;
/// Failed or timed-out operations less than this far apart are told as one burst.
pub const BURST_JOIN_NS: u64 = 1_000_000_000;
/// The message summaries cover at most about this many intervals of a run.
pub const MAX_TRAFFIC_INTERVALS: u64 = 20;
/// Message types named in one interval's summary (the most frequent ones).
const KINDS_NAMED: usize = 3;

/// The client part of the story, from the history (in time order): each burst of operations
/// that timed out or ended unknown (`info`: the system gave no answer; its first operation, how
/// many, until when), and each end of a stretch of at least [`GAP_NS`] in which operations were
/// outstanding but none was answered (`ok`, or `fail`: a definite answer such as a failed
/// compare-and-set). Operations left unanswered when the run ended (at `end_ns`) are not told.
pub fn tell_clients<E: Events + ?Sized>(history: &E, end_ns: u64, out: &mut Narration) {
    let mut outstanding: u64 = 0;
    // Since when operations have waited for an answer: the last answer, or the invoke that
    // ended a time with nothing outstanding.
    let mut waiting_since: Option<u64> = None;
    let mut bursts: Vec<Burst> = Vec::new();
    for e in history.events() {
        let e = &e;
        match e.kind {
            EventType::Invoke => {
                outstanding += 1;
                waiting_since.get_or_insert(e.time_ns);
            }
            EventType::Ok | EventType::Fail => {
                outstanding = outstanding.saturating_sub(1);
                if let Some(a) = waiting_since
                    && e.time_ns - a >= GAP_NS
                {
                    let unknown = unknown_between(&bursts, a, e.time_ns);
                    let meanwhile = match unknown {
                        0 => String::new(),
                        u => format!("; {u} operation(s) timed out meanwhile"),
                    };
                    out.say(
                        e.time_ns,
                        None,
                        "client",
                        format!(
                            "clients get answers again ({} {}) after {} without any{meanwhile}",
                            describe(e),
                            e.kind.name(),
                            duration(e.time_ns - a)
                        ),
                    );
                }
                waiting_since = (outstanding > 0).then_some(e.time_ns);
            }
            EventType::Info => {
                // A timeout is no answer: clients keep waiting (and retry).
                outstanding = outstanding.saturating_sub(1);
                if e.time_ns >= end_ns {
                    continue;
                }
                match bursts.last_mut() {
                    Some(b) if e.time_ns - b.last_ns < BURST_JOIN_NS => b.add(e.time_ns),
                    _ => bursts.push(Burst::new(e)),
                }
            }
        }
    }
    for b in &bursts {
        let text = if b.count == 1 {
            b.first.clone()
        } else {
            format!(
                "{}: the first of {} operations that time out or end unknown until {}",
                b.first,
                b.count,
                seconds(b.last_ns)
            )
        };
        out.say(b.first_ns, None, "client", text);
    }
}

/// Operations of the bursts in `[from, to)` that timed out (a burst overlapping the window
/// counts whole: good enough for "meanwhile").
fn unknown_between(bursts: &[Burst], from: u64, to: u64) -> u64 {
    bursts
        .iter()
        .filter(|b| b.first_ns < to && b.last_ns >= from)
        .map(|b| b.count)
        .sum()
}

struct Burst {
    first_ns: u64,
    last_ns: u64,
    /// The first operation, told.
    first: String,
    count: u64,
}

impl Burst {
    fn new(e: &EventRef<'_>) -> Burst {
        let outcome = match e.error {
            Some("timeout") | None => "times out".to_string(),
            Some(err) => format!("ends unknown ({err})"),
        };
        Burst {
            first_ns: e.time_ns,
            last_ns: e.time_ns,
            first: format!("{} {outcome}", describe(e)),
            count: 1,
        }
    }

    fn add(&mut self, t_ns: u64) {
        self.last_ns = t_ns;
        self.count += 1;
    }
}

/// `c3's put k1`.
fn describe(e: &EventRef<'_>) -> String {
    match e.key {
        Some(k) => format!("{}'s {} {k}", e.node, e.f.name()),
        None => format!("{}'s {}", e.node, e.f.name()),
    }
}

/// Message traffic per interval, counted in the one pass over the trace.
pub struct Traffic {
    interval_ns: u64,
    buckets: BTreeMap<u64, Counts>,
}

#[derive(Default)]
struct Counts {
    sent: u64,
    duplicated: u64,
    kinds: BTreeMap<String, u64>,
    dropped: BTreeMap<String, u64>,
}

impl Traffic {
    /// Traffic of a run lasting `end_ns`: intervals of 1, 2, 5, 10, 20, 30 or 60 s (or a
    /// multiple of 60 s), the shortest giving at most [`MAX_TRAFFIC_INTERVALS`].
    pub fn new(end_ns: u64) -> Traffic {
        const S: u64 = 1_000_000_000;
        let interval_ns = [1, 2, 5, 10, 20, 30, 60]
            .iter()
            .map(|s| s * S)
            .find(|i| end_ns.div_ceil(*i) <= MAX_TRAFFIC_INTERVALS)
            .unwrap_or_else(|| (end_ns.div_ceil(MAX_TRAFFIC_INTERVALS)).div_ceil(60 * S) * 60 * S);
        Traffic {
            interval_ns,
            buckets: BTreeMap::new(),
        }
    }

    /// One `send`, `duplicate` or `drop` line.
    pub fn event(&mut self, e: &TraceEvent) {
        let counts = self.buckets.entry(e.t_ns / self.interval_ns).or_default();
        match e.kind {
            "send" => {
                counts.sent += 1;
                let kind = e.msg_type().unwrap_or("?");
                match counts.kinds.get_mut(kind) {
                    Some(n) => *n += 1,
                    None => {
                        counts.kinds.insert(kind.to_string(), 1);
                    }
                }
            }
            "duplicate" => counts.duplicated += 1,
            _ => {
                let reason = e.str("reason").unwrap_or("?");
                match counts.dropped.get_mut(reason) {
                    Some(n) => *n += 1,
                    None => {
                        counts.dropped.insert(reason.to_string(), 1);
                    }
                }
            }
        }
    }

    /// One line per interval with traffic: `3.000-4.000 s: 812 messages (append-entries 640,
    /// request 80, reply 80), 40 dropped (32 partition, 8 loss)`.
    pub fn tell(&self, end_ns: u64, out: &mut Narration) {
        for (&i, c) in &self.buckets {
            let start = i * self.interval_ns;
            let end = (start + self.interval_ns).min(end_ns.max(start));
            let mut kinds: Vec<(&String, &u64)> = c.kinds.iter().collect();
            kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let mut named: Vec<String> = kinds
                .iter()
                .take(KINDS_NAMED)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            if kinds.len() > KINDS_NAMED {
                named.push("...".to_string());
            }
            let mut text = format!(
                "{}-{}: {} messages",
                seconds(start).trim_end_matches(" s"),
                seconds(end),
                c.sent
            );
            if !named.is_empty() {
                text.push_str(&format!(" ({})", named.join(", ")));
            }
            if c.duplicated > 0 {
                text.push_str(&format!(", {} duplicated", c.duplicated));
            }
            let dropped: u64 = c.dropped.values().sum();
            if dropped > 0 {
                let mut reasons: Vec<(&String, &u64)> = c.dropped.iter().collect();
                reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                let reasons: Vec<String> =
                    reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
                text.push_str(&format!(", {dropped} dropped ({})", reasons.join(", ")));
            }
            out.say(start, None, "message", text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Function, HistoryEvent, Value};

    fn op(t_ms: u64, node: &str, kind: EventType, error: Option<&str>) -> HistoryEvent {
        let mut e = HistoryEvent::new(1, kind, Function::Put, Some("k1".into()), Value::Nil);
        e.time_ns = t_ms * 1_000_000;
        e.node = node.into();
        e.error = error.map(str::to_string);
        e
    }

    #[test]
    fn a_burst_of_timeouts_and_the_gap_it_leaves_are_told_once_each() {
        use EventType::*;
        let history = vec![
            op(0, "c1", Invoke, None),
            op(5, "c1", Ok, None),
            op(10, "c1", Invoke, None),
            op(20, "c2", Invoke, None),
            op(510, "c1", Info, Some("timeout")),
            op(520, "c2", Info, Some("timeout")),
            op(530, "c1", Invoke, None),
            op(800, "c1", Ok, None),
            op(810, "c1", Invoke, None),
            op(815, "c1", Ok, None),
        ];
        let mut out = Narration::default();
        tell_clients(&history, 10_000_000_000, &mut out);
        let texts: Vec<(u64, &str)> = out
            .lines
            .iter()
            .map(|l| (l.t_ns / 1_000_000, l.text.as_str()))
            .collect();
        assert_eq!(
            texts,
            vec![
                (
                    800,
                    "clients get answers again (c1's put k1 ok) after 790 ms without any; 2 operation(s) timed out meanwhile"
                ),
                (
                    510,
                    "c1's put k1 times out: the first of 2 operations that time out or end unknown until 0.520 s"
                ),
            ]
        );
    }

    #[test]
    fn idle_clients_and_definite_failures_leave_no_gap_and_no_burst() {
        use EventType::*;
        let history = vec![
            op(0, "c1", Invoke, None),
            op(5, "c1", Fail, Some("cas mismatch")),
            op(2000, "c1", Invoke, None),
            op(2005, "c1", Ok, None),
            op(2010, "c1", Invoke, None),
            op(10_000, "c1", Info, Some("unanswered at end of run")),
        ];
        let mut out = Narration::default();
        tell_clients(&history, 10_000_000_000, &mut out);
        assert!(out.lines.is_empty(), "{:?}", out.lines);
    }

    #[test]
    fn traffic_is_summed_per_interval_with_drop_reasons() {
        let mut t = Traffic::new(3_500_000_000);
        fn line(s: &str) -> TraceEvent<'_> {
            TraceEvent::parse(s).unwrap()
        }
        t.event(&line(
            r#"{"t_ns":1,"node":"n1","kind":"send","to":"n2","msg_id":0,"msg":{"type":"vote"}}"#,
        ));
        t.event(&line(
            r#"{"t_ns":2,"node":"n1","kind":"send","to":"n3","msg_id":1,"msg":{"type":"vote"}}"#,
        ));
        t.event(&line(
            r#"{"t_ns":3,"node":"n3","kind":"drop","from":"n1","msg_id":1,"reason":"partition"}"#,
        ));
        t.event(&line(r#"{"t_ns":3000000000,"node":"n1","kind":"send","to":"n2","msg_id":2,"msg":{"type":"x"}}"#));
        let mut out = Narration::default();
        t.tell(3_500_000_000, &mut out);
        let texts: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "0.000-1.000 s: 2 messages (vote 2), 1 dropped (1 partition)",
                "3.000-3.500 s: 1 messages (x 1)",
            ]
        );
    }
}
