//! Every way a lock is taken (link, mkdir, symlink, renameat2 NOREPLACE),
//! renames of tracked locks, and locks made inside other mount and PID
//! namespaces: end to end, as root, each agent scoped to its test's
//! directory, children killed and reaped by PID.

mod common;

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn ok(r: i32, what: &str) {
    assert!(r == 0, "{what} failed: {}", std::io::Error::last_os_error());
}

/// In a child: a descriptor on `dir`.
fn open_dir(dir: &CString) -> i32 {
    let fd = unsafe { libc::open(dir.as_ptr(), libc::O_PATH | libc::O_DIRECTORY) };
    assert!(fd >= 0);
    fd
}

/// `p` (seen to exist, or tracked) was removed for its owner's SIGKILL.
fn removed(agent: &Agent, p: &Path) {
    expect_removed(agent, p, &["killed by SIGKILL"]);
}

/// Processes that are not our children (started by a helper shell):
/// SIGKILLed by PID on drop.
struct Strays(Vec<i32>);

impl Drop for Strays {
    fn drop(&mut self) {
        for &p in &self.0 {
            if p > 1 {
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }
}

#[test]
fn link_dotlocks_of_a_killed_owner_are_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("link");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let dot = dir.path().join("mbox.lock");
    let at = dir.path().join("at.lck");
    let (tmp, dotc) = (cstr(&dir.path().join("tmp.1")), cstr(&dot));
    let dirc = cstr(dir.path());
    // liblockfile's way: a unique temp file, link()ed to the lock name
    let a = procs.fork(move || {
        create(&tmp, true, format!("{}\n", std::process::id()).as_bytes());
        ok(unsafe { libc::link(tmp.as_ptr(), dotc.as_ptr()) }, "link");
        ok(unsafe { libc::unlink(tmp.as_ptr()) }, "unlink");
        park();
    });
    // linkat, relative to a directory descriptor
    let b = procs.fork(move || {
        let d = open_dir(&dirc);
        let fd = unsafe {
            libc::openat(
                d,
                c("tmp.2").as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                0o644,
            )
        };
        assert!(fd >= 0);
        ok(
            unsafe { libc::linkat(d, c("tmp.2").as_ptr(), d, c("at.lck").as_ptr(), 0) },
            "linkat",
        );
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&dot) && exists(&at)));
    assert!(agent.wait_log(&["tracking", "at.lck", "Link"]));
    assert!(agent.wait_log(&["tracking", "mbox.lock", "Link"]));
    procs.kill(a, libc::SIGKILL);
    procs.kill(b, libc::SIGKILL);
    removed(&agent, &dot);
    removed(&agent, &at);
    // the temp file is not a lock: left alone
    assert!(exists(&dir.path().join("tmp.2")));
}

#[test]
fn lock_directories_of_a_killed_owner_are_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("mkdir");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let empty = dir.path().join("proper.lock");
    let with_pid = dir.path().join("script.lock");
    let (e, dirc) = (cstr(&empty), cstr(dir.path()));
    let pid_file = cstr(&with_pid.join("pid"));
    // proper-lockfile: an empty directory
    let a = procs.fork(move || {
        ok(unsafe { libc::mkdir(e.as_ptr(), 0o755) }, "mkdir");
        park();
    });
    // a script: mkdirat, then its PID inside
    let b = procs.fork(move || {
        let d = open_dir(&dirc);
        ok(
            unsafe { libc::mkdirat(d, c("script.lock/").as_ptr(), 0o755) },
            "mkdirat",
        );
        create(
            &pid_file,
            true,
            format!("{}\n", std::process::id()).as_bytes(),
        );
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&empty) && exists(&with_pid.join("pid"))));
    assert!(agent.wait_log(&["tracking", "script.lock", "Mkdir"]));
    assert!(agent.wait_log(&["tracking", "proper.lock", "Mkdir"]));
    procs.kill(a, libc::SIGKILL);
    procs.kill(b, libc::SIGKILL);
    removed(&agent, &empty);
    removed(&agent, &with_pid);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn lock_directory_holding_other_data_is_kept() {
    if !privileged() {
        return;
    }
    let dir = test_dir("mkdirdata");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("cache.lock");
    let (l, pid_file, data) = (
        cstr(&lock),
        cstr(&lock.join("pid")),
        cstr(&lock.join("data")),
    );
    let a = procs.fork(move || {
        ok(unsafe { libc::mkdir(l.as_ptr(), 0o755) }, "mkdir");
        create(
            &pid_file,
            true,
            format!("{}\n", std::process::id()).as_bytes(),
        );
        create(&data, true, b"precious");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&lock.join("data"))));
    assert!(agent.wait_log(&["tracking", "cache.lock", "Mkdir"]));
    procs.kill(a, libc::SIGKILL);
    assert!(
        agent.wait_log(&["kept", "cache.lock", "holds other data"]),
        "{}",
        agent.log_text()
    );
    assert_eq!(std::fs::read(lock.join("data")).unwrap(), b"precious");
    assert!(exists(&lock.join("pid")));
}

/// A lock directory holding one small file that is not an owner record
/// (`echo data > dir.lock/keep.db`) is data: kept. In the same window, one
/// holding a `pid=N` record is removed.
#[test]
fn lock_directory_with_one_data_file_is_kept() {
    if !privileged() {
        return;
    }
    let dir = test_dir("mkdirone");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let data_lock = dir.path().join("db.lock");
    let record_lock = dir.path().join("job.lock");
    let (d, keep) = (cstr(&data_lock), cstr(&data_lock.join("keep.db")));
    let (r, rec) = (cstr(&record_lock), cstr(&record_lock.join("owner")));
    let a = procs.fork(move || {
        ok(unsafe { libc::mkdir(d.as_ptr(), 0o755) }, "mkdir");
        create(&keep, true, b"data\n");
        ok(unsafe { libc::mkdir(r.as_ptr(), 0o755) }, "mkdir");
        create(
            &rec,
            true,
            format!("pid={}\nhost=localhost\n", std::process::id()).as_bytes(),
        );
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&data_lock.join("keep.db"))
        && exists(&record_lock.join("owner"))));
    assert!(agent.wait_log(&["tracking", "db.lock", "Mkdir"]));
    assert!(agent.wait_log(&["tracking", "job.lock", "Mkdir"]));
    procs.kill(a, libc::SIGKILL);
    removed(&agent, &record_lock);
    assert!(
        agent.wait_log(&["kept", "db.lock", "keep.db is not an owner record"]),
        "{}",
        agent.log_text()
    );
    assert_eq!(std::fs::read(data_lock.join("keep.db")).unwrap(), b"data\n");
}

#[test]
fn editor_symlink_locks_follow_the_pid_in_their_target() {
    if !privileged() {
        return;
    }
    let dir = test_dir("symlink");
    let agent = agent_for(dir.path(), &["--include", ".#*"]);
    let mut procs = Procs::default();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "data\n").unwrap();
    let own = dir.path().join(".#notes.txt");
    let held = dir.path().join(".#held.txt");
    let at_victim = dir.path().join(".#victim");
    let (o, dirc) = (cstr(&own), cstr(dir.path()));
    let h = cstr(&held);
    // Emacs: .#name -> user@host.PID:BOOT, the creator's own PID
    let a = procs.fork(move || {
        let t = c(&format!("me@host.{}:1700000000", std::process::id()));
        ok(unsafe { libc::symlink(t.as_ptr(), o.as_ptr()) }, "symlink");
        park();
    });
    // a link whose target is a real file: never followed, the file stays
    let b = procs.fork(move || {
        let d = open_dir(&dirc);
        ok(
            unsafe { libc::symlinkat(c("victim").as_ptr(), d, c(".#victim").as_ptr()) },
            "symlinkat",
        );
        park();
    });
    // one naming another live process: kept while that one lives
    let holder = procs.fork(|| park());
    let d = procs.fork(move || {
        let t = c(&format!("me@host.{holder}:1"));
        ok(unsafe { libc::symlink(t.as_ptr(), h.as_ptr()) }, "symlink");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&own)
        && exists(&at_victim)
        && exists(&held)));
    assert!(agent.wait_log(&["tracking", ".#held.txt", "Symlink"]));
    assert!(agent.wait_log(&["tracking", ".#victim", "Symlink"]));
    assert!(agent.wait_log(&["tracking", ".#notes.txt", "Symlink"]));
    procs.kill(a, libc::SIGKILL);
    procs.kill(b, libc::SIGKILL);
    procs.kill(d, libc::SIGKILL);
    removed(&agent, &own);
    removed(&agent, &at_victim);
    assert_eq!(std::fs::read(&victim).unwrap(), b"data\n");
    assert!(
        agent.wait_log(&["handed", ".#held.txt", &format!("names live pid {holder}")]),
        "{}",
        agent.log_text()
    );
    assert!(exists(&held));
    kill_and_expect_gone(&procs, holder, &held, &agent);
}

#[test]
fn renameat2_noreplace_lock_of_a_killed_owner_is_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("noreplace");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("r.lock");
    let (tmp, l) = (cstr(&dir.path().join("r.tmp")), cstr(&lock));
    let a = procs.fork(move || {
        create(&tmp, false, format!("{}\n", std::process::id()).as_bytes());
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                tmp.as_ptr(),
                libc::AT_FDCWD,
                l.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        ok(r as i32, "renameat2");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&lock)));
    assert!(agent.wait_log(&["tracking", "r.lock", "Rename"]));
    procs.kill(a, libc::SIGKILL);
    removed(&agent, &lock);
}

#[test]
fn renamed_locks_are_followed_or_dropped() {
    if !privileged() {
        return;
    }
    let dir = test_dir("renames");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let p = |n: &str| dir.path().join(n);
    let (a1, a2) = (cstr(&p("a.lock")), cstr(&p("b.lock")));
    let (c1, c2) = (cstr(&p("c.lock")), cstr(&p("c.done")));
    let e1 = cstr(&p("e.lock"));
    // the owner renames its lock to another lock name: followed
    let a = procs.fork(move || {
        create(&a1, true, b"");
        ok(unsafe { libc::rename(a1.as_ptr(), a2.as_ptr()) }, "rename");
        park();
    });
    // the owner renames it to a name that is no lock: tracking stops
    let b = procs.fork(move || {
        create(&c1, true, b"");
        ok(unsafe { libc::rename(c1.as_ptr(), c2.as_ptr()) }, "rename");
        park();
    });
    // someone else renames a tracked lock: not followed (only owners'
    // renames are looked at); at the owner's end the name is gone: kept
    let e = procs.fork(move || {
        create(&e1, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&p("b.lock"))
        && exists(&p("c.done"))
        && exists(&p("e.lock"))));
    assert!(agent.wait_log(&["tracking", "e.lock"]));
    std::fs::rename(p("e.lock"), p("f.lck")).unwrap();
    assert!(
        agent.wait_log(&["following", "a.lock", "renamed to", "b.lock"]),
        "{}",
        agent.log_text()
    );
    procs.kill(b, libc::SIGKILL);
    procs.kill(a, libc::SIGKILL);
    procs.kill(e, libc::SIGKILL);
    removed(&agent, &p("b.lock"));
    std::thread::sleep(Duration::from_millis(500));
    assert!(exists(&p("f.lck")), "{}", agent.log_text());
    assert!(exists(&p("c.done")), "{}", agent.log_text());
    assert!(!agent.log_has("c.done"), "{}", agent.log_text());
}

/// A lock made in a private mount namespace, on a tmpfs mounted there over
/// a directory the host also has: judged and removed there, through a
/// process that shares the namespace; the host's file at the same path is
/// another file, and stays.
#[test]
fn lock_in_a_private_mount_namespace_is_removed_there() {
    if !privileged() {
        return;
    }
    let dir = test_dir("mntns-inside");
    let inner = dir.path().join("inner");
    std::fs::create_dir(&inner).unwrap();
    let host_x = inner.join("x.lock");
    let host_y = inner.join("y.lock");
    std::fs::write(&host_x, "host\n").unwrap();
    std::fs::write(&host_y, "host\n").unwrap();
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    // a helper that keeps the namespace alive; the creator takes an
    // O_EXCL lock and a link() dotlock, and is killed
    std::fs::write(
        dir.path().join("ns.sh"),
        "mount -t tmpfs egb-test inner || exit 1\n\
         sleep 1000 & echo $! > helper.pid\n\
         sh -c 'set -C; echo $$ > inner/x.lock; echo $$ > inner/t; ln inner/t inner/y.lock; \
         rm inner/t; echo $$ > creator.pid; kill -9 $$'\n\
         wait\n",
    )
    .unwrap();
    let sh = procs.sh(
        "exec unshare --mount --propagation private sh ./ns.sh",
        dir.path(),
    );
    let helper = read_pid_file(&dir.path().join("helper.pid"));
    let _strays = Strays(vec![helper]);
    let creator = read_pid_file(&dir.path().join("creator.pid"));
    let there =
        |p: &Path| -> PathBuf { PathBuf::from(format!("/proc/{helper}/root{}", p.display())) };
    for p in [&host_x, &host_y] {
        assert!(
            wait_for(PATIENCE, || !exists(&there(p))),
            "{} still there inside\n{}",
            p.display(),
            agent.log_text()
        );
        assert!(
            agent.wait_log(&[
                &format!("removed {}", p.display()),
                "in the mount namespace of pid",
                &format!("owner pid {creator}"),
            ]),
            "{}",
            agent.log_text()
        );
    }
    // the namespace is still there (so "gone" above was seen inside it)
    assert!(there(&inner).is_dir(), "helper {helper} is gone");
    assert_eq!(std::fs::read(&host_x).unwrap(), b"host\n");
    assert_eq!(std::fs::read(&host_y).unwrap(), b"host\n");
    procs.kill(sh, libc::SIGKILL);
}

/// A PID written inside a new PID namespace is read there: the live
/// process it names keeps the lock; once that one is dead, it goes.
#[test]
fn pid_written_in_a_pid_namespace_is_read_there() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidns");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("p.lock");
    std::fs::write(
        dir.path().join("pidns.sh"),
        "sleep 1000 & S=$!\n\
         sh -c \"set -C; echo $S > p.lock; kill -9 \\$\\$\"\n\
         wait\n",
    )
    .unwrap();
    let unshare = procs.sh(
        "exec unshare --pid --fork --kill-child --mount-proc sh ./pidns.sh",
        dir.path(),
    );
    assert!(wait_for(PATIENCE, || exists(&lock)));
    let nspid: u32 = read_pid_file(&lock) as u32;
    assert!(
        agent.wait_log(&["handed", "p.lock", "names live pid"]),
        "{}",
        agent.log_text()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(exists(&lock));
    // the whole namespace dies with unshare (--kill-child): the PID in the
    // file names nobody now, whatever that number means on the host
    procs.kill(unshare, libc::SIGKILL);
    let line = expect_removed(&agent, &lock, &[]);
    eprintln!("pid {nspid} of the namespace: {line}");
}

/// `set -C; echo $$ > f.lock; exit 0` inside a PID namespace: the file
/// names its creator as that namespace numbers it, so it is stale though
/// the exit was clean (not handed to the parent).
#[test]
fn lock_naming_its_creator_in_a_pid_namespace_is_stale_on_clean_exit() {
    if !privileged() {
        return;
    }
    let dir = test_dir("pidns-self");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let lock = dir.path().join("self.lock");
    std::fs::write(
        dir.path().join("pidself.sh"),
        "sh -c 'set -C; echo $$ > self.lock; exit 0'\n\
         sleep 1000\n",
    )
    .unwrap();
    let unshare = procs.sh(
        "exec unshare --pid --fork --kill-child --mount-proc sh ./pidself.sh",
        dir.path(),
    );
    assert!(
        agent.wait_log(&[
            &format!("removed {}", lock.display()),
            "exited with status 0"
        ]),
        "{}",
        agent.log_text()
    );
    assert!(!exists(&lock));
    assert!(!agent.log_has("handed"), "{}", agent.log_text());
    procs.kill(unshare, libc::SIGKILL);
}

/// `ln` takes the lock and exits 0 (handed to the shell), and the shell is
/// killed right after: both exits often reach the agent together, and the
/// shell's must still count once it owns the lock.
#[test]
fn lock_handed_to_a_parent_that_dies_at_once_is_removed() {
    if !privileged() {
        return;
    }
    let dir = test_dir("handoff-race");
    let agent = agent_for(dir.path(), &[]);
    let mut procs = Procs::default();
    let mut shells = Vec::new();
    for i in 0..5 {
        let script = format!(": > t{i}; ln t{i} h{i}.lock && kill -9 $$; exit 1");
        shells.push(procs.sh(&script, dir.path()));
    }
    for (i, &sh) in shells.iter().enumerate() {
        // the shell got as far as killing itself: `ln` made the lock
        procs.assert_killed(sh, &format!("shell {i} (`ln` then `kill -9 $$`)"));
        let lock = dir.path().join(format!("h{i}.lock"));
        // made by `ln`, handed to the shell, removed for the shell's death
        agent.wait_log_line(&[&format!("tracking {} (pid ", lock.display())], PATIENCE);
        expect_removed(
            &agent,
            &lock,
            &[&format!("owner pid {sh} "), "killed by SIGKILL"],
        );
    }
    assert!(!agent.log_has("exited unseen"), "{}", agent.log_text());
}
