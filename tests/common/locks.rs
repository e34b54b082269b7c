//! Lock-file scenarios for the end-to-end tests: processes that create,
//! hold or lock a file and are killed, and what the agent must say of it.

use std::path::{Path, PathBuf};

use super::*;

/// A lock file `name` in `dir` created (O_EXCL) by a process then killed
/// with SIGKILL; its path.
pub fn killed_lock(procs: &mut Procs, dir: &Path, name: &str) -> PathBuf {
    let lock = dir.join(name);
    let c = cstr(&lock);
    let pid = procs.fork(move || {
        create(&c, true, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&lock)));
    procs.kill(pid, libc::SIGKILL);
    lock
}

/// The agent removed `lock`: it is gone, and the agent said so on a line
/// `removed PATH: …` (or `removed PATH (in the mount namespace …): …`)
/// holding every one of `also`. Callers check that the lock existed (or
/// was tracked) first. The line.
pub fn expect_removed(agent: &Agent, lock: &Path, also: &[&str]) -> String {
    assert!(
        wait_for(PATIENCE, || !exists(lock)),
        "{} is still there\n{}",
        lock.display(),
        agent.log_text()
    );
    let (colon, place) = (
        format!("removed {}: ", lock.display()),
        format!("removed {} (in ", lock.display()),
    );
    agent
        .wait_line(PATIENCE, |l| {
            (l.contains(&colon) || l.contains(&place)) && also.iter().all(|p| l.contains(p))
        })
        .unwrap_or_else(|| {
            panic!(
                "{} is gone but no `{colon}` line with {also:?}:\n{}",
                lock.display(),
                agent.log_text()
            )
        })
}

/// SIGKILL one of our children and wait for the agent to remove its lock
/// (gone, and a `removed PATH` line). The lock must exist before.
pub fn kill_and_expect_gone(procs: &Procs, pid: i32, lock: &Path, agent: &Agent) {
    assert!(
        exists(lock),
        "{} does not exist before the kill",
        lock.display()
    );
    procs.kill(pid, libc::SIGKILL);
    expect_removed(agent, lock, &[]);
}

/// A child that creates `path` exclusively (content: its PID, descriptor
/// left open), then parks; returns once the file has its content.
pub fn locker(procs: &mut Procs, path: &Path) -> i32 {
    let c = cstr(path);
    let pid = procs.fork(move || {
        let content = format!("{}\n", std::process::id());
        create(&c, true, content.as_bytes());
        park();
    });
    assert!(
        wait_for(PATIENCE, || std::fs::read(path)
            .is_ok_and(|b| !b.is_empty())),
        "child did not create {path:?}"
    );
    pid
}

/// The agent tracked `lock` as created by `pid`: proof that it existed,
/// for locks that may be removed before a test could see them.
pub fn expect_tracked(agent: &Agent, lock: &Path, pid: i32) {
    agent.wait_log_line(
        &[&format!("tracking {} (pid {pid} ", lock.display())],
        PATIENCE,
    );
}

/// The agent hands `lock` to the live process `pid` (its `handed` line
/// says `why`); when that process is killed, the lock goes.
pub fn kept_until_it_dies(procs: &Procs, agent: &Agent, lock: &Path, why: &str, pid: i32) {
    let kept = format!("handed {} to pid ", lock.display());
    agent.wait_log_line(&[&kept, why], PATIENCE);
    assert!(exists(lock), "{} was kept, yet it is gone", lock.display());
    kill_and_expect_gone(procs, pid, lock, agent);
}

/// How `hold_only_the_lock` locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldBy {
    /// flock(2): /proc/locks names the process that took it.
    Flock,
    /// An open file description lock (F_OFD_SETLK): /proc/locks shows -1.
    Ofd,
}

/// Fork a process that locks `path` and then keeps nothing but the lock.
/// flock and OFD locks belong to the open file description and live as
/// long as it does; the process sends its only descriptor over a UNIX
/// socket pair (SCM_RIGHTS), closes it and the sending end, and keeps the
/// receiving end without ever receiving. The description now lives only in
/// that message: no fd table and no memory map on the host refers to the
/// file (what /proc/PID/fd and /proc/PID/maps show), while /proc/locks
/// still shows the lock. Killing the process frees the message, the
/// description and the lock. (A POSIX lock cannot be held this way: it
/// belongs to the process and goes with the first close of any descriptor
/// of the file.) Returns once the lock is seen held and no descriptor is.
pub fn hold_only_the_lock(procs: &mut Procs, path: &Path, how: HeldBy) -> i32 {
    let c = cstr(path);
    let pid = procs.fork(move || unsafe {
        let fd = libc::open(c.as_ptr(), libc::O_RDWR);
        assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
        let r = match how {
            HeldBy::Flock => libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB),
            HeldBy::Ofd => {
                let mut fl: libc::flock = std::mem::zeroed();
                fl.l_type = libc::F_WRLCK as i16;
                fl.l_whence = libc::SEEK_SET as i16;
                libc::fcntl(fd, libc::F_OFD_SETLK, &fl)
            }
        };
        assert_eq!(r, 0, "lock: {}", std::io::Error::last_os_error());
        let mut sv = [0i32; 2];
        let r = libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, sv.as_mut_ptr());
        assert_eq!(r, 0, "socketpair: {}", std::io::Error::last_os_error());
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let space = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as usize;
        let mut control = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
        let n = libc::sendmsg(sv[0], &msg, 0);
        assert_eq!(n, 1, "sendmsg: {}", std::io::Error::last_os_error());
        libc::close(fd);
        libc::close(sv[0]);
        park();
    });
    let key = locks_key(path);
    let want_pid = match how {
        HeldBy::Flock => pid.to_string(),
        HeldBy::Ofd => "-1".to_string(),
    };
    let held = wait_for(PATIENCE, || {
        std::fs::read_to_string("/proc/locks").is_ok_and(|t| {
            t.lines().any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 5 && f[1] != "->" && f[4] == want_pid && f[5] == key
            })
        }) && !has_open(pid as u32, path)
    });
    assert!(
        held,
        "pid {pid}: no {how:?} lock on {} ({key}) held by {want_pid} in /proc/locks, or it still has the file open: {}",
        path.display(),
        has_open(pid as u32, path)
    );
    pid
}

/// The `MAJ:MIN:INO` field /proc/locks shows for `path`.
fn locks_key(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    let (maj, min) = (libc::major(m.dev()), libc::minor(m.dev()));
    format!("{maj:02x}:{min:02x}:{}", m.ino())
}

/// Does `pid` have `path` open (an fd) or mapped, as /proc shows it?
pub fn has_open(pid: u32, path: &Path) -> bool {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"));
    let open = fds
        .into_iter()
        .flatten()
        .flatten()
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path));
    let mapped = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .is_ok_and(|m| m.lines().any(|l| l.ends_with(&*path.to_string_lossy())));
    open || mapped
}
