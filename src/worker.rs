//! The cleanup worker: the only place that decides and acts. It owns the
//! table of tracked locks, turns owner exits into verdicts (verdict.rs),
//! gathers the facts for the checks (procfs.rs, lockfile.rs) and removes
//! what is stale, logging every decision in one line.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{at, never, select, tick, Receiver};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::events::{
    Created, Exit, LockEvent, LOCK_F_OWNER_UNTRACKED, LOCK_F_PATH_TRUNCATED, LOCK_F_UNREACHABLE,
};
use crate::lockfile::{self, LockDir};
use crate::metrics::{KeptReason, Metrics};
use crate::patterns::{LockMatcher, Match};
use crate::procfs::{self, FileId};
use crate::sock_worker::SockWork;
use crate::sockets::SockEvent;
use crate::verdict::{self, ExitKind, Facts, Keep, OnExit, PidInFile};

/// What reaches the worker.
#[derive(Debug)]
pub enum Msg {
    Lock(LockEvent),
    Sock(SockEvent),
}

pub struct WorkerConfig {
    pub dry_run: bool,
    pub matcher: LockMatcher,
    pub max_locks: usize,
    /// Rewritten every few seconds and on the way out.
    pub metrics_textfile: Option<PathBuf>,
}

/// Registers a process whose exit the kernel must report.
pub trait OwnerWatch {
    fn watch(&self, pid: u32) -> bool;
}

impl OwnerWatch for MapHandle {
    fn watch(&self, pid: u32) -> bool {
        self.update(&pid.to_ne_bytes(), &1u64.to_ne_bytes(), MapFlags::ANY)
            .is_ok()
    }
}

/// Reads the kernel side's counters.
pub trait KernelCounters {
    /// (ring buffer drops, owners-map full)
    fn read(&self) -> Option<(u64, u64)>;
}

#[derive(Debug, Clone)]
struct Owner {
    pid: u32,
    start_ticks: u64,
    comm: String,
}

#[derive(Debug, Clone)]
struct Tracked {
    path: PathBuf,
    file: FileId,
    class: Match,
    mnt_ns: u64,
    pid_ns: u64,
    owner: Owner,
    /// Set once the lock was judged stale but kept for a live process:
    /// why it is stale. Its next owner's exit re-runs the checks.
    stale: Option<String>,
}

#[derive(Debug, Clone)]
enum Cause {
    /// The owner's whole thread group exited (seen by BPF).
    Exited {
        pid: u32,
        comm: String,
        kind: ExitKind,
        ppid: u32,
        parent_subreaper: bool,
        parent_start_ticks: u64,
    },
    /// The owner is gone, and no exit was seen for it.
    Gone { pid: u32 },
}

impl Cause {
    fn pid(&self) -> u32 {
        match *self {
            Cause::Exited { pid, .. } | Cause::Gone { pid } => pid,
        }
    }
}

#[derive(Debug)]
struct Work {
    id: FileId,
    owner: u32,
    cause: Cause,
}

struct Candidate {
    lock: Tracked,
    dir: LockDir,
    pid: PidInFile,
    reason: String,
}

pub struct Worker<W: OwnerWatch, K: KernelCounters> {
    cfg: WorkerConfig,
    watch: W,
    counters: K,
    locks: HashMap<FileId, Tracked>,
    by_owner: HashMap<u32, HashSet<FileId>>,
    /// Owners seen dead once without an exit event (confirmed next tick).
    suspect: HashSet<u32>,
    own_pid: u32,
    own_mnt_ns: u64,
    own_pid_ns: u64,
    prune_at: usize,
    last_counters: (u64, u64),
    table_full_logged: bool,
    /// CLOSE_WAIT sockets, when the socket monitor runs.
    sockets: Option<SockWork>,
    metrics: Arc<Metrics>,
    textfile_due: Instant,
}

const TICK: Duration = Duration::from_secs(1);
const TEXTFILE_EVERY: Duration = Duration::from_secs(5);
const MAX_ROUNDS: usize = 5;

impl<W: OwnerWatch, K: KernelCounters> Worker<W, K> {
    pub fn new(
        cfg: WorkerConfig,
        watch: W,
        counters: K,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            cfg,
            watch,
            counters,
            locks: HashMap::new(),
            by_owner: HashMap::new(),
            suspect: HashSet::new(),
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            own_pid_ns: procfs::own_ns("pid")?,
            prune_at: 1024,
            last_counters: (0, 0),
            table_full_logged: false,
            sockets: None,
            metrics,
            textfile_due: Instant::now(),
        })
    }

    /// Also handle CLOSE_WAIT sockets.
    pub fn with_sockets(mut self, sockets: SockWork) -> Self {
        self.sockets = Some(sockets);
        self
    }

    /// Look for sockets already in CLOSE_WAIT in every network namespace.
    pub fn survey_sockets(&mut self) {
        if let Some(s) = &mut self.sockets {
            s.survey();
        }
    }

    /// Until every sender is gone.
    pub fn run(&mut self, rx: &Receiver<Msg>) {
        let ticker = tick(TICK);
        loop {
            let deadline = self.sockets.as_ref().and_then(|s| s.next_deadline());
            let timer = deadline.map(at).unwrap_or_else(never);
            select! {
                recv(rx) -> msg => {
                    let Ok(first) = msg else { break };
                    let mut batch = vec![first];
                    while batch.len() < 4096 {
                        match rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    self.handle(batch);
                }
                recv(ticker) -> _ => self.tick(),
                recv(timer) -> _ => {
                    if let Some(s) = &mut self.sockets {
                        s.on_deadline();
                    }
                }
            }
            self.metrics
                .locks_tracked
                .store(self.locks.len() as u64, Relaxed);
            if Instant::now() >= self.textfile_due {
                self.write_textfile();
                self.textfile_due = Instant::now() + TEXTFILE_EVERY;
            }
        }
        if let Some(s) = &self.sockets {
            log::debug!("worker, sockets: {:?}", s.stats);
        }
        self.write_textfile();
    }

    fn write_textfile(&self) {
        if let Some(path) = &self.cfg.metrics_textfile {
            if let Err(e) = self.metrics.write_textfile(path) {
                log::warn!("writing metrics to {}: {e}", path.display());
            }
        }
    }

    fn kept(&self, why: KeptReason) {
        self.metrics.kept(why);
    }

    fn handle(&mut self, batch: Vec<Msg>) {
        let mut work = Vec::new();
        for msg in batch {
            match msg {
                Msg::Lock(LockEvent::Created(c)) => self.on_created(c),
                Msg::Lock(LockEvent::NameGone { tgid }) => self.on_name_gone(tgid),
                Msg::Lock(LockEvent::Exit(e)) => work.extend(self.on_exit(e)),
                Msg::Sock(ev) => {
                    if let Some(s) = &mut self.sockets {
                        s.on_event(ev);
                    }
                }
            }
        }
        self.evaluate(work);
    }

    fn on_created(&mut self, c: Created) {
        if c.flags & (LOCK_F_PATH_TRUNCATED | LOCK_F_UNREACHABLE) != 0 {
            log::debug!(
                "ignoring a lock created by pid {} ({}): its path could not be resolved ({})",
                c.tgid,
                c.comm,
                c.path.display()
            );
            return;
        }
        let class = self.cfg.matcher.classify(&c.path);
        if matches!(class, Match::OutOfScope | Match::NotLockName) {
            return;
        }
        if self.locks.len() >= self.prune_at {
            self.prune();
        }
        if self.locks.len() >= self.cfg.max_locks {
            if !self.table_full_logged {
                log::warn!(
                    "not tracking {}: {} locks tracked already (--max-locks)",
                    c.path.display(),
                    self.locks.len()
                );
                self.table_full_logged = true;
            }
            self.metrics
                .lock_removal_failures_total
                .fetch_add(1, Relaxed);
            return;
        }
        if c.flags & LOCK_F_OWNER_UNTRACKED != 0 {
            log::warn!(
                "owners map full (--max-owners): the exit of pid {} ({}) is only noticed by polling",
                c.tgid,
                c.comm
            );
        }
        log::debug!("tracking {} (pid {} {})", c.path.display(), c.tgid, c.comm);
        let lock = Tracked {
            path: c.path,
            file: c.file,
            class,
            mnt_ns: c.mnt_ns,
            pid_ns: c.pid_ns,
            owner: Owner {
                pid: c.tgid,
                start_ticks: procfs::boottime_ns_to_ticks(c.start_boottime),
                comm: c.comm,
            },
            stale: None,
        };
        self.untrack(&c.file); // an inode number reused after an unlink
        self.by_owner.entry(c.tgid).or_default().insert(c.file);
        self.locks.insert(c.file, lock);
        self.metrics.locks_tracked_total.fetch_add(1, Relaxed);
    }

    /// The owner removed or renamed something: stop tracking whichever of
    /// its locks no longer exists under its name.
    fn on_name_gone(&mut self, tgid: u32) {
        let Some(ids) = self.by_owner.get(&tgid) else {
            return;
        };
        let gone: Vec<FileId> = ids
            .iter()
            .filter(|id| !self.locks.get(id).is_some_and(still_named))
            .copied()
            .collect();
        for id in gone {
            self.untrack(&id);
        }
    }

    fn on_exit(&mut self, e: Exit) -> Vec<Work> {
        let Some(ids) = self.by_owner.get(&e.tgid) else {
            return Vec::new();
        };
        self.suspect.remove(&e.tgid);
        let start = procfs::boottime_ns_to_ticks(e.start_boottime);
        let cause = Cause::Exited {
            pid: e.tgid,
            comm: e.comm.clone(),
            kind: ExitKind::from_wait_status(e.status),
            ppid: e.ppid,
            parent_subreaper: e.parent_subreaper,
            parent_start_ticks: procfs::boottime_ns_to_ticks(e.parent_start_boottime),
        };
        ids.iter()
            .map(|&id| {
                // an owner whose exit we missed, and whose PID was reused
                let same = self
                    .locks
                    .get(&id)
                    .is_some_and(|l| l.owner.start_ticks == start);
                Work {
                    id,
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

    fn tick(&mut self) {
        if let Some(s) = &mut self.sockets {
            s.tick();
        }
        if let Some((drops, full)) = self.counters.read() {
            let (d0, f0) = self.last_counters;
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
            self.last_counters = (drops, full);
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_owners_full.store(full, Relaxed);
        }
        // Owners that died without an exit event (lost sample, full map):
        // seen dead on two ticks in a row, so that an exit still on its
        // way through the ring buffer is not mistaken for one.
        let mut work = Vec::new();
        let owners: Vec<(u32, u64)> = self
            .by_owner
            .iter()
            .filter_map(|(&pid, ids)| {
                Some((pid, self.locks.get(ids.iter().next()?)?.owner.start_ticks))
            })
            .collect();
        for (pid, start) in owners {
            let alive = procfs::stat(pid).is_some_and(|s| s.alive() && s.start_ticks == start);
            if alive {
                self.suspect.remove(&pid);
            } else if !self.suspect.insert(pid) {
                self.suspect.remove(&pid);
                let ids = self.by_owner.get(&pid).cloned().unwrap_or_default();
                work.extend(ids.into_iter().map(|id| Work {
                    id,
                    owner: pid,
                    cause: Cause::Gone { pid },
                }));
            }
        }
        self.evaluate(work);
    }

    fn untrack(&mut self, id: &FileId) {
        if let Some(lock) = self.locks.remove(id) {
            if let Some(set) = self.by_owner.get_mut(&lock.owner.pid) {
                set.remove(id);
                if set.is_empty() {
                    self.by_owner.remove(&lock.owner.pid);
                }
            }
        }
    }

    fn set_owner(&mut self, id: FileId, owner: Owner, stale: Option<String>) {
        let Some(lock) = self.locks.get_mut(&id) else {
            return;
        };
        let old = lock.owner.pid;
        lock.owner = owner.clone();
        lock.stale = stale;
        if let Some(set) = self.by_owner.get_mut(&old) {
            set.remove(&id);
            if set.is_empty() {
                self.by_owner.remove(&old);
            }
        }
        self.by_owner.entry(owner.pid).or_default().insert(id);
        if !self.watch.watch(owner.pid) {
            log::warn!(
                "owners map full: the exit of pid {} ({}) is only noticed by polling",
                owner.pid,
                owner.comm
            );
        }
    }

    /// Forget locks whose names are gone (released by someone else).
    fn prune(&mut self) {
        let gone: Vec<FileId> = self
            .locks
            .values()
            .filter(|l| !still_named(l))
            .map(|l| l.file)
            .collect();
        for id in &gone {
            self.untrack(id);
        }
        self.prune_at = (self.locks.len() * 2).max(1024);
        if self.locks.len() < self.cfg.max_locks {
            self.table_full_logged = false;
        }
    }

    fn evaluate(&mut self, mut work: Vec<Work>) {
        for _ in 0..MAX_ROUNDS {
            if work.is_empty() {
                return;
            }
            work = self.evaluate_round(work);
        }
        for w in work {
            if let Some(lock) = self.locks.get(&w.id) {
                log::info!(
                    "kept {}: its owner kept changing while it was checked",
                    lock.path.display()
                );
                self.kept(KeptReason::Other);
            }
            self.untrack(&w.id);
        }
    }

    /// One pass over a batch: cheap per-file checks, then one /proc walk
    /// for all candidates, then removal with a second walk after the
    /// rename. Returns work for owners that died while being handed a lock.
    fn evaluate_round(&mut self, work: Vec<Work>) -> Vec<Work> {
        let mut next = Vec::new();
        let mut cands = Vec::new();
        let mut ignore = vec![self.own_pid];
        for w in work {
            let Some(lock) = self.locks.get(&w.id).cloned() else {
                continue;
            };
            if lock.owner.pid != w.owner {
                continue;
            }
            ignore.push(w.cause.pid());
            if let Some(c) = self.prepare(lock, &w.cause) {
                cands.push(c);
            }
        }
        if cands.is_empty() {
            return next;
        }

        let targets: HashSet<FileId> = cands.iter().map(|c| c.lock.file).collect();
        let open = procfs::open_holders(&targets, &ignore);
        let held = procfs::held_locks();
        let mut removable = Vec::new();
        for c in cands {
            let facts = Facts {
                same_inode: true,
                open_by: open.get(&c.lock.file).copied(),
                locked_by: locked_by(&held, c.lock.file, &ignore),
                pid: c.pid,
            };
            match verdict::judge(&facts) {
                Ok(()) => removable.push(c),
                Err(keep) => self.keep(&c, keep, &mut next),
            }
        }

        if self.cfg.dry_run {
            for c in removable {
                log::info!(
                    "would remove {}: {} (dry run)",
                    c.lock.path.display(),
                    c.reason
                );
                self.untrack(&c.lock.file);
            }
            return next;
        }

        // Rename aside, look again, then unlink or put back.
        let mut staged: Vec<(Candidate, OsString)> = Vec::new();
        for c in removable {
            match c.dir.hide() {
                Ok(hidden) => match c.dir.stat(&hidden) {
                    Ok(st) if st.id == c.lock.file => staged.push((c, hidden)),
                    _ => {
                        self.restore(&c, &hidden);
                        self.keep(&c, Keep::Replaced, &mut next);
                    }
                },
                Err(e) if lockfile::is_gone(&e) => {
                    log::debug!("{} was removed by someone else", c.lock.path.display());
                    self.untrack(&c.lock.file);
                }
                Err(e) => self.failed(&c, &e),
            }
        }
        if staged.is_empty() {
            return next;
        }
        let targets: HashSet<FileId> = staged.iter().map(|(c, _)| c.lock.file).collect();
        let open = procfs::open_holders(&targets, &ignore);
        let held = procfs::held_locks();
        for (c, hidden) in staged {
            let blocker = open
                .get(&c.lock.file)
                .map(|&p| Keep::OpenBy(p))
                .or_else(|| locked_by(&held, c.lock.file, &ignore).map(Keep::LockedBy));
            if let Some(keep) = blocker {
                self.restore(&c, &hidden);
                self.keep(&c, keep, &mut next);
                continue;
            }
            match c.dir.unlink(&hidden) {
                Ok(()) => {
                    log::info!("removed {}: {}", c.lock.path.display(), c.reason);
                    self.metrics.locks_removed_total.fetch_add(1, Relaxed);
                    self.untrack(&c.lock.file);
                }
                Err(e) => {
                    self.restore(&c, &hidden);
                    self.failed(&c, &e);
                }
            }
        }
        next
    }

    /// Per-file steps before the /proc walk: is it still there and ours,
    /// what its owner's exit means, what PID it names.
    fn prepare(&mut self, lock: Tracked, cause: &Cause) -> Option<Candidate> {
        let path = lock.path.display().to_string();
        let id = lock.file;
        let done = |s: &mut Self| {
            s.untrack(&id);
            None
        };
        // A lock made in another mount namespace (a container, or a
        // sandboxed service) is judged only if its path names the very same
        // inode here too; check 1 (device + inode) decides. Otherwise the
        // name here is some other file, and is kept.
        let foreign = lock.mnt_ns != self.own_mnt_ns;
        let released = |s: &mut Self, what: &str| {
            if foreign {
                log::info!(
                    "kept {path}: created in another mount namespace by pid {} ({}); {what} here",
                    lock.owner.pid,
                    lock.owner.comm
                );
                s.kept(KeptReason::OtherNamespace);
            } else {
                log::debug!("{path} was released ({what})");
            }
            s.untrack(&id);
            None
        };
        let dir = match lockfile::open_parent(&lock.path) {
            Ok(d) => d,
            Err(e) if lockfile::is_gone(&e) => return released(self, "its directory is gone"),
            Err(e) if lockfile::is_symlink_refusal(&e) => {
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
            Err(e) if lockfile::is_gone(&e) => return released(self, "the name is gone"),
            Err(e) => {
                log::warn!("kept {path}: cannot stat it: {e}");
                self.kept(KeptReason::Other);
                return done(self);
            }
        };
        if st.id != lock.file {
            return released(self, "the name belongs to another file");
        }
        if !st.regular {
            log::info!("kept {path}: no longer a regular file");
            self.kept(KeptReason::Other);
            return done(self);
        }
        let pid = dir
            .read_head(dir.name())
            .ok()
            .and_then(|h| verdict::parse_pid_line(&h));

        let reason = match (cause, &lock.stale) {
            (Cause::Gone { pid }, None) => {
                log::warn!(
                    "kept {path}: owner pid {pid} ({}) exited unseen (exit status unknown; events lost?)",
                    lock.owner.comm
                );
                self.kept(KeptReason::ExitUnseen);
                return done(self);
            }
            (Cause::Gone { pid: p }, Some(why)) => {
                format!("{why}; pid {p} ({}) that kept it is gone", lock.owner.comm)
            }
            (
                Cause::Exited {
                    pid: p, comm, kind, ..
                },
                Some(why),
            ) => {
                format!("{why}; pid {p} ({comm}) that kept it {kind}")
            }
            (
                Cause::Exited {
                    pid: p,
                    comm,
                    kind,
                    ppid,
                    parent_subreaper,
                    parent_start_ticks,
                },
                None,
            ) => {
                let names_self = pid == Some(*p) && lock.pid_ns == self.own_pid_ns;
                let owner = format!("owner pid {p} ({comm}) {kind}");
                match verdict::on_exit(*kind, names_self, *ppid, *parent_subreaper) {
                    OnExit::Stale => owner,
                    OnExit::Left => {
                        let who = if *ppid <= 1 { "init" } else { "a subreaper" };
                        log::info!("left {path}: {owner}; its parent pid {ppid} is {who}");
                        self.kept(KeptReason::LeftOnExit);
                        return done(self);
                    }
                    OnExit::HandToParent(pp) => {
                        let comm = procfs::comm(pp);
                        log::info!("handed {path} to parent pid {pp} ({comm}): {owner}");
                        self.metrics.locks_handed_total.fetch_add(1, Relaxed);
                        let start = *parent_start_ticks;
                        self.set_owner(
                            id,
                            Owner {
                                pid: pp,
                                start_ticks: start,
                                comm,
                            },
                            None,
                        );
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
        let pid = match pid {
            None => PidInFile::NoPid,
            Some(_) if lock.pid_ns != self.own_pid_ns => PidInFile::Uninterpretable,
            Some(p) if p == cause.pid() => PidInFile::Dead(p),
            Some(p) => match procfs::stat(p) {
                Some(s) if s.alive() => {
                    if verdict::started_after(procfs::start_wall_ns(s.start_ticks), st.mtime_ns) {
                        PidInFile::Reused(p)
                    } else {
                        PidInFile::Alive(p)
                    }
                }
                _ => PidInFile::Dead(p),
            },
        };
        Some(Candidate {
            lock,
            dir,
            pid,
            reason,
        })
    }

    /// Keep a lock for a live process, which becomes its owner: when that
    /// one exits, the checks run again.
    fn keep(&mut self, c: &Candidate, keep: Keep, next: &mut Vec<Work>) {
        let path = c.lock.path.display();
        self.kept(match keep {
            Keep::OpenBy(_) => KeptReason::Open,
            Keep::LockedBy(_) => KeptReason::Locked,
            Keep::PidAlive(_) => KeptReason::PidAlive,
            Keep::PidUninterpretable => KeptReason::PidForeign,
            Keep::Replaced => KeptReason::Other,
        });
        let Some(pid) = keep.new_owner() else {
            log::info!("kept {path}: {keep}; {}", c.reason);
            self.untrack(&c.lock.file);
            return;
        };
        let tgid = procfs::tgid(pid).unwrap_or(pid);
        let Some(st) = procfs::stat(tgid).filter(|s| s.alive()) else {
            // gone between the check and now: look again
            next.push(Work {
                id: c.lock.file,
                owner: c.lock.owner.pid,
                cause: Cause::Gone { pid: tgid },
            });
            return;
        };
        log::info!("kept {path}: {keep} ({}); {}", st.comm, c.reason);
        let owner = Owner {
            pid: tgid,
            start_ticks: st.start_ticks,
            comm: st.comm,
        };
        self.set_owner(c.lock.file, owner, Some(c.reason.clone()));
        // watched only now: if it died meanwhile, its exit went unseen
        if !procfs::stat(tgid).is_some_and(|s| s.alive() && s.start_ticks == st.start_ticks) {
            next.push(Work {
                id: c.lock.file,
                owner: tgid,
                cause: Cause::Gone { pid: tgid },
            });
        }
    }

    fn restore(&mut self, c: &Candidate, hidden: &OsString) {
        if let Err(e) = c.dir.restore(hidden) {
            log::error!(
                "{}: could not rename it back from {:?} ({e}); a new lock may have taken the name",
                c.lock.path.display(),
                hidden
            );
            self.metrics
                .lock_removal_failures_total
                .fetch_add(1, Relaxed);
        }
    }

    fn failed(&mut self, c: &Candidate, e: &std::io::Error) {
        log::error!(
            "failed to remove {}: {e}; {}",
            c.lock.path.display(),
            c.reason
        );
        self.metrics
            .lock_removal_failures_total
            .fetch_add(1, Relaxed);
        self.untrack(&c.lock.file);
    }
}

/// Does the lock's name still refer to its inode? (lstat; no symlinks)
fn still_named(l: &Tracked) -> bool {
    std::fs::symlink_metadata(&l.path).is_ok_and(|m| {
        use std::os::unix::fs::MetadataExt;
        FileId::from_stat(m.dev(), m.ino()) == l.file
    })
}

fn locked_by(held: &[procfs::HeldLock], file: FileId, ignore: &[u32]) -> Option<u32> {
    held.iter()
        .find(|h| h.file == file && !ignore.contains(&h.pid))
        .map(|h| h.pid)
}
