//! Loads and attaches the socket programs (bpf/sockets.bpf.c): configures
//! timeout and port scope, picks the reaper variant the kernel supports, and
//! runs the reaper iterator inside a given network namespace. With a pin
//! directory, the CLOSE_WAIT stamps, the event ring buffer and the
//! tracepoint link are pinned: sockets keep being stamped as they enter
//! CLOSE_WAIT while the daemon is stopped, and a restarted daemon ages them
//! from that entry, not from its own first sight.

use std::io::Read;
use std::mem::MaybeUninit;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Iter, Link, MapCore, MapFlags, MapHandle, OpenObject};

use crate::cli::DestroyChoice;
use crate::host::netns;
use crate::host::sysenv::Unmet;
use crate::host::{bpfmap, pins};
use crate::sockets::bpf::types::{bss, data_scope};
use crate::sockets::bpf::{SocketsSkel, SocketsSkelBuilder};
use crate::sockets::model::{decode_reaped, Method, PortFilter, ReapKind, Reaped, MAX_PORTS};
use crate::sockets::sock_diag;

pub struct SockBpfConfig {
    pub timeout: Duration,
    pub filter: PortFilter,
    pub destroy: DestroyChoice,
    pub dry_run: bool,
    /// Ignore CONFIG_HZ: age by the sends the reaper's visits see.
    pub force_idle_fallback: bool,
    /// Pin maps and the tracepoint link in this directory
    /// (`pins::PinDir`, taken by the caller); `None`: no pins.
    pub pin_dir: Option<PathBuf>,
}

/// Maps pinned in the pin directory, by their names there (the lock
/// monitor's are other names in the same directory).
const PINNED_MAPS: [&str; 2] = ["stamps", "sock_events"];
/// Prefix of the socket programs' pinned links; the lock monitor's is
/// "link_", so neither replaces the other's.
const LINK_PREFIX: &str = "sock_link_";

pub struct SockMonitor<'obj> {
    pub skel: SocketsSkel<'obj>,
    /// The tracepoint link: detached when dropped.
    pub links: Vec<Link>,
    /// The reaper's iterator link, handed to the worker.
    pub reaper: Reaper,
    /// Pinned links (the tracepoint's), when pinning.
    pub pinned_links: Vec<PathBuf>,
}

/// Does the kernel export the `bpf_sock_destroy` kfunc (Linux 6.5)?
pub fn has_sock_destroy_kfunc() -> bool {
    libbpf_rs::btf::Btf::from_vmlinux().ok().is_some_and(|btf| {
        btf.type_by_name::<libbpf_rs::btf::BtfType<'_>>("bpf_sock_destroy")
            .is_some()
    })
}

pub fn load<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    cfg: &SockBpfConfig,
) -> Result<SockMonitor<'obj>> {
    let kfunc = has_sock_destroy_kfunc();
    let method = match cfg.destroy {
        DestroyChoice::Kfunc if !kfunc => {
            return Err(Unmet(
                "--socket-destroy kfunc: this kernel has no bpf_sock_destroy kfunc (needs Linux 6.5+); use --socket-destroy netlink".into(),
            )
            .into())
        }
        DestroyChoice::Auto if !kfunc => Method::Netlink,
        DestroyChoice::Netlink => Method::Netlink,
        _ => Method::Kfunc,
    };
    if cfg.filter.ports.len() > MAX_PORTS || cfg.filter.exclude.len() > MAX_PORTS {
        return Err(Unmet(format!(
            "at most {MAX_PORTS} --port and {MAX_PORTS} --exclude-port"
        ))
        .into());
    }

    let mut open = SocketsSkelBuilder::default()
        .open(storage)
        .context("opening the socket BPF object")?;
    let ro = open
        .maps
        .rodata_data
        .as_deref_mut()
        .context("socket BPF object has no .rodata")?;
    ro.ignore_hz = cfg.force_idle_fallback;
    let scope = open
        .maps
        .data_scope_data
        .as_deref_mut()
        .context("socket BPF object has no .data.scope")?;
    *scope = scope_value(cfg.timeout, &cfg.filter);
    if let Some(dir) = &cfg.pin_dir {
        // libbpf reuses a compatible pinned map, or creates and pins one
        let m = &mut open.maps;
        for (name, map) in PINNED_MAPS.iter().zip([&mut m.stamps, &mut m.sock_events]) {
            map.set_pin_path(dir.join(name))
                .with_context(|| format!("pin path for {name}"))?;
        }
    }

    // Destroying in the kernel needs the kfunc; every other case reports
    // only (dry run, netlink), and a program that calls a missing kfunc
    // would not load, so it is left out.
    let destroy_in_kernel = method == Method::Kfunc && !cfg.dry_run;
    open.progs.reap_destroy.set_autoload(destroy_in_kernel);
    open.progs.reap_report.set_autoload(!destroy_in_kernel);

    let skel = open.load().map_err(|e| {
        Unmet(format!(
            "the kernel refused the socket BPF programs: {e} (needs Linux 5.11+ with BTF, tp_btf, socket storage and tcp iterators; run with RUST_LOG=debug for the verifier log)"
        ))
    })?;

    // libbpf fills .kconfig at load, from the kernel config it finds
    let hz = skel.maps.kconfig_data.map_or(0, |k| k.CONFIG_HZ);
    if hz == 0 || cfg.force_idle_fallback {
        log::info!("socket monitor: kernel tick rate unknown (no kernel config found) or ignored; sends are noticed when the reaper looks, so an active socket may live up to one timeout longer");
    } else {
        log::debug!("socket monitor: CONFIG_HZ={hz}");
    }
    let mut tp = skel.progs.handle_set_state.attach().map_err(|e| {
        Unmet(format!(
            "attaching the socket program to inet_sock_set_state failed: {e}"
        ))
    })?;
    // attached: now the previous instance's link can go (the iterator
    // link is not pinned: it only runs when the worker reads it)
    let pinned_links = match &cfg.pin_dir {
        Some(dir) => pins::replace_links(
            dir,
            LINK_PREFIX,
            &mut [("inet_sock_set_state".to_string(), &mut tp)],
        )?,
        None => Vec::new(),
    };
    let reaper_prog = if destroy_in_kernel {
        &skel.progs.reap_destroy
    } else {
        &skel.progs.reap_report
    };
    let reaper = reaper_prog
        .attach()
        .map_err(|e| Unmet(format!("attaching the tcp reaper iterator failed: {e}")))?;
    let bss = MapHandle::try_from(&skel.maps.bss).context("socket .bss map")?;
    let scope = MapHandle::try_from(&skel.maps.data_scope).context("socket .data.scope map")?;
    Ok(SockMonitor {
        skel,
        links: vec![tp],
        reaper: Reaper {
            link: reaper,
            method,
            dry_run: cfg.dry_run,
            filter: cfg.filter.clone(),
            bss,
            scope,
        },
        pinned_links,
    })
}

/// Runs the reaper iterator in one network namespace.
pub trait Reap: Send {
    fn reap(&mut self, netns: u64) -> Result<Vec<Reaped>>;
    /// Network namespaces to look into on a full survey.
    fn namespaces(&self) -> Vec<u64>;
    /// The kernel side's counters: (ring buffer drops, storage failures).
    fn counters(&self) -> Option<(u64, u64)>;
    /// A new scope for the programs (SIGHUP), from the next event or visit.
    fn set_scope(&mut self, _timeout: Duration, _filter: &PortFilter) -> Result<()> {
        Ok(())
    }
}

pub struct Reaper {
    link: Link,
    pub method: Method,
    dry_run: bool,
    filter: PortFilter,
    bss: MapHandle,
    /// The programs' scope (timeout, ports): rewritten by a reload.
    scope: MapHandle,
}

/// The `.data.scope` section's value for a timeout and a port filter.
fn scope_value(timeout: Duration, filter: &PortFilter) -> data_scope {
    let mut v = data_scope {
        timeout_ns: timeout.as_nanos().min(u64::MAX as u128) as u64,
        n_ports: filter.ports.len() as u32,
        ports: [0; MAX_PORTS],
        n_exclude: filter.exclude.len() as u32,
        exclude_ports: [0; MAX_PORTS],
    };
    v.ports[..filter.ports.len()].copy_from_slice(&filter.ports);
    v.exclude_ports[..filter.exclude.len()].copy_from_slice(&filter.exclude);
    v
}

impl Reaper {
    /// In the calling thread's namespace: the tcp iterator walks the
    /// namespace of the thread that creates the iterator fd.
    fn reap_here(&self) -> Result<Vec<Reaped>> {
        let mut it = Iter::new(&self.link).context("creating the reaper iterator")?;
        let mut out = Vec::new();
        it.read_to_end(&mut out)
            .context("reading the reaper iterator")?;
        let mut recs = decode_reaped(&out).map_err(anyhow::Error::msg)?;
        for r in &mut recs {
            r.method = self.method; // what a dry run would have used, too
        }
        if self.method == Method::Netlink && !self.dry_run {
            for r in recs.iter_mut().filter(|r| r.kind == ReapKind::Stale) {
                // the kernel applied the same filter; never act outside it
                if !self.filter.allows_ends(&r.ends) {
                    continue;
                }
                let target = sock_diag::Target {
                    family: r.ends.family,
                    local: r.ends.local,
                    remote: r.ends.remote,
                    ifindex: r.ends.ifindex,
                    cookie: r.cookie,
                };
                r.kind = match sock_diag::destroy(&target) {
                    Ok(()) => ReapKind::Destroyed,
                    Err(e) => ReapKind::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
                };
            }
        }
        Ok(recs)
    }
}

impl Reap for Reaper {
    fn reap(&mut self, ns: u64) -> Result<Vec<Reaped>> {
        let path = netns::find(ns).with_context(|| format!("netns {ns} no longer exists"))?;
        let this = &*self;
        netns::run_in(ns, &path, || this.reap_here())
            .with_context(|| format!("entering netns {ns} ({})", path.display()))?
    }

    fn namespaces(&self) -> Vec<u64> {
        netns::all().into_keys().collect()
    }

    fn set_scope(&mut self, timeout: Duration, filter: &PortFilter) -> Result<()> {
        if filter.ports.len() > MAX_PORTS || filter.exclude.len() > MAX_PORTS {
            anyhow::bail!("at most {MAX_PORTS} ports per list");
        }
        let v = scope_value(timeout, filter);
        // SAFETY: a plain C struct (the generated type), read as its bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&v as *const data_scope).cast::<u8>(),
                std::mem::size_of::<data_scope>(),
            )
        };
        self.scope
            .update(&0u32.to_ne_bytes(), bytes, MapFlags::ANY)
            .context("updating the socket programs' scope")?;
        self.filter = filter.clone();
        Ok(())
    }

    fn counters(&self) -> Option<(u64, u64)> {
        let c = bpfmap::read_section::<bss>(&self.bss)?.counters;
        Some((c.ringbuf_drops, c.storage_fail))
    }
}
