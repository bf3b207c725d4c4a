//! 1000 forced iterations of an idle loop, for `strace -c`: shows which syscalls one
//! `run_once(Some(ZERO))` costs. With `--with-fd` an idle socket is watched (the poll then
//! has something to look at).
//!
//! ```text
//! cargo build --release --example idle_steps
//! strace -c target/release/examples/idle_steps
//! strace -c target/release/examples/idle_steps --with-fd
//! ```

use std::os::fd::AsRawFd;
use std::time::Duration;

use steploop::EventLoop;

fn main() -> steploop::Result<()> {
    let lp = EventLoop::new()?;
    let with_fd = std::env::args().any(|a| a == "--with-fd");
    let (a, _b) = std::os::unix::net::UnixStream::pair()?;
    if with_fd {
        lp.add_reader(a.as_raw_fd(), || {})?;
    }
    let mut callbacks = 0;
    for _ in 0..1000 {
        callbacks += lp.run_once(Some(Duration::ZERO))?.callbacks;
    }
    println!("1000 steps, {callbacks} callbacks");
    Ok(())
}
