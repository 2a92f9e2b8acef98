/* NETLINK_CONNECTOR process events: subscribe once, then drain fork/exec/exit without blocking. */
#define _GNU_SOURCE
#include "proc_events.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>

/* A build can fork thousands of processes a second; the socket holds ~5,000 events (each
 * takes ~800 bytes of buffer) between two drains. Overflow is detected, not silent. */
#define BQ_PROC_RCVBUF_BYTES (4 << 20)
/* Datagrams per recvmmsg(): each is one event. */
#define BQ_PROC_BATCH 64
/* nlmsghdr + cn_msg + proc_event is under 100 bytes; room to spare. */
#define BQ_PROC_MSG_SIZE 256

struct bq_proc_events {
	struct mnl_socket *nl;
	char bufs[BQ_PROC_BATCH][BQ_PROC_MSG_SIZE];
	struct sockaddr_nl from[BQ_PROC_BATCH];
	struct iovec iov[BQ_PROC_BATCH];
	struct mmsghdr msgs[BQ_PROC_BATCH];
};

/* ---- message builder ---- */

/* PROC_CN_MCAST_LISTEN / _IGNORE to the kernel. Sent as the bare op: kernels before 6.6
 * refuse any other length (newer ones also take a struct proc_input with an event filter). */
static int send_mcast_op(struct mnl_socket *nl, enum proc_cn_mcast_op op)
{
	char buf[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(op))];
	memset(buf, 0, sizeof(buf));
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = NLMSG_DONE;
	nlh->nlmsg_pid = mnl_socket_get_portid(nl);
	struct cn_msg *msg = mnl_nlmsg_put_extra_header(nlh, sizeof(*msg) + sizeof(op));
	msg->id.idx = CN_IDX_PROC;
	msg->id.val = CN_VAL_PROC;
	msg->len = sizeof(op);
	memcpy(msg->data, &op, sizeof(op));
	for (;;) {
		if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) >= 0)
			return 0;
		if (errno != EINTR)
			return -errno; /* ECONNREFUSED: no connector in this network namespace */
	}
}

/* ---- the one parser ---- */

/* One datagram -> at most one event we keep; 0 when it is not one (threads, other events). */
static int parse_event(const char *buf, size_t len, struct bq_proc_event *out)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	if (!mnl_nlmsg_ok(nlh, (int)len) || mnl_nlmsg_get_payload_len(nlh) < sizeof(struct cn_msg))
		return 0;
	const struct cn_msg *msg = mnl_nlmsg_get_payload(nlh);
	if (msg->id.idx != CN_IDX_PROC || msg->id.val != CN_VAL_PROC ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*msg) + sizeof(struct proc_event) || msg->len < sizeof(struct proc_event))
		return 0;
	struct proc_event ev;
	memcpy(&ev, msg->data, sizeof(ev)); /* msg->data is only 4-byte aligned */
	switch (ev.what) {
	case PROC_EVENT_FORK:
		/* A new thread shares its process's fd table: only new processes matter. */
		if (ev.event_data.fork.child_pid != ev.event_data.fork.child_tgid)
			return 0;
		*out = (struct bq_proc_event){BQ_PROC_FORK, ev.event_data.fork.child_tgid, ev.event_data.fork.parent_tgid};
		return 1;
	case PROC_EVENT_EXEC:
		*out = (struct bq_proc_event){BQ_PROC_EXEC, ev.event_data.exec.process_tgid, 0};
		return 1;
	case PROC_EVENT_EXIT:
		if (ev.event_data.exit.process_pid != ev.event_data.exit.process_tgid)
			return 0;
		*out = (struct bq_proc_event){BQ_PROC_EXIT, ev.event_data.exit.process_tgid, 0};
		return 1;
	default:
		return 0;
	}
}

/* ---- socket ---- */

static int open_socket(struct mnl_socket **out)
{
	struct mnl_socket *nl = mnl_socket_open2(NETLINK_CONNECTOR, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (!nl)
		return -errno;
	int size = BQ_PROC_RCVBUF_BYTES;
	int fd = mnl_socket_get_fd(nl);
	/* FORCE passes net.core.rmem_max as root; without the privilege, take what we may. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
	int rc = mnl_socket_bind(nl, CN_IDX_PROC, MNL_SOCKET_AUTOPID) < 0 ? -errno : send_mcast_op(nl, PROC_CN_MCAST_LISTEN);
	if (rc < 0) {
		mnl_socket_close(nl);
		return rc;
	}
	*out = nl;
	return 0;
}

/* The socket opened from the initial network namespace, then back to ours. kthreadd (pid 2
 * of the initial pid namespace; the caller checks it is) always lives there, and unlike pid 1
 * it is never shielded from us by ptrace access checks. */
static int open_socket_in_initial_netns(struct mnl_socket **out)
{
	int ours = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (ours < 0)
		return -errno;
	int initial = open("/proc/2/ns/net", O_RDONLY | O_CLOEXEC);
	if (initial < 0) {
		int err = -errno;
		close(ours);
		return err;
	}
	int rc = setns(initial, CLONE_NEWNET) < 0 ? -errno : 0;
	if (rc == 0) {
		rc = open_socket(out);
		if (setns(ours, CLONE_NEWNET) < 0) {
			/* Staying here would point the firewall at the wrong host: give up loudly. */
			if (rc == 0) {
				mnl_socket_close(*out);
				*out = NULL;
			}
			rc = -ENOTRECOVERABLE;
		}
	}
	close(initial);
	close(ours);
	return rc;
}

int bq_proc_events_open(struct bq_proc_events **out)
{
	*out = NULL;
	struct bq_proc_events *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	int rc = open_socket(&e->nl);
	if (rc == -ECONNREFUSED)
		rc = open_socket_in_initial_netns(&e->nl);
	if (rc < 0) {
		free(e);
		return rc;
	}
	for (int i = 0; i < BQ_PROC_BATCH; i++) {
		e->iov[i] = (struct iovec){e->bufs[i], BQ_PROC_MSG_SIZE};
		e->msgs[i].msg_hdr = (struct msghdr){
			.msg_name = &e->from[i],
			.msg_namelen = sizeof(e->from[i]),
			.msg_iov = &e->iov[i],
			.msg_iovlen = 1,
		};
	}
	*out = e;
	return 0;
}

int bq_proc_events_fd(const struct bq_proc_events *e)
{
	return mnl_socket_get_fd(e->nl);
}

int bq_proc_events_read(struct bq_proc_events *e, struct bq_proc_event *out, int max)
{
	int count = 0;
	while (count < max) {
		unsigned int want = (unsigned int)(max - count < BQ_PROC_BATCH ? max - count : BQ_PROC_BATCH);
		for (unsigned int i = 0; i < want; i++)
			e->msgs[i].msg_hdr.msg_namelen = sizeof(e->from[i]);
		int n = recvmmsg(mnl_socket_get_fd(e->nl), e->msgs, want, MSG_DONTWAIT, NULL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			/* ENOBUFS: the kernel dropped events. Reported once (the next read goes on);
			 * the events of this call are dropped too, as the caller starts over anyway. */
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			/* Only the kernel (port 0) speaks for processes; anyone may unicast to our port. */
			if (e->from[i].nl_pid != 0)
				continue;
			count += parse_event(e->bufs[i], e->msgs[i].msg_len, &out[count]);
		}
		if ((unsigned int)n < want)
			break;
	}
	return count;
}

void bq_proc_events_close(struct bq_proc_events *e)
{
	if (!e)
		return;
	send_mcast_op(e->nl, PROC_CN_MCAST_IGNORE);
	mnl_socket_close(e->nl);
	free(e);
}
