/* The sandbox layout computed on the host, against a fake host tree. */
#include <stdio.h>
#include <sys/stat.h>

#include "protocol/layout.h"
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

static const struct spr_scratch scratch[] = {{"/tmp", 8 << 20, 01777},
					     {"/dev/shm", 8 << 20, 01777}};

struct built {
	struct spr_layout layout;
	struct spr_degraded_plan degraded;
	struct spr_arena arena;
};

static struct built *build_from(const struct spr_layout_input *in)
{
	struct built *b = calloc(1, sizeof(*b));
	spr_error *err = NULL;
	int rc = spr_layout_build(in, &b->layout, &b->degraded, &b->arena, &err);
	ck_assert_msg(rc == 0, "layout: %s", err ? err->message : "?");
	return b;
}

static struct built *build(bool network, bool caller_is_root)
{
	struct spr_layout_input in = {
		.python_executable = "/root/.pyenv/versions/3.11.7/bin/python3.11",
		.python_base_prefix = "/root/.pyenv/versions/3.11.7",
		.python_prefix = "/root/.pyenv/versions/3.11.7",
		.worker_path = "/tmp/cache/spr_worker-1.pyc",
		.network = network,
		.scratch = scratch,
		.nscratch = 2,
		.workdir = "/tmp",
		.outside_uid = 65534,
		.outside_gid = 65534,
		.caller_is_root = caller_is_root,
		.host_root = root,
	};
	return build_from(&in);
}

static void built_free(struct built *b)
{
	spr_arena_free(&b->arena);
	free(b);
}

/* Index of the first op with this kind and destination, -1 if none. */
static int find_op(const struct built *b, enum spr_mount_kind kind, const char *dst)
{
	for (size_t i = 0; i < b->layout.nmounts; i++)
		if (b->layout.mounts[i].kind == (int)kind && !strcmp(b->layout.mounts[i].dst, dst))
			return (int)i;
	return -1;
}

static const struct spr_mount_op *op_at(const struct built *b, int i)
{
	return &b->layout.mounts[i];
}

static bool list_has(const struct spr_paths *list, const char *path)
{
	for (size_t i = 0; i < list->n; i++)
		if (!strcmp(list->v[i], path))
			return true;
	return false;
}

START_TEST(system_and_merged_usr)
{
	struct built *l = build(false, true);
	int usr = find_op(l, SPR_MOUNT_BIND_RO, "/usr");
	ck_assert_int_ge(usr, 0);
	int bin = find_op(l, SPR_MOUNT_SYMLINK, "/bin");
	ck_assert_int_ge(bin, 0);
	ck_assert_str_eq(op_at(l, bin)->text, "usr/bin");
	ck_assert_int_ge(find_op(l, SPR_MOUNT_BIND_RO, "/lib64"), 0); /* a real dir is bound */
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/sbin"), 0);  /* absent: skipped */
	built_free(l);
}
END_TEST

START_TEST(minimal_etc)
{
	struct built *l = build(false, true);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_FILE, "/etc/passwd"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_FILE, "/etc/group"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_FILE, "/etc/hosts"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_FILE, "/etc/nsswitch.conf"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_BIND_RO, "/etc/ld.so.cache"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_BIND_RO, "/etc/ssl"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_SYMLINK, "/etc/localtime"), 0);
	/* Nothing else of the host's /etc. */
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/etc/shadow"), 0);
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/etc"), 0);
	const struct spr_mount_op *passwd = op_at(l, find_op(l, SPR_MOUNT_FILE, "/etc/passwd"));
	ck_assert_ptr_nonnull(strstr(passwd->text, "sandbox:x:1000:1000:spr sandbox:/tmp:"));
	/* No network: an empty resolv.conf, not the host's. */
	ck_assert_int_ge(find_op(l, SPR_MOUNT_FILE, "/etc/resolv.conf"), 0);
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/etc/resolv.conf"), 0);
	built_free(l);

	l = build(true, true);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_BIND_RO, "/etc/resolv.conf"), 0);
	ck_assert(l->layout.network);
	built_free(l);
}
END_TEST

START_TEST(interpreter_and_worker_stay_visible)
{
	struct built *l = build(false, true);
	int tmp = find_op(l, SPR_MOUNT_TMPFS, "/tmp");
	int python = find_op(l, SPR_MOUNT_BIND_RO, "/root/.pyenv/versions/3.11.7");
	int worker = find_op(l, SPR_MOUNT_BIND_RO, "/opt/spr/spr_worker-1.pyc");
	ck_assert_int_ge(tmp, 0);
	ck_assert_int_ge(python, 0);
	ck_assert_int_ge(worker, 0);
	/* A later mount hides an earlier one below it: binds come after /tmp. */
	ck_assert_int_gt(python, tmp);
	ck_assert_int_gt(worker, tmp);
	ck_assert_str_eq(op_at(l, worker)->src, "/tmp/cache/spr_worker-1.pyc");
	/* The executable's own directory is inside the prefix: one bind. */
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/root/.pyenv/versions/3.11.7/bin"), 0);
	/* Nothing else of /root. */
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/root"), 0);
	char *inside = spr_layout_worker_inside("/x/y/spr_worker.py");
	ck_assert_str_eq(inside, "/opt/spr/spr_worker.py");
	free(inside);
	built_free(l);
}
END_TEST

START_TEST(proc_dev_tmp)
{
	struct built *l = build(false, true);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_PROC, "/proc"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_MASK, "/proc/kcore"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_READONLY, "/proc/sys"), 0);
	ck_assert_int_ge(find_op(l, SPR_MOUNT_READONLY, "/proc/sysrq-trigger"), 0);
	const char *nodes[] = {"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"};
	for (size_t i = 0; i < 5; i++) {
		ck_assert_int_ge(find_op(l, SPR_MOUNT_BIND_DEV, nodes[i]), 0);
		ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, nodes[i]), 0);
	}
	ck_assert_int_ge(find_op(l, SPR_MOUNT_TMPFS, "/dev/shm"), 0);
	ck_assert_int_gt(find_op(l, SPR_MOUNT_SEAL, "/dev"), find_op(l, SPR_MOUNT_TMPFS, "/dev/shm"));
	const struct spr_mount_op *tmp = op_at(l, find_op(l, SPR_MOUNT_TMPFS, "/tmp"));
	ck_assert_uint_eq(tmp->size, 8 << 20);
	ck_assert_uint_eq(tmp->mode, 01777);
	ck_assert(tmp->noexec);
	ck_assert_str_eq(l->layout.workdir, "/tmp");
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/sys"), 0);
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/home"), 0);
	ck_assert_int_lt(find_op(l, SPR_MOUNT_BIND_RO, "/var"), 0);
	built_free(l);
}
END_TEST

START_TEST(landlock_lists)
{
	struct built *l = build(false, true);
	const struct spr_paths *read = &l->layout.landlock_read;
	const struct spr_paths *write = &l->layout.landlock_write;
	ck_assert(list_has(read, "/usr"));
	ck_assert(list_has(read, "/root/.pyenv/versions/3.11.7"));
	ck_assert(list_has(read, "/opt/spr/spr_worker-1.pyc"));
	ck_assert(list_has(write, "/tmp"));
	ck_assert(list_has(write, "/dev/shm"));
	ck_assert(list_has(write, "/dev/null"));
	ck_assert(!list_has(write, "/usr"));
	ck_assert(!list_has(write, "/etc"));
	ck_assert(!list_has(write, "/"));
	/* The read list grants execute: nothing writable is on it or below a
	 * path on it (Landlock's second wall behind the noexec mounts). */
	const struct spr_paths *data = &l->layout.landlock_data;
	for (size_t i = 0; i < read->n; i++)
		for (size_t j = 0; j < write->n; j++) {
			size_t n = strlen(read->v[i]);
			ck_assert_msg(strncmp(write->v[j], read->v[i], n) ||
					      (write->v[j][n] != '/' && write->v[j][n] != '\0'),
				      "%s is writable and lies on the read (execute) path %s",
				      write->v[j], read->v[i]);
		}
	ck_assert(list_has(data, "/dev"));
	ck_assert(!list_has(read, "/dev"));
	built_free(l);
}
END_TEST

START_TEST(ids_and_degraded)
{
	struct built *l = build(false, true);
	ck_assert_int_eq(l->layout.uid, 1000);
	ck_assert_int_eq(l->layout.outside_uid, 65534);
	ck_assert(l->degraded.run_as);
	ck_assert_int_eq(l->degraded.uid, 65534);
	const struct spr_paths *dread = &l->degraded.landlock_read;
	/* Host paths, not the in-sandbox worker path. */
	ck_assert(list_has(dread, "/tmp/cache/spr_worker-1.pyc"));
	ck_assert(!list_has(dread, "/etc"));
	built_free(l);

	l = build(false, false); /* rootless: the code keeps the caller's id */
	ck_assert(!l->degraded.run_as);
	built_free(l);
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
		.scratch = scratch,
		.nscratch = 2,
		.workdir = "/tmp",
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
	struct built *l = build_from(&in);
	int venv = find_op(l, SPR_MOUNT_BIND_RO, "/tmp/venv");
	int hop = find_op(l, SPR_MOUNT_SYMLINK, "/home/u/bin/python3");
	ck_assert_int_gt(venv, find_op(l, SPR_MOUNT_TMPFS, "/tmp"));
	ck_assert_int_gt(hop, venv);
	ck_assert_str_eq(op_at(l, hop)->text, "/bin/../bin/./python3.11");
	/* Links inside the venv's bind are the host's own; /bin is made once. */
	ck_assert_int_lt(find_op(l, SPR_MOUNT_SYMLINK, "/tmp/venv/bin/python3"), 0);
	int links = 0;
	for (size_t i = 0; i < l->layout.nmounts; i++)
		links += !strcmp(l->layout.mounts[i].dst, "/bin");
	ck_assert_int_eq(links, 1);
	built_free(l);
}
END_TEST

/* An install's venv: writable, at its own path, after the read-only
 * binds it may lie under, in both Landlock write lists; nothing else is. */
START_TEST(writable_dir_for_an_install)
{
	mk("/srv/.venv.spr/0123456789abcdef", true);
	struct spr_layout_input in = {
		.python_executable = "/root/.pyenv/versions/3.11.7/bin/python3.11",
		.python_base_prefix = "/root/.pyenv/versions/3.11.7",
		.python_prefix = "/root/.pyenv/versions/3.11.7",
		.writable_dir = "/srv/.venv.spr/0123456789abcdef",
		.scratch = scratch,
		.nscratch = 2,
		.workdir = "/tmp",
		.host_root = root,
	};
	struct built *b = build_from(&in);
	int rw = find_op(b, SPR_MOUNT_BIND_RW, in.writable_dir);
	ck_assert_int_ge(rw, 0);
	ck_assert_str_eq(op_at(b, rw)->src, in.writable_dir);
	ck_assert_int_gt(rw, find_op(b, SPR_MOUNT_BIND_RO, "/usr"));
	ck_assert(list_has(&b->layout.landlock_write, in.writable_dir));
	ck_assert(list_has(&b->degraded.landlock_write, in.writable_dir));
	ck_assert(!list_has(&b->layout.landlock_write, "/srv"));
	size_t rw_count = 0;
	for (size_t i = 0; i < b->layout.nmounts; i++)
		rw_count += b->layout.mounts[i].kind == SPR_MOUNT_BIND_RW;
	ck_assert_uint_eq(rw_count, 1);
	built_free(b);
	/* A run (no writable_dir) has none. */
	b = build(false, true);
	for (size_t i = 0; i < b->layout.nmounts; i++)
		ck_assert_int_ne(b->layout.mounts[i].kind, SPR_MOUNT_BIND_RW);
	built_free(b);
	/* Only a directory. */
	in.writable_dir = "/etc/shadow";
	spr_error *err = NULL;
	struct built bad = {0};
	ck_assert_int_lt(spr_layout_build(&in, &bad.layout, &bad.degraded, &bad.arena, &err), 0);
	spr_arena_free(&bad.arena);
	ck_assert_ptr_nonnull(strstr(err->message, "/etc/shadow"));
	spr_error_free(err);
}
END_TEST

START_TEST(missing_interpreter_is_an_error)
{
	struct spr_layout_input in = python_at("/nope/bin/python3", "/nope", "/nope");
	spr_error *err = NULL;
	struct built b = {0};
	ck_assert_int_lt(spr_layout_build(&in, &b.layout, &b.degraded, &b.arena, &err), 0);
	spr_arena_free(&b.arena);
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
	tcase_add_test(t, writable_dir_for_an_install);
	suite_add_tcase(s, t);
	return s;
}
