//! The world's event queue: a binary min-heap of [`Scheduled`] events ordered by
//! `(t_ns, seq)`.
//!
//! Every sequence number is unique, so the order is total and any correct priority queue pops
//! the same events in the same order: this one gives exactly the order `BinaryHeap` gave.
//!
//! Why not `std::collections::BinaryHeap`: its `push` writes the new element at the end of the
//! vector and then reads it straight back (to hold it while sifting up). The element was just
//! written field by field and is read back in wider loads, which the processor cannot forward
//! from its store buffer (`perf` put about 4% of the kernel ping-pong's samples on that one
//! load). Here `push` keeps the new element's key in registers while it moves
//! the parents down, and writes the element once, where it ends up; `pop` does the same for the
//! element it sifts down from the root.

use crate::sim::world::Scheduled;

/// A min-heap of events by `(t_ns, seq)`. See the module docs.
#[derive(Default)]
pub(super) struct EventQueue {
    heap: Vec<Scheduled>,
}

/// The order of the queue (earliest first; `seq` breaks ties, and no two events share one).
#[inline(always)]
fn before(a: &Scheduled, t_ns: u64, seq: u64) -> bool {
    (a.t_ns, a.seq) < (t_ns, seq)
}

impl EventQueue {
    /// Queues `item`.
    #[inline(always)]
    pub(super) fn push(&mut self, item: Scheduled) {
        let (t_ns, seq) = (item.t_ns, item.seq);
        let mut pos = self.heap.len();
        self.heap.push(item);
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if before(&self.heap[parent], t_ns, seq) {
                break;
            }
            self.heap[pos] = self.heap[parent];
            pos = parent;
        }
        if pos + 1 != self.heap.len() {
            self.heap[pos] = item;
        }
    }

    /// The earliest event, if any.
    #[inline]
    pub(super) fn peek(&self) -> Option<&Scheduled> {
        self.heap.first()
    }

    /// Takes the earliest event out.
    #[inline]
    pub(super) fn pop(&mut self) -> Option<Scheduled> {
        let last = self.heap.pop()?;
        let Some(&top) = self.heap.first() else {
            return Some(last);
        };
        // Sift `last` down from the root's place, moving the smaller child up each step.
        let len = self.heap.len();
        let mut pos = 0;
        loop {
            let mut child = 2 * pos + 1;
            if child >= len {
                break;
            }
            let right = child + 1;
            if right < len {
                let r = &self.heap[right];
                if before(r, self.heap[child].t_ns, self.heap[child].seq) {
                    child = right;
                }
            }
            if before(&last, self.heap[child].t_ns, self.heap[child].seq) {
                break;
            }
            self.heap[pos] = self.heap[child];
            pos = child;
        }
        self.heap[pos] = last;
        Some(top)
    }

    /// Every queued event, in no particular order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Scheduled> {
        self.heap.iter()
    }

    /// How many events are queued.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::world::Event;
    use proptest::prelude::*;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    fn event(t_ns: u64, seq: u64) -> Scheduled {
        Scheduled {
            t_ns,
            seq,
            event: Event::FaultStart { index: seq as u32 },
        }
    }

    proptest! {
        /// Any interleaving of pushes and pops gives the order of std's `BinaryHeap` (the
        /// queue's previous implementation), so runs and trace hashes are unchanged.
        #[test]
        fn pops_in_the_order_of_std_binary_heap(
            ops in proptest::collection::vec((any::<bool>(), 0u64..20), 0..300)
        ) {
            let mut queue = EventQueue::default();
            let mut reference = BinaryHeap::new();
            let mut seq = 0;
            for (push, t_ns) in ops {
                if push {
                    queue.push(event(t_ns, seq));
                    reference.push(Reverse((t_ns, seq)));
                    seq += 1;
                } else {
                    let got = queue.pop().map(|s| (s.t_ns, s.seq));
                    prop_assert_eq!(got, reference.pop().map(|Reverse(k)| k));
                }
                prop_assert_eq!(queue.peek().map(|s| (s.t_ns, s.seq)),
                    reference.peek().map(|Reverse(k)| *k));
                prop_assert_eq!(queue.len(), reference.len());
            }
            while let Some(Reverse(k)) = reference.pop() {
                prop_assert_eq!(queue.pop().map(|s| (s.t_ns, s.seq)), Some(k));
            }
            prop_assert!(queue.pop().is_none());
        }
    }
}
