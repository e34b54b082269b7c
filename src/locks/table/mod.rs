//! The locks being tracked, kept in step with the kernel's table of record
//! (the pinned "locks" map). User space keeps only an index: per lock, its
//! file, owner, class and a few flags (32 bytes and its share of the hash
//! tables). The record itself (path, command, credentials, why it is
//! stale) stays in the kernel's table and is read when a lock is looked at
//! (judged, followed, listed): with 50,000 locks tracked, copies of the
//! records were 0.5 KiB a lock of the agent's memory (issue 13). Every
//! change to a record goes through here to the kernel.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use crate::host::escape::Esc;
use crate::host::procfs::{self, FileId};
use crate::locks::kernel::{LockKernel, LockKey, Record};
use crate::locks::patterns::Match;

/// One tracked lock, whole: the index entry with the kernel's record.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub key: LockKey,
    pub file: FileId,
    pub class: Match,
    pub rec: Record,
    /// When this agent started tracking it (the kernel's record has no
    /// creation time): its creation for a lock seen being made, its
    /// adoption for one recorded while no agent ran.
    pub since: SystemTime,
}

impl Tracked {
    pub fn owner(&self) -> u32 {
        self.rec.tgid
    }

    pub fn owner_start_ticks(&self) -> u64 {
        procfs::boottime_ns_to_ticks(self.rec.owner_start)
    }
}

/// What the index holds of one lock: enough to find it, to notice its
/// owner's end and to choose what the status lists, without the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Brief {
    pub key: LockKey,
    pub owner: u32,
    /// The owner's group leader start, boot-clock ns.
    pub owner_start: u64,
    pub class: Match,
    /// Judged stale and kept for a live process.
    pub stale: bool,
    /// Recorded while no agent ran, taken over at start.
    pub adopted: bool,
    pub since: SystemTime,
}

impl Brief {
    pub fn owner_start_ticks(&self) -> u64 {
        procfs::boottime_ns_to_ticks(self.owner_start)
    }
}

/// A file as the index knows it: the kernel's device number and inode
/// number. At most one lock is tracked per file; its generation is in
/// the entry.
type FileKey = (u64, u64);

fn file_key(k: &LockKey) -> FileKey {
    (k.dev, k.ino)
}

/// One lock in the index (24 bytes).
#[derive(Debug, Clone, Copy)]
struct Entry {
    owner_start: u64,
    owner: u32,
    gen: u32,
    /// Seconds from the table's epoch to when tracking began.
    since: u32,
    class: Match,
    stale: bool,
    adopted: bool,
}

/// The files of one owner: nearly always one, so that one is kept in
/// place and a set is made only for a second.
#[derive(Debug)]
enum Owned {
    One(FileKey),
    // boxed: the set with its hasher is 48 bytes, and every owner's
    // entry would be that size
    #[allow(clippy::box_collection)]
    Many(Box<HashSet<FileKey>>),
}

impl Owned {
    fn insert(&mut self, f: FileKey) {
        match self {
            Owned::One(o) if *o == f => {}
            Owned::One(o) => *self = Owned::Many(Box::new(HashSet::from([*o, f]))),
            Owned::Many(s) => {
                s.insert(f);
            }
        }
    }

    /// Take `f` out; true when nothing is left.
    fn remove(&mut self, f: &FileKey) -> bool {
        match self {
            Owned::One(o) => o == f,
            Owned::Many(s) => {
                s.remove(f);
                if s.len() == 1 {
                    *self = Owned::One(*s.iter().next().expect("one left"));
                }
                false
            }
        }
    }

    fn first(&self) -> Option<FileKey> {
        match self {
            Owned::One(f) => Some(*f),
            Owned::Many(s) => s.iter().next().copied(),
        }
    }
}

pub struct Table<K: LockKernel> {
    pub kernel: K,
    /// By file; one lock per file (the newest).
    locks: HashMap<FileKey, Entry>,
    by_owner: HashMap<u32, Owned>,
    /// Locks kept for references no process shows (a descriptor in
    /// flight): when to look again, and the wait after that.
    rechecks: HashMap<LockKey, (Instant, Duration)>,
    /// `Entry::since` counts from here.
    epoch: SystemTime,
}

impl<K: LockKernel> Table<K> {
    pub fn new(kernel: K) -> Self {
        Table {
            kernel,
            locks: HashMap::new(),
            by_owner: HashMap::new(),
            rechecks: HashMap::new(),
            epoch: SystemTime::now(),
        }
    }

    fn entry(&self, key: &LockKey) -> Option<&Entry> {
        self.locks.get(&file_key(key)).filter(|e| e.gen == key.gen)
    }

    fn brief(&self, f: FileKey, e: &Entry) -> Brief {
        Brief {
            key: LockKey {
                dev: f.0,
                ino: f.1,
                gen: e.gen,
            },
            owner: e.owner,
            owner_start: e.owner_start,
            class: e.class,
            stale: e.stale,
            adopted: e.adopted,
            since: self.epoch + Duration::from_secs(e.since.into()),
        }
    }

    /// The lock with its record, read from the kernel's table (None when
    /// it is not tracked, or its record is gone).
    fn load(&self, f: FileKey, e: &Entry) -> Option<Tracked> {
        let b = self.brief(f, e);
        let rec = self.kernel.record(b.key)?;
        Some(Tracked {
            key: b.key,
            file: b.key.file(),
            class: e.class,
            rec,
            since: b.since,
        })
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

    /// Change the kernel's record of a tracked lock; false when it is not
    /// tracked or the kernel refused.
    fn update(&mut self, key: LockKey, change: impl FnOnce(&mut Record)) -> Option<Record> {
        self.entry(&key)?;
        let mut rec = self.kernel.record(key)?;
        change(&mut rec);
        if !self.kernel.store(key, &rec) {
            log::warn!("could not update the record of {}", Esc::path(&rec.path));
        }
        Some(rec)
    }

    /// Judged stale, and kept: why, in the kernel's record too.
    pub fn mark_stale(&mut self, key: LockKey, stale: (u32, u32, String)) {
        if self.update(key, |r| r.stale = Some(stale)).is_some() {
            if let Some(e) = self.locks.get_mut(&file_key(&key)) {
                e.stale = true;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.locks.len()
    }

    pub fn tracks(&self, key: &LockKey) -> bool {
        self.entry(key).is_some()
    }

    /// The lock, with its record.
    pub fn get(&self, key: &LockKey) -> Option<Tracked> {
        let f = file_key(key);
        self.entry(key).and_then(|e| self.load(f, e))
    }

    /// Every tracked lock, without records.
    pub fn briefs(&self) -> impl Iterator<Item = Brief> + '_ {
        self.locks.iter().map(|(&f, e)| self.brief(f, e))
    }

    /// Every tracked lock, each with its record read from the kernel (a
    /// lookup per lock: for rare passes over all of them).
    pub fn all(&self) -> impl Iterator<Item = Tracked> + '_ {
        self.locks.iter().filter_map(|(&f, e)| self.load(f, e))
    }

    /// `owner`'s locks, without records.
    pub fn briefs_of(&self, owner: u32) -> impl Iterator<Item = Brief> + '_ {
        let files: Box<dyn Iterator<Item = &FileKey>> = match self.by_owner.get(&owner) {
            None => Box::new(std::iter::empty()),
            Some(Owned::One(f)) => Box::new(std::iter::once(f)),
            Some(Owned::Many(s)) => Box::new(s.iter()),
        };
        files.filter_map(|f| self.locks.get(f).map(|e| self.brief(*f, e)))
    }

    /// The keys of `owner`'s locks.
    pub fn of_owner(&self, owner: u32) -> Vec<LockKey> {
        self.briefs_of(owner).map(|b| b.key).collect()
    }

    pub fn owns_any(&self, owner: u32) -> bool {
        self.by_owner.contains_key(&owner)
    }

    /// Every owner, with the start time of its group leader (ticks).
    pub fn owners(&self) -> Vec<(u32, u64)> {
        self.by_owner
            .iter()
            .filter_map(|(&pid, o)| {
                let e = self.locks.get(&o.first()?)?;
                Some((pid, procfs::boottime_ns_to_ticks(e.owner_start)))
            })
            .collect()
    }

    /// The lock tracked on this file (device + inode number), whatever its
    /// generation (one resolved from a name may not know it).
    pub fn on_file(&self, id: &FileId) -> Option<Tracked> {
        let f = file_key(&LockKey::of(*id));
        self.locks.get(&f).and_then(|e| self.load(f, e))
    }

    /// Start tracking a lock whose record `rec` is in the kernel's table.
    /// A new file on the inode number of a tracked one: that older lock
    /// was released (its inode freed), whatever its name; it is forgotten
    /// here, and its own kernel record (its own key) is deleted with it.
    pub fn insert(&mut self, key: LockKey, rec: &Record, class: Match) {
        let f = file_key(&key);
        if let Some(old) = self.locks.get(&f).map(|e| e.gen) {
            if old != key.gen {
                self.untrack(&LockKey { gen: old, ..key });
            }
        }
        self.drop_entry(&key);
        let since = SystemTime::now()
            .duration_since(self.epoch)
            .map_or(0, |d| d.as_secs().min(u32::MAX.into()) as u32);
        self.by_owner
            .entry(rec.tgid)
            .and_modify(|o| o.insert(f))
            .or_insert(Owned::One(f));
        self.locks.insert(
            f,
            Entry {
                owner_start: rec.owner_start,
                owner: rec.tgid,
                gen: key.gen,
                since,
                class,
                stale: rec.stale.is_some(),
                adopted: false,
            },
        );
    }

    /// Every lock tracked now was adopted (recorded while no agent ran).
    pub fn mark_adopted(&mut self) {
        for e in self.locks.values_mut() {
            e.adopted = true;
        }
    }

    /// Forget a lock here only (the kernel record stays).
    fn drop_entry(&mut self, key: &LockKey) {
        self.rechecks.remove(key);
        let f = file_key(key);
        if self.entry(key).is_none() {
            return;
        }
        if let Some(e) = self.locks.remove(&f) {
            if self
                .by_owner
                .get_mut(&e.owner)
                .is_some_and(|o| o.remove(&f))
            {
                self.by_owner.remove(&e.owner);
            }
        }
    }

    /// Tracking ends: here and in the kernel's table.
    pub fn untrack(&mut self, key: &LockKey) {
        self.drop_entry(key);
        self.kernel.forget(*key, None);
    }

    /// The same for a lock whose record was read (no second read).
    pub fn untrack_lock(&mut self, lock: &Tracked) {
        self.drop_entry(&lock.key);
        self.kernel.forget(lock.key, Some(lock.rec.creator.fsuid));
    }

    /// Give back what a burst took: the indexes shrink once they are
    /// mostly empty (hash tables only ever grow otherwise).
    pub fn compact(&mut self) {
        if self.locks.capacity() > 1024 && self.locks.len() * 4 < self.locks.capacity() {
            self.locks.shrink_to(self.locks.len() * 2);
        }
        if self.by_owner.capacity() > 1024 && self.by_owner.len() * 4 < self.by_owner.capacity() {
            self.by_owner.shrink_to(self.by_owner.len() * 2);
        }
        for o in self.by_owner.values_mut() {
            if let Owned::Many(s) = o {
                if s.capacity() > 64 && s.len() * 4 < s.capacity() {
                    s.shrink_to(s.len() * 2);
                }
            }
        }
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
        let Some(&old) = self.entry(&key) else {
            return true;
        };
        let Some(rec) = self.update(key, |r| {
            r.tgid = pid;
            r.owner_start = start_ns;
            r.comm = comm;
            if stale.is_some() {
                r.stale = stale;
            }
        }) else {
            return true;
        };
        self.drop_entry(&key);
        let f = file_key(&key);
        self.by_owner
            .entry(pid)
            .and_modify(|o| o.insert(f))
            .or_insert(Owned::One(f));
        self.locks.insert(
            f,
            Entry {
                owner: pid,
                owner_start: start_ns,
                stale: rec.stale.is_some(),
                ..old
            },
        );
        self.kernel.watch(pid)
    }

    /// Every tracked lock's key and path (read from the kernel), for a new
    /// classification.
    pub fn paths(&self) -> Vec<(LockKey, PathBuf)> {
        self.all().map(|l| (l.key, l.rec.path)).collect()
    }

    /// A tracked lock now has another name (its owner renamed it).
    pub fn rename(&mut self, key: LockKey, to: PathBuf, class: Match) -> Option<Record> {
        let rec = self.update(key, |r| r.path = to)?;
        if let Some(e) = self.locks.get_mut(&file_key(&key)) {
            e.class = class;
        }
        Some(rec)
    }
}

#[cfg(test)]
pub mod fake;
#[cfg(test)]
mod tests;
