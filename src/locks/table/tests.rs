//! The index against an in-memory kernel: what it keeps, what it reads
//! back from the kernel's table, and that it stays in step with it.

use super::fake::FakeKernel;
use super::*;
use crate::files::creator::Creator;
use crate::locks::kernel::LockKind;

fn rec(path: &str, tgid: u32, start: u64) -> Record {
    Record {
        tgid,
        flags: 0,
        owner_start: start,
        mnt_ns: 1,
        pid_ns: 2,
        open_flags: 0,
        kind: LockKind::Open,
        comm: "job".into(),
        stale: None,
        path: path.into(),
        creator: Creator::root(),
    }
}

fn key(ino: u64, gen: u32) -> LockKey {
    LockKey {
        dev: 8 << 20,
        ino,
        gen,
    }
}

/// Records the kernel made (stored there), tracked.
fn table(locks: &[(LockKey, Record)]) -> Table<FakeKernel> {
    let mut t = Table::new(FakeKernel::default());
    for (k, r) in locks {
        assert!(t.kernel.store(*k, r));
        t.insert(*k, r, Match::Candidate);
    }
    t
}

#[test]
fn a_lock_is_read_back_whole_from_the_kernel() {
    let t = table(&[(key(1, 7), rec("/run/a.lock", 10, 500))]);
    let l = t.get(&key(1, 7)).unwrap();
    assert_eq!(l.rec, rec("/run/a.lock", 10, 500));
    assert_eq!(l.file, key(1, 7).file());
    assert!(
        t.get(&key(1, 8)).is_none(),
        "another generation is another file"
    );
    assert!(
        t.on_file(&key(1, 0).file()).is_some(),
        "by file, any generation"
    );
}

#[test]
fn a_lock_whose_record_the_kernel_lost_is_not_returned() {
    let t = table(&[(key(1, 0), rec("/run/a.lock", 10, 500))]);
    t.kernel.forget(key(1, 0), None);
    assert!(t.tracks(&key(1, 0)));
    assert!(t.get(&key(1, 0)).is_none());
    assert_eq!(t.all().count(), 0);
}

#[test]
fn a_new_file_on_a_tracked_inode_number_replaces_the_old_lock_here_and_in_the_kernel() {
    let mut t = table(&[(key(1, 1), rec("/run/a.lock", 10, 500))]);
    let newer = rec("/run/b.lock", 11, 600);
    t.kernel.store(key(1, 2), &newer);
    t.insert(key(1, 2), &newer, Match::Candidate);
    assert_eq!(t.len(), 1);
    assert!(
        t.kernel.record(key(1, 1)).is_none(),
        "the old record is deleted"
    );
    assert_eq!(t.of_owner(10), vec![]);
    assert_eq!(t.of_owner(11), vec![key(1, 2)]);
}

#[test]
fn one_owners_locks_are_found_as_it_gains_and_loses_them() {
    let mut t = table(&[
        (key(1, 0), rec("/run/a.lock", 10, 500)),
        (key(2, 0), rec("/run/b.lock", 10, 500)),
        (key(3, 0), rec("/run/c.lock", 10, 500)),
        (key(4, 0), rec("/run/d.lock", 20, 900)),
    ]);
    let mut mine = t.of_owner(10);
    mine.sort_by_key(|k| k.ino);
    assert_eq!(mine, vec![key(1, 0), key(2, 0), key(3, 0)]);
    t.untrack(&key(2, 0));
    t.untrack(&key(1, 0));
    assert_eq!(t.of_owner(10), vec![key(3, 0)]);
    t.untrack(&key(3, 0));
    assert!(!t.owns_any(10));
    assert_eq!(t.owners(), vec![(20, procfs::boottime_ns_to_ticks(900))]);
}

#[test]
fn handing_a_lock_on_changes_the_kernels_record_and_the_index() {
    let mut t = table(&[(key(1, 0), rec("/run/a.lock", 10, 500))]);
    assert!(t.set_owner(key(1, 0), 30, 700, "parent".into(), None));
    let r = t.kernel.record(key(1, 0)).unwrap();
    assert_eq!(
        (r.tgid, r.owner_start, r.comm.as_str()),
        (30, 700, "parent")
    );
    assert!(
        t.kernel.owners.borrow().contains(&30),
        "the new owner is watched"
    );
    assert!(!t.owns_any(10));
    let b: Vec<Brief> = t.briefs_of(30).collect();
    assert_eq!((b[0].owner, b[0].owner_start, b[0].stale), (30, 700, false));

    t.mark_stale(key(1, 0), (10, 9, "job".into()));
    assert!(t.briefs().next().unwrap().stale);
    assert_eq!(
        t.get(&key(1, 0)).unwrap().rec.stale,
        Some((10, 9, "job".into()))
    );
}

#[test]
fn a_rename_is_in_the_kernels_record() {
    let mut t = table(&[(key(1, 0), rec("/run/a.lock", 10, 500))]);
    t.rename(key(1, 0), "/run/b.lock".into(), Match::Denied);
    assert_eq!(
        t.kernel.record(key(1, 0)).unwrap().path,
        std::path::Path::new("/run/b.lock")
    );
    assert_eq!(t.briefs().next().unwrap().class, Match::Denied);
    assert_eq!(t.paths(), vec![(key(1, 0), "/run/b.lock".into())]);
}

#[test]
fn adopted_locks_are_told_apart() {
    let mut t = table(&[(key(1, 0), rec("/run/a.lock", 10, 500))]);
    t.mark_adopted();
    let r = rec("/run/b.lock", 10, 500);
    t.kernel.store(key(2, 0), &r);
    t.insert(key(2, 0), &r, Match::Candidate);
    let mut b: Vec<(u64, bool)> = t.briefs().map(|b| (b.key.ino, b.adopted)).collect();
    b.sort();
    assert_eq!(b, vec![(1, true), (2, false)]);
}

#[test]
fn the_index_gives_back_its_memory_once_mostly_empty() {
    let locks: Vec<(LockKey, Record)> = (0..5000)
        .map(|i| (key(i, 0), rec("/run/x.lock", 10, 500)))
        .collect();
    let mut t = table(&locks);
    let before = t.locks.capacity();
    for (k, _) in &locks[..4990] {
        t.untrack(k);
    }
    t.compact();
    assert!(t.locks.capacity() < before / 8, "{}", t.locks.capacity());
    assert_eq!(t.of_owner(10).len(), 10);
}
