//! The live progress line of a long run, on standard error: simulated time reached (with a bar
//! over the run's duration), events fired, messages sent and wall time, drawn with `indicatif`.
//!
//! The simulation publishes its counters into a [`RunProgress`] (plain atomics it only stores
//! into); a display thread started here, outside the simulation, reads them every 100 ms and
//! draws. The line appears only once a run has taken about a second, only when standard error
//! is a terminal, and never with `--quiet`; it is cleared when the run ends, so the summary and
//! any redirected output are unchanged.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::sim::RunProgress;
use crate::wall::wall_now;

/// Wall time before the line appears: short runs never show it.
const SHOW_AFTER: Duration = Duration::from_secs(1);
/// How often the line is redrawn.
const REFRESH: Duration = Duration::from_millis(100);

/// A running progress display; [`ProgressLine::stop`] clears it.
pub struct ProgressLine {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts a display for one run and returns the counters to hand to `sim::run` (through
    /// `RunOptions::progress`). With `quiet`, or when standard error is not a terminal, nothing
    /// is displayed and no counters are returned.
    pub fn start(quiet: bool) -> (ProgressLine, Option<Arc<RunProgress>>) {
        if quiet || !std::io::stderr().is_terminal() {
            return (
                ProgressLine {
                    stop: Arc::new(AtomicBool::new(true)),
                    thread: None,
                },
                None,
            );
        }
        let counters = Arc::new(RunProgress::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let counters = counters.clone();
            let stop = stop.clone();
            std::thread::spawn(move || display(&counters, &stop))
        };
        (
            ProgressLine {
                stop,
                thread: Some(thread),
            },
            Some(counters),
        )
    }

    /// Clears the line and ends the display.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The display thread's loop.
fn display(counters: &RunProgress, stop: &AtomicBool) {
    let start = wall_now();
    let mut bar: Option<ProgressBar> = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(REFRESH);
        let wall = start.elapsed();
        if wall < SHOW_AFTER {
            continue;
        }
        let end_ns = counters.end_ns.load(Ordering::Relaxed).max(1);
        let bar = bar.get_or_insert_with(|| {
            let b = ProgressBar::with_draw_target(Some(end_ns), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{bar:24.cyan/blue} {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b
        });
        bar.set_position(counters.now_ns.load(Ordering::Relaxed).min(end_ns));
        bar.set_message(line(counters, wall));
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// The text after the bar.
fn line(counters: &RunProgress, wall: Duration) -> String {
    let seconds = |ns: u64| ns as f64 / 1e9;
    let now = counters.now_ns.load(Ordering::Relaxed);
    let end = counters.end_ns.load(Ordering::Relaxed);
    let what = if counters.finished.load(Ordering::Relaxed) {
        "simulated; checking".to_string()
    } else {
        "simulated".to_string()
    };
    format!(
        "{:.1} s of {:.1} s {what} · {} events · {} messages · {:.1} s wall",
        seconds(now),
        seconds(end),
        counters.events.load(Ordering::Relaxed),
        counters.messages_sent.load(Ordering::Relaxed),
        wall.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_simulated_time_events_messages_and_wall_time() {
        let c = RunProgress::default();
        c.now_ns.store(12_300_000_000, Ordering::Relaxed);
        c.end_ns.store(60_000_000_000, Ordering::Relaxed);
        c.events.store(1234, Ordering::Relaxed);
        c.messages_sent.store(567, Ordering::Relaxed);
        assert_eq!(
            line(&c, Duration::from_millis(4200)),
            "12.3 s of 60.0 s simulated · 1234 events · 567 messages · 4.2 s wall"
        );
        c.finished.store(true, Ordering::Relaxed);
        assert!(line(&c, Duration::ZERO).contains("simulated; checking"));
    }

    #[test]
    fn quiet_starts_no_display_and_hands_no_counters() {
        let (line, counters) = ProgressLine::start(true);
        assert!(counters.is_none());
        assert!(line.thread.is_none());
        line.stop();
    }
}
