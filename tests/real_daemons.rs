//! Issue 26: real daemons against the socket class. A half-closed
//! connection a live server still serves is never destroyed (nginx as a
//! reverse proxy with `proxy_ignore_client_abort`, a thread-per-connection
//! server owing a reply), while a real leak beside it is; the operator's
//! serving timeout and per-port and per-program rules are obeyed. Every
//! agent is scoped to the test's own ports.

use std::time::Duration;

mod common;

use common::daemons::*;
use common::sockets::free_port;
use common::{privileged, test_dir, Agent};

const PATIENCE: Duration = Duration::from_secs(15);

fn agent(ports: &[u16], extra: &[&str]) -> Agent {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    let mut args = vec!["--no-locks", "--close-wait-timeout", "2s"];
    for p in &ports {
        args.extend(["--port", p.as_str()]);
    }
    args.extend_from_slice(extra);
    Agent::start(&args)
}

/// The idle time a line reports (`idle 2.0s`).
fn idle_of(line: &str) -> f64 {
    line.split("idle ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no idle time in: {line}"))
}

fn assert_untouched(agent: &Agent, local_port: u16) {
    let log = agent.log_text();
    let me = format!("socket 127.0.0.1:{local_port} ->");
    assert!(
        !log.lines()
            .any(|l| l.contains(&me) && (l.contains("destroyed") || l.contains("would destroy"))),
        "the socket on {local_port} was destroyed:\n{log}"
    );
}

/// The case: nginx proxies to an upstream that answers in 5 s,
/// with `proxy_ignore_client_abort on`; the client sends its request and
/// half-closes. nginx's client socket sits in CLOSE_WAIT, idle, past the
/// 2 s timeout: nginx still has it in its epoll set, so it is kept and the
/// client gets the whole reply. A leaking server on another port, same
/// agent, same timeout: its socket is destroyed.
#[test]
fn nginx_half_close_proxy_is_kept_and_a_leak_beside_it_is_destroyed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("nginx");
    let (web, upstream, leaky) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let _slow = python_server("slow", upstream, &["5"]);
    let _leak = python_server("leak", leaky, &[]);
    let _nginx = nginx_proxy(
        dir.path(),
        web,
        upstream,
        "proxy_ignore_client_abort on; proxy_read_timeout 60s;",
    );
    let agent = agent(&[web, leaky], &[]);

    let client = std::thread::spawn(move || http_get(web, true));
    let leaked_peer = request_then_close(leaky, b"\r\n\r\nok");
    let line = agent.wait_log_line(
        &[
            "destroyed CLOSE_WAIT socket",
            &format!("127.0.0.1:{leaky} -> {leaked_peer}"),
        ],
        PATIENCE,
    );
    assert!(idle_of(&line) >= 2.0, "{line}");
    let kept = agent.wait_log_line(
        &[
            &format!("kept CLOSE_WAIT socket 127.0.0.1:{web} ->"),
            "epoll",
            "(nginx)",
        ],
        PATIENCE,
    );
    assert!(idle_of(&kept) >= 2.0, "{kept}");
    let reply = client.join().unwrap();
    assert!(
        reply.error.is_none()
            && reply.text().starts_with("HTTP/1.1 200")
            && reply.text().ends_with("the slow reply"),
        "the client behind nginx did not get the whole reply: {reply:?}\nagent log:\n{}",
        agent.log_text()
    );
    assert!(reply.took >= Duration::from_millis(4500), "{reply:?}");
    assert_untouched(&agent, web);
}

/// A thread-per-connection server waiting on its backend holds the
/// client's socket unwatched, idle, in CLOSE_WAIT: it owes a reply, so it
/// is served. Kept past the timeout; with --close-wait-serving-timeout 5s,
/// one that would answer in 3 s gets its reply out, one that would answer
/// in 9 s is destroyed at 5 s (the operator chose so), and a leak (answered,
/// then kept) goes at the plain 2 s timeout.
#[test]
fn a_server_owing_a_reply_is_kept_until_the_serving_timeout() {
    if !privileged() {
        return;
    }
    let (soon, late, leaky) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let _a = python_server("slow", soon, &["3"]);
    let _b = python_server("slow", late, &["9"]);
    let _c = python_server("leak-eof", leaky, &[]);
    let agent = agent(
        &[soon, late, leaky],
        &["--close-wait-serving-timeout", "5s"],
    );

    let a = std::thread::spawn(move || http_get(soon, true));
    let b = std::thread::spawn(move || http_get(late, true));
    let leaked_peer = request_then_close(leaky, b"\r\n\r\nok");
    agent.wait_log_line(
        &[
            "destroyed CLOSE_WAIT socket",
            &format!("127.0.0.1:{leaky} -> {leaked_peer}"),
        ],
        PATIENCE,
    );
    for port in [soon, late] {
        agent.wait_log_line(
            &[
                &format!("kept CLOSE_WAIT socket 127.0.0.1:{port} ->"),
                "a request it has not answered",
                "(python3)",
            ],
            PATIENCE,
        );
    }
    let a = a.join().unwrap();
    assert!(
        a.error.is_none() && a.text().ends_with("the slow reply"),
        "{a:?}\n{}",
        agent.log_text()
    );
    let line = agent.wait_log_line(
        &[
            "destroyed CLOSE_WAIT socket",
            &format!("127.0.0.1:{late} ->"),
        ],
        PATIENCE,
    );
    let idle = idle_of(&line);
    assert!(
        (5.0..8.5).contains(&idle) && line.contains("timeout 5s"),
        "{line}"
    );
    let b = b.join().unwrap();
    assert!(
        !b.text().contains("the slow reply"),
        "the late reply got out: {b:?}"
    );
    assert_untouched(&agent, soon);
}

/// Rules, first match wins: a port excluded (`timeout=never`) keeps its
/// leak; a program's own timeout (`exe=`, the python3 executable) applies
/// to its leak on another port, which goes only once idle that long.
#[test]
fn per_port_and_per_program_rules_are_obeyed() {
    if !privileged() {
        return;
    }
    let (excluded, slower) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let _a = python_server("leak", excluded, &[]);
    let b = python_server("leak", slower, &[]);
    let exe = std::fs::read_link(format!("/proc/{}/exe", b.pid())).unwrap();
    let port_rule = format!("port={excluded},timeout=never");
    let exe_rule = format!("exe={},timeout=4s", exe.display());
    let agent = agent(
        &[excluded, slower],
        &["--socket-rule", &port_rule, "--socket-rule", &exe_rule],
    );
    request_then_close(excluded, b"\r\n\r\nok");
    request_then_close(slower, b"\r\n\r\nok");
    let line = agent.wait_log_line(
        &[
            "destroyed CLOSE_WAIT socket",
            &format!("127.0.0.1:{slower} ->"),
        ],
        PATIENCE,
    );
    assert!(
        idle_of(&line) >= 4.0 && line.contains("timeout 4s"),
        "{line}"
    );
    agent.wait_log_line(
        &[
            &format!("kept CLOSE_WAIT socket 127.0.0.1:{excluded} ->"),
            "a rule says never",
        ],
        PATIENCE,
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_untouched(&agent, excluded);
}
