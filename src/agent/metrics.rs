//! Counters and gauges in Prometheus text format, for dashboards: served by
//! a small HTTP endpoint (`--metrics-listen`) and written atomically to a
//! file for node_exporter's textfile collector (`--metrics-textfile`).
//! Each class keeps its own counters and renders them through [`Collect`];
//! this module adds the agent's own and the exposition around them.

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::host::escape::Esc;
use crate::host::{atomic, procfs};

/// One metric family: `eghostbuster_<name>`.
pub struct Family {
    pub name: std::borrow::Cow<'static, str>,
    pub kind: &'static str,
    pub help: &'static str,
    /// (suffix and labels, value): "" or `{k="v"}`, or for a histogram
    /// `_bucket{le="0.1"}`, `_sum`, `_count`.
    pub samples: Vec<(String, f64)>,
}

impl Family {
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Self {
        Family {
            name: name.into(),
            kind: "counter",
            help,
            samples: vec![(String::new(), value as f64)],
        }
    }

    pub fn gauge(name: &'static str, help: &'static str, value: u64) -> Self {
        Family {
            name: name.into(),
            kind: "gauge",
            help,
            samples: vec![(String::new(), value as f64)],
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
            name: name.into(),
            kind: "counter",
            help,
            samples: samples
                .into_iter()
                .map(|(v, n)| (format!("{{{label}=\"{}\"}}", label_value(v)), n as f64))
                .collect(),
        }
    }

    pub fn histogram(name: &'static str, help: &'static str, h: &Histogram) -> Self {
        let mut samples = Vec::with_capacity(BOUNDS.len() + 3);
        let mut cum = 0;
        for (b, n) in BOUNDS.iter().zip(&h.buckets) {
            cum += n.load(Relaxed);
            samples.push((format!("_bucket{{le=\"{b}\"}}"), cum as f64));
        }
        let count = h.count.load(Relaxed);
        samples.push(("_bucket{le=\"+Inf\"}".into(), count as f64));
        samples.push(("_sum".into(), h.sum_us.load(Relaxed) as f64 / 1e6));
        samples.push(("_count".into(), count as f64));
        Family {
            name: name.into(),
            kind: "histogram",
            help,
            samples,
        }
    }
}

/// A label value: escaped as every name in text output is (host::escape),
/// then as the exposition format wants (`"` as `\"`; Esc already doubles
/// backslashes and writes newlines as `\n`).
pub fn label_value(v: &str) -> String {
    Esc::str(v).to_string().replace('"', "\\\"")
}

/// Upper bounds (seconds) of the decision-latency buckets.
pub const BOUNDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0,
];

/// A latency histogram any thread can add to (atomics only).
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BOUNDS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us
            .fetch_add(d.as_micros().min(u64::MAX as u128) as u64, Relaxed);
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

/// What /healthz and /readyz answer from.
#[derive(Debug, Default)]
pub struct Health {
    /// Every monitor attached (`ready` said), and not stopping.
    pub ready: AtomicBool,
    /// When the worker loop last turned (ms on CLOCK_MONOTONIC); it turns
    /// at least once a second (its tick).
    pub heartbeat_ms: AtomicU64,
}

/// The worker loop is late past this: /healthz fails, no watchdog ping.
const STUCK_MS: u64 = 10_000;

fn mono_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1000 + t.tv_nsec() as u64 / 1_000_000)
        .unwrap_or(0)
}

impl Health {
    pub fn beat(&self) {
        self.heartbeat_ms.store(mono_ms(), Relaxed);
    }

    /// The worker loop turned within the last few seconds.
    pub fn turning(&self) -> bool {
        let last = self.heartbeat_ms.load(Relaxed);
        last > 0 && mono_ms().saturating_sub(last) < STUCK_MS
    }
}

/// The agent's own counters, and every class's.
#[derive(Default)]
pub struct Metrics {
    /// Samples user space could not take (queue full, undecodable).
    pub user_events_dropped: AtomicU64,
    classes: Vec<Arc<dyn Collect>>,
    /// build_info labels besides version and bpf_hash (features in use).
    features: std::collections::BTreeMap<String, String>,
}

impl Metrics {
    pub fn new(
        classes: Vec<Arc<dyn Collect>>,
        features: std::collections::BTreeMap<String, String>,
    ) -> Self {
        Metrics {
            user_events_dropped: AtomicU64::new(0),
            classes,
            features,
        }
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut families = vec![build_info(&self.features)];
        families.extend(process_families());
        families.extend(self.classes.iter().flat_map(|c| c.families()));
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

/// `eghostbuster_build_info{version, bpf_hash, <features>} 1`.
pub fn build_info(features: &std::collections::BTreeMap<String, String>) -> Family {
    let mut labels = format!(
        "{{version=\"{}\",bpf_hash=\"{}\"",
        label_value(env!("CARGO_PKG_VERSION")),
        label_value(env!("EGHOSTBUSTER_BPF_HASH"))
    );
    for (k, v) in features {
        let key: String = k
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = write!(labels, ",{key}=\"{}\"", label_value(v));
    }
    labels.push('}');
    Family {
        name: "build_info".into(),
        kind: "gauge",
        help: "Always 1: the version, the BPF source hash and the features in use, as labels.",
        samples: vec![(labels, 1.0)],
    }
}

/// A one-shot pass's counters as last-run gauges: the counter `x_total`
/// of one run becomes the gauge `sweep_last_run_x` (a counter that starts
/// from zero at every cron run would break `increase()`). Gauges and
/// histograms of the daemon mean nothing for one pass: left out.
pub fn last_run(f: Family) -> Option<Family> {
    if f.kind != "counter" {
        return None;
    }
    let base = f.name.strip_suffix("_total").unwrap_or(&f.name).to_string();
    Some(Family {
        name: format!("sweep_last_run_{base}").into(),
        kind: "gauge",
        help: f.help,
        samples: f.samples,
    })
}

/// The process's own figures, from /proc/self (names prefixed, so that
/// they never clash with node_exporter's own `process_*` in a textfile).
pub fn process_families() -> Vec<Family> {
    let mut v = Vec::new();
    let ticks = procfs::clock_ticks_per_sec() as f64;
    if let Ok(text) = procfs::read_bytes(Path::new("/proc/self/stat")) {
        // after the last ')': state is field 3; utime 14, stime 15,
        // starttime 22, vsize 23, rss 24 (pages)
        let close = text.iter().rposition(|&c| c == b')').unwrap_or(0);
        let f: Vec<f64> = String::from_utf8_lossy(&text[close + 1..])
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        let at = |n: usize| f.get(n - 3).copied().unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as f64;
        let one = |name: &'static str, kind, help, value: f64| Family {
            name: name.into(),
            kind,
            help,
            samples: vec![(String::new(), value)],
        };
        v.push(one(
            "process_cpu_seconds_total",
            "counter",
            "CPU time used by the agent (user and system), in seconds.",
            (at(14) + at(15)) / ticks,
        ));
        v.push(one(
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory of the agent, in bytes.",
            at(24) * page,
        ));
        v.push(one(
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory of the agent, in bytes.",
            at(23),
        ));
        let start_wall = procfs::start_wall_ns(at(22) as u64) as f64 / 1e9;
        v.push(one(
            "process_start_time_seconds",
            "gauge",
            "When the agent started, in seconds since the epoch.",
            start_wall.floor(),
        ));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        v.push(Family {
            name: "process_open_fds".into(),
            kind: "gauge",
            help: "Open file descriptors of the agent.",
            samples: vec![(String::new(), fds.count() as f64)],
        });
    }
    v
}

pub fn render(families: &[Family]) -> String {
    let mut out = String::with_capacity(4096);
    for f in families {
        let _ = writeln!(out, "# HELP eghostbuster_{} {}", f.name, f.help);
        let _ = writeln!(out, "# TYPE eghostbuster_{} {}", f.name, f.kind);
        for (labels, v) in &f.samples {
            let _ = writeln!(out, "eghostbuster_{}{labels} {v}", f.name);
        }
    }
    out
}

/// Answer until `stop` is set: `GET /metrics`, `/healthz` (200 while the
/// worker loop turns, 503 when it is stuck), `/readyz` (200 once every
/// monitor is attached, 503 before and while stopping). GET and HEAD
/// only (405 with `Allow`); anything else 404.
pub fn serve(server: &tiny_http::Server, metrics: &Metrics, health: &Health, stop: &AtomicBool) {
    let header = |k: &str, v: &str| {
        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("a valid header")
    };
    let content_type = header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    while !stop.load(Relaxed) {
        match server.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(Some(req)) => {
                let path = req.url().split('?').next().unwrap_or("").to_string();
                let (code, body) = answer(req.method(), &path, metrics, health);
                let head = *req.method() == tiny_http::Method::Head;
                let mut resp =
                    tiny_http::Response::from_string(if head { String::new() } else { body })
                        .with_status_code(code);
                if code == 405 {
                    resp.add_header(header("Allow", "GET, HEAD"));
                }
                if path == "/metrics" && code == 200 {
                    resp.add_header(content_type.clone());
                }
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

/// The pure part of the endpoint: status code and body.
fn answer(
    method: &tiny_http::Method,
    path: &str,
    metrics: &Metrics,
    health: &Health,
) -> (u16, String) {
    let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
    if !known {
        return (404, "see /metrics, /healthz, /readyz\n".into());
    }
    if !matches!(method, tiny_http::Method::Get | tiny_http::Method::Head) {
        return (405, "GET or HEAD only\n".into());
    }
    match path {
        "/metrics" => (200, metrics.render()),
        "/healthz" if health.turning() => (200, "ok\n".into()),
        "/healthz" => (503, "the worker loop is stuck\n".into()),
        _ if health.ready.load(Relaxed) => (200, "ready\n".into()),
        _ => (
            503,
            "not ready: monitors not attached, or stopping\n".into(),
        ),
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
        let m = Metrics::new(vec![Arc::new(Two(AtomicU64::new(3)))], Default::default());
        m.user_events_dropped.fetch_add(1, Relaxed);
        let text = m.render();
        assert!(text.contains("# TYPE eghostbuster_a_total counter\neghostbuster_a_total 3\n"));
        assert!(text.contains("eghostbuster_b_total{why=\"y\"} 2\n"));
        assert!(text.contains("eghostbuster_events_dropped_total{where=\"kernel\"} 5\n"));
        assert!(text.contains("eghostbuster_events_dropped_total{where=\"user\"} 1\n"));
        let ours = |l: &&str| !l.contains("build_info") && !l.contains("_process_");
        let samples = text
            .lines()
            .filter(ours)
            .filter(|l| !l.starts_with('#'))
            .count();
        let types = text
            .lines()
            .filter(ours)
            .filter(|l| l.starts_with("# TYPE "))
            .count();
        assert_eq!((samples, types), (5, 3));
        assert!(
            text.contains("eghostbuster_build_info{version=\""),
            "{text}"
        );
        assert!(text.contains("eghostbuster_process_resident_memory_bytes "));
        assert!(text.contains("eghostbuster_process_open_fds "));
    }

    #[test]
    fn histogram_and_labels() {
        let h = Histogram::default();
        h.observe(std::time::Duration::from_millis(3));
        h.observe(std::time::Duration::from_secs(100));
        let text = render(&[Family::histogram("lat_seconds", "L.", &h)]);
        assert!(text.contains("eghostbuster_lat_seconds_bucket{le=\"0.001\"} 0\n"));
        assert!(text.contains("eghostbuster_lat_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("eghostbuster_lat_seconds_bucket{le=\"60\"} 1\n"));
        assert!(text.contains("eghostbuster_lat_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("eghostbuster_lat_seconds_count 2\n"));
        assert!(
            text.contains("eghostbuster_lat_seconds_sum 100.003\n"),
            "{text}"
        );
        assert_eq!(label_value("a\"b\nc\\"), "a\\\"b\\nc\\\\");
    }

    #[test]
    fn endpoint_answers() {
        use tiny_http::Method;
        let m = Metrics::default();
        let h = Health::default();
        assert_eq!(answer(&Method::Get, "/readyz", &m, &h).0, 503);
        assert_eq!(answer(&Method::Get, "/healthz", &m, &h).0, 503);
        h.ready.store(true, Relaxed);
        h.beat();
        assert_eq!(answer(&Method::Get, "/readyz", &m, &h).0, 200);
        assert_eq!(answer(&Method::Head, "/healthz", &m, &h).0, 200);
        assert_eq!(answer(&Method::Post, "/metrics", &m, &h).0, 405);
        assert_eq!(answer(&Method::Delete, "/healthz", &m, &h).0, 405);
        assert_eq!(answer(&Method::Get, "/other", &m, &h).0, 404);
        assert_eq!(answer(&Method::Get, "/metrics", &m, &h).0, 200);
    }

    #[test]
    fn textfile_is_replaced_atomically() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("eghostbuster.prom");
        let m = Metrics::new(vec![Arc::new(Two(AtomicU64::new(0)))], Default::default());
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
