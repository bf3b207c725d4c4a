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
///
/// ```
/// assert_eq!(steploop::MIN_SCHEDULED_FOR_COMPACTION, 100);
/// ```
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
///
/// ```
/// # use std::{cell::Cell, rc::Rc};
/// # use steploop::{Callback, TieBreak, TimerHeap};
/// # #[derive(Clone, Debug, PartialEq)]
/// # struct Job(&'static str, Rc<Cell<bool>>);
/// # impl Callback for Job {
/// #     fn is_cancelled(&self) -> bool {
/// #         self.1.get()
/// #     }
/// # }
/// # fn job(name: &'static str) -> Job {
/// #     Job(name, Rc::new(Cell::new(false)))
/// # }
/// let mut heap = TimerHeap::new(TieBreak::Fifo);
/// heap.push(2.0, job("b"));
/// heap.push(1.0, job("a"));
/// heap.push(2.0, job("c"));
/// let mut order = Vec::new();
/// while let Some((_, cb)) = heap.pop_due(f64::INFINITY) {
///     order.push(cb.0);
/// }
/// assert_eq!(order, ["a", "b", "c"]);
/// ```
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
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let heap: TimerHeap<Job> = TimerHeap::new(TieBreak::Asyncio);
    /// assert!(heap.is_empty());
    /// ```
    pub fn new(tie: TieBreak) -> Self {
        TimerHeap {
            heap: Vec::new(),
            cancelled: 0,
            seq: 0,
            tie,
        }
    }

    /// Number of timers in the heap, cancelled ones included.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// let cancelled = job("x");
    /// heap.push(1.0, cancelled.clone());
    /// cancelled.1.set(true); // cancellation is lazy: still counted
    /// assert_eq!(heap.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// assert!(heap.is_empty());
    /// heap.push(1.0, job("x"));
    /// assert!(!heap.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Inserts a timer due at `when` (loop time, seconds).
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// heap.push(3.0, job("late"));
    /// heap.push(1.0, job("early"));
    /// assert_eq!(heap.first_deadline(), Some(1.0));
    /// ```
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
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// let jobs: Vec<Job> = (0..200).map(|_| job("t")).collect();
    /// for (i, j) in jobs.iter().enumerate() {
    ///     heap.push(i as f64, j.clone());
    /// }
    /// // Cancel the 150 *last* timers: none is at the top, only the count triggers compaction.
    /// for j in &jobs[50..] {
    ///     j.1.set(true);
    ///     heap.note_cancelled();
    /// }
    /// let mut dropped = Vec::new();
    /// heap.drop_cancelled(&mut dropped);
    /// assert_eq!((heap.len(), dropped.len()), (50, 150));
    /// ```
    pub fn note_cancelled(&mut self) {
        self.cancelled += 1;
    }

    /// Deadline of the timer at the top of the heap.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// assert_eq!(heap.first_deadline(), None);
    /// heap.push(4.5, job("x"));
    /// assert_eq!(heap.first_deadline(), Some(4.5));
    /// ```
    pub fn first_deadline(&self) -> Option<f64> {
        self.heap.first().map(|e| e.when)
    }

    /// Step 1 of an iteration: drop cancelled timers. If more than
    /// [`MIN_SCHEDULED_FOR_COMPACTION`] timers are scheduled and more than half are cancelled,
    /// rebuild the heap without them; otherwise pop cancelled timers off the top.
    /// Returns the dropped callbacks so the caller can drop them outside any lock.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// let (a, b) = (job("a"), job("b"));
    /// heap.push(1.0, a.clone());
    /// heap.push(2.0, b.clone());
    /// a.1.set(true);
    /// heap.note_cancelled();
    /// let mut dropped = Vec::new();
    /// heap.drop_cancelled(&mut dropped); // pops the cancelled head
    /// assert_eq!(dropped, [a]);
    /// assert_eq!(heap.first_deadline(), Some(2.0));
    /// ```
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
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// heap.push(1.0, job("a"));
    /// assert!(heap.pop_due(1.0).is_none()); // due means `deadline < end_time`
    /// assert_eq!(heap.pop_due(1.5).map(|(when, cb)| (when, cb.0)), Some((1.0, "a")));
    /// ```
    pub fn pop_due(&mut self, end_time: f64) -> Option<(f64, C)> {
        if self.heap.first()?.when >= end_time {
            return None;
        }
        let e = self.pop()?;
        e.cb.unscheduled();
        Some((e.when, e.cb))
    }

    /// Removes every timer (for closing a loop), returning their callbacks.
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// heap.push(1.0, job("a"));
    /// heap.push(2.0, job("b"));
    /// assert_eq!(heap.clear().len(), 2);
    /// assert!(heap.is_empty());
    /// ```
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
    ///
    /// ```
    /// # use std::{cell::Cell, rc::Rc};
    /// # use steploop::{Callback, TieBreak, TimerHeap};
    /// # #[derive(Clone, Debug, PartialEq)]
    /// # struct Job(&'static str, Rc<Cell<bool>>);
    /// # impl Callback for Job {
    /// #     fn is_cancelled(&self) -> bool {
    /// #         self.1.get()
    /// #     }
    /// # }
    /// # fn job(name: &'static str) -> Job {
    /// #     Job(name, Rc::new(Cell::new(false)))
    /// # }
    /// let mut heap = TimerHeap::new(TieBreak::Fifo);
    /// heap.push(2.0, job("b"));
    /// heap.push(1.0, job("a"));
    /// let mut names: Vec<_> = heap.iter().map(|j| j.0).collect();
    /// names.sort();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
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
