//! Metrics and log formats, end to end: the HTTP endpoint and the textfile
//! show what the agent did; JSON logs are one object per line.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::*;

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connecting to the metrics endpoint");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn endpoint_serves_counters_after_a_removal() {
    if !privileged() {
        return;
    }
    let dir = test_dir("metrics-http");
    let agent = Agent::start(&[
        "--path",
        &path_arg(dir.path()),
        "--metrics-listen",
        "127.0.0.1:0",
    ]);
    let log = agent.log_text();
    let addr = log
        .split("metrics on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the ready line names the metrics address")
        .to_string();
    let before = http_get(&addr, "/metrics");
    assert!(
        before.starts_with("HTTP/1.") && before.contains(" 200 "),
        "{before}"
    );
    assert!(
        before.contains("eghostbuster_locks_removed_total 0"),
        "{before}"
    );
    let mut procs = Procs::default();
    let lock = killed_lock(&mut procs, dir.path(), "m.lock");
    assert!(
        wait_for(PATIENCE, || !exists(&lock)),
        "{}",
        agent.log_text()
    );
    // the counter moves right after the unlink
    let mut body = String::new();
    let counted = wait_for(PATIENCE, || {
        let after = http_get(&addr, "/metrics");
        body = after.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        body.contains("eghostbuster_locks_removed_total 1")
    });
    assert!(counted, "{body}");
    assert!(
        body.contains("eghostbuster_locks_tracked_total 1"),
        "{body}"
    );
    assert!(
        validate(&body).is_ok_and(|n| n > 10),
        "{:?}",
        validate(&body)
    );
    assert!(http_get(&addr, "/other").contains(" 404 "));
    // health and readiness, GET and HEAD only
    assert!(http_get(&addr, "/healthz").contains(" 200 "));
    assert!(http_get(&addr, "/readyz").contains(" 200 "));
    let post = http_req(&addr, "POST", "/metrics");
    assert!(
        post.contains(" 405 ") && post.contains("Allow: GET, HEAD"),
        "{post}"
    );
    assert!(http_req(&addr, "DELETE", "/healthz").contains(" 405 "));
    let head = http_req(&addr, "HEAD", "/readyz");
    assert!(head.contains(" 200 "), "{head}");
    assert!(
        body.contains("eghostbuster_build_info{version=\""),
        "{body}"
    );
    for family in [
        "eghostbuster_process_resident_memory_bytes ",
        "eghostbuster_process_cpu_seconds_total ",
        "eghostbuster_process_open_fds ",
        "eghostbuster_lock_decision_seconds_bucket{le=\"+Inf\"} 1",
        "eghostbuster_lock_decision_seconds_count 1",
    ] {
        assert!(body.contains(family), "no {family}: {body}");
    }
    promtool_check(&body);
}

fn http_req(addr: &str, method: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connecting to the metrics endpoint");
    write!(s, "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// `promtool check metrics` (Debian's `prometheus` package), when it is
/// installed (PATH, or $PROMTOOL); the parser below otherwise.
fn promtool_check(text: &str) {
    let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
    let child = std::process::Command::new(&tool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("promtool not found: the exposition checked by the parser only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
    eprintln!("promtool check metrics: clean");
}

#[test]
fn textfile_is_valid_prometheus_text() {
    if !privileged() {
        return;
    }
    let dir = test_dir("metrics-file");
    let prom_dir = test_dir("metrics-prom");
    let prom = prom_dir.path().join("eghostbuster.prom");
    let mut agent = Agent::start(&[
        "--path",
        &path_arg(dir.path()),
        "--metrics-textfile",
        &path_arg(&prom),
    ]);
    let mut procs = Procs::default();
    let lock = killed_lock(&mut procs, dir.path(), "t.lock");
    assert!(
        wait_for(PATIENCE, || !exists(&lock)),
        "{}",
        agent.log_text()
    );
    assert_eq!(agent.stop(), Some(0));
    // written on the way out at the latest
    let text = std::fs::read_to_string(&prom).expect("the textfile");
    assert!(validate(&text).is_ok(), "{:?}\n{text}", validate(&text));
    promtool_check(&text);
    assert!(
        text.contains("eghostbuster_locks_removed_total 1"),
        "{text}"
    );
    // nothing but the file itself is left in its directory
    assert_eq!(std::fs::read_dir(prom_dir.path()).unwrap().count(), 1);
}

#[test]
fn json_log_lines_are_objects() {
    if !privileged() {
        return;
    }
    let dir = test_dir("jsonlog");
    let agent = Agent::start(&["--path", &path_arg(dir.path()), "--log-format", "json"]);
    let mut procs = Procs::default();
    let lock = killed_lock(&mut procs, dir.path(), "j \"quoted\".lock");
    assert!(
        agent.wait_log(&["removed", "quoted"]),
        "{}",
        agent.log_text()
    );
    for line in agent.log_text().lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["msg"].is_string() && v["level"].is_string() && v["ts"].is_string(),
            "{line}"
        );
    }
    let removed = agent
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| {
            v["msg"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("removed {}", lock.display())))
                && v["event"] == "removed"
                && v["path"] == lock.to_str().unwrap()
        });
    assert!(removed, "{}", agent.log_text());
}

/// `sweep`'s textfile: last-run gauges, never counters that restart at
/// every cron run.
#[test]
fn sweep_textfile_holds_last_run_gauges() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweep-prom");
    let prom_dir = test_dir("sweep-prom-out");
    let prom = prom_dir.path().join("sweep.prom");
    let old = dir.path().join("old.lock");
    std::fs::write(&old, "").unwrap();
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(t)
        .unwrap();
    let o = std::process::Command::new(BIN)
        .args(["sweep", "--no-sockets", "--path", &path_arg(dir.path())])
        .arg("--metrics-textfile")
        .arg(&prom)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(validate(&text).is_ok(), "{:?}\n{text}", validate(&text));
    assert!(
        !text.contains(" counter\n"),
        "a counter in a one-shot textfile:\n{text}"
    );
    assert!(
        text.contains("eghostbuster_sweep_last_run_locks_removed 1\n"),
        "{text}"
    );
    assert!(
        text.contains("eghostbuster_sweep_last_run_acted{class=\"locks\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("eghostbuster_sweep_last_run_timestamp_seconds "),
        "{text}"
    );
    promtool_check(&text);
}

#[test]
fn validator_rejects_garbage() {
    assert!(validate("foo 1\n").is_err()); // no TYPE
    assert!(validate("# TYPE foo counter\nfoo one\n").is_err());
    assert!(validate("# TYPE foo counter\nfo-o 1\n").is_err());
    assert!(validate("# TYPE foo blah\n").is_err());
    assert!(validate("# TYPE foo counter\nfoo{a=\"b} 1\n").is_err());
    assert_eq!(
        validate("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n"),
        Ok(4)
    );
    assert_eq!(
        validate("# TYPE foo counter\nfoo{a=\"b\"} 1\nfoo 2\n"),
        Ok(2)
    );
}
