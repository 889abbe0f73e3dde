/* The warm pool's bookkeeping (local_pool.c), on entries without
 * descriptors: which sandbox a plan gets, what is discarded, the size
 * bound, and that a fork of the caller never touches the parent's pool. */
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "local/pool.h"
#include "unit.h"

/* An encoded plan is bytes (NULs included): these tests use text and
 * one binary pair. The buffer borrows the text; the pool copies. */
static const spr_buf *plan_of(const char *text)
{
	static __thread spr_buf b;
	b = (spr_buf){.data = (char *)text, .len = strlen(text)};
	return &b;
}

static struct spr_prepared *entry_of(const spr_buf *plan)
{
	struct spr_prepared *p = calloc(1, sizeof(*p));
	ck_assert_ptr_nonnull(p);
	*p = (struct spr_prepared){.ctrl = -1, .helper = -1, .request = -1,
				   .out = -1, .err = -1, .result = -1};
	spr_buf_append(&p->plan, plan->data, plan->len);
	return p;
}

static struct spr_prepared *entry(const char *plan)
{
	return entry_of(plan_of(plan));
}

START_TEST(take_gives_only_an_identical_plan)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 2, NULL, NULL);
	struct spr_prepared *a = entry("{\"plan\":1}");
	spr_local_pool_put(&pool, a);
	/* Not a prefix, not a superset: the whole text. */
	ck_assert_ptr_null(spr_local_pool_take(&pool, plan_of("{\"plan\":1,\"x\":0}")));
	/* The stale entry was discarded by that take. */
	ck_assert_uint_eq(pool.count, 0);
	struct spr_prepared *b = entry("{\"plan\":2}");
	spr_local_pool_put(&pool, b);
	ck_assert_ptr_eq(spr_local_pool_take(&pool, plan_of("{\"plan\":2}")), b);
	ck_assert_ptr_null(spr_local_pool_take(&pool, plan_of("{\"plan\":2}"))); /* used once */
	spr_prepared_free(b);
	/* Plans that differ only after a NUL byte are different plans. */
	static const char x[] = {'a', 0, 'b'}, y[] = {'a', 0, 'c'};
	spr_buf bx = {.data = (char *)x, .len = 3}, by = {.data = (char *)y, .len = 3};
	spr_local_pool_put(&pool, entry_of(&bx));
	ck_assert_ptr_null(spr_local_pool_take(&pool, &by));
	spr_local_pool_put(&pool, entry_of(&bx));
	struct spr_prepared *c = spr_local_pool_take(&pool, &bx);
	ck_assert_ptr_nonnull(c);
	spr_prepared_free(c);
	spr_local_pool_drain(&pool);
}
END_TEST

START_TEST(take_keeps_other_sandboxes_of_the_same_plan)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 3, NULL, NULL);
	struct spr_prepared *a = entry("p"), *b = entry("p"), *c = entry("q");
	spr_local_pool_put(&pool, a);
	spr_local_pool_put(&pool, c);
	spr_local_pool_put(&pool, b);
	struct spr_prepared *first = spr_local_pool_take(&pool, plan_of("p"));
	ck_assert(first == a || first == b);
	ck_assert_uint_eq(pool.count, 1); /* the other "p"; "q" discarded */
	ck_assert_str_eq(pool.ready[0]->plan.data, "p");
	spr_prepared_free(first);
	spr_local_pool_drain(&pool);
	ck_assert_uint_eq(pool.count, 0);
}
END_TEST

START_TEST(the_size_bounds_the_pool)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 1, NULL, NULL);
	ck_assert(spr_local_pool_put(&pool, entry("p")));
	ck_assert(!spr_local_pool_put(&pool, entry("p"))); /* full: freed, not kept */
	ck_assert_uint_eq(pool.count, 1);
	/* Full of another plan: the newer plan takes the place. */
	ck_assert(spr_local_pool_put(&pool, entry("q")));
	ck_assert_uint_eq(pool.count, 1);
	ck_assert_str_eq(pool.ready[0]->plan.data, "q");
	spr_local_pool_drain(&pool);
	ck_assert(!spr_local_pool_put(&pool, entry("p"))); /* drained for good */

	spr_local_pool_init(&pool, 0, NULL, NULL);
	ck_assert(!spr_local_pool_put(&pool, entry("p")));
	ck_assert_uint_eq(pool.count, 0);
	spr_local_pool_init(&pool, 100, NULL, NULL);
	ck_assert_int_eq(pool.size, SPR_LOCAL_POOL_MAX);
}
END_TEST

/* ---- the refill thread, with a fake setup ---- */

struct fake {
	pthread_mutex_t lock;
	int calls;
	bool fail;
};

static struct spr_prepared *fake_prepare(void *ctx, const spr_buf *plan)
{
	struct fake *f = ctx;
	pthread_mutex_lock(&f->lock);
	f->calls++;
	bool fail = f->fail;
	pthread_mutex_unlock(&f->lock);
	return fail ? NULL : entry_of(plan);
}

/* Waits (bounded, not timed: 10 s is only a hang guard) until the thread
 * has nothing left to do for this refill: the pool holds `want` sandboxes,
 * or it gave up (the wanted plan cleared). */
static void settle(struct spr_local_pool *pool, size_t want)
{
	for (int i = 0; i < 10000; i++) {
		pthread_mutex_lock(&pool->lock);
		bool done = pool->count == want || !pool->want_plan.len;
		pthread_mutex_unlock(&pool->lock);
		if (done)
			break;
		usleep(1000);
	}
	usleep(20000); /* a thread that would go on has time to show it */
}

/* One refill for "p" into an empty pool of `size`; returns the setups. */
static int refill_once(int size, bool fail, size_t *count)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER, .fail = fail};
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, size, fake_prepare, &f);
	spr_local_pool_refill(&pool, plan_of("p"), NULL);
	settle(&pool, (size_t)size);
	*count = pool.count;
	spr_local_pool_drain(&pool);
	return f.calls;
}

START_TEST(refill_fills_up_to_the_size_and_stops)
{
	size_t count;
	ck_assert_int_eq(refill_once(2, false, &count), 2);
	ck_assert_uint_eq(count, 2);
}
END_TEST

START_TEST(a_failing_setup_is_not_retried)
{
	size_t count;
	ck_assert_int_eq(refill_once(2, true, &count), 1);
	ck_assert_uint_eq(count, 0);
}
END_TEST

/* Another thread's run left a sandbox for its plan in a full pool: the
 * refill for this plan replaces it rather than setting sandboxes up and
 * throwing them away forever. */
START_TEST(a_full_pool_of_another_plan_does_not_loop_the_refill)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 1, fake_prepare, &f);
	ck_assert(spr_local_pool_put(&pool, entry("y")));
	spr_local_pool_refill(&pool, plan_of("x"), &(struct spr_applied){.landlock_abi = 6});
	for (int i = 0; i < 10000; i++) { /* a hang guard, not a timing */
		pthread_mutex_lock(&pool.lock);
		bool replaced = !strcmp(pool.ready[0]->plan.data, "x");
		pthread_mutex_unlock(&pool.lock);
		if (replaced)
			break;
		usleep(1000);
	}
	usleep(20000); /* a thread that would go on has time to show it */
	pthread_mutex_lock(&pool.lock);
	ck_assert_str_eq(pool.ready[0]->plan.data, "x");
	ck_assert(pool.ready[0]->expect_known);
	ck_assert_int_eq(pool.ready[0]->expect.landlock_abi, 6);
	pthread_mutex_unlock(&pool.lock);
	ck_assert_int_eq(f.calls, 1);
	spr_local_pool_drain(&pool);
	ck_assert_uint_eq(pool.count, 0);
}
END_TEST

START_TEST(a_fork_leaves_the_parents_pool_alone)
{
	struct fake f = {.lock = PTHREAD_MUTEX_INITIALIZER};
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 1, fake_prepare, &f);
	spr_local_pool_refill(&pool, plan_of("p"), NULL); /* the thread runs, fills the slot */
	settle(&pool, 1);
	struct spr_prepared *a = pool.ready[0];
	/* Forked while the lock is held (as when another thread holds it):
	 * the child would wait forever for a lock nobody releases. */
	pthread_mutex_lock(&pool.lock);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		alarm(2); /* a child stuck on the lock dies of SIGALRM */
		bool ok = !spr_local_pool_take(&pool, plan_of("p"));
		spr_local_pool_refill(&pool, plan_of("q"), NULL);
		ok = ok && !spr_local_pool_put(&pool, entry("p"));
		spr_local_pool_drain(&pool); /* no thread to join here, nothing freed */
		_exit(ok && pool.count == 1 ? 0 : 1);
	}
	pthread_mutex_unlock(&pool.lock);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	ck_assert_ptr_eq(spr_local_pool_take(&pool, plan_of("p")), a);
	spr_prepared_free(a);
	spr_local_pool_drain(&pool);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *t = tcase_create("pool");
	tcase_add_test(t, take_gives_only_an_identical_plan);
	tcase_add_test(t, take_keeps_other_sandboxes_of_the_same_plan);
	tcase_add_test(t, the_size_bounds_the_pool);
	tcase_add_test(t, refill_fills_up_to_the_size_and_stops);
	tcase_add_test(t, a_failing_setup_is_not_retried);
	tcase_add_test(t, a_full_pool_of_another_plan_does_not_loop_the_refill);
	tcase_add_test(t, a_fork_leaves_the_parents_pool_alone);
	suite_add_tcase(s, t);
	return s;
}
