/* The queue's fast path (fast_path.h) for JS: arming, disarming, and taking the packets the
 * reader thread answered (queue_reader.h). */
#include <errno.h>
#include <sys/socket.h>

#include "bind_fast_path.h"
#include "bind_proc_events.h"
#include "bind_queue.h"
#include "fast_registry.h"

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
	int err = bq_reader_fast_enable(w->reader, bq_proc_events_fd(e->e));
	return err < 0 ? throw_errno(env, err, "queueFastPathEnable") : NULL;
}

/* The queue's fast path, or NULL (and nothing to do) when it is closed or was never enabled. */
static struct bq_fast_path *fast_path_of(const struct queue_wrap *w)
{
	return w->base.closed ? NULL : bq_reader_fast_path(w->reader);
}

/* queueFastPathArm(queue, token, pid, uid, fds: Int32Array, protocol, port, accept, mark: number|undefined, ttlMs) -> 0 or -errno */
static napi_value queue_fast_path_arm(napi_env env, napi_callback_info info)
{
	size_t argc;
	napi_value argv[10];
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
		bq_registry_lock();
		rc = bq_fast_path_arm(fp, token, pid, uid, fds, (int)n_fds, (uint8_t)protocol, (uint16_t)port, accept,
				      mark_type == napi_number, mark, ttl_ms);
		bq_registry_unlock();
	}
	return int32_result(env, rc);
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
	bq_registry_lock();
	if (pid_type != napi_number)
		bq_fast_path_clear(fp);
	else
		bq_fast_path_disarm(fp, pid);
	bq_registry_unlock();
	return NULL;
}

/* queueFastPathTake(queue) -> how many answered packets were copied into the slots buffer
 * (at most batchMax; call again until 0), or -EBUSY inside a batch, whose slots they would overwrite. */
static napi_value queue_fast_path_take(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct queue_wrap *w = argc ? get_handle(env, argv[0], KIND_QUEUE, QUEUE_EXPECTED) : NULL;
	if (!w)
		return NULL;
	return int32_result(env, w->base.closed ? 0 : bq_reader_take_answered(w->reader, w->slots, w->batch_max));
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
	    napi_get_typedarray_info(env, argv[1], &t, &len, &data, NULL, NULL) != napi_ok || t != napi_uint8_array)
		return throw_usage(env, "flowParse(hwProtocol, packet: Uint8Array)");
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

napi_status bind_fast_path_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"queueFastPathEnable", queue_fast_path_enable},
		{"queueFastPathArm", queue_fast_path_arm},
		{"queueFastPathDisarm", queue_fast_path_disarm},
		{"queueFastPathTake", queue_fast_path_take},
		{"flowParse", flow_parse},
	};
	napi_status st = export_functions(env, exports, functions, COUNT_OF(functions));
	if (st == napi_ok)
		st = export_u32(env, exports, "fastPathFds", BQ_FAST_FDS);
	return st;
}
