//! The loop's clock: `CLOCK_MONOTONIC` (Python's `time.monotonic()`), or a virtual clock for
//! tests that moves only when advanced.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys;

/// Which clock a loop reads.
///
/// ```
/// use steploop::Clock;
/// let c = Clock::virtual_at(100.0, true);
/// assert_eq!(c.now(), 100.0);
/// c.advance(1.5);
/// assert_eq!(c.now(), 101.5);
/// assert!(Clock::monotonic().now() > 0.0);
/// ```
#[derive(Debug)]
pub struct Clock {
    /// `f64` bits of the virtual time; unused for the real clock.
    virtual_now: AtomicU64,
    kind: ClockKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClockKind {
    Monotonic,
    Virtual { autojump: bool },
}

impl Clock {
    /// The real clock: `CLOCK_MONOTONIC`, never cached.
    ///
    /// ```
    /// let clock = steploop::Clock::monotonic();
    /// assert!(!clock.is_virtual());
    /// let t0 = clock.now();
    /// assert!(clock.now() >= t0);
    /// ```
    pub fn monotonic() -> Self {
        Clock {
            virtual_now: AtomicU64::new(0),
            kind: ClockKind::Monotonic,
        }
    }

    /// A virtual clock starting at `start` seconds. With `autojump`, an iteration that finds
    /// nothing ready and no I/O jumps the clock to the next timer instead of waiting.
    ///
    /// ```
    /// let clock = steploop::Clock::virtual_at(5.0, false);
    /// assert!(clock.is_virtual() && !clock.autojump());
    /// assert_eq!(clock.now(), 5.0);
    /// ```
    pub fn virtual_at(start: f64, autojump: bool) -> Self {
        Clock {
            virtual_now: AtomicU64::new(start.to_bits()),
            kind: ClockKind::Virtual { autojump },
        }
    }

    /// Current time in seconds.
    ///
    /// ```
    /// let clock = steploop::Clock::virtual_at(1.0, false);
    /// clock.advance(0.25);
    /// assert_eq!(clock.now(), 1.25);
    /// ```
    #[inline]
    pub fn now(&self) -> f64 {
        match self.kind {
            ClockKind::Monotonic => sys::monotonic(),
            ClockKind::Virtual { .. } => f64::from_bits(self.virtual_now.load(Ordering::Acquire)),
        }
    }

    /// Whether this is a virtual clock.
    ///
    /// ```
    /// assert!(steploop::Clock::virtual_at(0.0, true).is_virtual());
    /// assert!(!steploop::Clock::monotonic().is_virtual());
    /// ```
    pub fn is_virtual(&self) -> bool {
        matches!(self.kind, ClockKind::Virtual { .. })
    }

    /// Whether this virtual clock jumps to the next timer when the loop is idle.
    ///
    /// ```
    /// assert!(steploop::Clock::virtual_at(0.0, true).autojump());
    /// assert!(!steploop::Clock::virtual_at(0.0, false).autojump());
    /// assert!(!steploop::Clock::monotonic().autojump());
    /// ```
    pub fn autojump(&self) -> bool {
        matches!(self.kind, ClockKind::Virtual { autojump: true })
    }

    /// Moves a virtual clock forward by `seconds` (negative and NaN are ignored); no effect on
    /// the real clock.
    ///
    /// ```
    /// let clock = steploop::Clock::virtual_at(10.0, false);
    /// clock.advance(2.0);
    /// clock.advance(-1.0); // ignored: time never goes back
    /// clock.advance(f64::NAN); // ignored
    /// assert_eq!(clock.now(), 12.0);
    /// ```
    pub fn advance(&self, seconds: f64) {
        if self.is_virtual() && seconds > 0.0 {
            let now = self.now();
            self.set(now + seconds);
        }
    }

    /// Sets a virtual clock to `t` if that is later than now.
    pub(crate) fn jump_to(&self, t: f64) {
        if self.is_virtual() && t > self.now() {
            self.set(t);
        }
    }

    fn set(&self, t: f64) {
        self.virtual_now.store(t.to_bits(), Ordering::Release);
    }

    /// The clock's resolution in seconds (asyncio's `_clock_resolution`).
    ///
    /// ```
    /// let res = steploop::Clock::monotonic().resolution();
    /// assert!(res > 0.0 && res < 0.01);
    /// ```
    pub fn resolution(&self) -> f64 {
        sys::monotonic_resolution()
    }
}
