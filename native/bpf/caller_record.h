/* The records the caller programs (caller.bpf.c) keep, as both sides see them: included by the
 * BPF object (kernel types from kernel_types.h) and by the loader (caller_bpf.c, uapi types),
 * which asserts the layout at compile time. Only fixed-size fields, no padding left implicit. */
#ifndef BASTION_CALLER_RECORD_H
#define BASTION_CALLER_RECORD_H

/* Live sockets with a recorded caller, at most. The map is not an LRU: nothing is ever pushed
 * out, an entry goes when its socket is released (cgroup/sock_release), and when the map is
 * full a new socket simply gets no record (the helper credits it to no one). Entries are
 * allocated as used (BPF_F_NO_PREALLOC); the bucket array alone is 16 bytes an entry. */
#define BQ_CALLER_MAP_ENTRIES 262144
/* Records one uid may hold at once (its live sockets that called connect()/sendmsg()), so that
 * one user filling the map cannot leave other users' sockets unrecorded. */
#define BQ_CALLER_UID_QUOTA 32768
/* Uids counted at most; past that, records are kept uncharged (BQ_CALLER_UNCHARGED). */
#define BQ_CALLER_UIDS 65536
#define BQ_CALLER_UNCHARGED 0xffffffffu
/* TCP SYNs remembered by their ends: slots of an array that the flow note filter (a match of
 * our chain, just before its queue rules) writes and the helper reads through a read-only shared
 * mapping, without a system call. A slot is chosen by a seeded hash of the SYN's key; an entry is
 * needed only from that SYN's pass through our chain to its verdict, and one whose slot another
 * SYN took sends the fast path to sock_diag and the caller map. A power of two. */
#define BQ_FLOW_SLOTS 16384

/* bq_caller_record.flags */
#define BQ_CALLER_F_EXE 1u /* exe_dev, exe_ino and start_ns were read (CAP_PERFMON, BTF) */

/* Who called connect(), or last sent on an unconnected UDP socket, keyed by the socket's
 * cookie (SO_COOKIE, never reused while the system runs). */
struct bq_caller_record {
	__u32 tgid;
	__u32 uid;         /* the caller's real uid */
	__u64 start_ns;    /* its thread group leader's start, ns of CLOCK_BOOTTIME (/proc/PID/stat field 22 in ns) */
	__u64 exe_ino;     /* its executable's inode (mm->exe_file) */
	__u32 exe_dev;     /* that file's super_block s_dev: the kernel's MAJOR << 20 | MINOR, not st_dev */
	__u32 flags;
	__u32 charged_uid; /* whose quota the record counts against, or BQ_CALLER_UNCHARGED */
	__u32 pad;
};

/* A TCP SYN as the flow note filter keys it: the packet's family and ends (ports host order,
 * IPv4 addresses in the first 4 bytes) and its sequence number (host order). No network
 * namespace: the filter runs in our chain only, so every SYN it sees is of ours. The sequence number is the connection's
 * initial one, which the kernel draws afresh for each connection: an entry answers for that
 * very SYN (and its retransmissions) alone, never for a later connection with the same ends. */
struct bq_flow_key {
	__u32 family; /* AF_INET / AF_INET6 */
	__u32 local_port;
	__u32 remote_port;
	__u8 local_ip[16];
	__u8 remote_ip[16];
	__u32 syn_seq;
};

/* One slot: a SYN's key and the tgid that connected its socket (key all zero: empty). seq is a
 * sequence count: odd while the filter writes the slot, which it does alone (it took seq from
 * even to odd with a compare-and-swap); a reader copies the slot between two reads of one even
 * value, as for the kernel's seqcount. 64 bytes: one cache line. */
struct bq_flow_slot {
	__u32 seq;
	__u32 tgid;
	struct bq_flow_key key;
	__u32 pad[2];
};

/* The slot of a key: a multiplicative hash of its 32-bit words, seeded with a random value at
 * load, so another user cannot aim connections at the slot of a connection to come. */
static inline __u32 bq_flow_slot_of(const struct bq_flow_key *key, __u32 seed)
{
	__u32 h = seed;
	for (int i = 0; i < (int)(sizeof(*key) / sizeof(__u32)); i++) {
		__u32 word;
		/* Copied, not read through a __u32 pointer: the key holds byte arrays (strict aliasing). */
		__builtin_memcpy(&word, (const __u8 *)key + i * sizeof(word), sizeof(word));
		h ^= word;
		h *= 0x9e3779b1u;
		h ^= h >> 16;
	}
	return h & (BQ_FLOW_SLOTS - 1);
}

/* ---- In-kernel verdicts (issue 20) ---- */

/* (executable, protocol, port) verdicts at most: the service's path rules, twice (TCP and UDP). */
#define BQ_VERDICT_MAP_ENTRIES 16384
/* The decisions' ring buffer: 256 KiB holds ~3,200 reports, collected every 100 ms by the helper
 * (FAST_REPORT_DELAY_MS), so 32,000 decisions a second before one is lost (and counted). */
#define BQ_VERDICT_RING_BYTES (256 * 1024)
/* bq_verdict_value.verdict and bq_verdict_event.verdict */
#define BQ_VERDICT_ALLOW 1u
#define BQ_VERDICT_DENY 2u
/* The socket mark bit of a TCP connection allowed in the kernel, which our chain accepts before
 * the queue (helper/firewallRules.ts, kernelAcceptMark). Set only on a socket without a mark, so
 * no other tool's mark (routing, VPNs, kube-proxy's 0x4000/0x8000) is ever changed; bit 22 is
 * outside the bits those tools set on unmarked sockets. */
#define BQ_KERNEL_ACCEPT_MARK 0x00400000u

/* A path rule as the kernel sees it: the executable's inode, as mm->exe_file names it. */
struct bq_verdict_key {
	__u64 exe_ino;
	__u32 exe_dev;  /* super_block s_dev: MAJOR << 20 | MINOR */
	__u16 port;     /* destination port, host order; 0: every port */
	__u8 protocol;  /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 pad;
};

struct bq_verdict_value {
	__u32 verdict; /* BQ_VERDICT_ALLOW / BQ_VERDICT_DENY */
	__u32 pad;
};

/* One decision taken in the kernel, for the helper to report to the service. */
struct bq_verdict_event {
	__u64 exe_ino;
	__u64 start_ns;   /* the caller's thread group leader's start (CLOCK_BOOTTIME ns) */
	__u32 exe_dev;
	__u32 tgid;       /* as the helper's pid namespace numbers it (record_caller) */
	__u32 uid;
	__u16 family;     /* AF_INET / AF_INET6 */
	__u8 protocol;
	__u8 verdict;
	__u16 dst_port;   /* host order */
	__u16 rule_port;  /* the entry that decided: its port, 0 for every port */
	__u8 dst_addr[16]; /* IPv4 in the first 4 bytes */
	char comm[16];
	__u32 pad;
};

/* How long the UDP allow filter trusts the helper's last sign of life (bq_caller_verdict_alive(),
 * every second): the filter outlives the helper in our chain's rule, the cgroup programs do not;
 * a helper gone (killed, or stalled past this) lets it allow nothing. */
#define BQ_VERDICT_ALIVE_NS (5ull * 1000 * 1000 * 1000)

/* UDP flows whose kernel allow was reported, remembered at most (caller.bpf.c udp_reported), and
 * how often one flow's allowed datagrams are reported again while it sends unanswered. */
#define BQ_UDP_REPORTED_ENTRIES 16384
#define BQ_UDP_REPORT_AGAIN_NS (10ull * 1000 * 1000 * 1000)

/* A UDP flow as reported: the socket, and where its datagram went. */
struct bq_udp_flow_key {
	__u64 cookie;
	__u32 family;
	__u16 port;    /* host order */
	__u16 pad;
	__u32 dst[4];  /* IPv4 in the first word */
};

/* verdict_stats slots */
#define BQ_VERDICT_STAT_LOST 0 /* decisions applied whose report did not fit in the ring */
#define BQ_VERDICT_STATS 1

#endif
