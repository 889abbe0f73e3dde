/* The small kernel steps of a sandboxed run, each in its own file:
 * userns.c (id maps, diagnosing a refused user namespace), net.c (the
 * loopback interface), caps.c (capabilities, no_new_privs), landlock.c.
 * They run in spr-sandbox only, never in the library's caller. */
#ifndef SPR_STEPS_H
#define SPR_STEPS_H

#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "protocol/plan.h"

/* userns.c */
struct spr_idmap {
	uid_t uid, outside_uid;
	gid_t gid, outside_gid;
};
SPR_HIDDEN int spr_userns_write_maps(pid_t pid, const struct spr_idmap *map, spr_error **err);
/* Before the clone, in the monitor: root's supplementary groups must not
 * follow the code into the namespace (see userns.c). */
SPR_HIDDEN int spr_userns_drop_groups(spr_error **err);
/* Explains why creating a user namespace failed with errnum, naming the
 * sysctl or setting to change. */
SPR_HIDDEN int spr_userns_explain(int errnum, spr_error **err);

/* net.c: brings "lo" up in the current (fresh) network namespace. */
SPR_HIDDEN int spr_net_loopback_up(spr_error **err);

/* caps.c: every capability gone (effective, permitted, inheritable,
 * bounding, ambient). */
SPR_HIDDEN int spr_caps_drop_all(spr_error **err);
/* As root without a user namespace: become uid/gid with no capabilities
 * and no supplementary groups. */
SPR_HIDDEN int spr_caps_become(uid_t uid, gid_t gid, spr_error **err);
SPR_HIDDEN int spr_no_new_privs(spr_error **err);

/* landlock.c: read+execute under `read`, read+write under `write`
 * (missing paths are skipped); with deny_tcp, no TCP bind or connect
 * where the kernel can refuse them (ABI 4; *tcp_denied says whether it
 * did). Returns the ABI version applied, 0 when the kernel has no
 * Landlock. */
/* read: read and execute; data (may be NULL): read only; write: read and
 * write, never execute. */
SPR_HIDDEN int spr_landlock_apply(const struct spr_paths *read, const struct spr_paths *data,
				  const struct spr_paths *write, bool deny_tcp, bool *tcp_denied,
				  spr_error **err);

#endif
