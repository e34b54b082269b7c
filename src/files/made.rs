//! What the kernel records when a tracked file is made (or rewritten), as
//! every file class reads it from its own table: the file's identity, who
//! made it (thread group, start time, credentials, command), where (its
//! mount and PID namespaces) and its path there.

use std::path::PathBuf;

use crate::files::creator::Creator;
use crate::files::owners::Proc;
use crate::host::procfs::{self, FileId};

/// A file's identity as the kernel keys a class's table: device, inode
/// and the inode's generation (two files on one inode number differ there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    /// Kernel dev_t of the superblock (MAJOR << 20 | MINOR).
    pub dev: u64,
    pub ino: u64,
    pub gen: u32,
}

impl FileKey {
    pub fn file(&self) -> FileId {
        FileId::from_kernel(self.dev, self.ino)
    }
}

/// Who made a file, where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub tgid: u32,
    /// Its group leader's start, boot-clock ns.
    pub start_boottime: u64,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub creator: Creator,
    /// Its command name: bytes, as the kernel has them.
    pub comm: Vec<u8>,
    /// Absolute, from the root of its mount namespace.
    pub path: PathBuf,
    /// The kernel could not walk the path whole (too deep, or not
    /// reachable from its mount's root): nothing to act on.
    pub path_unusable: bool,
}

impl Made {
    /// The maker as a process.
    pub fn proc(&self) -> Proc {
        Proc {
            pid: self.tgid,
            start_ticks: procfs::boottime_ns_to_ticks(self.start_boottime),
        }
    }
}

/// A kernel `char[]` (up to its NUL) as bytes.
pub fn c_bytes(raw: &[i8]) -> Vec<u8> {
    raw.iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect()
}

/// A kernel record's path: `len` bytes of `raw`.
pub fn path_of(raw: &[i8], len: u32) -> PathBuf {
    let len = (len as usize).min(raw.len());
    let bytes: Vec<u8> = raw[..len].iter().map(|&c| c as u8).collect();
    crate::files::names::path_from_bytes(&bytes)
}

/// Decode a plain record (ring-buffer sample or map value).
pub fn read<T: plain::Plain + Default>(data: &[u8]) -> Result<T, String> {
    let mut v = T::default();
    plain::copy_from_bytes(&mut v, data)
        .map_err(|_| format!("short record: {} bytes", data.len()))?;
    Ok(v)
}

/// The same, on the heap (the 4 KiB records).
pub fn read_boxed<T: plain::Plain + Default>(data: &[u8]) -> Result<Box<T>, String> {
    let mut v: Box<T> = Box::default();
    plain::copy_from_bytes(&mut *v, data)
        .map_err(|_| format!("short record: {} bytes", data.len()))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_strings() {
        let raw: Vec<i8> = b"sh\0junk".iter().map(|&b| b as i8).collect();
        assert_eq!(c_bytes(&raw), b"sh");
        let p: Vec<i8> = b"/run/a.sock\0\0".iter().map(|&b| b as i8).collect();
        assert_eq!(path_of(&p, 11), PathBuf::from("/run/a.sock"));
        assert_eq!(path_of(&p, 999), PathBuf::from("/run/a.sock\0\0"));
        let k = FileKey {
            dev: (8 << 20) | 3,
            ino: 9,
            gen: 1,
        };
        assert_eq!((k.file().major, k.file().minor, k.file().ino), (8, 3, 9));
    }
}
