//! The daemon's memory, as the C library's allocator keeps it. A burst
//! (50,000 locks created or judged at once) allocates and frees a great
//! deal; glibc keeps what was freed, in one arena per thread, and raises
//! its mmap threshold each time a large block is freed, so that the next
//! large tables come from the heap and stay there. An agent that is left
//! running for months should go back to its idle size after a burst.

/// Blocks at least this large are mapped on their own and unmapped when
/// freed (the tables of 50,000 locks are a few MiB each).
const MMAP_THRESHOLD: i32 = 256 * 1024;

/// Before any thread starts: two arenas at most (the pollers and the
/// worker, not one per thread), and a fixed mmap threshold.
pub fn tune() {
    // SAFETY: mallopt only changes allocator parameters; called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Freed memory the allocator may hold on to before it is given back.
const KEEP_FREE: usize = 1024 * 1024;

/// Give the pages of freed memory back to the system when the allocator
/// holds more than KEEP_FREE of them (after a burst, and once start-up is
/// done). Cheap when there is nothing to give back: once a second.
pub fn trim() {
    // SAFETY: mallinfo2 and malloc_trim read and change the allocator's
    // own state under its locks.
    unsafe {
        if libc::mallinfo2().fordblks > KEEP_FREE {
            libc::malloc_trim(0);
        }
    }
}
