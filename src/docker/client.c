#include "docker/client.h"

#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "json.h"
#include "proc.h"
#include "utf8.h"

#define PING_TIMEOUT_MS 30000

static char *find_in_path(const char *name)
{
	const char *path = getenv("PATH");
	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	_cleanup_free_ char *copy = strdup(path);
	char *save = NULL;
	for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
	     dir = strtok_r(NULL, ":", &save)) {
		char *full = NULL;
		if (asprintf(&full, "%s/%s", *dir ? dir : ".", name) < 0)
			return NULL;
		struct stat st;
		if (stat(full, &st) == 0 && S_ISREG(st.st_mode) && access(full, X_OK) == 0)
			return full;
		free(full);
	}
	return NULL;
}

/* The CLI's environment: the caller's, minus what would point it
 * elsewhere than we were told (DOCKER_HOST / DOCKER_CONTEXT when the
 * options say otherwise). */
static char **cli_env(const struct spr_docker_target *t)
{
	extern char **environ;
	size_t n = 0;
	for (char **e = environ; *e; e++)
		n++;
	char **env = calloc(n + 1, sizeof(*env));
	if (!env)
		return NULL;
	size_t k = 0;
	bool explicit = t->context || t->host;
	for (char **e = environ; *e; e++) {
		if (explicit && (!strncmp(*e, "DOCKER_HOST=", 12) || !strncmp(*e, "DOCKER_CONTEXT=", 15)))
			continue;
		/* With a key, the CLI must find our ssh wrapper first. */
		if (t->ssh_config && !strncmp(*e, "PATH=", 5)) {
			env[k] = spr_docker_ssh_path(t);
			if (!env[k])
				break;
			k++;
			continue;
		}
		env[k] = strdup(*e);
		if (!env[k])
			break;
		k++;
	}
	return env;
}

static int check_remote_options(const spr_docker_options *o, spr_error **err)
{
	bool ssh_any = o->ssh_user || o->ssh_port || o->ssh_key_path;
	if (o->docker_context && (o->docker_host || o->ssh_host || ssh_any))
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL,
				"Use either docker_context or docker_host/ssh settings, not both");
	if (o->ssh_user && !o->ssh_host)
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL, "ssh_user requires ssh_host");
	if (o->ssh_port && !o->ssh_host)
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL, "ssh_port requires ssh_host");
	if (o->ssh_key_path && !o->ssh_host)
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL, "ssh_key_path requires ssh_host");
	if (o->docker_host && o->ssh_host)
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL,
				"Use either docker_host or ssh_host, not both (ssh_host makes the "
				"ssh:// URL itself)");
	if (o->ssh_port < 0 || o->ssh_port > 65535)
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL,
				"ssh_port must be from 1 to 65535 (got %d)", o->ssh_port);
	if (o->docker_host && !strstr(o->docker_host, "://"))
		return spr_fail(err, SPR_LAYER_DOCKER, EINVAL,
				"docker_host must be a URL: unix://PATH, tcp://HOST:PORT or "
				"ssh://[USER@]HOST[:PORT] (got '%s')",
				o->docker_host);
	return 0;
}

/* Whether the CLI called docker is podman's (podman-docker, or a link). */
static bool is_podman(struct spr_docker_target *t)
{
	char *args[] = {(char *)"--version", NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	_cleanup_error_ spr_error *ignored = NULL;
	char **env = t->env;
	extern char **environ;
	t->env = environ; /* (before the target's own environment exists) */
	int rc = spr_docker_cmd(t, args, PING_TIMEOUT_MS, &out, NULL, &ignored);
	t->env = env;
	return rc == 0 && out.data && strstr(out.data, "podman");
}

int spr_docker_target_init(struct spr_docker_target *t, const spr_docker_options *o,
			   spr_error **err)
{
	*t = (struct spr_docker_target){0};
	if (check_remote_options(o, err) < 0)
		return -1;
	const char *cli = o->container_cli ? o->container_cli : "docker";
	if (strcmp(cli, "docker") && strcmp(cli, "podman"))
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"container_cli must be 'docker' or 'podman' (got '%s')", cli);
	t->podman = !strcmp(cli, "podman");
	t->docker = find_in_path(cli);
	if (!t->docker)
		return spr_fail(err, SPR_LAYER_DOCKER, ENOENT,
				t->podman ? SPR_PODMAN_MISSING : SPR_DOCKER_MISSING);
	if (!t->podman)
		t->podman = is_podman(t);
	if (o->docker_context && !(t->context = strdup(o->docker_context)))
		return spr_fail_oom(err);
	if (o->docker_host && !(t->host = strdup(o->docker_host)))
		return spr_fail_oom(err);
	if (o->ssh_host && t->podman) {
		/* Podman's ssh is its own: a URL naming the remote service's
		 * socket (the rootful one, podman.socket's; a rootless service
		 * is reached with docker_host and its full URL) and --identity. */
		int rc = asprintf(&t->host, "ssh://%s%s%s:%d" SPR_PODMAN_REMOTE_SOCKET,
				  o->ssh_user ? o->ssh_user : "", o->ssh_user ? "@" : "",
				  o->ssh_host, o->ssh_port ? o->ssh_port : 22);
		if (rc < 0)
			t->host = NULL; /* asprintf leaves it undefined */
		if (rc < 0 || (o->ssh_key_path && !(t->identity = strdup(o->ssh_key_path))))
			return spr_fail_oom(err);
	} else if (o->ssh_host && spr_docker_ssh_target(t, o, err) < 0) {
		return -1;
	}
	t->env = cli_env(t);
	if (!t->env)
		return spr_fail_oom(err);
	return 0;
}

void spr_docker_target_free(struct spr_docker_target *t)
{
	free(t->docker);
	free(t->context);
	free(t->host);
	free(t->identity);
	if (t->env)
		for (char **e = t->env; *e; e++)
			free(*e);
	free(t->env);
	spr_docker_ssh_free(t);
	*t = (struct spr_docker_target){0};
}

char **spr_docker_argv(const struct spr_docker_target *t, char *const args[])
{
	size_t n = 0;
	while (args[n])
		n++;
	char **argv = calloc(n + 6, sizeof(*argv));
	if (!argv)
		return NULL;
	size_t k = 0;
	argv[k++] = t->docker;
	if (t->context) {
		argv[k++] = (char *)(t->podman ? "--connection" : "--context");
		argv[k++] = t->context;
	} else if (t->host) {
		argv[k++] = (char *)(t->podman ? "--url" : "--host");
		argv[k++] = t->host;
		if (t->identity) {
			argv[k++] = (char *)"--identity";
			argv[k++] = t->identity;
		}
	}
	for (size_t i = 0; i < n; i++)
		argv[k++] = args[i];
	return argv;
}

int spr_docker_cmd(const struct spr_docker_target *t, char *const args[], int64_t timeout_ms,
		   spr_buf *out, spr_buf *errout, spr_error **err)
{
	_cleanup_free_ char **argv = spr_docker_argv(t, args);
	if (!argv)
		return spr_fail_oom(err);
	int status = 0;
	if (spr_command_output(argv, t->env, timeout_ms, out, errout, &status, err) < 0)
		return -1;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

const char *spr_docker_last_line(spr_buf *errout)
{
	if (!errout->data)
		return "(no output)";
	while (errout->len && (errout->data[errout->len - 1] == '\n' ||
			       errout->data[errout->len - 1] == '\r'))
		errout->data[--errout->len] = '\0';
	/* The CLI's own message starts "Error" and may span lines (podman
	 * quotes a mount program's output, then ": exit status 1" alone on
	 * the last): from the last such line to the end, on one line. */
	char *error = NULL;
	for (char *line = errout->data; line;) {
		if (!strncasecmp(line, "error", 5))
			error = line;
		char *nl = strchr(line, '\n');
		line = nl ? nl + 1 : NULL;
	}
	if (error && errout->data + errout->len - error <= 4096) {
		for (char *c = error; *c; c++)
			if (*c == '\n' || *c == '\r')
				*c = ' ';
		return error;
	}
	char *nl = strrchr(errout->data, '\n');
	return nl ? nl + 1 : errout->data;
}

/* text's first line into buf, cut to fit on a character boundary (it goes
 * into JSON: a cut must not leave half a character). */
static void copy_line(char *buf, size_t size, const char *text)
{
	size_t n = spr_utf8_cut(text, strcspn(text, "\n"), size - 1);
	memcpy(buf, text, n);
	buf[n] = '\0';
}

cJSON *spr_docker_parse_json(const spr_buf *out)
{
	if (!out->data || spr_json_validate(out->data, out->len, 0, "docker", NULL) < 0)
		return NULL;
	return cJSON_ParseWithLength(out->data, out->len);
}

/* What podman says of itself: rootless or not, the host's cgroup version
 * and the controllers it may use, its storage driver. */
static int podman_info(struct spr_docker_target *t, spr_error **err)
{
	char *args[] = {(char *)"info", (char *)"--format", (char *)"json", NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *run_err = NULL;
	int rc = spr_docker_cmd(t, args, PING_TIMEOUT_MS, &out, &errout, &run_err);
	_cleanup_cjson_ cJSON *info = rc == 0 ? spr_docker_parse_json(&out) : NULL;
	if (spr_docker_podman_info(t, info) < 0)
		return spr_fail(err, SPR_LAYER_DOCKER, EHOSTUNREACH, SPR_PODMAN_NO_SERVICE " (%s)",
				rc < 0 ? run_err->message : spr_docker_last_line(&errout));
	return 0;
}

int spr_docker_podman_info(struct spr_docker_target *t, const cJSON *info)
{
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(info, "host");
	if (!host)
		return -1;
	const cJSON *security = cJSON_GetObjectItemCaseSensitive(host, "security");
	t->rootless = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(security, "rootless"));
	const cJSON *version = cJSON_GetObjectItemCaseSensitive(host, "cgroupVersion");
	t->cgroup_version = cJSON_IsString(version) && !strcmp(version->valuestring, "v2") ? 2 : 1;
	/* Rootless podman on cgroup v1 ignores every limit; on v2 it has
	 * what the user's cgroup was delegated. */
	bool memory = false, pids = false, cpu = false;
	const cJSON *c;
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(host, "cgroupControllers"))
	{
		if (!cJSON_IsString(c))
			continue;
		memory = memory || !strcmp(c->valuestring, "memory");
		pids = pids || !strcmp(c->valuestring, "pids");
		cpu = cpu || !strcmp(c->valuestring, "cpu");
	}
	/* Rootful podman has every controller of the host (v1 hierarchies). */
	bool v2 = t->cgroup_version == 2;
	t->enforces.memory = !t->rootless || (v2 && memory);
	t->enforces.pids = !t->rootless || (v2 && pids);
	t->enforces.cpu = !t->rootless || (v2 && cpu);
	t->limits = t->enforces.memory && t->enforces.pids && t->enforces.cpu;
	const cJSON *m;
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(
				      cJSON_GetObjectItemCaseSensitive(host, "idMappings"), "uidmap"))
	{
		const cJSON *in = cJSON_GetObjectItemCaseSensitive(m, "container_id");
		const cJSON *host_id = cJSON_GetObjectItemCaseSensitive(m, "host_id");
		const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "size");
		if (t->nuidmap == sizeof(t->uidmap) / sizeof(*t->uidmap) || !cJSON_IsNumber(in) ||
		    !cJSON_IsNumber(host_id) || !cJSON_IsNumber(n) || in->valuedouble < 0 ||
		    host_id->valuedouble < 0 || n->valuedouble < 1 ||
		    n->valuedouble > 4294967295.0 || /* a count of 2^32 is no uint32 */
		    in->valuedouble + n->valuedouble > 4294967296.0 ||
		    host_id->valuedouble + n->valuedouble > 4294967296.0)
			continue;
		t->uidmap[t->nuidmap++] = (struct spr_id_map){
			(uint32_t)in->valuedouble, (uint32_t)host_id->valuedouble,
			(uint32_t)n->valuedouble};
	}
	const cJSON *store = cJSON_GetObjectItemCaseSensitive(info, "store");
	const cJSON *driver = cJSON_GetObjectItemCaseSensitive(store, "graphDriverName");
	copy_line(t->storage, sizeof(t->storage),
		  cJSON_IsString(driver) ? driver->valuestring : "unknown");
	return 0;
}

void spr_docker_set_version(struct spr_docker_target *t, const spr_buf *out)
{
	copy_line(t->version, sizeof(t->version), out->data ? out->data : "");
}

int spr_docker_ping(struct spr_docker_target *t, spr_error **err)
{
	/* A local podman has no server (the CLI is the runtime). */
	bool local_podman = t->podman && !t->context && !t->host;
	char *args[] = {(char *)"version", (char *)"--format",
			(char *)(local_podman ? "{{.Client.Version}}" : "{{.Server.Version}}"), NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *run_err = NULL;
	int rc = spr_docker_cmd(t, args, PING_TIMEOUT_MS, &out, &errout, &run_err);
	if (rc == 0 && out.len) {
		if (t->described)
			return 0;
		spr_docker_set_version(t, &out);
		if (t->podman && podman_info(t, err) < 0)
			return -1;
		if (!t->podman)
			t->enforces.memory = t->enforces.pids = t->enforces.cpu = t->limits = true;
		t->described = true;
		return 0;
	}
	const char *why = rc < 0 ? run_err->message : spr_docker_last_line(&errout);
	/* A remote podman service: which URL was tried (ssh_host makes one). */
	if (t->podman && t->host)
		return spr_fail(err, SPR_LAYER_DOCKER, EHOSTUNREACH, "%s (%s; the service at %s)",
				SPR_PODMAN_NO_SERVICE, why, t->host);
	return spr_fail(err, SPR_LAYER_DOCKER, EHOSTUNREACH, "%s (%s)",
			t->podman ? SPR_PODMAN_NO_SERVICE : SPR_DOCKER_NO_DAEMON, why);
}
