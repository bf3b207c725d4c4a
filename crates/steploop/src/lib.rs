//! steploop: an event loop engine whose single iteration, [`EventLoop::run_once`], is a public,
//! cheap, documented API — and the engine of the `steploop` asyncio loop for Python.
//!
//! ```
//! use std::cell::RefCell;
//! use std::rc::Rc;
//! use std::time::Duration;
//!
//! let lp = steploop::EventLoop::new().unwrap();
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let (a, b) = (log.clone(), log.clone());
//! lp.call_later(Duration::ZERO, move || a.borrow_mut().push("timer"));
//! lp.call_soon(move || b.borrow_mut().push("soon"));
//! let step = lp.run_once(None).unwrap();
//! // `call_later(0)` stays a timer: it runs after the callbacks already ready.
//! assert_eq!(step.callbacks, 2);
//! assert_eq!(*log.borrow(), ["soon", "timer"]);
//! ```
//!
//! # Implementation
//!
//! One loop is one thread. The loop owns one `mio::Poll` (epoll on Linux) and one `mio::Waker`
//! (an eventfd), created with the loop and kept for its whole life, so entering and leaving
//! `run_forever` or `run_once` costs no syscall besides the `epoll_wait` itself. File
//! descriptors are registered level-triggered, like asyncio's `EpollSelector`. Timers live in a
//! binary heap ordered like Python's `heapq`; cancellation is lazy. Other threads reach the
//! loop through a [`Remote`], which queues under a short lock and writes the eventfd only when
//! the loop is blocked in the poll. No other thread is started. A wait that may block first
//! polls without blocking for an adaptive window ([`BusyPoll`]), so that a fast
//! request/response exchange does not pay for a sleep and a wake-up per message.
//!
//! Futures run as tasks ([`EventLoop::spawn`], [`EventLoop::block_on`]): a task is one `Rc`
//! holding its future and is itself the callback the ready queue holds. Its `Waker` is
//! thread-safe: woken on the loop's thread it queues the task directly, woken elsewhere it goes
//! through the `Remote` queue. [`yield_now`] and [`sleep`] are `asyncio.sleep(0)` and
//! `asyncio.sleep(d)`.
#![warn(missing_docs, missing_debug_implementations)]

mod busy_poll;
mod clock;
mod core;
mod error;
mod event_loop;
mod handle;
mod reactor;
mod remote;
mod stats;
mod step;
mod sys;
mod task;
mod timer;

pub use crate::busy_poll::BusyPoll;
pub use crate::clock::Clock;
pub use crate::core::{Callback, Core, Runner, MAX_POLL_TIMEOUT};
/// The lock a [`Core`] guards its queues with unless told otherwise ([`Core::with_lock`]):
/// `parking_lot`'s raw mutex.
pub type DefaultLock = parking_lot::RawMutex;
pub use crate::error::{Error, Result};
pub use crate::event_loop::EventLoop;
pub use crate::handle::{Handle, TimerHandle};
pub use crate::reactor::{IoTable, Reactor, Readiness, WakeHandle, Watchers, WAKER_TOKEN};
pub use crate::remote::Remote;
pub use crate::stats::Stats;
pub use crate::step::Step;
pub use crate::task::{sleep, yield_now, Sleep, Task, YieldNow};
pub use crate::timer::{TieBreak, TimerHeap, MIN_SCHEDULED_FOR_COMPACTION};
/// What a [`Core`]'s queue lock implements (`lock_api`'s raw mutex trait, as re-exported by
/// `parking_lot`).
pub use parking_lot::lock_api::RawMutex;
