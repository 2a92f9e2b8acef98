/* The process-wide state of the fast paths: fast_registry.h. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>

#include "fast_registry.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct bq_caller *g_caller;
static struct bq_fast_path *g_fast_paths[BQ_MAX_FAST_PATHS];

void bq_registry_lock(void)
{
	pthread_mutex_lock(&g_lock);
}

void bq_registry_unlock(void)
{
	pthread_mutex_unlock(&g_lock);
}

struct bq_caller *bq_registry_caller(void)
{
	return g_caller;
}

struct bq_caller *bq_registry_swap_caller(struct bq_caller *c)
{
	pthread_mutex_lock(&g_lock);
	struct bq_caller *old = g_caller;
	g_caller = c;
	pthread_mutex_unlock(&g_lock);
	return old;
}

int bq_registry_add(struct bq_fast_path *fp)
{
	for (int i = 0; i < BQ_MAX_FAST_PATHS; i++) {
		if (!g_fast_paths[i]) {
			g_fast_paths[i] = fp;
			return 0;
		}
	}
	return -EMFILE;
}

void bq_registry_remove(const struct bq_fast_path *fp)
{
	for (int i = 0; i < BQ_MAX_FAST_PATHS; i++)
		if (fp && g_fast_paths[i] == fp)
			g_fast_paths[i] = NULL;
}

/* Under the lock: every fast path forgets the pids these events changed, or everything when
 * events were lost. JS does the same when it handles them; this only closes the moment between
 * the read and that. */
static void forget_changed_processes(const struct bq_proc_event *events, int count)
{
	for (int f = 0; f < BQ_MAX_FAST_PATHS; f++) {
		struct bq_fast_path *fp = g_fast_paths[f];
		if (!fp)
			continue;
		if (count < 0 && count != -EBADF) /* lost, or read and not returned: what we know is incomplete */
			bq_fast_path_clear(fp);
		for (int i = 0; i < count; i++) {
			bq_fast_path_disarm(fp, events[i].pid);
			if (events[i].type == BQ_PROC_FORK)
				bq_fast_path_disarm(fp, events[i].ppid);
		}
	}
}

int bq_registry_read_events(struct bq_proc_events *e, struct bq_proc_event *out, int max)
{
	pthread_mutex_lock(&g_lock);
	int rc = bq_proc_events_read(e, out, max);
	forget_changed_processes(out, rc);
	pthread_mutex_unlock(&g_lock);
	return rc;
}
