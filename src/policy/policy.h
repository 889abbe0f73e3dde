/* The policy model (SPEC §2): defaults, validation, canonical JSON. */
#ifndef SPR_POLICY_H
#define SPR_POLICY_H

#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

enum spr_mode { SPR_MODE_RESTRICT = 0, SPR_MODE_ALLOW = 1 };

struct spr_policy {
	enum spr_mode mode;
	double timeout_seconds;
	int64_t memory_limit_mb;
	int64_t max_output_kb;
	/* Lists and tables are cJSON nodes (arrays of strings, objects) so
	 * that values reach the worker exactly as written. */
	cJSON *blocked_imports, *blocked_builtins, *allowed_imports, *allowed_builtins;
	cJSON *allowed_globals, *blocked_globals;
	cJSON *extra_globals; /* object, any values */
	bool network;
	int64_t max_processes;
	double cpu_cores;
	double cpu_seconds; /* 0: no CPU-time limit */
	int64_t tmp_size_mb;
	cJSON *env; /* object of strings */
	cJSON *require; /* isolation layers a run must have (names, protocol/message.h) */
	cJSON *preload_imports; /* module names the worker imports before the request */
};

/* Bounds, shared with the documentation (docs/SPEC.md §2). */
#define SPR_MAX_TIMEOUT_SECONDS 86400.0
#define SPR_MAX_MEMORY_MB (1024 * 1024)
#define SPR_MAX_OUTPUT_KB (1024 * 1024)
#define SPR_MAX_PROCESSES 65536
#define SPR_MAX_CPU_CORES 1024.0
/* The kernel's smallest CPU quota is 1 ms per 100 ms period (cgroup v1
 * cpu.cfs_quota_us and v2 cpu.max refuse less; docker --cpus too). */
#define SPR_MIN_CPU_CORES 0.01
#define SPR_MAX_TMP_MB (1024 * 1024)
#define SPR_MAX_PRELOADS 64
#define SPR_MAX_MODULE_NAME 200
/* The worker's environment variable that carries the preloads
 * (docs/WORKER_PROTOCOL.md "Preloads"); a policy's env cannot set it. */
#define SPR_PRELOAD_ENV "SPR_WORKER_PRELOAD"


/* Applies the fields present in `obj` (a tree from spr_json_parse or
 * spr_toml_parse; a {"policy": {...}} wrapper is unwrapped) to `p`.
 * `text`/`source` locate errors as source:line:col. On error `p` may be
 * partly updated: callers apply to a scratch copy. */
SPR_HIDDEN int spr_policy_apply(struct spr_policy *p, const cJSON *obj, const char *text,
				size_t text_len, const char *source, spr_error **err);
SPR_HIDDEN int spr_policy_copy(const struct spr_policy *src, struct spr_policy **out,
			       spr_error **err);
/* Canonical JSON: every field, fixed order; equal policies give equal text
 * (the plan cache key). */
SPR_HIDDEN cJSON *spr_policy_to_cjson(const struct spr_policy *p);

static inline void spr_policy_freep(struct spr_policy **p)
{
	spr_policy_free(*p);
	*p = NULL;
}
#define _cleanup_policy_ SPR_CLEANUP(spr_policy_freep)

#endif
