//! Manual stepping — the seed's `loop._run_once()`, here a public API: run one iteration at a
//! time until the task is done, printing what each step did.

use steploop::EventLoop;

async fn simple_task() -> i32 {
    println!("Задача выполнена");
    42
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    let future = lp.spawn(simple_task());

    // Iterate until the task is done.
    let mut n = 0;
    while !future.is_finished() {
        let step = lp.run_once(None)?;
        n += 1;
        println!(
            "шаг {n}: callbacks={} timers={} io_events={} pending={} next_deadline={:?}",
            step.callbacks, step.timers, step.io_events, step.pending, step.next_deadline
        );
    }
    let result = lp.block_on(future)??;
    println!("Результат: {result}");
    Ok(())
}
