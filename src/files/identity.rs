//! A file's generation, read from user space: what tells apart two files
//! that got the same inode number one after the other (ext4 and tmpfs
//! reuse a freed number at once). The kernel programs record
//! `inode->i_generation` at creation; here the same number is read back
//! from the file handle `name_to_handle_at(2)` gives, whose layout is the
//! filesystem's own (fs/exportfs, each filesystem's `encode_fh`). Only
//! layouts known here are read; on any other filesystem the generation is
//! unknown (`None`) and a file is identified by device and inode alone.

use std::ffi::{CString, OsStr};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;

const MAX_HANDLE: usize = 128;
const TMPFS_MAGIC: i64 = 0x0102_1994;
/// FILEID_INO32_GEN: ext4, xfs (32-bit inodes): {ino, gen}; tmpfs uses
/// the same type with three words: {gen, ino low, ino high}.
const FILEID_INO32_GEN: i32 = 1;
/// Btrfs: {objectid u64, root u64, gen u32, …}.
const FILEID_BTRFS: [i32; 3] = [0x4d, 0x4e, 0x4f];

#[repr(C)]
struct Handle {
    bytes: u32,
    kind: i32,
    f: [u8; MAX_HANDLE],
}

fn word(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at + 4)
        .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
}

/// The generation of `name` in directory `dir`, not following a final
/// symlink; `name` empty: of `dir` itself (any descriptor, O_PATH too).
pub fn generation(dir: RawFd, name: &OsStr) -> Option<u32> {
    let c = CString::new(name.as_bytes()).ok()?;
    let mut h = Handle {
        bytes: MAX_HANDLE as u32,
        kind: 0,
        f: [0; MAX_HANDLE],
    };
    let mut mnt: libc::c_int = 0;
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: h is a file_handle with room for MAX_HANDLE bytes; c is a
    // NUL-terminated name; mnt an int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            dir,
            c.as_ptr(),
            &mut h as *mut Handle,
            &mut mnt as *mut libc::c_int,
            flags,
        )
    };
    if r != 0 {
        return None;
    }
    let f = &h.f[..(h.bytes as usize).min(MAX_HANDLE)];
    match (h.kind, f.len()) {
        (FILEID_INO32_GEN, 8) => word(f, 4),
        (FILEID_INO32_GEN, 12) if fs_magic(dir) == Some(TMPFS_MAGIC) => word(f, 0),
        (k, n) if FILEID_BTRFS.contains(&k) && n >= 20 => word(f, 16),
        _ => None,
    }
}

fn fs_magic(fd: RawFd) -> Option<i64> {
    // SAFETY: a zeroed statfs is a valid out-buffer.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: fd is a descriptor, s a statfs.
    (unsafe { libc::fstatfs(fd, &mut s) } == 0).then_some(s.f_type as i64)
}

/// Does a generation read now match the one recorded? Unknown now (a
/// filesystem whose handles are not read here): device and inode decide.
pub fn same(recorded: Option<u32>, now: Option<u32>) -> bool {
    match (recorded, now) {
        (Some(r), Some(n)) => r == n,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A file made again under a reused inode number has another
    /// generation, on the filesystem the tests run on (ext4 here) and on
    /// tmpfs when there is one.
    #[test]
    fn a_reused_inode_number_has_another_generation() {
        let mut dirs = vec![std::env::temp_dir()];
        if std::path::Path::new("/dev/shm").is_dir() {
            dirs.push("/dev/shm".into());
        }
        for base in dirs {
            let d = tempfile::tempdir_in(&base).unwrap();
            let dir = std::fs::File::open(d.path()).unwrap();
            let name = OsStr::new("x.lock");
            let p = d.path().join(name);
            let mut seen = Vec::new();
            for _ in 0..3 {
                std::fs::write(&p, b"").unwrap();
                let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&p).unwrap());
                let g = generation(dir.as_raw_fd(), name);
                // the same file read twice: the same generation
                assert_eq!(g, generation(dir.as_raw_fd(), name));
                seen.push((ino, g));
                std::fs::remove_file(&p).unwrap();
            }
            let known = seen.iter().all(|(_, g)| g.is_some());
            assert!(known, "{base:?}: generation unknown: {seen:?}");
            for w in seen.windows(2) {
                if w[0].0 == w[1].0 {
                    assert_ne!(w[0].1, w[1].1, "{base:?}: {seen:?}");
                }
            }
            assert!(same(Some(1), None) && !same(Some(1), Some(2)));
        }
    }
}
