/* In-kernel verdicts (caller_bpf.h, caller.bpf.c decide()) for JS: path rules by the executable's
 * (dev, ino), protocol and port, and the reports of the decisions the kernel took. */
#include <errno.h>
#include <string.h>

#include "bind_caller.h"
#include "bind_kernel_verdicts.h"
#include "bind_util.h"
#include "fast_registry.h"

/* A verdict-key call's arguments: count of them into argv, the first four (dev, ino: bigint,
 * protocol, port) into *key. false (nothing thrown) when one is missing or out of range. */
static bool verdict_key_args(napi_env env, napi_callback_info info, size_t count, napi_value *argv, struct bq_verdict_key *key)
{
	size_t argc = count;
	uint32_t dev = 0, protocol = 0, port = 0;
	uint64_t ino = 0;
	bool lossless = false;
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count || count < 4 ||
	    napi_get_value_uint32(env, argv[0], &dev) != napi_ok ||
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
	napi_value argv[5];
	struct bq_verdict_key key;
	bool allow = false;
	if (!verdict_key_args(env, info, 5, argv, &key) || napi_get_value_bool(env, argv[4], &allow) != napi_ok)
		return throw_usage(env, "kernelVerdictSet(dev, ino, protocol, port, allow)");
	const struct bq_caller *caller = bq_registry_caller();
	return int32_result(env, caller ? bq_caller_verdict_set(caller, &key, allow ? BQ_VERDICT_ALLOW : BQ_VERDICT_DENY) : -EBADF);
}

/* kernelVerdictDelete(dev, ino: bigint, protocol, port) -> 0 (also when absent) or -errno. */
static napi_value kernel_verdict_delete(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	struct bq_verdict_key key;
	if (!verdict_key_args(env, info, 4, argv, &key))
		return throw_usage(env, "kernelVerdictDelete(dev, ino, protocol, port)");
	const struct bq_caller *caller = bq_registry_caller();
	return int32_result(env, caller ? bq_caller_verdict_delete(caller, &key) : -EBADF);
}

/* kernelVerdictClear() -> 0 or -errno: the kernel decides nothing until verdicts are set again. */
static napi_value kernel_verdict_clear(napi_env env, napi_callback_info info)
{
	(void)info;
	const struct bq_caller *caller = bq_registry_caller();
	return int32_result(env, caller ? bq_caller_verdict_clear(caller) : 0);
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
	    type != napi_uint8_array)
		return throw_usage(env, "kernelVerdictTake(out: Uint8Array)");
	struct bq_caller *caller = bq_registry_caller();
	uint64_t lost = 0;
	int count = caller ? bq_caller_verdict_take(caller, data, len / BQ_VERDICT_EVENT_BYTES, &lost) : 0;
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_create_int32(env, count, &v);
	napi_set_named_property(env, out, "count", v);
	napi_create_double(env, (double)lost, &v);
	napi_set_named_property(env, out, "lost", v);
	return out;
}

/* kernelUdpAllowPin(path) -> 0 or -errno: the UDP allow filter pinned there (caller_bpf.h);
 * -ENOTSUP when the kernel refused it, -EBADF when nothing is attached. */
static napi_value kernel_udp_allow_pin(napi_env env, napi_callback_info info)
{
	return pin_caller_filter(env, info, bq_caller_udp_allow_pin, "kernelUdpAllowPin");
}

/* kernelVerdictAlive() -> 0 or -errno: the helper's sign of life, which the UDP allow filter
 * needs (caller_bpf.h, BQ_VERDICT_ALIVE_NS). */
static napi_value kernel_verdict_alive(napi_env env, napi_callback_info info)
{
	(void)info;
	const struct bq_caller *caller = bq_registry_caller();
	return int32_result(env, caller ? bq_caller_verdict_alive(caller) : -EBADF);
}

napi_status bind_kernel_verdicts_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"kernelVerdictSet", kernel_verdict_set},
		{"kernelVerdictDelete", kernel_verdict_delete},
		{"kernelVerdictClear", kernel_verdict_clear},
		{"kernelVerdictTake", kernel_verdict_take},
		{"kernelUdpAllowPin", kernel_udp_allow_pin},
		{"kernelVerdictAlive", kernel_verdict_alive},
	};
	/* The in-kernel decisions' report (bq_verdict_event, its layout asserted in caller_bpf.c) as
	 * kernelVerdictTake() copies it. */
	static const struct named_u32 event_layout[] = {
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
	napi_status st = export_functions(env, exports, functions, COUNT_OF(functions));
	if (st == napi_ok)
		st = export_u32_object(env, exports, "verdictEvent", event_layout, COUNT_OF(event_layout));
	return st;
}
