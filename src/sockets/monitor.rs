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

use anyhow::{Context, Result};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Iter, Link, MapCore, MapFlags, MapHandle, OpenObject};

use crate::cli::DestroyChoice;
use crate::host::netns;
use crate::host::sysenv::Unmet;
use crate::host::{bpfmap, pins};
use crate::sockets::bpf::types::{bss, data_scope};
use crate::sockets::bpf::{SocketsSkel, SocketsSkelBuilder};
use crate::sockets::kernel::{decode_records, Act, Facts, Record, Seen, MAX_JUDGED, MAX_PORTS};
use crate::sockets::model::{Method, PortFilter};
use crate::sockets::sock_diag;

pub struct SockBpfConfig {
    pub filter: PortFilter,
    pub destroy: DestroyChoice,
    pub dry_run: bool,
    /// Ignore CONFIG_HZ: age by the sends the reaper's visits see.
    pub force_idle_fallback: bool,
    /// Attach the CLOSE_WAIT tracepoint (the daemon); `sweep` only runs
    /// the iterators.
    pub events: bool,
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
    /// The iterators' links, handed to the worker.
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
    *scope = scope_value(&cfg.filter);
    if let Some(dir) = &cfg.pin_dir {
        // libbpf reuses a compatible pinned map, or creates and pins one
        let m = &mut open.maps;
        for (name, map) in PINNED_MAPS.iter().zip([&mut m.stamps, &mut m.sock_events]) {
            map.set_pin_path(dir.join(name))
                .with_context(|| format!("pin path for {name}"))?;
        }
    }

    // Destroying in the kernel needs the kfunc; every other case confirms
    // only (dry run, netlink), and a program that calls a missing kfunc
    // would not load, so it is left out.
    let destroy_in_kernel = method == Method::Kfunc && !cfg.dry_run;
    open.progs.act_destroy.set_autoload(destroy_in_kernel);
    open.progs.act_confirm.set_autoload(!destroy_in_kernel);

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
    let mut links = Vec::new();
    let mut pinned_links = Vec::new();
    if cfg.events {
        let mut tp = skel.progs.handle_set_state.attach().map_err(|e| {
            Unmet(format!(
                "attaching the socket program to inet_sock_set_state failed: {e}"
            ))
        })?;
        // attached: now the previous instance's link can go (the iterator
        // links are not pinned: they only run when the worker reads them)
        if let Some(dir) = &cfg.pin_dir {
            pinned_links = pins::replace_links(
                dir,
                LINK_PREFIX,
                &mut [("inet_sock_set_state".to_string(), &mut tp)],
            )?;
        }
        links.push(tp);
    }
    let act_prog = if destroy_in_kernel {
        &skel.progs.act_destroy
    } else {
        &skel.progs.act_confirm
    };
    let iter = |p: &libbpf_rs::ProgramMut<'_>, what: &str| {
        p.attach()
            .map_err(|e| Unmet(format!("attaching the tcp {what} iterator failed: {e}")))
    };
    let survey = iter(&skel.progs.survey, "survey")?;
    let act = iter(act_prog, "act")?;
    let bss = MapHandle::try_from(&skel.maps.bss).context("socket .bss map")?;
    let scope = MapHandle::try_from(&skel.maps.data_scope).context("socket .data.scope map")?;
    let judged = MapHandle::try_from(&skel.maps.judged).context("socket judged map")?;
    Ok(SockMonitor {
        skel,
        links,
        reaper: Reaper {
            survey,
            act,
            judged,
            method,
            filter: cfg.filter.clone(),
            bss,
            scope,
        },
        pinned_links,
    })
}

/// What one survey of a network namespace found.
#[derive(Debug, Default)]
pub struct Survey {
    /// CLOSE_WAIT sockets in scope.
    pub seen: Vec<Seen>,
    /// Local ports with a listener.
    pub listening: std::collections::HashSet<u16>,
}

/// Runs the iterators in one network namespace.
pub trait Reap: Send {
    /// Every CLOSE_WAIT socket in scope, and the listeners.
    fn survey(&mut self, netns: u64) -> Result<Survey>;
    /// Destroy the sockets given, each only if its facts are still those
    /// given: what became of each.
    fn act(&mut self, netns: u64, judged: &[(u64, Facts)]) -> Result<Vec<(Act, Seen)>>;
    /// Network namespaces to look into on a full survey.
    fn namespaces(&self) -> Vec<u64>;
    /// The kernel side's counters: (ring buffer drops, storage failures).
    fn counters(&self) -> Option<(u64, u64)>;
    /// A new port scope for the programs (SIGHUP), from the next event or visit.
    fn set_scope(&mut self, _filter: &PortFilter) -> Result<()> {
        Ok(())
    }
}

pub struct Reaper {
    survey: Link,
    act: Link,
    judged: MapHandle,
    pub method: Method,
    filter: PortFilter,
    bss: MapHandle,
    /// The programs' port scope: rewritten by a reload.
    scope: MapHandle,
}

/// The `.data.scope` section's value for a port filter.
fn scope_value(filter: &PortFilter) -> data_scope {
    let mut v = data_scope {
        n_ports: filter.ports.len() as u32,
        ports: [0; MAX_PORTS],
        n_exclude: filter.exclude.len() as u32,
        exclude_ports: [0; MAX_PORTS],
    };
    v.ports[..filter.ports.len()].copy_from_slice(&filter.ports);
    v.exclude_ports[..filter.exclude.len()].copy_from_slice(&filter.exclude);
    v
}

/// Read an iterator to its end, in the calling thread's namespace (the
/// tcp iterator walks the namespace of the thread that creates its fd).
fn run(link: &Link) -> Result<Vec<Record>> {
    let mut it = Iter::new(link).context("creating the tcp iterator")?;
    let mut out = Vec::new();
    it.read_to_end(&mut out)
        .context("reading the tcp iterator")?;
    decode_records(&out).map_err(anyhow::Error::msg)
}

impl Reaper {
    fn survey_here(&self) -> Result<Survey> {
        let mut s = Survey::default();
        for r in run(&self.survey)? {
            match r {
                Record::Seen(seen) => s.seen.push(seen),
                Record::Listen { port } => {
                    s.listening.insert(port);
                }
                Record::Acted(..) => {}
            }
        }
        Ok(s)
    }

    /// One act pass over at most MAX_JUDGED sockets.
    fn act_here(&self, judged: &[(u64, Facts)]) -> Result<Vec<(Act, Seen)>> {
        for (cookie, facts) in judged {
            // SAFETY: a plain C struct (the generated type), read as its bytes.
            let value = unsafe { plain::as_bytes(facts) };
            self.judged
                .update(&cookie.to_ne_bytes(), value, MapFlags::ANY)
                .context("filling the judged map")?;
        }
        let recs = run(&self.act);
        // what the pass did not reach (closed meanwhile) must not linger
        for (cookie, _) in judged {
            let _ = self.judged.delete(&cookie.to_ne_bytes());
        }
        let mut out = Vec::new();
        for r in recs? {
            let Record::Acted(act, seen) = r else {
                continue;
            };
            let act = match act {
                // the kernel applied the same filter; never act outside it
                Act::Confirmed if self.filter.allows_ends(&seen.ends) => {
                    let target = sock_diag::Target {
                        family: seen.ends.family,
                        local: seen.ends.local,
                        remote: seen.ends.remote,
                        ifindex: seen.ends.ifindex,
                        cookie: seen.cookie,
                    };
                    match sock_diag::destroy(&target) {
                        Ok(()) => Act::Destroyed,
                        Err(e) => Act::Failed(e.raw_os_error().unwrap_or(libc::EIO)),
                    }
                }
                Act::Confirmed => Act::Changed,
                other => other,
            };
            out.push((act, seen));
        }
        Ok(out)
    }
}

impl Reap for Reaper {
    fn survey(&mut self, ns: u64) -> Result<Survey> {
        let path = netns::find(ns).with_context(|| format!("netns {ns} no longer exists"))?;
        let this = &*self;
        netns::run_in(ns, &path, || this.survey_here())
            .with_context(|| format!("entering netns {ns} ({})", path.display()))?
    }

    fn act(&mut self, ns: u64, judged: &[(u64, Facts)]) -> Result<Vec<(Act, Seen)>> {
        let path = netns::find(ns).with_context(|| format!("netns {ns} no longer exists"))?;
        let this = &*self;
        let mut out = Vec::new();
        for chunk in judged.chunks(MAX_JUDGED) {
            out.extend(
                netns::run_in(ns, &path, || this.act_here(chunk))
                    .with_context(|| format!("entering netns {ns} ({})", path.display()))??,
            );
        }
        Ok(out)
    }

    fn namespaces(&self) -> Vec<u64> {
        netns::all().into_keys().collect()
    }

    fn set_scope(&mut self, filter: &PortFilter) -> Result<()> {
        if filter.ports.len() > MAX_PORTS || filter.exclude.len() > MAX_PORTS {
            anyhow::bail!("at most {MAX_PORTS} ports per list");
        }
        let v = scope_value(filter);
        // SAFETY: a plain C struct (the generated type), read as its bytes.
        let bytes = unsafe { plain::as_bytes(&v) };
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
