/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The lock programs' struct file behind a descriptor, the name pre-filter
 * (suffixes, prefixes), and the walk
 * that rebuilds a dentry's absolute path in its mount namespace.
 * Code only: included once by bpf/locks.bpf.c, after its maps and
 * globals (one object; a header keeps the file to one concern).
 */
#ifndef EGHOSTBUSTER_LOCKS_PATHS_H
#define EGHOSTBUSTER_LOCKS_PATHS_H

/* The file behind descriptor @fd of @task. */
static __always_inline struct file *fd_file(struct task_struct *task, long fd)
{
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;

	if ((unsigned long)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

/* Does @name[0..len) end with a configured suffix? @mask + 1: the size of
 * the buffer (a power of two), so the verifier can bound every index. */
static __always_inline bool suffix_matches(const char *name, __u32 len, __u32 mask)
{
	for (__u32 i = 0; i < MAX_SUFFIXES; i++) {
		__u32 sl;
		bool ok = true;

		if (i >= n_suffixes)
			break;
		sl = suffix_len[i];
		if (sl == 0 || sl > len || sl > SUFFIX_LEN)
			continue;
		for (__u32 j = 0; j < SUFFIX_LEN; j++) {
			if (j >= sl)
				break;
			if (name[(len - sl + j) & mask] != suffixes[i][j]) {
				ok = false;
				break;
			}
		}
		if (ok)
			return true;
	}
	return false;
}

/* Does the name @buf[start..len) begin with a configured prefix? */
static __always_inline bool prefix_matches(const char *buf, __u32 start, __u32 len, __u32 mask)
{
	for (__u32 i = 0; i < MAX_PREFIXES; i++) {
		__u32 pl;
		bool ok = true;

		if (i >= n_prefixes)
			break;
		pl = prefix_len[i];
		if (pl == 0 || pl > PREFIX_LEN || start + pl > len)
			continue;
		for (__u32 j = 0; j < PREFIX_LEN; j++) {
			if (j >= pl)
				break;
			if (buf[(start + j) & mask] != prefixes[i][j]) {
				ok = false;
				break;
			}
		}
		if (ok)
			return true;
	}
	return false;
}

/* Where the last component of the user path @p[0..len) starts. A name is
 * at most NAME_MAX bytes, so the '/' before it is that close to the end. */
static __always_inline __u32 base_start(const char *p, __u32 len)
{
	for (__u32 i = 1; i <= NAME_BUF; i++) {
		if (i > len)
			break;
		if (p[(len - i) & (LOCK_PATH_MAX - 1)] == '/')
			return len - i + 1;
	}
	return 0;
}

struct walk {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *mnt_root;	/* vfsmnt's, read once per mount */
	__u32 pos;	/* s->buf[pos..LOCK_PATH_MAX) holds the path so far */
	__u32 flags;
	bool done;
};

/* One step up: a path component, or a crossing to the parent mount. */
static long walk_step(__u32 i, void *data)
{
	struct walk *w = data;
	/* plain locals: CO-RE relocations apply to kernel types only */
	struct dentry *dentry = w->dentry;
	struct vfsmount *vfsmnt = w->vfsmnt;
	struct mount *mnt = w->mnt;
	struct dentry *mnt_root = w->mnt_root;
	struct dentry *parent = BPF_CORE_READ(dentry, d_parent);
	struct qstr q = {};
	struct scratch *s;
	__u32 zero = 0, len, pos;

	if (dentry == mnt_root || dentry == parent) {
		struct mount *up;

		w->done = true;
		if (dentry != mnt_root) {
			/* a root that is not its mount's root: detached tree */
			w->flags |= LOCK_F_UNREACHABLE;
			return 1;
		}
		up = BPF_CORE_READ(mnt, mnt_parent);
		if (up == mnt)
			return 1; /* the namespace's root mount */
		w->done = false;
		w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
		w->mnt = up;
		vfsmnt = &up->mnt;
		w->vfsmnt = vfsmnt;
		w->mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		return 0;
	}
	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 1;
	/* the name's length and pointer in one read (the step's helper
	 * calls are most of a lock creation's path cost) */
	BPF_CORE_READ_INTO(&q, dentry, d_name);
	len = q.len;
	pos = w->pos;
	if (len >= NAME_BUF || len + 2 > pos) {
		w->flags |= LOCK_F_PATH_TRUNCATED;
		w->done = true;
		return 1;
	}
	pos -= len;
	bpf_probe_read_kernel(&s->buf[pos & (LOCK_PATH_MAX - 1)], len & (NAME_BUF - 1), q.name);
	pos -= 1;
	s->buf[pos & (LOCK_PATH_MAX - 1)] = '/';
	w->pos = pos;
	w->dentry = parent;
	return 0;
}

/*
 * Rebuild the absolute path of @file from its dentry and mount chain, up to
 * the root of its mount namespace (bpf_d_path is not allowed in tracepoint
 * programs). bpf_loop (5.17+) keeps the verifier's work to one step.
 * Writes s->buf[pos..LOCK_PATH_MAX) and returns pos.
 */
static __always_inline __u32 build_path(struct scratch *s, struct vfsmount *vfsmnt,
				       struct dentry *dentry, __u32 *flags)
{
	struct walk w = {
		.dentry = dentry,
		.vfsmnt = vfsmnt,
		.mnt = container_of(vfsmnt, struct mount, mnt),
		.mnt_root = BPF_CORE_READ(vfsmnt, mnt_root),
		.pos = LOCK_PATH_MAX,
	};

	bpf_loop(MAX_WALK, walk_step, &w, 0);
	if (!w.done)
		w.flags |= LOCK_F_PATH_TRUNCATED;
	*flags |= w.flags;
	if (w.pos >= LOCK_PATH_MAX) {
		w.pos = LOCK_PATH_MAX - 1;
		s->buf[LOCK_PATH_MAX - 1] = '/';
	}
	return w.pos;
}

/* The PID namespace @pid was allocated in (its innermost), and @pid's
 * number there. */
static __always_inline __u32 pid_ns_nr(struct pid *pid, __u32 *nr)
{
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	if (nr)
		*nr = up.nr;
	return BPF_CORE_READ(up.ns, ns.inum);
}

static __always_inline __u32 pid_ns_inum(struct task_struct *task)
{
	return pid_ns_nr(BPF_CORE_READ(task, thread_pid), NULL);
}

#endif /* EGHOSTBUSTER_LOCKS_PATHS_H */
