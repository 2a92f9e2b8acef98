/* A queue's reader thread and what it shares with the JS thread (the loop), without N-API: the
 * glue is bind_queue.c.
 * The thread reads the queue and answers what the fast path can at once (so a busy JS loop never
 * delays those); it hands the rest to the loop through a ring, which the loop takes in batches
 * of slots. A batch its handler left unanswered (it threw) gets the exception verdict, so no
 * packet is stranded. Packets the fast path answered are kept, folded by (arming, destination,
 * verdict), until JS takes them for its reports.
 * Functions marked "Loop" are for the JS thread only; the rest of the sharing is under locks. */
#ifndef BASTION_QUEUE_READER_H
#define BASTION_QUEUE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fast_path.h"
#include "queue.h"

/* Packets handed to JS per wake-up at most; the rest wait for the next loop turn. */
#define BQ_MAX_BATCH 256

struct bq_reader_options {
	uint32_t copy_range; /* as given to the queue: the slot holds the header and this much */
	bool fail_open;      /* what a packet gets when the hand-off to JS is full */
	uint32_t exception_verdict; /* what a packet of a failed batch gets: 0 drop, 1 accept */
	/* Called from the reader thread (thread-safe): the loop must look (bq_reader_collect). */
	void (*wake)(void *arg);
	void *wake_arg;
};

/* A slot: the header (struct bq_slot_header) and the copy range, rounded up so each slot header
 * stays 8-byte aligned. */
size_t bq_reader_slot_size(uint32_t copy_range);

struct bq_reader;

/* Binds the queue (bq_queue_open) and allocates what the reader needs; no thread yet. 0 or -errno. */
int bq_reader_open(struct bq_reader **out, const struct bq_queue_options *queue, const struct bq_reader_options *opts);
/* Starts the reader thread. 0 or -errno. */
int bq_reader_start(struct bq_reader *r);
/* Stops the thread and waits for it, drops the fast path, unbinds the queue and frees it all.
 * Safe on NULL. */
void bq_reader_close(struct bq_reader *r);

/* What the reader handed over since the loop last looked (bq_reader_collect). */
struct bq_collected {
	int count;             /* packets copied into the slots */
	bool answered_waiting; /* packets the fast path answered wait for bq_reader_take_answered */
	bool more;             /* handed packets remain: collect again on the next loop turn */
	int error;             /* a read error the reader met, or 0 */
};

/* Loop: copies up to max handed packets into slots and says whether answered packets wait.
 * When there is either, a batch is open until bq_reader_batch_end. */
void bq_reader_collect(struct bq_reader *r, uint8_t *slots, int max, struct bq_collected *out);
/* Loop: ends the open batch. failed (its handler threw, or could not be called): each packet of
 * it that got no verdict gets the exception verdict, and answered packets waiting are signalled
 * again at the next collect. */
void bq_reader_batch_end(struct bq_reader *r, bool failed);

/* Loop: a verdict (NF_DROP 0 / NF_ACCEPT 1) or a reject (bq_queue_reject) for a packet, which
 * counts as answered if it is in the open batch. 0 or -errno. */
int bq_reader_verdict(struct bq_reader *r, uint32_t packet_id, uint32_t verdict, bool set_mark, uint32_t mark);
int bq_reader_reject(struct bq_reader *r, uint32_t packet_id, uint32_t mark);

struct bq_reader_counters {
	struct bq_counters queue;
	uint64_t handoff_full; /* packets given the queue-full verdict because JS was a whole ring behind */
	uint64_t fast_decided; /* packets the fast path answered (verdict sent) */
	struct bq_fast_counters fast;
};

void bq_reader_counters(struct bq_reader *r, struct bq_reader_counters *out);

/* ---- the fast path (fast_path.h) ---- */

/* Loop: lets the reader answer new connections of armed processes. events_fd: the process
 * connector's socket, whose unread events stop it. 0 (also when enabled already) or -errno. */
int bq_reader_fast_enable(struct bq_reader *r, int events_fd);
/* Loop: the fast path, NULL until enabled. Arm, disarm and clear it under bq_registry_lock(). */
struct bq_fast_path *bq_reader_fast_path(const struct bq_reader *r);
/* Loop: copies up to max answered packets into slots, oldest first: how many (0: none left), or
 * -EBUSY while a batch is open, whose slots they would overwrite. */
int bq_reader_take_answered(struct bq_reader *r, uint8_t *slots, int max);

#endif
