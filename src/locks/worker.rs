//! The lock half of the cleanup worker: the table of tracked locks, owner
//! exits turned into verdicts (verdict.rs), the facts for the checks
//! gathered (procfs.rs, lockfile.rs) and stale files removed (removal.rs),
//! every decision logged in one line.
//!
//! The table of record is the kernel's pinned "locks" map: the kernel adds
//! a lock the moment it is created, and this worker changes its owner or
//! forgets it. Exits wait in the pinned "exited" map until dealt with. So
//! an agent that stops, crashes or is upgraded loses nothing: the next one
//! adopts both maps and carries on.

use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use crate::agent::metrics::{KeptReason, Metrics};
use crate::files::dir::{self, DirContent};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::verdict::{self, ExitKind, Keep, PidInFile};
use crate::host::procfs::{self, FileId, NsPid};
use crate::locks::kernel::{
    Created, Exit, LockEvent, LockKey, LockKind, Record, LOCK_F_OWNER_UNTRACKED,
    LOCK_F_PATH_TRUNCATED, LOCK_F_TABLE_FULL, LOCK_F_UNREACHABLE,
};
use crate::locks::patterns::{LockMatcher, Match};
use crate::locks::verdict::{self as lock_verdict, OnExit};

/// The kernel side's tables, as the worker uses them.
pub trait LockKernel {
    fn record(&self, key: LockKey) -> Option<Record>;
    fn store(&self, key: LockKey, rec: &Record) -> bool;
    fn forget(&self, key: LockKey);
    /// Every record, for adoption at start.
    fn records(&self) -> Vec<(LockKey, Record)>;
    /// Exits not dealt with yet.
    fn pending_exits(&self) -> Vec<Exit>;
    fn exit_done(&self, tgid: u32);
    /// Have the kernel report this process's exit.
    fn watch(&self, pid: u32) -> bool;
    /// (ring buffer drops, owners map full, locks/exited table full)
    fn counters(&self) -> Option<(u64, u64, u64)>;
}

pub struct LockConfig {
    pub dry_run: bool,
    pub matcher: LockMatcher,
}

#[derive(Debug, Clone)]
struct Tracked {
    key: LockKey,
    file: FileId,
    class: Match,
    rec: Record,
}

impl Tracked {
    fn owner(&self) -> u32 {
        self.rec.tgid
    }

    fn owner_start_ticks(&self) -> u64 {
        procfs::boottime_ns_to_ticks(self.rec.owner_start)
    }

    /// Why it is stale, once judged so and kept for a live process.
    fn stale_reason(&self) -> Option<String> {
        self.rec.stale.as_ref().map(|(pid, status, comm)| {
            format!(
                "owner pid {pid} ({comm}) {}",
                ExitKind::from_wait_status(*status)
            )
        })
    }
}

#[derive(Debug, Clone)]
enum Cause {
    /// The owner's whole thread group exited (seen by BPF).
    Exited {
        pid: u32,
        comm: String,
        status: u32,
        ppid: u32,
        parent_subreaper: bool,
        parent_start: u64,
        /// Its tgid in its own PID namespace, and that namespace.
        ns_tgid: u32,
        pid_ns: u64,
    },
    /// The owner is gone, and no exit was seen for it.
    Gone { pid: u32 },
}

impl Cause {
    fn of(e: &Exit) -> Self {
        Cause::Exited {
            pid: e.tgid,
            comm: e.comm.clone(),
            status: e.status,
            ppid: e.ppid,
            parent_subreaper: e.parent_subreaper,
            parent_start: e.parent_start_boottime,
            ns_tgid: e.ns_tgid,
            pid_ns: e.pid_ns,
        }
    }

    fn pid(&self) -> u32 {
        match *self {
            Cause::Exited { pid, .. } | Cause::Gone { pid } => pid,
        }
    }
}

#[derive(Debug)]
struct Work {
    key: LockKey,
    owner: u32,
    cause: Cause,
}

/// Where a lock's path is resolved (check 5: in the creator's mount
/// namespace).
enum Root {
    /// Our own mount namespace.
    Here,
    /// Another one, through a live process in it: a descriptor on
    /// /proc/PID/root, under which paths resolve with RESOLVE_IN_ROOT.
    Inside { root: OwnedFd, pid: u32 },
    /// Another one that no live process shares (gone, or held only by a
    /// bind mount): nothing to resolve it through.
    Unreachable,
}

impl Root {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Root::Inside { root, .. } => Some(root.as_fd()),
            _ => None,
        }
    }

    /// For log lines: where it was judged.
    fn place(&self) -> String {
        match self {
            Root::Inside { pid, .. } => format!(" (in the mount namespace of pid {pid})"),
            _ => String::new(),
        }
    }
}

/// The root of a live process's mount namespace view, or None.
fn open_proc_root(pid: u32, mnt_ns: u64) -> Option<OwnedFd> {
    let fd = nix::fcntl::open(
        format!("/proc/{pid}/root").as_str(),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ok()?;
    // SAFETY: a fresh descriptor from open.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // the PID may have ended and been reused between the choice and the open
    (procfs::ns_of(pid, "mnt") == Some(mnt_ns)).then_some(fd)
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
#[derive(Debug, Clone)]
pub struct LockStatus {
    pub path: String,
    pub owner_pid: u32,
    pub owner_comm: String,
    pub owner_alive: bool,
    /// Seconds since the owner started (locks carry no creation time).
    pub owner_age_s: u64,
    pub stale_kept: bool,
}

const MAX_ROUNDS: usize = 5;

pub struct LockWork<K: LockKernel> {
    cfg: LockConfig,
    kernel: K,
    locks: HashMap<LockKey, Tracked>,
    by_owner: HashMap<u32, HashSet<LockKey>>,
    /// The newest tracked lock on each file (device + inode number).
    by_file: HashMap<FileId, LockKey>,
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
    metrics: Arc<Metrics>,
}

impl<K: LockKernel> LockWork<K> {
    pub fn new(cfg: LockConfig, kernel: K, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        Ok(Self {
            cfg,
            kernel,
            locks: HashMap::new(),
            by_owner: HashMap::new(),
            by_file: HashMap::new(),
            suspect: HashSet::new(),
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            own_pid_ns: procfs::own_ns("pid")?,
            prune_at: 1024,
            batch_exits: HashMap::new(),
            deferred: Vec::new(),
            last_counters: (0, 0, 0),
            metrics,
        })
    }

    /// Take over what the kernel recorded before this agent started (a
    /// previous instance's pinned tables): the locks, then the exits that
    /// happened meanwhile, which are judged at once.
    pub fn adopt(&mut self) {
        let records = self.kernel.records();
        let exits = self.kernel.pending_exits();
        let n = records.len();
        let (pending, known): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|(k, _)| k.is_pending());
        for (key, rec) in known {
            self.insert(key, rec);
        }
        for (key, rec) in pending {
            self.resolve_pending(key, rec);
        }
        if n > 0 || !exits.is_empty() {
            log::info!(
                "adopted {} tracked lock(s) and {} exit(s) recorded while no agent ran",
                self.locks.len(),
                exits.len()
            );
        }
        self.handle(exits.into_iter().map(LockEvent::Exit).collect());
    }

    pub fn handle(&mut self, events: Vec<LockEvent>) {
        let mut work = Vec::new();
        let mut exited = Vec::new();
        for ev in events {
            match ev {
                LockEvent::Created(c) => self.on_created(c),
                LockEvent::NameGone { tgid } => self.on_name_gone(tgid),
                LockEvent::Exit(e) => {
                    exited.push(e.tgid);
                    self.batch_exits.insert(e.tgid, e.clone());
                    work.extend(self.on_exit(e));
                }
            }
        }
        self.evaluate(work);
        self.batch_exits.clear();
        for tgid in exited {
            self.kernel.exit_done(tgid);
        }
        self.metrics
            .locks_tracked
            .store(self.locks.len() as u64, Relaxed);
    }

    fn kept(&self, why: KeptReason) {
        self.metrics.kept(why);
    }

    fn on_created(&mut self, c: Created) {
        if c.flags & LOCK_F_TABLE_FULL != 0 {
            log::warn!(
                "a lock created by pid {} was not recorded: the locks table is full (--max-locks)",
                c.tgid
            );
            self.metrics
                .lock_removal_failures_total
                .fetch_add(1, Relaxed);
            return;
        }
        // the record may already be gone again, or belong to a newer file
        // with the same inode number: the table holds the truth
        let Some(rec) = self.kernel.record(c.key) else {
            return;
        };
        if self.locks.len() >= self.prune_at {
            self.prune();
        }
        if c.key.is_pending() {
            self.resolve_pending(c.key, rec);
        } else {
            self.insert(c.key, rec);
        }
    }

    /// The root to resolve a path of mount namespace `mnt_ns` under; the
    /// processes in `prefer` are tried first.
    fn root_for(&self, mnt_ns: u64, prefer: &[u32]) -> Root {
        if mnt_ns == self.own_mnt_ns {
            return Root::Here;
        }
        for pid in procfs::procs_in_mnt_ns(mnt_ns, prefer) {
            if let Some(root) = open_proc_root(pid, mnt_ns) {
                return Root::Inside { root, pid };
            }
        }
        Root::Unreachable
    }

    /// A lock taken by name (link, mkdir, symlink, rename): the kernel
    /// knew only the caller's string. Resolve it where the caller lives,
    /// refusing symlinks, and key the record by the real device and inode.
    /// A plain rename only moves a lock already tracked: follow it.
    ///
    /// Between the creation and this lookup (milliseconds) the name could
    /// be replaced; a replacement taken by any tracked way is recorded
    /// again by the kernel, after this one, and its creator then wins.
    fn resolve_pending(&mut self, pkey: LockKey, mut rec: Record) {
        self.kernel.forget(pkey);
        let raw = rec.path.clone();
        if rec.flags & (LOCK_F_PATH_TRUNCATED | LOCK_F_UNREACHABLE) != 0 {
            log::debug!(
                "ignoring {} by pid {} ({}): its directory could not be resolved",
                raw.display(),
                rec.tgid,
                rec.comm
            );
            return;
        }
        let Some(path) = dir::normalize(&raw) else {
            return;
        };
        if matches!(
            self.cfg.matcher.classify(&path),
            Match::OutOfScope | Match::NotLockName
        ) {
            return;
        }
        let root = self.root_for(rec.mnt_ns, &[rec.tgid]);
        if matches!(root, Root::Unreachable) {
            log::info!(
                "not tracking {}: made by pid {} ({}) in a mount namespace no live process shares",
                path.display(),
                rec.tgid,
                rec.comm
            );
            return;
        }
        // the raw name, resolved refusing every symlink: then `..` means
        // what normalize() made of it
        let st = match dir::open_parent_in(root.fd(), &raw).and_then(|d| d.stat(d.name())) {
            Ok(st) => st,
            Err(e) => {
                log::debug!(
                    "not tracking {} ({:?} by pid {} ({})): {e}",
                    path.display(),
                    rec.kind,
                    rec.tgid,
                    rec.comm
                );
                return;
            }
        };
        let key = LockKey::of(st.id);
        rec.path = path;
        // the lock already tracked on this inode, whatever its key (one
        // from an open carries the inode generation, ours cannot)
        let tracked = self.by_file.get(&st.id).copied();
        if let Some(t) = tracked.and_then(|k| self.locks.get(&k)) {
            if matches!(rec.kind, LockKind::Moved | LockKind::Rename) {
                if t.rec.path != rec.path {
                    self.follow(t.key, rec.path);
                }
                return;
            }
            if self.still_named(t) {
                return; // another name for a tracked lock's inode
            }
        }
        if rec.kind == LockKind::Moved {
            return; // not exclusive: a lock only if it already was one
        }
        let shape_ok = match rec.kind {
            LockKind::Mkdir => st.dir,
            LockKind::Symlink => st.symlink,
            _ => st.regular,
        };
        if !shape_ok {
            log::debug!(
                "not tracking {}: no longer a {}",
                rec.path.display(),
                rec.kind.what()
            );
            return;
        }
        if !self.kernel.store(key, &rec) {
            log::warn!(
                "a lock created by pid {} was not recorded: the locks table is full (--max-locks)",
                rec.tgid
            );
            return;
        }
        self.insert(key, rec);
    }

    /// A tracked lock was renamed to another lock name: track it there.
    fn follow(&mut self, key: LockKey, to: PathBuf) {
        let class = self.cfg.matcher.classify(&to);
        let Some(l) = self.locks.get_mut(&key) else {
            return;
        };
        log::info!(
            "following {} (pid {} {}): renamed to {}",
            l.rec.path.display(),
            l.rec.tgid,
            l.rec.comm,
            to.display()
        );
        l.rec.path = to;
        l.class = class;
        let rec = l.rec.clone();
        if !self.kernel.store(key, &rec) {
            log::warn!("could not update the record of {}", rec.path.display());
        }
    }

    /// Does the lock's name still refer to its inode, where it was made?
    fn still_named(&self, l: &Tracked) -> bool {
        let root = self.root_for(l.rec.mnt_ns, &[l.owner()]);
        dir::open_parent_in(root.fd(), &l.rec.path)
            .and_then(|d| d.stat(d.name()))
            .is_ok_and(|st| st.id == l.file)
    }

    /// Track one record, or forget it when it is none of our business.
    fn insert(&mut self, key: LockKey, rec: Record) {
        if rec.flags & (LOCK_F_PATH_TRUNCATED | LOCK_F_UNREACHABLE) != 0 {
            log::debug!(
                "ignoring a lock created by pid {} ({}): its path could not be resolved ({})",
                rec.tgid,
                rec.comm,
                rec.path.display()
            );
            self.kernel.forget(key);
            return;
        }
        let class = self.cfg.matcher.classify(&rec.path);
        if matches!(class, Match::OutOfScope | Match::NotLockName) {
            self.kernel.forget(key);
            return;
        }
        if rec.flags & LOCK_F_OWNER_UNTRACKED != 0 {
            log::warn!(
                "owners map full (--max-owners): the exit of pid {} ({}) is only noticed by polling",
                rec.tgid,
                rec.comm
            );
        }
        log::debug!(
            "tracking {} (pid {} {}, {:?})",
            rec.path.display(),
            rec.tgid,
            rec.comm,
            rec.kind
        );
        // A new file on the inode number of a tracked one: that older lock
        // was released (its inode freed), whatever its name. Forget it here;
        // its own kernel record has its own key and is deleted with it.
        if let Some(old) = self.by_file.get(&key.file()).copied() {
            if old != key {
                self.untrack(&old);
            }
        }
        self.drop_entry(&key);
        self.by_owner.entry(rec.tgid).or_default().insert(key);
        self.by_file.insert(key.file(), key);
        self.locks.insert(
            key,
            Tracked {
                key,
                file: key.file(),
                class,
                rec,
            },
        );
        self.metrics.locks_tracked_total.fetch_add(1, Relaxed);
    }

    /// The owner removed or renamed something: stop tracking whichever of
    /// its locks no longer exists under its name.
    fn on_name_gone(&mut self, tgid: u32) {
        let Some(keys) = self.by_owner.get(&tgid) else {
            return;
        };
        let gone: Vec<LockKey> = keys
            .iter()
            .filter(|k| !self.locks.get(k).is_some_and(|l| self.still_named(l)))
            .copied()
            .collect();
        for k in gone {
            self.untrack(&k);
        }
    }

    fn on_exit(&mut self, e: Exit) -> Vec<Work> {
        let Some(keys) = self.by_owner.get(&e.tgid) else {
            return Vec::new();
        };
        self.suspect.remove(&e.tgid);
        let cause = Cause::of(&e);
        let start = procfs::boottime_ns_to_ticks(e.start_boottime);
        keys.iter()
            .map(|&key| {
                // an owner whose exit we missed, and whose PID was reused
                let same = self
                    .locks
                    .get(&key)
                    .is_some_and(|l| l.owner_start_ticks() == start);
                Work {
                    key,
                    owner: e.tgid,
                    cause: if same {
                        cause.clone()
                    } else {
                        Cause::Gone { pid: e.tgid }
                    },
                }
            })
            .collect()
    }

    /// Once a second: kernel counters, and owners that died unseen (lost
    /// sample, full map), seen dead on two ticks in a row so that an exit
    /// still on its way through the ring buffer is not taken for one.
    pub fn tick(&mut self) {
        if let Some((drops, full, table)) = self.kernel.counters() {
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
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_owners_full.store(full + table, Relaxed);
        }
        let mut work = Vec::new();
        let owners: Vec<(u32, u64)> = self
            .by_owner
            .iter()
            .filter_map(|(&pid, keys)| {
                Some((
                    pid,
                    self.locks.get(keys.iter().next()?)?.owner_start_ticks(),
                ))
            })
            .collect();
        for (pid, start) in owners {
            let alive = procfs::stat(pid).is_some_and(|s| s.alive() && s.start_ticks == start);
            if alive {
                self.suspect.remove(&pid);
            } else if !self.suspect.insert(pid) {
                self.suspect.remove(&pid);
                let keys = self.by_owner.get(&pid).cloned().unwrap_or_default();
                work.extend(keys.into_iter().map(|key| Work {
                    key,
                    owner: pid,
                    cause: Cause::Gone { pid },
                }));
            }
        }
        self.evaluate(work);
        self.metrics
            .locks_tracked
            .store(self.locks.len() as u64, Relaxed);
    }

    pub fn status(&self) -> Vec<LockStatus> {
        let now_ticks = procfs::uptime_ticks();
        let mut v: Vec<LockStatus> = self
            .locks
            .values()
            .map(|l| {
                let alive = procfs::stat(l.owner())
                    .is_some_and(|s| s.alive() && s.start_ticks == l.owner_start_ticks());
                LockStatus {
                    path: l.rec.path.display().to_string(),
                    owner_pid: l.owner(),
                    owner_comm: l.rec.comm.clone(),
                    owner_alive: alive,
                    owner_age_s: now_ticks.saturating_sub(l.owner_start_ticks())
                        / procfs::clock_ticks_per_sec(),
                    stale_kept: l.rec.stale.is_some(),
                }
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Forget a lock here only (the kernel record stays).
    fn drop_entry(&mut self, key: &LockKey) {
        if self.by_file.get(&key.file()) == Some(key) {
            self.by_file.remove(&key.file());
        }
        if let Some(lock) = self.locks.remove(key) {
            if let Some(set) = self.by_owner.get_mut(&lock.owner()) {
                set.remove(key);
                if set.is_empty() {
                    self.by_owner.remove(&lock.owner());
                }
            }
        }
    }

    /// Tracking ends: here and in the kernel's table.
    fn untrack(&mut self, key: &LockKey) {
        self.drop_entry(key);
        self.kernel.forget(*key);
    }

    fn set_owner(
        &mut self,
        key: LockKey,
        pid: u32,
        start_ns: u64,
        comm: String,
        stale: Option<(u32, u32, String)>,
    ) {
        let Some(mut lock) = self.locks.get(&key).cloned() else {
            return;
        };
        self.drop_entry(&key);
        lock.rec.tgid = pid;
        lock.rec.owner_start = start_ns;
        lock.rec.comm = comm;
        if stale.is_some() {
            lock.rec.stale = stale;
        }
        if !self.kernel.store(key, &lock.rec) {
            log::warn!("could not update the record of {}", lock.rec.path.display());
        }
        self.by_owner.entry(pid).or_default().insert(key);
        self.by_file.insert(key.file(), key);
        if !self.kernel.watch(pid) {
            log::warn!(
                "owners map full: the exit of pid {pid} ({}) is only noticed by polling",
                lock.rec.comm
            );
        }
        self.locks.insert(key, lock);
    }

    /// Forget locks whose names are gone (released by someone else).
    fn prune(&mut self) {
        let gone: Vec<LockKey> = self
            .locks
            .values()
            .filter(|l| !self.still_named(l))
            .map(|l| l.key)
            .collect();
        for k in &gone {
            self.untrack(k);
        }
        self.prune_at = (self.locks.len() * 2).max(1024);
    }

    fn evaluate(&mut self, mut work: Vec<Work>) {
        for _ in 0..MAX_ROUNDS {
            if work.is_empty() {
                return;
            }
            work = self.evaluate_round(work);
        }
        for w in work {
            if let Some(lock) = self.locks.get(&w.key) {
                log::info!(
                    "kept {}: its owner kept changing while it was checked",
                    lock.rec.path.display()
                );
                self.kept(KeptReason::Other);
            }
            self.untrack(&w.key);
        }
    }

    /// One pass over a batch: cheap per-file checks, then the shared batch
    /// removal. Returns work for owners that died while being handed a lock.
    fn evaluate_round(&mut self, work: Vec<Work>) -> Vec<Work> {
        let mut next = Vec::new();
        let mut cands = Vec::new();
        let mut ignore = vec![self.own_pid];
        for w in work {
            let Some(lock) = self.locks.get(&w.key).cloned() else {
                continue;
            };
            if lock.owner() != w.owner {
                continue;
            }
            ignore.push(w.cause.pid());
            if let Some(c) = self.prepare(lock, &w.cause) {
                cands.push(c);
            }
        }
        next.append(&mut self.deferred);
        if cands.is_empty() {
            return next;
        }
        let targets: Vec<Target> = cands.iter_mut().filter_map(|c| c.target.take()).collect();
        let outcomes = removal::remove_all(&targets, &ignore, self.cfg.dry_run);
        for (c, outcome) in cands.into_iter().zip(outcomes) {
            let path = c.lock.rec.path.display();
            let place = &c.place;
            match outcome {
                Outcome::Removed => {
                    log::info!("removed {path}{place}: {}", c.reason);
                    self.metrics.locks_removed_total.fetch_add(1, Relaxed);
                    self.untrack(&c.lock.key);
                }
                Outcome::WouldRemove => {
                    log::info!("would remove {path}{place}: {} (dry run)", c.reason);
                    self.untrack(&c.lock.key);
                }
                Outcome::Kept(keep) => self.keep(&c, keep, &mut next),
                Outcome::Gone => {
                    log::debug!("{path} was removed by someone else");
                    self.untrack(&c.lock.key);
                }
                Outcome::Failed(e) => {
                    log::error!("failed to remove {path}: {e}; {}", c.reason);
                    self.metrics
                        .lock_removal_failures_total
                        .fetch_add(1, Relaxed);
                    self.untrack(&c.lock.key);
                }
            }
        }
        next
    }

    /// Per-file steps before the /proc walk: is it still there and ours,
    /// what its owner's exit means, what PID it names.
    fn prepare(&mut self, lock: Tracked, cause: &Cause) -> Option<Candidate> {
        let path = lock.rec.path.display().to_string();
        let key = lock.key;
        let done = |s: &mut Self| {
            s.untrack(&key);
            None
        };
        // A lock made in another mount namespace (a container, or a
        // sandboxed service) is judged there, through a live process that
        // shares it. When none does, it is judged only if its path names
        // the very same inode here too; check 1 (device + inode) decides.
        // Otherwise the name here is some other file, and is kept.
        let root = self.root_for(lock.rec.mnt_ns, &[lock.owner(), cause.pid()]);
        let foreign = matches!(root, Root::Unreachable);
        if foreign {
            log::info!(
                "{path}: no live process shares the mount namespace pid {} ({}) made it in; judging the same path here",
                lock.owner(),
                lock.rec.comm
            );
        }
        let released = |s: &mut Self, what: &str| {
            if foreign {
                log::info!(
                    "kept {path}: created in another mount namespace by pid {} ({}); {what} here",
                    lock.owner(),
                    lock.rec.comm
                );
                s.kept(KeptReason::OtherNamespace);
            } else {
                log::debug!("{path} was released ({what})");
            }
            s.untrack(&key);
            None
        };
        let dir = match dir::open_parent_in(root.fd(), &lock.rec.path) {
            Ok(d) => d,
            Err(e) if dir::is_gone(&e) => return released(self, "its directory is gone"),
            Err(e) if dir::is_symlink_refusal(&e) => {
                log::info!("kept {path}: a directory on its path is a symlink");
                self.kept(KeptReason::Symlink);
                return done(self);
            }
            Err(e) => {
                log::warn!("kept {path}: cannot open its directory: {e}");
                self.kept(KeptReason::Other);
                return done(self);
            }
        };
        let st = match dir.stat(dir.name()) {
            Ok(st) => st,
            Err(e) if dir::is_gone(&e) => return released(self, "the name is gone"),
            Err(e) => {
                log::warn!("kept {path}: cannot stat it: {e}");
                self.kept(KeptReason::Other);
                return done(self);
            }
        };
        if st.id != lock.file {
            return released(self, "the name belongs to another file");
        }
        let kind = lock.rec.kind;
        let shape_ok = match kind {
            LockKind::Mkdir => st.dir,
            LockKind::Symlink => st.symlink,
            _ => st.regular,
        };
        if !shape_ok {
            log::info!("kept {path}: no longer a {}", kind.what());
            self.kept(KeptReason::Other);
            return done(self);
        }
        // what names the owner: a symlink's target (never followed), a
        // lock directory's one small file, or the file's first line
        let mut other_data = None;
        let (pid, shape) = match kind {
            LockKind::Symlink => (
                dir.read_link(dir.name())
                    .ok()
                    .and_then(|t| verdict::parse_symlink_owner(&t)),
                Shape::File,
            ),
            LockKind::Mkdir => match dir.dir_content(dir.name()) {
                Ok(DirContent::Empty) => (None, Shape::Dir(None)),
                Ok(DirContent::One { name, id, head }) => {
                    (verdict::parse_pid_line(&head), Shape::Dir(Some((name, id))))
                }
                Ok(DirContent::Other(why)) => {
                    other_data = Some(why);
                    (None, Shape::Dir(None))
                }
                Err(e) => {
                    log::warn!("kept {path}: cannot read the lock directory: {e}");
                    self.kept(KeptReason::Other);
                    return done(self);
                }
            },
            _ => (
                dir.read_head(dir.name())
                    .ok()
                    .and_then(|h| verdict::parse_pid_line(&h)),
                Shape::File,
            ),
        };

        let (reason, stale) = match (cause, lock.stale_reason()) {
            (Cause::Gone { pid }, None) => {
                log::warn!(
                    "kept {path}: owner pid {pid} ({}) exited unseen (exit status unknown; events lost?)",
                    lock.rec.comm
                );
                self.kept(KeptReason::ExitUnseen);
                return done(self);
            }
            (Cause::Gone { pid: p }, Some(why)) => (
                format!("{why}; pid {p} ({}) that kept it is gone", lock.rec.comm),
                lock.rec.stale.clone().expect("stale"),
            ),
            (
                Cause::Exited {
                    pid: p,
                    comm,
                    status,
                    ..
                },
                Some(why),
            ) => (
                format!(
                    "{why}; pid {p} ({comm}) that kept it {}",
                    ExitKind::from_wait_status(*status)
                ),
                lock.rec.stale.clone().expect("stale"),
            ),
            (
                Cause::Exited {
                    pid: p,
                    comm,
                    status,
                    ppid,
                    parent_subreaper,
                    parent_start,
                    ns_tgid,
                    pid_ns,
                },
                None,
            ) => {
                let kind = ExitKind::from_wait_status(*status);
                // the file's PID is read in the creator's PID namespace;
                // the exiting process's number there, if it lives in it
                let names_self = pid == Some(*ns_tgid) && lock.rec.pid_ns == *pid_ns;
                let owner = format!("owner pid {p} ({comm}) {kind}");
                match lock_verdict::on_exit(kind, names_self, *ppid, *parent_subreaper) {
                    OnExit::Stale => (owner, (*p, *status, comm.clone())),
                    OnExit::Left => {
                        let who = if *ppid <= 1 { "init" } else { "a subreaper" };
                        log::info!("left {path}: {owner}; its parent pid {ppid} is {who}");
                        self.kept(KeptReason::LeftOnExit);
                        return done(self);
                    }
                    OnExit::HandToParent(pp) => {
                        let pcomm = procfs::comm(pp);
                        log::info!("handed {path} to parent pid {pp} ({pcomm}): {owner}");
                        self.metrics.locks_handed_total.fetch_add(1, Relaxed);
                        self.set_owner(key, pp, *parent_start, pcomm, None);
                        // the parent's own exit may be in this very batch,
                        // already looked at while it owned nothing
                        let start = procfs::boottime_ns_to_ticks(*parent_start);
                        if let Some(pe) = self
                            .batch_exits
                            .get(&pp)
                            .filter(|pe| procfs::boottime_ns_to_ticks(pe.start_boottime) == start)
                        {
                            self.deferred.push(Work {
                                key,
                                owner: pp,
                                cause: Cause::of(pe),
                            });
                        }
                        return None;
                    }
                }
            }
        };
        match lock.class {
            Match::Denied => {
                log::info!("kept {path}: on the deny list; {reason}");
                self.kept(KeptReason::DenyList);
                return done(self);
            }
            Match::Excluded => {
                log::info!("kept {path}: excluded by --exclude; {reason}");
                self.kept(KeptReason::Excluded);
                return done(self);
            }
            _ => {}
        }
        if let Some(why) = other_data {
            log::info!("kept {path}: the lock directory holds other data ({why}); {reason}");
            self.kept(KeptReason::Other);
            return done(self);
        }
        let pid = self.judge_pid(pid, &lock, cause, st.mtime_ns);
        Some(Candidate {
            target: Some(Target {
                dir,
                file: lock.file,
                shape,
                pid,
            }),
            place: root.place(),
            lock,
            reason,
            stale,
        })
    }

    /// Check 4 in the creator's PID namespace: a PID written in a
    /// container is looked up there (NSpid of its processes).
    fn judge_pid(
        &self,
        pid: Option<u32>,
        lock: &Tracked,
        cause: &Cause,
        mtime_ns: i128,
    ) -> PidInFile {
        let exiting = [cause.pid()];
        match pid {
            Some(p) if lock.rec.pid_ns != self.own_pid_ns => {
                match procfs::host_pid(p, lock.rec.pid_ns) {
                    NsPid::Host(h) => removal::judge_pid(Some(h), true, &exiting, mtime_ns),
                    NsPid::Dead => PidInFile::Dead(p),
                    NsPid::Unknown => PidInFile::Uninterpretable,
                }
            }
            _ => removal::judge_pid(pid, true, &exiting, mtime_ns),
        }
    }

    /// Keep a lock for a live process, which becomes its owner: when that
    /// one exits, the checks run again.
    fn keep(&mut self, c: &Candidate, keep: Keep, next: &mut Vec<Work>) {
        let path = c.lock.rec.path.display();
        self.kept(match keep {
            Keep::OpenBy(_) => KeptReason::Open,
            Keep::LockedBy(_) => KeptReason::Locked,
            Keep::PidAlive(_) => KeptReason::PidAlive,
            Keep::PidUninterpretable => KeptReason::PidForeign,
            Keep::Replaced => KeptReason::Other,
        });
        let Some(pid) = keep.new_owner() else {
            log::info!("kept {path}: {keep}; {}", c.reason);
            self.untrack(&c.lock.key);
            return;
        };
        let tgid = procfs::tgid(pid).unwrap_or(pid);
        let Some(st) = procfs::stat(tgid).filter(|s| s.alive()) else {
            // gone between the check and now: look again
            next.push(Work {
                key: c.lock.key,
                owner: c.lock.owner(),
                cause: Cause::Gone { pid: tgid },
            });
            return;
        };
        log::info!("kept {path}: {keep} ({}); {}", st.comm, c.reason);
        let start_ns = st.start_ticks * (1_000_000_000 / procfs::clock_ticks_per_sec());
        self.set_owner(c.lock.key, tgid, start_ns, st.comm, Some(c.stale.clone()));
        // watched only now: if it died meanwhile, its exit went unseen
        if !procfs::stat(tgid).is_some_and(|s| s.alive() && s.start_ticks == st.start_ticks) {
            next.push(Work {
                key: c.lock.key,
                owner: tgid,
                cause: Cause::Gone { pid: tgid },
            });
        }
    }
}
