/* The systemd notification protocol (sd_notify(3)) without libsystemd: one datagram of
 * "KEY=VALUE\n..." to the AF_UNIX socket named by $NOTIFY_SOCKET. */
#ifndef BASTION_SD_NOTIFY_H
#define BASTION_SD_NOTIFY_H

#include <stddef.h>

/* Sends `state` (len bytes) to `socket_path` ("/path" or "@abstract"). 0 or -errno. */
int bq_sd_notify(const char *socket_path, const char *state, size_t len);

/* The same datagram send with extra sendto(2) flags: the journal writer passes MSG_DONTWAIT,
 * so a stalled journald costs a lost line (-EAGAIN), never a blocked verdict loop. */
int bq_unix_datagram_send(const char *socket_path, const char *data, size_t len, int flags);

#endif
