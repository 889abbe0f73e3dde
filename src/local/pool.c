/* The LocalEngine's warm pool (local_pool.h). */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "local/pool.h"

void spr_local_pool_init(struct spr_local_pool *pool, int size, spr_prepare_fn prepare,
			 void *ctx)
{
	*pool = (struct spr_local_pool){
		.owner = getpid(),
		.size = size < 0 ? 0 : size > SPR_LOCAL_POOL_MAX ? SPR_LOCAL_POOL_MAX : size,
		.prepare = prepare,
		.ctx = ctx,
	};
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
}

void spr_prepared_free(struct spr_prepared *p)
{
	if (!p)
		return;
	/* Told, not only closed: a fork of the caller may hold a copy of the
	 * socket, and the monitor would wait for that copy's EOF. */
	if (p->ctrl >= 0)
		spr_msg_send(p->ctrl, &(struct spr_msg){.type = SPR_MSG_KILL}, NULL, 0);
	spr_closep(&p->ctrl);
	spr_closep(&p->helper);
	spr_closep(&p->request);
	spr_closep(&p->out);
	spr_closep(&p->err);
	spr_closep(&p->result);
	spr_buf_free(&p->plan);
	free(p);
}

/* The pool's lock is never taken in a fork of the caller: another thread
 * may have held it at the fork, and nobody would release it there. */
static bool usable(const struct spr_local_pool *pool)
{
	return pool->size > 0 && pool->owner == getpid();
}

bool spr_plan_same(const spr_buf *a, const spr_buf *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

static size_t matching(const struct spr_local_pool *pool, const spr_buf *plan)
{
	size_t n = 0;
	for (size_t i = 0; i < pool->count; i++)
		n += spr_plan_same(&pool->ready[i]->plan, plan);
	return n;
}

struct spr_prepared *spr_local_pool_take(struct spr_local_pool *pool, const spr_buf *plan)
{
	if (!usable(pool))
		return NULL;
	struct spr_prepared *found = NULL, *stale[SPR_LOCAL_POOL_MAX];
	size_t nstale = 0;
	pthread_mutex_lock(&pool->lock);
	for (size_t i = 0; i < pool->count; i++) {
		bool same = spr_plan_same(&pool->ready[i]->plan, plan);
		if (!found && same)
			found = pool->ready[i];
		else if (!same)
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

/* With the lock held; *evicted is the sandbox p replaced, for the caller
 * to free outside the lock. */
static bool put_locked(struct spr_local_pool *pool, struct spr_prepared *p,
		       struct spr_prepared **evicted)
{
	*evicted = NULL;
	if (pool->stopping || !pool->size)
		return false;
	if (pool->count < (size_t)pool->size) {
		pool->ready[pool->count++] = p;
		return true;
	}
	for (size_t i = 0; i < pool->count; i++) {
		if (!spr_plan_same(&pool->ready[i]->plan, &p->plan)) {
			*evicted = pool->ready[i];
			pool->ready[i] = p;
			return true;
		}
	}
	return false;
}

bool spr_local_pool_put(struct spr_local_pool *pool, struct spr_prepared *p)
{
	struct spr_prepared *evicted = NULL;
	bool kept = false;
	if (usable(pool)) {
		pthread_mutex_lock(&pool->lock);
		kept = put_locked(pool, p, &evicted);
		pthread_mutex_unlock(&pool->lock);
	}
	spr_prepared_free(evicted);
	if (!kept)
		spr_prepared_free(p);
	return kept;
}

static void clear_want(struct spr_local_pool *pool)
{
	spr_buf_free(&pool->want_plan);
	pool->want_known = false;
}

/* One step of the thread, lock held: sets one sandbox up (the lock
 * released meanwhile). Returns false when there is nothing to do. */
static bool refill_step(struct spr_local_pool *pool)
{
	if (!pool->want_plan.len || matching(pool, &pool->want_plan) >= (size_t)pool->size)
		return false;
	spr_buf plan = SPR_BUF_INIT;
	spr_buf_append(&plan, pool->want_plan.data, pool->want_plan.len);
	bool known = pool->want_known;
	struct spr_applied isolation = pool->want_isolation;
	if (plan.oom) {
		/* Out of memory: give this refill up. */
		clear_want(pool);
		spr_buf_free(&plan);
		return true;
	}
	pthread_mutex_unlock(&pool->lock);
	struct spr_prepared *p = pool->prepare(pool->ctx, &plan);
	if (p) {
		p->expect_known = known;
		p->expect = isolation;
	}
	pthread_mutex_lock(&pool->lock);
	struct spr_prepared *evicted = NULL;
	bool kept = p && put_locked(pool, p, &evicted);
	/* A failure ends this refill (a plan that cannot be set up is not
	 * retried in a loop); the next run asks again. */
	if (!kept && spr_plan_same(&pool->want_plan, &plan))
		clear_want(pool);
	pthread_mutex_unlock(&pool->lock);
	spr_prepared_free(evicted);
	if (!kept)
		spr_prepared_free(p);
	spr_buf_free(&plan);
	pthread_mutex_lock(&pool->lock);
	return true;
}

static void *refill_thread(void *arg)
{
	struct spr_local_pool *pool = arg;
	pthread_mutex_lock(&pool->lock);
	while (!pool->stopping)
		if (!refill_step(pool) && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

void spr_local_pool_refill(struct spr_local_pool *pool, const spr_buf *plan,
			   const struct spr_applied *isolation)
{
	if (!usable(pool))
		return;
	pthread_mutex_lock(&pool->lock);
	if (!pool->stopping) {
		clear_want(pool);
		spr_buf_append(&pool->want_plan, plan->data, plan->len);
		if (pool->want_plan.oom)
			clear_want(pool);
		pool->want_known = isolation != NULL;
		if (isolation)
			pool->want_isolation = *isolation;
		if (!pool->thread_running) {
			/* The caller's signals are the caller's: the thread takes none. */
			sigset_t all, saved;
			sigfillset(&all);
			pthread_sigmask(SIG_BLOCK, &all, &saved);
			pool->thread_running =
				pthread_create(&pool->thread, NULL, refill_thread, pool) == 0;
			pthread_sigmask(SIG_SETMASK, &saved, NULL);
		}
		pthread_cond_signal(&pool->wake);
	}
	pthread_mutex_unlock(&pool->lock);
}

void spr_local_pool_drain(struct spr_local_pool *pool)
{
	/* A fork of the caller leaves the parent's sandboxes alone (closing
	 * its copies of the descriptors would not end them anyway). */
	if (pool->owner != getpid())
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_signal(&pool->wake);
	bool running = pool->thread_running;
	pool->thread_running = false;
	pthread_mutex_unlock(&pool->lock);
	if (running)
		pthread_join(pool->thread, NULL);
	pthread_mutex_lock(&pool->lock);
	size_t n = pool->count;
	struct spr_prepared *all[SPR_LOCAL_POOL_MAX];
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
	memcpy(all, pool->ready, n * sizeof(*all));
	pool->count = 0;
	pool->size = 0;
	clear_want(pool);
	pthread_mutex_unlock(&pool->lock);
	for (size_t i = 0; i < n; i++)
		spr_prepared_free(all[i]);
}
