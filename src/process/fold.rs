//! What a run's checks see of it while it goes: its observations and lifecycle changes, as
//! [`ObservationRecord`]s and [`LifecycleRecord`]s, and the [`Fold`]s that read them as they
//! arrive. They live below the simulator (which records them, `crate::sim::RunRecord`) so that
//! the families a scenario is loaded with can hand the simulator their folds through
//! `crate::scenario::Families` without the simulator naming a family.

use std::any::{Any, TypeId};
use std::sync::Arc;

use serde::Serialize;

use crate::process::{NodeId, Observation, Wire};

/// An observation with its global time and node.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObservationRecord {
    /// Order among observations and lifecycle records (they share one counter).
    pub seq: u64,
    /// Global simulated time.
    pub t_ns: u64,
    /// The observing node.
    pub node: NodeId,
    /// The fact.
    pub observation: Observation,
}

impl ObservationRecord {
    /// The fact if it is a `T` (a family's observation type, or [`crate::process::CommonObservation`]).
    pub fn get<T: Wire>(&self) -> Option<&T> {
        self.observation.downcast_ref()
    }
}

/// Lifecycle changes of a node.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleKind {
    /// Crashed.
    Crash,
    /// Restarted after a crash.
    Restart,
    /// Paused.
    Pause,
    /// Resumed.
    Resume,
}

impl LifecycleKind {
    /// The trace kind.
    pub fn name(self) -> &'static str {
        match self {
            LifecycleKind::Crash => "crash",
            LifecycleKind::Restart => "restart",
            LifecycleKind::Pause => "pause",
            LifecycleKind::Resume => "resume",
        }
    }
}

/// A node lifecycle change at a time.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LifecycleRecord {
    /// Order among observations and lifecycle records (they share one counter).
    pub seq: u64,
    /// Global simulated time.
    pub t_ns: u64,
    /// The node.
    pub node: NodeId,
    /// What happened.
    pub kind: LifecycleKind,
}

/// A check's reader of a run's observations and lifecycle records while the run goes, so that
/// what it needs is summarized as the facts arrive instead of kept until the run ends (a long
/// run's observations are most of its memory). The simulator feeds every observation and
/// lifecycle record to each fold, in their global `seq` order; at the end
/// [`Fold::finish`] hands over the summary, which `RunRecord::derived` then returns for its
/// type instead of building it from the record.
///
/// A fold may *consume* an observation: then the record does not keep it. Only observations no
/// other reader of the record needs may be consumed (Raft's replay consumes its log facts, and
/// keeps the commit facts when `no-decision`, which reads them, runs). Folds come from the families
/// (`family::Family::fold`, through `crate::scenario::Families::folds`), one per family at most, made for each run.
pub trait Fold: Send {
    /// Reads one observation; returns true if it is consumed (the record will not hold it).
    fn observation(&mut self, o: &ObservationRecord) -> bool;
    /// Reads one lifecycle record (the record keeps every one).
    fn lifecycle(&mut self, l: &LifecycleRecord);
    /// The summary, keyed by its type (the type `RunRecord::derived` is asked for).
    fn finish(self: Box<Self>) -> (TypeId, Arc<dyn Any + Send + Sync>);
}
