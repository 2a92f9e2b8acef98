/* Thin N-API glue over queue.c, sock_diag.c, proc_events.c, peercred.c, sd_notify.c and caller_bpf.c.
 * Each queue is read by a thread of its own, which answers what the fast path can at once (so a
 * busy JS loop never delays those) and hands the rest to the loop: one JS call per wake-up with
 * a whole batch of packets, written into an ArrayBuffer allocated once. A JS exception in that
 * call can neither crash the process nor strand a packet: unanswered packets of the batch get
 * the exception verdict. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>
#include <uv.h>

#include "caller_bpf.h"
#include "fast_path.h"
#include "peercred.h"
#include "proc_events.h"
#include "queue.h"
#include "sd_notify.h"
#include "sock_diag.h"

/* The connect()/sendmsg() caller map (caller_bpf.h): one per process, as the programs watch the
 * whole machine; NULL until callerAttach() succeeds. Read by sockDiagLookup and the fast path. */
static struct bq_caller *g_caller;

/* Guards every queue's fast path table and answered list, the registry below and g_caller: a
 * reader thread decides under it, and JS arms, disarms, takes answered packets and reads
 * process events under it. An event read is therefore applied (its pid disarmed) before any
 * decision can see the event socket empty. */
static pthread_mutex_t g_fast_lock = PTHREAD_MUTEX_INITIALIZER;
/* The fast paths that process events must reach (one per queue that enabled it). */
#define BQ_MAX_FAST_PATHS 16
static struct bq_fast_path *g_fast_paths[BQ_MAX_FAST_PATHS];

/* Packets handed to JS per wake-up at most; the rest wait for the next loop turn. */
#define BQ_MAX_BATCH 256
/* Packets a reader thread may hand to a busy loop before it gives the queue-full verdict. */
#define BQ_HANDOFF_SLOTS 1024
/* A waiting read returns this often at least, so a reader always sees that it must stop. */
#define BQ_READER_TIMEOUT_MS 1000

#define NAPI_CALL(env, call)                                                                        \
	do {                                                                                        \
		if ((call) != napi_ok) {                                                            \
			const napi_extended_error_info *info_;                                      \
			napi_get_last_error_info((env), &info_);                                    \
			bool pending_;                                                              \
			napi_is_exception_pending((env), &pending_);                                \
			if (!pending_)                                                              \
				napi_throw_error((env), "EADDON", info_ && info_->error_message ? info_->error_message : "N-API call failed"); \
			return NULL;                                                                \
		}                                                                                   \
	} while (0)

static napi_value throw_errno(napi_env env, int neg_errno, const char *what)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-neg_errno));
	napi_value code_val, msg_val, err;
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_val);
	napi_create_error(env, NULL, msg_val, &err);
	napi_create_int32(env, -neg_errno, &code_val);
	napi_set_named_property(env, err, "errno", code_val);
	napi_throw(env, err);
	return NULL;
}

/* ---- argument helpers ---- */

static uint32_t get_u32_prop(napi_env env, napi_value obj, const char *name, uint32_t dflt)
{
	bool has = false;
	napi_value v;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has)
		return dflt;
	if (napi_get_named_property(env, obj, name, &v) != napi_ok)
		return dflt;
	uint32_t out;
	return napi_get_value_uint32(env, v, &out) == napi_ok ? out : dflt;
}

static bool get_bool_prop(napi_env env, napi_value obj, const char *name, bool dflt)
{
	bool has = false, out;
	napi_value v;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has)
		return dflt;
	if (napi_get_named_property(env, obj, name, &v) != napi_ok)
		return dflt;
	return napi_get_value_bool(env, v, &out) == napi_ok ? out : dflt;
}

/* ---- handles ----
 * Every handle JS gets is an external over a struct that begins with a struct handle. Its kind
 * makes a handle of another kind refused instead of misread. It has up to two owners, JS (the
 * external, until collected) and libuv (the poll of a watched socket, until closed), and is
 * freed when the last one lets go: a call on a closed handle answers EBADF and never touches
 * freed memory. */
enum handle_kind { KIND_QUEUE = 0x42510001, KIND_SOCK_DIAG = 0x42510002, KIND_PROC_EVENTS = 0x42510003 };

struct handle {
	enum handle_kind kind;
	bool js_holds;
	bool uv_holds;
};

/* Only this addon's externals are expected here (the helper's own JS holds them); each begins
 * with a struct handle, so a handle of another kind is refused. An external from another
 * native module would be misread: JS code that could pass one is already trusted. */
static void *get_handle(napi_env env, napi_value v, enum handle_kind kind, const char *expected)
{
	napi_valuetype t = napi_undefined;
	void *p = NULL;
	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external || napi_get_value_external(env, v, &p) != napi_ok ||
	    !p || ((struct handle *)p)->kind != kind) {
		napi_throw_type_error(env, "EINVAL", expected);
		return NULL;
	}
	return p;
}

/* A kernel socket watched on libuv's loop (the queue, process events): what both share. */
struct watched {
	struct handle h;
	napi_env env;
	/* A socket polled on the loop (process events), or an async handle its own thread wakes (the queue). */
	union {
		uv_poll_t poll;
		uv_async_t async;
	} uv;
	bool is_async;
	napi_async_context async_ctx;
	bool closed;
	/* Closes the kernel socket and drops the JS references of its kind. */
	void (*release)(struct watched *w);
};

static void watched_uv_closed(uv_handle_t *handle)
{
	struct watched *w = handle->data;
	w->h.uv_holds = false;
	if (!w->h.js_holds)
		free(w);
}

static void watched_cleanup_hook(void *arg);

/* Stops watching and releases the socket; once only. from_hook: at environment teardown. */
static void close_watched(struct watched *w, bool from_hook)
{
	if (w->closed)
		return;
	w->closed = true;
	if (!from_hook)
		napi_remove_env_cleanup_hook(w->env, watched_cleanup_hook, w);
	if (!w->is_async)
		uv_poll_stop(&w->uv.poll);
	w->release(w);
	napi_async_destroy(w->env, w->async_ctx);
	uv_close((uv_handle_t *)&w->uv, watched_uv_closed);
}

static void watched_cleanup_hook(void *arg)
{
	close_watched(arg, true);
}

/* The external was collected: a handle JS never closed is closed now. This calls N-API
 * (references, async context), which finalizers may do because Node runs them after GC,
 * not inside it; building with NAPI_EXPERIMENTAL would change that (see node_api_post_finalizer). */
static void watched_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct watched *w = data;
	w->h.js_holds = false;
	close_watched(w, false);
	if (!w->h.uv_holds)
		free(w);
}

/* Makes w's libuv handle (the poll of fd, or with on_wake an async handle) and returns the JS
 * handle. On failure the socket is released, w is freed (now, or once libuv has closed the
 * handle) and a JS error is thrown. */
static napi_value start_handle(napi_env env, struct watched *w, const char *resource, int fd, uv_poll_cb on_readable,
			       uv_async_cb on_wake)
{
	napi_value resource_name, handle;
	uv_loop_t *loop;
	w->env = env;
	w->is_async = on_wake != NULL;
	napi_create_string_utf8(env, resource, NAPI_AUTO_LENGTH, &resource_name);
	napi_async_init(env, NULL, resource_name, &w->async_ctx);
	napi_get_uv_event_loop(env, &loop);
	int uerr = w->is_async ? uv_async_init(loop, &w->uv.async, on_wake) : uv_poll_init(loop, &w->uv.poll, fd);
	w->uv.poll.data = w; /* the same field of either handle */
	if (uerr < 0) {
		const char *what = w->is_async ? "uv_async_init" : "uv_poll_init";
		w->closed = true;
		w->release(w);
		napi_async_destroy(env, w->async_ctx);
		free(w);
		return throw_errno(env, uerr, what);
	}
	w->h.uv_holds = true;
	napi_add_env_cleanup_hook(env, watched_cleanup_hook, w);
	uerr = w->is_async ? 0 : uv_poll_start(&w->uv.poll, UV_READABLE, on_readable);
	if (uerr < 0) {
		close_watched(w, false); /* freed once libuv has closed the poll */
		return throw_errno(env, uerr, "uv_poll_start");
	}
	if (napi_create_external(env, w, watched_finalize, NULL, &handle) != napi_ok) {
		close_watched(w, false);
		return throw_errno(env, -ENOMEM, "napi_create_external");
	}
	w->h.js_holds = true;
	return handle;
}

/* queueClose(handle) and procEventsClose(handle): later calls on the handle answer EBADF. */
static napi_value close_handle(napi_env env, napi_callback_info info, enum handle_kind kind, const char *expected)
{
	size_t argc = 1;
	napi_value argv[1];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct watched *w = argc ? get_handle(env, argv[0], kind, expected) : NULL;
	if (w)
		close_watched(w, false);
	return NULL;
}

/* ---- the queue ---- */

/* What makes two answered packets one report: the same arming, destination and verdict. */
struct answered_key {
	uint32_t token;
	uint8_t family, protocol;
	bool accept;
	uint16_t dst_port;
	uint8_t dst[16];
};

struct queue_wrap {
	struct watched base; /* first: the handle */
	struct bq_queue *q;
	napi_ref on_batch;
	napi_ref on_error;
	napi_ref slots_ref;
	uint8_t *slots;
	size_t slot_size;
	int batch_max;
	uint32_t exception_verdict;
	bool fail_open; /* what a packet gets when the hand-off to JS is full */
	/* Under g_fast_lock: */
	struct bq_fast_path *fast; /* NULL until queueFastPathEnable */
	/* Slots of the packets the fast path answered, until JS takes them for its reports; one
	 * slot per (arming, destination, verdict) among the latest, with a count. */
	uint8_t *answered;
	struct answered_key *answered_keys;
	int answered_count;
	/* JS was told answered packets are waiting and has not taken them yet. */
	bool answered_signalled;
	/* The reader has woken the loop to tell it so. */
	bool answered_wake_sent;
	int answered_max;
	uint64_t answered_total; /* packets the fast path answered (verdict sent) */
	/* The reader thread, and the packets it hands to the loop (a ring, under lock). */
	pthread_t reader;
	bool reader_started;
	bool stopping; /* atomic: the reader ends at its next datagram */
	uint8_t *reader_slot;
	pthread_mutex_t lock;
	uint8_t *handoff;
	int handoff_head, handoff_count, handoff_max;
	uint64_t handoff_full; /* packets given the queue-full verdict because JS was that far behind */
	int reader_error; /* a read error the loop has not reported yet, or 0 */
	/* Loop only: packets of the batch JS is handling right now, and whether each got a verdict. */
	int batch_count;
	bool in_batch;
	uint32_t batch_ids[BQ_MAX_BATCH];
	bool batch_done[BQ_MAX_BATCH];
};

#define QUEUE_EXPECTED "expected a queue handle"

/* A queue call's arguments: up to max of them in argv (*argc: how many were passed), at least
 * min (else a TypeError naming usage), the first a queue handle. Returns the queue, or NULL
 * with a JS exception pending. */
static struct queue_wrap *queue_call(napi_env env, napi_callback_info info, size_t max, size_t min, napi_value *argv,
				     size_t *argc, const char *usage)
{
	*argc = max;
	NAPI_CALL(env, napi_get_cb_info(env, info, argc, argv, NULL, NULL));
	if (*argc < min) {
		napi_throw_type_error(env, "EINVAL", usage);
		return NULL;
	}
	return get_handle(env, argv[0], KIND_QUEUE, QUEUE_EXPECTED);
}

static void call_on_error(struct queue_wrap *w, napi_value err)
{
	napi_env env = w->base.env;
	napi_value cb, recv;
	/* napi_make_callback needs an object receiver: undefined is refused. */
	if (napi_get_reference_value(env, w->on_error, &cb) != napi_ok || napi_get_global(env, &recv) != napi_ok)
		return;
	if (napi_make_callback(env, w->base.async_ctx, recv, cb, 1, &err, NULL) != napi_ok) {
		napi_value ignored;
		napi_get_and_clear_last_exception(env, &ignored); /* an error handler that throws is ignored */
	}
}

static void report_errno(struct queue_wrap *w, int neg_errno, const char *what)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(-neg_errno));
	napi_value msg_val, err;
	if (napi_create_string_utf8(w->base.env, msg, NAPI_AUTO_LENGTH, &msg_val) == napi_ok &&
	    napi_create_error(w->base.env, NULL, msg_val, &err) == napi_ok)
		call_on_error(w, err);
}

/* Answered reports kept for JS at most (fewer with a large copy range: 1 MiB of slots at most);
 * beyond this the fast path leaves packets to JS. */
#define BQ_FAST_ANSWERED_MAX 1024
#define BQ_FAST_ANSWERED_BYTES (1u << 20)
/* Latest answered reports a new answer may join (a linear search, so few). */
#define BQ_FAST_JOIN_WINDOW 16

/* Adds an answered packet's slot to the reports waiting for JS, or counts it in one of the
 * latest with the same key. */
static void keep_answered(struct queue_wrap *w, const uint8_t *slot, const struct bq_fast_decision *d)
{
	struct answered_key key;
	memset(&key, 0, sizeof(key)); /* compared with memcmp: padding included */
	key.token = d->token;
	key.family = d->flow.family;
	key.protocol = d->flow.protocol;
	key.accept = d->accept;
	key.dst_port = d->flow.dst_port;
	memcpy(key.dst, d->flow.dst, sizeof(key.dst));
	int oldest = w->answered_count > BQ_FAST_JOIN_WINDOW ? w->answered_count - BQ_FAST_JOIN_WINDOW : 0;
	for (int i = w->answered_count - 1; i >= oldest; i--) {
		if (memcmp(&w->answered_keys[i], &key, sizeof(key)) != 0)
			continue;
		struct bq_slot_header *h = (struct bq_slot_header *)(w->answered + (size_t)i * w->slot_size);
		if (h->fast_repeats < UINT32_MAX)
			h->fast_repeats++;
		return;
	}
	memcpy(w->answered + (size_t)w->answered_count * w->slot_size, slot, w->slot_size);
	memcpy(&w->answered_keys[w->answered_count++], &key, sizeof(key));
}

/* Reader thread: answers the packet in slot if the fast path can. */
static bool answer_fast(struct queue_wrap *w, uint8_t *slot)
{
	struct bq_slot_header h;
	memcpy(&h, slot, sizeof(h));
	struct bq_fast_decision d;
	/* Decision, verdict and the answered list in one section: an arming JS retires or a
	 * take it makes falls wholly before or wholly after this packet, never between. */
	pthread_mutex_lock(&g_fast_lock);
	bool answered = w->fast && w->answered_count < w->answered_max &&
			bq_fast_path_decide(w->fast, g_caller, h.hw_protocol, (h.flags & BQ_SLOT_F_UID) != 0, h.uid,
					    slot + sizeof(h), h.cap_len, &d) &&
			bq_queue_verdict(w->q, h.packet_id, d.accept ? 1 : 0, d.has_mark, d.mark) == 0;
	bool tell = false;
	if (answered) {
		h.flags |= BQ_SLOT_F_FAST | (d.accept ? BQ_SLOT_F_FAST_ACCEPT : 0);
		h.fast_inode = d.inode;
		h.fast_token = d.token;
		h.fast_repeats = 1;
		memcpy(slot, &h, sizeof(h));
		w->answered_total++;
		keep_answered(w, slot, &d);
		/* Once per take: JS is told that answered packets wait, and collects them a little later. */
		tell = !w->answered_signalled && !w->answered_wake_sent;
		if (tell)
			w->answered_wake_sent = true;
	}
	pthread_mutex_unlock(&g_fast_lock);
	if (tell)
		uv_async_send(&w->base.uv.async);
	return answered;
}

/* Reader thread: hands a packet to the loop, or gives it the queue-full verdict when JS is a
 * whole ring behind (a busy loop must not stop the fast path, nor a flood fill memory). */
static void hand_to_js(struct queue_wrap *w, const uint8_t *slot)
{
	pthread_mutex_lock(&w->lock);
	bool full = w->handoff_count == w->handoff_max;
	if (!full) {
		int at = (w->handoff_head + w->handoff_count) % w->handoff_max;
		memcpy(w->handoff + (size_t)at * w->slot_size, slot, w->slot_size);
		w->handoff_count++;
	} else {
		w->handoff_full++;
	}
	pthread_mutex_unlock(&w->lock);
	if (full) {
		uint32_t id;
		memcpy(&id, slot, sizeof(id));
		bq_queue_verdict(w->q, id, w->fail_open ? 1 : 0, false, 0);
	} else {
		uv_async_send(&w->base.uv.async);
	}
}

static void *reader_main(void *arg)
{
	struct queue_wrap *w = arg;
	while (!__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE)) {
		int n = bq_queue_read_wait(w->q, w->reader_slot, w->slot_size);
		if (n == 0 || n == -EAGAIN || n == -EINTR)
			continue;
		if (n < 0) {
			pthread_mutex_lock(&w->lock);
			w->reader_error = n;
			pthread_mutex_unlock(&w->lock);
			uv_async_send(&w->base.uv.async);
			struct timespec pause = {0, 10 * 1000000}; /* a broken socket must not spin */
			nanosleep(&pause, NULL);
			continue;
		}
		if (!answer_fast(w, w->reader_slot))
			hand_to_js(w, w->reader_slot);
	}
	return NULL;
}

/* Loop: the reader handed over packets, answered some, or met an error. */
static void on_wake(uv_async_t *handle)
{
	struct queue_wrap *w = handle->data;
	if (w->base.closed)
		return;
	napi_env env = w->base.env;
	napi_handle_scope scope;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;

	pthread_mutex_lock(&w->lock);
	int error = w->reader_error;
	w->reader_error = 0;
	int n = w->handoff_count < w->batch_max ? w->handoff_count : w->batch_max;
	for (int i = 0; i < n; i++) {
		memcpy(w->slots + (size_t)i * w->slot_size, w->handoff + (size_t)w->handoff_head * w->slot_size, w->slot_size);
		w->handoff_head = (w->handoff_head + 1) % w->handoff_max;
	}
	w->handoff_count -= n;
	bool more = w->handoff_count > 0;
	pthread_mutex_unlock(&w->lock);
	if (error)
		report_errno(w, error, "queue read");

	pthread_mutex_lock(&g_fast_lock);
	bool signal = w->answered_count > 0 && !w->answered_signalled;
	if (signal)
		w->answered_signalled = true;
	w->answered_wake_sent = false;
	pthread_mutex_unlock(&g_fast_lock);

	if (!w->base.closed && (n > 0 || signal)) {
		w->batch_count = n;
		for (int i = 0; i < n; i++) {
			memcpy(&w->batch_ids[i], w->slots + (size_t)i * w->slot_size, sizeof(uint32_t));
			w->batch_done[i] = false;
		}
		w->in_batch = true;
		napi_value cb, recv, argv[2];
		napi_status st = napi_get_reference_value(env, w->on_batch, &cb);
		if (st == napi_ok)
			st = napi_get_global(env, &recv);
		if (st == napi_ok)
			st = napi_create_int32(env, n, &argv[0]);
		if (st == napi_ok)
			st = napi_get_boolean(env, signal, &argv[1]);
		if (st == napi_ok)
			st = napi_make_callback(env, w->base.async_ctx, recv, cb, 2, argv, NULL);
		w->in_batch = false;
		/* A handler that threw leaves its exception pending: clear it always (even when it
		 * closed the queue first), or N-API would throw it again at JS's next native call. */
		napi_value exc = NULL;
		if (st != napi_ok) {
			bool pending = false;
			napi_is_exception_pending(env, &pending);
			if (pending)
				napi_get_and_clear_last_exception(env, &exc);
		}
		if (st != napi_ok && !w->base.closed) {
			if (signal) {
				pthread_mutex_lock(&g_fast_lock);
				w->answered_signalled = false; /* told again at the next wake-up */
				pthread_mutex_unlock(&g_fast_lock);
			}
			/* The handler threw: every packet it did not answer gets the exception verdict. */
			for (int i = 0; i < n; i++)
				if (!w->batch_done[i])
					bq_queue_verdict(w->q, w->batch_ids[i], w->exception_verdict, false, 0);
			if (exc)
				call_on_error(w, exc);
			else
				report_errno(w, -EPROTO, "queue batch callback failed");
		}
	}
	/* The rest wait for the next loop turn. */
	if (more && !w->base.closed)
		uv_async_send(&w->base.uv.async);
	napi_close_handle_scope(env, scope);
}

/* Loop: stops the reader thread and waits for it (it ends at its next datagram, which the
 * wake-up makes the kernel send). */
static void stop_reader(struct queue_wrap *w)
{
	if (!w->reader_started)
		return;
	__atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
	bq_queue_wake(w->q);
	pthread_join(w->reader, NULL);
	w->reader_started = false;
}

/* Under g_fast_lock: the queue's fast path and answered list go (none may be set up). */
static void drop_fast_path(struct queue_wrap *w)
{
	for (int i = 0; i < BQ_MAX_FAST_PATHS; i++)
		if (w->fast && g_fast_paths[i] == w->fast)
			g_fast_paths[i] = NULL;
	bq_fast_path_close(w->fast);
	w->fast = NULL;
	free(w->answered);
	w->answered = NULL;
	free(w->answered_keys);
	w->answered_keys = NULL;
}

static void free_reader_buffers(struct queue_wrap *w)
{
	free(w->reader_slot);
	w->reader_slot = NULL;
	free(w->handoff);
	w->handoff = NULL;
}

static void release_queue(struct watched *base)
{
	struct queue_wrap *w = (struct queue_wrap *)base;
	stop_reader(w);
	pthread_mutex_lock(&g_fast_lock);
	drop_fast_path(w);
	pthread_mutex_unlock(&g_fast_lock);
	bq_queue_close(w->q);
	w->q = NULL;
	free_reader_buffers(w);
	pthread_mutex_destroy(&w->lock);
	napi_delete_reference(base->env, w->on_batch);
	napi_delete_reference(base->env, w->on_error);
	napi_delete_reference(base->env, w->slots_ref);
}

/* queueOpen(options, onBatch(count, answeredWaiting), onError(err)) -> { handle, slots: ArrayBuffer, slotSize, batchMax } */
static napi_value queue_open(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value argv[3];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 3) {
		napi_throw_type_error(env, "EINVAL", "queueOpen(options, onBatch, onError)");
		return NULL;
	}
	struct bq_queue_options opts = {
		.queue_num = (uint16_t)get_u32_prop(env, argv[0], "queueNum", 1),
		.copy_range = get_u32_prop(env, argv[0], "copyRange", 256),
		.max_len = get_u32_prop(env, argv[0], "maxLen", 4096),
		.rcvbuf_bytes = get_u32_prop(env, argv[0], "rcvbufBytes", 8u << 20),
		.fail_open = get_bool_prop(env, argv[0], "failOpen", true),
	};
	uint32_t batch_max = get_u32_prop(env, argv[0], "batchMax", 64);
	if (batch_max == 0 || batch_max > BQ_MAX_BATCH)
		batch_max = BQ_MAX_BATCH;
	uint32_t exception_verdict = get_u32_prop(env, argv[0], "exceptionVerdict", 0);
	if (get_u32_prop(env, argv[0], "queueNum", 1) > 65535 || opts.copy_range == 0 || opts.copy_range > 65535 ||
	    exception_verdict > 1) {
		napi_throw_range_error(env, "EINVAL", "queueNum 0..65535, copyRange 1..65535, exceptionVerdict 0|1");
		return NULL;
	}

	struct queue_wrap *w = calloc(1, sizeof(*w));
	if (!w)
		return throw_errno(env, -ENOMEM, "queueOpen");
	w->base.h.kind = KIND_QUEUE;
	w->base.release = release_queue;
	w->batch_max = (int)batch_max;
	w->exception_verdict = exception_verdict;
	w->fail_open = opts.fail_open;
	/* Header plus the copy range, rounded up so each slot header stays 8-byte aligned. */
	w->slot_size = (sizeof(struct bq_slot_header) + opts.copy_range + 7) & ~(size_t)7;
	w->handoff_max = BQ_HANDOFF_SLOTS;
	w->reader_slot = malloc(w->slot_size);
	w->handoff = malloc((size_t)w->handoff_max * w->slot_size);
	const char *what = "queueOpen buffer";
	int err = w->reader_slot && w->handoff ? -pthread_mutex_init(&w->lock, NULL) : -ENOMEM;
	bool lock_ready = err == 0;
	if (err == 0) {
		what = "cannot bind NFQUEUE (is another program using this queue number? CAP_NET_ADMIN?)";
		err = bq_queue_open(&w->q, &opts);
	}
	napi_value slots, handle, result, v;
	void *data = NULL;
	if (err == 0 && napi_create_arraybuffer(env, w->slot_size * batch_max, &data, &slots) != napi_ok) {
		bq_queue_close(w->q);
		what = "queueOpen buffer";
		err = -ENOMEM;
	}
	if (err < 0) {
		if (lock_ready)
			pthread_mutex_destroy(&w->lock);
		free_reader_buffers(w);
		free(w);
		return throw_errno(env, err, what);
	}
	w->slots = data;
	napi_create_reference(env, slots, 1, &w->slots_ref);
	napi_create_reference(env, argv[1], 1, &w->on_batch);
	napi_create_reference(env, argv[2], 1, &w->on_error);
	handle = start_handle(env, &w->base, "BastionQueue", -1, NULL, on_wake);
	if (!handle)
		return NULL;
	err = bq_queue_wait_mode(w->q, BQ_READER_TIMEOUT_MS);
	if (err == 0)
		err = -pthread_create(&w->reader, NULL, reader_main, w);
	if (err < 0) {
		close_watched(&w->base, false);
		return throw_errno(env, err, "queueOpen reader thread");
	}
	w->reader_started = true;
	NAPI_CALL(env, napi_create_object(env, &result));
	napi_set_named_property(env, result, "handle", handle);
	napi_set_named_property(env, result, "slots", slots);
	napi_create_uint32(env, (uint32_t)w->slot_size, &v);
	napi_set_named_property(env, result, "slotSize", v);
	napi_create_uint32(env, batch_max, &v);
	napi_set_named_property(env, result, "batchMax", v);
	return result;
}

/* queueVerdict(handle, packetId, accept: boolean, mark?: number) -> 0 or -errno */
static napi_value queue_verdict(napi_env env, napi_callback_info info)
{
	size_t argc;
	napi_value argv[4];
	struct queue_wrap *w = queue_call(env, info, 4, 3, argv, &argc, "queueVerdict(handle, packetId, accept, mark?)");
	if (!w)
		return NULL;
	uint32_t id, mark = 0;
	bool accept;
	NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &id));
	NAPI_CALL(env, napi_get_value_bool(env, argv[2], &accept));
	bool set_mark = false;
	if (argc >= 4) {
		napi_valuetype t;
		napi_typeof(env, argv[3], &t);
		if (t == napi_number) {
			NAPI_CALL(env, napi_get_value_uint32(env, argv[3], &mark));
			set_mark = true;
		}
	}
	int rc = w->base.closed ? -EBADF : bq_queue_verdict(w->q, id, accept ? 1 : 0, set_mark, mark);
	if (rc == 0 && w->in_batch)
		for (int i = 0; i < w->batch_count; i++)
			if (w->batch_ids[i] == id)
				w->batch_done[i] = true;
	napi_value out;
	NAPI_CALL(env, napi_create_int32(env, rc, &out));
	return out;
}

/* queueReject(handle, packetId, mark) -> 0 or -errno: the packet goes through the hook again
 * with `mark`, which our chain's REJECT rule matches (a TCP reset or an ICMP unreachable for
 * the program, at once, instead of a dropped SYN it retries until its own timeout). */
static napi_value queue_reject(napi_env env, napi_callback_info info)
{
	size_t argc;
	napi_value argv[3];
	struct queue_wrap *w = queue_call(env, info, 3, 3, argv, &argc, "queueReject(handle, packetId, mark)");
	if (!w)
		return NULL;
	uint32_t id, mark;
	NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &id));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &mark));
	int rc = w->base.closed ? -EBADF : bq_queue_reject(w->q, id, mark);
	if (rc == 0 && w->in_batch)
		for (int i = 0; i < w->batch_count; i++)
			if (w->batch_ids[i] == id)
				w->batch_done[i] = true;
	napi_value out;
	NAPI_CALL(env, napi_create_int32(env, rc, &out));
	return out;
}

static napi_value queue_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct queue_wrap *w = argc ? get_handle(env, argv[0], KIND_QUEUE, QUEUE_EXPECTED) : NULL;
	if (!w)
		return NULL;
	struct bq_counters c = {0};
	struct bq_fast_counters f = {0};
	uint64_t fast_decided = 0, handoff_full = 0;
	if (!w->base.closed) {
		bq_queue_counters(w->q, &c);
		pthread_mutex_lock(&g_fast_lock);
		if (w->fast)
			f = *bq_fast_path_counters(w->fast);
		fast_decided = w->answered_total;
		pthread_mutex_unlock(&g_fast_lock);
		pthread_mutex_lock(&w->lock);
		handoff_full = w->handoff_full;
		pthread_mutex_unlock(&w->lock);
	}
	NAPI_CALL(env, napi_create_object(env, &out));
	const struct {
		const char *name;
		uint64_t value;
	} fields[] = {
		{"packets", c.packets},
		{"overruns", c.overruns},
		{"verdictErrors", c.verdict_errors},
		{"badMessages", c.bad_messages},
		{"handoffFull", handoff_full},
		{"fastDecided", fast_decided},
		{"fastEventsPending", f.events_pending},
		{"fastMissed", f.missed},
		{"fastByFlow", f.by_flow},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		napi_create_double(env, (double)fields[i].value, &v);
		napi_set_named_property(env, out, fields[i].name, v);
	}
	return out;
}

static napi_value queue_close(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, KIND_QUEUE, QUEUE_EXPECTED);
}
/* ---- sock_diag ---- */

struct sock_diag_wrap {
	struct handle h; /* first: the handle; JS is its only owner */
	struct bq_sock_diag *d;
};

static void sock_diag_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	struct sock_diag_wrap *w = data;
	bq_sock_diag_close(w->d);
	free(w);
}

static napi_value sock_diag_open(napi_env env, napi_callback_info info)
{
	(void)info;
	struct sock_diag_wrap *w = calloc(1, sizeof(*w));
	if (!w)
		return throw_errno(env, -ENOMEM, "sockDiagOpen");
	w->h.kind = KIND_SOCK_DIAG;
	int err = bq_sock_diag_open(&w->d);
	if (err < 0) {
		free(w);
		return throw_errno(env, err, "cannot open NETLINK_SOCK_DIAG");
	}
	napi_value handle;
	if (napi_create_external(env, w, sock_diag_finalize, NULL, &handle) != napi_ok) {
		sock_diag_finalize(env, w, NULL);
		return throw_errno(env, -ENOMEM, "napi_create_external");
	}
	w->h.js_holds = true;
	return handle;
}

/* What sockDiagLookup writes where in its out array (exported as sockDiagOut): the socket,
 * then its recorded caller (caller_bpf.h). 64-bit values as two halves, low first. */
enum sock_diag_out {
	OUT_INODE,
	OUT_UID,
	OUT_STATE,
	OUT_CALLER_TGID, /* 0: none recorded (or callers not attached) */
	OUT_CALLER_FLAGS, /* OUT_F_* */
	OUT_CALLER_UID,
	OUT_CALLER_START_LO, /* its start, clock ticks since boot (/proc/PID/stat field 22) */
	OUT_CALLER_START_HI,
	OUT_CALLER_EXE_DEV_LO, /* its executable's device as stat(2) reports it (st_dev) */
	OUT_CALLER_EXE_DEV_HI,
	OUT_CALLER_EXE_INO_LO,
	OUT_CALLER_EXE_INO_HI,
	OUT_LENGTH,
};
#define OUT_F_ATTACHED 1u /* callers are recorded: no record means no known caller */
#define OUT_F_RECORDED 2u /* a record was found */
#define OUT_F_EXE 4u      /* the record has the executable and start time */

/* The record's caller fields into out (OUT_LENGTH elements). */
static void put_caller(uint32_t *o, const struct bq_socket_owner *owner)
{
	memset(o + OUT_CALLER_TGID, 0, (OUT_LENGTH - OUT_CALLER_TGID) * sizeof(uint32_t));
	if (!g_caller)
		return;
	o[OUT_CALLER_FLAGS] = OUT_F_ATTACHED;
	struct bq_caller_record r;
	if (bq_caller_lookup(g_caller, owner->cookie, &r) != 0)
		return;
	o[OUT_CALLER_FLAGS] |= OUT_F_RECORDED;
	o[OUT_CALLER_TGID] = r.tgid;
	o[OUT_CALLER_UID] = r.uid;
	if (!(r.flags & BQ_CALLER_F_EXE))
		return;
	o[OUT_CALLER_FLAGS] |= OUT_F_EXE;
	/* The kernel's nsec_to_clock_t(), as /proc/PID/stat computes field 22. */
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t ticks = r.start_ns / (1000000000u / (uint64_t)(hz > 0 ? hz : 100));
	/* The kernel's s_dev is MAJOR << 20 | MINOR; stat(2) reports glibc's makedev() encoding. */
	uint64_t dev = makedev(r.exe_dev >> 20, r.exe_dev & 0xfffff);
	o[OUT_CALLER_START_LO] = (uint32_t)ticks;
	o[OUT_CALLER_START_HI] = (uint32_t)(ticks >> 32);
	o[OUT_CALLER_EXE_DEV_LO] = (uint32_t)dev;
	o[OUT_CALLER_EXE_DEV_HI] = (uint32_t)(dev >> 32);
	o[OUT_CALLER_EXE_INO_LO] = (uint32_t)r.exe_ino;
	o[OUT_CALLER_EXE_INO_HI] = (uint32_t)(r.exe_ino >> 32);
}

/* sockDiagLookup(handle, family(2|10), protocol, src: Uint8Array, sport, dst: Uint8Array, dport, out: Uint32Array(3|sockDiagOut.length)) -> 0 or -errno
 * out: inode, uid, state and, when long enough, the caller the kernel recorded (sockDiagOut). */
static napi_value sock_diag_lookup(napi_env env, napi_callback_info info)
{
	size_t argc = 8;
	napi_value argv[8];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 8) {
		napi_throw_type_error(env, "EINVAL", "sockDiagLookup(handle, family, protocol, src, sport, dst, dport, out)");
		return NULL;
	}
	struct sock_diag_wrap *w = get_handle(env, argv[0], KIND_SOCK_DIAG, "expected a sock_diag handle");
	if (!w)
		return NULL;
	uint32_t family, protocol, sport, dport;
	NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &family));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &protocol));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[4], &sport));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[6], &dport));

	napi_typedarray_type t;
	size_t src_len, dst_len, out_len;
	void *src, *dst, *out;
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[3], &t, &src_len, &src, NULL, NULL));
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[5], &t, &dst_len, &dst, NULL, NULL));
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[7], &t, &out_len, &out, NULL, NULL));
	size_t want = family == 2 ? 4 : 16;
	if (t != napi_uint32_array || out_len < 3 || src_len < want || dst_len < want || sport > 65535 || dport > 65535) {
		napi_throw_range_error(env, "EINVAL", "sockDiagLookup: bad address, port or output array");
		return NULL;
	}
	struct bq_socket_owner owner = {0};
	int rc = bq_sock_diag_lookup(w->d, (uint8_t)family, (uint8_t)protocol, src, (uint16_t)sport, dst, (uint16_t)dport, &owner);
	if (rc == 0) {
		uint32_t *o = out;
		o[0] = owner.inode;
		o[1] = owner.uid;
		o[2] = owner.state;
		if (out_len >= OUT_LENGTH)
			put_caller(o, &owner);
	}
	napi_value ret;
	NAPI_CALL(env, napi_create_int32(env, rc, &ret));
	return ret;
}

/* sockDiagDestroy(handle, family(2|10), protocol, src: Uint8Array, sport, dst: Uint8Array, dport) -> 0 or -errno */
static napi_value sock_diag_destroy(napi_env env, napi_callback_info info)
{
	size_t argc = 7;
	napi_value argv[7];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 7) {
		napi_throw_type_error(env, "EINVAL", "sockDiagDestroy(handle, family, protocol, src, sport, dst, dport)");
		return NULL;
	}
	struct sock_diag_wrap *w = get_handle(env, argv[0], KIND_SOCK_DIAG, "expected a sock_diag handle");
	if (!w)
		return NULL;
	uint32_t family, protocol, sport, dport;
	NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &family));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[2], &protocol));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[4], &sport));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[6], &dport));
	napi_typedarray_type t1, t2;
	size_t src_len, dst_len;
	void *src, *dst;
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[3], &t1, &src_len, &src, NULL, NULL));
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[5], &t2, &dst_len, &dst, NULL, NULL));
	size_t want = family == 2 ? 4 : 16;
	if (t1 != napi_uint8_array || t2 != napi_uint8_array || src_len < want || dst_len < want || sport > 65535 || dport > 65535) {
		napi_throw_range_error(env, "EINVAL", "sockDiagDestroy: bad address or port");
		return NULL;
	}
	int rc = bq_sock_diag_destroy(w->d, (uint8_t)family, (uint8_t)protocol, src, (uint16_t)sport, dst, (uint16_t)dport);
	napi_value ret;
	NAPI_CALL(env, napi_create_int32(env, rc, &ret));
	return ret;
}

/* ---- connect()/sendmsg() callers (caller_bpf.h) ---- */

/* callerAttach(cgroup2Path) -> {exe, flows, log}: whether records carry the executable, whether
 * TCP connections are recorded by their ends, and libbpf's log of a load that failed on the way
 * (why the executable is not recorded). Throws (errno, stage, log with the verifier's words) when
 * the kernel or our capabilities allow none of it. Attached already: the same answer. */
static napi_value caller_attach(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	char path[4096];
	size_t len;
	bool verdicts = false;
	if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok || len == 0 ||
	    len >= sizeof(path) - 1 || (argc >= 2 && napi_get_value_bool(env, argv[1], &verdicts) != napi_ok)) {
		napi_throw_type_error(env, "EINVAL", "callerAttach(cgroup2Path, verdicts)");
		return NULL;
	}
	static char log[8192];
	if (!g_caller) {
		const char *stage = NULL;
		struct bq_caller *caller = NULL;
		int err = bq_caller_open(&caller, path, verdicts, &stage, log, sizeof(log));
		pthread_mutex_lock(&g_fast_lock);
		g_caller = caller;
		pthread_mutex_unlock(&g_fast_lock);
		if (err < 0) {
			char what[64];
			snprintf(what, sizeof(what), "callerAttach: %s", stage ? stage : "?");
			throw_errno(env, err, what);
			napi_value error, log_val;
			if (napi_get_and_clear_last_exception(env, &error) == napi_ok &&
			    napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &log_val) == napi_ok)
				napi_set_named_property(env, error, "log", log_val);
			napi_throw(env, error);
			return NULL;
		}
	}
	napi_value out, v;
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_get_boolean(env, bq_caller_has_exe(g_caller), &v);
	napi_set_named_property(env, out, "exe", v);
	napi_get_boolean(env, bq_caller_has_flows(g_caller), &v);
	napi_set_named_property(env, out, "flows", v);
	napi_get_boolean(env, bq_caller_has_verdicts(g_caller), &v);
	napi_set_named_property(env, out, "verdicts", v);
	napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, out, "log", v);
	return out;
}

/* callerFlowLookup(family(2|10), src: Uint8Array, sport, dst: Uint8Array, dport) -> the tgid
 * that connected that TCP connection (caller_bpf.h), or -errno: -ENOENT not recorded,
 * -ENOTSUP without the flows program, -EBADF when nothing is attached. */
static napi_value caller_flow_lookup(napi_env env, napi_callback_info info)
{
	size_t argc = 5;
	napi_value argv[5], ret;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	uint32_t family = 0, sport = 0, dport = 0;
	napi_typedarray_type ts = napi_int8_array, td = napi_int8_array;
	size_t src_len = 0, dst_len = 0;
	void *src = NULL, *dst = NULL;
	if (argc < 5 || napi_get_value_uint32(env, argv[0], &family) != napi_ok ||
	    napi_get_typedarray_info(env, argv[1], &ts, &src_len, &src, NULL, NULL) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &sport) != napi_ok ||
	    napi_get_typedarray_info(env, argv[3], &td, &dst_len, &dst, NULL, NULL) != napi_ok ||
	    napi_get_value_uint32(env, argv[4], &dport) != napi_ok) {
		napi_throw_type_error(env, "EINVAL", "callerFlowLookup(family, src, sport, dst, dport)");
		return NULL;
	}
	size_t want = family == 2 ? 4 : 16;
	if ((family != 2 && family != 10) || ts != napi_uint8_array || td != napi_uint8_array || src_len < want ||
	    dst_len < want || sport > 65535 || dport > 65535) {
		napi_throw_range_error(env, "EINVAL", "callerFlowLookup: bad family, address or port");
		return NULL;
	}
	uint32_t tgid = 0;
	int rc = g_caller ? bq_caller_flow_lookup(g_caller, (uint8_t)family, src, (uint16_t)sport, dst, (uint16_t)dport, &tgid) : -EBADF;
	NAPI_CALL(env, napi_create_int64(env, rc == 0 ? (int64_t)tgid : rc, &ret));
	return ret;
}

/* callerHasFlows() -> whether TCP connections are recorded by their ends too. */
static napi_value caller_has_flows(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value ret;
	NAPI_CALL(env, napi_get_boolean(env, g_caller && bq_caller_has_flows(g_caller), &ret));
	return ret;
}

/* callerDetach() -> undefined: the programs are detached (they also are when the process dies). */
static napi_value caller_detach(napi_env env, napi_callback_info info)
{
	(void)env;
	(void)info;
	pthread_mutex_lock(&g_fast_lock);
	struct bq_caller *caller = g_caller;
	g_caller = NULL;
	pthread_mutex_unlock(&g_fast_lock);
	bq_caller_close(caller);
	return NULL;
}

/* ---- In-kernel verdicts (caller_bpf.h) ---- */

/* argv[0..3] = (dev, ino: bigint, protocol, port) -> *key; false when one is out of range. */
static bool verdict_key(napi_env env, napi_value *argv, struct bq_verdict_key *key)
{
	uint32_t dev = 0, protocol = 0, port = 0;
	uint64_t ino = 0;
	bool lossless = false;
	if (napi_get_value_uint32(env, argv[0], &dev) != napi_ok ||
	    napi_get_value_bigint_uint64(env, argv[1], &ino, &lossless) != napi_ok || !lossless ||
	    napi_get_value_uint32(env, argv[2], &protocol) != napi_ok || napi_get_value_uint32(env, argv[3], &port) != napi_ok ||
	    protocol > 255 || port > 65535)
		return false;
	memset(key, 0, sizeof(*key));
	key->exe_dev = dev;
	key->exe_ino = ino;
	key->protocol = (uint8_t)protocol;
	key->port = (uint16_t)port;
	return true;
}

/* kernelVerdictSet(dev, ino: bigint, protocol, port, allow) -> 0 or -errno (-EBADF: nothing attached). */
static napi_value kernel_verdict_set(napi_env env, napi_callback_info info)
{
	size_t argc = 5;
	napi_value argv[5], ret;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct bq_verdict_key key;
	bool allow = false;
	if (argc < 5 || !verdict_key(env, argv, &key) || napi_get_value_bool(env, argv[4], &allow) != napi_ok) {
		napi_throw_type_error(env, "EINVAL", "kernelVerdictSet(dev, ino, protocol, port, allow)");
		return NULL;
	}
	int rc = g_caller ? bq_caller_verdict_set(g_caller, &key, allow ? BQ_VERDICT_ALLOW : BQ_VERDICT_DENY) : -EBADF;
	NAPI_CALL(env, napi_create_int32(env, rc, &ret));
	return ret;
}

/* kernelVerdictDelete(dev, ino: bigint, protocol, port) -> 0 (also when absent) or -errno. */
static napi_value kernel_verdict_delete(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value argv[4], ret;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct bq_verdict_key key;
	if (argc < 4 || !verdict_key(env, argv, &key)) {
		napi_throw_type_error(env, "EINVAL", "kernelVerdictDelete(dev, ino, protocol, port)");
		return NULL;
	}
	int rc = g_caller ? bq_caller_verdict_delete(g_caller, &key) : -EBADF;
	NAPI_CALL(env, napi_create_int32(env, rc, &ret));
	return ret;
}

/* kernelVerdictClear() -> 0 or -errno: the kernel decides nothing until verdicts are set again. */
static napi_value kernel_verdict_clear(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value ret;
	NAPI_CALL(env, napi_create_int32(env, g_caller ? bq_caller_verdict_clear(g_caller) : 0, &ret));
	return ret;
}

/* kernelVerdictTake(out: Uint8Array) -> {count, lost}: the decisions reported since the last call,
 * BQ_VERDICT_EVENT_BYTES each (bq_verdict_event), and how many reports found no room; count
 * -errno on error. */
static napi_value kernel_verdict_take(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	napi_typedarray_type type = napi_int8_array;
	size_t len = 0;
	void *data = NULL;
	if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &len, &data, NULL, NULL) != napi_ok ||
	    type != napi_uint8_array) {
		napi_throw_type_error(env, "EINVAL", "kernelVerdictTake(out: Uint8Array)");
		return NULL;
	}
	uint64_t lost = 0;
	int count = g_caller ? bq_caller_verdict_take(g_caller, data, len / BQ_VERDICT_EVENT_BYTES, &lost) : 0;
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_create_int32(env, count, &v);
	napi_set_named_property(env, out, "count", v);
	napi_create_double(env, (double)lost, &v);
	napi_set_named_property(env, out, "lost", v);
	return out;
}

/* ---- SO_PEERCRED ---- */

static napi_value peer_cred(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	int32_t fd;
	if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
		napi_throw_type_error(env, "EINVAL", "peerCred(fd)");
		return NULL;
	}
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int rc = bq_peer_cred(fd, &pid, &uid, &gid);
	if (rc < 0)
		return throw_errno(env, rc, "SO_PEERCRED");
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_create_int32(env, pid, &v);
	napi_set_named_property(env, out, "pid", v);
	napi_create_uint32(env, uid, &v);
	napi_set_named_property(env, out, "uid", v);
	napi_create_uint32(env, gid, &v);
	napi_set_named_property(env, out, "gid", v);
	return out;
}

/* ---- sd_notify ---- */

/* sdNotify(socketPath: string, state: string) -> 0 or -errno */
static napi_value sd_notify(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	/* sun_path is 108 bytes; a notification state is a few short KEY=VALUE lines. */
	char path[128], state[4096];
	size_t path_len, state_len;
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], state, sizeof(state), &state_len) != napi_ok) {
		napi_throw_type_error(env, "EINVAL", "sdNotify(socketPath, state)");
		return NULL;
	}
	/* A string that filled its buffer may have been cut: refuse rather than send half. */
	int rc = -EMSGSIZE;
	if (path_len < sizeof(path) - 1 && state_len < sizeof(state) - 1)
		rc = bq_sd_notify(path, state, state_len);
	NAPI_CALL(env, napi_create_int32(env, rc, &out));
	return out;
}

/* unixDatagramSend(socketPath: string, data: string) -> 0 or -errno; never blocks (journald's
 * native protocol: service/journal/journald.ts). */
static napi_value unix_datagram_send(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	/* One journal entry: a few fields whose values the writer caps well below this. */
	char path[128], data[8192];
	size_t path_len, data_len;
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], data, sizeof(data), &data_len) != napi_ok) {
		napi_throw_type_error(env, "EINVAL", "unixDatagramSend(socketPath, data)");
		return NULL;
	}
	int rc = -EMSGSIZE;
	if (path_len < sizeof(path) - 1 && data_len < sizeof(data) - 1)
		rc = bq_unix_datagram_send(path, data, data_len, MSG_DONTWAIT);
	NAPI_CALL(env, napi_create_int32(env, rc, &out));
	return out;
}

/* ---- process events (NETLINK_CONNECTOR) ---- */

/* Polled on libuv's loop like the queue: JS is called when events are waiting, so it learns
 * about a new process while that process is still starting, before it connects. */
struct proc_events_wrap {
	struct watched base; /* first: the handle */
	struct bq_proc_events *e;
	napi_ref on_readable;
};

#define PROC_EVENTS_EXPECTED "expected a process events handle"

static void on_proc_events_readable(uv_poll_t *handle, int status, int events)
{
	(void)status; /* an error is read (and reported) by the drain itself */
	(void)events;
	struct proc_events_wrap *w = handle->data;
	if (w->base.closed)
		return;
	napi_env env = w->base.env;
	napi_handle_scope scope;
	if (napi_open_handle_scope(env, &scope) != napi_ok)
		return;
	napi_value cb, recv;
	if (napi_get_reference_value(env, w->on_readable, &cb) == napi_ok && napi_get_global(env, &recv) == napi_ok &&
	    napi_make_callback(env, w->base.async_ctx, recv, cb, 0, NULL, NULL) != napi_ok) {
		napi_value ignored; /* the JS side catches its own errors; nothing may unwind into libuv */
		napi_get_and_clear_last_exception(env, &ignored);
	}
	napi_close_handle_scope(env, scope);
}

static void release_proc_events(struct watched *base)
{
	struct proc_events_wrap *w = (struct proc_events_wrap *)base;
	bq_proc_events_close(w->e);
	w->e = NULL;
	napi_delete_reference(base->env, w->on_readable);
}

/* procEventsOpen(onReadable: () => void) -> handle; throws an Error with .errno when the kernel refuses */
static napi_value proc_events_open(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	napi_valuetype t = napi_undefined;
	if (argc >= 1)
		napi_typeof(env, argv[0], &t);
	if (t != napi_function) {
		napi_throw_type_error(env, "EINVAL", "procEventsOpen(onReadable)");
		return NULL;
	}
	struct proc_events_wrap *w = calloc(1, sizeof(*w));
	if (!w)
		return throw_errno(env, -ENOMEM, "procEventsOpen");
	w->base.h.kind = KIND_PROC_EVENTS;
	w->base.release = release_proc_events;
	int err = bq_proc_events_open(&w->e);
	if (err < 0) {
		free(w);
		return throw_errno(env, err, "cannot subscribe to process events (NETLINK_CONNECTOR)");
	}
	napi_create_reference(env, argv[0], 1, &w->on_readable);
	return start_handle(env, &w->base, "BastionProcessEvents", bq_proc_events_fd(w->e), on_proc_events_readable, NULL);
}

/* Under g_fast_lock: every fast path forgets the pids these events changed, or everything when
 * events were lost. JS does the same when it handles them; this only closes the moment between
 * the read and that. */
static void forget_changed_processes(const struct bq_proc_event *events, int count)
{
	for (int f = 0; f < BQ_MAX_FAST_PATHS; f++) {
		struct bq_fast_path *fp = g_fast_paths[f];
		if (!fp)
			continue;
		if (count < 0 && count != -EBADF) /* lost, or read and not returned: what we know is incomplete */
			bq_fast_path_clear(fp);
		for (int i = 0; i < count; i++) {
			bq_fast_path_disarm(fp, events[i].pid);
			if (events[i].type == BQ_PROC_FORK)
				bq_fast_path_disarm(fp, events[i].ppid);
		}
	}
}

/* procEventsRead(handle, out: Int32Array of (type, pid, ppid) triples) -> count or -errno */
static napi_value proc_events_read(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], ret;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct proc_events_wrap *w = argc >= 2 ? get_handle(env, argv[0], KIND_PROC_EVENTS, PROC_EVENTS_EXPECTED) : NULL;
	if (!w)
		return NULL;
	napi_typedarray_type t;
	size_t len;
	void *data;
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[1], &t, &len, &data, NULL, NULL));
	if (t != napi_int32_array || len < 3) {
		napi_throw_range_error(env, "EINVAL", "procEventsRead: out must be an Int32Array of at least 3");
		return NULL;
	}
	_Static_assert(sizeof(struct bq_proc_event) == 3 * sizeof(int32_t), "events are int32 triples");
	int rc = -EBADF;
	if (!w->base.closed) {
		/* Read and applied at once: no fast path decides between the two (g_fast_lock). */
		pthread_mutex_lock(&g_fast_lock);
		rc = bq_proc_events_read(w->e, data, (int)(len / 3));
		forget_changed_processes(data, rc);
		pthread_mutex_unlock(&g_fast_lock);
	}
	NAPI_CALL(env, napi_create_int32(env, rc, &ret));
	return ret;
}

static napi_value proc_events_close(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, KIND_PROC_EVENTS, PROC_EVENTS_EXPECTED);
}

/* ---- the queue's fast path (fast_path.h) ---- */

/* queueFastPathEnable(queue, procEvents) -> undefined; throws when it cannot be set up. */
static napi_value queue_fast_path_enable(napi_env env, napi_callback_info info)
{
	size_t argc;
	napi_value argv[2];
	struct queue_wrap *w = queue_call(env, info, 2, 2, argv, &argc, "queueFastPathEnable(queue, procEvents)");
	if (!w)
		return NULL;
	struct proc_events_wrap *e = get_handle(env, argv[1], KIND_PROC_EVENTS, PROC_EVENTS_EXPECTED);
	if (!e)
		return NULL;
	if (w->base.closed || e->base.closed)
		return throw_errno(env, -EBADF, "queueFastPathEnable");
	pthread_mutex_lock(&g_fast_lock);
	int err = 0;
	if (!w->fast) {
		int free_at = -1;
		for (int i = BQ_MAX_FAST_PATHS - 1; i >= 0; i--)
			if (!g_fast_paths[i])
				free_at = i;
		size_t by_bytes = BQ_FAST_ANSWERED_BYTES / w->slot_size;
		w->answered_max = by_bytes < BQ_FAST_ANSWERED_MAX ? (int)by_bytes : BQ_FAST_ANSWERED_MAX;
		if (w->answered_max < 1)
			w->answered_max = 1;
		w->answered = malloc((size_t)w->answered_max * w->slot_size);
		w->answered_keys = calloc((size_t)w->answered_max, sizeof(struct answered_key));
		err = free_at < 0 ? -EMFILE : !w->answered || !w->answered_keys ? -ENOMEM : bq_fast_path_open(&w->fast, bq_proc_events_fd(e->e));
		if (err < 0)
			drop_fast_path(w);
		else
			g_fast_paths[free_at] = w->fast;
	}
	pthread_mutex_unlock(&g_fast_lock);
	return err < 0 ? throw_errno(env, err, "queueFastPathEnable") : NULL;
}

/* The queue's fast path, or NULL (and nothing to do) when it is closed or was never enabled. */
static struct bq_fast_path *fast_path_of(const struct queue_wrap *w)
{
	return w->base.closed ? NULL : w->fast;
}

/* queueFastPathArm(queue, token, pid, uid, fds: Int32Array, protocol, port, accept, mark: number|undefined, ttlMs) -> 0 or -errno */
static napi_value queue_fast_path_arm(napi_env env, napi_callback_info info)
{
	size_t argc;
	napi_value argv[10], ret;
	struct queue_wrap *w =
		queue_call(env, info, 10, 10, argv, &argc, "queueFastPathArm(queue, token, pid, uid, fds, protocol, port, accept, mark, ttlMs)");
	if (!w)
		return NULL;
	struct bq_fast_path *fp = fast_path_of(w);
	int32_t pid;
	uint32_t token, uid, protocol, port, mark = 0, ttl_ms;
	bool accept;
	NAPI_CALL(env, napi_get_value_uint32(env, argv[1], &token));
	NAPI_CALL(env, napi_get_value_int32(env, argv[2], &pid));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[3], &uid));
	napi_typedarray_type t;
	size_t n_fds;
	void *fds;
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[4], &t, &n_fds, &fds, NULL, NULL));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[5], &protocol));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[6], &port));
	NAPI_CALL(env, napi_get_value_bool(env, argv[7], &accept));
	napi_valuetype mark_type;
	NAPI_CALL(env, napi_typeof(env, argv[8], &mark_type));
	if (mark_type == napi_number)
		NAPI_CALL(env, napi_get_value_uint32(env, argv[8], &mark));
	NAPI_CALL(env, napi_get_value_uint32(env, argv[9], &ttl_ms));
	int rc;
	if (t != napi_int32_array || n_fds > BQ_FAST_FDS || protocol > 255 || port > 65535)
		rc = -EINVAL;
	else if (!fp)
		rc = -EBADF;
	else {
		pthread_mutex_lock(&g_fast_lock);
		rc = bq_fast_path_arm(fp, token, pid, uid, fds, (int)n_fds, (uint8_t)protocol, (uint16_t)port, accept,
				      mark_type == napi_number, mark, ttl_ms);
		pthread_mutex_unlock(&g_fast_lock);
	}
	NAPI_CALL(env, napi_create_int32(env, rc, &ret));
	return ret;
}

/* queueFastPathDisarm(queue, pid); queueFastPathDisarm(queue) clears every entry. */
static napi_value queue_fast_path_disarm(napi_env env, napi_callback_info info)
{
	size_t argc;
	napi_value argv[2];
	struct queue_wrap *w = queue_call(env, info, 2, 1, argv, &argc, "queueFastPathDisarm(queue, pid?)");
	struct bq_fast_path *fp = w ? fast_path_of(w) : NULL;
	if (!fp)
		return NULL;
	napi_valuetype pid_type = napi_undefined;
	if (argc >= 2)
		NAPI_CALL(env, napi_typeof(env, argv[1], &pid_type));
	int32_t pid = 0;
	if (pid_type == napi_number)
		NAPI_CALL(env, napi_get_value_int32(env, argv[1], &pid));
	pthread_mutex_lock(&g_fast_lock);
	if (pid_type != napi_number)
		bq_fast_path_clear(fp);
	else
		bq_fast_path_disarm(fp, pid);
	pthread_mutex_unlock(&g_fast_lock);
	return NULL;
}

/* queueFastPathTake(queue) -> how many answered packets were copied into the slots buffer
 * (at most batchMax; call again until 0), or -EBUSY inside a batch, whose slots they would overwrite. */
static napi_value queue_fast_path_take(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], ret;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct queue_wrap *w = argc ? get_handle(env, argv[0], KIND_QUEUE, QUEUE_EXPECTED) : NULL;
	if (!w)
		return NULL;
	int taken = 0;
	if (w->in_batch) {
		taken = -EBUSY;
	} else if (!w->base.closed) {
		pthread_mutex_lock(&g_fast_lock);
		if (w->answered) {
			taken = w->answered_count < w->batch_max ? w->answered_count : w->batch_max;
			memcpy(w->slots, w->answered, (size_t)taken * w->slot_size);
			w->answered_count -= taken;
			memmove(w->answered, w->answered + (size_t)taken * w->slot_size, (size_t)w->answered_count * w->slot_size);
			memmove(w->answered_keys, w->answered_keys + taken, (size_t)w->answered_count * sizeof(struct answered_key));
			if (w->answered_count == 0)
				w->answered_signalled = false;
		}
		pthread_mutex_unlock(&g_fast_lock);
	}
	NAPI_CALL(env, napi_create_int32(env, taken, &ret));
	return ret;
}

/* flowParse(hwProtocol, packet: Uint8Array) -> { family, protocol, srcPort, dstPort } | null (for tests) */
static napi_value flow_parse(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2], out, v;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	uint32_t hw;
	napi_typedarray_type t;
	size_t len;
	void *data;
	if (argc < 2 || napi_get_value_uint32(env, argv[0], &hw) != napi_ok ||
	    napi_get_typedarray_info(env, argv[1], &t, &len, &data, NULL, NULL) != napi_ok || t != napi_uint8_array) {
		napi_throw_type_error(env, "EINVAL", "flowParse(hwProtocol, packet: Uint8Array)");
		return NULL;
	}
	struct bq_flow flow;
	if (!bq_flow_parse((uint16_t)hw, data, (uint32_t)len, &flow)) {
		NAPI_CALL(env, napi_get_null(env, &out));
		return out;
	}
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_create_uint32(env, flow.family == AF_INET ? 4 : 6, &v);
	napi_set_named_property(env, out, "family", v);
	napi_create_uint32(env, flow.protocol, &v);
	napi_set_named_property(env, out, "protocol", v);
	napi_create_uint32(env, flow.src_port, &v);
	napi_set_named_property(env, out, "srcPort", v);
	napi_create_uint32(env, flow.dst_port, &v);
	napi_set_named_property(env, out, "dstPort", v);
	return out;
}

static napi_value init(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{"queueOpen", NULL, queue_open, NULL, NULL, NULL, napi_default, NULL},
		{"queueVerdict", NULL, queue_verdict, NULL, NULL, NULL, napi_default, NULL},
		{"queueReject", NULL, queue_reject, NULL, NULL, NULL, napi_default, NULL},
		{"queueCounters", NULL, queue_counters, NULL, NULL, NULL, napi_default, NULL},
		{"queueClose", NULL, queue_close, NULL, NULL, NULL, napi_default, NULL},
		{"sockDiagOpen", NULL, sock_diag_open, NULL, NULL, NULL, napi_default, NULL},
		{"sockDiagLookup", NULL, sock_diag_lookup, NULL, NULL, NULL, napi_default, NULL},
		{"sockDiagDestroy", NULL, sock_diag_destroy, NULL, NULL, NULL, napi_default, NULL},
		{"peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_default, NULL},
		{"sdNotify", NULL, sd_notify, NULL, NULL, NULL, napi_default, NULL},
		{"unixDatagramSend", NULL, unix_datagram_send, NULL, NULL, NULL, napi_default, NULL},
		{"procEventsOpen", NULL, proc_events_open, NULL, NULL, NULL, napi_default, NULL},
		{"procEventsRead", NULL, proc_events_read, NULL, NULL, NULL, napi_default, NULL},
		{"procEventsClose", NULL, proc_events_close, NULL, NULL, NULL, napi_default, NULL},
		{"queueFastPathEnable", NULL, queue_fast_path_enable, NULL, NULL, NULL, napi_default, NULL},
		{"queueFastPathArm", NULL, queue_fast_path_arm, NULL, NULL, NULL, napi_default, NULL},
		{"queueFastPathDisarm", NULL, queue_fast_path_disarm, NULL, NULL, NULL, napi_default, NULL},
		{"queueFastPathTake", NULL, queue_fast_path_take, NULL, NULL, NULL, napi_default, NULL},
		{"flowParse", NULL, flow_parse, NULL, NULL, NULL, napi_default, NULL},
		{"callerAttach", NULL, caller_attach, NULL, NULL, NULL, napi_default, NULL},
		{"callerDetach", NULL, caller_detach, NULL, NULL, NULL, napi_default, NULL},
		{"callerFlowLookup", NULL, caller_flow_lookup, NULL, NULL, NULL, napi_default, NULL},
		{"callerHasFlows", NULL, caller_has_flows, NULL, NULL, NULL, napi_default, NULL},
		{"kernelVerdictSet", NULL, kernel_verdict_set, NULL, NULL, NULL, napi_default, NULL},
		{"kernelVerdictDelete", NULL, kernel_verdict_delete, NULL, NULL, NULL, napi_default, NULL},
		{"kernelVerdictClear", NULL, kernel_verdict_clear, NULL, NULL, NULL, napi_default, NULL},
		{"kernelVerdictTake", NULL, kernel_verdict_take, NULL, NULL, NULL, napi_default, NULL},
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	napi_value v;
	napi_create_uint32(env, sizeof(struct bq_slot_header), &v);
	napi_set_named_property(env, exports, "slotHeaderSize", v);
	napi_create_uint32(env, BQ_FAST_FDS, &v);
	napi_set_named_property(env, exports, "fastPathFds", v);
	napi_value layout;
	napi_create_object(env, &layout);
	static const struct {
		const char *name;
		uint32_t value;
	} fields[] = {
		{"inode", OUT_INODE},
		{"uid", OUT_UID},
		{"state", OUT_STATE},
		{"callerTgid", OUT_CALLER_TGID},
		{"callerFlags", OUT_CALLER_FLAGS},
		{"callerUid", OUT_CALLER_UID},
		{"callerStartLo", OUT_CALLER_START_LO},
		{"callerStartHi", OUT_CALLER_START_HI},
		{"callerExeDevLo", OUT_CALLER_EXE_DEV_LO},
		{"callerExeDevHi", OUT_CALLER_EXE_DEV_HI},
		{"callerExeInoLo", OUT_CALLER_EXE_INO_LO},
		{"callerExeInoHi", OUT_CALLER_EXE_INO_HI},
		{"length", OUT_LENGTH},
		{"flagAttached", OUT_F_ATTACHED},
		{"flagRecorded", OUT_F_RECORDED},
		{"flagExe", OUT_F_EXE},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		napi_create_uint32(env, fields[i].value, &v);
		napi_set_named_property(env, layout, fields[i].name, v);
	}
	napi_set_named_property(env, exports, "sockDiagOut", layout);
	/* The in-kernel decisions' report (bq_verdict_event) as kernelVerdictTake() copies it. */
	static const struct {
		const char *name;
		uint32_t value;
	} event_fields[] = {
		{"bytes", BQ_VERDICT_EVENT_BYTES},
		{"exeIno", offsetof(struct bq_verdict_event, exe_ino)},
		{"startNs", offsetof(struct bq_verdict_event, start_ns)},
		{"exeDev", offsetof(struct bq_verdict_event, exe_dev)},
		{"tgid", offsetof(struct bq_verdict_event, tgid)},
		{"uid", offsetof(struct bq_verdict_event, uid)},
		{"family", offsetof(struct bq_verdict_event, family)},
		{"protocol", offsetof(struct bq_verdict_event, protocol)},
		{"verdict", offsetof(struct bq_verdict_event, verdict)},
		{"dstPort", offsetof(struct bq_verdict_event, dst_port)},
		{"rulePort", offsetof(struct bq_verdict_event, rule_port)},
		{"dstAddr", offsetof(struct bq_verdict_event, dst_addr)},
		{"comm", offsetof(struct bq_verdict_event, comm)},
		{"commBytes", sizeof(((struct bq_verdict_event *)0)->comm)},
		{"allow", BQ_VERDICT_ALLOW},
		{"deny", BQ_VERDICT_DENY},
		{"acceptMark", BQ_KERNEL_ACCEPT_MARK},
	};
	napi_value event_layout;
	napi_create_object(env, &event_layout);
	for (size_t i = 0; i < sizeof(event_fields) / sizeof(event_fields[0]); i++) {
		napi_create_uint32(env, event_fields[i].value, &v);
		napi_set_named_property(env, event_layout, event_fields[i].name, v);
	}
	napi_set_named_property(env, exports, "verdictEvent", event_layout);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
