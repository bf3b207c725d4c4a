//! `loop.run_until_complete(coro)` in Rust: [`EventLoop::block_on`].

use std::time::Duration;

use steploop::{sleep, EventLoop};

async fn my_coroutine() -> &'static str {
    sleep(Duration::from_secs(1)).await;
    "Результат"
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    // Run the future synchronously, to completion.
    let result = lp.block_on(my_coroutine())?;
    println!("Получили: {result}");
    Ok(())
}
