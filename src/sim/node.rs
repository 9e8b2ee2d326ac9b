//! The generic driver: holds any [`AnyProcess`] on a madsim node.
//!
//! A driver is the only task of its madsim node and owns the node's process object. On its first
//! poll it builds a fresh process and boots it (`on_start`, then whatever queued for it); after
//! that the world's central task calls the process's handlers directly through a weak handle,
//! so delivering an event costs no task switch. Killing the madsim node (a crash) drops the
//! driver and with it the process's volatile state; madsim's `restart` re-runs the node's init,
//! which creates a new driver that boots a new process. A paused node's inputs queue in the
//! world until it resumes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::process::NodeId;
use crate::sim::host::ProcessCell;
use crate::sim::world::World;

pub use crate::process::ProcessFactory;

/// The driver future of one node incarnation. It never completes.
pub struct Driver {
    world: Arc<Mutex<World>>,
    node: NodeId,
    factory: ProcessFactory,
    process: Option<Arc<ProcessCell>>,
}

impl Driver {
    /// A driver for `node`; nothing runs until madsim polls it.
    pub fn new(world: Arc<Mutex<World>>, node: NodeId, factory: ProcessFactory) -> Driver {
        Driver {
            world,
            node,
            factory,
            process: None,
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.process.is_none() {
            let cell = Arc::new(Mutex::new((this.factory)()));
            let mut world = crate::sim::lock(&this.world);
            world.boot(this.node, &cell);
            world.driver_idle();
            this.process = Some(cell);
        }
        // From now on the central task calls the process's handlers directly; nothing wakes
        // this task again. It lives only to own the process until madsim kills the node.
        Poll::Pending
    }
}
