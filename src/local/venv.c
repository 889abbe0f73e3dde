/* The LocalEngine's environment (SPEC §4 "Environments"): a venv at
 * venv_dir with exactly the pinned packages asked for, made once and
 * reused, installed in a sandbox.
 *
 * On disk, next to venv_dir:
 *   <parent>/.<name>.spr/<key>/       one venv per key (interpreter,
 *                                     manager, package set)
 *   <parent>/.<name>.spr/<key>.json   its marker, written last by us
 *   <parent>/.<name>.spr/lock         held while building or swapping
 *   <parent>/<name> -> .<name>.spr/<key>   swapped atomically (rename)
 *
 * A venv cannot be built elsewhere and moved: pip writes absolute paths
 * (shebangs). So it is built at its final path, under the lock, and only
 * becomes venv_dir once its marker exists; an interrupted build is a
 * directory without a marker, which the next builder removes. A run never
 * sees a half-built venv, a changed package set gets a venv of its own
 * (nothing installed on top), and a failed build leaves venv_dir as it
 * was. An engine holds a shared lock on its venv's marker for its
 * lifetime, so the old venv it runs in is removed only once no engine
 * uses it.
 *
 * pip (or uv) and every build backend run in a sandbox like a run's, as
 * the run's own uid, with only the new venv writable; what they wrote is
 * handed to the caller afterwards (only what that uid owns: nothing
 * planted can make us chown a file of someone else). Our own files (the
 * marker, the link) are never inside what the install could write. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "cache.h"
#include "engine/packages.h"
#include "json.h"
#include "local/engine.h"
#include "tree.h"

#define INSTALL_TIMEOUT_DEFAULT 600
#define ANSWER_CAP (1 << 20)
#define ERROR_LINES 12
#define MARKER_FORMAT 1

struct venv {
	const struct spr_local_venv_request *req;
	const char **packages; /* sorted, unique */
	size_t npackages;
	char key[17];
	char *dir;     /* venv_dir, without trailing slashes */
	char *store;   /* <parent>/.<name>.spr */
	char *version; /* <store>/<key> */
	char *marker;  /* <store>/<key>.json */
	char *target;  /* .<name>.spr/<key>: what venv_dir links to */
	char *uv;      /* the uv binary (manager "uv") */
};

static void venv_free(struct venv *v)
{
	free(v->packages);
	free(v->dir);
	free(v->store);
	free(v->version);
	free(v->marker);
	free(v->target);
	free(v->uv);
}

/* ---- what was asked ---------------------------------------------------------- */

static int check_dir(struct venv *v, const char *dir, spr_error **err)
{
	if (!dir || !*dir)
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"LocalEngine requires a non-empty 'venv_dir'");
	if (dir[0] != '/')
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"venv_dir must be an absolute path (got '%s')", dir);
	if (strlen(dir) >= PATH_MAX - 64)
		return spr_fail(err, SPR_LAYER_API, ENAMETOOLONG, "venv_dir is too long");
	if (!(v->dir = strdup(dir)))
		return spr_fail_oom(err);
	size_t n = strlen(v->dir);
	while (n > 1 && v->dir[n - 1] == '/')
		v->dir[--n] = '\0';
	const char *name = strrchr(v->dir, '/') + 1;
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strchr(v->dir, '\n'))
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"venv_dir '%s' must name a directory (not / or a path ending "
				"in . or ..)",
				dir);
	return 0;
}

/* uv is not something to execute on the host to find out whether it is
 * there: looked up on PATH, as a file. */
static char *find_on_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");
		char *candidate = NULL;
		if (len && path[0] == '/' &&
		    asprintf(&candidate, "%.*s/%s", (int)len, path, name) >= 0) {
			char real[PATH_MAX];
			struct stat st;
			if (realpath(candidate, real) && stat(real, &st) == 0 &&
			    S_ISREG(st.st_mode) && access(real, X_OK) == 0) {
				free(candidate);
				return strdup(real);
			}
		}
		free(candidate);
		path += len + (path[len] == ':');
	}
	return NULL;
}

static int check_manager(struct venv *v, spr_error **err)
{
	const char *m = v->req->manager;
	if (!strcmp(m, "python"))
		return 0;
	if (strcmp(m, "uv"))
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"venv_manager must be either 'uv' or 'python' (got '%s')", m);
	if (!(v->uv = find_on_path("uv")))
		return spr_fail(err, SPR_LAYER_API, ENOENT,
				"venv_manager 'uv' needs the uv program, which is not on PATH: "
				"install uv, or use venv_manager='python' (--venv-manager python; "
				"the interpreter's own venv module and pip)");
	return 0;
}

/* ---- where it lives ---------------------------------------------------------- */

static uint64_t hash_str(uint64_t h, const char *s)
{
	return spr_fnv1a(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

/* What makes two venvs the same: the interpreter (its path, version and
 * the binary's identity: an upgrade gets a new venv), the manager and the
 * package set. Not where the packages came from: the pins say what. */
static int name_paths(struct venv *v, const struct spr_python_info *py, spr_error **err)
{
	uint64_t h = hash_str(SPR_FNV_OFFSET, "spr-venv-1");
	h = hash_str(h, py->executable);
	h = hash_str(h, py->version);
	struct stat st;
	char real[PATH_MAX];
	if (realpath(py->executable, real) && stat(real, &st) == 0) {
		uint64_t id[4] = {(uint64_t)st.st_dev, (uint64_t)st.st_ino, (uint64_t)st.st_size,
				  (uint64_t)st.st_mtime};
		h = spr_fnv1a(h, id, sizeof(id));
	}
	h = hash_str(h, v->req->manager);
	/* As pip reads them: Alpha==1.0 and alpha==1.0.0 are one venv. */
	_cleanup_free_ char **keys = calloc(v->npackages + 1, sizeof(*keys));
	if (!keys)
		return spr_fail_oom(err);
	for (size_t i = 0; i < v->npackages; i++)
		if (!(keys[i] = spr_package_key(v->packages[i]))) {
			for (size_t j = 0; j < i; j++)
				free(keys[j]);
			return spr_fail_oom(err);
		}
	size_t nkeys = 0;
	const char **sorted = spr_sorted_packages((const char *const *)keys, &nkeys);
	for (size_t i = 0; sorted && i < nkeys; i++)
		h = hash_str(h, sorted[i]);
	free(sorted);
	for (size_t i = 0; i < v->npackages; i++)
		free(keys[i]);
	if (!sorted)
		return spr_fail_oom(err);
	snprintf(v->key, sizeof(v->key), "%016llx", (unsigned long long)h);
	const char *name = strrchr(v->dir, '/') + 1;
	int parent_len = (int)(name - 1 - v->dir);
	if (asprintf(&v->store, "%.*s/.%s.spr", parent_len, v->dir, name) < 0 ||
	    asprintf(&v->version, "%s/%s", v->store, v->key) < 0 ||
	    asprintf(&v->marker, "%s/%s.json", v->store, v->key) < 0 ||
	    asprintf(&v->target, ".%s.spr/%s", name, v->key) < 0)
		return spr_fail_oom(err);
	return 0;
}

static int mkdir_parents(char *path, spr_error **err)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, 0755);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return spr_fail_errno(err, SPR_LAYER_API, "creating the venv_dir's parent %.*s",
					      (int)(p - path), path);
	}
	return 0;
}

/* Only we may change what we keep: the directory holding venv_dir is
 * ours or root's and no one else's to write into (unless sticky, where
 * only an entry's owner may rename it), and the store, when there, is a
 * directory of ours no one else may write. Else another local user could
 * swap the venv root's runs use, or have spr remove files through a
 * store that is a link (checked before any use, the fast path too). */
static int check_place(const struct venv *v, spr_error **err)
{
	_cleanup_free_ char *parent = strndup(v->dir, (size_t)(strrchr(v->dir, '/') - v->dir));
	if (!parent)
		return spr_fail_oom(err);
	struct stat st;
	uid_t me = geteuid();
	if (stat(*parent ? parent : "/", &st) == 0 &&
	    ((st.st_uid != 0 && st.st_uid != me) ||
	     ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))))
		return spr_fail(err, SPR_LAYER_API, EPERM,
				"the directory holding venv_dir (%s) is owned by uid %u or writable "
				"by others (mode %04o): anyone who can rename in it could swap the "
				"venv; choose a venv_dir in a directory only you (or root) can write",
				*parent ? parent : "/", (unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777));
	if (lstat(v->store, &st) < 0)
		return errno == ENOENT ? 0 : spr_fail_errno(err, SPR_LAYER_API, "%s", v->store);
	if (!S_ISDIR(st.st_mode) || st.st_uid != me || (st.st_mode & (S_IWGRP | S_IWOTH)))
		return spr_fail(err, SPR_LAYER_API, EPERM,
				"%s is not a directory of uid %u that only it can write (%s, uid %u, "
				"mode %04o): spr keeps venv_dir's venvs there and will not use "
				"someone else's; remove it",
				v->store, (unsigned)me, S_ISDIR(st.st_mode) ? "a directory" : "not a directory",
				(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
	return 0;
}

/* The key venv_dir links to when it is a link of ours into the store. */
static bool linked_key(const struct venv *v, char key[17])
{
	struct stat st;
	key[0] = '\0';
	if (lstat(v->dir, &st) < 0 || !S_ISLNK(st.st_mode) || st.st_uid != geteuid())
		return false;
	char target[PATH_MAX], prefix[PATH_MAX];
	ssize_t n = readlink(v->dir, target, sizeof(target) - 1);
	snprintf(prefix, sizeof(prefix), ".%s.spr/", strrchr(v->dir, '/') + 1);
	size_t plen = strlen(prefix);
	key[0] = '\0';
	if (n <= 0)
		return false;
	target[n] = '\0';
	if (strncmp(target, prefix, plen) || strlen(target + plen) != 16)
		return false;
	memcpy(key, target + plen, 17);
	return true;
}

/* venv_dir as found: ours (a link into the store, *linked_to its key),
 * absent, or something else, which is never replaced. */
static int inspect_dir(const struct venv *v, char linked_to[17], spr_error **err)
{
	linked_to[0] = '\0';
	struct stat st;
	if (lstat(v->dir, &st) < 0)
		return errno == ENOENT ? 0 : spr_fail_errno(err, SPR_LAYER_API, "venv_dir %s", v->dir);
	if (S_ISLNK(st.st_mode)) {
		if (linked_key(v, linked_to))
			return 0;
	} else if (S_ISDIR(st.st_mode)) {
		/* An empty directory (made for us, or by the reference's
		 * engine before it failed) is taken. */
		if (rmdir(v->dir) == 0)
			return 0;
	}
	return spr_fail(err, SPR_LAYER_API, EEXIST,
			"venv_dir %s exists and is not an environment spr made (spr keeps its venvs "
			"in %s and makes venv_dir a link to one): remove it or choose another "
			"venv_dir; to run in a venv you made yourself, pass its interpreter "
			"(--python %s/bin/python)",
			v->dir, v->store, v->dir);
}

/* ---- the marker --------------------------------------------------------------- */

/* A complete venv for this key: its marker, a regular file of ours, and
 * the venv it describes (someone may have removed the directory).
 * Returns the marker open (for the engine's shared lock), or -1. */
static int open_marker(const struct venv *v)
{
	int fd = open(v->marker, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st, cfg, venv;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/pyvenv.cfg", v->version);
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
			!st.st_size || lstat(v->version, &venv) < 0 || !S_ISDIR(venv.st_mode) ||
			venv.st_uid != geteuid() || (venv.st_mode & (S_IWGRP | S_IWOTH)) ||
			lstat(path, &cfg) < 0 || !S_ISREG(cfg.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* Waits for a shared lock on the marker; false when the venv was removed
 * meanwhile (a collector held it exclusively and unlinked it). */
static bool hold_marker(int fd)
{
	while (flock(fd, LOCK_SH) < 0)
		if (errno != EINTR)
			return false;
	struct stat st;
	return fstat(fd, &st) == 0 && st.st_nlink > 0;
}

static int write_marker(const struct venv *v, const struct spr_python_info *py,
			const cJSON *installed, spr_error **err)
{
	_cleanup_cjson_ cJSON *m = cJSON_CreateObject();
	cJSON_AddNumberToObject(m, "spr_venv", MARKER_FORMAT);
	cJSON_AddStringToObject(m, "key", v->key);
	cJSON *python = cJSON_AddObjectToObject(m, "python");
	cJSON_AddStringToObject(python, "executable", py->executable);
	cJSON_AddStringToObject(python, "version", py->version);
	/* The build: the binary's identity, as the key hashed it. */
	char real[PATH_MAX];
	struct stat st;
	if (realpath(py->executable, real) && stat(real, &st) == 0) {
		cJSON *build = cJSON_AddObjectToObject(python, "binary");
		cJSON_AddStringToObject(build, "path", real);
		cJSON_AddNumberToObject(build, "size", (double)st.st_size);
		cJSON_AddNumberToObject(build, "mtime", (double)st.st_mtime);
	}
	cJSON_AddStringToObject(m, "manager", v->req->manager);
	cJSON *pkgs = cJSON_AddArrayToObject(m, "packages");
	for (size_t i = 0; i < v->npackages; i++)
		cJSON_AddItemToArray(pkgs, cJSON_CreateString(v->packages[i]));
	cJSON_AddItemToObject(m, "installed", cJSON_Duplicate(installed, true));
	const spr_pip_options *pip = &v->req->pip;
	cJSON *p = cJSON_AddObjectToObject(m, "pip");
	if (pip->index_url)
		cJSON_AddStringToObject(p, "index_url", pip->index_url);
	if (pip->find_links)
		cJSON_AddStringToObject(p, "find_links", pip->find_links);
	cJSON_AddBoolToObject(p, "no_index", pip->no_index);
	_cleanup_free_ char *text = cJSON_Print(m);
	_cleanup_free_ char *tmp = NULL;
	if (!text || asprintf(&tmp, "%s.%d.tmp", v->marker, (int)getpid()) < 0)
		return spr_fail_oom(err);
	_cleanup_close_ int fd =
		open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	size_t len = strlen(text);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) < 0 || rename(tmp, v->marker) < 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return spr_fail_errno(err, SPR_LAYER_API, "writing the venv marker %s", v->marker);
	}
	return 0;
}

/* venv_dir becomes a link to this key's venv, in one rename. */
static int point_dir(const struct venv *v, spr_error **err)
{
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s/link.%d.tmp", v->store, (int)getpid()) < 0)
		return spr_fail_oom(err);
	unlink(tmp);
	if (symlink(v->target, tmp) < 0 || rename(tmp, v->dir) < 0) {
		int saved = errno;
		unlink(tmp);
		errno = saved;
		return spr_fail_errno(err, SPR_LAYER_API, "pointing venv_dir %s at %s", v->dir,
				      v->version);
	}
	return 0;
}

/* Removes venvs no engine holds and that are not current, interrupted
 * builds, and leftovers of ours. Under the store lock. */
static void collect_old(const struct venv *v)
{
	DIR *d = opendir(v->store);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' || !strcmp(n, "lock") || !strncmp(n, v->key, 16))
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", v->store, n);
		size_t len = strlen(n);
		if (len > 4 && !strcmp(n + len - 4, ".tmp")) {
			unlink(path);
			continue;
		}
		if (len == 16 + 5 && !strcmp(n + 16, ".json")) {
			int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0) {
				/* The marker first: without it the venv is never taken
				 * as complete, and an engine that opened it before
				 * sees it unlinked once it gets its shared lock. */
				unlink(path);
				path[strlen(path) - 5] = '\0';
				spr_remove_tree(path);
			}
			if (fd >= 0)
				close(fd);
			continue;
		}
		if (len == 16) {
			char marker[PATH_MAX + 8];
			snprintf(marker, sizeof(marker), "%s.json", path);
			if (access(marker, F_OK) < 0)
				spr_remove_tree(path); /* an interrupted build */
		}
	}
	if (d)
		closedir(d);
}

/* ---- the install, in a sandbox ------------------------------------------------------ */

/* Runs with the base interpreter (-I -S) inside the sandbox: makes the
 * venv, installs, and answers with what is installed ("name version" per
 * line). pip's own output goes to stderr, which is the progress and the
 * tail an error quotes. pip reads no configuration of the host (there is
 * none to read in the sandbox; PIP_CONFIG_FILE makes it explicit), nor
 * PIP_ or UV_ variables of the policy's env: the pip options say where
 * packages come from. */
static const char install_code[] =
	"import os, subprocess, sys\n"
	"venv, manager, uv, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
	"opts, packages = sys.argv[5:5 + n], sys.argv[5 + n:]\n"
	"py = os.path.join(venv, 'bin', 'python')\n"
	"env = {k: v for k, v in os.environ.items() if not k.startswith(('PIP_', 'UV_'))}\n"
	"env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INPUT='1',\n"
	"           PIP_DISABLE_PIP_VERSION_CHECK='1', PIP_NO_CACHE_DIR='1',\n"
	"           UV_NO_CONFIG='1', UV_PYTHON_DOWNLOADS='never', UV_NO_CACHE='1')\n"
	"def step(what, argv):\n"
	"    print('spr: ' + what, file=sys.stderr, flush=True)\n"
	"    rc = subprocess.call(argv, stdin=subprocess.DEVNULL, stdout=2, env=env)\n"
	"    if rc:\n"
	"        print('spr: %s failed (exit status %d)' % (what, rc), file=sys.stderr, flush=True)\n"
	"        sys.exit(3)\n"
	"if manager == 'uv':\n"
	"    step('creating the venv with uv', [uv, 'venv', '--seed', '--python', sys.executable, venv])\n"
	"    if packages:\n"
	"        step('installing ' + ' '.join(packages),\n"
	"             [uv, 'pip', 'install', '--python', py] + opts + packages)\n"
	"else:\n"
	"    step('creating the venv', [sys.executable, '-m', 'venv', venv])\n"
	"    if packages:\n"
	"        step('installing ' + ' '.join(packages), [py, '-m', 'pip', 'install'] + opts + packages)\n"
	"out = subprocess.run([py, '-I', '-c', 'import importlib.metadata as m\\n'\n"
	"                      'for d in m.distributions(): print(d.metadata[\"Name\"], d.version)'],\n"
	"                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env)\n"
	"if out.returncode:\n"
	"    print('spr: the new venv\\'s interpreter does not start', file=sys.stderr)\n"
	"    sys.exit(3)\n"
	"sys.stdout.buffer.write(out.stdout)\n";

/* The last lines of what the install said, for the error. */
static char *last_lines(spr_buf *b, int want)
{
	if (!b->data || !b->len)
		return strdup("(no output)");
	while (b->len && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == '\r'))
		b->data[--b->len] = '\0';
	char *start = b->data + b->len;
	for (int lines = 0; start > b->data && lines < want;)
		if (*--start == '\n' && ++lines == want)
			start++;
	char *text = NULL;
	if (asprintf(&text, "  %s", start) < 0)
		return NULL;
	/* Indented, so that the lines read as the tool's. */
	spr_buf out = SPR_BUF_INIT;
	for (char *p = text; *p; p++) {
		spr_buf_putc(&out, *p);
		if (*p == '\n')
			spr_buf_puts(&out, "  ");
	}
	free(text);
	return out.data;
}

/* What the install answered, as {"name": "version"}; every pin must be
 * there at its version (else the install did not do what was asked). */
static int check_installed(const struct venv *v, char *answer, cJSON **out, spr_error **err)
{
	_cleanup_cjson_ cJSON *installed = cJSON_CreateObject();
	if (!installed)
		return spr_fail_oom(err);
	for (char *line = strtok(answer, "\n"); line; line = strtok(NULL, "\n")) {
		char *space = strchr(line, ' ');
		if (!space || space == line)
			continue;
		*space = '\0';
		char name[256];
		spr_normalize_name(line, strlen(line), name, sizeof(name));
		if (!cJSON_GetObjectItemCaseSensitive(installed, name))
			cJSON_AddStringToObject(installed, name, space + 1);
	}
	for (size_t i = 0; i < v->npackages; i++) {
		const char *spec = v->packages[i], *eq = strstr(spec, "==");
		size_t len = strcspn(spec, "[");
		if (len > (size_t)(eq - spec))
			len = (size_t)(eq - spec);
		char name[256];
		spr_normalize_name(spec, len, name, sizeof(name));
		const cJSON *got = cJSON_GetObjectItemCaseSensitive(installed, name);
		if (!cJSON_IsString(got) || !spr_same_release(got->valuestring, eq + 2))
			return spr_fail(err, SPR_LAYER_WORKER, EPROTO,
					"the install of %s into %s ended without error, but the venv "
					"has %s %s",
					spec, v->dir, name,
					cJSON_IsString(got) ? got->valuestring : "not installed");
	}
	*out = steal_pointer(&installed);
	return 0;
}

static int install(struct spr_local_engine *le, const struct venv *v, cJSON **installed,
		   spr_error **err)
{
	const struct spr_local_venv_request *req = v->req;
	const char *pip_args[SPR_PIP_MAX_ARGS];
	size_t npip = spr_pip_args(&req->pip, req->pip.find_links, pip_args);
	const char *argv[SPR_PLAN_MAX_ARGS];
	size_t n = 0;
	char count[16];
	snprintf(count, sizeof(count), "%zu", npip);
	argv[n++] = le->python.executable;
	argv[n++] = "-I";
	argv[n++] = "-S";
	argv[n++] = "-c";
	argv[n++] = install_code;
	argv[n++] = v->version;
	argv[n++] = req->manager;
	argv[n++] = v->uv ? v->uv : "-";
	argv[n++] = count;
	for (size_t i = 0; i < npip; i++)
		argv[n++] = pip_args[i];
	if (n + v->npackages >= SPR_PLAN_MAX_ARGS)
		return spr_fail(err, SPR_LAYER_API, E2BIG, "at most %d packages",
				(int)(SPR_PLAN_MAX_ARGS - n - 1));
	for (size_t i = 0; i < v->npackages; i++)
		argv[n++] = v->packages[i];
	argv[n] = NULL;

	struct spr_paths shown = {0};
	if (req->pip.find_links)
		spr_paths_add(&shown, req->pip.find_links);
	_cleanup_free_ char *uv_dir = v->uv ? strdup(v->uv) : NULL;
	if (uv_dir) {
		*strrchr(uv_dir, '/') = '\0';
		spr_paths_add(&shown, uv_dir);
	}
	int timeout = req->timeout_seconds > 0 ? req->timeout_seconds : INSTALL_TIMEOUT_DEFAULT;
	_cleanup_buf_ spr_buf answer = SPR_BUF_INIT, output = SPR_BUF_INIT;
	struct spr_local_command cmd = {
		.argv = argv,
		.layout = {.python_executable = le->python.executable,
			   .python_base_prefix = le->python.base_prefix,
			   .python_prefix = le->python.prefix},
		.output_cap = ANSWER_CAP,
		.timeout_ms = (int64_t)timeout * 1000,
		.errout = &output,
		.limits = req->limits,
		.writable_dir = v->version,
		.extra_ro = &shown,
		/* An index is reached over the host's network, for the
		 * install only; from a directory of wheels nothing is. */
		.network = !req->pip.no_index,
		.errout_tail = true,
		.show_progress = req->show_progress,
	};
	int status = -1;
	if (spr_local_command(le, &cmd, &answer, &status, err) < 0) {
		spr_error_prefix(err, "building the venv %s: ", v->dir);
		return -1;
	}
	if (status != 0) {
		_cleanup_free_ char *tail = last_lines(&output, ERROR_LINES);
		return spr_fail(err, SPR_LAYER_WORKER, 0,
				"building the venv %s failed (exit status %d); venv_dir is left as "
				"it was. The install's last lines:\n%s",
				v->dir, status, tail ? tail : "");
	}
	/* Before anything else looks: what the install wrote is the caller's,
	 * and only what a venv holds. */
	struct tree_owner owner = {cmd.host_uid, geteuid(), getegid()};
	if (spr_hand_over_tree(v->version, &owner) < 0)
		return spr_fail(err, SPR_LAYER_WORKER, errno,
				"the install left in %s what a venv may not hold (%s: a fifo, "
				"socket or device, another owner's file, or a tree deeper than 256 "
				"levels), or it could not be handed to uid %u",
				v->version, strerror(errno), (unsigned)geteuid());
	return check_installed(v, answer.data ? answer.data : (char *)"", installed, err);
}

/* ---- putting it together ------------------------------------------------------------ */

static int lock_store(const struct venv *v, int *fd, bool progress, spr_error **err)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/lock", v->store);
	*fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (*fd < 0)
		return spr_fail_errno(err, SPR_LAYER_API, "opening the venv lock %s", path);
	if (flock(*fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	if (progress)
		dprintf(STDERR_FILENO, "spr: waiting for another build of %s\n", v->dir);
	while (flock(*fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return spr_fail_errno(err, SPR_LAYER_API, "locking %s", path);
	return 0;
}

/* The venv for this key, built if it is not there; venv_dir then points
 * at it. Under the store lock. Returns the marker, held shared. */
static int build_or_take(struct spr_local_engine *le, const struct venv *v, spr_error **err)
{
	char linked[17];
	if (inspect_dir(v, linked, err) < 0)
		return -1;
	int marker = open_marker(v);
	if (marker < 0) {
		if (spr_remove_tree(v->version) < 0)
			return spr_fail_errno(err, SPR_LAYER_API,
					      "removing the interrupted build %s", v->version);
		if (mkdir(v->version, 0755) < 0)
			return spr_fail_errno(err, SPR_LAYER_API, "creating %s", v->version);
		if (v->req->show_progress)
			dprintf(STDERR_FILENO, "spr: building the venv %s (%s)\n", v->dir,
				v->version);
		_cleanup_cjson_ cJSON *installed = NULL;
		if (install(le, v, &installed, err) < 0 ||
		    write_marker(v, &le->python, installed, err) < 0) {
			spr_remove_tree(v->version);
			return -1;
		}
		if ((marker = open_marker(v)) < 0)
			return spr_fail_errno(err, SPR_LAYER_API, "reading back %s", v->marker);
	}
	if (!hold_marker(marker)) {
		close(marker);
		return spr_fail(err, SPR_LAYER_API, EAGAIN, "the venv %s vanished", v->version);
	}
	if (strcmp(linked, v->key) && point_dir(v, err) < 0) {
		close(marker);
		return -1;
	}
	collect_old(v);
	return marker;
}

int spr_local_venv_prepare(struct spr_local_engine *le, const struct spr_local_venv_request *req,
			   char **python, int *hold, spr_error **err)
{
	SPR_CLEANUP(venv_free) struct venv v = {.req = req};
	if (check_dir(&v, req->dir, err) < 0 || spr_check_packages(req->packages, err) < 0 ||
	    spr_check_pip(&req->pip, err) < 0 || check_manager(&v, err) < 0)
		return -1;
	if (!(v.packages = spr_sorted_packages(req->packages, &v.npackages)))
		return spr_fail_oom(err);
	if (name_paths(&v, &le->python, err) < 0)
		return -1;
	if (check_place(&v, err) < 0)
		return -1;
	if (asprintf(python, "%s/bin/python", v.version) < 0) {
		*python = NULL;
		return spr_fail_oom(err);
	}
	/* Reuse without the lock: the link is ours and the marker there. */
	char linked[17];
	if (linked_key(&v, linked) && !strcmp(linked, v.key)) {
		int marker = open_marker(&v);
		if (marker >= 0 && hold_marker(marker)) {
			*hold = marker;
			return 0;
		}
		if (marker >= 0)
			close(marker);
	}
	_cleanup_free_ char *store = strdup(v.store);
	if (!store)
		return spr_fail_oom(err);
	if (mkdir_parents(store, err) < 0)
		return -1;
	if (mkdir(v.store, 0755) < 0 && errno != EEXIST)
		return spr_fail_errno(err, SPR_LAYER_API, "creating the venv store %s", v.store);
	if (check_place(&v, err) < 0) /* made by someone else meanwhile? */
		return -1;
	_cleanup_close_ int lock = -1;
	if (lock_store(&v, &lock, req->show_progress, err) < 0)
		return -1;
	int marker = build_or_take(le, &v, err);
	if (marker < 0) {
		free(*python);
		*python = NULL;
		return -1;
	}
	*hold = marker;
	return 0;
}
