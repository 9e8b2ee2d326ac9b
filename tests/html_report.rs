//! `report.html` end to end: written by `faultline run`, loaded in a real headless Chromium
//! (`chromium --headless --dump-dom`): it loads without console errors, the Lamport diagram,
//! the charts and the counterexample render, the scrubber shows the state at the instant the
//! URL names (`#t=<ns>`), and an injected `<script>` in a scenario does not run.
//!
//! Without a browser (`/usr/bin/chromium`, or `FAULTLINE_CHROMIUM`), the browser parts print
//! `skipped: chromium not found` and pass, unless `FAULTLINE_REQUIRE_BROWSER=1` (as in `.ci/run`),
//! where a missing browser fails. The checks of the file itself always run.

mod common;

use common::{faultline, text};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `scenario` into a fresh folder; returns the folder (kept alive by the TempDir).
fn run(scenario: &str, expected_exit: i32) -> (tempfile::TempDir, PathBuf) {
    let keep = tempfile::tempdir().unwrap();
    let out = keep.path().join("run");
    let o = faultline(&["run", scenario, "--out", out.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(expected_exit),
        "{}{}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert!(out.join("report.html").is_file(), "no report.html");
    (keep, out)
}

/// The browser, or `None` after printing why the browser checks are skipped (a missing browser
/// fails when `FAULTLINE_REQUIRE_BROWSER=1`).
fn browser(test: &str) -> Option<PathBuf> {
    // FAULTLINE_CHROMIUM, when set, is the only browser tried.
    let candidates = match std::env::var_os("FAULTLINE_CHROMIUM") {
        Some(path) => vec![PathBuf::from(path)],
        None => ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .map(PathBuf::from)
            .to_vec(),
    };
    if let Some(found) = candidates.into_iter().find(|c| c.is_file()) {
        return Some(found);
    }
    if std::env::var("FAULTLINE_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!(
            "{test}: chromium not found (FAULTLINE_REQUIRE_BROWSER=1): install it with \
             `apt-get install -y chromium` or set FAULTLINE_CHROMIUM"
        );
    }
    // Straight to stderr: the harness would swallow eprintln!.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: skipped: chromium not found (set FAULTLINE_CHROMIUM or install \
         chromium); the browser checks did not run"
    );
    None
}

/// Chromium on `page#hash`, headless, with a fresh profile; `what` is `--dump-dom` or
/// `--screenshot=...`. Returns (stdout, console lines).
fn chromium(browser: &Path, page: &Path, hash: &str, what: &[&str]) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let url = format!("file://{}#{hash}", page.display());
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            "--window-size=1400,1800",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(what)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    // About 120 s of 50 ms waits (a count, not a clock: tests read no wall clock).
    let mut waits = 0;
    while child.try_wait().unwrap().is_none() {
        waits += 1;
        if waits > 2_400 {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within about 120 s on {}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = out.join().unwrap();
    let console = err
        .join()
        .unwrap()
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (stdout, console)
}

/// The DOM after the page's scripts ran, asserting it loaded cleanly: no console message, no
/// script error, and the script reached its end.
fn loaded_dom(browser: &Path, page: &Path, hash: &str) -> String {
    let (dom, console) = chromium(browser, page, hash, &["--dump-dom"]);
    assert!(console.is_empty(), "console messages: {console:#?}");
    let root_tag = tag_with(&dom, "<html");
    assert!(
        root_tag.contains("data-ready=\"1\""),
        "the script did not finish: {root_tag}"
    );
    assert!(
        !root_tag.contains("data-errors"),
        "script errors: {root_tag}"
    );
    dom
}

/// The opening tag of the element whose attributes contain `marker`.
fn tag_with<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let start = dom[..=at].rfind('<').unwrap();
    let end = at + dom[at..].find('>').unwrap();
    &dom[start..=end]
}

fn count(dom: &str, needle: &str) -> usize {
    dom.matches(needle).count()
}

#[test]
fn report_html_of_a_failed_linearizability_run_renders_every_part_in_a_browser() {
    let (_keep, dir) = run("scenarios/raft/bugs/read-from-local-state.toml", 1);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let lin = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "linearizability")
        .unwrap();
    assert_eq!(lin["verdict"], "fail");
    assert_eq!(lin["details"]["kind"], "linearizability-counterexample");
    let ops = lin["details"]["operations"].as_array().unwrap();
    let blocked = &ops[lin["details"]["blocked"].as_u64().unwrap() as usize];
    assert!(blocked["prefix_position"].is_null() && blocked["invoke_ns"].as_u64().is_some());
    assert!(ops.iter().any(|o| o["prefix_position"].is_u64()));
    let charts: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".svg"))
        .collect();

    let Some(browser) = browser("report_html_of_a_failed_linearizability_run") else {
        return;
    };
    let page = dir.join("report.html");
    let dom = loaded_dom(&browser, &page, "");
    // The Lamport diagram: lanes for the five servers and arrows, dropped messages marked.
    let diagram = &dom[dom.find("id=\"lamport\"").unwrap()..];
    assert!(
        count(diagram, "class=\"msg") > 100,
        "too few messages drawn"
    );
    assert!(
        count(diagram, "class=\"msg dropped\"") > 0,
        "no dropped message drawn"
    );
    assert!(count(diagram, "class=\"drop-mark\"") > 0);
    assert!(
        count(diagram, "network-fault") > 0,
        "the partition is not shaded"
    );
    for n in ["n1", "n2", "n3", "n4", "n5"] {
        assert!(diagram.contains(&format!(">{n}</text>")), "no lane for {n}");
        assert!(
            dom.contains(&format!("data-node=\"{n}\"")),
            "no card for {n}"
        );
    }
    // The counterexample: one blocked operation, a linearizable prefix.
    let cx = &dom[dom.find("id=\"porcupine\"").unwrap()..];
    assert_eq!(count(cx, "<g class=\"op blocked\""), 1);
    assert!(count(cx, "<g class=\"op prefix\"") > 0);
    // Every chart is inlined as SVG.
    assert_eq!(count(&dom, "<figure class=\"chart\""), charts.len());
    assert_eq!(
        count(&dom, "<figure class=\"chart\""),
        count(&dom, "</figcaption><svg"),
        "a chart is not inline SVG"
    );
    // Evidence times are links to their moment.
    assert!(dom.contains("<a class=\"t\" href=\"#t="));

    // A screenshot, to look at (kept when FAULTLINE_SCREENSHOT_DIR names a folder).
    let png = match std::env::var_os("FAULTLINE_SCREENSHOT_DIR") {
        Some(d) => PathBuf::from(d).join("report-html.png"),
        None => dir.join("screenshot.png"),
    };
    let (_, console) = chromium(
        &browser,
        &page,
        "",
        &[&format!("--screenshot={}", png.display())],
    );
    assert!(console.is_empty(), "{console:#?}");
    assert!(std::fs::metadata(&png).unwrap().len() > 10_000);
}

/// A 3-node Raft cluster whose n2 is crashed from 2 s to 4 s.
const CRASH: &str = r#"
name = "html-crash"
description = "n2 crashes at 2 s and restarts at 4 s"
seed = 3
duration = "8s"

[cluster]
protocol = "raft"
nodes = 3

[network]
latency = { distribution = "uniform", min = "1ms", max = "5ms" }

[[fault]]
at = "2s"
kind = "crash"
target = "n2"
duration = "2s"

[workload]
clients = 2
think_time = "20ms"
keys = 2

[expect]
verdict = "pass"
"#;

#[test]
fn the_scrubber_shows_a_crashed_node_as_crashed_at_that_instant_and_up_before() {
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("crash.toml");
    std::fs::write(&file, CRASH).unwrap();
    let (_out, dir) = run(file.to_str().unwrap(), 0);
    let Some(browser) = browser("the_scrubber_shows_a_crashed_node") else {
        return;
    };
    let page = dir.join("report.html");
    let during = loaded_dom(&browser, &page, "t=3000000000");
    assert!(tag_with(&during, "<html").contains("data-t=\"3000000000\""));
    let card = tag_with(&during, "data-node=\"n2\"");
    assert!(card.contains("data-status=\"crashed\""), "{card}");
    assert!(tag_with(&during, "data-node=\"n1\"").contains("data-status=\"up\""));
    assert!(
        during.contains("crash n2 (since 2000.0 ms)"),
        "the fault in effect is not shown"
    );
    let before = loaded_dom(&browser, &page, "t=1000000000");
    let card = tag_with(&before, "data-node=\"n2\"");
    assert!(card.contains("data-status=\"up\""), "{card}");
    assert!(before.contains("No fault in effect."));
}

#[test]
fn a_page_of_a_run_without_trace_loads_and_says_what_it_cannot_show() {
    let keep = tempfile::tempdir().unwrap();
    let file = keep.path().join("crash.toml");
    std::fs::write(&file, CRASH).unwrap();
    let out = keep.path().join("run");
    let o = faultline(&[
        "run",
        file.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--no-trace",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let page = out.join("report.html");
    assert!(
        std::fs::read_to_string(&page)
            .unwrap()
            .contains("No trace was kept for this run")
    );
    let Some(browser) = browser("a_page_of_a_run_without_trace_loads") else {
        return;
    };
    let dom = loaded_dom(&browser, &page, "t=3000000000");
    assert!(dom.contains("no messages are shown"));
    assert_eq!(count(&dom, "class=\"msg"), 0);
    assert!(!dom.contains("data-node="), "node cards without a trace");
}

const HOSTILE_DESCRIPTION: &str = r#"<script>document.title='pwned';document.documentElement.setAttribute('data-pwned','1')</script> "><img src=x onerror="document.documentElement.setAttribute('data-pwned','2')"> </script><script>document.documentElement.setAttribute('data-pwned','3')</script><!--"#;

#[test]
fn an_injected_script_in_a_scenario_does_not_run() {
    let keep = tempfile::tempdir().unwrap();
    // The file name (in the reproduce command) carries markup too.
    let file = keep
        .path()
        .join("x<img src=x onerror=document.body.setAttribute('data-pwned',4)>.toml");
    let body = CRASH
        .replace("name = \"html-crash\"", "name = \"html-hostile\"")
        .replace(
            "description = \"n2 crashes at 2 s and restarts at 4 s\"",
            &format!("description = '''{HOSTILE_DESCRIPTION}'''"),
        );
    std::fs::write(&file, body).unwrap();
    let (_out, dir) = run(file.to_str().unwrap(), 0);
    let page = dir.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // The file: only the page's own three scripts and no injected element.
    assert_eq!(count(&html, "<script"), 3, "an injected script element");
    assert_eq!(count(&html, "</script>"), 3);
    assert!(!html.contains("<img"), "an injected img element");
    assert!(!html.contains("<!--"));
    assert!(html.contains("&lt;script&gt;document.title=&#39;pwned&#39;"));

    let Some(browser) = browser("an_injected_script_in_a_scenario_does_not_run") else {
        return;
    };
    let dom = loaded_dom(&browser, &page, "");
    // The injected code would mark the root or the body, or leave an element behind.
    for tag in ["<html", "<body"] {
        assert!(
            !tag_with(&dom, tag).contains("data-pwned"),
            "an injected script ran"
        );
    }
    assert!(!dom.contains("<img"), "an injected element");
    let title = &dom[dom.find("<title>").unwrap()..dom.find("</title>").unwrap()];
    assert!(
        !title.contains("pwned") && title.contains("html-hostile"),
        "{title}"
    );
    // The description is shown as text.
    assert!(dom.contains("&lt;script&gt;document.title='pwned'"));
}
