/* A queue's reader thread, its hand-off ring, the answered list and the batches: queue_reader.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fast_registry.h"
#include "queue_reader.h"

/* Packets a reader thread may hand to a busy loop before it gives the queue-full verdict. */
#define BQ_HANDOFF_SLOTS 1024
/* A waiting read returns this often at least, so a reader always sees that it must stop. */
#define BQ_READER_TIMEOUT_MS 1000
/* Answered reports kept for JS at most (fewer with a large copy range: 1 MiB of slots at most);
 * beyond this the fast path leaves packets to JS. */
#define BQ_FAST_ANSWERED_MAX 1024
#define BQ_FAST_ANSWERED_BYTES (1u << 20)
/* Latest answered reports a new answer may join (a linear search, so few). */
#define BQ_FAST_JOIN_WINDOW 16

/* What makes two answered packets one report: the same arming, destination and verdict. */
struct answered_key {
	uint32_t token;
	uint8_t family, protocol;
	bool accept;
	uint16_t dst_port;
	uint8_t dst[16];
};

struct bq_reader {
	struct bq_queue *q;
	size_t slot_size;
	bool fail_open;
	uint32_t exception_verdict;
	void (*wake)(void *arg);
	void *wake_arg;
	/* Under bq_registry_lock(): */
	struct bq_fast_path *fast; /* NULL until bq_reader_fast_enable */
	/* Slots of the packets the fast path answered, until JS takes them for its reports; one
	 * slot per (arming, destination, verdict) among the latest, with a count. */
	uint8_t *answered;
	struct answered_key *answered_keys;
	int answered_count;
	int answered_max;
	/* JS was told answered packets are waiting and has not taken them yet. */
	bool answered_signalled;
	/* The reader has woken the loop to tell it so. */
	bool answered_wake_sent;
	uint64_t answered_total;
	/* The thread, and the packets it hands to the loop (a ring, under lock). */
	pthread_t thread;
	bool started;
	bool stopping; /* atomic: the reader ends at its next datagram */
	uint8_t *read_slot;
	pthread_mutex_t lock;
	bool lock_ready;
	uint8_t *handoff;
	int handoff_head, handoff_count, handoff_max;
	uint64_t handoff_full;
	int error; /* a read error the loop has not collected yet, or 0 */
	/* Loop only: the open batch, and whether each of its packets got a verdict. */
	bool in_batch;
	bool batch_signalled; /* the batch told JS answered packets wait */
	int batch_count;
	uint32_t batch_ids[BQ_MAX_BATCH];
	bool batch_done[BQ_MAX_BATCH];
};

size_t bq_reader_slot_size(uint32_t copy_range)
{
	return (sizeof(struct bq_slot_header) + copy_range + 7) & ~(size_t)7;
}

/* ---- the reader thread ---- */

/* Adds an answered packet's slot to the reports waiting for JS, or counts it in one of the
 * latest with the same key. */
static void keep_answered(struct bq_reader *r, const uint8_t *slot, const struct bq_fast_decision *d)
{
	struct answered_key key;
	memset(&key, 0, sizeof(key)); /* compared with memcmp: padding included */
	key.token = d->token;
	key.family = d->flow.family;
	key.protocol = d->flow.protocol;
	key.accept = d->accept;
	key.dst_port = d->flow.dst_port;
	memcpy(key.dst, d->flow.dst, sizeof(key.dst));
	int oldest = r->answered_count > BQ_FAST_JOIN_WINDOW ? r->answered_count - BQ_FAST_JOIN_WINDOW : 0;
	for (int i = r->answered_count - 1; i >= oldest; i--) {
		if (memcmp(&r->answered_keys[i], &key, sizeof(key)) != 0)
			continue;
		struct bq_slot_header *h = (struct bq_slot_header *)(r->answered + (size_t)i * r->slot_size);
		if (h->fast_repeats < UINT32_MAX)
			h->fast_repeats++;
		return;
	}
	memcpy(r->answered + (size_t)r->answered_count * r->slot_size, slot, r->slot_size);
	memcpy(&r->answered_keys[r->answered_count++], &key, sizeof(key));
}

/* Answers the packet in slot if the fast path can. */
static bool answer_fast(struct bq_reader *r, uint8_t *slot)
{
	struct bq_slot_header h;
	memcpy(&h, slot, sizeof(h));
	struct bq_fast_decision d;
	/* Decision, verdict and the answered list in one section: an arming JS retires or a
	 * take it makes falls wholly before or wholly after this packet, never between. */
	bq_registry_lock();
	bool answered = r->fast && r->answered_count < r->answered_max &&
			bq_fast_path_decide(r->fast, bq_registry_caller(), h.hw_protocol, (h.flags & BQ_SLOT_F_UID) != 0,
					    h.uid, slot + sizeof(h), h.cap_len, &d) &&
			bq_queue_verdict(r->q, h.packet_id, d.accept ? 1 : 0, d.has_mark, d.mark) == 0;
	bool tell = false;
	if (answered) {
		h.flags |= BQ_SLOT_F_FAST | (d.accept ? BQ_SLOT_F_FAST_ACCEPT : 0);
		h.fast_inode = d.inode;
		h.fast_token = d.token;
		h.fast_repeats = 1;
		memcpy(slot, &h, sizeof(h));
		r->answered_total++;
		keep_answered(r, slot, &d);
		/* Once per take: JS is told that answered packets wait, and collects them a little later. */
		tell = !r->answered_signalled && !r->answered_wake_sent;
		if (tell)
			r->answered_wake_sent = true;
	}
	bq_registry_unlock();
	if (tell)
		r->wake(r->wake_arg);
	return answered;
}

/* Hands a packet to the loop, or gives it the queue-full verdict when JS is a whole ring behind
 * (a busy loop must not stop the fast path, nor a flood fill memory). */
static void hand_to_js(struct bq_reader *r, const uint8_t *slot)
{
	pthread_mutex_lock(&r->lock);
	bool full = r->handoff_count == r->handoff_max;
	if (!full) {
		int at = (r->handoff_head + r->handoff_count) % r->handoff_max;
		memcpy(r->handoff + (size_t)at * r->slot_size, slot, r->slot_size);
		r->handoff_count++;
	} else {
		r->handoff_full++;
	}
	pthread_mutex_unlock(&r->lock);
	if (full) {
		uint32_t id;
		memcpy(&id, slot, sizeof(id));
		bq_queue_verdict(r->q, id, r->fail_open ? 1 : 0, false, 0);
	} else {
		r->wake(r->wake_arg);
	}
}

static void *reader_main(void *arg)
{
	struct bq_reader *r = arg;
	while (!__atomic_load_n(&r->stopping, __ATOMIC_ACQUIRE)) {
		int n = bq_queue_read_wait(r->q, r->read_slot, r->slot_size);
		if (n == 0 || n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0) {
			pthread_mutex_lock(&r->lock);
			r->error = n;
			pthread_mutex_unlock(&r->lock);
			r->wake(r->wake_arg);
			struct timespec pause = {0, 10 * 1000000}; /* a broken socket must not spin */
			nanosleep(&pause, NULL);
			continue;
		}
		if (!answer_fast(r, r->read_slot))
			hand_to_js(r, r->read_slot);
	}
	return NULL;
}

/* ---- open and close ---- */

int bq_reader_open(struct bq_reader **out, const struct bq_queue_options *queue, const struct bq_reader_options *opts)
{
	*out = NULL;
	struct bq_reader *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->slot_size = bq_reader_slot_size(opts->copy_range);
	r->fail_open = opts->fail_open;
	r->exception_verdict = opts->exception_verdict;
	r->wake = opts->wake;
	r->wake_arg = opts->wake_arg;
	r->handoff_max = BQ_HANDOFF_SLOTS;
	r->read_slot = malloc(r->slot_size);
	r->handoff = malloc((size_t)r->handoff_max * r->slot_size);
	int err = r->read_slot && r->handoff ? -pthread_mutex_init(&r->lock, NULL) : -ENOMEM;
	r->lock_ready = err == 0;
	if (err == 0)
		err = bq_queue_open(&r->q, queue);
	if (err < 0) {
		bq_reader_close(r);
		return err;
	}
	*out = r;
	return 0;
}

int bq_reader_start(struct bq_reader *r)
{
	int err = bq_queue_wait_mode(r->q, BQ_READER_TIMEOUT_MS);
	if (err == 0)
		err = -pthread_create(&r->thread, NULL, reader_main, r);
	r->started = err == 0;
	return err;
}

/* Under bq_registry_lock(): the fast path and answered list go (none may be set up). */
static void drop_fast_path(struct bq_reader *r)
{
	bq_registry_remove(r->fast);
	bq_fast_path_close(r->fast);
	r->fast = NULL;
	free(r->answered);
	r->answered = NULL;
	free(r->answered_keys);
	r->answered_keys = NULL;
}

void bq_reader_close(struct bq_reader *r)
{
	if (!r)
		return;
	/* The thread ends at its next datagram, which the wake-up makes the kernel send. */
	if (r->started) {
		__atomic_store_n(&r->stopping, true, __ATOMIC_RELEASE);
		bq_queue_wake(r->q);
		pthread_join(r->thread, NULL);
	}
	bq_registry_lock();
	drop_fast_path(r);
	bq_registry_unlock();
	bq_queue_close(r->q);
	if (r->lock_ready)
		pthread_mutex_destroy(&r->lock);
	free(r->read_slot);
	free(r->handoff);
	free(r);
}

/* ---- the loop's side ---- */

void bq_reader_collect(struct bq_reader *r, uint8_t *slots, int max, struct bq_collected *out)
{
	pthread_mutex_lock(&r->lock);
	out->error = r->error;
	r->error = 0;
	int n = r->handoff_count < max ? r->handoff_count : max;
	for (int i = 0; i < n; i++) {
		memcpy(slots + (size_t)i * r->slot_size, r->handoff + (size_t)r->handoff_head * r->slot_size, r->slot_size);
		r->handoff_head = (r->handoff_head + 1) % r->handoff_max;
	}
	r->handoff_count -= n;
	out->more = r->handoff_count > 0;
	pthread_mutex_unlock(&r->lock);
	out->count = n;

	bq_registry_lock();
	bool signal = r->answered_count > 0 && !r->answered_signalled;
	if (signal)
		r->answered_signalled = true;
	r->answered_wake_sent = false;
	bq_registry_unlock();
	out->answered_waiting = signal;

	r->in_batch = n > 0 || signal;
	r->batch_signalled = signal;
	r->batch_count = n;
	for (int i = 0; i < n; i++) {
		memcpy(&r->batch_ids[i], slots + (size_t)i * r->slot_size, sizeof(uint32_t));
		r->batch_done[i] = false;
	}
}

void bq_reader_batch_end(struct bq_reader *r, bool failed)
{
	if (!r->in_batch)
		return;
	r->in_batch = false;
	if (!failed)
		return;
	if (r->batch_signalled) {
		bq_registry_lock();
		r->answered_signalled = false; /* told again at the next wake-up */
		bq_registry_unlock();
	}
	for (int i = 0; i < r->batch_count; i++)
		if (!r->batch_done[i])
			bq_queue_verdict(r->q, r->batch_ids[i], r->exception_verdict, false, 0);
}

/* A packet of the open batch got its verdict. */
static void batch_answered(struct bq_reader *r, uint32_t packet_id)
{
	if (!r->in_batch)
		return;
	for (int i = 0; i < r->batch_count; i++)
		if (r->batch_ids[i] == packet_id)
			r->batch_done[i] = true;
}

int bq_reader_verdict(struct bq_reader *r, uint32_t packet_id, uint32_t verdict, bool set_mark, uint32_t mark)
{
	int rc = bq_queue_verdict(r->q, packet_id, verdict, set_mark, mark);
	if (rc == 0)
		batch_answered(r, packet_id);
	return rc;
}

int bq_reader_reject(struct bq_reader *r, uint32_t packet_id, uint32_t mark)
{
	int rc = bq_queue_reject(r->q, packet_id, mark);
	if (rc == 0)
		batch_answered(r, packet_id);
	return rc;
}

void bq_reader_counters(struct bq_reader *r, struct bq_reader_counters *out)
{
	memset(out, 0, sizeof(*out));
	bq_queue_counters(r->q, &out->queue);
	bq_registry_lock();
	if (r->fast)
		out->fast = *bq_fast_path_counters(r->fast);
	out->fast_decided = r->answered_total;
	bq_registry_unlock();
	pthread_mutex_lock(&r->lock);
	out->handoff_full = r->handoff_full;
	pthread_mutex_unlock(&r->lock);
}

/* ---- the fast path ---- */

int bq_reader_fast_enable(struct bq_reader *r, int events_fd)
{
	int err = 0;
	bq_registry_lock();
	if (!r->fast) {
		size_t by_bytes = BQ_FAST_ANSWERED_BYTES / r->slot_size;
		r->answered_max = by_bytes < BQ_FAST_ANSWERED_MAX ? (int)by_bytes : BQ_FAST_ANSWERED_MAX;
		if (r->answered_max < 1)
			r->answered_max = 1;
		r->answered = malloc((size_t)r->answered_max * r->slot_size);
		r->answered_keys = calloc((size_t)r->answered_max, sizeof(struct answered_key));
		err = !r->answered || !r->answered_keys ? -ENOMEM : bq_fast_path_open(&r->fast, events_fd);
		if (err == 0)
			err = bq_registry_add(r->fast);
		if (err < 0)
			drop_fast_path(r);
	}
	bq_registry_unlock();
	return err;
}

struct bq_fast_path *bq_reader_fast_path(const struct bq_reader *r)
{
	return r->fast;
}

int bq_reader_take_answered(struct bq_reader *r, uint8_t *slots, int max)
{
	if (r->in_batch)
		return -EBUSY;
	int taken = 0;
	bq_registry_lock();
	if (r->answered) {
		taken = r->answered_count < max ? r->answered_count : max;
		memcpy(slots, r->answered, (size_t)taken * r->slot_size);
		r->answered_count -= taken;
		memmove(r->answered, r->answered + (size_t)taken * r->slot_size, (size_t)r->answered_count * r->slot_size);
		memmove(r->answered_keys, r->answered_keys + taken, (size_t)r->answered_count * sizeof(struct answered_key));
		if (r->answered_count == 0)
			r->answered_signalled = false;
	}
	bq_registry_unlock();
	return taken;
}
