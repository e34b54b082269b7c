//! For `sweep`, which does not know in which PID namespace a PID file was
//! written: the PIDs in use in any PID namespace on the host. A PID is
//! taken as dead only when no live process has it in any namespace (a
//! container's daemon writes its PID as its own namespace numbers it, and
//! its PID file may sit on a host path).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use crate::host::procfs;

/// PID (as some namespace numbers it) → start times (clock ticks since
/// boot) of the live tasks that have it.
pub type InUse = HashMap<u32, Vec<u64>>;

/// Every live task's PIDs, in every namespace it is in (its NSpid line).
pub fn in_use() -> InUse {
    let mut out: InUse = HashMap::new();
    let pids = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
    for pid in pids {
        let Some(start) = procfs::stat(pid)
            .filter(|s| s.alive())
            .map(|s| s.start_ticks)
        else {
            continue;
        };
        let tasks = fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
        for tid in tasks {
            let Ok(text) = procfs::read_bytes(Path::new(&format!("/proc/{pid}/task/{tid}/status")))
            else {
                continue;
            };
            for n in procfs::parse_nspid(&text).unwrap_or_default() {
                out.entry(n).or_default().push(start);
            }
        }
    }
    out
}

/// What a PID in a file written at `mtime_ns` says, given every PID in
/// use: Some(false) dead, Some(true) reused (every process with it started
/// after the file was written), None alive (kept).
pub fn stale(pid: u32, mtime_ns: i128, in_use: &InUse) -> Option<bool> {
    match in_use.get(&pid) {
        None => Some(false),
        Some(starts) => starts
            .iter()
            .all(|&s| crate::files::verdict::started_after(procfs::start_wall_ns(s), mtime_ns))
            .then_some(true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_reused_alive() {
        let me = std::process::id();
        let all = in_use();
        assert!(all.contains_key(&me));
        let now = crate::host::clock::wall_ns();
        // written now: we started before, so we may have written it
        assert_eq!(stale(me, now, &all), None);
        // written long before we started: reused
        assert_eq!(stale(me, 0, &all), Some(true));
        let free = (4_000_000..4_194_304)
            .find(|p| !all.contains_key(p))
            .unwrap();
        assert_eq!(stale(free, now, &all), Some(false));
    }
}
