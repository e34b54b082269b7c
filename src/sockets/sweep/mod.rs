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
//! A socket idle past the soonest limit that could apply to it is then
//! judged as the daemon judges it: the survey iterator (bpf/sockets.bpf.c,
//! loaded for this run, no tracepoint) tells whether a live process still
//! serves it (`serving.rs`), the policy which limit applies
//! (`policy.rs`, with `--socket-rule`), and the act pass destroys it only
//! if nothing changed since (then by netlink). Where the iterator cannot
//! load, nothing is destroyed: whether it is served is unknown.
//!
//! `state.rs` reads and writes the state file; `plan.rs` is the pure part
//! (what to destroy, what to remember, the log line); this file is the run.

mod plan;
mod state;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cli::DestroyChoice;
use crate::host::netns::{self, Proc};
use crate::sockets::kernel::{Act, Facts};
use crate::sockets::model::PortFilter;
use crate::sockets::monitor::{self, Reap, SockBpfConfig};
use crate::sockets::policy::{Policy, Verdict};
use crate::sockets::serving::serving;
use crate::sockets::sock_diag;
use plan::{describe, plan, Stale};
pub use state::prepare_state_file;
use state::{read_state, write_state, State};

pub struct SweepSockets<'a> {
    pub filter: &'a PortFilter,
    pub policy: &'a Policy,
    pub state_file: &'a Path,
    pub dry_run: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub destroyed: u64,
    pub would_destroy: u64,
    /// Idle past their timeout, kept: served, a rule, an unknown owner.
    pub kept: u64,
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
    let (mut next, stale) = plan(&prev, &seen, cfg.filter, now, cfg.policy);
    if !stale.is_empty() {
        judge_and_act(
            cfg,
            &stale,
            &paths,
            now,
            &mut next,
            out,
            &mut summary,
            &mut |s, m| fail(s, m),
        );
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

/// The candidates, judged as the daemon judges (survey, policy) and
/// destroyed by the act pass and netlink; `next` loses what was destroyed.
#[allow(clippy::too_many_arguments)]
fn judge_and_act(
    cfg: &SweepSockets<'_>,
    stale: &[Stale],
    paths: &HashMap<u64, PathBuf>,
    now: u64,
    next: &mut state::State,
    out: &mut dyn Write,
    summary: &mut Summary,
    fail: &mut dyn FnMut(&mut Summary, String),
) {
    let mut storage = MaybeUninit::uninit();
    let loaded = monitor::load(
        &mut storage,
        &SockBpfConfig {
            events: false,
            filter: cfg.filter.clone(),
            destroy: DestroyChoice::Netlink,
            dry_run: cfg.dry_run,
            force_idle_fallback: false,
            pin_dir: None,
        },
    );
    let mut reaper = match loaded {
        Ok(m) => m.reaper,
        Err(e) => {
            fail(
                summary,
                format!(
                    "{} CLOSE_WAIT socket(s) idle past their timeout kept: whether a live process still serves them is unknown (the survey iterator did not load: {e:#})",
                    stale.len()
                ),
            );
            return;
        }
    };
    let mut by_ns: BTreeMap<u64, Vec<&Stale>> = BTreeMap::new();
    for s in stale {
        by_ns.entry(s.netns).or_default().push(s);
    }
    for (ns, socks) in by_ns {
        if !paths.contains_key(&ns) {
            continue;
        }
        let survey = match reaper.survey(ns) {
            Ok(s) => s,
            Err(e) => {
                fail(summary, format!("netns {ns}: survey failed: {e:#}"));
                continue;
            }
        };
        let facts: HashMap<u64, _> = survey.seen.iter().map(|s| (s.cookie, s)).collect();
        let wanted: HashSet<u64> = socks
            .iter()
            .filter(|s| {
                cfg.policy
                    .wants_owner(s.idle, s.sock.local.port(), s.sock.remote.port())
            })
            .map(|s| s.sock.inode as u64)
            .collect();
        let mut owners = netns::socket_procs(&wanted);
        let mut doomed: Vec<(&Stale, std::time::Duration, Facts)> = Vec::new();
        for s in socks {
            // gone since the dump, or out of the iterator's view: next run
            let Some(seen) = facts.get(&s.sock.cookie) else {
                continue;
            };
            let passive = survey.listening.contains(&s.sock.local.port());
            let served = serving(&seen.facts, seen.data_received, passive);
            let ino = s.sock.inode as u64;
            let o = wanted
                .contains(&ino)
                .then(|| owners.get(&ino).map_or(&[][..], Vec::as_slice));
            match cfg
                .policy
                .verdict(s.idle, served, s.sock.local.port(), s.sock.remote.port(), o)
            {
                Verdict::Destroy { limit } => doomed.push((s, limit, seen.facts)),
                Verdict::Keep(why, _) => {
                    summary.kept += 1;
                    log::debug!(
                        "kept CLOSE_WAIT socket {} -> {} in netns {ns}: {}",
                        s.sock.local,
                        s.sock.remote,
                        why.label()
                    );
                }
                Verdict::Wait(_) => {}
            }
        }
        let missing: HashSet<u64> = doomed
            .iter()
            .map(|(s, ..)| s.sock.inode as u64)
            .filter(|i| !owners.contains_key(i))
            .collect();
        owners.extend(netns::socket_procs(&missing));
        let holder = |s: &Stale| {
            owners
                .get(&(s.sock.inode as u64))
                .and_then(|v| v.first())
                .map(Proc::holder)
        };
        let line = |s: &Stale, what: &str, limit| describe(s, what, holder(s).as_ref(), now, limit);
        if cfg.dry_run {
            for (s, limit, _) in doomed {
                let _ = writeln!(out, "{} (dry run)", line(s, "would destroy", limit));
                summary.would_destroy += 1;
            }
            continue;
        }
        let list: Vec<(u64, Facts)> = doomed.iter().map(|(s, _, f)| (s.sock.cookie, *f)).collect();
        let acted: HashMap<u64, Act> = match reaper.act(ns, &list) {
            Ok(v) => v.into_iter().map(|(a, s)| (s.cookie, a)).collect(),
            Err(e) => {
                fail(summary, format!("netns {ns}: act pass failed: {e:#}"));
                continue;
            }
        };
        for (s, limit, _) in doomed {
            match acted.get(&s.sock.cookie) {
                Some(Act::Destroyed) => {
                    let _ = writeln!(out, "{}", line(s, "destroyed", limit));
                    summary.destroyed += 1;
                    next.sockets.remove(&(ns, s.sock.cookie));
                }
                // closed or reset since the dump: nothing left to do
                Some(Act::Failed(e)) if *e == libc::ENOENT => {
                    next.sockets.remove(&(ns, s.sock.cookie));
                }
                Some(Act::Failed(e)) => fail(
                    summary,
                    format!(
                        "{}: {}",
                        line(s, "failed to destroy", limit),
                        io::Error::from_raw_os_error(*e)
                    ),
                ),
                // changed since judged, or gone: the next run judges again
                Some(Act::Changed | Act::Confirmed) | None => {}
            }
        }
    }
}
