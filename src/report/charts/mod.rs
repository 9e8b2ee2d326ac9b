//! Charts of a run, drawn with `plotters` as SVG files written beside `report.json`.
//!
//! [`render`] draws, from a [`RunView`], every chart it has data for (a chart without data is
//! left out rather than drawn empty):
//!
//! - `latency.svg` ([`operations`]): each client operation a point at its invoke time, its
//!   latency in ms up the side (a log scale when the latencies span more than two decades),
//!   coloured by outcome; at most [`MAX_LATENCY_POINTS`] points, thinned deterministically.
//! - `throughput.svg` ([`operations`]): operations completed per second by outcome.
//! - `node-timeline.svg` ([`timeline`]): one lane per node, coloured by its `status` and
//!   `role`, the `term` written in a leader's bars.
//! - one chart per distinct [`Sample::chart`](crate::family::Sample) title ([`samples`]), one
//!   line per series (`commit index` gives `commit-index.svg`).
//!
//! Every chart with a time axis shades the run's faults ([`RunView::faults`]). The charts are
//! deterministic (no clock, no hash order: the same view gives the same bytes) and need no font
//! at run time: plotters is built without its font backends, so it estimates text sizes and the
//! SVG names the generic `sans-serif` family for the viewer to draw. Every string from a scenario
//! (names, labels, series) goes through [`clean`] and plotters' XML escaping.

mod frame;
pub mod operations;
pub mod samples;
pub mod timeline;

pub use frame::clean;

use crate::report::view::RunView;

/// At most this many operations are drawn as points in `latency.svg`; on longer runs every k-th
/// of each outcome is drawn (failures and unknown outcomes kept first) and the chart says so.
pub const MAX_LATENCY_POINTS: usize = 10_000;

/// One chart: its file name in the report folder, its title, and the SVG text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chart {
    /// File name (`latency.svg`), see [`crate::report::output::is_chart_file_name`].
    pub file_name: String,
    /// Title, for the HTML report.
    pub title: String,
    /// The SVG document.
    pub svg: String,
}

/// Every chart of the run `view` shows, in a fixed order: `latency.svg`, `throughput.svg`,
/// `node-timeline.svg`, then the family charts by title. Charts without data are left out.
pub fn render(view: &RunView) -> Vec<Chart> {
    let mut charts: Vec<Chart> = [
        operations::latency(view),
        operations::throughput(view),
        timeline::node_timeline(view),
    ]
    .into_iter()
    .flatten()
    .collect();
    let taken: Vec<String> = charts.iter().map(|c| c.file_name.clone()).collect();
    charts.extend(samples::family_charts(view, &taken));
    charts
}

#[cfg(test)]
pub(crate) mod test_views {
    //! Hand-built views for the chart tests.

    use crate::family::{CastMember, Narration};
    use crate::history::{EventType, Function, HistoryEvent, Value};
    use crate::report::view::{FaultSpan, RunView};

    /// A view of a run of `end_ns` with these servers and clients and nothing else.
    pub fn view(servers: &[&str], clients: &[&str], end_ns: u64) -> RunView<'static> {
        let member = |name: &&str, client: bool| CastMember {
            name: name.to_string(),
            client,
            part: if client { "clients" } else { "raft" }.into(),
            runs: if client { "kv" } else { "raft" }.into(),
        };
        let cast: Vec<CastMember> = servers
            .iter()
            .map(|n| member(n, false))
            .chain(clients.iter().map(|n| member(n, true)))
            .collect();
        let mut narration = Narration::default();
        for m in &cast {
            narration.set(0, &m.name, "status", "up");
        }
        RunView {
            report: serde_json::json!({
                "scenario_name": "hand-built", "seed": 7, "virtual_time_ns": end_ns
            }),
            cast,
            history: Default::default(),
            end_ns,
            trace_available: true,
            trace_truncated: false,
            faults: Vec::new(),
            narration,
            messages: Vec::new(),
            messages_left_out: 0,
            messages_from_ns: 0,
            messages_until_ns: u64::MAX,
        }
    }

    /// Appends an operation of `process`: invoked at `invoke_ns`, completed with `outcome` at
    /// `complete_ns` (`None`: still pending at the end).
    pub fn op(
        view: &mut RunView,
        process: u64,
        invoke_ns: u64,
        complete: Option<(u64, EventType)>,
    ) {
        let event = |kind, time_ns, index| HistoryEvent {
            index,
            time_ns,
            process,
            node: format!("c{process}"),
            kind,
            f: Function::Put,
            key: Some("k".into()),
            value: Value::Int(1),
            error: None,
        };
        let index = crate::history::Events::len(&*view.history) as u64;
        view.history
            .to_mut()
            .push_event(event(EventType::Invoke, invoke_ns, index));
        if let Some((t, kind)) = complete {
            view.history.to_mut().push_event(event(kind, t, index + 1));
        }
    }

    /// A fault span.
    pub fn fault(kind: &str, label: &str, start_ns: u64, end_ns: Option<u64>) -> FaultSpan {
        FaultSpan {
            kind: kind.into(),
            fault_id: None,
            origin: "fault[0]".into(),
            label: label.into(),
            nodes: Vec::new(),
            start_ns,
            end_ns,
        }
    }

    /// Parses `svg` as XML (it must be well-formed) and returns it for queries.
    pub fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed XML: {e}"))
    }

    /// The text of every `<text>` element.
    pub fn texts(svg: &str) -> Vec<String> {
        parse(svg)
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .map(|n| n.text().unwrap_or("").trim().to_string())
            .collect()
    }

    /// Opaque elements with this tag and this fill colour (`#RRGGBB`).
    pub fn count_filled(svg: &str, tag: &str, fill: &str) -> usize {
        parse(svg)
            .descendants()
            .filter(|n| {
                n.has_tag_name(tag)
                    && n.attribute("fill") == Some(fill)
                    && n.attribute("opacity") == Some("1")
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::test_views::*;
    use super::*;
    use crate::history::EventType;
    use crate::report::output::is_chart_file_name;

    #[test]
    fn a_view_without_history_trace_or_samples_gives_no_chart() {
        let mut v = view(&["n1"], &[], 1_000_000_000);
        v.trace_available = false;
        assert!(render(&v).is_empty());
    }

    #[test]
    fn every_chart_has_a_chart_file_name_and_parses_as_xml() {
        let mut v = view(&["n1", "n2"], &["c1"], 2_000_000_000);
        op(&mut v, 1, 1_000, Some((2_000_000, EventType::Ok)));
        v.narration.sample(500_000_000, "commit index", "n1", 3.0);
        let charts = render(&v);
        let names: Vec<&str> = charts.iter().map(|c| c.file_name.as_str()).collect();
        assert_eq!(
            names,
            [
                "latency.svg",
                "throughput.svg",
                "node-timeline.svg",
                "commit-index.svg"
            ]
        );
        for c in &charts {
            assert!(is_chart_file_name(&c.file_name), "{}", c.file_name);
            let doc = parse(&c.svg);
            assert_eq!(doc.root_element().tag_name().name(), "svg");
            assert!(texts(&c.svg).iter().any(|t| t.contains("hand-built")));
        }
    }

    #[test]
    fn the_same_view_renders_to_the_same_bytes() {
        let mut v = view(&["n1", "n2", "n3"], &["c1", "c2"], 5_000_000_000);
        for i in 0..300u64 {
            let outcome = [EventType::Ok, EventType::Fail, EventType::Info][(i % 3) as usize];
            op(
                &mut v,
                i % 2,
                i * 10_000_000,
                Some((i * 10_000_000 + 3_000_000 + i * 1000, outcome)),
            );
        }
        v.faults.push(fault(
            "partition",
            "partition n1 | n2 n3",
            1_000_000_000,
            Some(2_000_000_000),
        ));
        v.narration.set(700_000_000, "n2", "role", "leader");
        v.narration.set(700_000_000, "n2", "term", "2");
        v.narration
            .sample(1_000_000_000, "commit index", "n2", 10.0);
        let first = render(&v);
        let second = render(&v.clone());
        assert_eq!(first.len(), 4);
        assert_eq!(first, second);
    }
}
