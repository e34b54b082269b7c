//! The lock duty against an in-memory kernel (table::fake), real files
//! in a temporary directory and real processes. Removal needs the
//! holder scan to see every process: root only (skipped otherwise, a
//! failure under EGHOSTBUSTER_REQUIRE_BPF=1).

use super::*;
use crate::host::procfs::FileId;
use crate::locks::kernel::{LockKind, Record};
use crate::locks::metrics::KeptReason;
use crate::locks::patterns::LockMatcher;
use crate::locks::table::fake::FakeKernel;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        assert!(
            std::env::var("EGHOSTBUSTER_REQUIRE_BPF").as_deref() != Ok("1"),
            "EGHOSTBUSTER_REQUIRE_BPF=1 but not root"
        );
        eprintln!("skipped: needs root");
    }
    root
}

/// A real process, parked; its start time in boot ns.
fn process() -> (Child, u32, u64) {
    let child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id();
    let st = procfs::stat(pid).unwrap();
    let start_ns = st.start_ticks * (1_000_000_000 / procfs::clock_ticks_per_sec());
    (child, pid, start_ns)
}

/// SIGKILL it and reap it: its PID is dead from here.
fn kill(mut c: Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

fn record(path: &Path, tgid: u32, start_ns: u64, kind: LockKind) -> Record {
    Record {
        tgid,
        flags: 0,
        owner_start: start_ns,
        mnt_ns: procfs::own_ns("mnt").unwrap(),
        pid_ns: procfs::own_ns("pid").unwrap(),
        open_flags: 0,
        kind,
        comm: "sleep".into(),
        stale: None,
        path: path.to_path_buf(),
        creator: crate::files::creator::Creator::root(),
    }
}

/// The key the kernel (an open) or the name's resolution gives: device,
/// inode and generation.
fn key_of(path: &Path) -> LockKey {
    use std::os::fd::AsRawFd;
    let m = std::fs::symlink_metadata(path).unwrap();
    let dir = std::fs::File::open(path.parent().unwrap()).unwrap();
    let gen = crate::files::identity::generation(dir.as_raw_fd(), path.file_name().unwrap());
    assert!(gen.is_some(), "the tests' filesystem tells generations");
    LockKey::of_gen(FileId::from_stat(m.dev(), m.ino()), gen)
}

fn exit(tgid: u32, start_ns: u64, status: u32, ppid: u32) -> Exit {
    Exit {
        tgid,
        ppid,
        status,
        start_boottime: start_ns,
        parent_start_boottime: 0,
        parent_subreaper: false,
        comm: "sleep".into(),
        ns_tgid: tgid,
        pid_ns: procfs::own_ns("pid").unwrap(),
    }
}

fn work(dir: &Path) -> (LockWork<FakeKernel>, Arc<LockMetrics>) {
    let metrics = Arc::new(LockMetrics::default());
    let w = LockWork::new(
        LockConfig {
            dry_run: false,
            matcher: LockMatcher::new(&[], &[], &[dir.to_path_buf()]).unwrap(),
        },
        FakeKernel::default(),
        metrics.clone(),
    )
    .unwrap();
    (w, metrics)
}

/// The kernel recorded a creation: its record, then the event.
fn created(w: &mut LockWork<FakeKernel>, key: LockKey, rec: Record) {
    let tgid = rec.tgid;
    w.table.kernel.store(key, &rec);
    w.handle(vec![LockEvent::Created(Created {
        tgid,
        flags: 0,
        fsuid: 0,
        key,
    })]);
}

#[test]
fn a_killed_owners_lock_is_removed_and_forgotten() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("db.lock");
    std::fs::write(&lock, "").unwrap();
    let (child, pid, start) = process();
    let (mut w, m) = work(t.path());
    let key = key_of(&lock);
    created(&mut w, key, record(&lock, pid, start, LockKind::Open));
    assert_eq!(w.table.len(), 1);
    kill(child);
    w.handle(vec![LockEvent::Exit(Box::new(exit(pid, start, 9, 1)))]);
    assert!(!lock.exists());
    assert_eq!(w.table.len(), 0);
    assert!(w.table.kernel.locks.borrow().is_empty());
    assert_eq!(m.removed_total.load(Relaxed), 1);
}

#[test]
fn a_clean_exit_hands_the_lock_to_the_parent() {
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("job.lock");
    std::fs::write(&lock, "").unwrap();
    let (child, pid, start) = process();
    let (parent, ppid, _) = process();
    let (mut w, m) = work(t.path());
    let key = key_of(&lock);
    created(&mut w, key, record(&lock, pid, start, LockKind::Open));
    kill(child);
    w.handle(vec![LockEvent::Exit(Box::new(exit(pid, start, 0, ppid)))]);
    assert!(lock.exists());
    assert_eq!(w.table.get(&key).unwrap().owner(), ppid);
    assert_eq!(w.table.kernel.record(key).unwrap().tgid, ppid);
    assert!(w.table.kernel.owners.borrow().contains(&ppid));
    assert_eq!(m.handed_total.load(Relaxed), 1);
    kill(parent);
}

#[test]
fn a_live_pid_in_the_file_keeps_it_and_becomes_the_owner() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("pid.lock");
    let (holder, hpid, _) = process();
    std::fs::write(&lock, format!("{hpid}\n")).unwrap();
    let (child, pid, start) = process();
    let (mut w, m) = work(t.path());
    let key = key_of(&lock);
    created(&mut w, key, record(&lock, pid, start, LockKind::Open));
    kill(child);
    w.handle(vec![LockEvent::Exit(Box::new(exit(pid, start, 9, 1)))]);
    assert!(lock.exists());
    assert_eq!(m.kept_count(KeptReason::PidAlive), 1);
    let l = w.table.get(&key).unwrap();
    assert_eq!(l.owner(), hpid);
    assert!(l.rec.stale.is_some(), "kept for a live process, stale");
    // the holder ends: now it goes
    let hstart = l.rec.owner_start;
    kill(holder);
    w.handle(vec![LockEvent::Exit(Box::new(exit(hpid, hstart, 9, 1)))]);
    assert!(!lock.exists());
    assert_eq!(m.removed_total.load(Relaxed), 1);
}

#[test]
fn deny_listed_and_out_of_scope_names() {
    let t = tempfile::tempdir().unwrap();
    let cargo = t.path().join("Cargo.lock");
    std::fs::write(&cargo, "").unwrap();
    let outside = tempfile::tempdir().unwrap();
    let far = outside.path().join("far.lock");
    std::fs::write(&far, "").unwrap();
    let (child, pid, start) = process();
    let (mut w, m) = work(t.path());
    created(
        &mut w,
        key_of(&cargo),
        record(&cargo, pid, start, LockKind::Open),
    );
    // outside --path: forgotten in the kernel at once
    let fkey = key_of(&far);
    created(&mut w, fkey, record(&far, pid, start, LockKind::Open));
    assert!(w.table.kernel.record(fkey).is_none());
    assert_eq!(w.table.len(), 1);
    kill(child);
    w.handle(vec![LockEvent::Exit(Box::new(exit(pid, start, 9, 1)))]);
    assert!(cargo.exists() && far.exists());
    assert_eq!(m.kept_count(KeptReason::DenyList), 1);
    assert_eq!(w.table.len(), 0);
}

#[test]
fn a_lock_taken_by_name_is_keyed_by_its_inode() {
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("mbox.lock");
    std::fs::write(&lock, "").unwrap();
    let (child, pid, start) = process();
    let (mut w, _) = work(t.path());
    let pending = LockKey {
        dev: crate::locks::kernel::LOCK_KEY_PENDING | 1,
        ino: 42,
        gen: 0,
    };
    // the kernel's raw name: directory walked, plus the caller's string
    let raw = t.path().join("sub/../mbox.lock");
    std::fs::create_dir(t.path().join("sub")).unwrap();
    created(&mut w, pending, record(&raw, pid, start, LockKind::Link));
    let key = key_of(&lock);
    assert!(w.table.kernel.record(pending).is_none());
    let l = w.table.get(&key).expect("re-keyed by inode");
    assert_eq!(l.rec.path, lock);
    assert!(w.table.kernel.record(key).is_some());
    kill(child);
}

#[test]
fn an_owner_gone_without_an_exit_is_kept_on_the_second_tick() {
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("unseen.lock");
    std::fs::write(&lock, "").unwrap();
    let (child, pid, start) = process();
    let (mut w, m) = work(t.path());
    created(
        &mut w,
        key_of(&lock),
        record(&lock, pid, start, LockKind::Open),
    );
    kill(child);
    w.tick();
    assert_eq!(w.table.len(), 1, "one tick is not enough");
    w.tick();
    assert_eq!(w.table.len(), 0);
    assert!(lock.exists());
    assert_eq!(m.kept_count(KeptReason::ExitUnseen), 1);
}

#[test]
fn adoption_judges_exits_recorded_while_no_agent_ran() {
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("early.lock");
    std::fs::write(&lock, "").unwrap();
    let (child, pid, start) = process();
    let (mut w, m) = work(t.path());
    let key = key_of(&lock);
    w.table
        .kernel
        .store(key, &record(&lock, pid, start, LockKind::Open));
    kill(child);
    w.table
        .kernel
        .exited
        .borrow_mut()
        .insert(pid, exit(pid, start, 9, 1));
    w.adopt();
    assert!(!lock.exists());
    assert_eq!(m.removed_total.load(Relaxed), 1);
    assert!(w.table.kernel.exited.borrow().is_empty(), "exit dealt with");
}

#[test]
fn a_replaced_name_is_released_not_removed() {
    let t = tempfile::tempdir().unwrap();
    let lock = t.path().join("r.lock");
    std::fs::write(&lock, "").unwrap();
    let (child, pid, start) = process();
    let (mut w, m) = work(t.path());
    created(
        &mut w,
        key_of(&lock),
        record(&lock, pid, start, LockKind::Open),
    );
    // someone else removes it and makes a new file there (keep the
    // old inode alive so the number is not reused)
    let old = std::fs::File::open(&lock).unwrap();
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, "data").unwrap();
    kill(child);
    w.handle(vec![LockEvent::Exit(Box::new(exit(pid, start, 9, 1)))]);
    drop(old);
    assert_eq!(std::fs::read(&lock).unwrap(), b"data");
    assert_eq!(m.removed_total.load(Relaxed), 0);
    assert_eq!(w.table.len(), 0);
}

#[test]
fn the_status_chooses_locks_kept_for_a_live_process_then_the_oldest() {
    let t = tempfile::tempdir().unwrap();
    let (child, pid, start) = process();
    let (mut w, _) = work(t.path());
    let mut keys = Vec::new();
    for name in ["c.lock", "a.lock", "b.lock"] {
        let lock = t.path().join(name);
        std::fs::write(&lock, "").unwrap();
        let key = key_of(&lock);
        created(&mut w, key, record(&lock, pid, start, LockKind::Open));
        keys.push(key);
    }
    // b.lock's owner ended and a live process keeps it
    w.table.mark_stale(keys[2], (pid + 1, 9, "job".into()));

    let (two, all) = w.status(2);
    assert_eq!(all, 3);
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].state, "held", "the stale one is chosen, and first");
    assert!(two[0].path.as_str().unwrap().ends_with("/b.lock"));
    assert_eq!(two[1].state, "owned");

    let (every, _) = w.status(10);
    let names: Vec<&str> = every
        .iter()
        .map(|s| s.path.as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        ["b.lock", "a.lock", "c.lock"],
        "stale first, then by path"
    );
    assert!(every.iter().all(|s| s.owner_pid == pid && s.owner_alive));
    kill(child);
}
