//! Issue 12 item 1: a process whose name the kernel cut in the middle of a
//! UTF-8 character (`comm` is 15 bytes) is a process like any other. It
//! holds a lock open: the lock is kept; a lock names its PID: "alive".
//! On the old code /proc/PID/stat was read as a String, failed for such a
//! process, and both locks were removed.

mod common;

use std::path::Path;

use common::*;

/// A copy of sleep under a name whose 15th byte is in the middle of a
/// two-byte character: the kernel's comm is then not valid UTF-8.
fn cut_name_sleep(dir: &Path) -> std::path::PathBuf {
    let bin = dir.join("svc-синхронизация");
    std::fs::copy("/bin/sleep", &bin).expect("copying /bin/sleep");
    let name = bin.file_name().unwrap().as_encoded_bytes();
    assert!(
        std::str::from_utf8(&name[..15]).is_err(),
        "not cut mid-character"
    );
    bin
}

#[test]
fn a_process_with_a_cut_utf8_name_holds_and_owns_locks() {
    if !privileged() {
        return;
    }
    let dir = test_dir("cutname");
    let bins = test_dir("cutname-bin");
    let bin = cut_name_sleep(bins.path());
    let agent = Agent::start(&["--path", &path_arg(dir.path())]);
    let mut procs = Procs::default();
    let held = dir.path().join("held.lock");
    let named = dir.path().join("named.lock");
    let control = dir.path().join("control.lock");
    // held.lock: taken by a shell that passes its descriptor to the
    // cut-name process and is then killed
    let sh = procs.sh(
        &format!(
            "set -C; exec 3> held.lock; '{}' 1000 & echo $! > holder.pid; exec 3>&-; exec sleep 1000",
            bin.display()
        ),
        dir.path(),
    );
    // named.lock: its first line is the cut-name process's PID
    let sh2 = procs.sh(
        &format!(
            "'{}' 1000 & p=$!; set -C; echo $p > named.lock; exec sleep 1000",
            bin.display()
        ),
        dir.path(),
    );
    let sh3 = procs.sh("set -C; : > control.lock; exec sleep 1000", dir.path());
    let pidfile = |n: &str| dir.path().join(n);
    assert!(wait_for(PATIENCE, || {
        exists(&held)
            && exists(&named)
            && exists(&control)
            && std::fs::read_to_string(pidfile("holder.pid")).is_ok_and(|s| s.ends_with('\n'))
            && std::fs::read_to_string(&named).is_ok_and(|s| s.ends_with('\n'))
    }));
    let holder: i32 = std::fs::read_to_string(pidfile("holder.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let other: i32 = std::fs::read_to_string(&named)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    procs.0.extend([holder, other]); // killed on drop
                                     // once each has exec'd: its comm is the cut name, not UTF-8
    for pid in [holder, other] {
        let comm = || std::fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
        assert!(
            wait_for(PATIENCE, || std::str::from_utf8(&comm()).is_err()),
            "the comm of pid {pid} is valid UTF-8: {:?}",
            comm()
        );
    }
    for pid in [sh, sh2, sh3] {
        procs.kill(pid, libc::SIGKILL);
    }
    // the control goes: the agent acted in this very window
    assert!(
        agent.wait_log(&["removed ", "control.lock"]),
        "{}",
        agent.log_text()
    );
    assert!(
        agent.wait_log(&["handed ", "held.lock", &format!("open by pid {holder}")]),
        "{}",
        agent.log_text()
    );
    assert!(
        agent.wait_log(&["handed ", "named.lock", &format!("names live pid {other}")]),
        "{}",
        agent.log_text()
    );
    assert!(exists(&held) && exists(&named), "{}", agent.log_text());
    assert!(!exists(&control));
}
