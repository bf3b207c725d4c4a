//! Debug mode's slow-callback warning: a callback (here a task step) that blocks the loop
//! longer than the threshold is reported, as asyncio logs
//! `Executing <...> took 0.061 seconds`.

use std::time::Duration;

use steploop::EventLoop;

async fn demo() {
    // A blocking call inside a task: it stalls the whole loop.
    std::thread::sleep(Duration::from_millis(60));
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    // The threshold for the warning (asyncio's default is 0.1 s).
    lp.set_slow_callback(Some(Duration::from_millis(50)), |what, took| {
        println!("Executing <{what}> took {:.3} seconds", took.as_secs_f64());
    });
    lp.block_on(demo())?;
    // A fast callback is not reported.
    lp.call_soon(|| {});
    lp.run_until_idle()?;
    println!("Готово");
    Ok(())
}
