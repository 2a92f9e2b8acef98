/* The connect()/sendmsg() callers for JS (callerAttach, callerDetach, callerFlowLookup, callerHasFlows). */
#ifndef BASTION_BIND_CALLER_H
#define BASTION_BIND_CALLER_H

#include <node_api.h>

napi_status bind_caller_register(napi_env env, napi_value exports);

#endif
