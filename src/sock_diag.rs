//! sock_diag `SOCK_DESTROY` (linux/sock_diag.h, linux/inet_diag.h): destroys
//! one TCP socket, named by its 4-tuple *and* its cookie, so a 4-tuple
//! reused by a new connection is refused by the kernel (ENOENT: "no such
//! socket", as inet_diag_find_one_icsk answers a cookie mismatch) rather
//! than hit. Needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN in the socket's
//! network namespace; it acts on the namespace of the calling thread.
//!
//! Written by hand on libc: one fixed-size request and one ACK to read do
//! not justify a netlink crate and its dependencies in a static binary.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLMSG_ERROR: u16 = 0x2;
const IPPROTO_TCP: u8 = 6;
const TCP_CLOSE_WAIT: u32 = 8;

const NLMSG_HDRLEN: usize = 16;
/// struct inet_diag_req_v2: family, protocol, ext, pad, states, then
/// inet_diag_sockid (sport, dport, src[4], dst[4], if, cookie[2]).
const REQ_LEN: usize = 8 + 48;
pub const MSG_LEN: usize = NLMSG_HDRLEN + REQ_LEN;

/// The exact socket to destroy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub family: u16,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub ifindex: u32,
    pub cookie: u64,
}

fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => b[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => b = a.octets(),
    }
    b
}

/// The request: nlmsghdr + inet_diag_req_v2, host byte order except the
/// ports and addresses (network order, as in the kernel's sockid).
pub fn encode_destroy(t: &Target, seq: u32) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[0..4].copy_from_slice(&(MSG_LEN as u32).to_ne_bytes());
    m[4..6].copy_from_slice(&SOCK_DESTROY.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel
    let r = &mut m[NLMSG_HDRLEN..];
    r[0] = t.family as u8;
    r[1] = IPPROTO_TCP;
    r[4..8].copy_from_slice(&(1u32 << TCP_CLOSE_WAIT).to_ne_bytes());
    let id = &mut r[8..];
    id[0..2].copy_from_slice(&t.local.port().to_be_bytes());
    id[2..4].copy_from_slice(&t.remote.port().to_be_bytes());
    id[4..20].copy_from_slice(&addr_bytes(t.local.ip()));
    id[20..36].copy_from_slice(&addr_bytes(t.remote.ip()));
    id[36..40].copy_from_slice(&t.ifindex.to_ne_bytes());
    // sock_diag_check_cookie: [0] low 32 bits, [1] high 32 bits
    id[40..44].copy_from_slice(&(t.cookie as u32).to_ne_bytes());
    id[44..48].copy_from_slice(&((t.cookie >> 32) as u32).to_ne_bytes());
    m
}

/// The kernel's answer to request `seq`: Ok on a zero error, the errno
/// otherwise; None when the message is not that answer.
pub fn decode_ack(buf: &[u8], seq: u32) -> Option<io::Result<()>> {
    let mut off = 0;
    while off + NLMSG_HDRLEN <= buf.len() {
        let h = &buf[off..];
        let len = u32::from_ne_bytes(h[0..4].try_into().ok()?) as usize;
        let ty = u16::from_ne_bytes(h[4..6].try_into().ok()?);
        let s = u32::from_ne_bytes(h[8..12].try_into().ok()?);
        if len < NLMSG_HDRLEN || off + len > buf.len() {
            return None;
        }
        if ty == NLMSG_ERROR && s == seq && len >= NLMSG_HDRLEN + 4 {
            let err = i32::from_ne_bytes(h[16..20].try_into().ok()?);
            return Some(if err == 0 {
                Ok(())
            } else {
                Err(io::Error::from_raw_os_error(-err))
            });
        }
        off += (len + 3) & !3;
    }
    None
}

/// Destroy `t` in the calling thread's network namespace.
pub fn destroy(t: &Target) -> io::Result<()> {
    // SAFETY: plain syscalls on a descriptor we own.
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
    let seq = 1;
    let msg = encode_destroy(t, seq);
    // SAFETY: a zeroed sockaddr_nl addresses the kernel.
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: msg and kernel outlive the call.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
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
    let mut buf = [0u8; 8192];
    loop {
        // SAFETY: buf outlives the call.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if let Some(r) = decode_ack(&buf[..n as usize], seq) {
            return r;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout() {
        let t = Target {
            family: 2,
            local: "127.0.0.1:5000".parse().unwrap(),
            remote: "10.0.0.2:40000".parse().unwrap(),
            ifindex: 3,
            cookie: 0x1122_3344_5566_7788,
        };
        let m = encode_destroy(&t, 7);
        assert_eq!(m.len(), 72);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 21);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 5);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 7);
        let r = &m[16..];
        assert_eq!((r[0], r[1]), (2, 6));
        assert_eq!(u32::from_ne_bytes(r[4..8].try_into().unwrap()), 1 << 8);
        let id = &r[8..];
        assert_eq!(&id[0..2], &[0x13, 0x88]); // 5000, big-endian
        assert_eq!(&id[2..4], &[0x9c, 0x40]); // 40000
        assert_eq!(&id[4..8], &[127, 0, 0, 1]);
        assert_eq!(&id[8..20], &[0; 12]);
        assert_eq!(&id[20..24], &[10, 0, 0, 2]);
        assert_eq!(u32::from_ne_bytes(id[36..40].try_into().unwrap()), 3);
        assert_eq!(
            u32::from_ne_bytes(id[40..44].try_into().unwrap()),
            0x5566_7788
        );
        assert_eq!(
            u32::from_ne_bytes(id[44..48].try_into().unwrap()),
            0x1122_3344
        );

        let t6 = Target {
            family: 10,
            local: "[::1]:5000".parse().unwrap(),
            remote: "[2001:db8::1]:1".parse().unwrap(),
            ifindex: 0,
            cookie: 1,
        };
        let m = encode_destroy(&t6, 1);
        let id = &m[24..];
        assert_eq!(m[16], 10);
        assert_eq!(&id[4..20], &std::net::Ipv6Addr::LOCALHOST.octets());
        assert_eq!(id[20], 0x20);
    }

    fn nlmsgerr(seq: u32, err: i32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&36u32.to_ne_bytes());
        v.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        v.extend_from_slice(&0u16.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(&err.to_ne_bytes());
        v.extend_from_slice(&[0u8; 16]);
        v
    }

    /// Real SOCK_DESTROY on a socket of our own: a wrong cookie (a reused
    /// 4-tuple) is refused, the right one destroys it.
    #[test]
    fn destroys_only_the_socket_with_that_cookie() {
        use std::net::{TcpListener, TcpStream};
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: SOCK_DESTROY needs CAP_NET_ADMIN");
            return;
        }
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        let sockopt = |name: (i32, i32), size: usize| {
            let mut v = [0u8; 256];
            let mut len = size as libc::socklen_t;
            // SAFETY: v is large enough; len says how much.
            let r = unsafe {
                libc::getsockopt(
                    s.as_raw_fd(),
                    name.0,
                    name.1,
                    v.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            assert_eq!(r, 0);
            v
        };
        let cookie = u64::from_ne_bytes(
            sockopt((libc::SOL_SOCKET, libc::SO_COOKIE), 8)[..8]
                .try_into()
                .unwrap(),
        );
        let state = || sockopt((libc::IPPROTO_TCP, libc::TCP_INFO), 256)[0];
        drop(c);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while state() != TCP_CLOSE_WAIT as u8 {
            assert!(std::time::Instant::now() < end, "no CLOSE_WAIT");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut t = Target {
            family: libc::AF_INET as u16,
            local: s.local_addr().unwrap(),
            remote: peer,
            ifindex: 0,
            cookie: cookie ^ 1,
        };
        let e = destroy(&t).unwrap_err();
        // ENOENT on current kernels (inet_diag_find_one_icsk), ESTALE on old ones
        assert!(
            [Some(libc::ENOENT), Some(libc::ESTALE)].contains(&e.raw_os_error()),
            "{e}"
        );
        assert_eq!(state(), TCP_CLOSE_WAIT as u8);
        t.cookie = cookie;
        destroy(&t).unwrap();
        assert_eq!(state(), 7); // TCP_CLOSE
    }

    #[test]
    fn acks() {
        assert!(decode_ack(&nlmsgerr(1, 0), 1).unwrap().is_ok());
        let e = decode_ack(&nlmsgerr(1, -libc::ESTALE), 1)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ESTALE));
        assert!(decode_ack(&nlmsgerr(2, 0), 1).is_none()); // another request's
        assert!(decode_ack(&[1, 2, 3], 1).is_none());
    }
}
