//! File operations on a lock, all relative to a directory descriptor opened
//! without following symlinks (check 5), so the name checked is the name
//! removed; and the removal itself, made atomic against a new lock taking
//! the same name by renaming the file aside first (check 6).

use std::ffi::{OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, renameat2, OFlag, OpenHow, RenameFlags, ResolveFlag};
use nix::sys::stat::{fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::host::procfs::FileId;

/// What stat says of a name, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameStat {
    pub id: FileId,
    pub regular: bool,
    pub dir: bool,
    pub symlink: bool,
    /// A socket file (what bind(2) of an AF_UNIX socket makes).
    pub socket: bool,
    pub size: u64,
    /// Last modification, ns since the epoch.
    pub mtime_ns: i128,
    /// Last status change (creation, for a socket file), ns since the epoch.
    pub ctime_ns: i128,
    /// Owner (kernel uid and gid).
    pub uid: u32,
    pub gid: u32,
    /// The inode's generation, where the filesystem's handles tell it
    /// (files/identity.rs).
    pub gen: Option<u32>,
}

impl NameStat {
    /// Its owner, as the principal of a removal that has no creator's
    /// record (sweep): the owner's uid and gid, no supplementary groups.
    pub fn owner(&self) -> crate::host::creds::Principal {
        crate::host::creds::Principal {
            fsuid: self.uid,
            fsgid: self.gid,
            groups: Vec::new(),
        }
    }

    /// Is this the file recorded as `id` with generation `gen`?
    pub fn is(&self, id: FileId, gen: Option<u32>) -> bool {
        self.id == id && crate::files::identity::same(gen, self.gen)
    }
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
    open_parent_in(None, path)
}

/// The same, inside another mount namespace: `root` is a descriptor on
/// `/proc/PID/root` of a process in it, and `path` is resolved as if that
/// were `/` (RESOLVE_IN_ROOT: `..` and absolute names stay inside).
pub fn open_parent_in(root: Option<BorrowedFd<'_>>, path: &Path) -> io::Result<LockDir> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let mut resolve = ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS;
    let at = match root {
        Some(r) => {
            resolve |= ResolveFlag::RESOLVE_IN_ROOT;
            r.as_raw_fd()
        }
        None => libc::AT_FDCWD,
    };
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(resolve);
    let fd = openat2(at, parent, how)?;
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    let dir = unsafe { OwnedFd::from_raw_fd(fd) };
    Ok(LockDir {
        dir,
        name: name.to_os_string(),
    })
}

static HIDE_SEQ: AtomicU64 = AtomicU64::new(0);

/// What a hidden name holds between the lock's name and the agent's PID.
pub const HIDDEN_MARK: &str = ".eghostbuster-";

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
        let fmt = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
        Ok(NameStat {
            id: FileId::from_stat(st.st_dev, st.st_ino),
            regular: fmt == SFlag::S_IFREG,
            dir: fmt == SFlag::S_IFDIR,
            symlink: fmt == SFlag::S_IFLNK,
            socket: fmt == SFlag::S_IFSOCK,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime as i128 * 1_000_000_000 + st.st_mtime_nsec as i128,
            ctime_ns: st.st_ctime as i128 * 1_000_000_000 + st.st_ctime_nsec as i128,
            uid: st.st_uid,
            gid: st.st_gid,
            gen: crate::files::identity::generation(self.dir.as_raw_fd(), name),
        })
    }

    /// The first bytes of the file: a small owner file whole, and one byte
    /// more (so a caller can tell it was whole). Opened without following
    /// a symlink and without blocking on a FIFO; closed at once.
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
        file.take(SMALL_OWNER_FILE + 1).read_to_end(&mut buf)?;
        Ok(buf)
    }

    /// An O_PATH descriptor on `rel` (a name in this directory, or
    /// `name/inner` one level down), resolved without following any
    /// symlink, the last component included: the holder checks' probe
    /// (files/holders/), which pins the inode while they run.
    pub fn probe(&self, rel: &Path) -> io::Result<OwnedFd> {
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS
                    | ResolveFlag::RESOLVE_BENEATH,
            );
        let fd = openat2(self.dir.as_raw_fd(), rel, how)?;
        // SAFETY: openat2 returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A symlink's target, never followed.
    pub fn read_link(&self, name: &OsStr) -> io::Result<Vec<u8>> {
        let t = nix::fcntl::readlinkat(Some(self.dir.as_raw_fd()), name)?;
        Ok(t.into_vec())
    }

    /// What a lock directory holds, opened without following a symlink.
    /// Only an empty directory, or one holding a single small regular file
    /// (a PID or owner note), is a lock that may be removed.
    pub fn dir_content(&self, name: &OsStr) -> io::Result<DirContent> {
        let fd = openat(
            Some(self.dir.as_raw_fd()),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: a fresh descriptor from openat.
        let sub = LockDir {
            dir: unsafe { OwnedFd::from_raw_fd(fd) },
            name: OsString::new(),
        };
        let mut d = nix::dir::Dir::from_fd(nix::unistd::dup(sub.dir.as_raw_fd())?)?;
        let mut names = Vec::new();
        for e in d.iter() {
            let e = e?;
            let n = OsStr::from_bytes(e.file_name().to_bytes());
            if n != "." && n != ".." {
                names.push(n.to_os_string());
                if names.len() > 1 {
                    return Ok(DirContent::Other(format!(
                        "{} or more entries",
                        names.len()
                    )));
                }
            }
        }
        let Some(n) = names.pop() else {
            return Ok(DirContent::Empty);
        };
        let st = sub.stat(&n)?;
        if !st.regular {
            return Ok(DirContent::Other(format!("{n:?} is not a regular file")));
        }
        if st.size > SMALL_OWNER_FILE {
            return Ok(DirContent::Other(format!(
                "{n:?} holds {} bytes (more than a PID or owner note)",
                st.size
            )));
        }
        let head = sub.read_head(&n)?;
        Ok(DirContent::One {
            name: n,
            id: st.id,
            head,
        })
    }

    /// Remove a lock directory staged under `hidden`, reversibly until
    /// the last step: its one small file (if any, and only if it is still
    /// `inner`) is moved out next to it, the emptied directory removed
    /// (rmdir fails if anything appeared meanwhile: then the file goes
    /// back in), and only then the file unlinked. Never recursive.
    pub fn remove_dir(&self, hidden: &OsStr, inner: Option<&(OsString, FileId)>) -> io::Result<()> {
        let Some((n, id)) = inner else {
            unlinkat(Some(self.dir.as_raw_fd()), hidden, UnlinkatFlags::RemoveDir)?;
            return Ok(());
        };
        let fd = openat(
            Some(self.dir.as_raw_fd()),
            hidden,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // SAFETY: a fresh descriptor from openat.
        let sub = unsafe { OwnedFd::from_raw_fd(fd) };
        let (d, s) = (Some(self.dir.as_raw_fd()), Some(sub.as_raw_fd()));
        let seq = HIDE_SEQ.fetch_add(1, Ordering::Relaxed);
        let out = OsString::from(format!(".eghostbuster-{}-{seq}.f", std::process::id()));
        renameat2(
            s,
            n.as_os_str(),
            d,
            out.as_os_str(),
            RenameFlags::RENAME_NOREPLACE,
        )?;
        let put_back = |e: io::Error| {
            let _ = renameat2(
                d,
                out.as_os_str(),
                s,
                n.as_os_str(),
                RenameFlags::RENAME_NOREPLACE,
            );
            e
        };
        match self.stat(&out) {
            Ok(st) if st.id == *id && st.regular => {}
            Ok(_) => {
                return Err(put_back(io::Error::other(format!(
                    "{n:?} changed inside the lock directory"
                ))))
            }
            Err(e) => return Err(put_back(e)),
        }
        if let Err(e) = unlinkat(d, hidden, UnlinkatFlags::RemoveDir) {
            return Err(put_back(e.into()));
        }
        self.unlink(&out)
    }

    /// Rename the lock to a unique hidden name in the same directory. From
    /// here a new lock can take the original name; ours is out of its way.
    #[cfg(test)]
    pub fn hide(&self) -> io::Result<OsString> {
        let hidden = self.hidden_name();
        self.hide_as(&hidden)?;
        Ok(hidden)
    }

    /// The unique hidden name `hide` would use: `.NAME.eghostbuster-PID-N`
    /// (NAME cut to fit 255 bytes).
    pub fn hidden_name(&self) -> OsString {
        let seq = HIDE_SEQ.fetch_add(1, Ordering::Relaxed);
        let suffix = format!("{HIDDEN_MARK}{}-{seq}", std::process::id());
        let base = self.name.as_bytes();
        let keep = base.len().min(255 - 1 - suffix.len());
        let mut hidden = Vec::with_capacity(255);
        hidden.push(b'.');
        hidden.extend_from_slice(&base[..keep]);
        hidden.extend_from_slice(suffix.as_bytes());
        OsString::from(OsStr::from_bytes(&hidden))
    }

    /// Rename the lock to `hidden` (from `hidden_name`).
    pub fn hide_as(&self, hidden: &OsStr) -> io::Result<()> {
        self.rename(&self.name, hidden)
    }

    /// This directory's path in our mount namespace, when it has one there
    /// that opens (without symlinks) to this very directory.
    pub fn path_here(&self) -> Option<PathBuf> {
        let fd = self.dir.as_raw_fd();
        let p = std::fs::read_link(format!("/proc/self/fd/{fd}")).ok()?;
        if !p.is_absolute() {
            return None;
        }
        let mine = nix::sys::stat::fstat(fd).ok()?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let there = openat2(libc::AT_FDCWD, &p, how).ok()?;
        // SAFETY: a fresh descriptor from openat2.
        let there = unsafe { OwnedFd::from_raw_fd(there) };
        let st = nix::sys::stat::fstat(there.as_raw_fd()).ok()?;
        (st.st_dev == mine.st_dev && st.st_ino == mine.st_ino).then_some(p)
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

/// Largest file a lock directory may hold and still be removed.
pub const SMALL_OWNER_FILE: u64 = 256;

/// What a lock directory holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirContent {
    Empty,
    /// One small regular file: its name, identity and first bytes.
    One {
        name: OsString,
        id: FileId,
        head: Vec<u8>,
    },
    /// Anything else: kept, with why.
    Other(String),
}

/// `path` without `.`, `..` and repeated slashes, as the kernel resolves it
/// when no component is a symlink (callers resolve the raw path with
/// RESOLVE_NO_SYMLINKS first). `..` at the root stays at the root. None
/// for a relative path.
pub fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::from("/");
    let mut comps = path.components();
    if comps.next() != Some(Component::RootDir) {
        return None;
    }
    for c in comps {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
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
    fn normalize_paths() {
        let n = |p: &str| normalize(Path::new(p)).map(|p| p.display().to_string());
        assert_eq!(n("/tmp/x/../y.lock").as_deref(), Some("/tmp/y.lock"));
        assert_eq!(n("//tmp/./a//b.lock").as_deref(), Some("/tmp/a/b.lock"));
        assert_eq!(n("/../../x.lock").as_deref(), Some("/x.lock"));
        assert_eq!(n("rel/x.lock"), None);
    }

    #[test]
    fn lock_directories() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("d.lock");
        std::fs::create_dir(&p).unwrap();
        let d = open_parent(&p).unwrap();
        assert!(d.stat(d.name()).unwrap().dir);
        assert_eq!(d.dir_content(d.name()).unwrap(), DirContent::Empty);
        std::fs::write(p.join("pid"), "42\n").unwrap();
        let DirContent::One { name, id, head } = d.dir_content(d.name()).unwrap() else {
            panic!("one file")
        };
        assert_eq!(
            (name.to_str().unwrap(), head.as_slice()),
            ("pid", &b"42\n"[..])
        );
        std::fs::write(p.join("data"), "x").unwrap();
        assert!(matches!(
            d.dir_content(d.name()).unwrap(),
            DirContent::Other(_)
        ));
        std::fs::remove_file(p.join("data")).unwrap();
        let hidden = d.hide().unwrap();
        d.remove_dir(&hidden, Some(&(name, id))).unwrap();
        assert!(!p.exists() && !t.path().join(&hidden).exists());
        // a big file: kept
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("blob"), vec![b'x'; 1000]).unwrap();
        assert!(matches!(
            d.dir_content(d.name()).unwrap(),
            DirContent::Other(_)
        ));
        // a directory that gained a file is not removed
        let hidden = d.hide().unwrap();
        assert!(d.remove_dir(&hidden, None).is_err());
        d.restore(&hidden).unwrap();
        assert!(p.join("blob").exists());
        // nor one that gained a file next to its PID file: both stay
        std::fs::remove_file(p.join("blob")).unwrap();
        std::fs::write(p.join("pid"), "7\n").unwrap();
        let DirContent::One { name, id, .. } = d.dir_content(d.name()).unwrap() else {
            panic!("one file")
        };
        std::fs::write(p.join("late"), "x").unwrap();
        let hidden = d.hide().unwrap();
        assert!(d.remove_dir(&hidden, Some(&(name, id))).is_err());
        d.restore(&hidden).unwrap();
        assert_eq!(std::fs::read(p.join("pid")).unwrap(), b"7\n");
        assert!(p.join("late").exists());
    }

    #[test]
    fn symlink_targets_are_read_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join(".#notes.txt");
        std::os::unix::fs::symlink("me@host.4242:1700000000", &p).unwrap();
        let d = open_parent(&p).unwrap();
        assert!(d.stat(d.name()).unwrap().symlink);
        assert_eq!(d.read_link(d.name()).unwrap(), b"me@host.4242:1700000000");
    }

    #[test]
    fn open_in_another_root() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("tmp")).unwrap();
        std::fs::write(t.path().join("tmp/x.lock"), "").unwrap();
        let root = std::fs::File::open(t.path()).unwrap();
        use std::os::fd::AsFd;
        let d = open_parent_in(Some(root.as_fd()), Path::new("/tmp/x.lock")).unwrap();
        assert!(d.stat(d.name()).unwrap().regular);
        // ".." cannot climb out of the root
        let d = open_parent_in(Some(root.as_fd()), Path::new("/../../tmp/x.lock")).unwrap();
        assert!(d.stat(d.name()).is_ok());
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
