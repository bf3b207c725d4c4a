//! Busy polling: how long a wait that may block first polls without blocking ([`BusyPoll`]).

use std::sync::OnceLock;
use std::time::Duration;

/// The adaptive busy-poll window of one reactor: how long a wait that may block first polls
/// without blocking.
///
/// A thread that blocks in `epoll_wait` is put to sleep, and when an event comes it has to be
/// woken and scheduled again. On a virtual machine a CPU with nothing to run halts, and waking
/// it goes through the hypervisor: on the 2-core VM the benchmarks run on, that sleep and
/// wake-up is most of the round trip of a request/response exchange over loopback (an echo
/// with one connection: 52% of the server's time was `finish_task_switch` and the wake-up).
/// Polling with a zero timeout for a few microseconds before blocking catches the next event
/// while the thread is still running.
///
/// Spinning only pays when the next event is near, so the window adapts as KVM's halt
/// polling does (`grow_halt_poll_ns`/`shrink_halt_poll_ns` in `virt/kvm/kvm_main.c`):
/// - a wait that ended within the window: the window stays;
/// - a wait that ended after the window but within the limit: spinning longer would have
///   caught it, so the window doubles (from [`BusyPoll::GROW_START`]), up to the limit;
/// - a wait longer than the limit: the window halves, and drops to zero below `GROW_START`.
///
/// So a loop whose waits are long (an idle server, timers milliseconds apart) never spins,
/// and a loop in a fast request/response exchange spins at most `limit` per wait.
///
/// ```
/// use std::time::Duration;
/// use steploop::BusyPoll;
/// let us = Duration::from_micros;
/// let mut busy = BusyPoll::new(us(100));
/// assert_eq!(busy.window(), Duration::ZERO); // nothing learnt yet: block at once
/// busy.record(us(30)); // the event came 30 µs into a blocking wait
/// assert_eq!(busy.window(), us(10));
/// busy.record(us(30)); // spun 10 µs, then blocked: spin longer
/// busy.record(us(30));
/// assert_eq!(busy.window(), us(40));
/// busy.record(us(30)); // caught while spinning: keep the window
/// assert_eq!(busy.window(), us(40));
/// busy.record(Duration::from_millis(5)); // a long wait: spin less
/// assert_eq!(busy.window(), us(20));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    limit: Duration,
    window: Duration,
}

impl BusyPoll {
    /// The default limit: enough for a request/response exchange over loopback, where
    /// the other side answers within tens of microseconds.
    ///
    /// ```
    /// assert_eq!(steploop::BusyPoll::DEFAULT_LIMIT.as_micros(), 100);
    /// ```
    pub const DEFAULT_LIMIT: Duration = Duration::from_micros(100);

    /// The limit of a new reactor: [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT), or zero when this
    /// process can run on one CPU only (`available_parallelism`, which counts the CPU
    /// affinity mask and cgroup quotas): there, whatever the loop waits for cannot run while
    /// it spins, as Go's runtime also reasons before it spins. Worked out once per process.
    ///
    /// ```
    /// use steploop::BusyPoll;
    /// let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    /// let expected = if cpus > 1 { BusyPoll::DEFAULT_LIMIT } else { std::time::Duration::ZERO };
    /// assert_eq!(BusyPoll::default_limit(), expected);
    /// ```
    pub fn default_limit() -> Duration {
        static LIMIT: OnceLock<Duration> = OnceLock::new();
        *LIMIT.get_or_init(|| match std::thread::available_parallelism() {
            Ok(n) if n.get() > 1 => Self::DEFAULT_LIMIT,
            _ => Duration::ZERO,
        })
    }

    /// The first window after a short blocking wait, and the smallest window kept.
    ///
    /// ```
    /// assert_eq!(steploop::BusyPoll::GROW_START.as_micros(), 10);
    /// ```
    pub const GROW_START: Duration = Duration::from_micros(10);

    /// A window that starts closed and never spins longer than `limit` (zero: never spin).
    ///
    /// ```
    /// let busy = steploop::BusyPoll::new(std::time::Duration::ZERO);
    /// assert!(busy.limit().is_zero() && busy.window().is_zero());
    /// ```
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            window: Duration::ZERO,
        }
    }

    /// The longest a wait spins.
    ///
    /// ```
    /// let busy = steploop::BusyPoll::default();
    /// assert_eq!(busy.limit(), steploop::BusyPoll::default_limit());
    /// ```
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Changes the limit; a window above it shrinks to it (zero turns spinning off).
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut busy = steploop::BusyPoll::default();
    /// busy.record(Duration::from_micros(50));
    /// busy.set_limit(Duration::ZERO);
    /// assert!(busy.window().is_zero());
    /// busy.record(Duration::from_micros(50)); // learns nothing while off
    /// assert!(busy.window().is_zero());
    /// ```
    pub fn set_limit(&mut self, limit: Duration) {
        self.limit = limit;
        self.window = self.window.min(limit);
    }

    /// How long the next wait polls without blocking before it blocks.
    ///
    /// ```
    /// assert!(steploop::BusyPoll::default().window().is_zero());
    /// ```
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Learns from one wait that could block: `waited` is its whole length, spinning
    /// included, until an event, a wake-up or the timeout ended it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut busy = steploop::BusyPoll::new(Duration::from_micros(15));
    /// busy.record(Duration::from_micros(12));
    /// busy.record(Duration::from_micros(12));
    /// assert_eq!(busy.window().as_micros(), 15); // doubled, then capped by the limit
    /// busy.record(Duration::from_secs(1));
    /// assert!(busy.window().is_zero()); // 7.5 µs is under GROW_START
    /// ```
    pub fn record(&mut self, waited: Duration) {
        if self.limit.is_zero() || waited <= self.window {
            return;
        }
        if waited > self.limit {
            let half = self.window / 2;
            self.window = if half < Self::GROW_START {
                Duration::ZERO
            } else {
                half
            };
        } else {
            self.window = (self.window * 2).max(Self::GROW_START).min(self.limit);
        }
    }
}

impl Default for BusyPoll {
    /// [`BusyPoll::default_limit`], window closed.
    fn default() -> Self {
        Self::new(Self::default_limit())
    }
}
