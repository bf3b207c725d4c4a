//! `call_soon`, `call_later` and `call_at`: callbacks in the order the loop runs them.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use steploop::{sleep, EventLoop};

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    let results = Rc::new(RefCell::new(Vec::new()));

    let my_callback = |value: &'static str| {
        let results = results.clone();
        move || {
            results.borrow_mut().push(value);
            println!("Callback: {value}");
        }
    };

    // call_soon: run in the next iteration.
    lp.call_soon(my_callback("first"));
    lp.call_soon(my_callback("second"));

    // call_later: run after a delay.
    lp.call_later(Duration::from_millis(100), my_callback("delayed"));

    // call_at: run at a point in time (an Instant; `lp.time()` is the loop's own clock).
    lp.call_at(
        Instant::now() + Duration::from_millis(200),
        my_callback("at_time"),
    );

    // Run the loop long enough for every callback.
    lp.block_on(sleep(Duration::from_millis(300)))?;
    println!("Все результаты: {:?}", results.borrow());
    Ok(())
}
