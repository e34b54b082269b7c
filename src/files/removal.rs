//! Checks 2-4 and the atomic removal (check 6) over a batch of lock files,
//! shared by the daemon's worker and the one-shot sweep: one holder check
//! for the whole batch (files/holders/: BPF iterators, or the /proc
//! walk), rename each file aside, a second check, then unlink or put back.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use crate::files::creator::Creator;
use crate::files::dir::{self, DirContent, LockDir};
use crate::files::holders::{self, Candidate, Held};
use crate::files::identity;
use crate::files::intents;
use crate::files::verdict::{self, Facts, Keep, PidInFile, Unexplained};
use crate::host::creds::{self, Principal};
use crate::host::procfs::{self, FileId, HeldLock};

/// One lock to judge: its directory (opened without symlinks, check 5),
/// its identity (check 1 passed when it was opened), what it is and what
/// its PID says.
pub struct Target {
    pub dir: LockDir,
    pub file: FileId,
    pub shape: Shape,
    pub pid: PidInFile,
    /// The inode's generation as recorded (with `file`, its identity);
    /// `None`: not recorded, device and inode decide.
    pub gen: Option<u32>,
    /// Its creator's credentials as the kernel recorded them, when known:
    /// every removal step runs with them, and the file must be owned by
    /// the creator's uid (issue 11). `None` (sweep: no record): the steps
    /// run as the file's owner.
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
    /// Every inode checks 2 and 3 look at: the lock, and its one file,
    /// with the path of each relative to the lock's directory.
    fn ids(&self) -> Vec<(FileId, PathBuf)> {
        let name = PathBuf::from(self.dir.name());
        match &self.shape {
            Shape::Dir(Some((inner, id))) => {
                vec![(self.file, name.clone()), (*id, name.join(inner))]
            }
            _ => vec![(self.file, name)],
        }
    }

    /// The holder checks' probes: O_PATH descriptors on each of its inodes,
    /// opened by name (no symlinks) and checked to be those inodes. They
    /// stay on the same inodes when the lock is renamed aside.
    fn probes(&self) -> Result<Vec<(FileId, OwnedFd)>, Outcome> {
        let mut out = Vec::new();
        for (id, rel) in self.ids() {
            let fd = match self.dir.probe(&rel) {
                Ok(fd) => fd,
                Err(e) if dir::is_gone(&e) && out.is_empty() => return Err(Outcome::Gone),
                Err(e) if dir::is_gone(&e) => return Err(Outcome::Kept(Keep::Replaced)),
                Err(e) => {
                    log::warn!("cannot open {rel:?} for the holder check: {e}");
                    return Err(Outcome::Kept(Keep::Unexplained(Unexplained::CannotTell(
                        "it could not be opened for the holder check",
                    ))));
                }
            };
            let same = |st: &nix::sys::stat::FileStat| {
                FileId::from_stat(st.st_dev, st.st_ino) == id
                    && (!out.is_empty()
                        || identity::same(
                            self.gen,
                            identity::generation(fd.as_raw_fd(), "".as_ref()),
                        ))
            };
            match nix::sys::stat::fstat(fd.as_raw_fd()) {
                Ok(st) if same(&st) => {
                    if out.is_empty() {
                        self.owned_by_creator(st.st_uid)?;
                    }
                    out.push((id, fd))
                }
                _ => return Err(Outcome::Kept(Keep::Replaced)),
            }
        }
        Ok(out)
    }

    /// The lock's inode belongs to its creator (kernel uid), or the
    /// creator was root: else someone else's file sits under the name the
    /// creator used (a bind mount, a `..` resolved otherwise), and it is
    /// none of the creator's business.
    fn owned_by_creator(&self, uid: u32) -> Result<(), Outcome> {
        match &self.creator {
            Some(c) if c.fsuid != 0 && c.fsuid != uid => Err(Outcome::Kept(Keep::NotCreators {
                owner: uid,
                creator: c.fsuid,
            })),
            _ => Ok(()),
        }
    }

    /// Whose credentials the removal steps run with: the creator's, or
    /// (no record) the file's owner's.
    fn principal(&self) -> Principal {
        match &self.creator {
            Some(c) => c.principal(),
            // gone or unreadable: the next step fails as anyone
            None => self
                .dir
                .stat(self.dir.name())
                .map_or_else(|_| Principal::nobody(), |st| st.owner()),
        }
    }

    /// The staged lock is what was judged: same inode and, for a
    /// directory, the same content.
    fn unchanged(&self, hidden: &OsString) -> bool {
        if !self
            .dir
            .stat(hidden)
            .is_ok_and(|st| st.is(self.file, self.gen))
        {
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

/// Checks 2 and 3 (and what no process shows) for one target.
#[derive(Debug, Default, Clone, Copy)]
struct Blockers {
    open_by: Option<u32>,
    locked_by: Option<u32>,
    unexplained: Option<Unexplained>,
}

impl Blockers {
    /// The first reason to keep, in the order of the checks.
    fn keep(&self) -> Option<Keep> {
        self.open_by
            .map(Keep::OpenBy)
            .or(self.locked_by.map(Keep::LockedBy))
            .or(self.unexplained.map(Keep::Unexplained))
    }
}

/// One holder check over the targets `which` (with their probes), and one
/// read of /proc/locks.
fn gather(probes: &[Vec<(FileId, OwnedFd)>], which: &[usize], ignore: &[u32]) -> Vec<Blockers> {
    let mut cands = Vec::new();
    let mut owner = Vec::new();
    for (k, &i) in which.iter().enumerate() {
        for (id, fd) in &probes[i] {
            cands.push(Candidate {
                id: *id,
                probe: fd.as_fd(),
            });
            owner.push(k);
        }
    }
    let answers = holders::check(&cands, ignore);
    let held = procfs::held_locks();
    let mut out = vec![Blockers::default(); which.len()];
    for ((k, c), a) in owner.iter().zip(&cands).zip(answers) {
        let b = &mut out[*k];
        match a {
            Held::Free => {}
            Held::By(p) => {
                b.open_by.get_or_insert(p);
            }
            Held::Unexplained(u) => {
                b.unexplained.get_or_insert(u);
            }
        }
        if b.locked_by.is_none() {
            b.locked_by = locked_by(&held, c.id, ignore);
        }
    }
    out
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

/// How long the first check of a batch waits for ignored processes still
/// on their way out (holders::settle).
const SETTLE: Duration = Duration::from_secs(1);

/// Judge and remove a batch; one outcome per target, in order. Processes
/// in `ignore` (this agent, owners known to be exiting) hold nothing.
/// Holders are found by the backend chosen at start (files/holders/).
pub fn remove_all(targets: &[Target], ignore: &[u32], dry_run: bool) -> Vec<Outcome> {
    let mut out: Vec<Option<Outcome>> = targets.iter().map(|_| None).collect();
    holders::settle(ignore, SETTLE);
    let mut probes: Vec<Vec<(FileId, OwnedFd)>> = Vec::with_capacity(targets.len());
    let mut live = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        match t.probes() {
            Ok(p) => {
                probes.push(p);
                live.push(i);
            }
            Err(o) => {
                probes.push(Vec::new());
                out[i] = Some(o);
            }
        }
    }
    let first = gather(&probes, &live, ignore);
    let mut removable = Vec::new();
    for (&i, b) in live.iter().zip(first) {
        let facts = Facts {
            same_inode: true,
            open_by: b.open_by,
            locked_by: b.locked_by,
            pid: targets[i].pid,
            unexplained: b.unexplained,
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
    // Every step that changes a name runs with the principal's
    // credentials (host/creds.rs): what its creator could not have
    // removed, we cannot either.
    // The intent goes to the journal first (files/intents.rs): a stop
    // between the rename aside and its end is rolled back at start.
    let mut staged: Vec<(usize, OsString, Principal, Option<u64>)> = Vec::new();
    for i in removable {
        let t = &targets[i];
        let who = t.principal();
        let hidden = t.dir.hidden_name();
        let seq = intents::begin(&t.dir, &hidden, t.file, t.gen, &who);
        let hid = creds::as_principal(&who, || {
            t.dir.hide_as(&hidden).map(|()| {
                intents::fail_point("after-hide");
                let same = t.unchanged(&hidden);
                if !same {
                    restore(t, &hidden);
                }
                same
            })
        })
        .and_then(|r| r);
        if !matches!(hid, Ok(true)) {
            intents::end(seq);
        }
        match hid {
            Ok(true) => staged.push((i, hidden, who, seq)),
            Ok(false) => out[i] = Some(Outcome::Kept(Keep::Replaced)),
            Err(e) if dir::is_gone(&e) => out[i] = Some(Outcome::Gone),
            Err(e) if !who.is_root() && not_permitted(&e) => {
                out[i] = Some(Outcome::Kept(Keep::NotPermitted(who.fsuid)))
            }
            Err(e) => out[i] = Some(Outcome::Failed(e)),
        }
    }
    if !staged.is_empty() {
        let which: Vec<usize> = staged.iter().map(|&(i, ..)| i).collect();
        let again = gather(&probes, &which, ignore);
        for ((i, hidden, who, seq), b) in staged.into_iter().zip(again) {
            let t = &targets[i];
            let done = creds::as_principal(&who, || match b.keep() {
                Some(keep) => {
                    restore(t, &hidden);
                    Outcome::Kept(keep)
                }
                None => match t.remove(&hidden) {
                    Ok(()) => Outcome::Removed,
                    Err(e) => {
                        restore(t, &hidden);
                        if !who.is_root() && not_permitted(&e) {
                            Outcome::Kept(Keep::NotPermitted(who.fsuid))
                        } else {
                            Outcome::Failed(e)
                        }
                    }
                },
            });
            intents::end(seq);
            out[i] = Some(done.unwrap_or_else(Outcome::Failed));
        }
    }
    out.into_iter()
        .map(|o| o.expect("every target judged"))
        .collect()
}

/// Refused to a principal other than root: its creator lacked the right
/// (root's refusal, e.g. an immutable file, is a failure to report).
fn not_permitted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
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
