//! The socket-file duty of the cleanup worker: binds in, verdicts out. It
//! keeps the files the kernel recorded (in scope, not excluded), waits
//! for each one's owner — its binder, then whoever holds the socket still
//! bound to it — to exit (a pidfd), then gathers the facts where the
//! binder lives, asks the kernel which sockets are bound (diag), decides
//! (decide.rs), and runs checks 2-3 and the atomic removal
//! (files::removal) over the batch; one log line per decision.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::Level;

use crate::agent::class::Wake;
use crate::files::dir;
use crate::files::made::FileKey;
use crate::files::names::{Names, Standing};
use crate::files::owners::{Added, Owners, Proc};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::root::Root;
use crate::files::verdict::{Keep, PidInFile};
use crate::host::escape::Esc;
use crate::host::pidwatch::ExitWait;
use crate::host::{netns, procfs};
use crate::unix_sockets::decide::{self, BoundBy, Decision, Found, Input};
use crate::unix_sockets::diag::{Bound, Vfs};
use crate::unix_sockets::kernel::{Record, UxsEvent, UxsKernel, UXS_F_TABLE_FULL};
use crate::unix_sockets::metrics::{KeptReason, UxsMetrics};

pub struct UxsConfig {
    pub dry_run: bool,
    pub names: Names,
}

/// How the duty learns which sockets are bound to which files
/// (diag::bound_everywhere; a fake in tests).
pub type Probe = fn(&HashSet<Vfs>) -> Result<Bound, String>;

/// Looks again at a file bound by a socket nobody holds, this long after.
const RETRIES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(30),
];
const MAX_ROUNDS: usize = 5;

struct Tracked {
    rec: Record,
    /// Whose exit the file waits for: the binder, then a holder.
    owner: Proc,
    owner_comm: Vec<u8>,
    /// Kept for a live holder: what made it stale first.
    stale: Option<String>,
    retries: usize,
    retry_at: Option<Instant>,
}

/// A tracked socket file, for `eghostbuster status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UxsStatus {
    /// Escaped (host::escape).
    pub path: String,
    pub owner_pid: u32,
    pub owner_comm: String,
    pub owner_alive: bool,
    pub state: String,
}

pub struct UxsWork<K: UxsKernel> {
    cfg: UxsConfig,
    kernel: K,
    files: HashMap<FileKey, Tracked>,
    owners: Owners<FileKey>,
    wait: Option<ExitWait>,
    probe: Probe,
    own_pid: u32,
    own_mnt_ns: u64,
    last_counters: (u64, u64, u64),
    metrics: Arc<UxsMetrics>,
}

/// One decision's log line: the message, and its fields (key-value).
fn say(level: Level, event: &'static str, path: &Path, text: std::fmt::Arguments<'_>) {
    log::log!(level, class = "unix_sockets", event = event, path:% = Esc::path(path); "{text}");
}

impl<K: UxsKernel> UxsWork<K> {
    pub fn new(
        cfg: UxsConfig,
        kernel: K,
        probe: Probe,
        metrics: Arc<UxsMetrics>,
    ) -> std::io::Result<Self> {
        let (owners, wait) = Owners::new()?;
        Ok(UxsWork {
            cfg,
            kernel,
            files: HashMap::new(),
            owners,
            wait: Some(wait),
            probe,
            own_pid: std::process::id(),
            own_mnt_ns: procfs::own_ns("mnt")?,
            last_counters: (0, 0, 0),
            metrics,
        })
    }

    /// The thread that hears the owners' exits (once).
    pub fn wake(&mut self) -> Option<Wake> {
        let wait = self.wait.take()?;
        Some(Box::new(move |send, stop| {
            wait.run(&|token| send(Box::new(UxsEvent::Exited(token))), stop)
                .map_err(|e| anyhow::anyhow!("waiting for binders' exits: {e}"))
        }))
    }

    /// Take over what the kernel recorded before this agent started (a
    /// previous instance's pinned table): binders that ended meanwhile are
    /// judged at once.
    pub fn adopt(&mut self) {
        let records = self.kernel.records();
        if records.is_empty() {
            return;
        }
        let mut work = Vec::new();
        for (key, rec) in records {
            work.extend(self.track(key, rec));
        }
        log::info!(
            "adopted {} tracked socket file(s) recorded while no agent ran",
            self.files.len()
        );
        self.judge(work);
    }

    pub fn handle(&mut self, events: Vec<UxsEvent>) {
        let mut work = Vec::new();
        for ev in events {
            match ev {
                UxsEvent::Bound { tgid, flags, key } => {
                    if flags & UXS_F_TABLE_FULL != 0 {
                        log::debug!(
                            "a socket file bound by pid {tgid} was not recorded: table full"
                        );
                        continue;
                    }
                    if let Some(rec) = self.kernel.record(key) {
                        work.extend(self.track(key, rec));
                    }
                }
                UxsEvent::Exited(token) => {
                    if let Some((p, keys)) = self.owners.exited(token) {
                        self.refresh_comm(p, &keys);
                        work.extend(
                            keys.into_iter()
                                .filter(|k| self.files.get(k).is_some_and(|t| t.owner == p)),
                        );
                    }
                }
            }
        }
        self.judge(work);
        self.gauge();
    }

    /// The command an ended owner last ran (it may have exec'd since it
    /// was first watched), for the log lines.
    fn refresh_comm(&mut self, p: Proc, keys: &[FileKey]) {
        if let Some(comm) = p.comm_now() {
            for k in keys {
                if let Some(t) = self.files.get_mut(k).filter(|t| t.owner == p) {
                    t.owner_comm = comm.clone().into_bytes();
                }
            }
        }
    }

    fn gauge(&self) {
        self.metrics.tracked.store(self.files.len() as u64, Relaxed);
    }

    /// Track one record, or forget it when it is none of our business.
    /// Returns the key when its binder has ended already.
    fn track(&mut self, key: FileKey, rec: Record) -> Option<FileKey> {
        let path = &rec.made.path;
        if rec.made.path_unusable {
            log::debug!(
                "ignoring a socket file bound by pid {}: its path could not be walked ({})",
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
            self.owners.remove(key, old.owner);
        }
        let owner = rec.made.proc();
        log::debug!(
            "tracking {} (bound by pid {} {})",
            Esc::path(path),
            owner.pid,
            Esc(&rec.made.comm)
        );
        let comm = rec.made.comm.clone();
        self.files.insert(
            key,
            Tracked {
                rec,
                owner,
                owner_comm: comm,
                stale: None,
                retries: 0,
                retry_at: None,
            },
        );
        self.metrics.tracked_total.fetch_add(1, Relaxed);
        (self.owners.add(key, owner) == Added::Gone).then_some(key)
    }

    /// Once a second: kernel counters, polled owners, files due for
    /// another look.
    pub fn tick(&mut self) {
        if let Some((_, drops, full)) = self.kernel.counters() {
            let (_, d0, f0) = self.last_counters;
            if drops > d0 {
                log::warn!(
                    "{} socket-file events lost (ring buffer full); {drops} in all",
                    drops - d0
                );
            }
            if full > f0 {
                log::warn!(
                    "{} socket files not recorded (the kernel's table is full); {full} in all",
                    full - f0
                );
            }
            self.last_counters = (0, drops, full);
            self.metrics.kernel_events_dropped.store(drops, Relaxed);
            self.metrics.kernel_table_full.store(full, Relaxed);
        }
        // what each owner runs now (an exec changes it), for the log line
        // of its end: a reaped process can no longer be asked
        for t in self.files.values_mut() {
            if let Some(c) = t.owner.comm_now() {
                t.owner_comm = c.into_bytes();
            }
        }
        let mut work = Vec::new();
        for (p, keys) in self.owners.poll() {
            self.refresh_comm(p, &keys);
            work.extend(
                keys.into_iter()
                    .filter(|k| self.files.get(k).is_some_and(|t| t.owner == p)),
            );
        }
        let now = Instant::now();
        for (k, t) in &mut self.files {
            if t.retry_at.is_some_and(|at| at <= now) {
                t.retry_at = None;
                work.push(*k);
            }
        }
        self.judge(work);
        self.gauge();
    }

    fn untrack(&mut self, key: &FileKey) {
        if let Some(t) = self.files.remove(key) {
            self.owners.remove(*key, t.owner);
        }
        self.kernel.forget(*key);
    }

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

    fn judge(&mut self, mut work: Vec<FileKey>) {
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
                    say(
                        Level::Info,
                        "kept",
                        &path,
                        format_args!("kept {}{}: {why}; {story}", Esc::path(&path), root.place()),
                    );
                    self.metrics.kept(KeptReason::Bound);
                    self.hand_to(key, pid, story, &mut next);
                }
                Decision::Remove => {
                    let d = d.expect("present");
                    targets.push(Target {
                        dir: d,
                        file: key.file(),
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

    pub fn status(&self) -> Vec<UxsStatus> {
        let mut v: Vec<UxsStatus> = self
            .files
            .values()
            .map(|t| UxsStatus {
                path: Esc::path(&t.rec.made.path).to_string(),
                owner_pid: t.owner.pid,
                owner_comm: Esc(&t.owner_comm).to_string(),
                owner_alive: t.owner.alive(),
                state: match (&t.stale, t.retry_at) {
                    (_, Some(_)) => "bound by a socket nobody holds; looking again",
                    (Some(_), None) => "stale, kept bound by a live process",
                    (None, None) => "bound",
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
