//! The socket class's counters (rendered by agent::metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::agent::metrics::{Collect, Family, Histogram};
use crate::sockets::model::Method;

#[derive(Debug, Default)]
pub struct SockMetrics {
    destroyed_kfunc: AtomicU64,
    destroyed_netlink: AtomicU64,
    failed_kfunc: AtomicU64,
    failed_netlink: AtomicU64,
    pub tracked: AtomicU64,
    /// Sockets past their idle timeout kept, by reason.
    kept: [AtomicU64; KEPT.len()],
    /// From a socket's deadline (idle past the timeout) to its destruction.
    pub decision_delay: Histogram,
}

/// The reasons a socket past its idle timeout is kept (policy::Kept::label).
const KEPT: [&str; 5] = ["epoll", "waiter", "unanswered", "rule", "owner_unknown"];

impl SockMetrics {
    pub fn kept(&self, reason: &str) {
        if let Some(i) = KEPT.iter().position(|r| *r == reason) {
            self.kept[i].fetch_add(1, Relaxed);
        }
    }

    pub fn destroyed(&self, method: Method) {
        match method {
            Method::Kfunc => &self.destroyed_kfunc,
            Method::Netlink => &self.destroyed_netlink,
        }
        .fetch_add(1, Relaxed);
    }

    pub fn failed(&self, method: Method) {
        match method {
            Method::Kfunc => &self.failed_kfunc,
            Method::Netlink => &self.failed_netlink,
        }
        .fetch_add(1, Relaxed);
    }
}

impl Collect for SockMetrics {
    fn families(&self) -> Vec<Family> {
        vec![
            Family::labelled(
                "sockets_destroyed_total",
                "CLOSE_WAIT sockets destroyed, by method.",
                "method",
                [
                    ("kfunc", self.destroyed_kfunc.load(Relaxed)),
                    ("netlink", self.destroyed_netlink.load(Relaxed)),
                ],
            ),
            Family::labelled(
                "socket_destroy_failures_total",
                "Stale CLOSE_WAIT sockets whose destruction failed, by method.",
                "method",
                [
                    ("kfunc", self.failed_kfunc.load(Relaxed)),
                    ("netlink", self.failed_netlink.load(Relaxed)),
                ],
            ),
            Family::labelled(
                "sockets_kept_total",
                "CLOSE_WAIT sockets past their idle timeout kept, by reason: served (epoll, waiter, unanswered), a rule, an unknown owner.",
                "reason",
                KEPT.iter()
                    .zip(&self.kept)
                    .map(|(r, n)| (*r, n.load(Relaxed))),
            ),
            Family::histogram(
                "socket_decision_delay_seconds",
                "Time from a socket's deadline (idle past the timeout) to its destruction.",
                &self.decision_delay,
            ),
            Family::gauge(
                "sockets_tracked",
                "CLOSE_WAIT sockets tracked now.",
                self.tracked.load(Relaxed),
            ),
        ]
    }
}
