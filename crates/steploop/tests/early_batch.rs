//! `Runner::AFTER_POLL_QUEUES = false` lets a busy iteration take its batch in its first
//! critical section (no timer, no fd, nothing to poll). That is a shortcut, not a different
//! iteration: every scenario here runs once with it and once without, and both runs must
//! report the same callbacks, steps and statistics.

mod util;

use std::os::fd::AsRawFd;
use std::time::Duration;

use steploop::{Core, Runner, TieBreak};
use util::{core_with, Named};

/// Runs scripted callbacks; `EARLY` is its `AFTER_POLL_QUEUES` negated.
struct Script<'a, const EARLY: bool> {
    core: &'a Core<Named>,
    ran: Vec<&'static str>,
    chain_left: usize,
}

impl<const EARLY: bool> Runner<Named> for Script<'_, EARLY> {
    type Error = std::io::Error;
    const AFTER_POLL_QUEUES: bool = !EARLY;

    fn run(&mut self, cb: &Named) -> std::io::Result<()> {
        self.ran.push(cb.0);
        let core = self.core;
        match cb.0 {
            // A call_soon chain: each one schedules the next.
            "chain" if self.chain_left > 0 => {
                self.chain_left -= 1;
                core.push_ready(Named::new("chain"));
            }
            // Fan out: three callbacks, one of them cancelled before it runs.
            "fan" => {
                core.push_ready(Named::new("f1"));
                let cancelled = Named::new("never");
                core.push_ready(cancelled.clone());
                cancelled.1.set(true);
                core.push_ready(Named::new("f2"));
            }
            // A timer already due and one far away: the next iteration has timers.
            "timers" => {
                core.push_timer(core.time() - 1.0, Named::new("due"));
                core.push_timer(core.time() + 3600.0, Named::new("later"));
                core.push_ready(Named::new("after-timers"));
            }
            // stop() with work queued behind it: that work runs in the next run.
            "stop" => {
                core.stop();
                core.push_ready(Named::new("after-stop"));
            }
            _ => {}
        }
        Ok(())
    }

    fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
        Err(e)
    }

    fn timed(&self) -> bool {
        false
    }
}

/// What a run looks like from outside: per step, the callbacks run and the report's counts;
/// then the statistics' counters.
type Trace = (
    Vec<(Vec<&'static str>, usize, usize, usize, bool)>,
    (u64, u64, u64),
);

/// Schedules `first`, then steps the core as `run_forever` does (continuing iterations
/// until the stop flag, which is then cleared) for at most `steps` iterations.
fn trace<const EARLY: bool>(core: &Core<Named>, first: &[&'static str], steps: usize) -> Trace {
    let mut script = Script::<EARLY> {
        core,
        ran: Vec::new(),
        chain_left: 5,
    };
    for name in first {
        core.push_ready(Named::new(name));
    }
    let mut out = Vec::new();
    for i in 0..steps {
        let step = if i == 0 {
            core.run_once(Some(Duration::ZERO), &mut script)
        } else {
            core.run_once_continuing(Some(Duration::ZERO), &mut script)
        };
        let step = match step {
            Ok(step) => step,
            Err(e) => panic!("iteration failed: {e}"),
        };
        out.push((
            std::mem::take(&mut script.ran),
            step.callbacks,
            step.timers,
            step.pending,
            step.next_deadline.is_some(),
        ));
        if core.is_stopping() {
            core.set_stopping(false);
        }
    }
    let s = core.stats();
    (out, (s.iterations, s.callbacks, s.timers))
}

#[track_caller]
fn same_both_ways(first: &[&'static str], steps: usize) -> Trace {
    let early = trace::<true>(&core_with(TieBreak::Fifo), first, steps);
    let plain = trace::<false>(&core_with(TieBreak::Fifo), first, steps);
    assert_eq!(early, plain);
    early
}

#[test]
fn a_chain_runs_one_callback_per_iteration() {
    let (steps, stats) = same_both_ways(&["chain"], 8);
    let ran: Vec<_> = steps.iter().map(|s| s.0.len()).collect();
    assert_eq!(ran, [1, 1, 1, 1, 1, 1, 0, 0]);
    assert_eq!(stats, (8, 6, 0));
}

#[test]
fn fan_out_and_cancelled_callbacks() {
    let (steps, _) = same_both_ways(&["fan", "x"], 3);
    assert_eq!(steps[0].0, ["fan", "x"]);
    assert_eq!(steps[1].0, ["f1", "f2"]); // the cancelled one is skipped, not counted
    assert_eq!(steps[1].1, 2);
}

#[test]
fn timers_take_the_full_path_and_come_due_in_order() {
    let (steps, stats) = same_both_ways(&["timers"], 4);
    assert_eq!(steps[0].0, ["timers"]);
    assert_eq!(steps[1].0, ["after-timers", "due"]);
    assert_eq!((steps[1].2, steps[1].4), (1, true)); // one came due, one still pending
    assert_eq!(stats.2, 1);
}

#[test]
fn stop_ends_the_iteration_and_keeps_what_was_queued() {
    let (steps, _) = same_both_ways(&["stop", "y"], 3);
    assert_eq!(steps[0].0, ["stop", "y"]);
    assert_eq!(steps[0].3, 1); // "after-stop" pending after the stopping iteration
    assert_eq!(steps[1].0, ["after-stop"]);
}

#[test]
fn a_watched_fd_takes_the_full_path() {
    let core = core_with(TieBreak::Fifo);
    let (a, _b) = match std::os::unix::net::UnixStream::pair() {
        Ok(pair) => pair,
        Err(e) => panic!("socketpair: {e}"),
    };
    if let Err(e) = core.set_watcher(a.as_raw_fd(), true, Some(Named::new("writable"))) {
        panic!("set_watcher: {e}");
    }
    let (steps, _) = trace::<true>(&core, &["chain"], 3);
    // The socket is writable: its writer runs each iteration, after the ready callbacks.
    assert_eq!(steps[0].0, ["chain", "writable"]);
    assert_eq!(steps[1].0, ["chain", "writable"]);
    if let Err(e) = core.set_watcher(a.as_raw_fd(), true, None) {
        panic!("set_watcher: {e}");
    }
}
