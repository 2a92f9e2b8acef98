/* What every binding file (bind_*.c) shares: error and argument helpers, the export tables, and
 * the handles JS holds. Only the bind_*.c files and addon.c use N-API; the family files and
 * queue_reader.c never do. */
#ifndef BASTION_BIND_UTIL_H
#define BASTION_BIND_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <node_api.h>
#include <uv.h>

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Returns NULL from the calling binding, with a JS exception pending, when an N-API call fails. */
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

/* Throws an Error "what: strerror" with .errno; returns NULL for the binding to return. */
napi_value throw_errno(napi_env env, int neg_errno, const char *what);
/* Throws a TypeError naming the call's usage; returns NULL. */
napi_value throw_usage(napi_env env, const char *usage);
/* The binding's number result (0 or -errno, a count); NULL with an exception pending on failure. */
napi_value int32_result(napi_env env, int32_t value);

/* obj[name] as a uint32 or bool, dflt when absent or of another type. */
uint32_t get_u32_prop(napi_env env, napi_value obj, const char *name, uint32_t dflt);
bool get_bool_prop(napi_env env, napi_value obj, const char *name, bool dflt);

/* ---- exports ---- */

struct named_function {
	const char *name;
	napi_callback call;
};

struct named_u32 {
	const char *name;
	uint32_t value;
};

/* Each a binding file's register function's building blocks: napi_ok or the first failure. */
napi_status export_functions(napi_env env, napi_value exports, const struct named_function *fns, size_t count);
/* exports[name] = an object of these numbers (a layout JS reads instead of mirroring it). */
napi_status export_u32_object(napi_env env, napi_value exports, const char *name, const struct named_u32 *fields,
			      size_t count);
napi_status export_u32(napi_env env, napi_value exports, const char *name, uint32_t value);

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

/* v as a handle of this kind, or NULL with a TypeError `expected` thrown. */
void *get_handle(napi_env env, napi_value v, enum handle_kind kind, const char *expected);

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

/* Makes w's libuv handle (the poll of fd, or with on_wake an async handle) and returns the JS
 * handle. On failure the socket is released, w is freed (now, or once libuv has closed the
 * handle) and a JS error is thrown. */
napi_value start_handle(napi_env env, struct watched *w, const char *resource, int fd, uv_poll_cb on_readable,
			uv_async_cb on_wake);

/* Stops watching and releases the socket; once only. w is freed when JS lets go too. */
void close_watched(struct watched *w);

/* queueClose(handle) and procEventsClose(handle): later calls on the handle answer EBADF. */
napi_value close_handle(napi_env env, napi_callback_info info, enum handle_kind kind, const char *expected);

#endif
