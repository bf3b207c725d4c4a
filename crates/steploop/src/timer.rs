//! The timer heap: deadlines in loop time (`f64` seconds), lazy cancellation, and asyncio's
//! compaction rule.
//!
//! The heap is laid out and reordered exactly as Python's `heapq` does it (same sift-up and
//! sift-down), so that with [`TieBreak::Asyncio`] timers with *equal* deadlines come out in the
//! very order asyncio gives them — which is not their scheduling order. With
//! [`TieBreak::Fifo`] the key is `(deadline, sequence)` and equal deadlines run first-in,
//! first-out (what the Rust API uses).

use crate::Callback;

/// Below this many scheduled timers the heap is never rebuilt (asyncio's
/// `_MIN_SCHEDULED_TIMER_HANDLES`).
pub const MIN_SCHEDULED_FOR_COMPACTION: usize = 100;

/// How equal deadlines are ordered.
///
/// ```
/// use steploop::TieBreak;
/// assert_ne!(TieBreak::Fifo, TieBreak::Asyncio);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TieBreak {
    /// Equal deadlines run in scheduling order.
    Fifo,
    /// Equal deadlines run in the order Python's `heapq` gives (asyncio's exact behaviour).
    Asyncio,
}

#[derive(Debug)]
struct Entry<C> {
    when: f64,
    seq: u64,
    cb: C,
}

/// A min-heap of timers. Only the loop thread touches it (under the core's lock).
#[derive(Debug)]
pub struct TimerHeap<C> {
    heap: Vec<Entry<C>>,
    /// Timers cancelled while still in the heap (asyncio's `_timer_cancelled_count`).
    cancelled: usize,
    seq: u64,
    tie: TieBreak,
}

impl<C: Callback> TimerHeap<C> {
    /// An empty heap.
    pub fn new(tie: TieBreak) -> Self {
        TimerHeap {
            heap: Vec::new(),
            cancelled: 0,
            seq: 0,
            tie,
        }
    }

    /// Number of timers in the heap, cancelled ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Inserts a timer due at `when` (loop time, seconds).
    pub fn push(&mut self, when: f64, cb: C) {
        self.seq += 1;
        self.heap.push(Entry {
            when,
            seq: self.seq,
            cb,
        });
        let last = self.heap.len() - 1;
        self.sift_down(0, last);
    }

    /// Records that a timer still in the heap was cancelled.
    pub fn note_cancelled(&mut self) {
        self.cancelled += 1;
    }

    /// Deadline of the timer at the top of the heap.
    pub fn first_deadline(&self) -> Option<f64> {
        self.heap.first().map(|e| e.when)
    }

    /// Step 1 of an iteration: drop cancelled timers. If more than
    /// [`MIN_SCHEDULED_FOR_COMPACTION`] timers are scheduled and more than half are cancelled,
    /// rebuild the heap without them; otherwise pop cancelled timers off the top.
    /// Returns the dropped callbacks so the caller can drop them outside any lock.
    pub fn drop_cancelled(&mut self, out: &mut Vec<C>) {
        let n = self.heap.len();
        if n > MIN_SCHEDULED_FOR_COMPACTION && self.cancelled * 2 > n {
            let mut kept = Vec::with_capacity(n - self.cancelled.min(n));
            for e in self.heap.drain(..) {
                if e.cb.is_cancelled() {
                    e.cb.unscheduled();
                    out.push(e.cb);
                } else {
                    kept.push(e);
                }
            }
            self.heap = kept;
            self.heapify();
            self.cancelled = 0;
        } else {
            while self.heap.first().is_some_and(|e| e.cb.is_cancelled()) {
                self.cancelled = self.cancelled.saturating_sub(1);
                if let Some(e) = self.pop() {
                    e.cb.unscheduled();
                    out.push(e.cb);
                }
            }
        }
    }

    /// Pops the top timer if it is due before `end_time` (`deadline < end_time`, asyncio's
    /// `handle._when >= end_time: break`). Returns its deadline and callback.
    pub fn pop_due(&mut self, end_time: f64) -> Option<(f64, C)> {
        if self.heap.first()?.when >= end_time {
            return None;
        }
        let e = self.pop()?;
        e.cb.unscheduled();
        Some((e.when, e.cb))
    }

    /// Removes every timer (for closing a loop), returning their callbacks.
    pub fn clear(&mut self) -> Vec<C> {
        self.cancelled = 0;
        self.heap
            .drain(..)
            .map(|e| {
                e.cb.unscheduled();
                e.cb
            })
            .collect()
    }

    /// Iterates over the scheduled callbacks (in heap order).
    pub fn iter(&self) -> impl Iterator<Item = &C> {
        self.heap.iter().map(|e| &e.cb)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        let (a, b) = (&self.heap[a], &self.heap[b]);
        match self.tie {
            TieBreak::Asyncio => a.when < b.when,
            TieBreak::Fifo => a.when < b.when || (a.when == b.when && a.seq < b.seq),
        }
    }

    fn pop(&mut self) -> Option<Entry<C>> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.heap[0], last);
        self.sift_up(0);
        Some(top)
    }

    fn heapify(&mut self) {
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_up(i);
        }
    }

    /// `heapq._siftdown`: move the item at `pos` towards the root while it is smaller than
    /// its parent.
    fn sift_down(&mut self, start: usize, mut pos: usize) {
        while pos > start {
            let parent = (pos - 1) >> 1;
            if self.less(pos, parent) {
                self.heap.swap(pos, parent);
                pos = parent;
            } else {
                break;
            }
        }
    }

    /// `heapq._siftup`: move the item at `pos` down to a leaf along the smaller children
    /// (the right one on ties), then back up with `sift_down`.
    fn sift_up(&mut self, mut pos: usize) {
        let end = self.heap.len();
        let start = pos;
        let mut child = 2 * pos + 1;
        while child < end {
            let right = child + 1;
            if right < end && !self.less(child, right) {
                child = right;
            }
            self.heap.swap(pos, child);
            pos = child;
            child = 2 * pos + 1;
        }
        self.sift_down(start, pos);
    }
}
