//! The BPF iterator backend (bpf/holders.bpf.c): the self pass over the
//! agent's own descriptors, and the scan of every task when something
//! else references a candidate.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use super::decide::{decide, pins_its_dentries, Tally};
use super::{settle, Candidate, Held, HolderScan, RETRIES};
use crate::files::verdict::Unexplained;

mod bpf {
    include!(concat!(env!("OUT_DIR"), "/holders.skel.rs"));
}

use bpf::types::{holder_flags, holder_rec, holder_rec_kind, holders_limits};

// SAFETY: generated from bpf/holders.h: plain integers, #[repr(C)], valid
// for any bit pattern.
unsafe impl plain::Plain for holder_rec {}

/// Candidates one check takes (bpf/holders.h HOLDERS_MAX_CANDIDATES).
pub const MAX_CANDIDATES: usize = holders_limits::HOLDERS_MAX_CANDIDATES.0 as usize;

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
