//! Lock files a live process still relies on are kept, end to end as root
//! with BPF loaded: open in a forked child, flocked or OFD-locked by a
//! process with no descriptor left, naming a live PID, or a name another
//! file took since. Each is kept while that holds and goes when it ends.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;

#[test]
fn lock_open_in_a_forked_child_is_kept_until_the_child_dies() {
    if !privileged() {
        return;
    }
    let dir = test_dir("inherit");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("inherited.lock");
    let pidfile = dir.path().join("child.pid");
    let (c, p) = (cstr(&lock), cstr(&pidfile));
    // the creator forks a child that inherits the descriptor, then parks
    let creator = procs.fork(move || {
        create(&c, true, b"");
        let child = unsafe { libc::fork() };
        if child == 0 {
            park();
        }
        let s = format!("{child}");
        let fd = create(&p, true, s.as_bytes());
        unsafe { libc::close(fd) };
        park();
    });
    // the file exists before its content is written: wait for the PID
    let mut child = 0;
    assert!(wait_for(PATIENCE, || {
        child = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        child > 0
    }));
    procs.0.push(child);
    procs.kill(creator, libc::SIGKILL);
    kept_until_it_dies(
        &procs,
        &agent,
        &lock,
        &format!("open by pid {child}"),
        child,
    );
}

/// Check 3 end to end: a process that holds only a flock on the lock (no
/// descriptor anywhere: it lives in an SCM_RIGHTS message never received)
/// is invisible to the open-files check; /proc/locks names it, and the
/// lock is kept for it until it dies.
#[test]
fn lock_flocked_by_another_process_is_kept() {
    if !privileged() {
        return;
    }
    let dir = test_dir("flock");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("flocked.lock");
    let creator = locker(&mut procs, &lock);
    let holder = hold_only_the_lock(&mut procs, &lock, HeldBy::Flock);
    procs.kill(creator, libc::SIGKILL);
    kept_until_it_dies(
        &procs,
        &agent,
        &lock,
        &format!("locked (flock/fcntl) by pid {holder};"),
        holder,
    );
}

/// The same with an open file description lock, which /proc/locks shows
/// with no holder (-1): kept, with nobody to hand it to. A control lock of
/// the same creator is removed in the same window.
#[test]
fn lock_with_an_ofd_lock_is_kept() {
    if !privileged() {
        return;
    }
    let dir = test_dir("ofd");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("ofd.lock");
    let control = dir.path().join("control.lock");
    let (l, c) = (cstr(&lock), cstr(&control));
    let creator = procs.fork(move || {
        create(&l, true, b"");
        create(&c, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&lock) && exists(&control)));
    hold_only_the_lock(&mut procs, &lock, HeldBy::Ofd);
    kill_and_expect_gone(&procs, creator, &control, &agent);
    agent.wait_log_line(
        &[
            &format!("kept {}: ", lock.display()),
            "locked (flock/fcntl) by a process",
            &format!("owner pid {creator} "),
        ],
        PATIENCE,
    );
    assert!(exists(&lock));
}

#[test]
fn lock_naming_a_live_pid_is_kept_until_that_process_dies() {
    if !privileged() {
        return;
    }
    let dir = test_dir("livepid");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let other = procs.fork(|| park());
    let lock = dir.path().join("pid.lock");
    let c = cstr(&lock);
    let creator = procs.fork(move || {
        let s = format!("{other}\n");
        let fd = create(&c, true, s.as_bytes());
        unsafe { libc::close(fd) };
        park();
    });
    assert!(wait_for(PATIENCE, || std::fs::read(&lock)
        .is_ok_and(|b| !b.is_empty())));
    procs.kill(creator, libc::SIGKILL);
    kept_until_it_dies(
        &procs,
        &agent,
        &lock,
        &format!("names live pid {other}"),
        other,
    );
}

#[test]
fn replaced_name_is_not_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("replaced");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("swap.lock");
    let creator = locker(&mut procs, &lock);
    let old_ino = std::fs::metadata(&lock).unwrap().ino();
    // another file takes the name (rename over it: a different inode)
    let tmp = dir.path().join("swap.tmp");
    std::fs::write(&tmp, "new\n").unwrap();
    std::fs::rename(&tmp, &lock).unwrap();
    assert_ne!(std::fs::metadata(&lock).unwrap().ino(), old_ino);
    // a control lock of the same creator tells when its exit was handled
    let control = dir.path().join("control.lock");
    let c = cstr(&control);
    let creator2 = procs.fork(move || {
        create(&c, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&control)));
    procs.kill(creator, libc::SIGKILL);
    procs.reap(creator);
    kill_and_expect_gone(&procs, creator2, &control, &agent);
    assert_eq!(std::fs::read(&lock).unwrap(), b"new\n");
}
