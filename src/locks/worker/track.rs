//! The tracking side of the lock duty: creations recorded by the kernel
//! become tracked locks (names resolved where their creator lives),
//! renames are followed, and names released by their owners are dropped.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;

use crate::files::dir;
use crate::files::root::Root;
use crate::host::escape::{Esc, Field};
use crate::host::procfs;
use crate::locks::kernel::{
    LockKernel, LockKey, LockKind, Record, LOCK_F_OWNER_UNTRACKED, LOCK_F_PATH_TRUNCATED,
    LOCK_F_UNREACHABLE,
};
use crate::locks::patterns::Match;
use crate::locks::table::Tracked;

use super::LockWork;

impl<K: LockKernel> LockWork<K> {
    /// A lock taken by name (link, mkdir, symlink, rename): the kernel
    /// knew only the caller's string. Resolve it where the caller lives,
    /// refusing symlinks, and key the record by the real device and inode.
    /// A plain rename only moves a lock already tracked: follow it.
    ///
    /// Between the creation and this lookup (milliseconds) the name could
    /// be replaced; a replacement taken by any tracked way is recorded
    /// again by the kernel, after this one, and its creator then wins.
    pub(super) fn resolve_pending(&mut self, pkey: LockKey, mut rec: Record) {
        self.table.kernel.forget(pkey, Some(rec.creator.fsuid));
        let raw = rec.path.clone();
        if rec.flags & (LOCK_F_PATH_TRUNCATED | LOCK_F_UNREACHABLE) != 0 {
            log::debug!(
                "ignoring {} by pid {} ({}): its directory could not be resolved",
                Esc::path(&raw),
                rec.tgid,
                Esc::str(&rec.comm)
            );
            return;
        }
        let Some(path) = dir::normalize(&raw) else {
            return;
        };
        if matches!(
            self.cfg.matcher.classify(&path),
            Match::OutOfScope | Match::NotLockName
        ) {
            return;
        }
        let root = self.root_for(rec.mnt_ns, &[rec.tgid]);
        if !root.reachable() {
            return not_tracked(&path, &rec, "in a mount namespace no live process shares");
        }
        // `..` climbs as far as the creator's root, not the namespace's:
        // under a chroot, the name means something else than here (issue
        // 11). Resolved only for a creator seen living at its namespace's
        // root; unknown means not tracked.
        if climbs(&raw) && !at_namespace_root(&rec, &root) {
            return not_tracked(
                &raw,
                &rec,
                "with `..` in its name, and its root is not its mount namespace's (chroot) or cannot be told",
            );
        }
        // the raw name, resolved refusing every symlink: then `..` means
        // what normalize() made of it
        let st = match root.stat(&raw) {
            Ok(st) => st,
            Err(e) => {
                log::debug!(
                    "not tracking {} ({:?} by pid {} ({})): {e}",
                    Esc::path(&path),
                    rec.kind,
                    rec.tgid,
                    Esc::str(&rec.comm)
                );
                return;
            }
        };
        // keyed with its generation: a later file on the same inode number
        // is another one (issue 11)
        let key = LockKey::of_gen(st.id, st.gen);
        rec.path = path;
        if let Some(t) = self.table.on_file(&st.id) {
            if matches!(rec.kind, LockKind::Moved | LockKind::Rename) {
                if t.rec.path != rec.path {
                    self.follow(t.key, rec.path);
                }
                return;
            }
            if self.still_named(&t) {
                return; // another name for a tracked lock's inode
            }
        }
        if rec.kind == LockKind::Moved {
            return; // not exclusive: a lock only if it already was one
        }
        let shape_ok = match rec.kind {
            LockKind::Mkdir => st.dir,
            LockKind::Symlink => st.symlink,
            _ => st.regular,
        };
        if !shape_ok {
            log::debug!(
                "not tracking {}: no longer a {}",
                Esc::path(&rec.path),
                rec.kind.what()
            );
            return;
        }
        if !self.table.kernel.store(key, &rec) {
            self.unstored += 1; // said once per tick
            return;
        }
        self.insert(key, rec);
    }

    /// A tracked lock was renamed to another lock name: track it there.
    pub(super) fn follow(&mut self, key: LockKey, to: PathBuf) {
        let class = self.cfg.matcher.classify(&to);
        let Some(l) = self.table.get(&key) else {
            return;
        };
        log::info!(
            event = "following", path = Field::path(&l.rec.path), pid = l.rec.tgid,
            comm = Field::str(&l.rec.comm), to = Field::path(&to);
            "following {} (pid {} {}): renamed to {}",
            Esc::path(&l.rec.path),
            l.rec.tgid,
            Esc::str(&l.rec.comm),
            Esc::path(&to)
        );
        self.table.rename(key, to, class);
    }

    /// Does the lock's name still refer to its inode, where it was made?
    pub(super) fn still_named(&self, l: &Tracked) -> bool {
        self.root_for(l.rec.mnt_ns, &[l.owner()])
            .stat(&l.rec.path)
            .is_ok_and(|st| st.is(l.file, Some(l.key.gen)))
    }

    /// Track one record, or forget it when it is none of our business.
    pub(super) fn insert(&mut self, key: LockKey, rec: Record) {
        if rec.flags & (LOCK_F_PATH_TRUNCATED | LOCK_F_UNREACHABLE) != 0 {
            log::debug!(
                "ignoring a lock created by pid {} ({}): its path could not be resolved ({})",
                rec.tgid,
                Esc::str(&rec.comm),
                Esc::path(&rec.path)
            );
            self.table.kernel.forget(key, Some(rec.creator.fsuid));
            return;
        }
        let class = self.cfg.matcher.classify(&rec.path);
        if matches!(class, Match::OutOfScope | Match::NotLockName) {
            self.table.kernel.forget(key, Some(rec.creator.fsuid));
            return;
        }
        if rec.flags & LOCK_F_OWNER_UNTRACKED != 0 {
            // counted by the kernel, summed up once per tick
            log::debug!(
                "owners map full (--max-owners): the exit of pid {} ({}) is only noticed by polling",
                rec.tgid,
                Esc::str(&rec.comm)
            );
        }
        log::debug!(
            "tracking {} (pid {} {}, {:?})",
            Esc::path(&rec.path),
            rec.tgid,
            Esc::str(&rec.comm),
            rec.kind
        );
        self.table.insert(key, &rec, class);
        self.metrics.tracked_total.fetch_add(1, Relaxed);
    }

    /// The owner removed or renamed something: stop tracking whichever of
    /// its locks no longer exists under its name.
    pub(super) fn on_name_gone(&mut self, tgid: u32) {
        for k in self.table.of_owner(tgid) {
            match self.table.get(&k) {
                Some(l) if self.still_named(&l) => {}
                Some(l) => self.table.untrack_lock(&l),
                None => self.table.untrack(&k),
            }
        }
    }

    /// Forget locks whose names are gone (released by someone else).
    pub(super) fn prune(&mut self) {
        // a lock whose record the kernel lost is forgotten here too
        let gone: Vec<LockKey> = self
            .table
            .briefs()
            .filter(|b| !self.table.get(&b.key).is_some_and(|l| self.still_named(&l)))
            .map(|b| b.key)
            .collect();
        for k in &gone {
            self.table.untrack(k);
        }
        self.prune_at = (self.table.len() * 2).max(1024);
    }
}

/// Does a recorded name climb with `..`?
fn climbs(raw: &std::path::Path) -> bool {
    raw.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
}

/// Is the creator of `rec` alive (the same process: its start time) with
/// its root at the root of the mount namespace `root` resolves in? Then
/// `..` stops where it stops here.
fn at_namespace_root(rec: &Record, root: &Root) -> bool {
    use std::os::unix::fs::MetadataExt;
    let pid = rec.tgid;
    let start = procfs::boottime_ns_to_ticks(rec.owner_start);
    let Ok(theirs) = std::fs::metadata(format!("/proc/{pid}/root")) else {
        return false;
    };
    // read after the root: the PID was the creator's when it was read
    if procfs::stat(pid).is_none_or(|s| s.start_ticks != start) {
        return false;
    }
    let ns_root = match root.fd() {
        Some(fd) => nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd))
            .map(|st| (st.st_dev, st.st_ino))
            .ok(),
        None => std::fs::metadata("/").map(|m| (m.dev(), m.ino())).ok(),
    };
    ns_root == Some((theirs.dev(), theirs.ino()))
}

/// One line for a lock taken by name that is left alone, and why.
fn not_tracked(path: &std::path::Path, rec: &Record, why: &str) {
    log::info!(
        event = "not_tracked", path = Field::path(path), pid = rec.tgid,
        comm = Field::str(&rec.comm);
        "not tracking {}: made by pid {} ({}) {why}",
        Esc::path(path),
        rec.tgid,
        Esc::str(&rec.comm)
    );
}
