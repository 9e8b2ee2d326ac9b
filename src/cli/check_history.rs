//! `faultline check-history FILE [--format F] [--model M] [--json] [--step-limit N]
//! [--time-limit D]`: checks a history file for linearizability.
//!
//! Exit codes: 0 linearizable, 1 not linearizable, 3 unknown (a budget ran out), 2 unreadable
//! input (`file:line: what was found; expected ...`, or with `--json` the same as a JSON object
//! `{"file", "error": {"file", "line", "found", "expected", "message"}}` on stdout) or bad
//! usage.

use std::path::PathBuf;

use clap::Args;

use crate::check::linearizability::{
    Imported, Locator, ModelKind, Verdict, error_json, mib_to_bytes,
};
use crate::cli::exit;
use crate::history::{Format, edn, value_from_edn};
use crate::scenario::Duration;
use crate::wall::{elapsed_ms, wall_now};

/// Arguments of `faultline check-history`.
#[derive(Args, Debug)]
pub struct CheckHistoryArgs {
    /// The history file: faultline's history.jsonl, a Jepsen console log, EDN, or one EDN map per
    /// line.
    pub file: PathBuf,
    /// jsonl, jepsen-log, edn or edn-lines (default: guessed from the content and extension).
    #[arg(long, value_parser = |s: &str| s.parse::<Format>())]
    pub format: Option<Format>,
    /// register, cas-register, kv, mutex or multi-register (default: guessed from the functions).
    #[arg(long, value_parser = |s: &str| s.parse::<ModelKind>())]
    pub model: Option<ModelKind>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Work budget: model steps summed over every search of the check (the same verdict on
    /// any machine); when it runs out the verdict is unknown (exit 3).
    #[arg(long, default_value_t = crate::check::linearizability::DEFAULT_STEP_LIMIT)]
    pub step_limit: u64,
    /// Memory budget of one part's (one key's) search tables, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mib: u64,
    /// Optional wall-clock budget of the whole check, e.g. "10s" (reading excluded); when it
    /// runs out the verdict is unknown (exit 3). Off by default: it makes the verdict depend on
    /// the machine.
    #[arg(long, value_parser = Duration::parse)]
    pub time_limit: Option<Duration>,
    /// Starting value of the register(s) or of every key, as EDN (`nil`, `0`, `""`).
    #[arg(long)]
    pub initial: Option<String>,
    /// Check a key-value history as a whole instead of key by key.
    #[arg(long)]
    pub no_partition: bool,
    /// Read a failed cas as Porcupine does: it took effect and returned false (the value was not
    /// the expected one). Default: it did not take effect (Knossos).
    #[arg(long)]
    pub fail_cas_returns_false: bool,
}

/// Runs the command; returns the exit code.
pub fn check_history(args: &CheckHistoryArgs) -> u8 {
    keep_freed_memory();
    let file = args.file.display().to_string();
    // Bad input: text on stderr, or with --json a JSON object on stdout; exit 2 either way.
    let bad_input = |error: serde_json::Value| {
        if args.json {
            let value = serde_json::json!({ "file": file, "error": error });
            print_all(&(serde_json::to_string_pretty(&value).expect("serializes") + "\n"));
        } else {
            eprintln!("{}", error["message"].as_str().unwrap_or_default());
        }
        exit::BAD_INPUT
    };
    // Read as a stream: a history.jsonl never sits in memory as text.
    let (reader, size) = match std::fs::File::open(&args.file) {
        // The size sizes the history's tables (none if the file cannot say, e.g. a pipe).
        Ok(f) => {
            let size = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (std::io::BufReader::with_capacity(1 << 16, f), size)
        }
        Err(e) => {
            return bad_input(error_json(
                &file,
                None,
                &format!("cannot read: {e}"),
                "a readable file",
            ));
        }
    };
    let imported =
        match Imported::from_reader(Some(&args.file), reader, size, args.format, args.model) {
            Ok(i) => i,
            Err(e) => return bad_input(e.to_json(&file)),
        };
    let mut options = imported.options();
    options.step_limit = args.step_limit;
    options.time_limit = args.time_limit.map(Duration::to_std);
    options.memory_limit_bytes = mib_to_bytes(args.memory_limit_mib);
    options.partition = !args.no_partition;
    options.failed_cas_returns_false = args.fail_cas_returns_false;
    if let Some(text) = &args.initial {
        let value = edn::parse_all(text)
            .map_err(|e| e.to_string())
            .and_then(|forms| match forms.as_slice() {
                [(_, v)] => value_from_edn(v),
                _ => Err("not one value".into()),
            });
        match value {
            Ok(v) => options.initial = Some(v),
            Err(e) => {
                let error = error_json(
                    &file,
                    None,
                    &format!("--initial {text:?}: {e}"),
                    "one EDN value such as nil, 0 or \"\"",
                );
                return bad_input(error);
            }
        }
    }
    let start = wall_now();
    let report = match imported.check(&options) {
        Ok(r) => r,
        Err(e) => return bad_input(e.to_json(&file)),
    };
    let took_ms = elapsed_ms(start);
    // Written in one piece, ignoring a closed pipe (`| head`): the exit code still tells.
    let mut out = String::new();
    if args.json {
        let value = serde_json::json!({
            "file": args.file,
            "format": imported.format.name(),
            "check_ms": took_ms,
            "report": report,
        });
        out.push_str(&serde_json::to_string_pretty(&value).expect("reports serialize"));
        out.push('\n');
    } else {
        out.push_str(&format!(
            "{file}: {} [{} format, {took_ms} ms, {} steps]\n",
            report.summary(),
            imported.format,
            report.steps
        ));
        if let Some(c) = &report.counterexample {
            out.push_str(&c.render(&Locator::Line(&imported.history.lines)));
        }
    }
    print_all(&out);
    match report.verdict {
        Verdict::Linearizable => exit::PASS,
        Verdict::NotLinearizable => exit::FAIL,
        Verdict::Unknown => exit::UNKNOWN,
    }
}

/// Writes `text` to stdout in one piece, ignoring a closed pipe (`| head`): the exit code still
/// tells.
fn print_all(text: &str) {
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
}

/// Tells mimalloc (the `faultline` binary's allocator) to keep the memory a check frees instead
/// of giving it back to the operating system after its default delay (10 ms): each phase of a
/// check (reading, pairing, converting, the read mapping, the search) frees tables that the next
/// one allocates again, and memory given back is faulted in and zeroed afresh when reused (on a
/// 1,000,000-operation history, thousands of page faults and a fifth of the CPU). The peak is
/// the largest phase either way: freed memory is reused, not added to.
fn keep_freed_memory() {
    /// Never purge (`mi_option_purge_delay` = -1, mimalloc.h).
    const NEVER: std::ffi::c_long = -1;
    // SAFETY: sets one of mimalloc's global options to a documented value; mimalloc reads its
    // options atomically and allows setting them at any time.
    unsafe { libmimalloc_sys::mi_option_set(super::MI_OPTION_PURGE_DELAY, NEVER) };
}
