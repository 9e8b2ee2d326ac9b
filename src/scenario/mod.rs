//! Scenario files: the serde model of the TOML format, loading, and validation.
//!
//! A scenario is data only: the cluster's roles (which protocol runs on which nodes, with its
//! options), the client groups (which workload, how many clients, which roles they talk to), the
//! network, the clocks, the fault schedule (scripted `[[fault]]` entries and a random
//! `[nemesis]`), the checks and the expected verdict. Every table denies unknown keys. Loading
//! reports every problem as a [`ScenarioError`] naming the file, line and column and what was
//! expected. The format is documented key by key in `docs/scenario-format.md`; keep the two in
//! step.
//!
//! The loader knows no family: protocols, workloads and checks are looked up in the families
//! it is given ([`Families`], implemented by `family::Registry`; `scenario/` sits below the
//! family interface, see [`families`]), and each role's and client group's `options` table is
//! checked by the family that owns it. The single-protocol form (`[cluster] protocol`, `nodes`, a
//! `[<protocol>]` options table and `[workload]`) is shorthand for one role and one client
//! group; loading turns it into that form ([`normalize`]).
//!
//! Model: raft-rs `Config::validate`; TigerBeetle's VOPR, which logs the seed and every option.

mod de;
mod duration;
pub mod error;
pub mod families;
pub mod limits;
mod normalize;
pub mod topology;
mod validate;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use duration::{Duration, SignedDuration};
pub use error::PathSeg;
pub use error::ScenarioError;
pub use families::{CheckOptions, Families, OptionError, parse_options};
pub use validate::{nemesis_worst_case_faults, valid_scenario_name};

/// A whole scenario file. See `docs/scenario-format.md`.
///
/// Top-level keys are checked by the loader rather than by `deny_unknown_fields`: a table named
/// after the shorthand cluster's protocol (`[raft]`) holds that role's options.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Scenario {
    /// Name used for the report folder; defaults to the file stem.
    #[serde(default)]
    pub name: String,
    /// One-line summary (the file's opening comment explains more).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Run seed; `faultline run --seed N` overrides it.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Simulated length of the run.
    pub duration: Duration,
    /// Nodes, their roles and named groups.
    pub cluster: Cluster,
    /// Message fates: latency, loss, duplication, reordering; per-link overrides.
    #[serde(default)]
    pub network: Network,
    /// Per-node local clocks, keyed by node name.
    #[serde(default)]
    pub clock: BTreeMap<String, ClockSpec>,
    /// Scripted faults.
    #[serde(default, rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultSpec>,
    /// Random faults drawn from the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nemesis: Option<Nemesis>,
    /// Shorthand for one client group (`[workload]`: `clients` and the workload's options);
    /// loading moves it into [`Scenario::clients`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<toml::Table>,
    /// Client groups (`[[clients]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientGroup>,
    /// Check options by check name (`[check.<name>]`); checks not named here run with their
    /// defaults. Each check reads its own table ([`Scenario::check_options`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub check: BTreeMap<String, toml::Table>,
    /// What the run must produce for `faultline test`.
    #[serde(default)]
    pub expect: Expect,
    /// The families this scenario was loaded with (not part of the file; `Scenario::registry`
    /// gives them as a `family::Registry`).
    #[serde(skip, default = "families::no_families")]
    pub families: std::sync::Arc<dyn Families>,
}

fn default_seed() -> u64 {
    1
}

/// `[cluster]`: the server roles. Client nodes come from the client groups.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Shorthand: the protocol of every server node (one role named after it). Loading moves
    /// it into [`Cluster::roles`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Shorthand: the server nodes, a count (named `n1`..`nN`) or a list of names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<NodeList>,
    /// The roles (`[[cluster.role]]`), in node order.
    #[serde(default, rename = "role", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSpec>,
    /// Named groups of nodes, usable wherever a node can be named (fault targets, links).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// `[[cluster.role]]`: server nodes that run one protocol with one options table.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSpec {
    /// The role's name: a fault target and link end for all its nodes.
    pub name: String,
    /// The protocol, as listed by `faultline list`.
    pub protocol: String,
    /// Its nodes: a count (named `<name>1`..`<name>N`) or a list of names.
    pub nodes: NodeList,
    /// The protocol's options (checked by its family).
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub options: toml::Table,
    /// True if it came from the shorthand `[cluster] protocol` (for error locations).
    #[serde(skip)]
    pub shorthand: bool,
}

/// `[[clients]]`: client nodes that run one workload against some roles.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGroup {
    /// The group's name: a fault target for all its nodes, and the prefix of their names.
    pub name: String,
    /// The workload, as listed by `faultline list`.
    pub workload: String,
    /// Number of client nodes (`<name>1`..`<name>N`).
    pub count: u32,
    /// The roles its clients talk to (default: every role whose protocol serves the workload).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub talks_to: Vec<String>,
    /// The workload's options (checked by its family).
    #[serde(default, skip_serializing_if = "toml::Table::is_empty")]
    pub options: toml::Table,
    /// True if it came from the shorthand `[workload]` table (for error locations).
    #[serde(skip)]
    pub shorthand: bool,
}

/// `nodes = 5` or `nodes = ["a", "b", "c"]` (deserialized in `de.rs`).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum NodeList {
    /// `n1` .. `nN`.
    Count(u32),
    /// Explicit names.
    Names(Vec<String>),
}

/// A latency distribution. A bare duration string means a constant latency (deserialized in
/// `de.rs`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LatencySpec {
    /// `latency = "5ms"`: constant.
    Constant(Duration),
    /// `latency = { distribution = "...", ... }`.
    Distribution(LatencyDistribution),
}

/// The latency distributions. All are sampled from the network's seeded stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "distribution", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LatencyDistribution {
    /// Always `value`.
    Constant {
        /// The latency.
        value: Duration,
    },
    /// Uniform in `[min, max]`.
    Uniform {
        /// Smallest latency.
        min: Duration,
        /// Largest latency (at least `min`).
        max: Duration,
    },
    /// `min` plus an exponential with mean `mean - min`; optionally capped at `max`.
    Exponential {
        /// Mean latency (above `min`).
        mean: Duration,
        /// Smallest latency.
        #[serde(default)]
        min: Duration,
        /// Cap, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Duration>,
    },
    /// Normal with `mean` and `std_dev`, clipped to `[0, max]` (`max` defaults to
    /// `mean + 4 * std_dev`).
    Normal {
        /// Mean latency.
        mean: Duration,
        /// Standard deviation.
        std_dev: Duration,
        /// Cap (default `mean + 4 * std_dev`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<Duration>,
    },
}

impl LatencySpec {
    /// True if every latency this spec can draw is 0 (messages arrive at the instant they are
    /// sent).
    pub fn always_zero(&self) -> bool {
        match self {
            LatencySpec::Constant(d)
            | LatencySpec::Distribution(LatencyDistribution::Constant { value: d }) => {
                d.as_nanos() == 0
            }
            LatencySpec::Distribution(LatencyDistribution::Uniform { max, .. }) => {
                max.as_nanos() == 0
            }
            LatencySpec::Distribution(LatencyDistribution::Exponential { .. }) => false,
            LatencySpec::Distribution(LatencyDistribution::Normal { mean, std_dev, max }) => {
                (mean.as_nanos() == 0 && std_dev.as_nanos() == 0)
                    || max.is_some_and(|m| m.as_nanos() == 0)
            }
        }
    }
}

impl Default for LatencySpec {
    fn default() -> Self {
        LatencySpec::Distribution(LatencyDistribution::Uniform {
            min: Duration::from_millis(1),
            max: Duration::from_millis(5),
        })
    }
}

/// `[network]`: the default fate of every message, and per-link overrides.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// One-way latency of every message.
    #[serde(default)]
    pub latency: LatencySpec,
    /// Probability in [0, 1] that a message is lost.
    #[serde(default)]
    pub loss_probability: f64,
    /// Probability in [0, 1] that a message is delivered twice (each copy has its own latency).
    #[serde(default)]
    pub duplicate_probability: f64,
    /// If false (default) each directed link is FIFO: a message never overtakes an earlier one on
    /// the same link. If true messages may be reordered by their latencies.
    #[serde(default)]
    pub reorder: bool,
    /// Overrides for particular links.
    #[serde(default, rename = "link", skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkSpec>,
}

impl Default for Network {
    fn default() -> Self {
        Network {
            latency: LatencySpec::default(),
            loss_probability: 0.0,
            duplicate_probability: 0.0,
            reorder: false,
            links: Vec::new(),
        }
    }
}

/// `[[network.link]]`: overrides for messages from `from` to `to` (node or group names, or
/// `"*"`); with `symmetric = true` (default) also for `to` -> `from`. Later entries win.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkSpec {
    /// Sending node(s).
    pub from: String,
    /// Receiving node(s).
    pub to: String,
    /// Apply to the reverse direction too.
    #[serde(default = "yes")]
    pub symmetric: bool,
    /// Latency override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,
    /// Loss override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_probability: Option<f64>,
    /// Duplication override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_probability: Option<f64>,
    /// Reordering override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
}

/// `true`: the serde default of every switch that is on unless turned off.
pub(crate) fn yes() -> bool {
    true
}

/// `[clock.<node>]`: a node's local clock at the start of the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockSpec {
    /// Local minus global time at time 0 (may be negative).
    #[serde(default)]
    pub offset: SignedDuration,
    /// Rate error: the local clock advances `1 + drift` seconds per global second
    /// (0.01 = 1% fast, -0.5 = half speed). Must be greater than -1.
    #[serde(default)]
    pub drift: f64,
}

/// The kinds of scripted fault (`kind = "..."`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Split the nodes into sides (`shape`, or explicit `groups`); links between sides are cut.
    Partition,
    /// Cut every link to and from each `target` node (links between two targets included).
    Isolate,
    /// Cut the one-way link(s) `from` -> `to`.
    Cut,
    /// Change latency, loss, duplication or reordering on every link to and from the `target`
    /// node(s), or on the one-way link(s) `from` -> `to`.
    Degrade,
    /// Restore every cut link.
    Heal,
    /// Crash the `target` node(s): they stop, unsynced disk writes are lost.
    Crash,
    /// Restart crashed `target` node(s).
    Restart,
    /// Pause the `target` node(s): no messages or timers are processed; messages queue.
    Pause,
    /// Resume paused `target` node(s).
    Resume,
    /// Jump the `target` node(s)' local clock by `delta`.
    ClockJump,
    /// Set the `target` node(s)' clock drift to `drift`.
    ClockDrift,
}

impl FaultKind {
    /// Every kind, for `faultline list`.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Partition,
        FaultKind::Isolate,
        FaultKind::Cut,
        FaultKind::Degrade,
        FaultKind::Heal,
        FaultKind::Crash,
        FaultKind::Restart,
        FaultKind::Pause,
        FaultKind::Resume,
        FaultKind::ClockJump,
        FaultKind::ClockDrift,
    ];

    /// The kebab-case name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Partition => "partition",
            FaultKind::Isolate => "isolate",
            FaultKind::Cut => "cut",
            FaultKind::Degrade => "degrade",
            FaultKind::Heal => "heal",
            FaultKind::Crash => "crash",
            FaultKind::Restart => "restart",
            FaultKind::Pause => "pause",
            FaultKind::Resume => "resume",
            FaultKind::ClockJump => "clock-jump",
            FaultKind::ClockDrift => "clock-drift",
        }
    }

    /// One line for `faultline list`.
    pub fn summary(self) -> &'static str {
        match self {
            FaultKind::Partition => {
                "split nodes into sides (shape or groups); undo: heal those cuts"
            }
            FaultKind::Isolate => "cut every link of each target node; undo: heal those cuts",
            FaultKind::Cut => "cut the one-way link(s) from -> to; undo: heal those cuts",
            FaultKind::Degrade => {
                "change latency/loss/duplication/reordering of links; undo: restore them"
            }
            FaultKind::Heal => "restore every cut link",
            FaultKind::Crash => "crash target node(s), losing unsynced writes; undo: restart",
            FaultKind::Restart => "restart crashed target node(s)",
            FaultKind::Pause => "pause target node(s), messages queue; undo: resume",
            FaultKind::Resume => "resume paused target node(s)",
            FaultKind::ClockJump => "jump target node(s)' local clock by delta; undo: jump back",
            FaultKind::ClockDrift => "set target node(s)' clock drift; undo: restore the old drift",
        }
    }
}

/// Named partition shapes, as in Jepsen's `nemesis/combined`. Shapes split the server nodes;
/// each client stays on the side of its home server.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionShape {
    /// A majority and a minority; the `target` node(s), if any, go to the minority, the rest
    /// fill sides in node order.
    Halves,
    /// A majority and a minority chosen at random (from the fault stream).
    RandomHalves,
    /// Every node sees a majority, but no two nodes see the same one (nodes in a ring, each
    /// linked to its nearest neighbours).
    MajoritiesRing,
    /// Two halves joined by one bridge node that sees both.
    Bridge,
    /// One random node cut off from all others.
    RandomNode,
}

impl PartitionShape {
    /// Every shape, for `faultline list`.
    pub const ALL: [PartitionShape; 5] = [
        PartitionShape::Halves,
        PartitionShape::RandomHalves,
        PartitionShape::MajoritiesRing,
        PartitionShape::Bridge,
        PartitionShape::RandomNode,
    ];

    /// The kebab-case name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            PartitionShape::Halves => "halves",
            PartitionShape::RandomHalves => "random-halves",
            PartitionShape::MajoritiesRing => "majorities-ring",
            PartitionShape::Bridge => "bridge",
            PartitionShape::RandomNode => "random-node",
        }
    }
}

/// `[[fault]]`: one scripted fault. Which of the optional keys apply depends on `kind`
/// (validation says which are required and which are not allowed).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When the fault starts (simulated time since the start of the run).
    pub at: Duration,
    /// What happens.
    pub kind: FaultKind,
    /// Node(s) affected: a node or group name, `"all"`, `"servers"`, `"clients"`, `"random"`
    /// (one server drawn from the fault stream), or `"leader"` (the server whose latest role
    /// observation is leader, with the highest term, at the time of the fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For `partition`: a named shape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shape: Option<PartitionShape>,
    /// For `partition`: explicit sides (node or group names). Servers in no side form one more
    /// side, so a single side cuts that group off from the rest as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<Vec<String>>>,
    /// For `cut` and `degrade`: sending node(s) (may be `leader` or `random`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// For `cut` and `degrade`: receiving node(s) (may be `leader` or `random`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// For `degrade`: the links' latency while the fault lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencySpec>,
    /// For `degrade`: the links' loss probability while the fault lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_probability: Option<f64>,
    /// For `degrade`: the links' duplication probability while the fault lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_probability: Option<f64>,
    /// For `degrade`: whether the links reorder while the fault lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reorder: Option<bool>,
    /// For `clock-jump`: how far the clock jumps (may be negative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<SignedDuration>,
    /// For `clock-drift`: the new drift (see `[clock]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<f64>,
    /// If set, the fault is undone this long after `at` (heal, restart, resume, clock back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
}

/// The fault kinds the nemesis can draw (`[nemesis] faults = [...]`).
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NemesisFault {
    /// A partition of a random shape (halves, random halves, majorities ring, bridge).
    Partition,
    /// Isolate one random server.
    Isolate,
    /// Isolate the current leader.
    IsolateLeader,
    /// Crash one random server, restart it when the fault ends.
    Crash,
    /// Crash the current leader, restart it when the fault ends.
    CrashLeader,
    /// Pause one random server, resume it when the fault ends.
    Pause,
    /// Jump one random server's clock by up to `clock_jump_max`, back when the fault ends.
    ClockJump,
    /// Set one random server's drift to a value in `[-clock_drift_max, clock_drift_max]`.
    ClockDrift,
    /// Slow every link to and from one random server: latency uniform in
    /// `[slow_latency_max / 2, slow_latency_max]`.
    Slow,
    /// Make every link to and from one random server lose messages with a probability drawn
    /// uniformly from `[loss_probability_max / 2, loss_probability_max]`.
    Lossy,
    /// Reorder every link from one random server (one direction), with latency uniform in
    /// `[0, reorder_latency_max]`.
    Reorder,
}

impl NemesisFault {
    /// Every nemesis fault, for `faultline list`.
    pub const ALL: [NemesisFault; 11] = [
        NemesisFault::Partition,
        NemesisFault::Isolate,
        NemesisFault::IsolateLeader,
        NemesisFault::Crash,
        NemesisFault::CrashLeader,
        NemesisFault::Pause,
        NemesisFault::ClockJump,
        NemesisFault::ClockDrift,
        NemesisFault::Slow,
        NemesisFault::Lossy,
        NemesisFault::Reorder,
    ];

    /// The kebab-case name used in scenario files.
    pub fn name(self) -> &'static str {
        match self {
            NemesisFault::Partition => "partition",
            NemesisFault::Isolate => "isolate",
            NemesisFault::IsolateLeader => "isolate-leader",
            NemesisFault::Crash => "crash",
            NemesisFault::CrashLeader => "crash-leader",
            NemesisFault::Pause => "pause",
            NemesisFault::ClockJump => "clock-jump",
            NemesisFault::ClockDrift => "clock-drift",
            NemesisFault::Slow => "slow",
            NemesisFault::Lossy => "lossy",
            NemesisFault::Reorder => "reorder",
        }
    }
}

/// `[nemesis]`: random faults. The whole schedule is drawn from its own stream of the run seed
/// before the run starts, so it never shifts when protocol scheduling changes. Faults come one at
/// a time: each lasts `fault_duration`, then the next starts after a gap drawn uniformly from
/// `[interval / 2, 3 * interval / 2]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nemesis {
    /// The kinds to draw from, uniformly.
    pub faults: Vec<NemesisFault>,
    /// Mean gap between the end of one fault and the start of the next.
    pub interval: Duration,
    /// How long each fault lasts.
    pub fault_duration: Duration,
    /// No fault starts before this time.
    #[serde(default)]
    pub start: Duration,
    /// Quiet period at the end of the run: every fault is undone at least this long before
    /// `duration`, so liveness and convergence can be checked.
    #[serde(default)]
    pub final_heal: Duration,
    /// Largest clock jump for `clock-jump` (either direction).
    #[serde(default = "default_clock_jump_max")]
    pub clock_jump_max: Duration,
    /// Largest drift magnitude for `clock-drift`.
    #[serde(default = "default_clock_drift_max")]
    pub clock_drift_max: f64,
    /// Largest latency for `slow` (at most 1 h).
    #[serde(default = "default_slow_latency_max")]
    pub slow_latency_max: Duration,
    /// Largest loss probability for `lossy`, in `(0, 1]`.
    #[serde(default = "default_loss_probability_max")]
    pub loss_probability_max: f64,
    /// Largest latency for `reorder` (at most 1 h).
    #[serde(default = "default_reorder_latency_max")]
    pub reorder_latency_max: Duration,
}

fn default_slow_latency_max() -> Duration {
    Duration::from_millis(200)
}

fn default_loss_probability_max() -> f64 {
    0.5
}

fn default_reorder_latency_max() -> Duration {
    Duration::from_millis(500)
}

fn default_clock_jump_max() -> Duration {
    Duration::from_secs(1)
}

fn default_clock_drift_max() -> f64 {
    0.2
}

/// The verdict of a run or of one check.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check passed.
    #[default]
    Pass,
    /// A check found a violation.
    Fail,
    /// A check could not decide (e.g. a budget ran out, or nothing to judge).
    Unknown,
}

impl Verdict {
    /// `pass`, `fail` or `unknown` (as in `report.json`).
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Unknown => "unknown",
        }
    }
}

/// `[expect]`: what `faultline test` requires of the run.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The overall verdict.
    #[serde(default)]
    pub verdict: Verdict,
    /// Checks that must fail (for a scenario demonstrating a bug).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_checks: Vec<String>,
}

impl Scenario {
    /// The options of check `name` (its `[check.<name>]` table), or the defaults if the file
    /// has none. The table was validated when the scenario was loaded.
    pub fn check_options<T: serde::de::DeserializeOwned + Default>(&self, name: &str) -> T {
        match self.check.get(name) {
            Some(table) => parse_options(table).unwrap_or_default(),
            None => T::default(),
        }
    }

    /// Reads and validates a scenario file with `families`, returning every problem found
    /// (never an empty list), in file order. Files over [`limits::MAX_SCENARIO_BYTES`] are
    /// refused unread. (`Scenario::load_all_with` takes a `family::Registry`.)
    pub fn load_with_families(
        path: &Path,
        families: std::sync::Arc<dyn Families>,
    ) -> Result<Scenario, Vec<ScenarioError>> {
        let too_big = |len: u64| {
            vec![ScenarioError::at(
                path,
                1,
                1,
                format!(
                    "the file is {len} bytes; expected at most {} (the limit on scenario files)",
                    limits::MAX_SCENARIO_BYTES
                ),
            )]
        };
        let file = std::fs::File::open(path).map_err(|e| vec![ScenarioError::io(path, &e)])?;
        match file.metadata() {
            Ok(m) if m.is_dir() => {
                return Err(vec![ScenarioError::at(
                    path,
                    1,
                    1,
                    "is a folder; expected a scenario file",
                )]);
            }
            Ok(m) if m.len() > limits::MAX_SCENARIO_BYTES => return Err(too_big(m.len())),
            _ => {}
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, limits::MAX_SCENARIO_BYTES + 1),
            &mut bytes,
        )
        .map_err(|e| vec![ScenarioError::io(path, &e)])?;
        Scenario::parse_with_families(path, &bytes, families)
    }

    /// Parses and validates scenario text with `families`, returning every problem found (never
    /// an empty list), in file order; `path` is used for error messages and the default name.
    /// (`Scenario::parse_all_with` takes a `family::Registry`.) A file that is not TOML, or whose
    /// values do not have the types of the format, reports the first such problem only (the
    /// parser stops there); every rule beyond types is checked and reported. Never panics,
    /// whatever the bytes.
    pub fn parse_with_families(
        path: &Path,
        bytes: &[u8],
        families: std::sync::Arc<dyn Families>,
    ) -> Result<Scenario, Vec<ScenarioError>> {
        if bytes.len() as u64 > limits::MAX_SCENARIO_BYTES {
            return Err(vec![ScenarioError::at(
                path,
                1,
                1,
                format!(
                    "the text is {} bytes; expected at most {} (the limit on scenario files)",
                    bytes.len(),
                    limits::MAX_SCENARIO_BYTES
                ),
            )]);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let (line, col) = error::line_col(bytes, e.valid_up_to());
            vec![ScenarioError::at(
                path,
                line,
                col,
                "expected UTF-8 text (a TOML file)",
            )]
        })?;
        let toml_error = |e: toml::de::Error| vec![ScenarioError::from_toml(path, text, &e)];
        let mut ignored = Vec::new();
        let parsed = serde_ignored::deserialize(
            toml::Deserializer::parse(text).map_err(toml_error)?,
            |key| ignored.push(key.to_string()),
        );
        let mut scenario: Scenario = match parsed {
            Ok(s) => s,
            Err(e) => {
                // A misspelt top-level key (`duraton`) explains a missing one: report it first.
                ignored.retain(|k| families.serves(k.split('.').next().unwrap_or(k)).is_none());
                let unknown = normalize::unknown_keys(&ignored, None, &*families, path, text)
                    .into_iter()
                    .filter(|_| e.message().starts_with("missing field"))
                    .collect::<Vec<_>>();
                return Err(if unknown.is_empty() {
                    toml_error(e)
                } else {
                    unknown
                });
            }
        };
        scenario.families = families;
        let name_from_file = scenario.name.is_empty();
        if name_from_file {
            scenario.name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into());
        }
        let mut errors = normalize::normalize(&mut scenario, path, text, &ignored);
        if errors.is_empty() {
            errors = validate::validate(&mut scenario, path, text, name_from_file);
        }
        if errors.is_empty() {
            Ok(scenario)
        } else {
            Err(errors)
        }
    }
}

/// The first of a non-empty list of problems.
pub fn first(errors: Vec<ScenarioError>) -> ScenarioError {
    errors
        .into_iter()
        .next()
        .expect("a failed validation reports at least one problem")
}
