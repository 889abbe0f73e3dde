/* Shared scaffolding for the Check suites: each test_<module>.c defines
 * `Suite *make_suite(void)` and includes this header once. */
#ifndef SPR_UNIT_H
#define SPR_UNIT_H

#include <check.h>
#include <stdlib.h>

#include "error.h"

Suite *make_suite(void);

/* Fails the test with the error message when rc < 0. */
#define ck_assert_ok(rc, err)                                                         \
	ck_assert_msg((rc) >= 0, "failed: %s", (err) ? (err)->message : "(no error)")

int main(void)
{
	SRunner *sr = srunner_create(make_suite());
	srunner_run_all(sr, CK_ENV);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
