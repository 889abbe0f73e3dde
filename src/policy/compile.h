/* The plan: the immutable, engine-ready form of a policy (DESIGN.md "The
 * plan"). Engines never read the policy; a new limit is added here once. */
#ifndef SPR_COMPILE_H
#define SPR_COMPILE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "policy/policy.h"
#include "protocol/plan.h"

struct spr_limits {
	int64_t timeout_ms;
	double timeout_seconds;	 /* as written, for "timed out after Xs" */
	uint64_t memory_bytes;
	int64_t max_processes;
	double cpu_cores;
	double cpu_seconds;	 /* 0: none */
	uint64_t tmp_bytes;
	size_t output_cap;	 /* per stream, bytes */
};


/* The code's working directory, HOME and TMPDIR, on every engine. */
#define SPR_RUN_WORKDIR "/tmp"

/* What a plan decides once for every engine (DESIGN.md "The plan"); each
 * engine renders it: the LocalEngine into the sandbox plan
 * (src/local/run.c, layout.c), the DockerEngine into `docker run` flags
 * (src/docker/profile.c) and the serve request. */
typedef struct spr_plan {
	int refs; /* atomic */
	char *key; /* canonical policy JSON: the cache key */
	/* Worker part: the JSON object the Python worker enforces. */
	char *worker_policy_json;
	struct spr_limits limits;
	bool network;
	uint32_t require; /* layers a run must have (mask over enum spr_layer_req) */
	/* The interpreter's flags, between its path and the worker's
	 * (docs/WORKER_PROTOCOL.md "Invocation"); NULL-terminated, static. */
	const char *const *python_flags;
	/* The code's environment, NULL-terminated "NAME=value": a fixed
	 * minimal one (PATH, LANG, LC_ALL) overridden by the policy's env.
	 * HOME and TMPDIR are not in it: every engine sets both to the run's
	 * working directory, whatever the policy says. */
	char **env;
	/* preload_imports as a JSON array, or NULL when there are none: each
	 * engine adds it to the worker's environment (SPR_PRELOAD_ENV, with
	 * the directories it imports from), so it is in the sandbox plan's
	 * bytes — the warm pool's key — and a sandbox prepared with other
	 * preloads is never handed to a run. */
	char *preload_imports_json;
	const char *workdir; /* SPR_RUN_WORKDIR */
	struct spr_scratch scratch[SPR_PLAN_NSCRATCH]; /* /tmp, /dev/shm */
	/* Per-process limits every engine applies (FSIZE, CORE, NOFILE, CPU);
	 * AS and NPROC depend on whether a cgroup backs the run, which only
	 * the engine knows. */
	struct spr_rlimit_plan rlimits[SPR_NRLIMITS];
} spr_plan;

SPR_HIDDEN int spr_plan_compile(const struct spr_policy *p, spr_plan **out, spr_error **err);
SPR_HIDDEN spr_plan *spr_plan_ref(spr_plan *plan);
SPR_HIDDEN void spr_plan_unref(spr_plan *plan);

/* The canonical key of a policy (what spr_plan_compile would store). */
SPR_HIDDEN char *spr_policy_key(const struct spr_policy *p);

static inline void spr_plan_unrefp(spr_plan **p)
{
	spr_plan_unref(*p);
	*p = NULL;
}
#define _cleanup_plan_ SPR_CLEANUP(spr_plan_unrefp)

#endif
