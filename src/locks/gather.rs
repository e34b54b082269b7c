//! The facts about one lock the decision needs, read from the filesystem
//! (check 1: is the name still the lock's inode; what it holds). No
//! decision here: decide.rs makes it from what this finds.

use crate::files::dir::{self, DirContent, LockDir};
use crate::files::removal::Shape;
use crate::files::verdict::{self, Content};
use crate::host::escape::Esc;
use crate::locks::decide::Found;
use crate::locks::kernel::LockKind;
use crate::locks::resolve::Root;
use crate::locks::table::Tracked;

/// What was found, and the handles removal needs when the lock is there.
pub struct Gathered {
    pub found: Found,
    /// With `Found::Present`: its directory, what to remove, and when its
    /// content was last written (check 4's PID reuse rule).
    pub at: Option<(LockDir, Shape, i128)>,
}

impl Gathered {
    fn only(found: Found) -> Self {
        Gathered { found, at: None }
    }
}

/// Look at `lock` where it was made (`root`).
pub fn gather(root: &Root, lock: &Tracked) -> Gathered {
    let dir = match root.open_parent(&lock.rec.path) {
        Ok(d) => d,
        Err(e) if dir::is_gone(&e) => {
            return Gathered::only(Found::Released("its directory is gone"))
        }
        Err(e) if dir::is_symlink_refusal(&e) => return Gathered::only(Found::SymlinkOnPath),
        Err(e) => {
            return Gathered::only(Found::Unreadable(format!("cannot open its directory: {e}")))
        }
    };
    let st = match dir.stat(dir.name()) {
        Ok(st) => st,
        Err(e) if dir::is_gone(&e) => return Gathered::only(Found::Released("the name is gone")),
        Err(e) => return Gathered::only(Found::Unreadable(format!("cannot stat it: {e}"))),
    };
    if st.id != lock.file {
        return Gathered::only(Found::Released("the name belongs to another file"));
    }
    let kind = lock.rec.kind;
    let shape_ok = match kind {
        LockKind::Mkdir => st.dir,
        LockKind::Symlink => st.symlink,
        _ => st.regular,
    };
    if !shape_ok {
        return Gathered::only(Found::WrongShape);
    }
    // what names the owner: a symlink's target (never followed), a lock
    // directory's one small file, or the file's first line
    let mut other_data = None;
    let (pid, shape) = match kind {
        LockKind::Symlink => (
            dir.read_link(dir.name())
                .ok()
                .and_then(|t| verdict::parse_symlink_owner(&t)),
            Shape::File,
        ),
        LockKind::Mkdir => match dir.dir_content(dir.name()) {
            Ok(DirContent::Empty) => (None, Shape::Dir(None)),
            // its one file must be an owner record (a PID, host:PID, a
            // short key=value or JSON record with a pid) and nothing else:
            // `echo data > dir.lock/keep.db` is data, and keeps it
            Ok(DirContent::One { name, id, head }) => match verdict::parse_owner_record(&head) {
                Content::Empty => (None, Shape::Dir(Some((name, id)))),
                Content::Owner { host: Some(h), .. }
                    if !verdict::same_host(h, &crate::locks::sweep::hostname()) =>
                {
                    other_data = Some(format!(
                        "{} names another host ({})",
                        Esc::os(&name),
                        Esc(h)
                    ));
                    (None, Shape::Dir(None))
                }
                Content::Owner { pid, .. } => (Some(pid), Shape::Dir(Some((name, id)))),
                Content::Other => {
                    other_data = Some(format!("{} is not an owner record", Esc::os(&name)));
                    (None, Shape::Dir(None))
                }
            },
            Ok(DirContent::Other(why)) => {
                other_data = Some(why);
                (None, Shape::Dir(None))
            }
            Err(e) => {
                return Gathered::only(Found::Unreadable(format!(
                    "cannot read the lock directory: {e}"
                )))
            }
        },
        _ => (
            dir.read_head(dir.name())
                .ok()
                .and_then(|h| verdict::parse_pid_line(&h)),
            Shape::File,
        ),
    };
    Gathered {
        found: Found::Present { pid, other_data },
        at: Some((dir, shape, st.mtime_ns)),
    }
}
