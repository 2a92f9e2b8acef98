/* The few kernel fields the caller programs read, declared for CO-RE: libbpf relocates each
 * access against the running kernel's BTF (/sys/kernel/btf/vmlinux) at load time, by name, so
 * only the names matter here, not the layout. Declaring them (rather than a vmlinux.h dumped from
 * the build machine's kernel) keeps the build independent of that kernel: a Debian build host
 * without BTF builds the same object. */
#ifndef BASTION_KERNEL_TYPES_H
#define BASTION_KERNEL_TYPES_H

struct super_block {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode {
	unsigned long i_ino;
	struct super_block *i_sb;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
} __attribute__((preserve_access_index));

struct mm_struct {
	struct file *exe_file;
} __attribute__((preserve_access_index));

/* A pid as each pid namespace it is visible in numbers it: numbers[0] in the initial one,
 * numbers[level] in the namespace the task was made in. */
struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct pid_namespace {
	struct ns_common ns;
} __attribute__((preserve_access_index));

struct upid {
	int nr;
	struct pid_namespace *ns;
} __attribute__((preserve_access_index));

struct pid {
	unsigned int level;
	struct upid numbers[1];
} __attribute__((preserve_access_index));

struct user_namespace {
	struct ns_common ns;
} __attribute__((preserve_access_index));

/* kuid_t: the uid as the initial user namespace numbers it (what bpf_get_current_uid_gid() gives). */
typedef struct {
	__u32 val;
} kuid_t;

struct cred {
	kuid_t uid;
	struct user_namespace *user_ns;
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	const struct cred *cred;
	struct mm_struct *mm;
	struct task_struct *group_leader;
	struct pid *thread_pid;
	__u64 start_boottime;
	char comm[16];
} __attribute__((preserve_access_index));

#endif
