//! faultline's message layer: the fate of every message, and partitions.
//!
//! At send time the network draws, from its own seeded stream, whether a message is lost, whether
//! it is duplicated, and each copy's latency, using the parameters of its directed link (the
//! `[network]` defaults overridden by `[[network.link]]` entries). Unless the link allows
//! reordering, a copy never arrives before an earlier message on the same link (FIFO per link).
//!
//! `degrade` faults lay a [`Condition`] over a set of directed links for a while: each key they
//! set replaces the link's own while the fault lasts (when two overlap on a link, the one that
//! started later wins, key by key), and undoing one restores what lies beneath. Fates are drawn
//! from the same stream in the same order whatever the condition, so a degraded run stays
//! reproducible from its seed. Messages already in flight keep the fate drawn when they were
//! sent. A link that stops reordering is FIFO again from then on: no later message arrives
//! before any earlier one, reordered or not.
//!
//! Partitions are sets of cut directed links, owned by the fault that cut them, so undoing one
//! fault never heals another's cuts. Cuts and crashes are checked by the world when a message
//! *arrives*, not when it is sent: nothing crosses a link while it is cut, and a message in
//! flight when a partition starts is dropped if it would arrive during the partition.
//!
//! madsim's `Endpoint`/`NetSim` cannot do this (global loss and latency only, no duplication, no
//! FIFO, clogs checked at send time only; see MADSIM-NOTES.md).

use std::collections::BTreeMap;

use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};
use serde::Serialize;

use crate::process::NodeId;
use crate::scenario::topology::Topology;
use crate::scenario::{LatencyDistribution, LatencySpec, LinkSpec, Network as NetworkSpec};

/// A resolved latency distribution, in nanoseconds.
#[derive(Clone, Debug)]
pub enum Latency {
    /// Always this.
    Constant(u64),
    /// Uniform in `[min, max]` (see [`UniformNs`]).
    Uniform(UniformNs),
    /// `min` + exponential with mean `mean - min`, capped at `max`.
    Exponential {
        /// Offset, ns.
        min: u64,
        /// The exponential part, ns.
        exp: Exp<f64>,
        /// Cap, ns.
        max: u64,
    },
    /// Normal, clipped to `[0, max]`.
    Normal {
        /// The distribution, ns.
        normal: Normal<f64>,
        /// Cap, ns.
        max: u64,
    },
}

impl Latency {
    /// Resolves a scenario latency (already validated: ranges non-empty, parameters positive).
    pub fn from_spec(spec: &LatencySpec) -> Latency {
        match spec {
            LatencySpec::Constant(d) => Latency::Constant(d.as_nanos()),
            LatencySpec::Distribution(dist) => match dist {
                LatencyDistribution::Constant { value } => Latency::Constant(value.as_nanos()),
                LatencyDistribution::Uniform { min, max } => {
                    Latency::Uniform(UniformNs::new(min.as_nanos(), max.as_nanos()))
                }
                LatencyDistribution::Exponential { mean, min, max } => {
                    let extra = (mean.as_nanos() - min.as_nanos()).max(1) as f64;
                    Latency::Exponential {
                        min: min.as_nanos(),
                        exp: Exp::new(1.0 / extra).expect("positive rate"),
                        max: max.map_or(u64::MAX, |m| m.as_nanos()),
                    }
                }
                LatencyDistribution::Normal { mean, std_dev, max } => Latency::Normal {
                    normal: Normal::new(mean.as_nanos() as f64, std_dev.as_nanos() as f64)
                        .expect("finite parameters"),
                    max: max.map_or(mean.as_nanos() + 4 * std_dev.as_nanos(), |m| m.as_nanos()),
                },
            },
        }
    }

    /// The smallest and largest latency this distribution can produce, in nanoseconds.
    pub fn bounds(&self) -> (u64, u64) {
        match self {
            Latency::Constant(v) => (*v, *v),
            Latency::Uniform(u) => (u.min, u.max),
            Latency::Exponential { min, max, .. } => (*min, *max),
            Latency::Normal { max, .. } => (0, *max),
        }
    }

    /// Draws one latency.
    #[inline]
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        match self {
            Latency::Uniform(u) => u.sample(rng),
            Latency::Constant(v) => *v,
            Latency::Exponential { min, exp, max } => {
                let extra = exp.sample(rng);
                (min.saturating_add(extra as u64)).min(*max)
            }
            Latency::Normal { normal, max } => (normal.sample(rng).max(0.0) as u64).min(*max),
        }
    }
}

/// A uniform draw in `[min, max]` nanoseconds that gives exactly what `rand` 0.8's
/// `rng.gen_range(min..=max)` gives from the same stream (the same values, consuming the same
/// words), with the per-call set-up done once.
///
/// `gen_range` on a `u64` range (`UniformInt::sample_single_inclusive`) computes the range's
/// width and an acceptance zone on every call, then draws 64-bit words until one is accepted:
/// the word `v` times the width is split into a high and a low word, and `v` is accepted when
/// the low word is at most the zone; the draw is `min` plus the high word. Here the width and
/// the zone are computed when the latency is resolved, and the loop is inlined into the
/// network's fate draw (the latency draw was about a sixth of the kernel ping-pong's time).
/// A width of 0 (the full `u64` range) takes one word as it is, as `gen_range` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UniformNs {
    min: u64,
    max: u64,
    /// `max - min + 1`, wrapping (0: the full range).
    width: u64,
    /// The largest accepted low word: `gen_range`'s
    /// `(width << width.leading_zeros()) - 1` (unused when `width` is 0).
    zone: u64,
}

impl UniformNs {
    /// Uniform in `[min, max]`, in nanoseconds. Panics if `min > max` (as `gen_range` does).
    pub fn new(min: u64, max: u64) -> UniformNs {
        assert!(min <= max, "uniform latency: min {min} > max {max}");
        let width = max.wrapping_sub(min).wrapping_add(1);
        let zone = if width == 0 {
            0
        } else {
            (width << width.leading_zeros()).wrapping_sub(1)
        };
        UniformNs {
            min,
            max,
            width,
            zone,
        }
    }

    /// The smallest value, ns.
    pub fn min(&self) -> u64 {
        self.min
    }

    /// The largest value, ns.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Draws one value: `rng.gen_range(min..=max)`, computed from the same words.
    #[inline(always)]
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        if self.width == 0 {
            return rng.next_u64();
        }
        loop {
            let wide = u128::from(rng.next_u64()) * u128::from(self.width);
            if wide as u64 <= self.zone {
                return self.min.wrapping_add((wide >> 64) as u64);
            }
        }
    }
}

/// The fate parameters of one directed link.
#[derive(Clone, Debug)]
pub struct LinkParams {
    /// Latency of each copy.
    pub latency: Latency,
    /// Probability that a message is lost.
    pub loss_probability: f64,
    /// Probability that a message is delivered twice.
    pub duplicate_probability: f64,
    /// Whether messages on this link may overtake each other.
    pub reorder: bool,
}

/// A network condition a `degrade` fault lays over its links while it lasts: each key that is
/// set replaces the link's own value (latency of each copy, loss and duplication probabilities,
/// reordering); unset keys keep it. Validated like `[network]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Condition {
    /// Latency of each copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,
    /// Probability that a message is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_probability: Option<f64>,
    /// Probability that a message is delivered twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_probability: Option<f64>,
    /// Whether messages may overtake each other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
}

impl Condition {
    /// The condition a `[[network.link]]` override sets (the scenario spells the same keys flat
    /// in `[[network.link]]` and `[[fault]]`: serde cannot flatten a struct into a table that
    /// denies unknown keys).
    pub fn of_link(link: &LinkSpec) -> Condition {
        Condition {
            latency: link.latency.clone(),
            loss_probability: link.loss_probability,
            duplicate_probability: link.duplicate_probability,
            reorder: link.reorder,
        }
    }
}

/// A [`Condition`] with its latency resolved.
#[derive(Debug)]
struct Override {
    latency: Option<Latency>,
    loss_probability: Option<f64>,
    duplicate_probability: Option<f64>,
    reorder: Option<bool>,
}

impl Override {
    fn new(condition: &Condition) -> Override {
        Override {
            latency: condition.latency.as_ref().map(Latency::from_spec),
            loss_probability: condition.loss_probability,
            duplicate_probability: condition.duplicate_probability,
            reorder: condition.reorder,
        }
    }
}

/// An active `degrade`: its override over the sorted link slots it covers.
#[derive(Debug)]
struct Degrade {
    over: Override,
    slots: Vec<usize>,
}

/// The parameters in force on one link: its own, with active degrades laid over them.
struct Effective<'a> {
    latency: &'a Latency,
    loss_probability: f64,
    duplicate_probability: f64,
    reorder: bool,
}

impl<'a> Effective<'a> {
    fn of(own: &'a LinkParams) -> Effective<'a> {
        Effective {
            latency: &own.latency,
            loss_probability: own.loss_probability,
            duplicate_probability: own.duplicate_probability,
            reorder: own.reorder,
        }
    }

    /// Replaces every key `o` sets.
    fn overlay(&mut self, o: &'a Override) {
        if let Some(latency) = &o.latency {
            self.latency = latency;
        }
        self.loss_probability = o.loss_probability.unwrap_or(self.loss_probability);
        self.duplicate_probability = o
            .duplicate_probability
            .unwrap_or(self.duplicate_probability);
        self.reorder = o.reorder.unwrap_or(self.reorder);
    }

    fn to_params(&self) -> LinkParams {
        LinkParams {
            latency: self.latency.clone(),
            loss_probability: self.loss_probability,
            duplicate_probability: self.duplicate_probability,
            reorder: self.reorder,
        }
    }
}

/// The network: link parameters, degraded and cut links and per-link FIFO state, for `n` nodes.
#[derive(Debug)]
pub struct Network {
    n: usize,
    /// Distinct parameter sets; `link_params[from * n + to]` indexes into it.
    params: Vec<LinkParams>,
    link_params: Vec<u16>,
    /// How many active `degrade` faults cover each directed link.
    degrade_count: Vec<u32>,
    /// Active degrades by fault id (so in start order: a later one wins).
    degrades: BTreeMap<u64, Degrade>,
    /// How many active faults cut each directed link.
    cut_count: Vec<u32>,
    /// The links each active fault cut, by fault id.
    cuts: BTreeMap<u64, Vec<(NodeId, NodeId)>>,
    /// Latest arrival time scheduled on each directed link (for FIFO).
    last_arrival_ns: Vec<u64>,
    rng: ChaCha8Rng,
}

/// What the network decided for one sent message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Lost in transit.
    Lost,
    /// Arrives at global time `at_ns`; a duplicate, if the network made one, at
    /// `duplicate_at_ns`.
    Arrives {
        /// Arrival of the message (global ns).
        at_ns: u64,
        /// Arrival of its duplicate (global ns), if any.
        duplicate_at_ns: Option<u64>,
    },
}

impl Network {
    /// Builds the network for `topology` from the `[network]` section, drawing from `rng`.
    pub fn new(spec: &NetworkSpec, topology: &Topology, rng: ChaCha8Rng) -> Network {
        let n = topology.len();
        let base = LinkParams {
            latency: Latency::from_spec(&spec.latency),
            loss_probability: spec.loss_probability,
            duplicate_probability: spec.duplicate_probability,
            reorder: spec.reorder,
        };
        let mut params = vec![base];
        let mut link_params = vec![0u16; n * n];
        for link in &spec.links {
            apply_override(link, topology, &mut params, &mut link_params, n);
        }
        Network {
            n,
            params,
            link_params,
            degrade_count: vec![0; n * n],
            degrades: BTreeMap::new(),
            cut_count: vec![0; n * n],
            cuts: BTreeMap::new(),
            last_arrival_ns: vec![0; n * n],
            rng,
        }
    }

    /// The parameters of the directed link `from -> to`.
    pub fn link(&self, from: NodeId, to: NodeId) -> &LinkParams {
        &self.params[self.link_params[from.index() * self.n + to.index()] as usize]
    }

    /// Draws the fate of a message sent now (`now_ns`) on `from -> to`, under the condition in
    /// force on that link now.
    #[inline]
    pub fn fate(&mut self, from: NodeId, to: NodeId, now_ns: u64) -> Fate {
        let slot = from.index() * self.n + to.index();
        let own = &self.params[self.link_params[slot] as usize];
        if self.degrade_count[slot] == 0
            && own.loss_probability <= 0.0
            && own.duplicate_probability <= 0.0
        {
            // The common case, drawn as below without the overlay: one latency, nothing else.
            let drawn = now_ns + own.latency.sample(&mut self.rng);
            let last = &mut self.last_arrival_ns[slot];
            let at_ns = if own.reorder { drawn } else { drawn.max(*last) };
            *last = (*last).max(at_ns);
            return Fate::Arrives {
                at_ns,
                duplicate_at_ns: None,
            };
        }
        self.fate_overlaid(slot, now_ns)
    }

    /// [`Network::fate`] on link `slot` with the active degrades laid over its parameters, and
    /// loss and duplication drawn.
    fn fate_overlaid(&mut self, slot: usize, now_ns: u64) -> Fate {
        let Network {
            params,
            link_params,
            degrade_count,
            degrades,
            last_arrival_ns,
            rng,
            ..
        } = self;
        let mut link = Effective::of(&params[link_params[slot] as usize]);
        if degrade_count[slot] > 0 {
            for d in degrades
                .values()
                .filter(|d| d.slots.binary_search(&slot).is_ok())
            {
                link.overlay(&d.over);
            }
        }
        if link.loss_probability > 0.0 && rng.gen_bool(link.loss_probability) {
            return Fate::Lost;
        }
        let duplicated =
            link.duplicate_probability > 0.0 && rng.gen_bool(link.duplicate_probability);
        let (latency, reorder) = (link.latency, link.reorder);
        let mut last = last_arrival_ns[slot];
        let mut arrival = || {
            let drawn = now_ns + latency.sample(rng);
            // FIFO: never before an earlier message on this link, unless the link reorders.
            let at = if reorder { drawn } else { drawn.max(last) };
            last = last.max(at);
            at
        };
        let at_ns = arrival();
        let duplicate_at_ns = duplicated.then(&mut arrival);
        last_arrival_ns[slot] = last;
        Fate::Arrives {
            at_ns,
            duplicate_at_ns,
        }
    }

    /// Lays `condition` over `links` on behalf of fault `fault_id` until
    /// [`Network::restore`]. The condition must be valid (as `validate` checks).
    pub fn degrade(&mut self, fault_id: u64, links: &[(NodeId, NodeId)], condition: &Condition) {
        let mut slots: Vec<usize> = links
            .iter()
            .map(|&(a, b)| a.index() * self.n + b.index())
            .collect();
        slots.sort_unstable();
        slots.dedup();
        for &slot in &slots {
            self.degrade_count[slot] += 1;
        }
        let old = self.degrades.insert(
            fault_id,
            Degrade {
                over: Override::new(condition),
                slots,
            },
        );
        debug_assert!(old.is_none(), "a fault degrades once");
    }

    /// Lifts the condition fault `fault_id` laid. Returns false if it had none.
    pub fn restore(&mut self, fault_id: u64) -> bool {
        let Some(d) = self.degrades.remove(&fault_id) else {
            return false;
        };
        for slot in d.slots {
            self.degrade_count[slot] -= 1;
        }
        true
    }

    /// True if some `degrade` fault is active.
    pub fn is_degraded(&self) -> bool {
        !self.degrades.is_empty()
    }

    /// True if some active fault cuts `from -> to`.
    pub fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut_count[from.index() * self.n + to.index()] > 0
    }

    /// Cuts `links` on behalf of fault `fault_id` (added to any cuts it already owns).
    pub fn cut(&mut self, fault_id: u64, links: Vec<(NodeId, NodeId)>) {
        for &(a, b) in &links {
            self.cut_count[a.index() * self.n + b.index()] += 1;
        }
        self.cuts.entry(fault_id).or_default().extend(links);
    }

    /// Restores the links cut by `fault_id`. Returns how many it had cut.
    pub fn heal_fault(&mut self, fault_id: u64) -> usize {
        let links = self.cuts.remove(&fault_id).unwrap_or_default();
        for &(a, b) in &links {
            self.cut_count[a.index() * self.n + b.index()] -= 1;
        }
        links.len()
    }

    /// Restores every cut link. Returns the ids of the faults whose cuts were removed.
    pub fn heal_all(&mut self) -> Vec<u64> {
        let ids: Vec<u64> = self.cuts.keys().copied().collect();
        for &id in &ids {
            self.heal_fault(id);
        }
        ids
    }

    /// True if no link is cut.
    pub fn is_whole(&self) -> bool {
        self.cuts.values().all(Vec::is_empty)
    }
}

fn apply_override(
    link: &LinkSpec,
    topology: &Topology,
    params: &mut Vec<LinkParams>,
    link_params: &mut [u16],
    n: usize,
) {
    let froms = topology.resolve_static(&link.from).unwrap_or_default();
    let tos = topology.resolve_static(&link.to).unwrap_or_default();
    let mut pairs: Vec<(NodeId, NodeId)> = Vec::new();
    for &a in &froms {
        for &b in &tos {
            if a != b {
                pairs.push((a, b));
                if link.symmetric {
                    pairs.push((b, a));
                }
            }
        }
    }
    // Each distinct (old parameters, override) combination gets one new parameter set.
    let over = Override::new(&Condition::of_link(link));
    let mut made: BTreeMap<u16, u16> = BTreeMap::new();
    for (a, b) in pairs {
        let slot = a.index() * n + b.index();
        let old = link_params[slot];
        let new = *made.entry(old).or_insert_with(|| {
            let mut p = Effective::of(&params[old as usize]);
            p.overlay(&over);
            let p = p.to_params();
            params.push(p);
            u16::try_from(params.len() - 1).expect("validated: fewer than 65536 link overrides")
        });
        link_params[slot] = new;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rand::SeedableRng;

    use super::*;
    use crate::scenario::{Duration, Scenario};

    fn network() -> Network {
        let text = "duration = \"1s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 3\n\
                    [network]\nlatency = \"1ms\"\n";
        let s = Scenario::parse(Path::new("n.toml"), text.as_bytes()).unwrap();
        Network::new(&s.network, &Topology::new(&s), ChaCha8Rng::seed_from_u64(1))
    }

    fn latency_ms(ms: u64) -> Condition {
        Condition {
            latency: Some(LatencySpec::Constant(Duration::from_millis(ms))),
            ..Condition::default()
        }
    }

    /// Draws from `UniformNs` and from `gen_range` on clones of one stream: the same values,
    /// and the streams end in the same state (the same words consumed).
    fn same_draws_as_gen_range(min: u64, max: u64, seed: u64, draws: usize) {
        let uniform = UniformNs::new(min, max);
        let mut ours = ChaCha8Rng::seed_from_u64(seed);
        let mut theirs = ours.clone();
        for i in 0..draws {
            assert_eq!(
                uniform.sample(&mut ours),
                theirs.gen_range(min..=max),
                "draw {i} of [{min}, {max}], seed {seed}"
            );
        }
        assert_eq!(
            ours.next_u64(),
            theirs.next_u64(),
            "the same words consumed"
        );
    }

    #[test]
    fn uniform_latency_draws_what_gen_range_draws_at_the_edges() {
        for (min, max) in [
            (0, 0),
            (7, 7),
            (0, u64::MAX),
            (1, u64::MAX),
            (0, u64::MAX - 1),
            (0, 1),
            (1_000_000, 10_000_000),
            (0, (1 << 63) - 1),
            (0, 1 << 63),
            (u64::MAX - 3, u64::MAX),
        ] {
            same_draws_as_gen_range(min, max, 1, 200);
        }
    }

    proptest::proptest! {
        /// Any range and seed: the precomputed draw is `gen_range`'s, word for word (trace
        /// hashes depend on it).
        #[test]
        fn uniform_latency_draws_what_gen_range_draws(
            min in proptest::prelude::any::<u64>(),
            span in proptest::prop_oneof![
                0u64..64,
                0u64..20_000_000,
                proptest::prelude::any::<u64>(),
            ],
            seed in proptest::prelude::any::<u64>(),
        ) {
            same_draws_as_gen_range(min, min.saturating_add(span), seed, 64);
        }
    }

    #[test]
    fn the_plain_link_shortcut_draws_what_the_overlaid_path_draws() {
        let text = "duration = \"1s\"\n[cluster]\nprotocol = \"broadcast\"\nnodes = 3\n\
                    [network]\nlatency = { distribution = \"uniform\", min = \"1ms\", max = \"10ms\" }\n\
                    [[network.link]]\nfrom = \"n1\"\nto = \"n2\"\nreorder = true\n";
        let s = Scenario::parse(Path::new("n.toml"), text.as_bytes()).unwrap();
        let make = || Network::new(&s.network, &Topology::new(&s), ChaCha8Rng::seed_from_u64(7));
        let (mut short, mut long) = (make(), make());
        let links = [(0, 1), (1, 0), (0, 2), (2, 1)];
        for i in 0..2_000u64 {
            let (a, b) = links[(i % 4) as usize];
            let now_ns = i * 1_000_000; // 1 ms apart: FIFO holds some back
            let slot = a * long.n + b; // the topology also holds the workload's clients
            assert_eq!(
                short.fate(NodeId(a as u32), NodeId(b as u32), now_ns),
                long.fate_overlaid(slot, now_ns),
                "message {i}"
            );
        }
        assert_eq!(short.last_arrival_ns, long.last_arrival_ns);
    }

    #[test]
    fn overlapping_degrades_layer_key_by_key_and_restore_what_lies_beneath() {
        let mut net = network();
        let (a, b, c) = (NodeId(0), NodeId(1), NodeId(2));
        let mut t = 0;
        let mut took = |net: &mut Network, from, to| {
            t += 1_000_000_000; // far apart: FIFO never delays
            match net.fate(from, to, t) {
                Fate::Arrives { at_ns, .. } => Some((at_ns - t) / 1_000_000),
                Fate::Lost => None,
            }
        };
        net.degrade(1, &[(a, b)], &latency_ms(10));
        net.degrade(
            2,
            &[(a, b), (a, c)],
            &Condition {
                loss_probability: Some(0.0),
                ..latency_ms(20)
            },
        );
        assert_eq!(took(&mut net, a, b), Some(20), "the later degrade wins");
        assert_eq!(took(&mut net, a, c), Some(20));
        assert_eq!(took(&mut net, b, a), Some(1), "one-way");
        let lose = Condition {
            loss_probability: Some(1.0),
            ..Condition::default()
        };
        net.degrade(3, &[(a, b)], &lose);
        assert_eq!(
            took(&mut net, a, b),
            None,
            "loss from the latest, latency kept"
        );
        assert!(net.restore(3));
        assert_eq!(took(&mut net, a, b), Some(20));
        assert!(net.restore(2));
        assert_eq!(
            took(&mut net, a, b),
            Some(10),
            "the earlier degrade is back"
        );
        assert_eq!(
            took(&mut net, a, c),
            Some(1),
            "the link's own condition is back"
        );
        assert!(net.restore(1));
        assert!(!net.restore(1), "restored once");
        assert!(!net.is_degraded());
        assert_eq!(took(&mut net, a, b), Some(1));
    }
}
