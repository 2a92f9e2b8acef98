/* sd_notify(3) in a few lines: Node's dgram module has no AF_UNIX datagram sockets, and
 * spawning systemd-notify races its own exit (systemd then cannot tell which unit sent the
 * message, so READY=1 is lost under NotifyAccess=main). A datagram from our own pid is
 * attributed to the main process. */
#define _GNU_SOURCE
#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int bq_sd_notify(const char *socket_path, const char *state, size_t len)
{
	return bq_unix_datagram_send(socket_path, state, len, 0);
}

int bq_unix_datagram_send(const char *socket_path, const char *data, size_t len, int flags)
{
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	size_t path_len = strlen(socket_path);
	if (path_len < 2 || (socket_path[0] != '/' && socket_path[0] != '@'))
		return -EINVAL;
	if (path_len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memcpy(addr.sun_path, socket_path, path_len);
	/* "@name" is an abstract socket: a leading NUL, and the length counts exactly the name. */
	if (addr.sun_path[0] == '@')
		addr.sun_path[0] = '\0';
	socklen_t addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_len +
					 (socket_path[0] == '/' ? 1 : 0));

	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = 0;
	ssize_t sent;
	do {
		sent = sendto(fd, data, len, MSG_NOSIGNAL | flags, (struct sockaddr *)&addr, addr_len);
	} while (sent < 0 && errno == EINTR);
	if (sent < 0)
		rc = -errno;
	else if ((size_t)sent != len)
		rc = -EMSGSIZE; /* a datagram is all or nothing; a short send means it was cut */
	close(fd);
	return rc;
}
