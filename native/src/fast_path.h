/* The helper's fast path: a new connection from a process the helper has credited lately, to
 * a protocol and port the service let it reuse a verdict for, is answered here, before JS runs.
 *
 * It replays, for a new socket, the proof the JS identify stage relies on:
 *  - sock_diag names the packet's socket (inode, uid);
 *  - the armed pid is the process that called connect() (or last sendmsg()) on that socket, by
 *    the caller map (caller_bpf.h) when attached; else /proc/PID/fd/N of the armed pid names
 *    that socket (the pid holds it now);
 *  - the process connector's socket has nothing unread and no error: every fork, exec and exit
 *    up to now has been read, and its reader disarmed the pids they name in the same step
 *    (fast_registry.c, under the lock the caller holds here), clearing the table when events were
 *    lost. So the pid still runs the program JS armed it for.
 * Not thread-safe: the addon serializes every call under one lock.
 * Anything else (no entry, another fd, an IPv6 extension header, a fragment, an unread event)
 * is left to JS. JS arms entries only from verdicts the service allowed it to reuse, and clears
 * them all whenever its verdict cache changes. */
#ifndef BASTION_FAST_PATH_H
#define BASTION_FAST_PATH_H

#include <stdbool.h>
#include <stdint.h>

#include "caller_bpf.h"
#include "sock_diag.h"

/* Processes armed at most: the busiest clients. */
#define BQ_FAST_PROCESSES 8
/* fd numbers tried per process: where its sockets were lately (a closed fd's number is reused
 * first). A program with a few sockets at once has them all here (~3 µs per readlinkat). */
#define BQ_FAST_FDS 8
/* (protocol, port) verdicts kept per process. */
#define BQ_FAST_VERDICTS 8

/* The part of a packet the fast path looks at. */
struct bq_flow {
	uint8_t family; /* AF_INET / AF_INET6 */
	uint8_t protocol; /* IPPROTO_TCP / IPPROTO_UDP */
	uint16_t src_port, dst_port;
	uint8_t tcp_flags; /* TCP: the header's flags byte (SYN 0x02, ACK 0x10); 0 for UDP */
	uint32_t tcp_seq;  /* TCP: the sequence number, host order; 0 for UDP */
	uint8_t src[16], dst[16];
};

struct bq_fast_decision {
	struct bq_flow flow;
	uint32_t token; /* the caller's name for the arming that answered */
	uint32_t inode;
	bool accept;
	bool has_mark;
	uint32_t mark;
};

struct bq_fast_counters {
	uint64_t events_pending; /* a matching packet left to JS because process events were unread */
	uint64_t missed;         /* lookups in which an armed entry's fds did not hold the socket */
	uint64_t by_flow;        /* of the decided: SYNs whose caller the flow slots named (no sock_diag) */
};

struct bq_fast_path;

/* events_fd: the process connector's socket (duplicated here; JS keeps reading the original). */
int bq_fast_path_open(struct bq_fast_path **out, int events_fd);
void bq_fast_path_close(struct bq_fast_path *fp);

/* Arms (or refreshes) pid: its socket uid, the fd numbers to try (most likely first) and one
 * verdict for (protocol, port), valid for ttl_ms; token names this arming in decisions.
 * 0, -EINVAL, or -errno when /proc/PID/fd cannot be opened (the process has gone). */
int bq_fast_path_arm(struct bq_fast_path *fp, uint32_t token, int32_t pid, uint32_t uid, const int32_t *fds, int n_fds,
		     uint8_t protocol, uint16_t port, bool accept, bool has_mark, uint32_t mark, uint32_t ttl_ms);
void bq_fast_path_disarm(struct bq_fast_path *fp, int32_t pid);
void bq_fast_path_clear(struct bq_fast_path *fp);

/* 1 and *out when the fast path answers this packet; 0 when JS must. packet_uid: NFQA_UID.
 * caller: the connect()/sendmsg() callers (caller_bpf.h), NULL when not attached. With it, only
 * the process that connected the socket (or last sent on it) may answer, and a socket it has no
 * caller for is left to JS: a socket shared with another program is never credited here. */
int bq_fast_path_decide(struct bq_fast_path *fp, const struct bq_caller *caller, uint16_t hw_protocol, bool has_uid,
			uint32_t packet_uid, const uint8_t *payload, uint32_t len, struct bq_fast_decision *out);

const struct bq_fast_counters *bq_fast_path_counters(const struct bq_fast_path *fp);

/* The flow of an unfragmented IPv4 or IPv6 TCP/UDP packet with no IPv6 extension header:
 * 1 and *flow, or 0 for anything else (never reads past len). */
int bq_flow_parse(uint16_t hw_protocol, const uint8_t *p, uint32_t len, struct bq_flow *flow);

#endif
