//! Where a file's name is resolved (check 5), for every file class: in the
//! creator's mount namespace, never following a symlink. A file made in
//! our own namespace resolves here; one made in another (a container, a
//! sandboxed service) resolves under `/proc/PID/root` of a live process
//! that shares it, with `RESOLVE_IN_ROOT`.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::files::dir::{self, LockDir, NameStat};
use crate::host::procfs;

/// Where a path of some mount namespace is resolved.
pub enum Root {
    /// Our own mount namespace.
    Here,
    /// Another one, through a live process in it: a descriptor on
    /// /proc/PID/root, under which paths resolve with RESOLVE_IN_ROOT.
    Inside { root: OwnedFd, pid: u32 },
    /// Another one that no live process shares (gone, or held only by a
    /// bind mount): nothing to resolve it through.
    Unreachable,
}

impl Root {
    /// The root a path of mount namespace `mnt_ns` resolves under; the
    /// processes in `prefer` are tried first. `own_mnt_ns`: ours.
    pub fn of(mnt_ns: u64, own_mnt_ns: u64, prefer: &[u32]) -> Root {
        if mnt_ns == own_mnt_ns {
            return Root::Here;
        }
        for pid in procfs::procs_in_mnt_ns(mnt_ns, prefer) {
            if let Some(root) = open_proc_root(pid, mnt_ns) {
                return Root::Inside { root, pid };
            }
        }
        Root::Unreachable
    }

    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Root::Inside { root, .. } => Some(root.as_fd()),
            _ => None,
        }
    }

    pub fn reachable(&self) -> bool {
        !matches!(self, Root::Unreachable)
    }

    /// For log lines: where it was judged.
    pub fn place(&self) -> String {
        match self {
            Root::Inside { pid, .. } => format!(" (in the mount namespace of pid {pid})"),
            _ => String::new(),
        }
    }

    /// The directory holding `path`, opened refusing symlinks.
    pub fn open_parent(&self, path: &Path) -> std::io::Result<LockDir> {
        dir::open_parent_in(self.fd(), path)
    }

    /// What `path` names now (not following a final symlink).
    pub fn stat(&self, path: &Path) -> std::io::Result<NameStat> {
        self.open_parent(path).and_then(|d| d.stat(d.name()))
    }
}

/// The root of a live process's mount namespace view, or None.
fn open_proc_root(pid: u32, mnt_ns: u64) -> Option<OwnedFd> {
    let fd = nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    // SAFETY: a fresh descriptor from open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // the PID may have ended and been reused between the choice and the open
    (procfs::ns_of(pid, "mnt") == Some(mnt_ns)).then_some(fd)
}
