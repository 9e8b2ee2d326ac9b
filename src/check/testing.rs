//! Test helpers: hand-built run records for unit tests of checks.

use std::path::Path;
use std::sync::Arc;

use crate::history::{EventType, Function, HistoryEvent, Value};
use crate::process::{NodeId, Payload, Wire};
use crate::scenario::Scenario;
use crate::scenario::topology::Topology;
use crate::sim::host::Status;
use crate::sim::{LifecycleKind, LifecycleRecord, ObservationRecord, RunRecord, Stats};

/// An empty 10-second run record of a key-value cluster with `servers` servers and `clients`
/// clients; `extra` is appended to the scenario text (e.g. `[check.x]` options).
pub fn record(servers: u32, clients: u32, extra: &str) -> RunRecord {
    let text = format!(
        "duration = \"10s\"\n[cluster]\nprotocol = \"raft\"\nnodes = {servers}\n[workload]\nclients = {clients}\n{extra}"
    );
    let scenario = Scenario::parse(Path::new("test.toml"), text.as_bytes()).expect("valid");
    let topology = Topology::new(&scenario);
    let n = topology.len();
    RunRecord {
        scenario: Arc::new(scenario),
        seed: 1,
        topology: Arc::new(topology),
        end_ns: 10_000_000_000,
        trace_jsonl: Default::default(),
        trace_hash: String::new(),
        trace_truncated: false,
        history: Default::default(),
        observations: Default::default(),
        lifecycle: Vec::new(),
        partitions: Vec::new(),
        faults: Vec::new(),
        final_heal_ns: Some(0),
        final_status: vec![Status::Up; n],
        final_durable_bytes: vec![0; n],
        stats: Stats::default(),
        halt: None,
        limit_exceeded: None,
        derived: Default::default(),
    }
}

/// One operation as two history events (invoke and completion) on key `k`; times in ms.
#[allow(clippy::too_many_arguments)]
pub fn op(
    process: u64,
    node: &str,
    f: Function,
    argument: Value,
    invoke_ms: u64,
    kind: EventType,
    result: Value,
    complete_ms: u64,
) -> Vec<HistoryEvent> {
    let mut invoke = HistoryEvent::new(process, EventType::Invoke, f, Some("k".into()), argument);
    invoke.time_ns = invoke_ms * 1_000_000;
    invoke.node = node.into();
    let mut done = HistoryEvent::new(process, kind, f, Some("k".into()), result);
    done.time_ns = complete_ms * 1_000_000;
    done.node = node.into();
    vec![invoke, done]
}

/// Appends an observation at `t_ms` by `node`, with the next sequence number.
pub fn observe(record: &mut RunRecord, t_ms: u64, node: u32, observation: impl Wire) {
    let seq = next_seq(record);
    record.observations.push(ObservationRecord {
        seq,
        t_ns: t_ms * 1_000_000,
        node: NodeId(node),
        observation: Payload::new(observation),
    });
}

/// Appends a lifecycle change at `t_ms`, with the next sequence number.
pub fn lifecycle(record: &mut RunRecord, t_ms: u64, node: u32, kind: LifecycleKind) {
    let seq = next_seq(record);
    record.lifecycle.push(LifecycleRecord {
        seq,
        t_ns: t_ms * 1_000_000,
        node: NodeId(node),
        kind,
    });
}

fn next_seq(record: &RunRecord) -> u64 {
    let a = record.observations.last().map_or(0, |o| o.seq);
    let b = record.lifecycle.last().map_or(0, |l| l.seq);
    a.max(b) + 1
}

/// A `put` of the string `value` on key `k` by `process` at client `node`, as [`op`] builds it;
/// times in ms.
pub fn put(
    process: u64,
    node: &str,
    value: &str,
    invoke_ms: u64,
    kind: EventType,
    complete_ms: u64,
) -> Vec<HistoryEvent> {
    let v = Value::Str(value.into());
    op(
        process,
        node,
        Function::Put,
        v.clone(),
        invoke_ms,
        kind,
        v,
        complete_ms,
    )
}

/// Whether `check` runs for `record`'s scenario, as `run_checks` decides.
pub fn enabled(check: &crate::check::CheckInfo, record: &RunRecord) -> bool {
    check.is_enabled_in(&record.scenario)
}
