//! Ring-buffer samples decoded into plain Rust values. Pure: bytes in,
//! events out, so the decoding is unit-tested without BPF.

use std::path::PathBuf;

use crate::host::procfs::FileId;
use crate::locks::bpf::types::{
    lock_created, lock_event_kind, lock_exit, lock_key, lock_name_gone, lock_record,
};
use crate::locks::patterns::path_from_bytes;

/// Flags in `lock_created.flags` (bpf/locks.h LOCK_F_*).
pub const LOCK_F_PATH_TRUNCATED: u32 = 0x1;
pub const LOCK_F_OWNER_UNTRACKED: u32 = 0x2;
pub const LOCK_F_UNREACHABLE: u32 = 0x4;
pub const LOCK_F_TABLE_FULL: u32 = 0x8;
/// Set by user space in `lock_record.flags`.
pub const LOCK_R_STALE: u32 = 0x100;

/// How a lock was taken (bpf/locks.h `enum lock_kind`): what the name is,
/// and so how it is judged and removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// open*(O_CREAT|O_EXCL) created a regular file.
    Open,
    /// link/linkat onto the name (NFS-safe dotlock).
    Link,
    /// mkdir of a lock directory.
    Mkdir,
    /// symlink whose target names the owner (Emacs `.#name`).
    Symlink,
    /// renameat2(RENAME_NOREPLACE) onto the name.
    Rename,
    /// A plain rename onto a matching name: follows a tracked lock only.
    Moved,
}

impl LockKind {
    pub fn from_raw(v: u32) -> Self {
        match v {
            1 => LockKind::Link,
            2 => LockKind::Mkdir,
            3 => LockKind::Symlink,
            4 => LockKind::Rename,
            5 => LockKind::Moved,
            _ => LockKind::Open,
        }
    }

    pub fn raw(self) -> u32 {
        match self {
            LockKind::Open => 0,
            LockKind::Link => 1,
            LockKind::Mkdir => 2,
            LockKind::Symlink => 3,
            LockKind::Rename => 4,
            LockKind::Moved => 5,
        }
    }

    /// What the name must be for the lock to still be this lock.
    pub fn what(self) -> &'static str {
        match self {
            LockKind::Mkdir => "directory",
            LockKind::Symlink => "symlink",
            _ => "regular file",
        }
    }
}

/// Pending keys (bpf/locks.h LOCK_KEY_PENDING): a record made from a
/// name, not yet resolved to its device and inode.
pub const LOCK_KEY_PENDING: u64 = 0xffff_ffff_0000_0000;

/// A file's identity as the kernel keys the "locks" table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LockKey {
    pub dev: u64,
    pub ino: u64,
    /// The inode's generation: two files with one inode number differ here.
    pub gen: u32,
}

impl LockKey {
    pub fn is_pending(&self) -> bool {
        self.dev & LOCK_KEY_PENDING == LOCK_KEY_PENDING
    }

    /// The key user space gives a file it has stat'ed (a lock taken by
    /// name, resolved). stat does not tell the inode's generation: 0 here,
    /// and the newest record on an inode number wins (lock_worker.rs).
    pub fn of(id: FileId) -> Self {
        LockKey {
            dev: ((id.major as u64) << 20) | id.minor as u64,
            ino: id.ino,
            gen: 0,
        }
    }

    pub fn file(&self) -> FileId {
        FileId::from_kernel(self.dev, self.ino)
    }

    pub fn to_bytes(self) -> Vec<u8> {
        let k = lock_key {
            dev: self.dev,
            ino: self.ino,
            gen: self.gen,
            _pad: 0,
        };
        // SAFETY: lock_key is plain integers.
        unsafe { plain::as_bytes(&k) }.to_vec()
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, String> {
        let k: lock_key = read(b)?;
        Ok(LockKey {
            dev: k.dev,
            ino: k.ino,
            gen: k.gen,
        })
    }
}

/// A creation; its record is in the "locks" table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub tgid: u32,
    pub flags: u32,
    pub key: LockKey,
}

/// The kernel's record of one tracked lock (the "locks" table's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub tgid: u32,
    pub flags: u32,
    /// Owner's group leader start time, boot-clock ns.
    pub owner_start: u64,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub open_flags: u64,
    pub kind: LockKind,
    pub comm: String,
    /// With LOCK_R_STALE: the owner whose end made it stale, its wait
    /// status and command.
    pub stale: Option<(u32, u32, String)>,
    pub path: PathBuf,
}

fn comm_bytes(s: &str) -> [i8; 16] {
    let mut c = [0i8; 16];
    for (d, b) in c.iter_mut().zip(s.bytes().take(15)) {
        *d = b as i8;
    }
    c
}

impl Record {
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let r: Box<lock_record> = read_boxed(data)?;
        let len = (r.path_len as usize).min(r.path.len());
        let path: Vec<u8> = r.path[..len].iter().map(|&c| c as u8).collect();
        Ok(Record {
            tgid: r.tgid,
            flags: r.flags & !LOCK_R_STALE,
            owner_start: r.owner_start,
            mnt_ns: r.mnt_ns,
            pid_ns: r.pid_ns,
            open_flags: r.open_flags,
            kind: LockKind::from_raw(r.kind),
            comm: comm_str(&r.comm),
            stale: (r.flags & LOCK_R_STALE != 0)
                .then(|| (r.stale_pid, r.stale_status, comm_str(&r.stale_comm))),
            path: path_from_bytes(&path),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut r: Box<lock_record> = Box::default();
        r.tgid = self.tgid;
        r.flags = (self.flags & !LOCK_R_STALE)
            | if self.stale.is_some() {
                LOCK_R_STALE
            } else {
                0
            };
        r.owner_start = self.owner_start;
        r.mnt_ns = self.mnt_ns;
        r.pid_ns = self.pid_ns;
        r.open_flags = self.open_flags;
        r.kind = self.kind.raw();
        r.comm = comm_bytes(&self.comm);
        if let Some((pid, status, comm)) = &self.stale {
            r.stale_pid = *pid;
            r.stale_status = *status;
            r.stale_comm = comm_bytes(comm);
        }
        let path = self.path.as_os_str().as_encoded_bytes();
        let len = path.len().min(r.path.len() - 1);
        for (d, &b) in r.path.iter_mut().zip(&path[..len]) {
            *d = b as i8;
        }
        r.path_len = len as u32;
        // SAFETY: lock_record is plain integers and byte arrays.
        unsafe { plain::as_bytes(&*r) }.to_vec()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub tgid: u32,
    pub ppid: u32,
    pub status: u32,
    pub start_boottime: u64,
    pub parent_start_boottime: u64,
    pub parent_subreaper: bool,
    pub comm: String,
    /// Its tgid in its own PID namespace, and that namespace's inode.
    pub ns_tgid: u32,
    pub pid_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEvent {
    Created(Created),
    Exit(Exit),
    NameGone { tgid: u32 },
}

impl Exit {
    /// From a ring-buffer sample or an "exited" table value.
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let e: lock_exit = read(data)?;
        Ok(Exit {
            tgid: e.tgid,
            ppid: e.ppid,
            status: e.status,
            start_boottime: e.start_boottime,
            parent_start_boottime: e.parent_start_boottime,
            parent_subreaper: e.parent_subreaper != 0,
            comm: comm_str(&e.comm),
            ns_tgid: e.ns_tgid,
            pid_ns: e.pid_ns,
        })
    }
}

pub fn comm_str(raw: &[i8]) -> String {
    let bytes: Vec<u8> = raw
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn read<T: plain::Plain + Default>(data: &[u8]) -> Result<T, String> {
    let mut v = T::default();
    plain::copy_from_bytes(&mut v, data)
        .map_err(|_| format!("short sample: {} bytes", data.len()))?;
    Ok(v)
}

/// For the 4 KiB record: on the heap.
fn read_boxed<T: plain::Plain + Default>(data: &[u8]) -> Result<Box<T>, String> {
    let mut v: Box<T> = Box::default();
    plain::copy_from_bytes(&mut *v, data)
        .map_err(|_| format!("short record: {} bytes", data.len()))?;
    Ok(v)
}

pub fn decode(data: &[u8]) -> Result<LockEvent, String> {
    let kind: u32 = read(data)?;
    match lock_event_kind(kind) {
        lock_event_kind::LOCK_EV_CREATED => {
            let c: lock_created = read(data)?;
            Ok(LockEvent::Created(Created {
                tgid: c.tgid,
                flags: c.flags,
                key: LockKey {
                    dev: c.key.dev,
                    ino: c.key.ino,
                    gen: c.key.gen,
                },
            }))
        }
        lock_event_kind::LOCK_EV_EXIT => Ok(LockEvent::Exit(Exit::decode(data)?)),
        lock_event_kind::LOCK_EV_NAME_GONE => {
            let g: lock_name_gone = read(data)?;
            Ok(LockEvent::NameGone { tgid: g.tgid })
        }
        other => Err(format!("unknown lock event kind {}", other.0)),
    }
}

/// The kernel side's tables as the lock duty uses them: implemented over
/// the pinned maps by the loader (monitor.rs), and in memory by the
/// worker's unit tests.
pub trait LockKernel {
    fn record(&self, key: LockKey) -> Option<Record>;
    fn store(&self, key: LockKey, rec: &Record) -> bool;
    fn forget(&self, key: LockKey);
    /// Every record, for adoption at start.
    fn records(&self) -> Vec<(LockKey, Record)>;
    /// Exits not dealt with yet.
    fn pending_exits(&self) -> Vec<Exit>;
    fn exit_done(&self, tgid: u32);
    /// Have the kernel report this process's exit.
    fn watch(&self, pid: u32) -> bool;
    /// (ring buffer drops, owners map full, locks/exited table full)
    fn counters(&self) -> Option<(u64, u64, u64)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_and_record_round_trip() {
        let rec = lock_created {
            kind: lock_event_kind::LOCK_EV_CREATED.0,
            tgid: 10,
            flags: LOCK_F_OWNER_UNTRACKED,
            _pad: 0,
            key: lock_key {
                dev: (8 << 20) | 1,
                ino: 77,
                gen: 5,
                _pad: 0,
            },
        };
        let LockEvent::Created(c) = decode(unsafe { plain::as_bytes(&rec) }).unwrap() else {
            panic!("not a creation")
        };
        assert_eq!(c.tgid, 10);
        assert_eq!(
            c.key.file(),
            FileId {
                major: 8,
                minor: 1,
                ino: 77
            }
        );
        assert_eq!(LockKey::from_bytes(&c.key.to_bytes()), Ok(c.key));

        let r = Record {
            tgid: 5,
            flags: LOCK_F_OWNER_UNTRACKED,
            owner_start: 123,
            mnt_ns: 4,
            pid_ns: 5,
            open_flags: 0o300,
            kind: LockKind::Mkdir,
            comm: "git".into(),
            stale: Some((9, 9, "make".into())),
            path: PathBuf::from("/tmp/x/index.lock"),
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), std::mem::size_of::<lock_record>());
        assert_eq!(Record::decode(&bytes), Ok(r.clone()));
        let fresh = Record { stale: None, ..r };
        assert_eq!(Record::decode(&fresh.encode()), Ok(fresh));
        assert!(Record::decode(&bytes[..100]).is_err());
    }

    #[test]
    fn kinds_match_the_header() {
        use crate::locks::bpf::types::lock_kind;
        for (k, c) in [
            (LockKind::Open, lock_kind::LOCK_K_OPEN),
            (LockKind::Link, lock_kind::LOCK_K_LINK),
            (LockKind::Mkdir, lock_kind::LOCK_K_MKDIR),
            (LockKind::Symlink, lock_kind::LOCK_K_SYMLINK),
            (LockKind::Rename, lock_kind::LOCK_K_RENAME),
            (LockKind::Moved, lock_kind::LOCK_K_MOVED),
        ] {
            assert_eq!(k.raw(), c.0);
            assert_eq!(LockKind::from_raw(c.0), k);
        }
        let k = LockKey::of(FileId {
            major: 259,
            minor: 3,
            ino: 9,
        });
        assert_eq!(k.file().ino, 9);
        assert_eq!(k.file().major, 259);
        assert!(!k.is_pending());
        assert!(LockKey {
            dev: LOCK_KEY_PENDING | 3,
            ino: 1,
            gen: 0
        }
        .is_pending());
    }

    #[test]
    fn exit_and_gone() {
        let rec = lock_exit {
            kind: lock_event_kind::LOCK_EV_EXIT.0,
            tgid: 5,
            ppid: 4,
            status: 9,
            parent_subreaper: 1,
            comm: comm_bytes("sleep"),
            ns_tgid: 2,
            pid_ns: 7,
            ..Default::default()
        };
        let e = decode(unsafe { plain::as_bytes(&rec) }).unwrap();
        assert_eq!(
            e,
            LockEvent::Exit(Exit {
                tgid: 5,
                ppid: 4,
                status: 9,
                start_boottime: 0,
                parent_start_boottime: 0,
                parent_subreaper: true,
                comm: "sleep".into(),
                ns_tgid: 2,
                pid_ns: 7,
            })
        );
        let g = lock_name_gone {
            kind: lock_event_kind::LOCK_EV_NAME_GONE.0,
            tgid: 3,
        };
        assert_eq!(
            decode(unsafe { plain::as_bytes(&g) }).unwrap(),
            LockEvent::NameGone { tgid: 3 }
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[99, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode(&[1, 0, 0, 0]).is_err());
    }
}
