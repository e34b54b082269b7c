//! The checks' decisions, free of I/O, shared by every filesystem ghost
//! class: how a process ended, what a file's PID line says, and whether
//! the facts gathered about a file allow its removal (DESIGN.md, "Checks
//! before removal").
//!
//! This file: exits, the facts and checks 1-4, why a file is kept; the
//! parsers of what a file's content or a symlink's target says about its
//! owner are in `content.rs`.

mod content;

pub use content::{
    parse_owner_record, parse_pid_line, parse_symlink_owner, same_host, Content, OWNER_RECORD_MAX,
};

use std::fmt;

/// How a thread group ended, from its wait(2) status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    Killed { signal: i32, core: bool },
    Failed(i32),
    Clean,
}

impl ExitKind {
    pub fn from_wait_status(status: u32) -> Self {
        let sig = (status & 0x7f) as i32;
        if sig == 0 {
            match ((status >> 8) & 0xff) as i32 {
                0 => ExitKind::Clean,
                code => ExitKind::Failed(code),
            }
        } else {
            ExitKind::Killed {
                signal: sig,
                core: status & 0x80 != 0,
            }
        }
    }
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ExitKind::Killed { signal, core } => {
                let name = nix::sys::signal::Signal::try_from(signal)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {signal}"));
                write!(
                    f,
                    "killed by {name}{}",
                    if core { " (core dumped)" } else { "" }
                )
            }
            ExitKind::Failed(code) => write!(f, "exited with status {code}"),
            ExitKind::Clean => write!(f, "exited with status 0"),
        }
    }
}

/// What the first line of a lock file says about its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidInFile {
    /// No PID there (empty, text, binary).
    NoPid,
    /// The PID names no live process.
    Dead(u32),
    /// A live process that started after the file was last modified: the
    /// PID was reused, the writer is gone.
    Reused(u32),
    Alive(u32),
    /// The creator is in another PID namespace we cannot read it in.
    Uninterpretable,
}

/// The facts gathered about one lock file just before a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    /// Check 1: the name still refers to the inode recorded at creation.
    pub same_inode: bool,
    /// Check 2: a live process other than the dead owner has it open or mapped.
    pub open_by: Option<u32>,
    /// Check 3: a flock/POSIX/OFD lock on the inode (pid 0: holder unknown).
    pub locked_by: Option<u32>,
    /// Check 4.
    pub pid: PidInFile,
    /// References no process shows (files/holders/), or that cannot be
    /// ruled out: unknown means keep.
    pub unexplained: Option<Unexplained>,
}

/// Why references to a file are not accounted for by any process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unexplained {
    /// The kernel counts this many references no process shows: a
    /// descriptor in flight over SCM_RIGHTS, an io_uring registered file.
    Refs(u32),
    /// Another struct file has it open for reading or writing though no
    /// process shows one (a write lease was refused).
    OpenElsewhere,
    /// A process on its way out still holds it (it may have passed it on).
    Exiting(u32),
    /// This check cannot rule such references out here.
    CannotTell(&'static str),
}

/// Why a lock is kept. Carries the live process it now depends on, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Replaced,
    OpenBy(u32),
    LockedBy(u32),
    PidAlive(u32),
    PidUninterpretable,
    Unexplained(Unexplained),
    /// The file under the creator's name is owned by someone else (issue
    /// 11: a bind mount or a name resolved otherwise put it there).
    NotCreators {
        owner: u32,
        creator: u32,
    },
    /// Acting as the principal (this uid), the kernel refused a step: the
    /// creator could not have removed it either.
    NotPermitted(u32),
}

impl Keep {
    /// The live process ownership moves to (DESIGN.md: evaluated again
    /// when it exits).
    pub fn new_owner(&self) -> Option<u32> {
        match *self {
            Keep::OpenBy(p) | Keep::PidAlive(p) => Some(p),
            Keep::LockedBy(p) if p > 0 => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Keep::Replaced => write!(f, "the name now belongs to another file"),
            Keep::OpenBy(p) => write!(f, "open by pid {p}"),
            Keep::LockedBy(0) => write!(f, "locked (flock/fcntl) by a process"),
            Keep::LockedBy(p) => write!(f, "locked (flock/fcntl) by pid {p}"),
            Keep::PidAlive(p) => write!(f, "names live pid {p}"),
            Keep::NotCreators { owner, creator } => write!(
                f,
                "owned by uid {owner}, not by its creator (uid {creator}): not the creator's file"
            ),
            Keep::NotPermitted(uid) => write!(
                f,
                "its creator (uid {uid}) could not remove it: acting as the creator, the kernel refused"
            ),
            Keep::PidUninterpretable => {
                write!(f, "its PID cannot be read in the creator's PID namespace")
            }
            Keep::Unexplained(Unexplained::Refs(n)) => write!(
                f,
                "referenced by something no process has open: a descriptor in flight? ({n} unexplained reference{})",
                if n == 1 { "" } else { "s" }
            ),
            Keep::Unexplained(Unexplained::OpenElsewhere) => write!(
                f,
                "open by something no process shows (a write lease was refused): a descriptor in flight?"
            ),
            Keep::Unexplained(Unexplained::Exiting(p)) => {
                write!(f, "pid {p}, on its way out, still holds it")
            }
            Keep::Unexplained(Unexplained::CannotTell(why)) => {
                write!(f, "a descriptor in flight cannot be ruled out ({why})")
            }
        }
    }
}

/// Checks 1-4, in order; the first that fails keeps the file.
pub fn judge(f: &Facts) -> Result<(), Keep> {
    if !f.same_inode {
        return Err(Keep::Replaced);
    }
    if let Some(p) = f.open_by {
        return Err(Keep::OpenBy(p));
    }
    if let Some(p) = f.locked_by {
        return Err(Keep::LockedBy(p));
    }
    match f.pid {
        PidInFile::Alive(p) => return Err(Keep::PidAlive(p)),
        PidInFile::Uninterpretable => return Err(Keep::PidUninterpretable),
        PidInFile::NoPid | PidInFile::Dead(_) | PidInFile::Reused(_) => {}
    }
    match f.unexplained {
        Some(u) => Err(Keep::Unexplained(u)),
        None => Ok(()),
    }
}

/// Check 4's PID-reuse rule: a process that started after the file was
/// last written cannot have written it. A margin keeps near-ties (clock
/// granularity) on the safe side: alive.
pub fn started_after(process_start_ns: i128, file_mtime_ns: i128) -> bool {
    const MARGIN_NS: i128 = 1_000_000_000;
    process_start_ns > file_mtime_ns + MARGIN_NS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_status_decoding() {
        assert_eq!(ExitKind::from_wait_status(0), ExitKind::Clean);
        assert_eq!(ExitKind::from_wait_status(3 << 8), ExitKind::Failed(3));
        assert_eq!(
            ExitKind::from_wait_status(9),
            ExitKind::Killed {
                signal: 9,
                core: false
            }
        );
        assert_eq!(
            ExitKind::from_wait_status(6 | 0x80),
            ExitKind::Killed {
                signal: 6,
                core: true
            }
        );
        assert_eq!(
            ExitKind::from_wait_status(9).to_string(),
            "killed by SIGKILL"
        );
        assert_eq!(
            ExitKind::from_wait_status(6 | 0x80).to_string(),
            "killed by SIGABRT (core dumped)"
        );
        assert_eq!(
            ExitKind::from_wait_status(1 << 8).to_string(),
            "exited with status 1"
        );
    }

    fn facts() -> Facts {
        Facts {
            same_inode: true,
            open_by: None,
            locked_by: None,
            pid: PidInFile::NoPid,
            unexplained: None,
        }
    }

    #[test]
    fn judge_in_order() {
        assert_eq!(judge(&facts()), Ok(()));
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Dead(5),
                ..facts()
            }),
            Ok(())
        );
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Reused(5),
                ..facts()
            }),
            Ok(())
        );
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Alive(5),
                ..facts()
            }),
            Err(Keep::PidAlive(5))
        );
        assert_eq!(
            judge(&Facts {
                pid: PidInFile::Uninterpretable,
                ..facts()
            }),
            Err(Keep::PidUninterpretable)
        );
        let all_bad = Facts {
            same_inode: false,
            open_by: Some(1),
            locked_by: Some(2),
            pid: PidInFile::Alive(3),
            unexplained: Some(Unexplained::Refs(1)),
        };
        assert_eq!(judge(&all_bad), Err(Keep::Replaced));
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                ..all_bad.clone()
            }),
            Err(Keep::OpenBy(1))
        );
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                open_by: None,
                ..all_bad
            }),
            Err(Keep::LockedBy(2))
        );
        // a live PID moves ownership on; only a dead one leaves the
        // unexplained references to keep it
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                open_by: None,
                locked_by: None,
                ..all_bad.clone()
            }),
            Err(Keep::PidAlive(3))
        );
        assert_eq!(
            judge(&Facts {
                same_inode: true,
                open_by: None,
                locked_by: None,
                pid: PidInFile::Dead(3),
                ..all_bad
            }),
            Err(Keep::Unexplained(Unexplained::Refs(1)))
        );
        assert!(Keep::Unexplained(Unexplained::Refs(1))
            .to_string()
            .contains("a descriptor in flight?"));
    }

    #[test]
    fn new_owner() {
        assert_eq!(Keep::OpenBy(7).new_owner(), Some(7));
        assert_eq!(Keep::LockedBy(0).new_owner(), None);
        assert_eq!(Keep::Replaced.new_owner(), None);
    }

    #[test]
    fn reuse_margin() {
        let s = 1_000_000_000i128;
        assert!(started_after(10 * s, 5 * s));
        assert!(!started_after(5 * s, 10 * s));
        assert!(!started_after(5 * s + s / 2, 5 * s)); // within the margin: alive
    }
}
