/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Holder checks shared by every filesystem ghost class (lock files now,
 * PID files and UNIX socket files next): the records the iterators in
 * holders.bpf.c write to their seq files, and the limits of a pass. The
 * Rust side (src/files/holders/iter.rs) uses the types libbpf-cargo generates
 * from the object's BTF; enums, not #defines, so that they reach it.
 */
#ifndef EGHOSTBUSTER_HOLDERS_H
#define EGHOSTBUSTER_HOLDERS_H

enum holders_limits {
	HOLDERS_MAX_CANDIDATES = 4096,	/* inodes judged in one pass */
	HOLDERS_MAX_ALIASES = 16,	/* hard links whose references are summed */
	HOLDERS_MAX_CHILDREN = 64,	/* dentries counted under a directory */
};

/* First field of every record: what it says. */
enum holder_rec_kind {
	/* the agent's own probe (an O_PATH descriptor) on a candidate: the
	 * kernel's count of references on the candidate's dentries */
	HOLDER_REC_REFS = 1,
	/* one of the agent's own descriptors (any file) */
	HOLDER_REC_OWN = 2,
	/* a task has a candidate open (a descriptor) */
	HOLDER_REC_FD = 3,
	/* a task has a candidate mapped */
	HOLDER_REC_MAP = 4,
	/* a candidate (a directory) is a task's working directory or root */
	HOLDER_REC_CWD = 5,
	HOLDER_REC_ROOT = 6,
};

enum holder_flags {
	HOLDER_F_EXITING = 0x1,		/* the task is on its way out (PF_EXITING) */
	HOLDER_F_DIR = 0x2,		/* REFS: the inode is a directory */
	HOLDER_F_ALIASES_TRUNCATED = 0x4, /* REFS: more hard links than we sum */
	HOLDER_F_CHILDREN_TRUNCATED = 0x8, /* REFS: more children than we count */
};

/*
 * One record. Kernel addresses (ref_id, inode) are only compared for
 * equality: the same struct file (or fs_struct) seen twice is one
 * reference.
 */
struct holder_rec {
	__u32 kind;		/* enum holder_rec_kind */
	__u32 idx;		/* candidate index (REFS: of the probe) */
	__u32 tgid;
	__u32 pid;
	__u32 fd;
	__u32 flags;		/* enum holder_flags */
	__u64 ref_id;		/* struct file (FD, MAP, OWN, REFS) or fs_struct (CWD, ROOT) */
	__u64 inode;		/* struct inode */
	__u64 dev;		/* REFS: kernel dev_t of the superblock */
	__u64 ino;		/* REFS */
	__u32 gen;		/* REFS: inode->i_generation */
	__s32 refs;		/* REFS: references on the inode's dentries */
	__u32 children;		/* REFS: dentries under it (a directory's) */
	__u32 aliases;		/* REFS: dentries of the inode summed */
	__u64 fs_magic;		/* REFS: the superblock's s_magic */
};

#endif /* EGHOSTBUSTER_HOLDERS_H */
