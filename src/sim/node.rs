//! The generic driver: runs any [`AnyProcess`] on a madsim node.
//!
//! A driver is the only task of its madsim node. On its first poll it builds a fresh process and
//! boots it (`on_start`); on every later poll it drains the node's inbox through the process and
//! parks until the world queues another input. Killing the madsim node (a crash) drops the driver
//! and with it the process's volatile state; madsim's `restart` re-runs the node's init, which
//! creates a new driver; madsim's `pause` simply stops polling it, so inputs queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use crate::process::{AnyProcess, NodeId};
use crate::sim::world::World;

/// Builds a fresh process for a node (at boot and at every restart).
pub type ProcessFactory = Arc<dyn Fn() -> Box<dyn AnyProcess> + Send + Sync>;

/// The driver future of one node incarnation. It never completes.
pub struct Driver {
    world: Arc<Mutex<World>>,
    node: NodeId,
    factory: ProcessFactory,
    process: Option<Box<dyn AnyProcess>>,
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

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut world = crate::sim::lock(&this.world);
        let process = match &mut this.process {
            Some(process) => process,
            None => {
                let process = this.process.insert((this.factory)());
                world.boot(this.node, process.as_mut());
                process
            }
        };
        world.drain_inbox(this.node, process.as_mut());
        world.park_node(this.node, cx.waker());
        world.driver_idle();
        Poll::Pending
    }
}
