//! The family interface: what a protocol family gives faultline, and the registry that lists
//! the families of a run.
//!
//! A **family** (ARCHITECTURE.md, "Families") is one folder of everything about one kind of
//! system: the **protocols** its cluster roles run ([`ProtocolInfo`]), the **workloads** its
//! client groups run ([`WorkloadInfo`]), its own **checks** ([`CheckInfo`]) and its planted bugs.
//! A scenario names protocols and workloads by name; the scenario loader looks them up in a
//! [`Registry`] (the built-in families, plus any a library user adds), hands each role's and
//! client group's `options` table to the family to validate, and the simulator asks the family to
//! build a process for each node. Nothing in `sim/`, `process.rs` or `scenario/` names a family.
//!
//! Adding a family: write its folder (processes, options structs with `serde`
//! `deny_unknown_fields`, messages, timers, observations, checks), declare one `static` [`Family`],
//! and add it to the list `families::FAMILIES` (or pass it to [`Registry::with`] from your own
//! crate). See `docs/architecture.md` for a worked example.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::history::ModelKind;
use crate::process::ProcessFactory;
use crate::process::fold::Fold;
use crate::process::{AnyProcess, NodeId};
use crate::scenario::topology::Role;
use crate::scenario::topology::Topology;
use crate::scenario::{Scenario, ScenarioError, Verdict};

pub use crate::scenario::{OptionError, parse_options};
use crate::sim::RunRecord;

/// One family: its name, and the protocols, workloads and checks it brings.
pub struct Family {
    /// Short name (`raft`, `lock`), for `faultline list`.
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// The protocols cluster roles can run.
    pub protocols: &'static [ProtocolInfo],
    /// The workloads client groups can run.
    pub workloads: &'static [WorkloadInfo],
    /// Checks of this family's properties (run when a role runs one of its protocols, or a
    /// client group one of its workloads, as each check's `applies_to` says).
    pub checks: &'static [CheckInfo],
    /// Optional: every decision of a run, for the generic `no-decision` check (time, node,
    /// what was decided). Consensus families give their commits, learns or applies here.
    pub decisions: Option<Decisions>,
    /// Optional: how this family tells a run's story in its own terms (`faultline explain`,
    /// the HTML report's story and scrubber). See [`Narrator`].
    pub narrator: Option<NarratorFactory>,
    /// Optional: a reader of the run's observations while it goes, for this family's checks
    /// (`None` from the factory: not needed for this scenario). See [`Fold`]: what it builds is
    /// what [`RunRecord::derived`] returns for its type, and what it consumes is not kept in
    /// the record.
    pub fold: Option<FoldFactory>,
}

/// Every decision of a run: (global time in ns, node, what was decided), in time order.
pub type Decisions = fn(&RunRecord) -> Vec<(u64, NodeId, String)>;

/// Makes a family's [`Fold`] for one run of a validated scenario, or `None` if the scenario does
/// not need it (none of the family's checks that read it runs).
pub type FoldFactory = fn(&Scenario, &Arc<Topology>) -> Option<Box<dyn Fold>>;

/// One node of a run and what it runs: the cast of a run, as `report.json`'s `nodes` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CastMember {
    /// The node's name (`n1`, `c3`, `lock2`).
    pub name: String,
    /// True for a client (a member of a client group), false for a server (a member of a role).
    pub client: bool,
    /// The name of its role or client group.
    pub part: String,
    /// The protocol its role runs, or the workload its group runs.
    pub runs: String,
}

impl CastMember {
    /// The cast of a run: every node in topology order (servers, then clients).
    pub fn cast(scenario: &Scenario, topology: &Topology) -> Vec<CastMember> {
        (0..topology.len())
            .map(|i| {
                let id = NodeId(i as u32);
                let part = topology.part[i];
                let (client, part, runs) = if topology.clients.contains(&id) {
                    let g = &scenario.clients[part];
                    (true, g.name.clone(), g.workload.clone())
                } else {
                    let r = &scenario.cluster.roles[part];
                    (false, r.name.clone(), r.protocol.clone())
                };
                CastMember {
                    name: topology.name(id).to_string(),
                    client,
                    part,
                    runs,
                }
            })
            .collect()
    }
}

/// Makes a family's [`Narrator`] for a run with this cast; `None` if no node of the cast runs one
/// of the family's protocols or workloads.
pub type NarratorFactory = fn(cast: &[CastMember]) -> Option<Box<dyn Narrator>>;

/// A family's storyteller: reads a run's trace events in order and says what happened in the
/// protocol's own terms ("n2 becomes leader of term 5 with votes from n3, n4, n5"), and how each
/// node's state changed (role, term, log length, holder, health), for `faultline explain` and the
/// HTML report's scrubber. Faults, crashes, restarts, pauses and client operations are told by
/// faultline itself (`report::view`); a family tells only its own facts, mostly from its
/// `observe` lines, and from messages where a fact needs them (the votes a candidate received).
///
/// A narrator sees only the trace (it may come from a `trace.jsonl` on disk), so it works from
/// the JSON form of observations and messages (`docs/trace-format.md`). It is `Send`:
/// `faultline run` builds the view on a thread of its own while the run goes
/// (`crate::report::view::LiveView`).
pub trait Narrator: Send {
    /// One trace event, in trace order: push story lines and state changes into `out`.
    fn event(&mut self, event: &crate::sim::trace::TraceEvent, out: &mut Narration);
    /// The trace ended (at `end_ns`): push anything held back.
    fn finish(&mut self, _end_ns: u64, _out: &mut Narration) {}
}

/// One line of a run's story.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StoryLine {
    /// Global simulated time, in nanoseconds.
    pub t_ns: u64,
    /// The node it is about (`None`: the whole run, e.g. a partition heals).
    pub node: Option<String>,
    /// What kind of event, for `explain --kinds` (e.g. `election`, `log`, `commit`, `fault`,
    /// `node`, `client`, `message`, `lock`, `registry`, `health`, `breaker`); the list is in
    /// `docs/explain.md`.
    pub topic: String,
    /// The sentence, without the time (e.g. `n2 times out in term 4 and starts PreVote`).
    pub text: String,
}

/// A change in one node's state, for the scrubber (the state at an instant is the latest change
/// of each field at or before it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StateChange {
    /// Global simulated time, in nanoseconds.
    pub t_ns: u64,
    /// The node.
    pub node: String,
    /// Which part of its state: `status` (up / crashed / paused, told by faultline), `role`
    /// (leader / follower / candidate, holder, healthy / ejected, ...), `term`, `log`, or a
    /// family's own.
    pub field: String,
    /// Its new value, as shown (empty: the field no longer applies).
    pub value: String,
}

/// One point of a family's numeric series over time, for its charts (the commit index per node,
/// each backend's load share per second).
#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct Sample {
    /// Global simulated time, in nanoseconds.
    pub t_ns: u64,
    /// The chart it belongs to, as its title with the unit (`commit index`, `load share (%)`,
    /// `p99 latency (ms)`); one chart is drawn per title.
    pub chart: String,
    /// The line it belongs to in that chart (usually a node's name).
    pub series: String,
    /// The value.
    pub value: f64,
}

/// What narrators produce: story lines, state changes and samples, each in time order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct Narration {
    /// The story.
    pub lines: Vec<StoryLine>,
    /// The state changes.
    pub states: Vec<StateChange>,
    /// Numeric series for the family's charts.
    pub samples: Vec<Sample>,
}

impl Narration {
    /// Adds a story line.
    pub fn say(&mut self, t_ns: u64, node: Option<&str>, topic: &str, text: impl Into<String>) {
        self.lines.push(StoryLine {
            t_ns,
            node: node.map(str::to_string),
            topic: topic.to_string(),
            text: text.into(),
        });
    }

    /// Adds a point to the series `series` of the chart `chart`.
    pub fn sample(&mut self, t_ns: u64, chart: &str, series: &str, value: f64) {
        self.samples.push(Sample {
            t_ns,
            chart: chart.to_string(),
            series: series.to_string(),
            value,
        });
    }

    /// Records a role change of a consensus node: the state field `role` if it changed (`was`
    /// is the old one, empty if none) and `term` if it changed or no role was known.
    pub fn set_role_and_term(
        &mut self,
        t_ns: u64,
        node: &str,
        (was, role): (&str, &str),
        (old_term, term): (u64, u64),
    ) {
        if was != role {
            self.set(t_ns, node, "role", role);
        }
        if old_term != term || was.is_empty() {
            self.set(t_ns, node, "term", term.to_string());
        }
    }

    /// Records that `node`'s `field` became `value` at `t_ns`.
    pub fn set(&mut self, t_ns: u64, node: &str, field: &str, value: impl Into<String>) {
        self.states.push(StateChange {
            t_ns,
            node: node.to_string(),
            field: field.to_string(),
            value: value.into(),
        });
    }
}

/// A time as story lines write it: seconds with millisecond precision (`3.012 s`).
pub fn seconds(t_ns: u64) -> String {
    format!("{}.{:03} s", t_ns / 1_000_000_000, t_ns / 1_000_000 % 1000)
}

/// Keeps a narrator's frequent state changes and samples bounded: per key (usually a node), a
/// value is passed on at most once per `period_ns`; a change inside the period is held and
/// passed on at the period's end (when the key's next change comes, or at [`Throttle::flush`]),
/// so the shown value lags the truth by at most one period. Values are compared, so an
/// unchanged value is never passed on twice.
#[derive(Clone, Debug)]
pub struct Throttle<V> {
    period_ns: u64,
    /// Per key: when a value was last passed on, that value, and the one held back (if any).
    keys: BTreeMap<String, (u64, V, Option<V>)>,
}

impl<V: Clone + PartialEq> Throttle<V> {
    /// A throttle passing on at most one value per key per `period_ns`.
    pub fn new(period_ns: u64) -> Self {
        Throttle {
            period_ns,
            keys: BTreeMap::new(),
        }
    }

    /// `key` has the value `value` at `t_ns`: returns the (time, value) pairs to pass on now
    /// (none, the held one, the new one, or both, in time order).
    pub fn update(&mut self, t_ns: u64, key: &str, value: V) -> Vec<(u64, V)> {
        let Some((last_ns, last, held)) = self.keys.get_mut(key) else {
            self.keys
                .insert(key.to_string(), (t_ns, value.clone(), None));
            return vec![(t_ns, value)];
        };
        let mut out = Vec::new();
        let due = last_ns.saturating_add(self.period_ns);
        if t_ns < due {
            *held = (value != *last).then_some(value);
            return out;
        }
        if let Some(h) = held.take() {
            *last_ns = due;
            *last = h.clone();
            out.push((due, h));
        }
        if value != *last {
            *last_ns = t_ns;
            *last = value.clone();
            out.push((t_ns, value));
        }
        out
    }

    /// Every held value, at the end of its key's period (at most `end_ns`), by key.
    pub fn flush(&mut self, end_ns: u64) -> Vec<(u64, String, V)> {
        let mut out = Vec::new();
        for (key, (last_ns, last, held)) in &mut self.keys {
            if let Some(h) = held.take() {
                let t = last_ns.saturating_add(self.period_ns).min(end_ns);
                *last_ns = t;
                *last = h.clone();
                out.push((t, key.clone(), h));
            }
        }
        out
    }
}

/// A planted bug: a named switch that breaks a protocol on purpose, so that a checker can be shown
/// to catch it.
#[derive(Copy, Clone, Debug)]
pub struct Bug {
    /// The switch's name, as written in the role's `bugs = [...]`.
    pub name: &'static str,
    /// What it breaks.
    pub summary: &'static str,
    /// The check expected to catch it.
    pub caught_by: &'static str,
}

/// What a node's process is built from: its place in the cluster.
#[derive(Clone, Debug)]
pub struct NodeSetup {
    /// The node being built.
    pub id: NodeId,
    /// The nodes of its own role (for a server: itself and its peers), in scenario order. For a
    /// client: the nodes of the first role it talks to.
    pub servers: Vec<NodeId>,
    /// For a client, the server it talks to first (round robin over `servers`).
    pub home: Option<NodeId>,
    /// For a client: the nodes of each role it talks to, in `talks_to` order (role name, nodes).
    pub talks_to: Vec<(String, Vec<NodeId>)>,
    /// For a client: its index among every client node of the cluster, and their number (for
    /// unique process ids across client groups).
    pub client_index: u32,
    /// See `client_index`.
    pub client_count: u32,
    /// Global time at which the run ends, in nanoseconds.
    pub end_ns: u64,
    /// Every node of the cluster, with roles and groups (to resolve node names in options).
    pub topology: Arc<Topology>,
}

impl NodeSetup {
    /// The setup of server `id` of a role whose nodes are `servers`, outside a simulation (for
    /// unit tests of a process): no clients, an empty topology, a run that never ends.
    pub fn server(id: NodeId, servers: Vec<NodeId>) -> NodeSetup {
        NodeSetup {
            id,
            servers,
            home: None,
            talks_to: Vec::new(),
            client_index: 0,
            client_count: 0,
            end_ns: u64::MAX,
            topology: Arc::new(Topology::default()),
        }
    }

    /// Every server of its role but this node, in scenario order.
    pub fn peers(&self) -> Vec<NodeId> {
        self.servers
            .iter()
            .copied()
            .filter(|&s| s != self.id)
            .collect()
    }

    /// The nodes of role `name` this client talks to (empty if it does not).
    pub fn role(&self, name: &str) -> &[NodeId] {
        self.talks_to
            .iter()
            .find(|(r, _)| r == name)
            .map_or(&[], |(_, nodes)| nodes)
    }
}

/// Builds a fresh process for one node (at boot and after every restart).
pub type Builder = Arc<dyn Fn(&NodeSetup) -> Box<dyn AnyProcess> + Send + Sync>;

/// A role's or client group's options, checked and ready: the options with every default filled
/// in (shown as the resolved scenario) and the process builder.
pub struct Configured {
    /// The options as the process will use them, defaults included.
    pub options: toml::Table,
    /// Builds one node's process.
    pub build: Builder,
}

/// What a protocol or workload sees when it configures a role or client group: its options
/// table and the validated scenario around it.
pub struct RoleContext<'a> {
    /// The role's (or client group's) name.
    pub name: &'a str,
    /// Its `options` table as written (empty if none).
    pub options: &'a toml::Table,
    /// The whole scenario (its generic parts: duration, network, clocks, faults).
    pub scenario: &'a Scenario,
    /// Every node of the cluster, with roles and groups.
    pub topology: &'a Topology,
    /// The nodes of this role or group.
    pub nodes: &'a [NodeId],
    /// For a client group: the protocols of the roles it talks to, in `talks_to` order.
    pub talks_to: &'a [&'a ProtocolInfo],
    /// True when the scenario loader asks (check every rule and report every problem); false
    /// when the simulator builds a validated scenario's processes (build what is there: a test
    /// may have changed a validated scenario on purpose).
    pub checking: bool,
}

/// A protocol cluster roles can run.
pub struct ProtocolInfo {
    /// Name used in a role's `protocol` (and `[cluster] protocol`).
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// The workloads whose clients it serves (by name); the first is the one the shorthand
    /// `[workload]` table gets.
    pub serves: &'static [&'static str],
    /// Its planted bugs.
    pub bugs: &'static [Bug],
    /// Protocols this one is built on or acts as, by name: its nodes report their facts, so
    /// every check that applies to a role running one of them applies to a role running this
    /// one too ([`Scenario::runs_protocol`]). The lock family's `coordination` runs Raft inside
    /// (Raft's checks apply) and each replica acts as a `fenced-storage`. Usually empty.
    pub built_on: &'static [&'static str],
    /// Checks the role's options (returning every problem) and prepares its builder.
    pub configure: fn(&RoleContext<'_>) -> Result<Configured, Vec<OptionError>>,
}

impl std::fmt::Debug for ProtocolInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtocolInfo")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the generic checks may do with a workload's history (they run only where it says so).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryTraits {
    /// The linearizability model its operations follow, if any.
    pub model: Option<ModelKind>,
    /// Its `ok`/`fail` outcomes say whether the system served a client, so `availability` (per
    /// partition side) and `liveness` (progress after the final heal) apply.
    pub availability: bool,
    /// Its reads return the value of one earlier write of a key, so `stale-read` applies.
    pub stale_reads: bool,
}

/// A workload client groups can run.
pub struct WorkloadInfo {
    /// Name used in a client group's `workload`.
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// What the generic checks may do with its history.
    pub history: HistoryTraits,
    /// Its planted bugs (switched on by a client group's `bugs = [...]` option).
    pub bugs: &'static [Bug],
    /// Checks the group's options (returning every problem) and prepares its builder.
    pub configure: fn(&RoleContext<'_>) -> Result<Configured, Vec<OptionError>>,
}

impl std::fmt::Debug for WorkloadInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadInfo")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The families a scenario may use: the built-in ones (`families::builtin`) and any a library
/// user adds ([`Registry::with`]). Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    families: Arc<Vec<&'static Family>>,
}

impl Registry {
    /// A registry of exactly these families.
    pub fn new(families: Vec<&'static Family>) -> Registry {
        Registry {
            families: Arc::new(families),
        }
    }

    /// This registry plus `family` (a family defined outside faultline).
    pub fn with(&self, family: &'static Family) -> Registry {
        let mut families = (*self.families).clone();
        families.push(family);
        Registry::new(families)
    }

    /// The families, in registration order.
    pub fn families(&self) -> &[&'static Family] {
        &self.families
    }

    /// Every protocol, in registration order.
    pub fn protocols(&self) -> impl Iterator<Item = &'static ProtocolInfo> + '_ {
        self.families.iter().flat_map(|f| f.protocols.iter())
    }

    /// Every workload, in registration order.
    pub fn workloads(&self) -> impl Iterator<Item = &'static WorkloadInfo> + '_ {
        self.families.iter().flat_map(|f| f.workloads.iter())
    }

    /// Every family check, in registration order.
    pub fn checks(&self) -> impl Iterator<Item = &'static CheckInfo> + '_ {
        self.families.iter().flat_map(|f| f.checks.iter())
    }

    /// The protocol called `name`.
    pub fn protocol(&self, name: &str) -> Option<&'static ProtocolInfo> {
        self.protocols().find(|p| p.name == name)
    }

    /// The workload called `name`.
    pub fn workload(&self, name: &str) -> Option<&'static WorkloadInfo> {
        self.workloads().find(|w| w.name == name)
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name.
    pub name: String,
    /// pass, fail or unknown.
    pub verdict: Verdict,
    /// One sentence for the terminal summary.
    pub summary: String,
    /// The facts that prove the verdict, each citing times (global, ms) and nodes; for a failure,
    /// the events that show the violation.
    pub evidence: Vec<String>,
    /// Measured quantities (e.g. the time to converge), by name with a unit suffix.
    pub metrics: BTreeMap<String, serde_json::Value>,
    /// Structured data behind the verdict, for pictures (the HTML report), in a shape named by
    /// its `kind` field; absent from `report.json` when `None`. A failed `linearizability` check
    /// puts its counterexample on a time axis here
    /// (`check::linearizability::TimelineView`, `kind = "linearizability-counterexample"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl CheckResult {
    /// A result without evidence or metrics yet.
    pub fn new(name: &str, verdict: Verdict, summary: impl Into<String>) -> Self {
        CheckResult {
            name: name.to_string(),
            verdict,
            summary: summary.into(),
            evidence: Vec::new(),
            metrics: BTreeMap::new(),
            details: None,
        }
    }
}

/// A check faultline can run: a generic one (listed in `check::CHECKS`) or a family's (listed by
/// its [`Family`]).
pub struct CheckInfo {
    /// Name (in reports, `[check.<name>]` and `[expect] failing_checks`).
    pub name: &'static str,
    /// One line for `faultline list`.
    pub summary: &'static str,
    /// Whether it applies to a scenario (the protocols its roles run, the workloads of its
    /// client groups and what their histories allow).
    pub applies_to: fn(&Scenario) -> bool,
    /// Whether it runs, given its `[check.<name>]` table (empty when the file has none).
    pub enabled: fn(&toml::Table) -> bool,
    /// Checks its `[check.<name>]` table and returns every problem.
    pub validate: fn(&toml::Table, &Scenario, &Topology) -> Vec<OptionError>,
    /// Its (valid) table with every default filled in, for the resolved scenario.
    pub resolve: fn(&toml::Table) -> toml::Table,
    /// The check itself; it reads its options with [`Scenario::check_options`].
    pub run: fn(&RunRecord) -> CheckResult,
}

impl CheckInfo {
    /// Whether it is enabled by `scenario`'s `[check.<name>]` table (an absent table is an empty
    /// one); whether it applies is [`CheckInfo::applies_to`].
    pub fn is_enabled_in(&self, scenario: &Scenario) -> bool {
        match scenario.check.get(self.name) {
            Some(table) => (self.enabled)(table),
            None => (self.enabled)(&toml::Table::new()),
        }
    }
}

impl Registry {
    /// Checks the options of role `role` of `scenario` with its protocol (every problem when
    /// `checking`) and prepares its builder; `None` if the protocol is unknown.
    pub fn configure_role(
        &self,
        scenario: &Scenario,
        topology: &Topology,
        role: usize,
        checking: bool,
    ) -> Option<Result<Configured, Vec<OptionError>>> {
        let spec = &scenario.cluster.roles[role];
        let protocol = self.protocol(&spec.protocol)?;
        let part = (scenario, topology, checking);
        Some(configure_part(
            part,
            &spec.name,
            &spec.options,
            protocol.configure,
            &[],
        ))
    }

    /// Checks the options of client group `group` of `scenario` with its workload (every
    /// problem when `checking`) and prepares its builder; `None` if the workload is unknown.
    pub fn configure_group(
        &self,
        scenario: &Scenario,
        topology: &Topology,
        group: usize,
        checking: bool,
    ) -> Option<Result<Configured, Vec<OptionError>>> {
        let spec = &scenario.clients[group];
        let workload = self.workload(&spec.workload)?;
        let talks_to: Vec<&'static ProtocolInfo> = spec
            .talks_to
            .iter()
            .filter_map(|r| scenario.cluster.roles.iter().find(|x| &x.name == r))
            .filter_map(|r| self.protocol(&r.protocol))
            .collect();
        let part = (scenario, topology, checking);
        Some(configure_part(
            part,
            &spec.name,
            &spec.options,
            workload.configure,
            &talks_to,
        ))
    }

    /// The folds of a run of `scenario`: each family's, if it wants one (see [`Family::fold`]).
    pub fn folds(&self, scenario: &Scenario, topology: &Arc<Topology>) -> Vec<Box<dyn Fold>> {
        self.families()
            .iter()
            .filter_map(|f| f.fold.and_then(|make| make(scenario, topology)))
            .collect()
    }

    /// The process factory of every node, by id: each role and client group is configured once by
    /// the family that owns its protocol or workload (the scenario was validated, so this succeeds).
    pub fn factories(&self, scenario: &Scenario, topology: &Arc<Topology>) -> Vec<ProcessFactory> {
        let nodes_of = |name: &str| topology.groups.get(name).cloned().unwrap_or_default();
        let role_builders: Vec<_> = (0..scenario.cluster.roles.len())
            .map(|i| {
                let configured = self
                    .configure_role(scenario, topology, i, false)
                    .expect("validated: a known protocol")
                    .expect("validated: the role's options");
                (configured.build, nodes_of(&scenario.cluster.roles[i].name))
            })
            .collect();
        let group_builders: Vec<_> = (0..scenario.clients.len())
            .map(|i| {
                let configured = self
                    .configure_group(scenario, topology, i, false)
                    .expect("validated: a known workload")
                    .expect("validated: the group's options");
                let talks_to: Vec<(String, Vec<NodeId>)> = scenario.clients[i]
                    .talks_to
                    .iter()
                    .filter_map(|r| scenario.cluster.roles.iter().find(|x| &x.name == r))
                    .map(|r| (r.name.clone(), nodes_of(&r.name)))
                    .collect();
                (configured.build, talks_to)
            })
            .collect();
        let client_count = topology.clients.len() as u32;
        (0..topology.len())
            .map(|i| {
                let id = NodeId(i as u32);
                let part = topology.part[i];
                let mut setup = NodeSetup {
                    id,
                    servers: Vec::new(),
                    home: topology.homes[i],
                    talks_to: Vec::new(),
                    client_index: 0,
                    client_count,
                    end_ns: scenario.duration.as_nanos(),
                    topology: topology.clone(),
                };
                let build = match topology.roles[i] {
                    Role::Server => {
                        let (build, nodes) = &role_builders[part];
                        setup.servers = nodes.clone();
                        build.clone()
                    }
                    Role::Client => {
                        let (build, talks_to) = &group_builders[part];
                        setup.servers = talks_to.first().map(|t| t.1.clone()).unwrap_or_default();
                        setup.talks_to = talks_to.clone();
                        setup.client_index = (i - topology.servers.len()) as u32;
                        build.clone()
                    }
                };
                Arc::new(move || build(&setup)) as ProcessFactory
            })
            .collect()
    }
}

/// Runs a protocol's or workload's `configure` on the role or client group `name` with its
/// `options` table, in (scenario, topology, checking).
fn configure_part(
    (scenario, topology, checking): (&Scenario, &Topology, bool),
    name: &str,
    options: &toml::Table,
    configure: fn(&RoleContext<'_>) -> Result<Configured, Vec<OptionError>>,
    talks_to: &[&ProtocolInfo],
) -> Result<Configured, Vec<OptionError>> {
    let nodes = topology.groups.get(name).cloned().unwrap_or_default();
    configure(&RoleContext {
        name,
        options,
        scenario,
        topology,
        nodes: &nodes,
        talks_to,
        checking,
    })
}

/// The registry-facing part of a scenario, defined here because `scenario/` sits below the
/// family interface (see [`crate::scenario::families`]).
impl Scenario {
    /// The families this scenario was loaded with (empty for a scenario that was not loaded).
    pub fn registry(&self) -> Registry {
        self.families
            .as_any()
            .downcast_ref::<Registry>()
            .cloned()
            .unwrap_or_default()
    }

    /// True if some role runs `protocol`, or a protocol built on it (its
    /// [`ProtocolInfo::built_on`] names `protocol`): what a check's `applies_to` asks.
    pub fn runs_protocol(&self, protocol: &str) -> bool {
        !self.roles_running(protocol).is_empty()
    }

    /// The roles that run `protocol`, or a protocol built on it, in scenario order.
    pub fn roles_running(&self, protocol: &str) -> Vec<&crate::scenario::RoleSpec> {
        let registry = self.registry();
        self.cluster
            .roles
            .iter()
            .filter(|r| {
                r.protocol == protocol
                    || registry
                        .protocol(&r.protocol)
                        .is_some_and(|p| p.built_on.contains(&protocol))
            })
            .collect()
    }

    /// The workloads of the client groups (each once), as registered.
    pub fn workloads(&self) -> Vec<&'static WorkloadInfo> {
        let mut out: Vec<&'static WorkloadInfo> = Vec::new();
        for g in &self.clients {
            if let Some(w) = self.registry().workload(&g.workload)
                && !out.iter().any(|o| o.name == w.name)
            {
                out.push(w);
            }
        }
        out
    }

    /// Reads and validates a scenario file with the families of `registry`, returning every
    /// problem found (never an empty list), in file order. Files over
    /// [`crate::scenario::limits::MAX_SCENARIO_BYTES`] are refused unread.
    pub fn load_all_with(path: &Path, registry: &Registry) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::load_with_families(path, Arc::new(registry.clone()))
    }

    /// Parses and validates scenario text with the families of `registry`, returning every
    /// problem found (never an empty list), in file order; `path` is used for error messages and
    /// the default name. Never panics, whatever the bytes (see
    /// [`Scenario::parse_with_families`]).
    pub fn parse_all_with(
        path: &Path,
        bytes: &[u8],
        registry: &Registry,
    ) -> Result<Scenario, Vec<ScenarioError>> {
        Scenario::parse_with_families(path, bytes, Arc::new(registry.clone()))
    }
}

/// `options` as a table, defaults included: what a configured role shows as its resolved
/// options.
pub fn resolved_options<T: Serialize>(options: &T) -> toml::Table {
    toml::Table::try_from(options).expect("options serialize to a TOML table")
}

/// Parses an options table into `T`, a config built of `#[serde(flatten)]` parts (a client
/// group's options around the `lock` client's, a `coordination` role's around Raft's). serde
/// does not reject unknown keys through a flattened struct, so this does: a key that does not
/// come back when the parsed options are written out again is unknown, and its error (at the
/// key) lists every key `T` writes out plus `unlisted`, the keys it omits when unset (e.g. an
/// optional `stop`, an empty `bugs`).
pub fn parse_flattened_options<T>(
    options: &toml::Table,
    unlisted: &[&str],
) -> Result<T, Vec<OptionError>>
where
    T: serde::de::DeserializeOwned + Serialize,
{
    let config: T = parse_options(options)?;
    let known = resolved_options(&config);
    let mut expected: Vec<&str> = known.keys().map(String::as_str).collect();
    expected.extend(unlisted.iter().filter(|k| !known.contains_key(**k)));
    let expected = expected
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let errors: Vec<OptionError> = options
        .keys()
        .filter(|k| !known.contains_key(*k) && !unlisted.contains(&k.as_str()))
        .map(|k| OptionError {
            at_key: true,
            ..OptionError::at(
                k,
                format!("unknown field `{k}`, expected one of {expected}"),
            )
        })
        .collect();
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// Checks every name in `bugs` against `known` and returns one error per unknown one (at
/// `bugs.<i>`).
pub fn check_bugs(bugs: &[String], known: &[Bug], protocol: &str) -> Vec<OptionError> {
    bugs.iter()
        .enumerate()
        .filter(|(_, b)| !known.iter().any(|k| k.name == b.as_str()))
        .map(|(i, bug)| {
            let names: Vec<&str> = known.iter().map(|b| b.name).collect();
            OptionError::at_path(
                &["bugs", &i.to_string()],
                format!(
                    "unknown planted bug \"{bug}\" for {protocol}; expected one of: {}",
                    names.join(", ")
                ),
            )
        })
        .collect()
}

/// The usual `configure` of a protocol or workload: parse the options table into `T`, check it
/// with `check` (every problem), and build each node's process with `build`.
pub fn configure<T>(
    ctx: &RoleContext<'_>,
    check: fn(&T, &RoleContext<'_>) -> Vec<OptionError>,
    build: fn(&NodeSetup, &T) -> Box<dyn AnyProcess>,
) -> Result<Configured, Vec<OptionError>>
where
    T: DeserializeOwned + Serialize + Send + Sync + 'static,
{
    let options: T = parse_options(ctx.options)?;
    let errors = if ctx.checking {
        check(&options, ctx)
    } else {
        Vec::new()
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Configured {
        options: resolved_options(&options),
        build: Arc::new(move |setup| build(setup, &options)),
    })
}
