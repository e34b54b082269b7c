//! The verdict side of the socket-file duty: files whose owner ended are
//! gathered where their binder lives, the kernel is asked which sockets
//! are still bound to them, and each is decided, checked as a batch
//! (checks 2-3) and removed, kept, or handed to the live process that
//! holds its socket; each with its one log line.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use log::Level;

use crate::files::dir;
use crate::files::made::FileKey;
use crate::files::owners::{Added, Proc};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::root::Root;
use crate::files::verdict::{Keep, PidInFile};
use crate::host::escape::Esc;
use crate::host::{netns, procfs};
use crate::unix_sockets::decide::{self, BoundBy, Decision, Found, Input};
use crate::unix_sockets::diag::{Bound, Vfs};
use crate::unix_sockets::kernel::UxsKernel;
use crate::unix_sockets::metrics::KeptReason;

use super::{say, Tracked, UxsWork, MAX_ROUNDS, RETRIES};

impl<K: UxsKernel> UxsWork<K> {
    /// Why the file is looked at: its owner's end.
    fn story(t: &Tracked) -> String {
        let binder = &t.rec.made;
        match &t.stale {
            // the binder is the owner until then: its command as it ended
            None => format!(
                "its binder pid {} ({}) exited",
                binder.tgid,
                Esc(&t.owner_comm)
            ),
            Some(first) => format!(
                "{first}; pid {} ({}) that kept it bound exited",
                t.owner.pid,
                Esc(&t.owner_comm)
            ),
        }
    }

    pub(super) fn judge(&mut self, mut work: Vec<FileKey>) {
        for _ in 0..MAX_ROUNDS {
            let mut seen = HashSet::new();
            work.retain(|k| seen.insert(*k));
            if work.is_empty() {
                return;
            }
            work = self.judge_round(work);
        }
        for k in work {
            if let Some(t) = self.files.get(&k) {
                say(
                    Level::Info,
                    "kept",
                    &t.rec.made.path,
                    format_args!(
                        "kept {}: its owner kept changing while it was checked",
                        Esc::path(&t.rec.made.path)
                    ),
                );
                self.metrics.kept(KeptReason::Other);
            }
            self.untrack(&k);
        }
    }

    /// What is at the file's name, where its binder made it.
    fn gather(&self, t: &Tracked, key: FileKey) -> (Root, Found, Option<dir::LockDir>) {
        let root = Root::of(
            t.rec.made.mnt_ns,
            self.own_mnt_ns,
            &[t.owner.pid, t.rec.made.tgid],
        );
        let d = match root.open_parent(&t.rec.made.path) {
            Ok(d) => d,
            Err(e) if dir::is_gone(&e) => {
                return (root, Found::Released("its directory is gone"), None)
            }
            Err(e) if dir::is_symlink_refusal(&e) => return (root, Found::SymlinkOnPath, None),
            Err(e) => {
                return (
                    root,
                    Found::Unreadable(format!("cannot open its directory: {e}")),
                    None,
                )
            }
        };
        let found = match d.stat(d.name()) {
            Err(e) if dir::is_gone(&e) => Found::Released("the name is gone"),
            Err(e) => Found::Unreadable(format!("cannot stat it: {e}")),
            Ok(st) if st.id != key.file() => Found::Released("the name belongs to another file"),
            Ok(st) if !st.socket => Found::NotASocket,
            Ok(_) => Found::Present,
        };
        (root, found, Some(d))
    }

    /// One pass over a batch; returns work for the next round (owners
    /// that ended before they could be watched).
    fn judge_round(&mut self, work: Vec<FileKey>) -> Vec<FileKey> {
        let mut next = Vec::new();
        let mut gathered = Vec::new();
        for key in work {
            let Some(t) = self.files.get(&key) else {
                continue;
            };
            let (root, found, d) = self.gather(t, key);
            gathered.push((key, root, found, d));
        }
        // which sockets are bound to the files still there: one look at
        // every namespace for the batch, one /proc walk for the holders
        let wanted: HashSet<Vfs> = gathered
            .iter()
            .filter(|g| g.2 == Found::Present)
            .map(|g| Vfs::of(g.0.file()))
            .collect();
        let t0 = Instant::now();
        let bound = if wanted.is_empty() {
            Ok(Bound::default())
        } else {
            (self.probe)(&wanted)
        };
        let t1 = Instant::now();
        let socks: HashSet<u64> = match &bound {
            Ok(b) => b.by_file.values().flatten().map(|&s| s as u64).collect(),
            Err(_) => HashSet::new(),
        };
        let holders = netns::socket_holders(&socks);
        log::debug!(
            "socket files: {} looked at; bound sockets asked in {:?}{}, holders in {:?}",
            wanted.len(),
            t1 - t0,
            bound
                .as_ref()
                .map(|b| format!(" ({} namespaces)", b.namespaces))
                .unwrap_or_default(),
            t1.elapsed()
        );

        let mut targets = Vec::new();
        let mut cands = Vec::new();
        let mut ignore = vec![self.own_pid];
        for (key, root, found, d) in gathered {
            let Some(t) = self.files.get(&key) else {
                continue;
            };
            ignore.push(t.owner.pid);
            let by = match (&bound, found == Found::Present) {
                (_, false) => BoundBy::Nobody,
                (Err(e), true) => BoundBy::Unknown(e.clone()),
                (Ok(b), true) => match b.sockets_on(key.file()).first() {
                    None => BoundBy::Nobody,
                    Some(&s) => match holders.get(&(s as u64)) {
                        Some(h) => BoundBy::Held {
                            sock_ino: s,
                            pid: h.pid,
                            comm: h.comm.clone().into_bytes(),
                        },
                        None => BoundBy::Unheld { sock_ino: s },
                    },
                },
            };
            let decision = decide::decide(&Input {
                foreign: !root.reachable(),
                found: &found,
                bound: &by,
                retries_left: t.retries < RETRIES.len(),
            });
            let path = t.rec.made.path.clone();
            let story = Self::story(t);
            match decision {
                Decision::Released(what) => {
                    log::debug!("{} was released ({what})", Esc::path(&path));
                    self.untrack(&key);
                }
                Decision::Kept { why, reason, level } => {
                    say(
                        level,
                        "kept",
                        &path,
                        format_args!("kept {}{}: {why}; {story}", Esc::path(&path), root.place()),
                    );
                    self.metrics.kept(reason);
                    self.untrack(&key);
                }
                Decision::Retry { why } => {
                    log::debug!("{}: {why}; looking again", Esc::path(&path));
                    let t = self.files.get_mut(&key).expect("tracked");
                    t.retry_at = Some(Instant::now() + RETRIES[t.retries]);
                    t.retries += 1;
                }
                Decision::HandTo { pid, why } => {
                    // not a final verdict: it follows the live process
                    say(
                        Level::Info,
                        "handed",
                        &path,
                        format_args!(
                            "handed {}{} to pid {pid}: {why}; judged again when it exits; {story}",
                            Esc::path(&path),
                            root.place()
                        ),
                    );
                    self.metrics.kept(KeptReason::Bound);
                    self.hand_to(key, pid, story, &mut next);
                }
                Decision::Remove => {
                    let d = d.expect("present");
                    targets.push(Target {
                        dir: d,
                        file: key.file(),
                        gen: Some(key.gen),
                        shape: Shape::File,
                        pid: PidInFile::NoPid,
                        creator: Some(t.rec.made.creator.clone()),
                    });
                    cands.push((key, root.place(), story));
                }
            }
        }
        if targets.is_empty() {
            return next;
        }
        let outcomes = removal::remove_all(&targets, &ignore, self.cfg.dry_run);
        for ((key, place, story), outcome) in cands.into_iter().zip(outcomes) {
            let Some(path) = self.files.get(&key).map(|t| t.rec.made.path.clone()) else {
                continue;
            };
            let p = Esc::path(&path);
            match outcome {
                Outcome::Removed => {
                    say(
                        Level::Info,
                        "removed",
                        &path,
                        format_args!("removed {p}{place}: no socket is bound to it; {story}"),
                    );
                    self.metrics.removed_total.fetch_add(1, Relaxed);
                    self.untrack(&key);
                }
                Outcome::WouldRemove => {
                    say(
                        Level::Info,
                        "would_remove",
                        &path,
                        format_args!(
                            "would remove {p}{place}: no socket is bound to it; {story} (dry run)"
                        ),
                    );
                    self.untrack(&key);
                }
                Outcome::Kept(keep) => {
                    say(
                        Level::Info,
                        "kept",
                        &path,
                        format_args!("kept {p}{place}: {keep}; {story}"),
                    );
                    self.metrics.kept(match keep {
                        Keep::OpenBy(_) => KeptReason::Open,
                        Keep::LockedBy(_) => KeptReason::Locked,
                        _ => KeptReason::Other,
                    });
                    match keep.new_owner() {
                        Some(pid) => self.hand_to(key, pid, story, &mut next),
                        None => self.untrack(&key),
                    }
                }
                Outcome::Gone => {
                    log::debug!("{p} was removed by someone else");
                    self.untrack(&key);
                }
                Outcome::Failed(e) => {
                    say(
                        Level::Error,
                        "failed",
                        &path,
                        format_args!("failed to remove {p}: {e}; {story}"),
                    );
                    self.metrics.removal_failures_total.fetch_add(1, Relaxed);
                    self.untrack(&key);
                }
            }
        }
        next
    }

    /// A live process keeps the file: it owns it now, and the file is
    /// looked at again when it exits.
    fn hand_to(&mut self, key: FileKey, pid: u32, story: String, next: &mut Vec<FileKey>) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        let old = t.owner;
        let new = Proc::live(pid);
        if t.stale.is_none() {
            t.stale = Some(story);
        }
        t.retries = 0;
        t.retry_at = None;
        self.owners.remove(key, old);
        let Some(p) = new else {
            next.push(key); // gone meanwhile: look again
            return;
        };
        let t = self.files.get_mut(&key).expect("tracked");
        t.owner = p;
        t.owner_comm = procfs::comm(p.pid).into_bytes();
        if self.owners.add(key, p) == Added::Gone {
            next.push(key);
        }
    }
}
