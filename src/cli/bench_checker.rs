//! `faultline bench checker`: times the linearizability checker on the corpus and on a generated
//! key-value history (see [`crate::check::linearizability::bench`]). Build with `--release`.
//!
//! The generated history is checked in a child process (this program again, with
//! `FAULTLINE_BENCH_CHILD` set) so that its peak resident memory (VmHWM) is not inflated by the
//! corpus runs before it.

use std::collections::BTreeMap;

use crate::check::linearizability::Verdict;
use crate::check::linearizability::bench::{
    FileTiming, GeneratedTiming, bench_corpus, bench_generated, bench_single_key_appends,
    corpus_dir,
};
use crate::cli::exit;

/// Set in the child process that runs the generated-history benchmark.
pub const CHILD_ENV: &str = "FAULTLINE_BENCH_CHILD";

/// Size of the generated history: operations, keys, clients.
pub const GENERATED: (usize, usize, usize) = (1_000_000, 1_000, 20);

/// Size of the generated single-key append history: operations, clients; and the step limit
/// of the plain search it is compared with.
pub const SINGLE_KEY_APPENDS: (usize, usize, u64) = (10_000, 15, 50_000_000);

/// Porcupine 1.3.0 reference times (Go 1.19, GOMAXPROCS=2), milliseconds, from the issue.
const PORCUPINE_MS: &[(&str, &str)] = &[
    ("porcupine-etcd (all 102 files)", "446"),
    ("porcupine-etcd/etcd_002.log", "170"),
    ("porcupine-etcd/etcd_007.log", "115"),
    ("porcupine-kv/c50-ok.txt", "170-259"),
    ("porcupine-kv/c10-ok.txt (unpartitioned)", "1771"),
    ("porcupine-kv/c10-bad.txt (unpartitioned)", "2202"),
];

/// Runs the checker benchmarks; prints text or (with `json`) one JSON object. Exit 0, or 1 if
/// a verdict differs from MANIFEST.tsv, or 2 if something could not run.
pub fn bench_checker(json: bool) -> u8 {
    if std::env::var_os(CHILD_ENV).is_some() {
        let (ops, keys, clients) = GENERATED;
        let t = bench_generated(ops, keys, clients);
        println!("{}", serde_json::to_string(&t).expect("serializes"));
        return exit::PASS;
    }
    if cfg!(debug_assertions) && !json {
        println!(
            "note: this is a debug build; measure with `cargo run --release -- bench checker`"
        );
    }
    let repeats = 5;
    let mut files: Vec<FileTiming> = Vec::new();
    match corpus_dir() {
        None => println!("corpus: not found (set FAULTLINE_CORPUS): skipped"),
        Some(dir) => {
            if !json {
                println!(
                    "corpus {} (median of {repeats} runs, ms; {} threads):",
                    dir.display(),
                    rayon::current_num_threads()
                );
            }
            let mut progress = |t: &FileTiming| {
                if !json {
                    println!(
                        "  {:<58} {:>6} ops  {:>9.3} ms  memo {:>8.1} KiB  {}",
                        t.name,
                        t.operations,
                        t.median_ms,
                        t.memo_peak_bytes as f64 / 1024.0,
                        verdict_text(t)
                    );
                }
            };
            match bench_corpus(&dir, repeats, &mut progress) {
                Ok(f) => files = f,
                Err(e) => {
                    eprintln!("faultline bench checker: {e}");
                    return exit::BAD_INPUT;
                }
            }
        }
    }
    let (ops, clients, plain_limit) = SINGLE_KEY_APPENDS;
    let appends = bench_single_key_appends(ops, clients, repeats, plain_limit);
    let generated = run_child();
    let mut groups: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for f in files
        .iter()
        .filter(|f| !f.name.ends_with("(unpartitioned)"))
    {
        let g = groups.entry(f.group.clone()).or_default();
        g.0 += 1;
        g.1 += f.median_ms;
    }
    let wrong: Vec<&FileTiming> = files.iter().filter(|f| f.verdict != f.expected).collect();
    if json {
        let out = serde_json::json!({
            "repeats": repeats,
            "threads": rayon::current_num_threads(),
            "files": files,
            "group_totals_ms": groups.iter().map(|(g, (n, ms))| (g.clone(), serde_json::json!({"files": n, "total_ms": ms}))).collect::<BTreeMap<_, _>>(),
            "single_key_appends": appends,
            "generated": generated.as_ref().ok(),
            "generated_error": generated.as_ref().err(),
            "porcupine_reference_ms": PORCUPINE_MS.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            "wrong_verdicts": wrong.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializes")
        );
    } else {
        println!("totals:");
        for (g, (n, ms)) in &groups {
            println!("  {g:<20} {n:>4} files  {ms:>10.3} ms");
        }
        println!("against Porcupine 1.3.0 (same machine kind, 2 cores):");
        for (name, porcupine) in PORCUPINE_MS {
            let ours = if name.starts_with("porcupine-etcd (") {
                groups.get("porcupine-etcd").map(|g| g.1)
            } else {
                files.iter().find(|f| f.name == *name).map(|f| f.median_ms)
            };
            match ours {
                Some(ms) => println!("  {name:<44} {ms:>10.3} ms   (Porcupine {porcupine} ms)"),
                None => println!("  {name:<44} {:>10}      (Porcupine {porcupine} ms)", "-"),
            }
        }
        println!(
            "single-key append history: {} ops, {} clients ({} info): checked in {:.1} ms (median of {repeats}), {:?}, {} steps; without pruning by later reads: {:?} within {} steps",
            appends.operations,
            appends.clients,
            appends.info_operations,
            appends.median_ms,
            appends.verdict,
            appends.steps,
            appends.plain_verdict,
            appends.plain_step_limit
        );
        match &generated {
            Ok(g) => println!(
                "generated kv history: {} ops, {} keys, {} clients ({} info, {} fail): generated in {:.0} ms, checked in {:.0} ms, {:?}; peak RSS while checking {}; largest memo table of one key {:.2} MiB",
                g.operations,
                g.keys,
                g.clients,
                g.info_operations,
                g.failed_operations,
                g.generate_ms,
                g.check_ms,
                g.verdict,
                g.peak_rss_bytes
                    .map(|b| format!("{:.0} MiB (VmHWM)", b as f64 / (1u64 << 20) as f64))
                    .unwrap_or_else(|| "not measurable here".into()),
                g.memo_peak_bytes as f64 / (1u64 << 20) as f64
            ),
            Err(e) => println!("generated kv history: {e}"),
        }
        for f in &wrong {
            println!("WRONG VERDICT: {} expected {:?}", f.name, f.expected);
        }
    }
    let generated_wrong = generated
        .as_ref()
        .is_ok_and(|g| g.verdict != Verdict::Linearizable)
        || appends.verdict != Verdict::Linearizable;
    if !wrong.is_empty() || generated_wrong {
        exit::FAIL
    } else {
        exit::PASS
    }
}

fn verdict_text(t: &FileTiming) -> &'static str {
    match (t.verdict, t.verdict == t.expected) {
        (Verdict::Linearizable, true) => "linearizable",
        (Verdict::NotLinearizable, true) => "not linearizable",
        _ => "WRONG",
    }
}

fn run_child() -> Result<GeneratedTiming, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let out = std::process::Command::new(exe)
        .args(["bench", "checker"])
        .env(CHILD_ENV, "1")
        .output()
        .map_err(|e| format!("cannot run the child benchmark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the child benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str::<serde_json::Value>(line)
        .map_err(|e| format!("unreadable child output ({e}): {line}"))
        .and_then(|v| parse_generated(&v).ok_or_else(|| format!("unreadable child output: {line}")))
}

fn parse_generated(v: &serde_json::Value) -> Option<GeneratedTiming> {
    let u = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    Some(GeneratedTiming {
        operations: u("operations")? as usize,
        keys: u("keys")? as usize,
        clients: u("clients")? as usize,
        info_operations: u("info_operations")? as usize,
        failed_operations: u("failed_operations")? as usize,
        generate_ms: f("generate_ms")?,
        check_ms: f("check_ms")?,
        verdict: match v.get("verdict")?.as_str()? {
            "linearizable" => Verdict::Linearizable,
            "not-linearizable" => Verdict::NotLinearizable,
            _ => Verdict::Unknown,
        },
        peak_rss_bytes: u("peak_rss_bytes"),
        memo_peak_bytes: u("memo_peak_bytes")? as usize,
    })
}
