/* A degraded run's private directory (no mount namespace: it lives in the
 * host's TMPDIR). Its name says which process made it, so what a killed
 * monitor could not remove is found and removed later (engine start,
 * `spr cleanup`) without touching a live run's:
 *   <parent>/spr-run-<pid namespace inode>.<pid>.<start time>-XXXXXX/
 *                                     owned by the monitor's euid, 0711
 *       work/                         the run's cwd, HOME and TMPDIR
 *                                     (the run's uid when it has one)
 * The outer directory is the monitor's own, so no other user can plant
 * one the sweep would take for a run's. */
#ifndef SPR_RUNDIR_H
#define SPR_RUNDIR_H

#include <limits.h>

#include "error.h"
#include "util.h"

struct spr_rundir {
	char outer[PATH_MAX];
	char work[PATH_MAX];
};

/* TMPDIR when absolute, else /tmp: where degraded runs put theirs. */
SPR_HIDDEN const char *spr_rundir_parent(void);
/* Makes both directories for the calling process. */
SPR_HIDDEN int spr_rundir_create(const char *parent, struct spr_rundir *d, spr_error **err);
/* Removes both and everything in them (the run's processes are gone). */
SPR_HIDDEN void spr_rundir_remove(struct spr_rundir *d);
/* Removes the run directories under parent whose maker is gone (pid not
 * alive in this pid namespace, or alive with another start time) and that
 * belong to the caller's euid. Returns how many went. */
SPR_HIDDEN int spr_rundir_sweep(const char *parent);

#endif
