// SPDX-License-Identifier: GPL-2.0
/*
 * PID-file monitor: opens that create or rewrite a file whose name matches
 * (default "*.pid"): O_CREAT (exclusive or not) or O_TRUNC, for writing.
 * The file's identity and path come from the opened file, the writer's
 * identity, credentials and namespaces from the current task. The PID is
 * not read here: at sys_exit of the open nothing is written yet. User
 * space reads it after the write, and watches the process it names with a
 * pidfd, so no program runs on the host's exits.
 *
 * Every open on the host passes here: the flags (a register) reject
 * nearly all of them before anything is read.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "path_walk.h"
#include "pidfiles.h"

char LICENSE[] SEC("license") = "GPL";

#define O_ACCMODE 03
#define O_WRONLY 01
#define O_CREAT 0100
#define O_TRUNC 01000

/* Set by user space before load. */
const volatile bool any_name = false;	/* no name pre-filter */
const volatile __u32 n_suffixes = 0;
const volatile __u8 suffix_len[PIDF_MAX_SUFFIXES] = {};
const volatile char suffixes[PIDF_MAX_SUFFIXES][PIDF_SUFFIX_LEN] = {};

struct pidf_counters counters = {};

/* Emit BTF for the records so libbpf-cargo generates their Rust types. */
struct pidf_key _pidf_key = {};
struct pidf_record _pidf_record = {};
struct pidf_written _pidf_written = {};
enum pidf_event_kind _pidf_event_kind = 0;
enum pidf_flags _pidf_flags = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} pidf_events SEC(".maps");

/* Every tracked PID file, by identity; pinned, so it outlives the agent.
 * Not preallocated: records are 4 KiB, most slots stay empty. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PIDF_MAX_TRACKED);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pidf_key);
	__type(value, struct pidf_record);
} pidf_files SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pidf_record);
} pidf_scratch SEC(".maps");

static __always_inline void count(__u64 *c)
{
	__sync_fetch_and_add(c, 1);
}

/* Does the name end with a configured suffix? Only its last
 * PIDF_SUFFIX_LEN bytes are read. */
static __always_inline bool name_matches(struct dentry *dentry)
{
	struct qstr q = {};
	const unsigned char *name;
	char tail[PIDF_SUFFIX_LEN] = {};
	__u32 len, n;

	/* length and pointer in one read */
	if (bpf_probe_read_kernel(&q, sizeof(q), &dentry->d_name))
		return false;
	name = q.name;
	len = q.len;
	n = len;

	if (n > PIDF_SUFFIX_LEN)
		n = PIDF_SUFFIX_LEN;
	if (bpf_probe_read_kernel(tail, n, name + len - n))
		return false;
	for (__u32 i = 0; i < PIDF_MAX_SUFFIXES; i++) {
		__u32 sl;
		bool ok = true;

		if (i >= n_suffixes)
			break;
		sl = suffix_len[i];
		if (sl == 0 || sl > n)
			continue;
		for (__u32 j = 0; j < PIDF_SUFFIX_LEN; j++) {
			if (j >= sl)
				break;
			if (tail[(n - sl + j) & (PIDF_SUFFIX_LEN - 1)] != suffixes[i][j]) {
				ok = false;
				break;
			}
		}
		if (ok)
			return true;
	}
	return false;
}

static __always_inline int handle_open(long fd, __u64 open_flags)
{
	struct task_struct *task;
	struct pidf_record *rec;
	struct pidf_written *ev;
	struct pidf_key key = {};
	struct dentry *dentry;
	struct inode *inode;
	struct file *file;
	__u32 zero = 0, flags = 0;

	/* Cheapest first: the flags are in a register. Creating or
	 * truncating, and for writing; a read-only open writes no PID. */
	if (!(open_flags & (O_CREAT | O_TRUNC)) || !(open_flags & O_ACCMODE))
		return 0;
	task = bpf_get_current_task_btf();
	file = fd_file(task, fd);
	if (!file)
		return 0;
	dentry = BPF_CORE_READ(file, f_path.dentry);
	if (!any_name && !name_matches(dentry))
		return 0;
	inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFREG)
		return 0;

	rec = bpf_map_lookup_elem(&pidf_scratch, &zero);
	if (!rec)
		return 0;
	key.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(inode, i_ino);
	key.gen = BPF_CORE_READ(inode, i_generation);
	rec->tgid = bpf_get_current_pid_tgid() >> 32;
	rec->start_boottime = BPF_CORE_READ(task, group_leader, start_boottime);
	rec->mnt_ns = BPF_CORE_READ(task, nsproxy, mnt_ns, ns.inum);
	rec->pid_ns = pid_ns_inum(task);
	rec->open_flags = open_flags;
	rec->opened_ns = bpf_ktime_get_boot_ns();
	read_creds(task, &rec->fsuid, &rec->fsgid, &rec->ngroups, rec->groups);
	bpf_get_current_comm(rec->comm, sizeof(rec->comm));
	rec->path_len = build_path(rec->path, BPF_CORE_READ(file, f_path.mnt), dentry, &flags);
	rec->flags = flags;
	if (bpf_map_update_elem(&pidf_files, &key, rec, BPF_ANY)) {
		count(&counters.table_full);
		flags |= PIDF_F_TABLE_FULL;
	}

	ev = bpf_ringbuf_reserve(&pidf_events, sizeof(*ev), 0);
	if (!ev) {
		count(&counters.ringbuf_drops);
		return 0;
	}
	ev->kind = PIDF_EV_WRITTEN;
	ev->tgid = rec->tgid;
	ev->flags = flags;
	ev->_pad = 0;
	ev->key = key;
	bpf_ringbuf_submit(ev, 0);
	count(&counters.written);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int pidf_openat(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	return handle_open(ctx->ret, user_regs()->dx);
}

SEC("tracepoint/syscalls/sys_exit_open")
int pidf_open(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	return handle_open(ctx->ret, user_regs()->si);
}

SEC("tracepoint/syscalls/sys_exit_creat")
int pidf_creat(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	/* creat() is open(O_CREAT|O_WRONLY|O_TRUNC) */
	return handle_open(ctx->ret, O_CREAT | O_WRONLY | O_TRUNC);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int pidf_openat2(struct trace_event_raw_sys_exit *ctx)
{
	struct open_how *how;
	__u64 flags = 0;

	if (ctx->ret < 0)
		return 0;
	how = (struct open_how *)BPF_CORE_READ(user_regs(), dx);
	bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
	return handle_open(ctx->ret, flags);
}
