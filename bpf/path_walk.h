/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Code shared by the file-class programs (unix_sockets, pidfiles): the
 * struct file behind a descriptor, the absolute path of a dentry in its
 * mount namespace, and the creating task's credentials and PID namespace.
 * Code only, included after vmlinux.h and the libbpf headers: each class's
 * records are defined in its own header. (bpf/locks.bpf.c has its own copy
 * of the walk; it can include this one instead.)
 */
#ifndef EGHOSTBUSTER_PATH_WALK_H
#define EGHOSTBUSTER_PATH_WALK_H

#define WALK_PATH_MAX 4096	/* a record's path buffer: a power of two */
#define WALK_NAME_BUF 256	/* NAME_MAX + 1 */
#define WALK_MAX_STEPS 160	/* path components plus mount crossings */
#define WALK_MAX_GROUPS 32	/* supplementary groups a record holds */

/* Flags build_path sets. */
#define WALK_F_TRUNCATED 0x1	/* deeper or longer than we walk */
#define WALK_F_UNREACHABLE 0x2	/* dentry not reachable from its mount root */

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000

/* The path is built backward here (per CPU: a program runs on one CPU). */
struct walk_buf {
	char buf[WALK_PATH_MAX + WALK_NAME_BUF];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct walk_buf);
} walk_scratch SEC(".maps");

/* x86_64 syscall arguments in the saved user registers: di, si, dx, r10.
 * A direct (BTF) load, not a probe-read helper call. */
static __always_inline struct pt_regs *user_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

/*
 * The file behind descriptor @fd of @task (bpf_get_current_task_btf()).
 * Direct (BTF) loads down to the descriptor table, which the JIT turns
 * into plain loads with a fault fixup; one probe-read helper for the slot
 * (an array indexed by a variable cannot be loaded directly). This runs
 * on every open that creates or truncates: helper calls are what costs.
 */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = task->files->fdt;
	struct file **fds;
	struct file *file = NULL;

	if ((unsigned long)fd >= fdt->max_fds)
		return NULL;
	fds = fdt->fd;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

struct walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	__u32 pos;	/* buf[pos..WALK_PATH_MAX) holds the path so far */
	__u32 flags;
	bool done;
};

/* One step up: a path component, or a crossing to the parent mount. */
static long walk_step(__u32 i, void *data)
{
	struct walk *w = data;
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	struct dentry *mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	const unsigned char *name;
	struct walk_buf *s;
	__u32 zero = 0, len, pos;

	if (dentry == mnt_root || dentry == parent) {
		struct mount *up;

		w->done = true;
		if (dentry != mnt_root) {
			w->flags |= WALK_F_UNREACHABLE;
			return 1;
		}
		up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt)
			return 1; /* the namespace's root mount */
		w->done = false;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		w->vfsmnt = &up->mnt;
		return 0;
	}
	s = bpf_map_lookup_elem(&walk_scratch, &zero);
	if (!s)
		return 1;
	len = BPF_CORE_READ(dentry, d_name.len);
	name = BPF_CORE_READ(dentry, d_name.name);
	pos = w->pos;
	if (len >= WALK_NAME_BUF || len + 2 > pos) {
		w->flags |= WALK_F_TRUNCATED;
		w->done = true;
		return 1;
	}
	pos -= len;
	bpf_probe_read_kernel(&s->buf[pos & (WALK_PATH_MAX - 1)], len & (WALK_NAME_BUF - 1), name);
	pos -= 1;
	s->buf[pos & (WALK_PATH_MAX - 1)] = '/';
	w->pos = pos;
	w->dentry = parent;
	return 0;
}

/*
 * The absolute path of @dentry on @vfsmnt, up to the root of its mount
 * namespace (bpf_d_path is not allowed in tracepoint programs), copied to
 * @out (WALK_PATH_MAX bytes, no NUL). bpf_loop (5.17+) keeps the
 * verifier's work to one step. Returns its length; ORs WALK_F_* into
 * @flags.
 */
static __always_inline __u32 build_path(char *out, struct vfsmount *vfsmnt,
				       struct dentry *dentry, __u32 *flags)
{
	struct walk w = {
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = container_of(vfsmnt, struct mount, mnt),
		.pos = WALK_PATH_MAX,
	};
	struct walk_buf *s;
	__u32 zero = 0, n;

	s = bpf_map_lookup_elem(&walk_scratch, &zero);
	if (!s) {
		*flags |= WALK_F_TRUNCATED;
		return 0;
	}
	bpf_loop(WALK_MAX_STEPS, walk_step, &w, 0);
	if (!w.done)
		w.flags |= WALK_F_TRUNCATED;
	*flags |= w.flags;
	if (w.pos >= WALK_PATH_MAX) {
		w.pos = WALK_PATH_MAX - 1;
		s->buf[WALK_PATH_MAX - 1] = '/';
	}
	n = WALK_PATH_MAX - w.pos;
	bpf_probe_read_kernel(out, n & (WALK_PATH_MAX - 1), &s->buf[w.pos & (WALK_PATH_MAX - 1)]);
	return n & (WALK_PATH_MAX - 1);
}

/* The inode number of @task's (innermost) PID namespace. */
static __always_inline __u64 pid_ns_inum(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return BPF_CORE_READ(up.ns, ns.inum);
}

/*
 * @task's filesystem credentials, as the kernel checks them on a path
 * walk: fsuid, fsgid (kernel ids: a user namespace's ids as the host sees
 * them) and up to WALK_MAX_GROUPS supplementary groups. @ngroups gets the
 * task's real count, which may be more than @groups holds.
 */
static __always_inline void read_creds(struct task_struct *task, __u32 *fsuid, __u32 *fsgid,
				       __u32 *ngroups, __u32 *groups)
{
	const struct cred *cred = BPF_CORE_READ(task, cred);
	struct group_info *gi = BPF_CORE_READ(cred, group_info);
	__u32 n;

	*fsuid = BPF_CORE_READ(cred, fsuid.val);
	*fsgid = BPF_CORE_READ(cred, fsgid.val);
	n = BPF_CORE_READ(gi, ngroups);
	*ngroups = n;
	if (n > WALK_MAX_GROUPS)
		n = WALK_MAX_GROUPS;
	bpf_probe_read_kernel(groups, n * sizeof(__u32), &gi->gid[0]);
}

#endif /* EGHOSTBUSTER_PATH_WALK_H */
