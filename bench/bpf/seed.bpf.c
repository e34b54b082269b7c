// SPDX-License-Identifier: GPL-2.0
/*
 * A baseline doing what the seed's design did: read and match the file name
 * on every openat entry (a user-memory string copy per open), pair it with
 * the exit, and report every process exit to user space, which looks each
 * one up. Built with the same harness, to compare designs on one machine.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define O_CREAT 0100
#define NAME 256

struct seed_event {
	__u32 kind;	/* 1 created, 2 exit */
	__u32 pid;
	__s64 ret;
	char name[64];
};

struct seed_event _seed_event = {};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} seed_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[NAME]);
} namebuf SEC(".maps");

static __always_inline bool ends_with_lock(const char *s, long len)
{
	/* len includes the NUL */
	if (len < 6)
		return false;
	return s[(len - 6) & (NAME - 1)] == '.' && s[(len - 5) & (NAME - 1)] == 'l' &&
	       s[(len - 4) & (NAME - 1)] == 'o' && s[(len - 3) & (NAME - 1)] == 'c' &&
	       s[(len - 2) & (NAME - 1)] == 'k';
}

SEC("tracepoint/syscalls/sys_enter_openat")
int seed_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	__u32 zero = 0, tid = (__u32)bpf_get_current_pid_tgid(), one = 1;
	char *buf = bpf_map_lookup_elem(&namebuf, &zero);
	long len;

	if (!buf)
		return 0;
	len = bpf_probe_read_user_str(buf, NAME, (const char *)ctx->args[1]);
	if (len > 0 && ends_with_lock(buf, len) && (ctx->args[2] & O_CREAT))
		bpf_map_update_elem(&pending, &tid, &one, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int seed_exit_openat(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct seed_event *e;

	if (!bpf_map_lookup_elem(&pending, &tid))
		return 0;
	bpf_map_delete_elem(&pending, &tid);
	e = bpf_ringbuf_reserve(&seed_events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->kind = 1;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ret = ctx->ret;
	e->name[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(seed_exit, struct task_struct *p)
{
	struct seed_event *e = bpf_ringbuf_reserve(&seed_events, sizeof(*e), 0);

	if (!e)
		return 0;
	e->kind = 2;
	e->pid = p->tgid;
	e->ret = p->exit_code;
	e->name[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
