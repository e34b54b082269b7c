//! Which socket files a socket is still bound to, asked of the kernel:
//! sock_diag for AF_UNIX (linux/unix_diag.h) with `UDIAG_SHOW_VFS`, which
//! gives each bound socket's file as the kernel holds it (inode number and
//! device of `unix_sk(sk)->path`), in every network namespace on the host
//! (a dump shows the sockets of the namespace it is sent from; each is
//! entered from a short-lived thread).
//!
//! A socket file that no socket is bound to can never be connected to
//! again, and no socket can bind to it later: bind(2) always makes a new
//! file (EADDRINUSE on an existing name). So once a dump shows a file
//! unbound, it stays so.

use std::collections::{HashMap, HashSet};
use std::io;

use crate::host::netlink::{self, NLMSG_HDRLEN, NLM_F_DUMP, NLM_F_REQUEST, SOCK_DIAG_BY_FAMILY};
use crate::host::netns;
use crate::host::procfs::FileId;

/// linux/unix_diag.h
const UDIAG_SHOW_VFS: u32 = 0x2;
const UNIX_DIAG_VFS: u16 = 1;
/// struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
const REQ_LEN: usize = 24;
/// struct unix_diag_msg: family, type, state, pad, ino, cookie[2].
const MSG_LEN: usize = 16;

/// The file a socket is bound to, as the kernel reports it: the inode
/// number and the superblock's dev_t, both cut to 32 bits by the ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vfs {
    pub dev: u32,
    pub ino: u32,
}

impl Vfs {
    /// A file as stat(2) or the kernel's records name it. Inode numbers
    /// past 32 bits are compared on their low half: two files sharing it
    /// make a file look bound when it is not (kept), never the reverse.
    pub fn of(id: FileId) -> Vfs {
        Vfs {
            dev: (id.major << 20) | id.minor,
            ino: id.ino as u32,
        }
    }
}

/// The dump request: every AF_UNIX socket, in any state, with the file
/// it is bound to.
pub fn encode_dump(seq: u32) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut m = [0u8; NLMSG_HDRLEN + REQ_LEN];
    m[..NLMSG_HDRLEN].copy_from_slice(&netlink::header(
        NLMSG_HDRLEN + REQ_LEN,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    ));
    let r = &mut m[NLMSG_HDRLEN..];
    r[0] = libc::AF_UNIX as u8;
    r[4..8].copy_from_slice(&u32::MAX.to_ne_bytes()); // every state
    r[12..16].copy_from_slice(&UDIAG_SHOW_VFS.to_ne_bytes());
    m
}

/// One socket of the dump: its own inode, and the file it is bound to
/// (None: unbound, abstract, or unnamed).
pub fn parse_msg(m: &[u8]) -> io::Result<(u32, Option<Vfs>)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("unix_diag: {what}"));
    if m.len() < MSG_LEN {
        return Err(bad("short unix_diag_msg"));
    }
    let sock_ino = u32::from_ne_bytes(m[4..8].try_into().expect("4 bytes"));
    let mut vfs = None;
    let mut off = MSG_LEN;
    while off + 4 <= m.len() {
        let len = u16::from_ne_bytes([m[off], m[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([m[off + 2], m[off + 3]]);
        if len < 4 || off + len > m.len() {
            return Err(bad("torn attribute"));
        }
        if ty == UNIX_DIAG_VFS && len >= 4 + 8 {
            let a = &m[off + 4..off + 12];
            vfs = Some(Vfs {
                ino: u32::from_ne_bytes(a[0..4].try_into().expect("4 bytes")),
                dev: u32::from_ne_bytes(a[4..8].try_into().expect("4 bytes")),
            });
        }
        off += (len + 3) & !3;
    }
    Ok((sock_ino, vfs))
}

/// Every socket bound to a file in the calling thread's network
/// namespace: (its file, the socket's inode).
pub fn dump_here() -> io::Result<Vec<(Vfs, u32)>> {
    let nl = netlink::Socket::sock_diag()?;
    let mut out = Vec::new();
    nl.dump(&encode_dump(1), 1, SOCK_DIAG_BY_FAMILY, |m| {
        if let (sock, Some(vfs)) = parse_msg(m)? {
            out.push((vfs, sock));
        }
        Ok(())
    })?;
    Ok(out)
}

/// The files sockets are bound to, host-wide: file → socket inodes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Bound {
    pub by_file: HashMap<Vfs, Vec<u32>>,
    /// Network namespaces looked into.
    pub namespaces: usize,
}

impl Bound {
    pub fn sockets_on(&self, id: FileId) -> &[u32] {
        self.by_file
            .get(&Vfs::of(id))
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Ask every network namespace on the host, restricted to the files in
/// `wanted` (all files when empty). A namespace that cannot be read is an
/// error: then nobody can tell whether a socket is still bound. One that
/// vanished meanwhile took its sockets with it and is skipped.
pub fn bound_everywhere(wanted: &HashSet<Vfs>) -> Result<Bound, String> {
    let mut out = Bound::default();
    for (ns, path) in netns::all_with_threads() {
        let socks = match netns::run_in(ns, &path, dump_here) {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(format!("sock_diag in netns {ns}: {e}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("entering netns {ns} ({}): {e}", path.display())),
        };
        out.namespaces += 1;
        for (vfs, sock) in socks {
            if wanted.is_empty() || wanted.contains(&vfs) {
                out.by_file.entry(vfs).or_default().push(sock);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn request_layout() {
        let m = encode_dump(7);
        assert_eq!(m.len(), 40);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        let r = &m[16..];
        assert_eq!((r[0], r[1]), (1, 0)); // AF_UNIX
        assert_eq!(u32::from_ne_bytes(r[4..8].try_into().unwrap()), u32::MAX);
        assert_eq!(u32::from_ne_bytes(r[8..12].try_into().unwrap()), 0); // any socket
        assert_eq!(u32::from_ne_bytes(r[12..16].try_into().unwrap()), 2); // VFS
    }

    #[test]
    fn messages() {
        let mut m = vec![1u8, 1, 10, 0];
        m.extend_from_slice(&555u32.to_ne_bytes());
        m.extend_from_slice(&[0xff; 8]);
        // an attribute to skip (name, 5 bytes -> padded to 8), then VFS
        m.extend_from_slice(&9u16.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(b"/x.s\0\0\0\0");
        m.extend_from_slice(&12u16.to_ne_bytes());
        m.extend_from_slice(&UNIX_DIAG_VFS.to_ne_bytes());
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(&((8u32 << 20) | 1).to_ne_bytes());
        let (sock, vfs) = parse_msg(&m).unwrap();
        assert_eq!(sock, 555);
        assert_eq!(
            vfs,
            Some(Vfs {
                dev: (8 << 20) | 1,
                ino: 4242
            })
        );
        assert_eq!(parse_msg(&m[..16]).unwrap(), (555, None));
        assert!(parse_msg(&m[..10]).is_err());
        let mut torn = m.clone();
        torn[16] = 200;
        assert!(parse_msg(&torn).is_err());
        let id = FileId {
            major: 8,
            minor: 1,
            ino: (1 << 40) | 4242,
        };
        assert_eq!(Vfs::of(id), vfs.unwrap());
    }

    /// A real dump: our own listener is bound to its file, and an
    /// abstract one to none.
    #[test]
    fn our_listener_is_bound_to_its_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let st = std::fs::symlink_metadata(&p).unwrap();
        let id = FileId::from_stat(st.dev(), st.ino());
        use std::os::fd::AsRawFd;
        let sock_ino = std::fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
            .unwrap()
            .ino() as u32;
        let here = match dump_here() {
            // a kernel without unix_diag (CONFIG_UNIX_DIAG=m, module not
            // loadable: the kernel matrix's guests share the host's
            // /lib/modules) answers ENOENT; the daemon then keeps every
            // socket file, as it cannot tell whether one is bound
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                eprintln!("skipped: this kernel has no unix_diag ({e})");
                return;
            }
            r => r.unwrap(),
        };
        assert!(here.contains(&(Vfs::of(id), sock_ino)), "{here:?}");
        drop(l);
        // unbound once closed: the file stays, no socket is bound to it
        assert!(p.exists());
        let here = dump_here().unwrap();
        assert!(!here.iter().any(|(v, _)| *v == Vfs::of(id)));
    }
}
