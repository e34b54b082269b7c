//! Attack 2: a root-owned directory bind-mounted over the lock's directory
//! right after the lock is taken.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Take {
    Link,
    Mkdir,
}

const RACE_TRIES: usize = 5;

/// Attack 2. In a private mount namespace, right after taking a lock name
/// in its own directory (link or mkdir), a process bind-mounts a
/// root-owned directory holding the same name over that directory, and is
/// SIGKILLed. The agent must never remove root's file (or root's lock
/// directory and what it holds). `outside`: root's directory is outside
/// --path, which covers the user's directory only. RACE_TRIES tries, each
/// with names of its own; one process stays alive in the namespace so that
/// the agent can reach it.
fn bind_race(take: Take, outside: bool) {
    let user = TestUser::new();
    let top = open_test_dir("sec-bind");
    let own = top.path().join("own");
    user_dir(&user, &own);
    let elsewhere = open_test_dir("sec-bind-victims");
    let victims_in = if outside {
        elsewhere.path()
    } else {
        top.path()
    };
    let scope = if outside { own.as_path() } else { top.path() };

    // root's files exist before the agent starts: it never saw them made
    let mut victims: Vec<PathBuf> = Vec::new();
    let mut inner: Vec<PathBuf> = Vec::new();
    let mut plan: Vec<(PathBuf, PathBuf, PathBuf)> = Vec::new(); // (user dir, name, source)
    for i in 0..RACE_TRIES {
        let src = victims_in.join(format!("root{i}"));
        root_dir(&src);
        let name = format!("x{i}.lock");
        let v = src.join(&name);
        match take {
            Take::Link => root_file(&v),
            Take::Mkdir => {
                // a lock directory of root's with its (empty) owner file:
                // what the agent would remove for its creator
                root_dir(&v);
                let f = v.join("owner");
                std::fs::write(&f, b"").unwrap();
                chmod(&f, 0o644);
                inner.push(f);
            }
        }
        victims.push(v);
        let d = own.join(format!("t{i}"));
        user_dir(&user, &d);
        plan.push((d, PathBuf::from(name), src));
    }
    let agent = agent_for(scope, &[]);
    let done = own.join("done");
    let mut procs = Procs::default();
    let keeper = procs.fork(|| {
        user.become_it();
        enter_userns(true);
        for (d, name, src) in &plan {
            let lock = c(d.join(name));
            let (dc, srcc) = (c(d), c(src));
            let tmp = c(d.join("tmp"));
            if take == Take::Link {
                new_file(&d.join("tmp"));
            }
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                unsafe {
                    let r = match take {
                        Take::Link => libc::link(tmp.as_ptr(), lock.as_ptr()),
                        Take::Mkdir => libc::mkdir(lock.as_ptr(), 0o755),
                    };
                    if r != 0 {
                        libc::_exit(2);
                    }
                    let r = libc::mount(
                        srcc.as_ptr(),
                        dc.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    );
                    if r != 0 {
                        libc::_exit(3);
                    }
                    libc::kill(libc::getpid(), libc::SIGKILL);
                    libc::_exit(4);
                }
            }
            let mut st = 0;
            unsafe { libc::waitpid(pid, &mut st, 0) };
            assert!(
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
                "the racer ended with status {st:#x}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        new_file(&done);
        park();
    });
    assert!(
        wait_for(Duration::from_secs(20), || exists(&done)),
        "the racing process did not finish its tries"
    );
    // every try's name is there in our namespace (the mounts are not)
    for (d, name, _) in &plan {
        assert!(
            exists(&d.join(name)),
            "{} not taken",
            d.join(name).display()
        );
    }
    // the agent acts within milliseconds of an owner's exit
    std::thread::sleep(Duration::from_secs(2));
    let gone: Vec<String> = victims
        .iter()
        .chain(&inner)
        .filter(|v| match take {
            Take::Link => !intact(v),
            Take::Mkdir => !v.symlink_metadata().is_ok_and(|m| m.uid() == 0),
        })
        .map(|v| v.display().to_string())
        .collect();
    assert!(
        gone.is_empty(),
        "{take:?} race ({}): root's {gone:?} removed or changed ({} tries):\n{}",
        if outside {
            "outside --path"
        } else {
            "inside --path"
        },
        RACE_TRIES,
        agent.log_text()
    );
    procs.kill(keeper, libc::SIGKILL);
}

#[test]
fn bind_race_link_inside_path_never_removes_roots_file() {
    if privileged() {
        bind_race(Take::Link, false);
    }
}

#[test]
fn bind_race_link_outside_path_never_removes_roots_file() {
    if privileged() {
        bind_race(Take::Link, true);
    }
}

#[test]
fn bind_race_mkdir_inside_path_never_removes_roots_directory() {
    if privileged() {
        bind_race(Take::Mkdir, false);
    }
}

#[test]
fn bind_race_mkdir_outside_path_never_removes_roots_directory() {
    if privileged() {
        bind_race(Take::Mkdir, true);
    }
}
