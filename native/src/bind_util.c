/* Error and argument helpers, export tables and handles shared by the binding files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind_util.h"

napi_value throw_errno(napi_env env, int neg_errno, const char *what)
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

napi_value throw_usage(napi_env env, const char *usage)
{
	napi_throw_type_error(env, "EINVAL", usage);
	return NULL;
}

napi_value int32_result(napi_env env, int32_t value)
{
	napi_value out;
	NAPI_CALL(env, napi_create_int32(env, value, &out));
	return out;
}

/* ---- argument helpers ---- */

uint32_t get_u32_prop(napi_env env, napi_value obj, const char *name, uint32_t dflt)
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

bool get_bool_prop(napi_env env, napi_value obj, const char *name, bool dflt)
{
	bool has = false, out;
	napi_value v;
	if (napi_has_named_property(env, obj, name, &has) != napi_ok || !has)
		return dflt;
	if (napi_get_named_property(env, obj, name, &v) != napi_ok)
		return dflt;
	return napi_get_value_bool(env, v, &out) == napi_ok ? out : dflt;
}

/* ---- exports ---- */

/* Read-only, as napi_define_properties makes them with napi_default. */
napi_status export_functions(napi_env env, napi_value exports, const struct named_function *fns, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		napi_property_descriptor d = {fns[i].name, NULL, fns[i].call, NULL, NULL, NULL, napi_default, NULL};
		napi_status st = napi_define_properties(env, exports, 1, &d);
		if (st != napi_ok)
			return st;
	}
	return napi_ok;
}

napi_status export_u32(napi_env env, napi_value exports, const char *name, uint32_t value)
{
	napi_value v;
	napi_status st = napi_create_uint32(env, value, &v);
	return st == napi_ok ? napi_set_named_property(env, exports, name, v) : st;
}

napi_status export_u32_object(napi_env env, napi_value exports, const char *name, const struct named_u32 *fields,
			      size_t count)
{
	napi_value obj;
	napi_status st = napi_create_object(env, &obj);
	for (size_t i = 0; st == napi_ok && i < count; i++)
		st = export_u32(env, obj, fields[i].name, fields[i].value);
	return st == napi_ok ? napi_set_named_property(env, exports, name, obj) : st;
}

/* ---- handles ---- */

/* Only this addon's externals are expected here (the helper's own JS holds them); each begins
 * with a struct handle, so a handle of another kind is refused. An external from another
 * native module would be misread: JS code that could pass one is already trusted. */
void *get_handle(napi_env env, napi_value v, enum handle_kind kind, const char *expected)
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

static void watched_uv_closed(uv_handle_t *handle)
{
	struct watched *w = handle->data;
	w->h.uv_holds = false;
	if (!w->h.js_holds)
		free(w);
}

static void watched_cleanup_hook(void *arg);

/* from_hook: at environment teardown, where the hook is already gone. */
static void close_watched_from(struct watched *w, bool from_hook)
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

void close_watched(struct watched *w)
{
	close_watched_from(w, false);
}

static void watched_cleanup_hook(void *arg)
{
	close_watched_from(arg, true);
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
	close_watched(w);
	if (!w->h.uv_holds)
		free(w);
}

napi_value start_handle(napi_env env, struct watched *w, const char *resource, int fd, uv_poll_cb on_readable,
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
		close_watched(w); /* freed once libuv has closed the poll */
		return throw_errno(env, uerr, "uv_poll_start");
	}
	if (napi_create_external(env, w, watched_finalize, NULL, &handle) != napi_ok) {
		close_watched(w);
		return throw_errno(env, -ENOMEM, "napi_create_external");
	}
	w->h.js_holds = true;
	return handle;
}

napi_value close_handle(napi_env env, napi_callback_info info, enum handle_kind kind, const char *expected)
{
	size_t argc = 1;
	napi_value argv[1];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	struct watched *w = argc ? get_handle(env, argv[0], kind, expected) : NULL;
	if (w)
		close_watched(w);
	return NULL;
}
