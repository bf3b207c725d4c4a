//! Chunked processing: process a large input in chunks, freeing the loop between chunks so
//! that other tasks (here a heartbeat) keep running.

use std::cell::Cell;
use std::rc::Rc;

use steploop::{yield_now, EventLoop};

/// Processes `items` in chunks of `chunk_size`, yielding to the loop between chunks; hands
/// every result to `sink`.
async fn chunked_process<T, R>(
    items: &[T],
    processor: impl Fn(&T) -> R,
    chunk_size: usize,
    mut sink: impl FnMut(R),
) {
    for chunk in items.chunks(chunk_size) {
        // Process the chunk.
        for item in chunk {
            sink(processor(item));
        }
        // Free the loop.
        yield_now().await;
    }
}

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    let beats = Rc::new(Cell::new(0));
    let done = Rc::new(Cell::new(false));
    let (b, d) = (beats.clone(), done.clone());
    // Another task that must not starve while the data is processed.
    let heartbeat = lp.spawn(async move {
        while !d.get() {
            b.set(b.get() + 1);
            yield_now().await;
        }
    });
    lp.block_on(async move {
        let data: Vec<u64> = (0..10_000).collect();
        let mut sum = 0;
        chunked_process(&data, |x| x * 2, 1000, |r| sum += r).await;
        done.set(true);
        println!("Обработка завершена");
        println!("Сумма: {sum}");
    })?;
    println!("Пульс между чанками: {}", beats.get());
    drop(heartbeat);
    Ok(())
}
