//! Attack 4: a data file that reuses a lock's inode number.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::*;

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
    // the kernel matrix's guests have tmpfs on /tmp, which on these
    // kernels numbers inodes from a counter that only grows: there (and
    // only there) the attack cannot be played, and says so
    if emulated() {
        eprintln!(
            "skipped: inode numbers are never reused on {} in this VM",
            base.display()
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
