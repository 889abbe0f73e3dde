/* The DockerEngine's seccomp profile: the same rule table as the
 * LocalEngine's BPF filter (src/policy/seccomp.c), written as Docker's
 * seccomp JSON. */
#ifndef SPR_DOCKER_PROFILE_H
#define SPR_DOCKER_PROFILE_H

#include "error.h"

/* The profile JSON text (static, built once). */
SPR_HIDDEN const char *spr_docker_seccomp_profile(spr_error **err);

#endif
