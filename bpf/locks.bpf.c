// SPDX-License-Identifier: GPL-2.0
/*
 * Lock-file monitor: exclusive creations of lock-like names, removals by
 * their owners, and the exit of the thread groups that own them.
 *
 * Every program here sits on a hot path (every open, every process exit on
 * the host), so each one runs once per syscall (exit side only: the
 * syscall's arguments are still in the task's saved user registers) and
 * returns at the cheapest test that can reject the call.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "locks.h"

char LICENSE[] SEC("license") = "GPL";

#define AT_FDCWD -100
#define ENOENT 2
#define EEXIST 17
#define RENAME_NOREPLACE 1
#define O_CREAT 0100
#define O_EXCL 0200
#define FMODE_CREATED 0x100000 /* set by the VFS when this open created the inode */

#define MAX_SUFFIXES 8
#define SUFFIX_LEN 16
#define MAX_PREFIXES 4
#define PREFIX_LEN 16
#define NAME_BUF 256	/* NAME_MAX + 1 */
#define MAX_WALK 160	/* path components plus mount crossings */

/* Set by user space before load. */
const volatile bool non_exclusive = false;	/* track O_CREAT without O_EXCL */
/* records waiting in lock_events beyond which even a record that is not
 * urgent wakes the poller (a quarter of --ring-buffer-size) */
const volatile __u64 wake_backlog = 1 << 18;
/* most records one uid may hold in "locks" + "locks_long" (0: no limit):
 * one user keeping many lock names alive cannot fill the table for all */
const volatile __u32 uid_lock_share = 0;
/* most owners one uid may have watched in "owners" (0: no limit) */
const volatile __u32 uid_owner_share = 0;
#define OWNER_COUNTED (1ULL << 32)
const volatile bool any_name = false;		/* no name pre-filter */
const volatile __u32 n_suffixes = 0;
const volatile __u8 suffix_len[MAX_SUFFIXES] = {};
const volatile char suffixes[MAX_SUFFIXES][SUFFIX_LEN] = {};
/* name prefixes, for patterns with no literal tail (Emacs's ".#*") */
const volatile __u32 n_prefixes = 0;
const volatile __u8 prefix_len[MAX_PREFIXES] = {};
const volatile char prefixes[MAX_PREFIXES][PREFIX_LEN] = {};

struct lock_counters counters = {};

/* Emit BTF for the records and enums so libbpf-cargo generates their Rust
 * types (an enum no variable uses does not reach BTF). */
struct lock_created _lock_created = {};
struct lock_record _lock_record = {};
struct lock_record_long _lock_record_long = {};
struct lock_key _lock_key = {};
struct lock_exit _lock_exit = {};
struct lock_name_gone _lock_name_gone = {};
enum lock_kind _lock_kind = 0;
enum lock_event_kind _lock_event_kind = 0;
enum lock_flags _lock_flags = 0;
enum lock_limits _lock_limits = 0;
enum lock_key_bits _lock_key_bits = 0;

_Static_assert(sizeof(struct lock_record) == LOCK_RECORD_SHORT,
	       "LOCK_PATH_SHORT must fill the short record exactly");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20); /* --ring-buffer-size */
} lock_events SEC(".maps");

/*
 * Thread groups whose exit matters: creators of tracked locks, parents a
 * lock was handed to on a clean exit, and live holders user space adds.
 * One set, two views. "owner_marks" is task local storage on each owner's
 * group leader: what the exit program tests on every exit on the host,
 * where a process with no BPF task storage at all (nearly every one) costs
 * one pointer test. "owners" is the same set by tgid, for what outlives a
 * leader's task_struct: an exec from a thread that is not the leader makes
 * that thread the leader (de_thread), and handle_exec moves the mark. The
 * exit program deletes an owner's entry when its group dies, so the hash
 * holds live processes only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} owner_marks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* --max-owners */
	__type(key, __u32);
	__type(value, __u64);
} owners SEC(".maps");

/*
 * Every tracked lock, by file identity; pinned, so it outlives the agent.
 * A key is in one table or the other: "locks" for paths up to
 * LOCK_PATH_SHORT bytes (a creation copies a 288-byte record), and
 * "locks_long" for the rare longer one.
 *
 * "locks" is preallocated (--max-locks slots of about 376 bytes: 6 MiB
 * at the default): an insert into a table that is not takes its element
 * from a per-CPU cache refilled by irq_work, which in a VM is a
 * self-IPI that exits to the hypervisor. That was 930 ns of every lock
 * creation here, against 270 ns preallocated, and a cache found empty in
 * a burst fails the insert (the lock would go unrecorded).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* --max-locks */
	__type(key, struct lock_key);
	__type(value, struct lock_record);
} locks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096); /* --max-locks / 16 */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lock_key);
	__type(value, struct lock_record_long);
} locks_long SEC(".maps");

/*
 * Records held per creator uid (kernel id), for uid_lock_share. The kernel
 * adds one for each record it inserts; user space takes one off for each it
 * deletes (and adds one for each it inserts), so the count can drift by a
 * few under races: a drift changes how many one uid may hold, never which
 * lock is judged how. Full: uids not in it are not limited.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} uid_locks SEC(".maps");

/* Owners watched per uid (kernel id), for uid_owner_share: the kernel
 * adds and takes off for the entries it makes and deletes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u32);
} uid_owners SEC(".maps");

/* Exits of owners user space has not dealt with yet (pinned, as above). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* --max-owners */
	__type(key, __u32);
	__type(value, struct lock_exit);
} exited SEC(".maps");

struct scratch {
	struct lock_record_long rec; /* must stay first: copies into rec.path
				 * may run past it into the buffers below
				 * as far as the verifier knows */
	char buf[LOCK_PATH_MAX + NAME_BUF]; /* path built backward */
	char name[NAME_BUF];
	char upath[LOCK_PATH_MAX];	/* a user's path argument */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch_map SEC(".maps");

#include "locks_owners.h"

#include "locks_paths.h"

/*
 * The record's owner fields: the current task, as creator. @task is
 * bpf_get_current_task_btf()'s, a BTF pointer: its fields are direct
 * loads, not a probe-read helper call each (13 of them were 100 ns of
 * every lock creation).
 */
static __always_inline void fill_owner(struct scratch *s, struct task_struct *task, __u32 tgid,
				       __u64 flags, __u32 kind)
{
	struct pid *pid = task->thread_pid;
	struct upid up = {};

	s->rec.h.tgid = tgid;
	s->rec.h.owner_start = task->group_leader->start_boottime;
	s->rec.h.mnt_ns = task->nsproxy->mnt_ns->ns.inum;
	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[pid->level & 31]);
	s->rec.h.pid_ns = BPF_CORE_READ(up.ns, ns.inum);
	s->rec.h.open_flags = flags;
	s->rec.h.stale_pid = 0;
	s->rec.h.stale_status = 0;
	s->rec.h.stale_comm[0] = 0;
	s->rec.h.kind = kind;
	bpf_get_current_comm(s->rec.h.comm, sizeof(s->rec.h.comm));
	read_creds(task, &s->rec.h);
}

/*
 * How to submit a record: only an urgent one, or one that finds a backlog
 * (a burst of creations must not fill the ring before the poller's next
 * round), wakes the poller. A wakeup is an irq_work and, in a VM, an APIC
 * write that exits to the hypervisor: microseconds per lock. The others
 * are picked up by the poller's next round (at most 100 ms later) or with
 * the next urgent record, which comes after them in the ring: an owner's
 * exit always wakes it.
 */
static __always_inline __u64 wakeup(bool urgent)
{
	if (urgent || bpf_ringbuf_query(&lock_events, BPF_RB_AVAIL_DATA) > wake_backlog)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

/* Record under @key and tell user space (@urgent: see wakeup()). */
static __always_inline void publish(struct scratch *s, struct lock_key *key, __u32 flags,
				    bool watch, bool urgent)
{
	struct lock_created *ev;

	/* Watch the owner before anyone hears of the lock: it cannot exit
	 * unseen between the two, as it is the task running this. Already
	 * watched (its next lock): one pointer test and a storage lookup. */
	__u32 *held = share_of(s->rec.h.fsuid);
	bool refused = held && *held >= uid_lock_share;

	/* a creator over its uid's share is not recorded: nor watched */
	if (watch && !refused && !is_owner(current_leader()) &&
	    !watch_owner(current_leader(), s->rec.h.tgid))
		flags |= LOCK_F_OWNER_UNTRACKED;
	s->rec.h.flags = flags;
	/* the short table copies LOCK_RECORD_SHORT bytes of the scratch
	 * record: its head and the start of its path */
	if (refused) {
		count(&counters.uid_share);
		flags |= LOCK_F_UID_SHARE;
	} else {
		void *table = s->rec.h.path_len <= LOCK_PATH_SHORT ? (void *)&locks
								    : (void *)&locks_long;
		/* a new key (nearly always) in one operation; one already
		 * recorded (a record that outlived its inode) replaced */
		long err = bpf_map_update_elem(table, key, &s->rec, BPF_NOEXIST);
		bool fresh = !err;

		if (err == -EEXIST) {
			err = bpf_map_update_elem(table, key, &s->rec, BPF_EXIST);
			if (err == -ENOENT) { /* user space deleted it meanwhile */
				err = bpf_map_update_elem(table, key, &s->rec, BPF_NOEXIST);
				fresh = !err;
			}
		}
		if (err) {
			count(&counters.table_full);
			flags |= LOCK_F_TABLE_FULL;
		} else if (fresh) {
			share_add(s->rec.h.fsuid, held);
		}
	}

	ev = bpf_ringbuf_reserve(&lock_events, sizeof(*ev), 0);
	if (!ev) {
		count(&counters.ringbuf_drops);
		return;
	}
	ev->kind = LOCK_EV_CREATED;
	ev->tgid = s->rec.h.tgid;
	ev->flags = flags;
	ev->fsuid = s->rec.h.fsuid;
	ev->key = *key;
	bpf_ringbuf_submit(ev, wakeup(urgent));
	count(&counters.created);
}

static __always_inline int handle_open(long fd, __u64 open_flags)
{
	struct task_struct *task;
	struct lock_key key;
	struct scratch *s;
	struct file *file;
	struct dentry *dentry;
	__u32 zero = 0, len, pos, n, flags = 0;
	__u64 id;

	/* Cheapest first: flags are in a register; no string work yet. */
	if (!(open_flags & O_CREAT))
		return 0;
	if (!non_exclusive && !(open_flags & O_EXCL))
		return 0;

	task = bpf_get_current_task_btf();
	file = fd_file(task, fd);
	if (!file)
		return 0;
	/* O_CREAT on an existing file, or an O_EXCL that raced: not a creation */
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_CREATED))
		return 0;

	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 0;
	dentry = BPF_CORE_READ(file, f_path.dentry);
	len = BPF_CORE_READ(dentry, d_name.len);
	if (!any_name) {
		if (len >= NAME_BUF)
			return 0;
		bpf_probe_read_kernel_str(s->name, NAME_BUF, BPF_CORE_READ(dentry, d_name.name));
		if (!suffix_matches(s->name, len, NAME_BUF - 1) &&
		    !(n_prefixes && prefix_matches(s->name, 0, len, NAME_BUF - 1)))
			return 0;
	}

	id = bpf_get_current_pid_tgid();
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(file, f_inode, i_ino);
	key.gen = BPF_CORE_READ(file, f_inode, i_generation);
	key._pad = 0;
	fill_owner(s, task, id >> 32, open_flags, LOCK_K_OPEN);

	pos = build_path(s, BPF_CORE_READ(file, f_path.mnt), dentry, &flags);
	n = LOCK_PATH_MAX - pos;
	bpf_probe_read_kernel(s->rec.path, n & (LOCK_PATH_MAX - 1), &s->buf[pos & (LOCK_PATH_MAX - 1)]);
	s->rec.h.path_len = n & (LOCK_PATH_MAX - 1);
	/* complete: user space has nothing to resolve in a hurry */
	publish(s, &key, flags, true, false);
	return 0;
}

/*
 * A name made by link, mkdir, symlink or rename: at sys_exit only the
 * caller's string is known, relative to @dirfd. The string is read once,
 * for the suffix pre-filter; only a match pays for the directory walk
 * (dirfd's file, the cwd, or the root for an absolute name). The record
 * goes under a pending key, for user space to resolve (see locks.h).
 */
static __always_inline int handle_named(__u32 kind, long dirfd, const char *uname, __u64 flags)
{
	struct task_struct *task;
	struct lock_key key;
	struct scratch *s;
	struct vfsmount *mnt;
	struct dentry *dentry;
	__u32 zero = 0, len, pos, dlen, rflags = 0;
	long n;

	s = bpf_map_lookup_elem(&scratch_map, &zero);
	if (!s)
		return 0;
	n = bpf_probe_read_user_str(s->upath, LOCK_PATH_MAX, uname);
	if (n <= 1)
		return 0;
	len = n - 1;
	/* "x.lock/" (mkdir) is the name "x.lock" */
	for (int i = 0; i < 4; i++)
		if (len > 1 && s->upath[(len - 1) & (LOCK_PATH_MAX - 1)] == '/')
			len--;
	if (!any_name && !suffix_matches(s->upath, len, LOCK_PATH_MAX - 1) &&
	    !(n_prefixes &&
	      prefix_matches(s->upath, base_start(s->upath, len), len, LOCK_PATH_MAX - 1)))
		return 0;

	task = bpf_get_current_task_btf();
	if (s->upath[0] == '/') {
		mnt = BPF_CORE_READ(task, fs, root.mnt);
		dentry = BPF_CORE_READ(task, fs, root.dentry);
	} else if ((int)dirfd == AT_FDCWD) {
		mnt = BPF_CORE_READ(task, fs, pwd.mnt);
		dentry = BPF_CORE_READ(task, fs, pwd.dentry);
	} else {
		struct file *dir = fd_file(task, (int)dirfd);

		if (!dir)
			return 0;
		mnt = BPF_CORE_READ(dir, f_path.mnt);
		dentry = BPF_CORE_READ(dir, f_path.dentry);
	}
	pos = build_path(s, mnt, dentry, &rflags);
	dlen = LOCK_PATH_MAX - pos;
	/* too long to record whole: not a lock we could act on */
	if (dlen + 1 + len > LOCK_PATH_MAX - 1)
		return 0;
	bpf_probe_read_kernel(s->rec.path, dlen & (LOCK_PATH_MAX - 1), &s->buf[pos & (LOCK_PATH_MAX - 1)]);
	s->rec.path[dlen & (LOCK_PATH_MAX - 1)] = '/';
	bpf_probe_read_kernel(&s->rec.path[(dlen + 1) & (LOCK_PATH_MAX - 1)], len & (LOCK_PATH_MAX - 1),
			      s->upath);
	s->rec.h.path_len = (dlen + 1 + len) & (LOCK_PATH_MAX - 1);

	fill_owner(s, task, bpf_get_current_pid_tgid() >> 32, flags, kind);
	/* unique without a shared counter: one CPU never reads the same ns
	 * twice, and the clock survives an agent restart (pinned table) */
	key.dev = ((__u64)LOCK_KEY_PENDING_HI << 32) | bpf_get_smp_processor_id();
	key.ino = bpf_ktime_get_boot_ns();
	key.gen = 0;
	key._pad = 0;
	/* a plain rename only follows a tracked lock: its caller owns nothing;
	 * the name is resolved by user space: the sooner the better */
	publish(s, &key, rflags, kind != LOCK_K_MOVED, true);
	count(&counters.named);
	return 0;
}

/*
 * Syscall arguments from the task's saved user registers, by libbpf's
 * PT_REGS_PARMn_SYSCALL, which knows each architecture's syscall
 * convention (x86_64: di, si, dx, r10, r8). The registers come from
 * bpf_task_pt_regs as a BTF pointer, so these are direct loads, not
 * probe-read helper calls: openat runs on every successful open on the
 * host.
 */
static __always_inline struct pt_regs *user_regs(void)
{
	return (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
}

SEC("tracepoint/syscalls/sys_exit_openat")
int handle_openat_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	/* openat(dfd, name, flags, mode) */
	return handle_open(ctx->ret, PT_REGS_PARM3_SYSCALL(user_regs()));
}

SEC("tracepoint/syscalls/sys_exit_open")
int handle_open_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	/* open(name, flags, mode) */
	return handle_open(ctx->ret, PT_REGS_PARM2_SYSCALL(user_regs()));
}

SEC("tracepoint/syscalls/sys_exit_creat")
int handle_creat_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret < 0)
		return 0;
	/* creat() is open(O_CREAT|O_WRONLY|O_TRUNC): never exclusive */
	return handle_open(ctx->ret, O_CREAT | 01 | 01000);
}

SEC("tracepoint/syscalls/sys_exit_openat2")
int handle_openat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct open_how *how;
	__u64 flags = 0;

	if (ctx->ret < 0)
		return 0;
	/* openat2(dfd, name, how, size) */
	how = (struct open_how *)PT_REGS_PARM3_SYSCALL(user_regs());
	bpf_probe_read_user(&flags, sizeof(flags), &how->flags);
	return handle_open(ctx->ret, flags);
}

/*
 * A tracked owner removed or renamed a name. Paths are not resolved here
 * (the syscall may be relative to a dirfd that is gone): user space checks
 * that owner's locks. Non-owners cost one pointer test.
 */
static __always_inline int name_gone(long ret)
{
	struct lock_name_gone *e;

	if (ret != 0)
		return 0;
	if (!is_owner(current_leader()))
		return 0;
	e = bpf_ringbuf_reserve(&lock_events, sizeof(*e), 0);
	if (!e) {
		count(&counters.ringbuf_drops);
		return 0;
	}
	e->kind = LOCK_EV_NAME_GONE;
	e->tgid = bpf_get_current_pid_tgid() >> 32;
	/* not urgent: a released lock only needs forgetting */
	bpf_ringbuf_submit(e, wakeup(false));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_unlinkat")
int handle_unlinkat_exit(struct trace_event_raw_sys_exit *ctx)
{
	return name_gone(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_unlink")
int handle_unlink_exit(struct trace_event_raw_sys_exit *ctx)
{
	return name_gone(ctx->ret);
}

/*
 * Renames: onto a matching name, RENAME_NOREPLACE takes a lock (the name
 * did not exist), whoever calls it. A plain rename by a tracked owner may
 * move one of its locks, which user space follows; anyone else's plain
 * rename costs one pointer test and no string work (renames are frequent:
 * editors, package managers). The name record goes out before the owner's
 * "name gone", so that a lock its owner renamed is followed, not dropped.
 */
static __always_inline int handle_rename(long dirfd, const char *uname, __u64 flags)
{
	bool owner = is_owner(current_leader());

	if (flags & RENAME_NOREPLACE)
		handle_named(LOCK_K_RENAME, dirfd, uname, flags);
	else if (owner)
		handle_named(LOCK_K_MOVED, dirfd, uname, flags);
	return owner ? name_gone(0) : 0;
}

/* renameat2(olddfd, old, newdfd, new, flags) */
SEC("tracepoint/syscalls/sys_exit_renameat2")
int handle_renameat2_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret != 0)
		return 0;
	regs = user_regs();
	return handle_rename(PT_REGS_PARM3_SYSCALL(regs),
			     (const char *)PT_REGS_PARM4_SYSCALL(regs),
			     PT_REGS_PARM5_SYSCALL(regs));
}

/* renameat(olddfd, old, newdfd, new) */
SEC("tracepoint/syscalls/sys_exit_renameat")
int handle_renameat_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret != 0)
		return 0;
	regs = user_regs();
	return handle_rename(PT_REGS_PARM3_SYSCALL(regs),
			     (const char *)PT_REGS_PARM4_SYSCALL(regs), 0);
}

/* rename(old, new) */
SEC("tracepoint/syscalls/sys_exit_rename")
int handle_rename_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret != 0)
		return 0;
	return handle_rename(AT_FDCWD, (const char *)PT_REGS_PARM2_SYSCALL(user_regs()), 0);
}

/* link(old, new), linkat(olddfd, old, newdfd, new, flags): the new name */
SEC("tracepoint/syscalls/sys_exit_link")
int handle_link_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret != 0)
		return 0;
	return handle_named(LOCK_K_LINK, AT_FDCWD,
			    (const char *)PT_REGS_PARM2_SYSCALL(user_regs()), 0);
}

SEC("tracepoint/syscalls/sys_exit_linkat")
int handle_linkat_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret != 0)
		return 0;
	regs = user_regs();
	return handle_named(LOCK_K_LINK, PT_REGS_PARM3_SYSCALL(regs),
			    (const char *)PT_REGS_PARM4_SYSCALL(regs), PT_REGS_PARM5_SYSCALL(regs));
}

/* mkdir(path, mode), mkdirat(dfd, path, mode) */
SEC("tracepoint/syscalls/sys_exit_mkdir")
int handle_mkdir_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret != 0)
		return 0;
	return handle_named(LOCK_K_MKDIR, AT_FDCWD,
			    (const char *)PT_REGS_PARM1_SYSCALL(user_regs()), 0);
}

SEC("tracepoint/syscalls/sys_exit_mkdirat")
int handle_mkdirat_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret != 0)
		return 0;
	regs = user_regs();
	return handle_named(LOCK_K_MKDIR, PT_REGS_PARM1_SYSCALL(regs),
			    (const char *)PT_REGS_PARM2_SYSCALL(regs), 0);
}

/* symlink(target, new), symlinkat(target, newdfd, new) */
SEC("tracepoint/syscalls/sys_exit_symlink")
int handle_symlink_exit(struct trace_event_raw_sys_exit *ctx)
{
	if (ctx->ret != 0)
		return 0;
	return handle_named(LOCK_K_SYMLINK, AT_FDCWD,
			    (const char *)PT_REGS_PARM2_SYSCALL(user_regs()), 0);
}

SEC("tracepoint/syscalls/sys_exit_symlinkat")
int handle_symlinkat_exit(struct trace_event_raw_sys_exit *ctx)
{
	struct pt_regs *regs;

	if (ctx->ret != 0)
		return 0;
	regs = user_regs();
	return handle_named(LOCK_K_SYMLINK, PT_REGS_PARM2_SYSCALL(regs),
			    (const char *)PT_REGS_PARM3_SYSCALL(regs), 0);
}

#include "locks_exit.h"
