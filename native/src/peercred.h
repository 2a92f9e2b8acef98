/* SO_PEERCRED of a connected Unix socket: who is on the other end. */
#ifndef BASTION_PEERCRED_H
#define BASTION_PEERCRED_H

#include <sys/types.h>

int bq_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

#endif
