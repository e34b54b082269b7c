/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The records the PID-file programs keep and send (bpf/pidfiles.bpf.c):
 * one definition, compiled into the BPF object and reaching Rust as the
 * types libbpf-cargo generates (src/pidfiles/kernel.rs). Plain
 * fixed-width types only.
 */
#ifndef EGHOSTBUSTER_PIDFILES_H
#define EGHOSTBUSTER_PIDFILES_H

#define PIDF_PATH_MAX 4096	/* = WALK_PATH_MAX */
#define PIDF_COMM_LEN 16
#define PIDF_MAX_GROUPS 32	/* = WALK_MAX_GROUPS */
#define PIDF_MAX_TRACKED 16384	/* PID files tracked at once */
#define PIDF_MAX_SUFFIXES 8	/* the name pre-filter: literal suffixes */
#define PIDF_SUFFIX_LEN 16

/* First field of every ring-buffer record. */
enum pidf_event_kind {
	PIDF_EV_WRITTEN = 1,	/* a matching file was opened to be (re)written */
};

/* Flags in pidf_record.flags and pidf_written.flags. */
enum pidf_flags {
	PIDF_F_PATH_TRUNCATED = 0x1,	/* deeper or longer than we walk */
	PIDF_F_UNREACHABLE = 0x2,	/* dentry not reachable from its mount root */
	PIDF_F_TABLE_FULL = 0x4,	/* the "pidf_files" table is full: not recorded */
};

/* A file's identity: device, inode, and the inode's generation. */
struct pidf_key {
	__u64 dev;		/* kernel dev_t of the superblock (MAJOR<<20|MINOR) */
	__u64 ino;
	__u32 gen;
	__u32 _pad;
};

/*
 * One PID file and the process that last opened it to write: the value of
 * the pinned "pidf_files" table. The kernel writes it at every such open
 * (a rewrite replaces it); user space deletes it when tracking ends.
 */
struct pidf_record {
	__u32 tgid;		/* the writer's thread group */
	__u32 flags;		/* enum pidf_flags */
	__u64 start_boottime;	/* its group leader's start, boot ns */
	__u64 mnt_ns;		/* inode numbers of its mount and PID */
	__u64 pid_ns;		/* namespaces (a PID in the file is read there) */
	__u64 open_flags;	/* as passed to open */
	__u64 opened_ns;	/* when: boot ns */
	__u32 fsuid;		/* its filesystem credentials (kernel ids) */
	__u32 fsgid;
	__u32 ngroups;		/* its supplementary groups: the count, */
	__u32 path_len;
	__u32 groups[PIDF_MAX_GROUPS];	/* and the first PIDF_MAX_GROUPS */
	char comm[PIDF_COMM_LEN];
	/* absolute, from the root of the writer's mount namespace, resolved
	 * from the opened file (mount and dentry); path_len bytes */
	char path[PIDF_PATH_MAX];
};

/* An open to write: its record is in the "pidf_files" table under this key. */
struct pidf_written {
	__u32 kind;		/* PIDF_EV_WRITTEN */
	__u32 tgid;
	__u32 flags;
	__u32 _pad;
	struct pidf_key key;
};

/* Kernel-side counters (.bss). */
struct pidf_counters {
	__u64 written;		/* records made */
	__u64 ringbuf_drops;	/* events lost: ring buffer full */
	__u64 table_full;	/* opens not recorded: table full */
};

#endif /* EGHOSTBUSTER_PIDFILES_H */
