//! `await asyncio.sleep(0)` in Rust: a long computation yields to the loop every 10 000
//! steps so that a background task keeps running.

use std::time::Duration;

use steploop::{sleep, yield_now, EventLoop};

/// A long computation that frees the loop now and then.
async fn long_computation() -> u64 {
    let mut result: u64 = 0;
    for i in 0..1_000_000u64 {
        result += i * i;
        // Every 10 000 steps, let the loop run other tasks.
        if i % 10_000 == 0 {
            yield_now().await;
            println!("Прогресс: {:.1}%", i as f64 / 10_000.0);
        }
    }
    result
}

/// A background task.
async fn background_task() {
    loop {
        println!("Фоновая задача работает!");
        sleep(Duration::from_millis(500)).await;
    }
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    let lp2 = lp.clone();
    lp.block_on(async move {
        // Start the background task; the computation does not block it.
        let bg = lp2.spawn(background_task());
        let result = long_computation().await;
        println!("Результат: {result}");
        bg.cancel();
    })
}
