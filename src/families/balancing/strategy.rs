//! Balancer strategies: how a caller picks one backend of its current endpoint list for a
//! request. Pure and sans-IO: the caller passes the time (`now_ns`, its local clock), the
//! eligibility of each endpoint (health, breakers) and its seeded rng; nothing here reads a
//! clock, iterates a hash map or draws randomness of its own.
//!
//! # The strategies and their sources
//!
//! - **Round robin** and **weighted round robin**: nginx's *smooth* weighted round robin
//!   (`ngx_http_upstream_get_peer` in `ngx_http_upstream_round_robin.c`). On every pick each
//!   eligible endpoint's `current` grows by its effective weight, the endpoint with the largest
//!   `current` is chosen (the first on a tie) and loses the sum of the effective weights. Over
//!   any run of `W = Σ weights` picks with a fixed eligible set, endpoint `i` is chosen exactly
//!   `weight_i` times, interleaved (weights 5, 1, 1 give `a a b a c a a`, not `a a a a a b c`).
//!   Round robin is the same with every weight 1 (configured weights ignored), which is plain
//!   rotation over the eligible endpoints. (nginx also lowers a failing peer's effective
//!   weight; here failures are health's and the breaker's business.)
//! - **Random**: uniform over the eligible endpoints (configured weights ignored).
//! - **Least connections**: the eligible endpoint with the least *load*, ties broken uniformly
//!   at random. An endpoint's load is its requests in flight plus its *failure penalty*: every
//!   failed result (`ok = false`) adds 1 to a count that decays exponentially with time
//!   constant `ewma_decay`, so a backend that fails in 1 ms (and so never holds requests in
//!   flight) does not look like the least loaded one (Envoy's least-request balancer counts
//!   only active requests and leaves failures to outlier detection; the penalty is this
//!   library's answer to the herd on a fast-failing backend). Weights divide: the score is
//!   `(load + 1) / weight` (Envoy's least request with weights, bias 1).
//! - **Consistent hashing** (Karger et al. 1997): every endpoint owns `virtual_nodes` points on
//!   a 64-bit ring, point `v` of node `n` at `xxh3_64_with_seed(n ‖ v, seed)` (fixed bytes, no
//!   per-process seed: every caller builds the same ring, as the quorum family's
//!   `quorum::ring` does for its tokens). A key sits at `xxh3_64_with_seed(key, seed)` and goes
//!   to the first eligible endpoint clockwise. Points are named by node, not by list position,
//!   so when a backend leaves only its keys move (about 1/N of them).
//!   With **bounded loads** (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
//!   Bounded Loads", SODA 2018, §2): with `m` requests in flight over the `n` eligible
//!   endpoints counting the new one, no endpoint may hold more than `ceil(c · m / n)`; the walk
//!   goes on clockwise past full endpoints. Since the others hold fewer than `m` in all, some
//!   endpoint is always under the bound.
//! - **Power of two choices** (Mitzenmacher, "The Power of Two Choices in Randomized Load
//!   Balancing", 2001): two distinct eligible endpoints uniformly at random, the one with the
//!   lower least-connections score (the first on a tie).
//! - **Peak EWMA** (Finagle's `PeakEwma`, Linkerd/tower's `PeakEwma`): every endpoint keeps an
//!   estimate of its latency that jumps up to any slower observation (the *peak*) and otherwise
//!   moves toward new observations by `1 - exp(-Δt / ewma_decay)`; read at time `t` the estimate
//!   has decayed toward 0 by `exp(-(t - last) / ewma_decay)` (tower's decay on read, so an idle
//!   endpoint is tried again). Cost = estimate × (load + 1); an endpoint with no estimate yet
//!   and requests in flight costs a large penalty (Finagle's `Penalty`). Two random eligible
//!   endpoints, the cheaper one (as Linkerd).
//! - **Slow start** (Envoy's `slow_start_config.slow_start_window`, aggression 1): an endpoint
//!   that joins after the first endpoint set, or rejoins (`rejoined`, back from unhealthy or
//!   ejected), has its weight scaled by `max(0.1, elapsed / window)` until the window passes
//!   (Envoy's `min_weight_percent` default of 10%). Round robin and random pick it in that
//!   proportion; least connections, P2C and peak EWMA divide its attractiveness (its score or
//!   cost is divided by the factor). Consistent hashing ignores it (keys must stay put).
//!
//! # Remapping
//!
//! [`Balancer::set_endpoints`] (for consistent hashing, or its `modulo-hashing` bug) measures
//! how many keys of a fixed sample ([`REMAP_SAMPLE_KEYS`] keys, `0..10_000`, hashed as requests
//! are) changed backend between the old and the new endpoint set with every endpoint eligible,
//! against the ideal `|before - after| / max(before, after)`: about 10% going from 10 to 9
//! backends on the ring, about 90% with `hash(key) % N`.
//!
//! # Planted bugs
//!
//! - `least-conn-ignores-errors`: failures add no penalty; the load is only the requests in
//!   flight, so a backend that fails in 1 ms attracts nearly all traffic under least
//!   connections, P2C and peak EWMA.
//! - `modulo-hashing`: consistent hashing picks endpoint `hash(key) % N` of the list (the next
//!   eligible one after it), not the ring: removing one of 10 backends moves about 90% of keys.

use rand::Rng;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::options::check_count;
use crate::family::OptionError;
use crate::process::NodeId;
use crate::scenario::Duration;

/// Keys in the fixed sample [`Balancer::set_endpoints`] measures remapping over.
pub const REMAP_SAMPLE_KEYS: u64 = 10_000;
/// Most ring points per backend (`virtual_nodes`).
pub const MAX_VIRTUAL_NODES: u32 = 1000;
/// Largest bounded-load factor `c` accepted (`bounded_load`); 1 is the least.
pub const MAX_BOUNDED_LOAD: f64 = 100.0;
/// Smallest share of its weight a slow-starting endpoint gets (Envoy's `min_weight_percent`
/// default, 10%).
pub const SLOW_START_MIN_FACTOR: f64 = 0.1;
/// Fixed-point scale of smooth weighted round robin's weights (so a slow-start factor of 0.1
/// still leaves an integer weight).
const WEIGHT_SCALE: f64 = 1000.0;
/// Peak EWMA's cost of an endpoint with requests in flight but no latency observed yet
/// (Finagle's `Penalty`): worse than any real cost.
const EWMA_PENALTY: f64 = 1e18;

/// A balancing strategy, written in kebab-case in a scenario.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Rotation over the eligible endpoints (smooth round robin with every weight 1).
    #[default]
    RoundRobin,
    /// nginx's smooth weighted round robin over the endpoints' weights.
    WeightedRoundRobin,
    /// Uniform random.
    Random,
    /// The least loaded endpoint (in flight + failure penalty), ties at random.
    LeastConnections,
    /// A ring with virtual nodes (optionally with bounded loads).
    ConsistentHash,
    /// The less loaded of two distinct random endpoints. Also written `p2c`.
    #[serde(alias = "p2c")]
    PowerOfTwoChoices,
    /// The cheaper of two random endpoints by peak EWMA latency × (load + 1).
    PeakEwma,
}

impl StrategyKind {
    /// The name as written in a scenario.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::RoundRobin => "round-robin",
            StrategyKind::WeightedRoundRobin => "weighted-round-robin",
            StrategyKind::Random => "random",
            StrategyKind::LeastConnections => "least-connections",
            StrategyKind::ConsistentHash => "consistent-hash",
            StrategyKind::PowerOfTwoChoices => "power-of-two-choices",
            StrategyKind::PeakEwma => "peak-ewma",
        }
    }
}

/// Planted bugs of the strategies (`bugs = [...]`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyBug {
    /// Failed results add no penalty: a fast-failing backend looks least loaded.
    LeastConnIgnoresErrors,
    /// Consistent hashing uses `hash(key) % N` over the endpoint list instead of the ring.
    ModuloHashing,
}

/// Options of a balancer's strategy (embedded in the balancer role's and clients' options).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrategyConfig {
    /// The strategy (default `round-robin`).
    #[serde(default)]
    pub strategy: StrategyKind,
    /// Ring points per backend for consistent hashing (default 100; 1 to
    /// [`MAX_VIRTUAL_NODES`]).
    #[serde(default = "default_virtual_nodes")]
    pub virtual_nodes: u32,
    /// Consistent hashing with bounded loads: the factor `c` (from 1 to [`MAX_BOUNDED_LOAD`],
    /// e.g. 1.25); only with `strategy = "consistent-hash"`. Unset: plain ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounded_load: Option<f64>,
    /// Time constant of peak EWMA's decay and of the failure penalty's decay (default 10s,
    /// Finagle's `decayTime`; from 1ms to 1h).
    #[serde(default = "default_ewma_decay")]
    pub ewma_decay: Duration,
    /// Slow start window (Envoy's `slow_start_window`): a (re)joining endpoint's weight ramps
    /// from 10% to full over it (from 1ms to 1h). Unset: no slow start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_start: Option<Duration>,
    /// Planted bugs to switch on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bugs: Vec<StrategyBug>,
}

fn default_virtual_nodes() -> u32 {
    100
}
fn default_ewma_decay() -> Duration {
    Duration::from_secs(10)
}

impl Default for StrategyConfig {
    fn default() -> Self {
        StrategyConfig {
            strategy: StrategyKind::default(),
            virtual_nodes: default_virtual_nodes(),
            bounded_load: None,
            ewma_decay: default_ewma_decay(),
            slow_start: None,
            bugs: Vec::new(),
        }
    }
}

impl StrategyConfig {
    /// Every problem with these options, each at its key: `virtual_nodes` from 1 to
    /// [`MAX_VIRTUAL_NODES`]; `bounded_load` from 1 to [`MAX_BOUNDED_LOAD`] and only with
    /// `consistent-hash`; `ewma_decay` and `slow_start` from 1ms to 1h; each planted bug only
    /// under a strategy it affects.
    pub fn validate(&self) -> Vec<OptionError> {
        let mut errors = Vec::new();
        check_count(
            &mut errors,
            "virtual_nodes",
            self.virtual_nodes,
            1..=MAX_VIRTUAL_NODES,
        );
        if let Some(c) = self.bounded_load {
            if !(1.0..=MAX_BOUNDED_LOAD).contains(&c) {
                errors.push(OptionError::at(
                    "bounded_load",
                    format!("expected a factor from 1 to {MAX_BOUNDED_LOAD}, found {c}"),
                ));
            } else if self.strategy != StrategyKind::ConsistentHash {
                errors.push(OptionError::at(
                    "bounded_load",
                    "bounded loads apply only to strategy = \"consistent-hash\"",
                ));
            }
        }
        let ms = Duration::from_millis(1);
        crate::families::check_duration_from(&mut errors, "ewma_decay", self.ewma_decay, ms);
        if let Some(window) = self.slow_start {
            crate::families::check_duration_from(&mut errors, "slow_start", window, ms);
        }
        for (i, bug) in self.bugs.iter().enumerate() {
            let applies = match bug {
                StrategyBug::ModuloHashing => self.strategy == StrategyKind::ConsistentHash,
                StrategyBug::LeastConnIgnoresErrors => matches!(
                    self.strategy,
                    StrategyKind::LeastConnections
                        | StrategyKind::PowerOfTwoChoices
                        | StrategyKind::PeakEwma
                ),
            };
            if !applies {
                errors.push(OptionError::at_path(
                    &["bugs", &i.to_string()],
                    format!(
                        "this planted bug does nothing under strategy \"{}\": modulo-hashing needs consistent-hash; least-conn-ignores-errors needs least-connections, power-of-two-choices or peak-ewma",
                        self.strategy.name()
                    ),
                ));
            }
        }
        errors
    }
}

/// One backend of a caller's endpoint list.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// The backend node.
    pub node: NodeId,
    /// Its weight for weighted round robin and least connections (0 counts as 1).
    pub weight: u32,
}

/// What a change of the endpoint set did to the keys (see the module docs).
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Remap {
    /// Endpoints before.
    pub before: u32,
    /// Endpoints after.
    pub after: u32,
    /// Share of the sampled keys whose backend changed, from 0 to 1.
    pub moved_fraction: f64,
    /// The least share that must move: `|before - after| / max(before, after)`.
    pub ideal_fraction: f64,
}

/// Per-endpoint state, kept across endpoint-set changes for the nodes that stay.
#[derive(Copy, Clone, Debug, Default)]
struct State {
    in_flight: u32,
    /// Failure penalty as of `penalty_at`.
    penalty: f64,
    penalty_at: u64,
    /// Peak EWMA latency estimate (ns) as of `ewma_at`; 0: none yet.
    ewma_ns: f64,
    ewma_at: u64,
    /// Slow start began at this time (None: not in slow start).
    slow_start_since: Option<u64>,
    /// Smooth weighted round robin's `current`.
    current: i64,
}

/// A caller's balancer: its endpoint list, per-endpoint load and latency state, and the ring.
#[derive(Clone, Debug)]
pub struct Balancer {
    config: StrategyConfig,
    seed: u64,
    endpoints: Vec<Endpoint>,
    states: Vec<State>,
    /// (point, endpoint index), ascending.
    ring: Vec<(u64, u32)>,
    /// Reused buffer of eligible indices (no allocation per pick).
    scratch: Vec<usize>,
    ignores_errors: bool,
    modulo: bool,
}

/// The ring position of `key`.
fn key_position(key: u64, seed: u64) -> u64 {
    xxh3_64_with_seed(&key.to_le_bytes(), seed)
}

/// The ring points of `endpoints`, `vnodes` per endpoint, named by node.
fn build_ring(endpoints: &[Endpoint], vnodes: u32, seed: u64) -> Vec<(u64, u32)> {
    let mut ring = Vec::with_capacity(endpoints.len() * vnodes as usize);
    for (i, e) in endpoints.iter().enumerate() {
        for v in 0..vnodes.max(1) {
            let mut bytes = [0u8; 8];
            bytes[..4].copy_from_slice(&e.node.0.to_le_bytes());
            bytes[4..].copy_from_slice(&v.to_le_bytes());
            ring.push((xxh3_64_with_seed(&bytes, seed), i as u32));
        }
    }
    ring.sort_unstable();
    ring
}

/// Fraction of the sample keys whose node differs between two owner tables.
fn moved(before: &[NodeId], after: &[NodeId]) -> f64 {
    let moved = before.iter().zip(after).filter(|(a, b)| a != b).count();
    moved as f64 / before.len().max(1) as f64
}

impl Balancer {
    /// A balancer with no endpoints yet. `seed_for_hashing` seeds the ring's and the keys'
    /// hashes: every caller that must agree on where a key goes MUST pass the same value
    /// (e.g. 0).
    pub fn new(config: &StrategyConfig, seed_for_hashing: u64) -> Self {
        Balancer {
            config: config.clone(),
            seed: seed_for_hashing,
            endpoints: Vec::new(),
            states: Vec::new(),
            ring: Vec::new(),
            scratch: Vec::new(),
            ignores_errors: config.bugs.contains(&StrategyBug::LeastConnIgnoresErrors),
            modulo: config.bugs.contains(&StrategyBug::ModuloHashing),
        }
    }

    fn hashing(&self) -> bool {
        self.config.strategy == StrategyKind::ConsistentHash
    }

    /// Replaces the endpoint set (a static list, or a registry's view). Nodes that stay keep
    /// their state (in flight, penalty, EWMA, slow start); new ones start slow start at `now_ns`
    /// unless the list was empty before (a balancer's first set). For consistent hashing (and the modulo bug)
    /// returns the [`Remap`] of the fixed key sample if the set of nodes changed and was not
    /// empty before; otherwise None.
    pub fn set_endpoints(&mut self, endpoints: Vec<Endpoint>, now_ns: u64) -> Option<Remap> {
        let first = self.endpoints.is_empty();
        let mut old: Vec<(NodeId, State)> = self
            .endpoints
            .iter()
            .zip(&self.states)
            .map(|(e, s)| (e.node, *s))
            .collect();
        old.sort_by_key(|&(n, _)| n);
        let slow = self.config.slow_start.is_some() && !first;
        let states = endpoints
            .iter()
            .map(|e| match old.binary_search_by_key(&e.node, |&(n, _)| n) {
                Ok(i) => old[i].1,
                Err(_) => State {
                    slow_start_since: slow.then_some(now_ns),
                    ..State::default()
                },
            })
            .collect();
        let mut before_nodes: Vec<NodeId> = self.endpoints.iter().map(|e| e.node).collect();
        let mut after_nodes: Vec<NodeId> = endpoints.iter().map(|e| e.node).collect();
        before_nodes.sort();
        after_nodes.sort();
        let changed = before_nodes != after_nodes;
        let reordered = !self
            .endpoints
            .iter()
            .map(|e| e.node)
            .eq(endpoints.iter().map(|e| e.node));
        let owners_before = (self.hashing() && changed && !first).then(|| self.sample_owners());
        self.endpoints = endpoints;
        self.states = states;
        // The ring names endpoints by index: rebuild it only when the list itself changed.
        if self.hashing() && !self.modulo && reordered {
            self.ring = build_ring(&self.endpoints, self.config.virtual_nodes, self.seed);
        }
        let before = owners_before?;
        let after = self.sample_owners();
        let (b, a) = (before_nodes.len() as u32, after_nodes.len() as u32);
        Some(Remap {
            before: b,
            after: a,
            moved_fraction: moved(&before, &after),
            ideal_fraction: b.abs_diff(a) as f64 / b.max(a).max(1) as f64,
        })
    }

    /// The owner of every sample key with every endpoint eligible and no load bound.
    fn sample_owners(&self) -> Vec<NodeId> {
        let n = self.endpoints.len();
        (0..REMAP_SAMPLE_KEYS)
            .map(|key| {
                let pos = key_position(key, self.seed);
                let index = if self.modulo {
                    (pos % n.max(1) as u64) as usize
                } else {
                    self.ring_start(pos)
                        .map_or(0, |s| self.ring[s % self.ring.len()].1 as usize)
                };
                self.endpoints
                    .get(index)
                    .map_or(NodeId(u32::MAX), |e| e.node)
            })
            .collect()
    }

    /// The ring slot at or after `pos` (None on an empty ring).
    fn ring_start(&self, pos: u64) -> Option<usize> {
        if self.ring.is_empty() {
            return None;
        }
        Some(self.ring.partition_point(|&(p, _)| p < pos) % self.ring.len())
    }

    /// The current endpoint list; indices into it address endpoints everywhere else.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The index of `node` in the current list. Indices shift when the list changes: a
    /// caller with requests in flight across [`Balancer::set_endpoints`] MUST look their
    /// backend up again before [`Balancer::on_result`].
    pub fn index_of(&self, node: NodeId) -> Option<usize> {
        self.endpoints.iter().position(|e| e.node == node)
    }

    /// Requests in flight at endpoint `index` (sent and not yet answered).
    pub fn in_flight(&self, index: usize) -> u32 {
        self.states[index].in_flight
    }

    /// The load least connections and P2C compare: in flight plus the decayed failure penalty
    /// (just in flight with the `least-conn-ignores-errors` bug).
    pub fn load(&self, index: usize, now_ns: u64) -> f64 {
        let s = &self.states[index];
        s.in_flight as f64 + self.decayed(s.penalty, s.penalty_at, now_ns)
    }

    fn decayed(&self, value: f64, at: u64, now_ns: u64) -> f64 {
        if value == 0.0 {
            return 0.0;
        }
        let tau = self.config.ewma_decay.as_nanos().max(1) as f64;
        value * (-(now_ns.saturating_sub(at) as f64) / tau).exp()
    }

    /// Slow start factor of endpoint `index` at `now_ns`: from [`SLOW_START_MIN_FACTOR`] to 1.
    pub fn slow_start_factor(&self, index: usize, now_ns: u64) -> f64 {
        match (self.states[index].slow_start_since, self.config.slow_start) {
            (Some(since), Some(window)) => {
                let elapsed = now_ns.saturating_sub(since) as f64;
                (elapsed / window.as_nanos().max(1) as f64).clamp(SLOW_START_MIN_FACTOR, 1.0)
            }
            _ => 1.0,
        }
    }

    fn weight(&self, index: usize) -> f64 {
        self.endpoints[index].weight.max(1) as f64
    }

    /// Least connections' score (lower is better): `(load + 1) / (weight × slow start)`.
    fn score(&self, index: usize, now_ns: u64) -> f64 {
        (self.load(index, now_ns) + 1.0)
            / (self.weight(index) * self.slow_start_factor(index, now_ns))
    }

    /// Peak EWMA's cost (lower is better), divided by the slow start factor.
    fn cost(&self, index: usize, now_ns: u64) -> f64 {
        let s = &self.states[index];
        let estimate = self.decayed(s.ewma_ns, s.ewma_at, now_ns);
        let load = self.load(index, now_ns);
        let cost = if s.ewma_ns == 0.0 && s.in_flight > 0 {
            EWMA_PENALTY
        } else {
            estimate * (load + 1.0)
        };
        cost / self.slow_start_factor(index, now_ns)
    }

    /// Picks an endpoint among those whose `eligible[i]` is true (an index past the end of
    /// `eligible` counts as not eligible) for a request with routing `key` (used only by
    /// consistent hashing). None if no endpoint is eligible.
    pub fn pick(
        &mut self,
        key: u64,
        eligible: &[bool],
        now_ns: u64,
        rng: &mut impl Rng,
    ) -> Option<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend((0..self.endpoints.len()).filter(|&i| eligible.get(i) == Some(&true)));
        let picked = if scratch.is_empty() {
            None
        } else {
            Some(match self.config.strategy {
                StrategyKind::RoundRobin => self.smooth_wrr(&scratch, false, now_ns),
                StrategyKind::WeightedRoundRobin => self.smooth_wrr(&scratch, true, now_ns),
                StrategyKind::Random => self.random(&scratch, now_ns, rng),
                StrategyKind::LeastConnections => self.least(&scratch, now_ns, rng),
                StrategyKind::ConsistentHash => self.hash_pick(key, eligible, &scratch),
                StrategyKind::PowerOfTwoChoices => {
                    self.two_choices(&scratch, rng, |b, i| b.score(i, now_ns))
                }
                StrategyKind::PeakEwma => self.two_choices(&scratch, rng, |b, i| b.cost(i, now_ns)),
            })
        };
        self.scratch = scratch;
        picked
    }

    fn smooth_wrr(&mut self, eligible: &[usize], weighted: bool, now_ns: u64) -> usize {
        let mut total = 0i64;
        let mut best = eligible[0];
        let mut best_current = i64::MIN;
        for &i in eligible {
            let w = if weighted { self.weight(i) } else { 1.0 };
            let effective =
                ((w * WEIGHT_SCALE * self.slow_start_factor(i, now_ns)).round() as i64).max(1);
            let s = &mut self.states[i];
            s.current += effective;
            total += effective;
            if s.current > best_current {
                best_current = s.current;
                best = i;
            }
        }
        self.states[best].current -= total;
        best
    }

    fn random(&self, eligible: &[usize], now_ns: u64, rng: &mut impl Rng) -> usize {
        let slow = self.config.slow_start.is_some()
            && eligible
                .iter()
                .any(|&i| self.slow_start_factor(i, now_ns) < 1.0);
        if !slow {
            return eligible[rng.gen_range(0..eligible.len())];
        }
        let total: f64 = eligible
            .iter()
            .map(|&i| self.slow_start_factor(i, now_ns))
            .sum();
        let mut x = rng.gen_range(0.0..total);
        for &i in eligible {
            x -= self.slow_start_factor(i, now_ns);
            if x < 0.0 {
                return i;
            }
        }
        eligible[eligible.len() - 1]
    }

    fn least(&self, eligible: &[usize], now_ns: u64, rng: &mut impl Rng) -> usize {
        let mut best = eligible[0];
        let mut best_score = f64::INFINITY;
        let mut ties = 0u32;
        for &i in eligible {
            let score = self.score(i, now_ns);
            if score < best_score {
                best_score = score;
                best = i;
                ties = 1;
            } else if score == best_score {
                // Reservoir sampling: each of the tied endpoints ends up chosen with chance 1/k.
                ties += 1;
                if rng.gen_range(0..ties) == 0 {
                    best = i;
                }
            }
        }
        best
    }

    fn two_choices(
        &self,
        eligible: &[usize],
        rng: &mut impl Rng,
        cost: impl Fn(&Self, usize) -> f64,
    ) -> usize {
        let k = eligible.len();
        if k == 1 {
            return eligible[0];
        }
        let a = rng.gen_range(0..k);
        let mut b = rng.gen_range(0..k - 1);
        if b >= a {
            b += 1;
        }
        let (a, b) = (eligible[a], eligible[b]);
        if cost(self, b) < cost(self, a) { b } else { a }
    }

    fn hash_pick(&self, key: u64, eligible: &[bool], list: &[usize]) -> usize {
        let pos = key_position(key, self.seed);
        let n = self.endpoints.len();
        if self.modulo {
            let start = (pos % n as u64) as usize;
            return (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| eligible.get(i) == Some(&true))
                .unwrap_or(list[0]);
        }
        let Some(start) = self.ring_start(pos) else {
            return list[0];
        };
        let bound = self.config.bounded_load.map(|c| {
            let m: u64 = list
                .iter()
                .map(|&i| self.states[i].in_flight as u64)
                .sum::<u64>()
                + 1;
            (c * m as f64 / list.len() as f64).ceil() as u64
        });
        let len = self.ring.len();
        (0..len)
            .map(|k| self.ring[(start + k) % len].1 as usize)
            .find(|&i| {
                eligible.get(i) == Some(&true)
                    && bound.is_none_or(|b| (self.states[i].in_flight as u64) < b)
            })
            .unwrap_or(list[0])
    }

    /// A request was sent to endpoint `index`: its in-flight count grows by one.
    pub fn on_send(&mut self, index: usize, _now_ns: u64) {
        self.states[index].in_flight += 1;
    }

    /// The answer (or timeout) of a request sent to endpoint `index` came after `latency_ns`:
    /// in flight drops by one, the peak EWMA takes the latency, and a failure (`ok = false`)
    /// adds 1 to the endpoint's decaying failure penalty (not with the
    /// `least-conn-ignores-errors` bug).
    pub fn on_result(&mut self, index: usize, now_ns: u64, latency_ns: u64, ok: bool) {
        let tau = self.config.ewma_decay.as_nanos().max(1) as f64;
        let penalty = self.decayed(
            self.states[index].penalty,
            self.states[index].penalty_at,
            now_ns,
        );
        let s = &mut self.states[index];
        s.in_flight = s.in_flight.saturating_sub(1);
        let rtt = latency_ns as f64;
        if rtt > s.ewma_ns {
            s.ewma_ns = rtt;
        } else {
            let w = (-(now_ns.saturating_sub(s.ewma_at) as f64) / tau).exp();
            s.ewma_ns = s.ewma_ns * w + rtt * (1.0 - w);
        }
        s.ewma_at = now_ns;
        if !ok && !self.ignores_errors {
            s.penalty = penalty + 1.0;
            s.penalty_at = now_ns;
        }
    }

    /// Endpoint `index` is back from unhealthy or ejected: with a slow start window it ramps up
    /// again from `now_ns`.
    pub fn rejoined(&mut self, index: usize, now_ns: u64) {
        if self.config.slow_start.is_some() {
            self.states[index].slow_start_since = Some(now_ns);
        }
    }
}

/// The [`Remap`] of going from `before` to `after` under `config` (what
/// [`Balancer::set_endpoints`] reports), without a balancer at hand.
pub fn measure_remap(
    config: &StrategyConfig,
    seed_for_hashing: u64,
    before: &[Endpoint],
    after: &[Endpoint],
) -> Option<Remap> {
    let mut b = Balancer::new(config, seed_for_hashing);
    b.set_endpoints(before.to_vec(), 0);
    b.set_endpoints(after.to_vec(), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn eps(weights: &[u32]) -> Vec<Endpoint> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Endpoint {
                node: NodeId(i as u32 + 1),
                weight: w,
            })
            .collect()
    }

    fn balancer(strategy: StrategyKind, weights: &[u32]) -> Balancer {
        let config = StrategyConfig {
            strategy,
            ..StrategyConfig::default()
        };
        let mut b = Balancer::new(&config, 0);
        b.set_endpoints(eps(weights), 0);
        b
    }

    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(7)
    }

    fn counts(b: &mut Balancer, picks: usize, eligible: &[bool]) -> Vec<u32> {
        let mut r = rng();
        let mut c = vec![0; b.endpoints().len()];
        for k in 0..picks {
            c[b.pick(k as u64, eligible, 0, &mut r).unwrap()] += 1;
        }
        c
    }

    #[test]
    fn smooth_weighted_round_robin_interleaves_as_nginx() {
        let mut b = balancer(StrategyKind::WeightedRoundRobin, &[5, 1, 1]);
        let mut r = rng();
        let seq: Vec<usize> = (0..7)
            .map(|_| b.pick(0, &[true; 3], 0, &mut r).unwrap())
            .collect();
        // nginx's documented sequence for weights 5, 1, 1: a a b a c a a.
        assert_eq!(seq, vec![0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn round_robin_rotates_over_eligible_endpoints_and_ignores_weights() {
        let mut b = balancer(StrategyKind::RoundRobin, &[5, 1, 1, 1]);
        let mut r = rng();
        let seq: Vec<usize> = (0..8)
            .map(|_| b.pick(0, &[true; 4], 0, &mut r).unwrap())
            .collect();
        assert_eq!(seq, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        let c = counts(&mut b, 300, &[true, false, true, true]);
        assert_eq!(c, vec![100, 0, 100, 100]);
        assert_eq!(b.pick(0, &[false; 4], 0, &mut r), None);
    }

    #[test]
    fn random_is_uniform_over_eligible_endpoints() {
        let mut b = balancer(StrategyKind::Random, &[1; 4]);
        let c = counts(&mut b, 4000, &[true, true, false, true]);
        assert_eq!(c[2], 0);
        for i in [0, 1, 3] {
            assert!((1200..1470).contains(&c[i]), "{c:?}");
        }
    }

    #[test]
    fn least_connections_picks_the_least_loaded_and_breaks_ties_at_random() {
        let mut b = balancer(StrategyKind::LeastConnections, &[1; 3]);
        b.on_send(0, 0);
        b.on_send(0, 0);
        b.on_send(1, 0);
        let mut r = rng();
        assert_eq!(b.pick(0, &[true; 3], 0, &mut r), Some(2));
        b.on_send(2, 0);
        // 0 holds 2, 1 and 2 hold 1 each: the tie splits between 1 and 2.
        let c = counts(&mut b, 1000, &[true; 3]);
        assert_eq!(c[0], 0);
        assert!(c[1] > 400 && c[2] > 400, "{c:?}");
    }

    /// A backend failing in 1 ms never holds requests: its failures must count against it.
    fn fast_failing_share(bugs: Vec<StrategyBug>, strategy: StrategyKind) -> f64 {
        let config = StrategyConfig {
            strategy,
            bugs,
            ..StrategyConfig::default()
        };
        let mut b = Balancer::new(&config, 0);
        b.set_endpoints(eps(&[1; 5]), 0);
        let mut r = rng();
        // Each healthy backend holds 10 requests of 100 ms; backend 0 fails in 1 ms.
        for i in 1..5 {
            for _ in 0..10 {
                b.on_send(i, 0);
            }
        }
        let mut to_failing = 0;
        let picks = 2000;
        for k in 0..picks {
            let now = k as u64 * 1_000_000;
            let i = b.pick(k as u64, &[true; 5], now, &mut r).unwrap();
            b.on_send(i, now);
            if i == 0 {
                to_failing += 1;
                b.on_result(0, now + 1_000_000, 1_000_000, false);
            } else {
                // A healthy backend finishes an older request as it takes this one: it
                // keeps 10 in flight.
                b.on_result(i, now, 100_000_000, true);
            }
        }
        to_failing as f64 / picks as f64
    }

    #[test]
    fn least_connections_counts_failures_against_a_fast_failing_backend() {
        for s in [
            StrategyKind::LeastConnections,
            StrategyKind::PowerOfTwoChoices,
        ] {
            let share = fast_failing_share(vec![], s);
            assert!(share < 0.1, "{s:?}: {share}");
        }
    }

    #[test]
    fn least_conn_ignores_errors_bug_sends_most_traffic_to_the_fast_failing_backend() {
        let share = fast_failing_share(
            vec![StrategyBug::LeastConnIgnoresErrors],
            StrategyKind::LeastConnections,
        );
        assert!(share > 0.9, "{share}");
    }

    #[test]
    fn power_of_two_choices_picks_two_distinct_and_takes_the_less_loaded() {
        let mut b = balancer(StrategyKind::PowerOfTwoChoices, &[1; 2]);
        for _ in 0..3 {
            b.on_send(0, 0);
        }
        // With two eligible endpoints the two choices are both: always the less loaded.
        let c = counts(&mut b, 100, &[true, true]);
        assert_eq!(c, vec![0, 100]);
        // One eligible endpoint: that one.
        let c = counts(&mut b, 10, &[true, false]);
        assert_eq!(c, vec![10, 0]);
        // Four endpoints, one loaded: it would win only against itself, and the two choices
        // are distinct.
        let mut b = balancer(StrategyKind::PowerOfTwoChoices, &[1; 4]);
        for _ in 0..5 {
            b.on_send(3, 0);
        }
        let c = counts(&mut b, 1000, &[true; 4]);
        assert_eq!(
            c[3], 0,
            "distinct choices never pair the loaded one with itself: {c:?}"
        );
    }

    #[test]
    fn peak_ewma_avoids_the_slow_backend_and_jumps_to_peaks() {
        let mut b = balancer(StrategyKind::PeakEwma, &[1; 3]);
        let ms = 1_000_000;
        for i in 0..3 {
            b.on_send(i, 0);
            b.on_result(i, ms, if i == 2 { 100 * ms } else { 10 * ms }, true);
        }
        let c = counts(&mut b, 300, &[true; 3]);
        assert!(c[2] < 30, "the slow one loses most pairings: {c:?}");
        // A single slow observation sets the estimate to the peak at once.
        b.on_send(0, ms);
        b.on_result(0, 2 * ms, 500 * ms, true);
        assert!(b.cost(0, 2 * ms) >= 500.0 * ms as f64);
        // Faster observations pull it down gradually: after one decay time about 1/e remains.
        b.on_send(0, 2 * ms);
        b.on_result(0, 2 * ms + 10_000 * ms, 10 * ms, true);
        let est = b.states[0].ewma_ns;
        let expected = 500.0 * ms as f64 * (-1f64).exp() + 10.0 * ms as f64 * (1.0 - (-1f64).exp());
        assert!((est - expected).abs() < 1.0, "{est} vs {expected}");
    }

    #[test]
    fn peak_ewma_penalises_an_endpoint_with_requests_but_no_estimate() {
        let mut b = balancer(StrategyKind::PeakEwma, &[1; 2]);
        b.on_send(0, 0);
        b.on_result(0, 1, 1_000_000, true);
        b.on_send(1, 0);
        assert!(b.cost(1, 1) >= EWMA_PENALTY);
        assert!(b.cost(0, 1) < EWMA_PENALTY);
    }

    #[test]
    fn slow_start_ramps_a_joining_endpoint_linearly_from_ten_percent() {
        let config = StrategyConfig {
            strategy: StrategyKind::RoundRobin,
            slow_start: Some(Duration::from_secs(10)),
            ..StrategyConfig::default()
        };
        let mut b = Balancer::new(&config, 0);
        b.set_endpoints(eps(&[1; 3]), 0);
        assert_eq!(
            b.slow_start_factor(0, 0),
            1.0,
            "the first set does not slow start"
        );
        let s = 1_000_000_000;
        b.set_endpoints(eps(&[1; 4]), 100 * s);
        assert_eq!(b.slow_start_factor(3, 100 * s), SLOW_START_MIN_FACTOR);
        assert!((b.slow_start_factor(3, 105 * s) - 0.5).abs() < 1e-9);
        assert_eq!(b.slow_start_factor(3, 110 * s), 1.0);
        // At 10% it gets about 0.1 / 3.1 of the rotation.
        let mut r = rng();
        let mut c = [0u32; 4];
        for _ in 0..3100 {
            c[b.pick(0, &[true; 4], 100 * s, &mut r).unwrap()] += 1;
        }
        assert!((95..=105).contains(&c[3]), "{c:?}");
        // A rejoin starts the ramp again.
        b.rejoined(0, 200 * s);
        assert_eq!(b.slow_start_factor(0, 200 * s), SLOW_START_MIN_FACTOR);
    }

    #[test]
    fn slow_start_keeps_least_connections_off_a_fresh_endpoint() {
        let herd = |slow_start: Option<Duration>| {
            let config = StrategyConfig {
                strategy: StrategyKind::LeastConnections,
                slow_start,
                ..StrategyConfig::default()
            };
            let mut b = Balancer::new(&config, 0);
            b.set_endpoints(eps(&[1; 3]), 0);
            for i in 0..3 {
                for _ in 0..5 {
                    b.on_send(i, 0);
                }
            }
            b.set_endpoints(eps(&[1; 4]), 0);
            let mut r = rng();
            // 5 new requests, none finishing: how many land on the fresh endpoint?
            (0..5)
                .filter(|&k| {
                    let i = b.pick(k, &[true; 4], 0, &mut r).unwrap();
                    b.on_send(i, 0);
                    i == 3
                })
                .count()
        };
        assert_eq!(
            herd(None),
            5,
            "without slow start the fresh endpoint takes the herd"
        );
        assert_eq!(herd(Some(Duration::from_secs(30))), 0);
    }

    #[test]
    fn consistent_hashing_is_stable_and_skips_ineligible_endpoints() {
        let mut b = balancer(StrategyKind::ConsistentHash, &[1; 5]);
        let mut r = rng();
        let all = [true; 5];
        for key in 0..100 {
            let first = b.pick(key, &all, 0, &mut r).unwrap();
            assert_eq!(b.pick(key, &all, 0, &mut r), Some(first));
            let mut some = all;
            some[first] = false;
            let second = b.pick(key, &some, 0, &mut r).unwrap();
            assert_ne!(second, first);
        }
        let c = counts(&mut b, 5000, &all);
        assert!(c.iter().all(|&n| n > 600), "keys spread: {c:?}");
        // The same backends listed in another order: every key stays on its node.
        let nodes: Vec<NodeId> = (0..100)
            .map(|key| {
                let i = b.pick(key, &all, 0, &mut r).unwrap();
                b.endpoints()[i].node
            })
            .collect();
        let mut reversed = b.endpoints().to_vec();
        reversed.reverse();
        assert_eq!(b.set_endpoints(reversed, 0), None);
        for (key, &node) in nodes.iter().enumerate() {
            let i = b.pick(key as u64, &all, 0, &mut r).unwrap();
            assert_eq!(b.endpoints()[i].node, node);
        }
    }

    #[test]
    fn consistent_hashing_moves_about_a_tenth_of_keys_going_from_ten_to_nine() {
        let config = StrategyConfig {
            strategy: StrategyKind::ConsistentHash,
            ..StrategyConfig::default()
        };
        let ten = eps(&[1; 10]);
        let r = measure_remap(&config, 0, &ten, &ten[..9]).unwrap();
        assert_eq!((r.before, r.after), (10, 9));
        assert!((r.ideal_fraction - 0.1).abs() < 1e-12);
        assert!(r.moved_fraction > 0.05 && r.moved_fraction < 0.15, "{r:?}");
        let bug = StrategyConfig {
            bugs: vec![StrategyBug::ModuloHashing],
            ..config.clone()
        };
        let r = measure_remap(&bug, 0, &ten, &ten[..9]).unwrap();
        assert!(r.moved_fraction > 0.85, "modulo-hashing bug: {r:?}");
        // Same set: nothing reported; first set: nothing reported.
        let mut b = Balancer::new(&config, 0);
        assert_eq!(b.set_endpoints(ten.clone(), 0), None);
        assert_eq!(b.set_endpoints(ten.clone(), 0), None);
        // Other strategies: no remap.
        let mut rr = Balancer::new(&StrategyConfig::default(), 0);
        rr.set_endpoints(ten.clone(), 0);
        assert_eq!(rr.set_endpoints(ten[..9].to_vec(), 0), None);
    }

    #[test]
    fn bounded_loads_walk_past_full_endpoints() {
        let config = StrategyConfig {
            strategy: StrategyKind::ConsistentHash,
            bounded_load: Some(1.25),
            ..StrategyConfig::default()
        };
        let mut b = Balancer::new(&config, 0);
        b.set_endpoints(eps(&[1; 4]), 0);
        let mut r = rng();
        // One hot key: without completions its requests spread once its home is full.
        let mut picked = [0u32; 4];
        for _ in 0..40 {
            let i = b.pick(42, &[true; 4], 0, &mut r).unwrap();
            b.on_send(i, 0);
            picked[i] += 1;
        }
        assert!(
            picked.iter().all(|&n| n <= 13),
            "ceil(1.25 * 40 / 4) = 13: {picked:?}"
        );
        assert!(picked.iter().filter(|&&n| n > 0).count() >= 3, "{picked:?}");
    }

    #[test]
    fn endpoints_that_stay_keep_their_state() {
        let mut b = balancer(StrategyKind::LeastConnections, &[1; 3]);
        b.on_send(2, 0);
        b.on_send(2, 0);
        b.set_endpoints(eps(&[1; 3])[1..].to_vec(), 0);
        assert_eq!(b.endpoints()[1].node, NodeId(3));
        assert_eq!(b.in_flight(1), 2);
        assert_eq!(b.in_flight(0), 0);
    }

    #[test]
    fn options_parse_with_defaults_and_refuse_unknown_keys_and_bad_values() {
        let c: StrategyConfig = toml::from_str("strategy = \"p2c\"").unwrap();
        assert_eq!(c.strategy, StrategyKind::PowerOfTwoChoices);
        for kind in [
            StrategyKind::RoundRobin,
            StrategyKind::WeightedRoundRobin,
            StrategyKind::Random,
            StrategyKind::LeastConnections,
            StrategyKind::ConsistentHash,
            StrategyKind::PowerOfTwoChoices,
            StrategyKind::PeakEwma,
        ] {
            let written = toml::Value::try_from(kind).unwrap();
            assert_eq!(written.as_str(), Some(kind.name()));
        }
        assert_eq!(c.virtual_nodes, 100);
        assert_eq!(c.ewma_decay, Duration::from_secs(10));
        assert!(c.validate().is_empty());
        let c: StrategyConfig =
            toml::from_str("bugs = [\"least-conn-ignores-errors\", \"modulo-hashing\"]").unwrap();
        assert_eq!(c.bugs.len(), 2);
        assert!(toml::from_str::<StrategyConfig>("strategy = \"fastest\"").is_err());
        assert!(toml::from_str::<StrategyConfig>("vnodes = 3").is_err());
        let bad = StrategyConfig {
            virtual_nodes: 0,
            bounded_load: Some(1.5),
            ewma_decay: Duration(0),
            slow_start: Some(Duration::from_secs(7200)),
            ..StrategyConfig::default()
        };
        let keys: Vec<String> = bad.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(
            keys,
            ["virtual_nodes", "bounded_load", "ewma_decay", "slow_start"]
        );
        let c = StrategyConfig {
            strategy: StrategyKind::ConsistentHash,
            bounded_load: Some(0.5),
            ..StrategyConfig::default()
        };
        assert_eq!(c.validate().len(), 1);
        let c = StrategyConfig {
            bugs: vec![
                StrategyBug::ModuloHashing,
                StrategyBug::LeastConnIgnoresErrors,
            ],
            ..StrategyConfig::default()
        };
        let keys: Vec<String> = c.validate().iter().map(|e| e.path.join(".")).collect();
        assert_eq!(keys, ["bugs.0", "bugs.1"], "round robin has neither");
    }

    proptest! {
        #[test]
        fn smooth_wrr_gives_each_endpoint_exactly_its_weight_per_cycle(
            weights in proptest::collection::vec(1u32..8, 1..8),
            cycles in 1usize..4,
        ) {
            let mut b = balancer(StrategyKind::WeightedRoundRobin, &weights);
            let total: u32 = weights.iter().sum();
            let eligible = vec![true; weights.len()];
            let mut r = rng();
            for _ in 0..cycles {
                let mut c = vec![0u32; weights.len()];
                for _ in 0..total {
                    c[b.pick(0, &eligible, 0, &mut r).unwrap()] += 1;
                }
                prop_assert_eq!(&c, &weights);
            }
        }

        #[test]
        fn ring_removal_moves_few_keys_and_modulo_moves_most(n in 5u32..30, seed in any::<u64>()) {
            let config = StrategyConfig { strategy: StrategyKind::ConsistentHash, ..StrategyConfig::default() };
            let all: Vec<u32> = vec![1; n as usize];
            let before = eps(&all);
            let gone = (seed % n as u64) as usize;
            let mut after = before.clone();
            after.remove(gone);
            let r = measure_remap(&config, seed, &before, &after).unwrap();
            // Only the removed node's keys move: about 1/n, below 1.5/n.
            prop_assert!(r.moved_fraction < 1.5 / n as f64, "{:?}", r);
            let bug = StrategyConfig { bugs: vec![StrategyBug::ModuloHashing], ..config };
            let m = measure_remap(&bug, seed, &before, &after).unwrap();
            prop_assert!(m.moved_fraction > 0.6, "{:?}", m);
        }

        #[test]
        fn bounded_loads_never_exceed_the_bound(
            ops in proptest::collection::vec((any::<u64>(), any::<bool>()), 1..300),
            n in 1usize..8,
            c in 1.0f64..3.0,
        ) {
            let config = StrategyConfig {
                strategy: StrategyKind::ConsistentHash,
                bounded_load: Some(c),
                virtual_nodes: 20,
                ..StrategyConfig::default()
            };
            let mut b = Balancer::new(&config, 0);
            b.set_endpoints(eps(&vec![1; n]), 0);
            let eligible = vec![true; n];
            let mut r = rng();
            for (key, finish) in ops {
                if finish {
                    if let Some(i) = (0..n).find(|&i| b.in_flight(i) > 0) {
                        b.on_result(i, 0, 1, true);
                    }
                    continue;
                }
                let m: u64 = (0..n).map(|i| b.in_flight(i) as u64).sum::<u64>() + 1;
                let bound = (c * m as f64 / n as f64).ceil() as u32;
                let i = b.pick(key % 64, &eligible, 0, &mut r).unwrap();
                b.on_send(i, 0);
                prop_assert!(b.in_flight(i) <= bound, "{} > {}", b.in_flight(i), bound);
            }
        }
    }
}
