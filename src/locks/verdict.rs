//! What a lock owner's exit means for its locks (DESIGN.md, "Owner and
//! exit"): stale, handed to the parent, or left on purpose. Pure.

use crate::files::verdict::ExitKind;

/// What an owner's exit means for one of its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    /// Owner crashed, was killed or failed: remove if the checks pass.
    Stale,
    /// A clean exit left the lock on purpose: the parent owns it now.
    HandToParent(u32),
    /// A clean exit, and the parent is init or a subreaper: leave it.
    Left,
}

/// DESIGN.md's exit classification. `names_self` is true when the file's
/// first line is the exiting process's own PID: such a lock claims a
/// process that is gone, whatever its exit status.
pub fn on_exit(kind: ExitKind, names_self: bool, ppid: u32, parent_subreaper: bool) -> OnExit {
    if kind != ExitKind::Clean || names_self {
        OnExit::Stale
    } else if ppid <= 1 || parent_subreaper {
        OnExit::Left
    } else {
        OnExit::HandToParent(ppid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_classification() {
        let killed = ExitKind::Killed {
            signal: 9,
            core: false,
        };
        assert_eq!(on_exit(killed, false, 100, false), OnExit::Stale);
        assert_eq!(
            on_exit(ExitKind::Failed(1), false, 100, false),
            OnExit::Stale
        );
        assert_eq!(
            on_exit(ExitKind::Clean, false, 100, false),
            OnExit::HandToParent(100)
        );
        assert_eq!(on_exit(ExitKind::Clean, false, 1, false), OnExit::Left);
        assert_eq!(on_exit(ExitKind::Clean, false, 100, true), OnExit::Left);
        // a lock naming the exiting process is stale whatever the status
        assert_eq!(on_exit(ExitKind::Clean, true, 100, false), OnExit::Stale);
        assert_eq!(on_exit(ExitKind::Clean, true, 1, false), OnExit::Stale);
    }
}
