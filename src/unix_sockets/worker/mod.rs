//! The socket-file duty of the cleanup worker: binds in, verdicts out. It
//! keeps the files the kernel recorded (in scope, not excluded), waits
//! for each one's owner — its binder, then whoever holds the socket still
//! bound to it — to exit (a pidfd), then gathers the facts where the
//! binder lives, asks the kernel which sockets are bound (diag), decides
//! (decide.rs), and runs checks 2-3 and the atomic removal
//! (files::removal) over the batch; one log line per decision.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;

use crate::agent::class::Wake;
use crate::files::made::FileKey;
use crate::files::names::{Names, Standing};
use crate::files::owners::{Added, Owners, Proc};
use crate::host::escape::Esc;
use crate::host::pidwatch::ExitWait;
use crate::host::procfs;
use crate::unix_sockets::diag::{Bound, Vfs};
use crate::unix_sockets::kernel::{Record, UxsEvent, UxsKernel, UXS_F_TABLE_FULL};
use crate::unix_sockets::metrics::UxsMetrics;

pub struct UxsConfig {
    pub dry_run: bool,
    pub names: Names,
}

/// How the duty learns which sockets are bound to which files
/// (diag::bound_everywhere; a fake in tests).
pub type Probe = fn(&HashSet<Vfs>) -> Result<Bound, String>;

/// Looks again at a file bound by a socket nobody holds, this long after.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];
const MAX_ROUNDS: usize = 5;

struct Tracked {
    rec: Record,
    /// Whose exit the file waits for: the binder, then a holder.
    owner: Proc,
    owner_comm: Vec<u8>,
    /// Kept for a live holder: what made it stale first.
    stale: Option<String>,
    retries: usize,
    retry_at: Option<Instant>,
}

/// A tracked socket file, for `eghostbuster status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UxsStatus {
    /// Escaped (host::escape).
    pub path: String,
    pub owner_pid: u32,
    pub owner_comm: String,
    pub owner_alive: bool,
    pub state: String,
}

pub struct UxsWork<K: UxsKernel> {
    cfg: UxsConfig,
    kernel: K,
    files: HashMap<FileKey, Tracked>,
    owners: Owners<FileKey>,
    wait: Option<ExitWait>,
    probe: Probe,
    own_pid: u32,
    own_mnt_ns: u64,
    last_counters: (u64, u64, u64),
    metrics: Arc<UxsMetrics>,
}

/// One decision's log line: the message, and its fields (key-value).
fn say(level: Level, event: &'static str, path: &Path, text: std::fmt::Arguments<'_>) {
    log::log!(level, class = "unix_sockets", event = event, path:% = Esc::path(path); "{text}");
}

impl<K: UxsKernel> UxsWork<K> {
    pub fn new(
        cfg: UxsConfig,
        kernel: K,
        probe: Probe,
        metrics: Arc<UxsMetrics>,
    ) -> std::io::Result<Self> {
        let (owners, wait) = Owners::new()?;
        Ok(UxsWork {
            cfg,
            kernel,
            files: HashMap::new(),
            owners,
            wait: Some(wait),
            probe,
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            last_counters: (0, 0, 0),
            metrics,
        })
    }

    /// The thread that hears the owners' exits (once).
    pub fn wake(&mut self) -> Option<Wake> {
        let wait = self.wait.take()?;
        Some(Box::new(move |send, stop| {
            wait.run(&|token| send(Box::new(UxsEvent::Exited(token))), stop)
                .map_err(|e| anyhow::anyhow!("waiting for binders' exits: {e}"))
        }))
    }

    /// Take over what the kernel recorded before this agent started (a
    /// previous instance's pinned table): binders that ended meanwhile are
    /// judged at once.
    pub fn adopt(&mut self) {
        let records = self.kernel.records();
        if records.is_empty() {
            return;
        }
        let mut work = Vec::new();
        for (key, rec) in records {
            work.extend(self.track(key, rec));
        }
        log::info!(
            "adopted {} tracked socket file(s) the kernel recorded before this worker started (pinned, or since loading)",
            self.files.len()
        );
        self.judge(work);
    }

    pub fn handle(&mut self, events: Vec<UxsEvent>) {
        let mut work = Vec::new();
        for ev in events {
            match ev {
                UxsEvent::Bound { tgid, flags, key } => {
                    if flags & UXS_F_TABLE_FULL != 0 {
                        log::debug!(
                            "a socket file bound by pid {tgid} was not recorded: table full"
                        );
                        continue;
                    }
                    if let Some(rec) = self.kernel.record(key) {
                        work.extend(self.track(key, rec));
                    }
                }
                UxsEvent::Exited(token) => {
                    if let Some((p, keys)) = self.owners.exited(token) {
                        self.refresh_comm(p, &keys);
                        work.extend(
                            keys.into_iter()
                                .filter(|k| self.files.get(k).is_some_and(|t| t.owner == p)),
                        );
                    }
                }
            }
        }
        self.judge(work);
        self.gauge();
    }

    /// The command an ended owner last ran (it may have exec'd since it
    /// was first watched), for the log lines.
    fn refresh_comm(&mut self, p: Proc, keys: &[FileKey]) {
        if let Some(comm) = p.comm_now() {
            for k in keys {
                if let Some(t) = self.files.get_mut(k).filter(|t| t.owner == p) {
                    t.owner_comm = comm.clone().into_bytes();
                }
            }
        }
    }

    fn gauge(&self) {
        self.metrics.tracked.store(self.files.len() as u64, Relaxed);
    }

    /// Track one record, or forget it when it is none of our business.
    /// Returns the key when its binder has ended already.
    fn track(&mut self, key: FileKey, rec: Record) -> Option<FileKey> {
        let path = &rec.made.path;
        if rec.made.path_unusable {
            log::debug!(
                "ignoring a socket file bound by pid {}: its path could not be walked ({})",
                rec.made.tgid,
                Esc::path(path)
            );
            self.kernel.forget(key);
            return None;
        }
        match self.cfg.names.classify(path) {
            Standing::Candidate => {}
            Standing::Excluded => {
                log::debug!("not tracking {}: excluded", Esc::path(path));
                self.kernel.forget(key);
                return None;
            }
            Standing::OtherName | Standing::OutOfScope => {
                self.kernel.forget(key);
                return None;
            }
        }
        // the same bind seen twice (adopted from the table, then its event)
        if self.files.get(&key).is_some_and(|t| t.rec == rec) {
            return None;
        }
        if let Some(old) = self.files.remove(&key) {
            self.owners.remove(key, old.owner);
        }
        let owner = rec.made.proc();
        log::debug!(
            "tracking {} (bound by pid {} {})",
            Esc::path(path),
            owner.pid,
            Esc(&rec.made.comm)
        );
        let comm = rec.made.comm.clone();
        self.files.insert(
            key,
            Tracked {
                rec,
                owner,
                owner_comm: comm,
                stale: None,
                retries: 0,
                retry_at: None,
            },
        );
        self.metrics.tracked_total.fetch_add(1, Relaxed);
        (self.owners.add(key, owner) == Added::Gone).then_some(key)
    }

    /// Once a second: kernel counters, polled owners, files due for
    /// another look.
    pub fn tick(&mut self) {
        if let Some((_, drops, full)) = self.kernel.counters() {
            let (_, d0, f0) = self.last_counters;
            if drops > d0 {
                log::warn!(
                    "{} socket-file events lost (ring buffer full); {drops} in all",
                    drops - d0
                );
            }
            if full > f0 {
                log::warn!(
                    "{} socket files not recorded (the kernel's table is full); {full} in all",
                    full - f0
                );
            }
            self.last_counters = (0, drops, full);
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_table_full.store(full, Relaxed);
        }
        // what each owner runs now (an exec changes it), for the log line
        // of its end: a reaped process can no longer be asked
        for t in self.files.values_mut() {
            if let Some(c) = t.owner.comm_now() {
                t.owner_comm = c.into_bytes();
            }
        }
        let mut work = Vec::new();
        for (p, keys) in self.owners.poll() {
            self.refresh_comm(p, &keys);
            work.extend(
                keys.into_iter()
                    .filter(|k| self.files.get(k).is_some_and(|t| t.owner == p)),
            );
        }
        let now = Instant::now();
        for (k, t) in &mut self.files {
            if t.retry_at.is_some_and(|at| at <= now) {
                t.retry_at = None;
                work.push(*k);
            }
        }
        self.judge(work);
        self.gauge();
    }

    fn untrack(&mut self, key: &FileKey) {
        if let Some(t) = self.files.remove(key) {
            self.owners.remove(*key, t.owner);
        }
        self.kernel.forget(*key);
    }

    pub fn status(&self) -> Vec<UxsStatus> {
        let mut v: Vec<UxsStatus> = self
            .files
            .values()
            .map(|t| UxsStatus {
                path: Esc::path(&t.rec.made.path).to_string(),
                owner_pid: t.owner.pid,
                owner_comm: Esc(&t.owner_comm).to_string(),
                owner_alive: t.owner.alive(),
                state: match (&t.stale, t.retry_at) {
                    (_, Some(_)) => "bound by a socket nobody holds; looking again",
                    (Some(_), None) => "stale, kept bound by a live process",
                    (None, None) => "bound",
                }
                .into(),
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Debug figures on the way out.
    pub fn watched(&self) -> usize {
        self.owners.len()
    }
}

mod judge;
