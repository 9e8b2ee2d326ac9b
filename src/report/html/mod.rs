//! `report.html`: one self-contained page per run (inline CSS, inline JavaScript, the charts
//! inlined as SVG, the data as JSON), readable without network access.
//!
//! The page shows the verdict and every check (each time its evidence cites links to that
//! moment), a failed linearizability check's counterexample on a time axis per client process
//! (Porcupine's picture), the charts, a time scrubber with one card per node showing its state
//! at that instant (RaftScope's picture) and the story near it, a message sequence diagram
//! (Lamport diagram) over a window of the run, and the seed, the resolved scenario and the
//! command that reproduces the run.
//!
//! What Rust writes (checks, evidence, scenario, command) is HTML-escaped here; what the script
//! draws comes from a `<script type="application/json">` block in which every `<`, `>` and `&`
//! is written as a `\u` escape (so no string can close the block or open a comment), and the
//! script puts text into the page only as text nodes, never as markup. Sizes are bounded:
//! [`MAX_PAGE_MESSAGES`], [`MAX_PAGE_STORY_LINES`], [`MAX_PAGE_STATE_CHANGES`], and the page says
//! what it left out. `docs/report-format.md` describes the page.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::family::StateChange;
use crate::report::charts::Chart;
use crate::report::view::{MessageView, RunView, ViewOptions, cited_times_ns};

/// Messages the sequence diagram shows at most.
pub const MAX_PAGE_MESSAGES: usize = 2_000;
/// Story lines the page embeds at most (every `fault`, `node` and `election` line first).
pub const MAX_PAGE_STORY_LINES: usize = 5_000;
/// State changes the page embeds at most (every `status`, `role` and `term` change first).
pub const MAX_PAGE_STATE_CHANGES: usize = 20_000;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// The moment the page opens at: where the sequence diagram's window is centred and where the
/// scrubber starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Focus {
    /// The instant (ns).
    pub t_ns: u64,
    /// Why this instant, for the page ("the first time check `linearizability` cites").
    pub why: String,
}

/// The page's focus: the first time the first failed check's evidence cites, else the start of
/// the first fault, else the start of the run.
pub fn focus(view: &RunView) -> Focus {
    let checks = view.report["checks"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    for check in checks.iter().filter(|c| c["verdict"] == "fail") {
        let evidence = check["evidence"].as_array().map_or(&[][..], Vec::as_slice);
        let first = evidence
            .iter()
            .filter_map(Value::as_str)
            .find_map(|s| cited_times_ns(s).into_iter().next());
        if let Some(t_ns) = first {
            return Focus {
                t_ns: t_ns.min(view.end_ns),
                why: format!(
                    "the first time check {} cites",
                    check["name"].as_str().unwrap_or("?")
                ),
            };
        }
    }
    match view.faults.first() {
        Some(f) => Focus {
            t_ns: f.start_ns,
            why: format!("the start of the first fault ({})", f.label),
        },
        None => Focus {
            t_ns: 0,
            why: "the start of the run".into(),
        },
    }
}

/// Where the diagram's messages come from: a range of the view's messages, or a view built
/// again with a window (when the view's capped messages end before the window would).
#[derive(Clone, Debug)]
enum Window {
    Take(std::ops::Range<usize>),
    Rebuild(ViewOptions),
}

/// Picks [`MAX_PAGE_MESSAGES`] messages around `focus_ns`, a quarter before it: from `kept`
/// (sent in order) if they cover that window, else the options of a view that does.
fn choose_window(kept: &[MessageView], left_out: u64, focus_ns: u64) -> Window {
    let centre = kept.partition_point(|m| m.send_ns < focus_ns);
    let from = centre
        .saturating_sub(MAX_PAGE_MESSAGES / 4)
        .min(kept.len().saturating_sub(MAX_PAGE_MESSAGES));
    let until = (from + MAX_PAGE_MESSAGES).min(kept.len());
    if left_out == 0 || until < kept.len() {
        return Window::Take(from..until);
    }
    // The view's messages end before the window does: read the trace again from a start
    // that leaves about a quarter of the budget before the focus.
    let lead = MAX_PAGE_MESSAGES / 4;
    let from_ns = if centre >= lead && centre < kept.len() {
        kept[centre - lead].send_ns
    } else {
        let span = kept
            .last()
            .zip(kept.first())
            .map_or(0, |(l, f)| l.send_ns - f.send_ns);
        let per_message = span as f64 / kept.len().saturating_sub(1).max(1) as f64;
        focus_ns.saturating_sub((per_message * lead as f64) as u64)
    };
    Window::Rebuild(ViewOptions {
        messages_from_ns: from_ns,
        messages_until_ns: u64::MAX,
        max_messages: MAX_PAGE_MESSAGES,
    })
}

/// The page of a run: `view` is its view (any message window), `charts` its charts, and
/// `rebuild` builds the run's view again with other message options (called at most once, when
/// `view`'s messages do not cover the diagram's window).
pub fn render_run<'h>(
    view: &RunView<'h>,
    charts: &[Chart],
    rebuild: impl FnOnce(&ViewOptions) -> RunView<'h>,
) -> String {
    let focus = focus(view);
    match choose_window(&view.messages, view.messages_left_out, focus.t_ns) {
        Window::Take(range) => render(view, charts, &focus, &view.messages[range]),
        Window::Rebuild(options) => {
            let again = rebuild(&options);
            let n = again.messages.len().min(MAX_PAGE_MESSAGES);
            render(view, charts, &focus, &again.messages[..n])
        }
    }
}

/// The page: `messages` are the diagram's (at most [`MAX_PAGE_MESSAGES`], in send order).
pub fn render(view: &RunView, charts: &[Chart], focus: &Focus, messages: &[MessageView]) -> String {
    let r = &view.report;
    let name = r["scenario_name"].as_str().unwrap_or("");
    let verdict = r["verdict"].as_str().unwrap_or("unknown");
    let seed = r["seed"].as_u64().unwrap_or(0);
    let mut h = String::with_capacity(64 * 1024);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    // No network: nothing on the page may load from elsewhere.
    h.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n",
    );
    let _ = writeln!(
        h,
        "<title>faultline: {} (seed {seed}): {}</title>",
        esc(name),
        verdict.to_uppercase()
    );
    let _ = writeln!(h, "<style>\n{CSS}</style>");
    // Records any script error on the page (read by the browser tests and shown at the top).
    h.push_str(
        "<script>window.addEventListener('error',function(e){var d=document.documentElement;\
         d.setAttribute('data-errors',(d.getAttribute('data-errors')||'')+(e.message||'error')+'\\n');});\
         </script>\n</head>\n<body>\n",
    );
    header(&mut h, view, verdict, name, seed);
    h.push_str("<main>\n");
    checks(&mut h, view);
    counterexample_section(&mut h, view);
    charts_section(&mut h, charts);
    h.push_str(
        "<section id=\"cluster\"><h2>The cluster over time</h2>\n\
         <p class=\"note\">Drag the slider (or click a time in the evidence or the diagram) to see \
         each node's state at that instant and the story around it.</p>\n\
         <div id=\"scrubber\"><div id=\"overview\"></div>\
         <input type=\"range\" id=\"t\" min=\"0\" value=\"0\" aria-label=\"simulated time\">\
         <div class=\"now\">t = <output id=\"now\">0.0 ms</output></div></div>\n\
         <div id=\"faults-now\"></div><div id=\"cards\"></div>\n\
         <h3>Story around this instant</h3><ol id=\"story\"></ol>\n</section>\n",
    );
    h.push_str(
        "<section id=\"messages\"><h2>Messages</h2>\n<p class=\"note\" id=\"messages-note\"></p>\n\
         <div id=\"lamport-legend\"></div><div id=\"lamport\" class=\"scroll\"></div>\n</section>\n",
    );
    reproduce_section(&mut h, view);
    h.push_str("</main>\n");
    let data = page_data(view, focus, messages);
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"faultline-data\">{}</script>",
        json_for_script(&data)
    );
    let _ = writeln!(h, "<script>\n{JS}</script>\n</body>\n</html>");
    h
}

fn header(h: &mut String, view: &RunView, verdict: &str, name: &str, seed: u64) {
    let r = &view.report;
    let description = r["scenario"]["description"].as_str().unwrap_or("");
    let stats = &r["stats"];
    let dropped: u64 = stats["messages_dropped"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(Value::as_u64).sum());
    let _ = writeln!(
        h,
        "<header>\n<h1><span class=\"verdict {v}\" id=\"verdict\">{V}</span> <span id=\"scenario-name\">{n}</span></h1>",
        v = esc(verdict),
        V = esc(&verdict.to_uppercase()),
        n = esc(name),
    );
    if !description.is_empty() {
        let _ = writeln!(h, "<p class=\"description\">{}</p>", esc(description));
    }
    let _ = writeln!(
        h,
        "<p class=\"facts\">seed <b>{seed}</b> · simulated <b>{}</b> · {} nodes · {} messages sent, \
         {} delivered, {} dropped · trace hash <code>{}</code> · faultline {}</p>",
        crate::check::ms(view.end_ns),
        view.cast.len(),
        stats["messages_sent"].as_u64().unwrap_or(0),
        stats["messages_delivered"].as_u64().unwrap_or(0),
        dropped,
        esc(r["trace_hash"].as_str().unwrap_or("")),
        esc(r["faultline_version"].as_str().unwrap_or("")),
    );
    if let Some(problems) = r["expectation_problems"].as_array()
        && !problems.is_empty()
    {
        let text: Vec<&str> = problems.iter().filter_map(Value::as_str).collect();
        let _ = writeln!(
            h,
            "<p class=\"warn\">[expect] not met: {}</p>",
            esc(&text.join("; "))
        );
    }
    if !view.trace_available {
        h.push_str(
            "<p class=\"warn\">No trace was kept for this run (<code>--no-trace</code>): the \
             cluster states, the story and the messages are not shown.</p>\n",
        );
    } else if view.trace_truncated {
        h.push_str(
            "<p class=\"warn\">The trace reached its byte cap: the page shows only what its \
             first lines tell.</p>\n",
        );
    }
    let has_cx = counterexample_of(view).is_some();
    let _ = writeln!(
        h,
        "<nav><a href=\"#checks\">Checks</a>{}<a href=\"#charts\">Charts</a>\
         <a href=\"#cluster\">Cluster</a><a href=\"#messages\">Messages</a>\
         <a href=\"#reproduce\">Reproduce</a></nav>\n<div id=\"page-errors\"></div>\n</header>",
        if has_cx {
            "<a href=\"#counterexample\">Counterexample</a>"
        } else {
            ""
        }
    );
}

fn checks(h: &mut String, view: &RunView) {
    h.push_str("<section id=\"checks\"><h2>Checks</h2>\n");
    let checks = view.report["checks"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if checks.is_empty() {
        h.push_str("<p class=\"note\">No check ran.</p>\n");
    }
    for c in checks {
        let verdict = c["verdict"].as_str().unwrap_or("unknown");
        let name = c["name"].as_str().unwrap_or("");
        let _ = writeln!(
            h,
            "<details class=\"check {v}\" data-check=\"{n}\"{open}><summary><span class=\"verdict {v}\">{v}</span> \
             <b>{n}</b> <span class=\"summary\">{s}</span></summary>",
            v = esc(verdict),
            n = esc(name),
            s = esc(c["summary"].as_str().unwrap_or("")),
            open = if verdict == "pass" { "" } else { " open" },
        );
        let evidence = c["evidence"].as_array().map_or(&[][..], Vec::as_slice);
        if !evidence.is_empty() {
            h.push_str("<ul class=\"evidence\">");
            for e in evidence.iter().filter_map(Value::as_str) {
                let _ = write!(h, "<li>{}</li>", linked_sentence(e));
            }
            h.push_str("</ul>\n");
        }
        if let Some(metrics) = c["metrics"].as_object()
            && !metrics.is_empty()
        {
            h.push_str("<table class=\"metrics\">");
            for (k, v) in metrics {
                let shown = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&shown));
            }
            h.push_str("</table>\n");
        }
        h.push_str("</details>\n");
    }
    h.push_str("</section>\n");
}

/// A sentence of evidence, escaped, with each time it cites (`3012.5ms`) a link to that moment.
fn linked_sentence(sentence: &str) -> String {
    let mut out = String::new();
    let mut rest = sentence;
    let mut unplaced = Vec::new();
    for t in cited_times_ns(sentence) {
        let text = crate::check::ms(t);
        match rest.find(&text) {
            Some(i) => {
                out.push_str(&esc(&rest[..i]));
                let _ = write!(
                    out,
                    "<a class=\"t\" href=\"#t={t}\" data-t=\"{t}\">{text}</a>"
                );
                rest = &rest[i + text.len()..];
            }
            None => unplaced.push(t),
        }
    }
    out.push_str(&esc(rest));
    for t in unplaced {
        let _ = write!(
            out,
            " <a class=\"t\" href=\"#t={t}\" data-t=\"{t}\">[{}]</a>",
            crate::check::ms(t)
        );
    }
    out
}

/// The first failed check's structured counterexample, if any.
fn counterexample_of<'v>(view: &'v RunView<'_>) -> Option<&'v Value> {
    view.report["checks"].as_array()?.iter().find_map(|c| {
        let d = &c["details"];
        (c["verdict"] == "fail" && d["kind"] == "linearizability-counterexample").then_some(d)
    })
}

fn counterexample_section(h: &mut String, view: &RunView) {
    let Some(cx) = counterexample_of(view) else {
        return;
    };
    let ops = cx["operations"].as_array().map_or(&[][..], Vec::as_slice);
    let blocked = &ops[cx["blocked"].as_u64().unwrap_or(0) as usize..]
        .first()
        .cloned()
        .unwrap_or(Value::Null);
    let key = match cx["partition"].as_str() {
        Some(k) => format!(" of key <code>{}</code>", esc(k)),
        None => String::new(),
    };
    let _ = writeln!(
        h,
        "<section id=\"counterexample\"><h2>Why the history is not linearizable</h2>\n\
         <p>In the sub-history{key} ({} operations), the longest linearizable prefix found has \
         <b>{}</b> operations (green, numbered in the order they take effect); the state after \
         it is <code>{}</code>. The operation in red, <b>process {}: <code>{}</code></b>, cannot be \
         placed: {}. Grey operations are neither.</p>",
        cx["part_operations"].as_u64().unwrap_or(0),
        cx["prefix_length"].as_u64().unwrap_or(0),
        esc(cx["state"].as_str().unwrap_or("")),
        blocked["process"].as_u64().unwrap_or(0),
        esc(blocked["op"].as_str().unwrap_or("")),
        esc(cx["explanation"].as_str().unwrap_or("")),
    );
    let before = cx["left_out_before"].as_u64().unwrap_or(0);
    let after = cx["left_out_after"].as_u64().unwrap_or(0);
    let mut note = String::from(
        "One row per client process; the time axis orders every invoke and completion (it keeps \
         real-time order, not durations). A bar with an open end never completed.",
    );
    if before + after > 0 {
        let _ = write!(
            note,
            " {before} earlier and {after} later operations of this key are not shown."
        );
    }
    let _ = writeln!(
        h,
        "<p class=\"note\">{}</p><div class=\"porcupine\"><div id=\"porcupine-rows\"></div>\
         <div id=\"porcupine\" class=\"scroll\"></div></div>\n</section>",
        esc(&note)
    );
}

fn charts_section(h: &mut String, charts: &[Chart]) {
    h.push_str("<section id=\"charts\"><h2>Charts</h2>\n");
    if charts.is_empty() {
        h.push_str("<p class=\"note\">This run has no charts.</p>\n");
    }
    for c in charts {
        let _ = write!(
            h,
            "<figure class=\"chart\" data-chart=\"{}\"><figcaption>{}</figcaption>",
            esc(&c.file_name),
            esc(&c.title)
        );
        h.push_str(&inline_svg(&c.svg));
        h.push_str("</figure>\n");
    }
    h.push_str("</section>\n");
}

/// A chart's SVG for inlining: its XML declaration removed. An SVG holding anything that could
/// run (a script, a `foreignObject`, an `on...=` attribute, a `javascript:` link) is shown as an
/// image instead, where nothing runs.
fn inline_svg(svg: &str) -> String {
    let body = match svg.find("<svg") {
        Some(i) => &svg[i..],
        None => svg,
    };
    let lower = body.to_ascii_lowercase();
    let risky = lower.contains("<script")
        || lower.contains("foreignobject")
        || lower.contains("javascript:")
        || lower.contains("<!--")
        || has_event_attribute(&lower);
    if risky {
        format!(
            "<img alt=\"chart\" src=\"data:image/svg+xml,{}\">",
            percent_encoded(body.as_bytes())
        )
    } else {
        body.to_string()
    }
}

/// True if `s` holds ` on<letters>=` (an event handler attribute, or text that looks like one).
fn has_event_attribute(s: &str) -> bool {
    let b = s.as_bytes();
    (1..b.len()).any(|i| {
        b[i - 1].is_ascii_whitespace() && b[i..].starts_with(b"on") && {
            let rest = &b[i + 2..];
            let n = rest.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            n > 0 && rest[n..].iter().find(|c| !c.is_ascii_whitespace()) == Some(&b'=')
        }
    })
}

/// `bytes` percent-encoded for a `data:` URL (every byte but letters, digits and `-._~`).
fn percent_encoded(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn reproduce_section(h: &mut String, view: &RunView) {
    let r = &view.report;
    let _ = writeln!(
        h,
        "<section id=\"reproduce\"><h2>Reproduce</h2>\n\
         <p>The same scenario, seed and faultline version ({}) give the same run, byte for byte \
         (trace hash <code>{}</code>):</p>\n<pre id=\"reproduce-command\">{}</pre>",
        esc(r["faultline_version"].as_str().unwrap_or("")),
        esc(r["trace_hash"].as_str().unwrap_or("")),
        esc(r["reproduce"].as_str().unwrap_or("")),
    );
    let _ = writeln!(
        h,
        "<details><summary>The resolved scenario (<code>{}</code>, every default filled in)</summary>\
         <pre id=\"scenario\">{}</pre></details>\n</section>",
        esc(r["scenario_file"].as_str().unwrap_or("")),
        esc(&scenario_text(&r["scenario"])),
    );
}

/// The resolved scenario as TOML (as JSON if it has no TOML form).
fn scenario_text(scenario: &Value) -> String {
    crate::scenario::toml_text(scenario)
        .unwrap_or_else(|_| serde_json::to_string_pretty(scenario).unwrap_or_default())
}

/// What the script draws, as JSON (compact rows; times in ns).
fn page_data(view: &RunView, focus: &Focus, messages: &[MessageView]) -> Value {
    let (states, states_left_out) = bounded_states(&view.narration.states, view.end_ns);
    let (lines, lines_left_out) = bounded_lines(view);
    let messages_total = view.report["stats"]["messages_sent"].as_u64().unwrap_or(0)
        + view.report["stats"]["messages_duplicated"]
            .as_u64()
            .unwrap_or(0);
    let cited: Vec<u64> = view.report["checks"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter(|c| c["verdict"] == "fail")
        .flat_map(|c| c["evidence"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .flat_map(cited_times_ns)
        .take(200)
        .collect();
    json!({
        "end_ns": view.end_ns,
        "trace_available": view.trace_available,
        "focus": {"t_ns": focus.t_ns, "why": focus.why},
        "cited_ns": cited,
        "nodes": view.cast.iter().map(|m| json!([m.name, m.client, m.part, m.runs])).collect::<Vec<_>>(),
        "faults": view.faults.iter().map(|f| json!({
            "kind": f.kind, "label": f.label, "nodes": f.nodes,
            "start_ns": f.start_ns, "end_ns": f.end_ns,
        })).collect::<Vec<_>>(),
        "states": states.iter().map(|c| json!([c.t_ns, c.node, c.field, c.value])).collect::<Vec<_>>(),
        "states_left_out": states_left_out,
        "lines": lines.iter().map(|l| json!([l.t_ns, l.node, l.topic, l.text])).collect::<Vec<_>>(),
        "lines_left_out": lines_left_out,
        "messages": messages.iter().map(|m| json!([
            m.send_ns, m.from, m.to, m.kind, m.end_ns, m.dropped, m.duplicate_of.is_some(),
        ])).collect::<Vec<_>>(),
        "messages_total": messages_total,
        "counterexample": counterexample_of(view),
    })
}

/// At most [`MAX_PAGE_STATE_CHANGES`] state changes: all of them if they fit; else every
/// `status`, `role` and `term` change, and of the other fields the last change of each node and
/// field in each thousandth of the run; then the first ones in time order. Returns the kept
/// changes (in time order) and how many were left out.
fn bounded_states(states: &[StateChange], end_ns: u64) -> (Vec<&StateChange>, usize) {
    if states.len() <= MAX_PAGE_STATE_CHANGES {
        return (states.iter().collect(), 0);
    }
    let bucket = (end_ns / 1000).max(1);
    // Backwards, so the first change of a node and field met in a bucket is its last one.
    let mut kept: Vec<&StateChange> = Vec::new();
    let mut seen: std::collections::BTreeSet<(&str, &str)> = Default::default();
    let mut current = u64::MAX;
    for c in states.iter().rev() {
        if c.t_ns / bucket != current {
            current = c.t_ns / bucket;
            seen.clear();
        }
        let major = matches!(c.field.as_str(), "status" | "role" | "term");
        if seen.insert((&c.node, &c.field)) || major {
            kept.push(c);
        }
    }
    kept.reverse();
    kept.truncate(MAX_PAGE_STATE_CHANGES);
    let left_out = states.len() - kept.len();
    (kept, left_out)
}

/// At most [`MAX_PAGE_STORY_LINES`] story lines: every `fault`, `node` and `election` line
/// first, then the others in time order. Returns the kept lines (in time order) and how many
/// were left out.
fn bounded_lines<'v>(view: &'v RunView<'_>) -> (Vec<&'v crate::family::StoryLine>, usize) {
    let all = &view.narration.lines;
    if all.len() <= MAX_PAGE_STORY_LINES {
        return (all.iter().collect(), 0);
    }
    let major = |t: &str| matches!(t, "fault" | "node" | "election");
    let majors = all.iter().filter(|l| major(&l.topic)).count();
    let mut room = MAX_PAGE_STORY_LINES.saturating_sub(majors);
    let mut kept_majors = MAX_PAGE_STORY_LINES;
    let kept: Vec<_> = all
        .iter()
        .filter(|l| {
            if major(&l.topic) {
                let keep = kept_majors > 0;
                kept_majors = kept_majors.saturating_sub(1);
                keep
            } else {
                let keep = room > 0;
                room = room.saturating_sub(1);
                keep
            }
        })
        .collect();
    let left_out = all.len() - kept.len();
    (kept, left_out)
}

/// `s` with `& < > " '` escaped, for HTML text and quoted attribute values.
pub fn esc(s: &str) -> String {
    replace_chars(
        s,
        &[
            ('&', "&amp;"),
            ('<', "&lt;"),
            ('>', "&gt;"),
            ('"', "&quot;"),
            ('\'', "&#39;"),
        ],
    )
}

/// `value` as JSON safe inside a `<script>` element: `<`, `>` and `&` (which appear only inside
/// strings) written as `\u003c`, `\u003e`, `\u0026`, so no string can close the element
/// (`</script>`) or open a comment (`<!--`); `JSON.parse` reads the same value back.
pub fn json_for_script(value: &Value) -> String {
    let text = serde_json::to_string(value).expect("JSON values serialize");
    replace_chars(
        &text,
        &[('<', "\\u003c"), ('>', "\\u003e"), ('&', "\\u0026")],
    )
}

/// `s` with each character of `table` replaced by its text.
fn replace_chars(s: &str, table: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match table.iter().find(|(from, _)| *from == c) {
            Some((_, to)) => out.push_str(to),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
