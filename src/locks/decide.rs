//! The lock duty's decision, free of I/O: given why a lock is looked at
//! (its owner's exit, or its owner found gone), what was found at its name
//! (gather.rs) and how its name is classified, what happens to it. Checks
//! 2-4 (holders, locks, PID) come after, for the whole batch, in
//! files::removal.

use log::Level;

use crate::files::verdict::ExitKind;
use crate::host::escape::Esc;
use crate::locks::kernel::Exit;
use crate::locks::metrics::KeptReason;
use crate::locks::patterns::Match;
use crate::locks::verdict::{self, OnExit};

/// Why a lock is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// The owner's whole thread group exited (seen by BPF).
    Exited {
        pid: u32,
        comm: String,
        status: u32,
        ppid: u32,
        parent_subreaper: bool,
        parent_start: u64,
        /// Its tgid in its own PID namespace, and that namespace.
        ns_tgid: u32,
        pid_ns: u64,
    },
    /// The owner is gone, and no exit was seen for it.
    Gone { pid: u32 },
}

impl Cause {
    pub fn of(e: &Exit) -> Self {
        Cause::Exited {
            pid: e.tgid,
            comm: e.comm.clone(),
            status: e.status,
            ppid: e.ppid,
            parent_subreaper: e.parent_subreaper,
            parent_start: e.parent_start_boottime,
            ns_tgid: e.ns_tgid,
            pid_ns: e.pid_ns,
        }
    }

    pub fn pid(&self) -> u32 {
        match *self {
            Cause::Exited { pid, .. } | Cause::Gone { pid } => pid,
        }
    }
}

/// What gathering found at the lock's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Released: its directory or name is gone, or the name is another file.
    Released(&'static str),
    /// A directory on its path is a symlink.
    SymlinkOnPath,
    /// Something could not be read: what, and the error.
    Unreadable(String),
    /// The name is no longer the kind of file the lock was made as.
    WrongShape,
    /// The lock is there: the PID its content (or target) names, and, for a
    /// lock directory, why it holds more than a lock does.
    Present {
        pid: Option<u32>,
        other_data: Option<String>,
    },
}

/// Everything the decision looks at.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    /// The lock's path, for log lines (escaped: host::escape::Esc).
    pub path: &'a str,
    pub owner: u32,
    /// The owner's command name, escaped.
    pub comm: &'a str,
    /// "regular file", "directory", "symlink".
    pub what: &'static str,
    /// The creator's PID namespace: a PID in the file is read there.
    pub pid_ns: u64,
    /// Judged stale before, and kept for a live process: by whose end.
    pub stale: Option<&'a (u32, u32, String)>,
    pub class: Match,
    /// Made in a mount namespace no live process shares any more.
    pub foreign: bool,
    pub found: &'a Found,
    pub cause: &'a Cause,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Tracking ends without a verdict: the lock was released.
    Released(&'static str),
    /// Tracking ends; the file is kept, and the line says why.
    Kept {
        line: String,
        reason: KeptReason,
        level: Level,
    },
    /// A clean exit: the lock is the parent's now.
    HandToParent {
        ppid: u32,
        parent_start: u64,
        /// "owner pid N (comm) exited with status 0"
        owner: String,
    },
    /// Stale as far as the owner goes: checks 2-4 decide.
    Judge {
        reason: String,
        stale: (u32, u32, String),
    },
}

fn kept(line: String, reason: KeptReason) -> Decision {
    Decision::Kept {
        line,
        reason,
        level: Level::Info,
    }
}

pub fn decide(i: &Input<'_>) -> Decision {
    let path = i.path;
    let pid_in_file = match i.found {
        Found::Released(what) if i.foreign => {
            return kept(
                format!(
                    "kept {path}: created in another mount namespace by pid {} ({}); {what} here",
                    i.owner, i.comm
                ),
                KeptReason::OtherNamespace,
            )
        }
        Found::Released(what) => return Decision::Released(what),
        Found::SymlinkOnPath => {
            return kept(
                format!("kept {path}: a directory on its path is a symlink"),
                KeptReason::Symlink,
            )
        }
        Found::Unreadable(e) => {
            return Decision::Kept {
                line: format!("kept {path}: {e}"),
                reason: KeptReason::Other,
                level: Level::Warn,
            }
        }
        Found::WrongShape => {
            return kept(
                format!("kept {path}: no longer a {}", i.what),
                KeptReason::Other,
            )
        }
        Found::Present { pid, .. } => *pid,
    };

    let (reason, stale) = match (i.cause, i.stale) {
        (Cause::Gone { pid }, None) => {
            return Decision::Kept {
                line: format!(
                    "kept {path}: owner pid {pid} ({}) exited unseen (exit status unknown; events lost?)",
                    i.comm
                ),
                reason: KeptReason::ExitUnseen,
                level: Level::Warn,
            }
        }
        (Cause::Gone { pid }, Some(s)) => (
            format!(
                "{}; pid {pid} ({}) that kept it is gone",
                stale_text(s),
                i.comm
            ),
            s.clone(),
        ),
        (
            Cause::Exited {
                pid, comm, status, ..
            },
            Some(s),
        ) => (
            format!(
                "{}; pid {pid} ({}) that kept it {}",
                stale_text(s),
                Esc::str(comm),
                ExitKind::from_wait_status(*status)
            ),
            s.clone(),
        ),
        (
            Cause::Exited {
                pid,
                comm,
                status,
                ppid,
                parent_subreaper,
                parent_start,
                ns_tgid,
                pid_ns,
            },
            None,
        ) => {
            let kind = ExitKind::from_wait_status(*status);
            // the file's PID is read in the creator's PID namespace; the
            // exiting process's number there, if it lives in it
            let names_self = pid_in_file == Some(*ns_tgid) && i.pid_ns == *pid_ns;
            let owner = format!("owner pid {pid} ({}) {kind}", Esc::str(comm));
            match verdict::on_exit(kind, names_self, *ppid, *parent_subreaper) {
                OnExit::Stale => (owner, (*pid, *status, comm.clone())),
                OnExit::Left => {
                    let who = if *ppid <= 1 { "init" } else { "a subreaper" };
                    return kept(
                        format!("left {path}: {owner}; its parent pid {ppid} is {who}"),
                        KeptReason::LeftOnExit,
                    );
                }
                OnExit::HandToParent(pp) => {
                    return Decision::HandToParent {
                        ppid: pp,
                        parent_start: *parent_start,
                        owner,
                    }
                }
            }
        }
    };
    match i.class {
        Match::Denied => {
            return kept(
                format!("kept {path}: on the deny list; {reason}"),
                KeptReason::DenyList,
            )
        }
        Match::Excluded => {
            return kept(
                format!("kept {path}: excluded by --exclude; {reason}"),
                KeptReason::Excluded,
            )
        }
        _ => {}
    }
    if let Found::Present {
        other_data: Some(why),
        ..
    } = i.found
    {
        return kept(
            format!("kept {path}: the lock directory holds other data ({why}); {reason}"),
            KeptReason::Other,
        );
    }
    Decision::Judge { reason, stale }
}

/// "owner pid N (comm) killed by SIGKILL", for a lock judged stale before.
fn stale_text((pid, status, comm): &(u32, u32, String)) -> String {
    format!(
        "owner pid {pid} ({}) {}",
        Esc::str(comm),
        ExitKind::from_wait_status(*status)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(status: u32, ppid: u32) -> Cause {
        exited_with(status, ppid, false, 5)
    }

    fn exited_with(status: u32, ppid: u32, parent_subreaper: bool, pid_ns: u64) -> Cause {
        Cause::Exited {
            pid: 10,
            comm: "tool".into(),
            status,
            ppid,
            parent_subreaper,
            parent_start: 77,
            ns_tgid: 10,
            pid_ns,
        }
    }

    fn input<'a>(found: &'a Found, cause: &'a Cause) -> Input<'a> {
        Input {
            path: "/d/x.lock",
            owner: 10,
            comm: "tool",
            what: "regular file",
            pid_ns: 5,
            stale: None,
            class: Match::Candidate,
            foreign: false,
            found,
            cause,
        }
    }

    const KILLED: u32 = 9;
    const FAILED: u32 = 3 << 8;

    fn present(pid: Option<u32>) -> Found {
        Found::Present {
            pid,
            other_data: None,
        }
    }

    #[test]
    fn killed_or_failed_owner_means_judge() {
        for status in [KILLED, FAILED] {
            let (f, c) = (present(None), exited(status, 100));
            let Decision::Judge { reason, stale } = decide(&input(&f, &c)) else {
                panic!("not judged")
            };
            assert!(reason.starts_with("owner pid 10 (tool) "), "{reason}");
            assert_eq!(stale, (10, status, "tool".into()));
        }
    }

    #[test]
    fn clean_exit_hands_to_parent_or_leaves() {
        let f = present(None);
        let c = exited(0, 100);
        assert_eq!(
            decide(&input(&f, &c)),
            Decision::HandToParent {
                ppid: 100,
                parent_start: 77,
                owner: "owner pid 10 (tool) exited with status 0".into()
            }
        );
        let c = exited(0, 1);
        let Decision::Kept { line, reason, .. } = decide(&input(&f, &c)) else {
            panic!("not kept")
        };
        assert_eq!(reason, KeptReason::LeftOnExit);
        assert_eq!(
            line,
            "left /d/x.lock: owner pid 10 (tool) exited with status 0; its parent pid 1 is init"
        );
        let sub = exited_with(0, 100, true, 5);
        assert!(matches!(
            decide(&input(&f, &sub)),
            Decision::Kept { reason: KeptReason::LeftOnExit, ref line, .. } if line.ends_with("is a subreaper")
        ));
    }

    #[test]
    fn a_clean_exit_of_the_process_the_file_names_is_stale() {
        // the file names pid 10 as its own namespace numbers it
        let f = present(Some(10));
        let c = exited(0, 100);
        assert!(matches!(decide(&input(&f, &c)), Decision::Judge { .. }));
        // same number, but in another PID namespace: not itself
        let other_ns = exited_with(0, 100, false, 6);
        assert!(matches!(
            decide(&input(&f, &other_ns)),
            Decision::HandToParent { .. }
        ));
    }

    #[test]
    fn an_owner_gone_unseen_keeps_unless_already_stale() {
        let f = present(None);
        let c = Cause::Gone { pid: 10 };
        assert!(matches!(
            decide(&input(&f, &c)),
            Decision::Kept {
                reason: KeptReason::ExitUnseen,
                level: Level::Warn,
                ..
            }
        ));
        let stale = (3, KILLED, "make".to_string());
        let i = Input {
            stale: Some(&stale),
            ..input(&f, &c)
        };
        assert_eq!(
            decide(&i),
            Decision::Judge {
                reason: "owner pid 3 (make) killed by SIGKILL; pid 10 (tool) that kept it is gone"
                    .into(),
                stale: stale.clone()
            }
        );
        // and a holder that exits cleanly does not hand it on: still stale
        let c = exited(0, 100);
        let i = Input {
            stale: Some(&stale),
            ..input(&f, &c)
        };
        assert!(matches!(decide(&i), Decision::Judge { .. }));
    }

    #[test]
    fn deny_list_exclusions_and_other_data_keep() {
        let c = exited(KILLED, 100);
        let f = present(None);
        for (class, reason) in [
            (Match::Denied, KeptReason::DenyList),
            (Match::Excluded, KeptReason::Excluded),
        ] {
            let i = Input {
                class,
                ..input(&f, &c)
            };
            assert!(matches!(decide(&i), Decision::Kept { reason: r, .. } if r == reason));
        }
        let f = Found::Present {
            pid: None,
            other_data: Some("2 or more entries".into()),
        };
        let Decision::Kept { line, .. } = decide(&input(&f, &c)) else {
            panic!("not kept")
        };
        assert!(
            line.contains("holds other data (2 or more entries)"),
            "{line}"
        );
    }

    #[test]
    fn what_was_found_decides_first() {
        let c = exited(KILLED, 100);
        assert_eq!(
            decide(&input(&Found::Released("the name is gone"), &c)),
            Decision::Released("the name is gone")
        );
        let i = Input {
            foreign: true,
            ..input(&Found::Released("the name is gone"), &c)
        };
        assert!(matches!(
            decide(&i),
            Decision::Kept {
                reason: KeptReason::OtherNamespace,
                ..
            }
        ));
        assert!(matches!(
            decide(&input(&Found::SymlinkOnPath, &c)),
            Decision::Kept {
                reason: KeptReason::Symlink,
                ..
            }
        ));
        assert!(matches!(
            decide(&input(&Found::WrongShape, &c)),
            Decision::Kept { ref line, .. } if line == "kept /d/x.lock: no longer a regular file"
        ));
        assert!(matches!(
            decide(&input(&Found::Unreadable("cannot stat it: EIO".into()), &c)),
            Decision::Kept {
                level: Level::Warn,
                ..
            }
        ));
    }
}
