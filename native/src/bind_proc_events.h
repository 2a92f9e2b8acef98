/* The process events' bindings (procEventsOpen, procEventsRead, ...; procEvent), and what the
 * fast path's bindings need of a process events handle. */
#ifndef BASTION_BIND_PROC_EVENTS_H
#define BASTION_BIND_PROC_EVENTS_H

#include <node_api.h>

#include "bind_util.h"
#include "proc_events.h"

/* Polled on libuv's loop like the queue: JS is called when events are waiting, so it learns
 * about a new process while that process is still starting, before it connects. */
struct proc_events_wrap {
	struct watched base; /* first: the handle */
	struct bq_proc_events *e;
	napi_ref on_readable;
};

#define PROC_EVENTS_EXPECTED "expected a process events handle"

napi_status bind_proc_events_register(napi_env env, napi_value exports);

#endif
