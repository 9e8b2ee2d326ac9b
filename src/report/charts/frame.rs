//! What every chart shares: the page (title, notes, a legend on the right), the time axis, the
//! fault shading, the colours, and cleaning strings from scenarios.

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::report::view::{FaultSpan, RunView};

/// A drawing area of an SVG page in pixels.
pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// What drawing on an SVG page can return.
pub(crate) type Drawn<T = ()> = Result<T, DrawingAreaErrorKind<std::io::Error>>;
/// A chart whose x axis is simulated time in seconds.
pub(crate) type TimeChart<'a, 'b, Y> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>;

/// Page width (px).
pub(crate) const WIDTH: u32 = 1000;
/// Page height of the charts with one plot (px).
pub(crate) const HEIGHT: u32 = 400;
/// Width of the legend column on the right (px).
const LEGEND_WIDTH: u32 = 190;
/// Longest text of a legend entry or a fault label (chars), longer ones end in `…`.
pub(crate) const MAX_LABEL_CHARS: usize = 26;
/// The font (a generic family: the viewer picks it, nothing is loaded at run time).
pub(crate) const FONT: &str = "sans-serif";
/// The x axis caption.
pub(crate) const TIME_AXIS: &str = "simulated time (s)";

/// The colours of the three outcomes.
pub(crate) const OK_COLOR: RGBColor = RGBColor(44, 160, 44);
pub(crate) const FAIL_COLOR: RGBColor = RGBColor(214, 39, 40);
pub(crate) const INFO_COLOR: RGBColor = RGBColor(255, 127, 14);

/// How a legend entry is marked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A dot (points).
    Dot,
    /// A short line (series).
    Line,
    /// A filled box (bars, shading), drawn with the colour's own opacity.
    Box,
}

/// One entry of a legend.
#[derive(Clone, Debug)]
pub(crate) struct LegendEntry {
    pub label: String,
    pub color: RGBAColor,
    pub mark: Mark,
}

impl LegendEntry {
    pub(crate) fn new(label: impl AsRef<str>, color: impl Color, mark: Mark) -> Self {
        LegendEntry {
            label: shorten(&clean(label.as_ref()), MAX_LABEL_CHARS),
            color: color.to_rgba(),
            mark,
        }
    }
}

/// A chart's page: title, notes under it, the legend on the right.
pub(crate) struct Page {
    pub title: String,
    pub notes: Vec<String>,
    pub legend: Vec<LegendEntry>,
    pub height: u32,
}

impl Page {
    /// A page of [`HEIGHT`] titled `what` for the run of `view` ("latency · scenario (seed 7)").
    pub(crate) fn new(view: &RunView, what: &str) -> Self {
        let scenario = view.report["scenario_name"].as_str().unwrap_or("run");
        let seed = view.report["seed"]
            .as_u64()
            .map(|s| format!(" (seed {s})"))
            .unwrap_or_default();
        let mut notes = Vec::new();
        if !view.trace_available {
            notes.push("no trace was kept: faults are not shown".to_string());
        } else if view.trace_truncated {
            notes.push(
                "the trace was truncated: faults and states are known only up to its end"
                    .to_string(),
            );
        }
        Page {
            title: clean(&format!("{what} · {}{seed}", shorten(scenario, 60))),
            notes,
            legend: Vec::new(),
            height: HEIGHT,
        }
    }

    /// Draws the page and, with `plot`, the chart into the area left of the legend; returns the
    /// SVG document. Plotters cannot fail on a string target but for a layout that does not
    /// fit; then the chart is left out (and a debug build stops, for the tests to see it).
    pub(crate) fn draw(&self, plot: impl FnOnce(&Area) -> Drawn) -> Option<String> {
        let mut svg = String::new();
        let result = (|| -> Drawn {
            let root = SVGBackend::with_string(&mut svg, (WIDTH, self.height)).into_drawing_area();
            root.fill(&WHITE)?;
            root.draw_text(
                &self.title,
                &(FONT, 22).into_font().style(FontStyle::Bold).color(&BLACK),
                (12, 8),
            )?;
            for (i, note) in self.notes.iter().enumerate() {
                root.draw_text(
                    &clean(note),
                    &(FONT, 15).into_font().color(&RGBColor(90, 90, 90)),
                    (12, 34 + 17 * i as i32),
                )?;
            }
            let top = 38 + 17 * self.notes.len() as i32;
            let body = root.margin(top, 0, 0, 0);
            let (chart, legend) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
            draw_legend(&legend, &self.legend)?;
            plot(&chart)?;
            root.present()
        })();
        match result {
            Ok(()) => Some(svg),
            Err(e) => {
                debug_assert!(false, "a chart could not be drawn: {e:?}");
                None
            }
        }
    }
}

fn draw_legend(area: &Area, entries: &[LegendEntry]) -> Drawn {
    const ROW: i32 = 18;
    let font = (FONT, 15).into_font().color(&BLACK);
    let (_, height) = area.dim_in_pixel();
    let rows = ((height as i32 - 30) / ROW).max(1) as usize;
    let shown = if entries.len() > rows {
        rows - 1
    } else {
        entries.len()
    };
    for (i, e) in entries.iter().take(shown).enumerate() {
        let y = 14 + ROW * i as i32;
        let mark_style = ShapeStyle::from(&e.color).filled();
        match e.mark {
            Mark::Dot => area.draw(&Circle::new((16, y + 7), 4, mark_style))?,
            Mark::Line => area.draw(&PathElement::new(
                vec![(6, y + 7), (26, y + 7)],
                ShapeStyle::from(&e.color).stroke_width(2),
            ))?,
            Mark::Box => area.draw(&Rectangle::new([(6, y + 1), (26, y + 13)], mark_style))?,
        }
        area.draw_text(&e.label, &font, (32, y))?;
    }
    if shown < entries.len() {
        let y = 14 + ROW * shown as i32;
        area.draw_text(&format!("+{} more", entries.len() - shown), &font, (32, y))?;
    }
    Ok(())
}

/// `s` without control characters (which XML cannot carry), each replaced by a space.
/// Plotters escapes `<`, `>`, `&` and quotes itself.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut to `max` characters, ending in `…` if it was longer.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// A number for an axis label: at most three decimals, no trailing zeros (`0.25`, `3`, `1200`).
pub(crate) fn number_label(v: &f64) -> String {
    let s = format!("{:.3}", v);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// Seconds from nanoseconds.
pub(crate) fn secs(t_ns: u64) -> f64 {
    t_ns as f64 / 1e9
}

/// The end of the time axis of a run (ns): its end, or its last history event if later, and at
/// least 1 ms.
pub(crate) fn run_end_ns(view: &RunView) -> u64 {
    let last_event = crate::history::Events::last_event(&*view.history).map_or(0, |e| e.time_ns);
    view.end_ns.max(last_event).max(1_000_000)
}

/// Builds the chart of a plot area with time across and `y` up, and draws its axes (`y_desc`
/// `None`: the y axis has no ticks, labels or grid, its caller labels it).
pub(crate) fn time_chart<'a, 'b, Y>(
    area: &'a Area<'b>,
    view: &RunView,
    y: Y,
    y_desc: Option<&str>,
    y_label_width: u32,
) -> Drawn<TimeChart<'a, 'b, Y::CoordDescType>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .margin_top(6)
        .margin_right(12)
        .x_label_area_size(44)
        .y_label_area_size(y_label_width)
        .build_cartesian_2d(0.0..secs(run_end_ns(view)), y)?;
    let mut mesh = chart.configure_mesh();
    match y_desc {
        Some(desc) => mesh.y_desc(clean(desc)),
        None => mesh.y_labels(0).disable_y_mesh(),
    };
    mesh.x_desc(TIME_AXIS)
        .x_label_formatter(&number_label)
        .y_label_formatter(&number_label)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(240, 240, 240))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()?;
    Ok(chart)
}

/// The fault kinds in legend order, with their legend text and colour.
const FAULT_KINDS: [(&str, &str, RGBColor); 8] = [
    ("partition", "partition", RGBColor(230, 170, 0)),
    ("isolate", "isolate", RGBColor(230, 170, 0)),
    ("cut", "cut links", RGBColor(23, 190, 207)),
    ("degrade", "degraded link", RGBColor(188, 189, 34)),
    ("crash", "crash", RGBColor(90, 90, 90)),
    ("pause", "pause", RGBColor(148, 103, 189)),
    ("clock-jump", "clock jump", RGBColor(140, 86, 75)),
    ("clock-drift", "clock drift", RGBColor(227, 119, 194)),
];
/// Opacity of fault shading.
const SHADE_OPACITY: f64 = 0.13;

fn fault_color(kind: &str) -> RGBColor {
    FAULT_KINDS
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or(RGBColor(127, 127, 127), |(_, _, c)| *c)
}

/// True for a fault that happens at an instant (a clock jump or a change of drift).
fn is_instant(f: &FaultSpan) -> bool {
    f.end_ns == Some(f.start_ns)
}

/// Legend entries for the kinds among `faults`.
pub(crate) fn fault_legend<'f>(
    faults: impl Iterator<Item = &'f FaultSpan> + Clone,
) -> Vec<LegendEntry> {
    FAULT_KINDS
        .iter()
        .filter(|(kind, _, _)| faults.clone().any(|f| f.kind == *kind))
        .map(|(kind, text, color)| {
            if kind.starts_with("clock") {
                LegendEntry::new(text, *color, Mark::Line)
            } else {
                LegendEntry::new(text, color.mix(SHADE_OPACITY * 2.0), Mark::Box)
            }
        })
        .collect()
}

/// Shades each fault of `faults` over the whole height of `chart` (`y`: its low and high
/// values), an instant as a vertical line, and labels them along the top where there is room
/// (three rows; a label that fits in none is left out, the legend still names its kind).
pub(crate) fn shade_faults<'f, Y: Ranged<ValueType = f64>>(
    chart: &mut TimeChart<'_, '_, Y>,
    faults: impl Iterator<Item = &'f FaultSpan>,
    end_ns: u64,
    y: (f64, f64),
) -> Drawn {
    const ROWS: usize = 3;
    const CHAR_PX: i32 = 6;
    let mut row_end_px = [i32::MIN; ROWS];
    let label_font = (FONT, 13).into_font().color(&RGBColor(60, 60, 60));
    for f in faults {
        let color = fault_color(&f.kind);
        let (start, end) = (secs(f.start_ns), secs(f.end_ns.unwrap_or(end_ns)));
        if is_instant(f) {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(start, y.0), (start, y.1)],
                color.stroke_width(1),
            )))?;
        } else {
            chart.draw_series(std::iter::once(Rectangle::new(
                [(start, y.0), (end, y.1)],
                color.mix(SHADE_OPACITY).filled(),
            )))?;
        }
        let label = shorten(&clean(&f.label), MAX_LABEL_CHARS);
        let x_px = chart.backend_coord(&(start, y.1)).0;
        let width_px = CHAR_PX * label.chars().count() as i32 + 4;
        if let Some(row) = row_end_px.iter().position(|&e| e < x_px) {
            row_end_px[row] = x_px + width_px;
            chart.draw_series(std::iter::once(
                EmptyElement::at((start, y.1))
                    + Text::new(label, (3, 3 + 13 * row as i32), label_font.clone()),
            ))?;
        }
    }
    Ok(())
}

/// Ten colours that tell apart (Tableau's 10, as in matplotlib).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A colour for a name no fixed map knows, the same for the same name in every run: picked from
/// a palette by an FNV-1a hash of its bytes.
pub(crate) fn color_of_name(name: &str) -> RGBColor {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    PALETTE[(hash % PALETTE.len() as u64) as usize]
}

/// The `i`-th colour of the series palette (series of one chart get distinct colours while
/// there are fewer than ten).
pub(crate) fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_removes_control_characters_and_shorten_marks_the_cut() {
        assert_eq!(clean("a\u{1}b\nc"), "a b c");
        assert_eq!(shorten("abcdef", 4), "abc…");
        assert_eq!(shorten("abc", 4), "abc");
    }

    #[test]
    fn number_labels_have_no_float_noise() {
        assert_eq!(number_label(&0.30000000000000004), "0.3");
        assert_eq!(number_label(&2.0), "2");
        assert_eq!(number_label(&-0.0001), "0");
        assert_eq!(number_label(&1200.5), "1200.5");
    }

    #[test]
    fn a_name_gets_the_same_colour_whatever_else_is_drawn() {
        assert_eq!(color_of_name("breaker open"), color_of_name("breaker open"));
        assert_ne!(color_of_name("a"), color_of_name("b"));
    }
}
