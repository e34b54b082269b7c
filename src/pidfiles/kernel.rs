//! The PID-file programs' records decoded into plain Rust values (types
//! generated from bpf/pidfiles.h), and the kernel's table as the duty uses
//! it. Decoding is pure: bytes in, values out.

use crate::files::creator::Creator;
use crate::files::made::{c_bytes, path_of, read, read_boxed, FileKey, Made};
use crate::pidfiles::bpf::types::{
    pidf_event_kind, pidf_flags, pidf_key, pidf_record, pidf_written,
};

pub const PIDF_F_PATH_TRUNCATED: u32 = pidf_flags::PIDF_F_PATH_TRUNCATED.0;
pub const PIDF_F_UNREACHABLE: u32 = pidf_flags::PIDF_F_UNREACHABLE.0;
pub const PIDF_F_TABLE_FULL: u32 = pidf_flags::PIDF_F_TABLE_FULL.0;

/// One file as the kernel recorded it at the last open to write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The writer, and where.
    pub made: Made,
    pub open_flags: u64,
    /// When it was opened, boot-clock ns.
    pub opened_ns: u64,
}

impl Record {
    pub fn decode(data: &[u8]) -> Result<Self, String> {
        let r: Box<pidf_record> = read_boxed(data)?;
        Ok(Record {
            made: Made {
                tgid: r.tgid,
                start_boottime: r.start_boottime,
                mnt_ns: r.mnt_ns,
                pid_ns: r.pid_ns,
                creator: Creator::from_record(r.fsuid, r.fsgid, r.ngroups, &r.groups),
                comm: c_bytes(&r.comm),
                path: path_of(&r.path, r.path_len),
                path_unusable: r.flags & (PIDF_F_PATH_TRUNCATED | PIDF_F_UNREACHABLE) != 0,
            },
            open_flags: r.open_flags,
            opened_ns: r.opened_ns,
        })
    }
}

pub fn key_to_bytes(k: FileKey) -> Vec<u8> {
    let raw = pidf_key {
        dev: k.dev,
        ino: k.ino,
        gen: k.gen,
        _pad: 0,
    };
    // SAFETY: pidf_key is plain integers.
    unsafe { plain::as_bytes(&raw) }.to_vec()
}

pub fn key_from_bytes(b: &[u8]) -> Result<FileKey, String> {
    let k: pidf_key = read(b)?;
    Ok(FileKey {
        dev: k.dev,
        ino: k.ino,
        gen: k.gen,
    })
}

/// What reaches the duty: an open to write the kernel recorded, or the
/// exit of a watched process (a pidfd's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PidfEvent {
    Written { tgid: u32, flags: u32, key: FileKey },
    Exited(u64),
}

pub fn decode(data: &[u8]) -> Result<PidfEvent, String> {
    let kind: u32 = read(data)?;
    match pidf_event_kind(kind) {
        pidf_event_kind::PIDF_EV_WRITTEN => {
            let w: pidf_written = read(data)?;
            Ok(PidfEvent::Written {
                tgid: w.tgid,
                flags: w.flags,
                key: FileKey {
                    dev: w.key.dev,
                    ino: w.key.ino,
                    gen: w.key.gen,
                },
            })
        }
        other => Err(format!("unknown PID-file event kind {}", other.0)),
    }
}

/// The kernel's table of record ("pidf_files", pinned) and its counters.
pub trait PidfKernel: Send {
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
    fn written_and_record_decode() {
        let ev = pidf_written {
            kind: pidf_event_kind::PIDF_EV_WRITTEN.0,
            tgid: 7,
            flags: 0,
            _pad: 0,
            key: pidf_key {
                dev: 42,
                ino: 9,
                gen: 2,
                _pad: 0,
            },
        };
        // SAFETY: plain integers.
        let bytes = unsafe { plain::as_bytes(&ev) };
        let key = FileKey {
            dev: 42,
            ino: 9,
            gen: 2,
        };
        assert_eq!(
            decode(bytes).unwrap(),
            PidfEvent::Written {
                tgid: 7,
                flags: 0,
                key
            }
        );
        assert_eq!(key_from_bytes(&key_to_bytes(key)).unwrap(), key);
        let mut bad = bytes.to_vec();
        bad[0] = 5;
        assert!(decode(&bad).is_err());

        let mut r: Box<pidf_record> = Box::default();
        r.tgid = 7;
        r.open_flags = 0o1101;
        r.fsuid = 33;
        r.ngroups = 40; // more than the record holds
        let p = b"/run/app.pid";
        for (d, s) in r.path.iter_mut().zip(p) {
            *d = *s as i8;
        }
        r.path_len = p.len() as u32;
        r.flags = PIDF_F_PATH_TRUNCATED;
        // SAFETY: plain integers and byte arrays.
        let rec = Record::decode(unsafe { plain::as_bytes(&*r) }).unwrap();
        assert_eq!(rec.made.path, std::path::PathBuf::from("/run/app.pid"));
        assert_eq!(rec.open_flags, 0o1101);
        assert!(rec.made.creator.groups_truncated);
        assert!(rec.made.path_unusable);
    }
}
