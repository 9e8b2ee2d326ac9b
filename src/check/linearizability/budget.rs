//! The budget of one check. Its verdict-deciding limits count work, so that a history gets the
//! same verdict on any machine: a **step limit** (model steps summed over every part's searches,
//! handed out in deterministic rounds by [`super::check_model`]) and a **memory limit** per part
//! (the search tables' estimated bytes, a function of the search alone). An optional wall-clock
//! **time limit**, chosen by the user, covers the whole check: pairing, conversion, the
//! pre-passes and the searches. When any runs out the verdict is `unknown`, never a guess. This
//! is the only place in the checker that reads the wall clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a search stopped before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// The user's wall-clock time limit passed.
    Time(Duration),
    /// One part's search tables would have exceeded the memory limit (bytes).
    Memory(usize),
    /// The check's step limit ran out (the limit, in model steps).
    Steps(u64),
}

impl std::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exhausted::Time(d) => write!(
                f,
                "the time limit of {} ran out",
                humantime::format_duration(*d)
            ),
            Exhausted::Memory(b) => write!(
                f,
                "the memory limit of {} MiB for one part's search tables ran out",
                b >> 20
            ),
            Exhausted::Steps(n) => write!(f, "the step limit of {n} model steps ran out"),
        }
    }
}

/// The wall-clock part of a check's budget, shared by everything the check does.
#[derive(Debug)]
pub struct Budget {
    start: Instant,
    time_limit: Option<Duration>,
    out: AtomicBool,
}

impl Budget {
    /// A budget starting now. `time_limit: None` means no time limit.
    pub fn new(time_limit: Option<Duration>) -> Self {
        Budget {
            start: crate::wall::wall_now(), // the user's optional wall-clock limit
            time_limit,
            out: AtomicBool::new(false),
        }
    }

    /// `Err` if the time limit has passed (or an earlier check found it passed). A zero limit
    /// has always passed.
    pub fn check_time(&self) -> Result<(), Exhausted> {
        if let Some(limit) = self.time_limit
            && (self.out.load(Ordering::Relaxed) || limit.is_zero() || self.start.elapsed() > limit)
        {
            self.out.store(true, Ordering::Relaxed);
            return Err(Exhausted::Time(limit));
        }
        Ok(())
    }

    /// Polls [`Budget::check_time`] once every 1024 calls of a loop (`i` counts them).
    pub fn poll(&self, i: usize) -> Result<(), Exhausted> {
        if i & 0x3ff == 0 {
            self.check_time()
        } else {
            Ok(())
        }
    }
}
