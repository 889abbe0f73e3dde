/* Running the docker CLI: finding it, pointing it at the right daemon
 * (context, host, SSH), and turning its failures into the SPEC §5 errors. */
#ifndef SPR_DOCKER_CLI_H
#define SPR_DOCKER_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"
#include "json.h"
#include "spr.h"

#define SPR_DOCKER_MISSING "Docker CLI was not found. Install Docker and ensure it is on PATH."
#define SPR_DOCKER_NO_DAEMON                                                                 \
	"Docker is installed but the daemon is not running or not accessible."
#define SPR_PODMAN_MISSING "Podman CLI was not found. Install podman and ensure it is on PATH."
#define SPR_PODMAN_NO_SERVICE "Podman is installed but cannot run containers here."
/* The remote podman service ssh_host reaches (podman.socket, rootful). */
#define SPR_PODMAN_REMOTE_SOCKET "/run/podman/podman.sock"

struct spr_docker_target {
	char *docker;	  /* absolute path of the CLI */
	char *context;	  /* --context NAME (podman: --connection), or NULL */
	char *host;	  /* --host URL (DOCKER_HOST; podman: --url), or NULL */
	char *identity;	  /* podman's own ssh: --identity KEY, or NULL */
	char **env;	  /* environment for the CLI (NULL-terminated) */
	char *ssh_config; /* a private ssh config when a key/port/user is given */
	/* Podman (asked for, or what `docker` turned out to be), as its info
	 * describes itself once the engine pinged it. */
	bool podman;
	bool rootless;	   /* podman without root: the user's own namespaces */
	int cgroup_version; /* 1 or 2 (podman; 0: not known) */
	bool limits;	   /* memory, pids and CPU limits are enforced */
	struct {
		bool memory, pids, cpu;
	} enforces;	   /* each limit on its own */
	char storage[32];  /* podman's storage driver */
	char version[32];  /* the CLI's (local podman) or the daemon's version */
	/* Rootless podman: container uid inside -> host uid outside, count ids
	 * (podman info's host.idMappings.uidmap). */
	struct spr_id_map {
		uint32_t inside, outside, count;
	} uidmap[8];
	size_t nuidmap;
	/* The first ping described the runtime; later pings (after a failed
	 * start) only check it answers: what the engine decided from the
	 * description (limits, degraded) never changes under a live engine. */
	bool described;
};

/* "docker" or "podman", as the CLI should be named in messages. */
static inline const char *spr_docker_cli_name(const struct spr_docker_target *t)
{
	return t->podman ? "podman" : "docker";
}

/* Validates the remote options (SPEC §5 rules and messages) and finds the
 * CLI. */
SPR_HIDDEN int spr_docker_target_init(struct spr_docker_target *t, const spr_docker_options *o,
				      spr_error **err);
SPR_HIDDEN void spr_docker_target_free(struct spr_docker_target *t);

/* argv for `docker [target options] ARGS...` (NULL-terminated, strings
 * borrowed from t and args; free the array only). */
SPR_HIDDEN char **spr_docker_argv(const struct spr_docker_target *t, char *const args[]);

/* Runs `docker ARGS...` to completion (stdout/stderr captured). Returns
 * the exit status (>= 0), or -1 when it could not run / timed out. */
SPR_HIDDEN int spr_docker_cmd(const struct spr_docker_target *t, char *const args[],
			      int64_t timeout_ms, spr_buf *out, spr_buf *errout, spr_error **err);

/* The daemon answers: `docker version` (podman: and what `podman info`
 * says of its mode, cgroups, limits and storage, into t). */
SPR_HIDDEN int spr_docker_ping(struct spr_docker_target *t, spr_error **err);

/* remote.c: the ssh:// URL (and key wrapper) from the ssh_* options. */
SPR_HIDDEN int spr_docker_ssh_target(struct spr_docker_target *t, const spr_docker_options *o,
				     spr_error **err);
SPR_HIDDEN void spr_docker_ssh_free(struct spr_docker_target *t);
SPR_HIDDEN char *spr_docker_ssh_path(const struct spr_docker_target *t);

/* What a CLI said went wrong, for error messages: from the last line
 * starting "Error" to the end, on one line (its message may span lines),
 * else the last non-empty line. */
SPR_HIDDEN const char *spr_docker_last_line(spr_buf *errout);

/* A JSON document the CLI printed (`docker inspect`, `podman info`), or
 * NULL: strict JSON only (UTF-8, no duplicate keys, no NUL), so nothing
 * the daemon says can make spr's own JSON output invalid. */
SPR_HIDDEN cJSON *spr_docker_parse_json(const spr_buf *out);
/* What `podman info --format json` says of the runtime, into t; -1: not
 * an info document (no host part). */
SPR_HIDDEN int spr_docker_podman_info(struct spr_docker_target *t, const cJSON *info);
/* The version line `docker version --format ...` printed, into t. */
SPR_HIDDEN void spr_docker_set_version(struct spr_docker_target *t, const spr_buf *out);

#endif
