//! Charts of a run, drawn with `plotters` as SVG files written beside `report.json`.

use crate::report::view::RunView;

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

/// Every chart of the run `view` shows.
pub fn render(_view: &RunView) -> Vec<Chart> {
    Vec::new()
}
