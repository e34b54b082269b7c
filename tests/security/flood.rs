//! Attack 5: one user's locks filling the tables.

use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// The two floods run one at a time: each agent's tables see every
/// lock on the host (scope is applied in user space), and two flooding
/// uids at once are two halves, a full table.
static ONE_FLOOD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Two users, each with a directory of its own under one agent's scope.
struct Flood {
    _one: std::sync::MutexGuard<'static, ()>,
    a: TestUser,
    b: TestUser,
    da: PathBuf,
    db: PathBuf,
    agent: Agent,
    _top: tempfile::TempDir,
}

fn flood(name: &str, limits: &[&str]) -> Flood {
    let one = ONE_FLOOD.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = (TestUser::new(), TestUser::new());
    let top = open_test_dir(name);
    let (da, db) = (top.path().join("a"), top.path().join("b"));
    user_dir(&a, &da);
    user_dir(&b, &db);
    let agent = agent_for(top.path(), limits);
    Flood {
        _one: one,
        a,
        b,
        da,
        db,
        agent,
        _top: top,
    }
}

impl Flood {
    /// User A keeps `per` locks alive in each of `n` processes, all taken
    /// before this returns.
    fn a_holds(&self, procs: &mut Procs, n: usize, per: usize) {
        for i in 0..n {
            let names: Vec<CString> = (0..per)
                .map(|k| c(self.da.join(format!("a{i}-{k}.lock"))))
                .collect();
            procs.fork(|| {
                self.a.become_it();
                for p in &names {
                    create(p, true, b"");
                }
                park();
            });
        }
        assert!(
            wait_for(Duration::from_secs(20), || std::fs::read_dir(&self.da)
                .is_ok_and(|d| d.count() == n * per)),
            "user A did not take its {} locks",
            n * per
        );
    }

    /// User B takes one lock in a live process: its path and PID.
    fn b_holds(&self, procs: &mut Procs) -> (PathBuf, i32) {
        let lock = self.db.join("b.lock");
        let l = c(&lock);
        let pid = procs.fork(|| {
            self.b.become_it();
            create(&l, true, b"");
            park();
        });
        (lock, pid)
    }
}

/// Attack 5. With --max-locks 64 and --max-owners 64, user A keeps 200
/// lock names alive in 100 live processes (two each); then user B takes a
/// lock and is SIGKILLed: B's lock is still removed, and the log holds a
/// few warnings about full tables, not one per A's creation.
#[test]
fn one_users_flood_leaves_room_for_another_users_locks() {
    if !privileged() {
        return;
    }
    let f = flood("sec-flood", &["--max-locks", "64", "--max-owners", "64"]);
    let (a, da, agent) = (&f.a, &f.da, &f.agent);
    let mut procs = Procs::default();
    f.a_holds(&mut procs, 100, 2);
    let (lock, victim_pid) = f.b_holds(&mut procs);
    assert!(wait_for(PATIENCE, || exists(&lock)));
    std::thread::sleep(Duration::from_millis(300));
    procs.kill(victim_pid, libc::SIGKILL);
    procs.assert_killed(victim_pid, "user B's locker");
    assert!(
        wait_for(PATIENCE, || !exists(&lock)),
        "user B's lock {} was not removed while user A floods the tables:\n{}",
        lock.display(),
        agent.log_text()
    );
    // A's refused creations are counted, and said once, per uid
    let summary = agent.wait_log_line(
        &[&format!("locks of uid {} not recorded", a.uid), "WARN"],
        PATIENCE,
    );
    let n: u32 = summary
        .split("] ")
        .nth(1)
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary:?}"));
    // A holds at most half of --max-locks 64; the rest of its 200 went
    // unrecorded
    assert!((168..=200).contains(&n), "{summary}");
    let log = agent.log_text();
    let warns: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN"))
        .filter(|l| {
            ["full", "not recorded", "unrecorded", "--max-"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    assert!(
        warns.len() <= 5,
        "{} WARN lines about full tables for 200 creations (at most 5 wanted):\n{}",
        warns.len(),
        warns.join("\n")
    );
    // every one of A's locks is still there: its owners live
    assert_eq!(std::fs::read_dir(da).unwrap().count(), 200);
}

/// The same for the owners map: with room for every lock (--max-locks
/// 4096) but --max-owners 64, user A keeps 100 owners alive (one lock
/// each). User B's owner must still be watched, so its SIGKILL is seen
/// with its status and its lock removed; an unwatched owner's lock would
/// be kept ("exited unseen").
#[test]
fn one_users_owners_leave_room_for_another_users_owner() {
    if !privileged() {
        return;
    }
    let f = flood("sec-owners", &["--max-locks", "4096", "--max-owners", "64"]);
    let (da, agent) = (&f.da, &f.agent);
    let mut procs = Procs::default();
    f.a_holds(&mut procs, 100, 1);
    let (lock, victim_pid) = f.b_holds(&mut procs);
    expect_tracked(agent, &lock, victim_pid);
    procs.kill(victim_pid, libc::SIGKILL);
    procs.assert_killed(victim_pid, "user B's locker");
    expect_removed(agent, &lock, &["killed by SIGKILL"]);
    assert_eq!(std::fs::read_dir(da).unwrap().count(), 100);
}
