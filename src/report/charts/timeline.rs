//! `node-timeline.svg`: one lane per node (servers in topology order, then the clients if the
//! run has few nodes), each a bar coloured by the node's `role` where a family's narrator tells
//! one (leader, follower, candidate; holder; healthy, ejected, ...), with the `term` written in a
//! leader's bars, above a strip coloured by its `status` (up, crashed, paused, told by
//! faultline). Network faults are bands across every lane, clock faults vertical lines.
//!
//! Colours are fixed for the values the families use and picked by a hash of the value for any
//! other, so a value has the same colour in every run. Lanes are drawn in pixels: a stretch
//! narrower than a pixel is widened to one, and one that falls wholly under an earlier stretch's
//! pixels is not drawn again, so a lane costs at most about one rectangle per pixel column.

use std::collections::BTreeMap;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::Chart;
use super::frame::{
    FONT, LegendEntry, MAX_LABEL_CHARS, Mark, Page, clean, color_of_name, fault_legend, run_end_ns,
    secs, shade_faults, shorten, time_chart,
};
use crate::family::StateChange;
use crate::report::view::{FaultSpan, RunView};

/// Most lanes drawn (the first nodes in topology order; the chart says how many were left out).
pub const MAX_TIMELINE_LANES: usize = 64;
/// Clients get lanes too when the run has at most this many nodes in all.
pub const MAX_NODES_WITH_CLIENTS: usize = 12;
/// Height of one lane (px).
const LANE_PX: u32 = 30;

/// A stretch of time during which a node's field held one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Start (ns).
    pub start_ns: u64,
    /// End (ns), after the start.
    pub end_ns: u64,
    /// The value (never empty: a field that no longer applies has no segment).
    pub value: String,
    /// For a `role` segment, the node's `term` during it (empty: unknown); a change of term
    /// starts a new segment.
    pub term: String,
}

/// One node's lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    /// The node.
    pub node: String,
    /// Its `status` over time.
    pub status: Vec<Segment>,
    /// Its `role` over time.
    pub role: Vec<Segment>,
}

/// The value a field has held since a time.
#[derive(Default)]
struct Held {
    value: String,
    term: String,
    since_ns: u64,
}

impl Held {
    /// The field takes `value` (with `term`) at `t_ns`: the stretch before it ends.
    fn change(&mut self, out: &mut Vec<Segment>, t_ns: u64, value: &str, term: &str) {
        if self.value == value && self.term == term {
            return;
        }
        self.close(out, t_ns);
        *self = Held {
            value: value.to_string(),
            term: term.to_string(),
            since_ns: t_ns,
        };
    }

    fn close(&self, out: &mut Vec<Segment>, t_ns: u64) {
        if !self.value.is_empty() && t_ns > self.since_ns {
            out.push(Segment {
                start_ns: self.since_ns,
                end_ns: t_ns,
                value: self.value.clone(),
                term: self.term.clone(),
            });
        }
    }
}

/// The lane of `node` from its state changes (in time order) up to `end_ns`.
pub fn lane<'c>(node: &str, changes: impl Iterator<Item = &'c StateChange>, end_ns: u64) -> Lane {
    let (mut status, mut role) = (Vec::new(), Vec::new());
    let (mut held_status, mut held_role) = (Held::default(), Held::default());
    let mut term = String::new();
    for c in changes {
        let t = c.t_ns.min(end_ns);
        match c.field.as_str() {
            "status" => held_status.change(&mut status, t, &c.value, ""),
            "role" => held_role.change(&mut role, t, &c.value, &term),
            "term" => {
                term = c.value.clone();
                let value = held_role.value.clone();
                held_role.change(&mut role, t, &value, &term);
            }
            _ => {}
        }
    }
    held_status.close(&mut status, end_ns);
    held_role.close(&mut role, end_ns);
    Lane {
        node: node.to_string(),
        status,
        role,
    }
}

/// The nodes that get lanes, and how many were left out.
fn lane_nodes<'v>(view: &'v RunView<'_>) -> (Vec<&'v str>, usize) {
    let mut nodes: Vec<&str> = view.servers().collect();
    if view.cast.len() <= MAX_NODES_WITH_CLIENTS {
        nodes.extend(view.clients());
    }
    let left_out = nodes.len().saturating_sub(MAX_TIMELINE_LANES);
    nodes.truncate(MAX_TIMELINE_LANES);
    (nodes, left_out)
}

/// The colour of a `status` value.
fn status_color(value: &str) -> RGBColor {
    match value {
        "up" => RGBColor(199, 233, 192),
        "crashed" => RGBColor(60, 60, 60),
        "paused" => RGBColor(148, 103, 189),
        other => color_of_name(other),
    }
}

/// The fixed colours of the `role` values the families tell, in legend order.
const ROLE_COLORS: [(&str, RGBColor); 15] = [
    ("leader", RGBColor(31, 119, 180)),
    ("follower", RGBColor(174, 199, 232)),
    ("candidate", RGBColor(255, 127, 14)),
    ("pre-candidate", RGBColor(255, 187, 120)),
    ("holder", RGBColor(44, 160, 44)),
    ("waiting", RGBColor(219, 219, 141)),
    ("released", RGBColor(199, 199, 199)),
    ("healthy", RGBColor(152, 223, 138)),
    ("unhealthy", RGBColor(255, 152, 150)),
    ("ejected", RGBColor(214, 39, 40)),
    ("breaker open", RGBColor(227, 119, 194)),
    ("breaker half-open", RGBColor(247, 182, 210)),
    ("registered", RGBColor(158, 218, 229)),
    ("expired", RGBColor(196, 156, 148)),
    ("proposer", RGBColor(23, 190, 207)),
];

/// The colour of a `role` value.
fn role_color(value: &str) -> RGBColor {
    ROLE_COLORS
        .iter()
        .find(|(v, _)| *v == value)
        .map_or_else(|| color_of_name(value), |(_, c)| *c)
}

/// Legend order of a value: the fixed ones first in their order, then the others by name.
fn legend_rank<'v>(value: &'v str, fixed: &[&str]) -> (usize, &'v str) {
    (
        fixed
            .iter()
            .position(|f| *f == value)
            .unwrap_or(fixed.len()),
        value,
    )
}

/// True for the faults drawn on the timeline: network faults as bands, clock faults as lines
/// (crashes and pauses show in the status strips).
fn on_timeline(f: &FaultSpan) -> bool {
    !matches!(f.kind.as_str(), "crash" | "pause")
}

/// `node-timeline.svg`, or `None` without a trace (then nothing is known of the nodes' states)
/// or without nodes.
pub fn node_timeline(view: &RunView) -> Option<Chart> {
    if !view.trace_available {
        return None;
    }
    let (nodes, left_out) = lane_nodes(view);
    if nodes.is_empty() {
        return None;
    }
    let end_ns = run_end_ns(view);
    let mut by_node: BTreeMap<&str, Vec<&StateChange>> = BTreeMap::new();
    for c in &view.narration.states {
        by_node.entry(c.node.as_str()).or_default().push(c);
    }
    let lanes: Vec<Lane> = nodes
        .iter()
        .map(|n| {
            let changes = by_node.get(n).map(|v| v.as_slice()).unwrap_or(&[]);
            lane(n, changes.iter().copied(), end_ns)
        })
        .collect();
    let with_roles = lanes.iter().any(|l| !l.role.is_empty());

    let mut page = Page::new(view, "node timeline");
    page.height = (38 + 17 * 2 + 50 + 14) + LANE_PX * lanes.len() as u32;
    if left_out > 0 {
        page.notes.push(format!(
            "the first {} nodes are shown, {left_out} more are left out",
            lanes.len()
        ));
    }
    if with_roles {
        page.notes.push(
            "the bar is the role (the term written in a leader's), the strip under it the status"
                .into(),
        );
    } else {
        page.notes
            .push("each node's status (no role was told for this run)".into());
    }
    let mut statuses: Vec<&str> = lanes
        .iter()
        .flat_map(|l| l.status.iter().map(|s| s.value.as_str()))
        .collect();
    statuses.sort_by_key(|v| legend_rank(v, &["up", "paused", "crashed"]));
    statuses.dedup();
    let role_order: Vec<&str> = ROLE_COLORS.iter().map(|(v, _)| *v).collect();
    let mut roles: Vec<&str> = lanes
        .iter()
        .flat_map(|l| l.role.iter().map(|s| s.value.as_str()))
        .collect();
    roles.sort_by_key(|v| legend_rank(v, &role_order));
    roles.dedup();
    for s in &statuses {
        page.legend
            .push(LegendEntry::new(s, status_color(s), Mark::Box));
    }
    for r in &roles {
        page.legend
            .push(LegendEntry::new(r, role_color(r), Mark::Box));
    }
    page.legend
        .extend(fault_legend(view.faults.iter().filter(|f| on_timeline(f))));

    let names: Vec<String> = lanes
        .iter()
        .map(|l| shorten(&clean(&l.node), MAX_LABEL_CHARS))
        .collect();
    let label_width = names
        .iter()
        .map(|n| n.chars().count() as u32 * 7 + 16)
        .max()
        .unwrap_or(40)
        .clamp(40, 200);
    let n = lanes.len() as f64;
    // The top 0.6 of a lane's height is left free for the fault labels.
    let top = n + 0.6;
    let svg = page.draw(|area| {
        let mut chart = time_chart(area, view, 0.0..top, None, label_width)?;
        let plot = chart.plotting_area().strip_coord_spec();
        let origin = plot.get_base_pixel();
        let px = |t_ns: u64, y: f64| {
            let (x, y) = chart.backend_coord(&(secs(t_ns), y));
            (x - origin.0, y - origin.1)
        };
        let name_font = (FONT, 15)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center));
        let term_font = (FONT, 13)
            .into_font()
            .color(&WHITE)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, lane) in lanes.iter().enumerate() {
            let base = n - 1.0 - i as f64;
            let (status_band, role_band) = if with_roles {
                ((base + 0.08, base + 0.3), (base + 0.38, base + 0.92))
            } else {
                ((base + 0.15, base + 0.85), (0.0, 0.0))
            };
            let (_, name_y) = px(0, base + 0.5);
            plot.draw_text(&names[i], &name_font, (-8, name_y))?;
            let mut drawn_to = i32::MIN;
            for s in &lane.status {
                if let Some(rect) = pixels(&px, s, status_band, &mut drawn_to) {
                    plot.draw(&Rectangle::new(rect, status_color(&s.value).filled()))?;
                }
            }
            let mut drawn_to = i32::MIN;
            for s in &lane.role {
                let Some([(x0, y0), (x1, y1)]) = pixels(&px, s, role_band, &mut drawn_to) else {
                    continue;
                };
                plot.draw(&Rectangle::new(
                    [(x0, y0), (x1, y1)],
                    role_color(&s.value).filled(),
                ))?;
                if s.value == "leader" && !s.term.is_empty() {
                    let term = clean(&s.term);
                    let room = x1 - x0 - 6;
                    let text = [format!("term {term}"), term]
                        .into_iter()
                        .find(|t| 6 * t.chars().count() as i32 <= room);
                    if let Some(text) = text {
                        plot.draw_text(&text, &term_font, (x0 + 3, (y0 + y1) / 2))?;
                    }
                }
            }
        }
        shade_faults(
            &mut chart,
            view.faults.iter().filter(|f| on_timeline(f)),
            run_end_ns(view),
            (0.0, top),
        )?;
        Ok(())
    })?;
    Some(Chart {
        file_name: "node-timeline.svg".into(),
        title: "node timeline".into(),
        svg,
    })
}

/// The pixel rectangle of segment `s` in the band `(low, high)` of its lane, at least a pixel
/// wide, starting where the lane's earlier rectangles end (`drawn_to`); `None` if those already
/// cover it.
fn pixels(
    px: &impl Fn(u64, f64) -> (i32, i32),
    s: &Segment,
    (low, high): (f64, f64),
    drawn_to: &mut i32,
) -> Option<[(i32, i32); 2]> {
    let (x0, y0) = px(s.start_ns, high);
    let (x1, y1) = px(s.end_ns, low);
    let x1 = x1.max(x0 + 1);
    if x1 <= *drawn_to {
        return None;
    }
    let x0 = x0.max(*drawn_to);
    *drawn_to = x1;
    Some([(x0, y0), (x1, y1)])
}

#[cfg(test)]
mod tests {
    use super::super::test_views::*;
    use super::*;

    const MS: u64 = 1_000_000;

    fn segment(start_ns: u64, end_ns: u64, value: &str, term: &str) -> Segment {
        Segment {
            start_ns,
            end_ns,
            value: value.into(),
            term: term.into(),
        }
    }

    #[test]
    fn a_lane_splits_at_each_change_of_status_role_and_term() {
        let mut v = view(&["n1"], &[], 1_000);
        v.narration.set(100, "n1", "role", "follower");
        v.narration.set(200, "n1", "term", "2");
        v.narration.set(200, "n1", "role", "candidate");
        v.narration.set(300, "n1", "role", "leader");
        v.narration.set(500, "n1", "status", "crashed");
        v.narration.set(500, "n1", "role", "");
        v.narration.set(600, "n1", "status", "up");
        v.narration.set(700, "n1", "role", "follower");
        v.narration.set(800, "n1", "term", "3");
        let l = lane("n1", v.narration.states.iter(), 1_000);
        assert_eq!(
            l.status,
            [
                segment(0, 500, "up", ""),
                segment(500, 600, "crashed", ""),
                segment(600, 1_000, "up", "")
            ]
        );
        assert_eq!(
            l.role,
            [
                segment(100, 200, "follower", ""),
                segment(200, 300, "candidate", "2"),
                segment(300, 500, "leader", "2"),
                segment(700, 800, "follower", "2"),
                segment(800, 1_000, "follower", "3"),
            ]
        );
    }

    fn raft_view() -> RunView<'static> {
        let mut v = view(&["n1", "n2", "n3"], &["c1"], 10_000 * MS);
        for (t, node, field, value) in [
            (300, "n1", "role", "follower"),
            (300, "n2", "role", "follower"),
            (300, "n3", "role", "follower"),
            (400, "n2", "term", "1"),
            (400, "n2", "role", "candidate"),
            (410, "n2", "role", "leader"),
            (3_000, "n2", "status", "crashed"),
            (3_000, "n2", "role", ""),
            (3_500, "n1", "term", "2"),
            (3_500, "n1", "role", "leader"),
            (6_000, "n2", "status", "up"),
            (6_000, "n2", "role", "follower"),
            (7_000, "n3", "status", "paused"),
            (8_000, "n3", "status", "up"),
        ] {
            v.narration.set(t * MS, node, field, value);
        }
        v.narration.states.sort_by_key(|c| c.t_ns);
        v.faults.push(fault(
            "partition",
            "partition n1 | n2 n3",
            1_000 * MS,
            Some(2_000 * MS),
        ));
        v.faults
            .push(fault("crash", "crash n2", 3_000 * MS, Some(6_000 * MS)));
        v
    }

    #[test]
    fn lanes_show_roles_terms_statuses_and_partition_bands() {
        let v = raft_view();
        let svg = node_timeline(&v).unwrap().svg;
        let texts = texts(&svg);
        for t in [
            "n1",
            "n2",
            "n3",
            "c1",
            "term 1",
            "term 2",
            "leader",
            "follower",
            "candidate",
            "up",
            "crashed",
            "paused",
            "partition",
            "partition n1 | n2 n3",
        ] {
            assert!(texts.iter().any(|x| x == t), "{t} in {texts:?}");
        }
        assert!(
            !texts.iter().any(|x| x == "crash n2"),
            "crashes show as status, not as bands"
        );
        let leader_bars = count_filled(&svg, "rect", "#1F77B4");
        assert_eq!(
            leader_bars,
            2 + 1,
            "n2's and n1's leader bars and the legend's box"
        );
        assert_eq!(
            count_filled(&svg, "rect", "#3C3C3C"),
            1 + 1,
            "n2 crashed, and the legend"
        );
        let bands = parse(&svg)
            .descendants()
            .filter(|n| n.has_tag_name("rect") && n.attribute("opacity") == Some("0.13"))
            .count();
        assert_eq!(bands, 1, "the partition's band");
    }

    #[test]
    fn a_run_with_only_statuses_draws_status_lanes_and_no_role_legend() {
        let mut v = view(&["n1", "n2"], &[], 1_000 * MS);
        v.narration.set(100 * MS, "n1", "status", "paused");
        v.narration.set(200 * MS, "n1", "status", "up");
        let svg = node_timeline(&v).unwrap().svg;
        let texts = texts(&svg);
        assert!(
            texts.iter().any(|t| t.contains("no role was told")),
            "{texts:?}"
        );
        assert!(texts.iter().any(|t| t == "paused"));
        assert!(!texts.iter().any(|t| t == "leader"));
        // n1: up, paused, up; n2: up; and the two legend boxes.
        assert_eq!(count_filled(&svg, "rect", "#C7E9C0"), 3 + 1);
    }

    #[test]
    fn no_trace_no_timeline_and_lanes_are_bounded() {
        let mut v = view(&["n1"], &[], 1_000);
        v.trace_available = false;
        assert!(node_timeline(&v).is_none());
        let servers: Vec<String> = (0..MAX_TIMELINE_LANES + 6)
            .map(|i| format!("s{i}"))
            .collect();
        let names: Vec<&str> = servers.iter().map(String::as_str).collect();
        let v = view(&names, &["c1"], 1_000);
        let svg = node_timeline(&v).unwrap().svg;
        let texts = texts(&svg);
        assert!(
            texts.iter().any(|t| t.contains("6 more are left out")),
            "{texts:?}"
        );
        assert!(
            !texts.iter().any(|t| t == "c1"),
            "clients of a big run get no lane"
        );
        assert!(!texts.iter().any(|t| t == &format!("s{MAX_TIMELINE_LANES}")));
    }

    #[test]
    fn many_short_segments_cost_at_most_a_rectangle_per_pixel() {
        let mut v = view(&["n1"], &[], 10_000 * MS);
        for i in 0..100_000u64 {
            let role = if i % 2 == 0 { "leader" } else { "candidate" };
            v.narration.set(i * 100_000, "n1", "role", role);
        }
        let svg = node_timeline(&v).unwrap().svg;
        let rects = parse(&svg)
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .count();
        assert!(rects < 2_000, "{rects} rectangles");
    }

    #[test]
    fn role_colours_are_fixed_for_known_values_and_stable_for_others() {
        assert_eq!(role_color("leader"), RGBColor(31, 119, 180));
        assert_eq!(role_color("quorum-lost"), color_of_name("quorum-lost"));
        let mut values = vec!["zeta", "leader", "alpha", "follower"];
        let order: Vec<&str> = ROLE_COLORS.iter().map(|(v, _)| *v).collect();
        values.sort_by_key(|v| legend_rank(v, &order));
        assert_eq!(values, ["leader", "follower", "alpha", "zeta"]);
    }
}
