//! The socket-file program's records decoded into plain Rust values (types
//! generated from bpf/unix_sockets.h), and the kernel's table as the duty
//! uses it. Decoding is pure: bytes in, values out.

use crate::files::creator::Creator;
use crate::files::made::{c_bytes, path_of, read, read_boxed, FileKey, Made};
use crate::unix_sockets::bpf::types::{uxs_bound, uxs_event_kind, uxs_flags, uxs_key, uxs_record};

pub const UXS_F_PATH_TRUNCATED: u32 = uxs_flags::UXS_F_PATH_TRUNCATED.0;
pub const UXS_F_UNREACHABLE: u32 = uxs_flags::UXS_F_UNREACHABLE.0;
pub const UXS_F_TABLE_FULL: u32 = uxs_flags::UXS_F_TABLE_FULL.0;

/// One socket file as the kernel recorded it at bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The binder, and where.
    pub made: Made,
    /// The socket's network namespace, and its own inode ("socket:[N]").
    pub net_ns: u64,
    pub sock_ino: u64,
}

impl Record {
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let r: Box<uxs_record> = read_boxed(data)?;
        Ok(Record {
            made: Made {
                tgid: r.tgid,
                start_boottime: r.start_boottime,
                mnt_ns: r.mnt_ns,
                pid_ns: r.pid_ns,
                creator: Creator::from_record(r.fsuid, r.fsgid, r.ngroups, &r.groups),
                comm: c_bytes(&r.comm),
                path: path_of(&r.path, r.path_len),
                path_unusable: r.flags & (UXS_F_PATH_TRUNCATED | UXS_F_UNREACHABLE) != 0,
            },
            net_ns: r.net_ns,
            sock_ino: r.sock_ino,
        })
    }
}

pub fn key_to_bytes(k: FileKey) -> Vec<u8> {
    let raw = uxs_key {
        dev: k.dev,
        ino: k.ino,
        gen: k.gen,
        _pad: 0,
    };
    // SAFETY: uxs_key is plain integers.
    unsafe { plain::as_bytes(&raw) }.to_vec()
}

pub fn key_from_bytes(b: &[u8]) -> Result<FileKey, String> {
    let k: uxs_key = read(b)?;
    Ok(FileKey {
        dev: k.dev,
        ino: k.ino,
        gen: k.gen,
    })
}

/// What reaches the duty: a bind the kernel recorded, or the exit of a
/// watched process (a pidfd's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UxsEvent {
    Bound { tgid: u32, flags: u32, key: FileKey },
    Exited(u64),
}

pub fn decode(data: &[u8]) -> Result<UxsEvent, String> {
    let kind: u32 = read(data)?;
    match uxs_event_kind(kind) {
        uxs_event_kind::UXS_EV_BOUND => {
            let b: uxs_bound = read(data)?;
            Ok(UxsEvent::Bound {
                tgid: b.tgid,
                flags: b.flags,
                key: FileKey {
                    dev: b.key.dev,
                    ino: b.key.ino,
                    gen: b.key.gen,
                },
            })
        }
        other => Err(format!("unknown socket-file event kind {}", other.0)),
    }
}

/// The kernel's table of record ("uxs_files", pinned) and its counters.
pub trait UxsKernel: Send {
    fn record(&self, key: FileKey) -> Option<Record>;
    fn forget(&self, key: FileKey);
    /// Every record, for adoption at start.
    fn records(&self) -> Vec<(FileKey, Record)>;
    /// (records made, ring buffer drops, table full)
    fn counters(&self) -> Option<(u64, u64, u64)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_and_record_decode() {
        let ev = uxs_bound {
            kind: uxs_event_kind::UXS_EV_BOUND.0,
            tgid: 42,
            flags: UXS_F_TABLE_FULL,
            _pad: 0,
            key: uxs_key {
                dev: 40,
                ino: 77,
                gen: 3,
                _pad: 0,
            },
        };
        // SAFETY: plain integers.
        let bytes = unsafe { plain::as_bytes(&ev) };
        let want = FileKey {
            dev: 40,
            ino: 77,
            gen: 3,
        };
        assert_eq!(
            decode(bytes).unwrap(),
            UxsEvent::Bound {
                tgid: 42,
                flags: UXS_F_TABLE_FULL,
                key: want
            }
        );
        assert_eq!(key_from_bytes(&key_to_bytes(want)).unwrap(), want);
        let mut bad = bytes.to_vec();
        bad[0] = 99;
        assert!(decode(&bad).unwrap_err().contains("unknown"));
        assert!(decode(&bytes[..3]).is_err());

        let mut r: Box<uxs_record> = Box::default();
        r.tgid = 42;
        r.start_boottime = 5_000_000_000;
        r.net_ns = 4026531840;
        r.sock_ino = 12345;
        r.fsuid = 1000;
        r.fsgid = 1000;
        r.ngroups = 1;
        r.groups[0] = 27;
        for (d, s) in r.comm.iter_mut().zip(b"socat") {
            *d = *s as i8;
        }
        let p = b"/run/app.sock";
        for (d, s) in r.path.iter_mut().zip(p) {
            *d = *s as i8;
        }
        r.path_len = p.len() as u32;
        // SAFETY: plain integers and byte arrays.
        let rec = Record::decode(unsafe { plain::as_bytes(&*r) }).unwrap();
        assert_eq!(rec.made.path, std::path::PathBuf::from("/run/app.sock"));
        assert_eq!(rec.made.comm, b"socat");
        assert_eq!(rec.made.creator.groups, vec![27]);
        assert_eq!((rec.net_ns, rec.sock_ino), (4026531840, 12345));
        assert!(!rec.made.path_unusable);
        r.flags = UXS_F_UNREACHABLE;
        // SAFETY: as above.
        let rec = Record::decode(unsafe { plain::as_bytes(&*r) }).unwrap();
        assert!(rec.made.path_unusable);
    }
}
