//! The cargo-fuzz driver (`fuzz/fuzz_targets/ops.rs`) on stable: operation sequences from a
//! xorshift PRNG over many seeds, so the same invariants are checked by `cargo test`. See
//! `tests/fuzz_driver/mod.rs` for the operations and the invariants.

mod fuzz_driver;

/// xorshift64*: small, fast, deterministic.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..len).map(|_| rng.next() as u8).collect()
}

#[test]
fn random_operation_sequences_keep_the_invariants() {
    // Under miri a handful of short sequences; natively a few hundred (well under a second in
    // a debug build).
    let (seeds, len) = if cfg!(miri) { (4, 32) } else { (400, 160) };
    let mut total = fuzz_driver::Summary::default();
    for seed in 0..seeds {
        let data = bytes(seed, 16 + (seed as usize * 7) % len);
        match std::panic::catch_unwind(|| fuzz_driver::run(&data)) {
            Ok(s) => {
                total.runs += s.runs;
                total.cancelled += s.cancelled;
                total.timers += s.timers;
            }
            Err(e) => {
                eprintln!("seed {seed} failed; input: {data:?}");
                std::panic::resume_unwind(e);
            }
        }
    }
    eprintln!("{total:?}");
    // The sequences do exercise the loop (a driver that does nothing passes every check).
    if !cfg!(miri) {
        assert!(total.runs > 5000, "{total:?}");
        assert!(total.cancelled > 200, "{total:?}");
        assert!(total.timers > 500, "{total:?}");
    }
}

#[test]
fn empty_and_degenerate_inputs() {
    fuzz_driver::run(&[]);
    fuzz_driver::run(&[0]);
    fuzz_driver::run(&[255; 64]);
    // Only scheduling, then the final drain.
    fuzz_driver::run(&[0, 0, 2, 0, 2, 3, 7, 7, 6, 0]);
}
