/* The LocalEngine's warm pool: sandboxes set up ahead of time, up to the
 * worker waiting for its request (namespaces, root, cgroup, interpreter
 * started, worker imported), each used by exactly one run.
 *
 * A prepared sandbox is its host-side descriptors: nothing of a run has
 * reached it yet, so handing it over is writing the request. It is kept
 * for the sandbox plan it was made with (protocol/plan.h, compared as
 * encoded bytes: every limit, mount and filter the run gets is in it),
 * and only a run with the identical plan may take it.
 *
 * Sandboxes are set up by the pool's own thread, started at the first
 * refill: a run only says what it wants and goes on watching its own
 * deadline. The thread adds at most one sandbox per step and stops at
 * the first failure, so a plan that cannot be set up is not retried until
 * a run asks again. */
#ifndef SPR_LOCAL_POOL_H
#define SPR_LOCAL_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "protocol/message.h"
#include "util.h"

#define SPR_LOCAL_POOL_MAX 8

struct spr_prepared {
	int ctrl;	    /* the monitor's control socket */
	int helper;	    /* the monitor's pidfd */
	int request;	    /* the worker's stdin (nothing written yet) */
	int out, err, result; /* read ends of the worker's fds 1, 2, 3 */
	spr_buf plan;	    /* the encoded sandbox plan it was made with */
	unsigned server;    /* the generation of the fork server of its monitor */
	bool started;	    /* its STARTED message was read: */
	struct spr_msg started_msg;
	bool expect_known;  /* the isolation of the run that asked for it: a */
	struct spr_applied expect; /* sandbox that got less is not used */
};

/* Sets a sandbox up for plan (NULL on failure). */
typedef struct spr_prepared *(*spr_prepare_fn)(void *ctx, const spr_buf *plan);

struct spr_local_pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pid_t owner; /* a fork of the caller shares the descriptors: it must
			neither use nor discard the parent's sandboxes */
	int size;    /* how many to keep prepared; 0: none */
	struct spr_prepared *ready[SPR_LOCAL_POOL_MAX];
	size_t count;

	spr_prepare_fn prepare;
	void *ctx;
	spr_buf want_plan;    /* what the thread prepares for (empty: nothing) */
	bool want_known;      /* and the isolation expected of it */
	struct spr_applied want_isolation;
	bool thread_running, stopping;
	pthread_t thread;
};

SPR_HIDDEN void spr_local_pool_init(struct spr_local_pool *pool, int size,
				    spr_prepare_fn prepare, void *ctx);

/* Asks the monitor to end the sandbox (it kills the run and removes its
 * cgroup) and closes the descriptors. */
SPR_HIDDEN void spr_prepared_free(struct spr_prepared *p);

/* A prepared sandbox made for `plan`, or NULL. Sandboxes made for another
 * plan are discarded: the pool follows the policy of the latest run. */
SPR_HIDDEN struct spr_prepared *spr_local_pool_take(struct spr_local_pool *pool,
						    const spr_buf *plan);

/* Has the pool's thread fill the pool with sandboxes for `plan` (whose
 * run got `isolation`, or NULL when not known yet). Returns at once. */
SPR_HIDDEN void spr_local_pool_refill(struct spr_local_pool *pool, const spr_buf *plan,
				      const struct spr_applied *isolation);

/* Whether two encoded plans are the same plan. */
SPR_HIDDEN bool spr_plan_same(const spr_buf *a, const spr_buf *b);

/* Adds p, in place of a sandbox for another plan when the pool is full.
 * Returns false (p freed) when there is no room for it. */
SPR_HIDDEN bool spr_local_pool_put(struct spr_local_pool *pool, struct spr_prepared *p);

/* Stops the thread and discards every prepared sandbox (engine free). */
SPR_HIDDEN void spr_local_pool_drain(struct spr_local_pool *pool);

#endif
