use super::*;
use crate::family::{CastMember, Registry};

const HOSTILE: &str =
    "</script><script>document.title='pwned'</script><!-- \"><img src=x onerror=alert(1)> & '";

fn view(report: Value, trace: &str) -> RunView<'static> {
    let servers: Vec<CastMember> = serde_json::from_value(json!([
        {"name": "n1", "client": false, "part": "raft", "runs": "raft"},
        {"name": "n2", "client": false, "part": "raft", "runs": "raft"},
        {"name": "n3", "client": false, "part": "raft", "runs": "raft"},
    ]))
    .unwrap();
    let lines = Some(trace.lines());
    RunView::build(
        &Registry::new(Vec::new()),
        report,
        servers,
        crate::history::CompactHistory::default(),
        lines,
        &ViewOptions::default(),
    )
}

fn message(i: u64) -> MessageView {
    MessageView {
        msg_id: i,
        from: "n1".into(),
        to: "n2".into(),
        kind: "x".into(),
        send_ns: i * 10,
        end_ns: Some(i * 10 + 5),
        dropped: None,
        duplicate_of: None,
    }
}

#[test]
fn script_json_cannot_close_its_element_and_reads_back_the_same() {
    let value = json!({"name": HOSTILE, "list": ["<!--", "</SCRIPT >", "a&b"]});
    let text = json_for_script(&value);
    assert!(!text.contains('<'), "{text}");
    assert!(!text.contains('>'), "{text}");
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back, value);
}

#[test]
fn html_escape_leaves_no_markup() {
    let e = esc(HOSTILE);
    for c in ['<', '>', '"', '\''] {
        assert!(!e.contains(c), "{e}");
    }
    assert!(e.contains("&lt;/script&gt;") && e.contains("&amp;"));
}

#[test]
fn user_strings_in_the_report_are_escaped_on_the_page() {
    let report = json!({
        "scenario_name": HOSTILE,
        "scenario_file": HOSTILE,
        "reproduce": format!("faultline run {HOSTILE} --seed 1"),
        "scenario": {"name": HOSTILE, "description": HOSTILE},
        "verdict": "fail",
        "virtual_time_ns": 1_000_000_000u64,
        "checks": [{
            "name": "linearizability", "verdict": "fail", "summary": HOSTILE,
            "evidence": [format!("{HOSTILE} at 12.5ms")],
            "metrics": {HOSTILE: HOSTILE},
            "details": {
                "kind": "linearizability-counterexample", "model": "kv", "partition": HOSTILE,
                "part_operations": 1, "left_out_before": 0, "left_out_after": 0,
                "prefix_length": 0, "state": HOSTILE, "blocked": 0, "explanation": HOSTILE,
                "operations": [{"process": 1, "node": "c1", "op": HOSTILE, "invoke_ns": 1,
                                "complete_ns": 2, "prefix_position": null}],
            },
        }],
    });
    let page = render_run(&view(report, ""), &[], |_| unreachable!());
    // The only scripts are the page's own three (error catcher, data, code).
    assert_eq!(page.matches("<script").count(), 3, "{page}");
    assert_eq!(page.matches("</script>").count(), 3);
    assert!(!page.contains("<img"));
    assert!(!page.contains("<!--"));
    assert!(page.contains("&lt;/script&gt;&lt;script&gt;document.title=&#39;pwned&#39;"));
}

#[test]
fn evidence_times_link_to_their_moment() {
    let s = linked_sentence("n2 became leader at 3012.5ms and <b> at 7000.0ms");
    assert_eq!(
        s,
        "n2 became leader at <a class=\"t\" href=\"#t=3012500000\" data-t=\"3012500000\">3012.5ms</a> \
         and &lt;b&gt; at <a class=\"t\" href=\"#t=7000000000\" data-t=\"7000000000\">7000.0ms</a>"
    );
    // A time written another way still gets a link, after the sentence.
    assert!(linked_sentence("at 12.50ms").ends_with("data-t=\"12500000\">[12.5ms]</a>"));
}

#[test]
fn focus_is_the_first_failure_then_the_first_fault_then_the_start() {
    let failing = json!({"virtual_time_ns": 10_000_000_000u64, "checks": [
        {"name": "a", "verdict": "pass", "evidence": ["at 1.0ms"]},
        {"name": "b", "verdict": "fail", "evidence": ["nothing", "at 2500.0ms then 3000.0ms"]},
    ]});
    let f = focus(&view(failing, ""));
    assert_eq!(f.t_ns, 2_500_000_000);
    assert!(f.why.contains("check b"));
    let partition = r#"{"t_ns":700,"node":"world","kind":"partition","fault_id":0,"origin":"fault[0]","sides":[["n1"],["n2","n3"]]}"#;
    let f = focus(&view(json!({"virtual_time_ns": 1000}), partition));
    assert_eq!(
        (f.t_ns, f.why.contains("partition n1 | n2 n3")),
        (700, true)
    );
    assert_eq!(focus(&view(json!({}), "")).t_ns, 0);
}

#[test]
fn the_diagram_window_holds_the_focus_with_a_quarter_before_it() {
    let kept: Vec<MessageView> = (0..10_000).map(message).collect();
    // Inside the kept messages: a range around the focus.
    let taken = |w: Window| match w {
        Window::Take(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        taken(choose_window(&kept, 0, 50_000)),
        4_500..4_500 + MAX_PAGE_MESSAGES
    );
    // Near the end of a complete list: the last messages.
    assert_eq!(
        taken(choose_window(&kept, 0, 99_990)),
        10_000 - MAX_PAGE_MESSAGES..10_000
    );
    // The kept messages were capped before the window ends: read the trace again from the
    // window's start.
    match choose_window(&kept, 5, 99_990) {
        Window::Rebuild(o) => {
            assert_eq!(
                o.messages_from_ns,
                kept[9_999 - MAX_PAGE_MESSAGES / 4].send_ns
            );
            assert_eq!(o.max_messages, MAX_PAGE_MESSAGES);
        }
        other => panic!("{other:?}"),
    }
    // The focus lies after every kept message: estimate the start from their rate.
    match choose_window(&kept, 5, 200_000) {
        Window::Rebuild(o) => assert_eq!(o.messages_from_ns, 200_000 - 10 * 500),
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_runs_keep_the_state_changes_bounded_and_every_status_change() {
    let mut states = Vec::new();
    for i in 0..(MAX_PAGE_STATE_CHANGES as u64 * 3) {
        states.push(StateChange {
            t_ns: i,
            node: "n1".into(),
            field: "log".into(),
            value: i.to_string(),
        });
        if i % 1000 == 0 {
            states.push(StateChange {
                t_ns: i,
                node: "n2".into(),
                field: "status".into(),
                value: "crashed".into(),
            });
        }
    }
    let end = MAX_PAGE_STATE_CHANGES as u64 * 3;
    let (kept, left_out) = bounded_states(&states, end);
    assert!(kept.len() <= MAX_PAGE_STATE_CHANGES);
    assert_eq!(kept.len() + left_out, states.len());
    assert_eq!(kept.iter().filter(|c| c.field == "status").count(), 60);
    assert!(kept.windows(2).all(|w| w[0].t_ns <= w[1].t_ns));
    // The last log value of the run is kept.
    assert_eq!(kept.last().unwrap().value, (end - 1).to_string());
}

#[test]
fn risky_chart_svg_is_shown_as_an_image() {
    let safe =
        "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><text>one</text></svg>";
    assert!(inline_svg(safe).starts_with("<svg"));
    for risky in [
        "<svg><script>alert(1)</script></svg>",
        "<svg onload=\"alert(1)\"></svg>",
        "<svg><a href=\"javascript:alert(1)\">x</a></svg>",
    ] {
        let shown = inline_svg(risky);
        assert!(shown.starts_with("<img"), "{shown}");
        assert!(!shown[4..].contains('<'), "{shown}");
    }
}

#[test]
fn charts_are_inlined_as_svg_under_their_title() {
    let chart = Chart {
        file_name: "latency.svg".into(),
        title: "Latency <ms>".into(),
        svg: "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"5\" height=\"5\"/></svg>".into(),
    };
    let page = render_run(&view(json!({}), ""), &[chart], |_| unreachable!());
    assert!(page.contains(
        "<figure class=\"chart\" data-chart=\"latency.svg\"><figcaption>Latency &lt;ms&gt;</figcaption>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"><rect width=\"5\" height=\"5\"/></svg></figure>"
    ));
    assert!(!page.contains("<?xml"));
    let none = render_run(&view(json!({}), ""), &[], |_| unreachable!());
    assert!(none.contains("This run has no charts."));
}
