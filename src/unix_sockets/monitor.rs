//! Loads and attaches the socket-file program (bpf/unix_sockets.bpf.c):
//! one tracepoint, sys_exit_bind. With a pin directory, its table, ring
//! buffer and link are pinned: binds keep being recorded while the daemon
//! is stopped, and the next one adopts them.

use std::mem::MaybeUninit;
use std::path::PathBuf;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapHandle, OpenObject};

use crate::files::made::FileKey;
use crate::host::sysenv::{has_syscall_tracepoint, Unmet};
use crate::host::{bpfmap, pins};
use crate::unix_sockets::bpf::types::bss;
use crate::unix_sockets::bpf::{UnixSocketsSkel, UnixSocketsSkelBuilder};
use crate::unix_sockets::kernel::{key_from_bytes, key_to_bytes, Record, UxsKernel};

/// Maps pinned in the pin directory, by their names there.
const PINNED_MAPS: [&str; 2] = ["uxs_files", "uxs_events"];
/// Prefix of this class's pinned links (the other classes' differ).
pub const LINK_PREFIX: &str = "uxs_link_";
/// The tracepoint.
pub const TRACEPOINT: &str = "sys_exit_bind";

pub struct UxsMonitor<'obj> {
    pub skel: UnixSocketsSkel<'obj>,
    _links: Vec<Link>,
    pub pinned_links: Vec<PathBuf>,
}

pub fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    pin_dir: Option<&std::path::Path>,
) -> Result<UxsMonitor<'obj>> {
    if !has_syscall_tracepoint(TRACEPOINT) {
        return Err(Unmet(format!(
            "the kernel has no syscall tracepoint {TRACEPOINT} (needs CONFIG_FTRACE_SYSCALLS); --no-unix-sockets leaves socket files out"
        ))
        .into());
    }
    let mut open = UnixSocketsSkelBuilder::default()
        .open(storage)
        .context("opening the socket-file BPF object")?;
    if let Some(dir) = pin_dir {
        // libbpf reuses a compatible pinned map, or creates and pins one
        let m = &mut open.maps;
        for (name, map) in PINNED_MAPS
            .iter()
            .zip([&mut m.uxs_files, &mut m.uxs_events])
        {
            map.set_pin_path(dir.join(name))
                .with_context(|| format!("pin path for {name}"))?;
        }
    }
    let skel = open.load().map_err(|e| {
        Unmet(format!(
            "the kernel refused the socket-file BPF program: {e} (needs Linux 5.17+ with BTF; RUST_LOG=debug shows the verifier log)"
        ))
    })?;
    let mut link = skel.progs.uxs_bind.attach().map_err(|e| {
        Unmet(format!(
            "attaching the socket-file program to {TRACEPOINT} failed: {e}"
        ))
    })?;
    let pinned_links = match pin_dir {
        Some(dir) => {
            pins::replace_links(dir, LINK_PREFIX, &mut [(TRACEPOINT.to_string(), &mut link)])?
        }
        None => Vec::new(),
    };
    Ok(UxsMonitor {
        skel,
        _links: vec![link],
        pinned_links,
    })
}

/// The kernel's table, by map handles the worker thread owns.
pub struct UxsMaps {
    files: bpfmap::Table<FileKey, Record>,
    bss: MapHandle,
}

impl UxsMaps {
    pub fn of(skel: &UnixSocketsSkel<'_>) -> Result<Self> {
        Ok(UxsMaps {
            files: bpfmap::Table::new(
                MapHandle::try_from(&skel.maps.uxs_files).context("uxs_files map")?,
                key_to_bytes,
                key_from_bytes,
                Record::decode,
            ),
            bss: MapHandle::try_from(&skel.maps.bss).context("socket-file .bss map")?,
        })
    }
}

impl UxsKernel for UxsMaps {
    fn record(&self, key: FileKey) -> Option<Record> {
        self.files.get(key)
    }

    fn forget(&self, key: FileKey) {
        self.files.delete(key)
    }

    fn records(&self) -> Vec<(FileKey, Record)> {
        self.files.entries()
    }

    fn counters(&self) -> Option<(u64, u64, u64)> {
        let c = bpfmap::read_section::<bss>(&self.bss)?.counters;
        Some((c.bound, c.ringbuf_drops, c.table_full))
    }
}
