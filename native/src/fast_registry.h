/* What the queues' fast paths share, one per process: the connect()/sendmsg() caller map (the
 * programs watch the whole machine, caller_bpf.h), the fast paths process events must reach,
 * and the one lock that serializes them with their readers.
 * Under the lock a reader thread decides a packet (queue_reader.c), and JS arms, disarms, takes
 * answered packets and reads process events. An event read is therefore applied (its pid
 * disarmed) before any decision can see the event socket empty. No N-API here. */
#ifndef BASTION_FAST_REGISTRY_H
#define BASTION_FAST_REGISTRY_H

#include "caller_bpf.h"
#include "fast_path.h"
#include "proc_events.h"

/* Fast paths registered at most (one per queue that enabled it). */
#define BQ_MAX_FAST_PATHS 16

void bq_registry_lock(void);
void bq_registry_unlock(void);

/* The caller map, NULL until attached. Read under the lock, or on the JS thread: the only one
 * that replaces it. */
struct bq_caller *bq_registry_caller(void);
/* JS thread: makes c the caller map (under the lock) and returns the one it replaces, for the
 * caller to close once no reader can see it. */
struct bq_caller *bq_registry_swap_caller(struct bq_caller *c);

/* Under the lock: process events reach fp from now on. 0, or -EMFILE when the registry is full. */
int bq_registry_add(struct bq_fast_path *fp);
/* Under the lock: fp (NULL: nothing) is forgotten. */
void bq_registry_remove(const struct bq_fast_path *fp);

/* Reads up to max queued process events into out (bq_proc_events_read) and makes every fast
 * path forget the pids they changed, or everything when events were lost, in one step under the
 * lock. Returns what bq_proc_events_read returned. */
int bq_registry_read_events(struct bq_proc_events *e, struct bq_proc_event *out, int max);

#endif
