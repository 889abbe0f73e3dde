/* Warm runs of `import numpy; result = float(numpy.arange(10).sum())`
 * through one LocalEngine, with and without preload_imports = ["numpy"]
 * (SPEC §2), against the bare interpreter doing the same.
 *
 *   bench/preload_latency N ROUNDS PYTHON PAUSE_MS   prints JSON samples (ms)
 *
 * Each round: N+1 runs under the preloading policy, then N+1 under the
 * same policy without preloads (the first of each block is dropped: the
 * pool follows the latest policy, so it set its sandbox up for itself),
 * then N runs of `result = 1 + 1` under the latter (the warm run's floor
 * at that moment), then N bare runs of `PYTHON -I -S -c` (numpy's
 * directory appended to sys.path, as the engine's sys_path does). PAUSE_MS before every run:
 * the prepared sandbox, numpy imported, is complete when the run comes.
 * Both policies unblock what numpy imports (os, ctypes, importlib). */
#include <spr.h>

#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char code[] = "import numpy; result = float(numpy.arange(10).sum())";
static const char bare_code[] =
	"import sys; sys.path.append('/usr/lib/python3/dist-packages'); "
	"import numpy; result = float(numpy.arange(10).sum())";

static void pause_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static double bare_run(const char *python)
{
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		execl(python, python, "-I", "-S", "-c", bare_code, (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		fprintf(stderr, "bare run failed\n");
		exit(1);
	}
	return now_ms() - t0;
}

static void print_samples(const char *name, const double *v, int n, bool last)
{
	printf("\"%s\": [", name);
	for (int i = 0; i < n; i++)
		printf("%s%.3f", i ? ", " : "", v[i]);
	printf("]%s", last ? "" : ", ");
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: preload_latency N ROUNDS PYTHON PAUSE_MS\n");
		return 2;
	}
	int n = atoi(argv[1]), rounds = atoi(argv[2]), pause = atoi(argv[4]);
	const char *python = argv[3];
	static const char *const policies[2] = {
		"{\"blocked_imports\": [\"subprocess\", \"socket\"], \"preload_imports\": [\"numpy\"]}",
		"{\"blocked_imports\": [\"subprocess\", \"socket\"]}",
	};
	spr_local_options o = {.python = python};
	spr_engine *e = NULL;
	spr_error *err = NULL;
	spr_policy *policy[2] = {NULL, NULL};
	if (n < 1 || rounds < 1 || pause < 0 || spr_local_engine_new(&o, &e, &err) < 0 ||
	    spr_policy_from_json(policies[0], strlen(policies[0]), &policy[0], &err) < 0 ||
	    spr_policy_from_json(policies[1], strlen(policies[1]), &policy[1], &err) < 0) {
		fprintf(stderr, "setup: %s\n", err ? err->message : "N, ROUNDS, PAUSE_MS");
		return 1;
	}
	int total = n * rounds;
	double *v[4];
	for (int k = 0; k < 4; k++)
		v[k] = calloc((size_t)total, sizeof(double));
	for (int round = 0; round < rounds; round++) {
		for (int k = 0; k < 2; k++) {
			for (int i = -1; i < n; i++) {
				pause_ms(pause);
				double t0 = now_ms();
				spr_result *r = NULL;
				if (spr_run(e, policy[k], code, strlen(code), NULL, &r, &err) < 0 ||
				    !spr_result_ok(r)) {
					fprintf(stderr, "run failed: %s\n",
						err ? err->message : spr_result_error(r));
					return 1;
				}
				double t1 = now_ms();
				spr_result_free(r);
				if (i >= 0)
					v[k][round * n + i] = t1 - t0;
			}
		}
		for (int i = 0; i < n; i++) {
			pause_ms(pause);
			double t0 = now_ms();
			spr_result *r = NULL;
			if (spr_run(e, policy[1], "result = 1 + 1", 14, NULL, &r, &err) < 0 ||
			    !spr_result_ok(r)) {
				fprintf(stderr, "run failed: %s\n", err ? err->message : spr_result_error(r));
				return 1;
			}
			v[3][round * n + i] = now_ms() - t0;
			spr_result_free(r);
		}
		for (int i = 0; i < n; i++) {
			pause_ms(pause);
			v[2][round * n + i] = bare_run(python);
		}
	}
	printf("{\"runs\": %d, \"rounds\": %d, \"python\": \"%s\", \"pause_ms\": %d, ", n, rounds,
	       python, pause);
	print_samples("preloaded", v[0], total, false);
	print_samples("plain", v[1], total, false);
	print_samples("floor", v[3], total, false);
	print_samples("bare", v[2], total, true);
	printf("}\n");
	spr_policy_free(policy[0]);
	spr_policy_free(policy[1]);
	spr_engine_free(e);
	return 0;
}
