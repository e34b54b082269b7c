//! Acting as the principal: a removal on behalf of a process runs with that
//! process's filesystem credentials as the kernel recorded them (fsuid,
//! fsgid, supplementary groups), so the agent can never remove what its
//! creator could not have removed itself.
//!
//! Only the calling thread changes: setfsuid/setfsgid are per thread, and
//! setgroups is called as a raw syscall (glibc's wrapper would change every
//! thread of the process). Changing the fsuid from 0 to another value drops
//! CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER and the other
//! filesystem capabilities from the effective set, and changing it back to
//! 0 restores them (capabilities(7)): while acting for an unprivileged
//! principal the agent has no privilege over files at all.

use std::io;

/// Whose credentials a filesystem step runs with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    /// Kernel (global) uid and gid, as in the creator's `struct cred`.
    pub fsuid: u32,
    pub fsgid: u32,
    pub groups: Vec<u32>,
}

impl Principal {
    pub fn root() -> Self {
        Principal {
            fsuid: 0,
            fsgid: 0,
            groups: Vec::new(),
        }
    }

    /// Acts with no right to anyone's files (the overflow ids).
    pub fn nobody() -> Self {
        Principal {
            fsuid: 65534,
            fsgid: 65534,
            groups: Vec::new(),
        }
    }

    pub fn is_root(&self) -> bool {
        self.fsuid == 0
    }
}

fn current_groups() -> io::Result<Vec<u32>> {
    // SAFETY: size query, then a buffer of that size.
    let n = unsafe { libc::syscall(libc::SYS_getgroups, 0, std::ptr::null_mut::<u32>()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut v = vec![0u32; n as usize];
    // SAFETY: v holds n entries.
    let m = unsafe { libc::syscall(libc::SYS_getgroups, n, v.as_mut_ptr()) };
    if m < 0 {
        return Err(io::Error::last_os_error());
    }
    v.truncate(m as usize);
    Ok(v)
}

fn set_groups(groups: &[u32]) -> io::Result<()> {
    // SAFETY: a pointer to groups.len() gids; this thread only (raw syscall).
    let r = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// setfsuid/setfsgid report no error: set, then read back with an invalid
/// value (which changes nothing and returns the current one).
fn set_fs(id: u32, user: bool) -> io::Result<()> {
    let call = |v: u32| {
        // SAFETY: plain syscalls on this thread's credentials.
        unsafe {
            if user {
                libc::setfsuid(v)
            } else {
                libc::setfsgid(v)
            }
        }
    };
    call(id);
    if call(u32::MAX) as u32 == id {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "cannot set the fs{} to {id}",
                if user { "uid" } else { "gid" }
            ),
        ))
    }
}

/// Run `f` on this thread with `p`'s filesystem credentials, then return
/// to root's. A root principal runs `f` as is. If the credentials cannot be
/// put back, the process aborts: carrying on would act with the wrong ones.
pub fn as_principal<T>(p: &Principal, f: impl FnOnce() -> T) -> io::Result<T> {
    if p.is_root() {
        return Ok(f());
    }
    let saved = current_groups()?;
    set_groups(&p.groups)?;
    if let Err(e) = set_fs(p.fsgid, false) {
        restore(&saved);
        return Err(e);
    }
    if let Err(e) = set_fs(p.fsuid, true) {
        restore(&saved);
        return Err(e);
    }
    let out = f();
    restore(&saved);
    Ok(out)
}

fn restore(groups: &[u32]) {
    // fsuid back to 0 first: that gives the capabilities back
    if set_fs(0, true).is_err() || set_fs(0, false).is_err() || set_groups(groups).is_err() {
        log::error!("cannot return to root's credentials after acting for a process: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root() -> bool {
        // SAFETY: no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            assert!(
                std::env::var("EGHOSTBUSTER_REQUIRE_BPF").as_deref() != Ok("1"),
                "EGHOSTBUSTER_REQUIRE_BPF=1 but not root"
            );
        }
        root
    }

    #[test]
    fn a_principal_has_its_rights_only_and_only_on_this_thread() {
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("root-only");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let victim = dir.join("data.lock");
        std::fs::write(&victim, "x").unwrap();
        let nobody = Principal {
            fsuid: 65534,
            fsgid: 65534,
            groups: vec![],
        };
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                barrier.wait();
                // meanwhile, another thread keeps root's rights
                let r = std::fs::write(dir.join("other"), "y");
                barrier.wait();
                r
            });
            let r = as_principal(&nobody, || {
                barrier.wait();
                barrier.wait();
                std::fs::remove_file(&victim)
            })
            .unwrap();
            assert_eq!(
                r.unwrap_err().kind(),
                io::ErrorKind::PermissionDenied,
                "nobody removed a file from root's directory"
            );
            other.join().unwrap().unwrap();
        });
        assert!(victim.exists());
        // back to root: rights and capabilities restored
        std::fs::remove_file(&victim).unwrap();
        assert_eq!(current_groups().unwrap(), current_groups().unwrap());
        // a principal's own file in a directory it may write: allowed
        let own = t.path().join("own");
        std::fs::create_dir(&own).unwrap();
        std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
        std::fs::write(own.join("x.lock"), "").unwrap();
        as_principal(&nobody, || std::fs::remove_file(own.join("x.lock")))
            .unwrap()
            .unwrap();
    }
}
