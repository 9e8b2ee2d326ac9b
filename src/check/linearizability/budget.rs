//! The time and memory budget of one check. When either runs out the verdict is `unknown`,
//! never a guess. This is the only place in the checker that reads the wall clock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Why a search stopped before deciding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exhausted {
    /// The wall-clock time limit passed.
    Time(Duration),
    /// The memo tables would have exceeded the memory limit (bytes).
    Memory(usize),
    /// The step limit of a counterexample search was reached.
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
                "the memory limit of {} MiB for the search's tables ran out",
                b >> 20
            ),
            Exhausted::Steps(n) => write!(f, "the step limit of {n} ran out"),
        }
    }
}

/// A budget shared by the searches of one check (all partitions).
#[derive(Debug)]
pub struct Budget {
    start: Instant,
    time_limit: Option<Duration>,
    memory_limit_bytes: usize,
    memory_used_bytes: AtomicUsize,
    memory_peak_bytes: AtomicUsize,
    out: AtomicBool,
}

impl Budget {
    /// A budget starting now. `time_limit: None` means no time limit.
    #[allow(clippy::disallowed_methods)] // wall-clock budget (allowed)
    pub fn new(time_limit: Option<Duration>, memory_limit_bytes: usize) -> Self {
        Budget {
            start: Instant::now(), // wall-clock: the checker runs outside simulations
            time_limit,
            memory_limit_bytes,
            memory_used_bytes: AtomicUsize::new(0),
            memory_peak_bytes: AtomicUsize::new(0),
            out: AtomicBool::new(false),
        }
    }

    /// `Err` if the time limit has passed (or an earlier check found the budget spent).
    pub fn check_time(&self) -> Result<(), Exhausted> {
        if let Some(limit) = self.time_limit {
            if self.out.load(Ordering::Relaxed) || self.start.elapsed() > limit {
                self.out.store(true, Ordering::Relaxed);
                return Err(Exhausted::Time(limit));
            }
        }
        Ok(())
    }

    /// Claims `bytes` more memory; `Err` (claiming nothing) if that would pass the limit.
    pub fn reserve(&self, bytes: usize) -> Result<(), Exhausted> {
        let before = self.memory_used_bytes.fetch_add(bytes, Ordering::Relaxed);
        let now = before + bytes;
        if now > self.memory_limit_bytes {
            self.memory_used_bytes.fetch_sub(bytes, Ordering::Relaxed);
            return Err(Exhausted::Memory(self.memory_limit_bytes));
        }
        self.memory_peak_bytes.fetch_max(now, Ordering::Relaxed);
        Ok(())
    }

    /// Returns `bytes` claimed earlier.
    pub fn release(&self, bytes: usize) {
        self.memory_used_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The most memory claimed at once so far (bytes).
    pub fn peak_bytes(&self) -> usize {
        self.memory_peak_bytes.load(Ordering::Relaxed)
    }
}
