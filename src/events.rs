//! Ring-buffer samples decoded into plain Rust values. Pure: bytes in,
//! events out, so the decoding is unit-tested without BPF.

use std::path::PathBuf;

use crate::bpf::locks::types::{lock_created, lock_event_kind, lock_exit, lock_name_gone};
use crate::patterns::path_from_bytes;
use crate::procfs::FileId;

/// Flags in `lock_created.flags` (bpf/locks.h LOCK_F_*).
pub const LOCK_F_PATH_TRUNCATED: u32 = 0x1;
pub const LOCK_F_OWNER_UNTRACKED: u32 = 0x2;
pub const LOCK_F_UNREACHABLE: u32 = 0x4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub tgid: u32,
    pub tid: u32,
    pub file: FileId,
    pub mnt_ns: u64,
    pub pid_ns: u64,
    pub start_boottime: u64,
    pub open_flags: u64,
    pub flags: u32,
    pub comm: String,
    pub path: PathBuf,
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockEvent {
    Created(Created),
    Exit(Exit),
    NameGone { tgid: u32 },
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
            let start = std::mem::size_of::<lock_created>();
            let path = data
                .get(start..start + c.path_len as usize)
                .ok_or_else(|| format!("path of {} bytes overruns the sample", c.path_len))?;
            Ok(LockEvent::Created(Created {
                tgid: c.tgid,
                tid: c.tid,
                file: FileId::from_kernel(c.dev, c.ino),
                mnt_ns: c.mnt_ns,
                pid_ns: c.pid_ns,
                start_boottime: c.start_boottime,
                open_flags: c.open_flags,
                flags: c.flags,
                comm: comm_str(&c.comm),
                path: path_from_bytes(path),
            }))
        }
        lock_event_kind::LOCK_EV_EXIT => {
            let e: lock_exit = read(data)?;
            Ok(LockEvent::Exit(Exit {
                tgid: e.tgid,
                ppid: e.ppid,
                status: e.status,
                start_boottime: e.start_boottime,
                parent_start_boottime: e.parent_start_boottime,
                parent_subreaper: e.parent_subreaper != 0,
                comm: comm_str(&e.comm),
            }))
        }
        lock_event_kind::LOCK_EV_NAME_GONE => {
            let g: lock_name_gone = read(data)?;
            Ok(LockEvent::NameGone { tgid: g.tgid })
        }
        other => Err(format!("unknown lock event kind {}", other.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comm(s: &str) -> [i8; 16] {
        let mut c = [0i8; 16];
        for (d, b) in c.iter_mut().zip(s.bytes()) {
            *d = b as i8;
        }
        c
    }

    #[test]
    fn created_with_path() {
        let path = b"/tmp/x/index.lock";
        let rec = lock_created {
            kind: lock_event_kind::LOCK_EV_CREATED.0,
            tgid: 10,
            tid: 11,
            path_len: path.len() as u32,
            dev: (8 << 20) | 1,
            ino: 77,
            flags: LOCK_F_OWNER_UNTRACKED,
            comm: comm("git"),
            ..Default::default()
        };
        let mut bytes = unsafe { plain::as_bytes(&rec) }.to_vec();
        bytes.extend_from_slice(path);
        let LockEvent::Created(c) = decode(&bytes).unwrap() else {
            panic!("not a creation")
        };
        assert_eq!(c.tgid, 10);
        assert_eq!(c.comm, "git");
        assert_eq!(c.path, PathBuf::from("/tmp/x/index.lock"));
        assert_eq!(
            c.file,
            FileId {
                major: 8,
                minor: 1,
                ino: 77
            }
        );
        // a path_len past the end of the sample is refused
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn exit_and_gone() {
        let rec = lock_exit {
            kind: lock_event_kind::LOCK_EV_EXIT.0,
            tgid: 5,
            ppid: 4,
            status: 9,
            parent_subreaper: 1,
            comm: comm("sleep"),
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
