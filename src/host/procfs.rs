//! What /proc says about processes: who is alive, who has a file open or
//! locked. Parsers are pure and unit-tested; the readers are thin.
//!
//! Everything is read as bytes: a process name (`comm`, cut by the kernel
//! to 15 bytes, often in the middle of a UTF-8 character), a path in
//! `maps` or an fd link may be any bytes, and a reader that insists on
//! UTF-8 makes such a process invisible. A process whose files cannot be
//! read for any reason but its end is reported as unknown, and callers
//! count it as a possible holder (keep).

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::host::clock;

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

/// Inode number of one of our own namespaces (`mnt`, `pid`, `net`).
pub fn own_ns(kind: &str) -> io::Result<u64> {
    Ok(fs::metadata(format!("/proc/self/ns/{kind}"))?.ino())
}

/// Inode number of a process's namespace of `kind`.
pub fn ns_of(pid: u32, kind: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|m| m.ino())
}

/// Live processes in the mount namespace `mnt_ns`, best first: the one
/// that sees the most mounts (a chrooted process sees only those under its
/// root, and its /proc/PID/root is not the namespace's root), then those in
/// `prefer`, then by ascending PID (a container's init first, usually).
pub fn procs_in_mnt_ns(mnt_ns: u64, prefer: &[u32]) -> Vec<u32> {
    let inside = |p: u32| ns_of(p, "mnt") == Some(mnt_ns) && stat(p).is_some_and(|s| s.alive());
    let mut out: Vec<u32> = prefer.iter().copied().filter(|&p| inside(p)).collect();
    let mut rest: Vec<u32> = numeric_dirs(Path::new("/proc"))
        .filter(|p| !prefer.contains(p))
        .collect();
    rest.sort_unstable();
    // a few: one is enough unless it is chrooted or ends meanwhile
    out.extend(rest.into_iter().filter(|&p| inside(p)).take(4));
    let mounts = |p: u32| {
        read_bytes(Path::new(&format!("/proc/{p}/mountinfo")))
            .map(|t| lines(&t).filter(|l| !l.is_empty()).count())
            .unwrap_or(0)
    };
    let mut scored: Vec<(usize, u32)> = out.into_iter().map(|p| (mounts(p), p)).collect();
    // stable: ties keep the order above
    scored.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
    scored.into_iter().map(|(_, p)| p).collect()
}

/// The NSpid line of /proc/PID/status: the PID in each namespace, from
/// the outermost (ours) to the innermost (the process's own).
pub fn parse_nspid(status: &[u8]) -> Option<Vec<u32>> {
    fields(status_field(status, "NSpid")?)
        .map(parse_num)
        .collect()
}

/// A PID as some PID namespace numbers it, seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NsPid {
    /// That process (or thread) is alive; its PID here.
    Host(u32),
    /// No process of that namespace has this PID.
    Dead,
    /// We cannot see that namespace's processes.
    Unknown,
}

/// Find the process whose PID in namespace `pid_ns` (inode number) is
/// `nspid`. Threads count: a PID file may name a thread. When no process
/// of the namespace is visible, the namespace is gone (all its processes
/// ended) if we are in the initial PID namespace, which sees every
/// process; otherwise we cannot tell.
pub fn host_pid(nspid: u32, pid_ns: u64) -> NsPid {
    let mut seen = false;
    for pid in numeric_dirs(Path::new("/proc")) {
        if ns_of(pid, "pid") != Some(pid_ns) {
            continue;
        }
        seen = true;
        for tid in numeric_dirs(Path::new(&format!("/proc/{pid}/task"))) {
            let Ok(text) = read_bytes(Path::new(&format!("/proc/{pid}/task/{tid}/status"))) else {
                continue;
            };
            if parse_nspid(&text).and_then(|v| v.last().copied()) == Some(nspid)
                && stat(tid).is_some_and(|s| s.alive())
            {
                return NsPid::Host(tid);
            }
        }
    }
    if seen || in_initial_pid_ns() {
        NsPid::Dead
    } else {
        NsPid::Unknown
    }
}

/// Our NSpid has one entry only in the initial PID namespace.
pub fn in_initial_pid_ns() -> bool {
    read_bytes(Path::new("/proc/self/status"))
        .ok()
        .and_then(|t| parse_nspid(&t))
        .is_some_and(|v| v.len() == 1)
}

fn numeric_dirs(dir: &Path) -> impl Iterator<Item = u32> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// Who has any of `targets` open (an fd, inherited or not) or mapped, by a
/// single walk of /proc. Processes in `ignore` (the dead owner still on its
/// way out, this agent) are skipped, and so are zombies.
pub fn open_holders(targets: &HashSet<FileId>, ignore: &[u32]) -> HashMap<FileId, u32> {
    let mut found = HashMap::new();
    if targets.is_empty() {
        return found;
    }
    for pid in numeric_dirs(Path::new("/proc")) {
        if ignore.contains(&pid) {
            continue;
        }
        let mut hit = |id: FileId| {
            // a process that cannot be read may be alive: it counts
            if targets.contains(&id)
                && !found.contains_key(&id)
                && match look(pid) {
                    Look::Stat(s) => s.alive(),
                    Look::Gone => false,
                    Look::Unknown(e) => {
                        log::debug!("pid {pid} counts as a holder: {e}");
                        true
                    }
                }
            {
                found.insert(id, pid);
            }
        };
        let fd_dir = format!("/proc/{pid}/fd");
        if let Err(e) = fs::read_dir(&fd_dir) {
            if !is_gone(&e) {
                // Blind to this process: it may hold any of them.
                log::warn!("cannot inspect the open files of pid {pid}: {e}");
                for id in targets {
                    found.entry(*id).or_insert(pid);
                }
                continue;
            }
        }
        // Mappings: a process whose maps cannot be read (some hosts deny
        // even root the maps of their PID 1) is judged by its descriptors
        // alone; the BPF iterator backend sees every mapping.
        let maps = read_bytes(Path::new(&format!("/proc/{pid}/maps")));
        if let Err(e) = &maps {
            if !is_gone(e) {
                log::debug!("cannot read the mappings of pid {pid}: {e}");
            }
        }
        for fd in numeric_dirs(Path::new(&fd_dir)) {
            // stat follows the magic link to the open file itself
            if let Ok(m) = fs::metadata(format!("{fd_dir}/{fd}")) {
                hit(FileId::from_stat(m.dev(), m.ino()));
            }
        }
        if let Ok(maps) = &maps {
            for id in parse_maps(maps) {
                hit(id);
            }
        }
        if found.len() == targets.len() {
            break;
        }
    }
    found
}

/// File identities of the mappings in /proc/PID/maps
/// ("addr perms offset MAJ:MIN inode path").
/// The path at the end of a line may be any bytes; only the first five
/// fields are read.
pub fn parse_maps(text: &[u8]) -> impl Iterator<Item = FileId> + '_ {
    lines(text).filter_map(|line| {
        let mut f = fields(line);
        let dev = std::str::from_utf8(f.nth(3)?).ok()?;
        let ino: u64 = parse_num(f.next()?)?;
        if ino == 0 {
            return None;
        }
        let (maj, min) = dev.split_once(':')?;
        Some(FileId {
            major: u32::from_str_radix(maj, 16).ok()?,
            minor: u32::from_str_radix(min, 16).ok()?,
            ino,
        })
    })
}

/// One held lock from /proc/locks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLock {
    pub kind: String,
    /// The holder; 0 when unknown (OFD locks show -1, other namespaces 0).
    pub pid: u32,
    pub file: FileId,
}

/// Parse /proc/locks, e.g. `1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF`.
/// Waiters (`1: -> FLOCK ...`) hold nothing and are skipped.
pub fn parse_proc_locks(text: &[u8]) -> Vec<HeldLock> {
    lines(text)
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?;
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(1) == Some(&"->") || f.len() < 6 {
                return None;
            }
            let pid: i64 = f[4].parse().ok()?;
            let mut dev = f[5].splitn(3, ':');
            let major = u32::from_str_radix(dev.next()?, 16).ok()?;
            let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
            let ino: u64 = dev.next()?.parse().ok()?;
            Some(HeldLock {
                kind: f[1].to_string(),
                pid: u32::try_from(pid).unwrap_or(0),
                file: FileId { major, minor, ino },
            })
        })
        .collect()
}

pub fn held_locks() -> Vec<HeldLock> {
    read_bytes(Path::new("/proc/locks"))
        .map(|t| parse_proc_locks(&t))
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
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
    fn proc_locks() {
        let text = b"1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 99 00:2a:17 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 100 00:2a:17 0 EOF\n\
                    3: OFDLCK ADVISORY  READ  -1 fd:00:42 0 EOF\n\
                    junk\n";
        let l = parse_proc_locks(text);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].pid, 1234);
        assert_eq!(
            l[0].file,
            FileId {
                major: 8,
                minor: 1,
                ino: 5678
            }
        );
        assert_eq!(l[1].kind, "FLOCK");
        assert_eq!(
            l[1].file,
            FileId {
                major: 0,
                minor: 0x2a,
                ino: 17
            }
        );
        assert_eq!(l[2].pid, 0);
        assert_eq!(
            l[2].file,
            FileId {
                major: 0xfd,
                minor: 0,
                ino: 42
            }
        );
    }

    #[test]
    fn maps() {
        let text = b"55d0c0a00000-55d0c0a02000 r--p 00000000 fd:01 1234 /usr/bin/cat\n\
                    7ffd1000-7ffd2000 rw-p 00000000 00:00 0 [stack]\n";
        let v: Vec<FileId> = parse_maps(text).collect();
        assert_eq!(
            v,
            vec![FileId {
                major: 0xfd,
                minor: 1,
                ino: 1234
            }]
        );
    }

    #[test]
    fn nspid_lines() {
        let t = b"Name:\tsh\nTgid:\t5\nNSpid:\t4242\t17\t3\nNSpgid:\t1\n";
        assert_eq!(parse_nspid(t), Some(vec![4242, 17, 3]));
        assert_eq!(parse_nspid(b"NSpid:\t9\n"), Some(vec![9]));
        assert_eq!(parse_nspid(b"Name: x\n"), None);
        let me = std::process::id();
        let ns = ns_of(me, "pid").unwrap();
        if in_initial_pid_ns() {
            assert_eq!(host_pid(me, ns), NsPid::Host(me));
        }
        let mnt = ns_of(me, "mnt").unwrap();
        assert_eq!(procs_in_mnt_ns(mnt, &[me]).first(), Some(&me));
    }

    /// The kernel's own answer: the initial PID namespace has the fixed
    /// inode PROC_PID_INIT_INO (include/linux/proc_ns.h).
    fn kernel_says_initial() -> bool {
        use std::os::unix::fs::MetadataExt;
        const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;
        fs::metadata("/proc/self/ns/pid").unwrap().ino() == PROC_PID_INIT_INO
    }

    #[test]
    fn initial_pid_namespace_as_the_kernel_says() {
        assert_eq!(in_initial_pid_ns(), kernel_says_initial());
    }

    /// In a new PID namespace (a grandchild, after unshare(CLONE_NEWPID)),
    /// the answer is no, whatever it is here.
    #[test]
    fn not_the_initial_pid_namespace_inside_a_new_one() {
        if !privileged("unshare(CLONE_NEWPID)") {
            return;
        }
        // SAFETY: the children call only unshare, fork, waitpid, a /proc
        // read and _exit; glibc keeps malloc usable after fork.
        let child = unsafe { libc::fork() };
        assert!(child >= 0);
        if child == 0 {
            let code = unsafe {
                if libc::unshare(libc::CLONE_NEWPID) != 0 {
                    3
                } else {
                    let inner = libc::fork();
                    if inner == 0 {
                        let answer = in_initial_pid_ns() || kernel_says_initial();
                        libc::_exit(if answer { 1 } else { 0 });
                    }
                    let mut st = 0;
                    libc::waitpid(inner, &mut st, 0);
                    if libc::WIFEXITED(st) {
                        libc::WEXITSTATUS(st)
                    } else {
                        4
                    }
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut st = 0;
        // SAFETY: our own child.
        unsafe { libc::waitpid(child, &mut st, 0) };
        assert!(libc::WIFEXITED(st), "wait status {st:#x}");
        match libc::WEXITSTATUS(st) {
            0 => {}
            1 => panic!("in_initial_pid_ns() said yes inside a new PID namespace"),
            3 => panic!("unshare(CLONE_NEWPID) failed as root"),
            c => panic!("the child in the new PID namespace ended with {c}"),
        }
    }

    #[test]
    fn dev_encodings_agree() {
        let k = FileId::from_kernel((259 << 20) | 3, 9);
        let u = FileId::from_stat(libc::makedev(259, 3), 9);
        assert_eq!(k, u);
    }
}
