//! `linearizability` (safety): the client history is linearizable with respect to a model.
//!
//! A history is linearizable (Herlihy & Wing, "Linearizability: a correctness condition for
//! concurrent objects", TOPLAS 12(3), 1990, §2) if its operations can be put in one order that
//! respects real time (an operation that completed before another was invoked comes first) and in
//! which every output is what the model's sequential specification gives.
//!
//! - [`read_mapping`]: where values are unique, each read names its writer and the part is
//!   decided without searching (Gibbons & Korach 1997, extended to appends and cas).
//! - [`search`]: Wing & Gong's search with Lowe's memoisation of (linearized set, state) pairs.
//! - P-compositionality (Horn & Kroening, "Faster linearizability checking via
//!   P-compositionality", FORTE 2015, §3): a model that partitions (the key-value store, by key)
//!   is checked part by part, in parallel; the history is linearizable iff every part is.
//! - [`models`]: register, cas-register, key-value (get/put/append/cas), mutex, multi-register.
//! - Semantics ([`ops`]): `fail` did not take effect; `info` or no completion: pending to the end
//!   of the history, may or may not take effect.
//! - [`budget`]: a step limit (work, summed over every part) and a memory limit per part, so the
//!   verdict is the same on any machine, plus an optional time limit over the whole check;
//!   running out gives `unknown`, never a guess.
//! - On a violation, a [`Counterexample`]: the longest linearizable prefix found, the operation
//!   that cannot be placed, the state there, and the operations that could have come next.
//!
//! [`check_events`] is the entry point for any history; [`CHECK`] checks the history of a
//! simulated run with the model each client group's workload declares
//! ([`crate::family::HistoryTraits::model`]), client groups of one model together.
//! `docs/checker.md` describes the algorithm and its measurements.

pub mod bench;
pub mod budget;
pub mod model;
pub mod models;
pub mod ops;
pub mod read_mapping;
pub mod search;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::check::{self, CheckInfo, CheckResult};
use crate::family::OptionError;
use crate::history::{Events, Subset, Value};
use crate::scenario::Duration;
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::sim::RunRecord;

/// The models live with histories ([`crate::history::ModelKind`]), below the family interface
/// that names one per workload.
pub use crate::history::ModelKind;
pub use budget::{Budget, Exhausted};
pub use model::{Model, Operation, RawOp, RawOps, RawOutcome};
pub use ops::HistoryError;
pub use search::{Deepest, SearchOptions, SearchResult, SearchStats};

/// Operations of the prefix shown in a counterexample (the last ones).
pub const PREFIX_SHOWN: usize = 12;
/// Candidate operations shown in a counterexample.
pub const CANDIDATES_SHOWN: usize = 16;
/// Step limit of the search that looks for a counterexample after an early impossibility
/// verdict (the verdict does not depend on it).
pub const COUNTEREXAMPLE_STEPS: u64 = 2_000_000;
/// Step limit of the first round of searches; each further round allows 8 times more. Small,
/// so that a part that fails within a few thousand steps is reported before any other part has
/// searched longer than that (a part that needs `s` steps to decide is searched for about
/// `8/7 s` in all).
pub const FIRST_ROUND_STEPS: u64 = 1 << 12;
/// Step limit of the plain search (no pruning by later reads) that looks for a longer
/// counterexample prefix of a part already known to fail before searching.
pub const KNOWN_FAIL_PREFIX_STEPS: u64 = 1 << 18;
/// Default step limit of a check: model steps summed over every search of every part (about
/// 10 to 60 s of searching on the 2-core development machine, release build).
pub const DEFAULT_STEP_LIMIT: u64 = 500_000_000;
/// Default memory limit of one part's search tables, MiB.
pub const DEFAULT_MEMORY_LIMIT_MIB: u64 = 1024;

/// The registry entry: each workload's model on the history of a simulated run.
pub const CHECK: CheckInfo = CheckInfo {
    name: "linearizability",
    summary: "the client history is linearizable (key-value model, checked key by key)",
    applies_to: |s| s.workloads().iter().any(|w| w.history.model.is_some()),
    enabled: check::on_unless_disabled,
    validate: validate_options,
    resolve: check::resolve_as::<Config>,
    run: run_check,
};

/// `[check.linearizability]` options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Run the check.
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Work budget: model steps summed over every search of the check; past it the verdict
    /// is `unknown`. A count, so the verdict is the same on any machine.
    #[serde(default = "default_step_limit")]
    pub step_limit: u64,
    /// Memory budget of one part's (one key's) search tables, in MiB; past it the verdict is
    /// `unknown`.
    #[serde(default = "default_memory_limit_mib")]
    pub memory_limit_mib: u64,
    /// Optional wall-clock budget of the whole check; past it the verdict is `unknown`. Off by
    /// default: with it, a verdict can depend on the machine's speed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<Duration>,
}

fn default_step_limit() -> u64 {
    DEFAULT_STEP_LIMIT
}

fn default_memory_limit_mib() -> u64 {
    DEFAULT_MEMORY_LIMIT_MIB
}

impl Default for Config {
    fn default() -> Self {
        Config {
            enabled: true,
            step_limit: default_step_limit(),
            memory_limit_mib: default_memory_limit_mib(),
            time_limit: None,
        }
    }
}

fn validate_options(table: &toml::Table, _: &Scenario, _: &Topology) -> Vec<OptionError> {
    crate::check::validate_with(table, |config: &Config| {
        let mut errors = Vec::new();
        if config.memory_limit_mib > crate::scenario::limits::MAX_CHECK_MEMORY_MIB {
            errors.push(OptionError::at(
                "memory_limit_mib",
                format!(
                    "expected at most {} MiB (the limit), found {}",
                    crate::scenario::limits::MAX_CHECK_MEMORY_MIB,
                    config.memory_limit_mib
                ),
            ));
        }
        errors
    })
}

/// Checks the history of every client group whose workload declares a model, with that model
/// (one group's operations the model does not speak, such as a lock client's fenced writes, are
/// left out). Groups with the same model are checked together.
fn run_check(record: &RunRecord) -> CheckResult {
    let config: Config = record.scenario.check_options(CHECK.name);
    let scenario = &record.scenario;
    let mut by_model: Vec<(ModelKind, Vec<&str>)> = Vec::new();
    for group in &scenario.clients {
        let Some(model) = scenario
            .registry()
            .workload(&group.workload)
            .and_then(|w| w.history.model)
        else {
            continue;
        };
        let names = record
            .topology
            .groups
            .get(&group.name)
            .into_iter()
            .flatten()
            .map(|&id| record.topology.name(id));
        match by_model.iter_mut().find(|(m, _)| *m == model) {
            Some((_, nodes)) => nodes.extend(names),
            None => by_model.push((model, names.collect())),
        }
    }
    let mut results: Vec<CheckResult> = by_model
        .iter()
        .map(|(model, nodes)| {
            // The group's events, borrowed from the run's history (never copied).
            let history = Subset::filter(&record.history, |e| {
                nodes.contains(&e.node) && model.speaks(e.f)
            });
            check_run_history(&history, *model, &config)
        })
        .collect();
    if results.len() == 1 {
        return results.pop().expect("one result");
    }
    let verdict = crate::check::overall(&results);
    let mut merged = CheckResult::new(
        CHECK.name,
        verdict,
        results
            .iter()
            .map(|r| r.summary.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    );
    for r in results {
        merged.evidence.extend(r.evidence);
        if merged.details.is_none() {
            merged.details = r.details;
        }
    }
    merged
}

/// The `linearizability` check of a simulated run's history with `model` (for the key-value
/// model: keys start absent (`nil`), checked key by key), within `config`'s budget. This is what
/// `faultline run` calls (through [`CHECK`]) for each model its client groups declare.
pub fn check_run_history<E: Events + ?Sized>(
    history: &E,
    model: ModelKind,
    config: &Config,
) -> CheckResult {
    let options = Options {
        model,
        initial: None,
        partition: true,
        step_limit: config.step_limit,
        memory_limit_bytes: mib_to_bytes(config.memory_limit_mib),
        time_limit: config.time_limit.map(Duration::to_std),
        failed_cas_returns_false: false,
        prune_by_later_reads: true,
        read_mapping: true,
    };
    let name = CHECK.name;
    match check_events(history, &options) {
        Err(e) => {
            let mut r = CheckResult::new(
                name,
                crate::scenario::Verdict::Unknown,
                "the history could not be read as operations",
            );
            r.evidence.push(e.to_string());
            r
        }
        Ok(report) => {
            let verdict = match report.verdict {
                Verdict::Linearizable => crate::scenario::Verdict::Pass,
                Verdict::NotLinearizable => crate::scenario::Verdict::Fail,
                Verdict::Unknown => crate::scenario::Verdict::Unknown,
            };
            let mut r = CheckResult::new(name, verdict, report.summary());
            if let Some(c) = &report.counterexample {
                let positions: Vec<u64> = (0..history.len())
                    .map(|i| history.event(i).time_ns)
                    .collect();
                r.evidence = c
                    .render(&Locator::TimeNs(&positions))
                    .lines()
                    .map(str::to_string)
                    .collect();
                r.details = Some(
                    serde_json::to_value(c.timeline_view(history, report.model))
                        .expect("timeline views serialize"),
                );
            }
            r.metrics
                .insert("operations".into(), report.operations.into());
            r.metrics
                .insert("partitions".into(), report.partitions.into());
            r
        }
    }
}

/// How to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// The model.
    pub model: ModelKind,
    /// Starting value of the register(s) / of every key; `None`: [`ModelKind::default_initial`].
    pub initial: Option<Value>,
    /// Check a partitioning model (kv) part by part (P-compositionality). `false` checks the
    /// whole history against one state holding every key (slower; for comparison).
    pub partition: bool,
    /// Work limit of the whole check: model steps summed over every search of every part.
    pub step_limit: u64,
    /// Memory limit of one part's search tables, bytes.
    pub memory_limit_bytes: usize,
    /// Wall-clock limit of the whole check (pairing, pre-passes, searches); `None`: none.
    pub time_limit: Option<std::time::Duration>,
    /// Read a `fail`ed cas as Porcupine does (it took effect and returned false, so the value
    /// was not the expected one) instead of as not having taken effect (Knossos, the default).
    pub failed_cas_returns_false: bool,
    /// Prune search configurations that cannot grow into a read that must come later
    /// ([`Model::can_grow_into`]; appends). Off only to compare with the plain search.
    pub prune_by_later_reads: bool,
    /// Decide parts whose values name their writers from the read mapping, without searching
    /// ([`read_mapping`]). Off only to compare with the search.
    pub read_mapping: bool,
}

impl Options {
    /// Defaults for `model`: partitioned, [`DEFAULT_STEP_LIMIT`] steps,
    /// [`DEFAULT_MEMORY_LIMIT_MIB`] per part, no time limit, pruning by later reads, the read
    /// mapping.
    pub fn new(model: ModelKind) -> Self {
        Options {
            model,
            initial: None,
            partition: true,
            step_limit: DEFAULT_STEP_LIMIT,
            memory_limit_bytes: mib_to_bytes(DEFAULT_MEMORY_LIMIT_MIB),
            time_limit: None,
            failed_cas_returns_false: false,
            prune_by_later_reads: true,
            read_mapping: true,
        }
    }
}

/// `mib` MiB in bytes (saturating).
pub fn mib_to_bytes(mib: u64) -> usize {
    usize::try_from(mib)
        .unwrap_or(usize::MAX)
        .saturating_mul(1 << 20)
}

/// The verdict of a linearizability check.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Some order of the operations satisfies the model.
    Linearizable,
    /// No order does; see the counterexample.
    NotLinearizable,
    /// The budget ran out before the search decided.
    Unknown,
}

/// The result of [`check_events`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// The model's name.
    pub model: &'static str,
    /// Operations checked (invokes, less failed ones).
    pub operations: usize,
    /// Parts the history was checked in (1 unless the model partitions).
    pub partitions: usize,
    /// Why the verdict is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Why the verdict is not-linearizable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counterexample: Option<Counterexample>,
    /// Model steps of every search, the work the step limit counts (when the verdict is
    /// not-linearizable this, like `configurations`, depends on which other parts finished
    /// first).
    pub steps: u64,
    /// Configurations stored by the searches (when the verdict is not-linearizable this depends
    /// on which other parts finished first).
    pub configurations: u64,
    /// Largest size of one part's memo table, bytes (an estimate: table capacity times entry
    /// size plus the key words).
    pub memo_peak_bytes: usize,
}

impl Report {
    /// One sentence.
    pub fn summary(&self) -> String {
        let parts = if self.partitions > 1 {
            format!(" in {} parts", self.partitions)
        } else {
            String::new()
        };
        match self.verdict {
            Verdict::Linearizable => format!(
                "linearizable: {} operations{parts} ({} model)",
                self.operations, self.model
            ),
            Verdict::NotLinearizable => format!(
                "not linearizable: {} operations{parts} ({} model)",
                self.operations, self.model
            ),
            Verdict::Unknown => format!(
                "unknown: {} ({} operations{parts}, {} model)",
                self.unknown_reason
                    .as_deref()
                    .unwrap_or("the search stopped"),
                self.operations,
                self.model
            ),
        }
    }
}

/// An operation as shown in a counterexample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpView {
    /// The client process.
    pub process: u64,
    /// The operation as text, e.g. `read -> 3`.
    pub op: String,
    /// Position of its invoke in the history (0-based event index).
    pub invoke_event: usize,
    /// Position of its completion; `None`: pending forever (info or unanswered).
    pub complete_event: Option<usize>,
}

/// One step of the linearizable prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PrefixStep {
    /// The operation.
    pub op: OpView,
    /// The state after it.
    pub state_after: String,
}

/// An operation that could have been placed next, and what the model says of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Candidate {
    /// The operation.
    pub op: OpView,
    /// `None` if the model rejects it in the state after the prefix, else the state it leads to.
    pub leads_to: Option<String>,
}

/// Why a history is not linearizable, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Counterexample {
    /// The part (key) of a partitioned check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// Operations in that part.
    pub operations: usize,
    /// Length of the longest linearizable prefix found.
    pub prefix_length: usize,
    /// Its last [`PREFIX_SHOWN`] steps.
    pub prefix: Vec<PrefixStep>,
    /// The state after the prefix.
    pub state: String,
    /// The operation that cannot be placed: the search reached its completion without being
    /// able to linearize it.
    pub blocked: OpView,
    /// What the model says of the blocked operation in `state`.
    pub blocked_leads_to: Option<String>,
    /// Operations not in the prefix invoked before the blocked one completed (at most
    /// [`CANDIDATES_SHOWN`]), with what the model says of each.
    pub concurrent: Vec<Candidate>,
    /// Concurrent operations not shown.
    pub concurrent_more: usize,
    /// An operation found impossible before searching, with the reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub impossible: Option<(OpView, String)>,
    /// False if the prefix comes from a search that stopped at a limit (the verdict then rests
    /// on `impossible`).
    pub search_complete: bool,
    /// Every operation of the part (after unobservable ones were pruned), in invoke order, with
    /// its place in the prefix: what a picture of the counterexample draws
    /// ([`TimelineView`]). Not serialized (`check-history --json` prints the fields above).
    #[serde(skip)]
    pub timeline: Vec<TimelineOp>,
}

/// An operation of a counterexample's part, for drawing it on a time axis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineOp {
    /// The operation.
    pub op: OpView,
    /// Its position in the longest linearizable prefix (0-based), if it is in it.
    pub prefix_position: Option<usize>,
}

/// Operations of the failing part a [`TimelineView`] keeps: the blocked one and the ones
/// invoked nearest before and after it.
pub const TIMELINE_SHOWN: usize = 400;

/// A counterexample of a run's history laid out on a time axis, for the HTML report
/// (Porcupine's picture): `CheckResult::details` of a failed `linearizability` check, as JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineView {
    /// Always `"linearizability-counterexample"`.
    pub kind: String,
    /// The model's name (`kv`, `register`, ...).
    pub model: String,
    /// The failing part (the key of a key-value history), if the check was partitioned.
    pub partition: Option<String>,
    /// Operations in the part (after pruning operations whose effect nothing observes).
    pub part_operations: usize,
    /// The operations shown, in invoke order: at most [`TIMELINE_SHOWN`], around the blocked one.
    pub operations: Vec<TimelineViewOp>,
    /// Operations of the part not shown, invoked before / after the ones shown.
    pub left_out_before: usize,
    /// See `left_out_before`.
    pub left_out_after: usize,
    /// Length of the longest linearizable prefix found.
    pub prefix_length: usize,
    /// The model's state after the prefix.
    pub state: String,
    /// Index in `operations` of the operation that cannot be placed.
    pub blocked: usize,
    /// Why it cannot be placed, in one sentence.
    pub explanation: String,
}

/// One operation of a [`TimelineView`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineViewOp {
    /// The client process.
    pub process: u64,
    /// The client node that ran it (empty if the history names none).
    pub node: String,
    /// The operation as text (`get k1 -> 3`).
    pub op: String,
    /// When it was invoked (ns).
    pub invoke_ns: u64,
    /// When it completed (ns); `None`: never (outcome unknown, pending to the end).
    pub complete_ns: Option<u64>,
    /// Its position in the linearizable prefix (0-based), if it is in it.
    pub prefix_position: Option<usize>,
}

impl Counterexample {
    /// Why the blocked operation cannot be placed, in one sentence.
    pub fn explanation(&self) -> String {
        match &self.blocked_leads_to {
            None => format!("it is impossible in state {}", self.state),
            Some(next) => {
                format!("it could give {next}, but every order that places it there fails later")
            }
        }
    }

    /// The counterexample on a time axis: `history` is the history the check read (the events
    /// its operations' positions refer to), `model` the model's name.
    pub fn timeline_view<E: Events + ?Sized>(&self, history: &E, model: &str) -> TimelineView {
        let get = |event: usize| (event < history.len()).then(|| history.event(event));
        let at = |event: usize| get(event).map_or(0, |e| e.time_ns);
        let blocked = self
            .timeline
            .iter()
            .position(|t| t.op == self.blocked)
            .unwrap_or(0);
        let from = blocked
            .saturating_sub(TIMELINE_SHOWN * 3 / 4)
            .min(self.timeline.len().saturating_sub(TIMELINE_SHOWN));
        let until = (from + TIMELINE_SHOWN).min(self.timeline.len());
        let operations = self.timeline[from..until]
            .iter()
            .map(|t| TimelineViewOp {
                process: t.op.process,
                node: get(t.op.invoke_event)
                    .map(|e| e.node.to_string())
                    .unwrap_or_default(),
                op: t.op.op.clone(),
                invoke_ns: at(t.op.invoke_event),
                complete_ns: t.op.complete_event.map(at),
                prefix_position: t.prefix_position,
            })
            .collect();
        TimelineView {
            kind: "linearizability-counterexample".into(),
            model: model.to_string(),
            partition: self.partition.clone(),
            part_operations: self.operations,
            operations,
            left_out_before: from,
            left_out_after: self.timeline.len() - until,
            prefix_length: self.prefix_length,
            state: self.state.clone(),
            blocked: blocked - from,
            explanation: self.explanation(),
        }
    }
}

/// How to name a position of the history in counterexample text.
pub enum Locator<'a> {
    /// `event N` (0-based).
    Event,
    /// `line N`: `lines[event]` is the line of each event.
    Line(&'a [u32]),
    /// `t=12.5ms`: `times[event]` is the event's time in nanoseconds.
    TimeNs(&'a [u64]),
}

impl Locator<'_> {
    fn at(&self, event: usize) -> String {
        match self {
            Locator::Event => format!("event {event}"),
            Locator::Line(lines) => match lines.get(event) {
                Some(l) => format!("line {l}"),
                None => format!("event {event}"),
            },
            Locator::TimeNs(times) => match times.get(event) {
                Some(t) => format!("event {event} at {}", crate::check::ms(*t)),
                None => format!("event {event}"),
            },
        }
    }

    fn span(&self, op: &OpView) -> String {
        let end = match op.complete_event {
            Some(e) => self.at(e),
            None => "never (outcome unknown)".into(),
        };
        format!("invoked {}, completed {end}", self.at(op.invoke_event))
    }
}

impl Counterexample {
    /// The counterexample as text, naming positions with `at`.
    pub fn render(&self, at: &Locator<'_>) -> String {
        let mut s = String::new();
        if let Some(p) = &self.partition {
            let _ = writeln!(
                s,
                "in the sub-history of key {p:?} ({} operations):",
                self.operations
            );
        }
        let shown = self.prefix.len();
        let _ = writeln!(
            s,
            "longest linearizable prefix found: {} operation(s){}",
            self.prefix_length,
            if shown < self.prefix_length {
                format!(", the last {shown} shown")
            } else {
                String::new()
            }
        );
        let first = self.prefix_length - shown;
        for (i, step) in self.prefix.iter().enumerate() {
            let _ = writeln!(
                s,
                "  {:>4}. process {}: {}  ({})  => {}",
                first + i + 1,
                step.op.process,
                step.op.op,
                at.span(&step.op),
                step.state_after
            );
        }
        let _ = writeln!(s, "state after the prefix: {}", self.state);
        let _ = writeln!(
            s,
            "cannot place: process {}: {}  ({})",
            self.blocked.process,
            self.blocked.op,
            at.span(&self.blocked)
        );
        let _ = writeln!(s, "  {}", self.explanation());
        if self.concurrent.is_empty() {
            let _ = writeln!(s, "no other operation was invoked before it completed");
        } else {
            let _ = writeln!(
                s,
                "other operations invoked before it completed, not in the prefix:"
            );
            for c in &self.concurrent {
                let _ = writeln!(
                    s,
                    "  process {}: {}  ({})  {}",
                    c.op.process,
                    c.op.op,
                    at.span(&c.op),
                    match &c.leads_to {
                        None => "impossible in this state".to_string(),
                        Some(next) => format!("=> {next}"),
                    }
                );
            }
            if self.concurrent_more > 0 {
                let _ = writeln!(s, "  ... and {} more", self.concurrent_more);
            }
        }
        if let Some((op, why)) = &self.impossible {
            let _ = writeln!(
                s,
                "decided before searching: process {}: {} ({}) can never be placed: {why}",
                op.process,
                op.op,
                at.span(op)
            );
        }
        if !self.search_complete {
            let _ = writeln!(
                s,
                "(the prefix comes from a search that stopped at its step limit)"
            );
        }
        s
    }
}

/// Checks a history against a model.
///
/// `events` are in real-time order (as recorded, or as in the file). Operations are paired per
/// process ([`ops::pair`]); `fail`ed ones are dropped, `info` and unanswered ones are pending
/// forever. A partitioning model is checked part by part on all cores (rayon).
///
/// # Errors
/// [`HistoryError`] naming the event whose shape is wrong (unpaired completion, a value the
/// model cannot read, ...).
pub fn check_events<E: Events + ?Sized>(
    events: &E,
    options: &Options,
) -> Result<Report, HistoryError> {
    let budget = Budget::new(options.time_limit);
    let raw = ops::pair_ops(events, options.failed_cas_returns_false)?;
    let initial = options
        .initial
        .clone()
        .unwrap_or_else(|| options.model.default_initial());
    match options.model {
        ModelKind::Register => check_within(
            models::Register::new(&initial, false),
            raw,
            options,
            &budget,
        ),
        ModelKind::CasRegister => {
            check_within(models::Register::new(&initial, true), raw, options, &budget)
        }
        ModelKind::KeyValue => check_within(
            models::KeyValue::sharing(&initial, options.partition, events.interner()),
            raw,
            options,
            &budget,
        ),
        ModelKind::Mutex => check_within(models::Mutex, raw, options, &budget),
        ModelKind::MultiRegister => {
            check_within(models::MultiRegister::new(&initial), raw, options, &budget)
        }
    }
}

/// Why a history file could not be checked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// The file's syntax.
    Read(#[from] crate::history::ReadError),
    /// No model given and none could be guessed.
    NoModel,
    /// An event's shape (pairing, values) at a line.
    History {
        /// 1-based line of the event.
        line: u32,
        /// 1-based line of the earlier event the problem refers to, if any.
        earlier_line: Option<u32>,
        /// What is wrong.
        error: HistoryError,
    },
}

/// `line N: what was found; expected what` (without `line N: ` when the problem is not on one
/// line), from [`ImportError::parts`].
impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (line, found, expected) = self.parts();
        if let Some(line) = line {
            write!(f, "line {line}: ")?;
        }
        write!(f, "{found}; expected {expected}")
    }
}

impl ImportError {
    /// The line (if the problem is on one), what was found there and what was expected.
    pub fn parts(&self) -> (Option<u32>, String, String) {
        match self {
            ImportError::Read(e) => (Some(e.line), e.found.clone(), e.expected.clone()),
            ImportError::NoModel => (
                None,
                "no operation whose function names a model (read/write/cas, get/put/append, acquire/release, txn)".into(),
                "--model register|cas-register|kv|mutex|multi-register".into(),
            ),
            ImportError::History {
                line,
                earlier_line,
                error,
            } => (
                Some(*line),
                match earlier_line {
                    Some(l) => format!("{} (see line {l})", error.found),
                    None => error.found.clone(),
                },
                error.expected.clone(),
            ),
        }
    }

    /// The error located in `file`: `file:line: what was found; expected what`.
    pub fn located(&self, file: &str) -> String {
        let (line, found, expected) = self.parts();
        located(file, line, &found, &expected)
    }

    /// The error as JSON ([`error_json`]).
    pub fn to_json(&self, file: &str) -> serde_json::Value {
        let (line, found, expected) = self.parts();
        error_json(file, line, &found, &expected)
    }
}

/// `file:line: found; expected what` (`file: ...` without a line).
pub fn located(file: &str, line: Option<u32>, found: &str, expected: &str) -> String {
    let at = line.map(|l| format!(":{l}")).unwrap_or_default();
    format!("{file}{at}: {found}; expected {expected}")
}

/// A bad-input error as JSON: `{"file", "line", "found", "expected", "message"}`; `line` is
/// 1-based, or `null` when the problem is not on one line; `message` is [`located`]'s text.
pub fn error_json(file: &str, line: Option<u32>, found: &str, expected: &str) -> serde_json::Value {
    serde_json::json!({
        "file": file,
        "line": line,
        "found": found,
        "expected": expected,
        "message": located(file, line, found, expected),
    })
}

/// A history file, read and ready to check.
#[derive(Clone, Debug)]
pub struct Imported {
    /// Events and their lines, held compactly.
    pub history: crate::history::CompactHistory,
    /// The format it was read as.
    pub format: crate::history::Format,
    /// The model to check it against.
    pub model: ModelKind,
}

impl Imported {
    /// Reads `bytes` (from `path`, used only to guess the format). `format`/`model`: `None`
    /// guesses ([`crate::history::Format::detect`], [`ModelKind::detect`]).
    ///
    /// # Errors
    /// [`ImportError`] with the line and what was expected.
    pub fn read(
        path: Option<&std::path::Path>,
        bytes: &[u8],
        format: Option<crate::history::Format>,
        model: Option<ModelKind>,
    ) -> Result<Imported, ImportError> {
        Imported::from_reader(path, bytes, Some(bytes.len() as u64), format, model)
    }

    /// Reads a history from `reader` (from `path`, used only to guess the format). A
    /// `history.jsonl` is read in batches of lines ([`crate::history::jsonl::read_compact`]),
    /// never holding the file's text; the other formats are read whole, then made compact.
    /// `format`/`model`: `None` guesses from the first 64 KiB ([`crate::history::Format::detect`])
    /// and from the events ([`ModelKind::detect`]). `size`: the text's length in bytes, if known
    /// (the file's size): a `history.jsonl`'s tables are then sized once instead of growing.
    ///
    /// # Errors
    /// [`ImportError`] with the line and what was expected (an I/O error of `reader` too).
    pub fn from_reader<R: std::io::BufRead>(
        path: Option<&std::path::Path>,
        mut reader: R,
        size: Option<u64>,
        format: Option<crate::history::Format>,
        model: Option<ModelKind>,
    ) -> Result<Imported, ImportError> {
        use crate::history::{CompactHistory, Format, ReadError};
        let io =
            |e: std::io::Error| ReadError::new(0, format!("a read error ({e})"), "a readable file");
        let format = match format {
            Some(f) => f,
            None => Format::detect(path, reader.fill_buf().map_err(io)?),
        };
        let history = if format == Format::Jsonl {
            crate::history::jsonl::read_compact(reader, size)?
        } else {
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).map_err(io)?;
            CompactHistory::from(crate::history::read_history(&bytes, format)?)
        };
        let model = match model {
            Some(m) => m,
            None => ModelKind::detect(&history).ok_or(ImportError::NoModel)?,
        };
        Ok(Imported {
            history,
            format,
            model,
        })
    }

    /// Default options for this file: the model's defaults, except that Porcupine's key-value
    /// data (`edn-lines`) starts every key at `""`, as Porcupine's model does.
    pub fn options(&self) -> Options {
        let mut o = Options::new(self.model);
        if self.format == crate::history::Format::EdnLines && self.model == ModelKind::KeyValue {
            o.initial = Some(Value::Str(String::new()));
        }
        o
    }

    /// Checks the history.
    ///
    /// # Errors
    /// [`ImportError::History`] naming the line of a malformed event.
    pub fn check(&self, options: &Options) -> Result<Report, ImportError> {
        let line_of = |event: usize| self.history.lines.get(event).copied().unwrap_or(0);
        check_events(&self.history, options).map_err(|error| ImportError::History {
            line: line_of(error.event),
            earlier_line: error.earlier.map(line_of),
            error,
        })
    }
}

struct Part<M: Model> {
    key: Option<String>,
    model: M,
    ops: Vec<Operation<M::Input, M::Output>>,
}

enum PartOutcome {
    Linearizable,
    Violation(Box<Counterexample>),
    Unknown(String),
    Skipped,
}

/// Checks `raw` operations with `spec`: partition, convert, search each part (in parallel),
/// within `options`' budgets (the time limit, if any, starts now).
///
/// # Errors
/// [`HistoryError`] if the model cannot convert an operation.
pub fn check_model<M: Model>(
    spec: M,
    raw: &[RawOp<'_>],
    options: &Options,
) -> Result<Report, HistoryError> {
    check_within(spec, raw, options, &Budget::new(options.time_limit))
}

/// [`check_model`] within `budget`'s time limit, which also covers what the caller did before.
/// `raw` is dropped once converted (it no longer counts in the peak of the search).
///
/// The step limit is handed out in rounds: each round gives every undecided part the same
/// limit, `FIRST_ROUND_STEPS` times 8 per round, but no more than an equal share of the steps
/// left; a part that runs out of its share is searched again in a later round if the steps the
/// others did not use make its share larger, and is `unknown` otherwise. Every part's search is
/// deterministic, so the steps used, and the verdict, are the same on any machine.
fn check_within<'a, M: Model>(
    spec: M,
    raw: impl RawOps<'a>,
    options: &Options,
    budget: &Budget,
) -> Result<Report, HistoryError> {
    let mut report = Report {
        verdict: Verdict::Linearizable,
        model: options.model.name(),
        operations: raw.len(),
        partitions: 1,
        unknown_reason: None,
        counterexample: None,
        steps: 0,
        configurations: 0,
        memo_peak_bytes: 0,
    };
    let unknown = |mut report: Report, why: Exhausted| {
        report.verdict = Verdict::Unknown;
        report.unknown_reason = Some(why.to_string());
        Ok(report)
    };
    if let Err(why) = budget.check_time() {
        return unknown(report, why);
    }
    let groups = partition(&spec, &raw);
    report.partitions = groups.0.len().max(1);
    let converted = convert_parts(&spec, &raw, groups, options, budget)?;
    drop(raw);
    let Some(mut parts) = converted else {
        return unknown(report, budget.check_time().expect_err("polled"));
    };
    if let Err(why) = budget.check_time() {
        return unknown(report, why);
    }
    if let Err(why) = prune_unobservable(&mut parts, budget) {
        return unknown(report, why);
    }
    let mut impossible: Vec<Option<(usize, String)>> = parts
        .par_iter()
        .map(|p| p.model.impossible(&p.ops))
        .collect();
    if let Err(why) = budget.check_time() {
        return unknown(report, why);
    }
    let mapped = map_reads(&parts, &impossible, options);
    if let Err(why) = budget.check_time() {
        return unknown(report, why);
    }
    let mut outcomes: Vec<Option<PartOutcome>> = (0..parts.len()).map(|_| None).collect();
    let mut decided_fail: Vec<Option<(usize, String)>> = vec![None; parts.len()];
    for (idx, decision) in mapped.into_iter().enumerate() {
        match decision {
            Some(read_mapping::Decision::Linearizable) => {
                outcomes[idx] = Some(PartOutcome::Linearizable)
            }
            Some(read_mapping::Decision::NotLinearizable(op, why)) => {
                decided_fail[idx] = Some((op, why))
            }
            _ => {}
        }
    }
    let mut rounds = Rounds {
        options,
        budget,
        configurations: AtomicUsize::new(0),
        memo_max: AtomicUsize::new(0),
    };
    report.steps = rounds.run(
        &mut parts,
        &mut impossible,
        &mut decided_fail,
        &mut outcomes,
    );
    report.configurations = rounds.configurations.into_inner() as u64;
    report.memo_peak_bytes = rounds.memo_max.into_inner();
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            PartOutcome::Violation(c) => {
                report.verdict = Verdict::NotLinearizable;
                report.counterexample = Some(*c);
                report.unknown_reason = None;
                break;
            }
            PartOutcome::Unknown(why) if report.unknown_reason.is_none() => {
                report.verdict = Verdict::Unknown;
                report.unknown_reason = Some(why);
            }
            _ => {}
        }
    }
    Ok(report)
}

/// The operations of `raw` grouped by partition key, the groups ordered by key (deterministic;
/// one group for a model that does not partition): each group's key and number of operations,
/// and each operation's group.
fn partition<'a, M: Model>(
    spec: &M,
    raw: &impl RawOps<'a>,
) -> (Vec<(Option<&'a str>, usize)>, Vec<u32>) {
    // Lookups only: the groups are sorted by key below.
    let mut group_of: rustc_hash::FxHashMap<Option<&str>, u32> = Default::default();
    let mut groups: Vec<(Option<&str>, usize)> = Vec::new();
    // In the order the keys were first seen, then renumbered in key order.
    let mut of_op: Vec<u32> = Vec::with_capacity(raw.len());
    for i in 0..raw.len() {
        let key = spec.partition_key(&raw.op(i));
        let g = *group_of.entry(key).or_insert_with(|| {
            groups.push((key, 0));
            (groups.len() - 1) as u32
        });
        groups[g as usize].1 += 1;
        of_op.push(g);
    }
    let mut order: Vec<u32> = (0..groups.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| groups[a as usize].0.cmp(&groups[b as usize].0));
    let mut rank = vec![0u32; groups.len()];
    for (r, &g) in order.iter().enumerate() {
        rank[g as usize] = r as u32;
    }
    for g in &mut of_op {
        *g = rank[*g as usize];
    }
    let sorted = order.iter().map(|&g| groups[g as usize]).collect();
    (sorted, of_op)
}

/// Converts each group with its own copy of the model, on all cores; the first error in key
/// order is reported. `Ok(None)`: the time limit passed.
///
/// The groups are taken in runs of consecutive groups, a few per thread, and each run converts
/// its groups' operations in one pass over all the operations in order: a group's operations
/// are spread over the whole history, and converting them group by group would read the
/// history's events out of order (a cache miss for nearly every operation of a large history).
/// Each group's model still converts its own operations, in order, as if alone.
fn convert_parts<'a, M: Model>(
    spec: &M,
    raw: &impl RawOps<'a>,
    (groups, group_of): (Vec<(Option<&str>, usize)>, Vec<u32>),
    options: &Options,
    budget: &Budget,
) -> Result<Option<Vec<Part<M>>>, HistoryError> {
    // Runs of consecutive groups of about equal numbers of operations.
    let runs = (rayon::current_num_threads() * 2).clamp(1, groups.len().max(1));
    let per_run = raw.len().div_ceil(runs).max(1);
    let mut bounds: Vec<std::ops::Range<usize>> = Vec::with_capacity(runs);
    let (mut start, mut in_run) = (0, 0);
    for (g, &(_, n)) in groups.iter().enumerate() {
        in_run += n;
        if in_run >= per_run || g + 1 == groups.len() {
            bounds.push(start..g + 1);
            (start, in_run) = (g + 1, 0);
        }
    }
    type Converted<M> = Result<Option<Part<M>>, HistoryError>;
    /// A group's model, its operations so far, and how it ended if it did.
    type Converting<M> = (
        M,
        Vec<Operation<<M as Model>::Input, <M as Model>::Output>>,
        Option<Converted<M>>,
    );
    let converted: Vec<Vec<Converted<M>>> = bounds
        .into_par_iter()
        .map(|run| {
            // Per group of the run: its model, its operations so far, and how it ended if it
            // did (the time limit passed, or an operation it could not convert).
            let mut parts: Vec<Converting<M>> = groups[run.clone()]
                .iter()
                .map(|&(_, n)| (spec.clone(), Vec::with_capacity(n), None))
                .collect();
            for (i, &g) in group_of.iter().enumerate() {
                let g = g as usize;
                if !run.contains(&g) {
                    continue;
                }
                let (model, ops, ended) = &mut parts[g - run.start];
                if ended.is_some() {
                    continue;
                }
                if budget.poll(ops.len() + 1).is_err() {
                    *ended = Some(Ok(None));
                    continue;
                }
                let r = raw.op(i);
                match Operation::convert(model, &r) {
                    Ok(op) => ops.push(op),
                    Err(message) => {
                        *ended = Some(Err(conversion_error(&r, message, options.model)));
                    }
                }
            }
            parts
                .into_iter()
                .zip(&groups[run])
                .map(|((model, ops, ended), &(key, _))| {
                    ended.unwrap_or_else(|| {
                        Ok(Some(Part {
                            key: key.map(str::to_string),
                            model,
                            ops,
                        }))
                    })
                })
                .collect()
        })
        .collect();
    let mut parts: Vec<Part<M>> = Vec::with_capacity(groups.len());
    for part in converted.into_iter().flatten() {
        match part? {
            Some(p) => parts.push(p),
            None => return Ok(None),
        }
    }
    Ok(Some(parts))
}

/// The error of an operation `model` could not read: a model says `what it found; expected
/// what` (or only what it found).
fn conversion_error(r: &RawOp<'_>, message: String, model: ModelKind) -> HistoryError {
    let (found, expected) = match message.split_once("; expected ") {
        Some((found, expected)) => (found.to_string(), expected.to_string()),
        None => (
            message,
            format!("an operation of the {} model", model.name()),
        ),
    };
    HistoryError {
        event: r.ret.unwrap_or(r.call),
        found: format!("process {}: {found}", r.process),
        expected,
        earlier: r.ret.map(|_| r.call),
    }
}

/// Drops unknown-outcome operations whose effect nothing observes: they cannot change the
/// verdict ([`Model::unobservable`]).
fn prune_unobservable<M: Model>(parts: &mut [Part<M>], budget: &Budget) -> Result<(), Exhausted> {
    parts.par_iter_mut().try_for_each(|part| {
        let unobservable = part.model.unobservable(&part.ops, budget)?;
        if unobservable.iter().any(|&u| u) {
            let mut keep = unobservable.iter().map(|u| !u);
            part.ops.retain(|_| keep.next().unwrap_or(true));
        }
        Ok(())
    })
}

/// The read mapping's decision on every part whose values name their writers (`None`: the
/// search decides; also for parts already known impossible). A part it finds not linearizable
/// is later searched within `COUNTEREXAMPLE_STEPS` for a counterexample; its reason is shown
/// only if that search stops at the limit.
fn map_reads<M: Model>(
    parts: &[Part<M>],
    impossible: &[Option<(usize, String)>],
    options: &Options,
) -> Vec<Option<read_mapping::Decision>> {
    parts
        .par_iter()
        .zip(impossible.par_iter())
        .map(|(p, imp)| {
            if imp.is_some() || !options.read_mapping {
                return None;
            }
            let accesses = p.model.map_reads(&p.ops)?;
            let spans: Vec<read_mapping::Span> = p
                .ops
                .iter()
                .map(|o| read_mapping::Span {
                    call: o.call,
                    ret: o.ret,
                })
                .collect();
            let describe = |i: usize| {
                let o = &p.ops[i];
                format!(
                    "process {}: {}",
                    o.process,
                    p.model.describe_op(&o.input, o.output.as_ref())
                )
            };
            Some(read_mapping::decide(&accesses, &spans, &describe))
        })
        .collect()
}

/// The searches of one check, in rounds, and what they counted.
///
/// Which failing part is reported, deterministically, whatever the threads do:
/// - a part known to fail before any search (`Model::impossible`, or the read mapping) wins,
///   the lowest such part; only it is searched (for a counterexample), the others not at all;
/// - otherwise, parts are searched in rounds with growing step limits, and a round reports
///   the failing part whose search failed after the fewest steps (the lowest part among
///   equals). Once a part has failed after `s` steps, every other part stops as soon as its
///   own search passes `s` steps: it can no longer fail first. Each part's search is
///   deterministic, so which part wins does not depend on the scheduling, and a part that
///   fails quickly is reported without waiting for a hard part's round.
struct Rounds<'a> {
    options: &'a Options,
    budget: &'a Budget,
    /// Configurations stored by every search.
    configurations: AtomicUsize,
    /// Largest memo table of one search, bytes.
    memo_max: AtomicUsize,
}

/// What one part's search in a round gave: the outcome, the steps it used and its rank among
/// violations (the steps after which it failed; `u64::MAX` if it did not).
struct Searched {
    outcome: PartOutcome,
    steps: u64,
    rank: u64,
    /// For a violation found with pruning by later reads: what [`Rounds::lengthen`] needs to
    /// search the reported part again for a longer prefix.
    lengthen: Option<Lengthen>,
}

/// What [`Rounds::lengthen`] needs of a violation found with pruning.
struct Lengthen {
    /// The prefix length the pruned search found.
    prefix_len: usize,
    /// The reason known before searching, shown whatever the search finds.
    shown: Option<(usize, String)>,
    /// Whether the part was known to fail before searching (a shorter look then).
    known: bool,
}

impl Rounds<'_> {
    /// Searches the undecided parts round by round until one fails or every part is decided;
    /// fills in `outcomes` and returns the steps used.
    fn run<M: Model>(
        &mut self,
        parts: &mut [Part<M>],
        impossible: &mut [Option<(usize, String)>],
        decided_fail: &mut [Option<(usize, String)>],
        outcomes: &mut [Option<PartOutcome>],
    ) -> u64 {
        let known_fail: Option<usize> =
            (0..parts.len()).find(|&i| impossible[i].is_some() || decided_fail[i].is_some());
        let mut last_cap: Vec<u64> = vec![0; parts.len()];
        let mut round_steps = FIRST_ROUND_STEPS;
        let mut used: u64 = 0;
        loop {
            let undecided = outcomes.iter().filter(|o| o.is_none()).count().max(1) as u64;
            let cap = round_steps.min(self.options.step_limit.saturating_sub(used) / undecided);
            let fail_steps = AtomicU64::new(u64::MAX);
            let this = &*self;
            let round: Vec<(usize, Searched)> = parts
                .par_iter_mut()
                .zip(impossible.par_iter_mut())
                .zip(decided_fail.par_iter_mut())
                .zip(last_cap.par_iter_mut())
                .enumerate()
                .filter(|(idx, _)| outcomes[*idx].is_none() && known_fail.is_none_or(|k| k == *idx))
                .map(|(idx, (((part, imp), mapped), last))| {
                    if known_fail.is_none() && cap <= *last {
                        // A search no longer than the last one cannot decide more.
                        let why = Exhausted::Steps(this.options.step_limit);
                        let outcome = PartOutcome::Unknown(why.to_string());
                        return (
                            idx,
                            Searched {
                                outcome,
                                steps: 0,
                                rank: u64::MAX,
                                lengthen: None,
                            },
                        );
                    }
                    // A reason found before searching, and whether to show it even when the
                    // search finds the counterexample (the read mapping's reason is shown only
                    // if not).
                    let known = match (imp.take(), mapped.take()) {
                        (Some(i), _) => Some((i, true)),
                        (None, Some(m)) => Some((m, false)),
                        (None, None) => None,
                    };
                    if known.is_none() {
                        *last = cap;
                    }
                    (idx, this.search_part(part, known, cap, &fail_steps))
                })
                .collect();
            // The violation reported: the one found after the fewest steps, the lowest part
            // among equals (a part known to fail before searching is the only one searched).
            let winner = round
                .iter()
                .filter(|(_, s)| matches!(s.outcome, PartOutcome::Violation(_)))
                .map(|(idx, s)| (s.rank, *idx))
                .min()
                .map(|(_, idx)| idx);
            let mut failed = false;
            for (idx, searched) in round {
                used = used.saturating_add(searched.steps);
                let outcome = match searched.outcome {
                    PartOutcome::Violation(_) if Some(idx) != winner => PartOutcome::Skipped,
                    PartOutcome::Violation(c) => match searched.lengthen {
                        Some(l) => {
                            let (c, steps) = self.lengthen(&mut parts[idx], c, l);
                            used = used.saturating_add(steps);
                            PartOutcome::Violation(c)
                        }
                        None => PartOutcome::Violation(c),
                    },
                    other => other,
                };
                failed |= matches!(outcome, PartOutcome::Violation(_));
                if !matches!(outcome, PartOutcome::Skipped) {
                    outcomes[idx] = Some(outcome);
                }
            }
            if failed || outcomes.iter().all(Option::is_some) {
                return used;
            }
            round_steps = round_steps.saturating_mul(8);
        }
    }

    /// One part's search within `cap` steps (or, for a part `known` to fail, within
    /// `COUNTEREXAMPLE_STEPS` for its counterexample), cancelled once it passes `fail_steps`:
    /// another part has then failed first.
    fn search_part<M: Model>(
        &self,
        part: &mut Part<M>,
        known: Option<((usize, String), bool)>,
        cap: u64,
        fail_steps: &AtomicU64,
    ) -> Searched {
        let cancelled = |steps: u64| steps > fail_steps.load(Ordering::Relaxed);
        let search_options = SearchOptions {
            budget: self.budget,
            step_limit: Some(if known.is_some() {
                COUNTEREXAMPLE_STEPS
            } else {
                cap
            }),
            memory_limit_bytes: self.options.memory_limit_bytes,
            cancelled: &cancelled,
            prune_by_later_reads: self.options.prune_by_later_reads,
        };
        let (result, stats) = search::search(&mut part.model, &part.ops, &search_options);
        let failed_after = stats.steps;
        self.configurations
            .fetch_add(stats.configurations as usize, Ordering::Relaxed);
        self.memo_max.fetch_max(stats.memo_bytes, Ordering::Relaxed);
        let mut rank = u64::MAX;
        let mut lengthen = None;
        let outcome = match (result, known) {
            (SearchResult::Linearizable, None) => PartOutcome::Linearizable,
            (SearchResult::Linearizable, Some(_)) => {
                // `Model::impossible` and the read mapping must be sound; trust the search.
                debug_assert!(false, "a part decided not linearizable is linearizable");
                PartOutcome::Linearizable
            }
            (SearchResult::Violation(d), known) => {
                if known.is_none() {
                    fail_steps.fetch_min(failed_after, Ordering::Relaxed);
                    rank = failed_after;
                }
                let shown = known
                    .as_ref()
                    .and_then(|(k, always)| always.then(|| k.clone()));
                if self.options.prune_by_later_reads {
                    lengthen = Some(Lengthen {
                        prefix_len: d.prefix.len(),
                        shown: shown.clone(),
                        known: known.is_some(),
                    });
                }
                PartOutcome::Violation(Box::new(counterexample(part, Some(d), shown, true)))
            }
            (SearchResult::Exhausted(_, d), Some((known, _))) => {
                PartOutcome::Violation(Box::new(counterexample(part, d, Some(known), false)))
            }
            // Its share of steps ran out (or it was cancelled): a later round decides.
            (SearchResult::Exhausted(Exhausted::Steps(_), _), None) => PartOutcome::Skipped,
            (SearchResult::Exhausted(why, _), None) => PartOutcome::Unknown(why.to_string()),
        };
        Searched {
            outcome,
            steps: stats.steps,
            rank,
            lengthen,
        }
    }

    /// The reported part's counterexample `found` (with pruning by later reads), replaced by the
    /// plain search's if that gets a longer prefix; and the steps that search used. Pruning cuts
    /// a dead configuration before its read fails, so its longest prefix can stop short of the
    /// operation a reader should see; the plain search, within a step limit
    /// (`COUNTEREXAMPLE_STEPS`, or `KNOWN_FAIL_PREFIX_STEPS` for a part known to fail before
    /// searching), usually gets further. Only the reported part is searched again, after its
    /// round: the other parts' violations are not shown.
    fn lengthen<M: Model>(
        &self,
        part: &mut Part<M>,
        found: Box<Counterexample>,
        l: Lengthen,
    ) -> (Box<Counterexample>, u64) {
        let never = |_: u64| false;
        let plain = SearchOptions {
            budget: self.budget,
            step_limit: Some(if l.known {
                KNOWN_FAIL_PREFIX_STEPS
            } else {
                COUNTEREXAMPLE_STEPS
            }),
            memory_limit_bytes: self.options.memory_limit_bytes,
            cancelled: &never,
            prune_by_later_reads: false,
        };
        let (again, stats) = search::search(&mut part.model, &part.ops, &plain);
        self.configurations
            .fetch_add(stats.configurations as usize, Ordering::Relaxed);
        self.memo_max.fetch_max(stats.memo_bytes, Ordering::Relaxed);
        match again {
            SearchResult::Violation(d) | SearchResult::Exhausted(_, Some(d))
                if d.prefix.len() > l.prefix_len =>
            {
                (
                    Box::new(counterexample(part, Some(d), l.shown, true)),
                    stats.steps,
                )
            }
            _ => (found, stats.steps),
        }
    }
}

fn counterexample<M: Model>(
    part: &mut Part<M>,
    deepest: Option<Deepest<M::State>>,
    impossible: Option<(usize, String)>,
    search_complete: bool,
) -> Counterexample {
    let view = |model: &M, i: usize| {
        let o = &part.ops[i];
        OpView {
            process: o.process,
            op: model.describe_op(&o.input, o.output.as_ref()),
            invoke_event: o.call,
            complete_event: o.ret,
        }
    };
    let model = &mut part.model;
    let (prefix, blocked, state) = match deepest {
        Some(d) => (d.prefix, d.blocked, d.state),
        None => {
            // No backtrack was recorded: show the impossible operation from the start.
            let b = impossible.as_ref().map(|(i, _)| *i).unwrap_or(0);
            (Vec::new(), b, model.init())
        }
    };
    // Replay the prefix for the states after each shown step.
    let mut steps = Vec::new();
    let mut s = model.init();
    let first_shown = prefix.len().saturating_sub(PREFIX_SHOWN);
    for (n, &i) in prefix.iter().enumerate() {
        let o = &part.ops[i];
        match model.step(&s, &o.input, o.output.as_ref()) {
            Some(next) => s = next,
            None => break,
        }
        if n >= first_shown {
            steps.push(PrefixStep {
                op: view(model, i),
                state_after: model.describe_state(&s),
            });
        }
    }
    let in_prefix: rustc_hash::FxHashSet<usize> = prefix.iter().copied().collect();
    let b = &part.ops[blocked];
    let horizon = b.ret.unwrap_or(usize::MAX);
    let mut candidates: Vec<usize> = (0..part.ops.len())
        .filter(|&i| i != blocked && !in_prefix.contains(&i) && part.ops[i].call < horizon)
        .collect();
    candidates.sort_by_key(|&i| (part.ops[i].call, i));
    let more = candidates.len().saturating_sub(CANDIDATES_SHOWN);
    candidates.truncate(CANDIDATES_SHOWN);
    let concurrent = candidates
        .into_iter()
        .map(|i| {
            let o = &part.ops[i];
            let leads_to = model
                .step(&state, &o.input, o.output.as_ref())
                .map(|n| model.describe_state(&n));
            Candidate {
                op: view(model, i),
                leads_to,
            }
        })
        .collect();
    let blocked_leads_to = model
        .step(&state, &b.input, b.output.as_ref())
        .map(|n| model.describe_state(&n));
    let mut position: Vec<Option<usize>> = vec![None; part.ops.len()];
    for (n, &i) in prefix.iter().enumerate() {
        position[i] = Some(n);
    }
    let mut timeline: Vec<TimelineOp> = (0..part.ops.len())
        .map(|i| TimelineOp {
            op: view(model, i),
            prefix_position: position[i],
        })
        .collect();
    timeline.sort_by_key(|t| t.op.invoke_event);
    Counterexample {
        partition: part.key.clone(),
        operations: part.ops.len(),
        prefix_length: prefix.len(),
        prefix: steps,
        state: model.describe_state(&state),
        blocked: view(model, blocked),
        blocked_leads_to,
        concurrent,
        concurrent_more: more,
        impossible: impossible.map(|(i, why)| (view(model, i), why)),
        search_complete,
        timeline,
    }
}

#[cfg(test)]
mod tests;
