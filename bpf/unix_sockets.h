/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The records the socket-file program keeps and sends (bpf/unix_sockets.bpf.c):
 * one definition, compiled into the BPF object and reaching Rust as the
 * types libbpf-cargo generates (src/unix_sockets/kernel.rs). Plain
 * fixed-width types only.
 */
#ifndef EGHOSTBUSTER_UNIX_SOCKETS_H
#define EGHOSTBUSTER_UNIX_SOCKETS_H

#define UXS_PATH_MAX 4096	/* = WALK_PATH_MAX */
#define UXS_COMM_LEN 16
#define UXS_MAX_GROUPS 32	/* = WALK_MAX_GROUPS */
#define UXS_MAX_TRACKED 16384	/* socket files tracked at once */

/* First field of every ring-buffer record. */
enum uxs_event_kind {
	UXS_EV_BOUND = 1,	/* a path-bound AF_UNIX socket was recorded */
};

/* Flags in uxs_record.flags and uxs_bound.flags. */
enum uxs_flags {
	UXS_F_PATH_TRUNCATED = 0x1,	/* deeper or longer than we walk */
	UXS_F_UNREACHABLE = 0x2,	/* dentry not reachable from its mount root */
	UXS_F_TABLE_FULL = 0x4,		/* the "uxs_files" table is full: not recorded */
};

/* A socket file's identity: device, inode, and the inode's generation
 * (ext4 and tmpfs reuse a freed inode number at once). */
struct uxs_key {
	__u64 dev;		/* kernel dev_t of the superblock (MAJOR<<20|MINOR) */
	__u64 ino;
	__u32 gen;
	__u32 _pad;
};

/*
 * One socket file and the process that bound it: the value of the pinned
 * "uxs_files" table. The kernel writes it at bind; user space deletes it
 * when tracking ends. Pinned, it outlives the agent.
 */
struct uxs_record {
	__u32 tgid;		/* the binding thread group */
	__u32 flags;		/* enum uxs_flags */
	__u64 start_boottime;	/* its group leader's start, boot ns */
	__u64 mnt_ns;		/* inode numbers of its mount, PID and */
	__u64 pid_ns;		/* network namespaces (the socket's) */
	__u64 net_ns;
	__u64 sock_ino;		/* the socket's own inode ("socket:[N]") */
	__u32 fsuid;		/* its filesystem credentials (kernel ids) */
	__u32 fsgid;
	__u32 ngroups;		/* its supplementary groups: the count, */
	__u32 path_len;
	__u32 groups[UXS_MAX_GROUPS];	/* and the first UXS_MAX_GROUPS */
	char comm[UXS_COMM_LEN];
	/* absolute, from the root of the binder's mount namespace, resolved
	 * from the socket's own path (mount and dentry); path_len bytes */
	char path[UXS_PATH_MAX];
};

/* A bind: its record is in the "uxs_files" table under this key. */
struct uxs_bound {
	__u32 kind;		/* UXS_EV_BOUND */
	__u32 tgid;
	__u32 flags;
	__u32 _pad;
	struct uxs_key key;
};

/* Kernel-side counters (.bss). */
struct uxs_counters {
	__u64 bound;		/* records made */
	__u64 ringbuf_drops;	/* events lost: ring buffer full */
	__u64 table_full;	/* binds not recorded: table full */
};

#endif /* EGHOSTBUSTER_UNIX_SOCKETS_H */
