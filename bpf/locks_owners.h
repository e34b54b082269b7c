/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lock programs' owners: watched thread groups, their per-uid shares,
 * and the creator's credentials each record carries.
 * Code only: included once by bpf/locks.bpf.c, after its maps and
 * globals (one object; a header keeps the file to one concern).
 */
#ifndef EGHOSTBUSTER_LOCKS_OWNERS_H
#define EGHOSTBUSTER_LOCKS_OWNERS_H

static __always_inline void count(__u64 *c)
{
	__sync_fetch_and_add(c, 1);
}

/*
 * Mark @leader's thread group (@tgid) as an owner, in both views. The
 * owners value says whose share it counts to: OWNER_COUNTED | uid when the
 * kernel counted it in uid_owners (user space's own entries hold 1).
 */
static __always_inline bool watch_owner(struct task_struct *leader, __u32 tgid)
{
	__u32 uid = BPF_CORE_READ(leader, cred, fsuid.val);
	__u64 val = OWNER_COUNTED | uid;
	__u32 one = 1, *held = NULL;
	__u64 *cur;
	bool fresh;

	if (uid_owner_share) {
		held = bpf_map_lookup_elem(&uid_owners, &uid);
		if (held && *held >= uid_owner_share) {
			count(&counters.owners_full);
			return false;
		}
	}
	/* not counted yet: new, or an entry user space made */
	cur = bpf_map_lookup_elem(&owners, &tgid);
	fresh = !cur || !(*cur & OWNER_COUNTED);
	if (bpf_map_update_elem(&owners, &tgid, &val, BPF_ANY) ||
	    !bpf_task_storage_get(&owner_marks, leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE)) {
		count(&counters.owners_full);
		return false;
	}
	if (uid_owner_share && fresh) {
		if (held)
			__sync_fetch_and_add(held, 1);
		else
			bpf_map_update_elem(&uid_owners, &uid, &one, BPF_NOEXIST);
	}
	return true;
}

/* An owner's entry goes: its uid's count with it. */
static __always_inline void unwatch_owner(__u32 tgid)
{
	__u64 *val = bpf_map_lookup_elem(&owners, &tgid);
	__u32 uid, *held;

	if (val && (*val & OWNER_COUNTED)) {
		uid = (__u32)*val;
		held = bpf_map_lookup_elem(&uid_owners, &uid);
		if (held && *held > 0)
			__sync_fetch_and_add(held, -1);
	}
	bpf_map_delete_elem(&owners, &tgid);
}

/* Is @leader's thread group an owner? A process that owns nothing and that
 * no BPF program gave task storage has none: one load says so. */
static __always_inline bool is_owner(struct task_struct *leader)
{
	if (!leader->bpf_storage)
		return false;
	return bpf_task_storage_get(&owner_marks, leader, 0, 0) != NULL;
}

static __always_inline struct task_struct *current_leader(void)
{
	return bpf_get_current_task_btf()->group_leader;
}

/* The creator's filesystem credentials, as permission checks use them
 * (@task: a BTF pointer, read by direct loads). */
static __always_inline void read_creds(struct task_struct *task, struct lock_record_head *h)
{
	const struct cred *cred = task->cred;
	struct group_info *gi = cred->group_info;
	__u32 n;

	h->fsuid = cred->fsuid.val;
	h->fsgid = cred->fsgid.val;
	n = gi->ngroups;
	h->ngroups = n;
	h->_pad2 = 0;
	if (n > LOCK_MAX_GROUPS)
		n = LOCK_MAX_GROUPS;
	bpf_probe_read_kernel(h->groups, n * sizeof(__u32), &gi->gid[0]);
}

/* How many records @uid holds (NULL: none yet, or no shares). */
static __always_inline __u32 *share_of(__u32 uid)
{
	if (!uid_lock_share)
		return NULL;
	return bpf_map_lookup_elem(&uid_locks, &uid);
}

/* One more record for @uid, whose count share_of() found at @held. */
static __always_inline void share_add(__u32 uid, __u32 *held)
{
	__u32 one = 1;

	if (!uid_lock_share)
		return;
	if (held)
		__sync_fetch_and_add(held, 1);
	else
		bpf_map_update_elem(&uid_locks, &uid, &one, BPF_NOEXIST);
}

#endif /* EGHOSTBUSTER_LOCKS_OWNERS_H */
