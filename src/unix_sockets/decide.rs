//! The socket-file duty's decision, free of I/O: given what was found at
//! the file's name (where its binder made it) and which sockets are still
//! bound to it, what happens to it. Checks 2-3 (open, locked) and the
//! atomic removal come after, for the whole batch, in files::removal.

use log::Level;

use crate::host::escape::Esc;
use crate::unix_sockets::metrics::KeptReason;

/// What was found at the file's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Its directory or name is gone, or the name is another file now.
    Released(&'static str),
    /// A directory on its path is a symlink.
    SymlinkOnPath,
    /// Something could not be read: what, and the error.
    Unreadable(String),
    /// The name is the recorded file, but no socket file.
    NotASocket,
    /// The recorded socket file is there.
    Present,
}

/// Which socket, if any, is still bound to the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundBy {
    /// None, anywhere on the host.
    Nobody,
    /// A socket a live process holds (a forked child kept the listener).
    Held {
        sock_ino: u32,
        pid: u32,
        comm: Vec<u8>,
    },
    /// A socket no process holds (passed in a message, in flight).
    Unheld { sock_ino: u32 },
    /// The kernel could not be asked.
    Unknown(String),
}

pub struct Input<'a> {
    /// Made in a mount namespace no live process shares any more.
    pub foreign: bool,
    pub found: &'a Found,
    pub bound: &'a BoundBy,
    /// Looked at once already and found bound by an unheld socket.
    pub retries_left: bool,
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
    /// A live process holds the socket still bound to it: it is the owner
    /// now, and the file is looked at again when it exits.
    HandTo { pid: u32, why: String },
    /// Bound by a socket nobody holds: look again a little later.
    Retry { why: String },
    /// No socket is bound to it: checks 2-3 and the removal decide.
    Remove,
}

fn kept(why: String, reason: KeptReason) -> Decision {
    Decision::Kept {
        why,
        reason,
        level: Level::Info,
    }
}

pub fn decide(i: &Input<'_>) -> Decision {
    match i.found {
        Found::Released(what) if i.foreign => {
            return kept(
                format!("made in another mount namespace; {what} here"),
                KeptReason::OtherNamespace,
            )
        }
        Found::Released(what) => return Decision::Released(what),
        Found::SymlinkOnPath => {
            return kept(
                "a directory on its path is a symlink".into(),
                KeptReason::Symlink,
            )
        }
        Found::Unreadable(e) => {
            return Decision::Kept {
                why: e.clone(),
                reason: KeptReason::Other,
                level: Level::Warn,
            }
        }
        Found::NotASocket => return kept("no longer a socket file".into(), KeptReason::Other),
        Found::Present => {}
    }
    match i.bound {
        BoundBy::Nobody => Decision::Remove,
        BoundBy::Held {
            sock_ino,
            pid,
            comm,
        } => Decision::HandTo {
            pid: *pid,
            why: format!(
                "still bound by socket {sock_ino}, held by pid {pid} ({})",
                Esc(comm)
            ),
        },
        BoundBy::Unheld { sock_ino } if i.retries_left => Decision::Retry {
            why: format!("still bound by socket {sock_ino}, which no process holds"),
        },
        BoundBy::Unheld { sock_ino } => kept(
            format!("still bound by socket {sock_ino}, which no process holds (in flight?)"),
            KeptReason::BoundUnheld,
        ),
        BoundBy::Unknown(e) => Decision::Kept {
            why: format!("cannot tell whether a socket is bound to it: {e}"),
            reason: KeptReason::Unknown,
            level: Level::Warn,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(found: &'a Found, bound: &'a BoundBy) -> Input<'a> {
        Input {
            foreign: false,
            found,
            bound,
            retries_left: true,
        }
    }

    #[test]
    fn unbound_socket_files_go() {
        assert_eq!(
            decide(&input(&Found::Present, &BoundBy::Nobody)),
            Decision::Remove
        );
    }

    #[test]
    fn a_live_holder_keeps_it_and_owns_it() {
        let b = BoundBy::Held {
            sock_ino: 9,
            pid: 77,
            comm: b"socat\n".to_vec(),
        };
        let Decision::HandTo { pid, why } = decide(&input(&Found::Present, &b)) else {
            panic!("not handed")
        };
        assert_eq!(pid, 77);
        assert_eq!(why, "still bound by socket 9, held by pid 77 (socat\\n)");
    }

    #[test]
    fn unheld_sockets_are_looked_at_again_then_kept() {
        let b = BoundBy::Unheld { sock_ino: 3 };
        assert!(matches!(
            decide(&input(&Found::Present, &b)),
            Decision::Retry { .. }
        ));
        let last = Input {
            retries_left: false,
            ..input(&Found::Present, &b)
        };
        assert!(matches!(
            decide(&last),
            Decision::Kept {
                reason: KeptReason::BoundUnheld,
                ..
            }
        ));
    }

    #[test]
    fn nothing_is_removed_when_in_doubt() {
        let unknown = BoundBy::Unknown("EPERM".into());
        assert!(matches!(
            decide(&input(&Found::Present, &unknown)),
            Decision::Kept {
                reason: KeptReason::Unknown,
                level: Level::Warn,
                ..
            }
        ));
        for (found, reason) in [
            (Found::SymlinkOnPath, KeptReason::Symlink),
            (Found::NotASocket, KeptReason::Other),
            (Found::Unreadable("EACCES".into()), KeptReason::Other),
        ] {
            let Decision::Kept { reason: r, .. } = decide(&input(&found, &BoundBy::Nobody)) else {
                panic!("{found:?} not kept")
            };
            assert_eq!(r, reason);
        }
        let gone = Found::Released("the name is gone");
        assert_eq!(
            decide(&input(&gone, &BoundBy::Nobody)),
            Decision::Released("the name is gone")
        );
        let foreign = Input {
            foreign: true,
            ..input(&gone, &BoundBy::Nobody)
        };
        assert!(matches!(
            decide(&foreign),
            Decision::Kept {
                reason: KeptReason::OtherNamespace,
                ..
            }
        ));
    }
}
