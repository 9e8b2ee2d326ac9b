//! `faultline check-history FILE [--format F] [--model M] [--json] [--time-limit D]`: checks a
//! history file for linearizability.
//!
//! Exit codes: 0 linearizable, 1 not linearizable, 3 unknown (a budget ran out), 2 unreadable
//! input (`file:line: what was found; expected ...`) or bad usage.

use std::path::PathBuf;

use clap::Args;

use crate::check::linearizability::{Imported, Locator, ModelKind, Verdict};
use crate::cli::{elapsed_ms, exit, wall_now};
use crate::history::{Format, edn, value_from_edn};
use crate::scenario::Duration;

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
    /// Wall-clock budget, e.g. "10s"; when it runs out the verdict is unknown (exit 3).
    #[arg(long, value_parser = Duration::parse, default_value = "5m")]
    pub time_limit: Duration,
    /// Memory budget of the search tables, in MiB.
    #[arg(long, default_value_t = 4096)]
    pub memory_limit_mib: u64,
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
    let file = args.file.display();
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{file}: cannot read: {e}");
            return exit::BAD_INPUT;
        }
    };
    let imported = match Imported::read(Some(&args.file), &bytes, args.format, args.model) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{}", e.located(&file.to_string()));
            return exit::BAD_INPUT;
        }
    };
    let mut options = imported.options();
    options.time_limit = Some(args.time_limit.to_std());
    options.memory_limit_bytes = (args.memory_limit_mib as usize).saturating_mul(1 << 20);
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
                eprintln!("--initial {text:?}: {e}; expected one EDN value such as nil, 0 or \"\"");
                return exit::BAD_INPUT;
            }
        }
    }
    let start = wall_now();
    let report = match imported.check(&options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", e.located(&file.to_string()));
            return exit::BAD_INPUT;
        }
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
            "{file}: {} [{} format, {took_ms} ms]\n",
            report.summary(),
            imported.format
        ));
        if let Some(c) = &report.counterexample {
            out.push_str(&c.render(&Locator::Line(&imported.history.lines)));
        }
    }
    let _ = std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes());
    match report.verdict {
        Verdict::Linearizable => exit::PASS,
        Verdict::NotLinearizable => exit::FAIL,
        Verdict::Unknown => exit::UNKNOWN,
    }
}
