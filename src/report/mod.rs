//! Reports: `report.json` (versioned schema), the run's files, and the terminal summary.
//!
//! A run's folder is replaced as a whole (written into a staging folder beside it, then renamed;
//! see [`output`]), so an interrupted run never leaves a half-written report or files of two
//! runs side by side. `report.json` is documented in
//! `docs/report-format.md`; bump [`SCHEMA_VERSION`] on any incompatible change.

pub mod charts;
pub mod html;
pub mod output;
pub mod view;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::{CheckResult, ms};
use crate::scenario::{Expect, Scenario, Verdict};
use crate::sim::{Halt, RunRecord, Stats};

pub use output::{OutputError, Staging, out_dir};

/// Version of the `report.json` schema.
pub const SCHEMA_VERSION: u32 = 1;

/// The contents of `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The faultline version that produced the run (part of the reproduction key).
    pub faultline_version: String,
    /// The scenario's name.
    pub scenario_name: String,
    /// The scenario file as given on the command line.
    pub scenario_file: String,
    /// The fully resolved scenario (every default filled in).
    pub scenario: serde_json::Value,
    /// Every node of the run in topology order (servers, then clients), with its role or client
    /// group and the protocol or workload it runs.
    pub nodes: Vec<crate::family::CastMember>,
    /// The seed of this run.
    pub seed: u64,
    /// The run's fingerprint: hex XXH3-128 of the canonical binary record of every trace line
    /// (see `sim::trace`); equal hashes mean equal `trace.jsonl` files.
    pub trace_hash: String,
    /// Lines in the trace.
    pub trace_lines: u64,
    /// True if the trace file holds fewer lines than were hashed (the byte cap was reached; the
    /// file then ends with a `trace-truncated` line). False if no trace was written.
    pub trace_truncated: bool,
    /// Event lines in `trace.jsonl` (`trace_lines` unless truncated; 0 if none was written).
    pub trace_lines_written: u64,
    /// Why `trace.jsonl` stopped short (the file could not be written, e.g. a full disk; the
    /// trace is then truncated without a `trace-truncated` line), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_write_error: Option<String>,
    /// False if no `trace.jsonl` was written (`run --no-trace`, `faultline test`).
    pub trace_written: bool,
    /// pass, fail or unknown (fail if any check failed; unknown if any could not decide).
    pub verdict: Verdict,
    /// Every check's result.
    pub checks: Vec<CheckResult>,
    /// Counters: messages sent, delivered, dropped by reason, faults applied, ...
    pub stats: Stats,
    /// Simulated time covered by the run, in nanoseconds.
    pub virtual_time_ns: u64,
    /// Wall-clock time of the run (simulation and checks), in milliseconds. Not deterministic.
    pub wall_time_ms: u64,
    /// Set if a process assertion stopped the run early.
    pub halt: Option<Halt>,
    /// The scenario's `[expect]` block and whether this run met it.
    pub expect: Expect,
    /// Why the run did not meet `[expect]` (empty: it did).
    pub expectation_problems: Vec<String>,
    /// The command that reproduces this run exactly.
    pub reproduce: String,
}

impl Report {
    /// Builds the report of a checked run.
    pub fn new(
        record: &RunRecord,
        checks: Vec<CheckResult>,
        scenario_file: &Path,
        wall_time_ms: u64,
    ) -> Report {
        let verdict = crate::check::overall(&checks);
        let expectation_problems = expectation_problems(&record.scenario.expect, verdict, &checks);
        Report {
            schema_version: SCHEMA_VERSION,
            faultline_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario_name: record.scenario.name.clone(),
            scenario_file: scenario_file.display().to_string(),
            scenario: resolved_scenario(&record.scenario),
            nodes: crate::family::CastMember::cast(&record.scenario, &record.topology),
            seed: record.seed,
            trace_hash: record.trace_hash.clone(),
            trace_lines: record.stats.trace_lines,
            trace_truncated: record.trace_truncated,
            trace_lines_written: record.trace_jsonl.lines_kept(),
            trace_write_error: record.trace_jsonl.write_error().map(str::to_string),
            trace_written: true,
            verdict,
            checks,
            stats: record.stats.clone(),
            virtual_time_ns: record.end_ns,
            wall_time_ms,
            halt: record.halt.clone(),
            expect: record.scenario.expect.clone(),
            expectation_problems,
            reproduce: reproduce_command(scenario_file, record.seed),
        }
    }

    /// Marks the report of a run whose trace is not written (it was only hashed).
    pub fn without_trace(mut self) -> Report {
        self.trace_written = false;
        self.trace_truncated = false;
        self.trace_lines_written = 0;
        self.trace_write_error = None;
        self
    }

    /// True if the run met its `[expect]` block.
    pub fn expectation_met(&self) -> bool {
        self.expectation_problems.is_empty()
    }
}

/// The scenario as JSON in its resolved form: every role and client group spelled out (the
/// shorthand forms turned into them) with every option's default filled in, and the `check`
/// tables as written.
pub fn resolved_scenario(scenario: &Scenario) -> serde_json::Value {
    serde_json::to_value(scenario).expect("scenarios serialize")
}

/// The command that reproduces a run.
pub fn reproduce_command(scenario_file: &Path, seed: u64) -> String {
    format!("faultline run {} --seed {seed}", scenario_file.display())
}

/// How a run differs from `[expect]`: the verdict, and each check listed in `failing_checks` that
/// did not fail. Empty if the expectation holds.
pub fn expectation_problems(
    expect: &Expect,
    verdict: Verdict,
    checks: &[CheckResult],
) -> Vec<String> {
    let mut problems = Vec::new();
    if verdict != expect.verdict {
        problems.push(format!(
            "expected verdict {}, got {}",
            verdict_word(expect.verdict),
            verdict_word(verdict)
        ));
    }
    for name in &expect.failing_checks {
        match checks.iter().find(|c| &c.name == name) {
            Some(c) if c.verdict == Verdict::Fail => {}
            Some(c) => problems.push(format!(
                "expected check {name} to fail, it returned {}",
                verdict_word(c.verdict)
            )),
            None => problems.push(format!("expected check {name} to fail, it did not run")),
        }
    }
    problems
}

/// `pass`, `fail` or `unknown`.
pub fn verdict_word(v: Verdict) -> &'static str {
    v.word()
}

/// Writes `history.jsonl`, `report.json`, (if `with_trace`) `trace.jsonl`, the charts and
/// `report.html` into the staging folder and moves it into place as a whole (see [`output`]).
/// `live` is the view built while the run went, if it was given a tap
/// ([`view::LiveView::start`]); without one (or if it does not fit the run) the view is built
/// from the trace. Returns the path of `report.json` under the target as given.
pub fn write_run(
    staging: Staging,
    report: &Report,
    record: &RunRecord,
    with_trace: bool,
    live: Option<view::LiveView>,
) -> Result<PathBuf, OutputError> {
    let trace_path = staging.file_path("trace.jsonl");
    match record.trace_jsonl.file() {
        // Streamed into place while the run went (see `sim::RunOptions::trace_file`).
        Some(file) if file == trace_path && with_trace => {}
        Some(file) if file == trace_path => {
            std::fs::remove_file(&trace_path).map_err(|source| OutputError::Io {
                action: "remove",
                path: trace_path.display().to_string(),
                source,
            })?;
        }
        Some(file) if with_trace => {
            std::fs::copy(file, &trace_path).map_err(|source| OutputError::Io {
                action: "write",
                path: trace_path.display().to_string(),
                source,
            })?;
        }
        _ if with_trace => staging.write("trace.jsonl", record.trace_jsonl.chunks())?,
        _ => {}
    }
    staging.write_with("history.jsonl", |out| {
        crate::history::write_jsonl(&record.history, out)
    })?;
    let mut json = serde_json::to_vec_pretty(report).expect("reports serialize");
    json.push(b'\n');
    staging.write("report.json", [json.as_slice()])?;
    let view = live
        .and_then(|live| {
            live.finish(
                serde_json::to_value(report).expect("reports serialize"),
                report.nodes.clone(),
                &record.history,
                !record.trace_jsonl.is_empty(),
            )
        })
        .unwrap_or_else(|| view_of_run(report, record));
    let charts = charts::render(&view);
    for chart in &charts {
        staging.write(&chart.file_name, [chart.svg.as_bytes()])?;
    }
    let page = html::render_run(&view, &charts, |o| view_of_run_with(report, record, o));
    staging.write("report.html", [page.as_bytes()])?;
    Ok(staging.commit()?.join("report.json"))
}

/// The view of a run that just finished (see [`view`]), from its record and report.
pub fn view_of_run<'r>(report: &Report, record: &'r RunRecord) -> view::RunView<'r> {
    view_of_run_with(report, record, &view::ViewOptions::default())
}

/// [`view_of_run`] with the messages `options` choose.
pub fn view_of_run_with<'r>(
    report: &Report,
    record: &'r RunRecord,
    options: &view::ViewOptions,
) -> view::RunView<'r> {
    let kept = !record.trace_jsonl.is_empty();
    view::RunView::build_with(
        &record.scenario.registry(),
        serde_json::to_value(report).expect("reports serialize"),
        report.nodes.clone(),
        &record.history,
        kept.then_some(|f: &mut dyn FnMut(&str)| record.trace_jsonl.for_each_line(f)),
        options,
    )
}

/// The terminal summary: verdict, each check, and for a failure the reproduction command.
pub fn summary(report: &Report, report_path: Option<&Path>) -> String {
    let mut out = String::new();
    let s = &report.stats;
    out.push_str(&format!(
        "faultline: {} (seed {})\n",
        report.scenario_name, report.seed
    ));
    out.push_str(&format!(
        "  verdict: {}    simulated {} in {} ms wall; {} messages sent, {} delivered, {} dropped\n",
        verdict_word(report.verdict).to_uppercase(),
        ms(report.virtual_time_ns),
        report.wall_time_ms,
        s.messages_sent,
        s.messages_delivered,
        s.messages_dropped.values().sum::<u64>()
    ));
    out.push_str("  checks:\n");
    let width = report
        .checks
        .iter()
        .map(|c| c.name.len())
        .max()
        .unwrap_or(0);
    for c in &report.checks {
        out.push_str(&format!(
            "    {:<7} {:<width$}  {}\n",
            verdict_word(c.verdict),
            c.name,
            c.summary
        ));
        if c.verdict != Verdict::Pass {
            for e in c.evidence.iter().take(5) {
                out.push_str(&format!("            {:<width$}  - {e}\n", ""));
            }
        }
    }
    out.push_str(&format!("  trace_hash: {}\n", report.trace_hash));
    if let Some(e) = &report.trace_write_error {
        out.push_str(&format!(
            "  TRACE TRUNCATED: trace.jsonl holds the first {} of {} lines: {e}; trace_hash \
             covers every line\n",
            report.trace_lines_written, report.trace_lines
        ));
    } else if report.trace_truncated {
        out.push_str(&format!(
            "  TRACE TRUNCATED: trace.jsonl holds the first {} of {} lines (the trace byte cap \
             was reached); trace_hash covers every line\n",
            report.trace_lines_written, report.trace_lines
        ));
    } else if !report.trace_written {
        out.push_str("  trace: not written\n");
    }
    if let Some(p) = report_path {
        out.push_str(&format!("  report: {}\n", p.display()));
        out.push_str(&format!(
            "  page:   {} (open it in a browser)\n",
            p.with_file_name("report.html").display()
        ));
    }
    if !report.expectation_met() {
        out.push_str(&format!(
            "  [expect] not met: {}\n",
            report.expectation_problems.join("; ")
        ));
    }
    if report.verdict != Verdict::Pass {
        out.push_str(&format!("  reproduce: {}\n", report.reproduce));
    }
    out
}
