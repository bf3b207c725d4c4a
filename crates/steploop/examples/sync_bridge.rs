//! The sync-to-async bridge: synchronous code on another thread runs a future on the loop
//! through a [`Remote`] and blocks until its result arrives. Without a loop to borrow, it
//! makes one, as `asyncio.run` does.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use steploop::{sleep, EventLoop, Remote};

/// Runs the future made by `make` on the loop behind `remote` and waits for its output —
/// from any thread but the loop's own.
fn run_async<T, Fut>(remote: &Remote, make: impl FnOnce() -> Fut + Send + 'static) -> T
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (tx, rx) = mpsc::channel();
    remote
        .call_soon_threadsafe(move || {
            // On the loop's thread now: spawn the future, send its output back.
            let lp = EventLoop::current().expect("called on the loop");
            lp.spawn(async move {
                let _ = tx.send(make().await);
            })
            .detach();
        })
        .expect("the loop is alive");
    rx.recv().expect("the task sent its output")
}

async fn fetch_data() -> Vec<(&'static str, &'static str)> {
    sleep(Duration::from_millis(100)).await;
    vec![("data", "value")]
}

fn main() -> steploop::Result<()> {
    // No loop running: make one and block on it (asyncio.run).
    let lp = EventLoop::new()?;
    println!("Без запущенного loop: {:?}", lp.block_on(fetch_data())?);

    // A loop running on this thread; synchronous code on another thread uses it.
    let remote = lp.remote();
    let worker = thread::spawn(move || {
        let result = run_async(&remote, fetch_data);
        println!("Из синхронного потока: {result:?}");
        // Stop the loop from the worker thread.
        remote
            .call_soon_threadsafe(|| {
                if let Some(lp) = EventLoop::current() {
                    lp.stop();
                }
            })
            .expect("the loop is alive");
    });
    lp.run_forever()?;
    worker.join().expect("worker thread");
    println!("Event loop остановлен");
    Ok(())
}
