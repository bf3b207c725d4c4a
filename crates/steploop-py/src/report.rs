//! `StepReport`: the immutable report of one `run_once`.

use pyo3::prelude::*;

/// What one iteration did. Returned by `Loop.run_once()`.
#[pyclass(frozen, module = "steploop", get_all, freelist = 16)]
#[derive(Debug)]
pub struct StepReport {
    /// Handles run (cancelled ones skipped are not counted).
    pub callbacks: usize,
    /// Timers that came due in this step.
    pub timers: usize,
    /// fd events reported by the poll.
    pub io_events: usize,
    /// Seconds spent waiting in the poll.
    pub poll_time: f64,
    /// Seconds spent running callbacks.
    pub run_time: f64,
    /// Callbacks ready after the step.
    pub pending: usize,
    /// `loop.time()` of the earliest pending timer, or None.
    pub next_deadline: Option<f64>,
}

impl From<steploop::Step> for StepReport {
    fn from(s: steploop::Step) -> Self {
        StepReport {
            callbacks: s.callbacks,
            timers: s.timers,
            io_events: s.io_events,
            poll_time: s.poll_time.as_secs_f64(),
            run_time: s.run_time.as_secs_f64(),
            pending: s.pending,
            next_deadline: s.next_deadline,
        }
    }
}

#[pymethods]
impl StepReport {
    fn __repr__(&self) -> String {
        let next = self
            .next_deadline
            .map_or_else(|| "None".to_string(), |d| format!("{d:.6}"));
        format!(
            "StepReport(callbacks={}, timers={}, io_events={}, poll_time={:.6}, run_time={:.6}, \
             pending={}, next_deadline={})",
            self.callbacks,
            self.timers,
            self.io_events,
            self.poll_time,
            self.run_time,
            self.pending,
            next
        )
    }

    fn __eq__(&self, other: &Self) -> bool {
        (self.callbacks, self.timers, self.io_events, self.pending)
            == (
                other.callbacks,
                other.timers,
                other.io_events,
                other.pending,
            )
            && self.poll_time == other.poll_time
            && self.run_time == other.run_time
            && self.next_deadline == other.next_deadline
    }
}
