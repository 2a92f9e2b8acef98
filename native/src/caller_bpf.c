/* Loads and attaches the caller-recording programs with the bpf() syscall alone: they are a
 * dozen instructions, not worth a clang/libbpf build dependency. See caller_bpf.h. */
#include "caller_bpf.h"

#include <errno.h>
#include <fcntl.h>
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
};

static long sys_bpf(enum bpf_cmd cmd, union bpf_attr *attr)
{
	return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static int create_map(void)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_LRU_HASH;
	attr.key_size = sizeof(uint64_t); /* socket cookie */
	attr.value_size = sizeof(uint32_t); /* tgid */
	attr.max_entries = BQ_CALLER_MAP_ENTRIES;
	strncpy(attr.map_name, "bastion_caller", sizeof(attr.map_name) - 1);
	long fd = sys_bpf(BPF_MAP_CREATE, &attr);
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
	static const char license[] = "GPL";
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_SOCK_ADDR;
	attr.expected_attach_type = hook;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = sizeof(prog) / sizeof(prog[0]);
	attr.license = (uint64_t)(uintptr_t)license;
	strncpy(attr.prog_name, "bastion_caller", sizeof(attr.prog_name) - 1);
	long fd = sys_bpf(BPF_PROG_LOAD, &attr);
	return fd < 0 ? -errno : (int)fd;
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

int bq_caller_open(struct bq_caller **out, const char *cgroup_path, const char **stage)
{
	*out = NULL;
	*stage = "memory";
	struct bq_caller *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->map_fd = -1;
	*stage = "open cgroup";
	int err = 0;
	int cgroup_fd = open(cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cgroup_fd < 0) {
		err = -errno;
		goto fail;
	}
	*stage = "create map";
	c->map_fd = create_map();
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
