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

#endif
