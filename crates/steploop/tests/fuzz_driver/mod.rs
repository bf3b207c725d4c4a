//! The operation-sequence driver shared by the cargo-fuzz target (`fuzz/fuzz_targets/ops.rs`)
//! and the deterministic stable test (`tests/fuzz_ops.rs`): bytes in, a sequence of public
//! API calls out, invariants checked after every operation and at the end.
//!
//! Bounded work: each byte pair is at most one operation; callbacks schedule at most one
//! child, tasks yield at most 7 times, timers are either due at once, a few microseconds
//! away or an hour away (never waited for); no call blocks (`run_once(Some(ZERO))`, and
//! `run_forever` only after `stop()`).

use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use steploop::{EventLoop, Handle, Task, TimerHandle};

/// What scheduled a logged run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `call_soon` or a same-thread `Remote::call_soon_threadsafe` from the driver.
    Soon,
    /// A callback scheduled by another callback.
    Child,
    /// A timer.
    Timer,
    /// One poll of a task.
    TaskPoll,
}

/// One run: which id, what kind, in which iteration (0-based).
#[derive(Debug, Clone, Copy)]
struct Run {
    id: usize,
    kind: Kind,
    iteration: u64,
}

thread_local! {
    /// Every callback and task poll appends here (remote closures must be `Send`, so they
    /// cannot capture an `Rc`: they run on this thread and use this log).
    static LOG: RefCell<Vec<Run>> = const { RefCell::new(Vec::new()) };
}

/// The iteration being run (stats count the iterations already finished).
fn iteration() -> u64 {
    EventLoop::current().map_or(u64::MAX, |lp| lp.stats().iterations)
}

fn log(id: usize, kind: Kind) {
    let iteration = iteration();
    LOG.with(|l| {
        l.borrow_mut().push(Run {
            id,
            kind,
            iteration,
        })
    });
}

/// Owned by every closure and future; counts drops (`Send`, for remote closures).
struct Token(Arc<AtomicUsize>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future that yields `n` times, counting its polls in the log.
struct Yields {
    id: usize,
    left: u8,
    _token: Token,
}

impl Future for Yields {
    type Output = usize;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        log(self.id, Kind::TaskPoll);
        if self.left == 0 {
            Poll::Ready(self.id)
        } else {
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

enum Held {
    Soon(Handle),
    Timer(TimerHandle),
    Task(Task<usize>),
}

/// The model: what was scheduled, what may and what must run.
#[derive(Default)]
struct Model {
    /// Ids scheduled with `call_soon` or from the driver's `Remote` (FIFO among themselves).
    soon: Vec<usize>,
    /// Zero-delay and tiny-delay timers: deadline, id.
    timers: Vec<(f64, usize)>,
    /// Timers an hour away: must not run.
    far: HashSet<usize>,
    /// Cancelled before they ran: must never run.
    cancelled: HashSet<usize>,
    /// Ids with a child callback (the child logs the same id with `Kind::Child`).
    parents: HashSet<usize>,
    /// Tasks: id → number of polls it needs (yields + 1).
    tasks: Vec<(usize, usize)>,
    /// Closures and futures created (each owns one `Token`).
    tokens: usize,
}

struct Driver {
    lp: EventLoop,
    held: Vec<(usize, Held)>,
    model: Model,
    drops: Arc<AtomicUsize>,
    next_id: usize,
    /// Log entries already checked.
    seen: usize,
    ran: HashSet<(usize, bool)>,
    last_soon: Option<usize>,
    /// Runs per id and kind, to catch anything run twice.
    polls: std::collections::HashMap<usize, usize>,
    /// `Stats::callbacks` at the last check.
    stats_callbacks: u64,
    /// Callbacks run since the last check that do not log (the tasks of `block_on`).
    unlogged: usize,
}

impl Driver {
    fn token(&mut self) -> Token {
        self.model.tokens += 1;
        Token(self.drops.clone())
    }

    fn id(&mut self) -> usize {
        self.next_id += 1;
        self.next_id
    }

    fn call_soon(&mut self, with_child: bool) {
        let id = self.id();
        let token = self.token();
        let child_token = with_child.then(|| self.token());
        self.model.soon.push(id);
        if with_child {
            self.model.parents.insert(id);
        }
        let h = self.lp.call_soon(move || {
            let _t = token;
            log(id, Kind::Soon);
            if let Some(ct) = child_token {
                if let Some(lp) = EventLoop::current() {
                    lp.call_soon(move || {
                        let _t = ct;
                        log(id, Kind::Child);
                    });
                }
            }
        });
        self.held.push((id, Held::Soon(h)));
    }

    /// `call_soon_threadsafe` from this thread, or from another one (joined before the next
    /// operation, so the model's FIFO order stays known).
    fn call_remote(&mut self, other_thread: bool) {
        let id = self.id();
        let token = self.token();
        self.model.soon.push(id);
        let remote = self.lp.remote();
        let call = move || {
            remote.call_soon_threadsafe(move || {
                let _t = token;
                log(id, Kind::Soon);
            })
        };
        let res = if other_thread {
            std::thread::spawn(call)
                .join()
                .expect("remote thread panicked")
        } else {
            call()
        };
        assert!(res.is_ok(), "Remote of a live loop failed: {res:?}");
    }

    fn call_later(&mut self, arg: u8) {
        let id = self.id();
        let token = self.token();
        let delay = match arg % 4 {
            0 | 1 => Duration::ZERO,
            2 => Duration::from_micros(u64::from(arg % 50)),
            _ => Duration::from_secs(3600),
        };
        let h = self.lp.call_later(delay, move || {
            let _t = token;
            log(id, Kind::Timer);
        });
        if delay >= Duration::from_secs(1) {
            self.model.far.insert(id);
        } else {
            self.model.timers.push((h.when(), id));
        }
        self.held.push((id, Held::Timer(h)));
    }

    fn spawn(&mut self, arg: u8) {
        let id = self.id();
        let left = arg % 8;
        let fut = Yields {
            id,
            left,
            _token: self.token(),
        };
        self.model.tasks.push((id, usize::from(left) + 1));
        let t = self.lp.spawn(fut);
        self.held.push((id, Held::Task(t)));
    }

    fn has_run(&self, id: usize) -> bool {
        self.polls.contains_key(&id)
    }

    fn cancel(&mut self, arg: u8) {
        if self.held.is_empty() {
            return;
        }
        let i = usize::from(arg) % self.held.len();
        let (id, h) = &self.held[i];
        let id = *id;
        let finished = match h {
            Held::Soon(h) => {
                h.cancel();
                assert!(h.is_cancelled() || self.has_run(id));
                self.has_run(id)
            }
            Held::Timer(h) => {
                h.cancel();
                self.has_run(id)
            }
            Held::Task(t) => {
                let done = t.is_finished();
                t.cancel();
                assert!(t.is_finished());
                done
            }
        };
        if !finished {
            self.model.cancelled.insert(id);
        }
    }

    fn drop_handle(&mut self, arg: u8) {
        if self.held.is_empty() {
            return;
        }
        let i = usize::from(arg) % self.held.len();
        let (id, h) = self.held.swap_remove(i);
        // Dropping a task handle cancels the task; other handles do nothing.
        if let Held::Task(t) = &h {
            if !t.is_finished() {
                self.model.cancelled.insert(id);
            }
        }
        drop(h);
    }

    /// Checks the log entries added since the last check; returns how many callbacks ran
    /// (the `Stats::callbacks` delta, checked against the log).
    fn check_new(&mut self) -> usize {
        let new: Vec<Run> = LOG.with(|l| l.borrow()[self.seen..].to_vec());
        self.seen += new.len();
        let total = self.lp.stats().callbacks;
        let delta = (total - self.stats_callbacks) as usize;
        self.stats_callbacks = total;
        assert_eq!(
            delta,
            new.len() + self.unlogged,
            "Stats::callbacks != runs: {new:?}"
        );
        self.unlogged = 0;
        let mut last_iter_timer: Option<(u64, f64, usize)> = None;
        for (k, r) in new.iter().enumerate() {
            assert!(
                !self.model.cancelled.contains(&r.id),
                "cancelled id {} ran ({:?})",
                r.id,
                r.kind
            );
            assert!(!self.model.far.contains(&r.id), "a far timer ran");
            *self.polls.entry(r.id).or_default() += 1;
            match r.kind {
                Kind::Soon => {
                    assert!(self.ran.insert((r.id, false)), "id {} ran twice", r.id);
                    if let Some(prev) = self.last_soon {
                        assert!(prev < r.id, "call_soon FIFO broken: {prev} then {}", r.id);
                    }
                    self.last_soon = Some(r.id);
                }
                Kind::Child => {
                    assert!(self.ran.insert((r.id, true)), "child {} ran twice", r.id);
                    assert!(self.model.parents.contains(&r.id));
                    // The parent ran, in an earlier iteration.
                    let parent = LOG.with(|l| {
                        l.borrow()
                            .iter()
                            .find(|p| p.id == r.id && p.kind == Kind::Soon)
                            .copied()
                    });
                    let parent = parent.expect("child without parent run");
                    assert!(
                        parent.iteration < r.iteration,
                        "child ran in its parent's step"
                    );
                }
                Kind::Timer => {
                    assert!(self.ran.insert((r.id, false)), "timer {} ran twice", r.id);
                    let when = self
                        .model
                        .timers
                        .iter()
                        .find(|t| t.1 == r.id)
                        .map(|t| t.0)
                        .expect("unknown timer ran");
                    // Timers of one iteration run by (deadline, scheduling order).
                    if let Some((it, w, id)) = last_iter_timer {
                        if it == r.iteration {
                            assert!(
                                (w, id) < (when, r.id),
                                "timers out of order: ({w}, {id}) then ({when}, {})",
                                r.id
                            );
                        }
                    }
                    last_iter_timer = Some((r.iteration, when, r.id));
                    // Ready callbacks of the same iteration all ran before its timers.
                    if let Some(next) = new.get(k + 1) {
                        if next.iteration == r.iteration {
                            assert_eq!(next.kind, Kind::Timer, "a callback ran after a timer");
                        }
                    }
                }
                Kind::TaskPoll => {
                    let need = self
                        .model
                        .tasks
                        .iter()
                        .find(|t| t.0 == r.id)
                        .map(|t| t.1)
                        .expect("unknown task polled");
                    assert!(
                        self.polls[&r.id] <= need,
                        "task {} polled after completion",
                        r.id
                    );
                }
            }
        }
        delta
    }

    fn run_once(&mut self) {
        let step = self.lp.run_once(Some(Duration::ZERO)).expect("run_once");
        let new = self.check_new();
        assert_eq!(step.callbacks, new, "Step::callbacks != callbacks that ran");
        if step.pending > 0 {
            assert_eq!(self.lp.time_until_next(), Some(Duration::ZERO));
        }
    }
}

/// What one sequence did (for the stable test to check that the driver exercises the loop).
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Callbacks and task polls that ran.
    pub runs: usize,
    /// Callbacks, timers and tasks cancelled before they ran.
    pub cancelled: usize,
    /// Timers that ran.
    pub timers: usize,
}

/// Runs one operation sequence. Panics (with a message) on a broken invariant.
pub fn run(data: &[u8]) -> Summary {
    LOG.with(|l| l.borrow_mut().clear());
    let lp = EventLoop::new().expect("EventLoop::new");
    let drops = Arc::new(AtomicUsize::new(0));
    let mut d = Driver {
        lp,
        held: Vec::new(),
        model: Model::default(),
        drops: drops.clone(),
        next_id: 0,
        seen: 0,
        ran: HashSet::new(),
        last_soon: None,
        polls: Default::default(),
        stats_callbacks: 0,
        unlogged: 0,
    };
    for pair in data.chunks(2).take(256) {
        let op = pair[0];
        let arg = pair.get(1).copied().unwrap_or(0);
        match op % 12 {
            0 | 1 => d.call_soon(arg % 4 == 0),
            2 => d.call_later(arg),
            3 => d.cancel(arg),
            4 | 5 => d.run_once(),
            6 => d.call_remote(arg % 8 == 0),
            7 => d.spawn(arg),
            8 => d.drop_handle(arg),
            9 => {
                // `stop(); run_forever()` runs exactly one iteration.
                let before = d.lp.stats().iterations;
                d.lp.stop();
                d.lp.run_forever().expect("run_forever");
                assert_eq!(d.lp.stats().iterations, before + 1);
                d.check_new();
            }
            10 => {
                let out = d.lp.block_on(async move { arg }).expect("block_on");
                assert_eq!(out, arg);
                d.unlogged += 1; // the block_on task's one poll
                d.check_new();
            }
            _ => {
                d.lp.run_until_idle().expect("run_until_idle");
                d.check_new();
            }
        }
    }
    finish(d, &drops)
}

/// Drains the loop and checks that everything that had to run ran, exactly once.
fn finish(mut d: Driver, drops: &Arc<AtomicUsize>) -> Summary {
    // Tiny timers are at most 50 µs away.
    let latest = d
        .model
        .timers
        .iter()
        .map(|t| t.0)
        .fold(f64::NEG_INFINITY, f64::max);
    loop {
        d.lp.run_until_idle().expect("run_until_idle");
        d.check_new();
        if d.lp.time() > latest {
            d.lp.run_until_idle().expect("run_until_idle");
            d.check_new();
            break;
        }
    }
    let m = &d.model;
    for &id in &m.soon {
        let ran = d.ran.contains(&(id, false));
        assert_eq!(
            ran,
            !m.cancelled.contains(&id),
            "call_soon {id}: ran = {ran}"
        );
        if m.parents.contains(&id) {
            assert_eq!(d.ran.contains(&(id, true)), ran, "child of {id}");
        }
    }
    for &(_, id) in &m.timers {
        let ran = d.ran.contains(&(id, false));
        assert_eq!(ran, !m.cancelled.contains(&id), "timer {id}: ran = {ran}");
    }
    for &(id, need) in &m.tasks {
        let polls = d.polls.get(&id).copied().unwrap_or(0);
        if m.cancelled.contains(&id) {
            assert!(polls <= need);
        } else {
            assert_eq!(polls, need, "task {id} polls");
        }
    }
    for (id, h) in &d.held {
        if let Held::Task(t) = h {
            assert!(t.is_finished(), "task {id} not finished after draining");
        }
    }
    let summary = Summary {
        runs: LOG.with(|l| l.borrow().len()),
        cancelled: m.cancelled.len(),
        timers: LOG.with(|l| l.borrow().iter().filter(|r| r.kind == Kind::Timer).count()),
    };
    let tokens = m.tokens;
    drop(d);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        tokens,
        "closures not dropped exactly once"
    );
    summary
}
