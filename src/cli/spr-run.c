/* spr-run: run a Python file (or stdin) under a policy and report like the
 * code ran directly: its stdout/stderr, its exit code. --json prints the
 * RunnerResult instead. Exit 2: bad usage or bad input; 125: the engine
 * could not run the code. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spr.h"

#include "json.h" /* spr_format_double: the one number formatter */
#include "uid_lease.h" /* --uid-range is checked as typed */

#define EXIT_USAGE 2
#define EXIT_ENGINE 125
#define MAX_CODE_BYTES ((size_t)64 << 20)

static const char usage_line[] =
	"usage: spr-run [--engine local|docker|podman] [--policy FILE] [--input JSON|@FILE] "
	"[--timeout S] [--memory MB] [--max-output KB] [--require LAYER,...] [--preload-import MOD]... "
	"[--python PATH] [--allow-degraded] "
	"[--cgroup-parent NAME] [--uid-range START:COUNT] [--venv DIR [--venv-manager python|uv]] "
	"[--package NAME==VERSION]... [--pip-find-links DIR] [--pip-no-index] [--pip-index-url URL] "
	"[--image IMAGE] "
	"[--docker-context NAME "
	"| --docker-host URL | --ssh-host HOST [--ssh-user U] [--ssh-port N] [--ssh-key-path K]] "
	"[--json] FILE|-";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("spr-run: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s\nTry 'spr-run --help' for more information.\n", usage_line);
	exit(EXIT_USAGE);
}

static void help(void)
{
	printf("%s\n\n"
	       "Run untrusted Python code in a sandbox and report its output and exit code.\n"
	       "FILE is the code to run ('-' reads it from stdin).\n\n"
	       "  --engine local|docker|podman  where to run (default: local; podman: the\n"
	       "                         DockerEngine through podman, rootful or rootless)\n"
	       "  --policy FILE          TOML policy file (SPEC §2); flags below override it\n"
	       "  --input JSON|@FILE     input_data as JSON text, or read from FILE\n"
	       "  --timeout S            wall-clock limit in seconds (fractions allowed)\n"
	       "  --memory MB            memory limit in MiB\n"
	       "  --max-output KB        cap per output stream in KiB\n"
	       "  --python PATH          interpreter to run the code (default /usr/bin/python3)\n"
	       "  --allow-degraded       run even if a protection cannot be applied\n"
	       "  --require LAYER,...    but never without these (the policy's `require`):\n"
	       "                         namespaces, cgroup, seccomp, landlock-fs,\n"
	       "                         landlock-tcp, landlock-scoped, network-off,\n"
	       "                         ipc-private, own-uid, memfd-exec-refused\n"
	       "  --preload-import MOD   import MOD before the code's request (the policy's\n"
	       "                         preload_imports; repeatable: the flags together\n"
	       "                         replace the file's list)\n"
	       "  --cgroup-parent NAME   create run cgroups under NAME, relative to this\n"
	       "                         process's own cgroup (a delegated subtree);\n"
	       "                         default: $SPR_CGROUP_PARENT, else the own cgroup\n"
	       "  --uid-range START:COUNT  as root, each run's host uid comes from these\n"
	       "                         ids, which no account may use (default:\n"
	       "                         $SPR_UID_RANGE, else 1879048192:65536); with\n"
	       "                         --engine docker, each container's\n"
	       "Environments (SPEC §4; --package with either engine):\n"
	       "  --venv DIR             run in the venv at DIR, made (in a sandbox) with\n"
	       "                         exactly the --package pins if it is not there\n"
	       "  --venv-manager python|uv  how to make it (default: python, the\n"
	       "                         interpreter's venv module and pip)\n"
	       "  --package N==V         pinned package (repeatable)\n"
	       "  --pip-find-links DIR   wheels and sdists in DIR (read-only to the install)\n"
	       "  --pip-no-index         only --pip-find-links; the install has no network\n"
	       "  --pip-index-url URL    another package index (reached over the host's\n"
	       "                         network, for the install only)\n"
	       "  --install-timeout S    limit of a venv build (default 600; the other\n"
	       "                         limits are the policy's)\n"
	       "DockerEngine (--engine docker):\n"
	       "  --image IMAGE          run in this image (default: spr's runtime image,\n"
	       "                         built from $SPR_DOCKER_BASE_IMAGE or python:3.12-slim)\n"
	       "  --wheel-dir DIR        the same as --pip-find-links DIR --pip-no-index\n"
	       "  --docker-context NAME  use this docker context\n"
	       "  --docker-host URL      unix://, tcp:// or ssh:// daemon\n"
	       "  --ssh-host HOST, --ssh-user USER, --ssh-port N, --ssh-key-path FILE\n"
	       "                         a daemon over SSH\n"
	       "  --json                 print the RunnerResult as JSON instead of the output\n"
	       "  --help, --version\n\n"
	       "Exit status: the code's exit code (0 ok, 1 exception, n for sys.exit(n)),\n"
	       "124 timeout, 137 memory limit, 125 engine failure, 2 bad usage.\n",
	       usage_line);
}

struct options {
	const char *engine;
	const char *policy_file;
	const char *input;
	const char *python;
	const char *cgroup_parent;
	const char *uid_range;
	bool allow_degraded;
	spr_docker_options docker;
	const char *packages[65];
	size_t npackages;
	const char *venv, *venv_manager;
	int install_timeout;
	spr_pip_options pip;
	bool json;
	const char *file;
	/* --preload-import, in order (argv's strings). */
	const char **preloads;
	size_t npreloads;
	/* The limit flags, applied one by one after the policy file so an
	 * error can name the flag. */
	struct override {
		const char *flag, *value;
		char json[512];
	} overrides[8];
	size_t noverrides;
};

/* A flag's value must be a plain decimal number: checked here so the
 * message can name the flag; ranges are checked by the policy. */
static void add_override(struct options *o, const char *flag, const char *field,
			 const char *value, bool integer)
{
	char *end;
	errno = 0;
	double d = strtod(value, &end);
	bool ok = *value && !*end && errno != ERANGE && isfinite(d) &&
		  strspn(value, "+-0123456789.eE") == strlen(value) &&
		  (!integer || strspn(value, "0123456789") == strlen(value));
	if (!ok)
		usage_error("%s: '%s' is not %s", flag, value,
			    integer ? "a whole number" : "a number");
	/* The shortest text that reads back as the same number, so messages
	 * quote what the user meant ("0.1", not "0.10000000000000001"), and
	 * a whole number stays one ("100", not "1e+02"). */
	char num[40];
	spr_format_double(num, sizeof(num), d);
	if (o->noverrides == sizeof(o->overrides) / sizeof(*o->overrides))
		usage_error("too many limit flags");
	struct override *ov = &o->overrides[o->noverrides++];
	ov->flag = flag;
	ov->value = value;
	snprintf(ov->json, sizeof(ov->json), "{\"%s\":%s}", field, num);
}

/* --require a,b,c: the policy's `require` list (the layers' names are
 * checked by the policy; here only that the text can become JSON as is). */
static void add_require(struct options *o, const char *value)
{
	if (!*value || strspn(value, "abcdefghijklmnopqrstuvwxyz-,") != strlen(value) ||
	    strstr(value, ",,") || value[0] == ',' || value[strlen(value) - 1] == ',')
		usage_error("--require: '%s' is not a comma-separated list of layers (e.g. "
			    "seccomp,landlock-fs,network-off)",
			    value);
	if (o->noverrides == sizeof(o->overrides) / sizeof(*o->overrides))
		usage_error("too many limit flags");
	struct override *ov = &o->overrides[o->noverrides++];
	ov->flag = "--require";
	ov->value = value;
	char *p = ov->json, *end = ov->json + sizeof(ov->json);
	p += snprintf(p, (size_t)(end - p), "{\"require\":[\"");
	for (const char *c = value; *c && p < end - 8; c++)
		p += *c == ',' ? snprintf(p, (size_t)(end - p), "\",\"") : (*p = *c, 1);
	if (p >= end - 8)
		usage_error("--require: too long");
	snprintf(p, (size_t)(end - p), "\"]}");
}

/* "policy:1:20: 'x' must be..." -> "'x' must be...": the position is in
 * JSON the user never wrote. */
static const char *without_position(const char *msg)
{
	const char *p = strncmp(msg, "policy:", 7) ? NULL : msg + 7;
	if (p && (p = strchr(p, ':')) && (p = strchr(p + 1, ':')) && p[1] == ' ')
		return p + 2;
	return msg;
}

static void parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_TIMEOUT = 256, OPT_MEMORY, OPT_MAX_OUTPUT, OPT_PYTHON, OPT_DEGRADED,
	       OPT_VERSION, OPT_CGROUP_PARENT, OPT_UID_RANGE, OPT_IMAGE, OPT_PACKAGE, OPT_WHEEL_DIR,
	       OPT_DOCKER_CONTEXT, OPT_DOCKER_HOST, OPT_SSH_HOST, OPT_SSH_USER, OPT_SSH_PORT,
	       OPT_SSH_KEY, OPT_REQUIRE, OPT_VENV, OPT_VENV_MANAGER, OPT_PIP_FIND_LINKS,
	       OPT_PIP_NO_INDEX, OPT_PIP_INDEX_URL, OPT_INSTALL_TIMEOUT, OPT_PRELOAD };
	static const struct option longopts[] = {
		{"engine", required_argument, NULL, 'e'},
		{"policy", required_argument, NULL, 'p'},
		{"input", required_argument, NULL, 'i'},
		{"timeout", required_argument, NULL, OPT_TIMEOUT},
		{"memory", required_argument, NULL, OPT_MEMORY},
		{"require", required_argument, NULL, OPT_REQUIRE},
		{"preload-import", required_argument, NULL, OPT_PRELOAD},
		{"max-output", required_argument, NULL, OPT_MAX_OUTPUT},
		{"python", required_argument, NULL, OPT_PYTHON},
		{"allow-degraded", no_argument, NULL, OPT_DEGRADED},
		{"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
		{"uid-range", required_argument, NULL, OPT_UID_RANGE},
		{"image", required_argument, NULL, OPT_IMAGE},
		{"package", required_argument, NULL, OPT_PACKAGE},
		{"wheel-dir", required_argument, NULL, OPT_WHEEL_DIR},
		{"venv", required_argument, NULL, OPT_VENV},
		{"venv-manager", required_argument, NULL, OPT_VENV_MANAGER},
		{"pip-find-links", required_argument, NULL, OPT_PIP_FIND_LINKS},
		{"pip-no-index", no_argument, NULL, OPT_PIP_NO_INDEX},
		{"pip-index-url", required_argument, NULL, OPT_PIP_INDEX_URL},
		{"install-timeout", required_argument, NULL, OPT_INSTALL_TIMEOUT},
		{"docker-context", required_argument, NULL, OPT_DOCKER_CONTEXT},
		{"docker-host", required_argument, NULL, OPT_DOCKER_HOST},
		{"ssh-host", required_argument, NULL, OPT_SSH_HOST},
		{"ssh-user", required_argument, NULL, OPT_SSH_USER},
		{"ssh-port", required_argument, NULL, OPT_SSH_PORT},
		{"ssh-key-path", required_argument, NULL, OPT_SSH_KEY},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{0},
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'e': o->engine = optarg; break;
		case 'p': o->policy_file = optarg; break;
		case 'i': o->input = optarg; break;
		case OPT_TIMEOUT: add_override(o, "--timeout", "timeout_seconds", optarg, false); break;
		case OPT_MEMORY: add_override(o, "--memory", "memory_limit_mb", optarg, true); break;
		case OPT_REQUIRE: add_require(o, optarg); break;
		case OPT_PRELOAD:
			if (!o->preloads && !(o->preloads = calloc((size_t)argc, sizeof(*o->preloads))))
				usage_error("out of memory");
			o->preloads[o->npreloads++] = optarg;
			break;
		case OPT_MAX_OUTPUT: add_override(o, "--max-output", "max_output_kb", optarg, true); break;
		case OPT_PYTHON: o->python = optarg; break;
		case OPT_DEGRADED: o->allow_degraded = true; break;
		case OPT_CGROUP_PARENT: o->cgroup_parent = optarg; break;
		case OPT_UID_RANGE: {
			struct spr_uid_range range;
			spr_error *bad = NULL;
			if (!*optarg || spr_uid_range_parse(optarg, &range, &bad) < 0)
				usage_error("--uid-range: %s", bad ? bad->message : "empty (give START:COUNT)");
			o->uid_range = optarg;
			break;
		}
		case OPT_IMAGE: o->docker.image = optarg; break;
		case OPT_PACKAGE:
			if (o->npackages + 1 >= sizeof(o->packages) / sizeof(*o->packages))
				usage_error("too many --package options (at most 64)");
			o->packages[o->npackages++] = optarg;
			o->docker.packages = o->packages;
			break;
		case OPT_WHEEL_DIR: o->docker.wheel_dir = optarg; break;
		case OPT_VENV:
			if (optarg[0] != '/')
				usage_error("--venv: '%s' is not an absolute path", optarg);
			o->venv = optarg;
			break;
		case OPT_VENV_MANAGER:
			if (strcmp(optarg, "python") && strcmp(optarg, "uv"))
				usage_error("--venv-manager must be 'python' or 'uv' (got '%s')", optarg);
			o->venv_manager = optarg;
			break;
		case OPT_PIP_FIND_LINKS: o->pip.find_links = optarg; break;
		case OPT_PIP_NO_INDEX: o->pip.no_index = true; break;
		case OPT_PIP_INDEX_URL: o->pip.index_url = optarg; break;
		case OPT_INSTALL_TIMEOUT: {
			long long t;
			if (!spr_parse_whole(optarg, 1, 86400, &t))
				usage_error("--install-timeout: '%s' is not a whole number of seconds "
					    "(1-86400)", optarg);
			o->install_timeout = (int)t;
			break;
		}
		case OPT_DOCKER_CONTEXT: o->docker.docker_context = optarg; break;
		case OPT_DOCKER_HOST: o->docker.docker_host = optarg; break;
		case OPT_SSH_HOST: o->docker.ssh_host = optarg; break;
		case OPT_SSH_USER: o->docker.ssh_user = optarg; break;
		case OPT_SSH_PORT: {
			long long port;
			if (!spr_parse_whole(optarg, 1, 65535, &port))
				usage_error("--ssh-port: '%s' is not a port (1-65535)", optarg);
			o->docker.ssh_port = (int)port;
			break;
		}
		case OPT_SSH_KEY: o->docker.ssh_key_path = optarg; break;
		case 'j': o->json = true; break;
		case 'h': help(); exit(0);
		case OPT_VERSION: printf("spr-run %s\n", SPR_VERSION); exit(0);
		default:
			if (optopt)
				usage_error("option '%s' needs a value or is unknown",
					    argv[optind - 1]);
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		usage_error("missing the code to run (FILE, or - for stdin)");
	if (optind + 1 < argc)
		usage_error("unexpected argument '%s' (only one FILE)", argv[optind + 1]);
	o->file = argv[optind];
	if (strcmp(o->engine, "local") && strcmp(o->engine, "docker") && strcmp(o->engine, "podman"))
		usage_error("--engine must be 'local', 'docker' or 'podman' (got '%s')", o->engine);
	bool containers = strcmp(o->engine, "local") != 0;
	if (!strcmp(o->file, "-") && o->input && !strcmp(o->input, "@-"))
		usage_error("the code and --input cannot both come from stdin");
	const spr_docker_options *d = &o->docker;
	bool docker_opts = d->image || d->wheel_dir || d->docker_context || d->docker_host ||
			   d->ssh_host || d->ssh_user || d->ssh_port || d->ssh_key_path;
	if (docker_opts && !containers)
		usage_error("--image, --wheel-dir and the docker/ssh options need --engine docker "
			    "or podman");
	if (containers && (o->python || o->cgroup_parent || o->venv || o->venv_manager ||
			   o->install_timeout))
		usage_error("--python, --cgroup-parent, --venv, --venv-manager and "
			    "--install-timeout are LocalEngine options");
	bool pip_opts = o->pip.find_links || o->pip.no_index || o->pip.index_url;
	if (!containers && !o->venv && (o->npackages || o->venv_manager || pip_opts))
		usage_error("--package, --venv-manager and the --pip options need --venv DIR (the "
			    "venv to install into) with the local engine");
	if (containers && pip_opts && !o->npackages)
		usage_error("the --pip options need --package (what to install)");
	o->docker.pip = o->pip;
}

/* Reads a whole file (or stdin for "-") into memory, NUL-terminated. */
static char *read_all(const char *path, size_t *len, const char *what)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : dup(0);
	if (fd < 0) {
		fprintf(stderr, "spr-run: %s %s: %s\n", what, path, strerror(errno));
		exit(EXIT_USAGE);
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		fprintf(stderr, "spr-run: %s %s: is a directory\n", what, path);
		exit(EXIT_USAGE);
	}
	size_t cap = 65536, n = 0;
	char *buf = malloc(cap + 1);
	for (;;) {
		if (!buf) {
			fprintf(stderr, "spr-run: out of memory reading %s\n", path);
			exit(EXIT_ENGINE);
		}
		ssize_t r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, "spr-run: %s %s: %s\n", what, path, strerror(errno));
			exit(EXIT_USAGE);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > MAX_CODE_BYTES) {
			fprintf(stderr, "spr-run: %s %s: larger than %zu MiB\n", what, path,
				MAX_CODE_BYTES >> 20);
			exit(EXIT_USAGE);
		}
		if (n == cap) {
			cap *= 2;
			char *bigger = realloc(buf, cap + 1);
			if (!bigger)
				free(buf);
			buf = bigger;
		}
	}
	close(fd);
	buf[n] = '\0';
	*len = n;
	return buf;
}

/* The helper and worker sit next to the binary: build/libexec/spr when run
 * from the build tree, ../libexec/spr when installed. */
static char *find_libexec(void)
{
	if (getenv("SPR_LIBEXEC_DIR"))
		return NULL;
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	static const char *const candidates[] = {"%s/libexec/spr", "%s/../libexec/spr"};
	for (size_t i = 0; i < sizeof(candidates) / sizeof(*candidates); i++) {
		char *dir = NULL, *helper = NULL;
		if (asprintf(&dir, candidates[i], exe) < 0)
			return NULL;
		if (asprintf(&helper, "%s/spr-sandbox", dir) >= 0 && access(helper, X_OK) == 0) {
			free(helper);
			return dir;
		}
		free(helper);
		free(dir);
	}
	return NULL;
}

static int exit_status_of(const spr_result *r)
{
	int code = spr_result_exit_code(r);
	if (spr_result_ok(r))
		return 0;
	/* A shell sees 8 bits; never let a failure look like success. */
	int low = code & 0xff;
	return low ? low : 1;
}

static int report_failure(const spr_error *err, bool json, int status)
{
	if (json) {
		spr_result *r = NULL;
		char *text = NULL;
		if (spr_result_from_error(err, &r, NULL) == 0 &&
		    spr_result_to_json(r, SPR_JSON_PRETTY, &text, NULL) == 0)
			fputs(text, stdout);
		spr_free(text);
		spr_result_free(r);
	}
	fprintf(stderr, "spr-run: %s\n", err->message);
	return status;
}

/* Without --json the code's streams are ours, as they come (SPEC §3
 * "Streaming"): a script that prints, sleeps and prints shows its first
 * line at once, not when the run ends. */
static void write_through(void *failed, int stream, const char *data, size_t len)
{
	int fd = stream == 1 ? STDOUT_FILENO : STDERR_FILENO;
	while (len) {
		ssize_t n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (stream == 1)
				*(bool *)failed = true;
			return;
		}
		data += n;
		len -= (size_t)n;
	}
}

/* After the streams (written as they came): say what happened only when
 * the code's stderr does not already end with the error (a traceback
 * does). */
static void print_outcome(const spr_result *r)
{
	size_t err_len;
	const char *err = spr_result_stderr(r, &err_len);
	const char *error = spr_result_error(r);
	if (!error || !strncmp(error, "SystemExit", 10))
		return;
	size_t elen = strlen(error);
	size_t tail = err_len;
	while (tail && err[tail - 1] == '\n')
		tail--;
	bool shown = tail >= elen && !memcmp(err + tail - elen, error, elen) &&
		     (tail == elen || err[tail - elen - 1] == '\n');
	if (!shown)
		fprintf(stderr, "spr-run: %s\n", error);
}

static void freep(void *p) { free(*(void **)p); }
static void policy_freep(spr_policy **p) { spr_policy_free(*p); }
static void engine_freep(spr_engine **e) { spr_engine_free(*e); }
static void result_freep(spr_result **r) { spr_result_free(*r); }
static void error_freep(spr_error **e) { spr_error_free(*e); }
#define _cleanup_(f) SPR_CLEANUP(f)

/* The policy's preload_imports as the first n --preload-import flags
 * say, as JSON (the names are checked by the policy). */
static char *preload_json(const struct options *o, size_t n)
{
	cJSON *obj = cJSON_CreateObject();
	cJSON *list = obj ? cJSON_AddArrayToObject(obj, "preload_imports") : NULL;
	for (size_t i = 0; list && i < n; i++) {
		cJSON *name = cJSON_CreateString(o->preloads[i]);
		if (!name || !cJSON_AddItemToArray(list, name)) {
			cJSON_Delete(name);
			list = NULL;
		}
	}
	char *text = list ? cJSON_PrintUnformatted(obj) : NULL;
	cJSON_Delete(obj);
	return text;
}

/* The policy file, then the limit flags on top of it. */
static spr_policy *build_policy(const struct options *o)
{
	_cleanup_(error_freep) spr_error *err = NULL;
	spr_policy *policy = NULL;
	int rc = o->policy_file ? spr_policy_load_file(o->policy_file, &policy, &err)
				: spr_policy_new(&policy, &err);
	if (rc < 0) {
		fprintf(stderr, "spr-run: %s\n", err->message);
		return NULL;
	}
	for (size_t i = 0; i < o->noverrides; i++) {
		const struct override *ov = &o->overrides[i];
		if (spr_policy_update_json(policy, ov->json, strlen(ov->json), &err) < 0) {
			fprintf(stderr, "spr-run: %s %s: %s\n%s\n", ov->flag, ov->value,
				without_position(err->message), usage_line);
			spr_policy_free(policy);
			return NULL;
		}
	}
	/* One flag at a time, each with those before it: an error names the
	 * flag that caused it (a bad name, the second of two, the 65th). */
	for (size_t i = 0; i < o->npreloads; i++) {
		char *json = preload_json(o, i + 1);
		rc = json ? spr_policy_update_json(policy, json, strlen(json), &err) : -1;
		free(json);
		if (rc < 0) {
			fprintf(stderr, "spr-run: --preload-import %s: %s\n%s\n", o->preloads[i],
				err ? without_position(err->message) : "out of memory", usage_line);
			spr_policy_free(policy);
			return NULL;
		}
	}
	return policy;
}

int main(int argc, char **argv)
{
	struct options o = {.engine = "local"};
	parse_args(argc, argv, &o);
	_cleanup_(freep) const char **preloads = o.preloads;

	_cleanup_(policy_freep) spr_policy *policy = build_policy(&o);
	if (!policy)
		return EXIT_USAGE;
	size_t code_len = 0, input_len = 0;
	_cleanup_(freep) char *code = read_all(o.file, &code_len, "cannot read");
	_cleanup_(freep) char *input = NULL;
	if (o.input && o.input[0] == '@')
		input = read_all(o.input + 1, &input_len, "--input: cannot read");
	_cleanup_(freep) char *libexec = find_libexec();
	if (libexec && !getenv("SPR_LIBEXEC_DIR"))
		setenv("SPR_LIBEXEC_DIR", libexec, 1); /* the DockerEngine reads it too */
	const char *env_parent = getenv("SPR_CGROUP_PARENT");
	spr_local_options lo = {
		.python = o.python,
		.libexec_dir = libexec,
		.allow_degraded = o.allow_degraded,
		/* one run per process: a sandbox prepared after it would only
		 * be set up to be killed */
		.pool_size = SPR_LOCAL_NO_POOL,
		.cgroup_parent = o.cgroup_parent ? o.cgroup_parent
				 : env_parent && *env_parent ? env_parent
							     : NULL,
		.uid_range = o.uid_range,
		.venv_dir = o.venv,
		.venv_manager = o.venv_manager,
		.packages = o.npackages ? o.packages : NULL,
		.pip = o.pip,
		.install_policy = policy,
		.install_timeout_seconds = o.install_timeout,
		.show_progress = isatty(STDERR_FILENO),
	};
	_cleanup_(error_freep) spr_error *err = NULL;
	_cleanup_(engine_freep) spr_engine *engine = NULL;
	o.docker.show_build_progress = isatty(STDERR_FILENO);
	o.docker.uid_range = o.uid_range; /* both engines: the same range */
	o.docker.allow_degraded = o.allow_degraded;
	if (!strcmp(o.engine, "podman"))
		o.docker.container_cli = "podman";
	int rc = strcmp(o.engine, "local") ? spr_docker_engine_new(&o.docker, &engine, &err)
					   : spr_local_engine_new(&lo, &engine, &err);
	if (rc < 0)
		return report_failure(err, o.json, EXIT_ENGINE);

	_cleanup_(result_freep) spr_result *result = NULL;
	const char *input_json = input ? input : o.input;
	bool stdout_failed = false;
	spr_run_options run_opts = {.on_output = o.json ? NULL : write_through,
				    .user = &stdout_failed};
	fflush(stdout);
	if (spr_run_with(engine, policy, code, code_len, input_json, &run_opts, &result, &err) < 0) {
		bool bad_input = err->layer == SPR_LAYER_REQUEST || err->layer == SPR_LAYER_POLICY;
		fprintf(stderr, "spr-run: %s%s\n",
			bad_input && !strncmp(err->message, "input_data", 10) ? "--input: " : "",
			err->message);
		return bad_input ? EXIT_USAGE : EXIT_ENGINE;
	}
	int status = exit_status_of(result);
	if (o.json) {
		_cleanup_(freep) char *text = NULL;
		if (spr_result_to_json(result, SPR_JSON_PRETTY, &text, &err) < 0)
			return report_failure(err, false, EXIT_ENGINE);
		fputs(text, stdout);
	} else {
		print_outcome(result);
	}
	if (fflush(stdout) != 0 || ferror(stdout) || stdout_failed)
		return status ? status : 1;
	return status;
}
