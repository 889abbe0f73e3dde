/* Which image a DockerEngine runs (SPEC §5):
 *   1. an explicit image (container_registry), pulled if not present;
 *   2. packages: spr-env:<hash>, built FROM the runtime image once per hash
 *      of (runtime image ID, sorted pinned packages, wheel files) and reused;
 *   3. the default runtime image spr-runtime:<version>-<hash>, present;
 *   4. else built from docker/runtime/Dockerfile with ARG BASE_IMAGE.
 * Builds are serialized across processes with a lock per tag, and the tag
 * is checked again under the lock, so two callers never build it twice. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cache.h"
#include "engine/packages.h"
#include "docker/docker_engine.h"
#include "docker/profile.h"
#include "proc.h"

#define BUILD_TIMEOUT_MS (30LL * 60 * 1000)
#define INSPECT_TIMEOUT_MS 60000
#define DEFAULT_BASE_IMAGE "python:3.12-slim"

/* The image's ID, or NULL when the daemon does not have it. */
static char *image_id(const struct spr_docker_target *t, const char *image, spr_error **err)
{
	char *args[] = {(char *)"image", (char *)"inspect", (char *)"--format", (char *)"{{.Id}}",
			(char *)image, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	int rc = spr_docker_cmd(t, args, INSPECT_TIMEOUT_MS, &out, &errout, err);
	if (rc != 0 || !out.len)
		return NULL;
	out.data[strcspn(out.data, "\n")] = '\0';
	return strdup(out.data);
}

static int pull(const struct spr_docker_target *t, const char *image, spr_error **err)
{
	char *args[] = {(char *)"pull", (char *)"--quiet", (char *)image, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	int rc = spr_docker_cmd(t, args, BUILD_TIMEOUT_MS, &out, &errout, err);
	if (rc < 0)
		return -1;
	if (rc != 0)
		return spr_fail(err, SPR_LAYER_DOCKER, ENOENT,
				"image %s is not present and could not be pulled: %s", image,
				spr_docker_last_line(&errout));
	return 0;
}

/* Holds an exclusive lock for building `tag` until *fd is closed. */
static int lock_build(const char *tag, int *fd, spr_error **err)
{
	_cleanup_free_ char *dir = spr_cache_dir();
	char path[512];
	unsigned long long h = (unsigned long long)spr_fnv1a(SPR_FNV_OFFSET, tag, strlen(tag));
	snprintf(path, sizeof(path), "%s/docker-build-%016llx.lock", dir ? dir : "/tmp", h);
	*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (*fd < 0)
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "opening the build lock %s", path);
	while (flock(*fd, LOCK_EX) < 0)
		if (errno != EINTR)
			return spr_fail_errno(err, SPR_LAYER_DOCKER, "locking %s", path);
	return 0;
}

static int copy_file(const char *from, const char *to, spr_error **err)
{
	_cleanup_buf_ spr_buf data = SPR_BUF_INIT;
	if (!spr_read_file(from, &data))
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "reading %s", from);
	_cleanup_close_ int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, data.data ? data.data : "", data.len) != (ssize_t)data.len)
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "writing %s", to);
	return 0;
}

static int write_text(const char *path, const char *text, spr_error **err)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "writing %s", path);
	return 0;
}

static void remove_context(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2])))
			continue;
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (de->d_type == DT_DIR)
			remove_context(path);
		else
			unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/* `docker build`: progress to fd 2 when asked (a terminal), else
 * captured for the error message. */
/* What pip said went wrong in a failed build (its "ERROR:" lines, from
 * either stream: the legacy builder writes the steps' output to stdout),
 * joined; NULL when it said nothing of the kind. */
static char *build_complaints(const spr_buf *out, const spr_buf *errout)
{
	spr_buf found = SPR_BUF_INIT;
	const spr_buf *streams[] = {out, errout};
	for (size_t s = 0; s < ARRAY_SIZE(streams); s++) {
		const char *line = streams[s]->data;
		while (line && *line) {
			size_t len = strcspn(line, "\n");
			const char *e = memmem(line, len, "ERROR: ", 7);
			if (e && found.len < 2048) {
				spr_buf_puts(&found, found.len ? "; " : "");
				spr_buf_append(&found, e, len - (size_t)(e - line));
			}
			line += len + (line[len] == '\n');
		}
	}
	return found.data;
}

static int docker_build(const struct spr_docker_target *t, char *const given[], bool progress,
			const char *tag, spr_error **err)
{
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	/* podman (buildah 1.28) reuses a cached LABEL layer whose build-arg
	 * value differs: the image would carry another version's label. An
	 * image is built once per tag anyway, so podman builds from scratch. */
	char *args[16];
	size_t n = 0;
	args[n++] = given[0];
	if (t->podman)
		args[n++] = (char *)"--no-cache";
	for (size_t i = 1; given[i] && n < sizeof(args) / sizeof(*args) - 1; i++)
		args[n++] = given[i];
	args[n] = NULL;
	int rc;
	if (progress) {
		_cleanup_free_ char **argv = spr_docker_argv(t, args);
		int status = 0;
		rc = argv ? spr_command_passthrough(argv, t->env, STDERR_FILENO, BUILD_TIMEOUT_MS,
						    &status, err)
			  : spr_fail_oom(err);
		if (rc == 0)
			rc = WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	} else {
		rc = spr_docker_cmd(t, args, BUILD_TIMEOUT_MS, &out, &errout, err);
	}
	if (rc < 0)
		return -1;
	if (rc != 0) {
		_cleanup_free_ char *why = progress ? NULL : build_complaints(&out, &errout);
		return spr_fail(err, SPR_LAYER_DOCKER, EIO, "building %s failed: %s", tag,
				progress ? "see the build output above"
				: why	 ? why
					 : spr_docker_last_line(&errout));
	}
	return 0;
}

/* The runtime image is the base and the Dockerfile: what its tag hashes.
 * (The worker and spr-sandbox go into each container when it starts, so
 * a new spr needs no new image.) */
static char *runtime_tag(const char *libexec, const char *base, spr_error **err)
{
	char dockerfile[512];
	snprintf(dockerfile, sizeof(dockerfile), "%s/runtime.Dockerfile", libexec);
	_cleanup_buf_ spr_buf a = SPR_BUF_INIT;
	if (!spr_read_file(dockerfile, &a)) {
		spr_fail_errno(err, SPR_LAYER_DOCKER, "reading %s (the runtime image's Dockerfile)",
			       dockerfile);
		return NULL;
	}
	uint64_t h = spr_fnv1a(SPR_FNV_OFFSET, a.data, a.len);
	h = spr_fnv1a(h, base, strlen(base) + 1);
	char *tag = NULL;
	if (asprintf(&tag, SPR_RUNTIME_REPO ":%s-%012llx", SPR_VERSION,
		     (unsigned long long)(h & 0xffffffffffffULL)) < 0) {
		spr_fail_oom(err);
		return NULL;
	}
	return tag;
}

static int build_runtime(struct spr_docker_engine *de, const spr_docker_options *o,
			 const char *libexec, const char *base, const char *tag, spr_error **err)
{
	char ctx[] = "/tmp/spr-build-XXXXXX";
	if (!mkdtemp(ctx))
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "creating a build context");
	char from[512], to[512], arg_base[512], arg_ver[128];
	int rc = 0;
	snprintf(from, sizeof(from), "%s/runtime.Dockerfile", libexec);
	snprintf(to, sizeof(to), "%s/Dockerfile", ctx);
	rc = copy_file(from, to, err);
	snprintf(arg_base, sizeof(arg_base), "BASE_IMAGE=%s", base);
	snprintf(arg_ver, sizeof(arg_ver), "SPR_WORKER_VERSION=%s", strchr(tag, ':') + 1);
	if (rc == 0) {
		/* Nothing in the runtime image needs a network to build (and a
		 * daemon without a bridge has none). */
		char *args[] = {(char *)"build", (char *)"--network", (char *)"none",
				(char *)"--build-arg", arg_base, (char *)"--build-arg", arg_ver,
				(char *)"--tag", (char *)tag, ctx, NULL};
		rc = docker_build(&de->target, args, o->show_build_progress, tag, err);
	}
	remove_context(ctx);
	return rc;
}

static void remove_build_layers(const struct spr_docker_target *t, const char *build_id)
{
	char filter[128];
	snprintf(filter, sizeof(filter), "label=" SPR_LABEL_BUILD "=%s", build_id);
	char *args[] = {(char *)"image", (char *)"prune", (char *)"--force", (char *)"--filter",
			filter, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *ignored = NULL; /* the build's error is the one to report */
	spr_docker_cmd(t, args, INSPECT_TIMEOUT_MS, &out, &errout, &ignored);
}

/* wheel_dir is the older spelling of find_links with no_index. */
static int effective_pip(const spr_docker_options *o, spr_pip_options *pip, spr_error **err)
{
	*pip = o->pip;
	if (o->wheel_dir) {
		if (pip->find_links && strcmp(pip->find_links, o->wheel_dir))
			return spr_fail(err, SPR_LAYER_API, EINVAL,
					"wheel_dir (%s) and pip.find_links (%s) differ: give one",
					o->wheel_dir, pip->find_links);
		pip->find_links = o->wheel_dir;
		pip->no_index = !pip->index_url;
	}
	return spr_check_pip(pip, err);
}

static uint64_t hash_str(uint64_t h, const char *s)
{
	return s ? spr_fnv1a(h, s, strlen(s) + 1) : spr_fnv1a(h, "", 1);
}

/* The packages image is named by what goes into it. */
static char *env_tag(const char *runtime_id, const spr_docker_options *o,
		     const spr_pip_options *pip)
{
	size_t n = 0;
	const char **sorted = spr_sorted_packages(o->packages, &n);
	if (!sorted)
		return NULL;
	uint64_t h = spr_fnv1a(SPR_FNV_OFFSET, runtime_id, strlen(runtime_id) + 1);
	/* As pip reads them (Alpha==1.0 is alpha==1.0.0); the list is short
	 * and sorted by what was typed, which differs in case only. */
	for (size_t i = 0; i < n; i++) {
		char *key = spr_package_key(sorted[i]);
		h = hash_str(h, key ? key : sorted[i]);
		free(key);
	}
	free(sorted);
	h = hash_str(h, pip->index_url);
	h = spr_fnv1a(h, &pip->no_index, sizeof(pip->no_index));
	if (pip->find_links) {
		DIR *d = opendir(pip->find_links);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			char path[1024];
			snprintf(path, sizeof(path), "%s/%s", pip->find_links, de->d_name);
			spr_buf content = SPR_BUF_INIT;
			if (de->d_name[0] != '.' && spr_read_file(path, &content)) {
				h = spr_fnv1a(h, de->d_name, strlen(de->d_name) + 1);
				h = spr_fnv1a(h, content.data, content.len);
			}
			spr_buf_free(&content);
		}
		if (d)
			closedir(d);
	}
	char *tag = NULL;
	if (asprintf(&tag, SPR_ENV_REPO ":%012llx", (unsigned long long)(h & 0xffffffffffffULL)) < 0)
		return NULL;
	return tag;
}

static int build_env(struct spr_docker_engine *de, const spr_docker_options *o,
		     const char *runtime, const char *tag, spr_error **err)
{
	spr_pip_options pip;
	if (effective_pip(o, &pip, err) < 0)
		return -1;
	char ctx[] = "/tmp/spr-build-XXXXXX";
	if (!mkdtemp(ctx))
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "creating a build context");
	_cleanup_buf_ spr_buf df = SPR_BUF_INIT;
	/* Every layer of this build carries its id: a failed build's
	 * layers are removed by it (no <none> images left behind). */
	char build_id[64];
	snprintf(build_id, sizeof(build_id), "%s-%d-%lld", strchr(tag, ':') + 1, (int)getpid(),
		 (long long)spr_now_ms());
	spr_buf_printf(&df,
		       "# spr package environment (generated)\n"
		       "FROM %s\n"
		       "LABEL " SPR_LABEL_BUILD "=\"%s\"\n"
		       "USER 0:0\n",
		       runtime, build_id);
	bool wheels = pip.find_links != NULL;
	int rc = 0;
	if (wheels) {
		char dir[512];
		snprintf(dir, sizeof(dir), "%s/wheels", ctx);
		mkdir(dir, 0755);
		DIR *d = opendir(pip.find_links);
		if (!d)
			rc = spr_fail_errno(err, SPR_LAYER_DOCKER, "find-links directory %s",
					    pip.find_links);
		struct dirent *ent;
		while (rc == 0 && d && (ent = readdir(d))) {
			if (ent->d_name[0] == '.')
				continue;
			char from[1024], to[1024];
			snprintf(from, sizeof(from), "%s/%s", pip.find_links, ent->d_name);
			snprintf(to, sizeof(to), "%s/%s", dir, ent->d_name);
			rc = copy_file(from, to, err);
		}
		if (d)
			closedir(d);
		spr_buf_puts(&df, "COPY wheels/ /tmp/spr-wheels/\n");
	}
	/* --target: packages in a directory of our own, outside the image's
	 * (possibly externally managed) Python. */
	spr_buf_puts(&df, "RUN python3 -m pip install --no-cache-dir --disable-pip-version-check "
			  "--no-input --target " SPR_DOCKER_SITE_DIR);
	const char *args[SPR_PIP_MAX_ARGS];
	size_t nargs = spr_pip_args(&pip, "/tmp/spr-wheels", args);
	for (size_t i = 0; i < nargs; i++)
		spr_buf_printf(&df, " '%s'", args[i]);
	for (const char *const *p = o->packages; *p; p++)
		spr_buf_printf(&df, " '%s'", *p);
	spr_buf_printf(&df,
		       "%s\nUSER 65534:65534\nLABEL " SPR_LABEL_IMAGE "=\"env\" " SPR_LABEL_ENV_HASH
		       "=\"%s\"\n",
		       wheels ? " && rm -rf /tmp/spr-wheels" : "", strchr(tag, ':') + 1);
	char path[512];
	snprintf(path, sizeof(path), "%s/Dockerfile", ctx);
	if (rc == 0)
		rc = df.oom ? spr_fail_oom(err) : write_text(path, df.data, err);
	/* From local wheels nothing is downloaded; from an index pip needs
	 * the daemon's default network. */
	char *argv[] = {(char *)"build", (char *)"--force-rm", (char *)"--network",
			(char *)(pip.no_index ? "none" : "default"), (char *)"--tag", (char *)tag, ctx,
			NULL};
	if (rc == 0 && (rc = docker_build(&de->target, argv, o->show_build_progress, tag, err)) < 0)
		remove_build_layers(&de->target, build_id);
	remove_context(ctx);
	return rc;
}

/* Present already, or built now under the lock (checked again: another
 * process may have built it while we waited). */
static int ensure_built(struct spr_docker_engine *de, const char *tag,
			int (*build)(struct spr_docker_engine *, const spr_docker_options *,
				     const char *, const char *, const char *, spr_error **),
			const spr_docker_options *o, const char *arg1, const char *arg2,
			spr_error **err)
{
	_cleanup_free_ char *id = image_id(&de->target, tag, NULL);
	if (id)
		return 0;
	_cleanup_close_ int lock = -1;
	if (lock_build(tag, &lock, err) < 0)
		return -1;
	free(id);
	id = image_id(&de->target, tag, NULL);
	if (id)
		return 0;
	return build(de, o, arg1, arg2, tag, err);
}

static int build_runtime_cb(struct spr_docker_engine *de, const spr_docker_options *o,
			    const char *libexec, const char *base, const char *tag, spr_error **err)
{
	return build_runtime(de, o, libexec, base, tag, err);
}

static int build_env_cb(struct spr_docker_engine *de, const spr_docker_options *o,
			const char *runtime, const char *unused, const char *tag, spr_error **err)
{
	(void)unused;
	return build_env(de, o, runtime, tag, err);
}

int spr_docker_resolve_image(struct spr_docker_engine *de, const spr_docker_options *o,
			     const char *libexec, spr_error **err)
{
	const struct spr_docker_target *t = &de->target;
	spr_pip_options pip;
	if (spr_check_packages(o->packages, err) < 0 || effective_pip(o, &pip, err) < 0)
		return -1;
	if (o->image) {
		de->image = strdup(o->image);
		if (!de->image)
			return spr_fail_oom(err);
		de->image_id = image_id(t, o->image, NULL);
		if (!de->image_id && (pull(t, o->image, err) < 0 ||
				      !(de->image_id = image_id(t, o->image, err))))
			return spr_fail(err, SPR_LAYER_DOCKER, ENOENT, "image %s not found",
					o->image);
	} else {
		const char *base = o->base_image ? o->base_image : getenv("SPR_DOCKER_BASE_IMAGE");
		if (!base || !*base)
			base = DEFAULT_BASE_IMAGE;
		char *tag = runtime_tag(libexec, base, err);
		if (!tag)
			return -1;
		de->image = tag;
		if (ensure_built(de, tag, build_runtime_cb, o, libexec, base, err) < 0)
			return -1;
		de->image_id = image_id(t, tag, err);
	}
	if (!de->image_id)
		return spr_fail(err, SPR_LAYER_DOCKER, ENOENT, "image %s has no ID", de->image);
	if (o->packages && o->packages[0]) {
		char *tag = env_tag(de->image_id, o, &pip);
		if (!tag)
			return spr_fail_oom(err);
		int rc = ensure_built(de, tag, build_env_cb, o, de->image, NULL, err);
		free(de->image);
		de->image = tag;
		if (rc < 0)
			return -1;
		free(de->image_id);
		de->image_id = image_id(t, tag, err);
		if (!de->image_id)
			return -1;
	}
	de->sys_path_json = strdup("[\"" SPR_DOCKER_SITE_DIR "\"]");
	return de->sys_path_json ? 0 : spr_fail_oom(err);
}
