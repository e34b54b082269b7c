//! Process exits seen through pidfds (pidfd_open, Linux 5.3): a pidfd of a
//! thread-group leader becomes readable once the whole group has exited —
//! never for a single thread's end — and it names that very process, so a
//! reused PID can never be mistaken for it. Watching a process this way
//! costs nothing to the rest of the host: no program runs on every exit.
//!
//! `Exits` (the worker's side) opens and closes pidfds; `ExitWait` (a
//! thread of its own) waits on all of them with one epoll and hands back
//! the token of each process that ended. Each pidfd is registered
//! one-shot: it reports once, and the worker closes it when it hears.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::host::procfs;

/// The worker's side: the pidfds, by token.
pub struct Exits {
    epoll: Arc<OwnedFd>,
    fds: HashMap<u64, OwnedFd>,
    next: u64,
}

/// The waiting side, run on a thread of its own.
pub struct ExitWait {
    epoll: Arc<OwnedFd>,
}

/// What watching a process gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Watch {
    /// Watched: this token comes back when it has exited.
    Token(u64),
    /// It is not (or no longer) the process that started then.
    Gone,
}

fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the descriptor is owned right below.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor from pidfd_open.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Let the agent hold as many descriptors as its hard limit allows: one
/// pidfd per watched process.
fn raise_nofile() {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: rl outlives both calls.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

impl Exits {
    pub fn new() -> io::Result<(Exits, ExitWait)> {
        raise_nofile();
        // SAFETY: plain syscall; the descriptor is owned right below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor from epoll_create1.
        let epoll = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok((
            Exits {
                epoll: epoll.clone(),
                fds: HashMap::new(),
                next: 1,
            },
            ExitWait { epoll },
        ))
    }

    /// Watch the thread group `pid` if it is the one whose leader started
    /// at `start_ticks` (clock ticks since boot, as /proc counts). The
    /// pidfd is opened first and the start time read after: if they
    /// agree, the pidfd names that process. An error (descriptors
    /// exhausted) leaves the caller to poll.
    pub fn watch(&mut self, pid: u32, start_ticks: u64) -> io::Result<Watch> {
        let fd = match pidfd_open(pid) {
            Ok(fd) => fd,
            // no such process, or not a thread-group leader (a thread id)
            Err(e) if matches!(e.raw_os_error(), Some(libc::ESRCH | libc::EINVAL)) => {
                return Ok(Watch::Gone)
            }
            Err(e) => return Err(e),
        };
        if !procfs::stat(pid).is_some_and(|s| s.alive() && s.start_ticks == start_ticks) {
            return Ok(Watch::Gone);
        }
        let token = self.next;
        self.next += 1;
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; ev outlives the call.
        let r = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        self.fds.insert(token, fd);
        Ok(Watch::Token(token))
    }

    /// Stop watching (closing a pidfd takes it out of the epoll set).
    /// False when the token was not watched (already heard, or stale).
    pub fn forget(&mut self, token: u64) -> bool {
        self.fds.remove(&token).is_some()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.fds.len()
    }
}

impl ExitWait {
    /// Until `stop` is set: `send` gets the token of every watched process
    /// that exits, once; it returns false when nobody listens any more.
    pub fn run(self, send: &dyn Fn(u64) -> bool, stop: &AtomicBool) -> io::Result<()> {
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: events holds 256 entries; the epoll descriptor is open.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.as_raw_fd(),
                    events.as_mut_ptr(),
                    events.len() as i32,
                    100,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &events[..n as usize] {
                let token = ev.u64;
                if !send(token) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_child_exit_is_heard_once_and_a_wrong_start_is_gone() {
        let (mut exits, wait) = Exits::new().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = child.id();
        let start = procfs::stat(pid).unwrap().start_ticks;
        assert_eq!(exits.watch(pid, start + 1).unwrap(), Watch::Gone);
        let Watch::Token(token) = exits.watch(pid, start).unwrap() else {
            panic!("not watched")
        };
        assert_eq!(exits.len(), 1);
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || wait.run(&|tok| tx.send(tok).is_ok(), &s2));
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
        child.kill().unwrap();
        // heard while still a zombie: the group has exited
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), token);
        assert!(
            rx.recv_timeout(Duration::from_millis(300)).is_err(),
            "one-shot"
        );
        child.wait().unwrap();
        assert!(exits.forget(token));
        assert!(!exits.forget(token));
        // a reaped process cannot be watched
        assert_eq!(exits.watch(pid, start).unwrap(), Watch::Gone);
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap().unwrap();
    }
}
