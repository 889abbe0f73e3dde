/* Median wall time of `result = 1 + 1` through the LocalEngine, engine
 * created once (as a long-lived caller would), vs the bare interpreter.
 *
 *   bench/run_latency N PYTHON MODE   prints JSON figures
 *
 * MODE: "cold"  no warm pool: every run sets its sandbox up;
 *       "pool"  the default engine (one sandbox prepared after each run),
 *               each run followed by one bare interpreter run;
 *       "ready" as "pool", with a 50 ms pause before each run, so that the
 *               prepared sandbox is complete when the run comes;
 *       "back-to-back" runs one after the other, nothing between them (the
 *               pool's sustained rate: each run waits for its sandbox's
 *               setup); no bare runs. */
#include <spr.h>

#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_PAUSE_MS 50

static double bare_run(const char *python)
{
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		execl(python, python, "-I", "-S", "-c", "result = 1 + 1", (char *)NULL);
		_exit(127);
	}
	waitpid(pid, NULL, 0);
	return now_ms() - t0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: run_latency N PYTHON cold|pool|ready|back-to-back\n");
		return 2;
	}
	int n = atoi(argv[1]);
	const char *python = argv[2], *mode = argv[3];
	bool with_bare = strcmp(mode, "back-to-back") != 0;
	bool pause = !strcmp(mode, "ready");
	spr_local_options o = {.python = python,
			       .pool_size = !strcmp(mode, "cold") ? SPR_LOCAL_NO_POOL : 0};
	spr_engine *e = NULL;
	spr_error *err = NULL;
	if (n < 1 || spr_local_engine_new(&o, &e, &err) < 0) {
		fprintf(stderr, "engine: %s\n", err ? err->message : "N must be positive");
		return 1;
	}
	double *sandboxed = calloc((size_t)n, sizeof(double)), *bare = calloc((size_t)n, sizeof(double));
	for (int i = -3; i < n; i++) { /* 3 warm-up runs */
		if (pause) {
			struct timespec ts = {0, READY_PAUSE_MS * 1000000L};
			nanosleep(&ts, NULL);
		}
		double t0 = now_ms();
		spr_result *r = NULL;
		if (spr_run(e, NULL, "result = 1 + 1", 14, NULL, &r, &err) < 0 || !spr_result_ok(r)) {
			fprintf(stderr, "run failed: %s\n", err ? err->message : spr_result_error(r));
			return 1;
		}
		double t1 = now_ms();
		spr_result_free(r);
		double b = with_bare ? bare_run(python) : 0;
		if (i >= 0) {
			sandboxed[i] = t1 - t0;
			bare[i] = b;
		}
	}
	double ms = median(sandboxed, n), mb = median(bare, n);
	printf("{\"runs\": %d, \"python\": \"%s\", \"mode\": \"%s\", \"sandboxed_median_ms\": %.2f, "
	       "\"bare_median_ms\": %.2f, \"overhead_ms\": %.2f}\n",
	       n, python, mode, ms, mb, ms - mb);
	spr_engine_free(e);
	free(sandboxed);
	free(bare);
	return 0;
}
