//! Loads and attaches the lock programs (bpf/locks.bpf.c): configures the
//! name pre-filter and map sizes from the command line, leaves out the
//! programs this kernel or configuration does not need, names the program
//! and the cause when something fails, and pins maps and links so that
//! tracking goes on while the agent is stopped or being upgraded.

use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, OpenObject};

use crate::host::pins;
use crate::host::sysenv::{exit_tracepoint_has_group_dead, has_syscall_tracepoint, Unmet};
use crate::locks::bpf::{LocksSkel, LocksSkelBuilder};
use crate::locks::kernel::LockKernel;
use crate::locks::kernel::{Exit, LockKey, Record};
use crate::locks::patterns::{
    KernelFilter, MAX_PREFIXES, MAX_PREFIX_LEN, MAX_SUFFIXES, MAX_SUFFIX_LEN,
};

pub struct LockBpfConfig {
    pub non_exclusive: bool,
    /// Name suffixes and prefixes for the kernel pre-filter; `None`:
    /// every name.
    pub names: Option<KernelFilter>,
    pub max_owners: u32,
    pub max_locks: u32,
    pub ring_buffer_size: u32,
    /// Use the exit program for kernels without `group_dead` (tests).
    pub force_exit_fallback: bool,
    /// Pin maps and links in this directory (`pins::PinDir`, taken by the
    /// caller); `None`: no pins.
    pub pin_dir: Option<PathBuf>,
}

/// How many records of "locks" (or watched owners) one uid may hold.
pub fn uid_share(max_locks: u32) -> u32 {
    (max_locks / 2).max(1)
}

pub struct LockMonitor<'obj> {
    pub skel: LocksSkel<'obj>,
    _links: Vec<Link>,
    pub attached: Vec<String>,
    /// How whole-process exit is seen on this kernel.
    pub exit_hook: &'static str,
    /// The links pinned in the pin directory.
    pub pinned_links: Vec<PathBuf>,
}

/// Maps pinned in the pin directory, by their names there.
const PINNED_MAPS: [&str; 8] = [
    "locks",
    "uid_locks",
    "uid_owners",
    "locks_long",
    "exited",
    "owners",
    "owner_marks",
    "lock_events",
];
/// Prefix of the lock programs' pinned links.
const LINK_PREFIX: &str = "link_";

pub fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    cfg: &LockBpfConfig,
) -> Result<LockMonitor<'obj>> {
    if !has_syscall_tracepoint("sys_exit_openat") {
        return Err(Unmet(
            "the kernel has no syscall tracepoints (events/syscalls/sys_exit_openat; needs CONFIG_FTRACE_SYSCALLS)".into(),
        )
        .into());
    }
    let pin_dir = cfg.pin_dir.as_deref();
    let mut open = LocksSkelBuilder::default()
        .open(storage)
        .context("opening the lock BPF object")?;

    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("lock BPF object has no .rodata")?;
    ro.non_exclusive = cfg.non_exclusive;
    ro.wake_backlog = cfg.ring_buffer_size as u64 / 4;
    // one uid holds at most half the table (issue 11): another user's
    // locks are still recorded while one floods it
    ro.uid_lock_share = uid_share(cfg.max_locks);
    ro.uid_owner_share = uid_share(cfg.max_owners);
    match &cfg.names {
        None => ro.any_name = true,
        Some(f) => {
            assert!(f.suffixes.len() <= MAX_SUFFIXES && f.prefixes.len() <= MAX_PREFIXES);
            ro.n_suffixes = f.suffixes.len() as u32;
            for (i, s) in f.suffixes.iter().enumerate() {
                assert!(s.len() <= MAX_SUFFIX_LEN);
                ro.suffix_len[i] = s.len() as u8;
                for (d, &b) in ro.suffixes[i].iter_mut().zip(s.iter()) {
                    *d = b as i8;
                }
            }
            ro.n_prefixes = f.prefixes.len() as u32;
            for (i, p) in f.prefixes.iter().enumerate() {
                assert!(p.len() <= MAX_PREFIX_LEN);
                ro.prefix_len[i] = p.len() as u8;
                for (d, &b) in ro.prefixes[i].iter_mut().zip(p.iter()) {
                    *d = b as i8;
                }
            }
        }
    }
    let m = &mut open.maps;
    m.owners
        .set_max_entries(cfg.max_owners)
        .context("sizing the owners map")?;
    m.exited
        .set_max_entries(cfg.max_owners)
        .context("sizing the exited map")?;
    m.locks
        .set_max_entries(cfg.max_locks)
        .context("sizing the locks map")?;
    // paths longer than LOCK_PATH_SHORT bytes are rare
    m.locks_long
        .set_max_entries((cfg.max_locks / 16).max(256))
        .context("sizing the locks_long map")?;
    m.lock_events
        .set_max_entries(cfg.ring_buffer_size)
        .context("sizing the lock ring buffer")?;
    if let Some(dir) = pin_dir {
        // libbpf reuses a compatible pinned map, or creates and pins one
        for (name, map) in PINNED_MAPS.iter().zip([
            &mut m.locks,
            &mut m.uid_locks,
            &mut m.uid_owners,
            &mut m.locks_long,
            &mut m.exited,
            &mut m.owners,
            &mut m.owner_marks,
            &mut m.lock_events,
        ]) {
            map.set_pin_path(dir.join(name))
                .with_context(|| format!("pin path for {name}"))?;
        }
    }

    // Each syscall program is loaded when the kernel has its tracepoint
    // (creat only with --non-exclusive: it can never be exclusive).
    // sched_process_exit's group_dead argument is recent; older kernels get
    // the program that reads signal->live instead.
    let group_dead = exit_tracepoint_has_group_dead() && !cfg.force_exit_fallback;
    for mut prog in open.open_object_mut().progs_mut() {
        let section = prog.section().to_string_lossy().into_owned();
        let load = match section.strip_prefix("tracepoint/syscalls/") {
            Some(tp) => has_syscall_tracepoint(tp) && (tp != "sys_exit_creat" || cfg.non_exclusive),
            None if section == "tp_btf/sched_process_exit" => {
                (prog.name() == "handle_exit") == group_dead
            }
            None => true,
        };
        prog.set_autoload(load);
    }

    let skel = open.load().map_err(|e| {
        let hint = if pin_dir.is_some() {
            " (if pinned maps of other sizes exist, run `eghostbuster unpin` or keep the sizes)"
        } else {
            ""
        };
        Unmet(format!(
            "the kernel refused the lock BPF programs: {e}{hint} (needs Linux 5.17+ with BTF; RUST_LOG=debug shows the verifier log)"
        ))
    })?;

    let mut links = Vec::new();
    let mut attached = Vec::new();
    let mut pinned_links = Vec::new();
    for prog in skel.object().progs_mut() {
        if !prog.autoload() {
            continue;
        }
        let section = prog.section().to_string_lossy();
        let mut tp = section.rsplit('/').next().unwrap_or(&section).to_string();
        if prog.name() == "handle_exit_legacy" {
            tp.push_str(" (no group_dead: signal->live)");
        }
        let link = prog
            .attach()
            .map_err(|e| Unmet(format!("attaching the lock program to {tp} failed: {e}")))?;
        links.push(link);
        attached.push(tp);
    }
    if let Some(dir) = pin_dir {
        let mut named: Vec<(String, &mut Link)> =
            attached.iter().cloned().zip(links.iter_mut()).collect();
        pinned_links = pins::replace_links(dir, LINK_PREFIX, &mut named)?;
    }
    Ok(LockMonitor {
        skel,
        _links: links,
        attached,
        exit_hook: if group_dead {
            "tp_btf/sched_process_exit group_dead"
        } else {
            "tp_btf/sched_process_exit signal->live"
        },
        pinned_links,
    })
}

/// The kernel's tables, by map handles the worker thread owns.
pub struct LockMaps {
    pub owners: MapHandle,
    pub owner_marks: MapHandle,
    /// Records with paths up to LOCK_PATH_SHORT bytes, and the longer ones.
    pub locks: MapHandle,
    pub locks_long: MapHandle,
    pub exited: MapHandle,
    pub bss: MapHandle,
    /// Records held per creator uid (bpf/locks.bpf.c uid_locks).
    pub uid_locks: MapHandle,
    /// Changes to uid_locks not applied yet (flush).
    shares: std::cell::RefCell<std::collections::HashMap<u32, i64>>,
}

impl LockMaps {
    pub fn of(skel: &LocksSkel<'_>) -> Result<Self> {
        let m = &skel.maps;
        Ok(Self {
            owners: MapHandle::try_from(&m.owners).context("owners map")?,
            owner_marks: MapHandle::try_from(&m.owner_marks).context("owner_marks map")?,
            locks: MapHandle::try_from(&m.locks).context("locks map")?,
            locks_long: MapHandle::try_from(&m.locks_long).context("locks_long map")?,
            exited: MapHandle::try_from(&m.exited).context("exited map")?,
            bss: MapHandle::try_from(&m.bss).context(".bss map")?,
            uid_locks: MapHandle::try_from(&m.uid_locks).context("uid_locks map")?,
            shares: Default::default(),
        })
    }

    /// Move `uid`'s count of held records by one (the kernel adds for
    /// the records it inserts; we add and take off for ours), applied by
    /// the next flush.
    fn share(&self, uid: u32, up: bool) {
        *self.shares.borrow_mut().entry(uid).or_default() += if up { 1 } else { -1 };
    }

    fn held(&self, k: &[u8]) -> Option<Vec<u8>> {
        match self.locks.lookup(k, MapFlags::ANY).ok()? {
            Some(b) => Some(b),
            None => self.locks_long.lookup(k, MapFlags::ANY).ok()?,
        }
    }

    fn decode(key: LockKey, bytes: &[u8]) -> Option<Record> {
        match Record::decode(bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                log::warn!("ignoring the kernel's record of {key:?}: {e}");
                None
            }
        }
    }
}

impl LockKernel for LockMaps {
    fn record(&self, key: LockKey) -> Option<Record> {
        let k = key.to_bytes();
        let bytes = match self.locks.lookup(&k, MapFlags::ANY).ok()? {
            Some(b) => b,
            None => self.locks_long.lookup(&k, MapFlags::ANY).ok()??,
        };
        Self::decode(key, &bytes)
    }

    fn store(&self, key: LockKey, rec: &Record) -> bool {
        let k = key.to_bytes();
        let (to, other) = if rec.is_long() {
            (&self.locks_long, &self.locks)
        } else {
            (&self.locks, &self.locks_long)
        };
        let fresh = self.held(&k).is_none();
        let ok = to.update(&k, &rec.encode(), MapFlags::ANY).is_ok();
        if ok {
            let _ = other.delete(&k);
            if fresh {
                self.share(rec.creator.fsuid, true);
            }
        }
        ok
    }

    fn forget(&self, key: LockKey, fsuid: Option<u32>) {
        let k = key.to_bytes();
        let Some(uid) = fsuid.or_else(|| {
            self.held(&k)
                .and_then(|b| Self::decode(key, &b))
                .map(|r| r.creator.fsuid)
        }) else {
            return;
        };
        if self.locks.delete(&k).is_ok() || self.locks_long.delete(&k).is_ok() {
            self.share(uid, false);
        }
    }

    /// One read and one write per uid whose count moved.
    fn flush(&self) {
        for (uid, delta) in self.shares.borrow_mut().drain() {
            if delta == 0 {
                continue;
            }
            let k = uid.to_ne_bytes();
            let now = self
                .uid_locks
                .lookup(&k, MapFlags::ANY)
                .ok()
                .flatten()
                .and_then(|v| {
                    v.get(..4)
                        .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                })
                .unwrap_or(0);
            let next = (now as i64 + delta).clamp(0, u32::MAX as i64) as u32;
            let _ = if next == 0 {
                self.uid_locks.delete(&k)
            } else {
                self.uid_locks
                    .update(&k, &next.to_ne_bytes(), MapFlags::ANY)
            };
        }
    }

    fn keys(&self) -> Vec<LockKey> {
        [&self.locks, &self.locks_long]
            .into_iter()
            .flat_map(|m| m.keys())
            .filter_map(|k| LockKey::from_bytes(&k).ok())
            .collect()
    }

    fn pending_exits(&self) -> Vec<Exit> {
        self.exited
            .keys()
            .filter_map(|k| {
                let v = self.exited.lookup(&k, MapFlags::ANY).ok()??;
                Exit::decode(&v).ok()
            })
            .collect()
    }

    fn exit_done(&self, tgid: u32) {
        let _ = self.exited.delete(&tgid.to_ne_bytes());
    }

    /// Both views of the owner set (bpf/locks.bpf.c): the hash by tgid,
    /// and the mark on the group leader, set through a pidfd. A process
    /// already gone cannot be marked; its end is found by the owner polling.
    fn watch(&self, pid: u32) -> bool {
        let listed = self
            .owners
            .update(&pid.to_ne_bytes(), &1u64.to_ne_bytes(), MapFlags::ANY)
            .is_ok();
        // SAFETY: pidfd_open takes a pid and flags, returns a new fd.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0u32) };
        if fd < 0 {
            return listed;
        }
        // SAFETY: a fresh descriptor from pidfd_open.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let marked = self
            .owner_marks
            .update(
                &fd.as_raw_fd().to_ne_bytes(),
                &1u32.to_ne_bytes(),
                MapFlags::ANY,
            )
            .is_ok();
        listed && marked
    }

    /// The kernel's counters, through the generated type of the whole
    /// .bss section (its layout is the compiler's, not ours to assume).
    fn counters(&self) -> Option<(u64, u64, u64)> {
        let bytes = self.bss.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok()??;
        // SAFETY: bss is plain integers and byte arrays (locks/bpf.rs):
        // all zeroes is a valid value.
        let mut bss: crate::locks::bpf::types::bss = unsafe { std::mem::zeroed() };
        // the map's value is the section's size, the generated type's may
        // be padded up to its alignment: copy what there is
        let mut raw = vec![0u8; std::mem::size_of_val(&bss)];
        let n = bytes.len().min(raw.len());
        raw[..n].copy_from_slice(&bytes[..n]);
        plain::copy_from_bytes(&mut bss, &raw).ok()?;
        let c = bss.counters;
        Some((c.ringbuf_drops, c.owners_full, c.table_full))
    }
}
