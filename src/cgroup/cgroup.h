/* cgroups for LocalEngine runs: v2, v1 and hybrid hosts.
 *
 * Detection (detect.c) runs in the library once per engine: for each
 * controller spr needs (memory, pids, cpu; cpuacct for v1 CPU usage) it
 * finds the hierarchy the caller's process is in and the directory under
 * which runs go — the caller's own cgroup (never above it, so limits set
 * on the caller still hold), or `cgroup_parent` below it. Runs live in
 * <base>/spr/run-<monitor pid>-<monitor start time>.
 *
 * The per-run part (run.c) executes in spr-sandbox's monitor: create the
 * run cgroup, set the limits, place init (CLONE_INTO_CGROUP on v2, the
 * cgroup.procs files on v1), watch for OOM kills and pids-limit hits,
 * read the figures, kill, remove.
 */
#ifndef SPR_CGROUP_H
#define SPR_CGROUP_H

#include <cJSON.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "protocol/plan.h"

enum spr_cg_version { SPR_CG_NONE = 0, SPR_CG_V1 = 1, SPR_CG_V2 = 2 };

enum spr_cg_controller { SPR_CG_MEMORY, SPR_CG_PIDS, SPR_CG_CPU, SPR_CG_CPUACCT, SPR_CG_NCTRL };
_Static_assert(SPR_CG_NCTRL == ARRAY_SIZE(((struct spr_cgroup_plan *)0)->base),
	       "a plan names one base per controller");

struct spr_cg_controller_info {
	const char *name;
	enum spr_cg_version version; /* where this controller is, NONE if nowhere */
	char *base;		     /* directory runs go under (…/spr is created in it) */
	bool usable;		     /* base exists and we may create cgroups there */
	bool writable;		     /* base (or base/spr) is writable for us */
	char *problem;		     /* why not usable, with the fix */
};

struct spr_cg_host {
	enum spr_cg_version version; /* the version memory is on: what runs use */
	struct spr_cg_controller_info ctl[SPR_CG_NCTRL];
	char *v2_mount;		     /* cgroup2 mount point, if any */
	bool delegated;		     /* the base belongs to us, not root (rootless) */
	char *v2_own;		     /* v2: the caller's own cgroup (spr-caller's parent) */
	char *v2_caller_leaf;	     /* v2: where prepare moves the caller, if it must */
};

/* v2: the leaf a caller alone in its cgroup moves into, so that its own
 * cgroup may hand controllers to run cgroups (no internal processes). */
#define SPR_CG_CALLER_LEAF "spr-caller"

/* Finds the hierarchies and the bases. `parent` is the cgroup_parent option
 * (relative to the caller's own cgroup, may be NULL). Never fails for a
 * host without usable cgroups: that is reported per controller. */
SPR_HIDDEN int spr_cgroup_detect(const char *parent, struct spr_cg_host *host, spr_error **err);
SPR_HIDDEN void spr_cgroup_host_free(struct spr_cg_host *host);
/* Makes the bases ready for run cgroups, once per engine, in the caller:
 * on v2 moves the caller into <own>/spr-caller when detection said it
 * must, and enables memory, pids and cpu from its own cgroup down to the
 * base. Detection changes nothing; this does. On failure the controllers
 * are marked unusable with the cause (runs then fail with 125, or run
 * degraded). */
SPR_HIDDEN int spr_cgroup_prepare(struct spr_cg_host *host);
/* True when memory, pids and cpu can all be limited. */
SPR_HIDDEN bool spr_cgroup_usable(const struct spr_cg_host *host);
/* One sentence naming what is missing and the fix (for exit-125 errors). */
SPR_HIDDEN char *spr_cgroup_problem(const struct spr_cg_host *host);
/* {"version":..,"memory":{"hierarchy":..,"base":..,"usable":..,"problem":..},..}
 * for `spr doctor`. */
SPR_HIDDEN cJSON *spr_cgroup_describe(const struct spr_cg_host *host);
/* The sandbox plan's cgroup part for a run. */
SPR_HIDDEN void spr_cgroup_plan(const struct spr_cg_host *host, uint64_t memory_bytes,
				int64_t pids_max, double cpu_cores, double cpu_seconds,
				struct spr_cgroup_plan *out);
/* Removes the spr/ directories runs go in, when no run is in them (the
 * engine keeps them between runs). */
SPR_HIDDEN void spr_cgroup_release(const struct spr_cg_host *host);
/* Removes run cgroups whose monitor is gone (a killed caller), then
 * empty spr/ directories; returns how many runs were removed. */
SPR_HIDDEN int spr_cgroup_cleanup_stale(const struct spr_cg_host *host, spr_error **err);

/* ---- shared by both sides (common.c) ------------------------------------ */

/* <dir>/<file> into path; false (errno ENAMETOOLONG) rather than a
 * cut-off path. */
SPR_HIDDEN bool spr_cg_path(char path[PATH_MAX], const char *dir, const char *file);
/* Writes value to <dir>/<file>; -1 with errno. */
SPR_HIDDEN int spr_cg_write_file(const char *dir, const char *file, const char *value);
/* v2: whether dir's cgroup.subtree_control lists memory, pids and cpu. */
SPR_HIDDEN bool spr_cg_v2_has_controllers(const char *dir);
/* v2: a cgroup's children get only the controllers listed in its
 * subtree_control; enables memory, pids and cpu there unless listed. */
SPR_HIDDEN int spr_cg_v2_enable_controllers(const char *dir, spr_error **err);
/* Kills every process in one cgroup directory (cgroup.kill where the
 * kernel has it, else each pid in cgroup.procs). */
SPR_HIDDEN void spr_cg_kill_dir(const char *dir);

/* ---- one run (in spr-sandbox's monitor) ---------------------------------------- */

struct spr_cg_run {
	enum spr_cg_version version;
	char *dir[SPR_CG_NCTRL];   /* v1: per controller; v2: dir[0] is the run */
	int v2_fd;		    /* the run's directory (CLONE_INTO_CGROUP) */
	int oom_fd;		    /* readable when the OOM count may have changed */
	int pids_fd;		    /* pollable pids.events (POLLPRI) */
	int events_fd;		    /* v2 cgroup.events, for removal */
	/* v1: each controller's `tasks`, opened by the monitor, for the run's
	 * first process to move itself in (spr_cg_run_enter). */
	int tasks_fd[SPR_CG_NCTRL];
	double cpu_seconds;	    /* 0: no CPU-time limit */
	double cpu_cores;
};

struct spr_cg_stats {
	bool oom_killed;
	bool pids_limit_hit;
	int64_t memory_peak_kb; /* -1 unknown */
	int64_t cpu_usage_us;	/* -1 unknown */
};

#define SPR_CG_RUN_INIT                                                                   \
	{                                                                                  \
		.v2_fd = -1, .oom_fd = -1, .pids_fd = -1, .events_fd = -1,                  \
		.tasks_fd = {[0 ... SPR_CG_NCTRL - 1] = -1},                              \
	}


/* Creates the run cgroup from the plan's part and sets the limits. */
SPR_HIDDEN int spr_cg_run_create(struct spr_cg_run *run, const struct spr_cgroup_plan *plan,
				 spr_error **err);
/* Moves pid in (v2 without CLONE_INTO_CGROUP). */
SPR_HIDDEN int spr_cg_run_attach(struct spr_cg_run *run, pid_t pid, spr_error **err);
/* v1: the calling process (single-threaded: the run's init, or the
 * degraded worker) moves itself in by writing "0" to the `tasks` files
 * the monitor opened, and closes them. Moving another process (pid into
 * cgroup.procs) write-locks a global rwsem and waits out an RCU grace
 * period: 5-20 ms per run when runs are not back to back; moving the
 * current thread skips that lock (~0.05 ms). The files' opener (root, or
 * the delegated user) is what the kernel checks, so it works from inside
 * the new user namespace. Returns 1 when moved, 0 when there is nothing
 * to do (v2, no cgroup), -1 with errno. */
SPR_HIDDEN int spr_cg_run_enter(struct spr_cg_run *run);
/* Closes the `tasks` files (the monitor, once init entered). */
SPR_HIDDEN void spr_cg_run_close_tasks(struct spr_cg_run *run);
/* True when the run's first process must enter by itself (v1). */
SPR_HIDDEN bool spr_cg_run_self_enter(const struct spr_cg_run *run);
SPR_HIDDEN void spr_cg_run_stats(const struct spr_cg_run *run, struct spr_cg_stats *stats);
/* True once the run hit a limit the monitor must end it for (OOM kill,
 * pids limit). Cheap: reads two small files. */
SPR_HIDDEN bool spr_cg_run_limit_hit(const struct spr_cg_run *run, struct spr_cg_stats *stats);
/* Kills every process in the run cgroup (v2 cgroup.kill; v1 cgroup.procs). */
SPR_HIDDEN void spr_cg_run_kill(const struct spr_cg_run *run);
/* Waits (poll, bounded) until the cgroup is empty and removes it. */
SPR_HIDDEN int spr_cg_run_remove(struct spr_cg_run *run, spr_error **err);
SPR_HIDDEN void spr_cg_run_free(struct spr_cg_run *run);

#endif
