//! Driving steploop from a foreign event loop (a GUI or game loop, GLib, your own `poll`),
//! with no helper thread: the host waits on its own fds *and* `poll_fd()`, with a timeout
//! from `time_until_next()`, and runs one non-blocking `run_once(Some(ZERO))` each turn.
//! A `Remote` call from another thread makes `poll_fd()` readable, so the host notices it.
//!
//! ```text
//! cargo run -p steploop --example host_loop
//! ```
use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let lp = steploop::EventLoop::new()?;

    // Work on steploop: a task that sleeps three times.
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let task = lp.spawn(async move {
        for _ in 0..3 {
            steploop::sleep(Duration::from_millis(10)).await;
            t.set(t.get() + 1);
        }
    });

    // The host's own event source: another thread writes three "frames" to a socket, and
    // also calls into steploop through a `Remote` after each one.
    let (mut frames, mut tx) = UnixStream::pair()?;
    let remote = lp.remote();
    let remote_calls = Arc::new(AtomicUsize::new(0));
    let rc = remote_calls.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..3u8 {
            std::thread::sleep(Duration::from_millis(7));
            tx.write_all(&[b'0' + i]).expect("write a frame");
            let rc = rc.clone();
            remote
                .call_soon_threadsafe(move || {
                    rc.fetch_add(1, Ordering::SeqCst);
                })
                .expect("the loop is alive");
        }
    });

    let (mut host_frames, mut steps, mut frames_open) = (0, 0, true);
    while !(task.is_finished() && host_frames == 3 && remote_calls.load(Ordering::SeqCst) == 3) {
        // The host's wait: its own fd and steploop's, as long as steploop allows.
        let timeout_ms = match lp.time_until_next() {
            None => 1000, // nothing scheduled: only an fd (or a Remote wake-up) can wake us
            Some(d) => d.as_millis().min(1000) as i32 + 1,
        };
        let mut fds = [
            libc::pollfd {
                fd: lp.poll_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                // A negative fd is ignored by poll: the host stops watching a closed stream.
                fd: if frames_open { frames.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a live array of two initialised `pollfd`s, and its length is passed.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        if n < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        if fds[1].revents & (libc::POLLIN | libc::POLLHUP) != 0 {
            let mut byte = [0u8; 1];
            match frames.read(&mut byte)? {
                0 => frames_open = false, // the writer is done
                _ => host_frames += 1,
            }
        }
        // One non-blocking steploop step per host turn.
        lp.run_once(Some(Duration::ZERO))?;
        steps += 1;
    }
    writer.join().expect("the writer thread");
    println!("host frames: {host_frames}");
    println!("steploop task ticks: {}", ticks.get());
    println!(
        "remote calls run on the loop: {}",
        remote_calls.load(Ordering::SeqCst)
    );
    println!(
        "host turns: {}",
        if steps >= 4 {
            "4 or more"
        } else {
            "fewer than 4"
        }
    );
    Ok(())
}
