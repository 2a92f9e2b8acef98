/* The queue's bindings over queue_reader.c: a reader thread per queue hands packets to the loop,
 * which calls JS once per wake-up with a whole batch, written into an ArrayBuffer allocated once.
 * A JS exception in that call can neither crash the process nor strand a packet: unanswered
 * packets of the batch get the exception verdict. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind_queue.h"

/* The slot layout JS reads (exported as slotLayout): pinned here so that a field moved, resized
 * or padded differently is a build error rather than misread packets. */
#define SLOT_FIELD(field, offset, size)                                                               \
	_Static_assert(offsetof(struct bq_slot_header, field) == (offset), "slot layout: " #field);   \
	_Static_assert(sizeof(((struct bq_slot_header *)0)->field) == (size), "slot layout: " #field)
SLOT_FIELD(packet_id, 0, 4);
SLOT_FIELD(hw_protocol, 4, 2);
SLOT_FIELD(hook, 6, 1);
SLOT_FIELD(flags, 7, 1);
SLOT_FIELD(mark, 8, 4);
SLOT_FIELD(indev, 12, 4);
SLOT_FIELD(outdev, 16, 4);
SLOT_FIELD(uid, 20, 4);
SLOT_FIELD(gid, 24, 4);
SLOT_FIELD(cap_len, 28, 4);
SLOT_FIELD(orig_len, 32, 4);
SLOT_FIELD(fast_inode, 36, 4);
SLOT_FIELD(fast_token, 40, 4);
SLOT_FIELD(fast_repeats, 44, 4);
_Static_assert(sizeof(struct bq_slot_header) == 48, "slot layout: header size");
_Static_assert(sizeof(struct bq_slot_header) % 8 == 0, "each slot header stays 8-byte aligned");

struct queue_wrap *queue_call(napi_env env, napi_callback_info info, size_t max, size_t min, napi_value *argv,
			      size_t *argc, const char *usage)
{
	*argc = max;
	NAPI_CALL(env, napi_get_cb_info(env, info, argc, argv, NULL, NULL));
	if (*argc < min) {
		throw_usage(env, usage);
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

/* Reader thread: the loop must collect (uv_async_send is the one libuv call safe from any thread). */
static void wake_loop(void *arg)
{
	struct queue_wrap *w = arg;
	uv_async_send(&w->base.uv.async);
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

	struct bq_collected got;
	bq_reader_collect(w->reader, w->slots, w->batch_max, &got);
	if (got.error)
		report_errno(w, got.error, "queue read");

	/* The error handler may have closed the queue, and the reader with it. */
	if (!w->base.closed && (got.count > 0 || got.answered_waiting)) {
		napi_value cb, recv, argv[2];
		napi_status st = napi_get_reference_value(env, w->on_batch, &cb);
		if (st == napi_ok)
			st = napi_get_global(env, &recv);
		if (st == napi_ok)
			st = napi_create_int32(env, got.count, &argv[0]);
		if (st == napi_ok)
			st = napi_get_boolean(env, got.answered_waiting, &argv[1]);
		if (st == napi_ok)
			st = napi_make_callback(env, w->base.async_ctx, recv, cb, 2, argv, NULL);
		/* A handler that threw leaves its exception pending: clear it always (even when it
		 * closed the queue first), or N-API would throw it again at JS's next native call. */
		napi_value exc = NULL;
		if (st != napi_ok) {
			bool pending = false;
			napi_is_exception_pending(env, &pending);
			if (pending)
				napi_get_and_clear_last_exception(env, &exc);
		}
		if (!w->base.closed) {
			/* The handler threw: every packet it did not answer gets the exception verdict. */
			bq_reader_batch_end(w->reader, st != napi_ok);
			if (st != napi_ok) {
				if (exc)
					call_on_error(w, exc);
				else
					report_errno(w, -EPROTO, "queue batch callback failed");
			}
		}
	}
	/* The rest wait for the next loop turn. */
	if (got.more && !w->base.closed)
		uv_async_send(&w->base.uv.async);
	napi_close_handle_scope(env, scope);
}

static void release_queue(struct watched *base)
{
	struct queue_wrap *w = (struct queue_wrap *)base;
	bq_reader_close(w->reader);
	w->reader = NULL;
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
	if (argc < 3)
		return throw_usage(env, "queueOpen(options, onBatch, onError)");
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
	w->slot_size = bq_reader_slot_size(opts.copy_range);
	const struct bq_reader_options reader_opts = {
		.copy_range = opts.copy_range,
		.fail_open = opts.fail_open,
		.exception_verdict = exception_verdict,
		.wake = wake_loop,
		.wake_arg = w,
	};
	int err = bq_reader_open(&w->reader, &opts, &reader_opts);
	const char *what = err == -ENOMEM ? "queueOpen buffer"
					  : "cannot bind NFQUEUE (is another program using this queue number? CAP_NET_ADMIN?)";
	napi_value slots, handle, result, v;
	void *data = NULL;
	if (err == 0 && napi_create_arraybuffer(env, w->slot_size * batch_max, &data, &slots) != napi_ok) {
		what = "queueOpen buffer";
		err = -ENOMEM;
	}
	if (err < 0) {
		bq_reader_close(w->reader);
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
	err = bq_reader_start(w->reader);
	if (err < 0) {
		close_watched(&w->base);
		return throw_errno(env, err, "queueOpen reader thread");
	}
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
	return int32_result(env, w->base.closed ? -EBADF : bq_reader_verdict(w->reader, id, accept ? 1 : 0, set_mark, mark));
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
	return int32_result(env, w->base.closed ? -EBADF : bq_reader_reject(w->reader, id, mark));
}

static napi_value queue_counters(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct queue_wrap *w = argc ? get_handle(env, argv[0], KIND_QUEUE, QUEUE_EXPECTED) : NULL;
	if (!w)
		return NULL;
	struct bq_reader_counters c = {0};
	if (!w->base.closed)
		bq_reader_counters(w->reader, &c);
	NAPI_CALL(env, napi_create_object(env, &out));
	const struct {
		const char *name;
		uint64_t value;
	} fields[] = {
		{"packets", c.queue.packets},
		{"overruns", c.queue.overruns},
		{"verdictErrors", c.queue.verdict_errors},
		{"badMessages", c.queue.bad_messages},
		{"handoffFull", c.handoff_full},
		{"fastDecided", c.fast_decided},
		{"fastEventsPending", c.fast.events_pending},
		{"fastMissed", c.fast.missed},
		{"fastByFlow", c.fast.by_flow},
	};
	for (size_t i = 0; i < COUNT_OF(fields); i++) {
		napi_create_double(env, (double)fields[i].value, &v);
		napi_set_named_property(env, out, fields[i].name, v);
	}
	return out;
}

static napi_value queue_close(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, KIND_QUEUE, QUEUE_EXPECTED);
}

napi_status bind_queue_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"queueOpen", queue_open},
		{"queueVerdict", queue_verdict},
		{"queueReject", queue_reject},
		{"queueCounters", queue_counters},
		{"queueClose", queue_close},
	};
	/* Where each field of a slot's header lies (struct bq_slot_header), and its flags. */
	static const struct named_u32 slot_layout[] = {
		{"headerSize", sizeof(struct bq_slot_header)},
		{"packetId", offsetof(struct bq_slot_header, packet_id)},
		{"hwProtocol", offsetof(struct bq_slot_header, hw_protocol)},
		{"hook", offsetof(struct bq_slot_header, hook)},
		{"flags", offsetof(struct bq_slot_header, flags)},
		{"mark", offsetof(struct bq_slot_header, mark)},
		{"indev", offsetof(struct bq_slot_header, indev)},
		{"outdev", offsetof(struct bq_slot_header, outdev)},
		{"uid", offsetof(struct bq_slot_header, uid)},
		{"gid", offsetof(struct bq_slot_header, gid)},
		{"capLen", offsetof(struct bq_slot_header, cap_len)},
		{"origLen", offsetof(struct bq_slot_header, orig_len)},
		{"fastInode", offsetof(struct bq_slot_header, fast_inode)},
		{"fastToken", offsetof(struct bq_slot_header, fast_token)},
		{"fastRepeats", offsetof(struct bq_slot_header, fast_repeats)},
		{"flagUid", BQ_SLOT_F_UID},
		{"flagGid", BQ_SLOT_F_GID},
		{"flagFast", BQ_SLOT_F_FAST},
		{"flagFastAccept", BQ_SLOT_F_FAST_ACCEPT},
	};
	napi_status st = export_functions(env, exports, functions, COUNT_OF(functions));
	if (st == napi_ok)
		st = export_u32_object(env, exports, "slotLayout", slot_layout, COUNT_OF(slot_layout));
	return st;
}
