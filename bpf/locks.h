/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Records the lock programs send to user space over the "lock_events" ring
 * buffer. This header is the one definition: build.rs compiles it into the
 * BPF object, and the Rust side uses the types libbpf-cargo generates from
 * the object's BTF (see src/events.rs). Plain fixed-width types only.
 */
#ifndef EGHOSTBUSTER_LOCKS_H
#define EGHOSTBUSTER_LOCKS_H

#define LOCK_PATH_MAX 4096
#define LOCK_COMM_LEN 16

/* First field of every record: which struct follows. */
enum lock_event_kind {
	LOCK_EV_CREATED = 1,	/* a matching name was created exclusively */
	LOCK_EV_EXIT = 2,	/* a tracked owner's whole thread group exited */
	LOCK_EV_NAME_GONE = 3,	/* a tracked owner unlinked or renamed a name */
};

/* Flags in lock_created.flags. */
#define LOCK_F_PATH_TRUNCATED 0x1	/* path deeper/longer than we walk */
#define LOCK_F_OWNER_UNTRACKED 0x2	/* owners map full: exit not watched */
#define LOCK_F_UNREACHABLE 0x4		/* dentry not reachable from its mount root */

/*
 * A creation. The absolute path (relative to the root of the creator's mount
 * namespace, resolved from the struct file itself) follows the header in
 * the same sample: path_len bytes, not NUL-terminated.
 */
struct lock_created {
	__u32 kind;
	__u32 tgid;
	__u32 tid;
	__u32 path_len;
	__u64 dev;		/* kernel dev_t of the superblock (MAJOR<<20|MINOR) */
	__u64 ino;
	__u64 mnt_ns;		/* inode number of the creator's mount namespace */
	__u64 pid_ns;		/* inode number of the creator's PID namespace */
	__u64 start_boottime;	/* creator's group leader start time, ns */
	__u64 open_flags;	/* flags as passed to the syscall */
	__u32 flags;		/* LOCK_F_* */
	__u32 _pad;
	char comm[LOCK_COMM_LEN];
};

/* Exit of a tracked owner's whole thread group. */
struct lock_exit {
	__u32 kind;
	__u32 tgid;
	__u32 ppid;
	__u32 status;		/* wait(2) status: signal, or exit code << 8 */
	__u64 start_boottime;	/* of the exiting group leader, ns */
	__u64 parent_start_boottime;
	__u32 parent_subreaper;	/* the parent is a child subreaper */
	__u32 _pad;
	char comm[LOCK_COMM_LEN];
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
};

#endif /* EGHOSTBUSTER_LOCKS_H */
