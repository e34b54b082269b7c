// SPDX-License-Identifier: GPL-2.0
/*
 * CLOSE_WAIT monitor: stamps TCP sockets as they enter CLOSE_WAIT (the peer
 * closed; the local application has not), tells user space so it can set a
 * deadline, and a tcp iterator (the reaper) that user space runs at the
 * deadline, in the socket's network namespace, to re-check state and age
 * and destroy what is stale.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "sockets.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10

/*
 * The port scope: set by user space before load, and again on a reload
 * (SIGHUP), through the ".data.scope" map, which holds nothing else (so
 * rewriting it never races with the counters in .bss). Timeouts are user
 * space's: they depend on the socket's owner, which only it knows.
 */
volatile __u32 n_ports SEC(".data.scope") = 0;	/* 0: every port */
volatile __u16 ports[SOCK_MAX_PORTS] SEC(".data.scope") = {};
volatile __u32 n_exclude SEC(".data.scope") = 0;
volatile __u16 exclude_ports[SOCK_MAX_PORTS] SEC(".data.scope") = {};
/* Set by user space before load. */
/* Age as if CONFIG_HZ were unknown (tests the fallback on any host). */
const volatile bool ignore_hz = false;

/*
 * Linux 6.5+. Weak so that the object still loads on older kernels, where
 * user space turns reap_destroy off and runs reap_report instead.
 */
extern int bpf_sock_destroy(struct sock_common *sk) __ksym __weak;

/* The kernel's tick rate, to turn tcp_sock->lsndtime (jiffies) into ns. */
extern unsigned int CONFIG_HZ __kconfig __weak;

struct sock_counters counters = {};

/* Emit BTF for the records so libbpf-cargo generates their Rust types. */
struct sock_event _sock_event = {};
struct sock_reap _sock_reap = {};
enum sock_event_kind _sock_event_kind = 0;
enum sock_reap_kind _sock_reap_kind = 0;
enum sock_limits _sock_limits = 0;

struct stamp {
	__u64 entered_ns;	/* CLOCK_BOOTTIME: entry into CLOSE_WAIT */
	__u64 sent_ns;		/* last visit that saw the socket busy: its send
				 * queue not empty, or (without HZ) new sends */
	__u32 lsndtime;		/* without HZ: tcp_sock->lsndtime at that time */
	__u32 first_sight;	/* stamped by the reaper, not at entry */
};

/* One stamp per socket in CLOSE_WAIT; freed with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct stamp);
} stamps SEC(".maps");

/*
 * The sockets user space judged stale, by cookie, with the facts it judged
 * them by: the act pass destroys only those whose facts are unchanged.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SOCK_MAX_JUDGED);
	__type(key, __u64);
	__type(value, struct sock_facts);
} judged SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} sock_events SEC(".maps");

static __always_inline void count(__u64 *c)
{
	__sync_fetch_and_add(c, 1);
}

static __always_inline bool port_listed(const volatile __u16 *list, __u32 n, __u16 port)
{
	for (int i = 0; i < SOCK_MAX_PORTS; i++) {
		if (i >= n)
			break;
		if (list[i] == port)
			return true;
	}
	return false;
}

/* --port: local or remote port listed; --exclude-port: neither listed. */
static __always_inline bool in_scope(__u16 lport, __u16 rport)
{
	if (n_ports && !port_listed(ports, n_ports, lport) &&
	    !port_listed(ports, n_ports, rport))
		return false;
	if (n_exclude && (port_listed(exclude_ports, n_exclude, lport) ||
			  port_listed(exclude_ports, n_exclude, rport)))
		return false;
	return true;
}

/* Family, ports, addresses, device, namespace: shared by both records. */
#define FILL_ENDPOINTS(rec, skc)						\
	do {									\
		(rec)->family = BPF_CORE_READ(skc, skc_family);			\
		(rec)->lport = BPF_CORE_READ(skc, skc_num);			\
		(rec)->rport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));	\
		(rec)->ifindex = BPF_CORE_READ(skc, skc_bound_dev_if);		\
		(rec)->netns = BPF_CORE_READ(skc, skc_net.net, ns.inum);	\
		if ((rec)->family == AF_INET) {					\
			__u32 s = BPF_CORE_READ(skc, skc_rcv_saddr);		\
			__u32 d = BPF_CORE_READ(skc, skc_daddr);		\
			__builtin_memcpy((rec)->saddr, &s, 4);			\
			__builtin_memcpy((rec)->daddr, &d, 4);			\
		} else {							\
			BPF_CORE_READ_INTO(&(rec)->saddr, skc, skc_v6_rcv_saddr); \
			BPF_CORE_READ_INTO(&(rec)->daddr, skc, skc_v6_daddr);	\
		}								\
	} while (0)

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	/* Cheapest first: almost every transition is not to or from CLOSE_WAIT. */
	if (newstate != TCP_CLOSE_WAIT && oldstate != TCP_CLOSE_WAIT)
		return 0;
	/* raw tracepoint arguments may be NULL as far as the verifier knows (6.12+) */
	if (!sk)
		return 0;
	/* MPTCP's parent socket also reports states; its subflows are plain TCP */
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (!in_scope(sk->__sk_common.skc_num, bpf_ntohs(sk->__sk_common.skc_dport)))
		return 0;

	__u32 kind;
	__u64 now = bpf_ktime_get_boot_ns();
	if (newstate == TCP_CLOSE_WAIT) {
		struct stamp *st = bpf_sk_storage_get(&stamps, (struct sock *)sk, 0,
						      BPF_SK_STORAGE_GET_F_CREATE);
		if (!st) {
			count(&counters.storage_fail);
			return 0;
		}
		st->entered_ns = now;
		st->sent_ns = 0;
		st->lsndtime = BPF_CORE_READ((struct tcp_sock *)sk, lsndtime);
		st->first_sight = 0;
		count(&counters.entered);
		kind = SOCK_EV_ENTER;
	} else {
		/* only sockets we stamped are of interest to user space */
		if (bpf_sk_storage_delete(&stamps, (struct sock *)sk))
			return 0;
		count(&counters.left);
		kind = SOCK_EV_LEAVE;
	}

	struct sock_event *ev = bpf_ringbuf_reserve(&sock_events, sizeof(*ev), 0);
	if (!ev) {
		count(&counters.ringbuf_drops);
		return 0;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->kind = kind;
	ev->cookie = bpf_get_socket_cookie((struct sock *)sk);
	ev->entered_ns = now;
	const struct sock_common *skc = &sk->__sk_common;
	FILL_ENDPOINTS(ev, skc);
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

/*
 * What the application shows: its sends and reads, and whether anything
 * waits on the socket. A thread blocked in recv/send/poll/select on it,
 * and every poll/epoll registration (ep_insert queues an entry on the
 * socket's wait queue, which stays until EPOLL_CTL_DEL or close), sit on
 * sk->sk_wq's wait queue: a socket nobody waits on is one nobody serves
 * by an event loop or a blocked thread.
 */
static __always_inline void read_facts(struct tcp_sock *tp, struct sock_facts *f)
{
	struct sock *sk = (struct sock *)tp;

	f->lsndtime = tp->lsndtime;
	f->lrcvtime = tp->inet_conn.icsk_ack.lrcvtime;
	f->write_seq = tp->write_seq;
	f->snd_una = tp->snd_una;
	f->copied_seq = tp->copied_seq;
	f->rcv_nxt = tp->rcv_nxt;
	f->data_segs_out = tp->data_segs_out;

	struct socket_wq *wq = BPF_CORE_READ(sk, sk_wq);
	if (wq) {
		struct list_head *head = __builtin_preserve_access_index(&wq->wait.head);
		struct list_head *next = BPF_CORE_READ(wq, wait.head.next);

		f->watched = next && next != head;
	}
	/* f_ep: the file's epitems (Linux 5.11+); older kernels: waiters only */
	struct file *file = BPF_CORE_READ(sk, sk_socket, file);
	if (file && bpf_core_field_exists(file->f_ep))
		f->epoll = BPF_CORE_READ(file, f_ep) != NULL;
}

static __always_inline bool same_facts(const struct sock_facts *a, const struct sock_facts *b)
{
	return a->lsndtime == b->lsndtime && a->lrcvtime == b->lrcvtime &&
	       a->write_seq == b->write_seq && a->snd_una == b->snd_una &&
	       a->copied_seq == b->copied_seq && a->rcv_nxt == b->rcv_nxt &&
	       a->data_segs_out == b->data_segs_out && a->watched == b->watched &&
	       a->epoll == b->epoll;
}

/* A CLOSE_WAIT TCP socket of IPv4 or IPv6 in the port scope, or NULL. */
static __always_inline struct tcp_sock *close_wait_sock(struct sock_common *skc,
							 struct sock_reap *rec)
{
	if (!skc)
		return NULL;
	/* also skips request and timewait sockets, which are never CLOSE_WAIT */
	if (skc->skc_state != TCP_CLOSE_WAIT)
		return NULL;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return NULL;
	FILL_ENDPOINTS(rec, skc);
	if (rec->family != AF_INET && rec->family != AF_INET6)
		return NULL;
	if (!in_scope(rec->lport, rec->rport))
		return NULL;
	return tp;
}

/*
 * The survey: every CLOSE_WAIT socket in scope, with its idle time and
 * facts, and every listener (user space judges a socket whose local port
 * has one as the server end). Idle time is now - max(entry into
 * CLOSE_WAIT, last data the socket sent, last visit that found its send
 * queue busy). The last send is tcp_sock->lsndtime: the kernel's own clock
 * of the last data segment transmitted (the one TCP uses to restart the
 * congestion window after idle), so a half-closed connection that is still
 * writing its response keeps being young, with no hook on the send path
 * (fentry/kprobe are not available to us). It is in jiffies; CONFIG_HZ
 * (from the kernel config libbpf finds) turns it into ns. Without a known
 * HZ, a change of lsndtime since the last look counts as a send at the
 * time of the visit: coarser (a socket only ever looks younger), never
 * wrong.
 *
 * lsndtime alone misses a writer blocked against a zero window: the peer
 * half-closed and stopped reading, MBs wait in the send queue, and no data
 * segment leaves (window probes carry none), so lsndtime stands still while
 * the application sits in send(). Bytes unsent or unacknowledged
 * (write_seq - snd_una, what inet_diag reports as idiag_wqueue and what
 * `sweep` requires to be 0) make the socket busy at this visit, as a send
 * would.
 *
 * Sockets already in CLOSE_WAIT when the agent started carry no stamp: they
 * are aged from the survey's first visit. Not from tcp_sock->rcv_tstamp
 * (the last segment received): that follows the peer, not the local
 * application, moves with every ACK or keepalive the peer sends, and a
 * freshly started agent would destroy at once sockets whose history it
 * never saw. From first sight, nothing is destroyed sooner than the timeout
 * after the agent starts; a restart only ever postpones.
 */
SEC("iter/tcp")
int survey(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct sock_reap rec = {};

	if (skc && skc->skc_state == TCP_LISTEN) {
		rec.kind = SOCK_REAP_LISTEN;
		FILL_ENDPOINTS(&rec, skc);
		bpf_seq_write(seq, &rec, sizeof(rec));
		return 0;
	}
	struct tcp_sock *tp = close_wait_sock(skc, &rec);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;

	__u64 now = bpf_ktime_get_boot_ns();
	struct stamp *st = bpf_sk_storage_get(&stamps, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		count(&counters.storage_fail);
		return 0;
	}
	if (!st->entered_ns) {
		st->entered_ns = now;
		st->lsndtime = tp->lsndtime;
		st->first_sight = 1;
	}
	__u64 idle = now - st->entered_ns;
	/* nothing unsent, nothing unacknowledged, or it is busy now */
	if (tp->write_seq != tp->snd_una)
		st->sent_ns = now;
	if (!CONFIG_HZ || ignore_hz) {
		if (tp->lsndtime != st->lsndtime) {
			st->lsndtime = tp->lsndtime;
			st->sent_ns = now;
		}
	} else {
		/* u32 arithmetic: lsndtime is tcp_jiffies32, wraps like it */
		__u32 since_send = (__u32)bpf_jiffies64() - tp->lsndtime;
		__u64 sent_ago = (__u64)since_send * (1000000000ULL / CONFIG_HZ);

		if (sent_ago < idle)
			idle = sent_ago;
	}
	if (st->sent_ns && now - st->sent_ns < idle)
		idle = now - st->sent_ns;

	rec.kind = SOCK_REAP_SEEN;
	rec.cookie = bpf_get_socket_cookie(sk);
	rec.ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	rec.first_sight = st->first_sight;
	rec.idle_ns = idle;
	rec.bytes_received = tp->bytes_received;
	read_facts(tp, &rec.facts);
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

/*
 * The act pass, over the sockets user space put in "judged": one whose
 * facts are unchanged (nothing sent, read, or newly watched since the
 * survey it was judged by) is destroyed, or confirmed for user space to
 * destroy by netlink; one that changed is kept and reported.
 */
static __always_inline int act(struct bpf_iter__tcp *ctx, bool destroy)
{
	struct sock_common *skc = ctx->sk_common;
	struct seq_file *seq = ctx->meta->seq;
	struct sock_reap rec = {};

	/* checked here, not only in the helper: bpf_sock_destroy's argument
	 * must be proven non-NULL in this register */
	if (!skc)
		return 0;
	struct tcp_sock *tp = close_wait_sock(skc, &rec);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct sock_facts *judged_by = bpf_map_lookup_elem(&judged, &cookie);
	if (!judged_by)
		return 0;

	rec.cookie = cookie;
	rec.ino = BPF_CORE_READ(sk, sk_socket, file, f_inode, i_ino);
	rec.bytes_received = tp->bytes_received;
	read_facts(tp, &rec.facts);
	if (!same_facts(&rec.facts, judged_by)) {
		rec.kind = SOCK_REAP_CHANGED;
	} else if (destroy && bpf_ksym_exists(bpf_sock_destroy)) {
		/* the iterator holds the socket lock, as tcp_abort requires */
		rec.err = bpf_sock_destroy(skc);
		rec.kind = rec.err ? SOCK_REAP_FAILED : SOCK_REAP_DESTROYED;
	} else {
		rec.kind = SOCK_REAP_CONFIRMED;
	}
	bpf_map_delete_elem(&judged, &cookie);
	bpf_seq_write(seq, &rec, sizeof(rec));
	return 0;
}

/* Destroys what is unchanged (kernel 6.5+). */
SEC("iter/tcp")
int act_destroy(struct bpf_iter__tcp *ctx)
{
	return act(ctx, true);
}

/* Confirms what is unchanged; user space destroys it by netlink. */
SEC("iter/tcp")
int act_confirm(struct bpf_iter__tcp *ctx)
{
	return act(ctx, false);
}
