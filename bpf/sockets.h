/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Records the socket programs send to user space: events over the
 * "sock_events" ring buffer, and one record per CLOSE_WAIT socket in the
 * reaper iterator's seq output. This header is the one definition: the Rust
 * side uses the types libbpf-cargo generates from the object's BTF (see
 * src/sockets.rs). Plain fixed-width types only; ports in host byte order.
 */
#ifndef EGHOSTBUSTER_SOCKETS_H
#define EGHOSTBUSTER_SOCKETS_H

#define SOCK_MAX_PORTS 32

/* First field of every ring-buffer record. */
enum sock_event_kind {
	SOCK_EV_ENTER = 1,	/* a socket entered CLOSE_WAIT */
	SOCK_EV_LEAVE = 2,	/* a stamped socket left CLOSE_WAIT */
};

struct sock_event {
	__u32 kind;
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 lport;
	__u16 rport;
	__u16 _pad;
	__u32 ifindex;		/* bound device, 0 if none */
	__u64 cookie;		/* socket cookie (SO_COOKIE) */
	__u64 netns;		/* inode number of the socket's network namespace */
	__u64 entered_ns;	/* CLOCK_BOOTTIME ns when it entered CLOSE_WAIT */
	__u8 saddr[16];		/* IPv4: first 4 bytes; network byte order */
	__u8 daddr[16];
};

/* First field of every reaper record. */
enum sock_reap_kind {
	SOCK_REAP_DESTROYED = 1,	/* stale, destroyed by bpf_sock_destroy */
	SOCK_REAP_STALE = 2,		/* stale, left to user space (report-only) */
	SOCK_REAP_PENDING = 3,		/* in CLOSE_WAIT, not idle long enough yet */
	SOCK_REAP_FAILED = 4,		/* stale, bpf_sock_destroy returned err */
};

struct sock_reap {
	__u32 kind;
	__s32 err;		/* SOCK_REAP_FAILED: the kfunc's error */
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 first_sight;	/* aged from the reaper's first visit */
	__u32 ifindex;
	__u32 _pad;
	__u64 cookie;
	__u64 netns;
	__u64 ino;		/* socket inode, to find the owning process */
	__u64 idle_ns;		/* idle time in CLOSE_WAIT so far */
	__u64 remaining_ns;	/* SOCK_REAP_PENDING: time left before stale */
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Kernel-side counters, read by user space from .bss. */
struct sock_counters {
	__u64 entered;		/* sockets stamped on entering CLOSE_WAIT */
	__u64 left;		/* stamped sockets that left CLOSE_WAIT */
	__u64 ringbuf_drops;	/* events lost: ring buffer full */
	__u64 storage_fail;	/* socket storage could not be allocated */
};

#endif /* EGHOSTBUSTER_SOCKETS_H */
