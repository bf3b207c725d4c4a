//! The cross-thread path: `Remote::call_soon_threadsafe` and thread-safe task wakers.

mod util;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use steploop::Error;
use util::{new_loop, run_until, step, SyncDropCounter};

#[test]
#[cfg_attr(miri, ignore)] // 8 x 10^5 calls: too slow under miri
fn eight_threads_times_1e5_calls_none_lost_order_kept() {
    const THREADS: usize = 8;
    const CALLS: u32 = 100_000;
    let lp = new_loop();
    let next: Arc<Vec<AtomicU32>> = Arc::new((0..THREADS).map(|_| AtomicU32::new(0)).collect());
    let out_of_order = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let remote = lp.remote();
            let (next, bad, total) = (next.clone(), out_of_order.clone(), total.clone());
            std::thread::spawn(move || {
                for i in 0..CALLS {
                    let (next, bad, total) = (next.clone(), bad.clone(), total.clone());
                    remote
                        .call_soon_threadsafe(move || {
                            // Per-thread order: call i of thread t runs after call i - 1.
                            if next[t].swap(i + 1, Ordering::Relaxed) != i {
                                bad.fetch_add(1, Ordering::Relaxed);
                            }
                            total.fetch_add(1, Ordering::Relaxed);
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    let want = THREADS * CALLS as usize;
    run_until(&lp, Duration::from_secs(60), || {
        total.load(Ordering::Relaxed) == want
    });
    for t in threads {
        t.join().unwrap();
    }
    step(&lp);
    assert_eq!(total.load(Ordering::Relaxed), want);
    assert_eq!(out_of_order.load(Ordering::Relaxed), 0);
    for n in next.iter() {
        assert_eq!(n.load(Ordering::Relaxed), CALLS);
    }
}

#[test]
#[cfg_attr(miri, ignore)] // blocks in epoll_wait and uses a real thread sleep
fn remote_wakes_a_blocked_poll() {
    let lp = new_loop();
    let remote = lp.remote();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .call_soon_threadsafe(move || d.store(true, Ordering::SeqCst))
            .unwrap();
    });
    // Nothing scheduled: this blocks until the other thread's call wakes it.
    let s = lp.run_once(None).unwrap();
    // The wake-up iteration may or may not already run the callback (it is drained after
    // the poll, so it does).
    assert_eq!(s.callbacks, 1);
    assert!(done.load(Ordering::SeqCst));
    t.join().unwrap();
}

#[test]
fn remote_after_loop_drop_is_loop_gone() {
    let lp = new_loop();
    let remote = lp.remote();
    let drops = SyncDropCounter::default();
    let tok = drops.token();
    remote.call_soon_threadsafe(move || drop(tok)).unwrap();
    assert!(!remote.is_gone());
    drop(lp);
    // The queued closure was dropped with the loop.
    assert_eq!(drops.dropped(), 1);
    assert!(remote.is_gone());
    let tok = drops.token();
    let res = remote.call_soon_threadsafe(move || drop(tok));
    assert!(matches!(res, Err(Error::LoopGone)));
    // The refused closure is dropped too, not leaked.
    assert_eq!(drops.dropped(), 2);
    assert_eq!(Error::LoopGone.to_string(), "the event loop is gone");
}

#[test]
fn remote_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<steploop::Remote>();
}

/// A minimal thread-safe one-shot channel, to wake a task from another thread.
#[derive(Default)]
struct Slot {
    value: Option<u32>,
    waker: Option<Waker>,
}

#[test]
#[cfg_attr(miri, ignore)] // blocks in epoll_wait
fn task_woken_from_another_thread() {
    let lp = new_loop();
    let slot = Arc::new(Mutex::new(Slot::default()));
    let s2 = slot.clone();
    let recv = std::future::poll_fn(move |cx| {
        let mut s = s2.lock().unwrap();
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    });
    let s3 = slot.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        let mut s = s3.lock().unwrap();
        s.value = Some(42);
        if let Some(w) = s.waker.take() {
            drop(s);
            w.wake();
        }
    });
    assert_eq!(lp.block_on(recv).unwrap(), 42);
    t.join().unwrap();
}

#[test]
fn waker_after_loop_drop_is_harmless() {
    let lp = new_loop();
    let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
    let s = stash.clone();
    let task = lp.spawn(std::future::poll_fn(move |cx| {
        *s.lock().unwrap() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }));
    step(&lp);
    task.detach();
    drop(lp);
    let w = stash.lock().unwrap().take().unwrap();
    w.wake_by_ref();
    w.wake();
}
