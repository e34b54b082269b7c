//! The lock programs' kernel contract on the Rust side: ring-buffer
//! samples and table records decoded into plain Rust values. Every
//! constant comes from bpf/locks.h through the generated types; nothing is
//! copied by hand. Pure: bytes in, values out, unit-tested without BPF.

use std::path::PathBuf;

use crate::files::creator::Creator;
use crate::host::procfs::FileId;
use crate::locks::bpf::types::{
    lock_created, lock_event_kind, lock_exit, lock_flags, lock_key, lock_key_bits, lock_kind,
    lock_limits, lock_name_gone, lock_record, lock_record_head, lock_record_long,
};
use crate::locks::patterns::path_from_bytes;

/// Flags in `lock_created.flags` and `lock_record.flags` (enum lock_flags).
pub const LOCK_F_PATH_TRUNCATED: u32 = lock_flags::LOCK_F_PATH_TRUNCATED.0;
pub const LOCK_F_OWNER_UNTRACKED: u32 = lock_flags::LOCK_F_OWNER_UNTRACKED.0;
pub const LOCK_F_UNREACHABLE: u32 = lock_flags::LOCK_F_UNREACHABLE.0;
pub const LOCK_F_TABLE_FULL: u32 = lock_flags::LOCK_F_TABLE_FULL.0;
pub const LOCK_F_UID_SHARE: u32 = lock_flags::LOCK_F_UID_SHARE.0;
/// Set by user space in `lock_record.flags`.
pub const LOCK_R_STALE: u32 = lock_flags::LOCK_R_STALE.0;
/// Longest path the "locks" table holds; longer ones are in "locks_long".
pub const LOCK_PATH_SHORT: usize = lock_limits::LOCK_PATH_SHORT.0 as usize;

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

/// A kind the kernel side does not define: an error, never a guess.
impl TryFrom<u32> for LockKind {
    type Error = String;

    fn try_from(v: u32) -> Result<Self, String> {
        Ok(match lock_kind(v) {
            lock_kind::LOCK_K_OPEN => LockKind::Open,
            lock_kind::LOCK_K_LINK => LockKind::Link,
            lock_kind::LOCK_K_MKDIR => LockKind::Mkdir,
            lock_kind::LOCK_K_SYMLINK => LockKind::Symlink,
            lock_kind::LOCK_K_RENAME => LockKind::Rename,
            lock_kind::LOCK_K_MOVED => LockKind::Moved,
            _ => return Err(format!("unknown lock kind {v}")),
        })
    }
}

impl LockKind {
    pub fn raw(self) -> u32 {
        match self {
            LockKind::Open => lock_kind::LOCK_K_OPEN,
            LockKind::Link => lock_kind::LOCK_K_LINK,
            LockKind::Mkdir => lock_kind::LOCK_K_MKDIR,
            LockKind::Symlink => lock_kind::LOCK_K_SYMLINK,
            LockKind::Rename => lock_kind::LOCK_K_RENAME,
            LockKind::Moved => lock_kind::LOCK_K_MOVED,
        }
        .0
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

/// Pending keys (bpf/locks.h LOCK_KEY_PENDING_HI in the upper half of
/// dev): a record made from a name, not yet resolved to its device and
/// inode.
pub const LOCK_KEY_PENDING: u64 = (lock_key_bits::LOCK_KEY_PENDING_HI.0 as u64) << 32;

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

    /// The same, with the generation read from the file's handle
    /// (files/identity.rs), when the filesystem tells it.
    pub fn of_gen(id: FileId, gen: Option<u32>) -> Self {
        LockKey {
            gen: gen.unwrap_or(0),
            ..Self::of(id)
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
    /// The creator's fsuid (kernel id): whose share a refusal counts to.
    pub fsuid: u32,
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
    /// Its creator's filesystem credentials at creation.
    pub creator: Creator,
}

fn comm_bytes(s: &str) -> [i8; 16] {
    let mut c = [0i8; 16];
    for (d, b) in c.iter_mut().zip(s.bytes().take(15)) {
        *d = b as i8;
    }
    c
}

impl Record {
    /// From a "locks" (short) or "locks_long" value: the head, then
    /// `path_len` bytes of path.
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let h: lock_record_head = read(data)?;
        let off = std::mem::size_of::<lock_record_head>();
        let path = data
            .get(off..off + h.path_len as usize)
            .ok_or_else(|| format!("record path of {} bytes cut short", h.path_len))?;
        Ok(Record {
            tgid: h.tgid,
            flags: h.flags & !LOCK_R_STALE,
            owner_start: h.owner_start,
            mnt_ns: h.mnt_ns,
            pid_ns: h.pid_ns,
            open_flags: h.open_flags,
            kind: LockKind::try_from(h.kind)?,
            comm: comm_str(&h.comm),
            stale: (h.flags & LOCK_R_STALE != 0)
                .then(|| (h.stale_pid, h.stale_status, comm_str(&h.stale_comm))),
            path: path_from_bytes(path),
            creator: Creator::from_record(h.fsuid, h.fsgid, h.ngroups, &h.groups),
        })
    }

    /// Does it go in "locks_long"?
    pub fn is_long(&self) -> bool {
        self.path.as_os_str().len() > LOCK_PATH_SHORT
    }

    /// The value for its table: "locks" when the path fits, else
    /// "locks_long" (paths longer than that are cut, as the kernel does).
    pub fn encode(&self) -> Vec<u8> {
        let mut h = lock_record_head {
            tgid: self.tgid,
            flags: (self.flags & !LOCK_R_STALE)
                | if self.stale.is_some() {
                    LOCK_R_STALE
                } else {
                    0
                },
            owner_start: self.owner_start,
            mnt_ns: self.mnt_ns,
            pid_ns: self.pid_ns,
            open_flags: self.open_flags,
            kind: self.kind.raw(),
            comm: comm_bytes(&self.comm),
            fsuid: self.creator.fsuid,
            fsgid: self.creator.fsgid,
            ngroups: self.creator.ngroups(),
            ..Default::default()
        };
        for (d, g) in h.groups.iter_mut().zip(&self.creator.groups) {
            *d = *g;
        }
        if let Some((pid, status, comm)) = &self.stale {
            h.stale_pid = *pid;
            h.stale_status = *status;
            h.stale_comm = comm_bytes(comm);
        }
        let (size, cap) = if self.is_long() {
            (
                std::mem::size_of::<lock_record_long>(),
                lock_limits::LOCK_PATH_MAX.0 as usize - 1,
            )
        } else {
            (std::mem::size_of::<lock_record>(), LOCK_PATH_SHORT)
        };
        let path = self.path.as_os_str().as_encoded_bytes();
        let len = path.len().min(cap);
        h.path_len = len as u32;
        let mut out = Vec::with_capacity(size);
        // SAFETY: lock_record_head is plain integers and byte arrays.
        out.extend_from_slice(unsafe { plain::as_bytes(&h) });
        out.extend_from_slice(&path[..len]);
        out.resize(size, 0);
        out
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
    /// Boxed: a burst of creations waits in the worker's queue, each the
    /// size of the largest kind (48 bytes, not 80).
    Exit(Box<Exit>),
    NameGone {
        tgid: u32,
    },
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

pub fn decode(data: &[u8]) -> Result<LockEvent, String> {
    let kind: u32 = read(data)?;
    match lock_event_kind(kind) {
        lock_event_kind::LOCK_EV_CREATED => {
            let c: lock_created = read(data)?;
            Ok(LockEvent::Created(Created {
                tgid: c.tgid,
                flags: c.flags,
                fsuid: c.fsuid,
                key: LockKey {
                    dev: c.key.dev,
                    ino: c.key.ino,
                    gen: c.key.gen,
                },
            }))
        }
        lock_event_kind::LOCK_EV_EXIT => Ok(LockEvent::Exit(Box::new(Exit::decode(data)?))),
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
    /// Delete a record; `fsuid`: its creator's, when the caller has read
    /// it (else the record is read to learn whose share it counts to).
    fn forget(&self, key: LockKey, fsuid: Option<u32>);
    /// Apply the per-uid counts changed since the last flush (after each
    /// batch: one update per uid, not two syscalls per lock).
    fn flush(&self) {}
    /// Every record's key, for adoption at start (each record is read on
    /// its own: 50,000 of them at once would be 14 MiB).
    fn keys(&self) -> Vec<LockKey>;
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
            fsuid: 1000,
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
        assert_eq!(c.fsuid, 1000);
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
            creator: Creator::from_record(1000, 100, 2, &[27, 44]),
        };
        let bytes = r.encode();
        assert_eq!(bytes.len(), std::mem::size_of::<lock_record>());
        assert_eq!(bytes.len(), lock_limits::LOCK_RECORD_SHORT.0 as usize);
        assert_eq!(Record::decode(&bytes), Ok(r.clone()));
        let fresh = Record {
            stale: None,
            ..r.clone()
        };
        assert_eq!(Record::decode(&fresh.encode()), Ok(fresh.clone()));
        assert!(Record::decode(&bytes[..60]).is_err());
        assert!(Record::decode(&bytes[..100]).is_err()); // path cut short

        // a path that does not fit goes to the long table, whole
        let deep = Record {
            path: PathBuf::from(format!("/{}/x.lock", "d".repeat(LOCK_PATH_SHORT))),
            ..fresh.clone()
        };
        assert!(deep.is_long() && !fresh.is_long());
        let bytes = deep.encode();
        assert_eq!(bytes.len(), std::mem::size_of::<lock_record_long>());
        assert_eq!(Record::decode(&bytes), Ok(deep));
        // the longest that fits the short one
        let edge = Record {
            path: PathBuf::from(format!("/{}", "e".repeat(LOCK_PATH_SHORT - 1))),
            ..fresh
        };
        assert!(!edge.is_long());
        assert_eq!(Record::decode(&edge.encode()), Ok(edge));

        // a kind the header does not define is refused, not taken for Open
        let mut bytes = r.encode();
        let kind_at = std::mem::offset_of!(lock_record_head, kind);
        bytes[kind_at..kind_at + 4].copy_from_slice(&77u32.to_ne_bytes());
        assert!(Record::decode(&bytes).is_err());
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
            assert_eq!(LockKind::try_from(c.0), Ok(k));
        }
        assert!(LockKind::try_from(6).is_err());
        assert!(LockKind::try_from(u32::MAX).is_err());
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
            LockEvent::Exit(Box::new(Exit {
                tgid: 5,
                ppid: 4,
                status: 9,
                start_boottime: 0,
                parent_start_boottime: 0,
                parent_subreaper: true,
                comm: "sleep".into(),
                ns_tgid: 2,
                pid_ns: 7,
            }))
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
