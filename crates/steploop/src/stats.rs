//! Loop statistics: counters, busy/poll time, utilization and timer lag percentiles.

use std::collections::VecDeque;
use std::time::Duration;

/// How many recent iterations the utilization window holds.
const WINDOW: usize = 256;
/// How many recent timer lags the percentiles are computed over.
const LAG_SAMPLES: usize = 1024;

/// A snapshot of the loop's statistics (see [`EventLoop::stats`](crate::EventLoop::stats)).
///
/// ```
/// let lp = steploop::EventLoop::new().unwrap();
/// lp.call_soon(|| {});
/// lp.run_until_idle().unwrap();
/// let s = lp.stats();
/// assert_eq!(s.callbacks, 1);
/// assert!(s.iterations >= 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// Iterations run.
    pub iterations: u64,
    /// Callbacks run.
    pub callbacks: u64,
    /// Timers that came due.
    pub timers: u64,
    /// fd events seen by the poll.
    pub io_events: u64,
    /// Total time spent waiting in the poll.
    pub poll_time: Duration,
    /// Total time spent running callbacks.
    pub busy_time: Duration,
    /// Busy share of wall time over the recent iterations (0.0–1.0), like Node's
    /// `eventLoopUtilization`.
    pub utilization: f64,
    /// The longest single callback.
    pub max_callback_time: Duration,
    /// Median lag from a timer's deadline to the iteration that ran it.
    pub lag_p50: Duration,
    /// 99th percentile of that lag.
    pub lag_p99: Duration,
    /// Waits that polled without blocking before they blocked (see
    /// [`BusyPoll`](crate::BusyPoll)).
    pub busy_polls: u64,
    /// Those of them that ended while still polling, without blocking.
    pub busy_poll_hits: u64,
}

/// Seconds to a `Duration`, saturating: NaN and negative give zero, too large (an infinite
/// timer lag, from a deadline of minus infinity) gives `Duration::MAX`.
fn saturating_duration(seconds: f64) -> Duration {
    if seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// The running totals behind [`Stats`]; updated once per iteration by the loop thread.
#[derive(Debug, Default)]
pub(crate) struct StatsState {
    pub(crate) totals: Stats,
    /// `(busy, wall)` seconds of recent iterations.
    window: VecDeque<(f64, f64)>,
    /// Recent timer lags, seconds.
    lags: VecDeque<f64>,
    /// `totals.max_callback_time` in seconds.
    max_cb: f64,
}

impl StatsState {
    pub(crate) fn record_lag(&mut self, lag: f64) {
        if self.lags.len() == LAG_SAMPLES {
            self.lags.pop_front();
        }
        self.lags.push_back(lag.max(0.0));
    }

    /// Counts one iteration. `wall` is the time since the previous entry of the utilization
    /// window; `None` for an iteration that did not read the clock (its time goes into the
    /// next entry).
    #[inline]
    pub(crate) fn record_iteration(&mut self, step: &crate::Step, max_cb: f64, wall: Option<f64>) {
        let t = &mut self.totals;
        t.iterations += 1;
        t.callbacks += step.callbacks as u64;
        t.timers += step.timers as u64;
        t.io_events += step.io_events as u64;
        // Most iterations of a busy loop neither poll nor read the clock: their times are
        // zero, and a `Duration` sum is not free (normalisation, overflow check).
        if !step.poll_time.is_zero() {
            t.poll_time += step.poll_time;
        }
        if !step.run_time.is_zero() {
            t.busy_time += step.run_time;
        }
        if max_cb > self.max_cb {
            self.max_cb = max_cb;
            t.max_callback_time = saturating_duration(max_cb);
        }
        let Some(wall) = wall else {
            return;
        };
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window
            .push_back((step.run_time.as_secs_f64(), wall.max(0.0)));
    }

    /// The statistics, with `unaccounted` seconds of callbacks run since the last clock
    /// read (back-to-back iterations that skipped it) added as busy time.
    pub(crate) fn snapshot(&self, unaccounted: f64) -> Stats {
        let mut s = self.totals;
        s.busy_time += saturating_duration(unaccounted);
        let (busy, wall) = self
            .window
            .iter()
            .fold((unaccounted, unaccounted), |(b, w), &(bi, wi)| {
                (b + bi, w + wi)
            });
        s.utilization = if wall > 0.0 {
            (busy / wall).min(1.0)
        } else {
            0.0
        };
        let mut lags: Vec<f64> = self.lags.iter().copied().collect();
        lags.sort_by(f64::total_cmp);
        let pct = |p: f64| -> Duration {
            if lags.is_empty() {
                return Duration::ZERO;
            }
            let i = ((lags.len() - 1) as f64 * p).round() as usize;
            saturating_duration(lags[i.min(lags.len() - 1)])
        };
        s.lag_p50 = pct(0.50);
        s.lag_p99 = pct(0.99);
        s
    }
}
