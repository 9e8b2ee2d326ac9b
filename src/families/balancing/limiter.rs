//! Rate limiters for a balancer or a backend. Pure and sans-IO: the caller passes its local
//! time and acts on the [`Admission`].
//!
//! Every limiter answers one question for a request arriving at `now`: the earliest time
//! `t >= now` at which it conforms. If `t = now` it is admitted now; otherwise, in `reject`
//! mode it is refused, and in `queue` mode it waits `t - now` (reserving its slot) unless
//! `queue_limit` requests are already waiting, in which case it is refused.
//!
//! - **Token bucket** (the classic shaper; Guava's `RateLimiter` for reservations): `burst`
//!   tokens, refilled at `rate_per_s`, starting full; a request takes one. Invariant: by any time
//!   `T`, at most `burst + rate × T` requests have been let through (now or after their wait).
//! - **Sliding window log** (exact, not Cloudflare's two-counter approximation): the times of
//!   the requests let through are kept; a request conforms at `t` if fewer than `limit = rate ×
//!   window` of them fall in `(t - window, t]`. Invariant: no window of that length ever lets
//!   through more than `limit`. The log holds at most `limit + queue_limit` times, so `limit`
//!   is bounded by [`MAX_WINDOW_LIMIT`].
//! - **Leaky bucket as a queue** (Tanenbaum; nginx's `limit_req` without `burst`'s `nodelay`):
//!   requests leave at a steady `rate_per_s`, one every `1 / rate` seconds; in `queue` mode up
//!   to `queue_limit` wait their turn, in `reject` mode only a request whose turn is now passes
//!   (a strict spacing meter). `burst` is not used.
//!
//! Sources: Tanenbaum, *Computer Networks* §5.3 (leaky and token buckets); Google's SRE book,
//! "Handling Overload"; Cloudflare, "How we built rate limiting capable of scaling to millions
//! of domains" (2017), for the sliding window family.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::options::check_count;
use crate::families::check_duration_from;
use crate::family::OptionError;
use crate::scenario::Duration;

/// Largest `rate_per_s`.
pub const MAX_RATE_PER_S: f64 = 1e7;
/// Largest `burst` and `queue_limit`.
pub const MAX_BURST: u32 = 1_000_000;
/// Largest sliding-window limit (`rate_per_s × window`).
pub const MAX_WINDOW_LIMIT: f64 = 1e6;

/// The limiter's algorithm.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimiterKind {
    /// A token bucket with `burst`.
    #[default]
    TokenBucket,
    /// A sliding window log of `rate × window` requests per `window`.
    SlidingWindow,
    /// A leaky bucket (a queue drained at the rate).
    LeakyBucket,
}

/// What happens to a request that does not conform now.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LimitMode {
    /// Refuse it.
    #[default]
    Reject,
    /// Delay it until it conforms, if fewer than `queue_limit` are waiting.
    Queue,
}

/// Options of a rate limiter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// The algorithm (default `token-bucket`).
    #[serde(default)]
    pub limiter: LimiterKind,
    /// Requests per second let through in the long run (default 100; above 0 up to
    /// [`MAX_RATE_PER_S`]).
    #[serde(default = "default_rate")]
    pub rate_per_s: f64,
    /// Token bucket's size: requests let through at once after a quiet spell (default 10; 1
    /// to [`MAX_BURST`]).
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Sliding window's length (default 1s; 1ms to 1h); `rate_per_s × window` must be from 1
    /// to [`MAX_WINDOW_LIMIT`].
    #[serde(default = "default_window")]
    pub window: Duration,
    /// Requests that may wait in `queue` mode (default 100; 0 to [`MAX_BURST`]).
    #[serde(default = "default_queue")]
    pub queue_limit: u32,
    /// Reject or queue (default `reject`).
    #[serde(default)]
    pub mode: LimitMode,
}

fn default_rate() -> f64 {
    100.0
}
fn default_burst() -> u32 {
    10
}
fn default_window() -> Duration {
    Duration::from_secs(1)
}
fn default_queue() -> u32 {
    100
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            limiter: LimiterKind::default(),
            rate_per_s: default_rate(),
            burst: default_burst(),
            window: default_window(),
            queue_limit: default_queue(),
            mode: LimitMode::default(),
        }
    }
}

impl RateLimitConfig {
    /// Every problem, each at its key; the limits are in the field docs.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        let r = self.rate_per_s;
        if !(r > 0.0 && r <= MAX_RATE_PER_S) {
            errors.push(OptionError::at(
                "rate_per_s",
                format!("expected above 0 and at most {MAX_RATE_PER_S}, found {r}"),
            ));
        }
        check_count(&mut errors, "burst", self.burst, 1..=MAX_BURST);
        check_duration_from(&mut errors, "window", self.window, Duration::from_millis(1));
        let limit = self.window_limit();
        if self.limiter == LimiterKind::SlidingWindow && !(1.0..=MAX_WINDOW_LIMIT).contains(&limit)
        {
            errors.push(OptionError::at(
                "window",
                format!(
                    "rate_per_s × window must be from 1 to {MAX_WINDOW_LIMIT} requests, found {limit}"
                ),
            ));
        }
        check_count(&mut errors, "queue_limit", self.queue_limit, 0..=MAX_BURST);
        errors
    }

    /// The sliding window's limit, `rate_per_s × window` (in seconds), unrounded.
    pub fn window_limit(&self) -> f64 {
        self.rate_per_s * self.window.as_nanos() as f64 / 1e9
    }
}

/// A limiter's answer for one request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go now.
    Now,
    /// Go after waiting this long (queue mode); the slot is reserved.
    After {
        /// The wait in nanoseconds (at least 1).
        delay_ns: u64,
    },
    /// Refused: over the rate (and the queue, in queue mode).
    Reject,
}

/// One rate limiter (see the module docs).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    config: RateLimitConfig,
    /// Token bucket: tokens at `tokens_at` (negative: reserved by waiting requests).
    tokens: f64,
    tokens_at: u64,
    /// Sliding window: times of the requests let through (some in the future: waiting), in
    /// order. Leaky bucket: the time the last request leaves.
    log: VecDeque<u64>,
    next_leak: u64,
    /// Times waiting requests go, in order (for the queue's length).
    waiting: VecDeque<u64>,
    limit: usize,
    interval_ns: u64,
}

impl RateLimiter {
    /// A limiter with a full bucket, an empty log and an empty queue.
    pub fn new(config: &RateLimitConfig) -> Self {
        RateLimiter {
            config: config.clone(),
            tokens: config.burst as f64,
            tokens_at: 0,
            log: VecDeque::new(),
            next_leak: 0,
            waiting: VecDeque::new(),
            limit: (config.window_limit().floor() as usize).max(1),
            interval_ns: ((1e9 / config.rate_per_s).ceil() as u64).max(1),
        }
    }

    /// Requests waiting (admitted with a delay that has not yet passed) at `now_ns`.
    pub fn waiting(&mut self, now_ns: u64) -> usize {
        while self.waiting.front().is_some_and(|&t| t <= now_ns) {
            self.waiting.pop_front();
        }
        self.waiting.len()
    }

    /// Admits, delays or rejects a request arriving at `now_ns`.
    pub fn admit(&mut self, now_ns: u64) -> Admission {
        let may_wait = self.config.mode == LimitMode::Queue
            && self.waiting(now_ns) < self.config.queue_limit as usize;
        let at = match self.config.limiter {
            LimiterKind::TokenBucket => {
                let rate = self.config.rate_per_s / 1e9;
                let elapsed = now_ns.saturating_sub(self.tokens_at) as f64;
                self.tokens = (self.tokens + elapsed * rate).min(self.config.burst as f64);
                self.tokens_at = self.tokens_at.max(now_ns);
                let at = if self.tokens >= 1.0 {
                    now_ns
                } else {
                    now_ns + ((1.0 - self.tokens) / rate).ceil() as u64
                };
                if at == now_ns || may_wait {
                    self.tokens -= 1.0;
                }
                at
            }
            LimiterKind::SlidingWindow => {
                let window = self.config.window.as_nanos();
                while self.log.front().is_some_and(|&t| t + window <= now_ns) {
                    self.log.pop_front();
                }
                let at = if self.log.len() < self.limit {
                    now_ns
                } else {
                    // The request `limit` places back must leave the window first.
                    (self.log[self.log.len() - self.limit] + window).max(now_ns)
                };
                if at == now_ns || may_wait {
                    self.log.push_back(at);
                }
                at
            }
            LimiterKind::LeakyBucket => {
                let at = self.next_leak.max(now_ns);
                if at == now_ns || may_wait {
                    self.next_leak = at + self.interval_ns;
                }
                at
            }
        };
        if at == now_ns {
            Admission::Now
        } else if may_wait {
            self.waiting.push_back(at);
            Admission::After {
                delay_ns: at - now_ns,
            }
        } else {
            Admission::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: u64 = 1_000_000;

    fn limiter(limiter: LimiterKind, mode: LimitMode) -> RateLimiter {
        RateLimiter::new(&RateLimitConfig {
            limiter,
            rate_per_s: 10.0,
            burst: 5,
            window: Duration::from_secs(1),
            queue_limit: 3,
            mode,
        })
    }

    #[test]
    fn token_bucket_allows_a_burst_then_the_rate() {
        let mut l = limiter(LimiterKind::TokenBucket, LimitMode::Reject);
        let now: Vec<Admission> = (0..7).map(|_| l.admit(0)).collect();
        assert_eq!(now.iter().filter(|&&a| a == Admission::Now).count(), 5);
        assert_eq!(now[5], Admission::Reject);
        assert_eq!(l.admit(99 * MS), Admission::Reject);
        assert_eq!(l.admit(100 * MS), Admission::Now, "one token per 100 ms");
        assert_eq!(l.admit(100 * MS), Admission::Reject);
    }

    #[test]
    fn token_bucket_queues_up_to_the_queue_limit() {
        let mut l = limiter(LimiterKind::TokenBucket, LimitMode::Queue);
        for _ in 0..5 {
            assert_eq!(l.admit(0), Admission::Now);
        }
        assert_eq!(l.admit(0), Admission::After { delay_ns: 100 * MS });
        assert_eq!(l.admit(0), Admission::After { delay_ns: 200 * MS });
        assert_eq!(l.admit(0), Admission::After { delay_ns: 300 * MS });
        assert_eq!(l.admit(0), Admission::Reject, "queue of 3 full");
        // At 100 ms one waiting request has gone: room for one, which waits until 400 ms.
        assert_eq!(l.admit(100 * MS), Admission::After { delay_ns: 300 * MS });
    }

    #[test]
    fn sliding_window_lets_limit_per_window_and_slides() {
        let mut l = limiter(LimiterKind::SlidingWindow, LimitMode::Reject);
        for k in 0..10 {
            assert_eq!(l.admit(k * 10 * MS), Admission::Now);
        }
        assert_eq!(l.admit(500 * MS), Admission::Reject);
        assert_eq!(l.admit(999 * MS), Admission::Reject);
        assert_eq!(
            l.admit(1000 * MS),
            Admission::Now,
            "the first left the window"
        );
        assert_eq!(l.admit(1005 * MS), Admission::Reject);
        let mut q = limiter(LimiterKind::SlidingWindow, LimitMode::Queue);
        for _ in 0..10 {
            q.admit(0);
        }
        assert_eq!(
            q.admit(0),
            Admission::After {
                delay_ns: 1000 * MS
            }
        );
    }

    #[test]
    fn leaky_bucket_spaces_requests_at_the_rate() {
        let mut l = limiter(LimiterKind::LeakyBucket, LimitMode::Queue);
        assert_eq!(l.admit(0), Admission::Now);
        assert_eq!(l.admit(0), Admission::After { delay_ns: 100 * MS });
        assert_eq!(l.admit(0), Admission::After { delay_ns: 200 * MS });
        assert_eq!(l.admit(0), Admission::After { delay_ns: 300 * MS });
        assert_eq!(l.admit(0), Admission::Reject);
        let mut m = limiter(LimiterKind::LeakyBucket, LimitMode::Reject);
        assert_eq!(m.admit(0), Admission::Now);
        assert_eq!(m.admit(50 * MS), Admission::Reject);
        assert_eq!(m.admit(100 * MS), Admission::Now);
    }

    #[test]
    fn limiter_options_parse_and_validate_at_their_keys() {
        let c: RateLimitConfig =
            toml::from_str("limiter = \"leaky-bucket\"\nmode = \"queue\"\nrate_per_s = 50.0")
                .unwrap();
        assert_eq!(
            (c.limiter, c.mode),
            (LimiterKind::LeakyBucket, LimitMode::Queue)
        );
        assert!(c.validate().is_empty());
        assert!(toml::from_str::<RateLimitConfig>("rate = 5.0").is_err());
        let bad = RateLimitConfig {
            limiter: LimiterKind::SlidingWindow,
            rate_per_s: 0.5,
            burst: 0,
            window: Duration::from_secs(1),
            queue_limit: 2_000_000,
            mode: LimitMode::Queue,
        };
        let keys: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(keys, ["burst", "window", "queue_limit"]);
        let bad = RateLimitConfig {
            rate_per_s: -1.0,
            ..RateLimitConfig::default()
        };
        assert_eq!(bad.validate()[0].path, ["rate_per_s"]);
    }

    /// Times each request goes (now or after its wait), for arrivals at `gaps` apart, in
    /// queue mode or reject mode.
    fn run(kind: LimiterKind, queue: bool, gaps: &[u64]) -> Vec<u64> {
        let mode = if queue {
            LimitMode::Queue
        } else {
            LimitMode::Reject
        };
        let mut l = limiter(kind, mode);
        let mut now = 0;
        let mut gone = Vec::new();
        for &g in gaps {
            now += g;
            match l.admit(now) {
                Admission::Now => gone.push(now),
                Admission::After { delay_ns } => gone.push(now + delay_ns),
                Admission::Reject => {}
            }
        }
        gone.sort_unstable();
        gone
    }

    proptest! {
        #[test]
        fn token_bucket_never_lets_more_than_burst_plus_rate_times_t(
            gaps in proptest::collection::vec(0u64..50 * MS, 1..400),
            queue in any::<bool>(),
        ) {
            let gone = run(LimiterKind::TokenBucket, queue, &gaps);
            for (k, &t) in gone.iter().enumerate() {
                let allowed = 5.0 + 10.0 * t as f64 / 1e9;
                prop_assert!((k + 1) as f64 <= allowed + 1e-6, "{} by {}", k + 1, t);
            }
        }

        #[test]
        fn sliding_window_never_lets_more_than_limit_per_window(
            gaps in proptest::collection::vec(0u64..50 * MS, 1..400),
            queue in any::<bool>(),
        ) {
            let gone = run(LimiterKind::SlidingWindow, queue, &gaps);
            for (k, &t) in gone.iter().enumerate() {
                let in_window = gone[..=k].iter().filter(|&&s| s + 1000 * MS > t).count();
                prop_assert!(in_window <= 10, "{} in the window ending at {}", in_window, t);
            }
        }

        #[test]
        fn leaky_bucket_spaces_every_departure(
            gaps in proptest::collection::vec(0u64..200 * MS, 1..300),
            queue in any::<bool>(),
        ) {
            let gone = run(LimiterKind::LeakyBucket, queue, &gaps);
            for pair in gone.windows(2) {
                prop_assert!(pair[1] - pair[0] >= 100 * MS);
            }
        }
    }
}
