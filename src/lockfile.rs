//! File operations on a lock, all relative to a directory descriptor opened
//! without following symlinks (check 5), so the name checked is the name
//! removed; and the removal itself, made atomic against a new lock taking
//! the same name by renaming the file aside first (check 6).

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, renameat2, OFlag, OpenHow, RenameFlags, ResolveFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::procfs::FileId;

/// What stat says of a name, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameStat {
    pub id: FileId,
    pub regular: bool,
    /// Last modification, ns since the epoch.
    pub mtime_ns: i128,
}

/// The directory holding a lock, pinned by a descriptor.
#[derive(Debug)]
pub struct LockDir {
    dir: OwnedFd,
    name: OsString,
}

/// Open the parent of `path` refusing symlinks (and magic links) in every
/// component: a path that escapes through a link is never acted on.
pub fn open_parent(path: &Path) -> io::Result<LockDir> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(libc::AT_FDCWD, parent, how)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(LockDir {
        dir,
        name: name.to_os_string(),
    })
}

static HIDE_SEQ: AtomicU64 = AtomicU64::new(0);

impl LockDir {
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    pub fn stat(&self, name: &OsStr) -> io::Result<NameStat> {
        let st = fstatat(
            Some(self.dir.as_raw_fd()),
            name,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        Ok(NameStat {
            id: FileId::from_stat(st.st_dev, st.st_ino),
            regular: SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) == SFlag::S_IFREG,
            mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
        })
    }

    /// The first bytes of the file (enough for a PID line). Opened without
    /// following a symlink and without blocking on a FIFO; closed at once.
    pub fn read_head(&self, name: &OsStr) -> io::Result<Vec<u8>> {
        let fd = openat(
            Some(self.dir.as_raw_fd()),
            name,
            OFlag::O_RDONLY
                | OFlag::O_NOFOLLOW
                | OFlag::O_NONBLOCK
                | OFlag::O_NOCTTY
                | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: a fresh descriptor from openat.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let mut buf = Vec::with_capacity(64);
        file.take(64).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// Rename the lock to a unique hidden name in the same directory. From
    /// here a new lock can take the original name; ours is out of its way.
    pub fn hide(&self) -> io::Result<OsString> {
        let seq = HIDE_SEQ.fetch_add(1, Ordering::Relaxed);
        let suffix = format!(".eghostbuster-{}-{seq}", std::process::id());
        let base = self.name.as_bytes();
        let keep = base.len().min(255 - 1 - suffix.len());
        let mut hidden = Vec::with_capacity(255);
        hidden.push(b'.');
        hidden.extend_from_slice(&base[..keep]);
        hidden.extend_from_slice(suffix.as_bytes());
        let hidden = OsString::from(OsStr::from_bytes(&hidden));
        self.rename(&self.name, &hidden)?;
        Ok(hidden)
    }

    /// Put a hidden file back under its name, unless a new lock took it.
    pub fn restore(&self, hidden: &OsStr) -> io::Result<()> {
        self.rename(hidden, &self.name)
    }

    pub fn unlink(&self, name: &OsStr) -> io::Result<()> {
        unlinkat(Some(self.dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)?;
        Ok(())
    }

    fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let d = Some(self.dir.as_raw_fd());
        renameat2(d, from, d, to, RenameFlags::RENAME_NOREPLACE)?;
        Ok(())
    }
}

/// ENOENT, in any of its io::Error forms.
pub fn is_gone(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::ENOENT as i32) || e.kind() == io::ErrorKind::NotFound
}

/// A path with a symlink in it (openat2 RESOLVE_NO_SYMLINKS says ELOOP).
pub fn is_symlink_refusal(e: &io::Error) -> bool {
    e.raw_os_error() == Some(Errno::ELOOP as i32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn parent_with_symlink_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, t.path().join("link")).unwrap();
        let e = open_parent(&t.path().join("link/x.lock")).unwrap_err();
        assert!(is_symlink_refusal(&e), "{e}");
        assert!(open_parent(&real.join("x.lock")).is_ok());
    }

    #[test]
    fn hide_restore_unlink() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("a.lock");
        std::fs::write(&p, "123\n").unwrap();
        let ino = std::fs::metadata(&p).unwrap().ino();
        let d = open_parent(&p).unwrap();
        let st = d.stat(d.name()).unwrap();
        assert!(st.regular);
        assert_eq!(st.id.ino, ino);
        assert_eq!(d.read_head(d.name()).unwrap(), b"123\n");
        let hidden = d.hide().unwrap();
        assert!(!p.exists());
        assert_eq!(d.stat(&hidden).unwrap().id.ino, ino);
        // a new lock took the name: restoring must not clobber it
        std::fs::write(&p, "new").unwrap();
        assert!(d.restore(&hidden).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        d.unlink(&hidden).unwrap();
        assert!(is_gone(&d.stat(&hidden).unwrap_err()));
    }

    #[test]
    fn hidden_name_fits_for_long_names() {
        let t = tempfile::tempdir().unwrap();
        let name = "x".repeat(250) + ".lock";
        let p = t.path().join(&name);
        std::fs::write(&p, "").unwrap();
        let d = open_parent(&p).unwrap();
        let hidden = d.hide().unwrap();
        assert!(hidden.len() <= 255);
        d.restore(&hidden).unwrap();
        assert!(p.exists());
    }

    #[test]
    fn read_head_does_not_follow_symlinks() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("target"), "1\n").unwrap();
        std::os::unix::fs::symlink("target", t.path().join("l.lock")).unwrap();
        let d = open_parent(&t.path().join("l.lock")).unwrap();
        assert!(d.read_head(d.name()).is_err());
        assert!(!d.stat(d.name()).unwrap().regular);
    }
}
