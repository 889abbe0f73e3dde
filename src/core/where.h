/* Where this process runs, for messages that name the real fix: inside a
 * container (which runtime), or on a host. Both processes use it (the
 * library's cgroup and doctor messages, spr-sandbox's namespace ones). */
#ifndef SPR_WHERE_H
#define SPR_WHERE_H

#include "util.h"

/* "docker", "podman", "kubernetes", "a container" (some other runtime),
 * or NULL on a host. Looked up once, from what runtimes leave behind:
 * pid 1's cgroup, /.dockerenv on an overlay root, /run/.containerenv,
 * Kubernetes' service account or environment, `container=` in pid 1's
 * environment. */
SPR_HIDDEN const char *spr_container_kind(void);

#endif
