/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Records the socket programs send to user space: events over the
 * "sock_events" ring buffer, and one record per socket in the iterators'
 * seq output. This header is the one definition: the Rust side uses the
 * types libbpf-cargo generates from the object's BTF (src/sockets/kernel.rs).
 * Plain fixed-width types only; ports in host byte order.
 */
#ifndef EGHOSTBUSTER_SOCKETS_H
#define EGHOSTBUSTER_SOCKETS_H

/* Limits user space reads from BTF (enum sock_limits), never copies. */
enum sock_limits {
	SOCK_MAX_PORTS = 32,	/* per --port / --exclude-port list */
	SOCK_MAX_JUDGED = 4096,	/* sockets one act pass may destroy */
};

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

/*
 * What a CLOSE_WAIT socket shows of the application behind it. User space
 * judges by these; the act pass destroys only a socket whose facts are
 * still exactly those it was judged by.
 */
struct sock_facts {
	__u32 lsndtime;		/* jiffies: last data segment sent */
	__u32 lrcvtime;		/* jiffies: last data segment received */
	__u32 write_seq;	/* written by the application */
	__u32 snd_una;		/* acknowledged by the peer */
	__u32 copied_seq;	/* read by the application */
	__u32 rcv_nxt;		/* arrived (the peer's FIN counts one) */
	__u32 data_segs_out;	/* data segments ever sent */
	__u8 watched;		/* its wait queue has waiters: a thread blocked
				 * on it, or a poll/select/epoll registration */
	__u8 epoll;		/* its file is in an epoll interest list */
	__u8 _pad[2];
};

/* First field of every iterator record. */
enum sock_reap_kind {
	SOCK_REAP_SEEN = 1,	/* survey: in CLOSE_WAIT, in scope; its facts */
	SOCK_REAP_LISTEN = 2,	/* survey: a listener (connections on its port
				 * were accepted: this end is the server) */
	SOCK_REAP_DESTROYED = 3,/* act: unchanged since judged; destroyed */
	SOCK_REAP_CONFIRMED = 4,/* act, no kfunc: unchanged; user space destroys */
	SOCK_REAP_CHANGED = 5,	/* act: changed since judged: kept */
	SOCK_REAP_FAILED = 6,	/* act: bpf_sock_destroy returned err */
};

struct sock_reap {
	__u32 kind;
	__s32 err;		/* SOCK_REAP_FAILED: the kfunc's error */
	__u16 family;
	__u16 lport;
	__u16 rport;
	__u16 first_sight;	/* aged from the survey's first visit */
	__u32 ifindex;
	__u32 _pad;
	__u64 cookie;
	__u64 netns;
	__u64 ino;		/* socket inode, to find the owning process */
	__u64 idle_ns;		/* idle time in CLOSE_WAIT so far */
	__u64 bytes_received;	/* data the peer ever sent */
	__u8 saddr[16];
	__u8 daddr[16];
	struct sock_facts facts;
};

/* Kernel-side counters, read by user space from .bss. */
struct sock_counters {
	__u64 entered;		/* sockets stamped on entering CLOSE_WAIT */
	__u64 left;		/* stamped sockets that left CLOSE_WAIT */
	__u64 ringbuf_drops;	/* events lost: ring buffer full */
	__u64 storage_fail;	/* socket storage could not be allocated */
};

#endif /* EGHOSTBUSTER_SOCKETS_H */
