//! Attack 1: a lock named with `..` from inside a chroot.

use std::path::Path;
use std::time::Duration;

use super::*;

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
