//! Helpers shared by the integration tests (public API only).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use steploop::{Callback, Clock, Core, EventLoop, Runner, Step, TieBreak};

/// A new loop; fails the test with the OS error if it cannot be created.
#[track_caller]
pub fn new_loop() -> EventLoop {
    match EventLoop::new() {
        Ok(lp) => lp,
        Err(e) => panic!("EventLoop::new failed: {e}"),
    }
}

/// An ordered record of what ran, shared by the callbacks of one test.
#[derive(Clone, Default)]
pub struct Log<T>(Rc<RefCell<Vec<T>>>);

impl<T: Clone + Debug + PartialEq + 'static> Log<T> {
    pub fn new() -> Self {
        Log(Rc::new(RefCell::new(Vec::new())))
    }

    /// A callback that appends `v`.
    pub fn push(&self, v: T) -> impl FnOnce() + 'static {
        let log = self.0.clone();
        move || log.borrow_mut().push(v)
    }

    /// Appends `v` now.
    pub fn add(&self, v: T) {
        self.0.borrow_mut().push(v);
    }

    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.borrow_mut())
    }

    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }

    /// Asserts the log is exactly `expected`, and clears it.
    #[track_caller]
    pub fn assert_eq(&self, expected: &[T]) {
        let got = self.take();
        assert_eq!(got, expected, "log mismatch");
    }
}

/// Counts drops of the [`Token`]s it hands out.
#[derive(Clone, Default)]
pub struct DropCounter(Rc<Cell<usize>>);

/// Owned by a closure under test; bumps its counter when dropped.
pub struct Token(Rc<Cell<usize>>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl DropCounter {
    pub fn token(&self) -> Token {
        Token(self.0.clone())
    }

    pub fn dropped(&self) -> usize {
        self.0.get()
    }

    #[track_caller]
    pub fn assert_dropped(&self, n: usize) {
        assert_eq!(self.dropped(), n, "number of dropped closures");
    }
}

/// The thread-safe flavour of [`DropCounter`], for `call_soon_threadsafe` closures.
#[derive(Clone, Default)]
pub struct SyncDropCounter(Arc<AtomicUsize>);

pub struct SyncToken(Arc<AtomicUsize>);

impl Drop for SyncToken {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl SyncDropCounter {
    pub fn token(&self) -> SyncToken {
        SyncToken(self.0.clone())
    }

    pub fn dropped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// Runs `run_once(Some(ZERO))`, failing the test on error.
#[track_caller]
pub fn step(lp: &EventLoop) -> Step {
    match lp.run_once(Some(Duration::ZERO)) {
        Ok(s) => s,
        Err(e) => panic!("run_once failed: {e}"),
    }
}

/// Runs iterations (each waiting at most 10 ms) until `done()` or `limit` passes; fails the
/// test on timeout. Returns the number of iterations.
#[track_caller]
pub fn run_until(lp: &EventLoop, limit: Duration, mut done: impl FnMut() -> bool) -> usize {
    let deadline = Instant::now() + limit;
    let mut n = 0;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {limit:?}"
        );
        if let Err(e) = lp.run_once(Some(Duration::from_millis(10))) {
            panic!("run_once failed: {e}");
        }
        n += 1;
    }
    n
}

/// A connected pair of Unix stream sockets, non-blocking.
#[track_caller]
pub fn socketpair() -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    let (a, b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    a.set_nonblocking(true).expect("nonblocking");
    b.set_nonblocking(true).expect("nonblocking");
    (a, b)
}

/// A new non-blocking socket pair one end of which (returned second) has the number `fd`
/// (the lowest free one, so it comes soon); pairs made on the way go into `keep`, to stay
/// open until the caller is done.
#[track_caller]
pub fn socketpair_reusing(
    fd: i32,
    keep: &mut Vec<(
        std::os::unix::net::UnixStream,
        std::os::unix::net::UnixStream,
    )>,
) -> (
    std::os::unix::net::UnixStream,
    std::os::unix::net::UnixStream,
) {
    use std::os::fd::AsRawFd;
    loop {
        let (c, d) = socketpair();
        if d.as_raw_fd() == fd || c.as_raw_fd() == fd {
            return if d.as_raw_fd() == fd { (c, d) } else { (d, c) };
        }
        keep.push((c, d));
        assert!(keep.len() < 64, "fd number {fd} was not reused");
    }
}

/// One iteration of `core` that never blocks.
#[track_caller]
pub fn step_core(core: &Core<Named>, rec: &mut Record) -> Step {
    core.run_once(Some(Duration::ZERO), rec).expect("run_once")
}

/// A `Core` callback (tests of the engine's core without `EventLoop`): a name and a shared
/// cancel flag.
#[derive(Clone)]
pub struct Named(pub &'static str, pub Rc<Cell<bool>>);

impl Named {
    pub fn new(name: &'static str) -> Self {
        Named(name, Rc::new(Cell::new(false)))
    }
}

impl Callback for Named {
    fn is_cancelled(&self) -> bool {
        self.1.get()
    }
}

/// A `Core` runner that records the names of the callbacks it runs.
#[derive(Default)]
pub struct Record(pub Vec<&'static str>);

impl Runner<Named> for Record {
    type Error = std::io::Error;
    fn run(&mut self, cb: &Named) -> std::io::Result<()> {
        self.0.push(cb.0);
        Ok(())
    }
    fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
        Err(e)
    }
}

/// A `Core` with the given tie-break; fails the test if it cannot be created.
#[track_caller]
pub fn core_with(tie: TieBreak) -> Core<Named> {
    match Core::new(Clock::monotonic(), tie) {
        Ok(c) => c,
        Err(e) => panic!("Core::new failed: {e}"),
    }
}
