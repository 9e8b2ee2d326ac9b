//! The protocol families faultline ships, and the list that registers them.
//!
//! Each family is one folder (see [`crate::family`] for the interface): its protocols are sans-IO
//! state machines ([`crate::process::Process`]) with their own message, timer and observation
//! types, which the simulator carries erased ([`crate::payload::Payload`]); its workloads, checks
//! and planted bugs live beside them. [`FAMILIES`] is the one list that names them all.

pub mod broadcast;
pub mod kv;
pub mod lock;
pub mod paxos;
pub mod quorum;
pub mod raft;
pub mod replicated;
pub mod testing;

use crate::family::{Family, Registry};

/// Every built-in family, in `faultline list` order. Adding a family: one line here.
pub static FAMILIES: &[&Family] = &[
    &kv::FAMILY,
    &raft::FAMILY,
    &paxos::FAMILY,
    &broadcast::FAMILY,
    &lock::FAMILY,
    &quorum::FAMILY,
    &testing::FAMILY,
];

/// A registry of the built-in families.
pub fn builtin() -> Registry {
    Registry::new(FAMILIES.to_vec())
}
