/* The sandbox layout computed on the host, against a fake host tree. */
#include <stdio.h>
#include <sys/stat.h>

#include "json.h"
#include "local/layout.h"
#include "unit.h"

static char root[] = "/tmp/spr-test-layout-XXXXXX";

static void mk(const char *rel, bool dir)
{
	char path[512];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
	if (!dir) {
		char *slash = strrchr(cmd, '/');
		*slash = '\0';
		strcat(cmd, "'");
	}
	ck_assert_int_eq(system(cmd), 0);
	if (!dir) {
		FILE *f = fopen(path, "w");
		ck_assert_ptr_nonnull(f);
		fclose(f);
	}
}

static void ln(const char *target, const char *rel)
{
	char path[512];
	snprintf(path, sizeof(path), "%s%s", root, rel);
	ck_assert_int_eq(symlink(target, path), 0);
}

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(root));
	mk("/usr/bin", true);
	mk("/usr/lib", true);
	ln("usr/bin", "/bin");
	ln("usr/lib", "/lib");
	mk("/lib64", true); /* a real directory on this fake host */
	mk("/etc/ld.so.cache", false);
	mk("/etc/ssl/certs", true);
	mk("/etc/shadow", false);
	ln("/usr/share/zoneinfo/UTC", "/etc/localtime");
	mk("/etc/resolv.conf", false);
	/* pyenv-style interpreter under a home directory */
	mk("/root/.pyenv/versions/3.11.7/bin/python3.11", false);
	/* the worker cache under /tmp, which the sandbox's own /tmp hides */
	mk("/tmp/cache/spr_worker-1.pyc", false);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(root, "/tmp/spr-test-layout-XXXXXX");
}

static cJSON *build(bool network, bool caller_is_root)
{
	struct spr_layout_input in = {
		.python_executable = "/root/.pyenv/versions/3.11.7/bin/python3.11",
		.python_base_prefix = "/root/.pyenv/versions/3.11.7",
		.python_prefix = "/root/.pyenv/versions/3.11.7",
		.worker_path = "/tmp/cache/spr_worker-1.pyc",
		.network = network,
		.tmp_bytes = 8 << 20,
		.outside_uid = 65534,
		.outside_gid = 65534,
		.caller_is_root = caller_is_root,
		.host_root = root,
	};
	spr_error *err = NULL;
	cJSON *l = spr_layout_build(&in, &err);
	ck_assert_msg(l != NULL, "layout: %s", err ? err->message : "?");
	return l;
}

/* Index of the first op with this kind and destination, -1 if none. */
static int find_op(const cJSON *layout, const char *kind, const char *dst)
{
	int i = 0;
	const cJSON *op;
	cJSON_ArrayForEach(op, cJSON_GetObjectItemCaseSensitive(layout, "mounts"))
	{
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(op, "op");
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(op, "dst");
		if (!strcmp(k->valuestring, kind) && !strcmp(d->valuestring, dst))
			return i;
		i++;
	}
	return -1;
}

static const cJSON *op_at(const cJSON *layout, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(layout, "mounts"), i);
}

static bool list_has(const cJSON *list, const char *path)
{
	const cJSON *p;
	cJSON_ArrayForEach(p, list)
	{
		if (!strcmp(p->valuestring, path))
			return true;
	}
	return false;
}

START_TEST(system_and_merged_usr)
{
	cJSON *l = build(false, true);
	int usr = find_op(l, "bind", "/usr");
	ck_assert_int_ge(usr, 0);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(op_at(l, usr), "flags")->valuestring, "ro");
	int bin = find_op(l, "symlink", "/bin");
	ck_assert_int_ge(bin, 0);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(op_at(l, bin), "target")->valuestring,
			 "usr/bin");
	ck_assert_int_ge(find_op(l, "bind", "/lib64"), 0); /* a real dir is bound */
	ck_assert_int_lt(find_op(l, "bind", "/sbin"), 0);  /* absent: skipped */
	cJSON_Delete(l);
}
END_TEST

START_TEST(minimal_etc)
{
	cJSON *l = build(false, true);
	ck_assert_int_ge(find_op(l, "file", "/etc/passwd"), 0);
	ck_assert_int_ge(find_op(l, "file", "/etc/group"), 0);
	ck_assert_int_ge(find_op(l, "file", "/etc/hosts"), 0);
	ck_assert_int_ge(find_op(l, "file", "/etc/nsswitch.conf"), 0);
	ck_assert_int_ge(find_op(l, "bind", "/etc/ld.so.cache"), 0);
	ck_assert_int_ge(find_op(l, "bind", "/etc/ssl"), 0);
	ck_assert_int_ge(find_op(l, "symlink", "/etc/localtime"), 0);
	/* Nothing else of the host's /etc. */
	ck_assert_int_lt(find_op(l, "bind", "/etc/shadow"), 0);
	ck_assert_int_lt(find_op(l, "bind", "/etc"), 0);
	const cJSON *passwd = op_at(l, find_op(l, "file", "/etc/passwd"));
	ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItemCaseSensitive(passwd, "content")->valuestring,
				     "sandbox:x:1000:1000:"));
	/* No network: an empty resolv.conf, not the host's. */
	ck_assert_int_ge(find_op(l, "file", "/etc/resolv.conf"), 0);
	ck_assert_int_lt(find_op(l, "bind", "/etc/resolv.conf"), 0);
	cJSON_Delete(l);

	l = build(true, true);
	ck_assert_int_ge(find_op(l, "bind", "/etc/resolv.conf"), 0);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "network")));
	cJSON_Delete(l);
}
END_TEST

START_TEST(interpreter_and_worker_stay_visible)
{
	cJSON *l = build(false, true);
	int tmp = find_op(l, "tmpfs", "/tmp");
	int python = find_op(l, "bind", "/root/.pyenv/versions/3.11.7");
	int worker = find_op(l, "bind", "/opt/spr/spr_worker-1.pyc");
	ck_assert_int_ge(tmp, 0);
	ck_assert_int_ge(python, 0);
	ck_assert_int_ge(worker, 0);
	/* A later mount hides an earlier one below it: binds come after /tmp. */
	ck_assert_int_gt(python, tmp);
	ck_assert_int_gt(worker, tmp);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(op_at(l, worker), "src")->valuestring,
			 "/tmp/cache/spr_worker-1.pyc");
	/* The executable's own directory is inside the prefix: one bind. */
	ck_assert_int_lt(find_op(l, "bind", "/root/.pyenv/versions/3.11.7/bin"), 0);
	/* Nothing else of /root. */
	ck_assert_int_lt(find_op(l, "bind", "/root"), 0);
	char *inside = spr_layout_worker_inside("/x/y/spr_worker.py");
	ck_assert_str_eq(inside, "/opt/spr/spr_worker.py");
	free(inside);
	cJSON_Delete(l);
}
END_TEST

START_TEST(proc_dev_tmp)
{
	cJSON *l = build(false, true);
	ck_assert_int_ge(find_op(l, "proc", "/proc"), 0);
	ck_assert_int_ge(find_op(l, "mask", "/proc/kcore"), 0);
	ck_assert_int_ge(find_op(l, "ro", "/proc/sys"), 0);
	ck_assert_int_ge(find_op(l, "ro", "/proc/sysrq-trigger"), 0);
	const char *nodes[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
	for (size_t i = 0; i < 5; i++) {
		int at = find_op(l, "bind", nodes[i]);
		ck_assert_int_ge(at, 0);
		ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(op_at(l, at), "flags")->valuestring,
				 "dev");
	}
	ck_assert_int_ge(find_op(l, "tmpfs", "/dev/shm"), 0);
	ck_assert_int_gt(find_op(l, "seal", "/dev"), find_op(l, "tmpfs", "/dev/shm"));
	const cJSON *tmp = op_at(l, find_op(l, "tmpfs", "/tmp"));
	ck_assert(cJSON_GetObjectItemCaseSensitive(tmp, "size")->valuedouble == 8 << 20);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tmp, "noexec")));
	ck_assert_int_lt(find_op(l, "bind", "/sys"), 0);
	ck_assert_int_lt(find_op(l, "bind", "/home"), 0);
	ck_assert_int_lt(find_op(l, "bind", "/var"), 0);
	cJSON_Delete(l);
}
END_TEST

START_TEST(landlock_lists)
{
	cJSON *l = build(false, true);
	const cJSON *ll = cJSON_GetObjectItemCaseSensitive(l, "landlock");
	const cJSON *read = cJSON_GetObjectItemCaseSensitive(ll, "read");
	const cJSON *write = cJSON_GetObjectItemCaseSensitive(ll, "write");
	ck_assert(list_has(read, "/usr"));
	ck_assert(list_has(read, "/root/.pyenv/versions/3.11.7"));
	ck_assert(list_has(read, "/opt/spr/spr_worker-1.pyc"));
	ck_assert(list_has(write, "/tmp"));
	ck_assert(list_has(write, "/dev/shm"));
	ck_assert(list_has(write, "/dev/null"));
	ck_assert(!list_has(write, "/usr"));
	ck_assert(!list_has(write, "/etc"));
	ck_assert(!list_has(write, "/"));
	cJSON_Delete(l);
}
END_TEST

START_TEST(ids_and_degraded)
{
	cJSON *l = build(false, true);
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(l, "ids");
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(ids, "uid")->valueint, 1000);
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(ids, "outside_uid")->valueint, 65534);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(l, "degraded");
	const cJSON *run_as = cJSON_GetObjectItemCaseSensitive(d, "run_as");
	ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(run_as, "uid")->valueint, 65534);
	const cJSON *dread = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(d, "landlock"), "read");
	/* Host paths, not the in-sandbox worker path. */
	ck_assert(list_has(dread, "/tmp/cache/spr_worker-1.pyc"));
	ck_assert(!list_has(dread, "/etc"));
	cJSON_Delete(l);

	l = build(false, false); /* rootless: the code keeps the caller's id */
	d = cJSON_GetObjectItemCaseSensitive(l, "degraded");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(d, "run_as"));
	cJSON_Delete(l);
}
END_TEST

/* A layout input for another interpreter, on the fake host. */
static struct spr_layout_input python_at(const char *executable, const char *base_prefix,
					 const char *prefix)
{
	return (struct spr_layout_input){
		.python_executable = executable,
		.python_base_prefix = base_prefix,
		.python_prefix = prefix,
		.worker_path = "/tmp/cache/spr_worker-1.pyc",
		.tmp_bytes = 1 << 20,
		.host_root = root,
	};
}

/* A venv made by an interpreter called through a link in a directory
 * nothing binds: its bin/python chain goes through that link, which must
 * be recreated (and nothing twice, nothing inside a bind). */
START_TEST(venv_links_outside_binds_are_recreated)
{
	mk("/tmp/venv/lib/python3.11/site-packages", true);
	mk("/tmp/venv/pyvenv.cfg", false);
	mk("/tmp/venv/bin", true);
	mk("/home/u/bin", true);
	ln("python3", "/tmp/venv/bin/python");
	ln("/home/u/bin/python3", "/tmp/venv/bin/python3");
	ln("/bin/../bin/./python3.11", "/home/u/bin/python3");
	mk("/usr/bin/python3.11", false);
	struct spr_layout_input in = python_at("/tmp/venv/bin/python", "/usr", "/tmp/venv");
	spr_error *err = NULL;
	cJSON *l = spr_layout_build(&in, &err);
	ck_assert_msg(l != NULL, "layout: %s", err ? err->message : "?");
	int venv = find_op(l, "bind", "/tmp/venv");
	int hop = find_op(l, "symlink", "/home/u/bin/python3");
	ck_assert_int_gt(venv, find_op(l, "tmpfs", "/tmp"));
	ck_assert_int_gt(hop, venv);
	ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(op_at(l, hop), "target")->valuestring,
			 "/bin/../bin/./python3.11");
	/* Links inside the venv's bind are the host's own; /bin is made once. */
	ck_assert_int_lt(find_op(l, "symlink", "/tmp/venv/bin/python3"), 0);
	int links = 0;
	const cJSON *o;
	cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(l, "mounts"))
	{
		if (!strcmp(cJSON_GetObjectItemCaseSensitive(o, "dst")->valuestring, "/bin"))
			links++;
	}
	ck_assert_int_eq(links, 1);
	cJSON_Delete(l);
}
END_TEST

START_TEST(missing_interpreter_is_an_error)
{
	struct spr_layout_input in = python_at("/nope/bin/python3", "/nope", "/nope");
	spr_error *err = NULL;
	ck_assert_ptr_null(spr_layout_build(&in, &err));
	ck_assert_ptr_nonnull(strstr(err->message, "/nope"));
	spr_error_free(err);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("layout");
	TCase *t = tcase_create("layout");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, system_and_merged_usr);
	tcase_add_test(t, minimal_etc);
	tcase_add_test(t, interpreter_and_worker_stay_visible);
	tcase_add_test(t, proc_dev_tmp);
	tcase_add_test(t, landlock_lists);
	tcase_add_test(t, ids_and_degraded);
	tcase_add_test(t, venv_links_outside_binds_are_recreated);
	tcase_add_test(t, missing_interpreter_is_an_error);
	suite_add_tcase(s, t);
	return s;
}
