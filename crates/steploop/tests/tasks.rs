//! Futures on the loop: spawn, join, cancel, detach, sleep, yield_now.

mod util;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use steploop::{Error, EventLoop, Task};
use util::{new_loop, step, Log};

#[test]
fn spawn_runs_on_next_step_and_join_gives_output() {
    let lp = new_loop();
    let task = lp.spawn(async { 3 });
    assert!(!task.is_finished());
    step(&lp);
    assert!(task.is_finished());
    assert_eq!(lp.block_on(task).unwrap().unwrap(), 3);
}

#[test]
fn tasks_interleave_at_yield_points() {
    let lp = new_loop();
    let log = Log::new();
    for name in ["a", "b"] {
        let l = log.clone();
        lp.spawn(async move {
            for i in 0..3 {
                l.add(format!("{name}{i}"));
                steploop::yield_now().await;
            }
        })
        .detach();
    }
    lp.run_until_idle().unwrap();
    log.assert_eq(&["a0", "b0", "a1", "b1", "a2", "b2"].map(String::from));
}

#[test]
#[cfg_attr(miri, ignore)] // timing: the three sleeps must start within 10 ms of each other
fn sleeps_complete_in_deadline_order() {
    let lp = new_loop();
    let log = Log::new();
    let mut tasks = Vec::new();
    for ms in [30u64, 10, 20] {
        let l = log.clone();
        tasks.push(lp.spawn(async move {
            steploop::sleep(Duration::from_millis(ms)).await;
            l.add(ms);
        }));
    }
    lp.block_on(async move {
        for t in tasks {
            t.await.unwrap();
        }
    })
    .unwrap();
    log.assert_eq(&[10, 20, 30]);
}

#[test]
fn sleep_zero_is_yield_now() {
    let lp = new_loop();
    let log = Log::new();
    let l = log.clone();
    lp.spawn(async move {
        l.add("start");
        steploop::sleep(Duration::ZERO).await;
        l.add("end");
    })
    .detach();
    step(&lp);
    log.assert_eq(&["start"]);
    assert_eq!(lp.scheduled_timers(), 0);
    step(&lp);
    log.assert_eq(&["end"]);
}

#[test]
fn cancel_explicitly_and_await_gives_cancelled() {
    let lp = new_loop();
    let task = lp.spawn(async { steploop::sleep(Duration::from_secs(60)).await });
    step(&lp);
    task.cancel();
    assert!(task.is_finished());
    assert!(matches!(lp.block_on(task).unwrap(), Err(Error::Cancelled)));
}

#[test]
fn a_task_can_cancel_itself() {
    let lp = new_loop();
    let slot: Rc<RefCell<Option<Task<()>>>> = Rc::default();
    let s = slot.clone();
    let reached = Rc::new(Cell::new(false));
    let r = reached.clone();
    let task = lp.spawn(async move {
        if let Some(me) = s.borrow().as_ref() {
            me.cancel();
        }
        steploop::yield_now().await;
        r.set(true);
    });
    *slot.borrow_mut() = Some(task);
    lp.run_until_idle().unwrap();
    assert!(!reached.get());
    let task = slot.borrow_mut().take().unwrap();
    assert!(task.is_finished());
}

#[test]
fn awaiting_a_task_from_another() {
    let lp = new_loop();
    let lp2 = lp.clone();
    let out = lp
        .block_on(async move {
            let inner = lp2.spawn(async {
                steploop::sleep(Duration::from_millis(1)).await;
                "inner"
            });
            inner.await.unwrap()
        })
        .unwrap();
    assert_eq!(out, "inner");
}

#[test]
fn current_loop_inside_a_task() {
    let lp = new_loop();
    let same = lp
        .block_on(async {
            let cur = EventLoop::current().unwrap();
            cur.call_soon(|| {});
            cur.is_running()
        })
        .unwrap();
    assert!(same);
}

#[test]
fn loop_sleep_works_without_current() {
    let lp = new_loop();
    let s = lp.sleep(Duration::from_millis(1));
    lp.block_on(s).unwrap();
}

#[test]
fn dropped_sleep_cancels_its_timer() {
    let lp = new_loop();
    let lp2 = lp.clone();
    lp.block_on(async move {
        let mut s = std::pin::pin!(steploop::sleep(Duration::from_secs(60)));
        // Poll once, then drop.
        std::future::poll_fn(|cx| {
            let _ = s.as_mut().poll(cx);
            std::task::Poll::Ready(())
        })
        .await;
        assert_eq!(lp2.scheduled_timers(), 1);
    })
    .unwrap();
    step(&lp);
    assert_eq!(lp.scheduled_timers(), 0);
}

use std::future::Future;

#[test]
fn many_tasks_reuse_slots() {
    let lp = new_loop();
    // Fewer under miri, which interprets every poll.
    let n = if cfg!(miri) { 50 } else { 1000 };
    for round in 0..3 {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                lp.spawn(async move {
                    steploop::yield_now().await;
                    i * round
                })
            })
            .collect();
        let sum = lp
            .block_on(async move {
                let mut s = 0;
                for t in tasks {
                    s += t.await.unwrap();
                }
                s
            })
            .unwrap();
        assert_eq!(sum, round * (n - 1) * n / 2);
    }
}
