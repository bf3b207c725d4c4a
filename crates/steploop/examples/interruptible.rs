//! An interruptible long task: it checks a cancellation flag and yields to the loop every
//! 1000 steps, so a second task can interrupt it after 0.1 s.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use steploop::{sleep, yield_now, EventLoop};

/// A task that can be interrupted.
#[derive(Default)]
struct InterruptibleTask {
    cancelled: Cell<bool>,
    result: Cell<Option<u64>>,
}

impl InterruptibleTask {
    /// Requests cancellation.
    fn cancel(&self) {
        self.cancelled.set(true);
    }

    /// Computes, interruptibly.
    async fn run(&self, iterations: u64) -> Option<u64> {
        let mut result: u64 = 0;
        for i in 0..iterations {
            if self.cancelled.get() {
                println!("Задача прервана на итерации {i}");
                return None;
            }
            result = result.wrapping_add(i);
            // Check now and then, and free the loop.
            if i % 1000 == 0 {
                yield_now().await;
            }
        }
        self.result.set(Some(result));
        Some(result)
    }
}

/// Cancels `task` after `delay`.
async fn cancel_after(task: Rc<InterruptibleTask>, delay: Duration) {
    sleep(delay).await;
    task.cancel();
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    let task = Rc::new(InterruptibleTask::default());
    let canceller = lp.spawn(cancel_after(task.clone(), Duration::from_millis(100)));
    // Far more work than 0.1 s allows, in a debug or a release build alike (the seed's
    // 10^6 steps take CPython longer than 0.1 s; compiled Rust does them in a few ms).
    let result = lp.block_on(async move { task.run(1_000_000_000_000).await })?;
    lp.block_on(canceller)??;
    println!("Результат: {result:?}");
    Ok(())
}
