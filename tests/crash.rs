//! Issue 12.5: a removal cut short between the rename aside and its end.
//! The daemon is made to abort at exactly that point (a test-only fail
//! point, EGHOSTBUSTER_FAILPOINT=after-hide); the next daemon on the same
//! status file rolls the removal back and judges the lock again. `sweep`
//! recognises a hidden name whose agent is gone.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn hidden_names(dir: &Path, of: &str) -> Vec<PathBuf> {
    let prefix = format!(".{of}.eghostbuster-");
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

#[test]
fn a_removal_cut_short_is_rolled_back_and_finished_by_the_next_daemon() {
    if !privileged() {
        return;
    }
    let dir = test_dir("crash");
    let state = test_dir("crash-state");
    let status = state.path().join("status.json");
    let pins = Pins::new("crash");
    let (path, status_arg, pin_arg) = (path_arg(dir.path()), path_arg(&status), pins.arg());
    let args = [
        "--path",
        &path,
        "--status-file",
        &status_arg,
        "--pin-dir",
        &pin_arg,
    ];
    let mut agent = Agent::start_env(&args, &[("EGHOSTBUSTER_FAILPOINT", "after-hide")]);
    let mut procs = Procs::default();
    let lock = dir.path().join("job.lock");
    let pid = locker(&mut procs, &lock);
    expect_tracked(&agent, &lock, pid);
    procs.kill(pid, libc::SIGKILL);

    // the daemon dies right after renaming the lock aside
    assert!(
        wait_for(PATIENCE, || agent.exited()),
        "the fail point was not reached:\n{}",
        agent.log_text()
    );
    assert!(
        agent.log_has("fail point after-hide"),
        "{}",
        agent.log_text()
    );
    assert!(!exists(&lock));
    let hidden = hidden_names(dir.path(), "job.lock");
    assert_eq!(hidden.len(), 1, "{hidden:?}");
    let journal = PathBuf::from(format!("{}.intents", status.display()));
    let text = std::fs::read_to_string(&journal).unwrap_or_default();
    assert!(text.starts_with("B "), "journal: {text:?}");
    drop(agent);

    // the next daemon, on the same status file and pins: the lock goes
    // back under its name, and its owner's recorded death removes it
    let mut agent = Agent::start(&args);
    assert!(
        agent.log_has(&format!("restored {}", lock.display())),
        "{}",
        agent.log_text()
    );
    expect_removed(&agent, &lock, &[]);
    assert!(hidden_names(dir.path(), "job.lock").is_empty());
    // a clean stop leaves no journal
    assert_eq!(agent.stop(), Some(0));
    assert!(!exists(&journal), "{}", agent.log_text());
    let _ = Command::new(BIN)
        .args(["unpin", "--pin-dir", &pin_arg])
        .output();
}

#[test]
fn sweep_puts_back_a_hidden_lock_whose_agent_is_gone_then_judges_it() {
    if !privileged() {
        return;
    }
    let dir = test_dir("crash-sweep");
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    // what a daemon that died after the rename aside leaves: the lock's
    // content names its dead owner, the hidden name the dead agent
    let hidden = dir.path().join(format!(".old.lock.eghostbuster-{dead}-3"));
    std::fs::write(&hidden, format!("{dead}\n")).unwrap();
    // a live agent's hidden name is its own business: left alone
    let me = std::process::id();
    let busy = dir.path().join(format!(".busy.lock.eghostbuster-{me}-0"));
    std::fs::write(&busy, format!("{dead}\n")).unwrap();
    let out = Command::new(BIN)
        .args([
            "sweep",
            "--path",
            &path_arg(dir.path()),
            "--no-sockets",
            "--no-unix-sockets",
            "--no-pid-files",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    let old = dir.path().join("old.lock");
    assert!(
        stderr.contains(&format!("restored {}", old.display())),
        "{stdout}{stderr}"
    );
    assert!(
        stdout.contains(&format!("removed {}: pid {dead} is dead", old.display())),
        "{stdout}{stderr}"
    );
    assert!(!exists(&hidden) && !exists(&old));
    // our test process is no eghostbuster: its "hidden" name is put back
    // too, and judged (dead PID): only a live agent's names are skipped
    assert!(!exists(&busy));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
}
