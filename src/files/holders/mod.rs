//! Who holds a candidate file: check 2 (open or mapped by a live process)
//! and what no process shows (a descriptor in flight), for every
//! filesystem ghost class. Two backends behind one trait, chosen once at
//! start:
//!
//! - **BPF iterators** (bpf/holders.bpf.c). The agent opens each candidate
//!   with O_PATH (its probe) and reads, through an iterator over its own
//!   descriptors, the kernel's count of references on the file's dentries.
//!   When the agent's own files explain every one, nothing holds the file
//!   and nothing else is walked: the common case costs the same on a host
//!   with a million descriptors as on an idle one. Otherwise one pass of
//!   `iter/task`, `iter/task_file` and `iter/task_vma` over every task (every
//!   namespace) names the holders; references left unexplained after that
//!   (a descriptor in flight over SCM_RIGHTS, an io_uring registered file)
//!   keep the file.
//! - **The /proc walk** (host::procfs::open_holders), where iterators do not
//!   load (or with `--force-holders-fallback`). It cannot see references
//!   outside processes; for a regular file, a write lease (granted only when
//!   no other struct file has the inode open for reading or writing, in a
//!   process or in flight) stands in for the reference count. A directory
//!   or symlink, where no lease can be taken, is kept: unknown means keep.
//!
//! The decisions are pure (`decide`, `lease_verdict`) and unit-tested; the
//! backends only gather.
//!
//! This folder: the answer types, the backend chosen once, and the wait
//! for exiting processes (here); the pure decision over what the iterators
//! saw (`decide.rs`); the iterator backend (`iter.rs`); the /proc walk with
//! its lease (`procwalk.rs`).

mod decide;
mod iter;
mod procwalk;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::files::verdict::Unexplained;
use crate::host::procfs::FileId;

use iter::IterHolders;
use procwalk::ProcHolders;

/// One file to check: its identity, and the agent's O_PATH descriptor on
/// it (opened without following symlinks; it pins the inode).
pub struct Candidate<'a> {
    pub id: FileId,
    pub probe: BorrowedFd<'a>,
}

/// The answer for one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Nothing references it but the agent (and the ignored processes).
    Free,
    /// A live process has it open or mapped (the lowest such tgid).
    By(u32),
    /// Referenced by something no process shows, or cannot be told: kept.
    Unexplained(Unexplained),
}

/// A holder-check backend.
pub trait HolderScan: Send {
    /// For the status file and the `ready` line.
    fn name(&self) -> String;
    /// One answer per candidate, in order. Processes in `ignore` (this
    /// agent, owners known to be exiting) hold nothing.
    fn check(&mut self, cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held>;
}

/// The backend for this host: the iterators when they load and run, the
/// /proc walk otherwise (or when forced).
pub fn start(force_proc: bool) -> Box<dyn HolderScan> {
    if force_proc {
        return Box::new(ProcHolders::new("forced by --force-holders-fallback"));
    }
    match IterHolders::load() {
        Ok(h) => Box::new(h),
        Err(e) => {
            log::warn!("holder checks: BPF iterators unavailable ({e:#}); using the /proc walk");
            Box::new(ProcHolders::new("BPF iterators unavailable"))
        }
    }
}

/// The backend this process uses, chosen once (`init`) by `run` and
/// `sweep`; every class's removals go through it (one set of iterators
/// loaded, not one per class).
static BACKEND: std::sync::Mutex<Option<Box<dyn HolderScan>>> = std::sync::Mutex::new(None);

/// Choose the backend (iterators, or the /proc walk when they do not load
/// or `force_proc`); its name, for the status file and the `ready` line.
pub fn init(force_proc: bool) -> String {
    let b = start(force_proc);
    let name = b.name();
    *BACKEND.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    name
}

/// One check with the chosen backend (the default one when none was
/// chosen: unit tests).
pub fn check(cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held> {
    let mut g = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(|| start(false)).check(cands, ignore)
}

/// Before the first check of a batch: wait (up to `budget`) for the ignored
/// processes still on their way out to finish; their descriptors close
/// only after the exit event that made us look. Both backends would take
/// what they still hold for someone else's reference.
pub fn settle(ignore: &[u32], budget: Duration) {
    let me = std::process::id();
    let end = Instant::now() + budget;
    for &pid in ignore {
        if pid == me || !exiting(pid) {
            continue;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
        if fd < 0 {
            continue; // reaped meanwhile
        }
        // SAFETY: a fresh descriptor from pidfd_open.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let left = end.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // readable once the whole thread group has exited (exit_notify:
        // after its files, mappings and pending fputs are gone)
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
    }
}

/// Is the process on its way out (PF_EXITING, not yet a zombie)?
fn exiting(pid: u32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat_exiting(&stat)
}

/// From /proc/PID/stat: the state (field 3) and flags (field 9), after the
/// command name, which may hold any bytes.
fn stat_exiting(stat: &[u8]) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let mut f = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|s| !s.is_empty());
    let state = f.next().unwrap_or(b"?");
    let flags = f
        .nth(5)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    !matches!(state, b"Z" | b"X" | b"x") && flags & PF_EXITING != 0
}

/// Waits between re-checks of references no process explains: a path walk
/// in progress elsewhere, a close whose final fput is still queued, pass in
/// microseconds to a few ms (delayed_fput runs on the next jiffy).
const RETRIES: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(20),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exiting_from_stat() {
        let s = b"42 (a) b) S 1 42 42 0 -1 4194564 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert!(stat_exiting(s)); // 4194564 = 0x400004: PF_EXITING
        let s = b"42 (x) S 1 42 42 0 -1 4194560 0 0";
        assert!(!stat_exiting(s));
        let s = b"42 (x) Z 1 42 42 0 -1 4194564 0 0";
        assert!(!stat_exiting(s));
        assert!(!stat_exiting(b"garbage"));
        // a command name that is not UTF-8 is no obstacle
        let s = b"42 (\xd1\x81\xd0) R 1 42 42 0 -1 4 0 0";
        assert!(stat_exiting(s));
    }
}
