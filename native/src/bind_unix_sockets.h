/* Unix sockets for JS: a peer's credentials (peerCred) and datagrams to systemd and journald
 * (sdNotify, unixDatagramSend). */
#ifndef BASTION_BIND_UNIX_SOCKETS_H
#define BASTION_BIND_UNIX_SOCKETS_H

#include <node_api.h>

napi_status bind_unix_sockets_register(napi_env env, napi_value exports);

#endif
