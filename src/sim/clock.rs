//! Per-node local clocks with offset, drift and jumps.
//!
//! A local clock is piecewise linear in global simulated time: from an anchor
//! `(anchor_global_ns, anchor_local_ns)` it advances at `rate = 1 + drift` local nanoseconds per
//! global nanosecond. A jump moves the local reading by a delta at one instant; a drift change
//! re-anchors at the current instant and changes the rate. Processes only ever see their local
//! clock; timers are set in local time and the world converts each deadline to the first global
//! instant at which the local clock reaches it, so a fast clock fires early in global time and a
//! backward jump postpones every pending timer.

use serde::Serialize;

/// One node's local clock.
#[derive(Copy, Clone, Debug, PartialEq, Serialize)]
pub struct Clock {
    anchor_global_ns: u64,
    anchor_local_ns: i64,
    drift: f64,
}

impl Clock {
    /// A clock reading `offset_ns` at global time 0 and running at `1 + drift` (drift > -1).
    pub fn new(offset_ns: i64, drift: f64) -> Self {
        assert!(
            drift > -1.0,
            "a clock must move forward (drift > -1), got {drift}"
        );
        Clock {
            anchor_global_ns: 0,
            anchor_local_ns: offset_ns,
            drift,
        }
    }

    /// The current drift.
    pub fn drift(&self) -> f64 {
        self.drift
    }

    /// Local reading at global time `global_ns` (not before the last anchor).
    pub fn local_at(&self, global_ns: u64) -> i64 {
        let elapsed = global_ns.saturating_sub(self.anchor_global_ns);
        self.anchor_local_ns + self.scale(elapsed)
    }

    fn scale(&self, elapsed_ns: u64) -> i64 {
        if self.drift == 0.0 {
            elapsed_ns as i64
        } else {
            (elapsed_ns as f64 * (1.0 + self.drift)).floor() as i64
        }
    }

    /// The first global instant at or after `now_ns` at which the local clock reads at least
    /// `local_ns`.
    pub fn global_when(&self, local_ns: i64, now_ns: u64) -> u64 {
        let now_local = self.local_at(now_ns);
        if local_ns <= now_local {
            return now_ns;
        }
        let ahead = (local_ns - now_local) as u64;
        let mut t = if self.drift == 0.0 {
            now_ns + ahead
        } else {
            now_ns + (ahead as f64 / (1.0 + self.drift)).ceil() as u64
        };
        // Floating-point rounding: step until the reading really reaches the deadline.
        while self.local_at(t) < local_ns {
            t += 1;
        }
        t
    }

    /// Jumps the local reading by `delta_ns` at global time `now_ns`.
    pub fn jump(&mut self, now_ns: u64, delta_ns: i64) {
        self.anchor_local_ns = self.local_at(now_ns) + delta_ns;
        self.anchor_global_ns = now_ns;
    }

    /// Sets a new drift from global time `now_ns` on (drift > -1).
    pub fn set_drift(&mut self, now_ns: u64, drift: f64) {
        assert!(
            drift > -1.0,
            "a clock must move forward (drift > -1), got {drift}"
        );
        self.anchor_local_ns = self.local_at(now_ns);
        self.anchor_global_ns = now_ns;
        self.drift = drift;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_fast_clock_reaches_local_deadlines_early_in_global_time() {
        let clock = Clock::new(0, 0.25);
        assert_eq!(clock.local_at(100 * MS), 125 * MS as i64);
        // A 100ms local timer set at global 0 fires at global 80ms.
        assert_eq!(clock.global_when(100 * MS as i64, 0), 80 * MS);
        let slow = Clock::new(0, -0.5);
        assert_eq!(slow.global_when(100 * MS as i64, 0), 200 * MS);
    }

    #[test]
    fn offsets_and_jumps_shift_readings_and_deadlines() {
        let mut clock = Clock::new(-(50 * MS as i64), 0.0);
        assert_eq!(clock.local_at(50 * MS), 0);
        clock.jump(100 * MS, 1_000 * MS as i64);
        assert_eq!(clock.local_at(100 * MS), 1_050 * MS as i64);
        // A deadline already passed by the jump fires at once.
        assert_eq!(clock.global_when(500 * MS as i64, 100 * MS), 100 * MS);
        clock.jump(200 * MS, -(2_000 * MS as i64));
        assert_eq!(clock.local_at(200 * MS), -(850 * MS as i64));
    }

    #[test]
    fn drift_changes_reanchor_without_a_discontinuity() {
        let mut clock = Clock::new(0, 0.0);
        clock.set_drift(1_000 * MS, 1.0);
        assert_eq!(clock.local_at(1_000 * MS), 1_000 * MS as i64);
        assert_eq!(clock.local_at(1_500 * MS), 2_000 * MS as i64);
    }
}
