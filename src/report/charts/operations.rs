//! `latency.svg` and `throughput.svg`: the client history over time, faults shaded.
//!
//! An operation is an invoke and the next completion of the same process (a process has at
//! most one operation outstanding). An invoke with no completion by the end of the history is
//! pending: its outcome is unknown (`info`), and the latency chart draws it with the latency it
//! had reached when the run ended.

use std::collections::BTreeMap;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use super::frame::{
    Area, Drawn, FAIL_COLOR, INFO_COLOR, LegendEntry, Mark, OK_COLOR, Page, fault_legend,
    run_end_ns, secs, shade_faults, time_chart,
};
use super::{Chart, MAX_LATENCY_POINTS};
use crate::history::EventType;
use crate::report::view::RunView;

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// It took effect.
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// Unknown: completed as `info`, or still pending when the run ended.
    Info,
}

impl Outcome {
    /// All three, in drawing order (`ok` below, `fail` on top).
    const ALL: [Outcome; 3] = [Outcome::Ok, Outcome::Info, Outcome::Fail];

    fn index(self) -> usize {
        self as usize
    }

    fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Outcome::Ok => OK_COLOR,
            Outcome::Fail => FAIL_COLOR,
            Outcome::Info => INFO_COLOR,
        }
    }
}

/// One client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Operation {
    /// When it was invoked (ns).
    pub invoke_ns: u64,
    /// When it completed (ns); `None`: pending at the end of the run.
    pub complete_ns: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// The operations of the view's history, in completion order, then the pending ones in
/// invoke order.
pub fn operations(view: &RunView) -> Vec<Operation> {
    let mut open: BTreeMap<u64, u64> = BTreeMap::new();
    let mut done = Vec::new();
    for e in view.history.iter() {
        let outcome = match e.kind {
            EventType::Invoke => {
                open.insert(e.process, e.time_ns);
                continue;
            }
            EventType::Ok => Outcome::Ok,
            EventType::Fail => Outcome::Fail,
            EventType::Info => Outcome::Info,
        };
        if let Some(invoke_ns) = open.remove(&e.process) {
            done.push(Operation {
                invoke_ns,
                complete_ns: Some(e.time_ns),
                outcome,
            });
        }
    }
    let mut pending: Vec<Operation> = open
        .into_values()
        .map(|invoke_ns| Operation {
            invoke_ns,
            complete_ns: None,
            outcome: Outcome::Info,
        })
        .collect();
    pending.sort_by_key(|o| o.invoke_ns);
    done.extend(pending);
    done
}

/// Every how many operations of each outcome (indexed by [`Outcome`] order: ok, fail, info) one
/// is drawn so that at most `budget` are: all if they fit; otherwise failures and unknown
/// outcomes keep up to half the budget (all of them if they fit in it) and `ok` gets the rest.
pub fn strides(counts: [usize; 3], budget: usize) -> [usize; 3] {
    let kept = |n: usize, k: usize| n.div_ceil(k);
    let [ok, fail, info] = counts;
    let rare_budget = (budget / 2).max(1);
    let mut k_rare = (fail + info).div_ceil(rare_budget).max(1);
    // Rounding up per outcome can keep one more than the budget: take the next stride then.
    while kept(fail, k_rare) + kept(info, k_rare) > rare_budget {
        k_rare += 1;
    }
    let ok_budget = budget
        .saturating_sub(kept(fail, k_rare) + kept(info, k_rare))
        .max(1);
    let k_ok = ok.div_ceil(ok_budget).max(1);
    [k_ok, k_rare, k_rare]
}

/// `latency.svg`, or `None` if the history holds no operation.
pub fn latency(view: &RunView) -> Option<Chart> {
    let ops = operations(view);
    if ops.is_empty() {
        return None;
    }
    let end_ns = run_end_ns(view);
    let latency_ms =
        |o: &Operation| (o.complete_ns.unwrap_or(end_ns).saturating_sub(o.invoke_ns)) as f64 / 1e6;
    let mut counts = [0; 3];
    for o in &ops {
        counts[o.outcome.index()] += 1;
    }
    let stride = strides(counts, MAX_LATENCY_POINTS);
    let mut seen = [0; 3];
    // Points per outcome: (invoke time in s, latency in ms).
    let mut points: [Vec<(f64, f64)>; 3] = Default::default();
    for o in &ops {
        let i = o.outcome.index();
        if seen[i] % stride[i] == 0 {
            points[i].push((secs(o.invoke_ns), latency_ms(o)));
        }
        seen[i] += 1;
    }
    let pending = ops.iter().filter(|o| o.complete_ns.is_none()).count();

    let mut page = Page::new(view, "client operation latency");
    if stride.iter().any(|&k| k > 1) {
        let kept: usize = points.iter().map(Vec::len).sum();
        let thinned: Vec<String> = Outcome::ALL
            .iter()
            .filter(|o| stride[o.index()] > 1)
            .map(|o| format!("every {} {}", ordinal(stride[o.index()]), o.word()))
            .collect();
        page.notes.push(format!(
            "{kept} of {} operations drawn ({}; at most {MAX_LATENCY_POINTS} points)",
            ops.len(),
            thinned.join(", ")
        ));
    }
    for o in Outcome::ALL {
        let n = counts[o.index()];
        if n > 0 {
            let label = if o == Outcome::Info && pending > 0 {
                format!("info ({n}, {pending} pending)")
            } else {
                format!("{} ({n})", o.word())
            };
            page.legend
                .push(LegendEntry::new(label, o.color(), Mark::Dot));
        }
    }
    page.legend.extend(fault_legend(view.faults.iter()));

    let (lo, hi) = points
        .iter()
        .flatten()
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), &(_, ms)| {
            (if ms > 0.0 { lo.min(ms) } else { lo }, hi.max(ms))
        });
    let svg = if lo.is_finite() && hi / lo > 100.0 {
        page.notes.push("latency on a logarithmic scale".into());
        let (lo, hi) = (
            10f64.powf(lo.log10().floor()),
            10f64.powf(hi.log10().ceil()),
        );
        page.draw(|area| plot_points(area, view, (lo..hi).log_scale(), (lo, hi), &points))
    } else {
        let hi = if hi > 0.0 { hi * 1.08 } else { 1.0 };
        page.draw(|area| plot_points(area, view, 0.0..hi, (0.0, hi), &points))
    }?;
    Some(Chart {
        file_name: "latency.svg".into(),
        title: "client operation latency".into(),
        svg,
    })
}

fn plot_points<Y>(
    area: &Area,
    view: &RunView,
    y: Y,
    (lo, hi): (f64, f64),
    points: &[Vec<(f64, f64)>; 3],
) -> Drawn
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = time_chart(area, view, y, Some("latency (ms)"), 60)?;
    shade_faults(&mut chart, view.faults.iter(), run_end_ns(view), (lo, hi))?;
    for o in Outcome::ALL {
        let style = o.color().filled();
        chart.draw_series(
            points[o.index()]
                .iter()
                .map(|&(x, ms)| Circle::new((x, ms.clamp(lo, hi)), 2, style)),
        )?;
    }
    Ok(())
}

/// `2nd`, `3rd`, `10th`.
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// Bucket widths the throughput chart picks from (ms): the smallest that gives at most
/// [`MAX_BUCKETS`] buckets over the run.
const BUCKET_MS: [u64; 12] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 600_000, 3_600_000,
];
/// Most buckets of the throughput chart (it draws a step per bucket).
const MAX_BUCKETS: u64 = 150;

/// `throughput.svg`, or `None` if no operation completed.
pub fn throughput(view: &RunView) -> Option<Chart> {
    let ops = operations(view);
    let end_ns = run_end_ns(view);
    let bucket_ns = BUCKET_MS
        .iter()
        .map(|ms| ms * 1_000_000)
        .find(|b| end_ns.div_ceil(*b) <= MAX_BUCKETS)
        .unwrap_or(BUCKET_MS[BUCKET_MS.len() - 1] * 1_000_000);
    let buckets = end_ns.div_ceil(bucket_ns).max(1) as usize;
    let mut counts = vec![[0u64; 3]; buckets];
    let mut totals = [0u64; 3];
    for o in &ops {
        if let Some(t) = o.complete_ns {
            let b = ((t / bucket_ns) as usize).min(buckets - 1);
            counts[b][o.outcome.index()] += 1;
            totals[o.outcome.index()] += 1;
        }
    }
    if totals.iter().all(|&n| n == 0) {
        return None;
    }
    let per_second = 1e9 / bucket_ns as f64;
    let mut page = Page::new(view, "operations completed per second");
    page.notes.push(format!(
        "completions counted in {} buckets, shown per second",
        humantime::format_duration(std::time::Duration::from_nanos(bucket_ns))
    ));
    let drawn: Vec<Outcome> = Outcome::ALL
        .into_iter()
        .filter(|o| totals[o.index()] > 0)
        .collect();
    for o in &drawn {
        page.legend.push(LegendEntry::new(
            format!("{} ({})", o.word(), totals[o.index()]),
            o.color(),
            Mark::Line,
        ));
    }
    page.legend.extend(fault_legend(view.faults.iter()));
    let max_rate = counts.iter().flatten().copied().max().unwrap_or(0) as f64 * per_second;
    let hi = (max_rate * 1.1).max(1.0);
    let svg = page.draw(|area| {
        let mut chart = time_chart(area, view, 0.0..hi, Some("operations per second"), 60)?;
        shade_faults(&mut chart, view.faults.iter(), run_end_ns(view), (0.0, hi))?;
        for o in &drawn {
            // A step per bucket: the rate holds over the bucket's width.
            let steps = counts.iter().enumerate().flat_map(|(b, c)| {
                let rate = c[o.index()] as f64 * per_second;
                let start = secs(b as u64 * bucket_ns);
                let end = secs(((b as u64 + 1) * bucket_ns).min(end_ns));
                [(start, rate), (end, rate)]
            });
            chart.draw_series(LineSeries::new(steps, o.color().stroke_width(2)))?;
        }
        Ok(())
    })?;
    Some(Chart {
        file_name: "throughput.svg".into(),
        title: "operations completed per second".into(),
        svg,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_views::*;
    use super::*;

    const MS: u64 = 1_000_000;

    fn hex(c: RGBColor) -> String {
        format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
    }

    #[test]
    fn each_operation_is_one_point_coloured_by_its_outcome_and_pending_ones_are_info() {
        let mut v = view(&["n1"], &["c1"], 1_000 * MS);
        op(&mut v, 1, 10 * MS, Some((12 * MS, EventType::Ok)));
        op(&mut v, 1, 20 * MS, Some((25 * MS, EventType::Ok)));
        op(&mut v, 2, 30 * MS, Some((90 * MS, EventType::Fail)));
        op(&mut v, 3, 40 * MS, Some((900 * MS, EventType::Info)));
        op(&mut v, 4, 50 * MS, None);
        let ops = operations(&v);
        assert_eq!(ops.len(), 5);
        assert_eq!(
            ops[4],
            Operation {
                invoke_ns: 50 * MS,
                complete_ns: None,
                outcome: Outcome::Info
            }
        );
        let svg = latency(&v).unwrap().svg;
        assert_eq!(
            count_filled(&svg, "circle", &hex(OK_COLOR)),
            2 + 1,
            "two points and the legend's dot"
        );
        assert_eq!(count_filled(&svg, "circle", &hex(FAIL_COLOR)), 1 + 1);
        assert_eq!(count_filled(&svg, "circle", &hex(INFO_COLOR)), 2 + 1);
        let texts = texts(&svg);
        assert!(
            texts.iter().any(|t| t == "info (2, 1 pending)"),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t == "latency (ms)"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "simulated time (s)"), "{texts:?}");
    }

    #[test]
    fn latencies_spanning_decades_get_a_log_scale() {
        let mut v = view(&["n1"], &["c1"], 2_000 * MS);
        op(&mut v, 1, 0, Some((MS / 10, EventType::Ok)));
        op(&mut v, 1, 10 * MS, Some((1_010 * MS, EventType::Ok)));
        let svg = latency(&v).unwrap().svg;
        assert!(texts(&svg).iter().any(|t| t.contains("logarithmic")));
        let mut v = view(&["n1"], &["c1"], 2_000 * MS);
        op(&mut v, 1, 0, Some((5 * MS, EventType::Ok)));
        op(&mut v, 1, 10 * MS, Some((30 * MS, EventType::Ok)));
        let svg = latency(&v).unwrap().svg;
        assert!(!texts(&svg).iter().any(|t| t.contains("logarithmic")));
    }

    #[test]
    fn strides_bound_the_points_and_keep_failures_first() {
        assert_eq!(strides([100, 5, 5], 1_000), [1, 1, 1]);
        // 30,000 ok and 100 fail: every fail kept, ok thinned to the rest of the budget.
        let k = strides([30_000, 100, 0], 10_000);
        assert_eq!(k[1], 1);
        assert!(30_000usize.div_ceil(k[0]) + 100 <= 10_000);
        // Failures alone over half the budget are thinned too.
        let k = strides([50_000, 40_000, 20_000], 10_000);
        let kept =
            50_000usize.div_ceil(k[0]) + 40_000usize.div_ceil(k[1]) + 20_000usize.div_ceil(k[2]);
        assert!(kept <= 10_000, "{k:?} keeps {kept}");
        assert!(40_000usize.div_ceil(k[1]) + 20_000usize.div_ceil(k[2]) <= 5_000);
    }

    #[test]
    fn a_long_history_draws_at_most_the_point_bound_and_says_so() {
        let mut v = view(&["n1"], &["c1"], 100_000 * MS);
        for i in 0..30_000u64 {
            let outcome = if i % 1000 == 0 {
                EventType::Fail
            } else {
                EventType::Ok
            };
            op(&mut v, 1, i * 3 * MS, Some((i * 3 * MS + MS, outcome)));
        }
        let svg = latency(&v).unwrap().svg;
        let ok = count_filled(&svg, "circle", &hex(OK_COLOR)) - 1;
        let fail = count_filled(&svg, "circle", &hex(FAIL_COLOR)) - 1;
        assert_eq!(fail, 30, "every failure is kept");
        assert!(ok + fail <= MAX_LATENCY_POINTS, "{ok} + {fail} points");
        assert!(ok >= MAX_LATENCY_POINTS / 3, "{ok} ok points");
        let texts = texts(&svg);
        assert!(
            texts
                .iter()
                .any(|t| t.contains("of 30000 operations drawn") && t.contains("every 4th ok")),
            "{texts:?}"
        );
    }

    #[test]
    fn a_fault_is_shaded_and_labelled_and_a_clock_jump_is_a_line() {
        let mut v = view(&["n1", "n2"], &["c1"], 1_000 * MS);
        op(&mut v, 1, 10 * MS, Some((12 * MS, EventType::Ok)));
        v.faults.push(fault(
            "partition",
            "partition n1 | n2",
            100 * MS,
            Some(400 * MS),
        ));
        v.faults.push(fault("crash", "crash n2", 500 * MS, None));
        v.faults.push(fault(
            "clock-jump",
            "n1's clock jumps by +50.0 ms",
            600 * MS,
            Some(600 * MS),
        ));
        for svg in [latency(&v).unwrap().svg, throughput(&v).unwrap().svg] {
            let doc = parse(&svg);
            let shaded: Vec<_> = doc
                .descendants()
                .filter(|n| n.has_tag_name("rect") && n.attribute("opacity") == Some("0.13"))
                .collect();
            assert_eq!(shaded.len(), 2, "one rect per interval");
            let texts = texts(&svg);
            for label in [
                "partition n1 | n2",
                "crash n2",
                "partition",
                "crash",
                "clock jump",
            ] {
                assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
            }
            assert!(doc.descendants().any(|n| n.has_tag_name("polyline")
                && n.attribute("stroke") == Some("#8C564B")));
        }
    }

    #[test]
    fn throughput_counts_completions_per_second_by_outcome() {
        let mut v = view(&["n1"], &["c1"], 10_000 * MS);
        for i in 0..50u64 {
            op(
                &mut v,
                1,
                i * 20 * MS,
                Some((i * 20 * MS + MS, EventType::Ok)),
            );
        }
        op(&mut v, 2, 0, Some((5_000 * MS, EventType::Fail)));
        let chart = throughput(&v).unwrap();
        let texts = texts(&chart.svg);
        assert!(texts.iter().any(|t| t == "ok (50)"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "fail (1)"), "{texts:?}");
        assert!(texts.iter().any(|t| t == "operations per second"));
        assert!(
            texts.iter().any(|t| t.contains("100ms buckets")),
            "{texts:?}"
        );
        let lines = parse(&chart.svg)
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
            .count();
        assert_eq!(lines, 2 + 2, "ok and fail lines, and their legend marks");
        // Only pending operations: nothing completed, no chart.
        let mut v = view(&["n1"], &["c1"], 10_000 * MS);
        op(&mut v, 1, 0, None);
        assert!(throughput(&v).is_none());
        assert!(latency(&v).is_some());
    }
}
