//! CLOSE_WAIT sockets, the pure part: the records the kernel sends (ring
//! buffer events and reaper records), the port filter, the deadline
//! scheduler and the log line. No I/O here: all of it is unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

pub use crate::host::netns::Holder;
use crate::sockets::bpf::types::{sock_event, sock_event_kind, sock_reap, sock_reap_kind};

pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;
/// Most ports per list (bpf/sockets.h SOCK_MAX_PORTS).
pub const MAX_PORTS: usize = 32;

/// How a stale socket is destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `bpf_sock_destroy` from the reaper iterator (Linux 6.5+).
    Kfunc,
    /// sock_diag `SOCK_DESTROY` from user space, matching the cookie.
    Netlink,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Kfunc => "kfunc",
            Method::Netlink => "netlink",
        })
    }
}

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapKind {
    /// Stale and destroyed (`Reaped::method` says how).
    Destroyed,
    /// Stale, not destroyed by the kernel (report-only reaper).
    Stale,
    /// Still in CLOSE_WAIT, not idle long enough: `Reaped::remaining` to go.
    Pending,
    /// Stale; destroying it failed with this errno.
    Failed(i32),
}

/// One reaper record: a socket in CLOSE_WAIT within the port scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaped {
    pub kind: ReapKind,
    pub method: Method,
    pub cookie: u64,
    pub netns: u64,
    pub ino: u64,
    pub idle: Duration,
    pub remaining: Duration,
    /// Aged from the reaper's first visit (it predates the agent).
    pub first_sight: bool,
    pub ends: Endpoints,
}

/// The iterator's output: a run of `struct sock_reap`.
pub fn decode_reaped(data: &[u8]) -> Result<Vec<Reaped>, String> {
    let size = std::mem::size_of::<sock_reap>();
    if data.len() % size != 0 {
        return Err(format!(
            "reaper output of {} bytes is not a whole number of {size}-byte records",
            data.len()
        ));
    }
    data.chunks(size)
        .map(|chunk| {
            let r: sock_reap = read(chunk)?;
            let kind = match sock_reap_kind(r.kind) {
                sock_reap_kind::SOCK_REAP_DESTROYED => ReapKind::Destroyed,
                sock_reap_kind::SOCK_REAP_STALE => ReapKind::Stale,
                sock_reap_kind::SOCK_REAP_PENDING => ReapKind::Pending,
                sock_reap_kind::SOCK_REAP_FAILED => ReapKind::Failed(-r.err),
                other => return Err(format!("unknown reaper record kind {}", other.0)),
            };
            Ok(Reaped {
                kind,
                method: Method::Kfunc,
                cookie: r.cookie,
                netns: r.netns,
                ino: r.ino,
                idle: Duration::from_nanos(r.idle_ns),
                remaining: Duration::from_nanos(r.remaining_ns),
                first_sight: r.first_sight != 0,
                ends: Endpoints::from_raw(r.family, r.saddr, r.lport, r.daddr, r.rport, r.ifindex)?,
            })
        })
        .collect()
}

/// `--port` / `--exclude-port`. The kernel applies the same rule; user
/// space checks again before it destroys anything by netlink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortFilter {
    pub ports: Vec<u16>,
    pub exclude: Vec<u16>,
}

impl PortFilter {
    /// In scope when the local or remote port is listed (or no list is
    /// given), and neither port is excluded.
    pub fn allows(&self, local: u16, remote: u16) -> bool {
        let listed = |l: &[u16]| l.contains(&local) || l.contains(&remote);
        (self.ports.is_empty() || listed(&self.ports)) && !listed(&self.exclude)
    }

    pub fn allows_ends(&self, e: &Endpoints) -> bool {
        self.allows(e.local.port(), e.remote.port())
    }
}

/// One deadline per tracked socket, keyed by cookie.
#[derive(Debug, Default)]
pub struct Scheduler {
    by_cookie: HashMap<u64, (Instant, u64)>,
    queue: BTreeSet<(Instant, u64)>,
}

impl Scheduler {
    /// Every tracked socket: (cookie, netns, deadline).
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64, Instant)> + '_ {
        self.by_cookie
            .iter()
            .map(|(&c, &(at, netns))| (c, netns, at))
    }

    /// Set (or move) the deadline of `cookie`, in network namespace `netns`.
    pub fn schedule(&mut self, cookie: u64, netns: u64, at: Instant) {
        self.cancel(cookie);
        self.by_cookie.insert(cookie, (at, netns));
        self.queue.insert((at, cookie));
    }

    /// Forget `cookie`; false when it had no deadline.
    pub fn cancel(&mut self, cookie: u64) -> bool {
        match self.by_cookie.remove(&cookie) {
            Some((at, _)) => {
                self.queue.remove(&(at, cookie));
                true
            }
            None => false,
        }
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|&(at, _)| at)
    }

    /// Remove every deadline at or before `now`: the sockets, by namespace.
    pub fn take_due(&mut self, now: Instant) -> BTreeMap<u64, Vec<u64>> {
        let mut due: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        while let Some(&(at, cookie)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            if let Some((_, netns)) = self.by_cookie.remove(&cookie) {
                due.entry(netns).or_default().push(cookie);
            }
        }
        due
    }

    pub fn len(&self) -> usize {
        self.by_cookie.len()
    }

    pub fn contains(&self, cookie: u64) -> bool {
        self.by_cookie.contains_key(&cookie)
    }
}

/// The instant a socket that entered CLOSE_WAIT at `entered_ns`
/// (CLOCK_BOOTTIME) becomes stale, given the clocks read now.
pub fn deadline(entered_ns: u64, timeout: Duration, now_boot_ns: u64, now: Instant) -> Instant {
    let stale_ns = entered_ns.saturating_add(timeout.as_nanos() as u64);
    now + Duration::from_nanos(stale_ns.saturating_sub(now_boot_ns))
}

fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The one log line for a stale socket the daemon saw.
pub fn describe(r: &Reaped, holder: Option<&Holder>, dry_run: bool, timeout: Duration) -> String {
    let what = match (r.kind, dry_run) {
        (ReapKind::Destroyed, _) => "destroyed".to_string(),
        (ReapKind::Failed(e), _) => format!(
            "failed to destroy ({})",
            std::io::Error::from_raw_os_error(e)
        ),
        (_, true) => "would destroy (dry run)".to_string(),
        (ReapKind::Stale, false) => "left alone".to_string(),
        (ReapKind::Pending, false) => "pending".to_string(),
    };
    let age = format!(
        "idle {}{} (timeout {:?})",
        secs(r.idle),
        if r.first_sight {
            " since the agent first saw it"
        } else {
            ""
        },
        timeout,
    );
    let named = Named {
        local: r.ends.local,
        remote: r.ends.remote,
        netns: r.netns,
        ino: r.ino,
        cookie: r.cookie,
        method: r.method,
    };
    stale_line(&what, &named, &age, holder)
}

/// The socket a log line names, and how it is (or would be) destroyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Named {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub netns: u64,
    pub ino: u64,
    pub cookie: u64,
    pub method: Method,
}

/// The one line said of a stale CLOSE_WAIT socket, by the daemon and by
/// `sweep` alike: `WHAT CLOSE_WAIT socket L -> R in netns N: AGE; owner
/// …; socket inode I, cookie C; method M`. `age` says how long it has
/// waited and the timeout, as each side knows it.
pub fn stale_line(what: &str, s: &Named, age: &str, holder: Option<&Holder>) -> String {
    let owner = match holder {
        Some(h) => format!("pid {} ({})", h.pid, crate::host::escape::Esc::str(&h.comm)),
        None => "no process found".to_string(),
    };
    format!(
        "{what} CLOSE_WAIT socket {} -> {} in netns {}: {age}; owner {owner}; socket inode {}, cookie {}; method {}",
        s.local, s.remote, s.netns, s.ino, s.cookie, s.method,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reap_rec(kind: sock_reap_kind, family: u16) -> sock_reap {
        let mut r = sock_reap {
            kind: kind.0,
            family,
            lport: 5000,
            rport: 40000,
            cookie: 77,
            netns: 4026531840,
            ino: 1234,
            idle_ns: 2_500_000_000,
            ..Default::default()
        };
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
    fn reaper_records() {
        let a = reap_rec(sock_reap_kind::SOCK_REAP_DESTROYED, AF_INET);
        let mut b = reap_rec(sock_reap_kind::SOCK_REAP_FAILED, AF_INET6);
        b.err = -libc::ENOENT;
        let mut c = reap_rec(sock_reap_kind::SOCK_REAP_PENDING, AF_INET);
        c.remaining_ns = 1_000_000;
        c.first_sight = 1;
        let mut bytes = Vec::new();
        for r in [&a, &b, &c] {
            bytes.extend_from_slice(unsafe { plain::as_bytes(r) });
        }
        let v = decode_reaped(&bytes).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].kind, ReapKind::Destroyed);
        assert_eq!(v[0].ends.local, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(v[0].ends.remote, "10.1.2.3:40000".parse().unwrap());
        assert_eq!(v[0].idle, Duration::from_millis(2500));
        assert_eq!(v[1].kind, ReapKind::Failed(libc::ENOENT));
        assert_eq!(v[1].ends.local, "[::1]:5000".parse().unwrap());
        assert_eq!(v[1].ends.remote, "[fe80::1]:40000".parse().unwrap());
        assert_eq!(v[2].kind, ReapKind::Pending);
        assert_eq!(v[2].remaining, Duration::from_millis(1));
        assert!(v[2].first_sight);
        // torn output and unknown kinds are errors
        assert!(decode_reaped(&bytes[..bytes.len() - 1]).is_err());
        let bad = reap_rec(sock_reap_kind(9), AF_INET);
        assert!(decode_reaped(unsafe { plain::as_bytes(&bad) }).is_err());
        let bad = reap_rec(sock_reap_kind::SOCK_REAP_STALE, 1);
        assert!(decode_reaped(unsafe { plain::as_bytes(&bad) }).is_err());
        assert_eq!(decode_reaped(&[]).unwrap(), vec![]);
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

    #[test]
    fn port_filter() {
        let all = PortFilter::default();
        assert!(all.allows(1, 2));
        let f = PortFilter {
            ports: vec![5000, 6000],
            exclude: vec![],
        };
        assert!(f.allows(5000, 40000));
        assert!(f.allows(40000, 6000)); // the remote port counts too
        assert!(!f.allows(40000, 40001));
        let f = PortFilter {
            ports: vec![],
            exclude: vec![22],
        };
        assert!(f.allows(80, 40000));
        assert!(!f.allows(22, 40000));
        assert!(!f.allows(40000, 22));
        let f = PortFilter {
            ports: vec![5000],
            exclude: vec![5000],
        };
        assert!(!f.allows(5000, 1)); // exclusion wins
    }

    #[test]
    fn scheduler() {
        let t0 = Instant::now();
        let s = |n| t0 + Duration::from_secs(n);
        let mut q = Scheduler::default();
        assert_eq!(q.next_deadline(), None);
        q.schedule(1, 100, s(5));
        q.schedule(2, 200, s(3));
        q.schedule(3, 100, s(4));
        assert_eq!(q.next_deadline(), Some(s(3)));
        // moving a deadline replaces it
        q.schedule(2, 200, s(10));
        assert_eq!(q.next_deadline(), Some(s(4)));
        assert_eq!(q.len(), 3);
        // leaving CLOSE_WAIT cancels
        assert!(q.cancel(3));
        assert!(!q.cancel(3));
        assert_eq!(q.next_deadline(), Some(s(5)));
        assert!(q.take_due(s(4)).is_empty());
        q.schedule(4, 100, s(5));
        let due = q.take_due(s(6));
        assert_eq!(due.len(), 1);
        let mut v = due[&100].clone();
        v.sort();
        assert_eq!(v, vec![1, 4]);
        assert_eq!(q.next_deadline(), Some(s(10)));
        assert!(q.contains(2) && !q.contains(1));
        let due = q.take_due(s(10));
        assert_eq!(due[&200], vec![2]);
        assert_eq!(q.len(), 0);
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn deadlines_from_boot_time() {
        let now = Instant::now();
        let t = Duration::from_secs(60);
        // entered 10 s ago (boot clock at 100 s): stale in 50 s
        assert_eq!(
            deadline(90_000_000_000, t, 100_000_000_000, now),
            now + Duration::from_secs(50)
        );
        // already past: now
        assert_eq!(deadline(1, t, 100_000_000_000, now), now);
    }

    #[test]
    fn log_line() {
        let v = decode_reaped(unsafe {
            plain::as_bytes(&reap_rec(sock_reap_kind::SOCK_REAP_DESTROYED, AF_INET))
        })
        .unwrap();
        let line = describe(
            &v[0],
            Some(&Holder {
                pid: 42,
                comm: "server".into(),
            }),
            false,
            Duration::from_secs(2),
        );
        assert!(!line.contains('\n'));
        for part in [
            "destroyed",
            "127.0.0.1:5000 -> 10.1.2.3:40000",
            "netns 4026531840",
            "idle 2.5s (timeout 2s)",
            "pid 42 (server)",
            "inode 1234",
            "method kfunc",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line:?}");
        }
        // the format `sweep` shares (model::stale_line), to the letter
        assert_eq!(
            line,
            "destroyed CLOSE_WAIT socket 127.0.0.1:5000 -> 10.1.2.3:40000 in netns 4026531840: idle 2.5s (timeout 2s); owner pid 42 (server); socket inode 1234, cookie 77; method kfunc"
        );
    }
}
