//! Who made a file, as the kernel recorded it at creation: the filesystem
//! credentials every removal step will run with ("act as the principal",
//! issue 11). Kernel (global) ids, so a creator inside a user namespace is
//! seen as the host sees it. Field for field what `host::creds::Principal`
//! (the security work) acts with.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Creator {
    pub fsuid: u32,
    pub fsgid: u32,
    /// Supplementary groups, as many as the kernel record holds.
    pub groups: Vec<u32>,
    /// The creator had more groups than the record holds: acting with
    /// these is acting with fewer rights than it had, never more.
    pub groups_truncated: bool,
}

impl Creator {
    /// From a kernel record: `ngroups` is the creator's count, `groups`
    /// the record's array (of which the first `ngroups` are filled).
    pub fn from_record(fsuid: u32, fsgid: u32, ngroups: u32, groups: &[u32]) -> Self {
        let n = (ngroups as usize).min(groups.len());
        Creator {
            fsuid,
            fsgid,
            groups: groups[..n].to_vec(),
            groups_truncated: ngroups as usize > groups.len(),
        }
    }
}

impl Creator {
    #[cfg(test)]
    /// Root, as a creator: acts with every right (a root process could
    /// have removed the file itself).
    pub fn root() -> Self {
        Creator {
            fsuid: 0,
            fsgid: 0,
            groups: Vec::new(),
            groups_truncated: false,
        }
    }

    /// The count a kernel record gives: more than `groups` holds when
    /// the creator had more (so a round trip keeps `groups_truncated`).
    pub fn ngroups(&self) -> u32 {
        self.groups.len() as u32 + u32::from(self.groups_truncated)
    }

    /// What removal steps act with.
    pub fn principal(&self) -> crate::host::creds::Principal {
        crate::host::creds::Principal {
            fsuid: self.fsuid,
            fsgid: self.fsgid,
            groups: self.groups.clone(),
        }
    }
}

impl fmt::Display for Creator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fsuid {} fsgid {}", self.fsuid, self.fsgid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_from_a_record() {
        let c = Creator::from_record(1000, 100, 2, &[27, 44, 0, 0]);
        assert_eq!(c.groups, vec![27, 44]);
        assert!(!c.groups_truncated);
        let many = Creator::from_record(1, 1, 40, &[5; 32]);
        assert_eq!(many.groups.len(), 32);
        assert!(many.groups_truncated);
        assert_eq!(c.to_string(), "fsuid 1000 fsgid 100");
    }
}
