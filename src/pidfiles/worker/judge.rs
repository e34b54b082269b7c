//! The verdict side of the PID-file duty: files looked at (read after a
//! write, or their owner ended) are gathered where their writer lives,
//! their PID read in its PID namespace, decided, and checked as a batch
//! (checks 2-3) and removed, kept, or handed to a live process; each with
//! its one log line.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use log::Level;

use crate::files::dir;
use crate::files::made::FileKey;
use crate::files::owners::{Added, Proc};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::root::Root;
use crate::files::verdict::{self, Keep, PidInFile};
use crate::host::escape::Esc;
use crate::host::procfs::{self, NsPid};
use crate::pidfiles::content::{self, Content};
use crate::pidfiles::decide::{self, Decision, Found, Input, Named};
use crate::pidfiles::kernel::{PidfKernel, Record};
use crate::pidfiles::metrics::KeptReason;

use super::{say, At, Look, PidfWork, Tracked, MAX_ROUNDS, READS};

impl<K: PidfKernel> PidfWork<K> {
    pub(super) fn look(&mut self, mut looks: Vec<Look>) {
        for _ in 0..MAX_ROUNDS {
            let mut seen = HashSet::new();
            looks.retain(|(k, _)| seen.insert(*k));
            if looks.is_empty() {
                return;
            }
            looks = self.look_round(looks);
        }
        for (k, _) in looks {
            if let Some(t) = self.files.get(&k) {
                let p = &t.rec.made.path;
                say(
                    Level::Info,
                    "kept",
                    p,
                    format_args!(
                        "kept {}: its owner kept changing while it was checked",
                        Esc::path(p)
                    ),
                );
                self.metrics.kept(KeptReason::Other);
            }
            self.untrack(&k);
        }
    }

    /// What is at the file's name, where its writer made it, and its
    /// content; the directory and the file's mtime when it is there.
    fn gather(&self, t: &Tracked, key: FileKey) -> (Root, Found, Option<At>) {
        let mut prefer = vec![t.rec.made.tgid];
        prefer.extend(t.owner.map(|o| o.pid));
        let root = Root::of(t.rec.made.mnt_ns, self.own_mnt_ns, &prefer);
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
        let st = match d.stat(d.name()) {
            Err(e) if dir::is_gone(&e) => return (root, Found::Released("the name is gone"), None),
            Err(e) => {
                return (
                    root,
                    Found::Unreadable(format!("cannot stat it: {e}")),
                    None,
                )
            }
            Ok(st) if st.id != key.file() => {
                return (
                    root,
                    Found::Released("the name belongs to another file"),
                    None,
                )
            }
            Ok(st) if !st.regular => return (root, Found::NotRegular, None),
            Ok(st) => st,
        };
        let head = match d.read_head(d.name()) {
            Ok(h) => h,
            Err(e) => {
                return (
                    root,
                    Found::Unreadable(format!("cannot read it: {e}")),
                    None,
                )
            }
        };
        let c = content::parse(&head, st.size);
        (root, Found::Present(c), Some((d, head, st.mtime_ns)))
    }

    /// What PID `p`, written by `rec`'s writer, names now (read in the
    /// writer's PID namespace); whether that is `ended`, the process that
    /// just exited (dead, even if /proc still shows it on its way out);
    /// and the live process it names, if it does.
    fn interpret(
        &self,
        p: u32,
        rec: &Record,
        ended: Option<Proc>,
        mtime_ns: i128,
    ) -> (Named, bool, Option<Proc>) {
        let host = if rec.made.pid_ns == self.own_pid_ns {
            p
        } else {
            match procfs::host_pid(p, rec.made.pid_ns) {
                NsPid::Host(h) => h,
                NsPid::Dead => return (Named::Dead, false, None),
                NsPid::Unknown => return (Named::Unknown, false, None),
            }
        };
        if ended.is_some_and(|e| e.pid == host) {
            return (Named::Dead, true, None);
        }
        let Some(live) = Proc::live(host) else {
            return (Named::Dead, false, None);
        };
        if verdict::started_after(procfs::start_wall_ns(live.start_ticks), mtime_ns) {
            (Named::Reused(live.pid), false, None)
        } else {
            (Named::Alive(live.pid), false, Some(live))
        }
    }

    /// Why the file is stale, for its log line.
    /// `ended_named`: the PID names the process that just ended.
    fn story(t: &Tracked, pid: PidInFile, ended: Option<Proc>, ended_named: bool) -> String {
        let was_named = |p: u32| {
            ended_named
                || matches!((t.named, ended), (Some((w, h)), Some(e)) if w == p && e.pid == h)
        };
        let first = match pid {
            PidInFile::Dead(p) if t.stale.is_none() && was_named(p) => {
                format!("it names pid {p} ({}), which exited", Esc(&t.owner_comm))
            }
            PidInFile::Dead(p) => format!("it names pid {p}, which is dead"),
            PidInFile::Reused(h) => format!(
                "it names pid {h}, now a process started after the file was written (PID reused)"
            ),
            _ => "it names no live process".into(),
        };
        match (&t.stale, ended) {
            (Some(s), Some(e)) => format!(
                "{s}; pid {} ({}) that held it exited",
                e.pid,
                Esc(&t.owner_comm)
            ),
            (Some(s), None) => s.clone(),
            (None, _) => first,
        }
    }

    /// One pass over a batch; returns looks for the next round.
    fn look_round(&mut self, looks: Vec<Look>) -> Vec<Look> {
        let mut next = Vec::new();
        let mut targets = Vec::new();
        let mut cands = Vec::new();
        let mut ignore = vec![self.own_pid];
        for (key, ended) in looks {
            let Some(t) = self.files.get(&key) else {
                continue;
            };
            if let Some(e) = ended {
                ignore.push(e.pid);
            }
            let (root, found, at) = self.gather(t, key);
            log::trace!(
                "looking at {} ({:?}; {})",
                Esc::path(&t.rec.made.path),
                found,
                ended.map_or("no owner ended".into(), |e| format!("pid {} ended", e.pid))
            );
            let (named, ended_named, live) = match (&found, &at) {
                (Found::Present(Content::Pid(p)), Some((_, _, mtime))) => {
                    let (n, e, live) = self.interpret(*p, &t.rec, ended, *mtime);
                    (Some(n), e, live)
                }
                _ => (None, false, None),
            };
            // awaited while reads are left; but once its writer has ended
            // with something other than a PID in it, nothing more comes
            let writer_ended = ended.is_some_and(|e| e == t.rec.made.proc());
            let awaiting = t.awaiting.is_some_and(|(_, n)| n < READS.len())
                && !(writer_ended && matches!(found, Found::Present(Content::NotPid(_))));
            let decision = decide::decide(&Input {
                foreign: !root.reachable(),
                found: &found,
                named,
                awaiting,
            });
            let path = t.rec.made.path.clone();
            let p = Esc::path(&path);
            let place = root.place();
            match decision {
                Decision::Released(what) => {
                    log::debug!("{p} was released ({what})");
                    self.untrack(&key);
                }
                Decision::Kept { why, reason, level } => {
                    say(level, "kept", &path, format_args!("kept {p}{place}: {why}"));
                    self.metrics.kept(reason);
                    self.untrack(&key);
                }
                Decision::Wait => {
                    let t = self.files.get_mut(&key).expect("tracked");
                    if let Some((_, n)) = t.awaiting {
                        t.awaiting = Some((Instant::now() + READS[n], n + 1));
                    }
                }
                Decision::Own(host) => {
                    let Found::Present(Content::Pid(written)) = found else {
                        unreachable!("owned only by a PID")
                    };
                    // the file names another process than the one that ended
                    if ended.is_some() && t.named.is_some() {
                        say(
                            Level::Info,
                            "kept",
                            &path,
                            format_args!(
                                "kept {p}{place}: it names live pid {written} ({}) now",
                                Esc(procfs::comm(host).as_bytes())
                            ),
                        );
                        self.metrics.kept(KeptReason::PidAlive);
                    } else {
                        log::debug!("{p}: names pid {written} (pid {host} here)");
                    }
                    let live = live.expect("a live process");
                    self.set_owner(key, live, Some(written), None, &mut next);
                }
                Decision::Remove { pid } => {
                    let (d, head, _) = at.expect("present");
                    let story = Self::story(t, pid, ended, ended_named);
                    targets.push(Target {
                        dir: d,
                        file: key.file(),
                        gen: Some(key.gen),
                        shape: Shape::Holding(head),
                        pid,
                        creator: Some(t.rec.made.creator.clone()),
                    });
                    cands.push((key, place, story, ended));
                }
            }
        }
        if targets.is_empty() {
            return next;
        }
        let outcomes = removal::remove_all(&targets, &ignore, self.cfg.dry_run);
        for ((key, place, story, ended), outcome) in cands.into_iter().zip(outcomes) {
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
                        format_args!("removed {p}{place}: {story}"),
                    );
                    self.metrics.removed_total.fetch_add(1, Relaxed);
                    self.untrack(&key);
                }
                Outcome::WouldRemove => {
                    say(
                        Level::Info,
                        "would_remove",
                        &path,
                        format_args!("would remove {p}{place}: {story} (dry run)"),
                    );
                    self.untrack(&key);
                }
                // rewritten between the read and the staging: read again
                Outcome::Kept(Keep::Replaced) => next.push((key, ended)),
                Outcome::Kept(keep) => {
                    let holder = keep.new_owner().and_then(Proc::live);
                    // handed to a live holder is not a final verdict
                    match &holder {
                        Some(h) => say(
                            Level::Info,
                            "handed",
                            &path,
                            format_args!(
                                "handed {p}{place} to pid {}: {keep}; judged again when it exits; {story}",
                                h.pid
                            ),
                        ),
                        None => say(
                            Level::Info,
                            "kept",
                            &path,
                            format_args!("kept {p}{place}: {keep}; {story}"),
                        ),
                    }
                    self.metrics.kept(match keep {
                        Keep::OpenBy(_) => KeptReason::Open,
                        Keep::LockedBy(_) => KeptReason::Locked,
                        _ => KeptReason::Other,
                    });
                    match (keep, holder) {
                        (_, Some(h)) => self.set_owner(key, h, None, Some(story), &mut next),
                        // opened by a process that just ended: look again,
                        // for the same reason
                        (Keep::OpenBy(p), None) => {
                            log::debug!("{p}: its holder pid {p2} is gone already", p2 = p);
                            next.push((key, ended))
                        }
                        // locked through a descriptor no live process shows
                        _ => self.untrack(&key),
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

    /// The file waits for `p` now: the process it names (`written`: as
    /// the file writes it), or a holder (`stale`: why it is stale).
    fn set_owner(
        &mut self,
        key: FileKey,
        p: Proc,
        written: Option<u32>,
        stale: Option<String>,
        next: &mut Vec<Look>,
    ) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        let old = t.owner.replace(p);
        t.awaiting = None;
        if let Some(w) = written {
            t.named = Some((w, p.pid));
        }
        if t.stale.is_none() {
            t.stale = stale;
        }
        t.owner_comm = p.comm_now().unwrap_or_default().into_bytes();
        if let Some(o) = old {
            self.owners.remove(key, o);
        }
        // ended before it could be watched: it is the one that ended
        if self.owners.add(key, p) == Added::Gone {
            next.push((key, Some(p)));
        }
    }
}
