// SPDX-License-Identifier: GPL-2.0
/*
 * Socket-file monitor: successful bind() of path-based AF_UNIX sockets.
 * The socket file's identity and path come from the bound socket itself
 * (unix_sock->path), the binder's identity, credentials and namespaces
 * from the current task. Exits are not watched here: user space watches
 * the binders with pidfds, so no program runs on the host's exits.
 *
 * bind is not as hot as open, but every bind on the host passes here:
 * each test rejects what it can before the next, dearer one.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "path_walk.h"
#include "unix_sockets.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_UNIX 1
#define SUN_PATH_OFFSET 2	/* offsetof(struct sockaddr_un, sun_path) */

struct uxs_counters counters = {};

/* Emit BTF for the records so libbpf-cargo generates their Rust types. */
struct uxs_key _uxs_key = {};
struct uxs_record _uxs_record = {};
struct uxs_bound _uxs_bound = {};
enum uxs_event_kind _uxs_event_kind = 0;
enum uxs_flags _uxs_flags = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} uxs_events SEC(".maps");

/* Every tracked socket file, by identity; pinned, so it outlives the
 * agent. Not preallocated: records are 4 KiB, most slots stay empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UXS_MAX_TRACKED);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct uxs_key);
	__type(value, struct uxs_record);
} uxs_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct uxs_record);
} uxs_scratch SEC(".maps");

static __always_inline void count(__u64 *c)
{
	__sync_fetch_and_add(c, 1);
}

static __always_inline bool is_socket_inode(struct inode *inode)
{
	return (BPF_CORE_READ(inode, i_mode) & S_IFMT) == S_IFSOCK;
}

/* bind(fd, addr, addrlen) returned 0. */
SEC("tracepoint/syscalls/sys_exit_bind")
int uxs_bind(struct trace_event_raw_sys_exit *ctx)
{
	struct task_struct *task;
	struct pt_regs *regs;
	struct uxs_record *rec;
	struct uxs_bound *ev;
	struct uxs_key key = {};
	struct socket *sock;
	struct unix_sock *u;
	struct dentry *dentry;
	struct inode *inode;
	struct file *file;
	struct sock *sk;
	__u8 head[3];
	__u32 zero = 0, flags = 0;

	/* Cheapest first: the return value, then the address length in a
	 * register (an unnamed autobind has no path), then one read of the
	 * caller's address: its family and whether the name is abstract
	 * (a leading NUL: no file). Only then the kernel's objects. */
	if (ctx->ret != 0)
		return 0;
	regs = user_regs();
	if ((int)regs->dx <= SUN_PATH_OFFSET)
		return 0;
	if (bpf_probe_read_user(head, sizeof(head), (void *)regs->si))
		return 0;
	if ((head[0] | head[1] << 8) != AF_UNIX || head[2] == 0)
		return 0;

	/* The bound socket says what was bound (the caller's memory may have
	 * changed since): an AF_UNIX socket with a path (mount + dentry). */
	task = bpf_get_current_task_btf();
	file = fd_file(task, regs->di);
	if (!file || !is_socket_inode(BPF_CORE_READ(file, f_inode)))
		return 0;
	sock = BPF_CORE_READ(file, private_data);
	sk = BPF_CORE_READ(sock, sk);
	if (BPF_CORE_READ(sk, __sk_common.skc_family) != AF_UNIX)
		return 0;
	u = (struct unix_sock *)sk;
	dentry = BPF_CORE_READ(u, path.dentry);
	if (!dentry)
		return 0;
	inode = BPF_CORE_READ(dentry, d_inode);
	if (!inode || !is_socket_inode(inode))
		return 0;

	rec = bpf_map_lookup_elem(&uxs_scratch, &zero);
	if (!rec)
		return 0;
	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(inode, i_ino);
	key.gen = BPF_CORE_READ(inode, i_generation);
	rec->tgid = bpf_get_current_pid_tgid() >> 32;
	rec->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);
	rec->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	rec->pid_ns = pid_ns_inum(task);
	rec->net_ns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	rec->sock_ino = BPF_CORE_READ(file, f_inode, i_ino);
	read_creds(task, &rec->fsuid, &rec->fsgid, &rec->ngroups, rec->groups);
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));
	rec->path_len = build_path(rec->path, BPF_CORE_READ(u, path.mnt), dentry, &flags);
	rec->flags = flags;
	if (bpf_map_update_elem(&uxs_files, &key, rec, BPF_ANY)) {
		count(&counters.table_full);
		flags |= UXS_F_TABLE_FULL;
	}

	ev = bpf_ringbuf_reserve(&uxs_events, sizeof(*ev), 0);
	if (!ev) {
		count(&counters.ringbuf_drops);
		return 0;
	}
	ev->kind = UXS_EV_BOUND;
	ev->tgid = rec->tgid;
	ev->flags = flags;
	ev->_pad = 0;
	ev->key = key;
	bpf_ringbuf_submit(ev, 0);
	count(&counters.bound);
	return 0;
}
