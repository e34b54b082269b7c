//! Netlink to the kernel's sock_diag (linux/netlink.h, linux/sock_diag.h):
//! the socket, sending a request, and walking the answer — a dump until
//! `NLMSG_DONE`, or the ACK of one request. The one netlink walker of the
//! agent: what each family's messages mean stays with the class that asks
//! (inet sockets in `sockets::sock_diag`, AF_UNIX socket files in
//! `unix_sockets::diag`). A request acts on the network namespace of the
//! calling thread (see `host::netns::run_in`).
//!
//! Written by hand on libc: a header, a receive loop and an ACK do not
//! justify a netlink crate and its dependencies in a static binary.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const NETLINK_SOCK_DIAG: i32 = 4;
/// sock_diag request and answer type (any family).
pub const SOCK_DIAG_BY_FAMILY: u16 = 20;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLMSG_ERROR: u16 = 0x2;
pub const NLMSG_DONE: u16 = 0x3;
/// struct nlmsghdr: len, type, flags, seq, pid.
pub const NLMSG_HDRLEN: usize = 16;

/// The header of a request of `len` bytes in all (header included),
/// addressed to the kernel (nlmsg_pid 0).
pub fn header(len: usize, ty: u16, flags: u16, seq: u32) -> [u8; NLMSG_HDRLEN] {
    let mut h = [0u8; NLMSG_HDRLEN];
    h[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    h[4..6].copy_from_slice(&ty.to_ne_bytes());
    h[6..8].copy_from_slice(&flags.to_ne_bytes());
    h[8..12].copy_from_slice(&seq.to_ne_bytes());
    h
}

/// One message of an answer: its type, sequence number and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub ty: u16,
    pub seq: u32,
    pub payload: &'a [u8],
}

/// The messages of one datagram, in order; a message whose length runs
/// past the datagram (or is shorter than its header) ends the walk with
/// an error.
pub fn messages(buf: &[u8]) -> impl Iterator<Item = io::Result<Message<'_>>> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + NLMSG_HDRLEN > buf.len() {
            return None;
        }
        let h = &buf[off..];
        let len = u32::from_ne_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
        let ty = u16::from_ne_bytes(h[4..6].try_into().expect("2 bytes"));
        let seq = u32::from_ne_bytes(h[8..12].try_into().expect("4 bytes"));
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            off = buf.len();
            return Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netlink: torn message",
            )));
        }
        let m = Message {
            ty,
            seq,
            payload: &h[NLMSG_HDRLEN..len],
        };
        off += (len + 3) & !3;
        Some(Ok(m))
    })
}

/// The errno an `NLMSG_ERROR` payload carries (0: an ACK).
fn error_of(payload: &[u8]) -> i32 {
    payload
        .get(0..4)
        .map_or(libc::EIO, |e| -i32::from_ne_bytes(e.try_into().expect("4")))
}

/// One datagram of a dump answering `seq`: `each` gets the payload of
/// every message of type `ty`; true once the dump is complete
/// (`NLMSG_DONE`). A kernel error is returned as such; other requests'
/// messages are skipped.
pub fn walk_dump(
    buf: &[u8],
    seq: u32,
    ty: u16,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<bool> {
    for m in messages(buf) {
        let m = m?;
        if m.seq != seq {
            continue;
        }
        match m.ty {
            NLMSG_DONE => return Ok(true),
            NLMSG_ERROR => match error_of(m.payload) {
                0 => {}
                err => return Err(io::Error::from_raw_os_error(err)),
            },
            t if t == ty => each(m.payload)?,
            _ => {}
        }
    }
    Ok(false)
}

/// The kernel's answer to request `seq`: Ok on a zero error, the errno
/// otherwise; None when the datagram holds no such answer (or is torn).
pub fn decode_ack(buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    for m in messages(buf) {
        let m = m.ok()?;
        if m.ty == NLMSG_ERROR && m.seq == seq && m.payload.len() >= 4 {
            return Some(match error_of(m.payload) {
                0 => Ok(()),
                err => Err(io::Error::from_raw_os_error(err)),
            });
        }
    }
    None
}

/// A NETLINK_SOCK_DIAG socket; answers wait at most 2 s.
pub struct Socket(OwnedFd);

impl Socket {
    pub fn sock_diag() -> io::Result<Socket> {
        // SAFETY: plain syscall; the descriptor is owned right below.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just returned by socket(2).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: tv lives across the call; size matches.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(Socket(fd))
    }

    pub fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: a zeroed sockaddr_nl addresses the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: msg and kernel outlive the call.
        let n = unsafe {
            libc::sendto(
                self.0.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&kernel as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: buf outlives the call.
            let n =
                unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Send dump request `req` (sequence number `seq`) and give `each` the
    /// payload of every message of type `ty` until the dump is complete.
    pub fn dump(
        &self,
        req: &[u8],
        seq: u32,
        ty: u16,
        mut each: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.send(req)?;
        // the kernel sizes dump datagrams to at most 32K
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.recv(&mut buf)?;
            if n == 0 || walk_dump(&buf[..n], seq, ty, &mut each)? {
                return Ok(());
            }
        }
    }

    /// Send request `req` (which asks for an ACK) and wait for its answer.
    pub fn request(&self, req: &[u8], seq: u32) -> io::Result<()> {
        self.send(req)?;
        let mut buf = [0u8; 8192];
        loop {
            let n = self.recv(&mut buf)?;
            if let Some(r) = decode_ack(&buf[..n], seq) {
                return r;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = header(NLMSG_HDRLEN + payload.len(), ty, 0, seq).to_vec();
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    #[test]
    fn headers_and_walks() {
        let h = header(72, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 9);
        assert_eq!(u32::from_ne_bytes(h[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(h[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(h[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(h[8..12].try_into().unwrap()), 9);
        assert_eq!(&h[12..16], &[0; 4]);

        // padding between messages (5-byte payload -> 8)
        let mut buf = msg(SOCK_DIAG_BY_FAMILY, 1, b"abcde");
        buf.extend(msg(SOCK_DIAG_BY_FAMILY, 2, b"other"));
        buf.extend(msg(SOCK_DIAG_BY_FAMILY, 1, b"fg"));
        let mut seen = Vec::new();
        let done = walk_dump(&buf, 1, SOCK_DIAG_BY_FAMILY, |p| {
            seen.push(p.to_vec());
            Ok(())
        })
        .unwrap();
        assert!(!done);
        assert_eq!(seen, vec![b"abcde".to_vec(), b"fg".to_vec()]);
        assert!(walk_dump(&msg(NLMSG_DONE, 1, &[0; 4]), 1, 20, |_| Ok(())).unwrap());
        let err = msg(NLMSG_ERROR, 1, &(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            walk_dump(&err, 1, 20, |_| Ok(()))
                .unwrap_err()
                .raw_os_error(),
            Some(libc::EPERM)
        );
        let mut torn = msg(SOCK_DIAG_BY_FAMILY, 1, b"abcdefgh");
        torn.truncate(20);
        assert!(walk_dump(&torn, 1, 20, |_| Ok(())).is_err());
        assert!(decode_ack(&torn, 1).is_none());
        assert!(decode_ack(&msg(NLMSG_ERROR, 1, &0i32.to_ne_bytes()), 1)
            .unwrap()
            .is_ok());
        assert!(decode_ack(&msg(NLMSG_ERROR, 2, &0i32.to_ne_bytes()), 1).is_none());
    }
}
