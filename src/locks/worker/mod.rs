//! The lock duty of the cleanup worker: events in, verdicts out. It keeps
//! the table (table.rs) in step with what the kernel records, turns an
//! owner's exit into work, gathers the facts of each lock (gather.rs),
//! decides (decide.rs), runs checks 2-4 and the atomic removal over the
//! batch (files::removal) and logs every decision in one line.
//!
//! The table of record is the kernel's pinned "locks" map: the kernel adds
//! a lock the moment it is created, and this worker changes its owner or
//! forgets it. Exits wait in the pinned "exited" map until dealt with. So
//! an agent that stops, crashes or is upgraded loses nothing: the next one
//! adopts both maps and carries on.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use crate::files::removal::Target;
use crate::host::escape::Field;
use crate::host::procfs;
use crate::locks::decide::Cause;
use crate::locks::kernel::{
    Created, Exit, LockEvent, LockKernel, LockKey, LOCK_F_TABLE_FULL, LOCK_F_UID_SHARE,
};
use crate::locks::metrics::LockMetrics;
use crate::locks::patterns::{LockMatcher, Match};
use crate::locks::resolve::Root;
use crate::locks::table::{Brief, Table, Tracked};

pub struct LockConfig {
    pub dry_run: bool,
    pub matcher: LockMatcher,
}

#[derive(Debug)]
struct Work {
    key: LockKey,
    owner: u32,
    /// Shared by all of one owner's locks (50,000 copies of its command
    /// were 6 MiB).
    cause: Arc<Cause>,
}

struct Candidate {
    lock: Tracked,
    /// " (in the mount namespace of pid N)" or "".
    place: String,
    /// Handed to removal::remove_all for the batch.
    target: Option<Target>,
    reason: String,
    /// What made it stale: kept in the record if a live process keeps it.
    stale: (u32, u32, String),
}

/// A tracked lock, for `eghostbuster status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockStatus {
    /// The path, lossless (`host::escape::Field`: a string when UTF-8,
    /// else its bytes).
    pub path: serde_json::Value,
    pub owner_pid: u32,
    pub owner_comm: String,
    pub owner_alive: bool,
    /// Seconds since the owner started.
    pub owner_age_s: u64,
    /// Seconds since this agent started tracking the lock: since its
    /// creation, or since its adoption from pins for one recorded while no
    /// agent ran (`age_from`). The kernel's record has no creation time.
    #[serde(default)]
    pub lock_age_s: u64,
    /// "created" or "adopted".
    #[serde(default)]
    pub age_from: String,
    /// Machine-readable: "owned" (its owner lives), "held" (its owner
    /// ended; kept for a live process that holds or names it).
    pub state: String,
}

const MAX_ROUNDS: usize = 5;
/// Locks judged and removed together (see judge.rs, evaluate_round).
const CHUNK: usize = 256;
mod judge;
mod track;

pub struct LockWork<K: LockKernel> {
    cfg: LockConfig,
    table: Table<K>,
    /// Owners seen dead once without an exit event (confirmed next tick).
    suspect: HashSet<u32>,
    own_pid: u32,
    own_mnt_ns: u64,
    own_pid_ns: u64,
    prune_at: usize,
    /// Exits in the batch being handled: a lock handed to a parent whose
    /// own exit is in the same batch is judged for that exit at once
    /// (its exit was looked at before it owned anything).
    batch_exits: HashMap<u32, Exit>,
    /// Work found while judging, for the next round.
    deferred: Vec<Work>,
    last_counters: (u64, u64, u64),
    /// Creations not recorded since the last tick because their uid held
    /// its share of the table (issue 11): one summary line per tick.
    over_share: std::collections::BTreeMap<u32, u64>,
    /// Records user space could not store since the last tick.
    unstored: u64,
    metrics: Arc<LockMetrics>,
    /// When the batch being handled reached the worker (decision latency).
    batch_at: std::time::Instant,
}

impl<K: LockKernel> LockWork<K> {
    pub fn new(cfg: LockConfig, kernel: K, metrics: Arc<LockMetrics>) -> std::io::Result<Self> {
        Ok(Self {
            cfg,
            table: Table::new(kernel),
            suspect: HashSet::new(),
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            own_pid_ns: procfs::own_ns("pid")?,
            prune_at: 1024,
            batch_exits: HashMap::new(),
            deferred: Vec::new(),
            last_counters: (0, 0, 0),
            over_share: Default::default(),
            unstored: 0,
            metrics,
            batch_at: std::time::Instant::now(),
        })
    }

    /// Take over what the kernel recorded before this agent started (a
    /// previous instance's pinned tables): the locks, then the exits that
    /// happened meanwhile, which are judged at once.
    pub fn adopt(&mut self) {
        self.batch_at = std::time::Instant::now();
        let keys = self.table.kernel.keys();
        let exits = self.table.kernel.pending_exits();
        let n = keys.len();
        let (pending, known): (Vec<_>, Vec<_>) = keys.into_iter().partition(|k| k.is_pending());
        for key in known {
            if let Some(rec) = self.table.kernel.record(key) {
                self.insert(key, rec);
            }
        }
        for key in pending {
            if let Some(rec) = self.table.kernel.record(key) {
                self.resolve_pending(key, rec);
            }
        }
        self.table.mark_adopted();
        if n > 0 || !exits.is_empty() {
            log::info!(
                "adopted {} tracked lock(s) and {} exit(s) recorded while no agent ran",
                self.table.len(),
                exits.len()
            );
        }
        self.handle(
            exits
                .into_iter()
                .map(|e| LockEvent::Exit(Box::new(e)))
                .collect(),
        );
    }

    pub fn handle(&mut self, events: Vec<LockEvent>) {
        self.batch_at = std::time::Instant::now();
        let mut work = Vec::new();
        let mut exited = Vec::new();
        for ev in events {
            match ev {
                LockEvent::Created(c) => self.on_created(c),
                LockEvent::NameGone { tgid } => self.on_name_gone(tgid),
                LockEvent::Exit(e) => {
                    exited.push(e.tgid);
                    self.batch_exits.insert(e.tgid, (*e).clone());
                    self.on_exit(*e, &mut work);
                }
            }
        }
        self.evaluate(work);
        self.batch_exits.clear();
        for tgid in exited {
            self.table.kernel.exit_done(tgid);
        }
        self.table.kernel.flush();
        self.gauge();
    }

    fn gauge(&self) {
        self.metrics.tracked.store(self.table.len() as u64, Relaxed);
    }

    fn on_created(&mut self, c: Created) {
        // counted here, said once per tick (tick): a flood of creations
        // must not become a flood of log lines
        if c.flags & LOCK_F_UID_SHARE != 0 {
            *self.over_share.entry(c.fsuid).or_default() += 1;
            self.metrics.removal_failures_total.fetch_add(1, Relaxed);
            return;
        }
        if c.flags & LOCK_F_TABLE_FULL != 0 {
            self.metrics.removal_failures_total.fetch_add(1, Relaxed);
            return;
        }
        // the record may already be gone again, or belong to a newer file
        // with the same inode number: the table holds the truth
        let Some(rec) = self.table.kernel.record(c.key) else {
            return;
        };
        if self.table.len() >= self.prune_at {
            self.prune();
        }
        if c.key.is_pending() {
            self.resolve_pending(c.key, rec);
        } else {
            self.insert(c.key, rec);
        }
    }

    fn root_for(&self, mnt_ns: u64, prefer: &[u32]) -> Root {
        Root::of(mnt_ns, self.own_mnt_ns, prefer)
    }

    /// Work for each lock of an owner that exited, added to `work`.
    fn on_exit(&mut self, e: Exit, work: &mut Vec<Work>) {
        if !self.table.owns_any(e.tgid) {
            return;
        }
        self.suspect.remove(&e.tgid);
        let cause = Arc::new(Cause::of(&e));
        let gone = Arc::new(Cause::Gone { pid: e.tgid });
        let start = procfs::boottime_ns_to_ticks(e.start_boottime);
        // an owner whose exit we missed, and whose PID was reused, has
        // locks of another start time
        work.extend(self.table.briefs_of(e.tgid).map(|b| {
            Work {
                key: b.key,
                owner: e.tgid,
                cause: if b.owner_start_ticks() == start {
                    &cause
                } else {
                    &gone
                }
                .clone(),
            }
        }));
    }

    /// Once a second: kernel counters, and owners that died unseen (lost
    /// sample, full map), seen dead on two ticks in a row so that an exit
    /// still on its way through the ring buffer is not taken for one.
    pub fn tick(&mut self) {
        self.batch_at = std::time::Instant::now();
        if let Some((drops, full, table)) = self.table.kernel.counters() {
            let (d0, f0, t0) = self.last_counters;
            if drops > d0 {
                log::warn!(
                    "{} lock events lost (ring buffer full; raise --ring-buffer-size); {drops} in all",
                    drops - d0
                );
            }
            if full > f0 {
                log::warn!(
                    "{} owners not watched (owners map full; raise --max-owners); {full} in all",
                    full - f0
                );
            }
            if table > t0 {
                log::warn!(
                    "{} locks or exits not recorded (table full; raise --max-locks / --max-owners); {table} in all",
                    table - t0
                );
            }
            self.last_counters = (drops, full, table);
            for (uid, n) in std::mem::take(&mut self.over_share) {
                log::warn!(
                    "{n} locks of uid {uid} not recorded: it holds its share of the locks table (half of --max-locks)"
                );
            }
            if self.unstored > 0 {
                log::warn!(
                    "{} locks taken by name not recorded: the locks table is full (--max-locks)",
                    std::mem::take(&mut self.unstored)
                );
            }
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_owners_full.store(full + table, Relaxed);
        }
        let mut work = Vec::new();
        for (pid, start) in self.table.owners() {
            let gone = Arc::new(Cause::Gone { pid });
            let alive = procfs::stat(pid).is_some_and(|s| s.alive() && s.start_ticks == start);
            if alive {
                self.suspect.remove(&pid);
            } else if !self.suspect.insert(pid) {
                self.suspect.remove(&pid);
                // a lock kept for an unexplained reference waits for its
                // next look (judge.rs, recheck_later)
                let now = Instant::now();
                let keys = self.table.of_owner(pid);
                let due = keys.into_iter().filter(|k| self.table.recheck_due(k, now));
                work.extend(due.map(|key| Work {
                    key,
                    owner: pid,
                    cause: gone.clone(),
                }));
            }
        }
        self.evaluate(work);
        self.table.compact();
        self.table.kernel.flush();
        self.gauge();
    }

    /// A decision was logged: its latency since the batch came in.
    fn decided(&self) {
        self.metrics.decision_delay.observe(self.batch_at.elapsed());
    }

    /// SIGHUP: a new matcher (paths, includes, excludes). Tracked locks
    /// are classified again; those now out of scope are no longer tracked.
    pub fn set_matcher(&mut self, matcher: LockMatcher) -> usize {
        self.cfg.matcher = matcher;
        let mut dropped = 0;
        for (key, path) in self.table.paths() {
            let class = self.cfg.matcher.classify(&path);
            if matches!(class, Match::OutOfScope | Match::NotLockName) {
                self.table.untrack(&key);
                dropped += 1;
            } else {
                self.table.rename(key, path, class);
            }
        }
        self.gauge();
        dropped
    }

    pub fn matcher(&self) -> &LockMatcher {
        &self.cfg.matcher
    }

    /// What the status file shows changed? Hashed in place, no allocation
    /// per lock (with 50,000 locks, a string each was 9 MiB a second).
    pub fn status_digest(&self, h: &mut dyn std::hash::Hasher) {
        use std::hash::Hash;
        let mut h = h;
        self.table.len().hash(&mut h);
        for l in self.table.briefs() {
            (l.key.dev, l.key.ino, l.owner, l.owner_start, l.stale).hash(&mut h);
        }
    }

    /// At most `limit` tracked locks for the status file, and how many
    /// there are. Those kept stale for a live process are chosen first,
    /// then the oldest; the chosen are listed stale first, then by path.
    /// Only their records are read from the kernel.
    pub fn status(&self, limit: usize) -> (Vec<LockStatus>, usize) {
        let now_ticks = procfs::uptime_ticks();
        let now = std::time::SystemTime::now();
        let mut chosen: Vec<Brief> = self.table.briefs().collect();
        let pick = |a: &Brief, b: &Brief| {
            (!a.stale, a.since, a.key.dev, a.key.ino)
                .cmp(&(!b.stale, b.since, b.key.dev, b.key.ino))
        };
        if chosen.len() > limit && limit > 0 {
            chosen.select_nth_unstable_by(limit - 1, pick);
        }
        chosen.truncate(limit);
        let mut all: Vec<(Brief, Tracked)> = chosen
            .into_iter()
            .filter_map(|b| Some((b, self.table.get(&b.key)?)))
            .collect();
        all.sort_by(|(_, a), (_, b)| {
            (a.rec.stale.is_none(), &a.rec.path).cmp(&(b.rec.stale.is_none(), &b.rec.path))
        });
        // one look per owner, not per lock (an owner may have thousands)
        let mut alive_owners: HashMap<(u32, u64), bool> = HashMap::new();
        let v = all
            .into_iter()
            .map(|(b, l)| {
                let alive = *alive_owners
                    .entry((l.owner(), l.owner_start_ticks()))
                    .or_insert_with(|| {
                        procfs::stat(l.owner())
                            .is_some_and(|s| s.alive() && s.start_ticks == l.owner_start_ticks())
                    });
                LockStatus {
                    path: serde_json::to_value(Field::path(&l.rec.path)).unwrap_or_default(),
                    owner_pid: l.owner(),
                    owner_comm: l.rec.comm.clone(),
                    owner_alive: alive,
                    owner_age_s: now_ticks.saturating_sub(l.owner_start_ticks())
                        / procfs::clock_ticks_per_sec(),
                    lock_age_s: now.duration_since(l.since).map_or(0, |d| d.as_secs()),
                    age_from: if b.adopted { "adopted" } else { "created" }.into(),
                    state: if l.rec.stale.is_some() {
                        "held"
                    } else {
                        "owned"
                    }
                    .into(),
                }
            })
            .collect();
        (v, self.table.len())
    }
}

#[cfg(test)]
mod tests;
