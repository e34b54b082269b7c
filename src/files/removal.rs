//! Checks 2-4 and the atomic removal (check 6) over a batch of lock files,
//! shared by the daemon's worker and the one-shot sweep: one /proc walk for
//! the whole batch, rename each file aside, a second walk, then unlink or
//! put back.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;

use crate::files::creator::Creator;
use crate::files::dir::{self, DirContent, LockDir};
use crate::files::verdict::{self, Facts, Keep, PidInFile};
use crate::host::procfs::{self, FileId, HeldLock};

/// One lock to judge: its directory (opened without symlinks, check 5),
/// its identity (check 1 passed when it was opened), what it is and what
/// its PID says.
pub struct Target {
    pub dir: LockDir,
    pub file: FileId,
    pub shape: Shape,
    pub pid: PidInFile,
    /// Its creator's credentials as the kernel recorded them, when known:
    /// what every removal step is to run with (issue 11).
    #[allow(dead_code)] // acted with by the principal work (host::creds)
    pub creator: Option<Creator>,
}

/// What the lock's name is, and so how it is removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// A regular file or a symlink: one unlink.
    File,
    /// A regular file that must still hold exactly these bytes once staged
    /// (a PID file rewritten meanwhile names someone else): one unlink.
    Holding(Vec<u8>),
    /// A lock directory, empty or holding one small file (name, identity):
    /// that file, then the directory; never anything else.
    Dir(Option<(OsString, FileId)>),
}

impl Target {
    /// Every inode checks 2 and 3 look at: the lock, and its one file.
    fn ids(&self) -> Vec<FileId> {
        match &self.shape {
            Shape::Dir(Some((_, id))) => vec![self.file, *id],
            _ => vec![self.file],
        }
    }

    fn blocker(
        &self,
        open: &std::collections::HashMap<FileId, u32>,
        held: &[HeldLock],
        ignore: &[u32],
    ) -> Option<Keep> {
        let ids = self.ids();
        ids.iter()
            .find_map(|id| open.get(id).map(|&p| Keep::OpenBy(p)))
            .or_else(|| {
                ids.iter()
                    .find_map(|&id| locked_by(held, id, ignore).map(Keep::LockedBy))
            })
    }

    /// The staged lock is what was judged: same inode and, for a
    /// directory, the same content.
    fn unchanged(&self, hidden: &OsString) -> bool {
        if !self.dir.stat(hidden).is_ok_and(|st| st.id == self.file) {
            return false;
        }
        match &self.shape {
            Shape::File => true,
            Shape::Holding(content) => self.dir.read_head(hidden).is_ok_and(|now| now == *content),
            Shape::Dir(inner) => match (self.dir.dir_content(hidden), inner) {
                (Ok(DirContent::Empty), None) => true,
                (Ok(DirContent::One { name, id, .. }), Some((n, i))) => name == *n && id == *i,
                _ => false,
            },
        }
    }

    fn remove(&self, hidden: &OsString) -> io::Result<()> {
        match &self.shape {
            Shape::File | Shape::Holding(_) => self.dir.unlink(hidden),
            Shape::Dir(inner) => self.dir.remove_dir(hidden, inner.as_ref()),
        }
    }
}

#[derive(Debug)]
pub enum Outcome {
    Removed,
    WouldRemove,
    Kept(Keep),
    /// Someone else removed it meanwhile.
    Gone,
    Failed(io::Error),
}

/// Check 4 for one file: `pid` from its first line; `same_pid_ns`: written
/// in our PID namespace; `exiting`: processes known to be dead even if
/// /proc still shows them on their way out.
pub fn judge_pid(
    pid: Option<u32>,
    same_pid_ns: bool,
    exiting: &[u32],
    mtime_ns: i128,
) -> PidInFile {
    match pid {
        None => PidInFile::NoPid,
        Some(_) if !same_pid_ns => PidInFile::Uninterpretable,
        Some(p) if exiting.contains(&p) => PidInFile::Dead(p),
        Some(p) => match procfs::look(p) {
            procfs::Look::Stat(s) if s.alive() => {
                if verdict::started_after(procfs::start_wall_ns(s.start_ticks), mtime_ns) {
                    PidInFile::Reused(p)
                } else {
                    PidInFile::Alive(p)
                }
            }
            // there, but unreadable: it may be the owner, alive
            procfs::Look::Unknown(_) => PidInFile::Alive(p),
            _ => PidInFile::Dead(p),
        },
    }
}

fn locked_by(held: &[HeldLock], file: FileId, ignore: &[u32]) -> Option<u32> {
    held.iter()
        .find(|h| h.file == file && !ignore.contains(&h.pid))
        .map(|h| h.pid)
}

/// Judge and remove a batch; one outcome per target, in order. Processes
/// in `ignore` (this agent, owners known to be exiting) hold nothing.
pub fn remove_all(targets: &[Target], ignore: &[u32], dry_run: bool) -> Vec<Outcome> {
    let mut out: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    let ids: HashSet<FileId> = targets.iter().flat_map(|t| t.ids()).collect();
    let open = procfs::open_holders(&ids, ignore);
    let held = procfs::held_locks();
    let mut removable = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let blocker = t.blocker(&open, &held, ignore);
        let facts = Facts {
            same_inode: true,
            open_by: match blocker {
                Some(Keep::OpenBy(p)) => Some(p),
                _ => None,
            },
            locked_by: match blocker {
                Some(Keep::LockedBy(p)) => Some(p),
                _ => None,
            },
            pid: t.pid,
        };
        match verdict::judge(&facts) {
            Ok(()) => removable.push(i),
            Err(keep) => out[i] = Some(Outcome::Kept(keep)),
        }
    }
    if dry_run {
        for i in removable {
            out[i] = Some(Outcome::WouldRemove);
        }
        return out
            .into_iter()
            .map(|o| o.expect("every target judged"))
            .collect();
    }

    // Rename aside: from here a new lock can take the name without us
    // touching it. Then look again, and unlink or put back.
    let mut staged: Vec<(usize, OsString)> = Vec::new();
    for i in removable {
        let t = &targets[i];
        match t.dir.hide() {
            Ok(hidden) if t.unchanged(&hidden) => staged.push((i, hidden)),
            Ok(hidden) => {
                restore(t, &hidden);
                out[i] = Some(Outcome::Kept(Keep::Replaced));
            }
            Err(e) if dir::is_gone(&e) => out[i] = Some(Outcome::Gone),
            Err(e) => out[i] = Some(Outcome::Failed(e)),
        }
    }
    if !staged.is_empty() {
        let ids: HashSet<FileId> = staged.iter().flat_map(|&(i, _)| targets[i].ids()).collect();
        let open = procfs::open_holders(&ids, ignore);
        let held = procfs::held_locks();
        for (i, hidden) in staged {
            let t = &targets[i];
            out[i] = Some(match t.blocker(&open, &held, ignore) {
                Some(keep) => {
                    restore(t, &hidden);
                    Outcome::Kept(keep)
                }
                None => match t.remove(&hidden) {
                    Ok(()) => Outcome::Removed,
                    Err(e) => {
                        restore(t, &hidden);
                        Outcome::Failed(e)
                    }
                },
            });
        }
    }
    out.into_iter()
        .map(|o| o.expect("every target judged"))
        .collect()
}

fn restore(t: &Target, hidden: &OsString) {
    if let Err(e) = t.dir.restore(hidden) {
        log::error!(
            "could not rename {:?} back to {:?} ({e}): a new lock may have taken the name",
            hidden,
            t.dir.name()
        );
    }
}
