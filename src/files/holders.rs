//! Who holds a candidate file: check 2 (open or mapped by a live process)
//! and what no process shows (a descriptor in flight), for every
//! filesystem ghost class. Two backends behind one trait, chosen once at
//! start:
//!
//! - **BPF iterators** (bpf/holders.bpf.c). The agent opens each candidate
//!   with O_PATH (its probe) and reads, through an iterator over its own
//!   descriptors, the kernel's count of references on the file's dentries.
//!   When the agent's own files explain every one, nothing holds the file
//!   and nothing else is walked: the common case costs the same on a host
//!   with a million descriptors as on an idle one. Otherwise one pass of
//!   `iter/task`, `iter/task_file` and `iter/task_vma` over every task (every
//!   namespace) names the holders; references left unexplained after that
//!   (a descriptor in flight over SCM_RIGHTS, an io_uring registered file)
//!   keep the file.
//! - **The /proc walk** (host::procfs::open_holders), where iterators do not
//!   load (or with `--force-holders-fallback`). It cannot see references
//!   outside processes; for a regular file, a write lease (granted only when
//!   no other struct file has the inode open for reading or writing, in a
//!   process or in flight) stands in for the reference count. A directory
//!   or symlink, where no lease can be taken, is kept: unknown means keep.
//!
//! The decisions are pure (`decide`, `lease_verdict`) and unit-tested; the
//! backends only gather.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::files::verdict::Unexplained;
use crate::host::procfs::{self, FileId};

mod bpf {
    include!(concat!(env!("OUT_DIR"), "/holders.skel.rs"));
}

use bpf::types::{holder_flags, holder_rec, holder_rec_kind, holders_limits};

// SAFETY: generated from bpf/holders.h: plain integers, #[repr(C)], valid
// for any bit pattern.
unsafe impl plain::Plain for holder_rec {}

/// Candidates one check takes (bpf/holders.h HOLDERS_MAX_CANDIDATES).
pub const MAX_CANDIDATES: usize = holders_limits::HOLDERS_MAX_CANDIDATES.0 as usize;

/// One file to check: its identity, and the agent's O_PATH descriptor on
/// it (opened without following symlinks; it pins the inode).
pub struct Candidate<'a> {
    pub id: FileId,
    pub probe: BorrowedFd<'a>,
}

/// The answer for one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Nothing references it but the agent (and the ignored processes).
    Free,
    /// A live process has it open or mapped (the lowest such tgid).
    By(u32),
    /// Referenced by something no process shows, or cannot be told: kept.
    Unexplained(Unexplained),
}

/// A holder-check backend.
pub trait HolderScan: Send {
    /// For the status file and the `ready` line.
    fn name(&self) -> String;
    /// One answer per candidate, in order. Processes in `ignore` (this
    /// agent, owners known to be exiting) hold nothing.
    fn check(&mut self, cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held>;
}

/// The backend for this host: the iterators when they load and run, the
/// /proc walk otherwise (or when forced).
pub fn start(force_proc: bool) -> Box<dyn HolderScan> {
    if force_proc {
        return Box::new(ProcHolders::new("forced by --force-holders-fallback"));
    }
    match IterHolders::load() {
        Ok(h) => Box::new(h),
        Err(e) => {
            log::warn!("holder checks: BPF iterators unavailable ({e:#}); using the /proc walk");
            Box::new(ProcHolders::new("BPF iterators unavailable"))
        }
    }
}

/// The backend this process uses, chosen once (`init`) by `run` and
/// `sweep`; every class's removals go through it (one set of iterators
/// loaded, not one per class).
static BACKEND: std::sync::Mutex<Option<Box<dyn HolderScan>>> = std::sync::Mutex::new(None);

/// Choose the backend (iterators, or the /proc walk when they do not load
/// or `force_proc`); its name, for the status file and the `ready` line.
pub fn init(force_proc: bool) -> String {
    let b = start(force_proc);
    let name = b.name();
    *BACKEND.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
    name
}

/// One check with the chosen backend (the default one when none was
/// chosen: unit tests).
pub fn check(cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held> {
    let mut g = BACKEND.lock().unwrap_or_else(|e| e.into_inner());
    g.get_or_insert_with(|| start(false)).check(cands, ignore)
}

/// Before the first check of a batch: wait (up to `budget`) for the ignored
/// processes still on their way out to finish; their descriptors close
/// only after the exit event that made us look. Both backends would take
/// what they still hold for someone else's reference.
pub fn settle(ignore: &[u32], budget: Duration) {
    let me = std::process::id();
    let end = Instant::now() + budget;
    for &pid in ignore {
        if pid == me || !exiting(pid) {
            continue;
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
        if fd < 0 {
            continue; // reaped meanwhile
        }
        // SAFETY: a fresh descriptor from pidfd_open.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let left = end.saturating_duration_since(Instant::now());
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // readable once the whole thread group has exited (exit_notify:
        // after its files, mappings and pending fputs are gone)
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
    }
}

/// Is the process on its way out (PF_EXITING, not yet a zombie)?
fn exiting(pid: u32) -> bool {
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat_exiting(&stat)
}

/// From /proc/PID/stat: the state (field 3) and flags (field 9), after the
/// command name, which may hold any bytes.
fn stat_exiting(stat: &[u8]) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Some(close) = stat.iter().rposition(|&b| b == b')') else {
        return false;
    };
    let mut f = stat[close + 1..]
        .split(|b| b.is_ascii_whitespace())
        .filter(|s| !s.is_empty());
    let state = f.next().unwrap_or(b"?");
    let flags = f
        .nth(5)
        .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    !matches!(state, b"Z" | b"X" | b"x") && flags & PF_EXITING != 0
}

/// Waits between re-checks of references no process explains: a path walk
/// in progress elsewhere, a close whose final fput is still queued, pass in
/// microseconds to a few ms (delayed_fput runs on the next jiffy).
const RETRIES: [Duration; 3] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(20),
];

/// What the iterators said about one candidate.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// From the probe: references on the inode's dentries, children of a
    /// directory, and whether either count was cut short.
    pub refs: Option<i64>,
    pub children: i64,
    /// Dentries of the inode, and whether its filesystem holds one
    /// reference on each of its own (tmpfs: the dcache is its storage).
    pub aliases: i64,
    pub pinned: bool,
    pub truncated: bool,
    pub inode: u64,
    /// The agent's own struct files on the inode (its probe among them).
    pub own: HashSet<u64>,
    /// Tasks with it open or mapped: (tgid, exiting, struct file).
    pub hits: Vec<(u32, bool, u64)>,
    /// Working directories and roots on it: (fs_struct, cwd or root).
    pub fs: HashSet<(u64, u32)>,
}

/// Filesystems whose every linked dentry holds a reference of the
/// filesystem's own (shmem_mknod, ramfs_mknod, hugetlbfs_mknod: "pin the
/// dentry in core"; simple_unlink drops it). Any other that does so shows
/// that reference as unexplained: such files are kept, never removed.
fn pins_its_dentries(magic: u64) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
    matches!(magic, TMPFS_MAGIC | RAMFS_MAGIC | HUGETLBFS_MAGIC)
}

/// The pure decision for one candidate: a holder, or are the kernel's
/// references all explained by files the agent knows to hold nothing?
pub fn decide(t: &Tally, ignore: &[u32]) -> Held {
    let Some(refs) = t.refs else {
        return Held::Unexplained(Unexplained::CannotTell("its probe was not seen"));
    };
    if t.truncated {
        return Held::Unexplained(Unexplained::CannotTell(
            "more names or entries than the check counts",
        ));
    }
    if let Some(pid) = t
        .hits
        .iter()
        .filter(|(tgid, _, _)| !ignore.contains(tgid))
        .map(|&(tgid, _, _)| tgid)
        .min()
    {
        return Held::By(pid);
    }
    // what the agent and ignored processes hold that will not outlive
    // them: their struct files, once each
    let mut files: HashSet<u64> = t.own.clone();
    let mut exiting = None;
    for &(tgid, is_exiting, file) in &t.hits {
        if is_exiting {
            exiting = Some(tgid);
        } else {
            files.insert(file);
        }
    }
    let pins = if t.pinned { t.aliases } else { 0 };
    let explained = files.len() as i64 + t.fs.len() as i64 + t.children + pins;
    match (refs - explained, exiting) {
        (left, _) if left <= 0 => Held::Free,
        (_, Some(pid)) => Held::Unexplained(Unexplained::Exiting(pid)),
        (left, None) => Held::Unexplained(Unexplained::Refs(left as u32)),
    }
}

/// The BPF iterators, loaded once; links kept, the skeleton dropped.
pub struct IterHolders {
    probes: MapHandle,
    cands: MapHandle,
    /// iter/task_file over the agent's own descriptors.
    link_self: OwnedFd,
    link_files: OwnedFd,
    link_maps: OwnedFd,
    link_fs: OwnedFd,
    /// The kernel restricted `link_self` to this process (6.1+).
    self_only: bool,
    me: u32,
    buf: Vec<u8>,
    /// Keys put in the maps by the last check, deleted by the next.
    probe_keys: Vec<u32>,
    cand_keys: Vec<u64>,
}

fn iter_link(prog: BorrowedFd<'_>, pid: Option<u32>) -> io::Result<OwnedFd> {
    let mut info = libbpf_rs::libbpf_sys::bpf_iter_link_info::default();
    let mut opts = libbpf_rs::libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_link_create_opts>() as _,
        ..Default::default()
    };
    if let Some(pid) = pid {
        info.task.pid = pid;
        opts.iter_info = &mut info;
        opts.iter_info_len = std::mem::size_of_val(&info) as u32;
    }
    // SAFETY: a program fd, and opts that live across the call.
    let fd = unsafe {
        libbpf_rs::libbpf_sys::bpf_link_create(
            prog.as_raw_fd(),
            0,
            libbpf_rs::libbpf_sys::BPF_TRACE_ITER,
            &opts,
        )
    };
    if fd < 0 {
        return Err(io::Error::from_raw_os_error(-fd));
    }
    // SAFETY: a fresh link descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl IterHolders {
    /// Load and attach the iterators (task_file 5.8, task_vma 5.12; the
    /// per-process filter 6.1), and run the self check once: a kernel that
    /// loads them but returns nothing is no use.
    pub fn load() -> Result<Self> {
        let me = std::process::id();
        let mut storage = MaybeUninit::uninit();
        let mut open = bpf::HoldersSkelBuilder::default()
            .open(&mut storage)
            .context("opening the holder BPF object")?;
        open.maps
            .rodata_data
            .as_deref_mut()
            .context("holder BPF object has no .rodata")?
            .agent_tgid = me;
        let skel = open.load().context("loading the holder iterators")?;
        let p = &skel.progs;
        let (link_self, self_only) = match iter_link(p.holders_self.as_fd(), Some(me)) {
            Ok(l) => (l, true),
            // before 6.1 the kernel refuses task parameters: walk every
            // task, and let the program keep only ours
            Err(_) => (
                iter_link(p.holders_self.as_fd(), None).context("attaching holders_self")?,
                false,
            ),
        };
        let mut h = IterHolders {
            probes: MapHandle::try_from(&skel.maps.probes).context("probes map")?,
            cands: MapHandle::try_from(&skel.maps.cands).context("cands map")?,
            link_self,
            link_files: iter_link(p.holders_files.as_fd(), None).context("holders_files")?,
            link_maps: iter_link(p.holders_maps.as_fd(), None).context("holders_maps")?,
            link_fs: iter_link(p.holders_fs.as_fd(), None).context("holders_fs")?,
            self_only,
            me,
            buf: Vec::with_capacity(64 * 1024),
            probe_keys: Vec::new(),
            cand_keys: Vec::new(),
        };
        let own = h.run(IterKind::SelfFiles)?;
        if !own.iter().any(|r| r.tgid == me) {
            anyhow::bail!("the self iterator saw none of this process's descriptors");
        }
        Ok(h)
    }

    fn run(&mut self, which: IterKind) -> io::Result<Vec<holder_rec>> {
        let link = match which {
            IterKind::SelfFiles => &self.link_self,
            IterKind::Files => &self.link_files,
            IterKind::Maps => &self.link_maps,
            IterKind::Fs => &self.link_fs,
        };
        // SAFETY: a link descriptor; returns a new fd or -errno.
        let fd = unsafe { libbpf_rs::libbpf_sys::bpf_iter_create(link.as_raw_fd()) };
        if fd < 0 {
            return Err(io::Error::from_raw_os_error(-fd));
        }
        // SAFETY: a fresh iterator descriptor.
        let mut f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        self.buf.clear();
        f.read_to_end(&mut self.buf)?;
        let size = std::mem::size_of::<holder_rec>();
        Ok(self
            .buf
            .chunks_exact(size)
            .map(|c| {
                let mut r = holder_rec::default();
                let _ = plain::copy_from_bytes(&mut r, c);
                r
            })
            .collect())
    }

    fn set_probes(&mut self, cands: &[Candidate<'_>]) {
        for k in self.probe_keys.drain(..) {
            let _ = self.probes.delete(&k.to_ne_bytes());
        }
        for (i, c) in cands.iter().enumerate() {
            let fd = c.probe.as_raw_fd() as u32;
            if self
                .probes
                .update(&fd.to_ne_bytes(), &(i as u32).to_ne_bytes(), MapFlags::ANY)
                .is_ok()
            {
                self.probe_keys.push(fd);
            }
        }
    }

    fn set_cands(&mut self, inodes: &[(u64, usize)]) {
        for k in self.cand_keys.drain(..) {
            let _ = self.cands.delete(&k.to_ne_bytes());
        }
        for &(inode, i) in inodes {
            if self
                .cands
                .update(
                    &inode.to_ne_bytes(),
                    &(i as u32).to_ne_bytes(),
                    MapFlags::ANY,
                )
                .is_ok()
            {
                self.cand_keys.push(inode);
            }
        }
    }

    /// The self pass: each candidate's references, and the agent's files.
    fn tally_self(&mut self, n: usize) -> io::Result<Vec<Tally>> {
        let recs = self.run(IterKind::SelfFiles)?;
        let mut t: Vec<Tally> = vec![Tally::default(); n];
        let mut own: HashMap<u64, HashSet<u64>> = HashMap::new();
        for r in recs.iter().filter(|r| r.tgid == self.me) {
            own.entry(r.inode).or_default().insert(r.ref_id);
            if r.kind == holder_rec_kind::HOLDER_REC_REFS.0 {
                if let Some(c) = t.get_mut(r.idx as usize) {
                    c.refs = Some(r.refs as i64);
                    c.children = r.children as i64;
                    c.aliases = r.aliases as i64;
                    c.pinned = pins_its_dentries(r.fs_magic);
                    c.inode = r.inode;
                    c.truncated = r.flags
                        & (holder_flags::HOLDER_F_ALIASES_TRUNCATED.0
                            | holder_flags::HOLDER_F_CHILDREN_TRUNCATED.0)
                        != 0;
                }
            }
        }
        for c in &mut t {
            if let Some(files) = own.get(&c.inode) {
                c.own = files.clone();
            }
        }
        Ok(t)
    }

    /// The full scan for candidates `which` (indices), then the self pass:
    /// references counted after every task was looked at, so a reference
    /// that moved while we looked is counted and not seen (kept), never
    /// seen and not counted.
    fn scan(&mut self, n: usize, which: &[usize], inodes: &[u64]) -> io::Result<Vec<Tally>> {
        let keys: Vec<(u64, usize)> = which.iter().map(|&i| (inodes[i], i)).collect();
        self.set_cands(&keys);
        let mut hits = Vec::new();
        for kind in [IterKind::Fs, IterKind::Files, IterKind::Maps] {
            hits.extend(self.run(kind)?);
        }
        let mut t = self.tally_self(n)?;
        let exiting = holder_flags::HOLDER_F_EXITING.0;
        for r in hits {
            let Some(c) = t.get_mut(r.idx as usize) else {
                continue;
            };
            if c.inode != r.inode {
                continue; // the probe now names another inode: not ours
            }
            let k = holder_rec_kind(r.kind);
            if k == holder_rec_kind::HOLDER_REC_CWD || k == holder_rec_kind::HOLDER_REC_ROOT {
                c.fs.insert((r.ref_id, r.kind));
            } else {
                c.hits.push((r.tgid, r.flags & exiting != 0, r.ref_id));
            }
        }
        Ok(t)
    }
}

#[derive(Clone, Copy)]
enum IterKind {
    SelfFiles,
    Files,
    Maps,
    Fs,
}

impl HolderScan for IterHolders {
    fn name(&self) -> String {
        if self.self_only {
            "bpf iterators (task_file, task_vma, task)".into()
        } else {
            "bpf iterators (task_file, task_vma, task; no per-process filter before Linux 6.1)"
                .into()
        }
    }

    fn check(&mut self, cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held> {
        let n = cands.len().min(MAX_CANDIDATES);
        let mut out = vec![
            Held::Unexplained(Unexplained::CannotTell(
                "more candidates than one check takes"
            ));
            cands.len()
        ];
        self.set_probes(&cands[..n]);
        let first = match self.tally_self(n) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("holder check failed: {e}");
                for o in out.iter_mut().take(n) {
                    *o = Held::Unexplained(Unexplained::CannotTell("the holder check failed"));
                }
                return out;
            }
        };
        let inodes: Vec<u64> = first.iter().map(|t| t.inode).collect();
        let mut pending = Vec::new();
        for (i, t) in first.iter().enumerate() {
            match decide(t, ignore) {
                Held::Unexplained(_) if t.refs.is_some() && !t.truncated => pending.push(i),
                d => out[i] = d,
            }
        }
        // someone else references these: who?
        let mut round = 0;
        while !pending.is_empty() {
            let tallies = match self.scan(n, &pending, &inodes) {
                Ok(t) => t,
                Err(e) => {
                    log::warn!("holder scan failed: {e}");
                    for &i in &pending {
                        out[i] =
                            Held::Unexplained(Unexplained::CannotTell("the holder scan failed"));
                    }
                    break;
                }
            };
            let mut again = Vec::new();
            let mut wait_for = Vec::new();
            for &i in &pending {
                let d = decide(&tallies[i], ignore);
                out[i] = d;
                match d {
                    Held::Unexplained(Unexplained::Exiting(p)) => {
                        wait_for.push(p);
                        again.push(i);
                    }
                    Held::Unexplained(Unexplained::Refs(_)) => again.push(i),
                    _ => {}
                }
            }
            let Some(&pause) = RETRIES.get(round) else {
                break;
            };
            round += 1;
            if !wait_for.is_empty() {
                settle(&wait_for, Duration::from_secs(1));
            } else if !again.is_empty() {
                std::thread::sleep(pause);
            }
            pending = again;
        }
        out
    }
}

/// The fallback: one /proc walk per check, and a write lease for files
/// nobody in /proc holds.
pub struct ProcHolders {
    why: &'static str,
}

impl ProcHolders {
    pub fn new(why: &'static str) -> Self {
        // A lease we hold for microseconds can still be broken by someone
        // opening the file: the kernel then sends us SIGIO, whose default
        // action would end the agent. We give the lease up at once anyway.
        // SAFETY: SIG_IGN for one signal; no handler runs.
        unsafe { libc::signal(libc::SIGIO, libc::SIG_IGN) };
        ProcHolders { why }
    }
}

/// What a write lease attempt says (fcntl F_SETLEASE F_WRLCK on a file the
/// agent opened read-only). Pure: the errno in, the answer out.
pub fn lease_verdict(result: Result<(), i32>) -> Held {
    match result {
        Ok(()) => Held::Free,
        // another struct file has it open for reading or writing
        Err(libc::EAGAIN) => Held::Unexplained(Unexplained::OpenElsewhere),
        Err(_) => Held::Unexplained(Unexplained::CannotTell("the filesystem refused a lease")),
    }
}

/// Try a write lease through the probe (reopened read-only through
/// /proc/self/fd, so the very file the probe pins), and give it up at once.
fn try_lease(probe: BorrowedFd<'_>) -> Result<(), i32> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{}", probe.as_raw_fd()))
        .expect("no NUL in a number");
    // SAFETY: a NUL-terminated path; flags only.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: a fresh descriptor.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: fcntl on our own descriptor.
    let r = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    if r < 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: as above; closing would drop it too.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    Ok(())
}

impl HolderScan for ProcHolders {
    fn name(&self) -> String {
        format!("/proc walk ({})", self.why)
    }

    fn check(&mut self, cands: &[Candidate<'_>], ignore: &[u32]) -> Vec<Held> {
        let ids: HashSet<FileId> = cands.iter().map(|c| c.id).collect();
        let open = procfs::open_holders(&ids, ignore);
        let mut out = Vec::with_capacity(cands.len());
        for c in cands {
            if let Some(&p) = open.get(&c.id) {
                out.push(Held::By(p));
                continue;
            }
            let regular = nix::sys::stat::fstat(c.probe.as_raw_fd())
                .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
            if !regular {
                out.push(Held::Unexplained(Unexplained::CannotTell(
                    "not a regular file: only the BPF iterators can see a directory or symlink in flight",
                )));
                continue;
            }
            let mut held = lease_verdict(try_lease(c.probe));
            for pause in RETRIES {
                if held != Held::Unexplained(Unexplained::OpenElsewhere) {
                    break;
                }
                std::thread::sleep(pause);
                held = lease_verdict(try_lease(c.probe));
            }
            out.push(held);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(refs: i64) -> Tally {
        Tally {
            refs: Some(refs),
            inode: 7,
            own: [1].into(), // the probe
            ..Default::default()
        }
    }

    #[test]
    fn only_the_probe_is_free() {
        assert_eq!(decide(&tally(1), &[]), Held::Free);
        // fewer than explained: a reference went away meanwhile
        assert_eq!(decide(&tally(0), &[]), Held::Free);
    }

    #[test]
    fn a_live_process_holds_it_lowest_pid_first() {
        let mut t = tally(3);
        t.hits = vec![(900, false, 10), (40, false, 11), (7, false, 12)];
        assert_eq!(decide(&t, &[7]), Held::By(40));
        // a mapping of an fd's file is the same struct file: one holder
        t.hits = vec![(50, false, 10), (50, false, 10)];
        assert_eq!(decide(&t, &[]), Held::By(50));
    }

    #[test]
    fn unexplained_references_keep_it() {
        // the probe and one struct file nobody has: in flight
        assert_eq!(
            decide(&tally(2), &[]),
            Held::Unexplained(Unexplained::Refs(1))
        );
        // an ignored (dead) process's file explains its reference
        let mut t = tally(2);
        t.hits = vec![(5, false, 20)];
        assert_eq!(decide(&t, &[5]), Held::Free);
        // but not while it is still exiting: it may outlive it (sent)
        t.hits = vec![(5, true, 20)];
        assert_eq!(decide(&t, &[5]), Held::Unexplained(Unexplained::Exiting(5)));
    }

    #[test]
    fn working_directories_and_children_are_explained() {
        let mut t = tally(4);
        t.children = 1;
        // two threads sharing one fs_struct: one reference
        t.fs = [(30, 5), (31, 5)].into();
        assert_eq!(decide(&t, &[]), Held::Free);
        t.refs = Some(5);
        assert_eq!(decide(&t, &[]), Held::Unexplained(Unexplained::Refs(1)));
    }

    #[test]
    fn tmpfs_pins_each_name() {
        // a link() lock on tmpfs: two names, each pinned, and the probe
        let mut t = tally(3);
        t.aliases = 2;
        t.pinned = true;
        assert_eq!(decide(&t, &[]), Held::Free);
        t.pinned = false;
        assert_eq!(decide(&t, &[]), Held::Unexplained(Unexplained::Refs(2)));
        assert!(pins_its_dentries(0x0102_1994));
        assert!(!pins_its_dentries(0xef53)); // ext4
    }

    #[test]
    fn unknown_means_keep() {
        let t = Tally::default();
        assert!(matches!(
            decide(&t, &[]),
            Held::Unexplained(Unexplained::CannotTell(_))
        ));
        let mut t = tally(1);
        t.truncated = true;
        assert!(matches!(
            decide(&t, &[]),
            Held::Unexplained(Unexplained::CannotTell(_))
        ));
    }

    #[test]
    fn leases() {
        assert_eq!(lease_verdict(Ok(())), Held::Free);
        assert_eq!(
            lease_verdict(Err(libc::EAGAIN)),
            Held::Unexplained(Unexplained::OpenElsewhere)
        );
        assert!(matches!(
            lease_verdict(Err(libc::EINVAL)),
            Held::Unexplained(Unexplained::CannotTell(_))
        ));
    }

    #[test]
    fn exiting_from_stat() {
        let s = b"42 (a) b) S 1 42 42 0 -1 4194564 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0";
        assert!(stat_exiting(s)); // 4194564 = 0x400004: PF_EXITING
        let s = b"42 (x) S 1 42 42 0 -1 4194560 0 0";
        assert!(!stat_exiting(s));
        let s = b"42 (x) Z 1 42 42 0 -1 4194564 0 0";
        assert!(!stat_exiting(s));
        assert!(!stat_exiting(b"garbage"));
        // a command name that is not UTF-8 is no obstacle
        let s = b"42 (\xd1\x81\xd0) R 1 42 42 0 -1 4 0 0";
        assert!(stat_exiting(s));
    }
}
