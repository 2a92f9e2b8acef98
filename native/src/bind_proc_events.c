/* Process events (NETLINK_CONNECTOR, proc_events.h) for JS. Each read is applied to every fast
 * path in the same step (fast_registry.h). */
#include <errno.h>
#include <stdlib.h>

#include "bind_proc_events.h"
#include "fast_registry.h"

/* An event as procEventsRead writes it into its Int32Array (exported as procEvent). */
enum proc_event_out { EVENT_TYPE, EVENT_PID, EVENT_PPID, EVENT_LENGTH };
_Static_assert(sizeof(struct bq_proc_event) == EVENT_LENGTH * sizeof(int32_t), "events are int32 triples");
_Static_assert(offsetof(struct bq_proc_event, type) == EVENT_TYPE * sizeof(int32_t), "event layout: type");
_Static_assert(offsetof(struct bq_proc_event, pid) == EVENT_PID * sizeof(int32_t), "event layout: pid");
_Static_assert(offsetof(struct bq_proc_event, ppid) == EVENT_PPID * sizeof(int32_t), "event layout: ppid");

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
	if (t != napi_function)
		return throw_usage(env, "procEventsOpen(onReadable)");
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

/* procEventsRead(handle, out: Int32Array of (type, pid, ppid) triples) -> count or -errno */
static napi_value proc_events_read(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct proc_events_wrap *w = argc >= 2 ? get_handle(env, argv[0], KIND_PROC_EVENTS, PROC_EVENTS_EXPECTED) : NULL;
	if (!w)
		return NULL;
	napi_typedarray_type t;
	size_t len;
	void *data;
	NAPI_CALL(env, napi_get_typedarray_info(env, argv[1], &t, &len, &data, NULL, NULL));
	if (t != napi_int32_array || len < EVENT_LENGTH) {
		napi_throw_range_error(env, "EINVAL", "procEventsRead: out must be an Int32Array of at least 3");
		return NULL;
	}
	/* Read and applied at once: no fast path decides between the two. */
	int rc = w->base.closed ? -EBADF : bq_registry_read_events(w->e, data, (int)(len / EVENT_LENGTH));
	return int32_result(env, rc);
}

static napi_value proc_events_close(napi_env env, napi_callback_info info)
{
	return close_handle(env, info, KIND_PROC_EVENTS, PROC_EVENTS_EXPECTED);
}

napi_status bind_proc_events_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"procEventsOpen", proc_events_open},
		{"procEventsRead", proc_events_read},
		{"procEventsClose", proc_events_close},
	};
	/* Where procEventsRead puts each field of an event (Int32Array indices), and the types. */
	static const struct named_u32 event_layout[] = {
		{"length", EVENT_LENGTH},
		{"type", EVENT_TYPE},
		{"pid", EVENT_PID},
		{"ppid", EVENT_PPID},
		{"fork", BQ_PROC_FORK},
		{"exec", BQ_PROC_EXEC},
		{"exit", BQ_PROC_EXIT},
	};
	napi_status st = export_functions(env, exports, functions, COUNT_OF(functions));
	if (st == napi_ok)
		st = export_u32_object(env, exports, "procEvent", event_layout, COUNT_OF(event_layout));
	return st;
}
