//! One allocator adjustment at import: raise glibc's dynamic mmap threshold, as glibc itself
//! does after the process frees its first large block.
//!
//! asyncio's socket transport reads with `sock.recv(256 KiB)`: a fresh 256 KiB bytes object
//! per read, above glibc's initial mmap threshold (128 KiB). Each read then costs an `mmap`,
//! ~25 page faults while the data is copied in, an `mremap` when the object shrinks to the
//! bytes received, and a `munmap` when it is freed — 60–110 µs per 100 KiB round trip on the
//! benchmark machine, half of the time of an echo. glibc raises the threshold only when an
//! mmapped block *larger* than it is freed, which the shrunk objects never are; whether a
//! process got there depends on its history, which made the echo benchmark bimodal.
//! Allocating and freeing one 512 KiB block does what glibc's first large free would: the
//! threshold becomes 512 KiB (and the trim threshold 1 MiB), so these reads come from the
//! heap. uvloop avoids the same cost by reading into one reused buffer.
//!
//! Nothing changes with other allocators, or when `MALLOC_MMAP_THRESHOLD_` is set (glibc then
//! keeps the threshold fixed).

/// The size of the block whose free raises the threshold (glibc caps the dynamic threshold
/// at 32 MiB on 64-bit systems).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const PRIME_BYTES: usize = 512 * 1024;

/// Raises glibc's dynamic mmap threshold once (see the module docs); a no-op elsewhere.
pub(crate) fn raise_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: a plain malloc/free pair of a block nobody else sees; `black_box` keeps the
    // pair from being optimised away.
    unsafe {
        let block = libc::malloc(std::hint::black_box(PRIME_BYTES));
        libc::free(std::hint::black_box(block));
    }
}
