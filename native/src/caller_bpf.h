/* Who called connect()/sendmsg() on a socket: cgroup BPF programs (native/bpf/caller.bpf.c) on
 * the root cgroup v2 record, per socket cookie, the calling process (tgid, uid, start time,
 * executable) before the kernel sends the packet; the helper reads it by the cookie sock_diag
 * reports. A record lives as long as its socket (deleted at its release, never pushed out);
 * a socket without one (connected before the programs were attached, or the map or its uid's
 * quota full) has no known caller. For TCP, a socket filter that our chain runs on each SYN on
 * its way to the queue (bq_caller_flow_note_pin) notes the caller by the SYN's ends and sequence
 * number (bq_caller_flow_lookup), so a queued SYN's caller is found without sock_diag.
 * The programs never block anything. The cgroup programs are attached through BPF links held
 * only by this process, so they go away with it, even on SIGKILL; the two socket filters our
 * chain runs stay as long as a rule holds them (a chain left by a killed or fail-closed helper). */
#ifndef BASTION_CALLER_BPF_H
#define BASTION_CALLER_BPF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>

#include "caller_record.h"

struct bq_caller;

/* cgroup_path: the cgroup v2 mount point. 0, or -errno (EPERM without CAP_BPF/CAP_NET_ADMIN,
 * EINVAL/ENOSYS/ESRCH on kernels without these hooks, links or BTF); *stage names the step
 * that failed. log (log_size bytes, NUL-terminated) gets libbpf's messages of the first load
 * that failed, the verifier's log included. verdicts: let the programs decide in the kernel for
 * this process's network namespace (needs the executable and SO_NETNS_COOKIE): why the executable is not recorded when the open
 * succeeded without it, why nothing loaded when it failed. */
int bq_caller_open(struct bq_caller **out, const char *cgroup_path, bool verdicts, const char **stage, char *log, size_t log_size);
void bq_caller_close(struct bq_caller *c);

/* 0 and *record when a process connected or sent on the socket with this cookie since the
 * programs were attached; -ENOENT when none is recorded; another -errno on error. */
int bq_caller_lookup(const struct bq_caller *c, uint64_t cookie, struct bq_caller_record *record);

/* Whether records carry the caller's executable and start time (CAP_PERFMON and kernel BTF). */
bool bq_caller_has_exe(const struct bq_caller *c);

/* Whether the flow note filter loaded and its slots are mapped (bq_caller_flow_note_pin). */
bool bq_caller_has_flows(const struct bq_caller *c);

/* Pins the flow note filter (caller.bpf.c bastion_flow_note, a socket filter) at path in a bpf
 * file system, for the `-m bpf --object-pinned` rule our chain runs just before its queue rules:
 * 0, or -errno (-ENOTSUP without it). Unlinking the path unpins it; the rule keeps its own
 * reference. */
int bq_caller_flow_note_pin(const struct bq_caller *c, const char *path);

/* 0 and *tgid: the process whose connect() sent the bare TCP SYN with these ends (as the packet
 * travels: src is local; ports in host order) and sequence number (host order) in this process's
 * network namespace, noted as it passed our chain; -ENOENT when none was noted (or its slot is
 * being written or was taken by another SYN), -ENOTSUP without the filter. A read of shared
 * memory, no system call, in place of sock_diag plus the caller map. */
int bq_caller_flow_lookup(const struct bq_caller *c, uint8_t family, const uint8_t *src, uint16_t src_port,
			  const uint8_t *dst, uint16_t dst_port, uint32_t syn_seq, uint32_t *tgid);

/* ---- In-kernel verdicts (caller.bpf.c decide()) ---- */

/* The size of one bq_verdict_event as bq_caller_verdict_take() copies it. */
#define BQ_VERDICT_EVENT_BYTES 72

/* Whether the programs decide in the kernel (verdicts were asked for and the kernel allowed it). */
bool bq_caller_has_verdicts(const struct bq_caller *c);

/* Writes, deletes or forgets every verdict the programs apply: 0 or -errno (-ENOTSUP without verdicts). */
int bq_caller_verdict_set(const struct bq_caller *c, const struct bq_verdict_key *key, uint32_t verdict);
int bq_caller_verdict_delete(const struct bq_caller *c, const struct bq_verdict_key *key);
int bq_caller_verdict_clear(const struct bq_caller *c);

/* Pins the UDP allow filter (caller.bpf.c bastion_udp_allow, a socket filter) at path in a bpf
 * file system, for our chain's `-m bpf --object-pinned` match: 0, or -errno (-ENOTSUP when the
 * kernel refused the filter or decides nothing). Unlinking the path unpins it; the match keeps
 * its own reference. */
int bq_caller_udp_allow_pin(const struct bq_caller *c, const char *path);

/* The helper's sign of life for the UDP allow filter (BQ_VERDICT_ALIVE_NS): 0 or -errno. */
int bq_caller_verdict_alive(const struct bq_caller *c);

/* Copies the decisions reported since the last call into out (capacity events of
 * BQ_VERDICT_EVENT_BYTES): how many, or -errno; *lost: reports the ring or out had no room for. */
int bq_caller_verdict_take(struct bq_caller *c, uint8_t *out, size_t capacity, uint64_t *lost);

#endif
