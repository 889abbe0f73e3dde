/* How a plan becomes a DockerEngine container, as src/local/layout.c is
 * how it becomes a LocalEngine sandbox: the hardening flags, the limits,
 * the writable places and the environment of `docker run`, and the
 * seccomp profile, written from the same rule table as the LocalEngine's
 * BPF filter (src/policy/seccomp.c). */
#ifndef SPR_DOCKER_PROFILE_H
#define SPR_DOCKER_PROFILE_H

#include "argv.h"
#include "error.h"
#include "policy/compile.h"

/* The uid:gid the code runs as in a container. */
#define SPR_DOCKER_USER "1000:1000"

/* The profile JSON text (static, built once). */
SPR_HIDDEN const char *spr_docker_seccomp_profile(spr_error **err);

/* Appends the `docker run` flags that render plan (SPEC §5): no network
 * (unless the policy's), read-only root, no capabilities, no new
 * privileges, the seccomp profile at seccomp_file, a non-root user, the
 * pids, memory (no swap) and CPU limits, private IPC, the scratch tmpfs
 * mounts, no logging, the working directory and the environment. */
SPR_HIDDEN void spr_docker_run_flags(struct spr_argv *args, const spr_plan *plan,
				     const char *seccomp_file);

#endif
