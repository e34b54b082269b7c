//! The fallback backend: one /proc walk per check, and a write lease for
//! a regular file nobody in /proc holds.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::{Candidate, Held, HolderScan, RETRIES};
use crate::files::verdict::Unexplained;
use crate::host::procfs::{self, FileId};

/// The fallback: one /proc walk per check, and a write lease for files
/// nobody in /proc holds.
pub struct ProcHolders {
    why: &'static str,
}

impl ProcHolders {
    pub fn new(why: &'static str) -> Self {
        // A lease we hold for microseconds can still be broken by someone
        // opening the file: the kernel then sends us SIGIO, whose default
        // action would end the agent. We give the lease up at once anyway.
        // SAFETY: SIG_IGN for one signal; no handler runs.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        ProcHolders { why }
    }
}

/// What a write lease attempt says (fcntl F_SETLEASE F_WRLCK on a file the
/// agent opened read-only). Pure: the errno in, the answer out.
pub fn lease_verdict(result: Result<(), i32>) -> Held {
    match result {
        Ok(()) => Held::Free,
        // another struct file has it open for reading or writing
        Err(libc::EAGAIN) => Held::Unexplained(Unexplained::OpenElsewhere),
        Err(_) => Held::Unexplained(Unexplained::CannotTell("the filesystem refused a lease")),
    }
}

/// Try a write lease through the probe (reopened read-only through
/// /proc/self/fd, so the very file the probe pins), and give it up at once.
fn try_lease(probe: BorrowedFd<'_>) -> Result<(), i32> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", probe.as_raw_fd()))
        .expect("no NUL in a number");
    // SAFETY: a NUL-terminated path; flags only.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: a fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on our own descriptor.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    if r < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: as above; closing would drop it too.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    Ok(())
}

impl HolderScan for ProcHolders {
    fn name(&self) -> String {
        format!("/proc walk ({})", self.why)
    }

    fn check(&mut self, cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held> {
        let ids: HashSet<FileId> = cands.iter().map(|c| c.id).collect();
        let open = procfs::open_holders(&ids, ignore);
        let mut out = Vec::with_capacity(cands.len());
        for c in cands {
            if let Some(&p) = open.get(&c.id) {
                out.push(Held::By(p));
                continue;
            }
            let regular = nix::sys::stat::fstat(c.probe.as_raw_fd())
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
            if !regular {
                out.push(Held::Unexplained(Unexplained::CannotTell(
                    "not a regular file: only the BPF iterators can see a directory or symlink in flight",
                )));
                continue;
            }
            let mut held = lease_verdict(try_lease(c.probe));
            for pause in RETRIES {
                if held != Held::Unexplained(Unexplained::OpenElsewhere) {
                    break;
                }
                std::thread::sleep(pause);
                held = lease_verdict(try_lease(c.probe));
            }
            out.push(held);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases() {
        assert_eq!(lease_verdict(Ok(())), Held::Free);
        assert_eq!(
            lease_verdict(Err(libc::EAGAIN)),
            Held::Unexplained(Unexplained::OpenElsewhere)
        );
        assert!(matches!(
            lease_verdict(Err(libc::EINVAL)),
            Held::Unexplained(Unexplained::CannotTell(_))
        ));
    }
}
