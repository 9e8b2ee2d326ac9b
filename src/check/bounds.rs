//! `bounds` (every protocol): quantitative bounds on counts read from the run record, each
//! optional. The check runs only when the scenario sets at least one bound in
//! `[check.bounds]`; every measured quantity is reported as a metric whether bounded or not.
//!
//! | bound | measured from | over |
//! |---|---|---|
//! | `messages_per_op_max` | `stats.messages_sent` (every message handed to the network, client requests and replies included) divided by the client operations invoked | the whole run |
//! | `bytes_per_op_max` | `stats.message_bytes_sent` (each sent message's canonical binary encoding, the postcard record the trace hash covers) divided by the client operations invoked | the whole run |
//! | `elections_max` | new terms: `role` observations whose term is above every term observed before (any node); every election attempt starts one | `[from, until)` |
//! | `durable_bytes_max` | each server's durable bytes at the end of the run (`RunRecord.final_durable_bytes`), if `until` is unset or not before the end; and, when the trace is kept, the `durable_bytes` of each `start` line after a restart (incarnation 2 or more): what it found on disk | the end of the run, restarts in `[from, until)` |
//! | `latency_mean_max` | mean of `completion - invoke` of operations answered `ok` or `fail` (`info` has no answer time, only a timeout) | operations invoked in `[from, until)` |
//! | `latency_percentile_max` | the `latency_percentile`-th percentile (nearest rank) of the same latencies | the same |
//!
//! A bound the run cannot answer makes the check `unknown`, never `pass`: no client operation for
//! a per-operation bound; no `role` observation in the whole run (the protocol reports no terms)
//! for `elections_max`; for `durable_bytes_max`, an interval that ends before the run and holds
//! no restart seen in a kept trace; no answered operation for the latency bounds. No bound needs
//! the trace: `faultline test` judges them all. A failed bound makes it `fail` whatever the others say.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::check::ops::operations;
use crate::check::{self, CheckInfo, CheckResult, ms, until_problem};
use crate::family::OptionError;
use crate::process::CommonObservation;
use crate::scenario::topology::Topology;
use crate::scenario::{Duration, Scenario, Verdict};
use crate::sim::RunRecord;

/// The registry entry.
pub const CHECK: CheckInfo = CheckInfo {
    name: "bounds",
    summary: "optional bounds on messages and bytes per operation, elections in an interval, durable bytes, and operation latency (mean, percentile)",
    applies_to: |_| true,
    enabled: |t| check::on_unless_disabled(t) && check::parse_or_default::<Config>(t).any_bound(),
    validate: validate_options,
    resolve: check::resolve_as::<Config>,
    run,
};

fn validate_options(table: &toml::Table, s: &Scenario, _: &Topology) -> Vec<OptionError> {
    check::validate_with(table, |c: &Config| {
        c.problems(s.duration)
            .into_iter()
            .map(|(key, message)| OptionError::at(key, message))
            .collect()
    })
}

/// `[check.bounds]` options. Every bound is optional; the check runs if at least one is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check when a bound is set (default true).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Start of the interval for `elections_max`, `durable_bytes_max` and the latency bounds
    /// (simulated time, default 0).
    #[serde(default)]
    pub from: Duration,
    /// End (exclusive) of that interval (default: the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Duration>,
    /// Most messages sent per client operation invoked (a number; whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_per_op_max: Option<f64>,
    /// Most message bytes (`stats.message_bytes_sent`: binary encodings) sent per client
    /// operation invoked (whole run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_per_op_max: Option<f64>,
    /// Most new terms (elections started) in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elections_max: Option<u64>,
    /// Most durable bytes a server may hold at the end of the run (if the interval reaches it)
    /// or find on its disk when it restarts in the interval (restarts are read from a kept
    /// trace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durable_bytes_max: Option<u64>,
    /// Largest mean latency of the answered operations invoked in the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_mean_max: Option<Duration>,
    /// Which percentile `latency_percentile_max` bounds, in `(0, 100]` (default 99).
    #[serde(default = "default_percentile")]
    pub latency_percentile: f64,
    /// Largest `latency_percentile`-th percentile latency of the answered operations invoked in
    /// the interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_percentile_max: Option<Duration>,
}

fn default_percentile() -> f64 {
    99.0
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            from: Duration::default(),
            until: None,
            messages_per_op_max: None,
            bytes_per_op_max: None,
            elections_max: None,
            durable_bytes_max: None,
            latency_mean_max: None,
            latency_percentile: default_percentile(),
            latency_percentile_max: None,
        }
    }
}

impl Config {
    /// True if at least one bound is set.
    pub fn any_bound(&self) -> bool {
        self.messages_per_op_max.is_some()
            || self.bytes_per_op_max.is_some()
            || self.elections_max.is_some()
            || self.durable_bytes_max.is_some()
            || self.latency_mean_max.is_some()
            || self.latency_percentile_max.is_some()
    }

    /// True if no bound is set (the check does not run).
    pub fn is_unset(&self) -> bool {
        !self.any_bound()
    }

    /// Problems with the options, as (key, what was expected), for scenario validation.
    pub fn problems(&self, run: Duration) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, value) in [
            ("messages_per_op_max", self.messages_per_op_max),
            ("bytes_per_op_max", self.bytes_per_op_max),
        ] {
            if let Some(x) = value.filter(|x| !(x.is_finite() && *x >= 0.0)) {
                out.push((key, format!("expected a number of 0 or more, found {x}")));
            }
        }
        let p = self.latency_percentile;
        if !(p > 0.0 && p <= 100.0) {
            out.push((
                "latency_percentile",
                format!("expected a percentile above 0 and at most 100, found {p}"),
            ));
        }
        if let Some(until) = self.until {
            if let Some(problem) = until_problem(self.from, until, run) {
                out.push(("until", problem));
            }
        } else if self.from >= run {
            out.push((
                "from",
                format!("expected a time before the end of the run ({run})"),
            ));
        }
        out
    }
}

/// The outcome of one bound: its verdict and one line of evidence. Shared with the families'
/// bounds checks (the lock family's `lock-bounds`), which conclude with [`conclude`].
pub(crate) struct Bound {
    pub(crate) verdict: Verdict,
    pub(crate) line: String,
}

impl Bound {
    /// `measured` against the upper bound `max`: fails if above.
    pub(crate) fn judge(name: &str, measured: f64, max: f64, show: impl Fn(f64) -> String) -> Self {
        Self::against(name, measured, max, show, measured > max, "above")
    }

    /// `measured` against the lower bound `min`: fails if below.
    pub(crate) fn judge_min(
        name: &str,
        measured: f64,
        min: f64,
        show: impl Fn(f64) -> String,
    ) -> Self {
        Self::against(name, measured, min, show, measured < min, "below")
    }

    fn against(
        name: &str,
        measured: f64,
        bound: f64,
        show: impl Fn(f64) -> String,
        failed: bool,
        relation: &str,
    ) -> Self {
        let (verdict, relation) = if failed {
            (Verdict::Fail, relation)
        } else {
            (Verdict::Pass, "within")
        };
        Bound {
            verdict,
            line: format!(
                "{name}: {} is {relation} the bound {}",
                show(measured),
                show(bound)
            ),
        }
    }

    /// A bound the run cannot answer, and why.
    pub(crate) fn unknown(name: &str, why: impl Into<String>) -> Self {
        Bound {
            verdict: Verdict::Unknown,
            line: format!("{name}: unknown, {}", why.into()),
        }
    }
}

/// The trace lines, if the run kept every one of them.
fn full_trace(record: &RunRecord) -> Option<impl Iterator<Item = impl AsRef<str>>> {
    (!record.trace_truncated && !record.trace_jsonl.is_empty()).then(|| record.trace_jsonl.lines())
}

/// (time, node name, bytes) of every `start` line of a restart (incarnation 2 or more).
fn restart_disks(lines: impl Iterator<Item = impl AsRef<str>>) -> Vec<(u64, String, u64)> {
    lines
        .filter(|l| l.as_ref().contains(",\"kind\":\"start\","))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l.as_ref()).ok()?;
            (v["incarnation"].as_u64()? >= 2).then_some(())?;
            Some((
                v["t_ns"].as_u64()?,
                v["node"].as_str()?.to_string(),
                v["durable_bytes"].as_u64()?,
            ))
        })
        .collect()
}

/// New terms observed in `[from, until)`: role observations above every earlier term.
/// `None` if the run has no role observation at all.
fn new_terms(record: &RunRecord, from: u64, until: u64) -> Option<Vec<(u64, u64)>> {
    let mut highest: Option<u64> = None;
    let mut found = Vec::new();
    for o in &record.observations {
        if let Some(CommonObservation::Role { term, .. }) = o.get()
            && highest.is_none_or(|h| *term > h)
        {
            if o.t_ns >= from && o.t_ns < until && highest.is_some() {
                found.push((o.t_ns, *term));
            }
            highest = Some(*term);
        }
    }
    highest.map(|_| found)
}

/// The nearest-rank `p`-th percentile (0 < p <= 100) of sorted values.
pub(crate) fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((p / 100.0) * n as f64).ceil().clamp(1.0, n as f64) as usize;
    Some(sorted[rank - 1])
}

fn run(record: &RunRecord) -> CheckResult {
    let c: Config = record.scenario.check_options(CHECK.name);
    let c = &c;
    let from = c.from.as_nanos();
    let until = c.until.map_or(record.end_ns, Duration::as_nanos);
    let interval = format!("[{}, {})", ms(from), ms(until));
    let ops = operations(&record.history);
    let n_ops = ops.len() as u64;
    let mut bounds: Vec<Bound> = Vec::new();
    let mut metrics: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    metrics.insert("operations".into(), n_ops.into());

    let per_op = |total: u64| (n_ops > 0).then(|| total as f64 / n_ops as f64);
    let messages = per_op(record.stats.messages_sent);
    metrics.insert("messages_per_op".into(), messages.into());
    if let Some(max) = c.messages_per_op_max {
        bounds.push(match messages {
            Some(x) => Bound::judge("messages per operation", x, max, |x| format!("{x:.2}")),
            None => Bound::unknown("messages per operation", "no client operation was invoked"),
        });
    }

    let bytes_per_op = per_op(record.stats.message_bytes_sent);
    metrics.insert("bytes_per_op".into(), bytes_per_op.into());
    if let Some(max) = c.bytes_per_op_max {
        bounds.push(match bytes_per_op {
            Some(x) => Bound::judge("bytes per operation", x, max, |x| format!("{x:.1}")),
            None => Bound::unknown("bytes per operation", "no client operation was invoked"),
        });
    }

    let terms = new_terms(record, from, until);
    metrics.insert(
        "elections".into(),
        terms.as_ref().map(|t| t.len() as u64).into(),
    );
    if let Some(max) = c.elections_max {
        bounds.push(match &terms {
            None => Bound::unknown(
                "elections",
                "the run has no role observation: the protocol reports no terms",
            ),
            Some(t) => {
                let mut b = Bound::judge(
                    &format!("elections (new terms) in {interval}"),
                    t.len() as f64,
                    max as f64,
                    |x| format!("{x}"),
                );
                if b.verdict == Verdict::Fail {
                    let list: Vec<String> = t
                        .iter()
                        .take(10)
                        .map(|(at, term)| format!("term {term} at {}", ms(*at)))
                        .collect();
                    b.line.push_str(&format!(": {}", list.join(", ")));
                }
                b
            }
        });
    }

    if let Some(max) = c.durable_bytes_max {
        // (time, server, bytes): restarts in the interval from a kept trace, then each server's
        // disk at the end of the run if the interval reaches it.
        let mut disks: Vec<(u64, String, u64)> = full_trace(record)
            .map(|lines| {
                restart_disks(lines)
                    .into_iter()
                    .filter(|(t, _, _)| *t >= from && *t < until)
                    .collect()
            })
            .unwrap_or_default();
        if until >= record.end_ns {
            let servers = record.topology.servers.iter();
            disks.extend(servers.filter_map(|&n| {
                let bytes = *record.final_durable_bytes.get(n.index())?;
                Some((
                    record.end_ns,
                    record.topology.names[n.index()].clone(),
                    bytes,
                ))
            }));
        }
        // The largest; the earliest of equals.
        let largest = disks.iter().max_by_key(|x| (x.2, std::cmp::Reverse(x.0)));
        bounds.push(match largest {
            None => Bound::unknown(
                "durable bytes",
                format!("the interval {interval} ends before the run and no server restarted in it (restarts are read from a kept trace)"),
            ),
            Some((t, node, most)) => {
                metrics.insert("durable_bytes_max".into(), (*most).into());
                let mut b = Bound::judge(
                    &format!("durable bytes (at the end of the run and at restarts) in {interval}"),
                    *most as f64,
                    max as f64,
                    |x| format!("{x}"),
                );
                b.line
                    .push_str(&format!(" (largest: {node} at {})", ms(*t)));
                b
            }
        });
    }

    let mut latencies: Vec<u64> = ops
        .iter()
        .filter(|o| o.invoke_ns >= from && o.invoke_ns < until)
        .filter(|o| o.is_answered())
        .filter_map(|o| Some(o.complete_ns? - o.invoke_ns))
        .collect();
    latencies.sort_unstable();
    let mean = (!latencies.is_empty())
        .then(|| latencies.iter().map(|&l| l as f64).sum::<f64>() / latencies.len() as f64);
    let pct = percentile(&latencies, c.latency_percentile);
    metrics.insert("answered_ops".into(), latencies.len().into());
    metrics.insert(
        "latency_mean_ns".into(),
        mean.map(|m| m.round() as u64).into(),
    );
    metrics.insert("latency_percentile_ns".into(), pct.into());
    let show_ns = |x: f64| ms(x.round() as u64);
    let none_answered = format!("no operation invoked in {interval} was answered");
    if let Some(max) = c.latency_mean_max {
        bounds.push(match mean {
            Some(m) => Bound::judge(
                &format!("mean latency of {} answered operations", latencies.len()),
                m,
                max.as_nanos() as f64,
                show_ns,
            ),
            None => Bound::unknown("mean latency", none_answered.clone()),
        });
    }
    if let Some(max) = c.latency_percentile_max {
        let name = format!("p{} latency", c.latency_percentile);
        bounds.push(match pct {
            Some(p) => Bound::judge(
                &format!("{name} of {} answered operations", latencies.len()),
                p as f64,
                max.as_nanos() as f64,
                show_ns,
            ),
            None => Bound::unknown(&name, none_answered),
        });
    }

    conclude(CHECK.name, &bounds, metrics)
}

/// The result of a bounds check named `name`: fail if a bound failed, else unknown if one could
/// not be measured, else pass; evidence lists failures, then unknowns, then the bounds that hold.
pub(crate) fn conclude(
    name: &str,
    bounds: &[Bound],
    metrics: BTreeMap<String, serde_json::Value>,
) -> CheckResult {
    let count = |v: Verdict| bounds.iter().filter(|b| b.verdict == v).count();
    let (fail, unknown) = (count(Verdict::Fail), count(Verdict::Unknown));
    let verdict = if fail > 0 {
        Verdict::Fail
    } else if unknown > 0 {
        Verdict::Unknown
    } else {
        Verdict::Pass
    };
    let summary = match verdict {
        Verdict::Fail => format!("{fail} of {} bounds exceeded", bounds.len()),
        Verdict::Unknown => format!(
            "{unknown} of {} bounds could not be measured in this run",
            bounds.len()
        ),
        Verdict::Pass => format!("all {} bounds hold", bounds.len()),
    };
    let mut result = CheckResult::new(name, verdict, summary);
    // Failures first, then unknowns, then the bounds that hold.
    for v in [Verdict::Fail, Verdict::Unknown, Verdict::Pass] {
        result.evidence.extend(
            bounds
                .iter()
                .filter(|b| b.verdict == v)
                .map(|b| b.line.clone()),
        );
    }
    result.metrics = metrics;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{enabled, observe, put, record};
    use crate::history::EventType;
    use crate::process::NodeId;
    use crate::sim::trace::Trace;

    fn role(term: u64) -> CommonObservation {
        CommonObservation::Role {
            role: crate::process::NodeRole::Candidate,
            term,
        }
    }

    /// A record with `extra` bounds and three puts invoked at 1s, 2s and 3s: answered (ok, fail)
    /// after 10ms and 30ms, and the third `info`.
    fn with_ops(extra: &str) -> RunRecord {
        let mut rec = record(3, 1, &format!("[check.bounds]\n{extra}"));
        rec.history = [
            put(1, "c1", "x", 1000, EventType::Ok, 1010),
            put(1, "c1", "x", 2000, EventType::Fail, 2030),
            put(1, "c1", "x", 3000, EventType::Info, 4000),
        ]
        .concat()
        .into();
        rec
    }

    #[test]
    fn the_check_runs_only_when_a_bound_is_set() {
        let rec = record(3, 1, "");
        assert!(!enabled(&CHECK, &rec));
        let rec = with_ops("messages_per_op_max = 10\n");
        assert!(enabled(&CHECK, &rec));
    }

    #[test]
    fn messages_per_operation_bound_passes_and_fails() {
        let mut rec = with_ops("messages_per_op_max = 10\n");
        rec.stats.messages_sent = 30;
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["messages_per_op"], 10.0);
        rec.stats.messages_sent = 31;
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("10.33 is above the bound 10.00"),
            "{:?}",
            r.evidence
        );
        rec.history.clear();
        assert_eq!(
            run(&rec).verdict,
            Verdict::Unknown,
            "no operation: cannot divide"
        );
    }

    /// A kept trace with two sends and a restart of n2 that found
    /// 500 bytes on disk at 2.5s.
    fn traced(rec: &mut RunRecord) {
        let mut trace = Trace::new(1 << 20, rec.topology.names.clone());
        trace
            .line(0, Some(NodeId(0)), "start")
            .u64("incarnation", 1)
            .u64("durable_bytes", 0)
            .end();
        for text in ["abcdefgh", "abcdefghijklmnopqr"] {
            trace
                .line(5, Some(NodeId(0)), "send")
                .node("to", NodeId(1))
                .u64("msg_id", 0)
                .json("msg", &text)
                .end();
        }
        trace
            .line(2_500_000_000, Some(NodeId(1)), "start")
            .u64("incarnation", 2)
            .u64("durable_bytes", 500)
            .end();
        let (bytes, _, truncated) = trace.finish();
        rec.trace_jsonl = bytes;
        rec.trace_truncated = truncated;
    }

    #[test]
    fn bytes_per_operation_bound_is_judged_from_the_stats_without_a_trace() {
        let mut rec = with_ops("bytes_per_op_max = 10\n");
        rec.stats.message_bytes_sent = 30;
        assert!(rec.trace_jsonl.is_empty(), "no trace kept");
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(
            r.metrics["bytes_per_op"], 10.0,
            "30 bytes over 3 operations"
        );
        rec.stats.message_bytes_sent = 31;
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("10.3 is above"), "{:?}", r.evidence);
        rec.history.clear();
        assert_eq!(
            run(&rec).verdict,
            Verdict::Unknown,
            "no operation: cannot divide"
        );
    }

    #[test]
    fn durable_bytes_at_the_end_of_the_run_are_judged_without_a_trace() {
        // n2's disk holds 700 bytes at the end; a client's entry is not a server's disk.
        let with_disk = |extra: &str| {
            let mut rec = with_ops(extra);
            rec.final_durable_bytes[1] = 700;
            let last = rec.final_durable_bytes.len() - 1;
            rec.final_durable_bytes[last] = 10_000;
            run(&rec)
        };
        let r = with_disk("durable_bytes_max = 700\n");
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["durable_bytes_max"], 700);
        let r = with_disk("durable_bytes_max = 699\n");
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("n2 at 10000.0ms"), "{r:?}");
        // An interval that ends before the run does not hold the end.
        let r = with_disk("durable_bytes_max = 699\nuntil = \"9s\"\n");
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn elections_are_new_terms_in_the_interval() {
        let mut rec = with_ops("elections_max = 1\nfrom = \"1s\"\nuntil = \"5s\"\n");
        assert_eq!(
            run(&rec).verdict,
            Verdict::Unknown,
            "no role observation: the protocol reports no terms"
        );
        observe(&mut rec, 100, 0, role(1));
        observe(&mut rec, 1500, 1, role(2));
        observe(&mut rec, 1600, 2, role(2)); // the same term again: no new election
        observe(&mut rec, 6000, 2, role(3)); // outside the interval
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["elections"], 1);
        observe(&mut rec, 4000, 0, role(4));
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(
            r.evidence[0].contains("term 2 at 1500.0ms, term 4 at 4000.0ms"),
            "{:?}",
            r.evidence
        );
    }

    #[test]
    fn durable_bytes_at_restarts_pass_fail_and_need_a_restart() {
        let mut rec = with_ops("durable_bytes_max = 500\n");
        traced(&mut rec);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        let mut rec = with_ops("durable_bytes_max = 499\n");
        traced(&mut rec);
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[0].contains("n2 at 2500.0ms"), "{:?}", r.evidence);
        // The only restart lies outside the interval.
        let mut rec = with_ops("durable_bytes_max = 499\nuntil = \"2s\"\n");
        traced(&mut rec);
        assert_eq!(run(&rec).verdict, Verdict::Unknown);
    }

    #[test]
    fn latency_mean_and_percentile_bounds_pass_and_fail() {
        // Answered latencies 10ms and 30ms (the info operation has none): mean 20ms, p50 10ms,
        // p99 30ms.
        let r = run(&with_ops(
            "latency_mean_max = \"20ms\"\nlatency_percentile_max = \"30ms\"\n",
        ));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        assert_eq!(r.metrics["latency_mean_ns"], 20_000_000u64);
        assert_eq!(r.metrics["answered_ops"], 2);
        let r = run(&with_ops("latency_mean_max = \"19ms\"\n"));
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        let r = run(&with_ops("latency_percentile_max = \"29ms\"\n"));
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        let r = run(&with_ops(
            "latency_percentile = 50\nlatency_percentile_max = \"10ms\"\n",
        ));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // Only the first operation lies in the interval.
        let r = run(&with_ops(
            "latency_mean_max = \"10ms\"\nuntil = \"1500ms\"\n",
        ));
        assert_eq!(r.verdict, Verdict::Pass, "{r:?}");
        // No answered operation in the interval: unknown, not pass.
        let r = run(&with_ops(
            "latency_mean_max = \"10ms\"\nfrom = \"2500ms\"\n",
        ));
        assert_eq!(r.verdict, Verdict::Unknown, "{r:?}");
    }

    #[test]
    fn a_failed_bound_outweighs_an_unknown_one() {
        let mut rec = with_ops("messages_per_op_max = 1\nelections_max = 0\n");
        rec.stats.messages_sent = 100;
        let r = run(&rec);
        assert_eq!(r.verdict, Verdict::Fail, "{r:?}");
        assert!(r.evidence[1].contains("unknown"), "{:?}", r.evidence);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&v, 50.0), Some(5));
        assert_eq!(percentile(&v, 90.0), Some(9));
        assert_eq!(percentile(&v, 99.0), Some(10));
        assert_eq!(percentile(&v, 100.0), Some(10));
        assert_eq!(percentile(&v, 0.1), Some(1));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
