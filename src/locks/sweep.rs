//! `eghostbuster sweep`: one pass for cron, no BPF. Lock files under each
//! `--path` that match the patterns are removed when nothing holds them and
//! the PID they name is dead (or, with no PID, when unchanged for
//! `--min-age`), by the daemon's own checks and atomic removal. Prints one
//! line per action and nothing otherwise, so cron mails only then.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::files::dir;
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::verdict::PidInFile;
use crate::locks::patterns::{LockMatcher, Match};

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

/// Lock-name files under `root`, without following symlinks.
fn walk(root: &Path, matcher: &LockMatcher, out: &mut Vec<PathBuf>, errors: &mut Vec<String>) {
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                errors.push(format!("cannot read {}: {e}", dir.display()));
                continue;
            }
        };
        for entry in entries.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            let path = entry.path();
            if ft.is_dir() {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
            } else if ft.is_file() && matcher.classify(&path) == Match::Candidate {
                // regular files only: symlinks, FIFOs and sockets are never acted on
                out.push(path);
            }
        }
    }
}

fn why(pid: PidInFile, age: Duration) -> String {
    match pid {
        PidInFile::Dead(p) => format!("pid {p} is dead"),
        PidInFile::Reused(p) => {
            format!("pid {p} belongs to a process started after the file was written")
        }
        _ => format!("no pid in it, unchanged for {}", human(age)),
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

/// Sweep the lock files of `paths`. Actions go to `out`, failures to `err`.
pub fn sweep_locks(
    matcher: &LockMatcher,
    paths: &[PathBuf],
    min_age: Duration,
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
    let me = [std::process::id()];
    let now = SystemTime::now();
    for chunk in files.chunks(BATCH) {
        let mut targets = Vec::new();
        let mut reasons = Vec::new();
        for path in chunk {
            let Ok(dir) = dir::open_parent(path) else {
                continue; // gone, or a symlink on its path: not ours to touch
            };
            let Ok(st) = dir.stat(dir.name()) else {
                continue;
            };
            if !st.regular {
                continue;
            }
            let head = dir.read_head(dir.name()).unwrap_or_default();
            let pid = removal::judge_pid(
                crate::files::verdict::parse_pid_line(&head),
                true,
                &[],
                st.mtime_ns,
            );
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_nanos(st.mtime_ns.max(0) as u64);
            let age = now.duration_since(mtime).unwrap_or_default();
            let stale = match pid {
                PidInFile::Dead(_) | PidInFile::Reused(_) => true,
                PidInFile::NoPid => age >= min_age,
                PidInFile::Alive(_) | PidInFile::Uninterpretable => false,
            };
            if stale {
                reasons.push((path.clone(), why(pid, age)));
                targets.push(Target {
                    dir,
                    file: st.id,
                    shape: Shape::File,
                    pid,
                    creator: None, // unknown without the daemon
                });
            }
        }
        let outcomes = removal::remove_all(&targets, &me, dry_run);
        for ((path, reason), outcome) in reasons.into_iter().zip(outcomes) {
            let path = path.display();
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
        assert_eq!(found, vec![root.join("a/b/x.lock")]);
        assert!(errors.is_empty());
    }
}
