//! The generic driver: boots any [`AnyProcess`](crate::process::AnyProcess) on a madsim node.
//!
//! A driver is the only task of its madsim node. On its first poll it builds a fresh process
//! and hands it to the world, which boots it (`on_start`, then whatever queued for it) and
//! owns it from then on: the world's central task calls the process's handlers directly, so
//! delivering an event costs no task switch, lock or reference count. A crash drops the
//! process (its volatile state) and kills the madsim node, and with it the driver; madsim's
//! `restart` re-runs the node's init, which creates a new driver that boots a new process. A
//! paused node's inputs queue in the world until it resumes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::process::NodeId;
use crate::sim::world::World;

pub use crate::process::ProcessFactory;

/// The driver future of one node incarnation. It never completes.
pub struct Driver {
    world: Arc<Mutex<World>>,
    node: NodeId,
    factory: ProcessFactory,
    booted: bool,
}

impl Driver {
    /// A driver for `node`; nothing runs until madsim polls it.
    pub fn new(world: Arc<Mutex<World>>, node: NodeId, factory: ProcessFactory) -> Driver {
        Driver {
            world,
            node,
            factory,
            booted: false,
        }
    }
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        if !this.booted {
            this.booted = true;
            let process = (this.factory)();
            let mut world = crate::sim::lock(&this.world);
            world.boot(this.node, process);
            world.driver_idle();
        }
        // From now on the central task calls the process's handlers directly; nothing wakes
        // this task again. It lives only until madsim kills the node.
        Poll::Pending
    }
}
