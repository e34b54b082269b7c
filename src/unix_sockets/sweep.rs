//! `eghostbuster sweep`, socket files: one pass for cron, no BPF. Socket
//! files under each `--path` that no socket on the host is bound to (asked
//! of every network namespace, as the daemon does) are removed by the
//! checks and the atomic removal every file class shares. One line per
//! action on `out`, failures on `err`.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use crate::files::dir;
use crate::files::names::{Names, Standing};
use crate::files::removal::{self, Outcome, Shape, Target};
use crate::files::verdict::PidInFile;
use crate::files::walk;
use crate::host::clock;
use crate::host::escape::Esc;
use crate::unix_sockets::diag::{self, Vfs};

/// A socket file younger than this may be one whose bind(2) has made the
/// file but not yet tied the socket to it (a few instructions apart in
/// the kernel): left for the next pass.
const MIN_AGE_NS: i128 = 2_000_000_000;
/// Files judged per /proc walk.
const BATCH: usize = 256;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub removed: u64,
    pub would_remove: u64,
    pub failed: u64,
}

pub fn sweep_socket_files(
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
            &|p, ft| ft.is_socket() && names.classify(p) == Standing::Candidate,
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
    let bound = match diag::bound_everywhere(&HashSet::new()) {
        Ok(b) => b,
        Err(e) => {
            let _ = writeln!(
                err,
                "eghostbuster: socket files: cannot tell which are still bound ({e}); none removed"
            );
            summary.failed += 1;
            return summary;
        }
    };
    let me = [std::process::id()];
    let now = clock::wall_ns();
    for chunk in files.chunks(BATCH) {
        let mut targets = Vec::new();
        let mut paths = Vec::new();
        for path in chunk {
            let Ok(d) = dir::open_parent(path) else {
                continue; // gone, or a symlink on its path: not ours to touch
            };
            let Ok(st) = d.stat(d.name()) else { continue };
            if !st.socket || now - st.ctime_ns < MIN_AGE_NS {
                continue;
            }
            if !bound.sockets_on(st.id).is_empty() {
                log::debug!("kept {}: a socket is bound to it", Esc::path(path));
                continue;
            }
            debug_assert!(bound.by_file.keys().all(|v| *v != Vfs::of(st.id)));
            paths.push(path.clone());
            targets.push(Target {
                dir: d,
                file: st.id,
                gen: st.gen,
                shape: Shape::File,
                pid: PidInFile::NoPid,
                creator: None, // unknown without the daemon: acts as the file's owner
            });
        }
        let outcomes = removal::remove_all(&targets, &me, dry_run);
        for (path, outcome) in paths.into_iter().zip(outcomes) {
            let p = Esc::path(&path);
            match outcome {
                Outcome::Removed => {
                    let _ = writeln!(out, "removed {p}: no socket is bound to it");
                    summary.removed += 1;
                }
                Outcome::WouldRemove => {
                    let _ = writeln!(out, "would remove {p}: no socket is bound to it (dry run)");
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
