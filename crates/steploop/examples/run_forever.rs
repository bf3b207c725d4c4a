//! `loop.run_forever()` and `loop.stop()`: a periodic task runs until another one stops the
//! loop; then the pending tasks are cancelled.

use std::time::Duration;

use steploop::{sleep, EventLoop};

/// Stops the loop after `delay`.
async fn schedule_stop(lp: EventLoop, delay: Duration) {
    sleep(delay).await;
    lp.stop();
}

/// A periodic task.
async fn periodic_task() {
    let mut counter = 0;
    loop {
        counter += 1;
        println!("Итерация {counter}");
        sleep(Duration::from_millis(300)).await;
    }
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    // Schedule the tasks.
    let periodic = lp.spawn(periodic_task());
    let stopper = lp.spawn(schedule_stop(lp.clone(), Duration::from_secs(2)));

    // Run the loop "forever".
    lp.run_forever()?;
    println!("Event loop остановлен");

    // Cancel every pending task before closing (dropping a Task cancels it too).
    let pending = [periodic, stopper];
    for task in &pending {
        task.cancel();
    }
    let results = lp.block_on(async move {
        let mut out = Vec::new();
        for task in pending {
            out.push(task.await.map_err(|e| e.to_string()));
        }
        out
    })?;
    println!(
        "Отменено задач: {}",
        results.iter().filter(|r| r.is_err()).count()
    );
    Ok(())
}
