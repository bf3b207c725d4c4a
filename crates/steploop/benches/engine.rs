//! Criterion benches of the engine, each next to tokio's current_thread runtime doing the
//! closest thing: scheduling throughput, spawn + yield, timer insert + cancel with 0 and 10^6
//! pending timers, one forced iteration of an idle loop, and cross-thread wake latency.
//!
//! `cargo bench -p steploop --bench engine`

use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use steploop::EventLoop;

const BATCH: u64 = 1000;

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("tokio runtime")
}

fn new_loop() -> EventLoop {
    EventLoop::new().expect("event loop")
}

/// `call_soon` of 1000 empty callbacks, then the iteration that runs them; tokio's closest
/// operation is spawning (and joining) 1000 empty tasks.
fn schedule(c: &mut Criterion) {
    let mut g = c.benchmark_group("schedule_1000");
    g.throughput(Throughput::Elements(BATCH));
    let lp = new_loop();
    g.bench_function("steploop/call_soon+run_once", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                lp.call_soon(|| {});
            }
            lp.run_once(Some(Duration::ZERO)).expect("run_once")
        })
    });
    let lp2 = lp.clone();
    g.bench_function("steploop/spawn+join", |b| {
        b.iter(|| {
            let lp3 = lp2.clone();
            lp2.block_on(async move {
                let tasks: Vec<_> = (0..BATCH).map(|i| lp3.spawn(async move { i })).collect();
                let mut sum = 0;
                for t in tasks {
                    sum += t.await.expect("task");
                }
                sum
            })
            .expect("block_on")
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio/spawn+join", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..BATCH).map(|i| tokio::spawn(async move { i })).collect();
                let mut sum = 0;
                for t in tasks {
                    sum += t.await.expect("task");
                }
                sum
            })
        })
    });
    g.finish();
}

/// 1000 tasks that each yield once, spawned and joined; and one task that yields 1000 times.
fn spawn_yield(c: &mut Criterion) {
    let mut g = c.benchmark_group("yield");
    g.throughput(Throughput::Elements(BATCH));
    let lp = new_loop();
    g.bench_function("steploop/spawn+yield_now x1000", |b| {
        b.iter(|| {
            let lp2 = lp.clone();
            lp.block_on(async move {
                let tasks: Vec<_> = (0..BATCH)
                    .map(|_| lp2.spawn(async { steploop::yield_now().await }))
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
            })
            .expect("block_on")
        })
    });
    let rt = tokio_rt();
    g.bench_function("tokio/spawn+yield_now x1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                let tasks: Vec<_> = (0..BATCH)
                    .map(|_| tokio::spawn(async { tokio::task::yield_now().await }))
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
            })
        })
    });
    g.bench_function("steploop/1 task yield_now x1000", |b| {
        b.iter(|| {
            lp.block_on(async {
                for _ in 0..BATCH {
                    steploop::yield_now().await;
                }
            })
            .expect("block_on")
        })
    });
    g.bench_function("tokio/1 task yield_now x1000", |b| {
        b.iter(|| {
            rt.block_on(async {
                for _ in 0..BATCH {
                    tokio::task::yield_now().await;
                }
            })
        })
    });
    g.finish();
}

struct Noop;

impl std::task::Wake for Noop {
    fn wake(self: Arc<Self>) {}
}

/// Polls `fut` once with a no-op waker (registers a tokio sleep with the timer driver).
fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
    thread_local! {
        static NOOP: Waker = Waker::from(Arc::new(Noop));
    }
    NOOP.with(|w| fut.poll(&mut Context::from_waker(w)))
}

/// 1000 × (schedule a 1 s timer, cancel it), plus the iteration that drops the cancelled
/// entries (asyncio's compaction rule), with 0 or 10^6 other timers pending.
fn timers(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_insert_cancel_1000");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    for pending in [0usize, 1_000_000] {
        let lp = new_loop();
        let keep: Vec<_> = (0..pending)
            .map(|i| lp.call_later(Duration::from_secs(1000 + (i % 1000) as u64), || {}))
            .collect();
        g.bench_with_input(BenchmarkId::new("steploop", pending), &pending, |b, _| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let t = lp.call_later(Duration::from_secs(1), || {});
                    t.cancel();
                }
                lp.run_once(Some(Duration::ZERO)).expect("run_once")
            })
        });
        drop(keep);
        drop(lp);

        let rt = tokio_rt();
        let _enter = rt.enter();
        let mut keep: Vec<Pin<Box<tokio::time::Sleep>>> = Vec::with_capacity(pending);
        for i in 0..pending {
            let mut s = Box::pin(tokio::time::sleep(Duration::from_secs(
                1000 + (i % 1000) as u64,
            )));
            let _ = poll_once(s.as_mut());
            keep.push(s);
        }
        g.bench_with_input(BenchmarkId::new("tokio", pending), &pending, |b, _| {
            b.iter(|| {
                for _ in 0..BATCH {
                    let mut s = Box::pin(tokio::time::sleep(Duration::from_secs(1)));
                    black_box(poll_once(s.as_mut()).is_pending());
                    drop(s);
                }
            })
        });
        drop(keep);
    }
    g.finish();
}

/// One forced iteration of an idle loop: what `loop._run_once()` costs.
fn idle(c: &mut Criterion) {
    let mut g = c.benchmark_group("idle_iteration");
    let lp = new_loop();
    g.bench_function("steploop/run_once(ZERO)", |b| {
        b.iter(|| lp.run_once(Some(Duration::ZERO)).expect("run_once"))
    });
    let (a, _b) = std::os::unix::net::UnixStream::pair().expect("socketpair");
    let lp_fd = new_loop();
    lp_fd
        .add_reader(std::os::fd::AsRawFd::as_raw_fd(&a), || {})
        .expect("add_reader");
    g.bench_function("steploop/run_once(ZERO) one fd watched", |b| {
        b.iter(|| lp_fd.run_once(Some(Duration::ZERO)).expect("run_once"))
    });
    let rt = tokio_rt();
    g.bench_function("tokio/block_on(yield_now)", |b| {
        b.iter(|| rt.block_on(tokio::task::yield_now()))
    });
    g.finish();
}

/// A one-shot slot completed from another thread.
#[derive(Default)]
struct Slot {
    done: bool,
    waker: Option<Waker>,
}

async fn wait_slot(slot: Arc<Mutex<Slot>>) {
    std::future::poll_fn(move |cx| {
        let mut s = slot.lock().expect("slot");
        if s.done {
            Poll::Ready(())
        } else {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    })
    .await
}

/// A helper thread that completes every slot it is sent.
fn completer() -> mpsc::Sender<Arc<Mutex<Slot>>> {
    let (tx, rx) = mpsc::channel::<Arc<Mutex<Slot>>>();
    std::thread::spawn(move || {
        for slot in rx {
            let w = {
                let mut s = slot.lock().expect("slot");
                s.done = true;
                s.waker.take()
            };
            if let Some(w) = w {
                w.wake();
            }
        }
    });
    tx
}

/// One round trip through the [`completer`] behind `tx`: hand it a fresh slot from inside
/// the runtime, then wait until it wakes us.
fn round_trip(tx: &mpsc::Sender<Arc<Mutex<Slot>>>) -> impl Future<Output = ()> {
    let slot = Arc::new(Mutex::new(Slot::default()));
    let tx = tx.clone();
    async move {
        let _ = tx.send(slot.clone());
        wait_slot(slot).await
    }
}

/// Round trip: the loop hands a slot to another thread and waits in its poll until that
/// thread's waker wakes it: with busy polling (the default; the wait spins first, see
/// `BusyPoll`) and without it (the wait sleeps, as tokio's does).
fn cross_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_thread_wake");
    let lp = new_loop();
    let tx = completer();
    for (name, limit) in [
        ("steploop", steploop::BusyPoll::DEFAULT_LIMIT),
        ("steploop/no_busy_poll", Duration::ZERO),
    ] {
        lp.set_busy_poll(limit);
        g.bench_function(name, |b| {
            b.iter(|| lp.block_on(round_trip(&tx)).expect("block_on"))
        });
    }
    lp.set_busy_poll(steploop::BusyPoll::DEFAULT_LIMIT);
    let remote = lp.remote();
    g.bench_function("steploop/call_soon_threadsafe", |b| {
        let (req_tx, req_rx) = mpsc::channel::<()>();
        let r = remote.clone();
        std::thread::spawn(move || {
            for () in req_rx {
                if r.call_soon_threadsafe(|| {}).is_err() {
                    break;
                }
            }
        });
        b.iter(|| {
            req_tx.send(()).expect("send");
            while lp.run_once(None).expect("run_once").callbacks == 0 {}
        })
    });
    let rt = tokio_rt();
    let tx = completer();
    g.bench_function("tokio", |b| b.iter(|| rt.block_on(round_trip(&tx))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = schedule, spawn_yield, timers, idle, cross_thread
}
criterion_main!(benches);
