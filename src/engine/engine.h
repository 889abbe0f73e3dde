/* What every engine shares: the plan cache, request validation and the
 * worker request. An engine embeds struct spr_engine first and supplies
 * its ops. */
#ifndef SPR_ENGINE_H
#define SPR_ENGINE_H

#include <pthread.h>

#include "buf.h"
#include "error.h"
#include "marshal.h"
#include "policy/compile.h"

/* A validated run request (pointers borrowed from the caller). */
struct spr_request {
	const char *code;
	size_t code_len;
	const char *input_json; /* validated JSON text, never NULL */
	size_t input_len;
	spr_output_fn on_output; /* the caller's, or NULL */
	void *output_user;
};

/* Hands a run's output to the caller's spr_output_fn as it arrives, up
 * to the output cap per stream (what the result keeps, counted the same). */
struct spr_output_tap {
	spr_output_fn fn;
	void *user;
	uint64_t cap;
	uint64_t sent[2]; /* stdout, stderr */
};
SPR_HIDDEN struct spr_output_tap spr_output_tap_for(const struct spr_request *req,
						    uint64_t output_cap);
/* stream: 1 stdout, 2 stderr. */
SPR_HIDDEN void spr_output_tap_send(struct spr_output_tap *tap, int stream, const char *data,
				    size_t len);

struct spr_engine_ops {
	const char *name;
	/* The smallest max_processes a run can work with on this engine, and
	 * why (SPEC §7 "Policy"): below it a run could never start. */
	int64_t min_processes;
	const char *min_processes_why;
	int (*run)(spr_engine *engine, spr_plan *plan, const struct spr_request *req,
		   struct spr_result **out, spr_error **err);
	void (*destroy)(spr_engine *engine);
};

#define SPR_PLAN_CACHE_SLOTS 16

struct spr_engine {
	const struct spr_engine_ops *ops;
	pthread_mutex_t lock;
	spr_plan *plans[SPR_PLAN_CACHE_SLOTS]; /* compiled plans, by policy key */
	unsigned next_slot;
};

SPR_HIDDEN void spr_engine_init(spr_engine *engine, const struct spr_engine_ops *ops);
/* The compiled plan for a policy, from the cache when an equal policy was
 * compiled before (a plan is immutable, so sharing is safe). */
SPR_HIDDEN int spr_engine_plan(spr_engine *engine, const struct spr_policy *policy,
			       spr_plan **out, spr_error **err);

/* What an engine adds to the worker's request (docs/WORKER_PROTOCOL.md
 * "Request"). */
struct spr_worker_request_opts {
	const char *sys_path_json; /* JSON array of directories, or NULL */
	const char *venv;	   /* the root the worker makes sys.prefix, or NULL */
};

/* The request the worker reads: the code, the input, the plan's Python
 * policy, and what opts adds. */
SPR_HIDDEN void spr_worker_request(spr_buf *out, const spr_plan *plan,
				   const struct spr_request *req,
				   const struct spr_worker_request_opts *opts);

/* The worker's SPR_PRELOAD_ENV entry ("NAME={json}") for a plan with
 * preload_imports, NULL in *out when it has none: the modules, and where
 * the worker imports them from before any request (opts' sys_path and
 * venv, as the request says them again). Its text is part of the sandbox
 * plan, so the warm pool keys on it (docs/WORKER_PROTOCOL.md "Preloads"). */
SPR_HIDDEN int spr_worker_preload_env(const spr_plan *plan,
				      const struct spr_worker_request_opts *opts, char **out,
				      spr_error **err);

/* How the worker ended, from a sandbox's EXIT (or the container agent's
 * DONE): its wait status, memory peak and which limits it hit. */
struct spr_msg;
SPR_HIDDEN void spr_facts_from_exit(struct spr_run_facts *facts, const struct spr_msg *exit);

/* A result for a run that never started (exit 125). */
SPR_HIDDEN int spr_infra_result(const spr_error *cause, const char *isolation_json,
				int64_t duration_ms, struct spr_result **out, spr_error **err);

#endif
