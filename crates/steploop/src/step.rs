//! [`Step`]: the report of one iteration.

use std::time::Duration;

/// What one iteration did (returned by [`EventLoop::run_once`](crate::EventLoop::run_once)).
///
/// ```
/// let lp = steploop::EventLoop::new().unwrap();
/// lp.call_soon(|| {});
/// let step = lp.run_once(Some(std::time::Duration::ZERO)).unwrap();
/// assert_eq!(step.callbacks, 1);
/// assert_eq!(step.pending, 0);
/// assert_eq!(step.next_deadline, None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Step {
    /// Callbacks run (cancelled ones skipped are not counted).
    pub callbacks: usize,
    /// Timers that came due and were moved to the ready queue.
    pub timers: usize,
    /// fd events reported by the poll (wake-ups not counted).
    pub io_events: usize,
    /// Time spent waiting in the poll.
    pub poll_time: Duration,
    /// Time spent running callbacks.
    pub run_time: Duration,
    /// Callbacks ready after the step (they run in the next one).
    pub pending: usize,
    /// Loop time (seconds, [`EventLoop::time`](crate::EventLoop::time)) of the earliest
    /// pending timer, if any.
    pub next_deadline: Option<f64>,
}
