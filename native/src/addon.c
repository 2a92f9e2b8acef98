/* The addon's entry point: only registration. The kernel families are one file each (queue.c,
 * sock_diag.c, proc_events.c, fast_path.c, caller_bpf.c, peercred.c, sd_notify.c), the queue's
 * reader thread is queue_reader.c and the state the fast paths share is fast_registry.c, none of
 * them with N-API; each concern's JS glue is a bind_*.c file that registers its functions and
 * the layouts JS reads (bind_util.h: what they share). */
#include <node_api.h>

#include "bind_caller.h"
#include "bind_fast_path.h"
#include "bind_kernel_verdicts.h"
#include "bind_proc_events.h"
#include "bind_queue.h"
#include "bind_sock_diag.h"
#include "bind_unix_sockets.h"

static napi_value init(napi_env env, napi_value exports)
{
	napi_status (*const registers[])(napi_env, napi_value) = {
		bind_queue_register,
		bind_fast_path_register,
		bind_proc_events_register,
		bind_sock_diag_register,
		bind_caller_register,
		bind_kernel_verdicts_register,
		bind_unix_sockets_register,
	};
	for (size_t i = 0; i < sizeof(registers) / sizeof(registers[0]); i++) {
		if (registers[i](env, exports) != napi_ok) {
			bool pending = false;
			napi_is_exception_pending(env, &pending);
			if (!pending)
				napi_throw_error(env, "EADDON", "the native addon could not register its functions");
			return NULL;
		}
	}
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
