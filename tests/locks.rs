//! End to end, as root with BPF loaded: the real agent, scoped to each
//! test's own directory, against real processes and real files.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn killed_creator_lock_is_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("kill");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("db.lck");
    let pid = locker(&mut procs, &lock);
    kill_and_expect_gone(&procs, pid, &lock, &agent);
    let line = format!("removed {}: owner pid {pid}", lock.display());
    assert!(
        agent.wait_log(&[&line, "killed by SIGKILL"]),
        "{}",
        agent.log_text()
    );
}

#[test]
fn exit_fallback_without_group_dead_sees_the_kill() {
    if !privileged() {
        return;
    }
    let dir = test_dir("legacyexit");
    let agent = agent_for(dir.path(), &["--force-exit-fallback"]);
    assert!(agent.log_has("no group_dead"), "{}", agent.log_text());
    let mut procs = Procs::default();
    let lock = dir.path().join("legacy.lock");
    let pid = locker(&mut procs, &lock);
    kill_and_expect_gone(&procs, pid, &lock, &agent);
}

#[test]
fn long_lived_owner_is_still_recognised() {
    // The worker checks owners' liveness every second by start time; an
    // owner that lives through several checks must still be its own self.
    if !privileged() {
        return;
    }
    let dir = test_dir("longlived");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("long.lock");
    let pid = locker(&mut procs, &lock);
    std::thread::sleep(Duration::from_millis(3500));
    assert!(exists(&lock));
    kill_and_expect_gone(&procs, pid, &lock, &agent);
    assert!(!agent.log_has("exited unseen"), "{}", agent.log_text());
}

#[test]
fn aborted_and_failed_creators_locks_are_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("abort");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let aborted = dir.path().join("abort.lock");
    let failed = dir.path().join("fail.lock");
    let (a, f) = (cstr(&aborted), cstr(&failed));
    let ap = procs.fork(move || {
        create(&a, true, b"");
        // no core file in the test's cwd
        let rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &rl) };
        unsafe { libc::abort() };
    });
    let fp = procs.fork(move || {
        create(&f, true, b"");
        unsafe { libc::_exit(3) };
    });
    // they may be gone before a poll could see them: the agent's tracking
    // line is the proof they were made, by these processes
    expect_tracked(&agent, &aborted, ap);
    expect_tracked(&agent, &failed, fp);
    expect_removed(
        &agent,
        &aborted,
        &[&format!("owner pid {ap} "), "killed by SIGABRT"],
    );
    expect_removed(
        &agent,
        &failed,
        &[&format!("owner pid {fp} "), "exited with status 3"],
    );
}

#[test]
fn relative_name_from_another_directory() {
    if !privileged() {
        return;
    }
    let dir = test_dir("rel");
    let sub = dir.path().join("work");
    std::fs::create_dir(&sub).unwrap();
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    // created as ../rel.lock from work/, which is then removed: only the
    // kernel's view of the file gives the absolute path
    let pid = procs.sh(
        "cd work && set -C && : > ../rel.lock && cd / && kill -9 $$",
        dir.path(),
    );
    let lock = dir.path().join("rel.lock");
    assert!(
        wait_for(PATIENCE, || agent
            .log_has(&format!("removed {}", lock.display()))),
        "{}",
        agent.log_text()
    );
    assert!(!exists(&lock));
    let _ = pid;
}

#[test]
fn openat2_creation_is_seen() {
    if !privileged() {
        return;
    }
    let dir = test_dir("openat2");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("o2.lock");
    let c = cstr(&lock);
    let pid = procs.fork(move || {
        #[repr(C)]
        struct OpenHow {
            flags: u64,
            mode: u64,
            resolve: u64,
        }
        let how = OpenHow {
            flags: (libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY) as u64,
            mode: 0o644,
            resolve: 0,
        };
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                c.as_ptr(),
                &how,
                std::mem::size_of::<OpenHow>(),
            )
        };
        assert!(fd >= 0);
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&lock)));
    kill_and_expect_gone(&procs, pid, &lock, &agent);
}

#[test]
fn clean_exit_hands_the_lock_to_the_parent() {
    if !privileged() {
        return;
    }
    let dir = test_dir("handoff");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("handed.lock");
    let c = cstr(&lock);
    // parent: forks a child that takes the lock and exits 0, reaps it, parks
    let parent = procs.fork(move || {
        let child = unsafe { libc::fork() };
        if child == 0 {
            create(&c, true, b"");
            unsafe { libc::_exit(0) };
        }
        let mut st = 0;
        unsafe { libc::waitpid(child, &mut st, 0) };
        park();
    });
    assert!(
        agent.wait_log(&["handed", "handed.lock", &format!("to parent pid {parent}")]),
        "{}",
        agent.log_text()
    );
    assert!(exists(&lock), "a cleanly left lock was removed");
    kill_and_expect_gone(&procs, parent, &lock, &agent);
}

#[test]
fn clean_exit_under_a_subreaper_leaves_the_lock() {
    if !privileged() {
        return;
    }
    let dir = test_dir("subreaper");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("left.lock");
    let c = cstr(&lock);
    let reaper = procs.fork(move || {
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let child = unsafe { libc::fork() };
        if child == 0 {
            create(&c, true, b"");
            unsafe { libc::_exit(0) };
        }
        let mut st = 0;
        unsafe { libc::waitpid(child, &mut st, 0) };
        park();
    });
    assert!(
        agent.wait_log(&["left", "left.lock", "subreaper"]),
        "{}",
        agent.log_text()
    );
    procs.kill(reaper, libc::SIGKILL);
    procs.reap(reaper);
    // a control lock from a killed process, made after the reaper died:
    // once it is removed, the agent has seen everything before it
    let control = dir.path().join("control.lock");
    let pid = locker(&mut procs, &control);
    kill_and_expect_gone(&procs, pid, &control, &agent);
    assert!(exists(&lock), "a lock left on a clean exit was removed");
}

#[test]
fn lock_naming_its_exiting_creator_is_stale_even_on_clean_exit() {
    if !privileged() {
        return;
    }
    let dir = test_dir("selfpid");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    // sh writes its own PID and exits 0 without cleaning up
    procs.sh("set -C; echo $$ > self.lock; exit 0", dir.path());
    let lock = dir.path().join("self.lock");
    assert!(
        agent.wait_log(&["removed", "self.lock", "exited with status 0"]),
        "{}",
        agent.log_text()
    );
    assert!(!exists(&lock));
}

#[test]
fn deny_list_and_non_exclusive_files_are_left_alone() {
    if !privileged() {
        return;
    }
    let dir = test_dir("deny");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let cargo = dir.path().join("Cargo.lock");
    let yarn = dir.path().join("yarn.lock");
    // a name the deny list holds as a glob (requirements*.lock)
    let rye = dir.path().join("requirements-dev.lock");
    let flocky = dir.path().join("flock-style.lock");
    let control = dir.path().join("control.lock");
    let (c1, c2, c3, c4) = (cstr(&cargo), cstr(&yarn), cstr(&flocky), cstr(&control));
    let c5 = cstr(&rye);
    let pid = procs.fork(move || {
        create(&c1, true, b"");
        create(&c2, true, b"");
        create(&c3, false, b"");
        create(&c5, true, b"");
        create(&c4, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&control)));
    kill_and_expect_gone(&procs, pid, &control, &agent);
    for denied in [&cargo, &yarn, &rye] {
        agent.wait_log_line(
            &[&format!("kept {}: ", denied.display()), "on the deny list"],
            PATIENCE,
        );
        assert!(exists(denied), "{} was removed", denied.display());
    }
    assert!(
        exists(&flocky),
        "a non-exclusive file was removed by default"
    );
}

#[test]
fn non_exclusive_opt_in_tracks_plain_creations() {
    if !privileged() {
        return;
    }
    let dir = test_dir("nonexcl");
    let agent = agent_for(dir.path(), &["--non-exclusive"]);
    let mut procs = Procs::default();
    let lock = dir.path().join("plain.lock");
    let c = cstr(&lock);
    let pid = procs.fork(move || {
        create(&c, false, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&lock)));
    kill_and_expect_gone(&procs, pid, &lock, &agent);
}

#[test]
fn thread_exit_is_not_process_exit() {
    if !privileged() {
        return;
    }
    let dir = test_dir("thread");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("thread.lock");
    let done = dir.path().join("thread-done");
    let (c, d) = (cstr(&lock), cstr(&done));
    let pid = procs.fork(move || {
        std::thread::spawn(move || {
            create(&c, true, b"");
        })
        .join()
        .unwrap();
        create(&d, false, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&done)));
    // the creating thread is gone, its process lives: nothing may happen.
    // A killed control process shows the agent is handling exits.
    let control = dir.path().join("control.lock");
    let cp = locker(&mut procs, &control);
    kill_and_expect_gone(&procs, cp, &control, &agent);
    assert!(exists(&lock), "removed while its process lives");
    assert!(!agent.log_has("thread.lock: owner"));
    kill_and_expect_gone(&procs, pid, &lock, &agent);
}

#[test]
fn lock_outside_path_is_untouched() {
    if !privileged() {
        return;
    }
    let dir = test_dir("scope");
    let inside = dir.path().join("in");
    let outside = dir.path().join("out");
    std::fs::create_dir(&inside).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let agent = agent_for(&inside, &[]);
    let mut procs = Procs::default();
    let out_lock = outside.join("x.lock");
    let in_lock = inside.join("x.lock");
    let (a, b) = (cstr(&out_lock), cstr(&in_lock));
    let pid = procs.fork(move || {
        create(&a, true, b"");
        create(&b, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&in_lock)));
    kill_and_expect_gone(&procs, pid, &in_lock, &agent);
    assert!(exists(&out_lock), "a lock outside --path was removed");
    assert!(!agent.log_has(&out_lock.display().to_string()));
}

#[test]
fn dry_run_removes_nothing() {
    if !privileged() {
        return;
    }
    let dir = test_dir("dry");
    let agent = agent_for(dir.path(), &["--dry-run"]);
    let mut procs = Procs::default();
    let lock = dir.path().join("dry.lock");
    let pid = locker(&mut procs, &lock);
    procs.kill(pid, libc::SIGKILL);
    assert!(
        agent.wait_log(&["would remove", "dry.lock", "killed by SIGKILL"]),
        "{}",
        agent.log_text()
    );
    assert!(exists(&lock));
}

#[test]
fn hundred_creators_killed_at_once() {
    if !privileged() {
        return;
    }
    let dir = test_dir("hundred");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let locks: Vec<_> = (0..100)
        .map(|i| dir.path().join(format!("l{i}.lock")))
        .collect();
    let pids: Vec<i32> = locks
        .iter()
        .map(|l| {
            let c = cstr(l);
            procs.fork(move || {
                create(&c, true, b"");
                park();
            })
        })
        .collect();
    assert!(wait_for(PATIENCE, || locks.iter().all(|l| exists(l))));
    for &p in &pids {
        procs.kill(p, libc::SIGKILL);
    }
    let all_gone = wait_for(Duration::from_secs(20), || locks.iter().all(|l| !exists(l)));
    let left: Vec<_> = locks.iter().filter(|l| exists(l)).collect();
    assert!(all_gone, "left: {left:?}\n{}", agent.log_text());
    for (l, p) in locks.iter().zip(&pids) {
        expect_removed(
            &agent,
            l,
            &[&format!("owner pid {p} "), "killed by SIGKILL"],
        );
    }
}

#[test]
fn agent_stops_cleanly_on_sigterm() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sigterm");
    let mut agent = agent_for(dir.path(), &[]);
    assert_eq!(agent.stop(), Some(0), "{}", agent.log_text());
}

#[test]
fn other_mount_namespace_same_file_is_removed_other_file_is_kept() {
    if !privileged() {
        return;
    }
    let dir = test_dir("mntns");
    let sub = dir.path().join("private");
    std::fs::create_dir(&sub).unwrap();
    // the host's own file at the path the container will use
    let host_file = sub.join("x.lock");
    std::fs::write(&host_file, "host\n").unwrap();
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    // a private mount namespace with its own tmpfs over private/: its
    // x.lock is another file than the host's
    let script = format!(
        "mount -t tmpfs egb-test {sub} && set -C && : > {sub}/x.lock && kill -9 $$",
        sub = sub.display()
    );
    let p1 = procs.sh(
        &format!("exec unshare --mount --propagation private sh -c '{script}'"),
        dir.path(),
    );
    // a private mount namespace that sees the same filesystem (as a
    // sandboxed service does): its lock is the same inode here
    let shared = dir.path().join("shared.lock");
    let p2 = procs.sh(
        &format!(
            "exec unshare --mount --propagation private sh -c 'set -C && : > {} && kill -9 $$'",
            shared.display()
        ),
        dir.path(),
    );
    // both shells got as far as killing themselves (unshare, mount and the
    // lock worked): anything else is a failed setup, not a pass
    for p in [p1, p2] {
        procs.assert_killed(p, "the shell in a new mount namespace");
    }
    // judged in the container's namespace while its dying owner still
    // shows it (the exit is reported before the process has left its
    // namespace: a fast worker gets there first), or kept once nothing
    // shares that namespace any more; never the host's file
    let kept = format!("kept {}: ", host_file.display());
    let there = format!(
        "removed {} (in the mount namespace of pid {p1}): ",
        host_file.display()
    );
    let line = agent.wait_line(PATIENCE, |l| {
        (l.contains(&kept) && l.contains("another mount namespace")) || l.contains(&there)
    });
    assert!(
        line.is_some(),
        "no decision on the container's lock:\n{}",
        agent.log_text()
    );
    assert_eq!(std::fs::read(&host_file).unwrap(), b"host\n");
    expect_tracked(&agent, &shared, p2);
    expect_removed(
        &agent,
        &shared,
        &[&format!("owner pid {p2} "), "killed by SIGKILL"],
    );
}

#[test]
fn back_to_back_kills_on_reused_inode_numbers_are_all_removed() {
    // ext4 and tmpfs hand a freed inode number to the next file at once:
    // removing one lock must never lose the record of the next one, even
    // when it is created while the first is being removed
    if !privileged() {
        return;
    }
    let dir = test_dir("reuse");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let locks: Vec<_> = (0..300)
        .map(|i| dir.path().join(format!("b{i}.lock")))
        .collect();
    for l in &locks {
        let c = cstr(l);
        let pid = procs.fork(move || {
            create(&c, true, b"");
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        });
        // killed by its own SIGKILL: it got past creating the lock
        let st = procs.reap(pid);
        assert!(
            libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
            "creator of {} ended with wait status {st:#x}",
            l.display()
        );
    }
    let all_gone = wait_for(std::time::Duration::from_secs(20), || {
        locks.iter().all(|l| !exists(l))
    });
    let left: Vec<_> = locks.iter().filter(|l| exists(l)).collect();
    assert!(all_gone, "missed: {left:?}\n{}", agent.log_text());
    for l in &locks {
        expect_removed(&agent, l, &["killed by SIGKILL"]);
    }
}
