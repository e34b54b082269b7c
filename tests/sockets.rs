//! End-to-end tests of the CLOSE_WAIT socket monitor: the real binary, as
//! root, with BPF loaded, against real sockets on loopback and in network
//! namespaces the tests create. Each test scopes its agent to its own ports
//! (`--port`), so agents running at the same time never touch each other's
//! sockets, and cleans up its agent (by PID) and namespaces on any exit.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::{privileged, tcp_state, Netns, BIN};

const TIMEOUT: &str = "2s";
/// Generous: the socket must be gone well within this after its timeout.
const PATIENCE: Duration = Duration::from_secs(10);

const TCP_ESTABLISHED: u8 = 1;
const TCP_CLOSE: u8 = 7;
const TCP_CLOSE_WAIT: u8 = 8;

/// The shared test agent (tests/common), with the line-returning waits
/// these tests use. Socket tests pass --no-locks.
struct Agent(common::Agent);

impl Agent {
    fn start(args: &[&str]) -> Agent {
        Agent(common::Agent::start(args))
    }

    fn log(&self) -> String {
        self.0.log_text()
    }

    /// Wait for a log line containing every one of `parts`; the line.
    fn wait_log_line(&self, parts: &[&str], patience: Duration) -> String {
        let end = Instant::now() + patience;
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return l.to_string();
            }
            if Instant::now() > end {
                panic!("no log line with {parts:?} within {patience:?}; agent log:\n{log}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

fn free_port(loopback: &str) -> u16 {
    TcpListener::bind(format!("{loopback}:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_state(s: &TcpStream, want: u8, patience: Duration) -> bool {
    let end = Instant::now() + patience;
    while Instant::now() < end {
        if tcp_state(s) == want {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    tcp_state(s) == want
}

/// send(2) without SIGPIPE: the error the application would see.
fn send(s: &TcpStream, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: data outlives the call.
    let n = unsafe {
        libc::send(
            s.as_raw_fd(),
            data.as_ptr().cast(),
            data.len(),
            libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// A server-side socket in CLOSE_WAIT: the client connected and closed.
/// Returns the server's socket and the client's address.
fn close_wait(listen: SocketAddr) -> (TcpStream, TcpListener, SocketAddr) {
    let l = TcpListener::bind(listen).unwrap();
    let (s, peer) = close_wait_on(&l);
    (s, l, peer)
}

fn close_wait_on(l: &TcpListener) -> (TcpStream, SocketAddr) {
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, peer) = l.accept().unwrap();
    drop(c);
    assert!(
        wait_state(&s, TCP_CLOSE_WAIT, Duration::from_secs(5)),
        "the server socket did not reach CLOSE_WAIT"
    );
    (s, peer)
}

/// The socket was destroyed, and the application learns it on its next call.
fn assert_destroyed(s: &TcpStream, agent: &Agent) {
    assert!(
        wait_state(s, TCP_CLOSE, PATIENCE),
        "socket still in state {} after {PATIENCE:?}; agent log:\n{}",
        tcp_state(s),
        agent.log()
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
    let p = port.to_string();
    let mut args = vec!["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p];
    args.extend_from_slice(extra);
    let agent = Agent::start(&args);
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
    // never before the timeout, and at most a second after it. Under an
    // emulated CPU (tests/vm/run.sh with TCG sets EGHOSTBUSTER_EMULATED_VM=1)
    // every timer fires late by whatever the emulation costs: there the late
    // side only has to be within PATIENCE; the early side stays exact.
    let idle: f64 = line
        .split("idle ")
        .nth(1)
        .and_then(|s| s.split('s').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no idle time in: {line}"));
    let late = if std::env::var("EGHOSTBUSTER_EMULATED_VM").as_deref() == Ok("1") {
        PATIENCE.as_secs_f64()
    } else {
        1.0
    };
    assert!((2.0..2.0 + late).contains(&idle), "{line}");
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
    let p = port.to_string();
    let agent = Agent::start(&[
        "--no-locks",
        "--close-wait-timeout",
        TIMEOUT,
        "--port",
        &p,
        "--socket-destroy",
        "netlink",
    ]);
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

/// As on a host whose CONFIG_HZ libbpf cannot find.
#[test]
fn half_closed_server_that_keeps_sending_is_kept_without_hz() {
    half_closed_sender(&["--force-idle-fallback"]);
}

fn half_closed_sender(extra: &[&str]) {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let mut args = vec!["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p];
    args.extend_from_slice(extra);
    let agent = Agent::start(&args);
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
            .unwrap_or_else(|e| panic!("the sending server was hit: {e}; log:\n{}", agent.log()));
        thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT);
    // then it goes quiet without closing: now it is stale
    assert_destroyed(&s, &agent);
    drop(s);
    reader.join().unwrap();
}

#[test]
fn server_that_closes_in_time_is_left_alone() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let agent = Agent::start(&["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p]);
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let (s, peer) = close_wait_on(&l);
    thread::sleep(Duration::from_millis(500));
    drop(s); // the application closes it itself, before the timeout
             // a stale control socket on the same port, entered later: once it is
             // destroyed, the first one's deadline has passed too
    let (s2, _) = close_wait_on(&l);
    assert_destroyed(&s2, &agent);
    let log = agent.log();
    assert!(
        !log.lines()
            .any(|l| l.contains(&peer.to_string()) && l.contains("destroy")),
        "a closed socket was acted on:\n{log}"
    );
    assert!(
        log.contains("left CLOSE_WAIT"),
        "no leave event seen:\n{log}"
    );
}

#[test]
fn idle_established_connection_is_never_touched() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let agent = Agent::start(&["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p]);
    let l = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut s, _) = l.accept().unwrap();
    thread::sleep(Duration::from_secs(5)); // idle for 2.5 timeouts
    assert_eq!(tcp_state(&s), TCP_ESTABLISHED);
    assert_eq!(tcp_state(&c), TCP_ESTABLISHED);
    s.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert!(!agent.log().contains("destroyed"), "{}", agent.log());
}

#[test]
fn port_outside_scope_is_untouched() {
    if !privileged() {
        return;
    }
    let scoped = free_port("127.0.0.1").to_string();
    let agent = Agent::start(&[
        "--no-locks",
        "--close-wait-timeout",
        TIMEOUT,
        "--port",
        &scoped,
    ]);
    let other = free_port("127.0.0.1");
    let (s, _l, _) = close_wait(format!("127.0.0.1:{other}").parse().unwrap());
    thread::sleep(Duration::from_secs(5));
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT, "log:\n{}", agent.log());
}

#[test]
fn excluded_port_is_untouched_and_dry_run_destroys_nothing() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let excluded = Agent::start(&[
        "--no-locks",
        "--close-wait-timeout",
        TIMEOUT,
        "--port",
        &p,
        "--exclude-port",
        &p,
    ]);
    let dry = Agent::start(&[
        "--no-locks",
        "--close-wait-timeout",
        TIMEOUT,
        "--port",
        &p,
        "--dry-run",
        "--socket-destroy",
        "netlink",
    ]);
    let (s, _l, peer) = close_wait(format!("127.0.0.1:{port}").parse().unwrap());
    dry.wait_log_line(
        &["would destroy", &peer.to_string(), "method netlink"],
        PATIENCE,
    );
    thread::sleep(Duration::from_secs(1));
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT);
    assert!(!excluded.log().contains(&peer.to_string()));
}

#[test]
fn socket_in_close_wait_before_the_agent_starts_is_destroyed() {
    if !privileged() {
        return;
    }
    let port = free_port("127.0.0.1");
    let (s, _l, peer) = close_wait(format!("127.0.0.1:{port}").parse().unwrap());
    let p = port.to_string();
    let agent = Agent::start(&["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p]);
    // aged from the agent's first sight, not destroyed at once
    assert_eq!(tcp_state(&s), TCP_CLOSE_WAIT);
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
    let p = port.to_string();
    let agent = Agent::start(&["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p]);
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
    let p = port.to_string();
    let agent = Agent::start(&[
        "--no-locks",
        "--close-wait-timeout",
        TIMEOUT,
        "--port",
        &p,
        "--socket-destroy",
        "netlink",
    ]);
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

/// A process in a network namespace of its own with no name under
/// /run/netns, as a container's: `unshare -n sleep`, killed by PID on drop.
struct Unnamed(Child);

impl Unnamed {
    fn new() -> Unnamed {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .spawn()
            .expect("unshare --net sleep");
        let u = Unnamed(child);
        let pid = u.0.id().to_string();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let end = Instant::now() + Duration::from_secs(5);
        // wait for unshare to have made the namespace and exec'd sleep
        while std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .as_ref()
            == Some(&own)
            || std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default() != "sleep\n"
        {
            assert!(Instant::now() < end, "unshare did not start");
            thread::sleep(Duration::from_millis(20));
        }
        let ok = Command::new("nsenter")
            .args(["-t", &pid, "-n", "ip", "link", "set", "lo", "up"])
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "bringing lo up");
        u
    }

    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let file = std::fs::File::open(format!("/proc/{}/ns/net", self.0.id())).unwrap();
        thread::scope(|s| {
            s.spawn(move || {
                // SAFETY: setns on a descriptor we own, for this thread only.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        })
    }
}

impl Drop for Unnamed {
    fn drop(&mut self) {
        let _ = self.0.kill(); // by PID: our own child
        let _ = self.0.wait();
    }
}

#[test]
fn close_wait_in_an_unnamed_namespace_is_destroyed() {
    if !privileged() {
        return;
    }
    let ns = Unnamed::new();
    let port = free_port("127.0.0.1");
    let p = port.to_string();
    let agent = Agent::start(&["--no-locks", "--close-wait-timeout", TIMEOUT, "--port", &p]);
    let (s, _l, peer) = ns.run(|| close_wait(format!("127.0.0.1:{port}").parse().unwrap()));
    assert_destroyed(&s, &agent);
    agent.wait_log_line(
        &["destroyed CLOSE_WAIT socket", &peer.to_string()],
        PATIENCE,
    );
}
