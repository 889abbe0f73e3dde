/* Host uids of a run's own (core/uid_lease.c): the range as typed, the
 * overlap with the host's accounts, and leases no two holders share. */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "uid_lease.h"
#include "unit.h"

START_TEST(range_as_typed)
{
	struct spr_uid_range r;
	spr_error *err = NULL;
	ck_assert_ok(spr_uid_range_parse(NULL, &r, &err), err);
	ck_assert_uint_eq(r.start, SPR_UID_RANGE_DEFAULT_START);
	ck_assert_uint_eq(r.count, SPR_UID_RANGE_DEFAULT_COUNT);
	ck_assert_ok(spr_uid_range_parse("", &r, &err), err);
	ck_assert_uint_eq(r.start, SPR_UID_RANGE_DEFAULT_START);
	const struct {
		const char *text;
		uint32_t start, count;
	} ok[] = {
		{"1:1", 1, 1},
		{"100000:65536", 100000, 65536},
		{"1879048192:65536", 1879048192u, 65536},
		{"1000000:10", 1000000, 10},
		{"4294967294:1", 4294967294u, 1},
		{"65535:1", 65535, 1},
		{"1:65533", 1, 65533},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		ck_assert_msg(spr_uid_range_parse(ok[i].text, &r, &err) == 0, "%s: %s", ok[i].text,
			      err ? err->message : "");
		ck_assert_uint_eq(r.start, ok[i].start);
		ck_assert_uint_eq(r.count, ok[i].count);
		char back[32];
		spr_uid_range_format(&r, back, sizeof(back));
		ck_assert_str_eq(back, ok[i].text);
	}
	const struct {
		const char *text, *why;
	} bad[] = {
		{"1879048192", "must be START:COUNT"},
		{"1879048192-1879113727", "must be START:COUNT"},
		{"0:10", "must be START:COUNT"},
		{"10:0", "must be START:COUNT"},
		{"-1:10", "must be START:COUNT"},
		{"10:-1", "must be START:COUNT"},
		{" 10:10", "must be START:COUNT"},
		{"10:10 ", "must be START:COUNT"},
		{"+10:10", "must be START:COUNT"},
		{"1e6:10", "must be START:COUNT"},
		{"10:1.5", "must be START:COUNT"},
		{":10", "must be START:COUNT"},
		{"10:", "must be START:COUNT"},
		{"abc:def", "must be START:COUNT"},
		{"4294967295:1", "must be START:COUNT"},
		{"4294967294:2", "ends past 4294967294"},
		{"99999999999999999999:1", "must be START:COUNT"},
		{"65000:1000", "includes 65534"},
		{"65534:1", "includes 65534"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		err = NULL;
		ck_assert_msg(spr_uid_range_parse(bad[i].text, &r, &err) < 0, "%s accepted",
			      bad[i].text);
		ck_assert_msg(strstr(err->message, bad[i].why), "%s: %s", bad[i].text, err->message);
		ck_assert_int_eq(err->layer, SPR_LAYER_API);
		spr_error_free(err);
	}
}
END_TEST

static char root[] = "/tmp/spr-test-uids-XXXXXX";

static void put(const char *rel, const char *content)
{
	char path[256];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	fclose(f);
}

START_TEST(overlap_with_the_hosts_ids)
{
	ck_assert_ptr_nonnull(mkdtemp(root));
	char etc[256];
	snprintf(etc, sizeof(etc), "%s/etc", root);
	ck_assert_int_eq(mkdir(etc, 0755), 0);
	put("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
			   "odd:x:2000000:7:::\nbroken line\n");
	put("/etc/group", "root:x:0:\nbig:x:3000000:\n");
	put("/etc/subuid", "alice:100000:65536\n");
	put("/etc/subgid", "alice:200000:65536\n");
	char who[256];
	struct spr_uid_range r = {SPR_UID_RANGE_DEFAULT_START, SPR_UID_RANGE_DEFAULT_COUNT};
	ck_assert(!spr_uid_range_overlap(&r, root, who, sizeof(who)));
	r = (struct spr_uid_range){999, 2};
	ck_assert(spr_uid_range_overlap(&r, root, who, sizeof(who)));
	ck_assert_ptr_nonnull(strstr(who, "'alice' (uid 1000"));
	r = (struct spr_uid_range){2000000, 1};
	ck_assert(spr_uid_range_overlap(&r, root, who, sizeof(who)));
	ck_assert_ptr_nonnull(strstr(who, "'odd'"));
	r = (struct spr_uid_range){3000000, 1};
	ck_assert(spr_uid_range_overlap(&r, root, who, sizeof(who)));
	ck_assert_ptr_nonnull(strstr(who, "'big'"));
	/* Subordinate ranges, at either end. */
	r = (struct spr_uid_range){165535, 10};
	ck_assert(spr_uid_range_overlap(&r, root, who, sizeof(who)));
	ck_assert_ptr_nonnull(strstr(who, "subordinate ids of 'alice' (100000-165535"));
	r = (struct spr_uid_range){165536, 34464};
	ck_assert(!spr_uid_range_overlap(&r, root, who, sizeof(who)));
	r = (struct spr_uid_range){265000, 10};
	ck_assert(spr_uid_range_overlap(&r, root, who, sizeof(who)));
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

START_TEST(leases_are_exclusive_until_released)
{
	char file[] = "/tmp/spr-test-leases-XXXXXX";
	int tmp = mkstemp(file);
	ck_assert_int_ge(tmp, 0);
	close(tmp);
	struct spr_uid_range r = {5000000, 3};
	struct spr_uid_lease a, b, c, d;
	spr_error *err = NULL;
	ck_assert_ok(spr_uid_lease_take(&r, file, &a, &err), err);
	ck_assert_ok(spr_uid_lease_take(&r, file, &b, &err), err);
	ck_assert_ok(spr_uid_lease_take(&r, file, &c, &err), err);
	/* Three different ids of the range. */
	ck_assert(a.uid != b.uid && b.uid != c.uid && a.uid != c.uid);
	ck_assert(a.uid >= 5000000 && a.uid < 5000003);
	ck_assert_int_eq(fcntl(a.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	/* Full: a clear error naming the fix. */
	ck_assert_int_lt(spr_uid_lease_take(&r, file, &d, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "every uid of the range 5000000:3 is leased"));
	ck_assert_ptr_nonnull(strstr(err->message, "--uid-range"));
	ck_assert_int_eq(d.fd, -1);
	spr_error_free(err);
	err = NULL;
	/* Another process sees them taken too (host-wide, not per process). */
	pid_t pid = fork();
	if (pid == 0) {
		struct spr_uid_lease x;
		spr_error *e = NULL;
		_exit(spr_uid_lease_take(&r, file, &x, &e) < 0 ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	/* Released: that id is free again, and only that one. */
	uint32_t freed = b.uid;
	spr_uid_lease_release(&b);
	ck_assert_int_eq(b.fd, -1);
	ck_assert_ok(spr_uid_lease_take(&r, file, &d, &err), err);
	ck_assert_uint_eq(d.uid, freed);
	/* A holder that dies releases its lease without help. */
	pid = fork();
	if (pid == 0) {
		spr_uid_lease_release(&a); /* the child's copy goes; the parent's stays */
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_lt(spr_uid_lease_take(&r, file, &b, &err), 0);
	spr_error_free(err);
	err = NULL;
	spr_uid_lease_release(&a);
	spr_uid_lease_release(&c);
	spr_uid_lease_release(&d);
	/* The lease file's directory is made when missing. */
	char dir[] = "/tmp/spr-test-leasedir-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	char nested[128];
	snprintf(nested, sizeof(nested), "%s/sub/leases", dir);
	ck_assert_ok(spr_uid_lease_take(&r, nested, &a, &err), err);
	spr_uid_lease_release(&a);
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, file);
	ck_assert_int_eq(system(cmd), 0);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("uid_lease");
	TCase *t = tcase_create("uid_lease");
	tcase_add_test(t, range_as_typed);
	tcase_add_test(t, overlap_with_the_hosts_ids);
	tcase_add_test(t, leases_are_exclusive_until_released);
	suite_add_tcase(s, t);
	return s;
}
