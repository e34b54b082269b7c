/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lock programs on process exit and exec: an owner's end, told to
 * user space, and the owner mark kept on the group leader.
 * Code only: included once by bpf/locks.bpf.c, after its maps and
 * globals (one object; a header keeps the file to one concern).
 */
#ifndef EGHOSTBUSTER_LOCKS_EXIT_H
#define EGHOSTBUSTER_LOCKS_EXIT_H

/*
 * An owner's whole thread group exited: tell user space, and hand the
 * watch to the parent on a clean exit. Kept out of line, so that the
 * program every exit on the host runs is only the test below it.
 */
static __noinline int owner_exited(struct task_struct *p)
{
	struct task_struct *parent;
	struct signal_struct *psig;
	struct lock_exit e = {};
	__u32 tgid;
	int status;

	if (!p)
		return 0;
	tgid = p->tgid;
	unwatch_owner(tgid);

	/* the group's wait status when it exited as a group (exit_group,
	 * fatal signal); the last thread's own code otherwise */
	status = BPF_CORE_READ(p, signal, group_exit_code);
	if (!status)
		status = BPF_CORE_READ(p, exit_code);
	parent = p->real_parent;
	psig = BPF_CORE_READ(parent, signal);

	e.kind = LOCK_EV_EXIT;
	e.tgid = tgid;
	e.ppid = BPF_CORE_READ(parent, tgid);
	/* a lock file names its owner as the owner's PID namespace numbers it */
	e.pid_ns = pid_ns_nr(BPF_CORE_READ(p, group_leader, thread_pid), &e.ns_tgid);
	e.status = status;
	e.start_boottime = BPF_CORE_READ(p, group_leader, start_boottime);
	e.parent_start_boottime = BPF_CORE_READ(parent, group_leader, start_boottime);
	e.parent_subreaper = BPF_CORE_READ_BITFIELD_PROBED(psig, is_child_subreaper);
	BPF_CORE_READ_STR_INTO(&e.comm, p, group_leader, comm);
	/* A clean exit hands the locks to the parent: watch it now, before
	 * it can exit unseen while user space catches up. */
	if (status == 0 && e.ppid > 1)
		watch_owner(parent->group_leader, e.ppid);
	/* kept until user space has dealt with it, even across a restart */
	if (bpf_map_update_elem(&exited, &tgid, &e, BPF_ANY))
		count(&counters.table_full);
	/* forced: records queued without a wakeup before it would otherwise
	 * keep the kernel from waking the poller for this one */
	if (bpf_ringbuf_output(&lock_events, &e, sizeof(e), BPF_RB_FORCE_WAKEUP))
		count(&counters.ringbuf_drops);
	else
		count(&counters.exits);
	return 0;
}

/*
 * Exit of a whole thread group (group_dead: the last thread is leaving);
 * a single thread's exit never counts. The common case, a process that
 * owns no lock, is one pointer test on its group leader (is_owner).
 */
static __always_inline int handle_exit_common(struct task_struct *p, bool group_dead)
{
	if (!group_dead || !is_owner(p->group_leader))
		return 0;
	return owner_exited(p);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *p, bool group_dead)
{
	return handle_exit_common(p, group_dead);
}

/*
 * The same, for kernels whose sched_process_exit has no group_dead argument
 * (it was added to the tracepoint late; user space probes BTF and loads one
 * of the two). do_exit decrements signal->live before this tracepoint, and
 * the last thread out sees it reach zero.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit_legacy, struct task_struct *p)
{
	bool group_dead = BPF_CORE_READ(p, signal, live.counter) == 0;

	return handle_exit_common(p, group_dead);
}

/*
 * An exec from a thread that is not the group leader: de_thread made that
 * thread the leader (it took the leader's PID) and released the old one,
 * and the owner mark with it. Move the mark, if the group is an owner.
 * Any other exec costs one comparison: old_pid is the caller's PID before
 * the exec, which only changes in that case.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid;

	if (old_pid == p->pid)
		return 0;
	tgid = p->tgid;
	if (bpf_map_lookup_elem(&owners, &tgid))
		bpf_task_storage_get(&owner_marks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	return 0;
}

#endif /* EGHOSTBUSTER_LOCKS_EXIT_H */
