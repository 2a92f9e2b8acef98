/* Unix sockets (peercred.h, sd_notify.h) for JS. */
#include <errno.h>
#include <sys/socket.h>

#include "bind_unix_sockets.h"
#include "bind_util.h"
#include "peercred.h"
#include "sd_notify.h"

/* peerCred(fd) -> { pid, uid, gid } of the process at the other end (SO_PEERCRED); throws on error. */
static napi_value peer_cred(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out, v;
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	int32_t fd;
	if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0)
		return throw_usage(env, "peerCred(fd)");
	pid_t pid;
	uid_t uid;
	gid_t gid;
	int rc = bq_peer_cred(fd, &pid, &uid, &gid);
	if (rc < 0)
		return throw_errno(env, rc, "SO_PEERCRED");
	NAPI_CALL(env, napi_create_object(env, &out));
	napi_create_int32(env, pid, &v);
	napi_set_named_property(env, out, "pid", v);
	napi_create_uint32(env, uid, &v);
	napi_set_named_property(env, out, "uid", v);
	napi_create_uint32(env, gid, &v);
	napi_set_named_property(env, out, "gid", v);
	return out;
}

/* sdNotify(socketPath: string, state: string) -> 0 or -errno */
static napi_value sd_notify(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	/* sun_path is 108 bytes; a notification state is a few short KEY=VALUE lines. */
	char path[128], state[4096];
	size_t path_len, state_len;
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], state, sizeof(state), &state_len) != napi_ok)
		return throw_usage(env, "sdNotify(socketPath, state)");
	/* A string that filled its buffer may have been cut: refuse rather than send half. */
	int rc = -EMSGSIZE;
	if (path_len < sizeof(path) - 1 && state_len < sizeof(state) - 1)
		rc = bq_sd_notify(path, state, state_len);
	return int32_result(env, rc);
}

/* unixDatagramSend(socketPath: string, data: string) -> 0 or -errno; never blocks (journald's
 * native protocol: service/journal/journald.ts). */
static napi_value unix_datagram_send(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	/* One journal entry: a few fields whose values the writer caps well below this. */
	char path[128], data[8192];
	size_t path_len, data_len;
	if (argc < 2 || napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &path_len) != napi_ok ||
	    napi_get_value_string_utf8(env, argv[1], data, sizeof(data), &data_len) != napi_ok)
		return throw_usage(env, "unixDatagramSend(socketPath, data)");
	int rc = -EMSGSIZE;
	if (path_len < sizeof(path) - 1 && data_len < sizeof(data) - 1)
		rc = bq_unix_datagram_send(path, data, data_len, MSG_DONTWAIT);
	return int32_result(env, rc);
}

napi_status bind_unix_sockets_register(napi_env env, napi_value exports)
{
	static const struct named_function functions[] = {
		{"peerCred", peer_cred},
		{"sdNotify", sd_notify},
		{"unixDatagramSend", unix_datagram_send},
	};
	return export_functions(env, exports, functions, COUNT_OF(functions));
}
