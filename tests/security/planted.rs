//! Attack 3: symlinks planted at the names `run` and `sweep` write their
//! status, metrics and state files under.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;

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
