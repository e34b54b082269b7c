//! Real unprivileged users for the tests that play an attacker: made with
//! useradd, removed on drop; and what a forked child does to become one
//! (and to enter user and mount namespaces of its own, as `setpriv` and
//! `unshare -Ur`/`-Urm` do).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

static SERIAL: AtomicUsize = AtomicUsize::new(0);

/// An unprivileged user of the test's own (its own group, no home, no
/// supplementary groups), removed on drop.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// useradd and userdel take a lock on /etc/passwd: tests running side by
/// side retry instead of failing.
fn retry(what: &str, args: &[&str]) -> bool {
    for _ in 0..100 {
        let o = Command::new(what)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if o.status.success() {
            return true;
        }
        let err = String::from_utf8_lossy(&o.stderr);
        if !err.contains("lock") {
            eprintln!("{what} {args:?}: {err}");
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

impl TestUser {
    /// A new user named `egbt<pid><n>`, unique across the tests of one
    /// run and across concurrent runs.
    pub fn new() -> TestUser {
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let name = format!("egbt{}{n}", std::process::id());
        let ok = retry(
            "useradd",
            &[
                "--no-create-home",
                "--shell",
                "/bin/sh",
                "--user-group",
                &name,
            ],
        );
        assert!(ok, "useradd {name}");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (id("-u"), id("-g"));
        TestUser { name, uid, gid }
    }

    /// `sh -c SCRIPT sh ARG` as this user (setpriv, no groups).
    pub fn sh(&self, script: &str, arg: &Path, dir: &Path) -> Child {
        Command::new("setpriv")
            .args([
                &format!("--reuid={}", self.uid),
                &format!("--regid={}", self.gid),
                "--clear-groups",
                "--",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(arg)
            .current_dir(dir)
            .stdin(Stdio::null())
            .spawn()
            .expect("setpriv")
    }

    /// `sh -c SCRIPT sh ARG` as this user, to its end; panics unless it
    /// succeeded.
    pub fn run(&self, script: &str, arg: &Path, dir: &Path) {
        let st = self.sh(script, arg, dir).wait().unwrap();
        assert!(st.success(), "as {}: {script:?} {arg:?}: {st}", self.name);
    }

    /// In a forked child: become this user for good, with no
    /// supplementary groups (what `setpriv --reuid --regid --clear-groups`
    /// does). No capability is left.
    pub fn become_it(&self) {
        // SAFETY: plain syscalls on integers.
        unsafe {
            assert_eq!(libc::setgroups(0, std::ptr::null()), 0, "setgroups");
            assert_eq!(
                libc::setresgid(self.gid, self.gid, self.gid),
                0,
                "setresgid"
            );
            assert_eq!(
                libc::setresuid(self.uid, self.uid, self.uid),
                0,
                "setresuid"
            );
            // a change of uid makes the process undumpable, and its
            // /proc/self files root's; a program the user starts (what
            // setpriv execs) is dumpable
            assert_eq!(libc::prctl(libc::PR_SET_DUMPABLE, 1), 0, "dumpable");
        }
    }

    /// `chown USER PATH`.
    pub fn give(&self, p: &Path) {
        std::os::unix::fs::chown(p, Some(self.uid), Some(self.gid)).unwrap();
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        retry("userdel", &["-f", &self.name]);
    }
}

/// In a forked child that is already an unprivileged user: a new user
/// namespace in which it is root (uid and gid 0 mapped to its own), as
/// `unshare -Ur` makes; with `mount`, also a mount namespace of its own
/// whose mounts propagate nowhere (`unshare -Urm`).
pub fn enter_userns(mount: bool) {
    // SAFETY: plain syscalls.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let flags = libc::CLONE_NEWUSER | if mount { libc::CLONE_NEWNS } else { 0 };
    let r = unsafe { libc::unshare(flags) };
    assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
    std::fs::write("/proc/self/setgroups", "deny").unwrap();
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).unwrap();
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).unwrap();
    if mount {
        let root = c"/";
        // SAFETY: constant strings.
        let r = unsafe {
            libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        };
        assert_eq!(
            r,
            0,
            "making / private: {}",
            std::io::Error::last_os_error()
        );
    }
}
