/* The connect()/sendmsg() callers for JS (callerAttach, callerDetach, callerFlowLookup,
 * callerFlowNotePin). */
#ifndef BASTION_BIND_CALLER_H
#define BASTION_BIND_CALLER_H

#include <node_api.h>

#include "caller_bpf.h"

/* A pin binding: fn(path) -> 0 or -errno from pin (one of caller_bpf.h's filter pins), -EBADF
 * when nothing is attached; name is the JS name, for the usage error. */
napi_value pin_caller_filter(napi_env env, napi_callback_info info, int (*pin)(const struct bq_caller *, const char *), const char *name);

napi_status bind_caller_register(napi_env env, napi_value exports);

#endif
