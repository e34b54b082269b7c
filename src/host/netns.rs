//! Network namespaces and socket owners, from /proc: where a namespace can
//! be entered from, running work inside one, and which process holds a
//! socket inode. Every namespace on the host counts, containers included.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, CloneFlags};

fn pids() -> impl Iterator<Item = u32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
}

/// Every network namespace on the host: inode → a file that names it
/// (a bind mount under /run/netns, or some process's /proc/PID/ns/net).
pub fn all() -> HashMap<u64, PathBuf> {
    let mut found = HashMap::new();
    let named = fs::read_dir("/run/netns").into_iter().flatten().flatten();
    for p in named
        .map(|e| e.path())
        .chain(pids().map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net"))))
    {
        if let Ok(m) = fs::metadata(&p) {
            found.entry(m.ino()).or_insert(p);
        }
    }
    found
}

/// The same, also looking at every thread: a thread may sit in a network
/// namespace no process is in (setns from one thread only).
pub fn all_with_threads() -> HashMap<u64, PathBuf> {
    let mut found = all();
    for pid in pids() {
        for t in fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = t.path().join("ns/net");
            if let Ok(m) = fs::metadata(&p) {
                found.entry(m.ino()).or_insert(p);
            }
        }
    }
    found
}

/// A file naming namespace `netns`, or None when no process and no bind
/// mount holds it any more (its sockets are gone with it). Processes first;
/// then single threads, which can sit in a namespace of their own.
pub fn find(netns: u64) -> Option<PathBuf> {
    let named = fs::read_dir("/run/netns").into_iter().flatten().flatten();
    let is_it = |p: &PathBuf| fs::metadata(p).is_ok_and(|m| m.ino() == netns);
    named
        .map(|e| e.path())
        .chain(pids().map(|pid| PathBuf::from(format!("/proc/{pid}/ns/net"))))
        .find(is_it)
        .or_else(|| {
            pids()
                .flat_map(|pid| {
                    fs::read_dir(format!("/proc/{pid}/task"))
                        .into_iter()
                        .flatten()
                        .flatten()
                        .map(|t| t.path().join("ns/net"))
                })
                .find(is_it)
        })
}

/// Run `f` on a short-lived thread inside namespace `netns` (named by
/// `path`). setns(CLONE_NEWNET) moves only the calling thread, and the
/// thread ends with the work, so nothing else runs in the namespace.
pub fn run_in<T: Send>(netns: u64, path: &Path, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let file = File::open(path)?;
    // the file may name another namespace now (PID reuse): check the one opened
    if file.metadata()?.ino() != netns {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} no longer names netns {netns}", path.display()),
        ));
    }
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("namespace worker thread panicked")))
    })
}

/// "socket:[12345]" → 12345
pub fn parse_socket_link(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// Who has a socket open: the first process found with an fd on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub comm: String,
}

/// A process holding a socket, with what per-program rules match on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    /// `/proc/PID/stat`'s name, bytes as the kernel keeps them.
    pub comm: Vec<u8>,
    /// `/proc/PID/exe`, when it can be read.
    pub exe: Option<PathBuf>,
}

impl Proc {
    pub fn holder(&self) -> Holder {
        Holder {
            pid: self.pid,
            comm: String::from_utf8_lossy(&self.comm).into_owned(),
        }
    }
}

/// Every process holding each socket inode (forked workers share one).
pub fn socket_procs(inodes: &HashSet<u64>) -> HashMap<u64, Vec<Proc>> {
    let mut found: HashMap<u64, Vec<Proc>> = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    for pid in pids() {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let mut mine: Vec<u64> = fds
            .flatten()
            .filter_map(|fd| {
                let link = fs::read_link(fd.path()).ok()?;
                link.to_str()
                    .and_then(parse_socket_link)
                    .filter(|i| inodes.contains(i))
            })
            .collect();
        if mine.is_empty() {
            continue;
        }
        mine.sort_unstable();
        mine.dedup();
        let Some(stat) = crate::host::procfs::stat(pid) else {
            continue; // gone meanwhile
        };
        let p = Proc {
            pid,
            comm: stat.comm.clone(),
            exe: fs::read_link(format!("/proc/{pid}/exe")).ok(),
        };
        for i in mine {
            found.entry(i).or_default().push(p.clone());
        }
    }
    found
}

/// Who holds each socket inode (the first process found with an fd on it).
pub fn socket_holders(inodes: &HashSet<u64>) -> HashMap<u64, Holder> {
    let mut found = HashMap::new();
    if inodes.is_empty() {
        return found;
    }
    for pid in pids() {
        let dir = format!("/proc/{pid}/fd");
        let Ok(fds) = fs::read_dir(&dir) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(link) = fs::read_link(fd.path()) else {
                continue;
            };
            let Some(ino) = link.to_str().and_then(parse_socket_link) else {
                continue;
            };
            if inodes.contains(&ino) && !found.contains_key(&ino) {
                found.insert(
                    ino,
                    Holder {
                        pid,
                        comm: crate::host::procfs::comm(pid),
                    },
                );
            }
        }
        if found.len() == inodes.len() {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_links() {
        assert_eq!(parse_socket_link("socket:[12345]"), Some(12345));
        assert_eq!(parse_socket_link("pipe:[12345]"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
        assert_eq!(parse_socket_link("/tmp/socket:[1]"), None);
    }

    #[test]
    fn own_namespace_is_found() {
        let own = crate::host::procfs::own_ns("net").unwrap();
        assert!(all().contains_key(&own));
        assert!(find(own).is_some());
    }

    #[test]
    fn own_socket_is_held_by_us() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        use std::os::fd::AsRawFd;
        let ino = fs::metadata(format!("/proc/self/fd/{}", l.as_raw_fd()))
            .unwrap()
            .ino();
        let h = socket_holders(&HashSet::from([ino]));
        assert_eq!(h[&ino].pid, std::process::id());
    }
}
