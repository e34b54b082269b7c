//! The socket sweep's pure part: from what earlier runs remembered and
//! what sock_diag shows now, which sockets are stale, what to remember,
//! and the one line said of each.

use std::collections::BTreeMap;
use std::time::Duration;

use super::state::{Entry, State};
use crate::sockets::model::{stale_line, Holder, Method, Named, PortFilter};
use crate::sockets::policy::{Limit, Policy};
use crate::sockets::sock_diag::DiagSock;

/// What this run does with one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Idle in CLOSE_WAIT for longer than `timeout`: a candidate, judged
    /// next by the policy (served? which rule?).
    Destroy { idle: Duration },
    /// Not yet (or busy, or first seen now): remember it.
    Remember,
}

fn up_to_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

/// The decision for one socket seen in CLOSE_WAIT now (`now_ms`: unix
/// ms), given what earlier runs remembered of it, and the entry to keep.
pub fn decide(
    prev: Option<&Entry>,
    s: &DiagSock,
    now_ms: u64,
    timeout: Duration,
) -> (Decision, Entry) {
    let now = up_to_secs(now_ms);
    let info = s.info;
    let sent = info
        .and_then(|i| i.bytes_sent.or(i.bytes_acked))
        .unwrap_or(0);
    // another socket that got the same cookie (cannot happen within a boot)
    // or a state line that does not match: start afresh
    let prev = prev.filter(|p| p.local == s.local && p.remote == s.remote);
    let Some(p) = prev else {
        return (
            Decision::Remember,
            Entry {
                local: s.local,
                remote: s.remote,
                first_seen: now,
                active_at: now,
                sent,
            },
        );
    };
    let busy = match info {
        None => true, // nothing to judge by: never destroyed
        Some(i) => {
            s.wqueue > 0 || i.unacked > 0 || i.notsent_bytes.unwrap_or(0) > 0 || sent != p.sent
        }
    };
    let entry = Entry {
        active_at: if busy { now } else { p.active_at },
        sent,
        ..*p
    };
    if busy {
        return (Decision::Remember, entry);
    }
    let last_send_ms = info.map_or(0, |i| now_ms.saturating_sub(i.last_data_sent_ms as u64));
    let idle_since_ms = (entry.first_seen * 1000)
        .max(entry.active_at * 1000)
        .max(last_send_ms);
    let idle = Duration::from_millis(now_ms.saturating_sub(idle_since_ms));
    if idle >= timeout {
        (Decision::Destroy { idle }, entry)
    } else {
        (Decision::Remember, entry)
    }
}

/// A socket idle past the soonest limit that could apply to it: judged
/// by the policy next, then destroyed (or reported, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub netns: u64,
    pub sock: DiagSock,
    pub entry: Entry,
    pub idle: Duration,
}

/// One run's plan: the candidates (idle past the soonest limit the policy
/// could give them) and the state to write after (destroyed ones are
/// dropped by the caller once destroyed). Sockets no longer in CLOSE_WAIT
/// are forgotten; sockets outside the port filter keep the entries another
/// sweep's scope made for them.
pub fn plan(
    prev: &State,
    seen: &[(u64, DiagSock)],
    filter: &PortFilter,
    now_ms: u64,
    policy: &Policy,
) -> (State, Vec<Stale>) {
    let mut next = State {
        boot_id: prev.boot_id.clone(),
        sockets: BTreeMap::new(),
    };
    let mut stale = Vec::new();
    for (netns, s) in seen {
        let key = (*netns, s.cookie);
        if !filter.allows(s.local.port(), s.remote.port()) {
            if let Some(e) = prev.sockets.get(&key) {
                next.sockets.insert(key, *e);
            }
            continue;
        }
        // a socket no rule could ever make stale is still remembered
        let timeout = match policy.earliest(s.local.port(), s.remote.port()) {
            Limit::After(t) => t,
            Limit::Never => Duration::MAX,
        };
        let (d, entry) = decide(prev.sockets.get(&key), s, now_ms, timeout);
        next.sockets.insert(key, entry);
        if let Decision::Destroy { idle } = d {
            stale.push(Stale {
                netns: *netns,
                sock: s.clone(),
                entry,
                idle,
            });
        }
    }
    (next, stale)
}

/// Unix seconds as `2026-11-26T09:35:18Z`.
pub fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The one line for a stale socket (`model::stale_line`, with what a
/// sweep knows of its age).
pub fn describe(
    st: &Stale,
    what: &str,
    holder: Option<&Holder>,
    now_ms: u64,
    timeout: Duration,
) -> String {
    let age = format!(
        "in CLOSE_WAIT for at least {}s (seen first at {}), idle {}s (timeout {timeout:?})",
        (now_ms / 1000).saturating_sub(st.entry.first_seen),
        utc(st.entry.first_seen),
        st.idle.as_secs(),
    );
    let named = Named {
        local: st.sock.local,
        remote: st.sock.remote,
        netns: st.netns,
        ino: st.sock.inode as u64,
        cookie: st.sock.cookie,
        method: Method::Netlink,
    };
    stale_line(what, &named, &age, holder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::sock_diag::TcpInfo;
    use std::net::SocketAddr;

    fn sock(cookie: u64, lport: u16) -> DiagSock {
        DiagSock {
            family: 2,
            state: 8,
            local: SocketAddr::from(([127, 0, 0, 1], lport)),
            remote: "127.0.0.1:40000".parse().unwrap(),
            ifindex: 0,
            cookie,
            inode: 7,
            rqueue: 0,
            wqueue: 0,
            info: Some(TcpInfo {
                state: 8,
                unacked: 0,
                last_data_sent_ms: 3_600_000,
                bytes_acked: Some(10),
                notsent_bytes: Some(0),
                bytes_sent: Some(100),
            }),
        }
    }

    const T: Duration = Duration::from_secs(60);
    const T0: u64 = 1_764_000_000_000; // unix ms

    #[test]
    fn first_sight_is_remembered_never_destroyed() {
        let (d, e) = decide(None, &sock(1, 5000), T0 + 1, T);
        assert_eq!(d, Decision::Remember);
        // rounded up: never older than it is
        assert_eq!(
            (e.first_seen, e.active_at, e.sent),
            (T0 / 1000 + 1, T0 / 1000 + 1, 100)
        );
    }

    #[test]
    fn idle_past_the_timeout_is_destroyed() {
        let s = sock(1, 5000);
        let (_, e) = decide(None, &s, T0, T);
        let (d, _) = decide(Some(&e), &s, T0 + 59_999, T);
        assert_eq!(d, Decision::Remember);
        let (d, e2) = decide(Some(&e), &s, T0 + 60_000, T);
        assert_eq!(d, Decision::Destroy { idle: T });
        assert_eq!(e2, e);
    }

    #[test]
    fn busy_or_sending_sockets_are_kept() {
        let s = sock(1, 5000);
        let (_, e) = decide(None, &s, T0, T);
        let later = T0 + 120_000;
        // data unacknowledged or unsent
        let mut q = s.clone();
        q.wqueue = 10;
        let (d, e2) = decide(Some(&e), &q, later, T);
        assert_eq!(d, Decision::Remember);
        assert_eq!(e2.active_at, later / 1000);
        assert_eq!(e2.first_seen, e.first_seen);
        // and aged from then on
        assert_eq!(
            decide(Some(&e2), &s, later + 59_000, T).0,
            Decision::Remember
        );
        assert!(matches!(
            decide(Some(&e2), &s, later + 60_000, T).0,
            Decision::Destroy { .. }
        ));
        for f in [
            |i: &mut TcpInfo| i.unacked = 1,
            |i: &mut TcpInfo| i.notsent_bytes = Some(3),
            |i: &mut TcpInfo| i.bytes_sent = Some(101),
        ] {
            let mut b = s.clone();
            f(b.info.as_mut().unwrap());
            let (d, e2) = decide(Some(&e), &b, later, T);
            assert_eq!(d, Decision::Remember, "{b:?}");
            assert_eq!(e2.active_at, later / 1000);
        }
        // sent data 10 s ago, idle between runs: the kernel's clock says so
        let mut recent = s.clone();
        recent.info.as_mut().unwrap().last_data_sent_ms = 10_000;
        assert_eq!(decide(Some(&e), &recent, later, T).0, Decision::Remember);
        // without tcp_info, nothing to judge by
        let mut blind = s.clone();
        blind.info = None;
        assert_eq!(decide(Some(&e), &blind, later, T).0, Decision::Remember);
        // an older kernel: bytes_acked is the counter
        let mut old = s.clone();
        old.info.as_mut().unwrap().bytes_sent = None;
        let (_, eo) = decide(None, &old, T0, T);
        assert_eq!(eo.sent, 10);
        assert!(matches!(
            decide(Some(&eo), &old, later, T).0,
            Decision::Destroy { .. }
        ));
    }

    #[test]
    fn another_socket_with_the_same_key_starts_afresh() {
        let s = sock(1, 5000);
        let (_, e) = decide(None, &s, T0, T);
        let other = sock(1, 5001);
        let (d, e2) = decide(Some(&e), &other, T0 + 120_000, T);
        assert_eq!(d, Decision::Remember);
        assert_eq!(e2.first_seen, (T0 + 120_000) / 1000);
    }

    #[test]
    fn plan_forgets_gone_sockets_and_keeps_other_scopes() {
        let filter = PortFilter {
            ports: vec![5000],
            exclude: vec![],
        };
        let seen = vec![
            (10, sock(1, 5000)),
            (10, sock(2, 6000)),
            (11, sock(3, 5000)),
        ];
        let mut prev = State::default();
        let (st, stale) = plan(&prev, &seen, &filter, T0, &Policy::plain(T));
        assert!(stale.is_empty());
        assert_eq!(
            st.sockets.keys().copied().collect::<Vec<_>>(),
            vec![(10, 1), (11, 3)]
        );
        // another scope's entry for a socket still there survives; a gone one does not
        prev = st.clone();
        let foreign = Entry {
            local: "127.0.0.1:6000".parse().unwrap(),
            ..prev.sockets[&(10, 1)]
        };
        prev.sockets.insert((10, 2), foreign);
        prev.sockets.insert((12, 9), foreign);
        let seen = vec![(10, sock(1, 5000)), (10, sock(2, 6000))];
        let (st, stale) = plan(&prev, &seen, &filter, T0 + 61_000, &Policy::plain(T));
        assert_eq!(
            st.sockets.keys().copied().collect::<Vec<_>>(),
            vec![(10, 1), (10, 2)]
        );
        assert_eq!(st.sockets[&(10, 2)], foreign);
        assert_eq!(stale.len(), 1);
        assert_eq!((stale[0].netns, stale[0].sock.cookie), (10, 1));
    }

    #[test]
    fn log_line() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_764_149_718), "2025-11-26T09:35:18Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        let s = sock(8193, 5000);
        let (_, entry) = decide(None, &s, T0, T);
        let st = Stale {
            netns: 4026531840,
            sock: s,
            entry,
            idle: Duration::from_secs(75),
        };
        let line = describe(
            &st,
            "destroyed",
            Some(&Holder {
                pid: 42,
                comm: "server".into(),
            }),
            T0 + 75_000,
            T,
        );
        assert_eq!(
            line,
            "destroyed CLOSE_WAIT socket 127.0.0.1:5000 -> 127.0.0.1:40000 in netns 4026531840: in CLOSE_WAIT for at least 75s (seen first at 2025-11-24T16:00:00Z), idle 75s (timeout 60s); owner pid 42 (server); socket inode 7, cookie 8193; method netlink"
        );
    }
}
