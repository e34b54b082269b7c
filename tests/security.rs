//! Issue 11: nobody can aim the agent. Each test plays one attack of the
//! issue as an ordinary user would (a real user made for the test, in user
//! and mount namespaces of its own), against the real agent scoped to the
//! test's directory, and checks that what that user could never remove or
//! overwrite survives: root-owned files (0644) in root-owned directories
//! (0755).

mod common;
#[path = "common/user.rs"]
#[allow(dead_code)]
mod user;

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use user::{enter_userns, TestUser};

const PRECIOUS: &[u8] = b"precious: root's, not the test user's\n";

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A directory of root's, mode 0755.
fn root_dir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
    chmod(p, 0o755);
}

/// A file of root's, mode 0644, holding PRECIOUS.
fn root_file(p: &Path) {
    std::fs::write(p, PRECIOUS).unwrap();
    chmod(p, 0o644);
}

/// The root-owned file is still there, with its content.
fn intact(p: &Path) -> bool {
    std::fs::read(p).is_ok_and(|b| b == PRECIOUS)
        && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.uid() == 0)
}

/// A test directory the test user can reach (0755).
fn open_test_dir(name: &str) -> tempfile::TempDir {
    let d = test_dir(name);
    chmod(d.path(), 0o755);
    d
}

/// A directory of the test user's, mode 0755.
fn user_dir(user: &TestUser, p: &Path) {
    root_dir(p);
    user.give(p);
}

/// In a child: a syscall's result, or a panic naming it and errno.
fn ok(r: i32, what: &str) {
    assert!(r == 0, "{what}: {}", std::io::Error::last_os_error());
}

fn c(p: impl AsRef<Path>) -> CString {
    cstr(p.as_ref())
}

/// In a child: an empty file of its own (O_EXCL), closed.
fn new_file(p: &Path) {
    let fd = create(&c(p), true, b"");
    unsafe { libc::close(fd) };
}

/// The agent judged `lock`: it is gone, or a line about it says why not.
fn judged(agent: &Agent, lock: &Path) -> bool {
    let name = lock.display().to_string();
    wait_for(PATIENCE, || {
        !exists(lock)
            || agent
                .log_text()
                .lines()
                .any(|l| l.contains(&name) && (l.contains("kept") || l.contains("not ")))
    })
}

/// Attack 1. A process in a user namespace chroots into a jail of its own
/// and takes a lock by link() named `/../rootonly/data.lock`: the kernel
/// stops `..` at the jail's root and makes `jail/rootonly/data.lock`;
/// normalising `jail` + name as text lands on the root-owned
/// `rootonly/data.lock` beside the jail. The owner is SIGKILLed: root's
/// file stays. A lock in the jail named without climbing is judged.
#[test]
fn chroot_dotdot_never_reaches_above_the_creators_root() {
    if !privileged() {
        return;
    }
    let user = TestUser::new();
    let top = open_test_dir("sec-chroot");
    let jail = top.path().join("jail");
    user_dir(&user, &jail);
    let rootonly = top.path().join("rootonly");
    root_dir(&rootonly);
    let victim = rootonly.join("data.lock");
    root_file(&victim);
    let agent = agent_for(top.path(), &[]);
    let mut procs = Procs::default();
    let j = jail.clone();
    let pid = procs.fork(|| {
        user.become_it();
        enter_userns(false);
        // where the kernel puts the climbing name: in the jail
        ok(
            unsafe { libc::mkdir(c(j.join("rootonly")).as_ptr(), 0o755) },
            "mkdir",
        );
        new_file(&j.join("a"));
        new_file(&j.join("b"));
        ok(unsafe { libc::chroot(c(&j).as_ptr()) }, "chroot");
        ok(unsafe { libc::chdir(c("/").as_ptr()) }, "chdir");
        ok(
            unsafe { libc::link(c("/a").as_ptr(), c("/legit.lock").as_ptr()) },
            "link legit",
        );
        ok(
            unsafe { libc::link(c("/b").as_ptr(), c("/../rootonly/data.lock").as_ptr()) },
            "link climbing",
        );
        new_file(Path::new("/ready"));
        park();
    });
    assert!(
        wait_for(PATIENCE, || exists(&jail.join("ready"))),
        "the jailed process did not take its locks"
    );
    assert!(
        exists(&jail.join("rootonly/data.lock")),
        "the kernel climbed"
    );
    // the agent has heard of both names (a record is resolved within ms)
    std::thread::sleep(Duration::from_millis(500));
    procs.kill(pid, libc::SIGKILL);
    procs.assert_killed(pid, "the jailed locker");
    let legit = jail.join("legit.lock");
    assert!(
        judged(&agent, &legit),
        "the legitimate lock in the jail was neither removed nor kept with a reason:\n{}",
        agent.log_text()
    );
    // judged together with the climbing name: give that one time too
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        intact(&victim),
        "{} (root's, outside the jail) was removed or changed:\n{}",
        victim.display(),
        agent.log_text()
    );
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Take {
    Link,
    Mkdir,
}

const RACE_TRIES: usize = 5;

/// Attack 2. In a private mount namespace, right after taking a lock name
/// in its own directory (link or mkdir), a process bind-mounts a
/// root-owned directory holding the same name over that directory, and is
/// SIGKILLed. The agent must never remove root's file (or root's lock
/// directory and what it holds). `outside`: root's directory is outside
/// --path, which covers the user's directory only. RACE_TRIES tries, each
/// with names of its own; one process stays alive in the namespace so that
/// the agent can reach it.
fn bind_race(take: Take, outside: bool) {
    let user = TestUser::new();
    let top = open_test_dir("sec-bind");
    let own = top.path().join("own");
    user_dir(&user, &own);
    let elsewhere = open_test_dir("sec-bind-victims");
    let victims_in = if outside {
        elsewhere.path()
    } else {
        top.path()
    };
    let scope = if outside { own.as_path() } else { top.path() };

    // root's files exist before the agent starts: it never saw them made
    let mut victims: Vec<PathBuf> = Vec::new();
    let mut inner: Vec<PathBuf> = Vec::new();
    let mut plan: Vec<(PathBuf, PathBuf, PathBuf)> = Vec::new(); // (user dir, name, source)
    for i in 0..RACE_TRIES {
        let src = victims_in.join(format!("root{i}"));
        root_dir(&src);
        let name = format!("x{i}.lock");
        let v = src.join(&name);
        match take {
            Take::Link => root_file(&v),
            Take::Mkdir => {
                // a lock directory of root's with its (empty) owner file:
                // what the agent would remove for its creator
                root_dir(&v);
                let f = v.join("owner");
                std::fs::write(&f, b"").unwrap();
                chmod(&f, 0o644);
                inner.push(f);
            }
        }
        victims.push(v);
        let d = own.join(format!("t{i}"));
        user_dir(&user, &d);
        plan.push((d, PathBuf::from(name), src));
    }
    let agent = agent_for(scope, &[]);
    let done = own.join("done");
    let mut procs = Procs::default();
    let keeper = procs.fork(|| {
        user.become_it();
        enter_userns(true);
        for (d, name, src) in &plan {
            let lock = c(d.join(name));
            let (dc, srcc) = (c(d), c(src));
            let tmp = c(d.join("tmp"));
            if take == Take::Link {
                new_file(&d.join("tmp"));
            }
            let pid = unsafe { libc::fork() };
            assert!(pid >= 0);
            if pid == 0 {
                unsafe {
                    let r = match take {
                        Take::Link => libc::link(tmp.as_ptr(), lock.as_ptr()),
                        Take::Mkdir => libc::mkdir(lock.as_ptr(), 0o755),
                    };
                    if r != 0 {
                        libc::_exit(2);
                    }
                    let r = libc::mount(
                        srcc.as_ptr(),
                        dc.as_ptr(),
                        std::ptr::null(),
                        libc::MS_BIND,
                        std::ptr::null(),
                    );
                    if r != 0 {
                        libc::_exit(3);
                    }
                    libc::kill(libc::getpid(), libc::SIGKILL);
                    libc::_exit(4);
                }
            }
            let mut st = 0;
            unsafe { libc::waitpid(pid, &mut st, 0) };
            assert!(
                libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGKILL,
                "the racer ended with status {st:#x}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        new_file(&done);
        park();
    });
    assert!(
        wait_for(Duration::from_secs(20), || exists(&done)),
        "the racing process did not finish its tries"
    );
    // every try's name is there in our namespace (the mounts are not)
    for (d, name, _) in &plan {
        assert!(
            exists(&d.join(name)),
            "{} not taken",
            d.join(name).display()
        );
    }
    // the agent acts within milliseconds of an owner's exit
    std::thread::sleep(Duration::from_secs(2));
    let gone: Vec<String> = victims
        .iter()
        .chain(&inner)
        .filter(|v| match take {
            Take::Link => !intact(v),
            Take::Mkdir => !v.symlink_metadata().is_ok_and(|m| m.uid() == 0),
        })
        .map(|v| v.display().to_string())
        .collect();
    assert!(
        gone.is_empty(),
        "{take:?} race ({}): root's {gone:?} removed or changed ({} tries):\n{}",
        if outside {
            "outside --path"
        } else {
            "inside --path"
        },
        RACE_TRIES,
        agent.log_text()
    );
    procs.kill(keeper, libc::SIGKILL);
}

#[test]
fn bind_race_link_inside_path_never_removes_roots_file() {
    if privileged() {
        bind_race(Take::Link, false);
    }
}

#[test]
fn bind_race_link_outside_path_never_removes_roots_file() {
    if privileged() {
        bind_race(Take::Link, true);
    }
}

#[test]
fn bind_race_mkdir_inside_path_never_removes_roots_directory() {
    if privileged() {
        bind_race(Take::Mkdir, false);
    }
}

#[test]
fn bind_race_mkdir_outside_path_never_removes_roots_directory() {
    if privileged() {
        bind_race(Take::Mkdir, true);
    }
}

/// Names a writer of `final_` could use predictably: the final name, the
/// old schemes' `.NAME.PID.tmp` and `NAME.tmp-PID` for the next PIDs, and
/// the usual fixed suffixes.
fn predictable_names(final_: &str) -> Vec<String> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut v: Vec<String> = [".tmp", ".new", "~", ".swp", ".part"]
        .iter()
        .flat_map(|s| [format!("{final_}{s}"), format!(".{final_}{s}")])
        .collect();
    for pid in last + 1..=last + 400 {
        v.push(format!(".{final_}.{pid}.tmp"));
        v.push(format!("{final_}.tmp-{pid}"));
    }
    v
}

/// The user plants a symlink to `victim` at every one of `names` in `dir`.
fn plant(user: &TestUser, dir: &Path, names: &[String], victim: &Path) {
    let list = dir.join("plant.list");
    std::fs::write(&list, names.join("\n") + "\n").unwrap();
    chmod(&list, 0o644);
    user.run(
        "while IFS= read -r n; do ln -s \"$1\" \"$n\" || exit 1; done < plant.list",
        victim,
        dir,
    );
}

/// What was planted is as planted: each a symlink to the victim, the
/// victim unchanged.
fn untouched(dir: &Path, names: &[String], victim: &Path) -> Result<(), String> {
    if !intact(victim) {
        return Err(format!(
            "root's {} was written or removed",
            victim.display()
        ));
    }
    for n in names {
        let p = dir.join(n);
        if std::fs::read_link(&p).ok().as_deref() != Some(victim) {
            return Err(format!("{} is no longer the planted symlink", p.display()));
        }
    }
    Ok(())
}

fn regular(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
}

/// `eghostbuster run` with its status file and metrics text file in `out`;
/// its log collected.
struct Run {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Run {
    fn spawn(scope: &Path, status: &Path, textfile: &Path) -> Run {
        let mut child = Command::new(BIN)
            .args(["run", "--path"])
            .arg(scope)
            .args([
                "--no-sockets",
                "--no-unix-sockets",
                "--no-pid-files",
                "--no-pin",
            ])
            .arg("--status-file")
            .arg(status)
            .arg("--metrics-textfile")
            .arg(textfile)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Run { child, log }
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGTERM, and the exit code.
    fn stop(&mut self) -> Option<i32> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut code = None;
        wait_for(Duration::from_secs(10), || match self.child.try_wait() {
            Ok(Some(st)) => {
                code = st.code();
                true
            }
            _ => false,
        });
        code
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}\n---", self.text());
        }
    }
}

/// Attack 3 for `run`. The status file and the metrics text file are
/// written in a directory the test user owns, which it has filled with
/// symlinks to a root-owned file at the final names and at every name a
/// writer could predictably use for its temporary file. Root's file is
/// never written nor removed; the final names become regular files (rename
/// replaces a symlink, never follows it); the planted symlinks are left as
/// they were. A symlink at the status file's `.owner` stops the start.
#[test]
fn symlinks_planted_at_runs_file_names_are_never_followed() {
    if !privileged() {
        return;
    }
    let user = TestUser::new();
    let vdir = open_test_dir("sec-plant-victim");
    let victim = vdir.path().join("shadow");
    root_file(&victim);
    let scope = test_dir("sec-plant-scope");
    let out = open_test_dir("sec-plant");
    let o = out.path();
    user.give(o);

    // the one-daemon lock beside the status file: refused, not followed
    let owner = vec!["status.json.owner".to_string()];
    plant(&user, o, &owner, &victim);
    let mut r = Run::spawn(scope.path(), &o.join("status.json"), &o.join("m.prom"));
    let refused = wait_for(Duration::from_secs(30), || {
        matches!(r.child.try_wait(), Ok(Some(_)))
    });
    assert!(
        refused,
        "started with a symlink at status.json.owner:\n{}",
        r.text()
    );
    assert_eq!(
        r.child.try_wait().unwrap().unwrap().code(),
        Some(2),
        "{}",
        r.text()
    );
    untouched(o, &owner, &victim).unwrap_or_else(|e| panic!("{e}\n{}", r.text()));
    drop(r);
    std::fs::remove_file(o.join("status.json.owner")).unwrap();

    // run: the status file and the metrics text file
    let mut names = predictable_names("status.json");
    names.extend(predictable_names("m.prom"));
    names.push("status.json".into());
    names.push("m.prom".into());
    plant(&user, o, &names, &victim);
    let temps: Vec<String> = names
        .iter()
        .filter(|n| !matches!(n.as_str(), "status.json" | "m.prom"))
        .cloned()
        .collect();
    let mut r = Run::spawn(scope.path(), &o.join("status.json"), &o.join("m.prom"));
    let written = wait_for(Duration::from_secs(15), || {
        (regular(&o.join("status.json")) && regular(&o.join("m.prom"))) || !intact(&victim)
    });
    let stopped = r.stop();
    untouched(o, &temps, &victim).unwrap_or_else(|e| {
        panic!(
            "{e} (status.json now {:?}, m.prom {:?})\n{}",
            std::fs::symlink_metadata(o.join("status.json")).map(|m| m.file_type()),
            std::fs::symlink_metadata(o.join("m.prom")).map(|m| m.file_type()),
            r.text()
        )
    });
    assert!(
        written,
        "the status file and the metrics text file were not written as regular files \
         (status.json {:?}, m.prom {:?}):\n{}",
        std::fs::symlink_metadata(o.join("status.json")).map(|m| m.file_type()),
        std::fs::symlink_metadata(o.join("m.prom")).map(|m| m.file_type()),
        r.text()
    );
    assert_eq!(stopped, Some(0), "{}", r.text());
    assert!(regular(&o.join("m.prom")), "m.prom after the stop");
}

/// Attack 3 for `sweep`: its state file and its metrics text file, in a
/// directory of the test user's full of symlinks to a root-owned file.
#[test]
fn symlinks_planted_at_sweeps_file_names_are_never_followed() {
    if !privileged() {
        return;
    }
    let user = TestUser::new();
    let vdir = open_test_dir("sec-plant-victim");
    let victim = vdir.path().join("shadow");
    root_file(&victim);
    let out = open_test_dir("sec-plant-sweep");
    let o = out.path();
    user.give(o);

    // sweep: its state file and its metrics text file
    let sweep = |state: &Path, prom: &Path| {
        Command::new(BIN)
            .args([
                "sweep",
                "--no-locks",
                "--no-unix-sockets",
                "--no-pid-files",
                "--port",
                "1",
                "--state-file",
            ])
            .arg(state)
            .arg("--metrics-textfile")
            .arg(prom)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // a symlink at the state file itself: the run stops (exit 2) and
    // leaves it, or replaces it with a regular file; root's file is never
    // read as the state nor written
    let at_state = vec!["s.state".to_string()];
    plant(&user, o, &at_state, &victim);
    let res = sweep(&o.join("s.state"), &o.join("refused.prom"));
    let (so, se) = text(&res);
    match res.status.code() {
        Some(2) => untouched(o, &at_state, &victim).unwrap_or_else(|e| panic!("{e}\n{so}{se}")),
        Some(0) => {
            assert!(intact(&victim), "root's file written\n{so}{se}");
            assert!(regular(&o.join("s.state")), "{so}{se}");
        }
        c => panic!("sweep exited with {c:?}:\n{so}{se}"),
    }
    std::fs::remove_file(o.join("s.state")).unwrap();

    let mut names = predictable_names("sweep.state");
    names.extend(predictable_names("sweep.prom"));
    plant(&user, o, &names, &victim);
    plant(&user, o, &["sweep.prom".to_string()], &victim);
    for _ in 0..2 {
        let res = sweep(&o.join("sweep.state"), &o.join("sweep.prom"));
        let (so, se) = text(&res);
        assert_eq!(res.status.code(), Some(0), "{so}{se}");
        untouched(o, &names, &victim).unwrap_or_else(|e| panic!("{e}\n{so}{se}"));
        assert!(regular(&o.join("sweep.state")), "{so}{se}");
        assert!(regular(&o.join("sweep.prom")), "{so}{se}");
    }
}

/// Attack 4, on the filesystem of `base`. The user takes a lock
/// (O_CREAT|O_EXCL) in a process that closes it and stays alive; another
/// process of the user unlinks it and makes a plain data file of the same
/// name, which gets the same inode number (freed and reused at once); the
/// lock's owner is SIGKILLed. The data file is not the lock: it stays.
fn inode_reuse(base: &Path) {
    let user = TestUser::new();
    let top = tempfile::Builder::new()
        .prefix("egb-sec-reuse-")
        .tempdir_in(base)
        .unwrap();
    chmod(top.path(), 0o755);
    let own = top.path().join("own");
    user_dir(&user, &own);
    let agent = agent_for(top.path(), &[]);
    let mut procs = Procs::default();
    for attempt in 0..10 {
        let lock = own.join(format!("data{attempt}.lock"));
        let l = c(&lock);
        let owner = procs.fork(|| {
            user.become_it();
            let fd = create(&l, true, b"");
            unsafe { libc::close(fd) };
            park();
        });
        assert!(wait_for(PATIENCE, || exists(&lock)), "no lock");
        expect_tracked(&agent, &lock, owner);
        let old = std::fs::metadata(&lock).unwrap().ino();
        let helper = procs.fork(|| {
            user.become_it();
            ok(unsafe { libc::unlink(l.as_ptr()) }, "unlink");
            let fd = unsafe {
                libc::open(
                    l.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                    0o644,
                )
            };
            assert!(fd >= 0, "open: {}", std::io::Error::last_os_error());
            let data = b"the user's data, not a lock\n";
            assert_eq!(
                unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) },
                data.len() as isize
            );
            unsafe { libc::close(fd) };
        });
        assert_eq!(procs.reap(helper), 0, "the helper failed");
        let new = std::fs::metadata(&lock).unwrap().ino();
        if new != old {
            eprintln!("attempt {attempt}: inode {old} not reused (got {new})");
            procs.kill(owner, libc::SIGKILL);
            continue;
        }
        let before = std::fs::read(&lock).unwrap();
        procs.kill(owner, libc::SIGKILL);
        procs.assert_killed(owner, "the lock's owner");
        // the agent acts within milliseconds of an owner's exit
        let removed = wait_for(Duration::from_secs(3), || !exists(&lock));
        assert!(
            !removed && std::fs::read(&lock).is_ok_and(|b| b == before),
            "the data file {} (inode {new}, the lock's number reused) was removed or changed:\n{}",
            lock.display(),
            agent.log_text()
        );
        return;
    }
    panic!(
        "inode numbers were never reused on {}: this attack cannot be played here",
        base.display()
    );
}

/// On the test directories' filesystem (ext4 here: a freed inode number is
/// reused at once). tmpfs on this kernel numbers inodes from a counter
/// that only grows, so the attack cannot be played there.
#[test]
fn a_reused_inode_number_is_not_the_lock() {
    if privileged() {
        inode_reuse(Path::new("/tmp"));
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

/// Attack 6 in `status`: a lock named to forge lines, held by a live
/// process, is one line of `eghostbuster status`, escaped, with no raw
/// control byte.
#[test]
fn a_forged_name_is_one_escaped_line_in_status() {
    if !privileged() {
        return;
    }
    let user = TestUser::new();
    let forged = "x\n[fake] removed /etc/shadow \u{2026}\n\x1b[2J.lock";
    let top = open_test_dir("sec-forged");
    let own = top.path().join("own");
    user_dir(&user, &own);
    let agent = agent_for(top.path(), &[]);
    let lock = own.join(forged);
    // '/' cannot be in a name: the user makes the directories it implies;
    // the owner lives on (exec keeps its PID)
    let mut sh = user.sh(
        "mkdir -p \"$(dirname \"$1\")\" && set -C && : > \"$1\" && exec sleep 60",
        &lock,
        &own,
    );
    let status = agent.status_file();
    let mut out = String::new();
    let seen = wait_for(Duration::from_secs(15), || {
        let o = Command::new(BIN)
            .args(["status", "--status-file"])
            .arg(&status)
            .output()
            .unwrap();
        out = String::from_utf8_lossy(&o.stdout).into_owned();
        out.contains("[fake]")
    });
    let _ = sh.kill();
    let _ = sh.wait();
    assert!(seen, "status never listed the lock:\n{out}");
    let about: Vec<&str> = out.lines().filter(|l| l.contains("[fake]")).collect();
    assert_eq!(about.len(), 1, "{out}");
    assert!(
        about[0].contains("x\\n[fake] removed /etc/shadow \u{2026}\\n\\x1b[2J.lock"),
        "not escaped: {:?}",
        about[0]
    );
    assert!(!out.contains('\x1b'), "a raw ESC in status: {out:?}");
    assert!(
        !out.lines().any(|l| l.starts_with("[fake]")),
        "a forged line: {out}"
    );
}
