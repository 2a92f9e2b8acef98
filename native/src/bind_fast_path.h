/* The queue's fast path for JS (queueFastPathEnable, Arm, Disarm, Take; flowParse; fastPathFds). */
#ifndef BASTION_BIND_FAST_PATH_H
#define BASTION_BIND_FAST_PATH_H

#include <node_api.h>

napi_status bind_fast_path_register(napi_env env, napi_value exports);

#endif
