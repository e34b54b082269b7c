//! `eghostbuster sweep`: one pass for cron, no BPF. Lock files under each
//! `--path` that match the patterns are removed when nothing holds them and
//! the PID they name is dead (or, with no PID, when unchanged for
//! `--min-age`), by the daemon's own checks and atomic removal. Prints one
//! line per action and nothing otherwise, so cron mails only then.
//!
//! The sweep never saw these files being created, so it has no evidence
//! that they are locks at all: it judges only a file that is empty or whose
//! whole content is an owner record (a PID, `host:PID`, a short
//! `key=value` or JSON record with a pid). Anything else (`Gopkg.lock`'s
//! TOML, `rebar.lock`'s Erlang terms, a pins file) is data and is kept,
//! unless the operator opts in with `--any-content`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::files::dir::{self, DirContent};
use crate::files::intents;
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::verdict::{self, Content, PidInFile, OWNER_RECORD_MAX};
use crate::host::escape::Esc;
use crate::locks::patterns::{LockMatcher, Match};

/// What lets the sweep remove a lock file whose creation it never saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoEvidence {
    /// A file with no PID in it goes only when unchanged this long.
    pub min_age: Duration,
    /// Judge files whose content is not an owner record too: by the PID on
    /// their first line, or by their age.
    pub any_content: bool,
}

/// What a file's content lets the sweep do, before /proc is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// Empty: judged by its age.
    Empty,
    /// No owner record, judged anyway (`--any-content`): by its first
    /// line's PID if any, else by its age.
    AnyContent(Option<u32>),
    /// An owner record naming this PID on this host.
    Owner(u32),
    /// Kept, and why.
    Keep(String),
}

/// The content rule, pure: `head` is the file's first bytes (more than
/// OWNER_RECORD_MAX when the file is larger), `size` its size, `host` this
/// host's name.
fn claim(head: &[u8], size: u64, rule: &NoEvidence, host: &[u8]) -> Claim {
    let whole = size <= OWNER_RECORD_MAX as u64 && head.len() as u64 == size;
    let content = if whole {
        verdict::parse_owner_record(head)
    } else {
        Content::Other
    };
    match content {
        Content::Empty => Claim::Empty,
        Content::Owner {
            pid,
            host: Some(named),
        } if !verdict::same_host(named, host) => Claim::Keep(format!(
            "names pid {pid} on host {}, not this one",
            String::from_utf8_lossy(named)
        )),
        Content::Owner { pid, .. } => Claim::Owner(pid),
        Content::Other if rule.any_content => {
            Claim::AnyContent(verdict::parse_pid_line(head))
        }
        Content::Other => Claim::Keep(
            "its content is not an owner record (a PID, host:PID, or a short key=value or JSON record with a pid): no evidence it is a lock (--any-content judges it anyway)"
                .into(),
        ),
    }
}

/// An editor-style symlink lock's target, `user@host.PID:BOOT` (never
/// followed): its PID on this host, or kept.
fn symlink_claim(target: &[u8], host: &[u8]) -> Claim {
    let Some(pid) = verdict::parse_symlink_owner(target) else {
        return Claim::Keep("its target names no owner (user@host.PID)".into());
    };
    let head = target.split(|&b| b == b':').next().unwrap_or(target);
    let before_pid = &head[..head.iter().rposition(|&b| b == b'.').unwrap_or(0)];
    let named = before_pid
        .iter()
        .position(|&b| b == b'@')
        .map_or(before_pid, |at| &before_pid[at + 1..]);
    if !named.is_empty() && !verdict::same_host(named, host) {
        return Claim::Keep(format!(
            "names pid {pid} on host {}, not this one",
            Esc(named)
        ));
    }
    Claim::Owner(pid)
}

/// This host's name, as owner records write it.
pub fn hostname() -> Vec<u8> {
    std::fs::read("/proc/sys/kernel/hostname")
        .map(|h| h.trim_ascii().to_vec())
        .unwrap_or_default()
}

/// Directory depth the walk goes to under each `--path`.
const MAX_DEPTH: usize = 64;
/// Files judged per /proc walk.
const BATCH: usize = 256;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub removed: u64,
    pub would_remove: u64,
    pub failed: u64,
}

/// What a lock name found by the walk is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Found {
    File,
    /// A lock directory (mkdir lock): empty, or one owner-record file.
    Dir,
    /// An editor-style symlink lock (`.#name` → `user@host.PID:BOOT`).
    Symlink,
}

/// Lock names under `root`, without following symlinks: regular files,
/// directories and symlinks (never followed); FIFOs, sockets and devices
/// are never acted on.
fn walk(
    root: &Path,
    matcher: &LockMatcher,
    out: &mut Vec<(PathBuf, Found)>,
    errors: &mut Vec<String>,
) {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!(
                    "cannot read {}: {e}",
                    crate::host::escape::Esc::path(&dir)
                ));
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let mut path = entry.path();
            // a lock the daemon hid and never finished with (it stopped):
            // back under its name, then judged like the others
            if let Some(name) = intents::orphan_of(&path, &intents::agent_alive) {
                if matcher.classify(&name) != Match::Candidate {
                    continue;
                }
                match intents::restore_orphan(&path, &name) {
                    Ok(()) => {
                        log::info!(
                            "restored {}: the agent that hid it ({}) stopped before removing it",
                            Esc::path(&name),
                            Esc::path(&path)
                        );
                        path = name;
                    }
                    Err(e) => {
                        errors.push(format!(
                            "kept {}: hidden by an agent that stopped, and it cannot go back to {} ({e})",
                            Esc::path(&path),
                            Esc::path(&name)
                        ));
                        continue;
                    }
                }
            }
            let candidate = matcher.classify(&path) == Match::Candidate;
            if ft.is_dir() {
                if candidate {
                    out.push((path.clone(), Found::Dir));
                }
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if candidate && ft.is_file() {
                out.push((path, Found::File));
            } else if candidate && ft.is_symlink() {
                out.push((path, Found::Symlink));
            }
        }
    }
}

fn why(pid: PidInFile, age: Duration, claim: &Claim) -> String {
    match pid {
        PidInFile::Dead(p) => format!("pid {p} is dead"),
        PidInFile::Reused(p) => {
            format!("pid {p} belongs to a process started after the file was written")
        }
        _ if *claim == Claim::Empty => format!("empty, unchanged for {}", human(age)),
        _ => format!("no pid in it, unchanged for {} (--any-content)", human(age)),
    }
}

pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Sweep the lock files of `paths`. Actions go to `out`, failures to `err`;
pub fn sweep_locks(
    matcher: &LockMatcher,
    paths: &[PathBuf],
    rule: impl Into<NoEvidence>,
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Summary {
    let mut summary = Summary::default();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for root in paths {
        walk(root, matcher, &mut files, &mut errors);
    }
    for e in errors {
        let _ = writeln!(err, "eghostbuster: {e}");
        summary.failed += 1;
    }
    let rule = rule.into();
    let host = hostname();
    let me = [std::process::id()];
    let now = SystemTime::now();
    for chunk in files.chunks(BATCH) {
        let mut targets = Vec::new();
        let mut reasons = Vec::new();
        for (path, found) in chunk {
            let Ok(dir) = dir::open_parent(path) else {
                continue; // gone, or a symlink on its path: not ours to touch
            };
            let Ok(st) = dir.stat(dir.name()) else {
                continue;
            };
            let (claim, shape) = match found {
                Found::File if st.regular => match dir.read_head(dir.name()) {
                    Ok(head) => (claim(&head, st.size, &rule, &host), Shape::File),
                    Err(_) => {
                        log::debug!("kept {}: cannot read it", path.display());
                        continue;
                    }
                },
                Found::Dir if st.dir => match dir.dir_content(dir.name()) {
                    Ok(DirContent::Empty) => (Claim::Empty, Shape::Dir(None)),
                    Ok(DirContent::One { name, id, head }) => {
                        // the file's whole content must be an owner record
                        let c = claim(
                            &head,
                            head.len() as u64,
                            &NoEvidence {
                                any_content: false,
                                ..rule
                            },
                            &host,
                        );
                        (c, Shape::Dir(Some((name, id))))
                    }
                    Ok(DirContent::Other(why)) => (
                        Claim::Keep(format!("the lock directory holds other data ({why})")),
                        Shape::Dir(None),
                    ),
                    Err(e) => (
                        Claim::Keep(format!("cannot read the lock directory: {e}")),
                        Shape::Dir(None),
                    ),
                },
                Found::Symlink if st.symlink => match dir.read_link(dir.name()) {
                    Ok(target) => (symlink_claim(&target, &host), Shape::File),
                    Err(_) => continue,
                },
                _ => continue, // changed kind since the walk
            };
            let pid = match claim {
                Claim::Keep(ref keep) => {
                    log::debug!("kept {}: {keep}", path.display());
                    continue;
                }
                Claim::Owner(p) | Claim::AnyContent(Some(p)) => Some(p),
                Claim::Empty | Claim::AnyContent(None) => None,
            };
            let pid = removal::judge_pid(pid, true, &[], st.mtime_ns);
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_nanos(st.mtime_ns.max(0) as u64);
            let age = now.duration_since(mtime).unwrap_or_default();
            let stale = match pid {
                PidInFile::Dead(_) | PidInFile::Reused(_) => true,
                PidInFile::NoPid => age >= rule.min_age,
                PidInFile::Alive(_) | PidInFile::Uninterpretable => false,
            };
            if !stale {
                log::debug!(
                    "kept {}: {}",
                    path.display(),
                    match pid {
                        PidInFile::Alive(p) => format!("names live pid {p}"),
                        _ => format!("unchanged for {} only (--min-age)", human(age)),
                    }
                );
            } else {
                reasons.push((path.clone(), why(pid, age, &claim)));
                targets.push(Target {
                    dir,
                    file: st.id,
                    gen: st.gen,
                    shape,
                    pid,
                    creator: None, // unknown without the daemon: acts as the file's owner
                });
            }
        }
        let outcomes = removal::remove_all(&targets, &me, dry_run);
        for ((path, reason), outcome) in reasons.into_iter().zip(outcomes) {
            let path = crate::host::escape::Esc::path(&path);
            match outcome {
                Outcome::Removed => {
                    let _ = writeln!(out, "removed {path}: {reason}");
                    summary.removed += 1;
                }
                Outcome::WouldRemove => {
                    let _ = writeln!(out, "would remove {path}: {reason} (dry run)");
                    summary.would_remove += 1;
                }
                Outcome::Kept(keep) => log::debug!("kept {path}: {keep}"),
                Outcome::Gone => {}
                Outcome::Failed(e) => {
                    let _ = writeln!(err, "eghostbuster: failed to remove {path}: {e}");
                    summary.failed += 1;
                }
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(3 * 3600 + 12 * 60)), "3h12m");
    }

    #[test]
    fn symlink_targets() {
        assert_eq!(
            symlink_claim(b"me@web1.4242:1700000000", b"web1"),
            Claim::Owner(4242)
        );
        assert_eq!(
            symlink_claim(b"me@web1.example.org.77:1", b"web1"),
            Claim::Owner(77)
        );
        assert!(
            matches!(symlink_claim(b"me@web2.4242:1", b"web1"), Claim::Keep(k) if k.contains("web2"))
        );
        assert!(matches!(
            symlink_claim(b"../a/b/x.lock", b"web1"),
            Claim::Keep(_)
        ));
    }

    #[test]
    fn content_rule() {
        let strict = NoEvidence {
            min_age: Duration::from_secs(3600),
            any_content: false,
        };
        let any = NoEvidence {
            any_content: true,
            ..strict
        };
        let c = |head: &[u8], rule: &NoEvidence| claim(head, head.len() as u64, rule, b"web1");
        assert_eq!(c(b"", &strict), Claim::Empty);
        assert_eq!(c(b"4242\n", &strict), Claim::Owner(4242));
        assert_eq!(c(b"web1.example.org:4242\n", &strict), Claim::Owner(4242));
        assert_eq!(c(b"pid=4242\nhost=web1\n", &strict), Claim::Owner(4242));
        assert_eq!(c(br#"{"pid":4242}"#, &strict), Claim::Owner(4242));
        assert!(
            matches!(c(b"web2:4242", &strict), Claim::Keep(k) if k.contains("on host web2")),
            "another host's pid"
        );
        let toml = b"[[projects]]\n  name = \"github.com/pkg/errors\"\n";
        assert!(matches!(c(toml, &strict), Claim::Keep(k) if k.contains("not an owner record")));
        assert_eq!(c(toml, &any), Claim::AnyContent(None));
        // --any-content: the old rule, a PID on the first line
        assert_eq!(c(b"4242\nworker\n", &any), Claim::AnyContent(Some(4242)));
        assert!(matches!(c(b"4242\nworker\n", &strict), Claim::Keep(_)));
        // a file larger than what was read is never whole: data
        assert!(matches!(
            claim(b"4242\n", 9000, &strict, b"web1"),
            Claim::Keep(_)
        ));
        assert_eq!(
            claim(b"4242\n", 9000, &any, b"web1"),
            Claim::AnyContent(Some(4242))
        );
    }

    #[test]
    fn walk_finds_lock_names_without_following_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/x.lock"), "").unwrap();
        std::fs::write(root.join("a/Cargo.lock"), "").unwrap();
        std::fs::write(root.join("a/notes.txt"), "").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("y.lock"), "").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();
        std::os::unix::fs::symlink(root.join("a/b/x.lock"), root.join("l.lock")).unwrap();
        let m = LockMatcher::new(&[], &[], &[root.to_path_buf()]).unwrap();
        let mut found = Vec::new();
        let mut errors = Vec::new();
        walk(root, &m, &mut found, &mut errors);
        found.sort();
        // the symlink is found as what it is, never followed; Cargo.lock
        // is denied, the outside y.lock never reached
        assert_eq!(
            found,
            vec![
                (root.join("a/b/x.lock"), Found::File),
                (root.join("l.lock"), Found::Symlink)
            ]
        );
        assert!(errors.is_empty());
    }
}
