// SPDX-License-Identifier: GPL-2.0
/*
 * Who holds a candidate file, for every filesystem ghost class: BPF
 * iterators over every task on the host, whatever its namespaces.
 *
 * Two questions, cheapest first:
 *
 * 1. Does anything reference the file at all? The agent opens each
 *    candidate with O_PATH (its "probe") and holders_self, an iterator over
 *    the agent's own descriptors only, reads the kernel's reference count
 *    of the inode's dentries through it. Every struct file (a descriptor, a
 *    mapping, a descriptor in flight over SCM_RIGHTS, an io_uring
 *    registered file), every working directory or root, and every child
 *    dentry of a directory holds one. When the agent's own files (and a
 *    directory's children) explain them all, nobody holds the file and the
 *    full scan is skipped.
 *
 * 2. Otherwise, who? holders_files (every descriptor), holders_maps (every
 *    mapping) and holders_fs (every working directory and root) look the
 *    file's inode up in "cands" and report each hit with the struct file
 *    (or fs_struct) behind it, so user space can tell which references it
 *    has seen; what no process shows is left over: kept, as unexplained.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "holders.h"

char LICENSE[] SEC("license") = "GPL";

#define PF_EXITING 0x4 /* include/linux/sched.h: getting shut down */
#define S_IFMT 0170000
#define S_IFDIR 0040000

/* Set by user space before load: the agent itself. */
const volatile __u32 agent_tgid = 0;

/* Emit BTF for the record and the enums so libbpf-cargo generates them. */
struct holder_rec _holder_rec = {};
enum holder_rec_kind _holder_rec_kind = 0;
enum holder_flags _holder_flags = 0;
enum holders_limits _holders_limits = 0;

/* The agent's probe descriptors: fd -> candidate index. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HOLDERS_MAX_CANDIDATES);
	__type(key, __u32);
	__type(value, __u32);
} probes SEC(".maps");

/* Candidates of the full scan: struct inode address -> index. The probe
 * pins the inode, so its address names it for the whole pass. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, HOLDERS_MAX_CANDIDATES);
	__type(key, __u64);
	__type(value, __u32);
} cands SEC(".maps");

/* Before 6.8 a dentry's children were a list (d_subdirs, d_child). */
struct dentry___old {
	struct list_head d_child;
	struct list_head d_subdirs;
} __attribute__((preserve_access_index));

/* Dentries under @d: each one holds a reference on its parent. */
static __always_inline __u32 count_children(struct dentry *d, __u32 *flags)
{
	__u32 n = 0;

	if (bpf_core_field_exists(struct dentry, d_children)) {
		struct hlist_node *c = BPF_CORE_READ(d, d_children.first);

		for (int i = 0; i < HOLDERS_MAX_CHILDREN; i++) {
			if (!c)
				return n;
			n++;
			c = BPF_CORE_READ(c, next);
		}
		if (c)
			*flags |= HOLDER_F_CHILDREN_TRUNCATED;
	} else {
		struct dentry___old *od = (void *)d;
		struct list_head *head = &od->d_subdirs;
		struct list_head *c = BPF_CORE_READ(od, d_subdirs.next);

		for (int i = 0; i < HOLDERS_MAX_CHILDREN; i++) {
			if (c == head)
				return n;
			n++;
			c = BPF_CORE_READ(c, next);
		}
		if (c != head)
			*flags |= HOLDER_F_CHILDREN_TRUNCATED;
	}
	return n;
}

/*
 * The references on @inode's dentries, summed over its aliases (a lock
 * taken by link() has two names), and a directory's children. A dying
 * alias counts as nothing (its count is negative).
 */
static __always_inline void inode_refs(struct inode *inode, struct holder_rec *r)
{
	struct hlist_node *n = BPF_CORE_READ(inode, i_dentry.first);
	bool dir = (BPF_CORE_READ(inode, i_mode) & S_IFMT) == S_IFDIR;

	if (dir && n) {
		/* a directory has one dentry */
		r->flags |= HOLDER_F_DIR;
		r->children = count_children(container_of(n, struct dentry, d_u.d_alias),
					     &r->flags);
	}
	for (int i = 0; i < HOLDERS_MAX_ALIASES; i++) {
		struct dentry *d;
		int c;

		if (!n)
			return;
		d = container_of(n, struct dentry, d_u.d_alias);
		c = BPF_CORE_READ(d, d_lockref.count);
		if (c > 0)
			r->refs += c;
		r->aliases++;
		n = BPF_CORE_READ(n, next);
	}
	if (n)
		r->flags |= HOLDER_F_ALIASES_TRUNCATED;
}

static __always_inline __u32 task_flags(struct task_struct *task)
{
	return (task->flags & PF_EXITING) ? HOLDER_F_EXITING : 0;
}

/*
 * Question 1, over the agent's own descriptors (user space restricts the
 * iterator to its own process where the kernel can, 6.1+; the test below
 * makes it right everywhere): every one of them, with the references of
 * each probe's inode.
 */
SEC("iter/task_file")
int holders_self(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct holder_rec r = {};
	struct inode *inode;
	__u32 fd = ctx->fd, *idx;

	if (!task || !file || task->tgid != agent_tgid)
		return 0;
	inode = file->f_inode;
	r.kind = HOLDER_REC_OWN;
	r.tgid = task->tgid;
	r.pid = task->pid;
	r.fd = fd;
	r.ref_id = (__u64)file;
	r.inode = (__u64)inode;
	idx = bpf_map_lookup_elem(&probes, &fd);
	if (idx && inode) {
		r.kind = HOLDER_REC_REFS;
		r.idx = *idx;
		r.dev = BPF_CORE_READ(inode, i_sb, s_dev);
		r.ino = BPF_CORE_READ(inode, i_ino);
		r.gen = BPF_CORE_READ(inode, i_generation);
		r.fs_magic = BPF_CORE_READ(inode, i_sb, s_magic);
		inode_refs(inode, &r);
	}
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* Question 2: every descriptor on the host. One hash lookup per file;
 * only candidates are written out. */
SEC("iter/task_file")
int holders_files(struct bpf_iter__task_file *ctx)
{
	struct task_struct *task = ctx->task;
	struct file *file = ctx->file;
	struct holder_rec r = {};
	__u64 inode;
	__u32 *idx;

	if (!task || !file)
		return 0;
	inode = (__u64)file->f_inode;
	idx = bpf_map_lookup_elem(&cands, &inode);
	if (!idx)
		return 0;
	r.kind = HOLDER_REC_FD;
	r.idx = *idx;
	r.tgid = task->tgid;
	r.pid = task->pid;
	r.fd = ctx->fd;
	r.flags = task_flags(task);
	r.ref_id = (__u64)file;
	r.inode = inode;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/* Every mapping on the host: a file mapped and then closed is still held. */
SEC("iter/task_vma")
int holders_maps(struct bpf_iter__task_vma *ctx)
{
	struct task_struct *task = ctx->task;
	struct vm_area_struct *vma = ctx->vma;
	struct holder_rec r = {};
	struct file *file;
	__u64 inode;
	__u32 *idx;

	if (!task || !vma)
		return 0;
	file = vma->vm_file;
	if (!file)
		return 0;
	inode = (__u64)BPF_CORE_READ(file, f_inode);
	idx = bpf_map_lookup_elem(&cands, &inode);
	if (!idx)
		return 0;
	r.kind = HOLDER_REC_MAP;
	r.idx = *idx;
	r.tgid = task->tgid;
	r.pid = task->pid;
	r.flags = task_flags(task);
	r.ref_id = (__u64)file;
	r.inode = inode;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

static __always_inline void fs_hit(struct bpf_iter__task *ctx, struct task_struct *task,
				   struct fs_struct *fs, struct dentry *dentry, __u32 kind)
{
	struct holder_rec r = {};
	__u64 inode = (__u64)BPF_CORE_READ(dentry, d_inode);
	__u32 *idx = bpf_map_lookup_elem(&cands, &inode);

	if (!idx)
		return;
	r.kind = kind;
	r.idx = *idx;
	r.tgid = task->tgid;
	r.pid = task->pid;
	r.flags = task_flags(task);
	r.ref_id = (__u64)fs;
	r.inode = inode;
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
}

/* Every working directory and root (threads may share one fs_struct: the
 * reference is the fs_struct's, counted once). */
SEC("iter/task")
int holders_fs(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct fs_struct *fs;

	if (!task)
		return 0;
	fs = task->fs;
	if (!fs)
		return 0;
	fs_hit(ctx, task, fs, BPF_CORE_READ(fs, pwd.dentry), HOLDER_REC_CWD);
	fs_hit(ctx, task, fs, BPF_CORE_READ(fs, root.dentry), HOLDER_REC_ROOT);
	return 0;
}
