//! The family charts: one per distinct [`Sample::chart`] title of the view's narration, one line
//! per series, faults shaded. Samples are told at changes (a commit index) or at intervals (a
//! p99 per second), so a series is drawn as steps: each value holds until the next one, the last
//! to the end of the run.

use std::collections::BTreeMap;

use plotters::prelude::*;

use super::Chart;
use super::frame::{
    LegendEntry, Mark, Page, fault_legend, run_end_ns, secs, series_color, shade_faults, time_chart,
};
use crate::family::Sample;
use crate::report::view::RunView;

/// Most family charts drawn (the first titles in order; the rest are left out).
pub const MAX_FAMILY_CHARTS: usize = 16;
/// Most points drawn per series: a longer series keeps every k-th sample and its last.
pub const MAX_SERIES_POINTS: usize = 5_000;

/// The file name of a chart titled `title`: lowercase letters and digits, each other run of
/// characters one `-` (`p99 latency (ms)` gives `p99-latency-ms.svg`); `chart.svg` if nothing is
/// left. A name in `taken` gets `-2`, `-3`, ... added.
pub fn file_name(title: &str, taken: &[String]) -> String {
    let mut stem = String::new();
    for c in title.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            stem.push(c);
        } else if !stem.is_empty() && !stem.ends_with('-') {
            stem.push('-');
        }
    }
    let stem = stem.trim_end_matches('-');
    let stem = if stem.is_empty() { "chart" } else { stem };
    let mut name = format!("{stem}.svg");
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{stem}-{n}.svg");
        n += 1;
    }
    name
}

/// The family charts, by title, with file names not in `taken`.
pub fn family_charts(view: &RunView, taken: &[String]) -> Vec<Chart> {
    let mut by_chart: BTreeMap<&str, BTreeMap<&str, Vec<&Sample>>> = BTreeMap::new();
    for s in &view.narration.samples {
        if s.value.is_finite() {
            by_chart
                .entry(s.chart.as_str())
                .or_default()
                .entry(s.series.as_str())
                .or_default()
                .push(s);
        }
    }
    let mut taken = taken.to_vec();
    let mut charts = Vec::new();
    for (title, series) in by_chart.into_iter().take(MAX_FAMILY_CHARTS) {
        let file_name = file_name(title, &taken);
        if let Some(svg) = draw(view, title, &series) {
            taken.push(file_name.clone());
            charts.push(Chart {
                file_name,
                title: title.to_string(),
                svg,
            });
        }
    }
    charts
}

fn draw(view: &RunView, title: &str, series: &BTreeMap<&str, Vec<&Sample>>) -> Option<String> {
    let end_ns = run_end_ns(view);
    let mut page = Page::new(view, title);
    let mut thinned = false;
    // Steps of each series: (time in s, value).
    let lines: Vec<(RGBColor, Vec<(f64, f64)>)> = series
        .values()
        .enumerate()
        .map(|(i, samples)| {
            let k = samples.len().div_ceil(MAX_SERIES_POINTS).max(1);
            thinned |= k > 1;
            let kept: Vec<&Sample> = samples
                .iter()
                .enumerate()
                .filter(|(j, _)| j % k == 0 || *j == samples.len() - 1)
                .map(|(_, s)| *s)
                .collect();
            let mut steps = Vec::with_capacity(kept.len() * 2 + 1);
            for (j, s) in kept.iter().enumerate() {
                let until = kept.get(j + 1).map_or(end_ns.max(s.t_ns), |n| n.t_ns);
                steps.push((secs(s.t_ns), s.value));
                steps.push((secs(until), s.value));
            }
            (series_color(i), steps)
        })
        .collect();
    if thinned {
        page.notes.push(format!(
            "series longer than {MAX_SERIES_POINTS} samples are thinned to every k-th sample"
        ));
    }
    for ((name, _), (color, _)) in series.iter().zip(&lines) {
        page.legend.push(LegendEntry::new(name, *color, Mark::Line));
    }
    page.legend.extend(fault_legend(view.faults.iter()));
    let (lo, hi) = lines
        .iter()
        .flat_map(|(_, l)| l.iter().map(|p| p.1))
        .fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let pad = ((hi - lo) * 0.08).max(if hi == lo { 1.0 } else { 0.0 });
    let (lo, hi) = (if lo < 0.0 { lo - pad } else { lo }, hi + pad);
    page.draw(|area| {
        let mut chart = time_chart(area, view, lo..hi, Some(title), 70)?;
        shade_faults(&mut chart, view.faults.iter(), run_end_ns(view), (lo, hi))?;
        for (color, steps) in &lines {
            chart.draw_series(LineSeries::new(
                steps.iter().copied(),
                color.stroke_width(2),
            ))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_views::*;
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn file_names_come_from_titles_and_never_collide() {
        let none: Vec<String> = Vec::new();
        assert_eq!(file_name("commit index", &none), "commit-index.svg");
        assert_eq!(file_name("load share (%)", &none), "load-share.svg");
        assert_eq!(file_name("p99 latency (ms)", &none), "p99-latency-ms.svg");
        assert_eq!(file_name("(%)", &none), "chart.svg");
        assert_eq!(file_name("Ünïcode <b> & Co", &none), "n-code-b-co.svg");
        let taken = vec!["latency.svg".to_string(), "latency-2.svg".to_string()];
        assert_eq!(file_name("Latency", &taken), "latency-3.svg");
        for title in ["x", "a  b", "--", "ÄÖÜ", "p99 (ms)"] {
            assert!(crate::report::output::is_chart_file_name(&file_name(
                title, &none
            )));
        }
    }

    #[test]
    fn one_chart_per_title_one_line_per_series() {
        let mut v = view(&["b1", "b2"], &[], 3_000 * MS);
        for (t, series, value) in [
            (0, "b1", 50.0),
            (0, "b2", 50.0),
            (1_000, "b1", 70.0),
            (1_000, "b2", 30.0),
        ] {
            v.narration.sample(t * MS, "load share (%)", series, value);
        }
        v.narration
            .sample(1_000 * MS, "p99 latency (ms)", "b1", 12.0);
        v.narration.sample(1_000 * MS, "latency", "b1", 1.0);
        let charts = family_charts(&v, &["latency.svg".to_string()]);
        let names: Vec<&str> = charts.iter().map(|c| c.file_name.as_str()).collect();
        assert_eq!(
            names,
            ["latency-2.svg", "load-share.svg", "p99-latency-ms.svg"]
        );
        let share = &charts[1].svg;
        let lines = parse(share)
            .descendants()
            .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
            .count();
        assert_eq!(lines, 2 + 2, "a line per backend and its legend mark");
        let texts = texts(share);
        for t in ["b1", "b2", "load share (%)"] {
            assert!(texts.iter().any(|x| x == t), "{t} in {texts:?}");
        }
    }

    #[test]
    fn user_strings_are_escaped_and_control_characters_removed() {
        let mut v = view(&["n<1>&\"x\""], &[], 1_000 * MS);
        v.report["scenario_name"] = "<script>alert('x')</script> & co\u{7}".into();
        v.narration
            .sample(0, "load <share> & (%)", "b<1>&\u{1}", 1.0);
        v.narration.set(100, "n<1>&\"x\"", "role", "lea<der>&");
        v.faults.push(fault(
            "partition",
            "partition n<1> | &",
            10 * MS,
            Some(20 * MS),
        ));
        crate::report::charts::test_views::op(
            &mut v,
            1,
            0,
            Some((MS, crate::history::EventType::Ok)),
        );
        let charts = crate::report::charts::render(&v);
        assert_eq!(charts.len(), 4);
        for c in &charts {
            assert!(!c.svg.contains("<script"), "{}", c.file_name);
            let texts = texts(&c.svg);
            assert!(
                texts
                    .iter()
                    .any(|t| t.contains("<script>alert('x')</script> & co ")),
                "{texts:?}"
            );
        }
        let all: Vec<String> = charts.iter().flat_map(|c| texts(&c.svg)).collect();
        for t in ["b<1>&", "n<1>&\"x\"", "lea<der>&", "partition n<1> | &"] {
            assert!(all.iter().any(|x| x == t), "{t} in {all:?}");
        }
        assert_eq!(charts[3].file_name, "load-share.svg");
    }

    #[test]
    fn a_value_holds_until_the_next_sample_and_the_last_to_the_end() {
        let mut v = view(&["n1"], &[], 4_000 * MS);
        v.narration.sample(1_000 * MS, "commit index", "n1", 5.0);
        v.narration.sample(2_000 * MS, "commit index", "n1", 9.0);
        let svg = &family_charts(&v, &[])[0].svg;
        let doc = parse(svg);
        // The last such line: the legend's mark is drawn before the plot.
        let line = doc
            .descendants()
            .rfind(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
            .unwrap();
        let points: Vec<&str> = line
            .attribute("points")
            .unwrap()
            .split_whitespace()
            .collect();
        assert_eq!(points.len(), 4, "{points:?}");
        let y = |p: &str| p.split(',').nth(1).unwrap().to_string();
        assert_eq!(y(points[0]), y(points[1]));
        assert_eq!(y(points[2]), y(points[3]));
        assert_ne!(y(points[1]), y(points[2]));
    }
}
