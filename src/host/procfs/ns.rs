//! Namespaces from /proc: our own and a process's (by inode number), the
//! processes of a mount namespace, and a PID as another PID namespace
//! numbers it (NSpid).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{fields, lines, numeric_dirs, parse_num, read_bytes, stat, status_field};

/// Inode number of one of our own namespaces (`mnt`, `pid`, `net`).
pub fn own_ns(kind: &str) -> io::Result<u64> {
    Ok(fs::metadata(format!("/proc/self/ns/{kind}"))?.ino())
}

/// Inode number of a process's namespace of `kind`.
pub fn ns_of(pid: u32, kind: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// Live processes in the mount namespace `mnt_ns`, best first: the one
/// that sees the most mounts (a chrooted process sees only those under its
/// root, and its /proc/PID/root is not the namespace's root), then those in
/// `prefer`, then by ascending PID (a container's init first, usually).
pub fn procs_in_mnt_ns(mnt_ns: u64, prefer: &[u32]) -> Vec<u32> {
    let inside = |p: u32| ns_of(p, "mnt") == Some(mnt_ns) && stat(p).is_some_and(|s| s.alive());
    let mut out: Vec<u32> = prefer.iter().copied().filter(|&p| inside(p)).collect();
    let mut rest: Vec<u32> = numeric_dirs(Path::new("/proc"))
        .filter(|p| !prefer.contains(p))
        .collect();
    rest.sort_unstable();
    // a few: one is enough unless it is chrooted or ends meanwhile
    out.extend(rest.into_iter().filter(|&p| inside(p)).take(4));
    let mounts = |p: u32| {
        read_bytes(Path::new(&format!("/proc/{p}/mountinfo")))
            .map(|t| lines(&t).filter(|l| !l.is_empty()).count())
            .unwrap_or(0)
    };
    let mut scored: Vec<(usize, u32)> = out.into_iter().map(|p| (mounts(p), p)).collect();
    // stable: ties keep the order above
    scored.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
    scored.into_iter().map(|(_, p)| p).collect()
}

/// The NSpid line of /proc/PID/status: the PID in each namespace, from
/// the outermost (ours) to the innermost (the process's own).
pub fn parse_nspid(status: &[u8]) -> Option<Vec<u32>> {
    fields(status_field(status, "NSpid")?)
        .map(parse_num)
        .collect()
}

/// A PID as some PID namespace numbers it, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsPid {
    /// That process (or thread) is alive; its PID here.
    Host(u32),
    /// No process of that namespace has this PID.
    Dead,
    /// We cannot see that namespace's processes.
    Unknown,
}

/// Find the process whose PID in namespace `pid_ns` (inode number) is
/// `nspid`. Threads count: a PID file may name a thread. When no process
/// of the namespace is visible, the namespace is gone (all its processes
/// ended) if we are in the initial PID namespace, which sees every
/// process; otherwise we cannot tell.
pub fn host_pid(nspid: u32, pid_ns: u64) -> NsPid {
    let mut seen = false;
    for pid in numeric_dirs(Path::new("/proc")) {
        if ns_of(pid, "pid") != Some(pid_ns) {
            continue;
        }
        seen = true;
        for tid in numeric_dirs(Path::new(&format!("/proc/{pid}/task"))) {
            let Ok(text) = read_bytes(Path::new(&format!("/proc/{pid}/task/{tid}/status"))) else {
                continue;
            };
            if parse_nspid(&text).and_then(|v| v.last().copied()) == Some(nspid)
                && stat(tid).is_some_and(|s| s.alive())
            {
                return NsPid::Host(tid);
            }
        }
    }
    if seen || in_initial_pid_ns() {
        NsPid::Dead
    } else {
        NsPid::Unknown
    }
}

/// Our NSpid has one entry only in the initial PID namespace.
pub fn in_initial_pid_ns() -> bool {
    read_bytes(Path::new("/proc/self/status"))
        .ok()
        .and_then(|t| parse_nspid(&t))
        .is_some_and(|v| v.len() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::procfs::tests::privileged;

    #[test]
    fn nspid_lines() {
        let t = b"Name:\tsh\nTgid:\t5\nNSpid:\t4242\t17\t3\nNSpgid:\t1\n";
        assert_eq!(parse_nspid(t), Some(vec![4242, 17, 3]));
        assert_eq!(parse_nspid(b"NSpid:\t9\n"), Some(vec![9]));
        assert_eq!(parse_nspid(b"Name: x\n"), None);
        let me = std::process::id();
        let ns = ns_of(me, "pid").unwrap();
        if in_initial_pid_ns() {
            assert_eq!(host_pid(me, ns), NsPid::Host(me));
        }
        let mnt = ns_of(me, "mnt").unwrap();
        assert_eq!(procs_in_mnt_ns(mnt, &[me]).first(), Some(&me));
    }

    /// The kernel's own answer: the initial PID namespace has the fixed
    /// inode PROC_PID_INIT_INO (include/linux/proc_ns.h).
    fn kernel_says_initial() -> bool {
        use std::os::unix::fs::MetadataExt;
        const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
        fs::metadata("/proc/self/ns/pid").unwrap().ino() == PROC_PID_INIT_INO
    }

    #[test]
    fn initial_pid_namespace_as_the_kernel_says() {
        assert_eq!(in_initial_pid_ns(), kernel_says_initial());
    }

    /// In a new PID namespace (a grandchild, after unshare(CLONE_NEWPID)),
    /// the answer is no, whatever it is here.
    #[test]
    fn not_the_initial_pid_namespace_inside_a_new_one() {
        if !privileged("unshare(CLONE_NEWPID)") {
            return;
        }
        // SAFETY: the children call only unshare, fork, waitpid, a /proc
        // read and _exit; glibc keeps malloc usable after fork.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let code = unsafe {
                if libc::unshare(libc::CLONE_NEWPID) != 0 {
                    3
                } else {
                    let inner = libc::fork();
                    if inner == 0 {
                        let answer = in_initial_pid_ns() || kernel_says_initial();
                        libc::_exit(if answer { 1 } else { 0 });
                    }
                    let mut st = 0;
                    libc::waitpid(inner, &mut st, 0);
                    if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else {
                        4
                    }
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut st = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(child, &mut st, 0) };
        assert!(libc::WIFEXITED(st), "wait status {st:#x}");
        match libc::WEXITSTATUS(st) {
            0 => {}
            1 => panic!("in_initial_pid_ns() said yes inside a new PID namespace"),
            3 => panic!("unshare(CLONE_NEWPID) failed as root"),
            c => panic!("the child in the new PID namespace ended with {c}"),
        }
    }
}
