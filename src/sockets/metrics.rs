//! The socket class's counters (rendered by agent::metrics).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::agent::metrics::{Collect, Family};
use crate::sockets::model::Method;

#[derive(Debug, Default)]
pub struct SockMetrics {
    destroyed_kfunc: AtomicU64,
    destroyed_netlink: AtomicU64,
    pub tracked: AtomicU64,
}

impl SockMetrics {
    pub fn destroyed(&self, method: Method) {
        match method {
            Method::Kfunc => &self.destroyed_kfunc,
            Method::Netlink => &self.destroyed_netlink,
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
            Family::gauge(
                "sockets_tracked",
                "CLOSE_WAIT sockets tracked now.",
                self.tracked.load(Relaxed),
            ),
        ]
    }
}
