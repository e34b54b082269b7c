// SPDX-License-Identifier: GPL-2.0
/*
 * The floor: empty programs on exactly the hooks the agent attaches by
 * default (creat only with --non-exclusive; keep this list in step with
 * bpf/locks.bpf.c and bpf/sockets.bpf.c). Any
 * program on a syscall tracepoint sends every syscall through the kernel's
 * slower tracing path; this measures that cost alone, which no design on
 * these hooks can avoid.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#define EMPTY_TP(name)                                  \
	SEC("tracepoint/syscalls/" #name)               \
	int floor_##name(void *ctx) { return 0; }

EMPTY_TP(sys_exit_openat)
EMPTY_TP(sys_exit_openat2)
EMPTY_TP(sys_exit_open)
EMPTY_TP(sys_exit_unlinkat)
EMPTY_TP(sys_exit_unlink)
EMPTY_TP(sys_exit_renameat2)
EMPTY_TP(sys_exit_renameat)
EMPTY_TP(sys_exit_rename)
EMPTY_TP(sys_exit_link)
EMPTY_TP(sys_exit_linkat)
EMPTY_TP(sys_exit_mkdir)
EMPTY_TP(sys_exit_mkdirat)
EMPTY_TP(sys_exit_symlink)
EMPTY_TP(sys_exit_symlinkat)

SEC("tp_btf/sched_process_exit")
int BPF_PROG(floor_exit, struct task_struct *p)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_sock, struct sock *sk, int oldstate, int newstate)
{
	return 0;
}
