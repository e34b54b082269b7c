//! Counters and gauges in Prometheus text format, for dashboards: served by
//! a small HTTP endpoint (`--metrics-listen`) and written atomically to a
//! file for node_exporter's textfile collector (`--metrics-textfile`).
//! Each class keeps its own counters and renders them through [`Collect`];
//! this module adds the agent's own and the exposition around them.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::host::atomic;

/// One metric family: `eghostbuster_<name>`.
pub struct Family {
    pub name: &'static str,
    pub kind: &'static str,
    pub help: &'static str,
    /// (labels, value): labels as `{k="v"}` or "".
    pub samples: Vec<(String, u64)>,
}

impl Family {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Family {
            name,
            kind: "counter",
            help,
            samples: vec![(String::new(), value)],
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Family {
            name,
            kind: "gauge",
            help,
            samples: vec![(String::new(), value)],
        }
    }

    /// A counter with one label, one sample per value.
    pub fn labelled(
        name: &'static str,
        help: &'static str,
        label: &str,
        samples: impl IntoIterator<Item = (&'static str, u64)>,
    ) -> Self {
        Family {
            name,
            kind: "counter",
            help,
            samples: samples
                .into_iter()
                .map(|(v, n)| (format!("{{{label}=\"{v}\"}}"), n))
                .collect(),
        }
    }
}

/// A class's counters, read by the renderer at any time (the HTTP thread
/// and the worker run at once: atomics only).
pub trait Collect: Send + Sync {
    fn families(&self) -> Vec<Family>;
    /// Events its kernel side lost (ring buffer full): summed into
    /// `events_dropped_total{where="kernel"}`.
    fn kernel_events_dropped(&self) -> u64 {
        0
    }
}

/// The agent's own counters, and every class's.
#[derive(Default)]
pub struct Metrics {
    /// Samples user space could not take (queue full, undecodable).
    pub user_events_dropped: AtomicU64,
    classes: Vec<Arc<dyn Collect>>,
}

impl Metrics {
    pub fn new(classes: Vec<Arc<dyn Collect>>) -> Self {
        Metrics {
            user_events_dropped: AtomicU64::new(0),
            classes,
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut families: Vec<Family> = self.classes.iter().flat_map(|c| c.families()).collect();
        let kernel: u64 = self.classes.iter().map(|c| c.kernel_events_dropped()).sum();
        families.push(Family::labelled(
            "events_dropped_total",
            "Events lost: ring buffer full in the kernel, or not taken by user space.",
            "where",
            [
                ("kernel", kernel),
                ("user", self.user_events_dropped.load(Relaxed)),
            ],
        ));
        render(&families)
    }

    /// Write the text file atomically, so the collector never reads half
    /// of it.
    pub fn write_textfile(&self, path: &Path) -> io::Result<()> {
        atomic::write(path, self.render().as_bytes())
    }
}

pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(2048);
    for f in families {
        let _ = writeln!(out, "# HELP eghostbuster_{} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE eghostbuster_{} {}", f.name, f.kind);
        for (labels, v) in &f.samples {
            let _ = writeln!(out, "eghostbuster_{}{labels} {v}", f.name);
        }
    }
    out
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

    struct Two(AtomicU64);
    impl Collect for Two {
        fn families(&self) -> Vec<Family> {
            vec![
                Family::counter("a_total", "A.", self.0.load(Relaxed)),
                Family::labelled("b_total", "B.", "why", [("x", 1), ("y", 2)]),
            ]
        }
        fn kernel_events_dropped(&self) -> u64 {
            5
        }
    }

    #[test]
    fn renders_every_class_and_the_agent() {
        let m = Metrics::new(vec![Arc::new(Two(AtomicU64::new(3)))]);
        m.user_events_dropped.fetch_add(1, Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE eghostbuster_a_total counter\neghostbuster_a_total 3\n"));
        assert!(text.contains("eghostbuster_b_total{why=\"y\"} 2\n"));
        assert!(text.contains("eghostbuster_events_dropped_total{where=\"kernel\"} 5\n"));
        assert!(text.contains("eghostbuster_events_dropped_total{where=\"user\"} 1\n"));
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        assert_eq!((samples, types), (5, 3));
    }

    #[test]
    fn textfile_is_replaced_atomically() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("eghostbuster.prom");
        let m = Metrics::new(vec![Arc::new(Two(AtomicU64::new(0)))]);
        m.write_textfile(&p).unwrap();
        m.user_events_dropped.fetch_add(1, Relaxed);
        m.write_textfile(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("eghostbuster_events_dropped_total{where=\"user\"} 1"));
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "temporary file left"
        );
    }
}
