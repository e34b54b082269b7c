//! sock_diag (linux/sock_diag.h, linux/inet_diag.h): a dump of the TCP
//! sockets in CLOSE_WAIT with their `tcp_info`, and `SOCK_DESTROY`, which destroys
//! one TCP socket, named by its 4-tuple *and* its cookie, so a 4-tuple
//! reused by a new connection is refused by the kernel (ENOENT: "no such
//! socket", as inet_diag_find_one_icsk answers a cookie mismatch) rather
//! than hit. Needs CONFIG_INET_DIAG_DESTROY and CAP_NET_ADMIN in the socket's
//! network namespace; it acts on the namespace of the calling thread.
//!
//! The netlink socket and the walk of its answers are `host::netlink`'s;
//! this module encodes the inet requests and reads the inet answers.

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::host::netlink::{
    self, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST, SOCK_DIAG_BY_FAMILY,
};
#[cfg(test)]
use crate::host::netlink::{decode_ack, NLMSG_DONE, NLMSG_ERROR};

const SOCK_DESTROY: u16 = 21;
/// inet_diag attribute carrying `struct tcp_info`.
const INET_DIAG_INFO: u16 = 2;
/// struct inet_diag_msg: family, state, timer, retrans, sockid (48),
/// expires, rqueue, wqueue, uid, inode.
const DIAG_MSG_LEN: usize = 4 + 48 + 20;
const IPPROTO_TCP: u8 = 6;
const TCP_CLOSE_WAIT: u32 = 8;

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
    m[..NLMSG_HDRLEN].copy_from_slice(&netlink::header(
        MSG_LEN,
        SOCK_DESTROY,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
    ));
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

/// The part of `struct tcp_info` (linux/tcp.h) the sweep uses. Fields a
/// kernel's shorter tcp_info lacks are None.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub state: u8,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Milliseconds since the socket last sent data (from `lsndtime`).
    pub last_data_sent_ms: u32,
    /// Bytes the peer acknowledged (4.1+).
    pub bytes_acked: Option<u64>,
    /// Bytes written to the socket and not yet sent (4.6+).
    pub notsent_bytes: Option<u32>,
    /// Bytes sent, retransmissions included (4.19+).
    pub bytes_sent: Option<u64>,
}

/// Offsets in struct tcp_info.
const TI_UNACKED: usize = 24;
const TI_LAST_DATA_SENT: usize = 44;
const TI_BYTES_ACKED: usize = 120;
const TI_NOTSENT_BYTES: usize = 144;
const TI_BYTES_SENT: usize = 200;

impl TcpInfo {
    pub fn parse(b: &[u8]) -> Option<TcpInfo> {
        let u32_at = |o: usize| Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_ne_bytes(b.get(o..o + 8)?.try_into().ok()?));
        Some(TcpInfo {
            state: *b.first()?,
            unacked: u32_at(TI_UNACKED)?,
            last_data_sent_ms: u32_at(TI_LAST_DATA_SENT)?,
            bytes_acked: u64_at(TI_BYTES_ACKED),
            notsent_bytes: u32_at(TI_NOTSENT_BYTES),
            bytes_sent: u64_at(TI_BYTES_SENT),
        })
    }
}

/// One socket of a dump: struct inet_diag_msg and its INET_DIAG_INFO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagSock {
    pub family: u16,
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub ifindex: u32,
    pub cookie: u64,
    /// Socket inode (0 when orphaned: no file, no process).
    pub inode: u32,
    /// Bytes received and not read by the application.
    pub rqueue: u32,
    /// Bytes written and not yet acknowledged (`write_seq - snd_una`).
    pub wqueue: u32,
    pub info: Option<TcpInfo>,
}

/// The dump request: every TCP socket of `family` in CLOSE_WAIT, with
/// its tcp_info.
pub fn encode_dump(family: u16, seq: u32) -> [u8; MSG_LEN] {
    let mut m = [0u8; MSG_LEN];
    m[..NLMSG_HDRLEN].copy_from_slice(&netlink::header(
        MSG_LEN,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
    ));
    let r = &mut m[NLMSG_HDRLEN..];
    r[0] = family as u8;
    r[1] = IPPROTO_TCP;
    r[2] = 1 << (INET_DIAG_INFO - 1); // idiag_ext
    r[4..8].copy_from_slice(&(1u32 << TCP_CLOSE_WAIT).to_ne_bytes());
    m
}

fn ip_from(family: u16, b: &[u8]) -> Option<IpAddr> {
    match family as i32 {
        libc::AF_INET => Some(IpAddr::from(<[u8; 4]>::try_from(&b[..4]).ok()?)),
        libc::AF_INET6 => Some(IpAddr::from(<[u8; 16]>::try_from(&b[..16]).ok()?)),
        _ => None,
    }
}

fn parse_diag_msg(m: &[u8]) -> io::Result<DiagSock> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("sock_diag: {what}"));
    if m.len() < DIAG_MSG_LEN {
        return Err(bad("short inet_diag_msg"));
    }
    let u32_at = |o: usize| u32::from_ne_bytes(m[o..o + 4].try_into().unwrap());
    let family = m[0] as u16;
    let id = &m[4..52];
    let sport = u16::from_be_bytes([id[0], id[1]]);
    let dport = u16::from_be_bytes([id[2], id[3]]);
    let src = ip_from(family, &id[4..20]).ok_or_else(|| bad("unknown family"))?;
    let dst = ip_from(family, &id[20..36]).ok_or_else(|| bad("unknown family"))?;
    let ifindex = u32::from_ne_bytes(id[36..40].try_into().unwrap());
    let cookie = u32::from_ne_bytes(id[40..44].try_into().unwrap()) as u64
        | (u32::from_ne_bytes(id[44..48].try_into().unwrap()) as u64) << 32;
    let mut sock = DiagSock {
        family,
        state: m[1],
        local: SocketAddr::new(src, sport),
        remote: SocketAddr::new(dst, dport),
        ifindex,
        cookie,
        rqueue: u32_at(56),
        wqueue: u32_at(60),
        inode: u32_at(68),
        info: None,
    };
    // attributes: struct rtattr { u16 len; u16 type; } + payload, 4-aligned
    let mut off = DIAG_MSG_LEN;
    while off + 4 <= m.len() {
        let len = u16::from_ne_bytes([m[off], m[off + 1]]) as usize;
        let ty = u16::from_ne_bytes([m[off + 2], m[off + 3]]);
        if len < 4 || off + len > m.len() {
            return Err(bad("torn attribute"));
        }
        if ty == INET_DIAG_INFO {
            sock.info = TcpInfo::parse(&m[off + 4..off + len]);
        }
        off += (len + 3) & !3;
    }
    Ok(sock)
}

/// One datagram of the dump answering `seq`: its sockets, and whether the
/// dump is complete (NLMSG_DONE). A kernel error is returned as such.
#[cfg(test)]
pub fn parse_dump(buf: &[u8], seq: u32, out: &mut Vec<DiagSock>) -> io::Result<bool> {
    netlink::walk_dump(buf, seq, SOCK_DIAG_BY_FAMILY, |m| {
        out.push(parse_diag_msg(m)?);
        Ok(())
    })
}

/// Every TCP socket in CLOSE_WAIT in the calling thread's network
/// namespace, IPv4 and IPv6 (v4-mapped ones in the IPv6 dump).
pub fn dump_close_wait() -> io::Result<Vec<DiagSock>> {
    let nl = netlink::Socket::sock_diag()?;
    let mut out = Vec::new();
    for (seq, family) in [(1, libc::AF_INET), (2, libc::AF_INET6)] {
        nl.dump(
            &encode_dump(family as u16, seq),
            seq,
            SOCK_DIAG_BY_FAMILY,
            |m| {
                out.push(parse_diag_msg(m)?);
                Ok(())
            },
        )?;
    }
    // the state filter is the kernel's; check it anyway
    out.retain(|s| s.state == TCP_CLOSE_WAIT as u8);
    Ok(out)
}

/// Destroy `t` in the calling thread's network namespace.
pub fn destroy(t: &Target) -> io::Result<()> {
    let seq = 1;
    netlink::Socket::sock_diag()?.request(&encode_destroy(t, seq), seq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

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
        if !crate::host::procfs::tests::privileged("SOCK_DESTROY (CAP_NET_ADMIN)") {
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

    /// A SOCK_DIAG_BY_FAMILY message as the kernel builds it, with an
    /// INET_DIAG_INFO attribute of `info_len` bytes (0: none).
    fn diag_msg(seq: u32, family: u8, info_len: usize) -> Vec<u8> {
        let mut body = vec![0u8; DIAG_MSG_LEN];
        body[0] = family;
        body[1] = 8; // CLOSE_WAIT
        let id = &mut body[4..52];
        id[0..2].copy_from_slice(&5000u16.to_be_bytes());
        id[2..4].copy_from_slice(&40000u16.to_be_bytes());
        if family == 2 {
            id[4..8].copy_from_slice(&[127, 0, 0, 1]);
            id[20..24].copy_from_slice(&[10, 0, 0, 2]);
        } else {
            id[4..20].copy_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
            id[20..36].copy_from_slice(
                &"2001:db8::2"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            );
        }
        id[36..40].copy_from_slice(&3u32.to_ne_bytes());
        id[40..44].copy_from_slice(&0x5566_7788u32.to_ne_bytes());
        id[44..48].copy_from_slice(&0x1122_3344u32.to_ne_bytes());
        body[56..60].copy_from_slice(&11u32.to_ne_bytes()); // rqueue
        body[60..64].copy_from_slice(&22u32.to_ne_bytes()); // wqueue
        body[68..72].copy_from_slice(&99123u32.to_ne_bytes()); // inode
                                                               // an attribute the parser skips, with padding (len 5 -> 8)
        body.extend_from_slice(&5u16.to_ne_bytes());
        body.extend_from_slice(&4u16.to_ne_bytes()); // INET_DIAG_CONG
        body.extend_from_slice(&[b'x', 0, 0, 0]);
        if info_len > 0 {
            let mut info = vec![0u8; info_len];
            info[0] = 8;
            info[TI_UNACKED..TI_UNACKED + 4].copy_from_slice(&2u32.to_ne_bytes());
            info[TI_LAST_DATA_SENT..TI_LAST_DATA_SENT + 4].copy_from_slice(&1500u32.to_ne_bytes());
            if info_len >= TI_BYTES_SENT + 8 {
                info[TI_BYTES_ACKED..TI_BYTES_ACKED + 8].copy_from_slice(&700u64.to_ne_bytes());
                info[TI_NOTSENT_BYTES..TI_NOTSENT_BYTES + 4].copy_from_slice(&5u32.to_ne_bytes());
                info[TI_BYTES_SENT..TI_BYTES_SENT + 8].copy_from_slice(&800u64.to_ne_bytes());
            }
            body.extend_from_slice(&((4 + info_len) as u16).to_ne_bytes());
            body.extend_from_slice(&INET_DIAG_INFO.to_ne_bytes());
            body.extend_from_slice(&info);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        m.extend_from_slice(&NLM_F_DUMP.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&body);
        m
    }

    fn done(seq: u32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&20u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        m.extend_from_slice(&2u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&0i32.to_ne_bytes());
        m
    }

    #[test]
    fn dump_request_layout() {
        let m = encode_dump(10, 4);
        assert_eq!(u32::from_ne_bytes(m[0..4].try_into().unwrap()), 72);
        assert_eq!(u16::from_ne_bytes(m[4..6].try_into().unwrap()), 20);
        assert_eq!(u16::from_ne_bytes(m[6..8].try_into().unwrap()), 0x301);
        assert_eq!(u32::from_ne_bytes(m[8..12].try_into().unwrap()), 4);
        assert_eq!((m[16], m[17], m[18]), (10, 6, 2)); // family, TCP, INET_DIAG_INFO bit
        assert_eq!(u32::from_ne_bytes(m[20..24].try_into().unwrap()), 1 << 8);
        assert!(m[24..].iter().all(|&b| b == 0)); // any socket id
    }

    #[test]
    fn dump_messages() {
        let mut buf = diag_msg(1, 2, 232);
        buf.extend(diag_msg(1, 10, 104)); // an old kernel's short tcp_info
        buf.extend(diag_msg(1, 2, 0)); // no INET_DIAG_INFO
        buf.extend(diag_msg(9, 2, 232)); // another request's: ignored
        let mut out = Vec::new();
        assert!(!parse_dump(&buf, 1, &mut out).unwrap());
        assert_eq!(out.len(), 3);
        let s = &out[0];
        assert_eq!(s.local, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(s.remote, "10.0.0.2:40000".parse().unwrap());
        assert_eq!((s.family, s.state, s.ifindex), (2, 8, 3));
        assert_eq!(s.cookie, 0x1122_3344_5566_7788);
        assert_eq!((s.rqueue, s.wqueue, s.inode), (11, 22, 99123));
        assert_eq!(
            s.info,
            Some(TcpInfo {
                state: 8,
                unacked: 2,
                last_data_sent_ms: 1500,
                bytes_acked: Some(700),
                notsent_bytes: Some(5),
                bytes_sent: Some(800),
            })
        );
        let v6 = &out[1];
        assert_eq!(v6.local, "[::1]:5000".parse().unwrap());
        assert_eq!(v6.remote, "[2001:db8::2]:40000".parse().unwrap());
        let short = v6.info.unwrap();
        assert_eq!((short.unacked, short.last_data_sent_ms), (2, 1500));
        assert_eq!((short.bytes_acked, short.bytes_sent), (None, None));
        assert_eq!(out[2].info, None);
        // the end of the dump, and errors
        assert!(parse_dump(&done(1), 1, &mut out).unwrap());
        assert!(!parse_dump(&done(2), 1, &mut out).unwrap());
        let e = parse_dump(&nlmsgerr(1, -libc::EPERM), 1, &mut out).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
        let mut torn = diag_msg(1, 2, 232);
        torn.truncate(100);
        assert!(parse_dump(&torn, 1, &mut out).is_err());
        let mut bad_attr = diag_msg(1, 2, 0);
        bad_attr[NLMSG_HDRLEN + DIAG_MSG_LEN] = 200; // attribute longer than the message
        assert!(parse_dump(&bad_attr, 1, &mut out).is_err());
    }

    /// A real dump of our own socket: found in CLOSE_WAIT with its cookie
    /// and its tcp_info.
    #[test]
    fn dump_finds_our_close_wait_socket() {
        use std::net::{TcpListener, TcpStream};
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, peer) = l.accept().unwrap();
        let mut cookie = 0u64;
        let mut len = 8 as libc::socklen_t;
        // SAFETY: cookie is 8 bytes, len says so.
        let r = unsafe {
            libc::getsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_COOKIE,
                (&mut cookie as *mut u64).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0);
        drop(c);
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let found = loop {
            let all = dump_close_wait().unwrap();
            if let Some(f) = all.into_iter().find(|d| d.remote == peer) {
                break f;
            }
            assert!(std::time::Instant::now() < end, "not in the dump");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(found.local, s.local_addr().unwrap());
        assert_eq!(found.cookie, cookie);
        assert_eq!(found.state, TCP_CLOSE_WAIT as u8);
        assert_ne!(found.inode, 0);
        let info = found.info.expect("no tcp_info");
        assert_eq!(info.state, TCP_CLOSE_WAIT as u8);
        assert_eq!(info.bytes_sent, Some(0));
        assert_eq!(found.wqueue, 0);
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
