//! Shared by the privileged end-to-end tests: start the real agent scoped
//! to a test's own directory, drive real processes, clean up by PID.

#![allow(dead_code)]

pub mod daemons;
mod locks;
mod netns;
pub mod sockets;

// each test file uses some of these, none uses all
#[allow(unused_imports)]
pub use locks::*;
#[allow(unused_imports)]
pub use netns::*;

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_eghostbuster");

/// Root with BPF, or skip; a skip is a failure under EGHOSTBUSTER_REQUIRE_BPF=1.
pub fn privileged() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        if std::env::var("EGHOSTBUSTER_REQUIRE_BPF").as_deref() == Ok("1") {
            panic!("EGHOSTBUSTER_REQUIRE_BPF=1 but not running as root");
        }
        eprintln!("skipped: needs root");
    }
    root
}

/// Under an emulated CPU (tests/vm/run.sh with TCG sets
/// EGHOSTBUSTER_EMULATED_VM=1) everything takes many times longer.
pub fn emulated() -> bool {
    std::env::var("EGHOSTBUSTER_EMULATED_VM").as_deref() == Ok("1")
}

/// Poll `cond` until it holds or `within` passes (six times that when
/// emulated). `within` is patience only, never a bound a test asserts:
/// tests that bound a time measure it themselves.
pub fn wait_for(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let within = if emulated() { within * 6 } else { within };
    let end = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub const PATIENCE: Duration = Duration::from_secs(10);

/// A running agent. Stopped with SIGTERM (then SIGKILL) by PID on drop;
/// its log is printed when the test failed.
pub struct Agent {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// Holds this agent's status file.
    pub state: tempfile::TempDir,
}

impl Agent {
    /// `eghostbuster run ARGS...`, waiting for its `ready` line. Unless
    /// ARGS name a --pin-dir, the agent pins nothing; its status file is
    /// its own.
    pub fn start(args: &[&str]) -> Agent {
        let mut extra = Vec::new();
        // lock tests: an agent scoped to a directory must not also act on
        // the host's CLOSE_WAIT sockets (the socket monitor is on by default)
        if !args.contains(&"--no-locks") {
            extra.push("--no-sockets");
        }
        // the lock and socket tests exercise those classes only: socket
        // files and PID files (on by default, whole host without --path)
        // are left to their own tests (start_exact)
        for f in ["--no-unix-sockets", "--no-pid-files"] {
            if !args.contains(&f) {
                extra.push(f);
            }
        }
        Agent::spawn(args, &extra)
    }

    /// `eghostbuster run ARGS...` with exactly these classes and scope
    /// (plus its own status file, and --no-pin unless ARGS pin): the
    /// caller scopes every class it leaves on.
    pub fn start_exact(args: &[&str]) -> Agent {
        Agent::spawn(args, &[])
    }

    /// `start`, with these environment variables (a fail point).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Agent {
        Agent::spawn_env(
            args,
            &["--no-sockets", "--no-unix-sockets", "--no-pid-files"],
            env,
        )
    }

    fn spawn(args: &[&str], extra: &[&str]) -> Agent {
        Agent::spawn_env(args, extra, &[])
    }

    /// ARGS may name the --status-file (a restart on the same one);
    /// otherwise the agent gets its own.
    fn spawn_env(args: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Agent {
        let state = test_dir("agent-state");
        let status = state.path().join("status.json");
        let mut cmd = Command::new(BIN);
        cmd.arg("run").args(args).args(extra);
        if !args.contains(&"--status-file") {
            cmd.arg("--status-file").arg(&status);
        }
        cmd.envs(env.iter().copied());
        if !args.contains(&"--pin-dir") {
            cmd.arg("--no-pin");
        }
        let mut child = cmd
            .env(
                "RUST_LOG",
                std::env::var("EGB_TEST_LOG").unwrap_or("debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the agent");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut agent = Agent { child, log, state };
        // emulated, the verifier alone can take half a minute for one agent
        // while another test loads its own: wait_for stretches this
        let ready = wait_for(Duration::from_secs(30), || {
            agent.log_has("ready: ") || agent.exited()
        });
        assert!(
            ready && agent.log_has("ready: "),
            "agent did not become ready:\n{}",
            agent.log_text()
        );
        agent
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn status_file(&self) -> PathBuf {
        self.state.path().join("status.json")
    }

    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Wait for a log line containing every one of `parts`.
    pub fn wait_log(&self, parts: &[&str]) -> bool {
        wait_for(PATIENCE, || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        })
    }

    /// Wait for a log line for which `pred` holds; the line.
    pub fn wait_line(&self, patience: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        let mut found = None;
        wait_for(patience, || {
            found = self.log.lock().unwrap().iter().find(|l| pred(l)).cloned();
            found.is_some()
        });
        found
    }

    /// Wait for a log line containing every one of `parts`, and return it;
    /// panics with the whole log when none comes within `patience`.
    pub fn wait_log_line(&self, parts: &[&str], patience: Duration) -> String {
        self.wait_line(patience, |l| parts.iter().all(|p| l.contains(p)))
            .unwrap_or_else(|| {
                panic!(
                    "no log line with {parts:?} within {patience:?}; agent log:\n{}",
                    self.log_text()
                )
            })
    }

    /// SIGTERM and wait; returns the exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
        // EGB_TEST_SHOW_LOG: every agent's log, passing tests too (what a
        // test printed, for a closing note or a bug report)
        if std::thread::panicking() || std::env::var_os("EGB_TEST_SHOW_LOG").is_some() {
            eprintln!("--- agent log ---\n{}\n---", self.log_text());
        }
    }
}

/// Processes a test started; SIGKILLed and reaped on drop.
#[derive(Default)]
pub struct Procs(pub Vec<i32>);

impl Procs {
    /// Fork a child that runs `f` and then exits 0. The child first closes
    /// every descriptor it inherited (other tests' files among them), so it
    /// holds nothing it did not open itself.
    pub fn fork(&mut self, f: impl FnOnce()) -> i32 {
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            unsafe { libc::_exit(if r.is_ok() { 0 } else { 101 }) };
        }
        self.0.push(pid);
        pid
    }

    /// A shell command, e.g. `set -C; : > x.lock; kill -9 $$`.
    pub fn sh(&mut self, script: &str, dir: &Path) -> i32 {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .stdin(Stdio::null())
            .spawn()
            .expect("sh");
        let pid = child.id() as i32;
        std::mem::forget(child); // reaped by pid in drop
        self.0.push(pid);
        pid
    }

    pub fn kill(&self, pid: i32, sig: i32) {
        assert!(self.0.contains(&pid), "not ours: {pid}");
        unsafe { libc::kill(pid, sig) };
    }

    /// Wait for a child of ours to end, and leave it a zombie (WNOWAIT:
    /// its /proc entry stays, as if nobody had looked); panics unless it
    /// was killed by SIGKILL, saying how it ended instead.
    pub fn assert_killed(&self, pid: i32, what: &str) {
        assert!(self.0.contains(&pid), "not ours: {pid}");
        // SAFETY: info is written by waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(r, 0, "waitid {pid}: {}", std::io::Error::last_os_error());
        // SAFETY: set for SIGCHLD information, which waitid returns.
        let status = unsafe { info.si_status() };
        let how = match info.si_code {
            libc::CLD_KILLED | libc::CLD_DUMPED => format!("killed by signal {status}"),
            libc::CLD_EXITED => format!("exited with status {status}"),
            c => format!("si_code {c}"),
        };
        assert!(
            info.si_code == libc::CLD_KILLED && status == libc::SIGKILL,
            "{what} (pid {pid}) {how}, not killed by SIGKILL"
        );
    }

    /// Wait for a child of ours to end; its wait status.
    pub fn reap(&mut self, pid: i32) -> i32 {
        let mut st = 0;
        unsafe { libc::waitpid(pid, &mut st, 0) };
        self.0.retain(|&p| p != pid);
        st
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for &p in &self.0 {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        for &p in &self.0 {
            let mut st = 0;
            unsafe { libc::waitpid(p, &mut st, 0) };
        }
    }
}

pub fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

/// In a child: create `path` with O_CREAT|O_EXCL (or without O_EXCL), write
/// `content`, leave the descriptor open, return it.
pub fn create(path: &CString, excl: bool, content: &[u8]) -> i32 {
    let flags = libc::O_CREAT | libc::O_WRONLY | if excl { libc::O_EXCL } else { 0 };
    let fd = unsafe { libc::open(path.as_ptr(), flags, 0o644) };
    assert!(fd >= 0, "create failed");
    unsafe { libc::write(fd, content.as_ptr().cast(), content.len()) };
    fd
}

/// In a child: wait until killed.
pub fn park() -> ! {
    loop {
        unsafe { libc::pause() };
    }
}

/// A fresh directory for one test, removed on drop.
pub fn test_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("egb-{name}-"))
        .tempdir_in("/tmp")
        .unwrap()
}

pub fn exists(p: &Path) -> bool {
    p.symlink_metadata().is_ok()
}

pub fn path_arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

pub fn join(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
/// A minimal check of the exposition format: every sample line is
/// `name{labels} value` with a HELP and TYPE before its family.
pub fn validate(text: &str) -> Result<usize, String> {
    let mut typed = std::collections::HashSet::new();
    let mut samples = 0;
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut f = rest.split(' ');
            let name = f.next().ok_or(format!("line {n}: TYPE without name"))?;
            match f.next() {
                Some("counter" | "gauge" | "untyped" | "histogram" | "summary") => {}
                other => return Err(format!("line {n}: bad type {other:?}")),
            }
            typed.insert(name.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or(format!("line {n}: no value"))?;
        value
            .parse::<f64>()
            .map_err(|_| format!("line {n}: bad value {value:?}"))?;
        let name = series.split('{').next().unwrap_or("");
        // a histogram's series carry suffixes; its TYPE names the base
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| typed.contains(*b)))
            .unwrap_or(name);
        if let Some(labels) = series.find('{').map(|i| &series[i..]) {
            // every value quoted: an even number of unescaped quotes
            let quotes = labels
                .replace("\\\\", "")
                .replace("\\\"", "")
                .matches('"')
                .count();
            if quotes % 2 != 0 {
                return Err(format!("line {n}: bad labels {labels:?}"));
            }
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        {
            return Err(format!("line {n}: bad metric name {name:?}"));
        }
        if series.contains('{') && !series.ends_with('}') {
            return Err(format!("line {n}: unterminated labels"));
        }
        if !typed.contains(name) {
            return Err(format!("line {n}: {name} has no TYPE line"));
        }
        samples += 1;
    }
    Ok(samples)
}

/// `eghostbuster ARGS...` run to the end, stdin closed.
pub fn bin(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running the binary")
}

/// Its stderr, as text.
pub fn err_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line on stderr, exit 2, and no `ready`.
pub fn one_line_usage(o: &std::process::Output, mention: &str) {
    let err = err_of(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(
        err.contains(mention),
        "{err:?} does not mention {mention:?}"
    );
    assert!(!err.contains("ready"), "{err}");
}

/// A value clap's parser refused: its whole message, the first line
/// naming the problem, exit 2, nothing started.
pub fn clap_usage(o: &std::process::Output, mention: &str) {
    let err = err_of(o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let first = err.lines().next().unwrap_or("");
    assert!(
        first.starts_with("error: ") && first.contains(mention),
        "{err}"
    );
    assert!(!err.contains("ready"), "{err}");
}

/// Write `text` to `p`.
pub fn write(p: &Path, text: &str) {
    std::fs::write(p, text).unwrap();
}

/// A finished command's stdout and stderr, as text.
pub fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// An agent scoped to `dir` (`--path`), with `extra` arguments.
pub fn agent_for(dir: &Path, extra: &[&str]) -> Agent {
    let d = path_arg(dir);
    let mut args = vec!["--path", d.as_str()];
    args.extend_from_slice(extra);
    Agent::start(&args)
}

/// The ghost classes, by the name of their `--no-*` switch.
pub const CLASSES: [&str; 4] = ["locks", "sockets", "unix-sockets", "pid-files"];

/// `--no-*` for every class but `class` (one of CLASSES).
fn all_but(class: &str) -> Vec<String> {
    assert!(CLASSES.contains(&class), "{class} is not a class");
    CLASSES
        .iter()
        .filter(|&&c| c != class)
        .map(|c| format!("--no-{c}"))
        .collect()
}

/// An agent acting under `dir` only, with only `class` on (one of
/// CLASSES, e.g. "pid-files"), and `extra` arguments.
pub fn agent_only(class: &str, dir: &Path, extra: &[&str]) -> Agent {
    let d = path_arg(dir);
    let off = all_but(class);
    let mut args = vec!["--path", d.as_str()];
    args.extend(off.iter().map(String::as_str));
    args.extend_from_slice(extra);
    Agent::start_exact(&args)
}

/// `eghostbuster sweep --path DIR` with only `class` on, and `extra`.
pub fn sweep_only(class: &str, dir: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["sweep", "--path"])
        .arg(dir)
        .args(all_but(class))
        .args(extra)
        .output()
        .unwrap()
}

/// Processes a test started that are not its children (a forked
/// grandchild, a namespace's helper): SIGKILLed by PID on drop.
pub struct Strays(pub Vec<i32>);

impl Drop for Strays {
    fn drop(&mut self) {
        for &p in &self.0 {
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
    }
}

/// The PID a file holds, once it holds one.
pub fn read_pid_file(p: &Path) -> i32 {
    assert!(
        wait_for(PATIENCE, || std::fs::read_to_string(p)
            .is_ok_and(|s| s.trim().parse::<i32>().is_ok())),
        "no pid in {}",
        p.display()
    );
    std::fs::read_to_string(p).unwrap().trim().parse().unwrap()
}

/// The children of `pid`, from /proc.
pub fn children(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect()
}

/// A pin directory of the test's own under /sys/fs/bpf; unpinned (by
/// `eghostbuster unpin`) on drop, even when the test fails.
pub struct Pins(pub PathBuf);

impl Pins {
    pub fn new(name: &str) -> Pins {
        Pins(PathBuf::from(format!(
            "/sys/fs/bpf/egb-test-{}-{name}",
            std::process::id()
        )))
    }

    pub fn arg(&self) -> String {
        self.0.display().to_string()
    }

    /// The names pinned in this version's directory.
    pub fn pinned(&self) -> Vec<String> {
        let Some(version_dir) = std::fs::read_dir(&self.0)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
        else {
            return Vec::new();
        };
        std::fs::read_dir(version_dir.path())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .args(["unpin", "--pin-dir", &self.arg()])
            .output();
    }
}
