//! The pure decision for one candidate from what the iterators saw: a
//! holder, or are the kernel's references all explained?

use std::collections::HashSet;

use super::Held;
use crate::files::verdict::Unexplained;

/// What the iterators said about one candidate.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// From the probe: references on the inode's dentries, children of a
    /// directory, and whether either count was cut short.
    pub refs: Option<i64>,
    pub children: i64,
    /// Dentries of the inode, and whether its filesystem holds one
    /// reference on each of its own (tmpfs: the dcache is its storage).
    pub aliases: i64,
    pub pinned: bool,
    pub truncated: bool,
    pub inode: u64,
    /// The agent's own struct files on the inode (its probe among them).
    pub own: HashSet<u64>,
    /// Tasks with it open or mapped: (tgid, exiting, struct file).
    pub hits: Vec<(u32, bool, u64)>,
    /// Working directories and roots on it: (fs_struct, cwd or root).
    pub fs: HashSet<(u64, u32)>,
}

/// Filesystems whose every linked dentry holds a reference of the
/// filesystem's own (shmem_mknod, ramfs_mknod, hugetlbfs_mknod: "pin the
/// dentry in core"; simple_unlink drops it). Any other that does so shows
/// that reference as unexplained: such files are kept, never removed.
pub(super) fn pins_its_dentries(magic: u64) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    const RAMFS_MAGIC: u64 = 0x8584_58f6;
    const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
    matches!(magic, TMPFS_MAGIC | RAMFS_MAGIC | HUGETLBFS_MAGIC)
}

/// The pure decision for one candidate: a holder, or are the kernel's
/// references all explained by files the agent knows to hold nothing?
pub fn decide(t: &Tally, ignore: &[u32]) -> Held {
    let Some(refs) = t.refs else {
        return Held::Unexplained(Unexplained::CannotTell("its probe was not seen"));
    };
    if t.truncated {
        return Held::Unexplained(Unexplained::CannotTell(
            "more names or entries than the check counts",
        ));
    }
    if let Some(pid) = t
        .hits
        .iter()
        .filter(|(tgid, _, _)| !ignore.contains(tgid))
        .map(|&(tgid, _, _)| tgid)
        .min()
    {
        return Held::By(pid);
    }
    // what the agent and ignored processes hold that will not outlive
    // them: their struct files, once each
    let mut files: HashSet<u64> = t.own.clone();
    let mut exiting = None;
    for &(tgid, is_exiting, file) in &t.hits {
        if is_exiting {
            exiting = Some(tgid);
        } else {
            files.insert(file);
        }
    }
    let pins = if t.pinned { t.aliases } else { 0 };
    let explained = files.len() as i64 + t.fs.len() as i64 + t.children + pins;
    match (refs - explained, exiting) {
        (left, _) if left <= 0 => Held::Free,
        (_, Some(pid)) => Held::Unexplained(Unexplained::Exiting(pid)),
        (left, None) => Held::Unexplained(Unexplained::Refs(left as u32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(refs: i64) -> Tally {
        Tally {
            refs: Some(refs),
            inode: 7,
            own: [1].into(), // the probe
            ..Default::default()
        }
    }

    #[test]
    fn only_the_probe_is_free() {
        assert_eq!(decide(&tally(1), &[]), Held::Free);
        // fewer than explained: a reference went away meanwhile
        assert_eq!(decide(&tally(0), &[]), Held::Free);
    }

    #[test]
    fn a_live_process_holds_it_lowest_pid_first() {
        let mut t = tally(3);
        t.hits = vec![(900, false, 10), (40, false, 11), (7, false, 12)];
        assert_eq!(decide(&t, &[7]), Held::By(40));
        // a mapping of an fd's file is the same struct file: one holder
        t.hits = vec![(50, false, 10), (50, false, 10)];
        assert_eq!(decide(&t, &[]), Held::By(50));
    }

    #[test]
    fn unexplained_references_keep_it() {
        // the probe and one struct file nobody has: in flight
        assert_eq!(
            decide(&tally(2), &[]),
            Held::Unexplained(Unexplained::Refs(1))
        );
        // an ignored (dead) process's file explains its reference
        let mut t = tally(2);
        t.hits = vec![(5, false, 20)];
        assert_eq!(decide(&t, &[5]), Held::Free);
        // but not while it is still exiting: it may outlive it (sent)
        t.hits = vec![(5, true, 20)];
        assert_eq!(decide(&t, &[5]), Held::Unexplained(Unexplained::Exiting(5)));
    }

    #[test]
    fn working_directories_and_children_are_explained() {
        let mut t = tally(4);
        t.children = 1;
        // two threads sharing one fs_struct: one reference
        t.fs = [(30, 5), (31, 5)].into();
        assert_eq!(decide(&t, &[]), Held::Free);
        t.refs = Some(5);
        assert_eq!(decide(&t, &[]), Held::Unexplained(Unexplained::Refs(1)));
    }

    #[test]
    fn tmpfs_pins_each_name() {
        // a link() lock on tmpfs: two names, each pinned, and the probe
        let mut t = tally(3);
        t.aliases = 2;
        t.pinned = true;
        assert_eq!(decide(&t, &[]), Held::Free);
        t.pinned = false;
        assert_eq!(decide(&t, &[]), Held::Unexplained(Unexplained::Refs(2)));
        assert!(pins_its_dentries(0x0102_1994));
        assert!(!pins_its_dentries(0xef53)); // ext4
    }

    #[test]
    fn unknown_means_keep() {
        let t = Tally::default();
        assert!(matches!(
            decide(&t, &[]),
            Held::Unexplained(Unexplained::CannotTell(_))
        ));
        let mut t = tally(1);
        t.truncated = true;
        assert!(matches!(
            decide(&t, &[]),
            Held::Unexplained(Unexplained::CannotTell(_))
        ));
    }
}
