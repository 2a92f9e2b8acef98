/* In-kernel verdicts for JS (kernelVerdictSet, Delete, Clear, Take; verdictEvent). */
#ifndef BASTION_BIND_KERNEL_VERDICTS_H
#define BASTION_BIND_KERNEL_VERDICTS_H

#include <node_api.h>

napi_status bind_kernel_verdicts_register(napi_env env, napi_value exports);

#endif
