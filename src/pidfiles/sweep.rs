//! `eghostbuster sweep`, PID files: one pass for cron, no BPF. Files under
//! each `--path` named as PID files (`*.pid`, `--pid-include`) whose whole
//! content is one PID that no live process has — in any PID namespace, as
//! the writer's is unknown here — or that every process with it started
//! after the file was written, are removed by the checks and the atomic
//! removal every file class shares. One line per action on `out`,
//! failures on `err`.

use std::io::Write;
use std::path::PathBuf;

use crate::files::dir;
use crate::files::names::{Names, Standing};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::verdict::PidInFile;
use crate::files::walk;
use crate::host::escape::Esc;
use crate::pidfiles::content::{self, Content};
use crate::pidfiles::nspids;

/// Files judged per /proc walk.
const BATCH: usize = 256;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub removed: u64,
    pub would_remove: u64,
    pub failed: u64,
}

pub fn sweep_pid_files(
    names: &Names,
    dry_run: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Summary {
    let mut summary = Summary::default();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut errors = Vec::new();
    for root in names.scope() {
        walk::files_under(
            root,
            &|p, ft| ft.is_file() && names.classify(p) == Standing::Candidate,
            &mut files,
            &mut errors,
        );
    }
    for e in errors {
        let _ = writeln!(err, "eghostbuster: {e}");
        summary.failed += 1;
    }
    if files.is_empty() {
        return summary;
    }
    let in_use = nspids::in_use();
    let me = [std::process::id()];
    for chunk in files.chunks(BATCH) {
        let mut targets = Vec::new();
        let mut reasons = Vec::new();
        for path in chunk {
            let Ok(d) = dir::open_parent(path) else {
                continue; // gone, or a symlink on its path: not ours to touch
            };
            let Ok(st) = d.stat(d.name()) else { continue };
            if !st.regular {
                continue;
            }
            let Ok(head) = d.read_head(d.name()) else {
                continue;
            };
            let Content::Pid(p) = content::parse(&head, st.size) else {
                continue; // not a PID file: never touched
            };
            let (pid, why) = match nspids::stale(p, st.mtime_ns, &in_use) {
                None => continue,
                Some(false) => (PidInFile::Dead(p), format!("pid {p} is dead")),
                Some(true) => (
                    PidInFile::Reused(p),
                    format!("pid {p} belongs to a process started after the file was written"),
                ),
            };
            reasons.push((path.clone(), why));
            targets.push(Target {
                dir: d,
                file: st.id,
                gen: st.gen,
                shape: Shape::Holding(head),
                pid,
                creator: None, // unknown without the daemon: acts as the file's owner
            });
        }
        let outcomes = removal::remove_all(&targets, &me, dry_run);
        for ((path, why), outcome) in reasons.into_iter().zip(outcomes) {
            let p = Esc::path(&path);
            match outcome {
                Outcome::Removed => {
                    let _ = writeln!(out, "removed {p}: {why}");
                    summary.removed += 1;
                }
                Outcome::WouldRemove => {
                    let _ = writeln!(out, "would remove {p}: {why} (dry run)");
                    summary.would_remove += 1;
                }
                Outcome::Kept(keep) => log::debug!("kept {p}: {keep}"),
                Outcome::Gone => {}
                Outcome::Failed(e) => {
                    let _ = writeln!(err, "eghostbuster: failed to remove {p}: {e}");
                    summary.failed += 1;
                }
            }
        }
    }
    summary
}
