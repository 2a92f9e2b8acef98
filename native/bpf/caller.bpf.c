// SPDX-License-Identifier: GPL-3.0-or-later
/* Who called connect() or sendmsg() on each socket, recorded by the kernel before the packet
 * leaves (native/src/caller_bpf.h says how the helper reads it). cgroup programs on the root of
 * the cgroup v2 tree, attached through links held by the helper alone:
 *  - connect4/6 and UDP sendmsg4/6, for sockets of the helper's network namespace:
 *    callers[cookie] = the calling process (tgid, uid, start time, executable's device and
 *    inode);
 *  - sock_release: deletes the socket's entry, so a record lives exactly as long as its socket
 *    and the map never needs to push one out (it is not an LRU);
 * Recording never blocks anything. Just before it, connect and sendmsg decide (decide()): a caller
 * whose executable's inode has a verdict (the service's path rules, written by the helper) is
 * allowed (TCP: the socket marked, our chain accepts it) or denied (TCP connect and UDP sendmsg
 * fail with EPERM); every such decision is reported through a ring buffer. Anything else goes
 * on to the queue, as before.
 * UDP allows are decided per datagram by a socket filter our chain runs before its queue rule
 * (iptables -m bpf, bastion_udp_allow() below): a cgroup_skb/egress program would come too late, the
 * cgroup egress hook runs after netfilter's OUTPUT and POSTROUTING (ip_finish_output).
 * Another socket filter of that chain, just before its queue rules, notes each TCP SYN that goes
 * to the queue (bastion_flow_note() below): the slot of (its ends, its sequence number) in
 * flow_slots = its socket's caller, so the fast path finds the caller without sock_diag or a
 * system call. Only the SYNs that get that far in our chain pay for it (not those allowed in the
 * kernel): a sock_ops program ran for every TCP socket. */
#include <stdbool.h>
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "kernel_types.h"
#include "caller_record.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define SOL_SOCKET 1
#define SO_MARK 36

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

/* Set by the loader: the helper's network namespace (its cookie), or 0 for every one. Only its
 * sockets are recorded: the helper reads records for the packets of its own namespace alone,
 * and a container's sockets then neither pay for records nobody reads nor fill the map. */
const volatile __u64 record_netns = 0;

/* Set by the loader: decide in the kernel (needs record_exe), for sockets of this network
 * namespace only (its cookie): the one whose OUTPUT chain accepts the marked connections and
 * whose queue this helper reads. Other namespaces' sockets go on undecided, as before. */
const volatile bool kernel_verdicts = false;
const volatile __u64 verdict_netns = 0;
/* Set by the loader: the helper's user namespace (the inode of /proc/self/ns/user). A caller in
 * another one may have mounted its own libraries (or anything) under the real executable, so its
 * inode proves nothing about what runs: it goes to the queue, which does not credit it either
 * (ExeIdentity 'other_user_ns'). */
const volatile __u32 verdict_userns = 0;

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

/* An optimization only (the fast path's SYN lookup), read by the helper through a read-only
 * mapping: a SYN whose slot another took is looked up by sock_diag and the callers map. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, BQ_FLOW_SLOTS);
	__type(key, __u32);
	__type(value, struct bq_flow_slot);
} flow_slots SEC(".maps");

/* Set by the loader: the seed of bq_flow_slot_of() (random). */
const volatile __u32 flow_seed = 0;

/* The service's path rules by executable inode, protocol and port; written by the helper only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BQ_VERDICT_MAP_ENTRIES);
	__type(key, struct bq_verdict_key);
	__type(value, struct bq_verdict_value);
} verdicts SEC(".maps");

/* The helper's last sign of life (CLOCK_MONOTONIC ns, as bpf_ktime_get_ns() reads it). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} verdict_alive SEC(".maps");

/* UDP flows (socket, destination) whose allow was reported, and when (bpf_ktime_get_ns()): an
 * unanswered flow's every datagram is a new connection to conntrack, reported once per
 * BQ_UDP_REPORT_AGAIN_NS here (so a flow allowed again after a rule came back is reported within
 * that). An LRU: a flow pushed out is reported again, never lost. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BQ_UDP_REPORTED_ENTRIES);
	__type(key, struct bq_udp_flow_key);
	__type(value, __u64);
} udp_reported SEC(".maps");

/* Every decision taken here, for the helper to report (nothing is decided silently). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BQ_VERDICT_RING_BYTES);
} verdict_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, BQ_VERDICT_STATS);
	__type(key, __u32);
	__type(value, __u64);
} verdict_stats SEC(".maps");

static __always_inline void read_task(struct bq_caller_record *r)
{
	struct task_struct *task = bpf_get_current_task_btf();
	/* Direct loads through the task's BTF pointers (the JIT makes them loads that cannot fault),
	 * not a bpf_probe_read_kernel() call each: a third of connect()'s cost in this program. A
	 * kernel thread has no mm: the loads give zeros (no executable). */
	struct mm_struct *mm = task->mm;
	struct file *exe = mm ? mm->exe_file : NULL;
	r->start_ns = task->group_leader->start_boottime;
	if (exe) {
		struct inode *inode = exe->f_inode;
		r->exe_ino = inode->i_ino;
		r->exe_dev = inode->i_sb->s_dev;
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

/* Describes the current process in *r (its executable when BQ_CALLER_F_EXE is set). false: a
 * process the helper cannot see, which gets no record (the helper reads that as "unknown"). */
static __always_inline bool describe_caller(struct bq_caller_record *r)
{
	r->tgid = bpf_get_current_pid_tgid() >> 32;
	if (pidns_inum != 0) {
		if (!record_exe)
			return false;
		r->tgid = tgid_in_helper_pidns();
		if (r->tgid == 0)
			return false;
	}
	r->uid = (__u32)bpf_get_current_uid_gid();
	if (record_exe)
		read_task(r);
	return true;
}

/* callers[socket] = *r. When it cannot be recorded (the map or the uid's quota is full), the
 * socket has no record, which the helper reads as "caller unknown". */
static __always_inline void record_caller(__u64 *cookie, struct bq_caller_record *r)
{
	if (replace(cookie, r) == 0)
		return;
	if (charge(r->uid, &r->charged_uid) != 0)
		return;
	if (bpf_map_update_elem(&callers, cookie, r, BPF_NOEXIST) == 0)
		return;
	uncharge(r->charged_uid);
	/* Full, or another thread recorded it meanwhile: then this caller replaces that one. */
	replace(cookie, r);
}

/* DNS: the whitelist may allow it to the nameservers whatever a rule says. */
#define DNS_PORT 53

/* Destinations the service's whitelist may allow whatever a rule says (loopback, and the LAN
 * when allow_lan is set: service/whitelist.ts), and the unspecified address, which means this
 * host: a deny there is left to the queue, where the service decides it. */
static __always_inline bool local_v4(__u32 addr)
{
	__u8 a0 = addr & 0xff, a1 = (addr >> 8) & 0xff; /* network order: the first byte is lowest */
	return addr == 0 || a0 == 127 || a0 == 10 || (a0 == 172 && a1 >= 16 && a1 <= 31) || (a0 == 192 && a1 == 168) ||
	       (a0 == 169 && a1 == 254);
}

static __always_inline bool local_v6(const __u32 *w)
{
	__u8 b0 = w[0] & 0xff, b1 = (w[0] >> 8) & 0xff;
	if (w[0] == 0 && w[1] == 0) {
		if (w[2] == 0 && (w[3] == 0 || w[3] == 0x01000000)) /* :: and ::1 */
			return true;
		if (w[2] == 0xffff0000) /* ::ffff:a.b.c.d */
			return local_v4(w[3]);
	}
	return (b0 & 0xfe) == 0xfc || (b0 == 0xfe && (b1 & 0xc0) == 0x80);
}

/* Reports one decision; counted as lost when the ring is full (the decision stands). */
static __always_inline void report(const struct bq_caller_record *r, __u32 family, __u32 protocol, const __u32 *dst,
				   __u16 port, __u16 rule_port, __u32 verdict)
{
	struct bq_verdict_event *e = bpf_ringbuf_reserve(&verdict_events, sizeof(*e), 0);
	if (!e) {
		__u32 slot = BQ_VERDICT_STAT_LOST;
		__u64 *lost = bpf_map_lookup_elem(&verdict_stats, &slot);
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->exe_ino = r->exe_ino;
	e->exe_dev = r->exe_dev;
	e->start_ns = r->start_ns;
	e->tgid = r->tgid;
	e->uid = r->uid;
	e->family = family;
	e->protocol = protocol;
	e->verdict = verdict;
	e->dst_port = port;
	e->rule_port = rule_port;
	__builtin_memcpy(e->dst_addr, dst, 16);
	/* The comm of the current task: the caller in every program here (udp_allow() checks it is). */
	struct task_struct *task = bpf_get_current_task_btf();
	bpf_core_read(&e->comm, sizeof(e->comm), &task->comm);
	bpf_ringbuf_submit(e, 0);
}

/* The verdict for this caller's executable, protocol and destination port (the exact port
 * before every port, as rules match), or 0 when the service has none to give the kernel. */
static __always_inline __u32 lookup_verdict(const struct bq_caller_record *r, __u32 protocol, __u16 port, __u16 *rule_port)
{
	struct bq_verdict_key key = {.exe_ino = r->exe_ino, .exe_dev = r->exe_dev, .port = port, .protocol = protocol};
	struct bq_verdict_value *v = bpf_map_lookup_elem(&verdicts, &key);
	*rule_port = port;
	if (!v) {
		key.port = 0;
		*rule_port = 0;
		v = bpf_map_lookup_elem(&verdicts, &key);
	}
	return v ? v->verdict : 0;
}

/*
 * The in-kernel decision, before record_caller(): 1 lets the call go on (to the queue unless the
 * socket got our mark), 0 fails it with EPERM.
 *  - TCP connect: deny fails it; allow marks the socket (only one without a mark of its own), and
 *    a reconnect that is no longer allowed loses the mark we set.
 *  - UDP connect: never failed (a program must be able to connect a UDP socket it may only
 *    send some datagrams on) and never marked: a connected socket may still sendto() elsewhere.
 *  - UDP sendmsg: deny fails that datagram; allow is decided per datagram by bastion_udp_allow
 *    in our chain (a mark would stay on the socket for its next datagram to another destination).
 */
static __always_inline int decide(struct bpf_sock_addr *ctx, struct bq_caller_record *r, bool connect, __u32 family,
				  __u64 netns)
{
	if (!kernel_verdicts || !(r->flags & BQ_CALLER_F_EXE) || r->exe_ino == 0)
		return 1;
	if (netns != verdict_netns)
		return 1;
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->cred->user_ns->ns.inum != verdict_userns)
		return 1;
	__u32 protocol = ctx->protocol;
	if (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP)
		return 1;
	if (connect && protocol == IPPROTO_UDP)
		return 1;
	/* family: the program's own (a constant): a connect4 program may not read user_ip6. */
	__u32 dst[4] = {};
	bool local;
	if (family == AF_INET) {
		dst[0] = ctx->user_ip4;
		local = local_v4(dst[0]);
	} else if (family == AF_INET6) {
		dst[0] = ctx->user_ip6[0];
		dst[1] = ctx->user_ip6[1];
		dst[2] = ctx->user_ip6[2];
		dst[3] = ctx->user_ip6[3];
		local = local_v6(dst);
	} else {
		return 1;
	}
	__u16 port = bpf_ntohs((__u16)ctx->user_port); /* user_port: network order */
	if (port == 0)
		return 1;
	__u16 rule_port = 0;
	__u32 verdict = lookup_verdict(r, protocol, port, &rule_port);

	/* Port 53 is left to the queue too: DNS to the configured nameservers passes there before
	 * any rule (allow_dns, service/nameservers.ts), and only the service knows them. */
	if (verdict == BQ_VERDICT_DENY && !local && port != DNS_PORT) {
		report(r, family, protocol, dst, port, rule_port, verdict);
		return 0;
	}
	/* connect is a constant per program: the sendmsg programs hold no socket option call. */
	if (!connect || protocol != IPPROTO_TCP)
		return 1;
	int mark = 0;
	if (bpf_getsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
		return 1;
	if (verdict == BQ_VERDICT_ALLOW) {
		if (mark == 0) {
			mark = BQ_KERNEL_ACCEPT_MARK;
			if (bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0)
				return 1;
		} else if (mark != (int)BQ_KERNEL_ACCEPT_MARK) {
			return 1; /* another tool's mark: left alone, the queue decides */
		}
		report(r, family, protocol, dst, port, rule_port, verdict);
	} else if (mark == (int)BQ_KERNEL_ACCEPT_MARK) {
		mark = 0;
		bpf_setsockopt(ctx, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
	}
	return 1;
}

/* Decides first, then records: a caller the decision skipped is recorded all the same. */
static __always_inline int decide_and_record(struct bpf_sock_addr *ctx, bool connect, __u32 family)
{
	/* Read once: the record and the decision both ask which namespace the socket is in. */
	__u64 netns = bpf_get_netns_cookie(ctx);
	if (record_netns != 0 && netns != record_netns)
		return 1;
	struct bq_caller_record r = {};
	__u64 cookie = bpf_get_socket_cookie(ctx);
	if (!describe_caller(&r))
		return 1;
	int verdict = decide(ctx, &r, connect, family, netns);
	record_caller(&cookie, &r);
	return verdict;
}

SEC("cgroup/connect4")
int bastion_connect4(struct bpf_sock_addr *ctx)
{
	return decide_and_record(ctx, true, AF_INET);
}

SEC("cgroup/connect6")
int bastion_connect6(struct bpf_sock_addr *ctx)
{
	return decide_and_record(ctx, true, AF_INET6);
}

/* Only unconnected UDP sends come here (a connected socket's caller was recorded at connect). */
SEC("cgroup/sendmsg4")
int bastion_sendmsg4(struct bpf_sock_addr *ctx)
{
	return decide_and_record(ctx, false, AF_INET);
}

SEC("cgroup/sendmsg6")
int bastion_sendmsg6(struct bpf_sock_addr *ctx)
{
	return decide_and_record(ctx, false, AF_INET6);
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

/* Whether slot holds key, read without the slot's count. A read that raced a write may match
 * wrongly, and the clear that follows may then take away a newer entry of another key: that SYN
 * is only a miss (sock_diag). */
static __always_inline bool slot_holds(const struct bq_flow_slot *slot, const struct bq_flow_key *key)
{
	for (int i = 0; i < (int)(sizeof(*key) / sizeof(__u32)); i++) {
		__u32 a, b;
		__builtin_memcpy(&a, (const __u8 *)&slot->key + i * sizeof(a), sizeof(a));
		__builtin_memcpy(&b, (const __u8 *)key + i * sizeof(b), sizeof(b));
		if (a != b)
			return false;
	}
	return true;
}

/* Takes the slot for this program alone: its count from even (seen) to odd. A compare-and-swap is
 * a full barrier, so nothing written after it is seen before it. */
static __always_inline bool slot_take(struct bq_flow_slot *slot, __u32 seen)
{
	return !(seen & 1) && __sync_val_compare_and_swap(&slot->seq, seen, seen + 1) == seen;
}

/* Gives the slot back: its count even again, after every write (compare-and-swap again, not an
 * add, whose form without a fetch orders nothing on some architectures). */
static __always_inline void slot_give(struct bq_flow_slot *slot, __u32 taken)
{
	__sync_val_compare_and_swap(&slot->seq, taken + 1, taken + 2);
}

/* Writes the whole slot (key and tgid) if it can take it at count seen: whether it did. */
static __always_inline bool slot_write(struct bq_flow_slot *slot, __u32 seen, const struct bq_flow_key *key, __u32 tgid)
{
	if (!slot_take(slot, seen))
		return false;
	slot->key = *key;
	slot->tgid = tgid;
	slot_give(slot, seen);
	return true;
}

/* ---- Packets our chain's filters read (the network header first, as netfilter hands it to a match) ---- */

#define IPV4_FRAG_OFFSET_MASK 0x1fff
#define IPV6_HEADER_BYTES 40

/* The packet's family, addresses (src when not NULL; IPv4 in the first 4 bytes) and where its
 * transport header starts. false: not protocol, not a first fragment (no transport header), an
 * IPv6 header chain (left to the queue, which parses it), or an IPv4 header length out of bounds. */
static __always_inline bool network_header(struct __sk_buff *skb, __u8 protocol, __u32 *family, void *src, void *dst, __u32 *l4)
{
	__u8 first = 0;
	if (bpf_skb_load_bytes(skb, 0, &first, 1) != 0)
		return false;
	if (first >> 4 == 4) {
		__u8 carried = 0;
		__u16 frag = 0;
		if (bpf_skb_load_bytes(skb, 9, &carried, 1) != 0 || carried != protocol)
			return false;
		if (bpf_skb_load_bytes(skb, 6, &frag, 2) != 0 || (bpf_ntohs(frag) & IPV4_FRAG_OFFSET_MASK) != 0)
			return false;
		if ((src && bpf_skb_load_bytes(skb, 12, src, 4) != 0) || bpf_skb_load_bytes(skb, 16, dst, 4) != 0)
			return false;
		*l4 = (__u32)(first & 0x0f) * 4;
		*family = AF_INET;
	} else if (first >> 4 == 6) {
		__u8 next = 0;
		if (bpf_skb_load_bytes(skb, 6, &next, 1) != 0 || next != protocol)
			return false;
		if ((src && bpf_skb_load_bytes(skb, 8, src, 16) != 0) || bpf_skb_load_bytes(skb, 24, dst, 16) != 0)
			return false;
		*l4 = IPV6_HEADER_BYTES;
		*family = AF_INET6;
	} else {
		return false;
	}
	return *l4 >= 20 && *l4 <= 60;
}

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

/* A bare SYN's key, read from the packet. false: not a bare TCP SYN with its header, or an IPv6
 * header chain (the fast path then asks sock_diag). */
static __always_inline bool syn_key(struct __sk_buff *skb, struct bq_flow_key *key)
{
	__u32 l4;
	if (!network_header(skb, IPPROTO_TCP, &key->family, key->local_ip, key->remote_ip, &l4))
		return false;
	struct {
		__u16 source, dest;
		__u32 seq, ack_seq;
		__u8 offset, flags;
	} tcp = {};
	if (bpf_skb_load_bytes(skb, l4, &tcp, 14) != 0)
		return false;
	if ((tcp.flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return false;
	key->local_port = bpf_ntohs(tcp.source);
	key->remote_port = bpf_ntohs(tcp.dest);
	key->syn_seq = bpf_ntohl(tcp.seq);
	return true;
}

/*
 * A match of our chain, just before its queue rules (iptables -m bpf, helper/firewallRules.ts):
 * never matches; notes a bare SYN on its way to the queue in the slot of its key = the caller
 * recorded for its socket (the last connect()), so the fast path reads it without sock_diag.
 * A retransmission comes through again with the same key and rewrites the same entry. An older
 * connection's entry has another key (its own sequence number), except when the kernel's
 * sequence clock, which wraps every 275 s, lands on the same number for the same ends: a SYN
 * whose socket has no record (the map or its uid's quota full) therefore clears an entry with
 * its key. Two SYNs never have one key at once, so a slot's other writers have other keys; a
 * write that cannot take the slot (another holds it, a few tries) leaves no entry of its key
 * either: every holder replaces the whole key, with its own or with zeros.
 */
SEC("socket")
int bastion_flow_note(struct __sk_buff *skb)
{
	struct bq_flow_key key = {};
	if (!syn_key(skb, &key))
		return 0;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct bq_caller_record *r = bpf_map_lookup_elem(&callers, &cookie);
	__u32 index = bq_flow_slot_of(&key, flow_seed);
	struct bq_flow_slot *slot = bpf_map_lookup_elem(&flow_slots, &index);
	if (!slot)
		return 0;
	if (!r) {
		__u32 seen = *(volatile __u32 *)&slot->seq;
		struct bq_flow_key empty = {};
		if (slot_holds(slot, &key))
			slot_write(slot, seen, &empty, 0);
		return 0;
	}
	__u32 tgid = r->tgid;
	for (int attempt = 0; attempt < 4; attempt++)
		if (slot_write(slot, *(volatile __u32 *)&slot->seq, &key, tgid))
			break;
	return 0;
}

/* ---- UDP allowed in the kernel, per datagram ---- */

/* The datagram's family, destination address and port, read from the packet. false: not a first
 * UDP fragment whose ports are readable, or an IPv6 header chain (left to the queue). */
static __always_inline bool udp_destination(struct __sk_buff *skb, __u32 *family, __u32 *dst, __u16 *port)
{
	__u32 l4;
	if (!network_header(skb, IPPROTO_UDP, family, NULL, dst, &l4))
		return false;
	__u16 be_port = 0;
	if (bpf_skb_load_bytes(skb, l4 + 2, &be_port, 2) != 0)
		return false;
	*port = bpf_ntohs(be_port);
	return *port != 0;
}

/*
 * A match of our chain (iptables -m bpf, before the queue rule): true lets a new UDP datagram out
 * without the queue. Per datagram: the sending process's executable, taken from the current task
 * (the OUTPUT hook of a local UDP send runs in the sender's sendmsg()), must have an allow for
 * this destination port. And that process must be the socket's recorded caller (its last
 * connect(), or this very sendto()): a socket it did not connect or send on itself (inherited,
 * passed over SCM_RIGHTS, or handed to another program by exec) is not its to use, and a context
 * that is not the sender (a packet reinjected later by another queue) names no caller at all.
 * Anything else, and every deny (decided at sendmsg by decide()), is left to the rules after it.
 * The chain's rule holds this filter and its maps after the helper is gone (killed: the cgroup
 * programs go with its links, this does not): without a recent sign of life it allows nothing.
 */
SEC("socket")
int bastion_udp_allow(struct __sk_buff *skb)
{
	if (!kernel_verdicts)
		return 0;
	__u32 zero = 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 *alive = bpf_map_lookup_elem(&verdict_alive, &zero);
	if (!alive || now - *alive > BQ_VERDICT_ALIVE_NS)
		return 0;
	__u32 family = 0, dst[4] = {};
	__u16 port = 0;
	if (!udp_destination(skb, &family, dst, &port))
		return 0;
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct bq_caller_record *recorded = bpf_map_lookup_elem(&callers, &cookie);
	if (!recorded)
		return 0;
	/* The task's own fields, not bpf_get_current_pid_tgid() or bpf_get_current_uid_gid(): a
	 * socket filter may call those only from kernel 6.10 on (Debian 12's 6.1 refused the filter:
	 * test/kernel/debianKernel.test.ts). They read the same values. */
	struct task_struct *task = bpf_get_current_task_btf();
	struct bq_caller_record r = {};
	r.tgid = pidns_inum != 0 ? tgid_in_helper_pidns() : (__u32)task->tgid;
	if (r.tgid == 0 || r.tgid != recorded->tgid)
		return 0;
	const struct cred *cred = task->cred;
	r.uid = cred->uid.val;
	read_task(&r);
	if (r.exe_ino == 0)
		return 0;
	if (cred->user_ns->ns.inum != verdict_userns)
		return 0;
	__u16 rule_port = 0;
	if (lookup_verdict(&r, IPPROTO_UDP, port, &rule_port) != BQ_VERDICT_ALLOW)
		return 0;
	struct bq_udp_flow_key flow = {.cookie = cookie, .family = family, .port = port};
	__builtin_memcpy(flow.dst, dst, 16);
	__u64 *reported = bpf_map_lookup_elem(&udp_reported, &flow);
	if (!reported || now - *reported > BQ_UDP_REPORT_AGAIN_NS) {
		bpf_map_update_elem(&udp_reported, &flow, &now, BPF_ANY);
		report(&r, family, IPPROTO_UDP, dst, port, rule_port, BQ_VERDICT_ALLOW);
	}
	return 1;
}
