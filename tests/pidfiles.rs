//! End to end, as root with BPF loaded: the real agent, scoped to each
//! test's own directory with only the PID-file class on, against real
//! shell daemons (`echo $$ > x.pid; exec sleep`) killed with SIGKILL.

mod common;

use std::path::Path;

use common::*;

const CLASS: &str = "pid-files";

/// A shell daemon: writes its PID to `name`, then becomes `sleep`.
fn daemon(procs: &mut Procs, dir: &Path, name: &str) -> i32 {
    let pid = procs.sh(&format!("echo $$ > {name}; exec sleep 1000"), dir);
    assert_eq!(read_pid_file(&dir.join(name)), pid);
    pid
}

#[test]
fn a_killed_shell_daemon_leaves_no_pid_file() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-kill");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    let pidfile = dir.path().join("x.pid");
    let pid = daemon(&mut procs, dir.path(), "x.pid");
    assert!(agent.wait_log(&[&format!("{}: names pid {pid}", pidfile.display())]));
    assert!(exists(&pidfile));
    procs.kill(pid, libc::SIGKILL);
    assert!(
        wait_for(PATIENCE, || !exists(&pidfile)),
        "{}",
        agent.log_text()
    );
    assert!(agent.wait_log(&[&format!(
        "removed {}: it names pid {pid} (sleep), which exited",
        pidfile.display()
    )]));
}

#[test]
fn live_multi_line_and_flocked_pid_files_are_kept_while_a_dead_one_goes() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-keep");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    let d = dir.path();
    let control = daemon(&mut procs, d, "control.pid");
    let live = daemon(&mut procs, d, "live.pid");
    // PostgreSQL-style: the PID, then more lines
    let multi = procs.sh(
        "printf '%s\\n/var/lib/db\\n5432\\n' $$ > multi.pid; exec sleep 1000",
        d,
    );
    let flocked = daemon(&mut procs, d, "flocked.pid");
    let flock = procs.sh("exec flock flocked.pid sleep 1000", d);
    assert!(wait_for(PATIENCE, || !children(flock).is_empty()));
    let _strays = Strays(children(flock));
    for name in ["control.pid", "live.pid", "multi.pid", "flocked.pid"] {
        assert!(agent.wait_log(&["tracking", &path_arg(&d.join(name))]));
    }
    assert!(std::fs::read_to_string(d.join("multi.pid"))
        .unwrap()
        .starts_with(&format!("{multi}\n")));
    for p in [control, multi, flocked] {
        procs.kill(p, libc::SIGKILL);
    }
    // positive control, same window
    assert!(
        wait_for(PATIENCE, || !exists(&d.join("control.pid"))),
        "{}",
        agent.log_text()
    );
    assert!(agent.wait_log(&[&format!(
        "removed {}: it names pid {control} (sleep), which exited",
        d.join("control.pid").display()
    )]));
    assert!(
        agent.wait_log(&[&format!(
            "kept {}: not a PID file (it holds more than a PID)",
            d.join("multi.pid").display()
        )]),
        "{}",
        agent.log_text()
    );
    let holder = format!("handed {} to pid ", d.join("flocked.pid").display());
    assert!(
        agent.wait_log(&[&holder, "by pid", &format!("names pid {flocked} (sleep)")]),
        "{}",
        agent.log_text()
    );
    for name in ["live.pid", "multi.pid", "flocked.pid"] {
        assert!(exists(&d.join(name)), "{name} removed");
    }
    assert!(!agent.log_has(&format!("names pid {live} (sleep), which exited")));
    // the flock holder (flock and the sleep it runs) ends: now it goes
    let strays = children(flock);
    procs.kill(flock, libc::SIGKILL);
    for s in strays {
        unsafe { libc::kill(s, libc::SIGKILL) };
    }
    assert!(
        wait_for(PATIENCE, || !exists(&d.join("flocked.pid"))),
        "{}",
        agent.log_text()
    );
    assert!(agent.wait_log(&[
        &format!("removed {}", d.join("flocked.pid").display()),
        "that held it exited"
    ]));
    assert!(exists(&d.join("live.pid")));
}

#[test]
fn the_owner_is_the_process_the_file_names() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-named");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    let d = dir.path();
    // a parent writes its child's PID (`cmd & echo $! > x.pid`), and
    // stays; a writer opens first and writes its PID only later
    let parent = procs.sh("sleep 1000 & echo $! > child.pid; wait", d);
    let child = read_pid_file(&d.join("child.pid"));
    let _strays = Strays(vec![child]);
    let late = procs.sh(
        "exec 3>late.pid; sleep 0.7; echo $$ >&3; exec sleep 1000",
        d,
    );
    assert!(agent.wait_log(&[&format!(
        "{}: names pid {child}",
        d.join("child.pid").display()
    )]));
    assert!(
        agent.wait_log(&[&format!(
            "{}: names pid {late}",
            d.join("late.pid").display()
        )]),
        "{}",
        agent.log_text()
    );
    unsafe { libc::kill(child, libc::SIGKILL) };
    procs.kill(late, libc::SIGKILL);
    for (name, pid) in [("child.pid", child), ("late.pid", late)] {
        let p = d.join(name);
        assert!(wait_for(PATIENCE, || !exists(&p)), "{}", agent.log_text());
        // (its command as last seen: its parent may reap it at once)
        assert!(agent.wait_log(&[
            &format!("removed {}: it names pid {pid} (", p.display()),
            "), which exited"
        ]));
    }
    // the parent that wrote child.pid was never its owner
    assert!(!agent.log_has(&format!("pid {parent} (sh)")));
}

#[test]
fn a_pid_is_read_in_the_writers_pid_namespace() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-pidns");
    let agent = agent_only(CLASS, dir.path(), &[]);
    let mut procs = Procs::default();
    let d = dir.path();
    let control = daemon(&mut procs, d, "control.pid");
    // PID 1 of its own PID namespace: on the host, 1 is init, alive
    let unshare = procs.sh(
        "exec unshare --pid --fork sh -c 'echo $$ > ns.pid; exec sleep 1000'",
        d,
    );
    assert_eq!(read_pid_file(&d.join("ns.pid")), 1);
    assert!(wait_for(PATIENCE, || !children(unshare).is_empty()));
    let inner = children(unshare)[0];
    let _strays = Strays(vec![inner]);
    assert!(agent.wait_log(&[&format!(
        "{}: names pid 1 (pid {inner} here)",
        d.join("ns.pid").display()
    )]));
    unsafe { libc::kill(inner, libc::SIGKILL) };
    procs.kill(control, libc::SIGKILL);
    let ns = d.join("ns.pid");
    assert!(wait_for(PATIENCE, || !exists(&ns)), "{}", agent.log_text());
    // (its command as last seen: it may be reaped before the agent looks)
    assert!(agent.wait_log(&[
        &format!("removed {}: it names pid 1 (", ns.display()),
        "), which exited"
    ]));
    assert!(wait_for(PATIENCE, || !exists(&d.join("control.pid"))));
}

#[test]
fn dry_run_says_what_it_would_remove_and_keeps_it() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-dry");
    let agent = agent_only(CLASS, dir.path(), &["--dry-run"]);
    let mut procs = Procs::default();
    let pid = daemon(&mut procs, dir.path(), "dry.pid");
    let p = dir.path().join("dry.pid");
    assert!(agent.wait_log(&[&format!("{}: names pid {pid}", p.display())]));
    procs.kill(pid, libc::SIGKILL);
    assert!(agent.wait_log(&[&format!(
        "would remove {}: it names pid {pid} (sleep), which exited (dry run)",
        p.display()
    )]));
    assert!(exists(&p));
}

#[test]
fn sweep_removes_pid_files_naming_dead_pids_with_no_daemon() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-sweep");
    let d = dir.path();
    let mut procs = Procs::default();
    let dead = daemon(&mut procs, d, "dead.pid");
    daemon(&mut procs, d, "live.pid");
    let multi = procs.sh("printf '%s\\nmore\\n' $$ > multi.pid; exec sleep 1000", d);
    let flocked = daemon(&mut procs, d, "flocked.pid");
    let flock = procs.sh("exec flock flocked.pid sleep 1000", d);
    assert!(wait_for(PATIENCE, || !children(flock).is_empty()));
    let _strays = Strays(children(flock));
    assert!(wait_for(PATIENCE, || std::fs::read_to_string(
        d.join("multi.pid")
    )
    .is_ok_and(|s| s.ends_with("more\n"))));
    for p in [dead, multi, flocked] {
        procs.kill(p, libc::SIGKILL);
        procs.reap(p);
    }
    let dry = sweep_only(CLASS, d, &["--dry-run"]);
    let (out, err) = text(&dry);
    assert_eq!(dry.status.code(), Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "would remove {}: pid {dead} is dead (dry run)\n",
            d.join("dead.pid").display()
        )
    );
    let o = sweep_only(CLASS, d, &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        out,
        format!(
            "removed {}: pid {dead} is dead\n",
            d.join("dead.pid").display()
        )
    );
    assert!(!exists(&d.join("dead.pid")));
    for kept in ["live.pid", "multi.pid", "flocked.pid"] {
        assert!(exists(&d.join(kept)), "{kept} removed");
    }
    // nothing more to do: no output
    assert_eq!(
        text(&sweep_only(CLASS, d, &[])),
        (String::new(), String::new())
    );
}

#[test]
fn daemons_that_die_while_no_agent_runs_are_judged_at_the_next_start() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidf-restart");
    let pins = Pins::new("pidf-restart");
    let p = pins.arg();
    let args = ["--pin-dir", p.as_str()];
    let mut first = agent_only(CLASS, dir.path(), &args);
    for name in ["pidf_files", "pidf_events", "pidf_link_sys_exit_openat"] {
        assert!(pins.pinned().iter().any(|n| n == name), "{name} not pinned");
    }
    let mut procs = Procs::default();
    let before = daemon(&mut procs, dir.path(), "before.pid");
    assert!(first.wait_log(&["tracking", &path_arg(&dir.path().join("before.pid"))]));
    assert_eq!(first.stop(), Some(0));
    // no agent: the pinned programs still record this one
    let during = daemon(&mut procs, dir.path(), "during.pid");
    for pid in [before, during] {
        procs.kill(pid, libc::SIGKILL);
        procs.reap(pid);
    }
    let second = agent_only(CLASS, dir.path(), &args);
    for (name, pid) in [("before.pid", before), ("during.pid", during)] {
        let f = dir.path().join(name);
        assert!(wait_for(PATIENCE, || !exists(&f)), "{}", second.log_text());
        assert!(second.wait_log(&[&format!(
            "removed {}: it names pid {pid}, which is dead",
            f.display()
        )]));
    }
    assert!(second.wait_log(&["adopted 2 tracked PID file(s)"]));
}
