//! Benchmarks of the checker: the corpus files and a generated key-value history.
//!
//! Wall times come from `crate::wall::wall_now` (the wall clock; benchmarks are measurements,
//! not checks). Each corpus file is checked `repeats` times and the median is reported.
//!
//! Peak memory of the generated history is measured honestly as the process's peak resident set
//! (`VmHWM` in `/proc/self/status`), reset with `/proc/self/clear_refs` after the history has been
//! generated, so it counts the history held in memory plus everything the check allocates. The
//! CLI runs that part in a child process so that earlier benchmarks do not leave memory behind.
//! For corpus files the estimate of the search tables' largest size is reported instead.

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::{Imported, ModelKind, Options, Verdict, check_events};
use crate::history::{EventType, Format, Function, HistoryEvent, Value};

/// The timing of one corpus file (or one way of checking it).
#[derive(Clone, Debug, Serialize)]
pub struct FileTiming {
    /// Path relative to the corpus folder, plus ` (unpartitioned)` for whole-history checks.
    pub name: String,
    /// Corpus group: the first folder of the path.
    pub group: String,
    /// Operations checked.
    pub operations: usize,
    /// The verdict.
    pub verdict: Verdict,
    /// The verdict `MANIFEST.tsv` expects.
    pub expected: Verdict,
    /// Median wall time of `repeats` checks, milliseconds.
    pub median_ms: f64,
    /// Fastest of them, milliseconds.
    pub min_ms: f64,
    /// Largest size of the search tables (estimate), bytes.
    pub memo_peak_bytes: usize,
}

/// The timing of the generated key-value history.
#[derive(Clone, Debug, Serialize)]
pub struct GeneratedTiming {
    /// Operations (invokes).
    pub operations: usize,
    /// Keys.
    pub keys: usize,
    /// Client processes at any one time.
    pub clients: usize,
    /// Of which with unknown outcome (info).
    pub info_operations: usize,
    /// Of which failed (fail).
    pub failed_operations: usize,
    /// Time to generate the history, milliseconds.
    pub generate_ms: f64,
    /// Time to check it, milliseconds.
    pub check_ms: f64,
    /// The verdict (the generator only produces linearizable histories).
    pub verdict: Verdict,
    /// Peak resident set while checking (VmHWM after a reset), bytes; `None` where
    /// `/proc/self/clear_refs` is not available.
    pub peak_rss_bytes: Option<u64>,
    /// Largest size of the search tables (estimate), bytes.
    pub memo_peak_bytes: usize,
}

fn elapsed_ms(start: std::time::Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// The corpus folder: `FAULTLINE_CORPUS`, else `../shared/corpus` from the working directory,
/// else beside the crate's source.
pub fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("FAULTLINE_CORPUS") {
        return Some(PathBuf::from(dir));
    }
    [
        PathBuf::from("../shared/corpus"),
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")),
    ]
    .into_iter()
    .find(|d| d.join("MANIFEST.tsv").is_file())
}

/// Times every file of `MANIFEST.tsv` (median of `repeats`), plus the key-value files of at
/// most 1000 events checked without partitioning. `progress` is called after each file.
///
/// # Errors
/// A sentence naming the file that could not be read.
pub fn bench_corpus(
    dir: &Path,
    repeats: usize,
    progress: &mut dyn FnMut(&FileTiming),
) -> Result<Vec<FileTiming>, String> {
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv"))
        .map_err(|e| format!("{}: {e}", dir.join("MANIFEST.tsv").display()))?;
    let mut out = Vec::new();
    for line in manifest.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 4 {
            return Err(format!("MANIFEST.tsv: a short row: {line}"));
        }
        let format: Format = cols[1].parse()?;
        let model: ModelKind = cols[2].parse()?;
        let expected = if cols[3] == "linearizable" {
            Verdict::Linearizable
        } else {
            Verdict::NotLinearizable
        };
        let path = dir.join(cols[0]);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let imported = Imported::read(Some(&path), &bytes, Some(format), Some(model))
            .map_err(|e| format!("{}:{e}", path.display()))?;
        let group = cols[0].split('/').next().unwrap_or("").to_string();
        let mut variants = vec![(cols[0].to_string(), imported.options())];
        // Whole-history checks of the small key-value files only (Porcupine's reference times
        // are for c10; c50 unpartitioned is out of reach for both checkers).
        if model == ModelKind::KeyValue && crate::history::Events::len(&imported.history) <= 1000 {
            let mut whole = imported.options();
            whole.partition = false;
            variants.push((format!("{} (unpartitioned)", cols[0]), whole));
        }
        for (name, options) in variants {
            let (report, times) = repeat_timed(repeats, || {
                imported
                    .check(&options)
                    .map_err(|e| format!("{}:{e}", path.display()))
            })?;
            let timing = FileTiming {
                name,
                group: group.clone(),
                operations: report.operations,
                verdict: report.verdict,
                expected,
                median_ms: times[times.len() / 2],
                min_ms: times[0],
                memo_peak_bytes: report.memo_peak_bytes,
            };
            progress(&timing);
            out.push(timing);
        }
    }
    Ok(out)
}

/// Runs `check` `repeats` times (at least once): its last result and the wall times of the
/// runs in milliseconds, sorted (the median is the middle one).
fn repeat_timed<T, E>(
    repeats: usize,
    mut check: impl FnMut() -> Result<T, E>,
) -> Result<(T, Vec<f64>), E> {
    let mut times = Vec::with_capacity(repeats.max(1));
    let mut last = None;
    for _ in 0..repeats.max(1) {
        let start = crate::wall::wall_now();
        let result = check()?;
        times.push(elapsed_ms(start));
        last = Some(result);
    }
    times.sort_by(f64::total_cmp);
    Ok((last.expect("at least one repeat"), times))
}

/// The operations a generated history draws, as weights (the rest of 1.0 is cas).
#[derive(Copy, Clone, Debug, Serialize)]
pub struct Mix {
    /// Weight of `get`.
    pub get: f64,
    /// Weight of `put`.
    pub put: f64,
    /// Weight of `append`.
    pub append: f64,
    /// Appends add a text unique to the operation (`a<n>;`, as faultline's clients do) instead
    /// of one of 97 short texts (`+<n mod 97>`).
    pub unique_appends: bool,
}

/// faultline's default mix: get 40%, put 30%, append 20%, cas 10%.
pub const KV_MIX: Mix = Mix {
    get: 0.4,
    put: 0.3,
    append: 0.2,
    unique_appends: false,
};

/// Appends and reads only, half each, every appended text unique (issue 11's single-key case).
pub const APPEND_MIX: Mix = Mix {
    get: 0.5,
    put: 0.0,
    append: 0.5,
    unique_appends: true,
};

/// Generates a linearizable key-value history: `clients` sequential clients issue `ops`
/// operations over `keys` keys (faultline's default mix: get 40%, put 30%, append 20%, cas 10%)
/// against an atomic store. Each operation takes effect at a random point between its invoke and
/// its completion; about 1% end in `info` (half of those took effect, half never did; the client
/// then continues as a new process), and a cas whose expected value does not match ends in
/// `fail`. Deterministic for a given `seed`. Times are in nanoseconds.
pub fn generate_kv_history(
    ops: usize,
    keys: usize,
    clients: usize,
    seed: u64,
) -> Vec<HistoryEvent> {
    generate_history(ops, keys, clients, seed, KV_MIX)
}

/// [`generate_kv_history`] with another mix of operations.
pub fn generate_history(
    ops: usize,
    keys: usize,
    clients: usize,
    seed: u64,
    mix: Mix,
) -> Vec<HistoryEvent> {
    struct Op {
        invoke_ns: u64,
        effect_ns: u64,
        complete_ns: u64,
        client: usize,
        f: Function,
        key: u32,
        arg: Value,
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keys = keys.max(1);
    let clients = clients.max(1);
    let mut next_free = vec![0u64; clients];
    let mut planned: Vec<Op> = Vec::with_capacity(ops);
    for n in 0..ops {
        // The client that is free first goes next (keeps all clients busy).
        let client = (0..clients).min_by_key(|&c| (next_free[c], c)).unwrap_or(0);
        let invoke_ns = next_free[client] + rng.gen_range(1..50_000);
        let effect_ns = invoke_ns + rng.gen_range(1..200_000);
        let complete_ns = effect_ns + rng.gen_range(1..200_000);
        next_free[client] = complete_ns;
        let key = rng.gen_range(0..keys) as u32;
        let roll: f64 = rng.r#gen();
        let (f, arg) = if roll < mix.get {
            (Function::Get, Value::Nil)
        } else if roll < mix.get + mix.put {
            (Function::Put, Value::Str(format!("v{n}")))
        } else if roll < mix.get + mix.put + mix.append {
            let text = if mix.unique_appends {
                format!("a{n};")
            } else {
                format!("+{}", n % 97)
            };
            (Function::Append, Value::Str(text))
        } else {
            (Function::Cas, Value::Nil) // arguments chosen when it takes effect
        };
        planned.push(Op {
            invoke_ns,
            effect_ns,
            complete_ns,
            client,
            f,
            key,
            arg,
        });
    }
    // Apply in effect order to an atomic store.
    let mut by_effect: Vec<usize> = (0..planned.len()).collect();
    by_effect.sort_by_key(|&i| (planned[i].effect_ns, i));
    let mut store: Vec<Option<String>> = vec![None; keys];
    // (kind, completion value, invoke value, takes effect)
    let mut results: Vec<(EventType, Value, Value)> =
        vec![(EventType::Ok, Value::Nil, Value::Nil); planned.len()];
    for i in by_effect {
        let op = &planned[i];
        let k = op.key as usize;
        let info = rng.gen_range(0..100) == 0;
        let applies = !info || rng.gen_bool(0.5);
        let result = match op.f {
            Function::Get => {
                let v = store[k].clone().map_or(Value::Nil, Value::Str);
                (EventType::Ok, v, Value::Nil)
            }
            Function::Put => {
                if applies {
                    store[k] = match &op.arg {
                        Value::Str(s) => Some(s.clone()),
                        _ => None,
                    };
                }
                (EventType::Ok, op.arg.clone(), op.arg.clone())
            }
            Function::Append => {
                if applies {
                    let suffix = match &op.arg {
                        Value::Str(s) => s.as_str(),
                        _ => "",
                    };
                    let cur = store[k].get_or_insert_with(String::new);
                    cur.push_str(suffix);
                }
                (EventType::Ok, op.arg.clone(), op.arg.clone())
            }
            _ => {
                // cas: usually expect the current value (succeeds), sometimes a stale one (fails).
                let current = store[k].clone();
                let expected = match (&current, rng.gen_range(0..4)) {
                    (Some(c), 0..=2) => c.clone(),
                    _ => format!("stale{i}"),
                };
                let new = format!("c{i}");
                let arg = Value::List(vec![Value::Str(expected.clone()), Value::Str(new.clone())]);
                let matches = current.as_deref() == Some(expected.as_str());
                if matches && applies {
                    store[k] = Some(new);
                }
                let kind = if matches {
                    EventType::Ok
                } else {
                    EventType::Fail
                };
                (kind, arg.clone(), arg)
            }
        };
        let (mut kind, value, arg) = result;
        if info && kind == EventType::Ok {
            kind = EventType::Info;
        }
        results[i] = (kind, value, arg);
    }
    // Events in time order; an info retires the process (the client continues as a new one).
    let mut timeline: Vec<(u64, bool, usize)> = Vec::with_capacity(2 * planned.len());
    for (i, op) in planned.iter().enumerate() {
        timeline.push((op.invoke_ns, false, i));
        timeline.push((op.complete_ns, true, i));
    }
    timeline.sort_unstable();
    let mut process_of_client: Vec<u64> = (0..clients as u64).collect();
    let mut next_process = clients as u64;
    let mut process_of_op: Vec<u64> = vec![0; planned.len()];
    let key_names: Vec<String> = (0..keys).map(|k| format!("k{k}")).collect();
    let mut events = Vec::with_capacity(timeline.len());
    for (t, is_completion, i) in timeline {
        let op = &planned[i];
        let (kind, value, arg) = &results[i];
        let key = Some(key_names[op.key as usize].clone());
        let mut event = if is_completion {
            let p = process_of_op[i];
            if *kind == EventType::Info {
                process_of_client[op.client] = next_process;
                next_process += 1;
            }
            let v = if *kind == EventType::Ok {
                value.clone()
            } else {
                arg.clone()
            };
            let mut e = HistoryEvent::new(p, *kind, op.f, key, v);
            if *kind != EventType::Ok {
                e.error = Some(
                    if *kind == EventType::Info {
                        "timeout"
                    } else {
                        "mismatch"
                    }
                    .into(),
                );
            }
            e
        } else {
            let p = process_of_client[op.client];
            process_of_op[i] = p;
            HistoryEvent::new(p, EventType::Invoke, op.f, key, arg.clone())
        };
        event.index = events.len() as u64;
        event.time_ns = t;
        events.push(event);
    }
    events
}

/// The peak resident set size of this process (`VmHWM`), bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident set size to the current one; false if unsupported.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Generates the key-value history and times its check (partitioned by key, the default step
/// limit, 8 GiB of tables per key).
pub fn bench_generated(ops: usize, keys: usize, clients: usize) -> GeneratedTiming {
    let start = crate::wall::wall_now();
    let events = generate_kv_history(ops, keys, clients, 2024);
    let generate_ms = elapsed_ms(start);
    let info_operations = events.iter().filter(|e| e.kind == EventType::Info).count();
    let failed_operations = events.iter().filter(|e| e.kind == EventType::Fail).count();
    let reset = reset_peak_rss();
    let mut options = Options::new(ModelKind::KeyValue);
    options.memory_limit_bytes = 8 << 30;
    let start = crate::wall::wall_now();
    let report = check_events(&events, &options).expect("generated histories are well formed");
    let check_ms = elapsed_ms(start);
    GeneratedTiming {
        operations: ops,
        keys,
        clients,
        info_operations,
        failed_operations,
        generate_ms,
        check_ms,
        verdict: report.verdict,
        peak_rss_bytes: if reset { peak_rss_bytes() } else { None },
        memo_peak_bytes: report.memo_peak_bytes,
    }
}

/// The timing of a generated single-key append history, with and without pruning by later reads.
#[derive(Clone, Debug, Serialize)]
pub struct AppendTiming {
    /// Operations (invokes).
    pub operations: usize,
    /// Client processes at any one time.
    pub clients: usize,
    /// Of which with unknown outcome (info).
    pub info_operations: usize,
    /// Median wall time of the checks, milliseconds.
    pub median_ms: f64,
    /// The verdict (the generator only produces linearizable histories).
    pub verdict: Verdict,
    /// Model steps of the check (the work the step limit counts).
    pub steps: u64,
    /// The verdict of the plain search (no pruning) within `plain_step_limit` steps.
    pub plain_verdict: Verdict,
    /// The step limit given to the plain search.
    pub plain_step_limit: u64,
}

/// Times the check of a generated single-key history of appends and reads ([`APPEND_MIX`],
/// `ops` operations from `clients` clients; median of `repeats`), and checks it once more
/// with the search alone (no read mapping) without pruning by later reads, within
/// `plain_step_limit` steps, for comparison.
pub fn bench_single_key_appends(
    ops: usize,
    clients: usize,
    repeats: usize,
    plain_step_limit: u64,
) -> AppendTiming {
    let events = generate_history(ops, 1, clients, 2024, APPEND_MIX);
    let options = Options::new(ModelKind::KeyValue);
    let (report, times) = repeat_timed(repeats, || check_events(&events, &options))
        .expect("generated histories are well formed");
    let mut plain = options.clone();
    plain.prune_by_later_reads = false;
    plain.read_mapping = false;
    plain.step_limit = plain_step_limit;
    let plain_report = check_events(&events, &plain).expect("well formed");
    AppendTiming {
        operations: ops,
        clients,
        info_operations: events.iter().filter(|e| e.kind == EventType::Info).count(),
        median_ms: times[times.len() / 2],
        verdict: report.verdict,
        steps: report.steps,
        plain_verdict: plain_report.verdict,
        plain_step_limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::linearizability::DEFAULT_STEP_LIMIT;

    #[test]
    fn generated_histories_are_linearizable_and_varied() {
        let events = generate_kv_history(3000, 5, 6, 7);
        assert_eq!(events.len(), 6000);
        assert!(events.iter().any(|e| e.kind == EventType::Info));
        assert!(events.iter().any(|e| e.kind == EventType::Fail));
        assert!(
            events
                .iter()
                .any(|e| e.f == Function::Append && e.kind == EventType::Ok)
        );
        let report = check_events(&events, &Options::new(ModelKind::KeyValue)).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "{}",
            report.summary()
        );
        // And the checker notices a corrupted read.
        let mut bad = events.clone();
        let i = bad
            .iter()
            .position(|e| e.f == Function::Get && e.kind == EventType::Ok && e.value != Value::Nil)
            .unwrap();
        bad[i].value = Value::Str("never written".into());
        let report = check_events(&bad, &Options::new(ModelKind::KeyValue)).unwrap();
        assert_eq!(report.verdict, Verdict::NotLinearizable);
        assert_eq!(generate_kv_history(3000, 5, 6, 7), events, "deterministic");
    }

    #[test]
    fn single_key_append_histories_are_decided_by_pruning_and_not_without_it() {
        let events = generate_history(2000, 1, 15, 7, APPEND_MIX);
        assert!(
            events
                .iter()
                .all(|e| matches!(e.f, Function::Get | Function::Append))
        );
        assert!(events.iter().any(|e| e.kind == EventType::Info));
        let mut options = Options::new(ModelKind::KeyValue);
        let report = check_events(&events, &options).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Linearizable,
            "{}",
            report.summary()
        );
        // A count of work: a few steps per operation.
        assert!(report.steps < 20 * 2000, "{} steps", report.steps);
        options.prune_by_later_reads = false;
        options.read_mapping = false;
        options.step_limit = 1_000_000;
        let plain = check_events(&events, &options).unwrap();
        assert_eq!(plain.verdict, Verdict::Unknown, "{}", plain.summary());
        // A read that skips an append is caught.
        let mut bad = events.clone();
        let i = bad
            .iter()
            .rposition(|e| {
                e.f == Function::Get
                    && e.kind == EventType::Ok
                    && matches!(&e.value, Value::Str(s) if s.matches(';').count() > 3)
            })
            .unwrap();
        if let Value::Str(s) = &bad[i].value {
            let first = s.find(';').unwrap() + 1;
            bad[i].value = Value::Str(s[first..].to_string());
        }
        options.prune_by_later_reads = true;
        options.read_mapping = true;
        options.step_limit = DEFAULT_STEP_LIMIT;
        assert_eq!(
            check_events(&bad, &options).unwrap().verdict,
            Verdict::NotLinearizable
        );
    }
}
