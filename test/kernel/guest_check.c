/* The in-kernel path on another kernel: this program is /init of a small initramfs that
 * test/kernel/debianKernel.test.ts boots under qemu with Debian 12's own kernel. It loads the
 * caller programs through the addon's own loader (native/src/caller_bpf.c, linked in) as the
 * helper does, then checks what they decide for real sockets (its own, a child's, a copy's of
 * its file, and its own in a user namespace of its own), and prints one line per check:
 *   CHECK <name> ok|FAIL <detail>
 * and a last line DONE, before it powers the machine off. The test reads the serial console. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sched.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "caller_bpf.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static int failures;

static void check(const char *name, int ok, const char *fmt, ...)
{
	char detail[512] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (!ok)
		failures++;
	printf("CHECK %s %s %s\n", name, ok ? "ok" : "FAIL", detail);
	fflush(stdout);
}

static void mount_or_say(const char *source, const char *target, const char *type)
{
	mkdir(target, 0755);
	if (mount(source, target, type, 0, NULL) != 0)
		printf("mount %s: %s\n", target, strerror(errno));
}

static void loopback_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct ifreq ifr = {0};
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
}

static struct sockaddr_in address(const char *ip, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	inet_pton(AF_INET, ip, &a.sin_addr);
	return a;
}

/* connect()'s errno (0 on success); the socket is left open in *fd. */
static int try_connect(int type, const char *ip, int port, int *fd)
{
	*fd = socket(AF_INET, type, 0);
	struct sockaddr_in a = address(ip, port);
	return connect(*fd, (struct sockaddr *)&a, sizeof(a)) == 0 ? 0 : errno;
}

/* What a connecting process sees, as bits: 1 a denied connect() failed with EPERM, 2 an
 * allowed one was marked, 4 it could not connect at all. 3 is the rules' own program. */
static int probe(void)
{
	int result = 0, fd;
	if (try_connect(SOCK_STREAM, "192.0.2.1", 9, &fd) == EPERM)
		result |= 1;
	close(fd);
	if (try_connect(SOCK_STREAM, "127.0.0.1", 8080, &fd) == 0) {
		int mark = 0;
		socklen_t len = sizeof(mark);
		getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len);
		if (mark != 0)
			result |= 2;
	} else {
		result |= 4;
	}
	close(fd);
	return result;
}

/* probe() in a child: exec'd from path (another file: a copy), or this program in a user
 * namespace of its own, or this very program. Its exit status, or -1. */
static int probe_in_child(const char *path, int new_userns)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (new_userns && unshare(CLONE_NEWUSER) != 0)
			_exit(8);
		if (path) {
			execl(path, path, "--probe", (char *)NULL);
			_exit(9);
		}
		_exit(probe());
	}
	int status = 0;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A copy of this program's file at path: the same bytes, another inode. */
static int copy_self(const char *path)
{
	int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	char buf[65536];
	ssize_t n;
	while (in >= 0 && out >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n)
			break;
	close(in);
	return close(out);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--probe") == 0)
		return probe();
	if (getpid() == 1) {
		mount_or_say("proc", "/proc", "proc");
		mount_or_say("sysfs", "/sys", "sysfs");
		mount_or_say("cgroup2", "/sys/fs/cgroup", "cgroup2");
		mount_or_say("bpf", "/sys/fs/bpf", "bpf");
		loopback_up();
	}
	struct utsname u;
	uname(&u);
	printf("KERNEL %s\n", u.release);

	struct bq_caller *c = NULL;
	const char *stage = "";
	static char log[65536];
	/* BASTION_CGROUP2: where cgroup v2 is mounted when this runs as a plain program (tests on the host). */
	const char *cgroup2 = getenv("BASTION_CGROUP2") ? getenv("BASTION_CGROUP2") : "/sys/fs/cgroup";
	int rc = bq_caller_open(&c, cgroup2, true, &stage, log, sizeof(log));
	check("load", rc == 0, "rc=%d stage=%s", rc, stage ? stage : "");
	if (rc != 0) {
		printf("%s\n", log);
		goto done;
	}
	check("executable-identity", bq_caller_has_exe(c), "%s", bq_caller_has_exe(c) ? "" : log);
	check("kernel-verdicts", bq_caller_has_verdicts(c), "%s", bq_caller_has_verdicts(c) ? "" : log);
	/* The flow note filter (its slots mapped), pinned where our chain's rule before the queue reads
	 * it. What it notes is checked on the host (test/native/callerBpf.test.ts), with iptables; here
	 * the verifier of Debian's kernel has accepted it. */
	const char *note_pin = "/sys/fs/bpf/bastion-check-flow-note";
	rc = bq_caller_flow_note_pin(c, note_pin);
	check("flows", bq_caller_has_flows(c) && rc == 0, "rc=%d", rc);
	unlink(note_pin);
	/* The UDP allow filter, pinned where our chain's `-m bpf --object-pinned` rule reads it. */
	const char *pin = "/sys/fs/bpf/bastion-check-udp-allow";
	rc = bq_caller_udp_allow_pin(c, pin);
	check("udp-allow-filter", rc == 0, "rc=%d", rc);
	if (rc != 0) /* the loader kept the log of the first load that failed: here, the one with the filter */
		printf("%s\n", strlen(log) > 3000 ? log + strlen(log) - 3000 : log);
	unlink(pin);
	if (!bq_caller_has_verdicts(c))
		goto done;

	/* Rules on this very program, as the helper writes them from the service's path rules. */
	struct stat self;
	stat("/proc/self/exe", &self);
	struct bq_verdict_key key = {.exe_ino = self.st_ino, .exe_dev = (major(self.st_dev) << 20) | minor(self.st_dev)};
	key.protocol = IPPROTO_TCP;
	key.port = 9;
	bq_caller_verdict_set(c, &key, BQ_VERDICT_DENY);
	key.protocol = IPPROTO_UDP;
	bq_caller_verdict_set(c, &key, BQ_VERDICT_DENY);
	key.protocol = IPPROTO_TCP;
	key.port = 8080;
	bq_caller_verdict_set(c, &key, BQ_VERDICT_ALLOW);

	/* Denied: connect() fails with EPERM at once (without the program: ENETUNREACH, no route). */
	int fd;
	int err = try_connect(SOCK_STREAM, "192.0.2.1", 9, &fd);
	check("tcp-deny-eperm", err == EPERM, "errno=%d (%s)", err, strerror(err));
	close(fd);
	/* A UDP connect() never fails; its datagram to the denied port does. */
	err = try_connect(SOCK_DGRAM, "192.0.2.1", 9, &fd);
	check("udp-connect-passes", err == 0 || err == ENETUNREACH, "errno=%d (%s)", err, strerror(err));
	close(fd);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in to = address("192.0.2.1", 9);
	err = sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) < 0 ? errno : 0;
	check("udp-deny-eperm", err == EPERM, "errno=%d (%s)", err, strerror(err));
	close(fd);
	/* Another port, no rule: left to the queue (in the guest: no route, ENETUNREACH). */
	err = try_connect(SOCK_STREAM, "192.0.2.1", 10, &fd);
	check("tcp-no-rule-undecided", err != EPERM, "errno=%d (%s)", err, strerror(err));
	close(fd);

	/* Allowed: the socket carries our mark, and its caller is recorded with this executable. */
	int listener = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in here = address("127.0.0.1", 8080);
	int one = 1;
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&here, sizeof(here)) != 0 || listen(listener, 64) != 0)
		printf("listen: %s\n", strerror(errno));
	err = try_connect(SOCK_STREAM, "127.0.0.1", 8080, &fd);
	check("tcp-allow-connects", err == 0, "errno=%d (%s)", err, strerror(err));
	int mark = 0;
	socklen_t len = sizeof(mark);
	getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len);
	check("tcp-allow-marked", (unsigned)mark == BQ_KERNEL_ACCEPT_MARK, "mark=0x%x", mark);
	uint64_t cookie = 0;
	len = sizeof(cookie);
	getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len);
	struct bq_caller_record record = {0};
	rc = bq_caller_lookup(c, cookie, &record);
	check("caller-recorded", rc == 0 && record.tgid == (uint32_t)getpid() && record.exe_ino == self.st_ino,
	      "rc=%d tgid=%u exe_ino=%llu", rc, record.tgid, (unsigned long long)record.exe_ino);
	close(fd);

	/* The identity is the file: another file with the same bytes, or this program where it
	 * could mount its own libraries (a user namespace of its own), gets neither verdict. */
	int status = probe_in_child(NULL, 0);
	check("child-decided", status == 3, "probe=%d (3: denied with EPERM and allowed with the mark)", status);
	status = copy_self("/copy") == 0 ? probe_in_child("/copy", 0) : -2;
	check("copy-undecided", status == 0, "probe=%d (0: neither)", status);
	status = probe_in_child(NULL, 1);
	check("other-userns-undecided", status == 0, "probe=%d (0: neither)", status);

	/* Nothing decided silently: the two denials and the allow reached the ring, and the
	 * decided child's two; the undecided children's connections none. */
	static _Alignas(8) uint8_t events[64 * BQ_VERDICT_EVENT_BYTES];
	uint64_t lost = 0;
	int n = bq_caller_verdict_take(c, events, 64, &lost);
	int allows = 0, denies = 0, others = 0;
	for (int i = 0; i < n; i++) {
		const struct bq_verdict_event *e = (const void *)(events + i * BQ_VERDICT_EVENT_BYTES);
		if (e->tgid != (uint32_t)getpid())
			others++;
		else if (e->verdict == BQ_VERDICT_ALLOW)
			allows++;
		else if (e->verdict == BQ_VERDICT_DENY)
			denies++;
	}
	check("decisions-reported", allows == 1 && denies == 2 && others == 2, "events=%d allows=%d denies=%d children's=%d lost=%llu", n,
	      allows, denies, others, (unsigned long long)lost);
	bq_caller_close(c);
done:
	printf("DONE failures=%d\n", failures);
	fflush(stdout);
	/* Only as a machine's first process: anywhere else this is a plain program that exits. */
	if (getpid() == 1) {
		sync();
		reboot(RB_POWER_OFF);
	}
	return failures == 0 ? 0 : 1;
}
