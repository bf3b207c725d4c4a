//! The engine's error type.

use std::fmt;
use std::io;

/// Everything that can go wrong in the engine.
///
/// ```
/// let err = steploop::Error::LoopGone;
/// assert_eq!(err.to_string(), "the event loop is gone");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An OS call failed (poll, registration, waker).
    Io(io::Error),
    /// A file descriptor was closed while the loop still watched it; the watch was removed.
    FdClosed(i32),
    /// A negative file descriptor was given.
    InvalidFd(i32),
    /// A [`Remote`](crate::Remote) was used after its loop was dropped.
    LoopGone,
    /// `run_forever`/`block_on`/`run_once` was called while the loop was already running.
    AlreadyRunning,
    /// A task was cancelled before it produced its output.
    Cancelled,
    /// The loop (its reactor) was closed.
    Closed,
    /// The loop was stopped before the future given to `block_on` completed.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::FdClosed(fd) => write!(f, "file descriptor {fd} was closed while registered"),
            Error::InvalidFd(fd) => write!(f, "Invalid file descriptor: {fd}"),
            Error::LoopGone => f.write_str("the event loop is gone"),
            Error::AlreadyRunning => f.write_str("This event loop is already running"),
            Error::Cancelled => f.write_str("the task was cancelled"),
            Error::Closed => f.write_str("Event loop is closed"),
            Error::Stopped => f.write_str("Event loop stopped before Future completed."),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// The engine's result alias.
///
/// ```
/// fn make() -> steploop::Result<steploop::EventLoop> {
///     steploop::EventLoop::new()
/// }
/// assert!(make().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
