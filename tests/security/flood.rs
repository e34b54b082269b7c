//! Attack 5: one user's locks filling the tables.

use std::time::Duration;

use super::*;

/// Attack 5. With --max-locks 64 and --max-owners 64, user A keeps 200
/// lock names alive in 100 live processes (two each); then user B takes a
/// lock and is SIGKILLed: B's lock is still removed, and the log holds a
/// few warnings about full tables, not one per A's creation.
#[test]
fn one_users_flood_leaves_room_for_another_users_locks() {
    if !privileged() {
        return;
    }
    let a = TestUser::new();
    let b = TestUser::new();
    let top = open_test_dir("sec-flood");
    let (da, db) = (top.path().join("a"), top.path().join("b"));
    user_dir(&a, &da);
    user_dir(&b, &db);
    let agent = agent_for(top.path(), &["--max-locks", "64", "--max-owners", "64"]);
    let mut procs = Procs::default();
    for i in 0..100 {
        let (p, q) = (
            c(da.join(format!("a{i}.lock"))),
            c(da.join(format!("a{i}b.lock"))),
        );
        procs.fork(|| {
            a.become_it();
            create(&p, true, b"");
            create(&q, true, b"");
            park();
        });
    }
    assert!(
        wait_for(Duration::from_secs(20), || std::fs::read_dir(&da)
            .is_ok_and(|d| d.count() == 200)),
        "user A did not take its 200 locks"
    );
    let lock = db.join("b.lock");
    let l = c(&lock);
    let victim_pid = procs.fork(|| {
        b.become_it();
        create(&l, true, b"");
        park();
    });
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
    assert_eq!(std::fs::read_dir(&da).unwrap().count(), 200);
}
