//! The socket-file class's counters (rendered by agent::metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::agent::metrics::{Collect, Family};

/// Why a socket file was not removed: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptReason {
    /// A socket a live process holds is still bound to it.
    Bound,
    /// A socket no process holds is still bound to it.
    BoundUnheld,
    /// Whether a socket is bound could not be asked.
    Unknown,
    /// Open (O_PATH) or locked by a live process.
    Open,
    Locked,
    Symlink,
    OtherNamespace,
    Other,
}

impl KeptReason {
    pub const ALL: [KeptReason; 8] = [
        KeptReason::Bound,
        KeptReason::BoundUnheld,
        KeptReason::Unknown,
        KeptReason::Open,
        KeptReason::Locked,
        KeptReason::Symlink,
        KeptReason::OtherNamespace,
        KeptReason::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            KeptReason::Bound => "bound",
            KeptReason::BoundUnheld => "bound_unheld",
            KeptReason::Unknown => "unknown",
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
pub struct UxsMetrics {
    pub tracked_total: AtomicU64,
    pub removed_total: AtomicU64,
    pub removal_failures_total: AtomicU64,
    kept: [AtomicU64; 8],
    pub tracked: AtomicU64,
    /// Kernel-side counts, copied in by the worker (they only grow).
    pub kernel_events_dropped: AtomicU64,
    pub kernel_table_full: AtomicU64,
}

impl UxsMetrics {
    pub fn kept(&self, why: KeptReason) {
        self.kept[why.index()].fetch_add(1, Relaxed);
    }
}

impl Collect for UxsMetrics {
    fn families(&self) -> Vec<Family> {
        let c = |a: &AtomicU64| a.load(Relaxed);
        vec![
            Family::counter(
                "unix_sockets_tracked_total",
                "UNIX socket files whose binder was watched.",
                c(&self.tracked_total),
            ),
            Family::counter(
                "unix_sockets_removed_total",
                "Stale UNIX socket files removed.",
                c(&self.removed_total),
            ),
            Family::labelled(
                "unix_sockets_kept_total",
                "UNIX socket files kept when their binder died, by reason.",
                "reason",
                KeptReason::ALL
                    .iter()
                    .zip(&self.kept)
                    .map(|(r, v)| (r.label(), c(v))),
            ),
            Family::counter(
                "unix_socket_removal_failures_total",
                "Socket-file removals that failed, and binds not recorded (table full).",
                c(&self.removal_failures_total) + c(&self.kernel_table_full),
            ),
            Family::gauge(
                "unix_sockets_tracked",
                "UNIX socket files tracked now.",
                c(&self.tracked),
            ),
        ]
    }

    fn kernel_events_dropped(&self) -> u64 {
        self.kernel_events_dropped.load(Relaxed)
    }
}
