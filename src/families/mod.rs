//! The protocol families faultline ships, and the list that registers them.
//!
//! Each family is one folder (see [`crate::family`] for the interface): its protocols are sans-IO
//! state machines ([`crate::process::Process`]) with their own message, timer and observation
//! types, which the simulator carries erased ([`crate::payload::Payload`]); its workloads, checks
//! and planted bugs live beside them. [`FAMILIES`] is the one list that names them all.

pub mod balancing;
pub mod broadcast;
pub mod kv;
pub mod lock;
pub mod narrate;
pub mod paxos;
pub mod quorum;
pub mod raft;
pub mod registry;
pub mod replicated;
pub mod testing;

use crate::family::{Family, OptionError, Registry};
use crate::scenario::Duration;

/// Longest duration any family option accepts (1 hour): bounds timers, leases and back-off.
pub const MAX_OPTION_DURATION: Duration = Duration::from_secs(3600);

/// Pushes an error at `key` if `value` is not within `(0, MAX_OPTION_DURATION]` (or
/// `[0, MAX_OPTION_DURATION]` when `zero_ok`).
pub fn check_duration(errors: &mut Vec<OptionError>, key: &str, value: Duration, zero_ok: bool) {
    check_duration_from(errors, key, value, Duration(if zero_ok { 0 } else { 1 }));
}

/// Pushes an error at `key` if `value` is not within `[min, MAX_OPTION_DURATION]`.
pub fn check_duration_from(
    errors: &mut Vec<OptionError>,
    key: &str,
    value: Duration,
    min: Duration,
) {
    if value < min || value > MAX_OPTION_DURATION {
        let low = match min.as_nanos() {
            0 => "0s".to_string(),
            1 => "a positive duration".to_string(),
            _ => min.to_string(),
        };
        errors.push(OptionError::at(
            key,
            format!("expected from {low} to {MAX_OPTION_DURATION}, found {value}"),
        ));
    }
}

/// Reads the incarnation counter under `key` (0 if absent), stores and syncs the next one, and
/// returns the one read: a node's boot number, so its history process ids (or request ids)
/// stay unique across restarts. (The key-value client in `families::kv::client` does the same
/// inline.)
pub fn next_incarnation(disk: &mut crate::process::disk::Disk, key: &'static str) -> u64 {
    let epoch = disk
        .read(key)
        .and_then(|b| std::str::from_utf8(&b).ok()?.parse().ok())
        .unwrap_or(0);
    disk.write(key, (epoch + 1).to_string());
    disk.sync();
    epoch
}

/// Every built-in family, in `faultline list` order. Adding a family: one line here.
pub static FAMILIES: &[&Family] = &[
    &kv::FAMILY,
    &raft::FAMILY,
    &paxos::FAMILY,
    &broadcast::FAMILY,
    &lock::FAMILY,
    &registry::FAMILY,
    &quorum::FAMILY,
    &balancing::FAMILY,
    &testing::FAMILY,
];

/// A registry of the built-in families.
pub fn builtin() -> Registry {
    Registry::new(FAMILIES.to_vec())
}
