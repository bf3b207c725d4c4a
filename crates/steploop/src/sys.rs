//! The one door to libc: every raw OS call of the engine goes through [`syscall!`].

use std::io;

/// Calls a libc function and turns a `-1` return into `io::Error::last_os_error()`.
macro_rules! syscall {
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        // SAFETY: each call site passes arguments that satisfy the libc function's contract
        // (valid fds or pointers to live, correctly sized locals); see the wrapper functions.
        let res = unsafe { libc::$fn($($arg),*) };
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Seconds on `CLOCK_MONOTONIC`, the clock of Python's `time.monotonic()`.
pub(crate) fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // CLOCK_MONOTONIC always exists on Linux; the only failure mode is a bad pointer, and
    // `ts` is a live local.
    let _ = syscall!(clock_gettime(libc::CLOCK_MONOTONIC, &mut ts));
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The resolution of `CLOCK_MONOTONIC` in seconds (`time.get_clock_info('monotonic')`).
pub(crate) fn monotonic_resolution() -> f64 {
    // Miri does not implement `clock_getres`; the resolution of CLOCK_MONOTONIC is 1 ns on
    // Linux anyway.
    if cfg!(miri) {
        return 1e-9;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match syscall!(clock_getres(libc::CLOCK_MONOTONIC, &mut ts)) {
        Ok(_) => ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9,
        Err(_) => 1e-9,
    }
}

/// Registers, changes or removes `fd` in the epoll set `epfd`, level-triggered (as
/// `selectors.EpollSelector` does), with the fd itself as the event's token.
pub(crate) fn epoll_ctl(epfd: i32, op: i32, fd: i32, events: u32) -> io::Result<()> {
    epoll_ctl_tagged(epfd, op, fd, events, 0)
}

/// `epoll_ctl` whose event data is the fd in the low 32 bits and `tag` in the high ones
/// (edge registrations carry their generation there; see `Reactor::arm_edge`).
pub(crate) fn epoll_ctl_tagged(
    epfd: i32,
    op: i32,
    fd: i32,
    events: u32,
    tag: u32,
) -> io::Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: (fd as u32 as u64) | ((tag as u64) << 32),
    };
    syscall!(epoll_ctl(epfd, op, fd, &mut ev)).map(|_| ())
}
