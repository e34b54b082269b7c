//! The verdict side of the lock duty: work (a lock whose owner ended) is
//! gathered, decided, checked as a batch (checks 2-4) and removed, kept,
//! handed on or left, each with its one log line.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::files::removal::{self, Outcome, Target};
use crate::files::verdict::{ExitKind, Keep, PidInFile};
use crate::host::escape::{Esc, Field};
use crate::host::procfs::{self, NsPid};
use crate::locks::decide::{self, Cause, Decision, Input};
use crate::locks::gather::gather;
use crate::locks::kernel::{LockKernel, LockKey};
use crate::locks::metrics::KeptReason;
use crate::locks::table::Tracked;

use super::{Candidate, LockWork, Work, CHUNK, MAX_ROUNDS};

impl<K: LockKernel> LockWork<K> {
    pub(super) fn evaluate(&mut self, mut work: Vec<Work>) {
        for _ in 0..MAX_ROUNDS {
            if work.is_empty() {
                return;
            }
            work = self.evaluate_round(work);
        }
        for w in work {
            if let Some(lock) = self.table.get(&w.key) {
                log::info!(
                    event = "kept", reason = KeptReason::Other.label(),
                    path = Field::path(&lock.rec.path), pid = lock.owner();
                    "kept {}: its owner kept changing while it was checked",
                    Esc::path(&lock.rec.path)
                );
                self.metrics.kept(KeptReason::Other);
            }
            self.table.untrack(&w.key);
        }
    }

    /// One pass over a batch: per-lock facts and decisions, then the shared
    /// batch removal, at most CHUNK locks at a time (each keeps descriptors
    /// open from its checks to its removal, and one owner's 50,000 locks
    /// would exhaust the 1,024 a service is given). Returns work for
    /// owners that died while being handed a lock.
    fn evaluate_round(&mut self, work: Vec<Work>) -> Vec<Work> {
        // every dying owner of the round holds nothing, whichever chunk
        // its locks are judged in
        let mut ignore = vec![self.own_pid];
        ignore.extend(work.iter().map(|w| w.cause.pid()));
        ignore.sort_unstable();
        ignore.dedup();
        let mut next = Vec::new();
        let mut work = work.into_iter();
        loop {
            let chunk: Vec<Work> = work.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            next.extend(self.evaluate_chunk(chunk, &ignore));
        }
        next.append(&mut self.deferred);
        next
    }

    fn evaluate_chunk(&mut self, work: Vec<Work>, ignore: &[u32]) -> Vec<Work> {
        let mut next = Vec::new();
        let mut cands = Vec::new();
        for w in work {
            let Some(lock) = self.table.get(&w.key) else {
                // its record is gone from the kernel's table: forget it
                if self.table.tracks(&w.key) {
                    self.table.untrack(&w.key);
                }
                continue;
            };
            if lock.owner() != w.owner {
                continue;
            }
            if let Some(c) = self.prepare(lock, &w.cause) {
                cands.push(c);
            }
        }
        if cands.is_empty() {
            return next;
        }
        let targets: Vec<Target> = cands.iter_mut().filter_map(|c| c.target.take()).collect();
        let outcomes = removal::remove_all(&targets, ignore, self.cfg.dry_run);
        for (c, outcome) in cands.into_iter().zip(outcomes) {
            let path = Esc::path(&c.lock.rec.path);
            let place = &c.place;
            let field = Field::path(&c.lock.rec.path);
            let (pid, status, comm) = &c.stale;
            let owner_exit = ExitKind::from_wait_status(*status).to_string();
            let comm = Field::str(comm);
            match outcome {
                Outcome::Removed => {
                    log::info!(
                        event = "removed", path = field, pid = *pid, comm = comm,
                        owner_exit = owner_exit.as_str(), mnt_ns = c.lock.rec.mnt_ns;
                        "removed {path}{place}: {}", c.reason
                    );
                    self.decided();
                    self.metrics.removed_total.fetch_add(1, Relaxed);
                    self.table.untrack_lock(&c.lock);
                }
                Outcome::WouldRemove => {
                    log::info!(
                        event = "would_remove", path = field, pid = *pid, comm = comm,
                        owner_exit = owner_exit.as_str(), mnt_ns = c.lock.rec.mnt_ns;
                        "would remove {path}{place}: {} (dry run)", c.reason
                    );
                    self.decided();
                    self.table.untrack_lock(&c.lock);
                }
                Outcome::Kept(keep) => self.keep(&c, keep, &mut next),
                Outcome::Gone => {
                    log::debug!("{path} was removed by someone else");
                    self.table.untrack_lock(&c.lock);
                }
                Outcome::Failed(e) => {
                    log::error!(
                        event = "remove_failed", path = field, pid = *pid, comm = comm,
                        owner_exit = owner_exit.as_str(), error = e.to_string();
                        "failed to remove {path}: {e}; {}", c.reason
                    );
                    self.decided();
                    self.metrics.removal_failures_total.fetch_add(1, Relaxed);
                    self.table.untrack_lock(&c.lock);
                }
            }
        }
        next
    }

    /// One lock before the batch checks: gather its facts where it was
    /// made, decide, and act on everything but a removal.
    fn prepare(&mut self, lock: Tracked, cause: &Cause) -> Option<Candidate> {
        let path = Esc::path(&lock.rec.path).to_string();
        let comm = Esc::str(&lock.rec.comm).to_string();
        let field = Field::path(&lock.rec.path);
        let key = lock.key;
        // A lock made in another mount namespace (a container, or a
        // sandboxed service) is judged there, through a live process that
        // shares it. When none does, it is judged only if its path names
        // the very same inode here too; check 1 (device + inode) decides.
        // Otherwise the name here is some other file, and is kept.
        let root = self.root_for(lock.rec.mnt_ns, &[lock.owner(), cause.pid()]);
        let foreign = !root.reachable();
        if foreign {
            log::info!(
                "{path}: no live process shares the mount namespace pid {} ({comm}) made it in; judging the same path here",
                lock.owner()
            );
        }
        let gathered = gather(&root, &lock);
        let decision = decide::decide(&Input {
            path: &path,
            owner: lock.owner(),
            comm: &comm,
            what: lock.rec.kind.what(),
            pid_ns: lock.rec.pid_ns,
            stale: lock.rec.stale.as_ref(),
            class: lock.class,
            foreign,
            found: &gathered.found,
            cause,
        });
        match decision {
            Decision::Released(what) => {
                log::debug!("{path} was released ({what})");
                self.table.untrack_lock(&lock);
                None
            }
            Decision::Kept {
                line,
                reason,
                level,
            } => {
                let event = if reason == KeptReason::LeftOnExit {
                    "left"
                } else {
                    "kept"
                };
                log::log!(
                    level, event = event, reason = reason.label(), path = field,
                    pid = lock.owner(), comm = Field::str(&lock.rec.comm),
                    owner_exit = cause_exit(cause).as_deref();
                    "{line}"
                );
                self.decided();
                self.metrics.kept(reason);
                self.table.untrack_lock(&lock);
                None
            }
            Decision::HandToParent {
                ppid,
                parent_start,
                owner,
            } => {
                let pcomm = procfs::comm(ppid);
                log::info!(
                    event = "handed", path = field, pid = lock.owner(),
                    comm = Field::str(&lock.rec.comm), owner_exit = cause_exit(cause).as_deref(),
                    parent_pid = ppid, parent_comm = Field::str(&pcomm);
                    "handed {path} to parent pid {ppid} ({}): {owner}", Esc::str(&pcomm)
                );
                self.decided();
                self.metrics.handed_total.fetch_add(1, Relaxed);
                self.set_owner(key, ppid, parent_start, pcomm, None);
                // the parent's own exit may be in this very batch, already
                // looked at while it owned nothing
                let start = procfs::boottime_ns_to_ticks(parent_start);
                if let Some(pe) = self
                    .batch_exits
                    .get(&ppid)
                    .filter(|pe| procfs::boottime_ns_to_ticks(pe.start_boottime) == start)
                {
                    self.deferred.push(Work {
                        key,
                        owner: ppid,
                        cause: Arc::new(Cause::of(pe)),
                    });
                }
                None
            }
            Decision::Judge { reason, stale } => {
                let (dir, shape, mtime_ns) = gathered.at.expect("present");
                let decide::Found::Present { pid, .. } = gathered.found else {
                    unreachable!("judged only when present")
                };
                let pid = self.judge_pid(pid, &lock, cause, mtime_ns);
                Some(Candidate {
                    target: Some(Target {
                        dir,
                        file: lock.file,
                        gen: Some(lock.key.gen),
                        shape,
                        pid,
                        creator: Some(lock.rec.creator.clone()),
                    }),
                    place: root.place(),
                    lock,
                    reason,
                    stale,
                })
            }
        }
    }

    fn set_owner(
        &mut self,
        key: LockKey,
        pid: u32,
        start_ns: u64,
        comm: String,
        stale: Option<(u32, u32, String)>,
    ) {
        let c = comm.clone();
        if !self.table.set_owner(key, pid, start_ns, comm, stale) {
            log::warn!(
                "owners map full: the exit of pid {pid} ({}) is only noticed by polling",
                Esc::str(&c)
            );
        }
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
        let path = Esc::path(&c.lock.rec.path);
        let reason = match keep {
            Keep::OpenBy(_) => KeptReason::Open,
            Keep::LockedBy(_) => KeptReason::Locked,
            Keep::PidAlive(_) => KeptReason::PidAlive,
            Keep::PidUninterpretable => KeptReason::PidForeign,
            Keep::Replaced
            | Keep::Unexplained(_)
            | Keep::NotCreators { .. }
            | Keep::NotPermitted(_) => KeptReason::Other,
        };
        self.metrics.kept(reason);
        if let Keep::Unexplained(_) = keep {
            return self.recheck_later(c, keep);
        }
        let (opid, status, ocomm) = &c.stale;
        let owner_exit = ExitKind::from_wait_status(*status).to_string();
        let Some(pid) = keep.new_owner() else {
            log::info!(
                event = "kept", reason = reason.label(), path = Field::path(&c.lock.rec.path),
                pid = *opid, comm = Field::str(ocomm), owner_exit = owner_exit.as_str();
                "kept {path}: {keep}; {}", c.reason
            );
            self.decided();
            self.table.untrack_lock(&c.lock);
            return;
        };
        let tgid = procfs::tgid(pid).unwrap_or(pid);
        let Some(st) = procfs::stat(tgid).filter(|s| s.alive()) else {
            // gone between the check and now: look again
            next.push(Work {
                key: c.lock.key,
                owner: c.lock.owner(),
                cause: Arc::new(Cause::Gone { pid: tgid }),
            });
            return;
        };
        let comm = st.comm_lossy();
        // not a final verdict: the lock follows the live process (issue 26.4)
        log::info!(
            event = "handed", reason = reason.label(), path = Field::path(&c.lock.rec.path),
            pid = *opid, comm = Field::str(ocomm), owner_exit = owner_exit.as_str(),
            holder_pid = tgid, holder_comm = Field(&st.comm);
            "handed {path} to pid {tgid} ({}): {keep}; judged again when it exits; {}", Esc(&st.comm), c.reason
        );
        self.decided();
        let start_ns = st.start_ticks * (1_000_000_000 / procfs::clock_ticks_per_sec());
        self.set_owner(c.lock.key, tgid, start_ns, comm, Some(c.stale.clone()));
        // watched only now: if it died meanwhile, its exit went unseen
        if !procfs::stat(tgid).is_some_and(|s| s.alive() && s.start_ticks == st.start_ticks) {
            next.push(Work {
                key: c.lock.key,
                owner: tgid,
                cause: Arc::new(Cause::Gone { pid: tgid }),
            });
        }
    }

    /// Referenced by something no process shows (a descriptor in flight):
    /// it stays tracked, stale, under its dead owner, and is judged again
    /// when the owner polling finds that owner gone, backing off to a
    /// minute. The descriptor ends up in a process (then its owner) or
    /// closed.
    fn recheck_later(&mut self, c: &Candidate, keep: Keep) {
        let key = c.lock.key;
        let path = Esc::path(&c.lock.rec.path);
        let wait = match self.table.recheck_wait(&key) {
            Some(w) => {
                log::debug!("kept {path} again: {keep}");
                (w * 2).min(Duration::from_secs(60))
            }
            None => {
                let (opid, status, ocomm) = &c.stale;
                let owner_exit = ExitKind::from_wait_status(*status).to_string();
                log::info!(
                    event = "kept", reason = "unexplained", path = Field::path(&c.lock.rec.path),
                    pid = *opid, comm = Field::str(ocomm), owner_exit = owner_exit.as_str();
                    "kept {path}: {keep}; {}; checked again until explained",
                    c.reason
                );
                self.decided();
                Duration::from_secs(1)
            }
        };
        self.table.mark_stale(key, c.stale.clone());
        self.table.recheck_at(key, Instant::now() + wait, wait);
    }
}

/// "killed by SIGKILL", "exited with status 0": the owner's end, when an
/// exit was seen.
fn cause_exit(cause: &Cause) -> Option<String> {
    match cause {
        Cause::Exited { status, .. } => Some(ExitKind::from_wait_status(*status).to_string()),
        Cause::Gone { .. } => None,
    }
}
