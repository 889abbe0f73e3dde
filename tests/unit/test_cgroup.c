/* cgroup v2 controller hand-down, on plain files: which subtree_control
 * contents count as "memory, pids and cpu on", and paths too long for
 * PATH_MAX refused rather than cut. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cgroup/cgroup.h"
#include "unit.h"

static char dir[] = "/tmp/spr-unit-cgroup-XXXXXX";

static void write_subtree(const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	FILE *f = fopen(path, "we");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void setup(void) { ck_assert_ptr_nonnull(mkdtemp(dir)); }

static void teardown(void)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	unlink(path);
	rmdir(dir);
	strcpy(dir, "/tmp/spr-unit-cgroup-XXXXXX");
}

START_TEST(has_controllers_needs_all_three)
{
	ck_assert(!spr_cg_v2_has_controllers(dir)); /* no file */
	write_subtree("memory pids\n");
	ck_assert(!spr_cg_v2_has_controllers(dir));
	write_subtree("cpu io memory pids\n");
	ck_assert(spr_cg_v2_has_controllers(dir));
}
END_TEST

START_TEST(enable_writes_the_three_unless_listed)
{
	spr_error *err = NULL;
	write_subtree("cpu memory pids\n");
	ck_assert_ok(spr_cg_v2_enable_controllers(dir, &err), err);
	write_subtree("io\n");
	ck_assert_ok(spr_cg_v2_enable_controllers(dir, &err), err);
	char path[PATH_MAX], buf[64] = "";
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", dir);
	FILE *f = fopen(path, "re");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	ck_assert_str_eq(buf, "+memory +pids +cpu");
}
END_TEST

START_TEST(a_path_past_path_max_is_refused_not_cut)
{
	/* /a/a/.../a/cgroup.subtree_control cut at PATH_MAX names another file
	 * the kernel would look for (ENOENT): spr must refuse it itself. */
	static char long_dir[PATH_MAX];
	for (size_t i = 0; i + 2 < sizeof(long_dir) - 8; i += 2)
		memcpy(long_dir + i, "/a", 2);
	ck_assert(!spr_cg_v2_has_controllers(long_dir));
	spr_error *err = NULL;
	ck_assert_int_lt(spr_cg_v2_enable_controllers(long_dir, &err), 0);
	ck_assert_ptr_nonnull(err);
	ck_assert_int_eq(err->errnum, ENAMETOOLONG);
	ck_assert_str_eq(spr_layer_name(err->layer), "cgroup");
	spr_error_free(err);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("cgroup");
	TCase *t = tcase_create("v2 controllers");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, has_controllers_needs_all_three);
	tcase_add_test(t, enable_writes_the_three_unless_listed);
	tcase_add_test(t, a_path_past_path_max_is_refused_not_cut);
	suite_add_tcase(s, t);
	return s;
}
