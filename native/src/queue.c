/* NFQUEUE reader: binds one queue, configures it, reads it one datagram at a time (from the addon's reader thread), sends verdicts.
 * Shape follows libmnl's examples: attribute handling, message builders, one read loop. */
#include "queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <arpa/inet.h>

#include <libmnl/libmnl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/* One netlink message carrying a packet: its header plus at most copy_range bytes (which we
 * cap at 64 KiB) plus attributes. 64 KiB + 4 KiB is enough for any single message. */
#define BQ_RECV_BUF_SIZE (65536 + 4096)
/* Config and verdict messages are tiny; this holds any of them. */
#define BQ_SEND_BUF_SIZE 512
/* How long we wait for the kernel's ack to a config command before calling it broken. */
#define BQ_ACK_TIMEOUT_MS 1000

struct bq_queue {
	struct mnl_socket *nl;
	uint32_t portid;
	uint16_t queue_num;
	uint32_t seq;
	struct bq_counters counters;
	char recv_buf[BQ_RECV_BUF_SIZE];
};

/* ---- message builders ---- */

static int send_and_ack(struct bq_queue *q, struct nlmsghdr *nlh)
{
	nlh->nlmsg_flags |= NLM_F_ACK;
	nlh->nlmsg_seq = ++q->seq;
	if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;

	/* The socket is non-blocking; config acks arrive immediately, but poll a little in case
	 * packets are already queued ahead of the ack (they are counted as dropped-by-config). */
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(q->nl, q->recv_buf, sizeof(q->recv_buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				q->counters.overruns++;
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			long waited_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
			if (waited_ms > BQ_ACK_TIMEOUT_MS)
				return -ETIMEDOUT;
			struct timespec pause = {0, 1000000};
			nanosleep(&pause, NULL);
			continue;
		}
		int ret = mnl_cb_run(q->recv_buf, (size_t)n, q->seq, q->portid, NULL, NULL);
		if (ret == MNL_CB_ERROR)
			return -errno;
		if (ret == MNL_CB_STOP)
			return 0;
	}
}

static int config_cmd(struct bq_queue *q, uint16_t pf, uint8_t cmd)
{
	char buf[BQ_SEND_BUF_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->queue_num);
	nfq_nlmsg_cfg_put_cmd(nlh, pf, cmd);
	return send_and_ack(q, nlh);
}

static int config_params(struct bq_queue *q, const struct bq_queue_options *opts)
{
	char buf[BQ_SEND_BUF_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, q->queue_num);
	nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, (int)opts->copy_range);
	nfq_nlmsg_cfg_put_qmaxlen(nlh, opts->max_len);

	/* UID_GID: the kernel tells us the socket owner for free. GSO: do not make the kernel
	 * segment or checksum big packets just to show us their headers. */
	uint32_t flags = NFQA_CFG_F_UID_GID | NFQA_CFG_F_GSO;
	if (opts->fail_open)
		flags |= NFQA_CFG_F_FAIL_OPEN;
	uint32_t mask = NFQA_CFG_F_UID_GID | NFQA_CFG_F_GSO | NFQA_CFG_F_FAIL_OPEN;
	mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(flags));
	mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(mask));
	return send_and_ack(q, nlh);
}

/* ---- open / close ---- */

int bq_queue_open(struct bq_queue **out, const struct bq_queue_options *opts)
{
	*out = NULL;
	if (opts->copy_range == 0 || opts->copy_range > 65535 || opts->max_len == 0)
		return -EINVAL;

	struct bq_queue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->queue_num = opts->queue_num;
	q->seq = (uint32_t)time(NULL);

	q->nl = mnl_socket_open2(NETLINK_NETFILTER, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (!q->nl) {
		int err = -errno;
		free(q);
		return err;
	}
	if (mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	q->portid = mnl_socket_get_portid(q->nl);

	/* A large buffer absorbs bursts; FORCE (CAP_NET_ADMIN) ignores net.core.rmem_max. */
	int rcvbuf = (int)opts->rcvbuf_bytes;
	if (rcvbuf > 0 && setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0 &&
	    setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) < 0)
		goto fail;

	int err = config_cmd(q, AF_UNSPEC, NFQNL_CFG_CMD_BIND);
	if (err == 0)
		err = config_params(q, opts);
	if (err < 0) {
		mnl_socket_close(q->nl);
		free(q);
		return err;
	}
	*out = q;
	return 0;

fail: {
		int e = -errno;
		mnl_socket_close(q->nl);
		free(q);
		return e;
	}
}

int bq_queue_fd(const struct bq_queue *q)
{
	return mnl_socket_get_fd(q->nl);
}

void bq_queue_counters(const struct bq_queue *q, struct bq_counters *out)
{
	out->packets = __atomic_load_n(&q->counters.packets, __ATOMIC_RELAXED);
	out->overruns = __atomic_load_n(&q->counters.overruns, __ATOMIC_RELAXED);
	out->verdict_errors = __atomic_load_n(&q->counters.verdict_errors, __ATOMIC_RELAXED);
	out->bad_messages = __atomic_load_n(&q->counters.bad_messages, __ATOMIC_RELAXED);
}

void bq_queue_close(struct bq_queue *q)
{
	if (!q)
		return;
	/* Best effort: closing the socket unbinds too, but say it explicitly. */
	config_cmd(q, AF_UNSPEC, NFQNL_CFG_CMD_UNBIND);
	mnl_socket_close(q->nl);
	free(q);
}

/* ---- reading packets ---- */

/* Copies one NFQNL_MSG_PACKET into a slot. Returns 1 when a slot was filled, 0 when the
 * message was not a packet, negative errno when it was malformed. */
static int packet_to_slot(const struct nlmsghdr *nlh, uint8_t *slot, size_t slot_size)
{
	struct nlattr *attr[NFQA_MAX + 1] = {0};
	if (nfq_nlmsg_parse(nlh, attr) < 0)
		return -EBADMSG;
	if (!attr[NFQA_PACKET_HDR] || mnl_attr_get_payload_len(attr[NFQA_PACKET_HDR]) < sizeof(struct nfqnl_msg_packet_hdr))
		return -EBADMSG;

	const struct nfqnl_msg_packet_hdr *ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
	struct bq_slot_header h = {0};
	h.packet_id = ntohl(ph->packet_id);
	h.hw_protocol = ntohs(ph->hw_protocol);
	h.hook = ph->hook;

	if (attr[NFQA_MARK] && mnl_attr_get_payload_len(attr[NFQA_MARK]) >= 4) {
		h.mark = ntohl(mnl_attr_get_u32(attr[NFQA_MARK]));
		h.flags |= BQ_SLOT_F_MARK;
	}
	if (attr[NFQA_IFINDEX_INDEV] && mnl_attr_get_payload_len(attr[NFQA_IFINDEX_INDEV]) >= 4)
		h.indev = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_INDEV]));
	if (attr[NFQA_IFINDEX_OUTDEV] && mnl_attr_get_payload_len(attr[NFQA_IFINDEX_OUTDEV]) >= 4)
		h.outdev = ntohl(mnl_attr_get_u32(attr[NFQA_IFINDEX_OUTDEV]));
	if (attr[NFQA_UID] && mnl_attr_get_payload_len(attr[NFQA_UID]) >= 4) {
		h.uid = ntohl(mnl_attr_get_u32(attr[NFQA_UID]));
		h.flags |= BQ_SLOT_F_UID;
	}
	if (attr[NFQA_GID] && mnl_attr_get_payload_len(attr[NFQA_GID]) >= 4) {
		h.gid = ntohl(mnl_attr_get_u32(attr[NFQA_GID]));
		h.flags |= BQ_SLOT_F_GID;
	}

	const uint8_t *payload = NULL;
	uint32_t payload_len = 0;
	if (attr[NFQA_PAYLOAD]) {
		payload = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
		payload_len = mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]);
	}
	/* With a copy range the payload is cut; NFQA_CAP_LEN then holds the real length. */
	h.orig_len = payload_len;
	if (attr[NFQA_CAP_LEN] && mnl_attr_get_payload_len(attr[NFQA_CAP_LEN]) >= 4)
		h.orig_len = ntohl(mnl_attr_get_u32(attr[NFQA_CAP_LEN]));

	size_t room = slot_size - sizeof(h);
	h.cap_len = payload_len < room ? payload_len : (uint32_t)room;
	memcpy(slot, &h, sizeof(h));
	if (h.cap_len)
		memcpy(slot + sizeof(h), payload, h.cap_len);
	return 1;
}

/* Walks the messages of one datagram: a packet goes into slot, acks and errors are counted.
 * Returns 1 when it filled the slot, else 0. */
static int parse_datagram(struct bq_queue *q, ssize_t n, uint8_t *slot, size_t slot_size)
{
	int count = 0;
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)q->recv_buf;
	int len = (int)n;
	while (mnl_nlmsg_ok(nlh, len)) {
		if (nlh->nlmsg_type == NLMSG_ERROR) {
			const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
			if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(*e)) && e->error != 0)
				__atomic_add_fetch(&q->counters.verdict_errors, 1, __ATOMIC_RELAXED);
		} else if (NFNL_SUBSYS_ID(nlh->nlmsg_type) == NFNL_SUBSYS_QUEUE &&
			   NFNL_MSG_TYPE(nlh->nlmsg_type) == NFQNL_MSG_PACKET) {
			if (count == 0 && packet_to_slot(nlh, slot, slot_size) > 0) {
				count = 1;
				__atomic_add_fetch(&q->counters.packets, 1, __ATOMIC_RELAXED);
			} else {
				/* A second packet cannot come in one datagram; never lose one silently. */
				__atomic_add_fetch(&q->counters.bad_messages, 1, __ATOMIC_RELAXED);
			}
		}
		nlh = mnl_nlmsg_next(nlh, &len);
	}
	return count;
}

int bq_queue_wait_mode(struct bq_queue *q, unsigned timeout_ms)
{
	int fd = mnl_socket_get_fd(q->nl);
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	int flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	return 0;
}

int bq_queue_read_wait(struct bq_queue *q, uint8_t *slot, size_t slot_size)
{
	if (slot_size <= sizeof(struct bq_slot_header))
		return -EINVAL;
	ssize_t n = recv(mnl_socket_get_fd(q->nl), q->recv_buf, sizeof(q->recv_buf), 0);
	if (n < 0) {
		if (errno == ENOBUFS) {
			__atomic_add_fetch(&q->counters.overruns, 1, __ATOMIC_RELAXED);
			return 0;
		}
		return -errno;
	}
	return parse_datagram(q, n, slot, slot_size);
}

int bq_queue_wake(struct bq_queue *q)
{
	/* A no-op message the kernel acknowledges: the ack is a datagram for the waiting read. */
	char buf[BQ_SEND_BUF_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_NOOP;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	for (;;) {
		if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int bq_queue_verdict(struct bq_queue *q, uint32_t packet_id, uint32_t verdict, bool set_mark, uint32_t mark)
{
	/* NF_REPEAT (with a mark) runs the packet through the hook again: how a denied packet
	 * reaches the REJECT rule its mark selects (helper/firewallRules.ts). */
	if (verdict != NF_ACCEPT && verdict != NF_DROP && verdict != NF_REPEAT)
		return -EINVAL;
	if (verdict == NF_REPEAT && !set_mark)
		return -EINVAL; /* unmarked, it would only be queued again */
	char buf[BQ_SEND_BUF_SIZE];
	struct nlmsghdr *nlh = nfq_nlmsg_put(buf, NFQNL_MSG_VERDICT, q->queue_num);
	nfq_nlmsg_verdict_put(nlh, (int)packet_id, (int)verdict);
	if (set_mark)
		nfq_nlmsg_verdict_put_mark(nlh, mark);
	for (;;) {
		if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

int bq_queue_reject(struct bq_queue *q, uint32_t packet_id, uint32_t mark)
{
	return bq_queue_verdict(q, packet_id, NF_REPEAT, true, mark);
}
