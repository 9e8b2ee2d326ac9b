//! A count over a sliding time window, kept in [`SLICES`] slices (Finagle's `WindowedAdder`,
//! resilience4j's time-based sliding window): the retry budget counts requests and retries
//! with it, the circuit breaker requests and failures. Constant memory and no allocation;
//! the window slides a slice (`window / SLICES`) at a time, so a count covers the events of
//! the last `window - slice` to `window` (the newest slice is partial).

/// Slices per window.
pub const SLICES: usize = 10;

/// Events counted over the last `window_ns` (see the module docs).
#[derive(Clone, Debug)]
pub struct WindowCount {
    slice_ns: u64,
    slices: [u64; SLICES],
    /// The slice number (`time / slice_ns`) of the newest slice.
    epoch: u64,
}

impl WindowCount {
    /// An empty count over a window of `window_ns` (at least `SLICES` ns; shorter windows are
    /// stretched to it).
    pub fn new(window_ns: u64) -> Self {
        WindowCount {
            slice_ns: (window_ns / SLICES as u64).max(1),
            slices: [0; SLICES],
            epoch: 0,
        }
    }

    fn advance(&mut self, now_ns: u64) {
        let epoch = now_ns / self.slice_ns;
        if epoch <= self.epoch {
            return;
        }
        let gap = (epoch - self.epoch).min(SLICES as u64);
        for k in 1..=gap {
            self.slices[((self.epoch + k) % SLICES as u64) as usize] = 0;
        }
        self.epoch = epoch;
    }

    /// Counts `n` events at `now_ns` (times must not go backwards by more than a slice; an
    /// older time counts in the newest slice).
    pub fn add(&mut self, now_ns: u64, n: u64) {
        self.advance(now_ns);
        self.slices[(self.epoch % SLICES as u64) as usize] += n;
    }

    /// Events in the window ending at `now_ns`.
    pub fn sum(&mut self, now_ns: u64) -> u64 {
        self.advance(now_ns);
        self.slices.iter().sum()
    }

    /// Forgets every event.
    pub fn clear(&mut self) {
        self.slices = [0; SLICES];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_forget_events_older_than_the_window() {
        let s = 1_000_000_000;
        let mut w = WindowCount::new(10 * s);
        w.add(0, 3);
        w.add(5 * s, 2);
        assert_eq!(w.sum(9 * s), 5);
        assert_eq!(w.sum(10 * s), 2, "the slice of time 0 left the window");
        assert_eq!(w.sum(15 * s), 0);
        w.add(100 * s, 1);
        assert_eq!(w.sum(100 * s), 1, "a long gap clears every slice");
        w.clear();
        assert_eq!(w.sum(100 * s), 0);
    }
}
