//! `eghostbuster sweep`, the socket part: one pass over every network
//! namespace, without BPF. Each namespace is asked through sock_diag for
//! its TCP sockets in CLOSE_WAIT (with `tcp_info`); a socket is destroyed
//! (sock_diag `SOCK_DESTROY`, exact 4-tuple and cookie) once it has been
//! seen in CLOSE_WAIT, idle, for longer than `--close-wait-timeout`.
//!
//! One pass cannot see how long a socket has waited, so a small state file
//! remembers, per socket (network namespace, cookie, 4-tuple), when a run
//! first saw it in CLOSE_WAIT, when a run last saw it busy, and its
//! send counter then. A socket first seen now is never destroyed now: only
//! a later run, once the timeout has passed since that first sight (the
//! kernel keeps no time of entry into CLOSE_WAIT that a dump could show).
//!
//! Idle means, from what inet_diag reports:
//! - nothing unacknowledged or unsent: `idiag_wqueue` (write_seq - snd_una)
//!   is 0, and tcp_info's `tcpi_unacked` and `tcpi_notsent_bytes` are 0;
//! - no data sent since the last run: `tcpi_bytes_sent` (Linux 4.19+;
//!   `tcpi_bytes_acked` on older kernels) is what the state file recorded;
//! - no data sent within the timeout: `tcpi_last_data_sent` (ms since the
//!   socket last sent data, the kernel's `lsndtime`).
//!
//! A socket busy by any of these is remembered as active now, and aged
//! from then. Without tcp_info it is never destroyed. Times in the state
//! file are whole unix seconds, rounded up when stamped, so a socket is
//! never judged older than it is.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::host::{atomic, netns};
use crate::sockets::model::{Holder, PortFilter};
use crate::sockets::sock_diag::{self, DiagSock};

const HEADER: &str = "# eghostbuster sweep-sockets state v1";

/// A socket: network namespace inode and socket cookie.
pub type Key = (u64, u64);

/// What earlier runs saw of one socket in CLOSE_WAIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// Unix seconds: first seen in CLOSE_WAIT.
    pub first_seen: u64,
    /// Unix seconds: last seen busy (first_seen if never).
    pub active_at: u64,
    /// The send counter then (tcpi_bytes_sent, or tcpi_bytes_acked).
    pub sent: u64,
}

/// The state file: the boot it belongs to (cookies start again at each
/// boot) and the sockets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub boot_id: String,
    pub sockets: BTreeMap<Key, Entry>,
}

impl State {
    pub fn parse(text: &str) -> Result<State, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, HEADER)) => {}
            _ => return Err(format!("line 1: not {HEADER:?}")),
        }
        let mut st = State::default();
        for (i, line) in lines {
            let n = i + 1;
            if line.starts_with('#') {
                continue;
            }
            let f: Vec<&str> = line.split_whitespace().collect();
            match f[..] {
                [] => {}
                ["boot", id] => st.boot_id = id.to_string(),
                [ns, cookie, local, remote, first, active, sent] => {
                    let num = |s: &str| {
                        s.parse::<u64>()
                            .map_err(|_| format!("line {n}: {s:?} is not a number"))
                    };
                    let addr = |s: &str| {
                        s.parse::<SocketAddr>()
                            .map_err(|_| format!("line {n}: {s:?} is not an address"))
                    };
                    st.sockets.insert(
                        (num(ns)?, num(cookie)?),
                        Entry {
                            local: addr(local)?,
                            remote: addr(remote)?,
                            first_seen: num(first)?,
                            active_at: num(active)?,
                            sent: num(sent)?,
                        },
                    );
                }
                _ => return Err(format!("line {n}: unexpected {line:?}")),
            }
        }
        Ok(st)
    }

    pub fn serialize(&self) -> String {
        let mut s = format!(
            "{HEADER}\n# netns cookie local remote first_seen active_at sent (unix seconds; bytes)\nboot {}\n",
            self.boot_id
        );
        for (&(ns, cookie), e) in &self.sockets {
            s.push_str(&format!(
                "{ns} {cookie} {} {} {} {} {}\n",
                e.local, e.remote, e.first_seen, e.active_at, e.sent
            ));
        }
        s
    }
}

/// What this run does with one socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Idle in CLOSE_WAIT for longer than the timeout: destroy it.
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

/// A socket to destroy (or report, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub netns: u64,
    pub sock: DiagSock,
    pub entry: Entry,
    pub idle: Duration,
}

/// One run's plan: the sockets to destroy and the state to write after
/// (destroyed ones are dropped by the caller once destroyed). Sockets no
/// longer in CLOSE_WAIT are forgotten; sockets outside the port filter
/// keep the entries another sweep's scope made for them.
pub fn plan(
    prev: &State,
    seen: &[(u64, DiagSock)],
    filter: &PortFilter,
    now_ms: u64,
    timeout: Duration,
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

/// The one line for a stale socket.
pub fn describe(
    st: &Stale,
    what: &str,
    holder: Option<&Holder>,
    now_ms: u64,
    timeout: Duration,
) -> String {
    let owner = match holder {
        Some(h) => format!("pid {} ({})", h.pid, crate::host::escape::Esc::str(&h.comm)),
        None => "no process found".to_string(),
    };
    format!(
        "{what} CLOSE_WAIT socket {} -> {} in netns {}: in CLOSE_WAIT for at least {}s (seen first at {}), idle {}s (timeout {timeout:?}); owner {owner}; socket inode {}, cookie {}; method netlink",
        st.sock.local,
        st.sock.remote,
        st.netns,
        (now_ms / 1000).saturating_sub(st.entry.first_seen),
        utc(st.entry.first_seen),
        st.idle.as_secs(),
        st.sock.inode,
        st.sock.cookie,
    )
}

pub struct SweepSockets<'a> {
    pub filter: &'a PortFilter,
    pub timeout: Duration,
    pub state_file: &'a Path,
    pub dry_run: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub destroyed: u64,
    pub would_destroy: u64,
    pub failed: u64,
}

/// Checked before anything else (exit 2 on failure): the state file's
/// directory exists (only the default one is created), and the file, if
/// any, is a file.
pub fn prepare_state_file(path: &Path) -> Result<(), String> {
    let dir = path
        .parent()
        .ok_or_else(|| format!("--state-file {}: no directory", path.display()))?;
    let default = Path::new(crate::cli::DEFAULT_SWEEP_STATE)
        .parent()
        .expect("an absolute default");
    atomic::ensure_default_dir(dir, &[default]).map_err(|e| {
        format!(
            "--state-file {}: cannot use {}: {e}",
            path.display(),
            dir.display()
        )
    })?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => Err(format!(
            "--state-file {}: not a regular file",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// A state file holds a line per socket seen in CLOSE_WAIT: a few MiB at
/// most on the busiest host. A larger one is not ours and is not read.
const MAX_STATE_BYTES: u64 = 16 << 20;

/// The state file, bounded; a larger file is an error (the run fails and
/// leaves it alone).
fn read_state(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_STATE_BYTES + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_STATE_BYTES {
        return Err(io::Error::other(format!(
            "larger than {} MiB: not a state file",
            MAX_STATE_BYTES >> 20
        )));
    }
    String::from_utf8(buf).map_err(|_| io::Error::other("not UTF-8 text"))
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Written atomically (host::atomic), readable by root only.
fn write_state(path: &Path, st: &State) -> io::Result<()> {
    atomic::write_mode(path, st.serialize().as_bytes(), 0o600)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The socket sweep. Actions go to `out`, failures to `err`.
pub fn sweep_sockets(cfg: &SweepSockets<'_>, out: &mut dyn Write, err: &mut dyn Write) -> Summary {
    let mut summary = Summary::default();
    let mut fail = |summary: &mut Summary, msg: String| {
        let _ = writeln!(err, "eghostbuster: {msg}");
        summary.failed += 1;
    };
    let boot = boot_id();
    let mut prev = match read_state(cfg.state_file) {
        Ok(text) => State::parse(&text).unwrap_or_else(|e| {
            fail(
                &mut summary,
                format!(
                    "state file {}: {e}; starting afresh (sockets are aged from now)",
                    cfg.state_file.display()
                ),
            );
            State::default()
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
        Err(e) => {
            fail(
                &mut summary,
                format!(
                    "cannot read the state file {}: {e}",
                    cfg.state_file.display()
                ),
            );
            return summary; // not overwritten: it may hold what we need later
        }
    };
    if prev.boot_id != boot {
        if !prev.sockets.is_empty() {
            log::debug!("state file from another boot: its sockets are forgotten");
        }
        prev = State {
            boot_id: boot,
            sockets: BTreeMap::new(),
        };
    }

    let mut namespaces: Vec<(u64, PathBuf)> = netns::all().into_iter().collect();
    namespaces.sort();
    let paths: HashMap<u64, PathBuf> = namespaces.iter().cloned().collect();
    let mut seen = Vec::new();
    for (ns, path) in &namespaces {
        match netns::run_in(*ns, path, sock_diag::dump_close_wait) {
            Ok(Ok(socks)) => seen.extend(socks.into_iter().map(|s| (*ns, s))),
            // the namespace went away with its sockets
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Ok(Err(e)) | Err(e) => fail(
                &mut summary,
                format!(
                    "netns {ns} ({}): sock_diag dump failed: {e}",
                    path.display()
                ),
            ),
        }
    }
    let now = now_ms();
    let (mut next, stale) = plan(&prev, &seen, cfg.filter, now, cfg.timeout);

    let inodes: HashSet<u64> = stale.iter().map(|s| s.sock.inode as u64).collect();
    let holders = if stale.is_empty() {
        HashMap::new()
    } else {
        netns::socket_holders(&inodes)
    };
    let mut by_ns: BTreeMap<u64, Vec<&Stale>> = BTreeMap::new();
    for s in &stale {
        by_ns.entry(s.netns).or_default().push(s);
    }
    for (ns, socks) in by_ns {
        let line = |s: &Stale, what: &str| {
            describe(
                s,
                what,
                holders.get(&(s.sock.inode as u64)),
                now,
                cfg.timeout,
            )
        };
        if cfg.dry_run {
            for s in socks {
                let _ = writeln!(out, "{} (dry run)", line(s, "would destroy"));
                summary.would_destroy += 1;
            }
            continue;
        }
        let results = match netns::run_in(ns, &paths[&ns], || {
            socks
                .iter()
                .map(|s| sock_diag::destroy(&s.sock.target()))
                .collect::<Vec<_>>()
        }) {
            Ok(r) => r,
            Err(e) => {
                fail(&mut summary, format!("cannot enter netns {ns}: {e}"));
                continue;
            }
        };
        for (s, r) in socks.into_iter().zip(results) {
            match r {
                Ok(()) => {
                    let _ = writeln!(out, "{}", line(s, "destroyed"));
                    summary.destroyed += 1;
                    next.sockets.remove(&(ns, s.sock.cookie));
                }
                // closed or reset since the dump: nothing left to do
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    next.sockets.remove(&(ns, s.sock.cookie));
                }
                Err(e) => fail(
                    &mut summary,
                    format!("{}: {e}", line(s, "failed to destroy")),
                ),
            }
        }
    }
    if let Err(e) = write_state(cfg.state_file, &next) {
        fail(
            &mut summary,
            format!(
                "cannot write the state file {}: {e}",
                cfg.state_file.display()
            ),
        );
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sockets::sock_diag::TcpInfo;

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
    fn state_file_round_trip() {
        let mut st = State {
            boot_id: "3f1a-77".into(),
            ..Default::default()
        };
        st.sockets.insert(
            (4026531840, 8193),
            Entry {
                local: "127.0.0.1:5000".parse().unwrap(),
                remote: "127.0.0.1:40000".parse().unwrap(),
                first_seen: 1_764_000_000,
                active_at: 1_764_000_030,
                sent: 42,
            },
        );
        st.sockets.insert(
            (4026532000, 1),
            Entry {
                local: "[::1]:80".parse().unwrap(),
                remote: "[fe80::1]:5".parse().unwrap(),
                first_seen: 1,
                active_at: 1,
                sent: 0,
            },
        );
        let text = st.serialize();
        assert!(text.starts_with(HEADER));
        assert!(text
            .contains("4026531840 8193 127.0.0.1:5000 127.0.0.1:40000 1764000000 1764000030 42\n"));
        assert_eq!(State::parse(&text).unwrap(), st);
        assert_eq!(
            State::parse(&format!("{HEADER}\n")).unwrap(),
            State::default()
        );
        for bad in [
            "",
            "something else\n",
            &format!("{HEADER}\n1 2 3\n"),
            &format!("{HEADER}\n1 2 127.0.0.1 127.0.0.1:1 1 1 1\n"),
            &format!("{HEADER}\nx 2 127.0.0.1:1 127.0.0.1:1 1 1 1\n"),
        ] {
            assert!(State::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

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
        let (st, stale) = plan(&prev, &seen, &filter, T0, T);
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
        let (st, stale) = plan(&prev, &seen, &filter, T0 + 61_000, T);
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
