//! `eghostbuster sweep` end to end: real files, real processes, the real
//! binary; one line per action, quiet otherwise, documented exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn sweep(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("sweep")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running sweep")
}

/// Set a file's modification time `secs` into the past.
fn age(path: &Path, secs: i64) {
    let c = cstr(path);
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let t = libc::timeval {
        tv_sec: now - secs,
        tv_usec: 0,
    };
    assert_eq!(unsafe { libc::utimes(c.as_ptr(), [t, t].as_ptr()) }, 0);
}

#[test]
fn sweep_removes_dead_and_keeps_live() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweep");
    let d = dir.path();
    let mut procs = Procs::default();

    // a PID that is dead: a child we started and reaped
    let dead = procs.fork(|| {});
    procs.reap(dead);
    std::fs::write(d.join("dead.lock"), format!("{dead}\n")).unwrap();
    // a PID that lives
    let live = procs.fork(|| park());
    std::fs::write(d.join("live.lock"), format!("{live}\n")).unwrap();
    // a dead PID, but the file is held open by a live process
    std::fs::write(d.join("open.lock"), format!("{dead}\n")).unwrap();
    let c = cstr(&d.join("open.lock"));
    let marker = d.join("opened");
    let m = cstr(&marker);
    procs.fork(move || {
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 0);
        create(&m, false, b"");
        park();
    });
    // a dead PID, flocked by a live process (its descriptor: check 2 and 3)
    std::fs::write(d.join("flocked.lock"), format!("{dead}\n")).unwrap();
    let c = cstr(&d.join("flocked.lock"));
    let marker2 = d.join("flocked");
    let m2 = cstr(&marker2);
    procs.fork(move || {
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        assert_eq!(unsafe { libc::flock(fd, libc::LOCK_EX) }, 0);
        create(&m2, false, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&marker) && exists(&marker2)));
    // no PID: removed only when older than --min-age
    std::fs::write(d.join("old.lck"), "").unwrap();
    age(&d.join("old.lck"), 7200);
    std::fs::write(d.join("young.lck"), "").unwrap();
    // not lock files, or never removed
    std::fs::write(d.join("Cargo.lock"), "").unwrap();
    age(&d.join("Cargo.lock"), 7200);
    std::fs::write(d.join("notes.txt"), format!("{dead}\n")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/nested.lock"), format!("{dead}\n")).unwrap();

    let out = sweep(&["--path", &path_arg(d), "--no-sockets"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "removed {}: pid {dead} is dead",
            d.join("dead.lock").display()
        )),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "removed {}: no pid in it",
            d.join("old.lck").display()
        )),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&format!("removed {}", d.join("sub/nested.lock").display())),
        "{stdout}"
    );
    for kept in [
        "live.lock",
        "open.lock",
        "flocked.lock",
        "young.lck",
        "Cargo.lock",
        "notes.txt",
    ] {
        assert!(exists(&d.join(kept)), "{kept} was removed");
    }
    for gone in ["dead.lock", "old.lck", "sub/nested.lock"] {
        assert!(!exists(&d.join(gone)), "{gone} is still there");
    }
    // nothing left to do: quiet, exit 0 (cron mails nothing)
    let again = sweep(&["--path", &path_arg(d), "--no-sockets"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(text(&again), (String::new(), String::new()));
}

#[test]
fn sweep_dry_run_reports_and_keeps() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweepdry");
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    let lock = dir.path().join("x.lock");
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    let out = sweep(&["--path", &path_arg(dir.path()), "--no-sockets", "--dry-run"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.starts_with(&format!(
            "would remove {}: pid {dead} is dead",
            lock.display()
        )),
        "{stdout}"
    );
    assert!(exists(&lock));
}

#[test]
fn sweep_failure_exits_1() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweepfail");
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    let lock = dir.path().join("stuck.lock");
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    // immutable: even root cannot rename it away (ext4 and most disk filesystems)
    let chattr = Command::new("chattr").arg("+i").arg(&lock).status();
    if !chattr.is_ok_and(|s| s.success()) {
        panic!("chattr +i is not supported under /tmp here; this test needs it");
    }
    struct Mutable<'a>(&'a Path);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
    }
    let _undo = Mutable(&lock);
    let out = sweep(&["--path", &path_arg(dir.path()), "--no-sockets"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("failed to remove") && stderr.contains("stuck.lock"),
        "{stderr}"
    );
    assert!(exists(&lock));
}

#[test]
fn sweep_usage_errors() {
    for (args, says) in [
        (vec!["--no-sockets"], "--path"),
        (vec!["--path", "/tmp", "--min-age", "soon"], "duration"),
        (vec!["--path", "rel"], "absolute"),
        (vec!["--no-locks", "--no-sockets"], "nothing to sweep"),
    ] {
        let out = sweep(&args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // one line of ours, or clap's whole message (issue 16) whose
        // first line names the problem
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            stderr.lines().count() == 1 || stderr.starts_with("error: "),
            "{stderr}"
        );
        assert!(first.contains(says), "{args:?}: {stderr}");
    }
}
