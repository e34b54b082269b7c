//! The processes a file class's tracked files wait for: each file has one
//! owner (a process: PID and start time) and is judged when it exits.
//! Owners are watched through pidfds (host::pidwatch), so an exit is heard
//! at once and nothing runs on the exits of the rest of the host. When no
//! pidfd can be had (descriptors exhausted) the owner is polled once a
//! second instead.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use crate::host::pidwatch::{ExitWait, Exits, Watch};
use crate::host::procfs;

/// A process, as start time (clock ticks since boot) tells it from any
/// later one with its PID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proc {
    pub pid: u32,
    pub start_ticks: u64,
}

impl Proc {
    /// The live thread group `pid` belongs to (a PID file may name a
    /// thread), as it is now; None when nothing lives at `pid`.
    pub fn live(pid: u32) -> Option<Proc> {
        let tgid = procfs::tgid(pid).unwrap_or(pid);
        let s = procfs::stat(tgid).filter(|s| s.alive())?;
        Some(Proc {
            pid: tgid,
            start_ticks: s.start_ticks,
        })
    }

    /// Its command name now — readable while it is a zombie, not yet
    /// reaped, so what an exited process last ran (after an exec) —
    /// or None once its PID names nothing, or another process.
    pub fn comm_now(&self) -> Option<String> {
        procfs::stat(self.pid)
            .filter(|s| s.start_ticks == self.start_ticks)
            .map(|s| s.comm_lossy())
    }

    pub fn alive(&self) -> bool {
        procfs::stat(self.pid).is_some_and(|s| s.alive() && s.start_ticks == self.start_ticks)
    }
}

struct Owner<K> {
    token: Option<u64>,
    keys: HashSet<K>,
}

pub struct Owners<K> {
    exits: Exits,
    owners: HashMap<Proc, Owner<K>>,
    by_token: HashMap<u64, Proc>,
}

/// What adding a file to an owner gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Its exit will be heard.
    Watched,
    /// No pidfd: its exit is noticed by polling, once a second.
    Polled,
    /// It has ended already: judge the file now.
    Gone,
}

impl<K: Copy + Eq + Hash> Owners<K> {
    /// The owners, and the waiting side for the worker's wake thread.
    pub fn new() -> std::io::Result<(Self, ExitWait)> {
        let (exits, wait) = Exits::new()?;
        Ok((
            Owners {
                exits,
                owners: HashMap::new(),
                by_token: HashMap::new(),
            },
            wait,
        ))
    }

    /// `key` waits for `p`'s exit.
    pub fn add(&mut self, key: K, p: Proc) -> Added {
        if let Some(o) = self.owners.get_mut(&p) {
            o.keys.insert(key);
            return if o.token.is_some() {
                Added::Watched
            } else {
                Added::Polled
            };
        }
        let token = match self.exits.watch(p.pid, p.start_ticks) {
            Ok(Watch::Token(t)) => Some(t),
            Ok(Watch::Gone) => return Added::Gone,
            Err(e) => {
                log::warn!(
                    "cannot watch pid {} through a pidfd ({e}): polling it",
                    p.pid
                );
                if !p.alive() {
                    return Added::Gone;
                }
                None
            }
        };
        if let Some(t) = token {
            self.by_token.insert(t, p);
        }
        self.owners.insert(
            p,
            Owner {
                token,
                keys: HashSet::from([key]),
            },
        );
        if token.is_some() {
            Added::Watched
        } else {
            Added::Polled
        }
    }

    /// `key` no longer waits for `p`.
    pub fn remove(&mut self, key: K, p: Proc) {
        let Some(o) = self.owners.get_mut(&p) else {
            return;
        };
        o.keys.remove(&key);
        if o.keys.is_empty() {
            self.drop_owner(p);
        }
    }

    fn drop_owner(&mut self, p: Proc) {
        if let Some(o) = self.owners.remove(&p) {
            if let Some(t) = o.token {
                self.exits.forget(t);
                self.by_token.remove(&t);
            }
        }
    }

    /// A pidfd reported: the process that ended and the files that waited
    /// for it; None for a token no longer watched.
    pub fn exited(&mut self, token: u64) -> Option<(Proc, Vec<K>)> {
        let p = self.by_token.remove(&token)?;
        self.exits.forget(token);
        let o = self.owners.remove(&p)?;
        Some((p, o.keys.into_iter().collect()))
    }

    /// Once a second: polled owners that ended, and their files.
    pub fn poll(&mut self) -> Vec<(Proc, Vec<K>)> {
        let dead: Vec<Proc> = self
            .owners
            .iter()
            .filter(|(p, o)| o.token.is_none() && !p.alive())
            .map(|(p, _)| *p)
            .collect();
        dead.into_iter()
            .filter_map(|p| {
                let o = self.owners.remove(&p)?;
                Some((p, o.keys.into_iter().collect()))
            })
            .collect()
    }

    /// Processes watched (for debug figures).
    pub fn len(&self) -> usize {
        self.owners.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn files_wait_for_their_owner() {
        let (mut owners, wait) = Owners::<u32>::new().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let p = Proc::live(child.id()).unwrap();
        assert_eq!(owners.add(1, p), Added::Watched);
        assert_eq!(owners.add(2, p), Added::Watched);
        assert_eq!(owners.len(), 1);
        owners.remove(2, p);
        let gone = Proc {
            pid: p.pid,
            start_ticks: p.start_ticks + 7,
        };
        assert_eq!(owners.add(3, gone), Added::Gone);
        let (tx, rx) = mpsc::channel();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let t = std::thread::spawn(move || wait.run(&|tok| tx.send(tok).is_ok(), &s2));
        child.kill().unwrap();
        let token = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        let (who, keys) = owners.exited(token).unwrap();
        assert_eq!((who, keys), (p, vec![1]));
        assert!(owners.exited(token).is_none());
        child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        t.join().unwrap().unwrap();
        assert_eq!(owners.len(), 0);
    }
}
