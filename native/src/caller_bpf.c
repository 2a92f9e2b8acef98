/* Loads the caller programs (native/bpf/caller.bpf.c) through their libbpf skeleton and
 * attaches them to the root cgroup v2. See caller_bpf.h. */
#include "caller_bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "caller.skel.h"

/* The layouts the programs write, as read here: any drift is a build error. */
_Static_assert(sizeof(struct bq_caller_record) == 40, "caller record layout");
_Static_assert(offsetof(struct bq_caller_record, start_ns) == 8, "caller record layout");
_Static_assert(offsetof(struct bq_caller_record, exe_dev) == 24, "caller record layout");
_Static_assert(offsetof(struct bq_caller_record, charged_uid) == 32, "caller record layout");
_Static_assert(sizeof(struct bq_flow_key) == 48, "flow key layout");
_Static_assert(offsetof(struct bq_flow_key, local_ip) == 12, "flow key layout");
_Static_assert(offsetof(struct bq_flow_key, remote_ip) == 28, "flow key layout");
_Static_assert(sizeof(struct bq_flow_slot) == 64, "flow slot layout");
_Static_assert(offsetof(struct bq_flow_slot, key) == 8, "flow slot layout");
_Static_assert(sizeof(struct bq_verdict_key) == 16, "verdict key layout");
_Static_assert(offsetof(struct bq_verdict_key, port) == 12, "verdict key layout");
_Static_assert(sizeof(struct bq_verdict_event) == BQ_VERDICT_EVENT_BYTES, "verdict event layout");
_Static_assert(offsetof(struct bq_verdict_event, exe_dev) == 16, "verdict event layout");
_Static_assert(offsetof(struct bq_verdict_event, family) == 28, "verdict event layout");
_Static_assert(offsetof(struct bq_verdict_event, dst_port) == 32, "verdict event layout");
_Static_assert(offsetof(struct bq_verdict_event, dst_addr) == 36, "verdict event layout");
_Static_assert(offsetof(struct bq_verdict_event, comm) == 52, "verdict event layout");
_Static_assert(sizeof(struct bq_udp_flow_key) == 32, "UDP flow key layout");

/* Where take_event() copies the ring's events during one bq_caller_verdict_take(). */
struct take_state {
	uint8_t *out;
	size_t capacity, count;
	uint64_t overflow;
};

struct bq_caller {
	struct take_state take;
	struct caller_bpf *skel;
	int callers_fd;
	/* The flow note filter's slots, mapped read-only; NULL without the filter. */
	const struct bq_flow_slot *flow_slots;
	uint32_t flow_seed;
	bool exe;
	bool verdicts; /* the programs decide in the kernel (bq_caller_verdict_*) */
	bool udp_allow; /* the UDP allow filter loaded (bq_caller_udp_allow_pin) */
	struct ring_buffer *events; /* their decisions, NULL without verdicts */
};

static int take_event(void *ctx, void *data, size_t size)
{
	struct take_state *t = ctx;
	if (size < sizeof(struct bq_verdict_event) || t->count >= t->capacity) {
		t->overflow++; /* consumed all the same: counted as a lost report */
		return 0;
	}
	memcpy(t->out + t->count * sizeof(struct bq_verdict_event), data, sizeof(struct bq_verdict_event));
	t->count++;
	return 0;
}

/* libbpf's messages during one load, for the caller to log: the tail, where the verifier says
 * what it refused. Loads run on the JS thread only (callerAttach), never two at once. */
static struct {
	char *buf;
	size_t size, len;
	bool frozen; /* the first failed try's log is kept whole: later tries add nothing */
} g_log;

static int capture_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (level == LIBBPF_DEBUG || !g_log.buf || g_log.frozen || g_log.size < 2)
		return 0;
	/* Formatted whole: the verifier's log is one message, and what it refused is at its end. */
	va_list again;
	va_copy(again, args);
	int n = vsnprintf(NULL, 0, fmt, args);
	char *line = n > 0 ? malloc((size_t)n + 1) : NULL;
	if (!line) {
		va_end(again);
		return 0;
	}
	vsnprintf(line, (size_t)n + 1, fmt, again);
	va_end(again);
	size_t len = (size_t)n;
	size_t room = g_log.size - 1;
	const char *from = line;
	if (len > room) { /* the line's own tail */
		from += len - room;
		len = room;
	}
	if (g_log.len + len > room) { /* drop the oldest text */
		size_t drop = g_log.len + len - room;
		memmove(g_log.buf, g_log.buf + drop, g_log.len - drop);
		g_log.len -= drop;
	}
	memcpy(g_log.buf + g_log.len, from, len);
	g_log.len += len;
	g_log.buf[g_log.len] = '\0';
	free(line);
	return 0;
}

/* One try at opening and loading the object: with or without the task reads and the flow note
 * filter. NULL and *err (-errno) when the kernel refused it. */
static struct caller_bpf *load(bool exe, bool flows, bool udp_allow, uint32_t pidns_inum, uint64_t record_netns, uint64_t verdict_netns,
			       uint32_t userns_inum, uint32_t flow_seed, int *err)
{
	struct caller_bpf *skel = caller_bpf__open();
	if (!skel) {
		*err = -errno;
		return NULL;
	}
	skel->rodata->record_exe = exe;
	skel->rodata->pidns_inum = pidns_inum;
	skel->rodata->record_netns = record_netns;
	/* Deciding needs the executable, and our network namespace's cookie to stay in it. */
	skel->rodata->kernel_verdicts = exe && verdict_netns != 0;
	skel->rodata->verdict_netns = verdict_netns;
	skel->rodata->verdict_userns = userns_inum;
	skel->rodata->flow_seed = flow_seed;
	bpf_program__set_autoload(skel->progs.bastion_flow_note, flows);
	bpf_program__set_autoload(skel->progs.bastion_udp_allow, udp_allow && skel->rodata->kernel_verdicts);
	*err = caller_bpf__load(skel);
	if (*err) {
		caller_bpf__destroy(skel);
		return NULL;
	}
	return skel;
}

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

/* A random seed for the flow slots without waiting: a helper started early at boot, before the
 * kernel's generator is ready, must not hang on it. GRND_INSECURE (5.6+) never blocks; its
 * bytes are good enough to hide a hash's seed. */
static bool random_seed(uint32_t *seed)
{
	if (getrandom(seed, sizeof(*seed), GRND_INSECURE) == (ssize_t)sizeof(*seed))
		return true;
	return getrandom(seed, sizeof(*seed), GRND_NONBLOCK) == (ssize_t)sizeof(*seed);
}

static size_t flow_slots_bytes(void)
{
	return (size_t)BQ_FLOW_SLOTS * sizeof(struct bq_flow_slot);
}

/* Our network namespace's cookie, which the records and verdicts are limited to; 0 without
 * SO_NETNS_COOKIE (before 5.15): then verdicts are not loaded and every namespace is recorded. */
static uint64_t netns_cookie(void)
{
	uint64_t cookie = 0;
	int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	socklen_t len = sizeof(cookie);
	if (probe < 0 || getsockopt(probe, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) != 0)
		cookie = 0;
	if (probe >= 0)
		close(probe);
	return cookie;
}

/* The initial pid namespace's inode (the kernel's PROC_PID_INIT_INO). */
#define PID_NS_INITIAL_INUM 0xEFFFFFFCu

/* 0 in the initial pid namespace, else ours: the programs then number callers as our /proc does. */
static int own_pidns(uint32_t *inum)
{
	struct stat st;
	if (stat("/proc/self/ns/pid", &st) != 0)
		return -errno;
	*inum = st.st_ino == PID_NS_INITIAL_INUM ? 0 : (uint32_t)st.st_ino;
	return 0;
}

static int attach(struct bpf_program *prog, int cgroup_fd, struct bpf_link **link)
{
	*link = bpf_program__attach_cgroup(prog, cgroup_fd);
	return *link ? 0 : -errno;
}

int bq_caller_open(struct bq_caller **out, const char *cgroup_path, bool verdicts, const char **stage, char *log, size_t log_size)
{
	*out = NULL;
	if (log_size > 0)
		log[0] = '\0';
	*stage = "memory";
	struct bq_caller *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->callers_fd = -1;
	*stage = "open cgroup";
	int err = 0;
	int cgroup_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup_fd < 0) {
		err = -errno;
		goto fail;
	}

	*stage = "pid namespace";
	uint32_t pidns_inum = 0;
	if ((err = own_pidns(&pidns_inum)) < 0)
		goto fail;
	*stage = "load programs";
	uint64_t netns = netns_cookie();
	/* Without a seed from the kernel, no flows: another user must not know which slot a
	 * SYN gets (aiming at it would only send it to sock_diag, but still). */
	bool can_flow = random_seed(&c->flow_seed);
	/* Verdicts need our network namespace's cookie (5.15) and our user namespace's inode. */
	struct stat userns;
	uint32_t userns_inum = stat("/proc/self/ns/user", &userns) == 0 ? (uint32_t)userns.st_ino : 0;
	uint64_t verdict_netns = verdicts && netns != 0 && userns_inum != 0 ? netns : 0;
	/* Best first: the executable needs CAP_PERFMON and BTF, the flow note filter a random seed;
	 * the executable matters more. Verdicts need the executable; a kernel that refuses their
	 * helpers (socket options, ring buffer) still gets the executable without them; one that
	 * refuses the UDP allow filter (a socket filter reading the task) still gets the rest. */
	const struct {
		bool exe, flows, verdicts, udp;
	} tries[] = {{true, true, true, true},   {true, true, true, false},   {true, false, true, true},
		     {true, false, true, false},  {true, true, false, false},  {true, false, false, false},
		     {false, true, false, false}, {false, false, false, false}};
	g_log.buf = log;
	g_log.size = log_size;
	g_log.len = 0;
	g_log.frozen = false;
	libbpf_print_fn_t previous = libbpf_set_print(capture_print);
	bool flows = false;
	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]) && !c->skel; i++) {
		if (tries[i].flows && !can_flow)
			continue;
		if (tries[i].verdicts && verdict_netns == 0)
			continue;
		/* In a pid namespace of our own, only the task reads number a caller as we see it. */
		if (!tries[i].exe && pidns_inum != 0)
			continue;
		/* The first failure's log says what is missing (CAP_PERFMON, BTF): later tries add nothing. */
		if (g_log.len > 0)
			g_log.frozen = true;
		c->skel = load(tries[i].exe, tries[i].flows, tries[i].udp, pidns_inum, netns,
			       tries[i].verdicts ? verdict_netns : 0, userns_inum, c->flow_seed, &err);
		c->exe = tries[i].exe;
		c->udp_allow = tries[i].udp && tries[i].verdicts;
		flows = tries[i].flows;
	}
	libbpf_set_print(previous);
	g_log.buf = NULL;
	if (!c->skel)
		goto fail;

	/* The release program first: no record is made that nothing would delete. */
	*stage = "attach programs";
	struct caller_bpf *s = c->skel;
	if ((err = attach(s->progs.bastion_release, cgroup_fd, &s->links.bastion_release)) < 0 ||
	    (err = attach(s->progs.bastion_connect4, cgroup_fd, &s->links.bastion_connect4)) < 0 ||
	    (err = attach(s->progs.bastion_connect6, cgroup_fd, &s->links.bastion_connect6)) < 0 ||
	    (err = attach(s->progs.bastion_sendmsg4, cgroup_fd, &s->links.bastion_sendmsg4)) < 0 ||
	    (err = attach(s->progs.bastion_sendmsg6, cgroup_fd, &s->links.bastion_sendmsg6)) < 0)
		goto fail;
	c->callers_fd = bpf_map__fd(s->maps.callers);
	/* The slots are mapped here, and the filter that fills them can be pinned only if they are
	 * (bq_caller_flow_note_pin): a SYN is never noted where the helper cannot read it. */
	if (flows) {
		void *slots = mmap(NULL, flow_slots_bytes(), PROT_READ, MAP_SHARED, bpf_map__fd(s->maps.flow_slots), 0);
		if (slots != MAP_FAILED)
			c->flow_slots = slots;
	}
	if (s->rodata->kernel_verdicts) {
		*stage = "verdict reports";
		c->events = ring_buffer__new(bpf_map__fd(s->maps.verdict_events), take_event, &c->take, NULL);
		if (!c->events) {
			err = -errno;
			goto fail;
		}
		c->verdicts = true;
	}
	close(cgroup_fd);
	*stage = NULL;
	*out = c;
	return 0;
fail:
	if (cgroup_fd >= 0)
		close(cgroup_fd);
	bq_caller_close(c);
	return err;
}

void bq_caller_close(struct bq_caller *c)
{
	if (!c)
		return;
	/* Destroying the links detaches the programs; then the maps go with the object (a mapping
	 * would keep its map alive). */
	if (c->flow_slots)
		munmap((void *)c->flow_slots, flow_slots_bytes());
	caller_bpf__destroy(c->skel);
	ring_buffer__free(c->events);
	free(c);
}

int bq_caller_lookup(const struct bq_caller *c, uint64_t cookie, struct bq_caller_record *record)
{
	return bpf_map_lookup_elem(c->callers_fd, &cookie, record) < 0 ? -errno : 0;
}

bool bq_caller_has_exe(const struct bq_caller *c)
{
	return c->exe;
}

bool bq_caller_has_flows(const struct bq_caller *c)
{
	return c->flow_slots != NULL;
}

int bq_caller_flow_note_pin(const struct bq_caller *c, const char *path)
{
	if (!c->flow_slots)
		return -ENOTSUP;
	return bpf_obj_pin(bpf_program__fd(c->skel->progs.bastion_flow_note), path) < 0 ? -errno : 0;
}

int bq_caller_flow_lookup(const struct bq_caller *c, uint8_t family, const uint8_t *src, uint16_t src_port,
			  const uint8_t *dst, uint16_t dst_port, uint32_t syn_seq, uint32_t *tgid)
{
	if (!c->flow_slots)
		return -ENOTSUP;
	struct bq_flow_key key;
	memset(&key, 0, sizeof(key));
	key.family = family;
	key.local_port = src_port;
	key.remote_port = dst_port;
	key.syn_seq = syn_seq;
	size_t addr_len = family == AF_INET ? 4 : 16;
	memcpy(key.local_ip, src, addr_len);
	memcpy(key.remote_ip, dst, addr_len);
	/* A sequence count read, as the kernel's read_seqcount_begin()/retry(): the copy counts only
	 * if the count was even and unchanged around it (no write began or ended meanwhile). A slot
	 * being written is a miss, as is one another connection holds. */
	const struct bq_flow_slot *slot = &c->flow_slots[bq_flow_slot_of(&key, c->flow_seed)];
	uint32_t before = __atomic_load_n(&slot->seq, __ATOMIC_ACQUIRE);
	struct bq_flow_key seen;
	memcpy(&seen, (const void *)&slot->key, sizeof(seen));
	uint32_t caller = __atomic_load_n(&slot->tgid, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint32_t after = __atomic_load_n(&slot->seq, __ATOMIC_RELAXED);
	if ((before & 1) || before != after || memcmp(&seen, &key, sizeof(key)) != 0)
		return -ENOENT;
	*tgid = caller;
	return 0;
}

bool bq_caller_has_verdicts(const struct bq_caller *c)
{
	return c->verdicts;
}

int bq_caller_udp_allow_pin(const struct bq_caller *c, const char *path)
{
	if (!c->verdicts || !c->udp_allow)
		return -ENOTSUP;
	return bpf_obj_pin(bpf_program__fd(c->skel->progs.bastion_udp_allow), path) < 0 ? -errno : 0;
}

int bq_caller_verdict_alive(const struct bq_caller *c)
{
	if (!c->verdicts)
		return -ENOTSUP;
	struct timespec now;
	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		return -errno;
	uint32_t zero = 0;
	uint64_t ns = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	return bpf_map_update_elem(bpf_map__fd(c->skel->maps.verdict_alive), &zero, &ns, BPF_ANY) < 0 ? -errno : 0;
}

int bq_caller_verdict_set(const struct bq_caller *c, const struct bq_verdict_key *key, uint32_t verdict)
{
	if (!c->verdicts)
		return -ENOTSUP;
	struct bq_verdict_value value = {.verdict = verdict};
	return bpf_map_update_elem(bpf_map__fd(c->skel->maps.verdicts), key, &value, BPF_ANY) < 0 ? -errno : 0;
}

int bq_caller_verdict_delete(const struct bq_caller *c, const struct bq_verdict_key *key)
{
	if (!c->verdicts)
		return -ENOTSUP;
	int rc = bpf_map_delete_elem(bpf_map__fd(c->skel->maps.verdicts), key);
	return rc < 0 && errno != ENOENT ? -errno : 0;
}

int bq_caller_verdict_clear(const struct bq_caller *c)
{
	if (!c->verdicts)
		return 0;
	int fd = bpf_map__fd(c->skel->maps.verdicts);
	struct bq_verdict_key key, next;
	/* Deleting the first key each time: iterating while deleting would skip entries. */
	while (bpf_map_get_next_key(fd, NULL, &next) == 0) {
		key = next;
		if (bpf_map_delete_elem(fd, &key) < 0 && errno != ENOENT)
			return -errno;
	}
	return errno == ENOENT ? 0 : -errno;
}

int bq_caller_verdict_take(struct bq_caller *c, uint8_t *out, size_t capacity, uint64_t *lost)
{
	*lost = 0;
	if (!c->verdicts)
		return 0;
	c->take.out = out;
	c->take.capacity = capacity;
	c->take.count = 0;
	c->take.overflow = 0;
	int rc = ring_buffer__consume(c->events);
	c->take.out = NULL;
	uint32_t slot = BQ_VERDICT_STAT_LOST;
	uint64_t ring_lost = 0;
	if (bpf_map_lookup_elem(bpf_map__fd(c->skel->maps.verdict_stats), &slot, &ring_lost) == 0 && ring_lost > 0) {
		uint64_t zero = 0;
		bpf_map_update_elem(bpf_map__fd(c->skel->maps.verdict_stats), &slot, &zero, BPF_ANY);
		/* Reports lost between the read and the reset are lost from the count too: rare, and a count only. */
	}
	*lost = ring_lost + c->take.overflow;
	return rc < 0 ? rc : (int)c->take.count;
}
