//! Loads and attaches the lock programs (bpf/locks.bpf.c): configures the
//! name pre-filter and map sizes from the command line, leaves out the
//! programs this kernel or configuration does not need, names the program
//! and the cause when something fails, and pins maps and links so that
//! tracking goes on while the agent is stopped or being upgraded.

use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, OpenObject};

use crate::bpf::locks::{LocksSkel, LocksSkelBuilder};
use crate::events::{Exit, LockKey, Record};
use crate::lock_worker::LockKernel;
use crate::patterns::{KernelFilter, MAX_PREFIXES, MAX_PREFIX_LEN, MAX_SUFFIXES, MAX_SUFFIX_LEN};
use crate::sysenv::{self, exit_tracepoint_has_group_dead, has_syscall_tracepoint, Unmet};

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
    /// Pin maps and links under this bpffs directory; `None`: no pins.
    pub pin_root: Option<PathBuf>,
}

pub struct LockMonitor<'obj> {
    pub skel: LocksSkel<'obj>,
    _links: Vec<Link>,
    pub attached: Vec<&'static str>,
    /// How whole-process exit is seen on this kernel.
    pub exit_hook: &'static str,
    /// This version's pin directory, and the links pinned in it.
    pub pin_dir: Option<PathBuf>,
    pub pinned_links: Vec<PathBuf>,
    /// flock on the pin root: one daemon per pin directory.
    _pin_lock: Option<File>,
}

/// Pins are kept per version and per BPF source hash. bpffs refuses names
/// with a '.', hence 0_1_0-1a2b3c4d.
pub fn pin_version() -> String {
    format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION").replace('.', "_"),
        env!("EGHOSTBUSTER_BPF_HASH")
    )
}

const PINNED_MAPS: [&str; 4] = ["locks", "exited", "owners", "lock_events"];

/// Take the pin root for this daemon: on bpffs, locked, other versions'
/// pins removed (their layout is not ours to read).
fn prepare_pins(root: &Path) -> Result<(File, PathBuf)> {
    sysenv::ensure_bpffs(root)?;
    std::fs::create_dir_all(root).map_err(|e| {
        Unmet(format!(
            "cannot create the pin directory {}: {e}",
            root.display()
        ))
    })?;
    if !sysenv::is_bpffs(root) {
        return Err(Unmet(format!(
            "--pin-dir {} is not on a bpf filesystem",
            root.display()
        ))
        .into());
    }
    let lock = lock_pin_root(root)?;
    let mine = root.join(pin_version());
    for entry in std::fs::read_dir(root)?.flatten() {
        let p = entry.path();
        if p != mine && p.is_dir() {
            remove_pins(&p)?;
            log::info!("removed the pins of another version ({})", p.display());
        }
    }
    std::fs::create_dir_all(&mine)?;
    Ok((lock, mine))
}

/// flock the pin root; fails when another daemon holds it.
pub fn lock_pin_root(root: &Path) -> Result<File> {
    let dir = File::open(root).with_context(|| format!("opening {}", root.display()))?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(Unmet(format!(
            "another eghostbuster daemon uses the pin directory {} (stop it, or give --pin-dir or --no-pin)",
            root.display()
        ))
        .into());
    }
    Ok(dir)
}

/// Remove one version directory of pins: its entries are bpffs objects.
pub fn remove_pins(dir: &Path) -> Result<()> {
    if !sysenv::is_bpffs(dir) {
        anyhow::bail!(
            "{} is not on a bpf filesystem; not touching it",
            dir.display()
        );
    }
    for entry in std::fs::read_dir(dir)?.flatten() {
        std::fs::remove_file(entry.path())
            .with_context(|| format!("unpinning {}", entry.path().display()))?;
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))
}

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
    let pins = cfg.pin_root.as_deref().map(prepare_pins).transpose()?;
    let mut open = LocksSkelBuilder::default()
        .open(storage)
        .context("opening the lock BPF object")?;

    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("lock BPF object has no .rodata")?;
    ro.non_exclusive = cfg.non_exclusive;
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
    m.lock_events
        .set_max_entries(cfg.ring_buffer_size)
        .context("sizing the lock ring buffer")?;
    if let Some((_, dir)) = &pins {
        // libbpf reuses a compatible pinned map, or creates and pins one
        for (name, map) in PINNED_MAPS.iter().zip([
            &mut m.locks,
            &mut m.exited,
            &mut m.owners,
            &mut m.lock_events,
        ]) {
            map.set_pin_path(dir.join(name))
                .with_context(|| format!("pin path for {name}"))?;
        }
    }

    let progs = &mut open.progs;
    let wanted =
        |tp: &str| has_syscall_tracepoint(tp) && (tp != "sys_exit_creat" || cfg.non_exclusive);
    progs
        .handle_openat2_exit
        .set_autoload(wanted("sys_exit_openat2"));
    progs.handle_open_exit.set_autoload(wanted("sys_exit_open"));
    progs
        .handle_creat_exit
        .set_autoload(wanted("sys_exit_creat"));
    progs
        .handle_unlink_exit
        .set_autoload(wanted("sys_exit_unlink"));
    progs
        .handle_renameat_exit
        .set_autoload(wanted("sys_exit_renameat"));
    progs
        .handle_renameat2_exit
        .set_autoload(wanted("sys_exit_renameat2"));
    progs
        .handle_rename_exit
        .set_autoload(wanted("sys_exit_rename"));
    progs
        .handle_unlinkat_exit
        .set_autoload(wanted("sys_exit_unlinkat"));
    progs.handle_link_exit.set_autoload(wanted("sys_exit_link"));
    progs
        .handle_linkat_exit
        .set_autoload(wanted("sys_exit_linkat"));
    progs
        .handle_mkdir_exit
        .set_autoload(wanted("sys_exit_mkdir"));
    progs
        .handle_mkdirat_exit
        .set_autoload(wanted("sys_exit_mkdirat"));
    progs
        .handle_symlink_exit
        .set_autoload(wanted("sys_exit_symlink"));
    progs
        .handle_symlinkat_exit
        .set_autoload(wanted("sys_exit_symlinkat"));
    // sched_process_exit's group_dead argument is recent; older kernels
    // get the program that reads signal->live instead
    let group_dead = exit_tracepoint_has_group_dead() && !cfg.force_exit_fallback;
    progs.handle_exit.set_autoload(group_dead);
    progs.handle_exit_legacy.set_autoload(!group_dead);

    let skel = open.load().map_err(|e| {
        let hint = if pins.is_some() {
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
    {
        let p = &skel.progs;
        let all: [(&'static str, &libbpf_rs::ProgramMut<'_>); 17] = [
            ("sys_exit_openat", &p.handle_openat_exit),
            ("sys_exit_openat2", &p.handle_openat2_exit),
            ("sys_exit_open", &p.handle_open_exit),
            ("sys_exit_creat", &p.handle_creat_exit),
            ("sys_exit_unlinkat", &p.handle_unlinkat_exit),
            ("sys_exit_unlink", &p.handle_unlink_exit),
            ("sys_exit_renameat2", &p.handle_renameat2_exit),
            ("sys_exit_renameat", &p.handle_renameat_exit),
            ("sys_exit_rename", &p.handle_rename_exit),
            ("sys_exit_link", &p.handle_link_exit),
            ("sys_exit_linkat", &p.handle_linkat_exit),
            ("sys_exit_mkdir", &p.handle_mkdir_exit),
            ("sys_exit_mkdirat", &p.handle_mkdirat_exit),
            ("sys_exit_symlink", &p.handle_symlink_exit),
            ("sys_exit_symlinkat", &p.handle_symlinkat_exit),
            ("sched_process_exit", &p.handle_exit),
            (
                "sched_process_exit (no group_dead: signal->live)",
                &p.handle_exit_legacy,
            ),
        ];
        for (tp, prog) in all {
            if !prog.autoload() {
                continue;
            }
            let link = prog
                .attach()
                .map_err(|e| Unmet(format!("attaching the lock program to {tp} failed: {e}")))?;
            links.push(link);
            attached.push(tp);
        }
    }
    if let Some((_, dir)) = &pins {
        // The new programs are attached; now detach a previous instance's
        // (their pins hold them) and pin ours in their place. Both write
        // the same maps, so nothing is lost in between.
        let names: Vec<String> = attached.iter().map(|tp| link_pin_name(tp)).collect();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("link_") {
                if let Ok(mut old) = Link::open(entry.path()) {
                    let _ = old.unpin();
                } else {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        for (link, name) in links.iter_mut().zip(&names) {
            let path = dir.join(name);
            link.pin(&path)
                .with_context(|| format!("pinning {}", path.display()))?;
            pinned_links.push(path);
        }
    }
    let (pin_lock, pin_dir) = match pins {
        Some((l, d)) => (Some(l), Some(d)),
        None => (None, None),
    };
    Ok(LockMonitor {
        skel,
        _links: links,
        attached,
        exit_hook: if group_dead {
            "tp_btf/sched_process_exit group_dead"
        } else {
            "tp_btf/sched_process_exit signal->live"
        },
        pin_dir,
        pinned_links,
        _pin_lock: pin_lock,
    })
}

fn link_pin_name(tp: &str) -> String {
    let base: String = tp
        .split(' ')
        .next()
        .unwrap_or(tp)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("link_{base}")
}

/// The kernel's tables, by map handles the worker thread owns.
pub struct LockMaps {
    pub owners: MapHandle,
    pub locks: MapHandle,
    pub exited: MapHandle,
    pub bss: MapHandle,
}

impl LockMaps {
    pub fn of(skel: &LocksSkel<'_>) -> Result<Self> {
        let m = &skel.maps;
        Ok(Self {
            owners: MapHandle::try_from(&m.owners).context("owners map")?,
            locks: MapHandle::try_from(&m.locks).context("locks map")?,
            exited: MapHandle::try_from(&m.exited).context("exited map")?,
            bss: MapHandle::try_from(&m.bss).context(".bss map")?,
        })
    }
}

impl LockKernel for LockMaps {
    fn record(&self, key: LockKey) -> Option<Record> {
        let bytes = self.locks.lookup(&key.to_bytes(), MapFlags::ANY).ok()??;
        Record::decode(&bytes).ok()
    }

    fn store(&self, key: LockKey, rec: &Record) -> bool {
        self.locks
            .update(&key.to_bytes(), &rec.encode(), MapFlags::ANY)
            .is_ok()
    }

    fn forget(&self, key: LockKey) {
        let _ = self.locks.delete(&key.to_bytes());
    }

    fn records(&self) -> Vec<(LockKey, Record)> {
        self.locks
            .keys()
            .filter_map(|k| {
                let key = LockKey::from_bytes(&k).ok()?;
                Some((key, self.record(key)?))
            })
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

    fn watch(&self, pid: u32) -> bool {
        self.owners
            .update(&pid.to_ne_bytes(), &1u64.to_ne_bytes(), MapFlags::ANY)
            .is_ok()
    }

    fn counters(&self) -> Option<(u64, u64, u64)> {
        let bytes = self.bss.lookup(&0u32.to_ne_bytes(), MapFlags::ANY).ok()??;
        let mut c = crate::bpf::locks::types::lock_counters::default();
        plain::copy_from_bytes(&mut c, &bytes).ok()?;
        Some((c.ringbuf_drops, c.owners_full, c.table_full))
    }
}
