/* The limit of any queue reader: reads NFQUEUE with libnetfilter_queue and accepts every
 * packet at once. Usage: nfq_accept QUEUE_NUM */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *nfa, void *data)
{
	(void)msg;
	(void)data;
	struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
	return ph ? nfq_set_verdict(qh, ntohl(ph->packet_id), NF_ACCEPT, 0, NULL) : 0;
}

int main(int argc, char **argv)
{
	struct nfq_handle *h = nfq_open();
	if (!h || argc < 2)
		return 1;
	struct nfq_q_handle *qh = nfq_create_queue(h, atoi(argv[1]), on_packet, NULL);
	if (!qh || nfq_set_mode(qh, NFQNL_COPY_PACKET, 128) < 0) {
		perror("nfq_create_queue");
		return 1;
	}
	int fd = nfq_fd(h);
	int rcvbuf = 8 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf));
	printf("READY\n");
	fflush(stdout);
	char buf[65536];
	for (;;) {
		int n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == ENOBUFS || errno == EINTR)
				continue;
			perror("recv");
			return 1;
		}
		nfq_handle_packet(h, buf, n);
	}
}
