// SPDX-License-Identifier: GPL-2.0
/*
 * The floor: empty programs on exactly the hooks the agent attaches by
 * default (the 14 syscall exits, process exit and exec, the socket state) (creat only with --non-exclusive; keep this list in step with
 * bpf/locks.bpf.c and bpf/sockets.bpf.c). Any
 * program on a syscall tracepoint sends every syscall through the kernel's
 * slower tracing path; this measures that cost alone, which no design on
 * these hooks can avoid.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* short names: the kernel keeps 15 characters of a program's name */
#define EMPTY_TP(name)                                  \
	SEC("tracepoint/syscalls/sys_exit_" #name)      \
	int fl_##name(void *ctx) { return 0; }

EMPTY_TP(openat)
EMPTY_TP(openat2)
EMPTY_TP(open)
EMPTY_TP(unlinkat)
EMPTY_TP(unlink)
EMPTY_TP(renameat2)
EMPTY_TP(renameat)
EMPTY_TP(rename)
EMPTY_TP(link)
EMPTY_TP(linkat)
EMPTY_TP(mkdir)
EMPTY_TP(mkdirat)
EMPTY_TP(symlink)
EMPTY_TP(symlinkat)

SEC("tp_btf/sched_process_exit")
int BPF_PROG(fl_exit, struct task_struct *p)
{
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(fl_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(fl_sock, struct sock *sk, int oldstate, int newstate)
{
	return 0;
}
