/* The queue's bindings (queueOpen, queueVerdict, ...; slotLayout), and what the fast path's
 * bindings (bind_fast_path.c) need of a queue handle. */
#ifndef BASTION_BIND_QUEUE_H
#define BASTION_BIND_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include <node_api.h>

#include "bind_util.h"
#include "queue_reader.h"

struct queue_wrap {
	struct watched base; /* first: the handle */
	struct bq_reader *reader; /* NULL once closed */
	napi_ref on_batch;
	napi_ref on_error;
	napi_ref slots_ref;
	uint8_t *slots; /* batchMax slots JS reads the packets of a batch or a take from */
	size_t slot_size;
	int batch_max;
};

#define QUEUE_EXPECTED "expected a queue handle"

/* A queue call's arguments: up to max of them in argv (*argc: how many were passed), at least
 * min (else a TypeError naming usage), the first a queue handle. Returns the queue, or NULL
 * with a JS exception pending. */
struct queue_wrap *queue_call(napi_env env, napi_callback_info info, size_t max, size_t min, napi_value *argv,
			      size_t *argc, const char *usage);

napi_status bind_queue_register(napi_env env, napi_value exports);

#endif
