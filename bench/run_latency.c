/* Median wall time of `result = 1 + 1` through the LocalEngine, engine
 * created once (as a long-lived caller would), vs the bare interpreter.
 *   bench/run_latency [N] [PYTHON]   prints JSON figures */
#include <spr.h>

#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 50;
	const char *python = argc > 2 ? argv[2] : "/usr/bin/python3";
	spr_local_options o = {.python = python};
	spr_engine *e = NULL;
	spr_error *err = NULL;
	if (spr_local_engine_new(&o, &e, &err) < 0) {
		fprintf(stderr, "engine: %s\n", err->message);
		return 1;
	}
	double *sandboxed = calloc((size_t)n, sizeof(double)), *bare = calloc((size_t)n, sizeof(double));
	for (int i = -3; i < n; i++) { /* 3 warm-up runs */
		double t0 = now_ms();
		spr_result *r = NULL;
		if (spr_run(e, NULL, "result = 1 + 1", 14, NULL, &r, &err) < 0 || !spr_result_ok(r)) {
			fprintf(stderr, "run failed: %s\n", err ? err->message : spr_result_error(r));
			return 1;
		}
		double t1 = now_ms();
		spr_result_free(r);
		pid_t pid = fork();
		if (pid == 0) {
			execl(python, python, "-I", "-S", "-c", "result = 1 + 1", (char *)NULL);
			_exit(127);
		}
		waitpid(pid, NULL, 0);
		double t2 = now_ms();
		if (i >= 0) {
			sandboxed[i] = t1 - t0;
			bare[i] = t2 - t1;
		}
	}
	double ms = median(sandboxed, n), mb = median(bare, n);
	printf("{\"runs\": %d, \"python\": \"%s\", \"sandboxed_median_ms\": %.2f, "
	       "\"bare_median_ms\": %.2f, \"overhead_ms\": %.2f}\n",
	       n, python, ms, mb, ms - mb);
	spr_engine_free(e);
	return 0;
}
