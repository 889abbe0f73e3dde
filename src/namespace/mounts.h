/* Executes the layout's mount list (computed by src/local/layout.c)
 * inside fresh user + mount namespaces; on return "/" is the sandbox root
 * (read-only tmpfs) and the host tree is gone. Runs in spr-sandbox's init. */
#ifndef SPR_MOUNTS_H
#define SPR_MOUNTS_H

#include "error.h"
#include "protocol/plan.h"

/* bind_fds[i]: mount i's source as a detached tree the monitor opened, or
 * -1 (bound by path). Each used descriptor is closed. */
SPR_HIDDEN int spr_mounts_setup(const struct spr_layout *layout, int *bind_fds,
				spr_error **err);

#endif
