//! Real daemons for the tests (Debian packages: nginx, gunicorn, python3):
//! started as children on the tests' own ports and directories, stopped
//! by PID when dropped (SIGTERM, then SIGKILL), whatever the test's outcome.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::wait_for;

/// A daemon the test started. Its process group is its own, so that a
/// stop reaches the workers it forked (nginx, gunicorn) too.
pub struct Daemon {
    pub what: String,
    pub child: Child,
}

impl Daemon {
    pub fn spawn(what: &str, cmd: &mut Command) -> Daemon {
        use std::os::unix::process::CommandExt;
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {what}: {e} (is its package installed? scripts/deps.sh installs it)"
                )
            });
        Daemon {
            what: what.into(),
            child,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Signal the whole process group (master and workers).
    pub fn kill_group(&self, sig: i32) {
        // SAFETY: our own child's process group.
        unsafe { libc::kill(-self.pid(), sig) };
    }

    /// Wait for the leader to end; its exit status.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill_group(libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // workers that outlived their master, and the master if it hung
        self.kill_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `tests/fixtures/tcp_servers.py MODE PORT ARGS…`, once it says ready.
pub fn python_server(mode: &str, port: u16, args: &[&str]) -> Daemon {
    let mut d = Daemon::spawn(
        &format!("python server ({mode}) on {port}"),
        Command::new("python3")
            .arg(fixture("tcp_servers.py"))
            .arg(mode)
            .arg(port.to_string())
            .args(args)
            .stdout(Stdio::piped()),
    );
    let mut line = String::new();
    BufReader::new(d.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "{}", d.what);
    d
}

/// nginx (the Debian package) in the foreground, as a reverse proxy on
/// `port` to `upstream`, everything it writes under `dir`, with `extra`
/// directives in its location block.
pub fn nginx_proxy(dir: &Path, port: u16, upstream: u16, extra: &str) -> Daemon {
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log {d}/access.log;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location / {{ proxy_pass http://127.0.0.1:{upstream}; {extra} }}
  }}
}}
"
        ),
    )
    .unwrap();
    let daemon = Daemon::spawn(
        &format!("nginx on {port}"),
        Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .arg("-g")
            .arg("daemon off;"),
    );
    // ready once its worker runs (a probe connection would be a client
    // of its own)
    let log = dir.join("error.log");
    assert!(
        wait_for(Duration::from_secs(10), || std::fs::read_to_string(&log)
            .is_ok_and(|t| t.contains("start worker process"))),
        "nginx did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    daemon
}

/// What a client got: the bytes, how long it took, and the error that
/// ended it early (if any).
#[derive(Debug)]
pub struct Reply {
    pub bytes: Vec<u8>,
    pub took: Duration,
    pub error: Option<std::io::Error>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// An HTTP/1.0 request to `port`, then (with `half_close`)
/// `shutdown(SHUT_WR)`, then read to EOF.
pub fn http_get(port: u16, half_close: bool) -> Reply {
    let t0 = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    if half_close {
        s.shutdown(Shutdown::Write).unwrap();
    }
    let mut bytes = Vec::new();
    let error = s.read_to_end(&mut bytes).err();
    Reply {
        bytes,
        took: t0.elapsed(),
        error,
    }
}

/// A client of a leaking server: one request, its reply read (up to
/// `until` in it), then the client closes: the server's end is left in
/// CLOSE_WAIT. Returns the client's local address (the remote end of the
/// server's socket, as the agent's lines name it).
pub fn request_then_close(port: u16, until: &[u8]) -> std::net::SocketAddr {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(until.len()).any(|w| w == until) {
        let n = s.read(&mut buf).expect("the reply");
        assert!(n > 0, "closed before the reply: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    s.local_addr().unwrap()
}
