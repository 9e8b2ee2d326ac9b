//! The simulated world: one madsim runtime per run, driven by a scenario and a seed.
//!
//! madsim supplies the executor (seeded random scheduling of ready tasks), virtual time (which
//! the central task brings to the current event's time whenever madsim runs a task) and the
//! node lifecycle (kill, restart, pause, resume; a node's driver task owns its process).
//! faultline supplies everything a fault touches: the network ([`network`]), disks ([`disk`],
//! defined below the process interface in [`crate::process::disk`]), clocks ([`clock`]) and the fault schedule ([`faults`]), all in [`world::World`]. See
//! `../shared/ARCHITECTURE.md`, part 2.
//!
//! The files, one concept each (as turmoil splits `sim.rs`, `world.rs`, `host.rs`):
//!
//! - [`run`]: the run loop: building the runtime and the world, the central task, the end of
//!   the run; seeds and [`RunOptions`];
//! - [`world`]: the world's state, its event queue, delivery and applying a handler's effects;
//! - [`host`]: one node's state that outlives its process (status, inbox, timers, disk, clock)
//!   and its lifecycle (boot, crash, restart, pause, resume, clock changes);
//! - [`nemesis`]: applying planned faults at their time and undoing them;
//! - [`faults`]: planning the fault timeline before the run;
//! - [`network`], [`disk`], [`clock`]: what faults act on; [`topology`]: the nodes (defined
//!   with the scenario, [`crate::scenario::topology`]);
//! - [`node`]: the driver task that owns a node's process; [`trace`]: the trace and its hash;
//! - [`record`]: the [`RunRecord`] a run hands to checkers and reports.

pub mod clock;
pub mod export;
pub mod faults;
pub mod host;
pub mod nemesis;
pub mod network;
pub mod node;
mod queue;
pub mod record;
pub mod run;
pub mod trace;
pub mod world;

use std::sync::{Mutex, MutexGuard};

/// Disks live below the process interface ([`crate::process::disk`]); this path stays for callers.
pub use crate::process::disk;
/// The nodes of a run live with the scenario ([`crate::scenario::topology`]); this path stays for
/// callers.
pub use crate::scenario::topology;

pub use host::is_up;
pub use record::{
    Fold, Halt, LifecycleKind, LifecycleRecord, LimitExceeded, ObservationRecord, PartitionRecord,
    Records, RunRecord, Stats,
};
pub use run::{RunOptions, RunProgress, run, stream_rng};
pub use world::{EventLimits, panic_message};

/// Locks the world or a process cell; a poisoned lock (a panic elsewhere) is still usable
/// because every transition is applied whole or not at all before any panic can occur (handler
/// panics are caught inside the lock and halt the run).
pub(crate) fn lock<T: ?Sized>(cell: &Mutex<T>) -> MutexGuard<'_, T> {
    cell.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
