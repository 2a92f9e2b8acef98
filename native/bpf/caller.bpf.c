// SPDX-License-Identifier: GPL-3.0-or-later
/* Who called connect() or sendmsg() on each socket, recorded by the kernel before the packet
 * leaves (native/src/caller_bpf.h says how the helper reads it). cgroup programs on the root of
 * the cgroup v2 tree, attached through links held by the helper alone:
 *  - connect4/6 and UDP sendmsg4/6: callers[cookie] = the calling process (tgid, uid, start
 *    time, executable's device and inode);
 *  - sock_release: deletes the socket's entry, so a record lives exactly as long as its socket
 *    and the map never needs to push one out (it is not an LRU);
 *  - sockops (TCP connect): flows[netns, ends] = the caller, so the fast path finds a SYN's
 *    caller without sock_diag.
 * They never block anything: each returns 1. In-kernel verdicts (issue 20) belong in the same
 * connect/sendmsg programs, after record_caller(), with their own maps beside these. */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#include "kernel_types.h"
#include "caller_record.h"

#define AF_INET6 10

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader: whether to read the caller's task (bpf_get_current_task_btf(), which the
 * verifier allows only with CAP_PERFMON, and CO-RE reads, which need the kernel's BTF). A
 * constant of the frozen .rodata map, so when false the verifier never visits those calls. */
const volatile bool record_exe = false;

/* Set by the loader: the helper's pid namespace (the inode of /proc/self/ns/pid), or 0 for the
 * initial one. bpf_get_current_pid_tgid() numbers a process in the initial namespace; a helper
 * in a container reads /proc in its own, so there the caller's number is looked up in that
 * namespace instead (which needs record_exe's task reads: the loader insists on them). */
const volatile __u32 pidns_inum = 0;

/* Pid namespaces nest 32 deep at most (the kernel's MAX_PID_NS_LEVEL). */
#define BQ_MAX_PIDNS_LEVEL 32

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BQ_CALLER_MAP_ENTRIES);
	__type(key, __u64); /* the socket's cookie */
	__type(value, struct bq_caller_record);
} callers SEC(".maps");

/* Records each uid holds now (BQ_CALLER_UID_QUOTA at most). Entries stay when they drop to 0. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, BQ_CALLER_UIDS);
	__type(key, __u32);
	__type(value, __u32);
} caller_uids SEC(".maps");

/* An optimization only (the fast path's SYN lookup): an LRU, whose lost entries send it back to
 * sock_diag and the callers map. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BQ_FLOW_MAP_ENTRIES);
	__type(key, struct bq_flow_key);
	__type(value, struct bq_flow_value);
} flows SEC(".maps");

static __always_inline void read_task(struct bq_caller_record *r)
{
	struct task_struct *task = bpf_get_current_task_btf();
	/* A kernel thread has no mm: the reads fail and leave zeros (no executable). */
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	r->start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	if (exe) {
		r->exe_ino = BPF_CORE_READ(exe, f_inode, i_ino);
		r->exe_dev = BPF_CORE_READ(exe, f_inode, i_sb, s_dev);
	}
	r->flags |= BQ_CALLER_F_EXE;
}

/* The caller's tgid as the helper's pid namespace numbers it; 0 when it is not visible there. */
static __always_inline __u32 tgid_in_helper_pidns(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pid *pid = BPF_CORE_READ(task, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	for (unsigned int i = 0; i < BQ_MAX_PIDNS_LEVEL; i++) {
		if (i > level)
			break;
		struct upid up = {};
		if (bpf_core_read(&up, sizeof(up), &pid->numbers[i]) != 0)
			return 0;
		if (BPF_CORE_READ(up.ns, ns.inum) == pidns_inum)
			return (__u32)up.nr;
	}
	return 0;
}

/* Counts one more record against uid: 0 and *charged (uid, or BQ_CALLER_UNCHARGED when the uid
 * table is full), or -1 when uid already holds its quota. */
static __always_inline int charge(__u32 uid, __u32 *charged)
{
	__u32 *n = bpf_map_lookup_elem(&caller_uids, &uid);
	if (!n) {
		__u32 zero = 0;
		bpf_map_update_elem(&caller_uids, &uid, &zero, BPF_NOEXIST); /* fails when full, or when raced */
		n = bpf_map_lookup_elem(&caller_uids, &uid);
		if (!n) {
			*charged = BQ_CALLER_UNCHARGED;
			return 0;
		}
	}
	if (__sync_fetch_and_add(n, 1) >= BQ_CALLER_UID_QUOTA) {
		__sync_fetch_and_sub(n, 1);
		return -1;
	}
	*charged = uid;
	return 0;
}

static __always_inline void uncharge(__u32 charged)
{
	if (charged == BQ_CALLER_UNCHARGED)
		return;
	__u32 *n = bpf_map_lookup_elem(&caller_uids, &charged);
	if (n)
		__sync_fetch_and_sub(n, 1);
}

/* Replaces an existing record, keeping its charge; when that fails, deletes it: the socket's
 * previous caller must never stand for this one. 0, or -1 when there was no record. */
static __always_inline int replace(__u64 *cookie, struct bq_caller_record *r)
{
	struct bq_caller_record *old = bpf_map_lookup_elem(&callers, cookie);
	if (!old)
		return -1;
	r->charged_uid = old->charged_uid;
	if (bpf_map_update_elem(&callers, cookie, r, BPF_EXIST) != 0) {
		old = bpf_map_lookup_elem(&callers, cookie);
		if (old && bpf_map_delete_elem(&callers, cookie) == 0)
			uncharge(r->charged_uid);
	}
	return 0;
}

/* callers[socket] = the current process. When it cannot be recorded (the map or the uid's quota
 * is full), the socket has no record, which the helper reads as "caller unknown". */
static __always_inline void record_caller(void *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct bq_caller_record r = {};
	r.tgid = bpf_get_current_pid_tgid() >> 32;
	if (pidns_inum != 0) {
		if (!record_exe)
			return;
		r.tgid = tgid_in_helper_pidns();
		if (r.tgid == 0)
			return; /* a process the helper cannot see: unknown */
	}
	r.uid = (__u32)bpf_get_current_uid_gid();
	if (record_exe)
		read_task(&r);
	if (replace(&cookie, &r) == 0)
		return;
	if (charge(r.uid, &r.charged_uid) != 0)
		return;
	if (bpf_map_update_elem(&callers, &cookie, &r, BPF_NOEXIST) == 0)
		return;
	uncharge(r.charged_uid);
	/* Full, or another thread recorded it meanwhile: then this caller replaces that one. */
	replace(&cookie, &r);
}

SEC("cgroup/connect4")
int bastion_connect4(struct bpf_sock_addr *ctx)
{
	record_caller(ctx);
	return 1;
}

SEC("cgroup/connect6")
int bastion_connect6(struct bpf_sock_addr *ctx)
{
	record_caller(ctx);
	return 1;
}

/* Only unconnected UDP sends come here (a connected socket's caller was recorded at connect). */
SEC("cgroup/sendmsg4")
int bastion_sendmsg4(struct bpf_sock_addr *ctx)
{
	record_caller(ctx);
	return 1;
}

SEC("cgroup/sendmsg6")
int bastion_sendmsg6(struct bpf_sock_addr *ctx)
{
	record_caller(ctx);
	return 1;
}

SEC("cgroup/sock_release")
int bastion_release(struct bpf_sock *sk)
{
	__u64 cookie = bpf_get_socket_cookie(sk);
	struct bq_caller_record *r = bpf_map_lookup_elem(&callers, &cookie);
	if (!r)
		return 1;
	__u32 charged = r->charged_uid;
	if (bpf_map_delete_elem(&callers, &cookie) == 0)
		uncharge(charged);
	return 1;
}

/* At a TCP connect, once the kernel chose the local address and port and before the SYN:
 * flows[netns, ends] = the socket's caller; with none, the key's entry is deleted, so no older
 * connection's entry survives a new connection with the same ends. */
SEC("sockops")
int bastion_flows(struct bpf_sock_ops *ops)
{
	if (ops->op != BPF_SOCK_OPS_TCP_CONNECT_CB)
		return 1;
	struct bq_flow_key key = {};
	key.netns = bpf_get_netns_cookie(ops);
	key.family = ops->family;
	key.local_port = ops->local_port;
	key.remote_port = ops->remote_port;
	__u32 *local = (__u32 *)key.local_ip, *remote = (__u32 *)key.remote_ip;
	if (ops->family == AF_INET6) {
		local[0] = ops->local_ip6[0];
		local[1] = ops->local_ip6[1];
		local[2] = ops->local_ip6[2];
		local[3] = ops->local_ip6[3];
		remote[0] = ops->remote_ip6[0];
		remote[1] = ops->remote_ip6[1];
		remote[2] = ops->remote_ip6[2];
		remote[3] = ops->remote_ip6[3];
	} else {
		local[0] = ops->local_ip4;
		remote[0] = ops->remote_ip4;
	}
	__u64 cookie = bpf_get_socket_cookie(ops);
	struct bq_caller_record *r = bpf_map_lookup_elem(&callers, &cookie);
	if (!r) {
		bpf_map_delete_elem(&flows, &key);
		return 1;
	}
	struct bq_flow_value v = {.cookie = cookie, .tgid = r->tgid};
	bpf_map_update_elem(&flows, &key, &v, BPF_ANY);
	return 1;
}
