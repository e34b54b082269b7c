//! Loads and attaches the lock programs (bpf/locks.bpf.c): configures the
//! name pre-filter and map sizes from the command line, leaves out the
//! programs this kernel or configuration does not need, and names the
//! program and the cause when something fails.

use std::mem::MaybeUninit;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject};

use crate::bpf::locks::{LocksSkel, LocksSkelBuilder};
use crate::patterns::{MAX_SUFFIXES, MAX_SUFFIX_LEN};
use crate::sysenv::{exit_tracepoint_has_group_dead, has_syscall_tracepoint, Unmet};

pub struct LockBpfConfig {
    pub non_exclusive: bool,
    /// Name suffixes for the kernel pre-filter; `None`: every name.
    pub suffixes: Option<Vec<Vec<u8>>>,
    pub max_owners: u32,
    pub ring_buffer_size: u32,
    /// Use the exit program for kernels without `group_dead` (tests).
    pub force_exit_fallback: bool,
}

pub struct LockMonitor<'obj> {
    pub skel: LocksSkel<'obj>,
    _links: Vec<Link>,
    pub attached: Vec<&'static str>,
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
    let mut open = LocksSkelBuilder::default()
        .open(storage)
        .context("opening the lock BPF object")?;

    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("lock BPF object has no .rodata")?;
    ro.non_exclusive = cfg.non_exclusive;
    match &cfg.suffixes {
        None => ro.any_name = true,
        Some(list) => {
            assert!(list.len() <= MAX_SUFFIXES);
            ro.n_suffixes = list.len() as u32;
            for (i, s) in list.iter().enumerate() {
                assert!(s.len() <= MAX_SUFFIX_LEN);
                ro.suffix_len[i] = s.len() as u8;
                for (d, &b) in ro.suffixes[i].iter_mut().zip(s.iter()) {
                    *d = b as i8;
                }
            }
        }
    }
    open.maps
        .owners
        .set_max_entries(cfg.max_owners)
        .context("setting the owners map size")?;
    open.maps
        .lock_events
        .set_max_entries(cfg.ring_buffer_size)
        .context("setting the lock ring buffer size")?;

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
    let group_dead = exit_tracepoint_has_group_dead() && !cfg.force_exit_fallback;
    progs.handle_exit.set_autoload(group_dead);
    progs.handle_exit_legacy.set_autoload(!group_dead);

    let skel = open.load().map_err(|e| {
        Unmet(format!(
            "the kernel refused the lock BPF programs: {e} (needs Linux 5.17+ with BTF; run with RUST_LOG=debug for the verifier log)"
        ))
    })?;

    let mut links = Vec::new();
    let mut attached = Vec::new();
    {
        let p = &skel.progs;
        let all: [(&'static str, &libbpf_rs::ProgramMut<'_>); 11] = [
            ("sys_exit_openat", &p.handle_openat_exit),
            ("sys_exit_openat2", &p.handle_openat2_exit),
            ("sys_exit_open", &p.handle_open_exit),
            ("sys_exit_creat", &p.handle_creat_exit),
            ("sys_exit_unlinkat", &p.handle_unlinkat_exit),
            ("sys_exit_unlink", &p.handle_unlink_exit),
            ("sys_exit_renameat2", &p.handle_renameat2_exit),
            ("sys_exit_renameat", &p.handle_renameat_exit),
            ("sys_exit_rename", &p.handle_rename_exit),
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
    Ok(LockMonitor {
        skel,
        _links: links,
        attached,
    })
}
