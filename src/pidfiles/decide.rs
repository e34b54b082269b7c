//! The PID-file duty's decision, free of I/O: given what was found at the
//! file's name (where its writer made it), what its content is, and what
//! the PID in it names (read in the writer's PID namespace), what happens
//! to it. Checks 2-3 (open, locked) and the atomic removal come after, for
//! the whole batch, in files::removal.

use log::Level;

use crate::files::verdict::PidInFile;
use crate::pidfiles::content::Content;
use crate::pidfiles::metrics::KeptReason;

/// What was found at the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Its directory or name is gone, or the name is another file now.
    Released(&'static str),
    /// A directory on its path is a symlink.
    SymlinkOnPath,
    /// Something could not be read: what, and the error.
    Unreadable(String),
    /// The name is the recorded file, but no regular file.
    NotRegular,
    /// The file is there, and this is its content.
    Present(Content),
}

/// The process a PID names, as seen from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// A live process (its host PID) that may have written it.
    Alive(u32),
    /// A live process (its host PID) started after the file was last
    /// written: the PID was reused, the writer is gone.
    Reused(u32),
    /// No such process.
    Dead,
    /// The PID cannot be read in the writer's PID namespace.
    Unknown,
}

pub struct Input<'a> {
    /// Made in a mount namespace no live process shares any more.
    pub foreign: bool,
    pub found: &'a Found,
    /// With `Found::Present(Content::Pid(_))`: what that PID names.
    pub named: Option<Named>,
    /// The content is still awaited (a write may follow the open): an
    /// empty or partial file is read again later rather than judged.
    pub awaiting: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Tracking ends without a verdict: the file is gone or replaced.
    Released(&'static str),
    /// Tracking ends; the file is kept, for this reason.
    Kept {
        why: String,
        reason: KeptReason,
        level: Level,
    },
    /// Read it again later: nothing (or not yet a PID) written.
    Wait,
    /// It names this live process (host PID): the file is its until it exits.
    Own(u32),
    /// Stale as far as its PID goes: checks 2-3 and the removal decide.
    Remove { pid: PidInFile },
}

fn kept(why: impl Into<String>, reason: KeptReason) -> Decision {
    Decision::Kept {
        why: why.into(),
        reason,
        level: Level::Info,
    }
}

pub fn decide(i: &Input<'_>) -> Decision {
    let content = match i.found {
        Found::Released(what) if i.foreign => {
            return kept(
                format!("made in another mount namespace; {what} here"),
                KeptReason::OtherNamespace,
            )
        }
        Found::Released(what) => return Decision::Released(what),
        Found::SymlinkOnPath => {
            return kept("a directory on its path is a symlink", KeptReason::Symlink)
        }
        Found::Unreadable(e) => {
            return Decision::Kept {
                why: e.clone(),
                reason: KeptReason::Other,
                level: Level::Warn,
            }
        }
        Found::NotRegular => return kept("no longer a regular file", KeptReason::Other),
        Found::Present(c) => *c,
    };
    let pid = match content {
        Content::Empty | Content::NotPid(_) if i.awaiting => return Decision::Wait,
        Content::Empty => return kept("not a PID file (empty)", KeptReason::NotPidFile),
        Content::NotPid(why) => {
            return kept(format!("not a PID file ({why})"), KeptReason::NotPidFile)
        }
        Content::Pid(p) => p,
    };
    match i.named {
        Some(Named::Alive(h)) => Decision::Own(h),
        Some(Named::Reused(h)) => Decision::Remove {
            pid: PidInFile::Reused(h),
        },
        Some(Named::Dead) => Decision::Remove {
            pid: PidInFile::Dead(pid),
        },
        Some(Named::Unknown) | None => kept(
            format!("its pid {pid} cannot be read in the writer's PID namespace"),
            KeptReason::PidForeign,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(content: Content, named: Option<Named>, awaiting: bool) -> Decision {
        decide(&Input {
            foreign: false,
            found: &Found::Present(content),
            named,
            awaiting,
        })
    }

    #[test]
    fn a_dead_or_reused_pid_is_stale() {
        assert_eq!(
            at(Content::Pid(42), Some(Named::Dead), false),
            Decision::Remove {
                pid: PidInFile::Dead(42)
            }
        );
        assert_eq!(
            at(Content::Pid(42), Some(Named::Reused(42)), true),
            Decision::Remove {
                pid: PidInFile::Reused(42)
            }
        );
    }

    #[test]
    fn a_live_pid_owns_the_file() {
        assert_eq!(
            at(Content::Pid(7), Some(Named::Alive(4007)), false),
            Decision::Own(4007)
        );
    }

    #[test]
    fn content_is_awaited_then_judged() {
        assert_eq!(at(Content::Empty, None, true), Decision::Wait);
        assert_eq!(at(Content::NotPid("x"), None, true), Decision::Wait);
        assert!(matches!(
            at(Content::Empty, None, false),
            Decision::Kept {
                reason: KeptReason::NotPidFile,
                ..
            }
        ));
        let Decision::Kept { why, reason, .. } =
            at(Content::NotPid("it holds more than one line"), None, false)
        else {
            panic!("not kept")
        };
        assert_eq!(
            (why.as_str(), reason),
            (
                "not a PID file (it holds more than one line)",
                KeptReason::NotPidFile
            )
        );
    }

    #[test]
    fn nothing_is_removed_when_in_doubt() {
        assert!(matches!(
            at(Content::Pid(5), Some(Named::Unknown), false),
            Decision::Kept {
                reason: KeptReason::PidForeign,
                ..
            }
        ));
        for (found, reason) in [
            (Found::SymlinkOnPath, KeptReason::Symlink),
            (Found::NotRegular, KeptReason::Other),
            (Found::Unreadable("EIO".into()), KeptReason::Other),
        ] {
            let d = decide(&Input {
                foreign: false,
                found: &found,
                named: Some(Named::Dead),
                awaiting: false,
            });
            assert!(
                matches!(d, Decision::Kept { reason: r, .. } if r == reason),
                "{found:?}: {d:?}"
            );
        }
        let gone = Found::Released("the name is gone");
        let i = |foreign| Input {
            foreign,
            found: &gone,
            named: None,
            awaiting: false,
        };
        assert_eq!(decide(&i(false)), Decision::Released("the name is gone"));
        assert!(matches!(
            decide(&i(true)),
            Decision::Kept {
                reason: KeptReason::OtherNamespace,
                ..
            }
        ));
    }
}
