/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Records the lock programs send to user space over the "lock_events" ring
 * buffer, and the tables they keep. This header is the one definition:
 * build.rs compiles it into the BPF object, and the Rust side uses the
 * types libbpf-cargo generates from the object's BTF (src/locks/kernel.rs).
 * Plain fixed-width types only; constants are enums, which reach BTF
 * (#defines do not).
 */
#ifndef EGHOSTBUSTER_LOCKS_H
#define EGHOSTBUSTER_LOCKS_H

enum lock_limits {
	LOCK_PATH_MAX = 4096,	/* longest path recorded */
	LOCK_COMM_LEN = 16,
	/* a record of this size holds paths up to LOCK_PATH_SHORT bytes in
	 * the "locks" table; longer ones go to "locks_long" */
	LOCK_RECORD_SHORT = 288,
	LOCK_PATH_SHORT = LOCK_RECORD_SHORT - 120,
	/* supplementary groups a record holds: a creator with more is acted
	 * for with these only (fewer rights than it had, never more) */
	LOCK_MAX_GROUPS = 4,
};

/* First field of every record: which struct follows. */
enum lock_event_kind {
	LOCK_EV_CREATED = 1,	/* a matching name was created exclusively */
	LOCK_EV_EXIT = 2,	/* a tracked owner's whole thread group exited */
	LOCK_EV_NAME_GONE = 3,	/* a tracked owner unlinked or renamed a name */
};

/* Flags in lock_created.flags and lock_record.flags. */
enum lock_flags {
	LOCK_F_PATH_TRUNCATED = 0x1,	/* path deeper/longer than we walk */
	LOCK_F_OWNER_UNTRACKED = 0x2,	/* owners map full: exit not watched */
	LOCK_F_UNREACHABLE = 0x4,	/* dentry not reachable from its mount root */
	LOCK_F_TABLE_FULL = 0x8,	/* "locks" table full: not recorded */
	LOCK_F_UID_SHARE = 0x10,	/* its creator's uid holds its share of
					 * the table (issue 11): not recorded */
	/* set by user space in lock_record.flags */
	LOCK_R_STALE = 0x100,		/* judged stale, kept for a live process */
};

/*
 * How a lock was taken (lock_record.kind): tells user space what the name
 * is (file, directory, symlink) and so how to judge and remove it.
 */
enum lock_kind {
	LOCK_K_OPEN = 0,	/* open*(O_CREAT|O_EXCL) created a regular file */
	LOCK_K_LINK = 1,	/* link/linkat onto the name (NFS-safe dotlock) */
	LOCK_K_MKDIR = 2,	/* mkdir/mkdirat of a lock directory */
	LOCK_K_SYMLINK = 3,	/* symlink/symlinkat; the target names the owner */
	LOCK_K_RENAME = 4,	/* renameat2(RENAME_NOREPLACE) onto the name */
	LOCK_K_MOVED = 5,	/* a tracked owner's plain rename onto a
				 * matching name: follows its lock */
};

/*
 * Creations by name (link, mkdir, symlink, rename) are seen at sys_exit,
 * where the kernel has no dentry for the new name, only the user's string.
 * Their records go in the "locks" table under a pending key (the upper 32
 * bits of dev are LOCK_KEY_PENDING_HI; ino is a boot-clock timestamp) with
 * the path built from the dirfd's (or cwd's, or root's) walked path plus
 * the user string; user space resolves the name without following
 * symlinks and re-keys the record by the real device and inode.
 */
enum lock_key_bits {
	LOCK_KEY_PENDING_HI = 0xffffffffU,
};

/*
 * Key of the "locks" table: the file's identity. The inode's generation
 * tells apart two files that got the same inode number one after the other
 * (ext4 and tmpfs reuse a freed number at once): without it, forgetting a
 * removed lock could delete the record of the next lock on its inode.
 */
struct lock_key {
	__u64 dev;		/* kernel dev_t of the superblock (MAJOR<<20|MINOR) */
	__u64 ino;
	__u32 gen;		/* inode->i_generation */
	__u32 _pad;
};

/*
 * One tracked lock: what the pinned tables hold. The kernel writes it at
 * creation; user space changes the owner when a lock is handed on and
 * deletes it when tracking ends. Being in pinned maps, it outlives the
 * agent: a restarted agent knows every lock taken before and meanwhile.
 */
struct lock_record_head {
	__u32 tgid;		/* owner now */
	__u32 flags;		/* enum lock_flags */
	__u64 owner_start;	/* owner's group leader start time, boot ns */
	__u64 mnt_ns;		/* inode number of the creator's mount namespace */
	__u64 pid_ns;		/* inode number of the creator's PID namespace */
	__u64 open_flags;	/* flags as passed to the creating syscall */
	__u32 stale_pid;	/* LOCK_R_STALE: the owner whose end made it stale */
	__u32 stale_status;	/* and its wait status */
	char comm[LOCK_COMM_LEN];	/* owner's command */
	char stale_comm[LOCK_COMM_LEN];
	__u32 path_len;
	__u32 kind;		/* enum lock_kind */
	/* The creator's filesystem credentials at creation, kernel (global)
	 * ids: every removal step runs with them (act as the principal). */
	__u32 fsuid;
	__u32 fsgid;
	__u32 ngroups;		/* the creator's count; groups holds at most
				 * LOCK_MAX_GROUPS of them */
	__u32 _pad2;
	__u32 groups[LOCK_MAX_GROUPS];
};

/*
 * The value of the "locks" table: a record sized for the common path, so
 * that every lock creation copies LOCK_RECORD_SHORT bytes, not 4 KiB. The
 * path is absolute, from the root of the creator's mount namespace,
 * resolved from the struct file itself (LOCK_K_OPEN), or a walked directory
 * plus the name as the caller passed it (pending keys: may hold "..", "."
 * or "//", normalised by user space); path_len bytes, no NUL.
 */
struct lock_record {
	struct lock_record_head h;
	char path[LOCK_PATH_SHORT];
};

/* The value of "locks_long": the same, for paths longer than
 * LOCK_PATH_SHORT (a key is in one table or the other). */
struct lock_record_long {
	struct lock_record_head h;
	char path[LOCK_PATH_MAX];
};

/* A creation: its record is in the "locks" table under this key. */
struct lock_created {
	__u32 kind;
	__u32 tgid;
	__u32 flags;		/* enum lock_flags */
	__u32 fsuid;		/* the creator's, kernel id */
	struct lock_key key;
};

/* Exit of a tracked owner's whole thread group; also kept in the pinned
 * "exited" table until user space has dealt with it. */
struct lock_exit {
	__u32 kind;
	__u32 tgid;
	__u32 ppid;
	__u32 status;		/* wait(2) status: signal, or exit code << 8 */
	__u64 start_boottime;	/* of the exiting group leader, ns */
	__u64 parent_start_boottime;
	__u32 parent_subreaper;	/* the parent is a child subreaper */
	__u32 ns_tgid;		/* tgid in its own (innermost) PID namespace */
	char comm[LOCK_COMM_LEN];
	__u64 pid_ns;		/* inode number of that PID namespace */
};

/* A tracked owner removed or renamed some name: its locks may be gone. */
struct lock_name_gone {
	__u32 kind;
	__u32 tgid;
};

/* Kernel-side counters, read by user space from .bss. */
struct lock_counters {
	__u64 created;		/* creation records emitted */
	__u64 exits;		/* exit records emitted */
	__u64 ringbuf_drops;	/* records lost: ring buffer full */
	__u64 owners_full;	/* owners map full: an owner is not watched */
	__u64 table_full;	/* locks or exited table full */
	__u64 named;		/* creations by name (link, mkdir, …) recorded */
	__u64 uid_share;	/* creations not recorded: uid over its share */
};

#endif /* EGHOSTBUSTER_LOCKS_H */
