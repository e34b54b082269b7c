//! What /proc says about processes: who is alive, who has a file open or
//! locked. Parsers are pure and unit-tested; the readers are thin.
//!
//! Everything is read as bytes: a process name (`comm`, cut by the kernel
//! to 15 bytes, often in the middle of a UTF-8 character), a path in
//! `maps` or an fd link may be any bytes, and a reader that insists on
//! UTF-8 makes such a process invisible. A process whose files cannot be
//! read for any reason but its end is reported as unknown, and callers
//! count it as a possible holder (keep).
//!
//! This file: a process's stat and status, and its clocks; `ns.rs`: its
//! namespaces and PIDs as other namespaces number them; `holders.rs`: who
//! has a file open, mapped or locked.

mod holders;
mod ns;

use std::fs;
use std::io;
use std::path::Path;

use crate::host::clock;
pub use holders::{held_locks, open_holders, HeldLock};
pub use ns::{host_pid, ns_of, own_ns, parse_nspid, procs_in_mnt_ns, NsPid};

/// A file's identity in user-space terms: device (major, minor) and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId {
    pub major: u32,
    pub minor: u32,
    pub ino: u64,
}

impl FileId {
    /// From a kernel `dev_t` (MAJOR << 20 | MINOR), as BPF reads `s_dev`.
    pub fn from_kernel(dev: u64, ino: u64) -> Self {
        FileId {
            major: (dev >> 20) as u32,
            minor: (dev & 0xfffff) as u32,
            ino,
        }
    }

    /// From a user-space `st_dev` as stat(2) returns it.
    pub fn from_stat(dev: u64, ino: u64) -> Self {
        FileId {
            major: libc::major(dev),
            minor: libc::minor(dev),
            ino,
        }
    }
}

/// One process as /proc/PID/stat shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The command name, as the kernel keeps it: up to 15 bytes, any bytes.
    pub comm: Vec<u8>,
    pub state: char,
    pub ppid: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

impl ProcStat {
    /// Zombies and dead tasks are not alive: they can hold nothing.
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }

    /// The command name as text, for the records that keep it as a
    /// `String` (invalid UTF-8 replaced). Log lines escape it.
    pub fn comm_lossy(&self) -> String {
        String::from_utf8_lossy(&self.comm).into_owned()
    }
}

/// What one look at /proc/PID tells.
#[derive(Debug)]
pub enum Look {
    Stat(ProcStat),
    /// No such process (any more).
    Gone,
    /// There, but its files could not be read or understood: it may be
    /// alive and may hold anything.
    Unknown(io::Error),
}

/// /proc files that carry user-chosen bytes are small; this bounds every
/// read of one (a `maps` of a huge process is the largest).
const MAX_PROC_FILE: u64 = 64 << 20;

/// Read a /proc (or other kernel) file as bytes, bounded.
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    fs::File::open(path)?
        .take(MAX_PROC_FILE)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// ENOENT, or ESRCH (the process ended while its file was read): gone.
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

fn parse_num<T: std::str::FromStr>(b: &[u8]) -> Option<T> {
    std::str::from_utf8(b).ok()?.trim().parse().ok()
}

fn fields(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    b.split(|c| c.is_ascii_whitespace())
        .filter(|f| !f.is_empty())
}

fn lines(b: &[u8]) -> impl Iterator<Item = &[u8]> {
    b.split(|&c| c == b'\n')
}

/// Parse /proc/PID/stat. The command name is in parentheses and may itself
/// contain spaces, parentheses and any other bytes, so split at the last ')'.
pub fn parse_stat(pid: u32, text: &[u8]) -> Option<ProcStat> {
    let open = text.iter().position(|&c| c == b'(')?;
    let close = text.iter().rposition(|&c| c == b')')?;
    let comm = text.get(open + 1..close)?.to_vec();
    let rest: Vec<&[u8]> = fields(text.get(close + 1..)?).collect();
    // rest[0] = state (field 3), rest[1] = ppid (4), rest[19] = starttime (22)
    let state = *rest.first()?.first()?;
    Some(ProcStat {
        pid,
        comm,
        state: state.is_ascii().then_some(state as char)?,
        ppid: parse_num(rest.get(1)?)?,
        start_ticks: parse_num(rest.get(19)?)?,
    })
}

/// Look at one process: its stat, or why there is none.
pub fn look(pid: u32) -> Look {
    match read_bytes(Path::new(&format!("/proc/{pid}/stat"))) {
        Ok(text) => match parse_stat(pid, &text) {
            Some(s) => Look::Stat(s),
            None => Look::Unknown(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat cannot be parsed"),
            )),
        },
        Err(e) if is_gone(&e) => Look::Gone,
        Err(e) => Look::Unknown(e),
    }
}

/// The process's stat, when it can be read (see [`look`] to tell a
/// process that is gone from one that cannot be read).
pub fn stat(pid: u32) -> Option<ProcStat> {
    match look(pid) {
        Look::Stat(s) => Some(s),
        _ => None,
    }
}

/// The value of one `Key:` line of /proc/PID/status.
pub fn status_field<'a>(status: &'a [u8], key: &str) -> Option<&'a [u8]> {
    lines(status).find_map(|l| l.strip_prefix(key.as_bytes())?.strip_prefix(b":"))
}

/// The thread group a thread id belongs to (a PID file may name a thread).
pub fn tgid(pid: u32) -> Option<u32> {
    let text = read_bytes(Path::new(&format!("/proc/{pid}/status"))).ok()?;
    parse_num(status_field(&text, "Tgid")?)
}

/// The command name of a process, or "?" once it is gone (invalid UTF-8
/// replaced: for records that keep it as text).
pub fn comm(pid: u32) -> String {
    stat(pid)
        .map(|s| s.comm_lossy())
        .unwrap_or_else(|| "?".into())
}

pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// Kernel `start_boottime` (ns) in the clock ticks /proc reports.
pub fn boottime_ns_to_ticks(ns: u64) -> u64 {
    ns / (1_000_000_000 / clock_ticks_per_sec())
}

/// Clock ticks since boot, as /proc counts process start times.
pub fn uptime_ticks() -> u64 {
    boottime_ns_to_ticks(clock::boot_ns())
}

/// Wall-clock time (ns since the epoch) a process started, from its ticks.
pub fn start_wall_ns(start_ticks: u64) -> i128 {
    let wall = clock::wall_ns();
    let boot = clock::boot_ns() as i128;
    let start_boot = start_ticks as i128 * 1_000_000_000 / clock_ticks_per_sec() as i128;
    wall - boot + start_boot
}

fn numeric_dirs(dir: &Path) -> impl Iterator<Item = u32> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::holders::parse_maps;
    use super::*;

    /// Root, or skip; a skip is a failure under EGHOSTBUSTER_REQUIRE_BPF=1
    /// (CI), as for the privileged end-to-end tests.
    pub(crate) fn privileged(what: &str) -> bool {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        assert!(
            std::env::var("EGHOSTBUSTER_REQUIRE_BPF").as_deref() != Ok("1"),
            "EGHOSTBUSTER_REQUIRE_BPF=1 but not root: {what} needs root"
        );
        eprintln!("skipped: {what} needs root");
        false
    }

    #[test]
    fn stat_with_odd_comm() {
        let line =
            b"4242 (a b) c)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(4242, line).unwrap();
        assert_eq!(s.comm, b"a b) c)");
        assert_eq!(s.state, 'S');
        assert_eq!(s.ppid, 17);
        assert_eq!(s.start_ticks, 987654);
        assert!(s.alive());
        let z = parse_stat(1, b"1 (x) Z 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0").unwrap();
        assert!(!z.alive());
        assert!(parse_stat(1, b"1 (x) S").is_none());
        assert!(parse_stat(1, b"garbage").is_none());
    }

    #[test]
    fn stat_with_a_comm_cut_mid_utf8() {
        // `svc-синхронизация` cut by the kernel at 15 bytes: "svc-синхр" + half a char
        let mut line = b"77 (svc-\xd1\x81\xd0\xb8\xd0\xbd\xd1\x85\xd1".to_vec();
        line.extend_from_slice(b") S 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 4242 0 0\n");
        assert!(std::str::from_utf8(&line).is_err());
        let s = parse_stat(77, &line).unwrap();
        assert_eq!(s.comm.len(), 13);
        assert_eq!(s.start_ticks, 4242);
        assert!(s.alive());
        assert!(s.comm_lossy().starts_with("svc-"));
        let status = b"Name:\tsvc-\xd1\n\xffjunk\nTgid:\t77\nNSpid:\t77\t3\n";
        assert_eq!(
            parse_num::<u32>(status_field(status, "Tgid").unwrap()),
            Some(77)
        );
        assert_eq!(parse_nspid(status), Some(vec![77, 3]));
        let maps = b"1000-2000 r--p 00000000 fd:01 99 /tmp/\xff\xfe odd\n";
        assert_eq!(parse_maps(maps).count(), 1);
    }

    #[test]
    fn gone_and_unknown_processes() {
        assert!(matches!(look(u32::MAX - 1), Look::Gone));
        assert!(matches!(look(std::process::id()), Look::Stat(_)));
    }

    #[test]
    fn own_stat_is_readable() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert!(s.alive());
        assert!(s.start_ticks > 0);
    }

    #[test]
    fn dev_encodings_agree() {
        let k = FileId::from_kernel((259 << 20) | 3, 9);
        let u = FileId::from_stat(libc::makedev(259, 3), 9);
        assert_eq!(k, u);
    }
}
