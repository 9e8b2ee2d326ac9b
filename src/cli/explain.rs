//! `faultline explain REPORT_DIR_OR_SCENARIO [--seed N] [--from T] [--to T] [--node N]...
//! [--kinds k1,k2] [--check NAME] [--messages]`: the story of a run, one line per event
//! (`  3.012 s  n2 times out in term 4 and starts PreVote`), from a report folder or from a
//! scenario run in memory (nothing written). See `docs/explain.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::Args;

use crate::check::run_checks;
use crate::cli::exit;
use crate::family::{StoryLine, seconds};
use crate::report::Report;
use crate::report::view::{MessageView, RunView, ViewOptions, cited_times_ns};
use crate::scenario::{Duration, Scenario};
use crate::sim::{self, RunOptions};

/// Arguments of `faultline explain`.
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A report folder written by `faultline run`, or a scenario file (run in memory, nothing
    /// written).
    pub target: PathBuf,
    /// Seed of the run (scenario files only; default: the scenario's `seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Start of the window shown (a duration such as `3s`, `500ms`; default: the start).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the window shown (a duration; default: the end of the run).
    #[arg(long)]
    pub to: Option<String>,
    /// Keep lines about this node (and lines about the whole run); repeatable.
    #[arg(long = "node", value_name = "NODE")]
    pub nodes: Vec<String>,
    /// Keep only lines of these topics (comma-separated: fault, node, client, message,
    /// election, log, commit, ...).
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    pub kinds: Vec<String>,
    /// Narrow the story to the times and nodes the check NAME cites in its evidence.
    #[arg(long, value_name = "NAME")]
    pub check: Option<String>,
    /// List each message (send, delivery or drop) instead of the per-interval summaries.
    #[arg(long)]
    pub messages: bool,
}

/// The story's topics faultline and the built-in narrators use (`docs/explain.md` lists them);
/// `--kinds` accepts these and any other topic the run's story uses.
pub const TOPICS: &[&str] = &[
    "fault", "node", "client", "message", "election", "log", "commit", "read", "gossip", "lock",
    "session", "registry", "quorum", "health", "breaker", "retry", "saga",
];

/// How far before a time a check cites `--check` keeps lines (ns): the events leading to it.
pub const CHECK_BEFORE_NS: u64 = 150_000_000;
/// How far after a cited time `--check` keeps lines (ns).
pub const CHECK_AFTER_NS: u64 = 5_000_000;
/// At most this many evidence items of a check are used by `--check` (the first ones).
pub const CHECK_EVIDENCE_USED: usize = 3;

/// Runs `faultline explain`; returns the exit code (0, or 2 for bad input).
pub fn explain(args: &ExplainArgs) -> u8 {
    match story(args) {
        Ok(text) => {
            print!("{text}");
            exit::PASS
        }
        Err(message) => {
            eprintln!("faultline explain: {message}");
            exit::BAD_INPUT
        }
    }
}

/// The whole output of `faultline explain`, or the error to print (exit 2).
pub fn story(args: &ExplainArgs) -> Result<String, String> {
    let from_ns = time_flag("--from", args.from.as_deref())?.unwrap_or(0);
    let to_ns = time_flag("--to", args.to.as_deref())?.unwrap_or(u64::MAX);
    if from_ns > to_ns {
        return Err(format!(
            "--from {} is after --to {}; expected a window that starts before it ends",
            args.from.as_deref().unwrap_or(""),
            args.to.as_deref().unwrap_or("")
        ));
    }
    let options = ViewOptions {
        messages_from_ns: from_ns,
        messages_until_ns: to_ns.saturating_add(1),
        ..ViewOptions::default()
    };
    let view = load(args, &options)?;
    let names: BTreeSet<&str> = view.cast.iter().map(|m| m.name.as_str()).collect();
    for n in &args.nodes {
        if !names.contains(n.as_str()) {
            return Err(format!(
                "--node {n}: no such node in this run; expected one of {}",
                view.cast
                    .iter()
                    .map(|m| m.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let known: BTreeSet<&str> = TOPICS
        .iter()
        .copied()
        .chain(view.narration.lines.iter().map(|l| l.topic.as_str()))
        .collect();
    for k in &args.kinds {
        if !known.contains(k.as_str()) {
            return Err(format!(
                "--kinds {k}: no such topic; expected some of {}",
                known.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let mut out = String::new();
    out.push_str(&format!(
        "{} (seed {}): {}, {} simulated\n",
        view.report["scenario_name"].as_str().unwrap_or("?"),
        view.report["seed"].as_u64().unwrap_or(0),
        view.report["verdict"]
            .as_str()
            .unwrap_or("?")
            .to_uppercase(),
        seconds(view.end_ns)
    ));
    if !view.trace_available {
        out.push_str("  (no trace.jsonl: only faultline's client story can be told)\n");
    } else if view.trace_truncated {
        out.push_str("  (the trace was truncated: the story stops where it does)\n");
    }
    let focus = match &args.check {
        Some(name) => Some(check_focus(&view, name, &names, &mut out)?),
        None => None,
    };
    let wanted_nodes: BTreeSet<&str> = args.nodes.iter().map(String::as_str).collect();
    let wanted_kinds: BTreeSet<&str> = args.kinds.iter().map(String::as_str).collect();
    let kind_ok = |topic: &str| wanted_kinds.is_empty() || wanted_kinds.contains(topic);
    let node_ok = |node: Option<&str>| {
        node.is_none_or(|n| wanted_nodes.is_empty() || wanted_nodes.contains(n))
    };
    let mut lines: Vec<(u64, String)> = view
        .narration
        .lines
        .iter()
        .filter(|l| l.t_ns >= from_ns && l.t_ns <= to_ns)
        .filter(|l| !(args.messages && l.topic == "message"))
        .filter(|l| kind_ok(&l.topic) && node_ok(l.node.as_deref()))
        .filter(|l| focus.as_ref().is_none_or(|f| f.keeps(l)))
        .map(|l| (l.t_ns, l.text.clone()))
        .collect();
    if args.messages {
        for m in &view.messages {
            let about = wanted_nodes.is_empty()
                || wanted_nodes.contains(m.from.as_str())
                || wanted_nodes.contains(m.to.as_str());
            if about && m.send_ns <= to_ns {
                lines.push((m.send_ns, message_line(m)));
            }
        }
        // Story lines first at one instant, then messages in send order: a stable sort.
        lines.sort_by_key(|l| l.0);
    }
    let width = seconds(view.end_ns.max(to_ns.min(view.end_ns))).len();
    for (t, text) in &lines {
        out.push_str(&format!("  {:>width$}  {text}\n", seconds(*t)));
    }
    if args.messages && view.messages_left_out > 0 {
        out.push_str(&format!(
            "  ... and {} later message(s) in the window, left out (at most {} are listed; narrow --from/--to)\n",
            view.messages_left_out, options.max_messages
        ));
    }
    if lines.is_empty() {
        out.push_str("  (nothing to tell for these filters)\n");
    }
    Ok(out)
}

/// Reads a time flag in the scenario's duration syntax (`3s`, `500ms`).
fn time_flag(flag: &str, value: Option<&str>) -> Result<Option<u64>, String> {
    value
        .map(|v| {
            Duration::parse(v)
                .map(Duration::as_nanos)
                .map_err(|e| format!("{flag} {v}: {e}"))
        })
        .transpose()
}

/// The view of the run named: a report folder read back, or a scenario file run in memory.
fn load(args: &ExplainArgs, options: &ViewOptions) -> Result<RunView<'static>, String> {
    let path = &args.target;
    if path.is_dir() {
        if args.seed.is_some() {
            return Err(format!(
                "--seed: {} is a report folder, whose run has its seed; --seed applies to a scenario file",
                path.display()
            ));
        }
        if !path.join("report.json").is_file() {
            return Err(format!(
                "{}: not a report folder (no report.json); expected a folder written by `faultline run` or a scenario file",
                path.display()
            ));
        }
        return RunView::from_dir(&crate::families::builtin(), path, options)
            .map_err(|e| e.to_string());
    }
    if !path.is_file() {
        return Err(format!(
            "{}: no such report folder or scenario file",
            path.display()
        ));
    }
    run_in_memory(path, args.seed, options)
}

/// Runs a scenario with its trace in a temporary file (removed afterwards) and builds its view;
/// nothing else is written.
fn run_in_memory(
    path: &Path,
    seed: Option<u64>,
    options: &ViewOptions,
) -> Result<RunView<'static>, String> {
    let scenario = Scenario::load_all(path).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let seed = seed.unwrap_or(scenario.seed);
    let trace = tempfile::NamedTempFile::new()
        .map_err(|e| format!("cannot create a temporary file for the trace: {e}"))?;
    let record = sim::run(
        &scenario,
        seed,
        &RunOptions::streaming_to(trace.path().to_path_buf()),
    );
    if let Some(limit) = &record.limit_exceeded {
        return Err(format!("{}: {limit}", path.display()));
    }
    if let Some(e) = record.trace_jsonl.write_error() {
        return Err(format!("the trace of {}: {e}", path.display()));
    }
    let report = Report::new(&record, run_checks(&record), path, 0);
    Ok(crate::report::view_of_run_with(&report, &record, options).into_owned())
}

/// What `--check` keeps: lines near the times the check cites, about the nodes it names (or
/// about the whole run).
struct Focus {
    times_ns: Vec<u64>,
    nodes: BTreeSet<String>,
}

impl Focus {
    fn keeps(&self, l: &StoryLine) -> bool {
        let near = self.times_ns.is_empty()
            || self.times_ns.iter().any(|&c| {
                l.t_ns.saturating_add(CHECK_BEFORE_NS) >= c
                    && l.t_ns <= c.saturating_add(CHECK_AFTER_NS)
            });
        let about = self.nodes.is_empty() || l.node.as_ref().is_none_or(|n| self.nodes.contains(n));
        near && about && l.topic != "message" && l.topic != "client"
    }
}

/// Finds the check `name` in the report, writes its verdict and evidence to `out`, and returns
/// what to keep of the story.
fn check_focus(
    view: &RunView,
    name: &str,
    names: &BTreeSet<&str>,
    out: &mut String,
) -> Result<Focus, String> {
    let checks = view.report["checks"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(check) = checks.iter().find(|c| c["name"] == name) else {
        let list: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
        return Err(format!(
            "--check {name}: no such check in this run; expected one of {}",
            list.join(", ")
        ));
    };
    let evidence: Vec<&str> = check["evidence"]
        .as_array()
        .map(|e| e.iter().filter_map(|s| s.as_str()).collect())
        .unwrap_or_default();
    out.push_str(&format!(
        "  {} {}: {}\n",
        check["verdict"].as_str().unwrap_or("?"),
        name,
        check["summary"].as_str().unwrap_or("")
    ));
    let used = &evidence[..evidence.len().min(CHECK_EVIDENCE_USED)];
    for e in used {
        out.push_str(&format!("    - {e}\n"));
    }
    if evidence.len() > used.len() {
        out.push_str(&format!(
            "    ({} more evidence item(s); the story follows the first {})\n",
            evidence.len() - used.len(),
            used.len()
        ));
    }
    let mut times_ns: Vec<u64> = used.iter().flat_map(|e| cited_times_ns(e)).collect();
    times_ns.sort_unstable();
    times_ns.dedup();
    let nodes: BTreeSet<String> = used
        .iter()
        .flat_map(|e| e.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_')))
        .filter(|w| names.contains(w))
        .map(str::to_string)
        .collect();
    if times_ns.is_empty() {
        out.push_str("  (the check cites no times: the whole story about its nodes follows)\n");
    }
    out.push('\n');
    Ok(Focus { times_ns, nodes })
}

/// One message as a story line.
fn message_line(m: &MessageView) -> String {
    let copy = m
        .duplicate_of
        .map(|o| format!(" (a duplicate of #{o})"))
        .unwrap_or_default();
    let fate = match (&m.dropped, m.end_ns) {
        (Some(reason), Some(t)) => format!("dropped ({reason}) at {}", seconds(t)),
        (None, Some(t)) => format!("delivered at {}", seconds(t)),
        _ => "still in flight at the end".to_string(),
    };
    format!(
        "{} -> {} {} #{}{copy}, {fate}",
        m.from, m.to, m.kind, m.msg_id
    )
}
