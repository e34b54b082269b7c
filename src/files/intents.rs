//! Crash-consistent removal (issue 12.5). A removal renames the file to a
//! hidden name (`.NAME.eghostbuster-PID-N`), looks again, then unlinks it
//! or renames it back. A daemon that dies between the two would leave the
//! hidden file forever, and a live lock's name free. So the intent (the
//! directory, both names, the file's identity, the principal) is written
//! to a journal beside the status file before the rename, and its end
//! after; at start, every intent left open is rolled back: the file goes
//! back under its name (if it is still the same file and the name is
//! free), where the daemon judges it again like any lock. `sweep`, which
//! has no journal, recognises hidden names whose agent is gone
//! (`orphan`) and puts them back before judging.
//!
//! The journal is written, not synced: it survives the daemon, which is
//! what it is for; after a power loss the hidden names are still found by
//! `sweep`.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::files::dir::{self, LockDir, HIDDEN_MARK};
use crate::host::creds::{self, Principal};
use crate::host::escape::Esc;
use crate::host::procfs::{self, FileId};

/// One removal begun and not ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intent {
    pub dir: PathBuf,
    pub name: OsString,
    pub hidden: OsString,
    pub id: FileId,
    pub gen: Option<u32>,
    pub who: Principal,
}

struct Journal {
    path: PathBuf,
    file: File,
    seq: u64,
    open: usize,
}

static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

/// Largest journal read back at start.
const READ_MAX: u64 = 4 << 20;
/// A journal with no open intent is emptied past this size.
const COMPACT_AT: u64 = 1 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Intent {
    fn line(&self, seq: u64) -> String {
        let groups = if self.who.groups.is_empty() {
            "-".to_string()
        } else {
            self.who
                .groups
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "B {seq} {} {} {} {} {} {} {} {} {} {groups}\n",
            hex(self.dir.as_os_str().as_bytes()),
            hex(self.name.as_bytes()),
            hex(self.hidden.as_bytes()),
            self.id.major,
            self.id.minor,
            self.id.ino,
            self.gen.map_or("-".to_string(), |g| g.to_string()),
            self.who.fsuid,
            self.who.fsgid,
        )
    }

    fn parse(f: &[&str]) -> Option<Intent> {
        let [_, _, dir, name, hidden, major, minor, ino, gen, uid, gid, groups] = f else {
            return None;
        };
        Some(Intent {
            dir: PathBuf::from(OsString::from_vec(unhex(dir)?)),
            name: OsString::from_vec(unhex(name)?),
            hidden: OsString::from_vec(unhex(hidden)?),
            id: FileId {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                ino: ino.parse().ok()?,
            },
            gen: match *gen {
                "-" => None,
                g => Some(g.parse().ok()?),
            },
            who: Principal {
                fsuid: uid.parse().ok()?,
                fsgid: gid.parse().ok()?,
                groups: match *groups {
                    "-" => Vec::new(),
                    g => g
                        .split(',')
                        .map(|x| x.parse().ok())
                        .collect::<Option<_>>()?,
                },
            },
        })
    }
}

/// The intents a journal's text leaves open, in order. Pure.
pub fn open_intents(text: &str) -> Vec<Intent> {
    let mut open: Vec<(u64, Intent)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["B", seq, ..] => {
                if let (Ok(seq), Some(i)) = (seq.parse::<u64>(), Intent::parse(&f)) {
                    open.push((seq, i));
                }
            }
            ["E", seq] => {
                if let Ok(seq) = seq.parse::<u64>() {
                    open.retain(|(s, _)| *s != seq);
                }
            }
            _ => {}
        }
    }
    open.into_iter().map(|(_, i)| i).collect()
}

/// Take the journal at `path` for this daemon (one daemon per status
/// file: the caller holds its lock): the intents an earlier daemon left
/// open, then an empty journal to write ours in. Never follows a symlink.
pub fn open(path: &Path) -> io::Result<Vec<Intent>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    // written by root and read back as instructions: only a file that is
    // ours alone (a planted or hard-linked one is refused, never truncated)
    let meta = file.metadata()?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() || meta.uid() != me || meta.nlink() != 1 || meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "not this agent's own file (uid {}, {} links, mode {:o}): not used",
            meta.uid(),
            meta.nlink(),
            meta.mode() & 0o7777
        )));
    }
    let mut text = Vec::new();
    (&mut file).take(READ_MAX).read_to_end(&mut text)?;
    let left = open_intents(&String::from_utf8_lossy(&text));
    file.set_len(0)?;
    *JOURNAL.lock().unwrap_or_else(|e| e.into_inner()) = Some(Journal {
        path: path.to_path_buf(),
        file,
        seq: 0,
        open: 0,
    });
    Ok(left)
}

/// Before the rename aside: record it. `None`: no journal (sweep), or a
/// directory with no path in our mount namespace (then a crash leaves the
/// hidden name for `sweep` to find).
pub fn begin(
    d: &LockDir,
    hidden: &OsStr,
    id: FileId,
    gen: Option<u32>,
    who: &Principal,
) -> Option<u64> {
    let mut j = JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    let j = j.as_mut()?;
    let dir = d.path_here()?;
    let seq = j.seq;
    let intent = Intent {
        dir,
        name: d.name().to_os_string(),
        hidden: hidden.to_os_string(),
        id,
        gen,
        who: who.clone(),
    };
    if let Err(e) = j.file.write_all(intent.line(seq).as_bytes()) {
        log::warn!("cannot write the removal journal: {e}");
        return None;
    }
    j.seq += 1;
    j.open += 1;
    Some(seq)
}

/// After the unlink or the rename back.
pub fn end(seq: Option<u64>) {
    let Some(seq) = seq else { return };
    let mut j = JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(j) = j.as_mut() else { return };
    let _ = j.file.write_all(format!("E {seq}\n").as_bytes());
    j.open = j.open.saturating_sub(1);
    if j.open == 0 && j.file.metadata().is_ok_and(|m| m.len() > COMPACT_AT) {
        let _ = j.file.set_len(0);
    }
}

/// At a clean stop (no removal under way): the journal goes; one with an
/// intent left open stays for the next start.
pub fn close() {
    let mut j = JOURNAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(j) = j.take() {
        if j.open == 0 {
            let _ = std::fs::remove_file(&j.path);
        }
    }
}

/// Roll back what an earlier daemon left half done: each hidden file
/// that is still the one it hid goes back under its name, as its
/// principal, unless another file took the name (then it stays, and the
/// log says where).
pub fn recover(intents: Vec<Intent>) {
    for i in intents {
        let name_path = i.dir.join(&i.name);
        let hidden_path = i.dir.join(&i.hidden);
        let Ok(d) = dir::open_parent(&name_path) else {
            log::warn!(
                "a removal cut short by a stop: cannot open the directory of {} (its hidden name {} stays)",
                Esc::path(&name_path),
                Esc::path(&hidden_path)
            );
            continue;
        };
        match d.stat(&i.hidden) {
            Err(e) if dir::is_gone(&e) => continue, // finished, or removed meanwhile
            Ok(st) if st.is(i.id, i.gen) => {}
            _ => {
                log::warn!(
                    "kept {}: a removal was cut short by a stop, and the file there is not the one hidden",
                    Esc::path(&hidden_path)
                );
                continue;
            }
        }
        match creds::as_principal(&i.who, || d.restore(&i.hidden)).and_then(|r| r) {
            Ok(()) => log::info!(
                "restored {}: the agent stopped between hiding it ({}) and removing it; it is judged again",
                Esc::path(&name_path),
                Esc::str(&i.hidden.to_string_lossy())
            ),
            Err(e) => log::warn!(
                "kept {}: a removal was cut short by a stop, and it cannot go back to {} ({e}); remove it by hand if it is stale",
                Esc::path(&hidden_path),
                Esc::path(&name_path)
            ),
        }
    }
}

/// A hidden name of ours whose agent is gone: the name it hid. Pure but
/// for the liveness of the PID in it (`agent_alive`). A hidden name of
/// 255 bytes may hold a cut name: not restored.
pub fn orphan_of(path: &Path, agent_alive: &dyn Fn(u32) -> bool) -> Option<PathBuf> {
    let file = path.file_name()?.as_bytes();
    if file.len() >= 255 || file.first() != Some(&b'.') {
        return None;
    }
    let mark = HIDDEN_MARK.as_bytes();
    let at = file.windows(mark.len()).rposition(|w| w == mark)?;
    if at < 2 {
        return None; // no name before the mark
    }
    let (name, tail) = (&file[1..at], &file[at + mark.len()..]);
    let tail = std::str::from_utf8(tail).ok()?;
    let (pid, seq) = tail.split_once('-')?;
    let pid: u32 = pid.parse().ok()?;
    seq.parse::<u64>().ok()?;
    if name.is_empty() || agent_alive(pid) {
        return None;
    }
    Some(path.with_file_name(OsStr::from_bytes(name)))
}

/// Is `pid` a live eghostbuster (still working on its hidden names)?
pub fn agent_alive(pid: u32) -> bool {
    match procfs::look(pid) {
        procfs::Look::Stat(s) if s.alive() => std::fs::read(format!("/proc/{pid}/comm"))
            .map(|c| c.starts_with(b"eghostbuster"))
            // unreadable: it may be one
            .unwrap_or(true),
        procfs::Look::Unknown(_) => true,
        _ => false,
    }
}

/// `sweep`: put an orphaned hidden file back under `name`, as its owner.
pub fn restore_orphan(hidden: &Path, name: &Path) -> io::Result<()> {
    let d = dir::open_parent(name)?;
    let h = hidden.file_name().unwrap_or_default();
    let who = d.stat(h)?.owner();
    creds::as_principal(&who, || d.restore(h)).and_then(|r| r)
}

/// A test-only fail point: the process aborts where `name` is reached
/// when EGHOSTBUSTER_FAILPOINT says so (tests/crash.rs).
pub fn fail_point(name: &str) {
    static SET: OnceLock<Option<String>> = OnceLock::new();
    if SET
        .get_or_init(|| std::env::var("EGHOSTBUSTER_FAILPOINT").ok())
        .as_deref()
        == Some(name)
    {
        log::error!("fail point {name}: aborting (EGHOSTBUSTER_FAILPOINT)");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent() -> Intent {
        Intent {
            dir: PathBuf::from("/srv/a b/\n\u{1b}x"),
            name: OsString::from_vec(b"x\xff.lock".to_vec()),
            hidden: OsString::from(".x.lock.eghostbuster-7-0"),
            id: FileId {
                major: 8,
                minor: 1,
                ino: 99,
            },
            gen: Some(12),
            who: Principal {
                fsuid: 1000,
                fsgid: 100,
                groups: vec![27, 44],
            },
        }
    }

    #[test]
    fn journal_lines_round_trip_and_ends_close_intents() {
        let a = intent();
        let b = Intent {
            gen: None,
            who: Principal::root(),
            ..intent()
        };
        let text = format!("{}{}E 0\n", a.line(0), b.line(1));
        assert_eq!(open_intents(&text), vec![b.clone()]);
        assert_eq!(open_intents(&format!("{}E 1\n", text)), vec![]);
        // a line cut by a crash is ignored
        let cut = &a.line(2)[..20];
        assert_eq!(open_intents(&format!("{}{cut}", b.line(1))), vec![b]);
    }

    #[test]
    fn orphaned_hidden_names() {
        let dead = |_| false;
        let live = |_| true;
        let p = Path::new("/t/.index.lock.eghostbuster-4242-7");
        assert_eq!(orphan_of(p, &dead), Some(PathBuf::from("/t/index.lock")));
        assert_eq!(orphan_of(p, &live), None);
        // a name holding the mark itself: the last one counts
        let q = Path::new("/t/.a.eghostbuster-1-1.lock.eghostbuster-9-0");
        assert_eq!(
            orphan_of(q, &dead),
            Some(PathBuf::from("/t/a.eghostbuster-1-1.lock"))
        );
        for not in [
            "/t/index.lock",
            "/t/.index.lock",
            "/t/.index.lock.eghostbuster-x-1",
            "/t/.index.lock.eghostbuster-1-",
            "/t/.eghostbuster-1-1",
        ] {
            assert_eq!(orphan_of(Path::new(not), &dead), None, "{not}");
        }
        let long = format!("/t/.{}.eghostbuster-1-1", "n".repeat(240));
        assert_eq!(orphan_of(Path::new(&long), &dead), None);
    }
}
