/* The LocalEngine's warm pool (local_pool.h). */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "namespace/local_pool.h"

void spr_local_pool_init(struct spr_local_pool *pool, int size)
{
	pthread_mutex_init(&pool->lock, NULL);
	pool->owner = getpid();
	pool->size = size < 0 ? 0 : size > SPR_LOCAL_POOL_MAX ? SPR_LOCAL_POOL_MAX : size;
	pool->count = 0;
}

void spr_prepared_free(struct spr_prepared *p)
{
	if (!p)
		return;
	/* Told, not only closed: a fork of the caller may hold a copy of the
	 * socket, and the monitor would wait for that copy's EOF. */
	if (p->ctrl >= 0)
		send(p->ctrl, "kill", 4, MSG_NOSIGNAL | MSG_DONTWAIT);
	spr_closep(&p->ctrl);
	spr_closep(&p->helper);
	spr_closep(&p->request);
	spr_closep(&p->out);
	spr_closep(&p->err);
	spr_closep(&p->result);
	free(p->plan);
	free(p->started);
	free(p);
}

/* The pool's lock is never taken in a fork of the caller: another thread
 * may have held it at the fork, and nobody would release it there. */
static bool usable(const struct spr_local_pool *pool)
{
	return pool->size > 0 && pool->owner == getpid();
}

struct spr_prepared *spr_local_pool_take(struct spr_local_pool *pool, const char *plan)
{
	if (!usable(pool))
		return NULL;
	struct spr_prepared *found = NULL, *stale[SPR_LOCAL_POOL_MAX];
	size_t nstale = 0;
	pthread_mutex_lock(&pool->lock);
	for (size_t i = 0; i < pool->count; i++) {
		if (!found && !strcmp(pool->ready[i]->plan, plan))
			found = pool->ready[i];
		else if (strcmp(pool->ready[i]->plan, plan))
			stale[nstale++] = pool->ready[i];
		else
			continue;
		pool->ready[i--] = pool->ready[--pool->count];
	}
	pthread_mutex_unlock(&pool->lock);
	for (size_t i = 0; i < nstale; i++)
		spr_prepared_free(stale[i]);
	return found;
}

bool spr_local_pool_wants(struct spr_local_pool *pool, const char *plan)
{
	if (!usable(pool))
		return false;
	pthread_mutex_lock(&pool->lock);
	size_t matching = 0;
	for (size_t i = 0; i < pool->count; i++)
		matching += !strcmp(pool->ready[i]->plan, plan);
	bool wants = matching < (size_t)pool->size;
	pthread_mutex_unlock(&pool->lock);
	return wants;
}

void spr_local_pool_put(struct spr_local_pool *pool, struct spr_prepared *p)
{
	if (usable(pool)) {
		pthread_mutex_lock(&pool->lock);
		bool room = pool->count < (size_t)pool->size;
		if (room)
			pool->ready[pool->count++] = p;
		pthread_mutex_unlock(&pool->lock);
		if (room)
			return;
	}
	spr_prepared_free(p);
}

void spr_local_pool_drain(struct spr_local_pool *pool)
{
	/* A fork of the caller leaves the parent's sandboxes alone (closing
	 * its copies of the descriptors would not end them anyway). */
	if (pool->owner != getpid())
		return;
	pthread_mutex_lock(&pool->lock);
	size_t n = pool->count;
	struct spr_prepared *all[SPR_LOCAL_POOL_MAX];
	memcpy(all, pool->ready, n * sizeof(*all));
	pool->count = 0;
	pool->size = 0;
	pthread_mutex_unlock(&pool->lock);
	for (size_t i = 0; i < n; i++)
		spr_prepared_free(all[i]);
}
