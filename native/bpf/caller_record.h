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
/* TCP connections remembered by their ends at most: an entry is needed only from the connect
 * to its SYN's verdict; a forgotten one sends the fast path to sock_diag and the caller map. */
#define BQ_FLOW_MAP_ENTRIES 16384

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

/* A TCP connection as the sock_ops program keys it: its network namespace, and its ends as
 * bpf_sock_ops shows them (local_port host order; remote_port network order in the high half),
 * IPv4 addresses in the first 4 bytes. */
struct bq_flow_key {
	__u64 netns;
	__u32 family; /* AF_INET / AF_INET6 */
	__u32 local_port;
	__u32 remote_port;
	__u8 local_ip[16];
	__u8 remote_ip[16];
	__u32 pad;
};

struct bq_flow_value {
	__u64 cookie;
	__u32 tgid;
	__u32 pad;
};

#endif
