// SPDX-License-Identifier: GPL-2.0
/* Does this kernel attach fentry/fexit? An empty program on each (issue 8,
 * tests/vm/run.sh). No headers: nothing here reads kernel types. */
#define SEC(name) __attribute__((section(name), used))
char LICENSE[] SEC("license") = "GPL";

SEC("fentry/do_unlinkat")
int probe_fentry(unsigned long long *ctx)
{
	return 0;
}

SEC("fexit/do_unlinkat")
int probe_fexit(unsigned long long *ctx)
{
	return 0;
}
