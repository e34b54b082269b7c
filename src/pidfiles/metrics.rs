//! The PID-file class's counters (rendered by agent::metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::agent::metrics::{Collect, Family};

/// Why a PID file was not removed: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptReason {
    /// Its content is not exactly one PID.
    NotPidFile,
    /// It names a live process (which owns it now).
    PidAlive,
    /// Its PID cannot be read in the writer's PID namespace.
    PidForeign,
    Open,
    Locked,
    Symlink,
    OtherNamespace,
    Other,
}

impl KeptReason {
    pub const ALL: [KeptReason; 8] = [
        KeptReason::NotPidFile,
        KeptReason::PidAlive,
        KeptReason::PidForeign,
        KeptReason::Open,
        KeptReason::Locked,
        KeptReason::Symlink,
        KeptReason::OtherNamespace,
        KeptReason::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            KeptReason::NotPidFile => "not_a_pid_file",
            KeptReason::PidAlive => "pid_alive",
            KeptReason::PidForeign => "pid_other_namespace",
            KeptReason::Open => "open",
            KeptReason::Locked => "locked",
            KeptReason::Symlink => "symlink",
            KeptReason::OtherNamespace => "other_mount_namespace",
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
pub struct PidfMetrics {
    pub tracked_total: AtomicU64,
    pub removed_total: AtomicU64,
    pub removal_failures_total: AtomicU64,
    kept: [AtomicU64; 8],
    pub tracked: AtomicU64,
    /// Kernel-side counts, copied in by the worker (they only grow).
    pub kernel_events_dropped: AtomicU64,
    pub kernel_table_full: AtomicU64,
}

impl PidfMetrics {
    pub fn kept(&self, why: KeptReason) {
        self.kept[why.index()].fetch_add(1, Relaxed);
    }
}

impl Collect for PidfMetrics {
    fn families(&self) -> Vec<Family> {
        let c = |a: &AtomicU64| a.load(Relaxed);
        vec![
            Family::counter(
                "pid_files_tracked_total",
                "PID files whose writer or named process was watched.",
                c(&self.tracked_total),
            ),
            Family::counter(
                "pid_files_removed_total",
                "Stale PID files removed.",
                c(&self.removed_total),
            ),
            Family::labelled(
                "pid_files_kept_total",
                "PID files kept when the process they name died, by reason.",
                "reason",
                KeptReason::ALL
                    .iter()
                    .zip(&self.kept)
                    .map(|(r, v)| (r.label(), c(v))),
            ),
            Family::counter(
                "pid_file_removal_failures_total",
                "PID-file removals that failed, and opens not recorded (table full).",
                c(&self.removal_failures_total) + c(&self.kernel_table_full),
            ),
            Family::gauge(
                "pid_files_tracked",
                "PID files tracked now.",
                c(&self.tracked),
            ),
        ]
    }

    fn kernel_events_dropped(&self) -> u64 {
        self.kernel_events_dropped.load(Relaxed)
    }
}
