/* Who called connect()/sendmsg() on a socket: tiny cgroup sock_addr BPF programs on the root
 * cgroup v2 record, per socket cookie, the calling process (tgid) in an LRU hash map, before
 * the kernel sends the packet; the helper reads it by the cookie sock_diag reports. For TCP, a
 * sock_ops program also records it by the connection's ends (bq_caller_flow_lookup), so a
 * SYN's caller is found without sock_diag. The programs never block anything (they always
 * return 1). They are attached through BPF links held only by this process, so they go away
 * with it, even on SIGKILL. */
#ifndef BASTION_CALLER_BPF_H
#define BASTION_CALLER_BPF_H

#include <stdbool.h>
#include <stdint.h>

/* Sockets remembered at most (least recently connected forgotten first). */
#define BQ_CALLER_MAP_ENTRIES 65536
/* TCP connections remembered by their ends at most: an entry is needed only from the connect
 * to its SYN's verdict, and costs ~140 bytes of locked kernel memory (preallocated). */
#define BQ_FLOW_MAP_ENTRIES 16384

struct bq_caller;

/* cgroup_path: the cgroup v2 mount point. 0, or -errno (EPERM without CAP_BPF/CAP_NET_ADMIN,
 * EINVAL/ENOSYS on kernels without these hooks or links); *stage names the step that failed. */
int bq_caller_open(struct bq_caller **out, const char *cgroup_path, const char **stage);
void bq_caller_close(struct bq_caller *c);

/* 0 and *tgid when a process connected or sent on the socket with this cookie since the
 * programs were attached; -ENOENT when not (or forgotten); another -errno on error. */
int bq_caller_lookup(const struct bq_caller *c, uint64_t cookie, uint32_t *tgid);

/* A TCP connection as the sock_ops program keys it (caller_bpf.c): its network namespace, and
 * its ends as bpf_sock_ops shows them, IPv4 addresses in the first 4 bytes. */
struct bq_flow_key {
	uint64_t netns;
	uint32_t family; /* AF_INET / AF_INET6 */
	uint32_t local_port;
	uint32_t remote_port;
	uint8_t local_ip[16];
	uint8_t remote_ip[16];
	uint32_t pad;
};

/* Whether TCP connections are recorded by their addresses too (the kernel allowed the program). */
bool bq_caller_has_flows(const struct bq_caller *c);

/* 0 and *tgid: the process whose connect() made the TCP connection with these ends (as the
 * packet travels: src is local; ports in host order) in this process's network namespace,
 * recorded before its SYN left; -ENOENT when none was recorded, -ENOTSUP without the program.
 * One map lookup in place of sock_diag plus the caller map. */
int bq_caller_flow_lookup(const struct bq_caller *c, uint8_t family, const uint8_t *src, uint16_t src_port,
			  const uint8_t *dst, uint16_t dst_port, uint32_t *tgid);

#endif
