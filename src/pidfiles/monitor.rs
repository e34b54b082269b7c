//! Loads and attaches the PID-file programs (bpf/pidfiles.bpf.c): the
//! name pre-filter from the patterns, one program per open syscall the
//! kernel has. With a pin directory, their table, ring buffer and links
//! are pinned: rewrites keep being recorded while the daemon is stopped,
//! and the next one adopts them.

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, Skel, SkelBuilder};
use libbpf_rs::{Link, MapHandle, OpenObject};

use crate::files::made::FileKey;
use crate::host::sysenv::{has_syscall_tracepoint, Unmet};
use crate::host::{bpfmap, pins};
use crate::pidfiles::bpf::types::bss;
use crate::pidfiles::bpf::{PidfilesSkel, PidfilesSkelBuilder};
use crate::pidfiles::kernel::{key_from_bytes, key_to_bytes, PidfKernel, Record};

/// The kernel's name pre-filter holds at most this many suffixes of at
/// most `MAX_SUFFIX_LEN` bytes (bpf/pidfiles.h PIDF_MAX_SUFFIXES,
/// PIDF_SUFFIX_LEN; checked against the generated rodata in a test).
pub const MAX_SUFFIXES: usize = 8;
pub const MAX_SUFFIX_LEN: usize = 16;

/// Maps pinned in the pin directory, by their names there.
const PINNED_MAPS: [&str; 2] = ["pidf_files", "pidf_events"];
/// Prefix of this class's pinned links (the other classes' differ).
pub const LINK_PREFIX: &str = "pidf_link_";

pub struct PidfMonitor<'obj> {
    pub skel: PidfilesSkel<'obj>,
    _links: Vec<Link>,
    pub attached: Vec<String>,
    pub pinned_links: Vec<PathBuf>,
}

/// `suffixes`: the name pre-filter; None passes every name.
pub fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    suffixes: Option<&[Vec<u8>]>,
    pin_dir: Option<&Path>,
) -> Result<PidfMonitor<'obj>> {
    if !has_syscall_tracepoint("sys_exit_openat") {
        return Err(Unmet(
            "the kernel has no syscall tracepoints (events/syscalls/sys_exit_openat; needs CONFIG_FTRACE_SYSCALLS); --no-pid-files leaves PID files out".into(),
        )
        .into());
    }
    let mut open = PidfilesSkelBuilder::default()
        .open(storage)
        .context("opening the PID-file BPF object")?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("PID-file BPF object has no .rodata")?;
    match suffixes {
        None => ro.any_name = true,
        Some(sfx) => {
            assert!(sfx.len() <= MAX_SUFFIXES);
            ro.n_suffixes = sfx.len() as u32;
            for (i, s) in sfx.iter().enumerate() {
                assert!(s.len() <= MAX_SUFFIX_LEN);
                ro.suffix_len[i] = s.len() as u8;
                for (d, &b) in ro.suffixes[i].iter_mut().zip(s.iter()) {
                    *d = b as i8;
                }
            }
        }
    }
    if let Some(dir) = pin_dir {
        // libbpf reuses a compatible pinned map, or creates and pins one
        let m = &mut open.maps;
        for (name, map) in PINNED_MAPS
            .iter()
            .zip([&mut m.pidf_files, &mut m.pidf_events])
        {
            map.set_pin_path(dir.join(name))
                .with_context(|| format!("pin path for {name}"))?;
        }
    }
    // one program per open syscall this kernel has
    for mut prog in open.open_object_mut().progs_mut() {
        let section = prog.section().to_string_lossy().into_owned();
        let load = section
            .strip_prefix("tracepoint/syscalls/")
            .is_some_and(has_syscall_tracepoint);
        prog.set_autoload(load);
    }
    let skel = open.load().map_err(|e| {
        Unmet(format!(
            "the kernel refused the PID-file BPF programs: {e} (needs Linux 5.17+ with BTF; RUST_LOG=debug shows the verifier log)"
        ))
    })?;
    let mut links = Vec::new();
    let mut attached = Vec::new();
    for prog in skel.object().progs_mut() {
        if !prog.autoload() {
            continue;
        }
        let section = prog.section().to_string_lossy();
        let tp = section.rsplit('/').next().unwrap_or(&section).to_string();
        let link = prog.attach().map_err(|e| {
            Unmet(format!(
                "attaching the PID-file program to {tp} failed: {e}"
            ))
        })?;
        links.push(link);
        attached.push(tp);
    }
    let pinned_links = match pin_dir {
        Some(dir) => {
            let mut named: Vec<(String, &mut Link)> =
                attached.iter().cloned().zip(links.iter_mut()).collect();
            pins::replace_links(dir, LINK_PREFIX, &mut named)?
        }
        None => Vec::new(),
    };
    Ok(PidfMonitor {
        skel,
        _links: links,
        attached,
        pinned_links,
    })
}

/// The kernel's table, by map handles the worker thread owns.
pub struct PidfMaps {
    files: bpfmap::Table<FileKey, Record>,
    bss: MapHandle,
}

impl PidfMaps {
    pub fn of(skel: &PidfilesSkel<'_>) -> Result<Self> {
        Ok(PidfMaps {
            files: bpfmap::Table::new(
                MapHandle::try_from(&skel.maps.pidf_files).context("pidf_files map")?,
                key_to_bytes,
                key_from_bytes,
                Record::decode,
            ),
            bss: MapHandle::try_from(&skel.maps.bss).context("PID-file .bss map")?,
        })
    }
}

impl PidfKernel for PidfMaps {
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
        Some((c.written, c.ringbuf_drops, c.table_full))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pidfiles::bpf::types::rodata;

    #[test]
    fn limits_match_the_kernel_contract() {
        // SAFETY: rodata is plain data; all-zero is valid.
        let r: rodata = unsafe { std::mem::zeroed() };
        assert_eq!(r.suffix_len.len(), MAX_SUFFIXES);
        assert_eq!(r.suffixes.len(), MAX_SUFFIXES);
        assert_eq!(r.suffixes[0].len(), MAX_SUFFIX_LEN);
    }
}
