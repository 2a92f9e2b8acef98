/* NFQUEUE reader over libmnl and libnetfilter_queue's mnl helpers.
 * One struct bq_queue per bound queue; no globals. Every function returns 0 or a negative errno. */
#ifndef BASTION_QUEUE_H
#define BASTION_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bq_queue_options {
	uint16_t queue_num;
	uint32_t copy_range;   /* bytes of each packet copied to us: headers only */
	uint32_t max_len;      /* kernel queue length before fail-open / drop */
	uint32_t rcvbuf_bytes; /* netlink socket receive buffer */
	bool fail_open;        /* accept instead of drop when the queue or socket is full */
};

/* Fixed layout of one packet slot in the batch buffer handed to JS (little endian host).
 * JS reads it by the offsets the addon exports (slotLayout, bind_queue.c, which pins them). */
struct bq_slot_header {
	uint32_t packet_id;
	uint16_t hw_protocol; /* ETH_P_IP / ETH_P_IPV6, host order */
	uint8_t hook;
	uint8_t flags;        /* BQ_SLOT_F_* */
	uint32_t mark;
	uint32_t indev;
	uint32_t outdev;
	uint32_t uid;
	uint32_t gid;
	uint32_t cap_len;     /* bytes of payload copied into the slot */
	uint32_t orig_len;    /* full packet length */
	uint32_t fast_inode;  /* BQ_SLOT_F_FAST: the socket the fast path credited */
	uint32_t fast_token;  /* BQ_SLOT_F_FAST: the arming that answered it */
	uint32_t fast_repeats; /* BQ_SLOT_F_FAST: answered packets this slot stands for (same arming, destination, verdict) */
};

#define BQ_SLOT_F_UID (1u << 0)
#define BQ_SLOT_F_GID (1u << 1)
#define BQ_SLOT_F_MARK (1u << 2)
/* Already answered by the fast path (fast_path.h); JS only reports it. */
#define BQ_SLOT_F_FAST (1u << 3)
#define BQ_SLOT_F_FAST_ACCEPT (1u << 4)

struct bq_counters {
	uint64_t packets;
	uint64_t overruns;       /* ENOBUFS: the kernel dropped (or failed open) messages for us */
	uint64_t verdict_errors; /* NLMSG_ERROR replies, e.g. a verdict for an unknown id */
	uint64_t bad_messages;   /* messages we could not parse */
};

struct bq_queue;

int bq_queue_open(struct bq_queue **out, const struct bq_queue_options *opts);
int bq_queue_fd(const struct bq_queue *q);


/* For the reader thread: reads wait (up to timeout_ms, then -EAGAIN) instead of returning at once.
 * Only bq_queue_read_wait may be used afterwards. */
int bq_queue_wait_mode(struct bq_queue *q, unsigned timeout_ms);
/* Waits for one datagram: 1 when it held a packet (written into slot), 0 when it held none
 * (an ack, an error reply, a lost message), or a negative errno (-EAGAIN: the timeout). */
int bq_queue_read_wait(struct bq_queue *q, uint8_t *slot, size_t slot_size);
/* Makes the kernel send us an ack, so a thread waiting in bq_queue_read_wait returns. */
int bq_queue_wake(struct bq_queue *q);
/* verdict: NF_DROP (0) or NF_ACCEPT (1). */
int bq_queue_verdict(struct bq_queue *q, uint32_t packet_id, uint32_t verdict, bool set_mark, uint32_t mark);
/* The packet goes through the hook again with `mark` (NF_REPEAT): our chain rejects what carries it. */
int bq_queue_reject(struct bq_queue *q, uint32_t packet_id, uint32_t mark);

/* A copy of the counters; safe while another thread reads the queue (they change atomically). */
void bq_queue_counters(const struct bq_queue *q, struct bq_counters *out);

/* Unbinds the queue (held packets are then dropped by the kernel, or bypass if --queue-bypass
 * and nothing binds) and frees everything. Safe on NULL. */
void bq_queue_close(struct bq_queue *q);

#endif
