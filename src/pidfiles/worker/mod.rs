//! The PID-file duty of the cleanup worker: opens to write in, verdicts
//! out. A file the kernel saw opened to be (re)written is read once the
//! write is done — at sys_exit of the open nothing is written yet: read
//! when the event arrives, and again a few times while it is empty or
//! partial, and when its writer exits. Then it is the file of the process
//! it names, watched with a pidfd; when that one exits (or the file is
//! found naming a dead or reused PID), the facts are gathered where the
//! writer lives, decided (decide.rs), and checks 2-3 and the atomic
//! removal (files::removal) run over the batch. One log line per decision.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;

use crate::agent::class::Wake;
use crate::files::dir::LockDir;
use crate::files::made::FileKey;
use crate::files::names::{Names, Standing};
use crate::files::owners::{Added, Owners, Proc};
use crate::host::escape::Esc;
use crate::host::pidwatch::ExitWait;
use crate::host::procfs;
use crate::pidfiles::kernel::{PidfEvent, PidfKernel, Record, PIDF_F_TABLE_FULL};
use crate::pidfiles::metrics::PidfMetrics;

pub struct PidfConfig {
    pub dry_run: bool,
    pub names: Names,
}

/// While the content is awaited, the file is read again this long after
/// each read (from the event on); then it is judged as it is.
const READS: [Duration; 6] = [
    Duration::from_millis(20),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(30),
];
const MAX_ROUNDS: usize = 5;

struct Tracked {
    rec: Record,
    /// Whose exit the file waits for: its writer while the content is
    /// awaited, then the process it names, then a holder.
    owner: Option<Proc>,
    owner_comm: Vec<u8>,
    /// Content awaited: when to read next, and reads done.
    awaiting: Option<(Instant, usize)>,
    /// The PID it names, as written and as the host numbers it.
    named: Option<(u32, u32)>,
    /// Kept for a live holder: what made it stale first.
    stale: Option<String>,
}

/// A tracked PID file, for `eghostbuster status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PidfStatus {
    /// Escaped (host::escape).
    pub path: String,
    /// The PID in the file, as written (0: not read yet).
    pub named_pid: u32,
    pub owner_pid: u32,
    pub owner_comm: String,
    pub owner_alive: bool,
    pub state: String,
}

pub struct PidfWork<K: PidfKernel> {
    cfg: PidfConfig,
    kernel: K,
    files: HashMap<FileKey, Tracked>,
    owners: Owners<FileKey>,
    wait: Option<ExitWait>,
    own_pid: u32,
    own_mnt_ns: u64,
    own_pid_ns: u64,
    last_counters: (u64, u64),
    metrics: Arc<PidfMetrics>,
}

/// One decision's log line: the message, and its fields (key-value).
fn say(level: Level, event: &'static str, path: &Path, text: std::fmt::Arguments<'_>) {
    log::log!(level, class = "pid_files", event = event, path:% = Esc::path(path); "{text}");
}

/// A file that is there: its directory, its content, its mtime (ns).
type At = (LockDir, Vec<u8>, i128);

/// A file looked at, and why: its owner ended (which one), or not.
type Look = (FileKey, Option<Proc>);

impl<K: PidfKernel> PidfWork<K> {
    pub fn new(cfg: PidfConfig, kernel: K, metrics: Arc<PidfMetrics>) -> std::io::Result<Self> {
        let (owners, wait) = Owners::new()?;
        Ok(PidfWork {
            cfg,
            kernel,
            files: HashMap::new(),
            owners,
            wait: Some(wait),
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            own_pid_ns: procfs::own_ns("pid")?,
            last_counters: (0, 0),
            metrics,
        })
    }

    /// The thread that hears the owners' exits (once).
    pub fn wake(&mut self) -> Option<Wake> {
        let wait = self.wait.take()?;
        Some(Box::new(move |send, stop| {
            wait.run(&|token| send(Box::new(PidfEvent::Exited(token))), stop)
                .map_err(|e| anyhow::anyhow!("waiting for PID-file owners' exits: {e}"))
        }))
    }

    /// Take over what the kernel recorded before this agent started: each
    /// file is read now, as if just written.
    pub fn adopt(&mut self) {
        let records = self.kernel.records();
        if records.is_empty() {
            return;
        }
        let mut looks = Vec::new();
        for (key, rec) in records {
            looks.extend(self.track(key, rec));
        }
        log::info!(
            "adopted {} tracked PID file(s) the kernel recorded before this worker started (pinned, or since loading)",
            self.files.len()
        );
        self.look(looks);
    }

    pub fn handle(&mut self, events: Vec<PidfEvent>) {
        let mut looks = Vec::new();
        for ev in events {
            match ev {
                PidfEvent::Written { tgid, flags, key } => {
                    if flags & PIDF_F_TABLE_FULL != 0 {
                        log::debug!(
                            "a PID file written by pid {tgid} was not recorded: table full"
                        );
                        continue;
                    }
                    if let Some(rec) = self.kernel.record(key) {
                        looks.extend(self.track(key, rec));
                    }
                }
                PidfEvent::Exited(token) => {
                    if let Some((p, keys)) = self.owners.exited(token) {
                        self.refresh_comm(p, &keys);
                        looks.extend(
                            keys.into_iter()
                                .filter(|k| self.files.get(k).is_some_and(|t| t.owner == Some(p)))
                                .map(|k| (k, Some(p))),
                        );
                    }
                }
            }
        }
        self.look(looks);
        self.gauge();
    }

    /// The command an ended owner last ran (it may have exec'd since it
    /// was first watched), for the log lines.
    fn refresh_comm(&mut self, p: Proc, keys: &[FileKey]) {
        if let Some(comm) = p.comm_now() {
            for k in keys {
                if let Some(t) = self.files.get_mut(k).filter(|t| t.owner == Some(p)) {
                    t.owner_comm = comm.clone().into_bytes();
                }
            }
        }
    }

    fn gauge(&self) {
        self.metrics.tracked.store(self.files.len() as u64, Relaxed);
    }

    /// Track one record (a new file, or a rewrite of a tracked one), or
    /// forget it when it is none of our business. The file is read now.
    fn track(&mut self, key: FileKey, rec: Record) -> Option<Look> {
        let path = &rec.made.path;
        if rec.made.path_unusable {
            log::debug!(
                "ignoring a PID file written by pid {}: its path could not be walked ({})",
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
        // the same open seen twice (adopted from the table, then its event)
        if self
            .files
            .get(&key)
            .is_some_and(|t| t.rec.opened_ns == rec.opened_ns && t.rec.made == rec.made)
        {
            return None;
        }
        if let Some(old) = self.files.remove(&key) {
            if let Some(o) = old.owner {
                self.owners.remove(key, o);
            }
        } else {
            self.metrics.tracked_total.fetch_add(1, Relaxed);
        }
        let writer = rec.made.proc();
        log::debug!(
            "tracking {} (written by pid {} {})",
            Esc::path(path),
            writer.pid,
            Esc(&rec.made.comm)
        );
        let owner = (self.owners.add(key, writer) != Added::Gone).then_some(writer);
        let comm = rec.made.comm.clone();
        self.files.insert(
            key,
            Tracked {
                rec,
                owner,
                owner_comm: comm,
                awaiting: Some((Instant::now(), 0)),
                named: None,
                stale: None,
            },
        );
        Some((key, None))
    }

    /// When the next awaited read is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.files
            .values()
            .filter_map(|t| t.awaiting.map(|(at, _)| at))
            .min()
    }

    /// Awaited reads that are due.
    pub fn on_deadline(&mut self) {
        let now = Instant::now();
        let due: Vec<Look> = self
            .files
            .iter()
            .filter(|(_, t)| t.awaiting.is_some_and(|(at, _)| at <= now))
            .map(|(k, _)| (*k, None))
            .collect();
        self.look(due);
        self.gauge();
    }

    /// Once a second: kernel counters, polled owners.
    pub fn tick(&mut self) {
        if let Some((_, drops, full)) = self.kernel.counters() {
            let (d0, f0) = self.last_counters;
            if drops > d0 {
                log::warn!(
                    "{} PID-file events lost (ring buffer full); {drops} in all",
                    drops - d0
                );
            }
            if full > f0 {
                log::warn!(
                    "{} PID files not recorded (the kernel's table is full); {full} in all",
                    full - f0
                );
            }
            self.last_counters = (drops, full);
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_table_full.store(full, Relaxed);
        }
        // what each owner runs now (an exec changes it), for the log line
        // of its end: a reaped process can no longer be asked
        for t in self.files.values_mut() {
            if let Some(c) = t.owner.and_then(|o| o.comm_now()) {
                t.owner_comm = c.into_bytes();
            }
        }
        let mut looks = Vec::new();
        for (p, keys) in self.owners.poll() {
            self.refresh_comm(p, &keys);
            looks.extend(
                keys.into_iter()
                    .filter(|k| self.files.get(k).is_some_and(|t| t.owner == Some(p)))
                    .map(|k| (k, Some(p))),
            );
        }
        self.look(looks);
        self.gauge();
    }

    fn untrack(&mut self, key: &FileKey) {
        if let Some(t) = self.files.remove(key) {
            if let Some(o) = t.owner {
                self.owners.remove(*key, o);
            }
        }
        self.kernel.forget(*key);
    }

    pub fn status(&self) -> Vec<PidfStatus> {
        let mut v: Vec<PidfStatus> = self
            .files
            .values()
            .map(|t| PidfStatus {
                path: Esc::path(&t.rec.made.path).to_string(),
                named_pid: t.named.map_or(0, |(w, _)| w),
                owner_pid: t.owner.map_or(0, |o| o.pid),
                owner_comm: Esc(&t.owner_comm).to_string(),
                owner_alive: t.owner.is_some_and(|o| o.alive()),
                state: match (&t.awaiting, &t.stale) {
                    (Some(_), _) => "written; its PID not read yet",
                    (None, Some(_)) => "stale, kept for a live holder",
                    (None, None) => "names a live process",
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
