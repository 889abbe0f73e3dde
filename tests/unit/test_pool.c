/* The warm pool's bookkeeping (local_pool.c), on entries without
 * descriptors: which sandbox a plan gets, what is discarded, the size
 * bound, and that a fork of the caller never touches the parent's pool. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "namespace/local_pool.h"
#include "unit.h"

static struct spr_prepared *entry(const char *plan)
{
	struct spr_prepared *p = calloc(1, sizeof(*p));
	ck_assert_ptr_nonnull(p);
	*p = (struct spr_prepared){.ctrl = -1, .helper = -1, .request = -1,
				   .out = -1, .err = -1, .result = -1, .plan = strdup(plan)};
	return p;
}

START_TEST(take_gives_only_an_identical_plan)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 2);
	struct spr_prepared *a = entry("{\"plan\":1}");
	spr_local_pool_put(&pool, a);
	/* Not a prefix, not a superset: the whole text. */
	ck_assert_ptr_null(spr_local_pool_take(&pool, "{\"plan\":1,\"x\":0}"));
	/* The stale entry was discarded by that take. */
	ck_assert_uint_eq(pool.count, 0);
	struct spr_prepared *b = entry("{\"plan\":2}");
	spr_local_pool_put(&pool, b);
	ck_assert_ptr_eq(spr_local_pool_take(&pool, "{\"plan\":2}"), b);
	ck_assert_ptr_null(spr_local_pool_take(&pool, "{\"plan\":2}")); /* used once */
	spr_prepared_free(b);
	spr_local_pool_drain(&pool);
}
END_TEST

START_TEST(take_keeps_other_sandboxes_of_the_same_plan)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 3);
	struct spr_prepared *a = entry("p"), *b = entry("p"), *c = entry("q");
	spr_local_pool_put(&pool, a);
	spr_local_pool_put(&pool, c);
	spr_local_pool_put(&pool, b);
	struct spr_prepared *first = spr_local_pool_take(&pool, "p");
	ck_assert(first == a || first == b);
	ck_assert_uint_eq(pool.count, 1); /* the other "p"; "q" discarded */
	ck_assert_str_eq(pool.ready[0]->plan, "p");
	spr_prepared_free(first);
	spr_local_pool_drain(&pool);
	ck_assert_uint_eq(pool.count, 0);
}
END_TEST

START_TEST(the_size_bounds_the_pool)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 1);
	ck_assert(spr_local_pool_wants(&pool, "p"));
	spr_local_pool_put(&pool, entry("p"));
	ck_assert(!spr_local_pool_wants(&pool, "p"));
	ck_assert(spr_local_pool_wants(&pool, "q")); /* none for q yet */
	spr_local_pool_put(&pool, entry("p")); /* full: freed, not kept */
	ck_assert_uint_eq(pool.count, 1);
	spr_local_pool_drain(&pool);
	ck_assert(!spr_local_pool_wants(&pool, "p")); /* drained for good */

	spr_local_pool_init(&pool, 0);
	ck_assert(!spr_local_pool_wants(&pool, "p"));
	spr_local_pool_put(&pool, entry("p"));
	ck_assert_uint_eq(pool.count, 0);
	spr_local_pool_init(&pool, 100);
	ck_assert_int_eq(pool.size, SPR_LOCAL_POOL_MAX);
}
END_TEST

START_TEST(a_fork_leaves_the_parents_pool_alone)
{
	struct spr_local_pool pool;
	spr_local_pool_init(&pool, 1);
	struct spr_prepared *a = entry("p");
	spr_local_pool_put(&pool, a);
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		/* The lock may be held by a thread that does not exist here:
		 * none of these may take it or hand out the parent's sandbox. */
		bool ok = !spr_local_pool_wants(&pool, "q") && !spr_local_pool_take(&pool, "p");
		spr_local_pool_drain(&pool);
		_exit(ok && pool.count == 1 ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_ptr_eq(spr_local_pool_take(&pool, "p"), a);
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
	tcase_add_test(t, a_fork_leaves_the_parents_pool_alone);
	suite_add_tcase(s, t);
	return s;
}
