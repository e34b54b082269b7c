//! Attack 6: a lock name that forges lines in `status`.

use std::process::Command;
use std::time::Duration;

use super::*;

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
