/* How a plan becomes a DockerEngine container: the hardening flags and
 * limits of `docker run`, the container's seccomp profile (written from
 * the same rule table as the runs' own BPF filter, src/policy/seccomp.c),
 * and the sandbox plan its agent sets each run up with. */
#ifndef SPR_DOCKER_PROFILE_H
#define SPR_DOCKER_PROFILE_H

#include "argv.h"
#include "docker/client.h"
#include "error.h"
#include "policy/compile.h"

/* What a container holds besides a run: its agent, the agent's fork
 * server and the run's monitor, and the next run's sandbox (monitor,
 * init, worker), prepared meanwhile. The container's limits are the
 * policy's plus these. */
#define SPR_CONTAINER_PROCESSES 6
#define SPR_CONTAINER_MEMORY_HEADROOM ((uint64_t)32 << 20)
/* Where an image's pinned packages live (image.c), shown to every run. */
#define SPR_DOCKER_SITE_DIR "/opt/spr/site"

/* The container profile's JSON text (static, built once). */
SPR_HIDDEN const char *spr_docker_seccomp_profile(spr_error **err);

/* Appends the `docker run` flags for a container of plan (SPEC §5): no
 * network (unless the policy's), read-only root, no capabilities, no new
 * privileges, the profile at seccomp_file, /proc unmasked, the
 * container's own uid, the pids, memory (no swap) and CPU limits with
 * what the agent needs, private IPC, the agent's /tmp, no logging. */
SPR_HIDDEN void spr_docker_run_flags(struct spr_argv *args, const spr_plan *plan,
				     const char *seccomp_file, uint32_t uid,
				     const struct spr_docker_target *target);

/* The sandbox plan a container's agent sets each run up with: the
 * interpreter's flags, the environment, the rlimits, the runs' filters,
 * the writable places and what else to show (its layout request). */
SPR_HIDDEN int spr_docker_sandbox_plan(const spr_plan *plan, bool limits,
				       spr_buf *out, spr_error **err);

#endif
