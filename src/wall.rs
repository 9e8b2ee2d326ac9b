//! The wall clock, for measurements only: how long a command, a benchmark or a check took, in
//! real time. Never read it inside a simulation (simulated code sees the world's virtual time;
//! STYLE.md rule 2) and never let a verdict depend on it. This module is the one place that may
//! call `Instant::now` for that purpose (clippy's `disallowed-methods` is allowed here only); the
//! CLI and the checker's benchmarks read it from here, so nothing below the CLI imports `cli`.

use std::time::Instant;

/// The wall clock now (for measurements only).
#[allow(clippy::disallowed_methods)] // wall-clock measurement, never in a simulation (allowed)
pub(crate) fn wall_now() -> Instant {
    Instant::now()
}

/// Whole milliseconds of wall time since `start` (from [`wall_now`]).
pub(crate) fn elapsed_ms(start: Instant) -> u64 {
    start.elapsed().as_millis() as u64
}
