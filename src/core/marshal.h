/* The result marshaller: worker message + host facts -> RunnerResult
 * (SPEC §3). Both engines fill a spr_run_facts and call spr_marshal(); the
 * decision table lives only here. */
#ifndef SPR_MARSHAL_H
#define SPR_MARSHAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The result message a worker may send is bounded so a hostile run cannot
 * exhaust the host's memory through it. */
#define SPR_MAX_RESULT_BYTES ((size_t)64 << 20)

/* What the host observed about one run. Pointers are borrowed. */
struct spr_run_facts {
	/* Infrastructure failure (sandbox setup, engine): exit 125 with this
	 * error's message. Everything else is ignored. */
	const spr_error *infra_error;

	/* How the worker process ended (as seen by its parent). */
	bool have_status;
	bool exited;	 /* normal exit: exit_status valid */
	int exit_status;
	bool signaled;	 /* killed: term_signal valid */
	int term_signal;

	/* Host-measured limit evidence. */
	bool timed_out;
	double timeout_seconds;
	bool oom_killed;	 /* memory limit (cgroup OOM kill) */
	bool pids_limit_hit;	 /* process-count limit */
	bool cpu_limit_hit;	 /* CPU-time limit */

	/* The worker's result message (header line + value), may be absent. */
	const char *worker_msg;
	size_t worker_msg_len;
	bool worker_msg_too_big;

	/* Captured output: the first bytes written, at most output_cap of them
	 * are used; *_total is how many bytes the stream carried in all. */
	const char *out, *err;
	size_t out_len, err_len;
	uint64_t out_total, err_total;
	size_t output_cap;

	int64_t duration_ms;
	int64_t memory_peak_kb; /* < 0: unknown */
	const char *isolation_json; /* JSON object text; NULL: {} */
};

struct spr_result {
	bool ok;
	bool timed_out;
	bool resource_exceeded;
	bool stdout_truncated, stderr_truncated;
	int exit_code;
	char *error; /* NULL: none */
	char *stdout_text, *stderr_text;
	size_t stdout_len, stderr_len;
	char *value_json;
	int64_t duration_ms;
	int64_t memory_peak_kb;
	char *isolation_json;
};

SPR_HIDDEN int spr_marshal(const struct spr_run_facts *facts, struct spr_result **out,
			   spr_error **err);
/* Captured bytes -> valid UTF-8 of at most cap bytes, cut on a character
 * boundary. *truncated is set when anything was dropped. */
SPR_HIDDEN int spr_capture_text(const char *raw, size_t len, uint64_t total, size_t cap,
				char **text, size_t *text_len, bool *truncated);

/* Formats seconds the way a person writes them: 5, 0.5, 1.25. */
SPR_HIDDEN void spr_format_seconds(char *buf, size_t size, double seconds);

#endif
