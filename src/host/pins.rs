//! The pin directory shared by the lock and socket monitors: one bpffs
//! directory per daemon (`--pin-dir`), flocked so that only one daemon uses
//! it, with a subdirectory per version and BPF source hash. Both monitors
//! pin their maps and links there; a restart reuses the maps and replaces
//! the links (attach new, unpin the old, pin the new).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libbpf_rs::Link;

use crate::host::sysenv::{self, Unmet};

/// Pins are kept per version and per BPF source hash. bpffs refuses names
/// with a '.', hence 0_1_0-1a2b3c4d.
pub fn pin_version() -> String {
    format!(
        "{}-{}",
        env!("CARGO_PKG_VERSION").replace('.', "_"),
        env!("EGHOSTBUSTER_BPF_HASH")
    )
}

/// Is `name` one of our version directories (`0_1_0-1a2b3c4d`, as
/// `pin_version` makes them)? Nothing else under a pin root is touched:
/// the root may be shared (`--pin-dir /sys/fs/bpf`).
pub fn is_version_dir(name: &std::ffi::OsStr) -> bool {
    let Some(s) = name.to_str() else {
        return false;
    };
    let Some((ver, hash)) = s.rsplit_once('-') else {
        return false;
    };
    hash.len() == 8
        && hash.bytes().all(|b| b.is_ascii_hexdigit())
        && !ver.is_empty()
        && ver
            .split('_')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// This daemon's pin directory, taken once (main.rs) for both monitors.
/// The flock on the root is held as long as this lives.
pub struct PinDir {
    /// `<root>/<pin_version()>`: where maps and links are pinned.
    pub dir: PathBuf,
    _lock: File,
}

impl PinDir {
    /// Take the pin root: on bpffs (mounted when missing), locked, other
    /// versions' pins removed (their layout is not ours to read).
    pub fn take(root: &Path) -> Result<PinDir> {
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
            if p != mine && p.is_dir() && is_version_dir(&entry.file_name()) {
                remove_pins(&p)?;
                log::info!("removed the pins of another version ({})", p.display());
            }
        }
        std::fs::create_dir_all(&mine)?;
        Ok(PinDir {
            dir: mine,
            _lock: lock,
        })
    }
}

/// `eghostbuster unpin`: remove every version's pins under the pin root,
/// once no daemon holds it.
pub fn unpin_all(root: &Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    if !sysenv::is_bpffs(root) {
        return Err(Unmet(format!(
            "{} is not on a bpf filesystem; not touching it",
            root.display()
        ))
        .into());
    }
    let _lock = lock_pin_root(root)?;
    let mut n = 0;
    let mut others = 0;
    for entry in std::fs::read_dir(root)?.flatten() {
        if entry.path().is_dir() && is_version_dir(&entry.file_name()) {
            remove_pins(&entry.path())?;
            n += 1;
        } else {
            others += 1;
        }
    }
    if others > 0 {
        // not ours (e.g. `--pin-dir /sys/fs/bpf`): leave them, and the root
        log::info!(
            "unpinned {n} version(s) in {}; left {others} entries that are not eghostbuster's",
            root.display()
        );
        return Ok(());
    }
    std::fs::remove_dir(root).with_context(|| format!("removing {}", root.display()))?;
    log::info!("unpinned {} ({n} version(s))", root.display());
    Ok(())
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

/// The new programs are attached: detach a previous instance's links
/// (their pins hold them) whose names start with `prefix`, and pin ours,
/// named `prefix` + name, in their place. Old and new programs write the
/// same pinned maps, so nothing is lost in between. Each monitor has its
/// own prefix, so one never detaches the other's links. Returns the paths.
pub fn replace_links(
    dir: &Path,
    prefix: &str,
    links: &mut [(String, &mut Link)],
) -> Result<Vec<PathBuf>> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            if let Ok(mut old) = Link::open(entry.path()) {
                let _ = old.unpin();
            } else {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut pinned = Vec::new();
    for (name, link) in links.iter_mut() {
        let path = dir.join(pin_name(prefix, name));
        link.pin(&path)
            .with_context(|| format!("pinning {}", path.display()))?;
        pinned.push(path);
    }
    Ok(pinned)
}

/// `prefix` + the first word of `what`, in characters bpffs accepts.
pub fn pin_name(prefix: &str, what: &str) -> String {
    let base: String = what
        .split(' ')
        .next()
        .unwrap_or(what)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    format!("{prefix}{base}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bpffs_accepts() {
        assert!(!pin_version().contains('.'));
        assert!(is_version_dir(std::ffi::OsStr::new(&pin_version())));
        for other in [
            "cilium",
            "tc",
            "0_1_0",
            "0_1_0-xyz",
            "a_b-1a2b3c4d",
            "0_1_0-1a2b3c4d5",
        ] {
            assert!(!is_version_dir(std::ffi::OsStr::new(other)), "{other}");
        }
        assert_eq!(
            pin_name("link_", "sched_process_exit (no group_dead: signal->live)"),
            "link_sched_process_exit"
        );
        assert_eq!(
            pin_name("sock_link_", "inet_sock_set_state"),
            "sock_link_inet_sock_set_state"
        );
        // one monitor's prefix never matches the other's links
        assert!(!"sock_link_inet_sock_set_state".starts_with("link_"));
        assert!(!"link_sys_exit_openat".starts_with("sock_link_"));
    }
}
