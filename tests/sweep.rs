//! `eghostbuster sweep` end to end: real files, real processes, the real
//! binary; one line per action, quiet otherwise, documented exit codes.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn sweep(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("sweep")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("running sweep")
}

/// Set a file's modification time `secs` into the past.
fn age(path: &Path, secs: i64) {
    let c = cstr(path);
    let now = unsafe { libc::time(std::ptr::null_mut()) };
    let t = libc::timeval {
        tv_sec: now - secs,
        tv_usec: 0,
    };
    assert_eq!(unsafe { libc::utimes(c.as_ptr(), [t, t].as_ptr()) }, 0);
}

/// `sweep` with the sweep's own debug lines (`kept PATH: why`) on stderr.
fn sweep_telling_why(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("sweep")
        .args(args)
        .env("RUST_LOG", "eghostbuster::locks::sweep=debug")
        .output()
        .expect("running sweep")
}

/// The `kept PATH: …` line for `path` on `stderr`.
fn kept_line<'a>(stderr: &'a str, path: &Path) -> &'a str {
    let head = format!("kept {}: ", path.display());
    stderr
        .lines()
        .find(|l| l.contains(&head))
        .unwrap_or_else(|| panic!("no `{head}` line in:\n{stderr}"))
}

#[test]
fn sweep_removes_dead_and_keeps_live() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweep");
    let d = dir.path();
    let mut procs = Procs::default();

    // a PID that is dead: a child we started and reaped
    let dead = procs.fork(|| {});
    procs.reap(dead);
    std::fs::write(d.join("dead.lock"), format!("{dead}\n")).unwrap();
    // a PID that lives
    let live = procs.fork(|| park());
    std::fs::write(d.join("live.lock"), format!("{live}\n")).unwrap();
    // a dead PID, but the file is held open by a live process
    std::fs::write(d.join("open.lock"), format!("{dead}\n")).unwrap();
    let c = cstr(&d.join("open.lock"));
    let marker = d.join("opened");
    let m = cstr(&marker);
    let opener = procs.fork(move || {
        let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDONLY) };
        assert!(fd >= 0);
        create(&m, false, b"");
        park();
    });
    assert!(wait_for(PATIENCE, || exists(&marker)));
    // a dead PID, locked by live processes that hold nothing but the lock
    // (no descriptor anywhere: check 3 alone keeps them)
    std::fs::write(d.join("flocked.lock"), format!("{dead}\n")).unwrap();
    let flocker = hold_only_the_lock(&mut procs, &d.join("flocked.lock"), HeldBy::Flock);
    std::fs::write(d.join("ofd.lock"), format!("{dead}\n")).unwrap();
    hold_only_the_lock(&mut procs, &d.join("ofd.lock"), HeldBy::Ofd);
    // no PID: removed only when older than --min-age
    std::fs::write(d.join("old.lck"), "").unwrap();
    age(&d.join("old.lck"), 7200);
    std::fs::write(d.join("young.lck"), "").unwrap();
    // not lock files, or never removed
    std::fs::write(d.join("Cargo.lock"), "").unwrap();
    age(&d.join("Cargo.lock"), 7200);
    std::fs::write(d.join("notes.txt"), format!("{dead}\n")).unwrap();
    std::fs::create_dir(d.join("sub")).unwrap();
    std::fs::write(d.join("sub/nested.lock"), format!("{dead}\n")).unwrap();
    let before: Vec<_> = ["dead.lock", "old.lck", "sub/nested.lock"]
        .iter()
        .map(|n| exists(&d.join(n)))
        .collect();
    assert_eq!(before, [true, true, true]);

    let out = sweep_telling_why(&["--path", &path_arg(d), "--no-sockets"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(&format!(
            "removed {}: pid {dead} is dead",
            d.join("dead.lock").display()
        )),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "removed {}: empty, unchanged for 2h",
            d.join("old.lck").display()
        )),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with(&format!(
            "removed {}: pid {dead} is dead",
            d.join("sub/nested.lock").display()
        )),
        "{stdout}"
    );
    // each kept for its own reason
    for (name, why) in [
        ("live.lock", format!("names live pid {live}")),
        ("open.lock", format!("open by pid {opener}")),
        (
            "flocked.lock",
            format!("locked (flock/fcntl) by pid {flocker}"),
        ),
        ("ofd.lock", "locked (flock/fcntl) by a process".to_string()),
        ("young.lck", "(--min-age)".to_string()),
    ] {
        let line = kept_line(&stderr, &d.join(name));
        assert!(line.contains(&why), "{name}: {line}");
    }
    for kept in [
        "live.lock",
        "open.lock",
        "flocked.lock",
        "ofd.lock",
        "young.lck",
        "Cargo.lock",
        "notes.txt",
    ] {
        assert!(exists(&d.join(kept)), "{kept} was removed");
    }
    for gone in ["dead.lock", "old.lck", "sub/nested.lock"] {
        assert!(!exists(&d.join(gone)), "{gone} is still there");
    }
    // nothing left to do: quiet, exit 0 (cron mails nothing)
    let again = sweep(&["--path", &path_arg(d), "--no-sockets"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(text(&again), (String::new(), String::new()));
}

/// Issue 12 item 4: without creation evidence only empty files and owner
/// records are judged. Package managers' manifests (real content, unchanged
/// for longer than --min-age, held by nobody) are kept twice over: by the
/// deny list, and, under other names, by the content rule; every kind of
/// owner record naming a dead PID is removed in the same run.
/// `--any-content` then judges the data-like files too, by their age.
#[test]
fn sweep_judges_only_owner_records_without_any_content() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweepcontent");
    let d = dir.path();
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    let host = String::from_utf8(std::fs::read("/proc/sys/kernel/hostname").unwrap())
        .unwrap()
        .trim()
        .to_string();
    let gopkg = "# This file is autogenerated, do not edit; changes may be undone by the next 'dep ensure'.\n\n\
                 [[projects]]\n  name = \"github.com/pkg/errors\"\n  packages = [\".\"]\n  \
                 revision = \"645ef00459ed84a119197bfb8d8205042c6df63d\"\n  version = \"v0.8.0\"\n\n\
                 [solve-meta]\n  analyzer-name = \"dep\"\n  analyzer-version = 1\n  solver-name = \"gps-cdcl\"\n  solver-version = 1\n";
    let rebar = "{\"1.2.0\",\n[{<<\"cowlib\">>,{pkg,<<\"cowlib\">>,<<\"2.12.1\">>},1},\n \
                 {<<\"ranch\">>,{pkg,<<\"ranch\">>,<<\"1.8.0\">>},1}]}.\n[\n{pkg_hash,[\n \
                 {<<\"cowlib\">>, <<\"A9FA9A625F1D2025FE6B462CB865881329B5CAFF8F1854D1CBC9F9533F00E1E1\">>}]}\n].\n";
    let pins = "# generated by rye\n# use `rye lock` or `rye sync` to update this lockfile\n\
                anyio==4.2.0\n    # via httpx\ncertifi==2023.11.17\n    # via httpx\nidna==3.6\n";
    let data = [
        // the real names: on the deny list
        ("Gopkg.lock", gopkg),
        ("rebar.lock", rebar),
        ("requirements.lock", pins),
        // the same content under names that are not: kept by the content rule
        ("deps.lock", gopkg),
        ("terms.lock", rebar),
        ("pins.lock", pins),
    ];
    for (name, content) in data {
        std::fs::write(d.join(name), content).unwrap();
        age(&d.join(name), 7200);
    }
    // a PID first, then more: not a record (the old rule read the first line)
    std::fs::write(d.join("pid-and-more.lock"), format!("{dead}\nworker 3\n")).unwrap();
    age(&d.join("pid-and-more.lock"), 7200);
    // owner records naming a dead PID: removed whatever their age
    let records = [
        ("pid.lock", format!("{dead}\n")),
        ("hostpid.lock", format!("{host}:{dead}\n")),
        (
            "kv.lock",
            format!("pid={dead}\nhost={host}\nstarted=2026-01-01\n"),
        ),
        (
            "json.lock",
            format!("{{\"pid\": {dead}, \"hostname\": \"{host}\"}}\n"),
        ),
    ];
    for (name, content) in &records {
        std::fs::write(d.join(name), content).unwrap();
    }
    // an owner record of another host: its PID means nothing here
    std::fs::write(
        d.join("elsewhere.lock"),
        format!("elsewhere.invalid:{dead}\n"),
    )
    .unwrap();
    age(&d.join("elsewhere.lock"), 7200);

    let out = sweep_telling_why(&["--path", &path_arg(d), "--no-sockets"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let mut removed: Vec<&str> = stdout.lines().collect();
    removed.sort();
    let mut want: Vec<String> = records
        .iter()
        .map(|(n, _)| format!("removed {}: pid {dead} is dead", d.join(n).display()))
        .collect();
    want.sort();
    assert_eq!(removed, want, "{stdout}");
    for (name, _) in &records {
        assert!(!exists(&d.join(name)), "{name} is still there");
    }
    for name in ["deps.lock", "terms.lock", "pins.lock", "pid-and-more.lock"] {
        let line = kept_line(&stderr, &d.join(name));
        assert!(line.contains("not an owner record"), "{line}");
    }
    assert!(
        kept_line(&stderr, &d.join("elsewhere.lock")).contains("on host elsewhere.invalid"),
        "{stderr}"
    );
    for (name, content) in data {
        assert_eq!(
            std::fs::read_to_string(d.join(name)).unwrap(),
            content,
            "{name} was touched"
        );
    }

    // the operator opts in: the data-like files are judged by age (and
    // the first line's PID); the deny list still holds
    let out = sweep(&["--path", &path_arg(d), "--no-sockets", "--any-content"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    let mut removed: Vec<&str> = stdout.lines().collect();
    removed.sort();
    assert_eq!(removed.len(), 4, "{stdout}");
    for (line, name) in
        removed
            .iter()
            .zip(["deps.lock", "pid-and-more.lock", "pins.lock", "terms.lock"])
    {
        let path = d.join(name);
        assert!(
            line.starts_with(&format!("removed {}: ", path.display())),
            "{stdout}"
        );
        assert!(!exists(&path), "{name} is still there");
    }
    assert!(
        removed[0].contains("no pid in it, unchanged for 2h00m (--any-content)"),
        "{stdout}"
    );
    assert!(
        removed[1].contains(&format!("pid {dead} is dead")),
        "{stdout}"
    );
    for name in [
        "Gopkg.lock",
        "rebar.lock",
        "requirements.lock",
        "elsewhere.lock",
    ] {
        assert!(exists(&d.join(name)), "{name} was removed");
    }
}

#[test]
fn sweep_dry_run_reports_and_keeps() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweepdry");
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    let lock = dir.path().join("x.lock");
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    let out = sweep(&["--path", &path_arg(dir.path()), "--no-sockets", "--dry-run"]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout.starts_with(&format!(
            "would remove {}: pid {dead} is dead",
            lock.display()
        )),
        "{stdout}"
    );
    assert!(exists(&lock));
}

#[test]
fn sweep_failure_exits_1() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweepfail");
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    let lock = dir.path().join("stuck.lock");
    std::fs::write(&lock, format!("{dead}\n")).unwrap();
    // immutable: even root cannot rename it away (ext4 and most disk filesystems)
    let chattr = Command::new("chattr").arg("+i").arg(&lock).status();
    if !chattr.is_ok_and(|s| s.success()) {
        panic!("chattr +i is not supported under /tmp here; this test needs it");
    }
    struct Mutable<'a>(&'a Path);
    impl Drop for Mutable<'_> {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
    }
    let _undo = Mutable(&lock);
    let out = sweep(&["--path", &path_arg(dir.path()), "--no-sockets"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("failed to remove") && stderr.contains("stuck.lock"),
        "{stderr}"
    );
    assert!(exists(&lock));
}

#[test]
fn sweep_usage_errors() {
    for (args, says) in [
        (vec!["--no-sockets"], "--path"),
        (vec!["--path", "/tmp", "--min-age", "soon"], "duration"),
        (vec!["--path", "rel"], "absolute"),
        (
            vec![
                "--no-locks",
                "--no-sockets",
                "--no-unix-sockets",
                "--no-pid-files",
            ],
            "nothing to sweep",
        ),
    ] {
        let out = sweep(&args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        // one line of ours, or clap's whole message (issue 16) whose
        // first line names the problem
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            stderr.lines().count() == 1 || stderr.starts_with("error: "),
            "{stderr}"
        );
        assert!(first.contains(says), "{args:?}: {stderr}");
    }
}

/// Lock directories and editor symlink locks, with no daemon: by the same
/// rules as the daemon's (one owner-record file or none; a symlink's
/// target naming a dead PID on this host), never followed.
#[test]
fn sweep_judges_lock_directories_and_symlink_locks() {
    if !privileged() {
        return;
    }
    let dir = test_dir("sweepdirs");
    let d = dir.path();
    let mut procs = Procs::default();
    let dead = procs.fork(|| {});
    procs.reap(dead);
    let live = procs.fork(|| park());
    let host = String::from_utf8(std::fs::read("/proc/sys/kernel/hostname").unwrap())
        .unwrap()
        .trim()
        .to_string();
    // lock directories
    let stale_dir = d.join("stale.lock");
    std::fs::create_dir(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("pid"), format!("{dead}\n")).unwrap();
    let live_dir = d.join("live.lock");
    std::fs::create_dir(&live_dir).unwrap();
    std::fs::write(live_dir.join("pid"), format!("{live}\n")).unwrap();
    let data_dir = d.join("data.lock");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::write(data_dir.join("keep.db"), "data\n").unwrap();
    let empty_old = d.join("empty.lock");
    std::fs::create_dir(&empty_old).unwrap();
    age(&empty_old, 7200);
    // editor symlink locks: user@host.PID:BOOT
    let stale_link = d.join(".#notes.txt");
    std::os::unix::fs::symlink(format!("me@{host}.{dead}:1"), &stale_link).unwrap();
    let live_link = d.join(".#held.txt");
    std::os::unix::fs::symlink(format!("me@{host}.{live}:1"), &live_link).unwrap();
    let victim = d.join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let to_file = d.join(".#victim");
    std::os::unix::fs::symlink(&victim, &to_file).unwrap();

    let p = path_arg(d);
    let out = sweep_telling_why(&["--no-sockets", "--path", &p, "--include", ".#*"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    for gone in [&stale_dir, &empty_old, &stale_link] {
        assert!(!exists(gone), "{} left\n{stdout}{stderr}", gone.display());
        assert!(
            stdout.contains(&format!("removed {}: ", gone.display())),
            "{stdout}"
        );
    }
    for kept in [&live_dir, &data_dir, &live_link, &to_file] {
        assert!(exists(kept), "{} removed\n{stdout}", kept.display());
    }
    assert!(kept_line(&stderr, &data_dir).contains("not an owner record"));
    assert!(kept_line(&stderr, &to_file).contains("names no owner"));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(
        std::fs::read_to_string(data_dir.join("keep.db")).unwrap(),
        "data\n"
    );
}
