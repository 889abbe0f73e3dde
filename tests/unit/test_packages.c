/* What both engines accept as an environment's packages and pip options,
 * and the tree walks a venv's hand-over relies on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/packages.h"
#include "tree.h"
#include "unit.h"

static void expect_pinned(const char *spec, bool ok)
{
	const char *list[] = {"fine==1.0", spec, NULL};
	spr_error *err = NULL;
	int rc = spr_check_packages(list, &err);
	ck_assert_msg((rc == 0) == ok, "%s: %s", spec, err ? err->message : "accepted");
	if (!ok) {
		char want[256];
		snprintf(want, sizeof(want),
			 "Package specs must be pinned as 'name==version'. Invalid package: %s", spec);
		ck_assert_str_eq(err->message, want);
	}
	spr_error_free(err);
}

START_TEST(pinned_specs)
{
	static const char *const good[] = {"numpy==1.26.4", "Django==4.2", "zope.interface==6.0",
					    "typing_extensions==4.9.0", "requests[socks]==2.31.0",
					    "pkg==1.0rc1", "pkg==2.0.post1", "pkg==1!2.0", "a==0"};
	static const char *const bad[] = {"numpy", "numpy>=1.0", "numpy==", "==1.0",
					  "numpy ==1.0", "numpy==1.0 ", "numpy===1.0", "numpy~=1.0",
					  "numpy==1.0;python_version<'4'", "numpy==1.*,<2", "num py==1",
					  "numpy!=1.0", "", "numpy==1.0\n", "x@y==1", "numpy=1.0",
					  "-e==1", "numpy==1.0\t"};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		expect_pinned(good[i], true);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_pinned(bad[i], false);
}
END_TEST

START_TEST(sorted_without_duplicates)
{
	const char *list[] = {"beta==2.0", "alpha==1.0", "beta==2.0", "Alpha==1.0", NULL};
	size_t n = 0;
	const char **s = spr_sorted_packages(list, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(s[0], "Alpha==1.0");
	ck_assert_str_eq(s[1], "alpha==1.0");
	ck_assert_str_eq(s[2], "beta==2.0");
	ck_assert_ptr_null(s[3]);
	free(s);
	s = spr_sorted_packages(NULL, &n);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(s[0]);
	free(s);
}
END_TEST

static void expect_pip(spr_pip_options pip, const char *fragment)
{
	spr_error *err = NULL;
	int rc = spr_check_pip(&pip, &err);
	if (!fragment) {
		ck_assert_msg(rc == 0, "refused: %s", err ? err->message : "");
		return;
	}
	ck_assert_int_lt(rc, 0);
	ck_assert_msg(strstr(err->message, fragment), "%s lacks '%s'", err->message, fragment);
	spr_error_free(err);
}

START_TEST(specs_as_pip_reads_them)
{
	static const char *const same[][2] = {
		{"Alpha==1.0", "alpha==1.0.0"},	    {"zope.interface==6.0", "Zope_Interface==6"},
		{"a-b_c==2.0.0", "A.B-C==2"},	    {"req[Socks]==2.31.0", "req[socks]==2.31"},
		{"pkg==1.0RC1", "pkg==1.0rc1"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(same); i++) {
		char *a = spr_package_key(same[i][0]), *b = spr_package_key(same[i][1]);
		ck_assert_msg(!strcmp(a, b), "%s -> %s, %s -> %s", same[i][0], a, same[i][1], b);
		free(a);
		free(b);
	}
	static const char *const differ[][2] = {
		{"alpha==1.0", "alpha==1.0.1"}, {"alpha==1.10", "alpha==1.1"},
		{"alpha==1.0", "alphab==1.0"},	{"alpha==1.0.post1", "alpha==1.0"},
		{"alpha==10", "alpha==1"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(differ); i++) {
		char *a = spr_package_key(differ[i][0]), *b = spr_package_key(differ[i][1]);
		ck_assert_msg(strcmp(a, b), "%s and %s", differ[i][0], differ[i][1]);
		free(a);
		free(b);
	}
	char name[64];
	spr_normalize_name("Foo__Bar.-baz", 13, name, sizeof(name));
	ck_assert_str_eq(name, "foo-bar-baz");
	ck_assert(spr_same_release("1.0", "1"));
	ck_assert(spr_same_release("2.0.0", "2.0"));
	ck_assert(!spr_same_release("1.0", "1.01"));
	ck_assert(!spr_same_release("10", "1"));
}
END_TEST

START_TEST(pip_options)
{
	expect_pip((spr_pip_options){0}, NULL);
	expect_pip((spr_pip_options){.index_url = "https://pypi.example.org/simple"}, NULL);
	expect_pip((spr_pip_options){.index_url = "http://127.0.0.1:8080/simple/"}, NULL);
	expect_pip((spr_pip_options){.index_url = "file:///srv/index"}, NULL);
	expect_pip((spr_pip_options){.find_links = "/tmp", .no_index = true}, NULL);
	expect_pip((spr_pip_options){.find_links = "/tmp"}, NULL);
	expect_pip((spr_pip_options){.index_url = "ftp://x/simple"}, "--pip-index-url");
	expect_pip((spr_pip_options){.index_url = "pypi.org/simple"}, "--pip-index-url");
	expect_pip((spr_pip_options){.index_url = ""}, "--pip-index-url");
	expect_pip((spr_pip_options){.index_url = "https://x/ y"}, "--pip-index-url");
	expect_pip((spr_pip_options){.index_url = "https://x/'y"}, "--pip-index-url");
	expect_pip((spr_pip_options){.find_links = "wheels"}, "absolute");
	expect_pip((spr_pip_options){.find_links = "/nonexistent/spr-wheels"}, "No such file");
	expect_pip((spr_pip_options){.find_links = "/etc/hostname"}, "not a directory");
	expect_pip((spr_pip_options){.find_links = "/tmp/a b"}, "absolute");
	expect_pip((spr_pip_options){.no_index = true}, "needs find_links");
	expect_pip((spr_pip_options){.no_index = true, .find_links = "/tmp",
				     .index_url = "https://x/simple"},
		   "contradict");
}
END_TEST

START_TEST(pip_arguments)
{
	const char *argv[SPR_PIP_MAX_ARGS];
	spr_pip_options all = {.index_url = "https://x/simple", .find_links = "/host/wheels"};
	size_t n = spr_pip_args(&all, "/inside/wheels", argv);
	ck_assert_uint_eq(n, 4);
	ck_assert_str_eq(argv[0], "--index-url");
	ck_assert_str_eq(argv[1], "https://x/simple");
	ck_assert_str_eq(argv[2], "--find-links");
	ck_assert_str_eq(argv[3], "/inside/wheels");
	spr_pip_options local = {.find_links = "/w", .no_index = true};
	n = spr_pip_args(&local, "/w", argv);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(argv[0], "--no-index");
	ck_assert_uint_eq(spr_pip_args(&(spr_pip_options){0}, NULL, argv), 0);
}
END_TEST

static char dir[] = "/tmp/spr-test-tree-XXXXXX";

static void put(const char *rel, mode_t mode, uid_t uid)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(fchown(fd, uid, uid), 0);
	close(fd);
}

static struct stat at(const char *rel)
{
	char path[256];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	ck_assert_int_eq(lstat(path, &st), 0);
	return st;
}

static int hand_over(uid_t from, uid_t to)
{
	struct tree_owner o = {from, to, to};
	return spr_hand_over_tree(dir, &o);
}

/* What the install's uid owns is handed over, links are not followed,
 * set-id bits and others' write bits do not survive; special files and
 * other owners' files fail the hand-over; then the tree goes. */
START_TEST(hand_over_and_remove_trees)
{
	if (geteuid() != 0)
		return; /* chown to another uid needs root */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	uid_t run = 1879048999, other = 4242;
	char path[256], outside[256];
	snprintf(outside, sizeof(outside), "%s.outside", dir);
	int fd = open(outside, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fchown(fd, run, run), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/sub", dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	ck_assert_int_eq(chown(path, run, run), 0);
	ck_assert_int_eq(chmod(path, 02777), 0);
	ck_assert_int_eq(chown(dir, run, run), 0);
	put("sub/mod.py", 0666, run);
	put("sub/setuid", 06755, run);
	snprintf(path, sizeof(path), "%s/sub/link", dir);
	ck_assert_int_eq(symlink(outside, path), 0);
	ck_assert_int_eq(lchown(path, run, run), 0);

	ck_assert_int_eq(hand_over(run, 0), 0);
	ck_assert_uint_eq(at("sub/mod.py").st_uid, 0);
	ck_assert_uint_eq(at("sub/mod.py").st_mode & 07777, 0644);
	ck_assert_uint_eq(at("sub").st_uid, 0);
	ck_assert_uint_eq(at("sub").st_mode & 07777, 0755);
	ck_assert_uint_eq(at("sub/link").st_uid, 0);
	ck_assert_uint_eq(at("sub/setuid").st_mode & 07777, 0755);
	struct stat st;
	ck_assert_int_eq(lstat(outside, &st), 0);
	ck_assert_uint_eq(st.st_uid, run); /* not followed */
	ck_assert_int_eq(lstat(dir, &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);

	/* A file of someone else's, a fifo: refused. */
	put("theirs", 0644, other);
	ck_assert_int_lt(hand_over(run, 0), 0);
	ck_assert_int_eq(errno, EPERM);
	snprintf(path, sizeof(path), "%s/theirs", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/sub/fifo", dir);
	ck_assert_int_eq(mkfifo(path, 0644), 0);
	ck_assert_int_lt(hand_over(run, 0), 0);
	ck_assert_int_eq(errno, EINVAL);
	unlink(path);
	/* A rootless caller's own tree: nothing changes hands, modes are cleaned. */
	put("sub/again", 0666, 0);
	ck_assert_int_eq(hand_over(0, 0), 0);
	ck_assert_uint_eq(at("sub/again").st_mode & 07777, 0644);

	/* Deeper than the hand-over goes, and than descriptors would allow
	 * a recursive removal: 3000 levels, some left unwritable. */
	int cur = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; i < 3000; i++) {
		ck_assert_int_eq(mkdirat(cur, "d", 0755), 0);
		int next = openat(cur, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(next, 0);
		if (i % 500 == 0)
			fchmod(cur, 0500);
		close(cur);
		cur = next;
	}
	close(cur);
	ck_assert_int_lt(hand_over(run, 0), 0);
	ck_assert_int_eq(errno, ELOOP);

	snprintf(path, sizeof(path), "%s/sub", dir);
	ck_assert_int_eq(chmod(path, 0500), 0);
	ck_assert_int_eq(spr_remove_tree(dir), 0);
	ck_assert_int_lt(lstat(dir, &st), 0);
	ck_assert_int_eq(lstat(outside, &st), 0); /* the link's target stays */
	ck_assert_int_eq(spr_remove_tree(dir), 0); /* gone already: fine */
	unlink(outside);
	strcpy(dir, "/tmp/spr-test-tree-XXXXXX");
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("packages");
	TCase *t = tcase_create("packages");
	/* The 3000-level trees take ~4 s of file system work on a loaded
	 * machine: Check's default of 4 s made it flaky, not a bound. */
	tcase_set_timeout(t, 60);
	tcase_add_test(t, pinned_specs);
	tcase_add_test(t, sorted_without_duplicates);
	tcase_add_test(t, specs_as_pip_reads_them);
	tcase_add_test(t, pip_options);
	tcase_add_test(t, pip_arguments);
	tcase_add_test(t, hand_over_and_remove_trees);
	suite_add_tcase(s, t);
	return s;
}
