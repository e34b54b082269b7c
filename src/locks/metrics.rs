//! The lock class's counters (rendered by agent::metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::agent::metrics::{Collect, Family, Histogram};

/// Why a lock was not removed: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptReason {
    Open,
    Locked,
    PidAlive,
    PidForeign,
    DenyList,
    Excluded,
    LeftOnExit,
    OtherNamespace,
    Symlink,
    ExitUnseen,
    Other,
}

impl KeptReason {
    pub const ALL: [KeptReason; 11] = [
        KeptReason::Open,
        KeptReason::Locked,
        KeptReason::PidAlive,
        KeptReason::PidForeign,
        KeptReason::DenyList,
        KeptReason::Excluded,
        KeptReason::LeftOnExit,
        KeptReason::OtherNamespace,
        KeptReason::Symlink,
        KeptReason::ExitUnseen,
        KeptReason::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            KeptReason::Open => "open",
            KeptReason::Locked => "locked",
            KeptReason::PidAlive => "pid_alive",
            KeptReason::PidForeign => "pid_other_namespace",
            KeptReason::DenyList => "deny_list",
            KeptReason::Excluded => "excluded",
            KeptReason::LeftOnExit => "left_on_exit",
            KeptReason::OtherNamespace => "other_mount_namespace",
            KeptReason::Symlink => "symlink",
            KeptReason::ExitUnseen => "exit_unseen",
            KeptReason::Other => "other",
        }
    }

    fn index(self) -> usize {
        KeptReason::ALL
            .iter()
            .position(|&r| r == self)
            .expect("in ALL")
    }
}

#[derive(Debug, Default)]
pub struct LockMetrics {
    pub tracked_total: AtomicU64,
    pub removed_total: AtomicU64,
    pub handed_total: AtomicU64,
    pub removal_failures_total: AtomicU64,
    kept: [AtomicU64; 11],
    pub tracked: AtomicU64,
    /// Kernel-side counts, copied in by the worker (they only grow).
    pub kernel_events_dropped: AtomicU64,
    pub kernel_owners_full: AtomicU64,
    /// From an owner's exit reaching the worker to the decision on each of
    /// its locks.
    pub decision_delay: Histogram,
}

impl LockMetrics {
    pub fn kept(&self, why: KeptReason) {
        self.kept[why.index()].fetch_add(1, Relaxed);
    }

    #[cfg(test)]
    pub fn kept_count(&self, why: KeptReason) -> u64 {
        self.kept[why.index()].load(Relaxed)
    }
}

impl Collect for LockMetrics {
    fn families(&self) -> Vec<Family> {
        let c = |a: &AtomicU64| a.load(Relaxed);
        vec![
            Family::counter(
                "locks_tracked_total",
                "Lock files whose owner was watched.",
                c(&self.tracked_total),
            ),
            Family::counter(
                "locks_removed_total",
                "Stale lock files removed.",
                c(&self.removed_total),
            ),
            Family::labelled(
                "locks_kept_total",
                "Lock files kept when their owner died, by reason.",
                "reason",
                KeptReason::ALL
                    .iter()
                    .zip(&self.kept)
                    .map(|(r, v)| (r.label(), c(v))),
            ),
            Family::counter(
                "locks_handed_total",
                "Locks handed to the parent on a clean exit: one per lock and exit.",
                c(&self.handed_total),
            ),
            Family::counter(
                "lock_removal_failures_total",
                "Removals that failed (I/O errors, table full).",
                c(&self.removal_failures_total),
            ),
            Family::counter(
                "owners_map_full_total",
                "Owners the kernel could not watch: owners map full.",
                c(&self.kernel_owners_full),
            ),
            Family::histogram(
                "lock_decision_seconds",
                "Time from an owner's exit reaching the worker to the decision on its lock (removed, kept, handed, left).",
                &self.decision_delay,
            ),
            Family::gauge("locks_tracked", "Lock files tracked now.", c(&self.tracked)),
        ]
    }

    fn kernel_events_dropped(&self) -> u64 {
        self.kernel_events_dropped.load(Relaxed)
    }
}
