/* Remote daemons over SSH (SPEC §5): ssh_host/ssh_user/ssh_port compose an
 * ssh:// URL for the docker CLI's own SSH transport. The CLI has no option
 * for a key file, so when one is given the CLI sees a private `ssh` first
 * on its PATH that adds `-i KEY -o IdentitiesOnly=yes -o BatchMode=yes`, then runs the real
 * ssh. Nothing of the user's ~/.ssh is changed. */
#include <fcntl.h>
#include <sys/stat.h>

#include "docker/client.h"

static char *real_ssh(void)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = strdup(path && *path ? path : "/usr/bin:/bin");
	char *save = NULL;
	for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
	     dir = strtok_r(NULL, ":", &save)) {
		char *full = NULL;
		if (asprintf(&full, "%s/ssh", dir) >= 0 && access(full, X_OK) == 0)
			return full;
		free(full);
	}
	return NULL;
}

/* Single-quotes a string for /bin/sh. */
static void shell_quote(spr_buf *b, const char *s)
{
	spr_buf_putc(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			spr_buf_puts(b, "'\\''");
		else
			spr_buf_putc(b, *s);
	}
	spr_buf_putc(b, '\'');
}

static int write_wrapper(struct spr_docker_target *t, const char *key, spr_error **err)
{
	if (access(key, R_OK) < 0)
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "ssh_key_path %s is not readable", key);
	_cleanup_free_ char *ssh = real_ssh();
	if (!ssh)
		return spr_fail(err, SPR_LAYER_DOCKER, ENOENT,
				"ssh was not found on PATH (install openssh-client); the docker CLI "
				"needs it for ssh:// daemons");
	char dir[] = "/tmp/spr-ssh-XXXXXX";
	if (!mkdtemp(dir))
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "creating a directory for the ssh wrapper");
	t->ssh_config = strdup(dir);
	if (!t->ssh_config)
		return spr_fail_oom(err);
	_cleanup_buf_ spr_buf script = SPR_BUF_INIT;
	spr_buf_puts(&script, "#!/bin/sh\n# spr: the docker CLI's ssh, with the configured key\nexec ");
	shell_quote(&script, ssh);
	spr_buf_puts(&script, " -i ");
	shell_quote(&script, key);
	/* BatchMode: a key that does not work fails at once, never a prompt
	 * for a password or a passphrase behind the caller's back. */
	spr_buf_puts(&script, " -o IdentitiesOnly=yes -o BatchMode=yes \"$@\"\n");
	char path[64];
	snprintf(path, sizeof(path), "%s/ssh", dir);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
	if (fd < 0 || write(fd, script.data, script.len) != (ssize_t)script.len)
		return spr_fail_errno(err, SPR_LAYER_DOCKER, "writing %s", path);
	return 0;
}

int spr_docker_ssh_target(struct spr_docker_target *t, const spr_docker_options *o,
			  spr_error **err)
{
	_cleanup_buf_ spr_buf url = SPR_BUF_INIT;
	spr_buf_puts(&url, "ssh://");
	if (o->ssh_user)
		spr_buf_printf(&url, "%s@", o->ssh_user);
	/* An IPv6 literal needs brackets in a URL. */
	if (strchr(o->ssh_host, ':') && o->ssh_host[0] != '[')
		spr_buf_printf(&url, "[%s]", o->ssh_host);
	else
		spr_buf_puts(&url, o->ssh_host);
	if (o->ssh_port)
		spr_buf_printf(&url, ":%d", o->ssh_port);
	t->host = spr_buf_steal(&url, NULL);
	if (!t->host)
		return spr_fail_oom(err);
	return o->ssh_key_path ? write_wrapper(t, o->ssh_key_path, err) : 0;
}

void spr_docker_ssh_free(struct spr_docker_target *t)
{
	if (!t->ssh_config)
		return;
	char path[64];
	snprintf(path, sizeof(path), "%s/ssh", t->ssh_config);
	unlink(path);
	rmdir(t->ssh_config);
	free(t->ssh_config);
	t->ssh_config = NULL;
}

/* PATH for the CLI with the wrapper first. */
char *spr_docker_ssh_path(const struct spr_docker_target *t)
{
	const char *path = getenv("PATH");
	char *joined = NULL;
	if (asprintf(&joined, "PATH=%s:%s", t->ssh_config,
		     path && *path ? path : "/usr/local/bin:/usr/bin:/bin") < 0)
		return NULL;
	return joined;
}
