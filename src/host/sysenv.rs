//! What the host must give the agent before anything loads: capabilities,
//! kernel BTF, and tracefs (mounted here when the host booted without it).
//! Failures are `Unmet`: exit 2 with one line naming what is missing.

use std::fmt;
use std::path::Path;

use nix::mount::{mount, MsFlags};

/// A requirement the host does not meet (exit code 2).
#[derive(Debug)]
pub struct Unmet(pub String);

impl fmt::Display for Unmet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unmet {}

pub const TRACEFS: &str = "/sys/kernel/tracing";

/// Capability numbers (linux/capability.h) the agent uses, and why.
const NEEDED_CAPS: &[(u32, &str)] = &[
    (1, "CAP_DAC_OVERRIDE"),    // read lock files of any user
    (2, "CAP_DAC_READ_SEARCH"), // walk any directory
    (3, "CAP_FOWNER"),          // remove others' files in sticky dirs (/tmp)
    (6, "CAP_SETGID"),          // act as a lock's creator: setfsgid, setgroups
    (7, "CAP_SETUID"),          // act as a lock's creator: setfsuid
    (19, "CAP_SYS_PTRACE"),     // read /proc/PID/fd and maps of every process
    (21, "CAP_SYS_ADMIN"),      // mount tracefs; BPF iterators, namespaces
    (38, "CAP_PERFMON"),        // attach tracepoints
    (39, "CAP_BPF"),            // load programs and maps
];

pub fn parse_cap_eff(status: &[u8]) -> Option<u64> {
    let v = crate::host::procfs::status_field(status, "CapEff")?;
    u64::from_str_radix(std::str::from_utf8(v).ok()?.trim(), 16).ok()
}

/// Names of needed capabilities missing from a CapEff mask.
pub fn missing_caps(eff: u64) -> Vec<&'static str> {
    let has = |n: u32| eff & (1u64 << n) != 0;
    NEEDED_CAPS
        .iter()
        .filter(|&&(n, name)| {
            // CAP_SYS_ADMIN stands in for CAP_BPF/CAP_PERFMON
            let covered = matches!(name, "CAP_BPF" | "CAP_PERFMON") && has(21);
            !has(n) && !covered
        })
        .map(|&(_, name)| name)
        .collect()
}

pub fn check_privileges() -> Result<(), Unmet> {
    // bytes: our own name may be anything (a renamed binary)
    let status = crate::host::procfs::read_bytes(Path::new("/proc/self/status")).map_err(|e| {
        Unmet(format!(
            "cannot read /proc/self/status: {e} (is /proc mounted?)"
        ))
    })?;
    let eff = parse_cap_eff(&status).unwrap_or(0);
    let missing = missing_caps(eff);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Unmet(format!(
            "eghostbuster must run as root: missing capabilities {}",
            missing.join(", ")
        )))
    }
}

/// CAP_NET_ADMIN: sock_diag SOCK_DESTROY (netlink destruction) needs it.
pub const CAP_NET_ADMIN: u32 = 12;

/// Is capability `cap` in our effective set?
pub fn has_cap(cap: u32) -> bool {
    crate::host::procfs::read_bytes(Path::new("/proc/self/status"))
        .ok()
        .and_then(|s| parse_cap_eff(&s))
        .is_some_and(|eff| eff & (1u64 << cap) != 0)
}

/// The capability a destruction method needs, or exit 2 naming it.
pub fn require_net_admin(what: &str) -> Result<(), Unmet> {
    if has_cap(CAP_NET_ADMIN) {
        Ok(())
    } else {
        Err(Unmet(format!(
            "{what} destroys sockets with sock_diag SOCK_DESTROY, which needs CAP_NET_ADMIN: this process lacks it"
        )))
    }
}

pub fn check_btf() -> Result<(), Unmet> {
    if Path::new("/sys/kernel/btf/vmlinux").exists() {
        Ok(())
    } else {
        Err(Unmet(
            "the kernel has no BTF (/sys/kernel/btf/vmlinux missing; needs CONFIG_DEBUG_INFO_BTF=y, Linux 5.8 or later)"
                .into(),
        ))
    }
}

/// Syscall tracepoints are attached through tracefs; many hosts boot
/// without it. Mount it at its standard place when it is missing.
pub fn ensure_tracefs() -> Result<(), Unmet> {
    let events = Path::new(TRACEFS).join("events");
    if events.exists() {
        return Ok(());
    }
    if Path::new("/sys/kernel/debug/tracing/events").exists() {
        return Ok(()); // libbpf also looks there
    }
    mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| {
        Unmet(format!(
            "tracefs is not mounted and mounting it at {TRACEFS} failed: {e}"
        ))
    })?;
    log::info!("mounted tracefs at {TRACEFS} (the host had none; syscall tracepoints need it)");
    Ok(())
}

const BPF_FS_MAGIC: i64 = 0xcafe4a11;

pub fn is_bpffs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
}

/// Pins live on bpffs, which many hosts do not mount at boot: mount it at
/// /sys/fs/bpf when a pin directory below it is asked for and it is missing.
pub fn ensure_bpffs(pin_root: &Path) -> Result<(), Unmet> {
    let base = Path::new("/sys/fs/bpf");
    if !pin_root.starts_with(base) || is_bpffs(base) {
        return Ok(());
    }
    mount(
        Some("bpf"),
        base,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| {
        Unmet(format!(
            "bpffs is not mounted and mounting it at {} failed: {e}",
            base.display()
        ))
    })?;
    log::info!(
        "mounted bpffs at {} (the host had none; pins need it)",
        base.display()
    );
    Ok(())
}

/// Does the kernel have this syscall tracepoint (`sys_exit_openat2`, …)?
pub fn has_syscall_tracepoint(name: &str) -> bool {
    [TRACEFS, "/sys/kernel/debug/tracing"]
        .iter()
        .any(|root| Path::new(root).join("events/syscalls").join(name).exists())
}

/// Does `sched_process_exit` pass `group_dead` (a late addition to the
/// tracepoint)? Read from the kernel's BTF: the raw tracepoint's prototype
/// `btf_trace_sched_process_exit` then has three parameters.
pub fn exit_tracepoint_has_group_dead() -> bool {
    use libbpf_rs::btf::{types, Btf};
    let Ok(btf) = Btf::from_vmlinux() else {
        return false;
    };
    let Some(td) = btf.type_by_name::<types::Typedef<'_>>("btf_trace_sched_process_exit") else {
        return false;
    };
    td.next_type()
        .and_then(|ptr| ptr.next_type())
        .and_then(|proto| types::FuncProto::try_from(proto).ok())
        .is_some_and(|fp| fp.len() >= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        let status = b"Name:\tx\nCapEff:\t000001ffffffffff\n";
        let eff = parse_cap_eff(status).unwrap();
        assert!(missing_caps(eff).is_empty());
        assert_eq!(missing_caps(0).len(), NEEDED_CAPS.len());
        // CAP_SYS_ADMIN covers BPF and PERFMON on older kernels
        let old = (1 << 1) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 7) | (1 << 19) | (1 << 21);
        assert!(missing_caps(old).is_empty());
        assert_eq!(missing_caps(old & !(1 << 3)), vec!["CAP_FOWNER"]);
        // acting as a lock's creator needs both
        assert_eq!(
            missing_caps(old & !(1 << 6) & !(1 << 7)),
            vec!["CAP_SETGID", "CAP_SETUID"]
        );
        assert!(parse_cap_eff(b"nothing").is_none());
    }
}
