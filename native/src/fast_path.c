/* The helper's fast path (see fast_path.h for the proof it replays). */
#include "fast_path.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
/* Most packets an entry sits out after misses in a row. */
#define BQ_FAST_MAX_SKIP 64

struct fast_verdict {
	uint8_t protocol;
	uint16_t port;
	bool accept;
	bool has_mark;
	uint32_t mark;
	uint64_t expires_ms; /* CLOCK_MONOTONIC */
};

struct fast_process {
	int32_t pid; /* 0: free */
	uint32_t token;
	/* /proc/PID/fd, opened when armed: a readlinkat in it skips the path walk (~half of a
	 * readlink's cost), and once that process has gone it names nothing, even if the pid is reused. */
	int fd_dir;
	uint32_t uid;
	int n_fds;
	int32_t fds[BQ_FAST_FDS];
	int n_verdicts;
	struct fast_verdict verdicts[BQ_FAST_VERDICTS];
	uint64_t armed_ms; /* the least recently armed entry is replaced first */
	/* Packets it sits out after missing (none of its fds held the socket), doubling per miss. */
	uint32_t penalty, skip;
};

struct bq_fast_path {
	int events_fd;
	struct bq_sock_diag *diag;
	struct fast_process processes[BQ_FAST_PROCESSES];
	struct bq_fast_counters counters;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int bq_fast_path_open(struct bq_fast_path **out, int events_fd)
{
	*out = NULL;
	struct bq_fast_path *fp = calloc(1, sizeof(*fp));
	if (!fp)
		return -ENOMEM;
	fp->events_fd = fcntl(events_fd, F_DUPFD_CLOEXEC, 0);
	if (fp->events_fd < 0) {
		int err = -errno;
		free(fp);
		return err;
	}
	int err = bq_sock_diag_open(&fp->diag);
	if (err < 0) {
		close(fp->events_fd);
		free(fp);
		return err;
	}
	*out = fp;
	return 0;
}

void bq_fast_path_close(struct bq_fast_path *fp)
{
	if (!fp)
		return;
	bq_fast_path_clear(fp);
	bq_sock_diag_close(fp->diag);
	close(fp->events_fd);
	free(fp);
}

const struct bq_fast_counters *bq_fast_path_counters(const struct bq_fast_path *fp)
{
	return &fp->counters;
}

static void empty_entry(struct fast_process *e)
{
	if (e->pid != 0)
		close(e->fd_dir);
	memset(e, 0, sizeof(*e));
}

void bq_fast_path_clear(struct bq_fast_path *fp)
{
	for (int i = 0; i < BQ_FAST_PROCESSES; i++)
		empty_entry(&fp->processes[i]);
}

void bq_fast_path_disarm(struct bq_fast_path *fp, int32_t pid)
{
	for (int i = 0; i < BQ_FAST_PROCESSES; i++)
		if (fp->processes[i].pid == pid)
			empty_entry(&fp->processes[i]);
}

/* pid's entry; else a free one, else the least recently armed one, emptied (pid 0). */
static struct fast_process *entry_for(struct bq_fast_path *fp, int32_t pid)
{
	struct fast_process *victim = &fp->processes[0];
	for (int i = 0; i < BQ_FAST_PROCESSES; i++) {
		struct fast_process *e = &fp->processes[i];
		if (e->pid == pid)
			return e;
		if (victim->pid != 0 && (e->pid == 0 || e->armed_ms < victim->armed_ms))
			victim = e;
	}
	empty_entry(victim);
	return victim;
}

int bq_fast_path_arm(struct bq_fast_path *fp, uint32_t token, int32_t pid, uint32_t uid, const int32_t *fds, int n_fds,
		     uint8_t protocol, uint16_t port, bool accept, bool has_mark, uint32_t mark, uint32_t ttl_ms)
{
	if (pid <= 0 || n_fds <= 0 || ttl_ms == 0 || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP))
		return -EINVAL;
	for (int i = 0; i < n_fds; i++)
		if (fds[i] < 0)
			return -EINVAL;
	uint64_t now = now_ms();
	struct fast_process *e = entry_for(fp, pid);
	if (e->pid != 0 && e->uid != uid)
		empty_entry(e); /* another owner than before: nothing of the old entry applies */
	if (e->pid == 0) {
		char path[32];
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (dir < 0)
			return -errno;
		e->pid = pid;
		e->uid = uid;
		e->fd_dir = dir;
	}
	e->armed_ms = now;
	e->token = token;
	e->n_fds = n_fds < BQ_FAST_FDS ? n_fds : BQ_FAST_FDS;
	memcpy(e->fds, fds, (size_t)e->n_fds * sizeof(int32_t));

	struct fast_verdict *v = NULL;
	for (int i = 0; i < e->n_verdicts; i++)
		if (e->verdicts[i].protocol == protocol && e->verdicts[i].port == port)
			v = &e->verdicts[i];
	if (!v) {
		if (e->n_verdicts == BQ_FAST_VERDICTS) {
			/* Full: the one that expires first makes room. */
			int first = 0;
			for (int i = 1; i < BQ_FAST_VERDICTS; i++)
				if (e->verdicts[i].expires_ms < e->verdicts[first].expires_ms)
					first = i;
			v = &e->verdicts[first];
		} else {
			v = &e->verdicts[e->n_verdicts++];
		}
	}
	*v = (struct fast_verdict){
		.protocol = protocol,
		.port = port,
		.accept = accept,
		.has_mark = has_mark,
		.mark = mark,
		.expires_ms = now + ttl_ms,
	};
	return 0;
}

int bq_flow_parse(uint16_t hw_protocol, const uint8_t *p, uint32_t len, struct bq_flow *flow)
{
	uint32_t l4;
	memset(flow, 0, sizeof(*flow));
	if (hw_protocol == ETH_P_IP) {
		if (len < 20 || (p[0] >> 4) != 4)
			return 0;
		uint32_t ihl = (uint32_t)(p[0] & 0x0f) * 4;
		uint32_t total = (uint32_t)((p[2] << 8) | p[3]);
		uint16_t frag = (uint16_t)((p[6] << 8) | p[7]);
		if (ihl < 20 || total < ihl || (frag & 0x3fff) != 0) /* MF set or an offset: a fragment */
			return 0;
		if (total < len)
			len = total; /* the L4 header must lie inside the packet's own length too */
		flow->family = AF_INET;
		flow->protocol = p[9];
		memcpy(flow->src, p + 12, 4);
		memcpy(flow->dst, p + 16, 4);
		l4 = ihl;
	} else if (hw_protocol == ETH_P_IPV6) {
		if (len < 40 || (p[0] >> 4) != 6)
			return 0;
		uint32_t payload = (uint32_t)((p[4] << 8) | p[5]);
		if (payload == 0)
			return 0; /* a jumbogram: left to JS */
		if (40 + payload < len)
			len = 40 + payload;
		flow->family = AF_INET6;
		flow->protocol = p[6]; /* an extension header is left to JS's full parser */
		memcpy(flow->src, p + 8, 16);
		memcpy(flow->dst, p + 24, 16);
		l4 = 40;
	} else {
		return 0;
	}
	if (flow->protocol != IPPROTO_TCP && flow->protocol != IPPROTO_UDP)
		return 0;
	uint32_t l4_header = flow->protocol == IPPROTO_TCP ? 20 : 8;
	if (l4 > len || len - l4 < l4_header)
		return 0;
	flow->src_port = (uint16_t)((p[l4] << 8) | p[l4 + 1]);
	flow->dst_port = (uint16_t)((p[l4 + 2] << 8) | p[l4 + 3]);
	if (flow->protocol == IPPROTO_TCP) { /* within the 20-byte header checked above */
		flow->tcp_flags = p[l4 + 13];
		flow->tcp_seq = (uint32_t)p[l4 + 4] << 24 | (uint32_t)p[l4 + 5] << 16 | (uint32_t)p[l4 + 6] << 8 | p[l4 + 7];
	}
	return 1;
}

/* Whether fd (in the armed process's /proc/PID/fd) names socket inode now. */
static bool holds_socket(int fd_dir, int32_t fd, uint32_t inode)
{
	char name[16], link[64], want[32];
	snprintf(name, sizeof(name), "%d", fd);
	ssize_t n = readlinkat(fd_dir, name, link, sizeof(link));
	int w = snprintf(want, sizeof(want), "socket:[%u]", inode);
	return n == w && memcmp(link, want, (size_t)n) == 0;
}

/* Whether one of the fds we try of e names socket inode now. */
static bool holds_at_any(const struct fast_process *e, uint32_t inode)
{
	for (int f = 0; f < e->n_fds; f++)
		if (holds_socket(e->fd_dir, e->fds[f], inode))
			return true;
	return false;
}

/* Nothing unread and no error on the process connector's socket: JS has seen every event. */
static bool events_current(const struct bq_fast_path *fp)
{
	struct pollfd pfd = {.fd = fp->events_fd, .events = POLLIN};
	int r;
	do
		r = poll(&pfd, 1, 0);
	while (r < 0 && errno == EINTR);
	return r == 0;
}

static const struct fast_verdict *verdict_for(const struct fast_process *e, uint8_t protocol, uint16_t port,
					      uint64_t now)
{
	for (int i = 0; i < e->n_verdicts; i++) {
		const struct fast_verdict *v = &e->verdicts[i];
		if (v->protocol == protocol && v->port == port && v->expires_ms > now)
			return v;
	}
	return NULL;
}

/* The verdict e may answer a packet of uid to (protocol, port) with now, or NULL; a non-NULL
 * answer spends one of its skips. */
static const struct fast_verdict *eligible(struct fast_process *e, uint32_t uid, uint8_t protocol, uint16_t port,
					   uint64_t now)
{
	const struct fast_verdict *v = e->pid == 0 || e->uid != uid ? NULL : verdict_for(e, protocol, port, now);
	if (v && e->skip > 0) {
		e->skip--;
		return NULL;
	}
	return v;
}

int bq_fast_path_decide(struct bq_fast_path *fp, const struct bq_caller *caller, uint16_t hw_protocol, bool has_uid,
			uint32_t packet_uid, const uint8_t *payload, uint32_t len, struct bq_fast_decision *out)
{
	/* No NFQA_UID: the kernel sent it on its own; JS reports those. */
	if (!has_uid)
		return 0;
	struct bq_flow flow;
	if (!bq_flow_parse(hw_protocol, payload, len, &flow))
		return 0;
	/* The cheap checks first: no sock_diag lookup unless an entry could answer. */
	uint64_t now = now_ms();
	const struct fast_verdict *candidates[BQ_FAST_PROCESSES];
	bool any = false;
	for (int i = 0; i < BQ_FAST_PROCESSES; i++) {
		candidates[i] = eligible(&fp->processes[i], packet_uid, flow.protocol, flow.dst_port, now);
		any |= candidates[i] != NULL;
	}
	if (!any)
		return 0;
	struct bq_socket_owner owner = {0};
	uint32_t caller_tgid = 0;
	bool by_flow = false;
	/* A bare SYN that our chain's flow note filter saw on its way here, by its ends and sequence
	 * number in this network namespace: its socket's caller read from the shared flow slots (no
	 * system call), without sock_diag (~2.8 µs). The sequence number ties the entry to this very
	 * SYN, never to an older connection with the same ends. The socket's uid is then NFQA_UID's,
	 * which eligible() checked; its inode is not known. */
	if (caller && flow.protocol == IPPROTO_TCP && (flow.tcp_flags & 0x12) == 0x02 &&
	    bq_caller_flow_lookup(caller, flow.family, flow.src, flow.src_port, flow.dst, flow.dst_port, flow.tcp_seq, &caller_tgid) == 0) {
		owner.uid = packet_uid;
		by_flow = true;
	} else {
		if (bq_sock_diag_lookup(fp->diag, flow.family, flow.protocol, flow.src, flow.src_port, flow.dst, flow.dst_port,
					&owner) != 0 ||
		    owner.inode == 0)
			return 0;
		/* The caller that connected it: one map lookup (~0.6 µs here, a readlinkat ~0.9 µs) proves more than readlinkat can, as
		 * it names the process that acted, not one of those that hold the socket. */
		if (caller) {
			struct bq_caller_record record;
			if (bq_caller_lookup(caller, owner.cookie, &record) != 0)
				return 0; /* no recorded caller: JS credits it to no one */
			caller_tgid = record.tgid;
		}
	}
	for (int i = 0; i < BQ_FAST_PROCESSES; i++) {
		struct fast_process *e = &fp->processes[i];
		if (!candidates[i] || e->uid != owner.uid)
			continue;
		bool acted = caller ? (uint32_t)e->pid == caller_tgid : holds_at_any(e, owner.inode);
		if (!acted) {
			/* Not its socket, or not where we look (many at once, say): try it less and less often. */
			e->penalty = e->penalty == 0 ? 1 : (e->penalty < BQ_FAST_MAX_SKIP ? e->penalty * 2 : BQ_FAST_MAX_SKIP);
			e->skip = e->penalty;
			fp->counters.missed++;
			continue;
		}
		e->penalty = 0;
		/* Read after the fd: an exec or exit before it is queued there by now. */
		if (!events_current(fp)) {
			fp->counters.events_pending++;
			return 0;
		}
		const struct fast_verdict *v = candidates[i];
		if (by_flow)
			fp->counters.by_flow++;
		*out = (struct bq_fast_decision){
			.flow = flow,
			.token = e->token,
			.inode = owner.inode,
			.accept = v->accept,
			.has_mark = v->has_mark,
			.mark = v->mark,
		};
		return 1;
	}
	return 0;
}
