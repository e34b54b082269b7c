//! Operating the daemon (issue 16, issue 12 items 6 and 8): the config
//! file, SIGHUP and the other signals, structured logs, the supervisor
//! protocol, status, and what a running daemon refuses. (Usage errors and
//! `check-config`: tests/cli.rs.)

mod common;
#[path = "common/user.rs"]
#[allow(dead_code)]
mod user;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::sockets::tcp_state;
use common::*;
use user::TestUser;

/// A daemon started by hand (the common helper sets RUST_LOG and its own
/// flags): scoped, unpinned, its status file in `state`, its stderr
/// collected.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.arg("run").args(args).env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        let d = Daemon { child, log };
        // the ready line itself, not any line that says "ready" (under
        // emulation an earlier one came first, and the test raced the start)
        let ready = if args.contains(&"json") {
            "\"event\":\"ready\""
        } else {
            "ready: "
        };
        assert!(d.wait_log(&[ready]), "not ready:\n{}", d.text());
        d
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_log(&self, parts: &[&str]) -> bool {
        wait_for(Duration::from_secs(30), || {
            self.log
                .lock()
                .unwrap()
                .iter()
                .any(|l| parts.iter().all(|p| l.contains(p)))
        })
    }

    fn signal(&self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait_exit(&mut self) -> Option<i32> {
        for _ in 0..500 {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal(libc::SIGTERM);
            if self.wait_exit().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("--- daemon log ---\n{}\n---", self.text());
        }
    }
}

#[test]
fn config_file_sighup_reload_and_signals() {
    if !privileged() {
        return;
    }
    let a = test_dir("reload-a");
    let b = test_dir("reload-b");
    let state = test_dir("reload-state");
    let cfg = state.path().join("egb.toml");
    let status = state.path().join("status.json");
    let conf = |dir: &Path, extra: &str| {
        format!(
            "[locks]\npaths = [\"{}\"]\n[sockets]\nenabled = false\n[run]\npin = false\nstatus_file = \"{}\"\n{extra}",
            dir.display(),
            status.display()
        )
    };
    write(&cfg, &conf(a.path(), ""));
    let mut d = Daemon::start(&["--config", cfg.to_str().unwrap()], &[]);
    // the scope came from the file
    assert!(d.wait_log(&["ready", &path_arg(a.path())]), "{}", d.text());
    assert!(wait_for(PATIENCE, || exists(&status)));
    let mut procs = Procs::default();
    let in_a = killed_lock(&mut procs, a.path(), "a.lock");
    assert!(d.wait_log(&["removed ", "a.lock"]), "{}", d.text());
    assert!(!exists(&in_a));

    // SIGHUP: the scope moves to b
    write(&cfg, &conf(b.path(), "[log]\nlevel = \"debug\"\n"));
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log(&["SIGHUP: configuration reloaded"]),
        "{}",
        d.text()
    );
    let in_a = killed_lock(&mut procs, a.path(), "a2.lock");
    let in_b = killed_lock(&mut procs, b.path(), "b.lock");
    assert!(d.wait_log(&["removed ", "b.lock"]), "{}", d.text());
    assert!(!exists(&in_b));
    assert!(exists(&in_a), "out of the reloaded scope, yet removed");
    // the level came along: debug lines now
    assert!(d.wait_log(&["DEBUG"]), "{}", d.text());

    // an invalid file: logged, the running configuration kept
    write(&cfg, "[locks]\npaths = [\"relative\"]\n");
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log(&["configuration not reloaded", "not an absolute path"]),
        "{}",
        d.text()
    );
    let in_b = killed_lock(&mut procs, b.path(), "b2.lock");
    assert!(d.wait_log(&["removed ", "b2.lock"]), "{}", d.text());
    assert!(!exists(&in_b));

    // signals an operator or a supervisor sends: logged, ignored
    for (sig, name) in [
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
    ] {
        d.signal(sig);
        assert!(d.wait_log(&[name, "ignored"]), "{}", d.text());
    }
    assert!(matches!(d.child.try_wait(), Ok(None)), "it died");
    // SIGQUIT stops cleanly, with a line, and removes the status file
    d.signal(libc::SIGQUIT);
    assert_eq!(d.wait_exit(), Some(0), "{}", d.text());
    assert!(d.wait_log(&["SIGQUIT: stopping"]), "{}", d.text());
    assert!(!exists(&status), "status file left behind");
}

/// SIGHUP moves the CLOSE_WAIT timeout and the ports in the loaded
/// programs too: a socket kept under a one-hour timeout goes once the
/// reloaded timeout is one second.
#[test]
fn sighup_applies_a_new_close_wait_timeout() {
    if !privileged() {
        return;
    }
    let state = test_dir("reload-sock");
    let cfg = state.path().join("egb.toml");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conf = |timeout: &str| {
        format!(
            "[locks]\nenabled = false\n[sockets]\nclose_wait_timeout = \"{timeout}\"\nports = [{port}]\n[run]\npin = false\nstatus_file = \"{}\"\n",
            state.path().join("s.json").display()
        )
    };
    write(&cfg, &conf("1h"));
    let d = Daemon::start(&["--config", cfg.to_str().unwrap()], &[]);
    assert!(
        d.wait_log(&["ready", "close-wait timeout 3600s"]),
        "{}",
        d.text()
    );
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(client); // the peer closes; the server never does: CLOSE_WAIT
    assert!(wait_for(PATIENCE, || tcp_state(&server) == 8));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(tcp_state(&server), 8, "destroyed under a one-hour timeout");
    write(&cfg, &conf("1s"));
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_log(&["SIGHUP: sockets: close-wait timeout 1s"]),
        "{}",
        d.text()
    );
    assert!(
        d.wait_log(&["destroyed CLOSE_WAIT socket", &format!("127.0.0.1:{port}")]),
        "{}",
        d.text()
    );
    assert_ne!(tcp_state(&server), 8);
}

#[test]
fn flags_win_over_the_config_file() {
    if !privileged() {
        return;
    }
    let a = test_dir("flags-a");
    let b = test_dir("flags-b");
    let state = test_dir("flags-state");
    let cfg = state.path().join("egb.toml");
    write(
        &cfg,
        &format!(
            "[locks]\npaths = [\"{}\"]\n[sockets]\nenabled = false\n[run]\npin = false\nstatus_file = \"{}\"\n",
            a.path().display(),
            state.path().join("s.json").display()
        ),
    );
    let d = Daemon::start(
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--path",
            &path_arg(b.path()),
        ],
        &[],
    );
    assert!(d.wait_log(&["ready", &path_arg(b.path())]), "{}", d.text());
    assert!(!d.text().contains(&path_arg(a.path())), "{}", d.text());
}

#[test]
fn signals_stop_cleanly_and_remove_the_status_file() {
    if !privileged() {
        return;
    }
    for (sig, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let dir = test_dir("sigstop");
        let state = test_dir("sigstop-state");
        let status = state.path().join("status.json");
        let mut d = Daemon::start(
            &[
                "--path",
                &path_arg(dir.path()),
                "--no-sockets",
                "--no-pin",
                "--status-file",
                status.to_str().unwrap(),
            ],
            &[],
        );
        assert!(wait_for(PATIENCE, || exists(&status)));
        d.signal(sig);
        assert_eq!(d.wait_exit(), Some(0));
        assert!(d.wait_log(&[name, "stopping"]), "{}", d.text());
        assert!(!exists(&status));
    }
}

#[test]
fn one_daemon_per_status_file() {
    if !privileged() {
        return;
    }
    let dir = test_dir("onedaemon");
    let agent = Agent::start(&["--path", &path_arg(dir.path())]);
    let status = agent.status_file();
    assert!(wait_for(PATIENCE, || exists(&status)));
    let o = bin(&[
        "run",
        "--path",
        &path_arg(dir.path()),
        "--no-sockets",
        "--no-pin",
        "--status-file",
        status.to_str().unwrap(),
    ]);
    one_line_usage(&o, "another daemon");
    assert!(
        err_of(&o).contains(&agent.pid().to_string()),
        "{}",
        err_of(&o)
    );
    // the first one's status file is still there
    std::thread::sleep(Duration::from_millis(300));
    assert!(exists(&status));
}

#[test]
fn netlink_destruction_without_cap_net_admin_is_refused_at_start() {
    if !privileged() {
        return;
    }
    let state = test_dir("netadmin");
    let o = Command::new("setpriv")
        .args(["--inh-caps=-net_admin", "--bounding-set=-net_admin"])
        .arg(BIN)
        .args([
            "run",
            "--no-locks",
            "--port",
            "1",
            "--socket-destroy",
            "netlink",
            "--no-pin",
            "--status-file",
        ])
        .arg(state.path().join("s.json"))
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    one_line_usage(&o, "CAP_NET_ADMIN");
}

#[test]
fn json_logs_carry_fields_and_status_shows_states_and_ages() {
    if !privileged() {
        return;
    }
    let dir = test_dir("jsonfields");
    let state = test_dir("jsonfields-state");
    let status = state.path().join("status.json");
    let d = Daemon::start(
        &[
            "--path",
            &path_arg(dir.path()),
            "--no-sockets",
            "--no-pin",
            "--log-format",
            "json",
            "--log-timestamp",
            "off",
            "--status-file",
            status.to_str().unwrap(),
        ],
        &[],
    );
    let mut procs = Procs::default();
    // a lock that stays: its owner lives
    let kept = dir.path().join("live.lock");
    let c = cstr(&kept);
    procs.fork(move || {
        create(&c, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&kept)));
    let lock = killed_lock(&mut procs, dir.path(), "odd\tname.lock");
    assert!(d.wait_log(&["\"event\":\"removed\""]), "{}", d.text());
    let lines: Vec<serde_json::Value> = d
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.iter().all(|v| v.get("ts").is_none()), "a timestamp");
    let removed = lines
        .iter()
        .find(|v| v["event"] == "removed")
        .expect("a removed line");
    assert_eq!(removed["path"], lock.to_str().unwrap());
    assert!(removed["pid"].is_u64() && removed["comm"].is_string());
    assert_eq!(removed["owner_exit"], "killed by SIGKILL");
    assert!(removed["msg"].as_str().unwrap().contains("odd\\tname.lock"));
    // status: a state and both ages
    std::thread::sleep(Duration::from_millis(1500));
    let o = bin(&[
        "status",
        "--status-file",
        status.to_str().unwrap(),
        "--json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let l = &doc["locks"][0];
    assert_eq!(l["path"], kept.to_str().unwrap());
    assert_eq!(l["state"], "owned");
    assert_eq!(l["age_from"], "created");
    assert!(l["lock_age_s"].is_u64() && l["owner_age_s"].is_u64(), "{l}");
    assert_eq!(doc["disabled"][0], "sockets");
    let o = bin(&["status", "--status-file", status.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("state owned; lock "), "{text}");
    assert!(text.contains("sockets:    disabled"), "{text}");
}

/// systemd's notify protocol, with a socket of ours as $NOTIFY_SOCKET.
#[test]
fn ready_watchdog_and_stopping_reach_the_supervisor() {
    if !privileged() {
        return;
    }
    let dir = test_dir("notify");
    let state = test_dir("notify-state");
    let sock_path = state.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut d = Daemon::start(
        &[
            "--path",
            &path_arg(dir.path()),
            "--no-sockets",
            "--no-pin",
            "--status-file",
            state.path().join("s.json").to_str().unwrap(),
        ],
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let mut recv_until = |want: &str, got: &mut Vec<String>| {
        while !got.iter().any(|m: &String| m.contains(want)) {
            let n = sock.recv(&mut buf).expect("a notification");
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    };
    recv_until("READY=1", &mut got);
    recv_until("WATCHDOG=1", &mut got);
    d.signal(libc::SIGTERM);
    recv_until("STOPPING=1", &mut got);
    assert_eq!(d.wait_exit(), Some(0));
}

/// The sweep state file is read bounded: a huge one is refused, not read
/// whole, and left as it is.
#[test]
fn a_huge_state_file_is_not_read() {
    if !privileged() {
        return;
    }
    let state = test_dir("hugestate");
    let f = state.path().join("big.state");
    std::fs::File::create(&f)
        .unwrap()
        .set_len(300 << 20)
        .unwrap();
    let o = bin(&[
        "sweep",
        "--no-locks",
        "--dry-run",
        "--port",
        "1",
        "--state-file",
        f.to_str().unwrap(),
    ]);
    let err = err_of(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("not a state file"), "{err}");
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 300 << 20);
}

/// Issue 11 item 6: a lock named to forge log lines yields exactly one
/// log line and one sweep line, and its exact name can be read back.
#[test]
fn a_forged_name_is_one_line_in_the_log_and_in_sweep() {
    if !privileged() {
        return;
    }
    let user = TestUser::new();
    let forged = "x\n[fake] removed /etc/shadow \u{2026}\n.lock";
    let dir = test_dir("forged");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let agent = Agent::start(&["--path", &path_arg(dir.path())]);
    let lock = dir.path().join(forged);
    // '/' cannot be in a name: the user makes the directories it implies
    let mut sh = user.sh(
        "mkdir -p \"$(dirname \"$1\")\" && set -C && : > \"$1\" && kill -9 $$",
        &lock,
        dir.path(),
    );
    let _ = sh.wait();
    assert!(
        // the name itself holds "removed": the line is the INFO one
        agent.wait_log(&["INFO ] removed ", "x\\n[fake] removed /etc/shadow"]),
        "{}",
        agent.log_text()
    );
    assert!(!exists(&lock));
    let log = agent.log_text();
    let about: Vec<&str> = log.lines().filter(|l| l.contains("[fake]")).collect();
    assert_eq!(about.len(), 2, "{log}"); // the debug "tracking" line, and "removed"
    assert!(
        about
            .iter()
            .all(|l| l.starts_with('[') && !l.starts_with("[fake]")),
        "{log}"
    );
    let removed = about.iter().find(|l| l.contains("] removed ")).unwrap();
    assert!(
        removed.contains("x\\n[fake] removed /etc/shadow \u{2026}\\n.lock"),
        "{removed}"
    );
    drop(agent);

    // sweep: an old empty file of that name, made by the same user
    let mut sh = user.sh(
        ": > \"$1\"; touch -d '2 hours ago' \"$1\"",
        &lock,
        dir.path(),
    );
    assert!(sh.wait().unwrap().success());
    assert!(exists(&lock));
    let o = bin(&["sweep", "--no-sockets", "--path", &path_arg(dir.path())]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(0), "{out}{}", err_of(&o));
    assert_eq!(out.lines().count(), 1, "{out:?}");
    assert!(
        out.starts_with("removed ") && out.contains("x\\n[fake]"),
        "{out:?}"
    );
    assert!(!exists(&lock));
}
