//! Arbitrary sequences of public-API operations on one loop (call_soon, call_later, cancel,
//! run_once(Some(ZERO)), stop + run_forever, block_on, run_until_idle, same-thread Remote
//! calls, tasks, dropped handles), with the loop's invariants checked after every operation.
//! The driver is shared with the stable test `tests/fuzz_ops.rs`.
//!
//! ```text
//! cd crates/steploop && cargo +nightly fuzz run ops -- -max_total_time=60
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzz_driver/mod.rs"]
#[allow(dead_code)] // `Summary` is read by the stable test only
mod fuzz_driver;

fuzz_target!(|data: &[u8]| {
    fuzz_driver::run(data);
});
