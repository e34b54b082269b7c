//! End-to-end tests of the CLOSE_WAIT socket monitor: the real binary, as
//! root, with BPF loaded, against real sockets on loopback and in network
//! namespaces the tests create. Each test scopes its agent to its own ports
//! (`--port`), so agents running at the same time never touch each other's
//! sockets, and cleans up its agent (by PID) and namespaces on any exit.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::sockets::*;
use common::{emulated, privileged, Agent, Netns, Unnamed, BIN};

const TIMEOUT: &str = "2s";
const TIMEOUT_S: f64 = 2.0;

/// Generous: the socket must be gone well within this after its timeout.
const PATIENCE: Duration = Duration::from_secs(10);

/// An agent for the CLOSE_WAIT sockets on `port` only (lock files left
/// out), idle for TIMEOUT, with `extra` arguments.
fn socket_agent(port: u16, extra: &[&str]) -> Agent {
    let p = port.to_string();
    let mut args = vec!["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

// Emulated (common::emulated), every timer fires late by whatever the
// emulation costs: bounds on lateness widen to PATIENCE there; bounds on
// earliness never do.

/// The socket was destroyed, and the application learns it on its next call.
fn assert_destroyed(s: &TcpStream, agent: &Agent) {
    assert!(
        wait_state(s, TCP_CLOSE, PATIENCE),
        "socket still in state {} after {PATIENCE:?}; agent log:\n{}",
        tcp_state(s),
        agent.log_text()
    );
    let e = send(s, b"late reply").expect_err("send on a destroyed socket succeeded");
    let code = e.raw_os_error().unwrap();
    // bpf_sock_destroy and SOCK_DESTROY both abort with ECONNABORTED;
    // once that is reported, EPIPE follows
    assert!(
        [libc::ECONNABORTED, libc::EPIPE, libc::ECONNRESET].contains(&code),
        "unexpected error {e}"
    );
}

fn destroyed_idle_socket(loopback: &str, extra: &[&str], method: &str) {
    if !privileged() {
        return;
    }
    let port = free_port(loopback);
    let agent = socket_agent(port, extra);
    let (s, _l, peer) = close_wait(format!("{loopback}:{port}").parse().unwrap());
    assert_destroyed(&s, &agent);
    let line = agent.wait_log_line(
        &[
            "destroyed CLOSE_WAIT socket",
            &peer.to_string(),
            &format!("owner pid {}", std::process::id()),
            &format!("method {method}"),
        ],
        PATIENCE,
    );
    // never before the timeout, and at most a second after it (emulated:
    // within PATIENCE)
    let idle = idle_of(&line);
    let late = if emulated() {
        PATIENCE.as_secs_f64()
    } else {
        1.0
    };
    assert!((TIMEOUT_S..TIMEOUT_S + late).contains(&idle), "{line}");
}

/// The idle time a destroy line reports (`idle 2.0s`).
fn idle_of(line: &str) -> f64 {
    line.split("idle ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no idle time in: {line}"))
}

/// The agent's destroy line for the socket whose peer is `peer`.
fn destroyed_line(agent: &Agent, peer: &std::net::SocketAddr) -> String {
    agent.wait_log_line(
        &["destroyed CLOSE_WAIT socket", &format!("-> {peer} ")],
        PATIENCE,
    )
}

/// Nothing the agent logged names `peer` as destroyed (or to destroy).
fn assert_never_destroyed(agent: &Agent, peer: &std::net::SocketAddr) {
    let log = agent.log_text();
    assert!(
        !log.lines()
            .any(|l| l.contains(&format!("-> {peer} ")) && l.contains("destroy")),
        "{peer} was acted on:\n{log}"
    );
}

/// Does the kernel export the bpf_sock_destroy kfunc (Linux 6.5+)? Read from
/// its BTF here, independently of the agent's own probe: the name is one
/// NUL-terminated string in the BTF string table.
fn kernel_has_sock_destroy() -> bool {
    std::fs::read("/sys/kernel/btf/vmlinux")
        .is_ok_and(|btf| btf.windows(18).any(|w| w == b"\0bpf_sock_destroy\0"))
}

/// What the default (`--socket-destroy auto`) must use on this kernel: the
/// kfunc where it exists, else the netlink fallback (e.g. Linux 6.1).
fn default_method() -> &'static str {
    if kernel_has_sock_destroy() {
        "kfunc"
    } else {
        eprintln!("note: no bpf_sock_destroy kfunc in this kernel (< 6.5): expecting the netlink fallback by default");
        "netlink"
    }
}

#[test]
fn idle_close_wait_ipv4_is_destroyed() {
    destroyed_idle_socket("127.0.0.1", &[], default_method());
}

#[test]
fn idle_close_wait_ipv6_is_destroyed() {
    destroyed_idle_socket("[::1]", &[], default_method());
}

#[test]
fn idle_close_wait_ipv4_is_destroyed_by_netlink() {
    destroyed_idle_socket("127.0.0.1", &["--socket-destroy", "netlink"], "netlink");
}

#[test]
fn idle_close_wait_ipv6_is_destroyed_by_netlink() {
    destroyed_idle_socket("[::1]", &["--socket-destroy", "netlink"], "netlink");
}

/// A dual-stack listener: an IPv4 client on an IPv6 socket (v4-mapped),
/// which SOCK_DESTROY must look up in the IPv4 table.
#[test]
fn idle_close_wait_v4_mapped_is_destroyed_by_netlink() {
    if !privileged() {
        return;
    }
    let port = free_port("[::]");
    let agent = socket_agent(port, &["--socket-destroy", "netlink"]);
    let l = TcpListener::bind(("::", port)).unwrap();
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (s, peer) = l.accept().unwrap();
    drop(c);
    assert!(wait_state(&s, TCP_CLOSE_WAIT, Duration::from_secs(5)));
    assert_destroyed(&s, &agent);
    agent.wait_log_line(&[&peer.to_string(), "method netlink"], PATIENCE);
}

#[test]
fn half_closed_server_that_keeps_sending_is_kept() {
    half_closed_sender(&[]);
}

/// The sending server of `half_closed_sender`, aged as on a host whose
/// CONFIG_HZ libbpf cannot find.
#[test]
fn half_closed_server_that_keeps_sending_is_kept_without_hz() {
    half_closed_sender(&["--force-idle-fallback"]);
}

fn half_closed_sender(extra: &[&str]) {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let agent = socket_agent(port, extra);
    // the fallback says so (that its clock is the one used, the
    // idle_fallback_… test shows)
    assert_eq!(
        agent.log_has("kernel tick rate unknown"),
        extra.contains(&"--force-idle-fallback"),
        "{}",
        agent.log_text()
    );
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    c.shutdown(Shutdown::Write).unwrap(); // request sent; still reading the reply
    assert!(wait_state(&s, TCP_CLOSE_WAIT, Duration::from_secs(5)));
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
        got.len()
    });
    // the response takes 3 timeouts to write, a piece every 300 ms
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        s.write_all(b"part of a long response\n")
            .unwrap_or_else(|e| {
                panic!(
                    "the sending server was hit: {e}; log:\n{}",
                    agent.log_text()
                )
            });
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT);
    // then it goes quiet without closing: now it is stale
    assert_destroyed(&s, &agent);
    drop(s);
    reader.join().unwrap();
}

/// Which idle clock the reaper used is visible in when a socket that sent
/// once goes: the kernel's last-send time (CONFIG_HZ known) ages it from
/// that send; the fallback only notices a send when it looks (at the
/// deadline set at entry), and ages it from that look. One piece is sent
/// a quarter timeout after the entry:
///
/// - last-send clock: destroyed a timeout after the send (1.25 timeouts
///   after the entry);
/// - fallback: the first look is a timeout after the entry, so destroyed
///   no sooner than two timeouts after the entry.
///
/// The line between them is 1.75 timeouts: half a second from either.
fn one_send_then_quiet(fallback: bool) {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let fallback_flag: &[&str] = if fallback {
        &["--force-idle-fallback"]
    } else {
        &[]
    };
    let agent = socket_agent(port, fallback_flag);
    assert_eq!(
        agent.log_has("kernel tick rate unknown"),
        fallback,
        "{}",
        agent.log_text()
    );
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, peer) = l.accept().unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    // polled every 20 ms: the entry was at most that long before this
    assert!(wait_state(&s, TCP_CLOSE_WAIT, Duration::from_secs(5)));
    let entered = Instant::now();
    let reader = thread::spawn(move || {
        let mut got = Vec::new();
        let _ = c.read_to_end(&mut got);
    });
    let timeout = Duration::from_secs_f64(TIMEOUT_S);
    thread::sleep(timeout / 4);
    s.write_all(b"the response\n").unwrap();
    let sent = Instant::now();
    assert!(
        wait_state(&s, TCP_CLOSE, 3 * timeout + PATIENCE),
        "not destroyed; log:\n{}",
        agent.log_text()
    );
    let gone = Instant::now();
    destroyed_line(&agent, &peer);
    let (after_entry, after_send) = (gone - entered, gone - sent);
    eprintln!("destroyed {after_entry:?} after the entry, {after_send:?} after the send");
    // never less than a timeout after the send, on either clock
    assert!(after_send >= timeout, "{after_send:?} after the send");
    let line = timeout * 7 / 4;
    if fallback {
        assert!(
            after_entry >= line,
            "destroyed {after_entry:?} after the entry: the send was seen before the reaper looked (the fallback was not used)\n{}",
            agent.log_text()
        );
    } else if !emulated() {
        assert!(
            after_entry < line,
            "destroyed {after_entry:?} after the entry: the last-send clock was not used\n{}",
            agent.log_text()
        );
    }
    drop(s);
    reader.join().unwrap();
}

#[test]
fn idle_is_counted_from_the_kernels_last_send() {
    one_send_then_quiet(false);
}

#[test]
fn idle_fallback_counts_from_the_reapers_look() {
    one_send_then_quiet(true);
}

/// Issue 12 item 7: a server blocked in send() against a peer that
/// half-closed and stopped reading is busy, not idle, however long its
/// last data segment is ago (with a zero window none leaves). Kept past
/// the timeout; an idle CLOSE_WAIT socket on the same port, entered at the
/// same time, is destroyed in that window. Once the peer reads it all, the
/// server is idle and goes.
#[test]
fn writer_blocked_against_a_zero_window_is_kept() {
    blocked_writer(&[]);
}

/// The same with the netlink destruction (the reaper reports only) and the
/// idle clock of hosts without CONFIG_HZ.
#[test]
fn writer_blocked_against_a_zero_window_is_kept_by_netlink_without_hz() {
    blocked_writer(&["--socket-destroy", "netlink", "--force-idle-fallback"]);
}

fn blocked_writer(extra: &[&str]) {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let agent = socket_agent(port, extra);
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut blocked = BlockedWriter::start(&l);
    let entered = Instant::now();
    eprintln!("{} bytes queued against a zero window", blocked.queued());
    let (control, control_peer) = close_wait_on(&l);
    assert_destroyed(&control, &agent);
    destroyed_line(&agent, &control_peer);
    // three timeouts after the entry, and still blocked in send()
    while entered.elapsed() < Duration::from_secs_f64(3.0 * TIMEOUT_S) {
        blocked.assert_blocked();
        thread::sleep(Duration::from_millis(100));
    }
    blocked.assert_blocked();
    assert_never_destroyed(&agent, &blocked.peer);
    // the peer reads the response: the writer completes, the socket is idle
    blocked
        .drain()
        .unwrap_or_else(|e| panic!("the blocked writer was hit: {e}\n{}", agent.log_text()));
    assert_eq!(blocked.queued(), 0);
    assert_destroyed(&blocked.server, &agent);
    destroyed_line(&agent, &blocked.peer);
}

#[test]
fn server_that_closes_in_time_is_left_alone() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let agent = socket_agent(port, &[]);
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (s, peer) = close_wait_on(&l);
    thread::sleep(Duration::from_millis(500));
    drop(s); // the application closes it itself, before the timeout
             // a stale control socket on the same port, entered later: once it is
             // destroyed, the first one's deadline has passed too
    let (s2, _) = close_wait_on(&l);
    assert_destroyed(&s2, &agent);
    assert_never_destroyed(&agent, &peer);
    assert!(
        agent.log_has("left CLOSE_WAIT"),
        "no leave event seen:\n{}",
        agent.log_text()
    );
}

#[test]
fn idle_established_connection_is_never_touched() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let agent = socket_agent(port, &[]);
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    let start = Instant::now();
    // the control: idle in CLOSE_WAIT on the same port since the same time
    let (control, control_peer) = close_wait_on(&l);
    assert_destroyed(&control, &agent);
    destroyed_line(&agent, &control_peer);
    // idle for 2.5 timeouts in all
    let rest = Duration::from_secs_f64(2.5 * TIMEOUT_S).saturating_sub(start.elapsed());
    thread::sleep(rest);
    assert_eq!(tcp_state(&s), TCP_ESTABLISHED);
    assert_eq!(tcp_state(&c), TCP_ESTABLISHED);
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    let peer = c.local_addr().unwrap();
    assert_never_destroyed(&agent, &peer);
}

#[test]
fn port_outside_scope_is_untouched() {
    if !privileged() {
        return;
    }
    let scoped = free_port("127.0.0.1");
    let agent = socket_agent(scoped, &[]);
    let other = free_port("127.0.0.1");
    let (s, _l, peer) = close_wait(format!("127.0.0.1:{other}").parse().unwrap());
    let entered = Instant::now();
    // the control on the scoped port, entered just after: destroyed
    let (control, _cl, control_peer) = close_wait(format!("127.0.0.1:{scoped}").parse().unwrap());
    assert_destroyed(&control, &agent);
    destroyed_line(&agent, &control_peer);
    // and the other one lives on well past its own timeout
    let rest = Duration::from_secs_f64(2.5 * TIMEOUT_S).saturating_sub(entered.elapsed());
    thread::sleep(rest);
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT, "log:\n{}", agent.log_text());
    assert_never_destroyed(&agent, &peer);
    assert!(
        !agent.log_text().contains(&format!("-> {peer} ")),
        "{}",
        agent.log_text()
    );
}

#[test]
fn excluded_port_is_untouched_and_dry_run_destroys_nothing() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let control_port = free_port("127.0.0.1");
    let cp = control_port.to_string();
    let excluded = socket_agent(port, &["--port", &cp, "--exclude-port", &p]);
    let dry = socket_agent(port, &["--dry-run", "--socket-destroy", "netlink"]);
    let (s, _l, peer) = close_wait(format!("127.0.0.1:{port}").parse().unwrap());
    // the excluding agent's control, on its other port, entered just after
    let (control, _cl, control_peer) =
        close_wait(format!("127.0.0.1:{control_port}").parse().unwrap());
    dry.wait_log_line(
        &["would destroy", &peer.to_string(), "method netlink"],
        PATIENCE,
    );
    assert_destroyed(&control, &excluded);
    destroyed_line(&excluded, &control_peer);
    thread::sleep(Duration::from_secs(1));
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT);
    assert!(!excluded.log_text().contains(&peer.to_string()));
    assert!(!dry.log_has("destroyed CLOSE_WAIT"), "{}", dry.log_text());
}

/// A socket already in CLOSE_WAIT for longer than the timeout when the
/// agent starts is aged from the agent's first sight (its survey before
/// `ready`): not destroyed at once, not before a timeout after the agent
/// started, and within a timeout (and a second) of it being ready.
#[test]
fn socket_in_close_wait_before_the_agent_starts_is_destroyed() {
    if !privileged() {
        return;
    }
    const T: Duration = Duration::from_secs(3);
    let port = free_port("127.0.0.1");
    let (s, _l, peer) = close_wait(format!("127.0.0.1:{port}").parse().unwrap());
    thread::sleep(T + Duration::from_secs(1)); // older than the timeout
    let p = port.to_string();
    let spawned = Instant::now();
    let agent = Agent::start(&["--no-locks", "--close-wait-timeout", "3s", "--port", &p]);
    let ready = Instant::now();
    // an agent that aged it from its real entry would destroy it at its
    // first look, before `ready`
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT, "{}", agent.log_text());
    let mut gone = None;
    let late = if emulated() {
        PATIENCE
    } else {
        Duration::from_secs(1)
    };
    while Instant::now() < ready + T + late {
        if tcp_state(&s) == TCP_CLOSE {
            gone = Some(Instant::now());
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let gone = gone.unwrap_or_else(|| {
        panic!(
            "still in CLOSE_WAIT {:?} after the agent was ready\n{}",
            ready.elapsed(),
            agent.log_text()
        )
    });
    assert!(
        gone >= spawned + T,
        "destroyed {:?} after the agent started, before its timeout",
        gone - spawned
    );
    assert_destroyed(&s, &agent);
    agent.wait_log_line(
        &[&peer.to_string(), "since the agent first saw it"],
        PATIENCE,
    );
}

#[test]
fn close_wait_in_another_network_namespace_is_destroyed() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("destroy");
    // a port nobody uses on the host either, so no other agent's scope
    let port = free_port("127.0.0.1");
    let agent = socket_agent(port, &[]);
    let inode = ns.run(|| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    });
    let (s, _l, peer) = ns.run(|| close_wait(format!("127.0.0.1:{port}").parse().unwrap()));
    assert_destroyed(&s, &agent);
    agent.wait_log_line(
        &[
            "destroyed CLOSE_WAIT socket",
            &peer.to_string(),
            &format!("netns {inode}"),
        ],
        PATIENCE,
    );
}

#[test]
fn close_wait_in_another_network_namespace_is_destroyed_by_netlink() {
    if !privileged() {
        return;
    }
    let ns = Netns::new("netlink");
    let port = free_port("[::1]");
    let agent = socket_agent(port, &["--socket-destroy", "netlink"]);
    let (s, _l, peer) = ns.run(|| close_wait(format!("[::1]:{port}").parse().unwrap()));
    assert_destroyed(&s, &agent);
    agent.wait_log_line(&[&peer.to_string(), "method netlink"], PATIENCE);
}

#[test]
fn bad_socket_flags_are_usage_errors() {
    for args in [
        &["run", "--close-wait-timeout", "soon"][..],
        &["run", "--port", "65536"],
        &["run", "--socket-destroy", "ss"],
        &[
            "run",
            "--no-locks",
            "--no-sockets",
            "--no-unix-sockets",
            "--no-pid-files",
        ],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn close_wait_in_an_unnamed_namespace_is_destroyed() {
    if !privileged() {
        return;
    }
    let ns = Unnamed::new();
    let port = free_port("127.0.0.1");
    let agent = socket_agent(port, &[]);
    let (s, _l, peer) = ns.run(|| close_wait(format!("127.0.0.1:{port}").parse().unwrap()));
    assert_destroyed(&s, &agent);
    agent.wait_log_line(
        &["destroyed CLOSE_WAIT socket", &peer.to_string()],
        PATIENCE,
    );
}
