/* The netlink process connector (NETLINK_CONNECTOR, CN_IDX_PROC): fork, exec and exit of
 * every process, as they happen. The identify stage learns which pids are new without
 * listing /proc (~100 µs with 120 processes here) on every socket it has not seen. */
#ifndef BASTION_PROC_EVENTS_H
#define BASTION_PROC_EVENTS_H

#include <stdint.h>

struct bq_proc_events;

enum bq_proc_event_type {
	BQ_PROC_FORK = 1, /* a new process (threads are left out); pid: child, ppid: parent */
	BQ_PROC_EXEC = 2, /* pid now runs another program */
	BQ_PROC_EXIT = 3, /* the process has exited (its last thread group leader) */
};

struct bq_proc_event {
	int32_t type;
	int32_t pid;
	int32_t ppid; /* fork only; 0 otherwise */
};

/* Subscribes to process events. The connector exists only in the initial network namespace:
 * started inside another (ip netns exec), we open the socket there and return. Needs
 * CAP_NET_ADMIN, the initial user and pid namespaces (the kernel ignores other listeners;
 * the caller checks), and CAP_SYS_ADMIN for the namespace switch. 0 or -errno; -ENOTRECOVERABLE when the thread
 * could not return to its own network namespace (the caller must not go on). */
int bq_proc_events_open(struct bq_proc_events **out);

/* The socket, for polling. */
int bq_proc_events_fd(const struct bq_proc_events *e);

/* Reads the events queued so far without blocking, at most max. Returns how many, or
 * -ENOBUFS once after the kernel dropped events (the socket buffer was full): the caller
 * must then treat what it knows as incomplete. */
int bq_proc_events_read(struct bq_proc_events *e, struct bq_proc_event *out, int max);

void bq_proc_events_close(struct bq_proc_events *e);

#endif
