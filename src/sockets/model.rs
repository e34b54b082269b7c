//! CLOSE_WAIT sockets, the pure part: the port filter, the deadline
//! scheduler and the log line. No I/O here: all of it is unit-tested.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use crate::host::netns::Holder;
pub use crate::sockets::kernel::{Endpoints, MAX_PORTS};

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

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_cookie.len()
    }

    #[cfg(test)]
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

/// "idle 2.5s (timeout 2s)", and whether it was aged from first sight.
pub fn idle_text(idle: Duration, first_sight: bool, limit: Duration) -> String {
    format!(
        "idle {}{} (timeout {limit:?})",
        secs(idle),
        if first_sight {
            " since the agent first saw it"
        } else {
            ""
        },
    )
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
        let named = Named {
            local: "127.0.0.1:5000".parse().unwrap(),
            remote: "10.1.2.3:40000".parse().unwrap(),
            netns: 4026531840,
            ino: 1234,
            cookie: 77,
            method: Method::Kfunc,
        };
        let line = stale_line(
            "destroyed",
            &named,
            &idle_text(Duration::from_millis(2500), false, Duration::from_secs(2)),
            Some(&Holder {
                pid: 42,
                comm: "server".into(),
            }),
        );
        // the format `sweep` shares, to the letter
        assert_eq!(
            line,
            "destroyed CLOSE_WAIT socket 127.0.0.1:5000 -> 10.1.2.3:40000 in netns 4026531840: idle 2.5s (timeout 2s); owner pid 42 (server); socket inode 1234, cookie 77; method kfunc"
        );
    }
}
