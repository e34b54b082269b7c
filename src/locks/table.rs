//! The locks being tracked, kept in step with the kernel's table of record
//! (the pinned "locks" map): by key, by owner and by file. Every change to
//! the user-space view that must outlive the agent goes through here to
//! the kernel too.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::host::escape::Esc;
use crate::host::procfs::{self, FileId};
use crate::locks::kernel::{LockKernel, LockKey, Record};
use crate::locks::patterns::Match;

/// One tracked lock.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub key: LockKey,
    pub file: FileId,
    pub class: Match,
    pub rec: Record,
    /// When this agent started tracking it (the kernel's record has no
    /// creation time): its creation for a lock seen being made, its
    /// adoption for one recorded while no agent ran.
    pub since: std::time::SystemTime,
}

impl Tracked {
    pub fn owner(&self) -> u32 {
        self.rec.tgid
    }

    pub fn owner_start_ticks(&self) -> u64 {
        procfs::boottime_ns_to_ticks(self.rec.owner_start)
    }
}

pub struct Table<K: LockKernel> {
    pub kernel: K,
    locks: HashMap<LockKey, Tracked>,
    by_owner: HashMap<u32, HashSet<LockKey>>,
    /// The newest tracked lock on each file (device + inode number).
    by_file: HashMap<FileId, LockKey>,
    /// Locks kept for references no process shows (a descriptor in
    /// flight): when to look again, and the wait after that.
    rechecks: HashMap<LockKey, (Instant, Duration)>,
}

impl<K: LockKernel> Table<K> {
    pub fn new(kernel: K) -> Self {
        Table {
            kernel,
            locks: HashMap::new(),
            by_owner: HashMap::new(),
            by_file: HashMap::new(),
            rechecks: HashMap::new(),
        }
    }

    /// May the lock be judged again now? (Always, unless it waits for a
    /// recheck of an unexplained reference.)
    pub fn recheck_due(&self, key: &LockKey, now: Instant) -> bool {
        self.rechecks.get(key).is_none_or(|&(at, _)| at <= now)
    }

    /// The wait before the last recheck, if it is waiting for one.
    pub fn recheck_wait(&self, key: &LockKey) -> Option<Duration> {
        self.rechecks.get(key).map(|&(_, w)| w)
    }

    pub fn recheck_at(&mut self, key: LockKey, at: Instant, wait: Duration) {
        self.rechecks.insert(key, (at, wait));
    }

    /// Judged stale, and kept: why, in the kernel's record too.
    pub fn mark_stale(&mut self, key: LockKey, stale: (u32, u32, String)) {
        if let Some(l) = self.locks.get_mut(&key) {
            l.rec.stale = Some(stale);
            let rec = l.rec.clone();
            if !self.kernel.store(key, &rec) {
                log::warn!("could not update the record of {}", Esc::path(&rec.path));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn get(&self, key: &LockKey) -> Option<&Tracked> {
        self.locks.get(key)
    }

    pub fn values(&self) -> impl Iterator<Item = &Tracked> {
        self.locks.values()
    }

    /// The keys of `owner`'s locks.
    pub fn of_owner(&self, owner: u32) -> Vec<LockKey> {
        self.by_owner
            .get(&owner)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn owns_any(&self, owner: u32) -> bool {
        self.by_owner.contains_key(&owner)
    }

    /// Every owner, with the start time of its group leader (ticks).
    pub fn owners(&self) -> Vec<(u32, u64)> {
        self.by_owner
            .iter()
            .filter_map(|(&pid, keys)| {
                Some((
                    pid,
                    self.locks.get(keys.iter().next()?)?.owner_start_ticks(),
                ))
            })
            .collect()
    }

    /// The lock tracked on this file (device + inode number), whatever its
    /// key (one from an open carries the inode generation; one resolved
    /// from a name cannot).
    pub fn on_file(&self, id: &FileId) -> Option<&Tracked> {
        self.by_file.get(id).and_then(|k| self.locks.get(k))
    }

    /// Start tracking. A new file on the inode number of a tracked one:
    /// that older lock was released (its inode freed), whatever its name;
    /// it is forgotten here, and its own kernel record (its own key) is
    /// deleted with it.
    pub fn insert(&mut self, key: LockKey, rec: Record, class: Match) {
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
                since: std::time::SystemTime::now(),
            },
        );
    }

    /// Forget a lock here only (the kernel record stays).
    fn drop_entry(&mut self, key: &LockKey) {
        self.rechecks.remove(key);
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
    pub fn untrack(&mut self, key: &LockKey) {
        self.drop_entry(key);
        self.kernel.forget(*key);
    }

    /// A new owner (a parent on a clean exit, a live holder), recorded in
    /// the kernel too, and watched there. `stale`: why it is stale, when it
    /// is kept only for that process. False when the kernel could not
    /// watch the new owner (its exit is then noticed by polling).
    pub fn set_owner(
        &mut self,
        key: LockKey,
        pid: u32,
        start_ns: u64,
        comm: String,
        stale: Option<(u32, u32, String)>,
    ) -> bool {
        let Some(mut lock) = self.locks.get(&key).cloned() else {
            return true;
        };
        self.drop_entry(&key);
        lock.rec.tgid = pid;
        lock.rec.owner_start = start_ns;
        lock.rec.comm = comm;
        if stale.is_some() {
            lock.rec.stale = stale;
        }
        if !self.kernel.store(key, &lock.rec) {
            log::warn!(
                "could not update the record of {}",
                crate::host::escape::Esc::path(&lock.rec.path)
            );
        }
        self.by_owner.entry(pid).or_default().insert(key);
        self.by_file.insert(key.file(), key);
        let watched = self.kernel.watch(pid);
        self.locks.insert(key, lock);
        watched
    }

    /// Every tracked lock's key and path, for a new classification.
    pub fn paths(&self) -> Vec<(LockKey, PathBuf)> {
        self.locks
            .values()
            .map(|l| (l.key, l.rec.path.clone()))
            .collect()
    }

    /// A tracked lock now has another name (its owner renamed it).
    pub fn rename(&mut self, key: LockKey, to: PathBuf, class: Match) -> Option<Record> {
        let l = self.locks.get_mut(&key)?;
        l.rec.path = to;
        l.class = class;
        let rec = l.rec.clone();
        if !self.kernel.store(key, &rec) {
            log::warn!(
                "could not update the record of {}",
                crate::host::escape::Esc::path(&rec.path)
            );
        }
        Some(rec)
    }
}

#[cfg(test)]
pub mod fake {
    //! The kernel's tables in memory, for the lock duty's unit tests.

    use std::cell::RefCell;
    use std::collections::{HashMap, HashSet};

    use crate::locks::kernel::{Exit, LockKernel, LockKey, Record};

    #[derive(Default)]
    pub struct FakeKernel {
        pub locks: RefCell<HashMap<LockKey, Record>>,
        pub exited: RefCell<HashMap<u32, Exit>>,
        pub owners: RefCell<HashSet<u32>>,
        /// Refuse new records (a full table).
        pub full: bool,
    }

    impl LockKernel for FakeKernel {
        fn record(&self, key: LockKey) -> Option<Record> {
            self.locks.borrow().get(&key).cloned()
        }
        fn store(&self, key: LockKey, rec: &Record) -> bool {
            let mut l = self.locks.borrow_mut();
            if self.full && !l.contains_key(&key) {
                return false;
            }
            l.insert(key, rec.clone());
            true
        }
        fn forget(&self, key: LockKey) {
            self.locks.borrow_mut().remove(&key);
        }
        fn records(&self) -> Vec<(LockKey, Record)> {
            self.locks
                .borrow()
                .iter()
                .map(|(k, r)| (*k, r.clone()))
                .collect()
        }
        fn pending_exits(&self) -> Vec<Exit> {
            self.exited.borrow().values().cloned().collect()
        }
        fn exit_done(&self, tgid: u32) {
            self.exited.borrow_mut().remove(&tgid);
        }
        fn watch(&self, pid: u32) -> bool {
            self.owners.borrow_mut().insert(pid);
            true
        }
        fn counters(&self) -> Option<(u64, u64, u64)> {
            None
        }
    }
}
