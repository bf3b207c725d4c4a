//! The reactor: one `mio::Poll` and one `mio::Waker`, created with the loop and kept for its
//! whole life, plus the table of fd watchers.
//!
//! File descriptors are registered *level-triggered* with `epoll_ctl` on mio's epoll fd (mio
//! itself only offers edge-triggered registration; asyncio's `add_reader` semantics are those of
//! `selectors.EpollSelector`: a reader runs on every iteration while data is pending). The
//! event token is the fd itself; the waker uses [`WAKER_TOKEN`].

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use mio::{Events, Poll, Token, Waker};

use crate::sys;
use crate::{Error, Result};

/// The token of the loop's waker.
pub const WAKER_TOKEN: Token = Token(usize::MAX);

/// Readiness of one fd after a poll, in `selectors` terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The fd.
    pub fd: RawFd,
    /// `EVENT_READ` (any epoll bit other than `EPOLLOUT`, as `EpollSelector` maps it).
    pub read: bool,
    /// `EVENT_WRITE` (any epoll bit other than `EPOLLIN`).
    pub write: bool,
}

/// The poller. `poll` is called by the loop thread only; `waker` from any thread.
#[derive(Debug)]
pub struct Reactor {
    /// Poll and its event buffer. Locked only by the loop thread for the duration of a poll.
    /// `None` once [`close`](Self::close)d.
    poll: Mutex<Option<(Poll, Events)>>,
    /// Set by `close`; checked before every use of `epfd` (whose number the OS may reuse).
    closed: AtomicBool,
    /// mio's epoll fd, for level-triggered `epoll_ctl` (thread-safe in the kernel).
    epfd: RawFd,
    /// The waker and its flags, shared with every [`WakeHandle`].
    wake: Arc<WakeState>,
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
    pub fn wake(&self) -> Result<()> {
        self.0.wake()
    }

    /// Wakes the loop unconditionally: the poll fd turns readable (for host-driven loops).
    pub fn force_wake(&self) -> Result<()> {
        self.0.send()
    }

    /// Makes the poll fd readable unless a wake-up is already pending (as
    /// [`Reactor::notify`]): for work a host waiting on the poll fd must see.
    pub fn notify(&self) -> Result<()> {
        if !self.0.woken.swap(true, Ordering::SeqCst) {
            self.0.send()?;
        }
        Ok(())
    }
}

impl Reactor {
    /// Creates the epoll instance and its waker (an eventfd).
    pub fn new() -> Result<Self> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        let epfd = poll.as_raw_fd();
        Ok(Reactor {
            poll: Mutex::new(Some((poll, Events::with_capacity(256)))),
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
    pub fn wake_handle(&self) -> WakeHandle {
        WakeHandle(self.wake.clone())
    }

    /// The epoll fd: readable whenever a registered fd is ready or the waker was woken
    /// (-1 once closed).
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
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Sets the interest of `fd` (`read`/`write`), registering it if needed; `(false, false)`
    /// removes it. Returns `Error::FdClosed` when a removal finds the fd already closed.
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

    /// Marks the start of a blocking wait; returns after publishing it, so that a
    /// `wake()` that misses the mark is guaranteed to be seen by the caller's next check of
    /// its queues (both sides use `SeqCst`).
    pub fn begin_wait(&self) {
        self.wake.polling.store(true, Ordering::SeqCst);
    }

    /// Waits for events at most `timeout` (`None`: until an event or a wake) and appends the
    /// fd readiness to `out`. Returns the number of fd events (wake-ups not counted).
    /// Must be preceded by [`begin_wait`](Self::begin_wait).
    pub fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Readiness>) -> io::Result<usize> {
        let mut guard = self.poll.lock();
        let Some((poll, events)) = guard.as_mut() else {
            self.wake.polling.store(false, Ordering::SeqCst);
            return Err(io::Error::other("the reactor is closed"));
        };
        let res = poll.poll(events, timeout);
        self.wake.polling.store(false, Ordering::SeqCst);
        self.wake.woken.store(false, Ordering::SeqCst);
        res?;
        let mut n = 0;
        for ev in events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
            let hup = ev.is_error() || ev.is_read_closed() || ev.is_write_closed();
            out.push(Readiness {
                fd: ev.token().0 as RawFd,
                read: ev.is_readable() || ev.is_priority() || hup,
                write: ev.is_writable() || hup,
            });
            n += 1;
        }
        Ok(n)
    }

    /// Marks the end of a wait that was not started (e.g. the caller found work after
    /// `begin_wait`).
    pub fn cancel_wait(&self) {
        self.wake.polling.store(false, Ordering::SeqCst);
    }

    /// Wakes the loop if it is blocked in (or about to enter) a poll. Cheap when it is not.
    pub fn wake(&self) -> Result<()> {
        self.wake.wake()
    }

    /// Wakes the loop unconditionally (used by hosts that watch [`fd`](Self::fd)).
    pub fn force_wake(&self) -> Result<()> {
        self.wake.send()
    }

    /// Makes the poll fd readable unless a wake-up is already pending: for work queued from
    /// outside the loop's own callbacks, which a host waiting on [`fd`](Self::fd) must see.
    pub fn notify(&self) -> Result<()> {
        if !self.wake.woken.swap(true, Ordering::SeqCst) {
            self.wake.send()?;
        }
        Ok(())
    }

    /// Whether a wake-up was sent that no poll has consumed yet.
    pub fn wake_pending(&self) -> bool {
        self.wake.woken.load(Ordering::SeqCst)
    }
}

/// Who watches an fd: the reader and the writer callbacks.
#[derive(Debug)]
pub struct Watchers<C> {
    /// Called while the fd is readable.
    pub reader: Option<C>,
    /// Called while the fd is writable.
    pub writer: Option<C>,
}

/// The fd → watchers table. Guarded by the core's lock.
#[derive(Debug)]
pub struct IoTable<C> {
    map: HashMap<RawFd, Watchers<C>>,
}

impl<C> Default for IoTable<C> {
    fn default() -> Self {
        IoTable {
            map: HashMap::new(),
        }
    }
}

impl<C> IoTable<C> {
    /// Current interest of `fd`.
    pub fn interest(&self, fd: RawFd) -> (bool, bool) {
        self.map
            .get(&fd)
            .map_or((false, false), |w| (w.reader.is_some(), w.writer.is_some()))
    }

    /// The watchers of `fd`.
    pub fn get(&self, fd: RawFd) -> Option<&Watchers<C>> {
        self.map.get(&fd)
    }

    /// Replaces the reader (`write == false`) or writer of `fd`; returns the old one.
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
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no fd is watched.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Calls `f` on every watcher.
    pub fn for_each(&self, mut f: impl FnMut(&C)) {
        for w in self.map.values() {
            w.reader.iter().chain(w.writer.iter()).for_each(&mut f);
        }
    }

    /// Removes every watcher, returning the fds and their callbacks.
    pub fn drain(&mut self) -> Vec<(RawFd, Watchers<C>)> {
        self.map.drain().collect()
    }
}
