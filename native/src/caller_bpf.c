/* Loads and attaches the caller-recording programs with the bpf() syscall alone: they are a
 * few dozen instructions, not worth a clang/libbpf build dependency. See caller_bpf.h. */
#include "caller_bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/bpf.h>

/* The few instruction builders we need (the kernel keeps them in its own filter.h, not uapi). */
#define INSN(c, d, s, o, i) ((struct bpf_insn){.code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i)})
#define MOV64_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV64_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD64_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define RSH64_IMM(d, i) INSN(BPF_ALU64 | BPF_RSH | BPF_K, d, 0, 0, i)
#define STX_MEM(sz, d, s, o) INSN(BPF_STX | BPF_MEM | (sz), d, s, o, 0)
#define CALL(fn) INSN(BPF_JMP | BPF_CALL, 0, 0, 0, fn)
#define EXIT() INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0)
#define LDX_MEM(sz, d, s, o) INSN(BPF_LDX | BPF_MEM | (sz), d, s, o, 0)
#define ST_MEM(sz, d, o, i) INSN(BPF_ST | BPF_MEM | (sz), d, 0, o, i)
#define JNE_IMM(d, i, o) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, o, i)
#define JEQ_IMM(d, i, o) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, o, i)
#define JA(o) INSN(BPF_JMP | BPF_JA, 0, 0, o, 0)
/* A map fd as a 64-bit immediate: two instructions. */
#define LD_MAP_FD(d, fd) INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), INSN(0, 0, 0, 0, 0)

#define N_HOOKS 4
static const enum bpf_attach_type hooks[N_HOOKS] = {
	BPF_CGROUP_INET4_CONNECT,
	BPF_CGROUP_INET6_CONNECT,
	BPF_CGROUP_UDP4_SENDMSG,
	BPF_CGROUP_UDP6_SENDMSG,
};

struct bq_caller {
	int map_fd;
	int n_links;
	int link_fds[N_HOOKS];
	/* The TCP connections' map and its program's link; -1 when the kernel refused them. */
	int flows_fd;
	int flows_link_fd;
	uint64_t netns_cookie; /* this process's network namespace, as the program sees it */
};

/* What the sock_ops program stores per TCP connection (see bq_caller_flow_lookup). */
struct flow_value {
	uint64_t cookie;
	uint32_t tgid;
	uint32_t pad;
};
_Static_assert(sizeof(struct bq_flow_key) == 56, "the program writes the key at fixed offsets");

static long sys_bpf(enum bpf_cmd cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int create_map(const char *name, uint32_t key_size, uint32_t value_size, uint32_t entries)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_LRU_HASH;
	attr.key_size = key_size;
	attr.value_size = value_size;
	attr.max_entries = entries;
	strncpy(attr.map_name, name, sizeof(attr.map_name) - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &attr);
	return fd < 0 ? -errno : (int)fd;
}

static int load(enum bpf_prog_type type, enum bpf_attach_type hook, const struct bpf_insn *prog, size_t insn_cnt)
{
	static const char license[] = "GPL";
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = type;
	attr.expected_attach_type = hook;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = (uint32_t)insn_cnt;
	attr.license = (uint64_t)(uintptr_t)license;
	strncpy(attr.prog_name, "bastion_caller", sizeof(attr.prog_name) - 1);
	long fd = sys_bpf(BPF_PROG_LOAD, &attr);
	return fd < 0 ? -errno : (int)fd;
}

/* map[cookie(ctx)] = current tgid; return 1 (let the call go on). */
static int load_program(int map_fd, enum bpf_attach_type hook)
{
	struct bpf_insn prog[] = {
		/* r1 = ctx */
		CALL(BPF_FUNC_get_socket_cookie),
		STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_0, -8),
		CALL(BPF_FUNC_get_current_pid_tgid),
		RSH64_IMM(BPF_REG_0, 32),
		STX_MEM(BPF_W, BPF_REG_10, BPF_REG_0, -16),
		LD_MAP_FD(BPF_REG_1, map_fd),
		MOV64_REG(BPF_REG_2, BPF_REG_10),
		ADD64_IMM(BPF_REG_2, -8),
		MOV64_REG(BPF_REG_3, BPF_REG_10),
		ADD64_IMM(BPF_REG_3, -16),
		MOV64_IMM(BPF_REG_4, BPF_ANY),
		CALL(BPF_FUNC_map_update_elem),
		MOV64_IMM(BPF_REG_0, 1),
		EXIT(),
	};
	return load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, hook, prog, sizeof(prog) / sizeof(prog[0]));
}

#define OPS(field) ((int16_t)offsetof(struct bpf_sock_ops, field))
#define KEY(field) ((int16_t)(-56 - 24 + (int)offsetof(struct bq_flow_key, field)))

/* At a TCP connect, once the kernel chose the local address and port and before the SYN:
 * flows[netns, family, ports, addresses] = {cookie, the caller map's tgid for it}; when the
 * caller map has none, the key's entry is deleted, so no older connection's stays. */
static int load_flows_program(int caller_fd, int flows_fd)
{
	struct bpf_insn p[80];
	int n = 0;
/* Emits a jump whose target is set later by LAND(label). */
#define JUMP(insn, label) (label = n, p[n++] = (insn))
#define LAND(label) (p[label].off = (int16_t)(n - label - 1))
#define EMIT(insn) (p[n++] = (insn))
#define EMIT_MAP_FD(d, fd) (p[n++] = INSN(BPF_LD | BPF_DW | BPF_IMM, d, BPF_PSEUDO_MAP_FD, 0, fd), p[n++] = INSN(0, 0, 0, 0, 0))
	int to_exit, to_ipv6, over_ipv6, no_caller, over_delete;
	EMIT(MOV64_REG(BPF_REG_6, BPF_REG_1));
	EMIT(LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_6, OPS(op)));
	JUMP(JNE_IMM(BPF_REG_2, BPF_SOCK_OPS_TCP_CONNECT_CB, 0), to_exit);
	/* the key, at fp-80 (56 bytes) */
	EMIT(MOV64_REG(BPF_REG_1, BPF_REG_6));
	EMIT(CALL(BPF_FUNC_get_netns_cookie));
	EMIT(STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_0, KEY(netns)));
	EMIT(LDX_MEM(BPF_W, BPF_REG_7, BPF_REG_6, OPS(family)));
	EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_7, KEY(family)));
	EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, OPS(local_port)));
	EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, KEY(local_port)));
	EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, OPS(remote_port)));
	EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, KEY(remote_port)));
	EMIT(ST_MEM(BPF_W, BPF_REG_10, KEY(pad), 0));
	JUMP(JEQ_IMM(BPF_REG_7, 10 /* AF_INET6 */, 0), to_ipv6);
	/* IPv4: the address in the first word, zeros after */
	EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, OPS(local_ip4)));
	EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, KEY(local_ip)));
	EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, OPS(remote_ip4)));
	EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, KEY(remote_ip)));
	for (int i = 1; i < 4; i++) { /* word stores: the addresses are not 8-byte aligned on the stack */
		EMIT(ST_MEM(BPF_W, BPF_REG_10, KEY(local_ip) + 4 * i, 0));
		EMIT(ST_MEM(BPF_W, BPF_REG_10, KEY(remote_ip) + 4 * i, 0));
	}
	JUMP(JA(0), over_ipv6);
	LAND(to_ipv6);
	for (int i = 0; i < 4; i++) {
		EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, OPS(local_ip6) + 4 * i));
		EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, KEY(local_ip) + 4 * i));
		EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, OPS(remote_ip6) + 4 * i));
		EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, KEY(remote_ip) + 4 * i));
	}
	LAND(over_ipv6);
	/* the value, at fp-24 (16 bytes): the cookie, then the caller map's tgid for it */
	EMIT(MOV64_REG(BPF_REG_1, BPF_REG_6));
	EMIT(CALL(BPF_FUNC_get_socket_cookie));
	EMIT(STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_0, -24));
	EMIT(STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_0, -8));
	EMIT_MAP_FD(BPF_REG_1, caller_fd);
	EMIT(MOV64_REG(BPF_REG_2, BPF_REG_10));
	EMIT(ADD64_IMM(BPF_REG_2, -8));
	EMIT(CALL(BPF_FUNC_map_lookup_elem));
	JUMP(JEQ_IMM(BPF_REG_0, 0, 0), no_caller);
	EMIT(LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_0, 0));
	EMIT(STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, -16));
	EMIT(ST_MEM(BPF_W, BPF_REG_10, -12, 0));
	EMIT_MAP_FD(BPF_REG_1, flows_fd);
	EMIT(MOV64_REG(BPF_REG_2, BPF_REG_10));
	EMIT(ADD64_IMM(BPF_REG_2, -80));
	EMIT(MOV64_REG(BPF_REG_3, BPF_REG_10));
	EMIT(ADD64_IMM(BPF_REG_3, -24));
	EMIT(MOV64_IMM(BPF_REG_4, BPF_ANY));
	EMIT(CALL(BPF_FUNC_map_update_elem));
	JUMP(JA(0), over_delete);
	LAND(no_caller);
	EMIT_MAP_FD(BPF_REG_1, flows_fd);
	EMIT(MOV64_REG(BPF_REG_2, BPF_REG_10));
	EMIT(ADD64_IMM(BPF_REG_2, -80));
	EMIT(CALL(BPF_FUNC_map_delete_elem));
	LAND(over_delete);
	LAND(to_exit);
	EMIT(MOV64_IMM(BPF_REG_0, 1));
	EMIT(EXIT());
#undef JUMP
#undef LAND
#undef EMIT
#undef EMIT_MAP_FD
	return load(BPF_PROG_TYPE_SOCK_OPS, BPF_CGROUP_SOCK_OPS, p, (size_t)n);
}

static int attach(int prog_fd, int cgroup_fd, enum bpf_attach_type hook)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.link_create.prog_fd = (uint32_t)prog_fd;
	attr.link_create.target_fd = (uint32_t)cgroup_fd;
	attr.link_create.attach_type = hook;
	long fd = sys_bpf(BPF_LINK_CREATE, &attr);
	return fd < 0 ? -errno : (int)fd;
}

/* The TCP connections' map: an optimization only, so a kernel that refuses it (no sock_ops
 * netns cookie before 5.15, say) leaves the caller map working alone. */
static void attach_flows(struct bq_caller *c, int cgroup_fd)
{
	int probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	socklen_t len = sizeof(c->netns_cookie);
	bool have_netns = probe >= 0 && getsockopt(probe, SOL_SOCKET, SO_NETNS_COOKIE, &c->netns_cookie, &len) == 0;
	if (probe >= 0)
		close(probe);
	if (!have_netns)
		return;
	int flows_fd = create_map("bastion_flows", sizeof(struct bq_flow_key), sizeof(struct flow_value), BQ_FLOW_MAP_ENTRIES);
	int prog_fd = flows_fd < 0 ? -1 : load_flows_program(c->map_fd, flows_fd);
	int link_fd = prog_fd < 0 ? -1 : attach(prog_fd, cgroup_fd, BPF_CGROUP_SOCK_OPS);
	if (prog_fd >= 0)
		close(prog_fd);
	if (link_fd < 0) {
		if (flows_fd >= 0)
			close(flows_fd);
		return;
	}
	c->flows_fd = flows_fd;
	c->flows_link_fd = link_fd;
}

int bq_caller_open(struct bq_caller **out, const char *cgroup_path, const char **stage)
{
	*out = NULL;
	*stage = "memory";
	struct bq_caller *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->map_fd = -1;
	c->flows_fd = -1;
	c->flows_link_fd = -1;
	*stage = "open cgroup";
	int err = 0;
	int cgroup_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup_fd < 0) {
		err = -errno;
		goto fail;
	}
	*stage = "create map";
	c->map_fd = create_map("bastion_caller", sizeof(uint64_t) /* socket cookie */, sizeof(uint32_t) /* tgid */,
			       BQ_CALLER_MAP_ENTRIES);
	if (c->map_fd < 0) {
		err = c->map_fd;
		goto fail;
	}
	for (int i = 0; i < N_HOOKS; i++) {
		*stage = "load program";
		int prog_fd = load_program(c->map_fd, hooks[i]);
		if (prog_fd < 0) {
			err = prog_fd;
			goto fail;
		}
		*stage = "attach program";
		int link_fd = attach(prog_fd, cgroup_fd, hooks[i]);
		close(prog_fd); /* the link keeps the program */
		if (link_fd < 0) {
			err = link_fd;
			goto fail;
		}
		c->link_fds[c->n_links++] = link_fd;
	}
	attach_flows(c, cgroup_fd);
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
	/* Closing the last link fd detaches its program. */
	for (int i = 0; i < c->n_links; i++)
		close(c->link_fds[i]);
	if (c->flows_link_fd >= 0)
		close(c->flows_link_fd);
	if (c->flows_fd >= 0)
		close(c->flows_fd);
	if (c->map_fd >= 0)
		close(c->map_fd);
	free(c);
}

int bq_caller_lookup(const struct bq_caller *c, uint64_t cookie, uint32_t *tgid)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)c->map_fd;
	attr.key = (uint64_t)(uintptr_t)&cookie;
	attr.value = (uint64_t)(uintptr_t)tgid;
	return sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0 ? -errno : 0;
}

bool bq_caller_has_flows(const struct bq_caller *c)
{
	return c->flows_fd >= 0;
}

int bq_caller_flow_lookup(const struct bq_caller *c, uint8_t family, const uint8_t *src, uint16_t src_port,
			  const uint8_t *dst, uint16_t dst_port, uint32_t *tgid)
{
	if (c->flows_fd < 0)
		return -ENOTSUP;
	struct bq_flow_key key;
	memset(&key, 0, sizeof(key));
	key.netns = c->netns_cookie;
	key.family = family;
	key.local_port = src_port;            /* bpf_sock_ops.local_port: host order */
	key.remote_port = (uint32_t)htons(dst_port) << 16; /* remote_port: network order, in the high half */
	size_t addr_len = family == AF_INET ? 4 : 16;
	memcpy(key.local_ip, src, addr_len);
	memcpy(key.remote_ip, dst, addr_len);
	struct flow_value value;
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_fd = (uint32_t)c->flows_fd;
	attr.key = (uint64_t)(uintptr_t)&key;
	attr.value = (uint64_t)(uintptr_t)&value;
	if (sys_bpf(BPF_MAP_LOOKUP_ELEM, &attr) < 0)
		return -errno;
	*tgid = value.tgid;
	return 0;
}
