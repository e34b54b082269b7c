//! The PID-file duty of the cleanup worker: opens to write in, verdicts
//! out. A file the kernel saw opened to be (re)written is read once the
//! write is done — at sys_exit of the open nothing is written yet: read
//! when the event arrives, and again a few times while it is empty or
//! partial, and when its writer exits. Then it is the file of the process
//! it names, watched with a pidfd; when that one exits (or the file is
//! found naming a dead or reused PID), the facts are gathered where the
//! writer lives, decided (decide.rs), and checks 2-3 and the atomic
//! removal (files::removal) run over the batch. One log line per decision.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;

use crate::agent::class::Wake;
use crate::files::dir::{self, LockDir};
use crate::files::made::FileKey;
use crate::files::names::{Names, Standing};
use crate::files::owners::{Added, Owners, Proc};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::root::Root;
use crate::files::verdict::{self, Keep, PidInFile};
use crate::host::escape::Esc;
use crate::host::pidwatch::ExitWait;
use crate::host::procfs::{self, NsPid};
use crate::pidfiles::content::{self, Content};
use crate::pidfiles::decide::{self, Decision, Found, Input, Named};
use crate::pidfiles::kernel::{PidfEvent, PidfKernel, Record, PIDF_F_TABLE_FULL};
use crate::pidfiles::metrics::{KeptReason, PidfMetrics};

pub struct PidfConfig {
    pub dry_run: bool,
    pub names: Names,
}

/// While the content is awaited, the file is read again this long after
/// each read (from the event on); then it is judged as it is.
const READS: [Duration; 6] = [
    Duration::from_millis(20),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(30),
];
const MAX_ROUNDS: usize = 5;

struct Tracked {
    rec: Record,
    /// Whose exit the file waits for: its writer while the content is
    /// awaited, then the process it names, then a holder.
    owner: Option<Proc>,
    owner_comm: Vec<u8>,
    /// Content awaited: when to read next, and reads done.
    awaiting: Option<(Instant, usize)>,
    /// The PID it names, as written and as the host numbers it.
    named: Option<(u32, u32)>,
    /// Kept for a live holder: what made it stale first.
    stale: Option<String>,
}

/// A tracked PID file, for `eghostbuster status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PidfStatus {
    /// Escaped (host::escape).
    pub path: String,
    /// The PID in the file, as written (0: not read yet).
    pub named_pid: u32,
    pub owner_pid: u32,
    pub owner_comm: String,
    pub owner_alive: bool,
    pub state: String,
}

pub struct PidfWork<K: PidfKernel> {
    cfg: PidfConfig,
    kernel: K,
    files: HashMap<FileKey, Tracked>,
    owners: Owners<FileKey>,
    wait: Option<ExitWait>,
    own_pid: u32,
    own_mnt_ns: u64,
    own_pid_ns: u64,
    last_counters: (u64, u64),
    metrics: Arc<PidfMetrics>,
}

/// One decision's log line: the message, and its fields (key-value).
fn say(level: Level, event: &'static str, path: &Path, text: std::fmt::Arguments<'_>) {
    log::log!(level, class = "pid_files", event = event, path:% = Esc::path(path); "{text}");
}

/// A file that is there: its directory, its content, its mtime (ns).
type At = (LockDir, Vec<u8>, i128);

/// A file looked at, and why: its owner ended (which one), or not.
type Look = (FileKey, Option<Proc>);

impl<K: PidfKernel> PidfWork<K> {
    pub fn new(cfg: PidfConfig, kernel: K, metrics: Arc<PidfMetrics>) -> std::io::Result<Self> {
        let (owners, wait) = Owners::new()?;
        Ok(PidfWork {
            cfg,
            kernel,
            files: HashMap::new(),
            owners,
            wait: Some(wait),
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            own_pid_ns: procfs::own_ns("pid")?,
            last_counters: (0, 0),
            metrics,
        })
    }

    /// The thread that hears the owners' exits (once).
    pub fn wake(&mut self) -> Option<Wake> {
        let wait = self.wait.take()?;
        Some(Box::new(move |send, stop| {
            wait.run(&|token| send(Box::new(PidfEvent::Exited(token))), stop)
                .map_err(|e| anyhow::anyhow!("waiting for PID-file owners' exits: {e}"))
        }))
    }

    /// Take over what the kernel recorded before this agent started: each
    /// file is read now, as if just written.
    pub fn adopt(&mut self) {
        let records = self.kernel.records();
        if records.is_empty() {
            return;
        }
        let mut looks = Vec::new();
        for (key, rec) in records {
            looks.extend(self.track(key, rec));
        }
        log::info!(
            "adopted {} tracked PID file(s) recorded while no agent ran",
            self.files.len()
        );
        self.look(looks);
    }

    pub fn handle(&mut self, events: Vec<PidfEvent>) {
        let mut looks = Vec::new();
        for ev in events {
            match ev {
                PidfEvent::Written { tgid, flags, key } => {
                    if flags & PIDF_F_TABLE_FULL != 0 {
                        log::debug!(
                            "a PID file written by pid {tgid} was not recorded: table full"
                        );
                        continue;
                    }
                    if let Some(rec) = self.kernel.record(key) {
                        looks.extend(self.track(key, rec));
                    }
                }
                PidfEvent::Exited(token) => {
                    if let Some((p, keys)) = self.owners.exited(token) {
                        self.refresh_comm(p, &keys);
                        looks.extend(
                            keys.into_iter()
                                .filter(|k| self.files.get(k).is_some_and(|t| t.owner == Some(p)))
                                .map(|k| (k, Some(p))),
                        );
                    }
                }
            }
        }
        self.look(looks);
        self.gauge();
    }

    /// The command an ended owner last ran (it may have exec'd since it
    /// was first watched), for the log lines.
    fn refresh_comm(&mut self, p: Proc, keys: &[FileKey]) {
        if let Some(comm) = p.comm_now() {
            for k in keys {
                if let Some(t) = self.files.get_mut(k).filter(|t| t.owner == Some(p)) {
                    t.owner_comm = comm.clone().into_bytes();
                }
            }
        }
    }

    fn gauge(&self) {
        self.metrics.tracked.store(self.files.len() as u64, Relaxed);
    }

    /// Track one record (a new file, or a rewrite of a tracked one), or
    /// forget it when it is none of our business. The file is read now.
    fn track(&mut self, key: FileKey, rec: Record) -> Option<Look> {
        let path = &rec.made.path;
        if rec.made.path_unusable {
            log::debug!(
                "ignoring a PID file written by pid {}: its path could not be walked ({})",
                rec.made.tgid,
                Esc::path(path)
            );
            self.kernel.forget(key);
            return None;
        }
        match self.cfg.names.classify(path) {
            Standing::Candidate => {}
            Standing::Excluded => {
                log::debug!("not tracking {}: excluded", Esc::path(path));
                self.kernel.forget(key);
                return None;
            }
            Standing::OtherName | Standing::OutOfScope => {
                self.kernel.forget(key);
                return None;
            }
        }
        if let Some(old) = self.files.remove(&key) {
            if let Some(o) = old.owner {
                self.owners.remove(key, o);
            }
        } else {
            self.metrics.tracked_total.fetch_add(1, Relaxed);
        }
        let writer = rec.made.proc();
        log::debug!(
            "tracking {} (written by pid {} {})",
            Esc::path(path),
            writer.pid,
            Esc(&rec.made.comm)
        );
        let owner = (self.owners.add(key, writer) != Added::Gone).then_some(writer);
        let comm = rec.made.comm.clone();
        self.files.insert(
            key,
            Tracked {
                rec,
                owner,
                owner_comm: comm,
                awaiting: Some((Instant::now(), 0)),
                named: None,
                stale: None,
            },
        );
        Some((key, None))
    }

    /// When the next awaited read is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.files
            .values()
            .filter_map(|t| t.awaiting.map(|(at, _)| at))
            .min()
    }

    /// Awaited reads that are due.
    pub fn on_deadline(&mut self) {
        let now = Instant::now();
        let due: Vec<Look> = self
            .files
            .iter()
            .filter(|(_, t)| t.awaiting.is_some_and(|(at, _)| at <= now))
            .map(|(k, _)| (*k, None))
            .collect();
        self.look(due);
        self.gauge();
    }

    /// Once a second: kernel counters, polled owners.
    pub fn tick(&mut self) {
        if let Some((_, drops, full)) = self.kernel.counters() {
            let (d0, f0) = self.last_counters;
            if drops > d0 {
                log::warn!(
                    "{} PID-file events lost (ring buffer full); {drops} in all",
                    drops - d0
                );
            }
            if full > f0 {
                log::warn!(
                    "{} PID files not recorded (the kernel's table is full); {full} in all",
                    full - f0
                );
            }
            self.last_counters = (drops, full);
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_table_full.store(full, Relaxed);
        }
        // what each owner runs now (an exec changes it), for the log line
        // of its end: a reaped process can no longer be asked
        for t in self.files.values_mut() {
            if let Some(c) = t.owner.and_then(|o| o.comm_now()) {
                t.owner_comm = c.into_bytes();
            }
        }
        let mut looks = Vec::new();
        for (p, keys) in self.owners.poll() {
            self.refresh_comm(p, &keys);
            looks.extend(
                keys.into_iter()
                    .filter(|k| self.files.get(k).is_some_and(|t| t.owner == Some(p)))
                    .map(|k| (k, Some(p))),
            );
        }
        self.look(looks);
        self.gauge();
    }

    fn untrack(&mut self, key: &FileKey) {
        if let Some(t) = self.files.remove(key) {
            if let Some(o) = t.owner {
                self.owners.remove(*key, o);
            }
        }
        self.kernel.forget(*key);
    }

    fn look(&mut self, mut looks: Vec<Look>) {
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
    /// writer's PID namespace); and whether that is `ended`, the process
    /// that just exited (dead, even if /proc still shows it on its way out).
    fn interpret(
        &self,
        p: u32,
        rec: &Record,
        ended: Option<Proc>,
        mtime_ns: i128,
    ) -> (Named, bool) {
        let host = if rec.made.pid_ns == self.own_pid_ns {
            p
        } else {
            match procfs::host_pid(p, rec.made.pid_ns) {
                NsPid::Host(h) => h,
                NsPid::Dead => return (Named::Dead, false),
                NsPid::Unknown => return (Named::Unknown, false),
            }
        };
        if ended.is_some_and(|e| e.pid == host) {
            return (Named::Dead, true);
        }
        let Some(live) = Proc::live(host) else {
            return (Named::Dead, false);
        };
        if verdict::started_after(procfs::start_wall_ns(live.start_ticks), mtime_ns) {
            (Named::Reused(live.pid), false)
        } else {
            (Named::Alive(live.pid), false)
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
            let (named, ended_named) = match (&found, &at) {
                (Found::Present(Content::Pid(p)), Some((_, _, mtime))) => {
                    let (n, e) = self.interpret(*p, &t.rec, ended, *mtime);
                    (Some(n), e)
                }
                _ => (None, false),
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
                    self.set_owner(key, host, Some(written), None, &mut next);
                }
                Decision::Remove { pid } => {
                    let (d, head, _) = at.expect("present");
                    let story = Self::story(t, pid, ended, ended_named);
                    targets.push(Target {
                        dir: d,
                        file: key.file(),
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
                    match (keep, holder) {
                        (_, Some(h)) => self.set_owner(key, h.pid, None, Some(story), &mut next),
                        // opened by a process that just ended: look again
                        (Keep::OpenBy(_), None) => next.push((key, None)),
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

    /// The file waits for `pid` now: the process it names (`written`: as
    /// the file writes it), or a holder (`stale`: why it is stale).
    fn set_owner(
        &mut self,
        key: FileKey,
        pid: u32,
        written: Option<u32>,
        stale: Option<String>,
        next: &mut Vec<Look>,
    ) {
        let Some(t) = self.files.get_mut(&key) else {
            return;
        };
        let old = t.owner.take();
        t.awaiting = None;
        if let Some(w) = written {
            t.named = Some((w, pid));
        }
        if t.stale.is_none() {
            t.stale = stale;
        }
        if let Some(o) = old {
            self.owners.remove(key, o);
        }
        let Some(p) = Proc::live(pid) else {
            next.push((key, None)); // gone meanwhile: look again
            return;
        };
        let t = self.files.get_mut(&key).expect("tracked");
        t.owner = Some(p);
        t.owner_comm = procfs::comm(p.pid).into_bytes();
        if self.owners.add(key, p) == Added::Gone {
            next.push((key, Some(p)));
        }
    }

    pub fn status(&self) -> Vec<PidfStatus> {
        let mut v: Vec<PidfStatus> = self
            .files
            .values()
            .map(|t| PidfStatus {
                path: Esc::path(&t.rec.made.path).to_string(),
                named_pid: t.named.map_or(0, |(w, _)| w),
                owner_pid: t.owner.map_or(0, |o| o.pid),
                owner_comm: Esc(&t.owner_comm).to_string(),
                owner_alive: t.owner.is_some_and(|o| o.alive()),
                state: match (&t.awaiting, &t.stale) {
                    (Some(_), _) => "written; its PID not read yet",
                    (None, Some(_)) => "stale, kept for a live holder",
                    (None, None) => "names a live process",
                }
                .into(),
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path));
        v
    }

    /// Debug figures on the way out.
    pub fn watched(&self) -> usize {
        self.owners.len()
    }
}
