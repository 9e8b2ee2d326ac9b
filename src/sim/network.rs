//! faultline's message layer: the fate of every message, and partitions.
//!
//! At send time the network draws, from its own seeded stream, whether a message is lost, whether
//! it is duplicated, and each copy's latency, using the parameters of its directed link (the
//! `[network]` defaults overridden by `[[network.link]]` entries). Unless the link allows
//! reordering, a copy never arrives before an earlier message on the same link (FIFO per link).
//!
//! Partitions are sets of cut directed links, owned by the fault that cut them, so undoing one
//! fault never heals another's cuts. Cuts and crashes are checked by the world when a message
//! *arrives*, not when it is sent: nothing crosses a link while it is cut, and a message in
//! flight when a partition starts is dropped if it would arrive during the partition.
//!
//! madsim's `Endpoint`/`NetSim` cannot do this (global loss and latency only, no duplication, no
//! FIFO, clogs checked at send time only; see MADSIM-NOTES.md).

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, Normal};

use crate::process::NodeId;
use crate::scenario::{LatencyDistribution, LatencySpec, LinkSpec, Network as NetworkSpec};
use crate::sim::topology::Topology;

/// A resolved latency distribution, in nanoseconds.
#[derive(Clone, Debug)]
pub enum Latency {
    /// Always this.
    Constant(u64),
    /// Uniform in `[min, max]`.
    Uniform {
        /// Smallest, ns.
        min: u64,
        /// Largest, ns.
        max: u64,
    },
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
                LatencyDistribution::Uniform { min, max } => Latency::Uniform {
                    min: min.as_nanos(),
                    max: max.as_nanos(),
                },
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
            Latency::Uniform { min, max } => (*min, *max),
            Latency::Exponential { min, max, .. } => (*min, *max),
            Latency::Normal { max, .. } => (0, *max),
        }
    }

    /// Draws one latency.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        match self {
            Latency::Constant(v) => *v,
            Latency::Uniform { min, max } => rng.gen_range(*min..=*max),
            Latency::Exponential { min, exp, max } => {
                let extra = exp.sample(rng);
                (min.saturating_add(extra as u64)).min(*max)
            }
            Latency::Normal { normal, max } => (normal.sample(rng).max(0.0) as u64).min(*max),
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

/// The network: link parameters, cut links and per-link FIFO state, for `n` nodes.
#[derive(Debug)]
pub struct Network {
    n: usize,
    /// Distinct parameter sets; `link_params[from * n + to]` indexes into it.
    params: Vec<LinkParams>,
    link_params: Vec<u16>,
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

    /// Draws the fate of a message sent now (`now_ns`) on `from -> to`.
    pub fn fate(&mut self, from: NodeId, to: NodeId, now_ns: u64) -> Fate {
        let slot = from.index() * self.n + to.index();
        let link = &self.params[self.link_params[slot] as usize];
        if link.loss_probability > 0.0 && self.rng.gen_bool(link.loss_probability) {
            return Fate::Lost;
        }
        let duplicated =
            link.duplicate_probability > 0.0 && self.rng.gen_bool(link.duplicate_probability);
        let at_ns = self.arrival(slot, now_ns);
        let duplicate_at_ns = duplicated.then(|| self.arrival(slot, now_ns));
        Fate::Arrives {
            at_ns,
            duplicate_at_ns,
        }
    }

    /// Draws one copy's arrival time on link `slot` (FIFO unless the link reorders).
    fn arrival(&mut self, slot: usize, now_ns: u64) -> u64 {
        let link = &self.params[self.link_params[slot] as usize];
        let mut at = now_ns + link.latency.sample(&mut self.rng);
        if !link.reorder {
            at = at.max(self.last_arrival_ns[slot]);
            self.last_arrival_ns[slot] = at;
        }
        at
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
    let mut made: BTreeMap<u16, u16> = BTreeMap::new();
    for (a, b) in pairs {
        let slot = a.index() * n + b.index();
        let old = link_params[slot];
        let new = *made.entry(old).or_insert_with(|| {
            let mut p = params[old as usize].clone();
            if let Some(l) = &link.latency {
                p.latency = Latency::from_spec(l);
            }
            if let Some(v) = link.loss_probability {
                p.loss_probability = v;
            }
            if let Some(v) = link.duplicate_probability {
                p.duplicate_probability = v;
            }
            if let Some(v) = link.reorder {
                p.reorder = v;
            }
            params.push(p);
            u16::try_from(params.len() - 1).expect("validated: fewer than 65536 link overrides")
        });
        link_params[slot] = new;
    }
}
