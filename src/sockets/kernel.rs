//! The kernel contract of the socket class, decoded: ring-buffer events
//! and iterator records (bpf/sockets.h) as Rust values, and the limits the
//! header defines (read from BTF, as generated types, never copied).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::sockets::bpf::types::{
    sock_event, sock_event_kind, sock_facts, sock_limits, sock_reap, sock_reap_kind,
};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// Most ports per list (bpf/sockets.h).
pub const MAX_PORTS: usize = sock_limits::SOCK_MAX_PORTS.0 as usize;
/// Most sockets one act pass is given (the `judged` map's size).
pub const MAX_JUDGED: usize = sock_limits::SOCK_MAX_JUDGED.0 as usize;

/// What a socket shows of its application (see bpf/sockets.h).
pub type Facts = sock_facts;

/// Both ends of a connection, as the kernel reported them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoints {
    pub family: u16,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Bound device (0: none); needed to look up link-local IPv6 sockets.
    pub ifindex: u32,
}

impl Endpoints {
    fn from_raw(
        family: u16,
        saddr: [u8; 16],
        lport: u16,
        daddr: [u8; 16],
        rport: u16,
        ifindex: u32,
    ) -> Result<Self, String> {
        let ip = |b: [u8; 16]| -> Result<IpAddr, String> {
            match family {
                AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))),
                AF_INET6 => Ok(IpAddr::V6(Ipv6Addr::from(b))),
                f => Err(format!("unknown address family {f}")),
            }
        };
        Ok(Endpoints {
            family,
            local: SocketAddr::new(ip(saddr)?, lport),
            remote: SocketAddr::new(ip(daddr)?, rport),
            ifindex,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SockEvent {
    /// Entered CLOSE_WAIT at `entered_ns` (CLOCK_BOOTTIME).
    Entered {
        cookie: u64,
        netns: u64,
        entered_ns: u64,
        ends: Endpoints,
    },
    /// A stamped socket left CLOSE_WAIT (closed, destroyed, reset).
    Left { cookie: u64, netns: u64 },
}

fn read<T: plain::Plain + Default>(data: &[u8]) -> Result<T, String> {
    let mut v = T::default();
    plain::copy_from_bytes(&mut v, data)
        .map_err(|_| format!("short record: {} bytes", data.len()))?;
    Ok(v)
}

pub fn decode_event(data: &[u8]) -> Result<SockEvent, String> {
    let e: sock_event = read(data)?;
    match sock_event_kind(e.kind) {
        sock_event_kind::SOCK_EV_ENTER => Ok(SockEvent::Entered {
            cookie: e.cookie,
            netns: e.netns,
            entered_ns: e.entered_ns,
            ends: Endpoints::from_raw(e.family, e.saddr, e.lport, e.daddr, e.rport, e.ifindex)?,
        }),
        sock_event_kind::SOCK_EV_LEAVE => Ok(SockEvent::Left {
            cookie: e.cookie,
            netns: e.netns,
        }),
        other => Err(format!("unknown socket event kind {}", other.0)),
    }
}

/// A socket in CLOSE_WAIT, within the port scope, as one survey saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub cookie: u64,
    pub netns: u64,
    pub ino: u64,
    /// Idle in CLOSE_WAIT so far (no data sent, send queue empty).
    pub idle: Duration,
    /// Aged from the survey's first visit (it predates the agent).
    pub first_sight: bool,
    /// Data bytes the peer ever sent (its FIN not counted).
    pub data_received: u64,
    pub facts: Facts,
    pub ends: Endpoints,
}

/// What the act pass did with a socket it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Unchanged since judged; destroyed in the kernel.
    Destroyed,
    /// Unchanged since judged; user space destroys it (netlink).
    Confirmed,
    /// Sent, read, or watched since it was judged: kept.
    Changed,
    /// bpf_sock_destroy failed with this errno.
    Failed(i32),
}

/// One iterator record.
#[derive(Debug, Clone)]
pub enum Record {
    Seen(Seen),
    /// A listening socket on this local port (either family).
    Listen {
        port: u16,
    },
    Acted(Act, Seen),
}

/// The iterators' output: a run of `struct sock_reap`.
pub fn decode_records(data: &[u8]) -> Result<Vec<Record>, String> {
    let size = std::mem::size_of::<sock_reap>();
    if data.len() % size != 0 {
        return Err(format!(
            "iterator output of {} bytes is not a whole number of {size}-byte records",
            data.len()
        ));
    }
    data.chunks(size)
        .map(|chunk| {
            let r: sock_reap = read(chunk)?;
            let kind = sock_reap_kind(r.kind);
            if kind == sock_reap_kind::SOCK_REAP_LISTEN {
                return Ok(Record::Listen { port: r.lport });
            }
            let seen = Seen {
                cookie: r.cookie,
                netns: r.netns,
                ino: r.ino,
                idle: Duration::from_nanos(r.idle_ns),
                first_sight: r.first_sight != 0,
                // the peer's FIN counts one in tcp_sock->bytes_received (rcv_nxt
                // moves over it), and every socket here has had its FIN
                data_received: r.bytes_received.saturating_sub(1),
                facts: r.facts,
                ends: Endpoints::from_raw(r.family, r.saddr, r.lport, r.daddr, r.rport, r.ifindex)?,
            };
            let act = match kind {
                sock_reap_kind::SOCK_REAP_SEEN => return Ok(Record::Seen(seen)),
                sock_reap_kind::SOCK_REAP_DESTROYED => Act::Destroyed,
                sock_reap_kind::SOCK_REAP_CONFIRMED => Act::Confirmed,
                sock_reap_kind::SOCK_REAP_CHANGED => Act::Changed,
                sock_reap_kind::SOCK_REAP_FAILED => Act::Failed(-r.err),
                other => return Err(format!("unknown iterator record kind {}", other.0)),
            };
            Ok(Record::Acted(act, seen))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: sock_reap_kind, family: u16) -> sock_reap {
        let mut r = sock_reap {
            kind: kind.0,
            family,
            lport: 5000,
            rport: 40000,
            cookie: 77,
            netns: 4026531840,
            ino: 1234,
            idle_ns: 2_500_000_000,
            bytes_received: 12,
            ..Default::default()
        };
        r.facts.watched = 1;
        if family == AF_INET {
            r.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
            r.daddr[..4].copy_from_slice(&[10, 1, 2, 3]);
        } else {
            r.saddr = Ipv6Addr::LOCALHOST.octets();
            r.daddr = "fe80::1".parse::<Ipv6Addr>().unwrap().octets();
        }
        r
    }

    #[test]
    fn iterator_records() {
        let a = rec(sock_reap_kind::SOCK_REAP_SEEN, AF_INET);
        let mut b = rec(sock_reap_kind::SOCK_REAP_FAILED, AF_INET6);
        b.err = -libc::ENOENT;
        let mut c = rec(sock_reap_kind::SOCK_REAP_LISTEN, AF_INET);
        c.lport = 80;
        c.first_sight = 1;
        let d = rec(sock_reap_kind::SOCK_REAP_CHANGED, AF_INET);
        let mut bytes = Vec::new();
        for r in [&a, &b, &c, &d] {
            bytes.extend_from_slice(unsafe { plain::as_bytes(r) });
        }
        let v = decode_records(&bytes).unwrap();
        assert_eq!(v.len(), 4);
        let Record::Seen(s) = &v[0] else {
            panic!("{:?}", v[0])
        };
        assert_eq!(s.ends.local, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(s.ends.remote, "10.1.2.3:40000".parse().unwrap());
        assert_eq!(s.idle, Duration::from_millis(2500));
        assert_eq!((s.data_received, s.facts.watched), (11, 1)); // less the FIN
        let Record::Acted(Act::Failed(e), s) = &v[1] else {
            panic!("{:?}", v[1])
        };
        assert_eq!(*e, libc::ENOENT);
        assert_eq!(s.ends.local, "[::1]:5000".parse().unwrap());
        assert_eq!(s.ends.remote, "[fe80::1]:40000".parse().unwrap());
        assert!(matches!(v[2], Record::Listen { port: 80 }));
        assert!(matches!(v[3], Record::Acted(Act::Changed, _)));
        // torn output and unknown kinds are errors
        assert!(decode_records(&bytes[..bytes.len() - 1]).is_err());
        let bad = rec(sock_reap_kind(9), AF_INET);
        assert!(decode_records(unsafe { plain::as_bytes(&bad) }).is_err());
        let bad = rec(sock_reap_kind::SOCK_REAP_SEEN, 1);
        assert!(decode_records(unsafe { plain::as_bytes(&bad) }).is_err());
        assert!(decode_records(&[]).unwrap().is_empty());
        assert_eq!((MAX_PORTS, MAX_JUDGED), (32, 4096));
    }

    #[test]
    fn events() {
        let mut e = sock_event {
            kind: sock_event_kind::SOCK_EV_ENTER.0,
            family: AF_INET,
            lport: 80,
            rport: 5555,
            cookie: 9,
            netns: 3,
            entered_ns: 42,
            ..Default::default()
        };
        e.saddr[..4].copy_from_slice(&[192, 168, 0, 1]);
        e.daddr[..4].copy_from_slice(&[192, 168, 0, 2]);
        let SockEvent::Entered {
            cookie,
            netns,
            entered_ns,
            ends,
        } = decode_event(unsafe { plain::as_bytes(&e) }).unwrap()
        else {
            panic!("not an entry")
        };
        assert_eq!((cookie, netns, entered_ns), (9, 3, 42));
        assert_eq!(ends.local, "192.168.0.1:80".parse().unwrap());
        assert_eq!(ends.remote, "192.168.0.2:5555".parse().unwrap());
        e.kind = sock_event_kind::SOCK_EV_LEAVE.0;
        assert_eq!(
            decode_event(unsafe { plain::as_bytes(&e) }).unwrap(),
            SockEvent::Left {
                cookie: 9,
                netns: 3
            }
        );
        e.kind = 7;
        assert!(decode_event(unsafe { plain::as_bytes(&e) }).is_err());
        assert!(decode_event(&[1, 0, 0, 0]).is_err());
    }
}
