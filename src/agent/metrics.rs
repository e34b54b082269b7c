//! Counters and gauges in Prometheus text format, for dashboards: served by
//! a small HTTP endpoint (`--metrics-listen`) and written atomically to a
//! file for node_exporter's textfile collector (`--metrics-textfile`).

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

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
}

/// Socket destruction methods: a metric label.
pub const SOCKET_METHODS: [&str; 2] = ["kfunc", "netlink"];

#[derive(Debug, Default)]
pub struct Metrics {
    pub locks_tracked_total: AtomicU64,
    pub locks_removed_total: AtomicU64,
    pub locks_handed_total: AtomicU64,
    pub lock_removal_failures_total: AtomicU64,
    kept: [AtomicU64; 11],
    pub locks_tracked: AtomicU64,
    sockets_destroyed: [AtomicU64; 2],
    pub sockets_tracked: AtomicU64,
    /// Kernel-side counts, copied in by the worker (they only grow).
    pub kernel_events_dropped: AtomicU64,
    pub kernel_owners_full: AtomicU64,
    /// Samples user space could not take (queue full, undecodable).
    pub user_events_dropped: AtomicU64,
}

impl Metrics {
    pub fn kept(&self, why: KeptReason) {
        let i = KeptReason::ALL.iter().position(|&r| r == why).unwrap_or(10);
        self.kept[i].fetch_add(1, Relaxed);
    }

    pub fn socket_destroyed(&self, method: &str) {
        if let Some(i) = SOCKET_METHODS.iter().position(|&m| m == method) {
            self.sockets_destroyed[i].fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        let mut one = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP eghostbuster_{name} {help}");
            let _ = writeln!(out, "# TYPE eghostbuster_{name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "eghostbuster_{name}{labels} {v}");
            }
        };
        let c = |a: &AtomicU64| a.load(Relaxed);
        one(
            "locks_tracked_total",
            "counter",
            "Lock files whose owner was watched.",
            &[("", c(&self.locks_tracked_total))],
        );
        one(
            "locks_removed_total",
            "counter",
            "Stale lock files removed.",
            &[("", c(&self.locks_removed_total))],
        );
        let kept: Vec<(String, u64)> = KeptReason::ALL
            .iter()
            .zip(&self.kept)
            .map(|(r, v)| (format!("{{reason=\"{}\"}}", r.label()), c(v)))
            .collect();
        let kept_ref: Vec<(&str, u64)> = kept.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        one(
            "locks_kept_total",
            "counter",
            "Lock files kept when their owner died, by reason.",
            &kept_ref,
        );
        one(
            "locks_handed_total",
            "counter",
            "Locks handed to the parent on a clean exit.",
            &[("", c(&self.locks_handed_total))],
        );
        one(
            "lock_removal_failures_total",
            "counter",
            "Removals that failed (I/O errors, table full).",
            &[("", c(&self.lock_removal_failures_total))],
        );
        one(
            "sockets_destroyed_total",
            "counter",
            "CLOSE_WAIT sockets destroyed, by method.",
            &[
                ("{method=\"kfunc\"}", c(&self.sockets_destroyed[0])),
                ("{method=\"netlink\"}", c(&self.sockets_destroyed[1])),
            ],
        );
        one(
            "events_dropped_total",
            "counter",
            "Events lost: ring buffer full in the kernel, or not taken by user space.",
            &[
                ("{where=\"kernel\"}", c(&self.kernel_events_dropped)),
                ("{where=\"user\"}", c(&self.user_events_dropped)),
            ],
        );
        one(
            "owners_map_full_total",
            "counter",
            "Owners the kernel could not watch: owners map full.",
            &[("", c(&self.kernel_owners_full))],
        );
        one(
            "locks_tracked",
            "gauge",
            "Lock files tracked now.",
            &[("", c(&self.locks_tracked))],
        );
        one(
            "sockets_tracked",
            "gauge",
            "CLOSE_WAIT sockets tracked now.",
            &[("", c(&self.sockets_tracked))],
        );
        out
    }

    /// Write the text file atomically (temporary file, then rename), so the
    /// collector never reads half of it.
    pub fn write_textfile(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(self.render().as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }
}

/// Answer `GET /metrics` until `stop` is set.
pub fn serve(server: &tiny_http::Server, metrics: &Metrics, stop: &std::sync::atomic::AtomicBool) {
    let content_type = tiny_http::Header::from_bytes(
        &b"Content-Type"[..],
        &b"text/plain; version=0.0.4; charset=utf-8"[..],
    )
    .expect("a valid header");
    while !stop.load(Relaxed) {
        match server.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(Some(req)) => {
                let resp = if req.url() == "/metrics" {
                    tiny_http::Response::from_string(metrics.render())
                        .with_header(content_type.clone())
                } else {
                    tiny_http::Response::from_string("see /metrics\n").with_status_code(404)
                };
                let _ = req.respond(resp);
            }
            Ok(None) => {}
            Err(e) => {
                log::warn!("metrics endpoint: {e}");
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_text() {
        let m = Metrics::default();
        m.locks_removed_total.fetch_add(3, Relaxed);
        m.kept(KeptReason::Open);
        m.kept(KeptReason::Open);
        m.socket_destroyed("netlink");
        let text = m.render();
        assert!(text.contains("eghostbuster_locks_removed_total 3\n"));
        assert!(text.contains("eghostbuster_locks_kept_total{reason=\"open\"} 2\n"));
        assert!(text.contains("eghostbuster_sockets_destroyed_total{method=\"netlink\"} 1\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!((samples, types), (22, 10));
    }

    #[test]
    fn textfile_is_replaced_atomically() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("eghostbuster.prom");
        let m = Metrics::default();
        m.write_textfile(&p).unwrap();
        m.locks_removed_total.fetch_add(1, Relaxed);
        m.write_textfile(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("eghostbuster_locks_removed_total 1"));
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "temporary file left"
        );
    }
}
