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
//!
//! `state.rs` reads and writes the state file; `plan.rs` is the pure part
//! (what to destroy, what to remember, the log line); this file is the run.

mod plan;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::host::netns;
use crate::sockets::model::PortFilter;
use crate::sockets::sock_diag;
use plan::{describe, plan, Stale};
pub use state::prepare_state_file;
use state::{read_state, write_state, State};

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

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
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
