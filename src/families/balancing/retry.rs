//! Retries: exponential back-off with jitter, and a retry budget. Pure and sans-IO: the caller
//! passes its local time and its seeded rng, and schedules the retry itself.
//!
//! # Back-off and jitter (AWS Architecture Blog, Brooker, "Exponential Backoff and Jitter",
//! 2015)
//!
//! For retry number `n` (0 for the first retry, i.e. attempt 2), with `exp = min(cap, base ×
//! 2^n)`:
//! - `none`: `exp`;
//! - `full`: uniform in `[0, exp]`;
//! - `equal`: `exp / 2 + ` uniform in `[0, exp / 2]`;
//! - `decorrelated`: `min(cap, ` uniform in `[base, previous × 3])` where `previous` is the
//!   delay before the previous attempt (`base` for the first retry).
//!
//! Every delay is within `[0, cap]`; `none` and `equal` never go below `exp / 2`, decorrelated
//! never below `min(base, cap)`.
//!
//! # Retry budget (Envoy's `retry_budget`, Finagle's `RetryBudget`)
//!
//! Requests and retries are counted over a sliding `window` ([`super::window::WindowCount`]).
//! A retry is allowed while, counting it, `retries ≤ ratio × requests + min_per_second ×
//! window` (in seconds): at most `ratio` extra load from retries, plus a floor so a caller
//! with little traffic can still retry. A retry storm across layers is capped at `1 + ratio`
//! attempts per request per layer instead of `max_attempts`.
//!
//! # Planted bugs
//!
//! - `retry-without-backoff`: every retry goes at once (delay 0): a retry storm.
//! - `retry-without-budget`: the budget is never consulted: every failed request retries up
//!   to `max_attempts`, amplifying load by that factor on a failing dependency.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::options::{check_count, nested};
use super::window::WindowCount;
use crate::families::check_duration_from;
use crate::family::OptionError;
use crate::scenario::Duration;

/// Most attempts per request (`max_attempts`).
pub const MAX_ATTEMPTS: u32 = 100;
/// Largest budget `ratio`.
pub const MAX_BUDGET_RATIO: f64 = 100.0;
/// Largest budget `min_per_second`.
pub const MAX_MIN_PER_SECOND: u32 = 1_000_000;

/// The jitter of the back-off (AWS's names).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    /// Plain exponential back-off.
    None,
    /// Uniform between 0 and the exponential delay.
    #[default]
    Full,
    /// Half the exponential delay plus a uniform share of the other half.
    Equal,
    /// Uniform between `base` and three times the previous delay, capped.
    Decorrelated,
}

/// Planted bugs of retries (`bugs = [...]`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetryBug {
    /// Retries go at once, with no back-off.
    RetryWithoutBackoff,
    /// The retry budget is ignored.
    RetryWithoutBudget,
}

/// A retry budget (Envoy's `retry_budget`, Finagle's `RetryBudget`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    /// Retries allowed per request in the window (default 0.2; 0 to [`MAX_BUDGET_RATIO`]).
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// Retries per second always allowed (default 10; 0 to [`MAX_MIN_PER_SECOND`]).
    #[serde(default = "default_min_per_second")]
    pub min_per_second: u32,
    /// The window requests and retries are counted over (default 10s; 10ms to 1h).
    #[serde(default = "default_window")]
    pub window: Duration,
}

fn default_ratio() -> f64 {
    0.2
}
fn default_min_per_second() -> u32 {
    10
}
fn default_window() -> Duration {
    Duration::from_secs(10)
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            ratio: default_ratio(),
            min_per_second: default_min_per_second(),
            window: default_window(),
        }
    }
}

/// Retry options of a caller.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per request, the first included (default 3; 1 to [`MAX_ATTEMPTS`]; 1: no
    /// retries).
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// The back-off's base delay (default 25ms; 1ms to 1h).
    #[serde(default = "default_base")]
    pub base: Duration,
    /// The longest delay (default 1s; from `base` to 1h).
    #[serde(default = "default_cap")]
    pub cap: Duration,
    /// The jitter (default `full`).
    #[serde(default)]
    pub jitter: Jitter,
    /// A retry budget; unset: none (every failed attempt may retry up to `max_attempts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<BudgetConfig>,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<RetryBug>,
}

fn default_attempts() -> u32 {
    3
}
fn default_base() -> Duration {
    Duration::from_millis(25)
}
fn default_cap() -> Duration {
    Duration::from_secs(1)
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: default_attempts(),
            base: default_base(),
            cap: default_cap(),
            jitter: Jitter::default(),
            budget: None,
            bugs: Vec::new(),
        }
    }
}

impl RetryConfig {
    /// Every problem, each at its key (`budget.<key>` for the budget's); the limits are in the
    /// field docs.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        check_count(
            &mut errors,
            "max_attempts",
            self.max_attempts,
            1..=MAX_ATTEMPTS,
        );
        let ms = Duration::from_millis(1);
        check_duration_from(&mut errors, "base", self.base, ms);
        check_duration_from(&mut errors, "cap", self.cap, self.base.max(ms));
        if let Some(b) = &self.budget {
            let mut inner = Vec::new();
            if !(0.0..=MAX_BUDGET_RATIO).contains(&b.ratio) {
                inner.push(OptionError::at(
                    "ratio",
                    format!("expected from 0 to {MAX_BUDGET_RATIO}, found {}", b.ratio),
                ));
            }
            check_count(
                &mut inner,
                "min_per_second",
                b.min_per_second,
                0..=MAX_MIN_PER_SECOND,
            );
            check_duration_from(&mut inner, "window", b.window, Duration::from_millis(10));
            errors.extend(nested("budget", inner));
        }
        errors
    }
}

/// One caller's retry policy and budget.
#[derive(Clone, Debug)]
pub struct Retrier {
    config: RetryConfig,
    requests: WindowCount,
    retries: WindowCount,
    no_backoff: bool,
    no_budget: bool,
}

impl Retrier {
    /// A retrier with an empty budget window.
    pub fn new(config: &RetryConfig) -> Self {
        let window = config.budget.as_ref().map_or(1, |b| b.window.as_nanos());
        Retrier {
            config: config.clone(),
            requests: WindowCount::new(window),
            retries: WindowCount::new(window),
            no_backoff: config.bugs.contains(&RetryBug::RetryWithoutBackoff),
            no_budget: config.bugs.contains(&RetryBug::RetryWithoutBudget),
        }
    }

    /// A new request (its first attempt) at `now_ns`: counts toward the budget.
    pub fn on_request(&mut self, now_ns: u64) {
        if self.config.budget.is_some() {
            self.requests.add(now_ns, 1);
        }
    }

    /// May attempt `attempt` (2 = the first retry) follow a failed one at `now_ns`? The delay
    /// before it in nanoseconds, or None if the attempts or the budget are spent. A Some counts
    /// as a retry in the budget. `previous_delay_ns` is the delay before the failed attempt (0
    /// for the first attempt), for decorrelated jitter.
    pub fn next_retry(
        &mut self,
        attempt: u32,
        previous_delay_ns: u64,
        now_ns: u64,
        rng: &mut impl Rng,
    ) -> Option<u64> {
        if attempt < 2 || attempt > self.config.max_attempts {
            return None;
        }
        if let Some(b) = &self.config.budget
            && !self.no_budget
        {
            let requests = self.requests.sum(now_ns) as f64;
            let retries = self.retries.sum(now_ns) as f64;
            let window_s = b.window.as_nanos() as f64 / 1e9;
            if retries + 1.0 > b.ratio * requests + b.min_per_second as f64 * window_s {
                return None;
            }
        }
        if self.config.budget.is_some() {
            self.retries.add(now_ns, 1);
        }
        if self.no_backoff {
            return Some(0);
        }
        Some(self.delay(attempt - 2, previous_delay_ns, rng))
    }

    /// The back-off before retry number `retry` (0: the first), by the configured jitter.
    pub fn delay(&self, retry: u32, previous_delay_ns: u64, rng: &mut impl Rng) -> u64 {
        let base = self.config.base.as_nanos();
        let cap = self.config.cap.as_nanos();
        let exp = base
            .saturating_mul(1u64.checked_shl(retry).unwrap_or(u64::MAX))
            .min(cap);
        match self.config.jitter {
            Jitter::None => exp,
            Jitter::Full => rng.gen_range(0..=exp),
            Jitter::Equal => exp / 2 + rng.gen_range(0..=exp / 2),
            Jitter::Decorrelated => {
                let previous = if previous_delay_ns == 0 {
                    base
                } else {
                    previous_delay_ns
                };
                let high = previous.saturating_mul(3).max(base);
                rng.gen_range(base..=high).min(cap)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const MS: u64 = 1_000_000;

    fn retrier(jitter: Jitter) -> Retrier {
        Retrier::new(&RetryConfig {
            max_attempts: 10,
            jitter,
            ..RetryConfig::default()
        })
    }

    #[test]
    fn no_jitter_doubles_from_base_up_to_cap() {
        let mut r = retrier(Jitter::None);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let delays: Vec<u64> = (2..=10)
            .map(|a| r.next_retry(a, 0, 0, &mut rng).unwrap() / MS)
            .collect();
        assert_eq!(delays, [25, 50, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(r.next_retry(11, 0, 0, &mut rng), None, "attempts spent");
        assert_eq!(
            r.next_retry(1, 0, 0, &mut rng),
            None,
            "attempt 1 is no retry"
        );
    }

    #[test]
    fn full_and_equal_jitter_spread_over_their_ranges() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let full = retrier(Jitter::Full);
        let equal = retrier(Jitter::Equal);
        let f: Vec<u64> = (0..1000).map(|_| full.delay(3, 0, &mut rng)).collect();
        let e: Vec<u64> = (0..1000).map(|_| equal.delay(3, 0, &mut rng)).collect();
        // exp = 200 ms.
        assert!(f.iter().any(|&d| d < 20 * MS) && f.iter().any(|&d| d > 180 * MS));
        assert!(e.iter().all(|&d| (100 * MS..=200 * MS).contains(&d)));
        assert!(e.iter().any(|&d| d < 110 * MS) && e.iter().any(|&d| d > 190 * MS));
    }

    #[test]
    fn decorrelated_jitter_grows_from_the_previous_delay() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let r = retrier(Jitter::Decorrelated);
        for _ in 0..200 {
            let d = r.delay(0, 0, &mut rng);
            assert!((25 * MS..=75 * MS).contains(&d));
            let d = r.delay(1, 100 * MS, &mut rng);
            assert!((25 * MS..=300 * MS).contains(&d));
            assert!(r.delay(5, 900 * MS, &mut rng) <= 1000 * MS);
        }
    }

    fn budgeted(bugs: Vec<RetryBug>) -> Retrier {
        Retrier::new(&RetryConfig {
            max_attempts: 3,
            budget: Some(BudgetConfig {
                ratio: 0.2,
                min_per_second: 1,
                window: Duration::from_secs(10),
            }),
            bugs,
            ..RetryConfig::default()
        })
    }

    #[test]
    fn the_budget_caps_retries_at_ratio_of_requests_plus_the_floor() {
        let mut r = budgeted(vec![]);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for _ in 0..100 {
            r.on_request(0);
        }
        // 0.2 × 100 + 1 × 10 = 30 retries in the window.
        let allowed = (0..100)
            .filter(|_| r.next_retry(2, 0, 0, &mut rng).is_some())
            .count();
        assert_eq!(allowed, 30);
        // The window slides: after it, the retries are forgotten and only the floor remains.
        let later = 20_000 * MS;
        let allowed = (0..100)
            .filter(|_| r.next_retry(2, 0, later, &mut rng).is_some())
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn retry_without_budget_bug_ignores_the_budget() {
        let mut r = budgeted(vec![RetryBug::RetryWithoutBudget]);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        r.on_request(0);
        assert!((0..100).all(|_| r.next_retry(2, 0, 0, &mut rng).is_some()));
        assert_eq!(
            r.next_retry(4, 0, 0, &mut rng),
            None,
            "attempts still bound it"
        );
    }

    #[test]
    fn retry_without_backoff_bug_retries_at_once() {
        let mut r = budgeted(vec![RetryBug::RetryWithoutBackoff]);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        r.on_request(0);
        assert_eq!(r.next_retry(2, 0, 0, &mut rng), Some(0));
        assert_eq!(r.next_retry(3, 0, 0, &mut rng), Some(0));
    }

    #[test]
    fn retry_options_parse_and_validate_at_their_keys() {
        let c: RetryConfig = toml::from_str(
            "jitter = \"decorrelated\"\nbugs = [\"retry-without-backoff\", \"retry-without-budget\"]\n[budget]\nratio = 0.1",
        )
        .unwrap();
        assert_eq!(c.jitter, Jitter::Decorrelated);
        assert_eq!(c.budget.as_ref().unwrap().window, Duration::from_secs(10));
        assert_eq!(c.bugs.len(), 2);
        assert!(c.validate().is_empty());
        assert!(toml::from_str::<RetryConfig>("retries = 3").is_err());
        let bad = RetryConfig {
            max_attempts: 0,
            base: Duration::from_secs(2),
            budget: Some(BudgetConfig {
                ratio: -1.0,
                min_per_second: 10,
                window: Duration::from_millis(1),
            }),
            ..RetryConfig::default()
        };
        let keys: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(
            keys,
            ["max_attempts", "cap", "budget.ratio", "budget.window"]
        );
    }

    proptest! {
        #[test]
        fn jittered_delays_stay_within_their_ranges(
            retry in 0u32..70,
            previous in 0u64..5_000_000_000,
            base_ms in 1u64..100,
            cap_ms in 100u64..5000,
            seed in any::<u64>(),
        ) {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let config = |jitter| RetryConfig {
                base: Duration::from_millis(base_ms),
                cap: Duration::from_millis(cap_ms),
                jitter,
                ..RetryConfig::default()
            };
            let (base, cap) = (base_ms * MS, cap_ms * MS);
            let exp = base.saturating_mul(1u64.checked_shl(retry).unwrap_or(u64::MAX)).min(cap);
            let none = Retrier::new(&config(Jitter::None)).delay(retry, previous, &mut rng);
            prop_assert_eq!(none, exp);
            let full = Retrier::new(&config(Jitter::Full)).delay(retry, previous, &mut rng);
            prop_assert!(full <= exp);
            let equal = Retrier::new(&config(Jitter::Equal)).delay(retry, previous, &mut rng);
            prop_assert!(equal >= exp / 2 && equal <= exp);
            let dec = Retrier::new(&config(Jitter::Decorrelated)).delay(retry, previous, &mut rng);
            let prev = if previous == 0 { base } else { previous };
            prop_assert!(dec >= base.min(cap) && dec <= cap && dec <= (prev * 3).max(base));
        }

        #[test]
        fn the_budget_never_allows_more_than_its_share(
            events in proptest::collection::vec((any::<bool>(), 0u64..500), 1..500),
        ) {
            let mut r = budgeted(vec![]);
            let mut rng = ChaCha8Rng::seed_from_u64(9);
            let mut now = 0;
            let mut requests: Vec<u64> = Vec::new();
            let mut retries: Vec<u64> = Vec::new();
            let window = 10_000 * MS;
            let slice = window / 10;
            for (is_request, dt) in events {
                now += dt * MS;
                if is_request {
                    r.on_request(now);
                    requests.push(now);
                } else if r.next_retry(2, 0, now, &mut rng).is_some() {
                    retries.push(now);
                    // The sliced window covers between window - slice and window back from
                    // now: retries in the shorter span are bounded by the share of requests
                    // in the longer one plus the floor (1 per second × 10 s).
                    let recent = |times: &[u64], span: u64| {
                        times.iter().filter(|&&t| t + span > now).count() as f64
                    };
                    let bound = 0.2 * recent(&requests, window) + 10.0;
                    prop_assert!(recent(&retries, window - slice) <= bound);
                }
            }
        }
    }
}
