/* Managed containers and images (admin.c): the public spr_docker_admin
 * API, plus what the engine reuses at start. */
#ifndef SPR_DOCKER_ADMIN_H
#define SPR_DOCKER_ADMIN_H

#include "docker/client.h"

/* The io.spr.creator label for this process: host:boot-id:pid:start-time. */
SPR_HIDDEN char *spr_docker_creator_label(void);
/* 1: the process that created a container (its io.spr.creator label) is
 * alive; 0: gone; -1: unknown (another machine or boot, or not a label of
 * this format). */
SPR_HIDDEN int spr_docker_creator_alive(const char *label);

/* Removes managed containers that are not running or whose creator is
 * gone; only those of one env image when env_image_id is set. */
SPR_HIDDEN int spr_docker_remove_stale(const struct spr_docker_target *t,
				       const char *env_image_id, int *removed, spr_error **err);

/* Which container `want` names, from `docker ps --all --no-trunc --format
 * SPR_DOCKER_MATCH_FORMAT` output (modified in place): an exact id or name
 * first, else a unique prefix of either; refused unless managed. Returns
 * the full id, or NULL with err->errnum ESRCH / ENOTUNIQ / EPERM. */
#define SPR_DOCKER_MATCH_FORMAT "{{.ID}}\t{{.Names}}\t{{.Label \"io.spr.managed\"}}"
SPR_HIDDEN char *spr_docker_match_container(char *ps_lines, const char *want, spr_error **err);

/* The pure halves of the admin calls, on what the CLI printed (the
 * daemon's bytes, not spr's: tests/fuzz/fuzz_docker_output.c). */

/* The ids a `docker ps|images -q --no-trunc ...` printed: validated,
 * distinct, pointing into *text (free the array only); NULL: no memory. */
SPR_HIDDEN char **spr_docker_id_list(char *text, size_t *n);
/* The listing's view of one inspected container (SPEC §7 fields), NULL
 * without a full id; with_runs: a running one's runs served, asked of t
 * (`docker top`). */
SPR_HIDDEN cJSON *spr_docker_container_entry(const struct spr_docker_target *t, const cJSON *obj,
					     bool with_runs);
/* The entries of the managed containers of a `docker inspect` array
 * (those keep takes, when given). */
SPR_HIDDEN cJSON *spr_docker_container_entries(const struct spr_docker_target *t,
					       const cJSON *raw, bool with_runs,
					       bool (*keep)(const cJSON *entry, const void *arg),
					       const void *arg);
/* What `docker inspect` adds to an entry: labels, limits, hardening. */
SPR_HIDDEN void spr_docker_inspect_details(cJSON *entry, const cJSON *inspect);
/* Lines for spr_docker_match_container from inspected containers. */
SPR_HIDDEN void spr_docker_match_lines(const cJSON *inspected, spr_buf *lines);
/* How many containers (any) use each image: {image id: count}. */
SPR_HIDDEN cJSON *spr_docker_image_users(const cJSON *inspected);
/* The listing's images (spr's tags only), newest first, from `docker
 * inspect --type image` objects and spr_docker_image_users' counts. */
SPR_HIDDEN cJSON *spr_docker_image_entries(const cJSON *raw, const cJSON *users, bool podman);
#endif
