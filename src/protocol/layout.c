#include "protocol/layout.h"

#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <sys/stat.h>

#include "buf.h"

/* The only files of the host /etc the code sees, read-only, when present.
 * The distribution's name and version too: pip and platform read them,
 * and without namespaces Landlock would make them an error (EACCES)
 * rather than absent; they say no more than the interpreter's path. */
static const char *const etc_binds[] = {
	"/etc/ld.so.cache", "/etc/ssl",	    "/etc/ca-certificates", "/etc/alternatives",
	"/etc/protocols",   "/etc/services", "/etc/mime.types",	    "/etc/os-release",
	"/etc/debian_version",
};

/* Top-level directories that merged-/usr systems make symlinks. */
static const char *const usr_links[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

/* Parts of /proc that reveal or touch the host (as Docker masks them). */
static const char *const proc_masked[] = {
	"/proc/kcore",	       "/proc/keys",  "/proc/timer_list", "/proc/sched_debug",
	"/proc/latency_stats", "/proc/acpi",  "/proc/scsi",	  "/proc/asound",
	"/proc/kallsyms",      "/proc/kmsg",  "/proc/vmallocinfo",
};
static const char *const proc_readonly[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/bus",
					    "/proc/fs", "/proc/irq"};

static const char *const dev_nodes[] = {"null", "zero", "full", "random", "urandom"};

struct layout {
	const struct spr_layout_input *in;
	struct spr_layout *out;
	struct spr_paths *host_read; /* the same binds, as host paths, for the degraded mode */
	struct spr_arena *arena;
	bool overflow;	 /* more operations or paths than a plan holds */
	char *bound[32]; /* directories bound so far (to skip nested ones) */
	size_t nbound;
	char *links[32]; /* links made so far (made twice, the second would fail) */
	size_t nlinks;
};

static char *host_path(const struct layout *l, const char *path)
{
	char *p = NULL;
	if (asprintf(&p, "%s%s", l->in->host_root ? l->in->host_root : "", path) < 0)
		return NULL;
	return p;
}

static bool host_lstat(const struct layout *l, const char *path, struct stat *st)
{
	_cleanup_free_ char *p = host_path(l, path);
	return p && lstat(p, st) == 0;
}

static const char *keep(struct layout *l, const char *s)
{
	return spr_arena_strdup(l->arena, s);
}

/* The next operation; on overflow a scratch one, reported at the end. */
static struct spr_mount_op *op(struct layout *l, enum spr_mount_kind kind, const char *dst)
{
	static __thread struct spr_mount_op discard;
	struct spr_mount_op *o = &discard;
	if (l->out->nmounts < SPR_PLAN_MAX_MOUNTS)
		o = &l->out->mounts[l->out->nmounts++];
	else
		l->overflow = true;
	*o = (struct spr_mount_op){.kind = kind, .dst = keep(l, dst)};
	return o;
}

static void landlock(struct layout *l, struct spr_paths *list, const char *path)
{
	if (!spr_paths_add(list, keep(l, path)))
		l->overflow = true;
}

static bool covered(const struct layout *l, const char *path)
{
	for (size_t i = 0; i < l->nbound; i++) {
		size_t n = strlen(l->bound[i]);
		if (!strncmp(path, l->bound[i], n) && (path[n] == '/' || path[n] == '\0'))
			return true;
	}
	return false;
}

static bool linked(const struct layout *l, const char *path)
{
	for (size_t i = 0; i < l->nlinks; i++)
		if (!strcmp(path, l->links[i]))
			return true;
	return false;
}

static bool read_link(const struct layout *l, const char *path, char target[PATH_MAX])
{
	_cleanup_free_ char *p = host_path(l, path);
	ssize_t n = p ? readlink(p, target, PATH_MAX - 1) : -1;
	if (n <= 0)
		return false;
	target[n] = '\0';
	return true;
}

/* The host's link at the same place; its target must be visible on its own. */
static void add_link(struct layout *l, const char *path, const char *target)
{
	if (covered(l, path) || linked(l, path))
		return;
	op(l, SPR_MOUNT_SYMLINK, path)->text = keep(l, target);
	if (l->nlinks < ARRAY_SIZE(l->links))
		l->links[l->nlinks++] = strdup(path);
}

/* A read-only bind of a host path at the same place; `required` paths that
 * are missing make the layout fail (the run could not work). */
static int bind_ro(struct layout *l, const char *path, bool required, spr_error **err)
{
	struct stat st;
	if (!host_lstat(l, path, &st)) {
		if (required)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
					      "%s must be visible in the sandbox but does not exist",
					      path);
		return 0;
	}
	if (covered(l, path))
		return 0;
	if (S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		if (read_link(l, path, target))
			add_link(l, path, target);
		return 0;
	}
	op(l, SPR_MOUNT_BIND_RO, path)->src = keep(l, path);
	landlock(l, &l->out->landlock_read, path);
	landlock(l, l->host_read, path);
	if (S_ISDIR(st.st_mode) && l->nbound < ARRAY_SIZE(l->bound))
		l->bound[l->nbound++] = strdup(path);
	return 0;
}

/* A writable bind of a host directory at the same place (after the
 * read-only ones it may lie below). */
static int bind_rw(struct layout *l, const char *path, struct spr_paths *degraded_write,
		   spr_error **err)
{
	struct stat st;
	if (!host_lstat(l, path, &st) || !S_ISDIR(st.st_mode))
		return spr_fail(err, SPR_LAYER_NAMESPACE, ENOTDIR,
				"%s must be a directory to be shown writable", path);
	op(l, SPR_MOUNT_BIND_RW, path)->src = keep(l, path);
	landlock(l, &l->out->landlock_read, path);
	landlock(l, &l->out->landlock_write, path);
	landlock(l, l->host_read, path);
	landlock(l, degraded_write, path);
	return 0;
}

static int add_system(struct layout *l, spr_error **err)
{
	if (bind_ro(l, "/usr", true, err) < 0)
		return -1;
	for (size_t i = 0; i < ARRAY_SIZE(usr_links); i++)
		if (bind_ro(l, usr_links[i], false, err) < 0)
			return -1;
	return 0;
}

/* Drops the last component of a path ("/a/b" -> "/a", "/a" -> ""). */
static void drop_last(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
}

static int unresolvable(const char *path, int errnum, spr_error **err)
{
	return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
			"cannot resolve the interpreter path %s: %s (is the interpreter or its "
			"venv still installed? else pass another --python PATH)",
			path, strerror(errnum));
}

/* realpath(3) of a host path, as the sandbox sees it (host_root is the
 * host's /). With make_links, every link met on the way outside the binds
 * made so far is recreated: the run's argv[0] must resolve inside as on
 * the host, and a venv's interpreter is a chain of links
 * (<venv>/bin/python -> python3 -> /usr/bin/python3 -> python3.11) whose
 * hops may sit where nothing is bound (a venv made by an interpreter
 * called through a link in a home directory points at that link). Inside
 * a bind the host's own links are seen. */
static int resolve(struct layout *l, const char *path, bool make_links, char done[PATH_MAX],
		   spr_error **err)
{
	char todo[PATH_MAX], target[PATH_MAX], next[PATH_MAX];
	done[0] = '\0';
	if (snprintf(todo, sizeof(todo), "%s", path) >= (int)sizeof(todo))
		return unresolvable(path, ENAMETOOLONG, err);
	for (int hops = 0;;) {
		char *name = todo + strspn(todo, "/");
		size_t len = strcspn(name, "/");
		if (!len)
			break;
		const char *rest = name + len;
		if (len == 2 && !strncmp(name, "..", 2)) {
			drop_last(done);
		} else if (!(len == 1 && name[0] == '.')) {
			size_t at = strlen(done);
			if (at + 1 + len >= PATH_MAX)
				return unresolvable(path, ENAMETOOLONG, err);
			done[at] = '/';
			memcpy(done + at + 1, name, len);
			done[at + 1 + len] = '\0';
			struct stat st;
			if (!host_lstat(l, done, &st))
				return unresolvable(path, errno, err);
			if (S_ISLNK(st.st_mode)) {
				if (++hops > 40)
					return unresolvable(path, ELOOP, err);
				if (!read_link(l, done, target))
					return unresolvable(path, errno, err);
				if (make_links)
					add_link(l, done, target);
				/* Go on from the target, then what followed the link. */
				if (snprintf(next, sizeof(next), "%s%s", target, rest) >=
				    (int)sizeof(next))
					return unresolvable(path, ENAMETOOLONG, err);
				memcpy(todo, next, strlen(next) + 1);
				if (target[0] == '/')
					done[0] = '\0';
				else
					drop_last(done);
				continue;
			}
		}
		memmove(todo, rest, strlen(rest) + 1);
	}
	if (!done[0])
		strcpy(done, "/");
	return 0;
}

/* The interpreter may live anywhere (pyenv under a home directory, /opt,
 * a venv): its prefixes and its real location are bound where they are,
 * then the links that lead to it are made. */
static int add_python(struct layout *l, spr_error **err)
{
	const struct spr_layout_input *in = l->in;
	const char *paths[] = {in->python_base_prefix, in->python_prefix, in->python_executable};
	char real[PATH_MAX];
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		if (!paths[i] || paths[i][0] != '/')
			continue;
		if (resolve(l, paths[i], false, real, err) < 0)
			return -1;
		if (i == 2) { /* the executable: bind its directory */
			char *slash = strrchr(real, '/');
			if (slash && slash != real)
				*slash = '\0';
		}
		if (bind_ro(l, real, true, err) < 0)
			return -1;
	}
	if (!in->python_executable || in->python_executable[0] != '/')
		return 0;
	return resolve(l, in->python_executable, true, real, err);
}

static void add_file(struct layout *l, const char *dst, const char *content)
{
	struct spr_mount_op *o = op(l, SPR_MOUNT_FILE, dst);
	o->text = keep(l, content);
	o->mode = 0644;
}

static int add_etc(struct layout *l, spr_error **err)
{
	op(l, SPR_MOUNT_DIR, "/etc")->mode = 0755;
	char passwd[PATH_MAX + 256], group[256];
	snprintf(passwd, sizeof(passwd),
		 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
		 "sandbox:x:%d:%d:spr sandbox:%s:/usr/sbin/nologin\n"
		 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		 SPR_SANDBOX_UID, SPR_SANDBOX_GID, l->in->workdir);
	snprintf(group, sizeof(group), "root:x:0:\nsandbox:x:%d:\nnogroup:x:65534:\n",
		 SPR_SANDBOX_GID);
	add_file(l, "/etc/passwd", passwd);
	add_file(l, "/etc/group", group);
	add_file(l, "/etc/hostname", SPR_SANDBOX_HOSTNAME "\n");
	add_file(l, "/etc/hosts", "127.0.0.1\tlocalhost\n127.0.1.1\t" SPR_SANDBOX_HOSTNAME
				  "\n::1\tlocalhost ip6-localhost ip6-loopback\n");
	add_file(l, "/etc/nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\n"
					  "hosts: files dns\nnetworks: files\nprotocols: files\n"
					  "services: files\n");
	for (size_t i = 0; i < ARRAY_SIZE(etc_binds); i++)
		if (bind_ro(l, etc_binds[i], false, err) < 0)
			return -1;
	struct stat st;
	if (host_lstat(l, "/etc/localtime", &st) && bind_ro(l, "/etc/localtime", false, err) < 0)
		return -1;
	if (!l->in->network) {
		add_file(l, "/etc/resolv.conf", "");
		return 0;
	}
	/* With the host network the code may resolve names like the host. */
	char real[PATH_MAX];
	_cleanup_free_ char *hp = host_path(l, "/etc/resolv.conf");
	if (hp && realpath(hp, real)) {
		op(l, SPR_MOUNT_BIND_RO, "/etc/resolv.conf")->src =
			keep(l, real + strlen(l->in->host_root ? l->in->host_root : ""));
		landlock(l, &l->out->landlock_read, "/etc/resolv.conf");
		landlock(l, l->host_read, "/etc/resolv.conf");
	} else {
		add_file(l, "/etc/resolv.conf", "");
	}
	return 0;
}

char *spr_layout_worker_inside(const char *worker_path)
{
	const char *base = strrchr(worker_path, '/');
	char *inside = NULL;
	if (asprintf(&inside, SPR_SANDBOX_WORKER_DIR "/%s", base ? base + 1 : worker_path) < 0)
		return NULL;
	return inside;
}

static int add_worker(struct layout *l, spr_error **err)
{
	if (!l->in->worker_path)
		return 0; /* an engine command, not a run */
	_cleanup_free_ char *inside = spr_layout_worker_inside(l->in->worker_path);
	if (!inside)
		return spr_fail_oom(err);
	op(l, SPR_MOUNT_BIND_RO, inside)->src = keep(l, l->in->worker_path);
	landlock(l, &l->out->landlock_read, inside);
	landlock(l, l->host_read, l->in->worker_path);
	return 0;
}

static void add_proc(struct layout *l)
{
	op(l, SPR_MOUNT_PROC, "/proc");
	for (size_t i = 0; i < ARRAY_SIZE(proc_masked); i++)
		op(l, SPR_MOUNT_MASK, proc_masked[i]);
	for (size_t i = 0; i < ARRAY_SIZE(proc_readonly); i++)
		op(l, SPR_MOUNT_READONLY, proc_readonly[i]);
	landlock(l, &l->out->landlock_read, "/proc");
}

static void add_tmpfs(struct layout *l, const char *dst, uint64_t size, uint32_t mode, bool noexec)
{
	struct spr_mount_op *o = op(l, SPR_MOUNT_TMPFS, dst);
	o->size = size;
	o->mode = mode;
	o->noexec = noexec;
}

/* The plan's writable places (below /dev or not, as asked): tmpfs,
 * noexec, readable and writable by the code. */
static void add_scratch(struct layout *l, bool under_dev)
{
	for (size_t i = 0; i < l->in->nscratch; i++) {
		const struct spr_scratch *s = &l->in->scratch[i];
		if (!strncmp(s->path, "/dev/", 5) != under_dev)
			continue;
		add_tmpfs(l, s->path, s->bytes, s->mode, true);
		/* The write list only: it grants reading, never execute (a read
		 * rule would grant execute, and Landlock rules only add up). */
		landlock(l, &l->out->landlock_write, s->path);
	}
}

static void add_dev(struct layout *l)
{
	add_tmpfs(l, "/dev", 64 << 10, 0755, true);
	char path[64];
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(path, sizeof(path), "/dev/%s", dev_nodes[i]);
		op(l, SPR_MOUNT_BIND_DEV, path)->src = keep(l, path);
		landlock(l, &l->out->landlock_write, path);
	}
	static const char *const links[][2] = {{"/proc/self/fd", "/dev/fd"},
					       {"/proc/self/fd/0", "/dev/stdin"},
					       {"/proc/self/fd/1", "/dev/stdout"},
					       {"/proc/self/fd/2", "/dev/stderr"}};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++)
		op(l, SPR_MOUNT_SYMLINK, links[i][1])->text = links[i][0];
	/* POSIX semaphores (multiprocessing) live in /dev/shm. */
	add_scratch(l, true);
	op(l, SPR_MOUNT_SEAL, "/dev");
	/* Listing /dev, but no execute beneath it: /dev/shm is writable. */
	landlock(l, &l->out->landlock_data, "/dev");
}

/* Without namespaces the host tree is all there is: Landlock then allows
 * reading only what the sandbox would have shown, and of /dev only the
 * device nodes a run needs (not the host's /dev/shm, nor its other
 * nodes); writing only those nodes (the helper adds the run directory). */
static void add_degraded(struct layout *l, struct spr_degraded_plan *d)
{
	landlock(l, l->host_read, "/proc");
	char path[64];
	for (size_t i = 0; i < ARRAY_SIZE(dev_nodes); i++) {
		snprintf(path, sizeof(path), "/dev/%s", dev_nodes[i]);
		landlock(l, &d->landlock_write, path);
	}
	d->run_as = l->in->caller_is_root;
	if (d->run_as) {
		d->uid = l->in->outside_uid;
		d->gid = l->in->outside_gid;
	}
}

int spr_layout_build(const struct spr_layout_input *in, struct spr_layout *layout,
		     struct spr_degraded_plan *degraded, struct spr_arena *arena, spr_error **err)
{
	*layout = (struct spr_layout){0};
	degraded->landlock_read = (struct spr_paths){0};
	degraded->landlock_write = (struct spr_paths){0};
	struct layout l = {.in = in, .out = layout, .host_read = &degraded->landlock_read,
			   .arena = arena};
	/* Order matters: a later mount hides what an earlier one put below
	 * it. The interpreter and the worker come last, so they stay visible
	 * even when they live under /tmp. */
	int rc = add_system(&l, err);
	if (rc == 0) {
		rc = add_etc(&l, err);
		landlock(&l, &layout->landlock_read, "/etc");
	}
	if (rc == 0) {
		add_proc(&l);
		add_dev(&l);
		add_scratch(&l, false);
		rc = add_python(&l, err);
	}
	for (size_t i = 0; rc == 0 && in->extra_ro && i < in->extra_ro->n; i++)
		rc = bind_ro(&l, in->extra_ro->v[i], true, err);
	if (rc == 0 && in->writable_dir)
		rc = bind_rw(&l, in->writable_dir, &degraded->landlock_write, err);
	if (rc == 0)
		rc = add_worker(&l, err);
	for (size_t i = 0; i < l.nbound; i++)
		free(l.bound[i]);
	for (size_t i = 0; i < l.nlinks; i++)
		free(l.links[i]);
	if (rc < 0)
		return -1;
	layout->uid = SPR_SANDBOX_UID;
	layout->gid = SPR_SANDBOX_GID;
	layout->outside_uid = in->outside_uid;
	layout->outside_gid = in->outside_gid;
	layout->hostname = SPR_SANDBOX_HOSTNAME;
	layout->network = in->network;
	layout->workdir = keep(&l, in->workdir);
	add_degraded(&l, degraded);
	if (arena->oom)
		return spr_fail_oom(err);
	if (l.overflow)
		return spr_fail(err, SPR_LAYER_NAMESPACE, E2BIG,
				"the sandbox layout needs more than %d mounts or %d Landlock paths "
				"(an interpreter reached through that many links?)",
				SPR_PLAN_MAX_MOUNTS, SPR_PLAN_MAX_PATHS);
	return 0;
}

/* ---- an interpreter's own files, found without running it ---------------------- */

/* The directory of path (a copy), or NULL. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		return NULL;
	return slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
}

/* Python's own search for its prefix (getpath's landmark): the first
 * directory, from the binary's upward, that holds lib/python3.N/os.py.
 * Never "/": on a merged-/usr host /lib/python3.N is /usr's, and showing
 * the whole host read-only is not what anyone asked for. Returns NULL
 * when there is none. */
static char *landmark_prefix(const char *binary_dir)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", binary_dir);
	while (strcmp(dir, "/")) {
		char pattern[PATH_MAX + 32];
		snprintf(pattern, sizeof(pattern), "%s/lib/python3.*/os.py", dir);
		glob_t g = {0};
		bool found = glob(pattern, GLOB_NOSORT, NULL, &g) == 0 && g.gl_pathc > 0;
		globfree(&g);
		if (found)
			return strdup(dir);
		char *slash = strrchr(dir, '/');
		if (!slash)
			return NULL;
		if (slash == dir)
			strcpy(dir, "/");
		else
			*slash = '\0';
	}
	return NULL;
}

/* A venv's root: where Python looks for pyvenv.cfg, next to the path it
 * was started by or one directory up. *home: the cfg's `home` (the base
 * interpreter's directory), when given. */
static char *venv_root(const char *path, char **home)
{
	_cleanup_free_ char *bin = dir_of(path);
	_cleanup_free_ char *up = bin ? dir_of(bin) : NULL;
	const char *dirs[] = {bin, up};
	*home = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (!dirs[i])
			continue;
		char cfg[PATH_MAX];
		snprintf(cfg, sizeof(cfg), "%s/pyvenv.cfg", strcmp(dirs[i], "/") ? dirs[i] : "");
		/* Whoever made the venv chose what is there (an install's code
		 * may have): only a plain file of a sane size is read, never a
		 * fifo that would hang us, a device, or a link to either. */
		int fd = open(cfg, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		struct stat st;
		if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 65536)) {
			close(fd);
			fd = -1;
		}
		_cleanup_fclose_ FILE *f = fd >= 0 ? fdopen(fd, "re") : NULL;
		if (!f) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		char line[PATH_MAX + 16];
		while (fgets(line, sizeof(line), f)) {
			char *key = line + strspn(line, " \t");
			if (strncmp(key, "home", 4) || !strchr(" \t=", key[4]))
				continue;
			char *value = strchr(key, '=');
			if (!value)
				continue;
			value += 1 + strspn(value + 1, " \t");
			value[strcspn(value, "\r\n")] = '\0';
			free(*home);
			*home = strdup(value);
		}
		char real[PATH_MAX];
		return realpath(dirs[i], real) ? strdup(real) : NULL;
	}
	return NULL;
}

void spr_python_paths_free(struct spr_python_paths *s)
{
	free(s->executable);
	free(s->base_prefix);
	free(s->prefix);
	free(s->binary_dir);
}

int spr_python_paths_find(const char *path, struct spr_python_paths *s, spr_error **err)
{
	char real[PATH_MAX];
	if (!realpath(path, real))
		return spr_fail_errno(err, SPR_LAYER_WORKER,
				      "cannot resolve the interpreter %s (install python3 or pass "
				      "--python PATH)",
				      path);
	_cleanup_free_ char *home = NULL;
	s->prefix = venv_root(path, &home);
	s->binary_dir = dir_of(real);
	/* A venv's base interpreter lives where its home says (else where
	 * the venv's link leads). */
	char home_real[PATH_MAX];
	const char *base_dir = home && realpath(home, home_real) ? home_real : s->binary_dir;
	s->base_prefix = base_dir ? landmark_prefix(base_dir) : NULL;
	if (!s->base_prefix)
		s->base_prefix = strdup("/usr");
	if (!s->prefix)
		s->prefix = strdup(s->base_prefix);
	s->executable = strdup(path);
	if (!s->executable || !s->binary_dir || !s->base_prefix || !s->prefix)
		return spr_fail_oom(err);
	return 0;
}
