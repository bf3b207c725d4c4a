//! The reactor: one `mio::Poll` and one `mio::Waker`, created with the loop and kept for its
//! whole life, plus the table of fd watchers.
//!
//! File descriptors are registered *level-triggered* with `epoll_ctl` on mio's epoll fd (mio
//! itself only offers edge-triggered registration; asyncio's `add_reader` semantics are those of
//! `selectors.EpollSelector`: a reader runs on every iteration while data is pending). The
//! event token is the fd itself; the waker uses [`WAKER_TOKEN`].

use rustc_hash::FxHashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token, Waker};

use crate::busy_poll::BusyPoll;
use crate::sys;
use crate::{Error, Result};

/// The token of the loop's waker.
///
/// ```
/// // fds are never that large, so the waker's token cannot clash with an fd's.
/// assert_eq!(steploop::WAKER_TOKEN.0, usize::MAX);
/// ```
pub const WAKER_TOKEN: Token = Token(usize::MAX);

/// Readiness of one fd after a poll, in `selectors` terms.
///
/// ```
/// # use std::os::fd::AsRawFd;
/// # use std::os::unix::net::UnixStream;
/// # use steploop::Reactor;
/// let reactor = Reactor::new()?;
/// let (a, _b) = UnixStream::pair()?;
/// reactor.set_interest(a.as_raw_fd(), (false, false), (true, true))?;
/// reactor.begin_wait();
/// let mut out = Vec::new();
/// reactor.wait(Some(std::time::Duration::ZERO), &mut out)?;
/// // Nothing to read yet, but the socket buffer has room.
/// assert_eq!(
///     out,
///     [steploop::Readiness { fd: a.as_raw_fd(), read: false, write: true, tag: 0 }]
/// );
/// # Ok::<(), steploop::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The fd.
    pub fd: RawFd,
    /// `EVENT_READ` (any epoll bit other than `EPOLLOUT`, as `EpollSelector` maps it).
    pub read: bool,
    /// `EVENT_WRITE` (any epoll bit other than `EPOLLIN`).
    pub write: bool,
    /// The registration's tag: 0 for level-triggered registrations, the generation given
    /// to [`Reactor::arm_edge`] for edge-triggered ones (so that events of a registration
    /// left behind by a closed fd can be told apart).
    pub tag: u32,
}

/// The poller. `poll` is called by the loop thread only; `waker` from any thread.
///
/// ```
/// # use std::os::fd::AsRawFd;
/// # use std::os::unix::net::UnixStream;
/// # use steploop::Reactor;
/// use std::io::Write;
/// let reactor = Reactor::new()?;
/// let (mut a, b) = UnixStream::pair()?;
/// reactor.set_interest(b.as_raw_fd(), (false, false), (true, false))?;
/// a.write_all(b"x")?;
/// let mut out = Vec::new();
/// reactor.begin_wait();
/// assert_eq!(reactor.wait(None, &mut out)?, 1);
/// assert!(out[0].read);
/// # Ok::<(), steploop::Error>(())
/// ```
#[derive(Debug)]
pub struct Reactor {
    /// Poll, its event buffer and the busy-poll window. Locked only by the loop thread for
    /// the duration of a poll. `None` once [`close`](Self::close)d.
    poll: Mutex<Option<Poller>>,
    /// The busy-poll limit in nanoseconds, kept apart so that any thread can read and set it
    /// without waiting for a poll to end; the window itself lives in [`Poller`].
    busy_limit: AtomicU64,
    /// Waits that spun, and those of them whose spinning caught their end.
    busy_polls: AtomicU64,
    busy_poll_hits: AtomicU64,
    /// Set by `close`; checked before every use of `epfd` (whose number the OS may reuse).
    closed: AtomicBool,
    /// mio's epoll fd, for level-triggered `epoll_ctl` (thread-safe in the kernel).
    epfd: RawFd,
    /// The waker and its flags, shared with every [`WakeHandle`].
    wake: Arc<WakeState>,
}

/// What a poll needs, behind the reactor's poll lock.
#[derive(Debug)]
struct Poller {
    poll: Poll,
    events: Events,
    busy: BusyPoll,
    /// When the spin of a wait that is still to block began ([`Reactor::spin`] found
    /// nothing; [`Reactor::wait`] blocks next).
    spun_at: Option<Instant>,
}

impl Poller {
    /// Applies the limit set on the reactor (any thread may have changed it).
    fn sync_limit(&mut self, limit: Duration) {
        if limit != self.busy.limit() {
            self.busy.set_limit(limit);
        }
    }

    /// The first part of a wait that may block: polls with a zero timeout for the busy-poll
    /// window (or the timeout, if shorter). Returns whether that ended the wait: an event or
    /// a wake-up came, the poll failed, or the whole timeout went by. If not, `spun_at`
    /// keeps the wait's start for the blocking part.
    fn spin(&mut self, timeout: Option<Duration>) -> (io::Result<()>, bool) {
        let start = Instant::now();
        let spin = self.busy.window().min(timeout.unwrap_or(Duration::MAX));
        loop {
            let res = self.poll.poll(&mut self.events, Some(Duration::ZERO));
            if res.is_err() || !self.events.is_empty() {
                self.busy.record(start.elapsed());
                return (res, true);
            }
            if start.elapsed() >= spin {
                break;
            }
            std::hint::spin_loop();
        }
        if timeout.is_some_and(|t| t <= spin) {
            // Spun the whole timeout: the wait is over, as a blocking one would be.
            self.busy.record(start.elapsed());
            return (Ok(()), true);
        }
        self.spun_at = Some(start);
        (Ok(()), false)
    }

    /// The rest of a wait that may block: blocks for what is left of `timeout` (counted from
    /// the start of the spin, if one came first), and lets the window learn how long the
    /// whole wait took.
    fn block(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if self.busy.limit().is_zero() {
            self.spun_at = None;
            return self.poll.poll(&mut self.events, timeout);
        }
        let start = self.spun_at.take().unwrap_or_else(Instant::now);
        let left = timeout.map(|t| t.saturating_sub(start.elapsed()));
        let res = self.poll.poll(&mut self.events, left);
        self.busy.record(start.elapsed());
        res
    }
}

#[derive(Debug)]
struct WakeState {
    /// The eventfd; `None` once the reactor is closed.
    waker: Mutex<Option<Waker>>,
    /// Set by the loop thread right before it blocks in `poll`, cleared after.
    polling: AtomicBool,
    /// Set by the first `wake()` of a poll, so later wakers skip the syscall.
    woken: AtomicBool,
}

impl WakeState {
    fn wake(&self) -> Result<()> {
        if self.polling.load(Ordering::SeqCst) && !self.woken.swap(true, Ordering::SeqCst) {
            self.send()?;
        }
        Ok(())
    }

    /// Writes the eventfd (nothing once the reactor is closed).
    fn send(&self) -> Result<()> {
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake()?;
        }
        Ok(())
    }
}

/// A `Send + Sync` handle on a reactor's waker, for other threads: it can outlive the
/// reactor (waking a reactor that is gone does nothing harmful).
///
/// ```
/// let reactor = steploop::Reactor::new().unwrap();
/// let handle = reactor.wake_handle();
/// std::thread::spawn(move || handle.wake().unwrap()).join().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct WakeHandle(Arc<WakeState>);

impl WakeHandle {
    /// Wakes the loop if it is blocked in (or about to enter) a poll; no syscall otherwise.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let handle = reactor.wake_handle();
    /// handle.wake()?; // not polling: no syscall, nothing pending
    /// assert!(!reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn wake(&self) -> Result<()> {
        self.0.wake()
    }

    /// Wakes the loop unconditionally: the poll fd turns readable (for host-driven loops).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// reactor.wake_handle().force_wake()?;
    /// reactor.begin_wait();
    /// let mut out = Vec::new();
    /// // Returns at once: the waker was written (a wake-up is not an fd event).
    /// assert_eq!(reactor.wait(None, &mut out)?, 0);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn force_wake(&self) -> Result<()> {
        self.0.send()
    }

    /// Makes the poll fd readable unless a wake-up is already pending (as
    /// [`Reactor::notify`]): for work a host waiting on the poll fd must see.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let handle = reactor.wake_handle();
    /// handle.notify()?;
    /// handle.notify()?; // already pending: no second write
    /// assert!(reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn notify(&self) -> Result<()> {
        if !self.0.woken.swap(true, Ordering::SeqCst) {
            self.0.send()?;
        }
        Ok(())
    }
}

impl Reactor {
    /// Creates the epoll instance and its waker (an eventfd).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// assert!(reactor.fd() >= 0 && !reactor.is_closed());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn new() -> Result<Self> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let epfd = poll.as_raw_fd();
        Ok(Reactor {
            poll: Mutex::new(Some(Poller {
                poll,
                events: Events::with_capacity(256),
                busy: BusyPoll::default(),
                spun_at: None,
            })),
            busy_limit: AtomicU64::new(BusyPoll::default_limit().as_nanos() as u64),
            busy_polls: AtomicU64::new(0),
            busy_poll_hits: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            epfd,
            wake: Arc::new(WakeState {
                waker: Mutex::new(Some(waker)),
                polling: AtomicBool::new(false),
                woken: AtomicBool::new(false),
            }),
        })
    }

    /// A handle that wakes this reactor from any thread.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let handle = reactor.wake_handle();
    /// std::thread::spawn(move || handle.force_wake()).join().unwrap()?;
    /// reactor.begin_wait();
    /// reactor.wait(None, &mut Vec::new())?; // returns: woken from the other thread
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn wake_handle(&self) -> WakeHandle {
        WakeHandle(self.wake.clone())
    }

    /// The epoll fd: readable whenever a registered fd is ready or the waker was woken
    /// (-1 once closed).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let fd = reactor.fd();
    /// reactor.notify()?;
    /// let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    /// // SAFETY: `pfd` is one live, initialised pollfd.
    /// assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1000) }, 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn fd(&self) -> RawFd {
        if self.is_closed() {
            -1
        } else {
            self.epfd
        }
    }

    /// Closes the epoll fd and the eventfd now instead of at drop (asyncio closes its
    /// selector in `loop.close()`). Afterwards registrations fail with [`Error::Closed`],
    /// polls return an error and wake-ups do nothing. The caller must make sure no
    /// registration runs concurrently (the core holds its fd-table lock).
    ///
    /// ```
    /// let reactor = steploop::Reactor::new().unwrap();
    /// reactor.close();
    /// assert!(reactor.is_closed());
    /// assert_eq!(reactor.fd(), -1);
    /// ```
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let poll = self.poll.lock().take();
        let waker = self.wake.waker.lock().take();
        drop((poll, waker));
    }

    /// Whether [`close`](Self::close) was called.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// assert!(!reactor.is_closed());
    /// reactor.close();
    /// assert!(reactor.is_closed());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The longest a wait that may block first polls without blocking (see [`BusyPoll`]);
    /// [`BusyPoll::default_limit`] unless set.
    ///
    /// ```
    /// let reactor = steploop::Reactor::new()?;
    /// assert_eq!(reactor.busy_poll(), steploop::BusyPoll::default_limit());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn busy_poll(&self) -> Duration {
        self.limit()
    }

    /// Sets the busy-poll limit, from any thread; it applies from the next wait. Zero never
    /// spins: every wait that may block blocks at once. Limits above a second are cut to a
    /// second.
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = steploop::Reactor::new()?;
    /// reactor.set_busy_poll(Duration::ZERO);
    /// assert!(reactor.busy_poll().is_zero());
    /// reactor.set_busy_poll(Duration::from_secs(3600));
    /// assert_eq!(reactor.busy_poll(), Duration::from_secs(1));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn set_busy_poll(&self, limit: Duration) {
        let limit = limit.min(Duration::from_secs(1));
        self.busy_limit
            .store(limit.as_nanos() as u64, Ordering::Relaxed);
    }

    /// `(waits that spun, waits whose spinning caught an event, a wake-up or the timeout)`
    /// since the reactor was made or the counts were [reset](Self::reset_busy_poll_counts).
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = steploop::Reactor::new()?;
    /// for _ in 0..3 {
    ///     // Waits far longer than the limit: the window never opens, nothing spins.
    ///     reactor.begin_wait();
    ///     reactor.wait(Some(Duration::from_millis(2)), &mut Vec::new())?;
    /// }
    /// assert_eq!(reactor.busy_poll_counts(), (0, 0));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn busy_poll_counts(&self) -> (u64, u64) {
        (
            self.busy_polls.load(Ordering::Relaxed),
            self.busy_poll_hits.load(Ordering::Relaxed),
        )
    }

    /// Sets both [busy-poll counts](Self::busy_poll_counts) back to zero.
    ///
    /// ```
    /// let reactor = steploop::Reactor::new()?;
    /// reactor.reset_busy_poll_counts();
    /// assert_eq!(reactor.busy_poll_counts(), (0, 0));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn reset_busy_poll_counts(&self) {
        self.busy_polls.store(0, Ordering::Relaxed);
        self.busy_poll_hits.store(0, Ordering::Relaxed);
    }

    /// Sets the interest of `fd` (`read`/`write`), registering it if needed; `(false, false)`
    /// removes it. Returns `Error::FdClosed` when a removal finds the fd already closed.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let (a, _b) = UnixStream::pair()?;
    /// let fd = a.as_raw_fd();
    /// reactor.set_interest(fd, (false, false), (true, false))?; // add, readable
    /// reactor.set_interest(fd, (true, false), (true, true))?; // and writable
    /// reactor.set_interest(fd, (true, true), (false, false))?; // remove
    /// assert!(matches!(
    ///     reactor.set_interest(-1, (false, false), (true, false)),
    ///     Err(steploop::Error::InvalidFd(-1))
    /// ));
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn set_interest(&self, fd: RawFd, old: (bool, bool), new: (bool, bool)) -> Result<()> {
        if fd < 0 {
            return Err(Error::InvalidFd(fd));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mask = |(r, w): (bool, bool)| {
            (if r { libc::EPOLLIN as u32 } else { 0 }) | (if w { libc::EPOLLOUT as u32 } else { 0 })
        };
        let (was, now) = (mask(old), mask(new));
        if was == now {
            return Ok(());
        }
        let res = if now == 0 {
            sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0)
        } else if was == 0 {
            // An fd number can be reused after a close behind our back: ADD then MOD.
            match sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, now) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                    sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, now)
                }
                r => r,
            }
        } else {
            // The fd may have been closed (and its epoll entry dropped) since we added it.
            match sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, now) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, now)
                }
                r => r,
            }
        };
        match res {
            Ok(()) => Ok(()),
            Err(e)
                if now == 0
                    && matches!(e.raw_os_error(), Some(libc::EBADF) | Some(libc::ENOENT)) =>
            {
                Err(Error::FdClosed(fd))
            }
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// Registers `fd` edge-triggered for reading (`EPOLLIN | EPOLLET`), its events tagged
    /// with `tag` ([`Readiness::tag`]): one report per arrival of data, none while data
    /// just sits there, so the registration can stay when its reader goes (nothing spins)
    /// and serve the next reader without a syscall. The caller must have seen `fd` would
    /// block, or its reader must cope with a report that finds nothing. `registered` says
    /// whether a registration is believed to exist (`MOD` first, else `ADD` first; either
    /// way the other is tried).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let (mut a, mut b) = UnixStream::pair()?;
    /// reactor.arm_edge(a.as_raw_fd(), 7, false)?;
    /// b.write_all(b"x")?;
    /// let mut out = Vec::new();
    /// reactor.begin_wait();
    /// assert_eq!(reactor.wait(None, &mut out)?, 1);
    /// assert_eq!(out[0].tag, 7);
    /// // Still readable, but no new data: no second report.
    /// reactor.begin_wait();
    /// assert_eq!(reactor.wait(Some(std::time::Duration::ZERO), &mut out)?, 0);
    /// a.read_exact(&mut [0])?;
    /// b.write_all(b"y")?; // new data: a new report
    /// reactor.begin_wait();
    /// assert_eq!(reactor.wait(Some(std::time::Duration::ZERO), &mut out)?, 1);
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn arm_edge(&self, fd: RawFd, tag: u32, registered: bool) -> Result<()> {
        if fd < 0 {
            return Err(Error::InvalidFd(fd));
        }
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let mask = libc::EPOLLIN as u32 | libc::EPOLLET as u32;
        // The belief in `registered` may be wrong after the fd was closed behind our back
        // and its number reused: `MOD` falls back to `ADD`, and `ADD` to `MOD`.
        let (first, then, fallback_on) = if registered {
            (libc::EPOLL_CTL_MOD, libc::EPOLL_CTL_ADD, libc::ENOENT)
        } else {
            (libc::EPOLL_CTL_ADD, libc::EPOLL_CTL_MOD, libc::EEXIST)
        };
        let res = match sys::epoll_ctl_tagged(self.epfd, first, fd, mask, tag) {
            Err(e) if e.raw_os_error() == Some(fallback_on) => {
                sys::epoll_ctl_tagged(self.epfd, then, fd, mask, tag)
            }
            r => r,
        };
        res.map_err(Error::Io)
    }

    /// Sets the (level-triggered) interest of `fd` whatever its registration is now (e.g.
    /// an edge-triggered one), with one `MOD` (`ADD` if it is not registered), or `DEL` for none.
    pub fn reset_interest(&self, fd: RawFd, new: (bool, bool)) -> Result<()> {
        if new == (false, false) {
            return match sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF) | Some(libc::ENOENT)) => {
                    Err(Error::FdClosed(fd))
                }
                Err(e) => Err(Error::Io(e)),
            };
        }
        let mask = (if new.0 { libc::EPOLLIN as u32 } else { 0 })
            | (if new.1 { libc::EPOLLOUT as u32 } else { 0 });
        let res = match sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, mask) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                sys::epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, mask)
            }
            r => r,
        };
        res.map_err(Error::Io)
    }

    /// Marks the start of a blocking wait; returns after publishing it, so that a
    /// `wake()` that misses the mark is guaranteed to be seen by the caller's next check of
    /// its queues (both sides use `SeqCst`).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let handle = reactor.wake_handle();
    /// reactor.begin_wait();
    /// handle.wake()?; // sees the mark: writes the eventfd
    /// assert!(reactor.wake_pending());
    /// reactor.wait(None, &mut Vec::new())?; // returns at once
    /// assert!(!reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn begin_wait(&self) {
        self.wake.polling.store(true, Ordering::SeqCst);
    }

    /// Waits for events at most `timeout` (`None`: until an event or a wake) and appends the
    /// fd readiness to `out`. Returns the number of fd events (wake-ups not counted).
    /// Must be preceded by [`begin_wait`](Self::begin_wait).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// let mut out = Vec::new();
    /// reactor.begin_wait();
    /// let n = reactor.wait(Some(std::time::Duration::from_millis(1)), &mut out)?;
    /// assert_eq!((n, out.len()), (0, 0)); // timed out
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Readiness>) -> io::Result<usize> {
        let mut guard = self.poll.lock();
        let Some(poller) = guard.as_mut() else {
            self.wake.polling.store(false, Ordering::SeqCst);
            return Err(io::Error::other("the reactor is closed"));
        };
        let res = match poller.spun_at {
            // The blocking part of a wait whose spin found nothing.
            Some(_) => poller.block(timeout),
            None if timeout == Some(Duration::ZERO) => {
                poller.poll.poll(&mut poller.events, timeout)
            }
            None => match self.spin_phase(poller, timeout) {
                Some(res) => res,
                None => poller.block(timeout),
            },
        };
        self.end_wait(res, &poller.events, out)
    }

    /// Spins for the busy-poll window, as the start of a wait that may block (after
    /// [`begin_wait`](Self::begin_wait)): `Some(n)` if that ended the wait, as
    /// [`wait`](Self::wait) would have; `None` if the wait must go on blocking, which the
    /// next call to `wait` does, for what is left of the same `timeout`.
    ///
    /// Between the two, the caller may do what it must before the thread sleeps: the
    /// Python binding takes the GIL back to run the handlers of signals that arrived while
    /// the loop was spinning (they interrupt a blocking poll, not a spinning one).
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = steploop::Reactor::new()?;
    /// assert!(reactor.spin_window(None).is_zero()); // nothing learnt yet: no spin
    /// let mut out = Vec::new();
    /// reactor.begin_wait();
    /// assert_eq!(reactor.spin(None, &mut out)?, None); // so it must block
    /// reactor.wake()?; // (from another thread, in real use)
    /// assert_eq!(reactor.wait(None, &mut out)?, 0); // woken
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn spin(
        &self,
        timeout: Option<Duration>,
        out: &mut Vec<Readiness>,
    ) -> io::Result<Option<usize>> {
        let mut guard = self.poll.lock();
        let Some(poller) = guard.as_mut() else {
            self.wake.polling.store(false, Ordering::SeqCst);
            return Err(io::Error::other("the reactor is closed"));
        };
        match self.spin_phase(poller, timeout) {
            Some(res) => self.end_wait(res, &poller.events, out).map(Some),
            None => Ok(None),
        }
    }

    /// The spin of a wait, shared by [`wait`](Self::wait) and [`spin`](Self::spin):
    /// `Some` with the poll's result if it ended the wait; `None` if the wait must block
    /// (the window is closed, the timeout is zero, or the spin found nothing, which
    /// `poller.spun_at` then says). Counts the spin.
    fn spin_phase(&self, poller: &mut Poller, timeout: Option<Duration>) -> Option<io::Result<()>> {
        poller.sync_limit(self.limit());
        if poller.busy.window().is_zero() || timeout == Some(Duration::ZERO) {
            return None;
        }
        let (res, caught) = poller.spin(timeout);
        self.busy_polls.fetch_add(1, Ordering::Relaxed);
        if caught {
            self.busy_poll_hits.fetch_add(1, Ordering::Relaxed);
            Some(res)
        } else {
            None
        }
    }

    /// How long a wait with `timeout` would spin now: zero if it would block at once.
    ///
    /// ```
    /// use std::time::Duration;
    /// let reactor = steploop::Reactor::new()?;
    /// reactor.set_busy_poll(Duration::from_secs(1));
    /// for _ in 0..2 {
    ///     reactor.begin_wait();
    ///     reactor.wait(Some(Duration::from_millis(1)), &mut Vec::new())?; // short waits
    /// }
    /// assert_eq!(reactor.spin_window(None), Duration::from_micros(20));
    /// assert_eq!(reactor.spin_window(Some(Duration::from_micros(5))).as_micros(), 5);
    /// assert!(reactor.spin_window(Some(Duration::ZERO)).is_zero());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn spin_window(&self, timeout: Option<Duration>) -> Duration {
        let mut guard = self.poll.lock();
        let Some(poller) = guard.as_mut() else {
            return Duration::ZERO;
        };
        poller.sync_limit(self.limit());
        poller.busy.window().min(timeout.unwrap_or(Duration::MAX))
    }

    fn limit(&self) -> Duration {
        Duration::from_nanos(self.busy_limit.load(Ordering::Relaxed))
    }

    /// The end of every wait: clears the wake-up flags and appends the fd readiness.
    fn end_wait(
        &self,
        res: io::Result<()>,
        events: &Events,
        out: &mut Vec<Readiness>,
    ) -> io::Result<usize> {
        self.wake.polling.store(false, Ordering::SeqCst);
        self.wake.woken.store(false, Ordering::SeqCst);
        res?;
        let mut n = 0;
        for ev in events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            let hup = ev.is_error() || ev.is_read_closed() || ev.is_write_closed();
            let data = ev.token().0 as u64;
            out.push(Readiness {
                fd: (data & 0xffff_ffff) as u32 as RawFd,
                read: ev.is_readable() || ev.is_priority() || hup,
                write: ev.is_writable() || hup,
                tag: (data >> 32) as u32,
            });
            n += 1;
        }
        Ok(n)
    }

    /// Marks the end of a wait that was not started (e.g. the caller found work after
    /// `begin_wait`).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// reactor.begin_wait();
    /// reactor.cancel_wait(); // e.g. work was found after all
    /// reactor.wake()?; // not polling any more: no syscall
    /// assert!(!reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn cancel_wait(&self) {
        self.wake.polling.store(false, Ordering::SeqCst);
        // A wait given up between its spin and its blocking part.
        if let Some(poller) = self.poll.lock().as_mut() {
            poller.spun_at = None;
        }
    }

    /// Wakes the loop if it is blocked in (or about to enter) a poll. Cheap when it is not.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// reactor.wake()?; // not polling: nothing to do
    /// assert!(!reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn wake(&self) -> Result<()> {
        self.wake.wake()
    }

    /// Wakes the loop unconditionally (used by hosts that watch [`fd`](Self::fd)).
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// reactor.force_wake()?;
    /// reactor.begin_wait();
    /// reactor.wait(None, &mut Vec::new())?; // returns at once
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn force_wake(&self) -> Result<()> {
        self.wake.send()
    }

    /// Makes the poll fd readable unless a wake-up is already pending: for work queued from
    /// outside the loop's own callbacks, which a host waiting on [`fd`](Self::fd) must see.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// reactor.notify()?;
    /// assert!(reactor.wake_pending());
    /// reactor.begin_wait();
    /// reactor.wait(None, &mut Vec::new())?; // consumes the wake-up
    /// assert!(!reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn notify(&self) -> Result<()> {
        if !self.wake.woken.swap(true, Ordering::SeqCst) {
            self.wake.send()?;
        }
        Ok(())
    }

    /// Whether a wake-up was sent that no poll has consumed yet.
    ///
    /// ```
    /// # use std::os::fd::AsRawFd;
    /// # use std::os::unix::net::UnixStream;
    /// # use steploop::Reactor;
    /// let reactor = Reactor::new()?;
    /// assert!(!reactor.wake_pending());
    /// reactor.notify()?;
    /// assert!(reactor.wake_pending());
    /// # Ok::<(), steploop::Error>(())
    /// ```
    pub fn wake_pending(&self) -> bool {
        self.wake.woken.load(Ordering::SeqCst)
    }
}

/// Who watches an fd: the reader and the writer callbacks.
///
/// ```
/// let mut table: steploop::IoTable<&str> = Default::default();
/// table.set(3, false, Some("reader"));
/// let w: &steploop::Watchers<&str> = table.get(3).unwrap();
/// assert_eq!((w.reader, w.writer), (Some("reader"), None));
/// ```
#[derive(Debug)]
pub struct Watchers<C> {
    /// Called while the fd is readable.
    pub reader: Option<C>,
    /// Called while the fd is writable.
    pub writer: Option<C>,
}

/// The fd → watchers table. Guarded by the core's lock.
///
/// ```
/// let mut table = steploop::IoTable::default();
/// assert_eq!(table.set(5, true, Some("writer")), None);
/// assert_eq!(table.interest(5), (false, true));
/// assert_eq!(table.set(5, true, None), Some("writer"));
/// assert!(table.is_empty());
/// ```
#[derive(Debug)]
pub struct IoTable<C> {
    /// Keyed with FxHash: an fd is a small int, and the default SipHash cost more than the
    /// rest of the lookup on every I/O event.
    map: FxHashMap<RawFd, Watchers<C>>,
    /// fds with an edge-triggered registration (`Core::set_reader_edge`), with or without a
    /// reader, and the tag of that registration.
    edge: FxHashMap<RawFd, u32>,
    /// The last tag given to an edge registration.
    last_tag: u32,
}

impl<C> Default for IoTable<C> {
    fn default() -> Self {
        IoTable {
            map: FxHashMap::default(),
            edge: FxHashMap::default(),
            last_tag: 0,
        }
    }
}

impl<C> IoTable<C> {
    /// Current interest of `fd`.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// table.set(4, false, Some(1));
    /// assert_eq!(table.interest(4), (true, false));
    /// assert_eq!(table.interest(9), (false, false));
    /// ```
    pub fn interest(&self, fd: RawFd) -> (bool, bool) {
        self.map
            .get(&fd)
            .map_or((false, false), |w| (w.reader.is_some(), w.writer.is_some()))
    }

    /// The watchers of `fd`.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// table.set(4, true, Some("w"));
    /// assert_eq!(table.get(4).unwrap().writer, Some("w"));
    /// assert!(table.get(5).is_none());
    /// ```
    pub fn get(&self, fd: RawFd) -> Option<&Watchers<C>> {
        self.map.get(&fd)
    }

    /// Replaces the reader (`write == false`) or writer of `fd`; returns the old one.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// assert_eq!(table.set(4, false, Some("old")), None);
    /// assert_eq!(table.set(4, false, Some("new")), Some("old")); // replaced
    /// assert_eq!(table.set(4, false, None), Some("new")); // removed
    /// assert_eq!(table.len(), 0);
    /// ```
    pub fn set(&mut self, fd: RawFd, write: bool, cb: Option<C>) -> Option<C> {
        let entry = self.map.entry(fd).or_insert(Watchers {
            reader: None,
            writer: None,
        });
        let slot = if write {
            &mut entry.writer
        } else {
            &mut entry.reader
        };
        let old = std::mem::replace(slot, cb);
        if entry.reader.is_none() && entry.writer.is_none() {
            self.map.remove(&fd);
        }
        old
    }

    /// Number of watched fds.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// table.set(4, false, Some(()));
    /// table.set(4, true, Some(()));
    /// table.set(7, true, Some(()));
    /// assert_eq!(table.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no fd is watched.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// assert!(table.is_empty());
    /// table.set(4, false, Some(()));
    /// assert!(!table.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Calls `f` on every watcher.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// table.set(4, false, Some(1));
    /// table.set(4, true, Some(2));
    /// let mut sum = 0;
    /// table.for_each(|n| sum += n);
    /// assert_eq!(sum, 3);
    /// ```
    pub fn for_each(&self, mut f: impl FnMut(&C)) {
        for w in self.map.values() {
            w.reader.iter().chain(w.writer.iter()).for_each(&mut f);
        }
    }

    /// Removes every watcher, returning the fds and their callbacks.
    ///
    /// ```
    /// let mut table = steploop::IoTable::default();
    /// table.set(4, false, Some("r"));
    /// let drained = table.drain();
    /// assert_eq!(drained.len(), 1);
    /// assert_eq!(drained[0].0, 4);
    /// assert!(table.is_empty());
    /// ```
    pub fn drain(&mut self) -> Vec<(RawFd, Watchers<C>)> {
        self.edge.clear();
        self.map.drain().collect()
    }

    /// The tag of `fd`'s edge-triggered registration, if it has one.
    pub(crate) fn edge(&self, fd: RawFd) -> Option<u32> {
        if self.edge.is_empty() {
            return None;
        }
        self.edge.get(&fd).copied()
    }

    /// Records (`Some`) or forgets (`None`) `fd`'s edge-triggered registration.
    pub(crate) fn set_edge(&mut self, fd: RawFd, tag: Option<u32>) {
        match tag {
            Some(t) => {
                self.edge.insert(fd, t);
            }
            None => {
                if !self.edge.is_empty() {
                    self.edge.remove(&fd);
                }
            }
        }
    }

    /// A new tag for an edge registration (never 0, the tag of the others).
    pub(crate) fn next_tag(&mut self) -> u32 {
        self.last_tag = self.last_tag.wrapping_add(1).max(1);
        self.last_tag
    }

    /// Whether an event with `tag` comes from `fd`'s current registration (and not from one
    /// a closed fd left behind in the kernel, whose number was reused).
    pub(crate) fn is_current(&self, fd: RawFd, tag: u32) -> bool {
        self.edge(fd).unwrap_or(0) == tag
    }
}
