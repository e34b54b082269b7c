//! Issue 11: nobody can aim the agent. Each test plays one attack of the
//! issue as an ordinary user would (a real user made for the test, in user
//! and mount namespaces of its own), against the real agent scoped to the
//! test's directory, and checks that what that user could never remove or
//! overwrite survives: root-owned files (0644) in root-owned directories
//! (0755).
//!
//! This file: the fixtures every attack uses (root's files and
//! directories, the test user's); one module per attack.

mod bind_race;
mod chroot;
#[path = "../common/mod.rs"]
mod common;
mod flood;
mod forged_name;
mod inode_reuse;
mod planted;
#[path = "../common/user.rs"]
#[allow(dead_code)]
mod user;

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

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
