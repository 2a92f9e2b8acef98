/* sock_diag for JS (sockDiagOpen, sockDiagLookup; sockDiagOut). */
#ifndef BASTION_BIND_SOCK_DIAG_H
#define BASTION_BIND_SOCK_DIAG_H

#include <node_api.h>

napi_status bind_sock_diag_register(napi_env env, napi_value exports);

#endif
