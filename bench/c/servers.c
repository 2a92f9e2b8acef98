/* Servers for bench/: a TCP listener that accepts and closes, and a UDP echo, on one port.
 * Usage: servers PORT  (listens on :: for both families) */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(atoi(argv[1])), .sin6_addr = in6addr_any};
	int zero = 0, one = 1;
	int tcp = socket(AF_INET6, SOCK_STREAM, 0);
	int udp = socket(AF_INET6, SOCK_DGRAM, 0);
	setsockopt(tcp, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(udp, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(tcp, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(tcp, 65535) < 0 || bind(udp, (struct sockaddr *)&a, sizeof(a)) < 0) {
		perror("bind");
		return 1;
	}
	struct pollfd fds[2] = {{tcp, POLLIN, 0}, {udp, POLLIN, 0}};
	for (;;) {
		if (poll(fds, 2, -1) < 0)
			continue;
		if (fds[0].revents & POLLIN) {
			int c = accept(tcp, NULL, NULL);
			if (c >= 0)
				close(c);
		}
		if (fds[1].revents & POLLIN) {
			char buf[512];
			struct sockaddr_storage from;
			socklen_t len = sizeof(from);
			ssize_t n = recvfrom(udp, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
			if (n > 0)
				sendto(udp, buf, n, 0, (struct sockaddr *)&from, len);
		}
	}
}
