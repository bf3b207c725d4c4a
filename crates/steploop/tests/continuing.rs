//! `Core::run_once_continuing`: back-to-back iterations that skip their clock reads must keep
//! the statistics exact and must never judge a timer with a stale time.

mod util;

use std::time::Duration;

use steploop::{Core, Runner, TieBreak};
use util::{core_with, Named};

/// Spins on the loop's clock for at least `secs` (the durations the tests check are lower
/// bounds read from the same clock, so no timing assumption is involved).
fn spin(core: &Core<Named>, secs: f64) {
    let until = core.time() + secs;
    while core.time() < until {
        std::hint::spin_loop();
    }
}

/// Runs the callbacks the tests schedule: `"busy"` spins 2 ms and schedules itself again
/// while `busy_left` lasts; `"timer+spin"` schedules `"t"` 1 ms ahead, then spins 3 ms.
struct Driver<'a> {
    core: &'a Core<Named>,
    busy_left: usize,
    ran: Vec<&'static str>,
}

impl Runner<Named> for Driver<'_> {
    type Error = std::io::Error;
    fn run(&mut self, cb: &Named) -> std::io::Result<()> {
        self.ran.push(cb.0);
        match cb.0 {
            "busy" => {
                spin(self.core, 0.002);
                if self.busy_left > 0 {
                    self.busy_left -= 1;
                    self.core.push_ready(Named::new("busy"));
                }
            }
            "timer+spin" => {
                self.core
                    .push_timer(self.core.time() + 0.001, Named::new("t"));
                spin(self.core, 0.003);
            }
            _ => {}
        }
        Ok(())
    }
    fn poll_failed(&mut self, e: std::io::Error) -> std::io::Result<()> {
        Err(e)
    }
    /// Untimed, as the Python loop outside debug mode: what lets iterations skip the read.
    fn timed(&self) -> bool {
        false
    }
}

/// A driver for `core` after one ordinary (clock-reading) iteration has run `"first"`: the
/// next `run_once_continuing` starts where it ended.
fn after_a_first_iteration(core: &Core<Named>) -> Driver<'_> {
    let mut driver = Driver {
        core,
        busy_left: 0,
        ran: Vec::new(),
    };
    core.push_ready(Named::new("first"));
    core.run_once(Some(Duration::ZERO), &mut driver).unwrap();
    driver
}

#[test]
fn skipped_clock_reads_still_count_as_busy_time() {
    let core = core_with(TieBreak::Fifo);
    let mut driver = Driver {
        core: &core,
        busy_left: 4,
        ran: Vec::new(),
    };
    core.push_ready(Named::new("busy"));
    let first = core.run_once(Some(Duration::ZERO), &mut driver).unwrap();
    assert_eq!(first.callbacks, 1);
    let mut iterations = 1;
    loop {
        let step = core
            .run_once_continuing(Some(Duration::ZERO), &mut driver)
            .unwrap();
        iterations += 1;
        if step.callbacks == 0 {
            break;
        }
    }
    assert_eq!(driver.ran, ["busy"; 5]);
    let stats = core.stats();
    assert_eq!(stats.iterations, iterations);
    assert_eq!(stats.callbacks, 5);
    assert_eq!(stats.poll_time, Duration::ZERO);
    // Five callbacks of at least 2 ms each, all of them counted although only some
    // iterations read the clock at their end.
    assert!(
        stats.busy_time >= Duration::from_millis(10),
        "busy {:?}",
        stats.busy_time
    );
    // Nothing but callbacks ran: busy and wall time are the same spans of the same clock.
    assert!(stats.utilization > 0.9, "utilization {}", stats.utilization);
}

#[test]
fn a_timer_after_iterations_without_clock_reads_is_judged_on_a_fresh_clock() {
    let core = core_with(TieBreak::Fifo);
    let mut driver = after_a_first_iteration(&core);
    // No timer when this iteration starts: it may skip its end-of-iteration clock read;
    // its callback schedules a timer 1 ms ahead and then runs 3 ms.
    core.push_ready(Named::new("timer+spin"));
    let step = core
        .run_once_continuing(Some(Duration::ZERO), &mut driver)
        .unwrap();
    assert_eq!((step.callbacks, step.timers), (1, 0));
    // The timer is due by now. Judged with the time the previous iteration started at, it
    // would not be (and a zero wait would not run it).
    let step = core
        .run_once_continuing(Some(Duration::ZERO), &mut driver)
        .unwrap();
    assert_eq!((step.callbacks, step.timers), (1, 1));
    assert_eq!(driver.ran, ["first", "timer+spin", "t"]);
    assert!(core.stats().busy_time >= Duration::from_millis(3));
}

#[test]
fn reset_stats_drops_the_unaccounted_span() {
    let core = core_with(TieBreak::Fifo);
    let mut driver = after_a_first_iteration(&core);
    core.push_ready(Named::new("busy"));
    core.run_once_continuing(Some(Duration::ZERO), &mut driver)
        .unwrap();
    assert!(core.stats().busy_time >= Duration::from_millis(2));
    core.reset_stats();
    let stats = core.stats();
    assert_eq!((stats.iterations, stats.callbacks), (0, 0));
    assert!(
        stats.busy_time < Duration::from_millis(2),
        "busy {:?}",
        stats.busy_time
    );
}
