/* The interpreter the LocalEngine runs (--python): what it is, asked once
 * and cached, and the worker compiled for it. Both ask the interpreter
 * itself, which is as untrusted as the code: a venv's .pth files run when
 * site does, and the path may name any program. So both run in a sandbox
 * like a run's (spr_local_command), never on the host as the caller, and
 * the sandbox shows them only what the interpreter's own files would be,
 * found without running it (the landmarks Python's getpath looks for).
 * What the probe answers must lie inside what it was shown: a lying
 * interpreter cannot widen what later runs see. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

#include "cache.h"
#include "json.h"
#include "local/engine.h"

#define PROBE_TIMEOUT_MS 20000
#define PROBE_OUTPUT_CAP (64 << 10)
#define PYC_OUTPUT_CAP (8 << 20)

void spr_python_info_free(struct spr_python_info *p)
{
	free(p->path);
	free(p->base_prefix);
	free(p->prefix);
	free(p->version);
	free(p->executable);
	free(p->sys_path_json);
	*p = (struct spr_python_info){0};
}

/* One line per fact; paths cannot contain newlines in practice, and the
 * probe must not import json (it would be the slowest part). It runs with
 * -S like the worker, then runs site itself (quietly: a sitecustomize
 * that prints must not garble the answer), so that it answers what site
 * does: with a venv's pyvenv.cfg, sys.prefix is the venv and the
 * site-packages are the venv's (and the system's only if the venv
 * includes them). The directories, not what .pth files add: installing
 * into them must not make a cached answer stale. */
static const char probe_code[] =
	"import sys, site\n"
	"out, sys.stdout = sys.stdout, sys.stderr\n"
	"site.main()\n"
	"sys.stdout = out\n"
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

/* realpath(), or an error naming which of the interpreter's paths failed. */
static char *resolved(const char *path, const char *what, spr_error **err)
{
	char real[PATH_MAX];
	if (!realpath(path, real)) {
		spr_fail_errno(err, SPR_LAYER_WORKER,
			       "cannot resolve the interpreter's %s %s (is the interpreter or its "
			       "venv still installed? else pass another --python PATH)",
			       what, path);
		return NULL;
	}
	char *copy = strdup(real);
	if (!copy)
		spr_fail_oom(err);
	return copy;
}

/* A venv's interpreter must be started by the venv's own link, not by
 * what it points to: the interpreter finds pyvenv.cfg from the path it
 * was started by. Only its directory is resolved, as the venv is bound
 * at its real path. */
static char *venv_executable(const char *executable, spr_error **err)
{
	const char *slash = strrchr(executable, '/');
	if (!slash || slash == executable)
		return resolved(executable, "sys.executable", err);
	_cleanup_free_ char *dir = strndup(executable, (size_t)(slash - executable));
	if (!dir) {
		spr_fail_oom(err);
		return NULL;
	}
	_cleanup_free_ char *real_dir = resolved(dir, "sys.executable directory", err);
	char *path = NULL;
	if (real_dir && asprintf(&path, "%s%s", real_dir, slash) < 0) {
		spr_fail_oom(err);
		return NULL;
	}
	return path;
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
	py->venv = strcmp(prefix, base) != 0;
	if (py->venv) {
		if (!(py->executable = venv_executable(executable, err)) ||
		    !(py->prefix = resolved(prefix, "sys.prefix", err)))
			return -1;
	} else {
		if (!(py->executable = resolved(executable, "sys.executable", err)))
			return -1;
		py->prefix = strdup(prefix);
	}
	py->base_prefix = strdup(base);
	py->version = strdup(version);
	spr_buf paths = SPR_BUF_INIT;
	spr_buf_putc(&paths, '[');
	bool first = true;
	for (char *line; (line = next_line(&cursor));) {
		if (!first)
			spr_buf_putc(&paths, ',');
		/* The sandbox shows directories at their real paths. */
		char real[PATH_MAX];
		const char *dir = realpath(line, real) ? real : line;
		spr_json_write_string(&paths, dir, strlen(dir));
		first = false;
	}
	spr_buf_putc(&paths, ']');
	py->sys_path_json = spr_buf_steal(&paths, NULL);
	if (!py->executable || !py->base_prefix || !py->prefix || !py->version ||
	    !py->sys_path_json)
		return spr_fail_oom(err);
	return 0;
}

/* ---- the probe's answer, cached ------------------------------------------------------
 * Starting the interpreter to ask it costs as much as a run (~7 ms), and
 * every `spr-run` starts an engine. The answer depends on the interpreter
 * (the binary, the path it is called by: a venv's symlink, its
 * pyvenv.cfg), so the cache file is named by their identities (device,
 * inode, size, mtime): replacing any of them means a fresh probe. */

static uint64_t hash_stat(uint64_t h, const char *path, bool follow)
{
	struct stat st;
	if ((follow ? stat(path, &st) : lstat(path, &st)) < 0)
		return spr_fnv1a(h, "-", 1);
	const uint64_t id[] = {st.st_dev, st.st_ino, (uint64_t)st.st_size,
			       (uint64_t)st.st_mtim.tv_sec, (uint64_t)st.st_mtim.tv_nsec,
			       st.st_mode};
	return spr_fnv1a(h, id, sizeof(id));
}

static char *probe_cache_path(const char *path)
{
	uint64_t h = spr_fnv1a(SPR_FNV_OFFSET, probe_code, sizeof(probe_code));
	h = spr_fnv1a(h, path, strlen(path) + 1);
	h = hash_stat(h, path, false);
	h = hash_stat(h, path, true);
	/* Where Python looks for pyvenv.cfg: next to the binary, then in its
	 * parent (<venv>/bin/python -> <venv>/pyvenv.cfg). */
	char cfg[PATH_MAX];
	snprintf(cfg, sizeof(cfg), "%s", path);
	for (int up = 0; up < 2; up++) {
		char *slash = strrchr(cfg, '/');
		if (!slash)
			break;
		*slash = '\0';
		char here[PATH_MAX + sizeof("/pyvenv.cfg")];
		snprintf(here, sizeof(here), "%s/pyvenv.cfg", cfg);
		h = hash_stat(h, here, true);
	}
	_cleanup_free_ char *dir = spr_cache_dir();
	char *file = NULL;
	if (!dir || asprintf(&file, "%s/probe-%016llx.txt", dir, (unsigned long long)h) < 0)
		return NULL;
	return file;
}

/* A cached answer, if it is ours and whole (it ends with a newline). */
static bool read_cached_probe(const char *file, spr_buf *out)
{
	struct stat st;
	if (!file || lstat(file, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid())
		return false;
	return spr_read_file(file, out) && out->len && out->data[out->len - 1] == '\n';
}

static void write_cached_probe(const char *file, const spr_buf *answer)
{
	_cleanup_free_ char *tmp = NULL;
	if (!file || asprintf(&tmp, "%s.%d.tmp", file, (int)getpid()) < 0)
		return;
	_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	bool ok = write(fd, answer->data, answer->len) == (ssize_t)answer->len;
	if (!ok || rename(tmp, file) < 0)
		unlink(tmp);
}

static bool within(const char *path, const char *root)
{
	size_t n = strlen(root);
	if (!strcmp(root, "/"))
		return path[0] == '/';
	return !strncmp(path, root, n) && (path[n] == '/' || path[n] == '\0');
}

/* An answer must name what the probe was shown: a lying interpreter must
 * not widen what later runs see (their layout comes from the answer). */
static int check_answer(const struct spr_python_info *py, const struct spr_python_paths *s,
			spr_error **err)
{
	const char *answers[] = {py->base_prefix, py->prefix, py->executable};
	const char *roots[] = {s->base_prefix, s->prefix, s->binary_dir};
	for (size_t i = 0; i < ARRAY_SIZE(answers); i++) {
		char real[PATH_MAX];
		const char *a = realpath(answers[i], real) ? real : answers[i];
		bool ok = false;
		for (size_t r = 0; r < ARRAY_SIZE(roots) && !ok; r++)
			ok = within(a, roots[r]);
		if (!ok)
			return spr_fail(err, SPR_LAYER_WORKER, EPERM,
					"%s answered the probe with %s, outside what it was shown "
					"(%s, %s, %s): spr will not widen the sandbox on its word",
					py->path, answers[i], s->base_prefix, s->prefix, s->binary_dir);
	}
	return 0;
}

/* Runs the interpreter with argv in a sandbox that shows what s lists. */
static int run_shown(struct spr_local_engine *le, const struct spr_python_paths *s, const char *const *argv,
		     const spr_buf *input, size_t cap, spr_buf *out, spr_buf *errout, int *status,
		     spr_error **err)
{
	struct spr_local_command cmd = {
		.argv = argv,
		.layout = {.python_executable = s->executable,
			   .python_base_prefix = s->base_prefix,
			   .python_prefix = s->prefix},
		.input = input ? input->data : NULL,
		.input_len = input ? input->len : 0,
		.output_cap = cap,
		.timeout_ms = PROBE_TIMEOUT_MS,
		.errout = errout,
	};
	return spr_local_command(le, &cmd, out, status, err);
}

/* The last line of what the interpreter said on stderr, for errors. */
static const char *last_line(spr_buf *b)
{
	if (!b->data || !b->len)
		return "(no output)";
	while (b->len && b->data[b->len - 1] == '\n')
		b->data[--b->len] = '\0';
	const char *nl = strrchr(b->data, '\n');
	return nl ? nl + 1 : b->data;
}

int spr_local_probe_python(struct spr_local_engine *le, const char *path, spr_error **err)
{
	struct spr_python_info *py = &le->python;
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
	SPR_CLEANUP(spr_python_paths_free) struct spr_python_paths shown = {0};
	if (spr_python_paths_find(path, &shown, err) < 0)
		return -1;
	_cleanup_free_ char *cache = probe_cache_path(path);
	_cleanup_buf_ spr_buf cached = SPR_BUF_INIT;
	if (read_cached_probe(cache, &cached) && parse_probe(py, cached.data, NULL) == 0 &&
	    check_answer(py, &shown, NULL) == 0)
		return 0;
	spr_python_info_free(py);
	if (!(py->path = strdup(path)))
		return spr_fail_oom(err);
	const char *argv[] = {path, "-I", "-S", "-c", probe_code, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	int status = -1;
	if (run_shown(le, &shown, argv, NULL, PROBE_OUTPUT_CAP, &out, &errout, &status, err) < 0) {
		spr_error_prefix(err, "probing the interpreter %s in a sandbox: ", path);
		return -1;
	}
	if (status != 0)
		return spr_fail(err, SPR_LAYER_WORKER, 0, "%s failed to start (status %d): %s", path,
				status, last_line(&errout));
	_cleanup_buf_ spr_buf answer = SPR_BUF_INIT;
	spr_buf_append(&answer, out.data ? out.data : "", out.len);
	if (answer.oom)
		return spr_fail_oom(err);
	if (parse_probe(py, out.data ? out.data : (char *)"", err) < 0 ||
	    check_answer(py, &shown, err) < 0)
		return -1;
	if (answer.len && answer.data[answer.len - 1] == '\n')
		write_cached_probe(cache, &answer);
	return 0;
}

/* ---- the precompiled worker ------------------------------------------------------------
 * Compiling the worker's source costs ~2.5 ms per run, most of spr's
 * overhead; a .pyc for this interpreter costs nothing. It is made once,
 * in a private cache directory, and named by a hash of the worker and the
 * interpreter, so a changed worker or interpreter gets a fresh file.
 * Without docstrings (optimize=2; the worker has no asserts): a smaller
 * file to unmarshal at every start. */


/* The worker's source comes on stdin; the .pyc (PEP 552 header: magic,
 * flags 0, no source time or size: nothing checks them when a .pyc is run
 * directly) goes to stdout. The code object is named as the sandbox shows
 * the worker. */
static const char compile_code[] =
	"import sys, marshal\n"
	"magic = sys.modules['_frozen_importlib_external'].MAGIC_NUMBER\n"
	"code = compile(sys.stdin.buffer.read(), '/opt/spr/spr_worker.py', 'exec',\n"
	"               dont_inherit=True, optimize=2)\n"
	"sys.stdout.buffer.write(magic + bytes(12) + marshal.dumps(code))\n";

char *spr_local_compiled_worker(struct spr_local_engine *le)
{
	_cleanup_buf_ spr_buf src = SPR_BUF_INIT;
	if (!spr_read_file(le->worker_path, &src))
		return NULL;
	uint64_t h = spr_fnv1a(SPR_FNV_OFFSET, src.data, src.len);
	h = spr_fnv1a(h, le->python.executable, strlen(le->python.executable) + 1);
	h = spr_fnv1a(h, le->python.version, strlen(le->python.version) + 1);
	h = spr_fnv1a(h, compile_code, sizeof(compile_code));
	_cleanup_free_ char *dir = spr_cache_dir();
	char *pyc = NULL;
	if (!dir ||
	    asprintf(&pyc, "%s/spr_worker-%016llx.pyc", dir, (unsigned long long)h) < 0)
		return NULL;
	struct stat st;
	if (lstat(pyc, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid())
		return pyc;
	SPR_CLEANUP(spr_python_paths_free) struct spr_python_paths shown = {0};
	const char *argv[] = {le->python.executable, "-I", "-S", "-c", compile_code, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	_cleanup_error_ spr_error *ignored = NULL; /* without a .pyc the source still works */
	int status = -1;
	_cleanup_free_ char *tmp = NULL;
	bool ok = spr_python_paths_find(le->python.path, &shown, &ignored) == 0 &&
		  run_shown(le, &shown, argv, &src, PYC_OUTPUT_CAP, &out, NULL, &status,
			    &ignored) == 0 &&
		  status == 0 && out.len > 16 && asprintf(&tmp, "%s.%d.tmp", pyc, (int)getpid()) >= 0;
	if (ok) {
		/* Published with link(), never replacing: another engine's
		 * sandbox may be mounting the file that is there, and a mount
		 * of a file renamed over fails (ENOENT). The same compiler and
		 * source made both, so the one there serves. */
		_cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		ok = fd >= 0 && write(fd, out.data, out.len) == (ssize_t)out.len &&
		     (link(tmp, pyc) == 0 || errno == EEXIST);
		if (fd >= 0)
			unlink(tmp);
	}
	if (!ok) {
		free(pyc);
		return NULL;
	}
	return pyc;
}
