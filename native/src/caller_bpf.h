/* Who called connect()/sendmsg() on a socket: tiny cgroup sock_addr BPF programs on the root
 * cgroup v2 record, per socket cookie, the calling process (tgid) in an LRU hash map, before
 * the kernel sends the packet; the helper reads it by the cookie sock_diag reports. The
 * programs never block anything (they always return 1). They are attached through BPF links
 * held only by this process, so they go away with it, even on SIGKILL. */
#ifndef BASTION_CALLER_BPF_H
#define BASTION_CALLER_BPF_H

#include <stdint.h>

/* Sockets remembered at most (least recently connected forgotten first). */
#define BQ_CALLER_MAP_ENTRIES 65536

struct bq_caller;

/* cgroup_path: the cgroup v2 mount point. 0, or -errno (EPERM without CAP_BPF/CAP_NET_ADMIN,
 * EINVAL/ENOSYS on kernels without these hooks or links); *stage names the step that failed. */
int bq_caller_open(struct bq_caller **out, const char *cgroup_path, const char **stage);
void bq_caller_close(struct bq_caller *c);

/* 0 and *tgid when a process connected or sent on the socket with this cookie since the
 * programs were attached; -ENOENT when not (or forgotten); another -errno on error. */
int bq_caller_lookup(const struct bq_caller *c, uint64_t cookie, uint32_t *tgid);

#endif
