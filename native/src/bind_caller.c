/* The connect()/sendmsg() caller programs (caller_bpf.h) for JS. One caller map per process, as
 * the programs watch the whole machine: kept in fast_registry.c, where the fast path reads it. */
#include <errno.h>
#include <stdio.h>

#include "bind_caller.h"
#include "bind_util.h"
#include "fast_registry.h"

/* callerAttach(cgroup2Path, verdicts?) -> {exe, flows, verdicts, log}: whether records carry the
 * executable, whether the flow note filter loaded (callerFlowNotePin), whether the kernel decides, and
 * libbpf's log of a load that failed on the way (why the executable is not recorded). Throws
 * (errno, stage, log with the verifier's words) when the kernel or our capabilities allow none
 * of it. Attached already: the same answer. */
static napi_value caller_attach(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	char path[4096];
	size_t len;
	bool verdicts = false;
	if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok || len == 0 ||
	    len >= sizeof(path) - 1 || (argc >= 2 && napi_get_value_bool(env, argv[1], &verdicts) != napi_ok))
		return throw_usage(env, "callerAttach(cgroup2Path, verdicts)");
	static char log[8192];
	if (!bq_registry_caller()) {
		const char *stage = NULL;
		struct bq_caller *caller = NULL;
		int err = bq_caller_open(&caller, path, verdicts, &stage, log, sizeof(log));
		bq_registry_swap_caller(caller);
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
	const struct bq_caller *caller = bq_registry_caller();
	napi_value out, v;
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_get_boolean(env, bq_caller_has_exe(caller), &v);
	napi_set_named_property(env, out, "exe", v);
	napi_get_boolean(env, bq_caller_has_flows(caller), &v);
	napi_set_named_property(env, out, "flows", v);
	napi_get_boolean(env, bq_caller_has_verdicts(caller), &v);
	napi_set_named_property(env, out, "verdicts", v);
	napi_create_string_utf8(env, log, NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, out, "log", v);
	return out;
}

/* callerFlowLookup(family(2|10), src: Uint8Array, sport, dst: Uint8Array, dport, synSeq) -> the
 * tgid that sent that bare TCP SYN (caller_bpf.h), or -errno: -ENOENT not noted, -ENOTSUP
 * without the flow note filter, -EBADF when nothing is attached. */
static napi_value caller_flow_lookup(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6], ret;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	uint32_t family = 0, sport = 0, dport = 0, seq = 0;
	napi_typedarray_type ts = napi_int8_array, td = napi_int8_array;
	size_t src_len = 0, dst_len = 0;
	void *src = NULL, *dst = NULL;
	if (argc < 6 || napi_get_value_uint32(env, argv[0], &family) != napi_ok ||
	    napi_get_typedarray_info(env, argv[1], &ts, &src_len, &src, NULL, NULL) != napi_ok ||
	    napi_get_value_uint32(env, argv[2], &sport) != napi_ok ||
	    napi_get_typedarray_info(env, argv[3], &td, &dst_len, &dst, NULL, NULL) != napi_ok ||
	    napi_get_value_uint32(env, argv[4], &dport) != napi_ok || napi_get_value_uint32(env, argv[5], &seq) != napi_ok)
		return throw_usage(env, "callerFlowLookup(family, src, sport, dst, dport, synSeq)");
	size_t want = family == 2 ? 4 : 16;
	if ((family != 2 && family != 10) || ts != napi_uint8_array || td != napi_uint8_array || src_len < want ||
	    dst_len < want || sport > 65535 || dport > 65535) {
		napi_throw_range_error(env, "EINVAL", "callerFlowLookup: bad family, address or port");
		return NULL;
	}
	const struct bq_caller *caller = bq_registry_caller();
	uint32_t tgid = 0;
	int rc = caller ? bq_caller_flow_lookup(caller, (uint8_t)family, src, (uint16_t)sport, dst, (uint16_t)dport, seq, &tgid) : -EBADF;
	NAPI_CALL(env, napi_create_int64(env, rc == 0 ? (int64_t)tgid : rc, &ret));
	return ret;
}

napi_value pin_caller_filter(napi_env env, napi_callback_info info, int (*pin)(const struct bq_caller *, const char *), const char *name)
{
	size_t argc = 1;
	napi_value argv[1];
	char path[4096];
	size_t len = 0;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
	    napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len) != napi_ok || len == 0 ||
	    len >= sizeof(path) - 1) {
		char usage[64];
		snprintf(usage, sizeof(usage), "%s(path)", name);
		return throw_usage(env, usage);
	}
	const struct bq_caller *caller = bq_registry_caller();
	return int32_result(env, caller ? pin(caller, path) : -EBADF);
}

/* callerFlowNotePin(path) -> 0 or -errno: the flow note filter pinned there (caller_bpf.h);
 * -ENOTSUP without it. */
static napi_value caller_flow_note_pin(napi_env env, napi_callback_info info)
{
	return pin_caller_filter(env, info, bq_caller_flow_note_pin, "callerFlowNotePin");
}

/* callerDetach() -> undefined: the programs are detached (they also are when the process dies). */
static napi_value caller_detach(napi_env env, napi_callback_info info)
{
	(void)env;
	(void)info;
	bq_caller_close(bq_registry_swap_caller(NULL));
	return NULL;
}

napi_status bind_caller_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"callerAttach", caller_attach},
		{"callerDetach", caller_detach},
		{"callerFlowLookup", caller_flow_lookup},
		{"callerFlowNotePin", caller_flow_note_pin},
	};
	return export_functions(env, exports, functions, COUNT_OF(functions));
}
