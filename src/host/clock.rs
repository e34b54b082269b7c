//! The two clocks the agent compares: CLOCK_BOOTTIME (the kernel's
//! timestamps, process start times) and CLOCK_REALTIME (file times).

use nix::time::{clock_gettime, ClockId};

fn ns(clock: ClockId) -> i128 {
    clock_gettime(clock)
        .map(|t| t.tv_sec() as i128 * 1_000_000_000 + t.tv_nsec() as i128)
        .unwrap_or(0)
}

/// Nanoseconds since boot, suspend included: what bpf_ktime_get_boot_ns
/// and a task's start_boottime count.
pub fn boot_ns() -> u64 {
    ns(ClockId::CLOCK_BOOTTIME) as u64
}

/// Nanoseconds since the epoch.
pub fn wall_ns() -> i128 {
    ns(ClockId::CLOCK_REALTIME)
}

#[cfg(test)]
mod tests {
    #[test]
    fn clocks_move_forward_and_agree_on_boot() {
        let (b0, w0) = (super::boot_ns(), super::wall_ns());
        let (b1, w1) = (super::boot_ns(), super::wall_ns());
        assert!(b1 >= b0 && w1 >= w0 && b0 > 0 && w0 > b0 as i128);
    }
}
