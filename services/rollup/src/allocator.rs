//! glibc malloc settings for the rollup's allocation pattern.
//!
//! Each batch allocates a few large buffers (the decoded events, the Native
//! block's columns: megabytes at 20 000 events) and frees them once the batch
//! is stored; librdkafka allocates one per fetched message set. By default
//! glibc serves blocks that large with `mmap`, and gives the top of the heap
//! back to the kernel once it is free, so every batch faulted its memory in
//! again: page faults were ~10 % of the rollup's CPU (`perf`). Keeping freed
//! memory for the next batch costs no more than the batch's own peak, which
//! the batch size and the prefetch bound already bound.

/// Call once, early in `main`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn keep_freed_memory() {
    // glibc's ceiling for the mmap threshold on 64-bit (a larger value is
    // refused, and a refused call changes nothing).
    const MMAP_THRESHOLD_MAX: libc::c_int = 32 << 20;
    // SAFETY: mallopt only changes malloc's tuning parameters, under
    // malloc's own lock; it is safe to call at any time from any thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
    }
}

/// Other allocators need nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn keep_freed_memory() {}
