//! The quorum store's checks: `lost-writes`, `replica-convergence` and `staleness`.
//!
//! All three start from the **final replica states**: each node's own state of each key is
//! replayed from its `stored` observations, cleared by a crash (a restarted node reloads and
//! re-observes its disk). A key's replicas are its preference list, rebuilt from the role's
//! nodes and resolved options exactly as the servers build it ([`super::ring`]); nodes down at
//! the end are left out. The **final merge** of a key is the merge of its up replicas' final
//! states: what a read at `r = n` (or anti-entropy, given time) returns from then on.
//!
//! **`lost-writes`** (safety): an acknowledged (`ok`) write that no later read can ever see,
//! meaning:
//! - `lww`: the final merge holds a value whose write completed before the lost write was
//!   invoked (the lost write is newer in real time but lost the timestamp comparison, or was
//!   never stored), or the key has no final state at all;
//! - `version-vectors`: the write's version (its dot, from the coordinator's `versioned`
//!   observation) is not among the final siblings, and no version the final merge has seen
//!   (holds or superseded) was written by a client whose read context held it;
//! - `counter`: the final count is below the sum of the `ok` additions (or above the sum of the
//!   `ok` and `info` ones: a phantom increment).
//!
//! A write that ended `info` may or may not have happened and is never counted as lost.
//!
//! **`replica-convergence`** (liveness): at the end of the run every up replica of every key holds
//! the same state. Judged only if the run ends at least `within` after both the final heal and
//! the last client invocation; otherwise `unknown`.
//!
//! **`staleness`** (measurement, with optional bounds): for every `ok` read, the acknowledged
//! writes it certainly missed. For a key-value or siblings read, the writes on the key that were
//! invoked after the newest write it saw had completed, and that completed before the read was
//! invoked (definitely newer, by real time alone); it is *versions* behind by their number, and
//! *time* behind by how long before the read the first of them completed. For a counter read,
//! the `ok` additions completed before the read minus the count it returned. Reported as
//! metrics; `versions_max` and `time_max` turn them into a verdict.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ring::Ring;
use super::server::{Config as ServerConfig, Resolution};
use super::state::{MergeRules, State};
use super::{CausalContext, Dot, Observation, PROTOCOL_NAME};
use crate::check::ops::{Operation, operations};
use crate::check::{self, CheckInfo, CheckResult, ms};
use crate::history::{EventType, Function, Value};
use crate::process::NodeId;
use crate::scenario::{Duration, Verdict};
use crate::sim::{LifecycleKind, RunRecord, is_up};

/// The `lost-writes` check.
pub const LOST_WRITES_CHECK: CheckInfo = CheckInfo {
    name: "lost-writes",
    summary: "no acknowledged write becomes invisible to every later read (quorum-store)",
    applies_to: |s| s.runs_protocol(PROTOCOL_NAME),
    enabled: check::on_unless_disabled,
    validate: check::validate_within,
    resolve: check::resolve_as::<SettleConfig>,
    run: run_lost_writes,
};

/// The `replica-convergence` check.
pub const CONVERGENCE_CHECK: CheckInfo = CheckInfo {
    name: "replica-convergence",
    summary: "after the final heal every up replica of a key holds the same state (quorum-store)",
    applies_to: |s| s.runs_protocol(PROTOCOL_NAME),
    enabled: check::on_unless_disabled,
    validate: check::validate_within,
    resolve: check::resolve_as::<SettleConfig>,
    run: run_convergence,
};

/// The `staleness` check.
pub const STALENESS_CHECK: CheckInfo = CheckInfo {
    name: "staleness",
    summary: "how many acknowledged versions, and how long, each read was behind; optional bounds (quorum-store)",
    applies_to: |s| s.runs_protocol(PROTOCOL_NAME),
    enabled: check::on_unless_disabled,
    validate: check::validate_as::<StalenessConfig>,
    resolve: check::resolve_as::<StalenessConfig>,
    run: run_staleness,
};

/// `[check.lost-writes]` and `[check.replica-convergence]` options: `within` is how long after
/// the final heal (and the last client invocation) the replicas have to settle (hinted handoff,
/// anti-entropy) before the final states are judged.
pub type SettleConfig = check::Within;

/// `[check.staleness]` options.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StalenessConfig {
    /// Run the check (it always measures; it fails only over a bound).
    #[serde(default = "crate::scenario::yes")]
    pub enabled: bool,
    /// Fail if a read is more than this many acknowledged versions behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions_max: Option<u64>,
    /// Fail if a read is behind a write acknowledged longer ago than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_max: Option<Duration>,
}

/// One `quorum-store` role as the checks see it.
struct Store {
    config: ServerConfig,
    ring: Ring,
}

impl Store {
    fn replicas(&self, key: &str) -> Vec<NodeId> {
        self.ring.preference(key, self.config.n as usize)
    }
}

/// Every `quorum-store` role of the run, with the nodes of each.
fn stores(record: &RunRecord) -> Vec<Store> {
    record
        .scenario
        .cluster
        .roles
        .iter()
        .filter(|r| r.protocol == PROTOCOL_NAME)
        .map(|r| {
            let config: ServerConfig = check::parse_or_default(&r.options);
            let nodes = record
                .topology
                .groups
                .get(&r.name)
                .cloned()
                .unwrap_or_default();
            Store {
                ring: Ring::new(&nodes, config.vnodes),
                config,
            }
        })
        .collect()
}

/// One replayed fact: (time, sequence, node, the state it stored or `None` for a crash).
type Step<'a> = (u64, u64, NodeId, Option<(&'a String, &'a State)>);

/// Each node's final own state of each key, replaying crashes.
fn final_states(record: &RunRecord) -> BTreeMap<NodeId, BTreeMap<String, State>> {
    let mut steps: Vec<Step<'_>> = Vec::new();
    for o in &record.observations {
        if let Some(Observation::Stored { key, state }) = o.get::<Observation>() {
            steps.push((o.t_ns, o.seq, o.node, Some((key, state))));
        }
    }
    for l in &record.lifecycle {
        if l.kind == LifecycleKind::Crash {
            steps.push((l.t_ns, l.seq, l.node, None));
        }
    }
    steps.sort_by_key(|s| (s.0, s.1));
    let mut out: BTreeMap<NodeId, BTreeMap<String, State>> = BTreeMap::new();
    for (_, _, node, step) in steps {
        let states = out.entry(node).or_default();
        match step {
            Some((key, state)) => {
                states.insert(key.clone(), state.clone());
            }
            None => states.clear(),
        }
    }
    out
}

/// Each up replica of a key with its final state (absent: none).
type Replicas = Vec<(NodeId, Option<State>)>;

/// Per key: the store it belongs to, and its up replicas' final states.
struct Finals<'a> {
    keys: BTreeMap<String, (&'a Store, Replicas)>,
}

impl<'a> Finals<'a> {
    fn new(record: &RunRecord, stores: &'a [Store]) -> Finals<'a> {
        let states = final_states(record);
        let mut keys = BTreeMap::new();
        let mut all_keys: BTreeSet<(usize, String)> = BTreeSet::new();
        for (node, held) in &states {
            if let Some(i) = stores.iter().position(|s| s.ring.nodes().contains(node)) {
                all_keys.extend(held.keys().map(|k| (i, k.clone())));
            }
        }
        for (i, key) in all_keys {
            let store = &stores[i];
            let replicas = store
                .replicas(&key)
                .into_iter()
                .filter(|n| is_up(record.final_status[n.index()]))
                .map(|n| (n, states.get(&n).and_then(|h| h.get(&key)).cloned()))
                .collect();
            keys.insert(key, (store, replicas));
        }
        Finals { keys }
    }

    /// The merge of a key's up replicas' final states.
    fn merged(&self, key: &str) -> Option<State> {
        let (store, replicas) = self.keys.get(key)?;
        let rules: MergeRules = store.config.rules();
        replicas.iter().fold(None, |acc, (_, s)| {
            State::merged(acc.as_ref(), s.as_ref(), rules)
        })
    }
}

/// `None` if the run ended early enough after the final heal and the last invocation to judge
/// the final states; otherwise the `unknown` result saying why.
fn too_early(record: &RunRecord, name: &str, within: Duration) -> Option<CheckResult> {
    let Some(final_heal) = record.final_heal_ns else {
        return Some(CheckResult::new(
            name,
            Verdict::Unknown,
            "faults were still active at the end of the run: no final heal to judge from",
        ));
    };
    let last_invoke = record
        .history
        .iter()
        .filter(|e| e.kind == EventType::Invoke)
        .map(|e| e.time_ns)
        .max()
        .unwrap_or(0);
    let from = final_heal.max(last_invoke);
    if from + within.as_nanos() > record.end_ns {
        return Some(CheckResult::new(
            name,
            Verdict::Unknown,
            format!(
                "the run ends less than {within} after the final heal or the last invocation ({}); stop the workload earlier or lengthen `duration`",
                ms(from)
            ),
        ));
    }
    None
}

fn run_lost_writes(record: &RunRecord) -> CheckResult {
    let name = LOST_WRITES_CHECK.name;
    let config: SettleConfig = record.scenario.check_options(name);
    if let Some(r) = too_early(record, name, config.within) {
        return r;
    }
    let stores = stores(record);
    let finals = Finals::new(record, &stores);
    let ops = operations(&record.history);
    let resolution = stores
        .first()
        .map_or(Resolution::Lww, |s| s.config.resolution);
    // Version vectors: each version's dot by (key, value), and each key's versions with the
    // context their clients read.
    let mut dots: BTreeMap<(String, String), Dot> = BTreeMap::new();
    let mut versions_of: BTreeMap<String, Vec<(Dot, CausalContext)>> = BTreeMap::new();
    for o in &record.observations {
        if let Some(Observation::Versioned {
            key,
            value,
            dot,
            context,
        }) = o.get::<Observation>()
        {
            dots.insert((key.clone(), value.clone()), *dot);
            versions_of
                .entry(key.clone())
                .or_default()
                .push((*dot, context.clone()));
        }
    }
    let mut lost: Vec<String> = Vec::new();
    // Lost writes, counting each lost increment of a counter.
    let mut lost_count = 0u64;
    let mut acknowledged = 0usize;
    let keys: BTreeSet<&str> = ops.iter().filter_map(|o| o.key).collect();
    for key in keys {
        let on_key: Vec<&Operation> = ops.iter().filter(|o| o.key == Some(key)).collect();
        let merged = finals.merged(key);
        match resolution {
            Resolution::Counter => {
                let adds = |kinds: &[EventType]| -> i64 {
                    on_key
                        .iter()
                        .filter(|o| {
                            o.f == Function::Add && o.outcome.is_some_and(|k| kinds.contains(&k))
                        })
                        .filter_map(|o| match o.argument {
                            Value::Int(d) => Some(d),
                            _ => None,
                        })
                        .sum()
                };
                let ok = adds(&[EventType::Ok]);
                let possible = ok + adds(&[EventType::Info]);
                acknowledged += on_key
                    .iter()
                    .filter(|o| o.f == Function::Add && o.is_ok())
                    .count();
                let count = match &merged {
                    Some(State::Counter(c)) => c.value(),
                    _ => 0,
                };
                if count < ok {
                    lost_count += (ok - count) as u64;
                    lost.push(format!(
                        "{key}: the final count is {count}, but {ok} was acknowledged ({} increment(s) lost)",
                        ok - count
                    ));
                } else if count > possible {
                    lost.push(format!(
                        "{key}: the final count is {count}, above the {possible} that ok and info additions allow (phantom increments)"
                    ));
                }
            }
            Resolution::Lww | Resolution::VersionVectors => {
                let writes: Vec<&&Operation> =
                    on_key.iter().filter(|o| o.f == Function::Put).collect();
                for w in writes.iter().filter(|w| w.is_ok()) {
                    acknowledged += 1;
                    let Value::Str(value) = &w.argument else {
                        continue;
                    };
                    let verdict = match (&merged, resolution) {
                        (None, _) => Some("no up replica holds the key at all".to_string()),
                        (Some(State::Lww { value: last, .. }), _) => {
                            let winner = writes
                                .iter()
                                .find(|o| *o.argument == Value::Str(last.clone()));
                            match winner {
                                Some(o)
                                    if o.is_ok()
                                        && o.complete_ns.is_some_and(|c| c < w.invoke_ns) =>
                                {
                                    Some(format!(
                                        "the final value is {last:?}, written by {} which completed before this write was invoked",
                                        o.describe()
                                    ))
                                }
                                _ => None,
                            }
                        }
                        (Some(State::Siblings { versions, seen }), _) => {
                            match dots.get(&(key.to_string(), value.clone())) {
                                Some(dot) => {
                                    // Visible, or superseded by a version that reached the
                                    // final state and whose client had read this one.
                                    let seen = versions.iter().any(|s| s.dot == *dot)
                                        || versions_of.get(key).is_some_and(|vs| {
                                            vs.iter()
                                                .any(|(d, c)| seen.contains(*d) && c.contains(*dot))
                                        });
                                    (!seen).then(|| {
                                        let finals: Vec<&str> = versions.iter().map(|s| s.value.as_str()).collect();
                                        format!(
                                            "its version {}:{} is neither among the final siblings {finals:?} nor read by the client of a version the final state holds or superseded",
                                            dot.node, dot.counter
                                        )
                                    })
                                }
                                None => None,
                            }
                        }
                        _ => None,
                    };
                    if let Some(why) = verdict {
                        lost_count += 1;
                        lost.push(format!("{}: {why}", w.describe()));
                    }
                }
            }
        }
    }
    let mut r = if lost.is_empty() {
        CheckResult::new(
            name,
            Verdict::Pass,
            format!(
                "every one of {acknowledged} acknowledged write(s) is visible in the final state of its replicas"
            ),
        )
    } else {
        let mut r = CheckResult::new(
            name,
            Verdict::Fail,
            format!(
                "{lost_count} acknowledged write(s) can never be read again ({} resolution)",
                resolution.name()
            ),
        );
        r.evidence.extend(lost.iter().take(10).cloned());
        if lost.len() > 10 {
            r.evidence.push(format!("and {} more", lost.len() - 10));
        }
        r
    };
    r.metrics
        .insert("acknowledged_writes".into(), acknowledged.into());
    r.metrics.insert("lost_writes".into(), lost_count.into());
    r
}

fn run_convergence(record: &RunRecord) -> CheckResult {
    let name = CONVERGENCE_CHECK.name;
    let config: SettleConfig = record.scenario.check_options(name);
    if let Some(r) = too_early(record, name, config.within) {
        return r;
    }
    let stores = stores(record);
    let finals = Finals::new(record, &stores);
    let mut diverged = Vec::new();
    for (key, (_, replicas)) in &finals.keys {
        let first = &replicas.first().map(|(_, s)| s.clone()).unwrap_or(None);
        if replicas.iter().any(|(_, s)| s != first) {
            let shown: Vec<String> = replicas
                .iter()
                .map(|(n, s)| {
                    let what = match s {
                        None => "nothing".to_string(),
                        Some(State::Counter(c)) => format!("count {}", c.value()),
                        Some(s) => format!("{:?}", s.values()),
                    };
                    format!("{} holds {what}", record.topology.name(*n))
                })
                .collect();
            diverged.push(format!("{key}: {}", shown.join(", ")));
        }
    }
    let mut r = if diverged.is_empty() {
        CheckResult::new(
            name,
            Verdict::Pass,
            format!(
                "every up replica of each of {} key(s) holds the same state at the end",
                finals.keys.len()
            ),
        )
    } else {
        let mut r = CheckResult::new(
            name,
            Verdict::Fail,
            format!(
                "{} of {} key(s) still differ between their up replicas at the end",
                diverged.len(),
                finals.keys.len()
            ),
        );
        r.evidence.extend(diverged.iter().take(10).cloned());
        r
    };
    r.metrics.insert("keys".into(), finals.keys.len().into());
    r.metrics
        .insert("diverged_keys".into(), diverged.len().into());
    r
}

/// How far behind one read was.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Behind {
    versions: u64,
    time_ns: u64,
}

/// How far behind `read` was, from the operations on its key.
fn behind(read: &Operation, on_key: &[&Operation]) -> Behind {
    let acked_before =
        |o: &Operation| o.is_ok() && o.complete_ns.is_some_and(|c| c < read.invoke_ns);
    if read.f == Function::Read {
        // A counter read: the ok additions completed before it, minus what it counted.
        let mut done: Vec<u64> = on_key
            .iter()
            .filter(|o| o.f == Function::Add && acked_before(o))
            .filter_map(|o| o.complete_ns)
            .collect();
        done.sort_unstable();
        let count = match read.result {
            Value::Int(c) => (*c).max(0) as u64,
            _ => return Behind::default(),
        };
        let missed = (done.len() as u64).saturating_sub(count);
        if missed == 0 {
            return Behind::default();
        }
        return Behind {
            versions: missed,
            time_ns: read.invoke_ns - done[count as usize],
        };
    }
    let seen: Vec<&String> = match &read.result {
        Value::Str(v) => vec![v],
        Value::List(vs) => vs
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let writes: Vec<&&Operation> = on_key.iter().filter(|o| o.f == Function::Put).collect();
    // The completion of the newest write seen (0: nothing seen; unknown completion: nothing is
    // certainly newer).
    let mut seen_done = 0u64;
    for v in seen {
        let done = writes
            .iter()
            .find(|w| *w.argument == Value::Str(v.clone()))
            .and_then(|w| if w.is_ok() { w.complete_ns } else { None })
            .unwrap_or(u64::MAX);
        seen_done = seen_done.max(done);
    }
    let newer: Vec<u64> = writes
        .iter()
        .filter(|w| w.invoke_ns > seen_done && acked_before(w))
        .filter_map(|w| w.complete_ns)
        .collect();
    match newer.iter().min() {
        Some(first) => Behind {
            versions: newer.len() as u64,
            time_ns: read.invoke_ns - first,
        },
        None => Behind::default(),
    }
}

fn run_staleness(record: &RunRecord) -> CheckResult {
    let name = STALENESS_CHECK.name;
    let config: StalenessConfig = record.scenario.check_options(name);
    let ops = operations(&record.history);
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for o in &ops {
        if let Some(k) = o.key {
            by_key.entry(k).or_default().push(o);
        }
    }
    let mut reads = 0u64;
    let mut all: Vec<(Behind, &Operation)> = Vec::new();
    for on_key in by_key.values() {
        for read in on_key
            .iter()
            .filter(|o| o.is_ok() && matches!(o.f, Function::Get | Function::Read))
        {
            reads += 1;
            let b = behind(read, on_key);
            if b.versions > 0 {
                all.push((b, read));
            }
        }
    }
    let stale = all.len() as u64;
    let versions_max = all.iter().map(|(b, _)| b.versions).max().unwrap_or(0);
    let versions_total: u64 = all.iter().map(|(b, _)| b.versions).sum();
    let mut times: Vec<u64> = all.iter().map(|(b, _)| b.time_ns).collect();
    times.sort_unstable();
    let time_max = times.last().copied().unwrap_or(0);
    let p99 = times
        .get(((times.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        .copied()
        .unwrap_or(0);
    let over: Vec<&(Behind, &Operation)> = all
        .iter()
        .filter(|(b, _)| {
            config.versions_max.is_some_and(|m| b.versions > m)
                || config.time_max.is_some_and(|m| b.time_ns > m.as_nanos())
        })
        .collect();
    let summary = format!(
        "{stale} of {reads} ok read(s) missed acknowledged writes: at most {versions_max} version(s) and {} behind",
        ms(time_max)
    );
    let mut r = if over.is_empty() {
        CheckResult::new(name, Verdict::Pass, summary)
    } else {
        let mut r = CheckResult::new(
            name,
            Verdict::Fail,
            format!("{} read(s) beyond the bound; {summary}", over.len()),
        );
        for (b, op) in over.iter().take(10) {
            r.evidence.push(format!(
                "{}: {} version(s), {} behind",
                op.describe(),
                b.versions,
                ms(b.time_ns)
            ));
        }
        r
    };
    let mean = if reads == 0 {
        0.0
    } else {
        versions_total as f64 / reads as f64
    };
    let fraction = if reads == 0 {
        0.0
    } else {
        stale as f64 / reads as f64
    };
    for (k, v) in [
        ("reads", serde_json::Value::from(reads)),
        ("stale_reads", stale.into()),
        ("stale_fraction", fraction.into()),
        ("versions_behind_max", versions_max.into()),
        ("versions_behind_mean", mean.into()),
        ("time_behind_ns_max", time_max.into()),
        ("time_behind_ns_p99", p99.into()),
    ] {
        r.metrics.insert(k.into(), v);
    }
    r
}
