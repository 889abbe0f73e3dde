/* LocalEngine construction: find the helper and the worker, ask the
 * interpreter about itself once. */
#include "namespace/local_engine.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <limits.h>

#include "base64.h"
#include "json.h"
#include "namespace/layout.h"
#include "policy/seccomp.h"
#include "proc.h"

#ifndef SPR_LIBEXECDIR
#define SPR_LIBEXECDIR "/usr/local/libexec/spr"
#endif
#define DEFAULT_PYTHON "/usr/bin/python3"
#define PROBE_TIMEOUT_MS 20000

static void python_info_free(struct spr_python_info *p)
{
	free(p->path);
	free(p->base_prefix);
	free(p->prefix);
	free(p->version);
	free(p->executable);
	free(p->sys_path_json);
}

static void local_destroy(spr_engine *engine)
{
	struct spr_local_engine *le = (struct spr_local_engine *)engine;
	python_info_free(&le->python);
	free(le->sandbox_path);
	free(le->worker_path);
	free(le->worker_run_path);
	free(le->seccomp_b64);
	free(le);
}

static const struct spr_engine_ops local_ops = {
	.name = "local",
	.run = spr_local_run,
	.destroy = local_destroy,
};

static int find_libexec(struct spr_local_engine *le, const char *dir, spr_error **err)
{
	const char *origin = "spr_local_options.libexec_dir";
	if (!dir) {
		dir = getenv("SPR_LIBEXEC_DIR");
		origin = "$SPR_LIBEXEC_DIR";
	}
	if (!dir || !*dir) {
		dir = SPR_LIBEXECDIR;
		origin = "the installed location";
	}
	if (asprintf(&le->sandbox_path, "%s/spr-sandbox", dir) < 0 ||
	    asprintf(&le->worker_path, "%s/spr_worker.py", dir) < 0)
		return spr_fail_oom(err);
	if (access(le->sandbox_path, X_OK) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "spr-sandbox not found at %s (%s; set SPR_LIBEXEC_DIR to the "
				      "directory holding spr-sandbox and spr_worker.py)",
				      le->sandbox_path, origin);
	if (access(le->worker_path, R_OK) < 0)
		return spr_fail_errno(err, SPR_LAYER_WORKER,
				      "spr_worker.py not found at %s (%s; set SPR_LIBEXEC_DIR)",
				      le->worker_path, origin);
	return 0;
}

/* One line per fact; paths cannot contain newlines in practice, and the
 * probe must not import json (it would be the slowest part). */
static const char probe_code[] =
	"import sys, site\n"
	"print(sys.base_prefix)\n"
	"print(sys.prefix)\n"
	"print('%d.%d.%d' % sys.version_info[:3])\n"
	"print(sys.executable)\n"
	"for p in site.getsitepackages(): print(p)\n";

static char *next_line(char **cursor)
{
	char *line = *cursor;
	if (!line || !*line)
		return NULL;
	char *nl = strchr(line, '\n');
	if (nl) {
		*nl = '\0';
		*cursor = nl + 1;
	} else {
		*cursor = line + strlen(line);
	}
	return line;
}

static int parse_probe(struct spr_python_info *py, char *text, spr_error **err)
{
	char *cursor = text;
	char *base = next_line(&cursor), *prefix = next_line(&cursor),
	     *version = next_line(&cursor), *executable = next_line(&cursor);
	if (!base || !prefix || !version || !executable)
		return spr_fail(err, SPR_LAYER_WORKER, EINVAL,
				"%s did not answer the probe like a Python 3 interpreter",
				py->path);
	unsigned major = 0, minor = 0;
	if (sscanf(version, "%u.%u", &major, &minor) != 2 || major != 3 || minor < 8)
		return spr_fail(err, SPR_LAYER_WORKER, ENOTSUP,
				"%s is Python %s; spr needs Python 3.8 or newer (pass --python "
				"PATH)",
				py->path, version);
	char real[PATH_MAX];
	if (!realpath(executable, real))
		return spr_fail_errno(err, SPR_LAYER_WORKER,
				      "cannot resolve the interpreter's sys.executable %s",
				      executable);
	py->executable = strdup(real);
	py->base_prefix = strdup(base);
	py->prefix = strdup(prefix);
	py->version = strdup(version);
	spr_buf paths = SPR_BUF_INIT;
	spr_buf_putc(&paths, '[');
	bool first = true;
	for (char *line; (line = next_line(&cursor));) {
		if (!first)
			spr_buf_putc(&paths, ',');
		spr_json_write_string(&paths, line, strlen(line));
		first = false;
	}
	spr_buf_putc(&paths, ']');
	py->sys_path_json = spr_buf_steal(&paths, NULL);
	if (!py->executable || !py->base_prefix || !py->prefix || !py->version ||
	    !py->sys_path_json)
		return spr_fail_oom(err);
	return 0;
}

static int probe_python(struct spr_python_info *py, const char *path, spr_error **err)
{
	py->path = strdup(path);
	if (!py->path)
		return spr_fail_oom(err);
	if (path[0] != '/')
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"the interpreter path must be absolute (got '%s')", path);
	if (access(path, X_OK) < 0)
		return spr_fail_errno(err, SPR_LAYER_WORKER,
				      "Python interpreter %s is not executable (install python3 or "
				      "pass --python PATH)",
				      path);
	char *argv[] = {(char *)path, (char *)"-I", (char *)"-S", (char *)"-c",
			(char *)probe_code, NULL};
	char *envp[] = {(char *)"LANG=C.UTF-8", NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	int status = 0;
	if (spr_command_output(argv, envp, PROBE_TIMEOUT_MS, &out, &errout, &status, err) < 0) {
		spr_error_prefix(err, "probing the interpreter: ");
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char *nl = errout.data ? strrchr(errout.data, '\n') : NULL;
		if (nl && nl[1] == '\0')
			*nl = '\0';
		nl = errout.data ? strrchr(errout.data, '\n') : NULL;
		return spr_fail(err, SPR_LAYER_WORKER, 0,
				"%s failed to start (status %d): %s", path, status,
				nl ? nl + 1 : errout.data ? errout.data : "(no output)");
	}
	if (out.oom)
		return spr_fail_oom(err);
	return parse_probe(py, out.data ? out.data : (char *)"", err);
}

/* ---- the precompiled worker ------------------------------------------------------------
 * Compiling the worker's source costs ~2.5 ms per run, most of spr's
 * overhead; a .pyc for this interpreter costs nothing. It is made once,
 * in a private cache directory, and named by a hash of the worker and the
 * interpreter, so a changed worker or interpreter gets a fresh file. */

static char *cache_dir(void)
{
	const char *env = getenv("SPR_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
		   *home = getenv("HOME");
	char *dir = NULL;
	int n;
	if (env && env[0] == '/')
		n = asprintf(&dir, "%s", env);
	else if (geteuid() == 0)
		/* Root's runs may execute as nobody (degraded mode): the cache
		 * must be readable by everyone and writable by root only. */
		n = asprintf(&dir, "/var/cache/spr");
	else if (xdg && xdg[0] == '/')
		n = asprintf(&dir, "%s/spr", xdg);
	else if (home && home[0] == '/')
		n = asprintf(&dir, "%s/.cache/spr", home);
	else
		n = asprintf(&dir, "/tmp/spr-cache-%d", (int)geteuid());
	return n < 0 ? NULL : dir;
}

/* Only a directory we own and nobody else may write is trusted: a planted
 * .pyc would run as the worker. (Readable by all: the .pyc is the
 * worker, public code.) */
static bool private_dir(const char *dir)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		mkdir(parent, 0755);
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return false;
	struct stat st;
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
	       !(st.st_mode & 022);
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool read_whole(const char *path, spr_buf *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char chunk[16384];
	ssize_t n;
	while (fd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		spr_buf_append(out, chunk, (size_t)n);
	return fd >= 0 && !out->oom;
}

static char *compiled_worker(const struct spr_local_engine *le)
{
	_cleanup_buf_ spr_buf src = SPR_BUF_INIT;
	if (!read_whole(le->worker_path, &src))
		return NULL;
	uint64_t h = fnv1a(0xcbf29ce484222325ULL, src.data, src.len);
	h = fnv1a(h, le->python.executable, strlen(le->python.executable) + 1);
	h = fnv1a(h, le->python.version, strlen(le->python.version) + 1);
	_cleanup_free_ char *dir = cache_dir();
	char *pyc = NULL, *tmp = NULL;
	if (!dir || !private_dir(dir) ||
	    asprintf(&pyc, "%s/spr_worker-%016llx.pyc", dir, (unsigned long long)h) < 0)
		return NULL;
	struct stat st;
	if (lstat(pyc, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid())
		return pyc;
	if (asprintf(&tmp, "%s.%d.tmp", pyc, (int)getpid()) < 0) {
		free(pyc);
		return NULL;
	}
	static const char compile_code[] =
		"import py_compile, sys\n"
		"py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)\n";
	char *argv[] = {le->python.executable, (char *)"-I", (char *)"-S", (char *)"-c",
			(char *)compile_code, le->worker_path, tmp, NULL};
	char *envp[] = {(char *)"LANG=C.UTF-8", NULL};
	int status = -1;
	bool ok = spr_command_output(argv, envp, PROBE_TIMEOUT_MS, NULL, NULL, &status, NULL) == 0 &&
		  WIFEXITED(status) && WEXITSTATUS(status) == 0 && rename(tmp, pyc) == 0;
	unlink(tmp);
	free(tmp);
	if (!ok) {
		free(pyc);
		return NULL;
	}
	return pyc;
}

/* Compiled once per process, encoded once per engine: a run only copies
 * the text into its plan. */
static int load_seccomp(struct spr_local_engine *le, spr_error **err)
{
	struct spr_bpf bpf;
	if (spr_seccomp_bpf(&bpf, err) < 0)
		return -1;
	spr_buf b = SPR_BUF_INIT;
	spr_base64_encode(&b, bpf.insns, bpf.len);
	le->seccomp_b64 = spr_buf_steal(&b, NULL);
	return le->seccomp_b64 ? 0 : spr_fail_oom(err);
}

int spr_local_engine_new(const spr_local_options *opts, spr_engine **out, spr_error **err)
{
	if (!out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_local_engine_new: out is NULL");
	static const spr_local_options defaults = {0};
	if (!opts)
		opts = &defaults;
	struct spr_local_engine *le = calloc(1, sizeof(*le));
	if (!le)
		return spr_fail_oom(err);
	spr_engine_init(&le->base, &local_ops);
	le->allow_degraded = opts->allow_degraded;
	spr_layout_outside_ids(&le->outside_uid, &le->outside_gid);
	if (find_libexec(le, opts->libexec_dir, err) < 0 ||
	    probe_python(&le->python, opts->python ? opts->python : DEFAULT_PYTHON, err) < 0 ||
	    load_seccomp(le, err) < 0) {
		spr_engine_free(&le->base);
		return -1;
	}
	/* Without a cache the source still works, only slower. */
	le->worker_run_path = compiled_worker(le);
	if (!le->worker_run_path && !(le->worker_run_path = strdup(le->worker_path))) {
		spr_engine_free(&le->base);
		return spr_fail_oom(err);
	}
	*out = &le->base;
	return 0;
}
