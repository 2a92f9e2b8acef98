/* sock_diag (sock_diag.h) for JS: a socket's owner, and the caller the kernel recorded for it
 * (caller_bpf.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "bind_sock_diag.h"
#include "bind_util.h"
#include "fast_registry.h"
#include "sock_diag.h"

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

/* The record's caller fields into out (OUT_LENGTH elements). The caller map is read on the JS
 * thread, the only one that replaces it. */
static void put_caller(uint32_t *o, const struct bq_socket_owner *owner)
{
	memset(o + OUT_CALLER_TGID, 0, (OUT_LENGTH - OUT_CALLER_TGID) * sizeof(uint32_t));
	const struct bq_caller *caller = bq_registry_caller();
	if (!caller)
		return;
	o[OUT_CALLER_FLAGS] = OUT_F_ATTACHED;
	struct bq_caller_record r;
	if (bq_caller_lookup(caller, owner->cookie, &r) != 0)
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

/* A flow's ends, as sockDiagLookup and sockDiagDestroy take them in argv[1..6]. */
struct flow_args {
	uint32_t family, protocol, sport, dport;
	void *src, *dst;
};

/* argv[1..6] = (family(2|10), protocol, src: Uint8Array, sport, dst: Uint8Array, dport) -> *f;
 * false (nothing thrown) when one is missing, of the wrong type or out of range. */
static bool flow_args(napi_env env, napi_value *argv, struct flow_args *f)
{
	napi_typedarray_type src_type, dst_type;
	size_t src_len, dst_len;
	if (napi_get_value_uint32(env, argv[1], &f->family) != napi_ok || napi_get_value_uint32(env, argv[2], &f->protocol) != napi_ok ||
	    napi_get_value_uint32(env, argv[4], &f->sport) != napi_ok || napi_get_value_uint32(env, argv[6], &f->dport) != napi_ok ||
	    napi_get_typedarray_info(env, argv[3], &src_type, &src_len, &f->src, NULL, NULL) != napi_ok ||
	    napi_get_typedarray_info(env, argv[5], &dst_type, &dst_len, &f->dst, NULL, NULL) != napi_ok)
		return false;
	size_t want = f->family == 2 ? 4 : 16;
	return (f->family == 2 || f->family == 10) && f->protocol <= 255 && src_type == napi_uint8_array &&
	       dst_type == napi_uint8_array && src_len >= want && dst_len >= want && f->sport <= 65535 && f->dport <= 65535;
}

/* sockDiagLookup(handle, family(2|10), protocol, src: Uint8Array, sport, dst: Uint8Array, dport, out: Uint32Array(3|sockDiagOut.length)) -> 0 or -errno */
static napi_value sock_diag_lookup(napi_env env, napi_callback_info info)
{
	size_t argc = 8;
	napi_value argv[8];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 8)
		return throw_usage(env, "sockDiagLookup(handle, family, protocol, src, sport, dst, dport, out)");
	struct sock_diag_wrap *w = get_handle(env, argv[0], KIND_SOCK_DIAG, "expected a sock_diag handle");
	if (!w)
		return NULL;
	struct flow_args f;
	napi_typedarray_type out_type;
	size_t out_len;
	void *out;
	if (!flow_args(env, argv, &f) || napi_get_typedarray_info(env, argv[7], &out_type, &out_len, &out, NULL, NULL) != napi_ok ||
	    out_type != napi_uint32_array || out_len < 3) {
		napi_throw_range_error(env, "EINVAL", "sockDiagLookup: bad address, port or output array");
		return NULL;
	}
	struct bq_socket_owner owner = {0};
	int rc = bq_sock_diag_lookup(w->d, (uint8_t)f.family, (uint8_t)f.protocol, f.src, (uint16_t)f.sport, f.dst, (uint16_t)f.dport, &owner);
	if (rc == 0) {
		uint32_t *o = out;
		o[OUT_INODE] = owner.inode;
		o[OUT_UID] = owner.uid;
		o[OUT_STATE] = owner.state;
		if (out_len >= OUT_LENGTH)
			put_caller(o, &owner);
	}
	return int32_result(env, rc);
}

/* sockDiagDestroy(handle, family(2|10), protocol, src: Uint8Array, sport, dst: Uint8Array, dport) -> 0 or -errno:
 * the socket is destroyed (SOCK_DESTROY: the program sees ECONNABORTED, the peer a reset). */
static napi_value sock_diag_destroy(napi_env env, napi_callback_info info)
{
	size_t argc = 7;
	napi_value argv[7];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (argc < 7)
		return throw_usage(env, "sockDiagDestroy(handle, family, protocol, src, sport, dst, dport)");
	struct sock_diag_wrap *w = get_handle(env, argv[0], KIND_SOCK_DIAG, "expected a sock_diag handle");
	if (!w)
		return NULL;
	struct flow_args f;
	if (!flow_args(env, argv, &f)) {
		napi_throw_range_error(env, "EINVAL", "sockDiagDestroy: bad address or port");
		return NULL;
	}
	return int32_result(env, bq_sock_diag_destroy(w->d, (uint8_t)f.family, (uint8_t)f.protocol, f.src, (uint16_t)f.sport, f.dst, (uint16_t)f.dport));
}

napi_status bind_sock_diag_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"sockDiagOpen", sock_diag_open},
		{"sockDiagLookup", sock_diag_lookup},
		{"sockDiagDestroy", sock_diag_destroy},
	};
	static const struct named_u32 out_layout[] = {
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
	napi_status st = export_functions(env, exports, functions, COUNT_OF(functions));
	if (st == napi_ok)
		st = export_u32_object(env, exports, "sockDiagOut", out_layout, COUNT_OF(out_layout));
	return st;
}
