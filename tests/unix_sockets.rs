//! End to end, as root with BPF loaded: the real agent, scoped to each
//! test's own directory with only the socket-file class on, against real
//! socat listeners killed with SIGKILL.

mod common;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const CLASS: &str = "unix-sockets";

/// `socat UNIX-LISTEN:PATH,fork EXEC:cat` (socat itself, by exec), once
/// its socket file is there.
fn socat(procs: &mut Procs, path: &Path) -> i32 {
    let pid = procs.sh(
        &format!(
            "exec socat UNIX-LISTEN:{},fork EXEC:cat",
            path.to_str().unwrap()
        ),
        path.parent().unwrap(),
    );
    assert!(
        wait_for(PATIENCE, || exists(path)
            && UnixStream::connect(path).is_ok()),
        "socat did not listen on {}",
        path.display()
    );
    // the probe's connection got a forked socat of its own, which holds
    // the listening socket too until it sees the probe gone: on a slow
    // machine (the kernel matrix under TCG) the agent saw it hold the
    // file, and rightly kept it for it, not for `pid`
    let children = format!("/proc/{pid}/task/{pid}/children");
    assert!(
        wait_for(PATIENCE, || std::fs::read_to_string(&children)
            .is_ok_and(|c| c.trim().is_empty())),
        "socat's connection child did not end"
    );
    pid
}

#[test]
fn killed_socat_leaves_nothing_and_a_new_socat_starts() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-kill");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    let sock = dir.path().join("app.sock");
    let pid = socat(&mut procs, &sock);
    assert!(agent.wait_log(&["tracking", &path_arg(&sock)]));
    assert!(exists(&sock));
    procs.kill(pid, libc::SIGKILL);
    assert!(
        wait_for(PATIENCE, || !exists(&sock)),
        "{} is still there\n{}",
        sock.display(),
        agent.log_text()
    );
    let line = format!(
        "removed {}: no socket is bound to it; its binder pid {pid} (socat) exited",
        sock.display()
    );
    assert!(agent.wait_log(&[&line]), "{}", agent.log_text());
    // the next server starts at once
    let again = socat(&mut procs, &sock);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(
            Command::new("kill")
                .args(["-0", &again.to_string()])
                .status(),
            Ok(s) if s.success()
        ),
        "the second socat did not stay up"
    );
    assert!(UnixStream::connect(&sock).is_ok());
}

#[test]
fn live_listeners_and_a_rebound_name_are_kept_while_a_killed_one_goes() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-live");
    let textfile = dir.path().join("metrics.prom");
    let mut agent = agent_only(
        CLASS,
        dir.path(),
        &["--metrics-textfile", textfile.to_str().unwrap()],
    );
    let mut procs = Procs::default();
    let live = dir.path().join("live.sock");
    let dead = dir.path().join("dead.sock");
    let rebound = dir.path().join("rebound.sock");
    let live_pid = socat(&mut procs, &live);
    let dead_pid = socat(&mut procs, &dead);
    // a first server binds rebound.sock; a second one unlinks the name and
    // binds it anew (what a restarting server does): the first one's death
    // must not take the second one's file
    let first = socat(&mut procs, &rebound);
    std::fs::remove_file(&rebound).unwrap();
    let second = socat(&mut procs, &rebound);
    for p in [&live, &dead, &rebound] {
        assert!(agent.wait_log(&["tracking", &path_arg(p)]));
    }
    procs.kill(dead_pid, libc::SIGKILL);
    procs.kill(first, libc::SIGKILL);
    // positive control, same window
    assert!(
        wait_for(PATIENCE, || !exists(&dead)),
        "{}",
        agent.log_text()
    );
    assert!(agent.wait_log(&["removed", &path_arg(&dead)]));
    assert!(agent.wait_log(&[
        &format!("{} was released", rebound.display()),
        "another file"
    ]));
    assert!(
        UnixStream::connect(&rebound).is_ok(),
        "second server lost its file"
    );
    assert!(UnixStream::connect(&live).is_ok());
    assert!(!agent.log_has(&format!("removed {}", rebound.display())));
    assert!(!agent.log_has(&format!("removed {}", live.display())));
    // status lists the live ones, owners alive
    assert!(wait_for(PATIENCE, || {
        let out = Command::new(BIN)
            .args(["status", "--json", "--status-file"])
            .arg(agent.status_file())
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let files = doc["unix_sockets"].as_array().cloned().unwrap_or_default();
        [(&live, live_pid), (&rebound, second)]
            .iter()
            .all(|(p, pid)| {
                files.iter().any(|f| {
                    f["path"] == path_arg(p) && f["owner_pid"] == *pid && f["owner_alive"] == true
                })
            })
    }));
    assert_eq!(agent.stop(), Some(0));
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert!(
        text.contains("eghostbuster_unix_sockets_removed_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("eghostbuster_unix_sockets_tracked_total 4\n"),
        "{text}"
    );
}

/// A listener bound by a process that forked: the child holds the
/// listening socket after the binder is killed.
fn forked_listener(procs: &mut Procs, path: &Path, child_pid_file: &Path) -> (i32, i32) {
    let (p, f) = (path.to_path_buf(), child_pid_file.to_path_buf());
    let binder = procs.fork(move || {
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let child = unsafe { libc::fork() };
        if child == 0 {
            let _keep = &l;
            park();
        }
        std::fs::write(&f, format!("{child}\n")).unwrap();
        park();
    });
    (binder, read_pid_file(child_pid_file))
}

#[test]
fn a_socket_a_forked_child_holds_is_kept_until_the_child_dies() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-fork");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    let held = dir.path().join("held.sock");
    let control = dir.path().join("control.sock");
    let (binder, child) = forked_listener(&mut procs, &held, &dir.path().join("child"));
    let _strays = Strays(vec![child]);
    let ctl = socat(&mut procs, &control);
    assert!(agent.wait_log(&["tracking", &path_arg(&held)]));
    assert!(agent.wait_log(&["tracking", &path_arg(&control)]));
    procs.kill(binder, libc::SIGKILL);
    procs.kill(ctl, libc::SIGKILL);
    assert!(
        wait_for(PATIENCE, || !exists(&control)),
        "{}",
        agent.log_text()
    );
    let kept = format!(
        "handed {} to pid {child}: still bound by socket",
        held.display()
    );
    assert!(
        agent.wait_log(&[&kept, &format!("held by pid {child}")]),
        "{}",
        agent.log_text()
    );
    assert!(exists(&held));
    assert!(UnixStream::connect(&held).is_ok());
    // the holder dies: now nobody is bound, and it goes
    unsafe { libc::kill(child, libc::SIGKILL) };
    assert!(
        wait_for(PATIENCE, || !exists(&held)),
        "{}",
        agent.log_text()
    );
    assert!(agent.wait_log(&[
        &format!("removed {}: no socket is bound to it", held.display()),
        &format!("pid {child}"),
        "that kept it bound exited"
    ]));
}

#[test]
fn a_socket_file_in_another_mount_namespace_is_judged_there() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-mntns");
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let name = inner.join("ns.sock");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    // the host has its own ns.sock, bound by a live listener
    let host_pid = socat(&mut procs, &name);
    // a namespace with its own tmpfs on inner/: a helper keeps it alive,
    // socat binds inner/ns.sock there and is killed
    std::fs::write(
        dir.path().join("ns.sh"),
        format!(
            "mount -t tmpfs egb-test inner || exit 1\n\
             sleep 1000 & echo $! > helper.pid\n\
             socat UNIX-LISTEN:{},fork EXEC:cat & echo $! > binder.pid\n\
             wait\n",
            name.display()
        ),
    )
    .unwrap();
    let _sh = procs.sh(
        "exec unshare --mount --propagation private sh ./ns.sh",
        dir.path(),
    );
    let helper = read_pid_file(&dir.path().join("helper.pid"));
    let binder = read_pid_file(&dir.path().join("binder.pid"));
    let _strays = Strays(vec![helper, binder]);
    let inside = PathBuf::from(format!("/proc/{helper}/root{}", name.display()));
    assert!(wait_for(PATIENCE, || exists(&inside)), "no socket inside");
    assert!(wait_for(PATIENCE, || agent
        .log_text()
        .matches(&format!("tracking {}", name.display()))
        .count()
        >= 2));
    unsafe { libc::kill(binder, libc::SIGKILL) };
    assert!(
        wait_for(PATIENCE, || !exists(&inside)),
        "{} still there inside\n{}",
        name.display(),
        agent.log_text()
    );
    assert!(agent.wait_log(&[&format!(
        "removed {} (in the mount namespace of pid",
        name.display()
    )]));
    // the host's file of the same name is untouched and still served
    assert!(exists(&name));
    assert!(UnixStream::connect(&name).is_ok());
    assert!(!agent.log_has(&format!("binder pid {host_pid}")));
}

#[test]
fn dry_run_says_what_it_would_remove_and_keeps_it() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-dry");
    let agent = agent_only(CLASS, dir.path(), &["--dry-run"]);
    let mut procs = Procs::default();
    let sock = dir.path().join("dry.sock");
    let pid = socat(&mut procs, &sock);
    assert!(agent.wait_log(&["tracking", &path_arg(&sock)]));
    procs.kill(pid, libc::SIGKILL);
    assert!(agent.wait_log(&[&format!(
        "would remove {}: no socket is bound to it; its binder pid {pid} (socat) exited (dry run)",
        sock.display()
    )]));
    assert!(exists(&sock));
}

#[test]
fn sweep_removes_unbound_socket_files_with_no_daemon() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-sweep");
    let mut procs = Procs::default();
    let dead = dir.path().join("dead.sock");
    let live = dir.path().join("live.sock");
    let held = dir.path().join("held.sock");
    let not_a_socket = dir.path().join("plain.sock");
    std::fs::write(&not_a_socket, "x").unwrap();
    let pid = socat(&mut procs, &dead);
    socat(&mut procs, &live);
    let (binder, child) = forked_listener(&mut procs, &held, &dir.path().join("child"));
    let _strays = Strays(vec![child]);
    procs.kill(pid, libc::SIGKILL);
    procs.reap(pid);
    procs.kill(binder, libc::SIGKILL);
    procs.reap(binder);
    // the ghost: a new server cannot start
    let o = Command::new("socat")
        .arg(format!("UNIX-LISTEN:{}", dead.display()))
        .arg("EXEC:cat")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    // sweep leaves files younger than 2 s to the next pass
    std::thread::sleep(Duration::from_millis(2100));
    let dry = sweep_only(CLASS, dir.path(), &["--dry-run"]);
    let (out, err) = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "would remove {}: no socket is bound to it (dry run)\n",
            dead.display()
        )
    );
    assert!(exists(&dead));
    let o = sweep_only(CLASS, dir.path(), &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        out,
        format!("removed {}: no socket is bound to it\n", dead.display())
    );
    assert!(!exists(&dead));
    for kept in [&live, &held, &not_a_socket] {
        assert!(exists(kept), "{} removed", kept.display());
    }
    // and now the server starts
    socat(&mut procs, &dead);
    // a second pass has nothing to do: no output (cron mails nothing)
    let o = sweep_only(CLASS, dir.path(), &[]);
    assert_eq!(text(&o), (String::new(), String::new()));
}

#[test]
fn binders_that_die_while_no_daemon_runs_are_judged_at_the_next_start() {
    if !privileged() {
        return;
    }
    let dir = test_dir("uxs-restart");
    let pins = Pins::new("uxs-restart");
    let p = pins.arg();
    let args = ["--pin-dir", p.as_str()];
    let mut first = agent_only(CLASS, dir.path(), &args);
    for name in ["uxs_files", "uxs_events", "uxs_link_sys_exit_bind"] {
        assert!(pins.pinned().iter().any(|n| n == name), "{name} not pinned");
    }
    let mut procs = Procs::default();
    let before = dir.path().join("before.sock");
    let during = dir.path().join("during.sock");
    let b = socat(&mut procs, &before);
    assert!(first.wait_log(&["tracking", &path_arg(&before)]));
    assert_eq!(first.stop(), Some(0));
    // no daemon: the pinned program still records this bind
    let w = socat(&mut procs, &during);
    for pid in [b, w] {
        procs.kill(pid, libc::SIGKILL);
        procs.reap(pid);
    }
    assert!(exists(&before) && exists(&during));
    let second = agent_only(CLASS, dir.path(), &args);
    for s in [&before, &during] {
        assert!(wait_for(PATIENCE, || !exists(s)), "{}", second.log_text());
        assert!(second.wait_log(&[&format!(
            "removed {}: no socket is bound to it",
            s.display()
        )]));
    }
    assert!(second.wait_log(&["adopted 2 tracked socket file(s)"]));
}
