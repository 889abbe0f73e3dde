/* Executes the layout's mount list (computed by src/local/layout.c)
 * inside fresh user + mount namespaces; on return "/" is the sandbox root
 * (read-only tmpfs) and the host tree is gone. Runs in spr-sandbox's init. */
#ifndef SPR_MOUNTS_H
#define SPR_MOUNTS_H

#include "error.h"
#include "protocol/plan.h"

#include <sys/mount.h>

/* The flags a bind of this kind gets (MOUNT_ATTR_*): read-only binds,
 * device nodes (noexec) and writable directories (the one place a build
 * may write: an install's venv). All nosuid. */
static inline uint64_t spr_bind_attrs(int kind)
{
	switch (kind) {
	case SPR_MOUNT_BIND_DEV:
		return MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC;
	case SPR_MOUNT_BIND_RW:
		return MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
	default:
		return MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
	}
}

/* bind_fds[i]: mount i's source as a detached tree the monitor opened, or
 * -1 (bound by path). Each used descriptor is closed. */
SPR_HIDDEN int spr_mounts_setup(const struct spr_layout *layout, int *bind_fds,
				spr_error **err);

#endif
