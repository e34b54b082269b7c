//! Checks 2-4 and the atomic removal (check 6) over a batch of lock files,
//! shared by the daemon's worker and the one-shot sweep: one /proc walk for
//! the whole batch, rename each file aside, a second walk, then unlink or
//! put back.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io;

use crate::lockfile::{self, LockDir};
use crate::procfs::{self, FileId, HeldLock};
use crate::verdict::{self, Facts, Keep, PidInFile};

/// One file to judge: its directory (opened without symlinks, check 5),
/// its identity (check 1 passed when it was opened) and what its PID says.
pub struct Target {
    pub dir: LockDir,
    pub file: FileId,
    pub pid: PidInFile,
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
        Some(p) => match procfs::stat(p) {
            Some(s) if s.alive() => {
                if verdict::started_after(procfs::start_wall_ns(s.start_ticks), mtime_ns) {
                    PidInFile::Reused(p)
                } else {
                    PidInFile::Alive(p)
                }
            }
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
    let ids: HashSet<FileId> = targets.iter().map(|t| t.file).collect();
    let open = procfs::open_holders(&ids, ignore);
    let held = procfs::held_locks();
    let mut removable = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let facts = Facts {
            same_inode: true,
            open_by: open.get(&t.file).copied(),
            locked_by: locked_by(&held, t.file, ignore),
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
            Ok(hidden) => match t.dir.stat(&hidden) {
                Ok(st) if st.id == t.file => staged.push((i, hidden)),
                _ => {
                    restore(t, &hidden);
                    out[i] = Some(Outcome::Kept(Keep::Replaced));
                }
            },
            Err(e) if lockfile::is_gone(&e) => out[i] = Some(Outcome::Gone),
            Err(e) => out[i] = Some(Outcome::Failed(e)),
        }
    }
    if !staged.is_empty() {
        let ids: HashSet<FileId> = staged.iter().map(|&(i, _)| targets[i].file).collect();
        let open = procfs::open_holders(&ids, ignore);
        let held = procfs::held_locks();
        for (i, hidden) in staged {
            let t = &targets[i];
            let blocker = open
                .get(&t.file)
                .map(|&p| Keep::OpenBy(p))
                .or_else(|| locked_by(&held, t.file, ignore).map(Keep::LockedBy));
            out[i] = Some(match blocker {
                Some(keep) => {
                    restore(t, &hidden);
                    Outcome::Kept(keep)
                }
                None => match t.dir.unlink(&hidden) {
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
