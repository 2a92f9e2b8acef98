/* NETLINK_SOCK_DIAG exact lookups: one request, one reply, matched by sequence number. */
#include "sock_diag.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>

/* A reply is one inet_diag_msg plus a few attributes we do not ask for. */
#define BQ_DIAG_BUF_SIZE 8192
/* The kernel answers within microseconds; a stuck reply must not stall the packet path. */
#define BQ_DIAG_TIMEOUT_US 100000

struct bq_sock_diag {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	char buf[BQ_DIAG_BUF_SIZE];
};

int bq_sock_diag_open(struct bq_sock_diag **out)
{
	*out = NULL;
	struct bq_sock_diag *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!d->nl) {
		int err = -errno;
		free(d);
		return err;
	}
	struct timeval tv = {0, BQ_DIAG_TIMEOUT_US};
	if (setsockopt(mnl_socket_get_fd(d->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    mnl_socket_bind(d->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		int err = -errno;
		mnl_socket_close(d->nl);
		free(d);
		return err;
	}
	d->portid = mnl_socket_get_portid(d->nl);
	*out = d;
	return 0;
}

void bq_sock_diag_close(struct bq_sock_diag *d)
{
	if (!d)
		return;
	mnl_socket_close(d->nl);
	free(d);
}

struct lookup_result {
	int found;
	struct bq_socket_owner *owner;
};

static int diag_cb(const struct nlmsghdr *nlh, void *data)
{
	struct lookup_result *res = data;
	if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY)
		return MNL_CB_OK;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(struct inet_diag_msg))
		return MNL_CB_OK;
	const struct inet_diag_msg *msg = mnl_nlmsg_get_payload(nlh);
	res->owner->inode = msg->idiag_inode;
	res->owner->uid = msg->idiag_uid;
	res->owner->state = msg->idiag_state;
	res->owner->cookie = (uint64_t)msg->id.idiag_cookie[1] << 32 | msg->id.idiag_cookie[0];
	res->found = 1;
	return MNL_CB_STOP;
}

/* One exact request for a socket by its ends (type SOCK_DIAG_BY_FAMILY or SOCK_DESTROY), sent;
 * 0 or a negative errno. */
static int send_exact(struct bq_sock_diag *d, char *req_buf, uint16_t type, uint16_t flags, uint8_t family,
		      uint8_t protocol, const uint8_t *src, uint16_t src_port, const uint8_t *dst, uint16_t dst_port)
{
	if ((family != AF_INET && family != AF_INET6) || (protocol != IPPROTO_TCP && protocol != IPPROTO_UDP))
		return -EINVAL;
	size_t addr_len = family == AF_INET ? 4 : 16;

	struct nlmsghdr *nlh = mnl_nlmsg_put_header(req_buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags; /* no NLM_F_DUMP: one socket */
	nlh->nlmsg_seq = ++d->seq;

	struct inet_diag_req_v2 *req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = family;
	req->sdiag_protocol = protocol;
	req->idiag_states = ~0u;
	req->id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	/* Kernel quirk: tcp's exact lookup reads id.src as the local end, but udp_dump_one()
	 * passes id.src/id.dst to __udp*_lib_lookup() as (remote, local). */
	const uint8_t *id_src = protocol == IPPROTO_UDP ? dst : src;
	const uint8_t *id_dst = protocol == IPPROTO_UDP ? src : dst;
	uint16_t id_sport = protocol == IPPROTO_UDP ? dst_port : src_port;
	uint16_t id_dport = protocol == IPPROTO_UDP ? src_port : dst_port;
	memcpy(req->id.idiag_src, id_src, addr_len);
	memcpy(req->id.idiag_dst, id_dst, addr_len);
	req->id.idiag_sport = htons(id_sport);
	req->id.idiag_dport = htons(id_dport);

	for (;;) {
		if (mnl_socket_sendto(d->nl, nlh, nlh->nlmsg_len) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
}

/* Reads replies to the last request until cb has what it wants (1) or the kernel says it is
 * done; 0, or a negative errno (ENOENT: no such socket). */
static int receive_reply(struct bq_sock_diag *d, mnl_cb_t cb, void *data, const int *found)
{
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(d->nl, d->buf, sizeof(d->buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* EAGAIN here is our receive timeout. */
			return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
		}
		/* A late reply to an earlier, timed-out request has an older sequence number: skip it. */
		const struct nlmsghdr *reply = (const struct nlmsghdr *)d->buf;
		if (n >= (ssize_t)sizeof(*reply) && reply->nlmsg_seq != d->seq)
			continue;
		int ret = mnl_cb_run(d->buf, (size_t)n, d->seq, d->portid, cb, data);
		if (ret == MNL_CB_ERROR)
			return -errno;
		if (found == NULL ? ret == MNL_CB_STOP : *found)
			return 0;
		if (ret == MNL_CB_STOP)
			return -ENOENT;
	}
}

int bq_sock_diag_lookup(struct bq_sock_diag *d, uint8_t family, uint8_t protocol,
			const uint8_t *src, uint16_t src_port, const uint8_t *dst, uint16_t dst_port,
			struct bq_socket_owner *owner)
{
	char req_buf[MNL_SOCKET_BUFFER_SIZE];
	int err = send_exact(d, req_buf, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, family, protocol, src, src_port, dst, dst_port);
	if (err < 0)
		return err;
	struct lookup_result res = {0, owner};
	return receive_reply(d, diag_cb, &res, &res.found);
}

int bq_sock_diag_destroy(struct bq_sock_diag *d, uint8_t family, uint8_t protocol,
			 const uint8_t *src, uint16_t src_port, const uint8_t *dst, uint16_t dst_port)
{
	char req_buf[MNL_SOCKET_BUFFER_SIZE];
	/* NLM_F_ACK: success is otherwise silent, and a silent failure would look like one. */
	int err = send_exact(d, req_buf, SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, family, protocol, src, src_port, dst, dst_port);
	if (err < 0)
		return err;
	return receive_reply(d, NULL, NULL, NULL);
}
