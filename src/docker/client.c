#include "docker/client.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include "proc.h"

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

int spr_docker_target_init(struct spr_docker_target *t, const spr_docker_options *o,
			   spr_error **err)
{
	*t = (struct spr_docker_target){0};
	if (check_remote_options(o, err) < 0)
		return -1;
	t->docker = find_in_path("docker");
	if (!t->docker)
		return spr_fail(err, SPR_LAYER_DOCKER, ENOENT, SPR_DOCKER_MISSING);
	if (o->docker_context && !(t->context = strdup(o->docker_context)))
		return spr_fail_oom(err);
	if (o->docker_host && !(t->host = strdup(o->docker_host)))
		return spr_fail_oom(err);
	if (o->ssh_host && spr_docker_ssh_target(t, o, err) < 0)
		return -1;
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
	char **argv = calloc(n + 4, sizeof(*argv));
	if (!argv)
		return NULL;
	size_t k = 0;
	argv[k++] = t->docker;
	if (t->context) {
		argv[k++] = (char *)"--context";
		argv[k++] = t->context;
	} else if (t->host) {
		argv[k++] = (char *)"--host";
		argv[k++] = t->host;
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
	char *nl = strrchr(errout->data, '\n');
	return nl ? nl + 1 : errout->data;
}

int spr_docker_ping(const struct spr_docker_target *t, spr_error **err)
{
	char *args[] = {(char *)"version", (char *)"--format", (char *)"{{.Server.Version}}", NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *run_err = NULL;
	int rc = spr_docker_cmd(t, args, PING_TIMEOUT_MS, &out, &errout, &run_err);
	if (rc == 0 && out.len)
		return 0;
	const char *why = rc < 0 ? run_err->message : spr_docker_last_line(&errout);
	return spr_fail(err, SPR_LAYER_DOCKER, EHOSTUNREACH, SPR_DOCKER_NO_DAEMON " (%s)", why);
}
