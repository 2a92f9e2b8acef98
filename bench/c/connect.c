/* Load client for bench/: new connections to a server, each timed from socket() to
 * established (TCP) or to the reply (UDP), or (tcp-eperm) to a connect() that fails with EPERM,
 * as a firewall's in-kernel deny makes it (anything else counts as a failure). Prints one
 * latency in microseconds per line.
 * Usage: connect tcp|udp|tcp-eperm HOST PORT COUNT [PARALLEL]
 * A C client keeps the measuring side light: on 2 cores a Node client would compete with
 * the firewall it measures. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

struct job {
	int udp;
	int eperm; /* success is a connect() failing with EPERM */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	long count;
	double *lat;
	long failures;
};

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void *worker(void *arg)
{
	struct job *j = arg;
	for (long i = 0; i < j->count; i++) {
		double start = now_us();
		int fd = socket(j->addr.ss_family, j->udp ? SOCK_DGRAM : SOCK_STREAM, 0);
		if (fd < 0) {
			j->failures++;
			j->lat[i] = -1;
			continue;
		}
		struct timeval tv = {2, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		int ok;
		if (j->udp) {
			char buf[16] = "ping";
			ok = sendto(fd, buf, 4, 0, (struct sockaddr *)&j->addr, j->addr_len) == 4 && recv(fd, buf, sizeof(buf), 0) > 0;
		} else {
			/* RST on close: no TIME_WAIT pile-up on the client over a long soak. */
			struct linger lg = {1, 0};
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			int rc = connect(fd, (struct sockaddr *)&j->addr, j->addr_len);
			ok = j->eperm ? rc < 0 && errno == EPERM : rc == 0;
		}
		j->lat[i] = ok ? now_us() - start : -1;
		if (!ok)
			j->failures++;
		close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 5) {
		fprintf(stderr, "usage: %s tcp|udp|tcp-eperm HOST PORT COUNT [PARALLEL]\n", argv[0]);
		return 2;
	}
	int udp = strcmp(argv[1], "udp") == 0;
	int eperm = strcmp(argv[1], "tcp-eperm") == 0;
	long count = atol(argv[4]);
	int parallel = argc > 5 ? atoi(argv[5]) : 1;
	if (count <= 0 || parallel <= 0 || parallel > 256)
		return 2;

	struct sockaddr_storage addr = {0};
	socklen_t addr_len;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&addr;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&addr;
	if (inet_pton(AF_INET, argv[2], &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(atoi(argv[3]));
		addr_len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, argv[2], &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(atoi(argv[3]));
		addr_len = sizeof(*a6);
	} else {
		fprintf(stderr, "bad address %s\n", argv[2]);
		return 2;
	}

	struct job *jobs = calloc(parallel, sizeof(*jobs));
	pthread_t *threads = calloc(parallel, sizeof(*threads));
	double t0 = now_us();
	for (int t = 0; t < parallel; t++) {
		jobs[t].udp = udp;
		jobs[t].eperm = eperm;
		jobs[t].addr = addr;
		jobs[t].addr_len = addr_len;
		jobs[t].count = count / parallel + (t < count % parallel);
		jobs[t].lat = calloc(jobs[t].count ? jobs[t].count : 1, sizeof(double));
		pthread_create(&threads[t], NULL, worker, &jobs[t]);
	}
	long failures = 0;
	for (int t = 0; t < parallel; t++) {
		pthread_join(threads[t], NULL);
		failures += jobs[t].failures;
	}
	double seconds = (now_us() - t0) / 1e6;
	for (int t = 0; t < parallel; t++)
		for (long i = 0; i < jobs[t].count; i++)
			if (jobs[t].lat[i] >= 0)
				printf("%.1f\n", jobs[t].lat[i]);
	fprintf(stderr, "{\"seconds\":%.6f,\"failures\":%ld}\n", seconds, failures);
	return 0;
}
