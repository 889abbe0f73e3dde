/* What a LocalEngine environment (venv_dir) costs: building it, reusing it
 * from a second engine, and a warm run in it, next to the same without a
 * venv.
 *
 *   bench/venv_latency N PYTHON WHEEL_DIR WORK_DIR   prints JSON figures
 *
 * WHEEL_DIR holds alpha-1.0 (a pure-Python wheel); WORK_DIR is scratch.
 * "build": engine creation on a venv_dir that does not exist yet (venv,
 * pip install from WHEEL_DIR in a sandbox, marker, link), 3 times;
 * "reuse": engine creation on the built venv_dir (N times); "engine":
 * engine creation without a venv (N times); "run_venv" / "run_plain":
 * warm-pool runs (50 ms apart) of `import alpha` in the venv and of
 * `result = 1 + 1` with and without it. */
#include <spr.h>

#include "bench.h"
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BUILDS 3

static spr_engine *engine(const char *python, const char *venv, const char *wheels)
{
	static const char *const packages[] = {"alpha==1.0", NULL};
	spr_local_options o = {.python = python};
	if (venv) {
		o.venv_dir = venv;
		o.packages = packages;
		o.pip = (spr_pip_options){.find_links = wheels, .no_index = true};
	}
	spr_engine *e = NULL;
	spr_error *err = NULL;
	if (spr_local_engine_new(&o, &e, &err) < 0) {
		fprintf(stderr, "engine: %s\n", err->message);
		exit(1);
	}
	return e;
}

static double time_engine(const char *python, const char *venv, const char *wheels)
{
	double t0 = now_ms();
	spr_engine *e = engine(python, venv, wheels);
	double t = now_ms() - t0;
	spr_engine_free(e);
	return t;
}

static double run_median(spr_engine *e, const char *code, int n)
{
	double *t = calloc((size_t)n, sizeof(double));
	for (int i = -3; i < n; i++) {
		struct timespec pause = {0, 50 * 1000000L};
		nanosleep(&pause, NULL);
		spr_result *r = NULL;
		spr_error *err = NULL;
		double t0 = now_ms();
		if (spr_run(e, NULL, code, strlen(code), NULL, &r, &err) < 0 || !spr_result_ok(r)) {
			fprintf(stderr, "run: %s\n", err ? err->message : spr_result_error(r));
			exit(1);
		}
		if (i >= 0)
			t[i] = now_ms() - t0;
		spr_result_free(r);
	}
	double m = median(t, n);
	free(t);
	return m;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: venv_latency N PYTHON WHEEL_DIR WORK_DIR\n");
		return 2;
	}
	int n = atoi(argv[1]);
	const char *python = argv[2], *wheels = argv[3], *work = argv[4];
	if (n < 1)
		return 2;
	double builds[BUILDS];
	char venv[4096];
	for (int i = 0; i < BUILDS; i++) {
		snprintf(venv, sizeof(venv), "%s/build%d/env", work, i);
		builds[i] = time_engine(python, venv, wheels);
	}
	double *reuse = calloc((size_t)n, sizeof(double)), *plain = calloc((size_t)n, sizeof(double));
	for (int i = 0; i < n; i++) {
		reuse[i] = time_engine(python, venv, wheels);
		plain[i] = time_engine(python, NULL, NULL);
	}
	spr_engine *in_venv = engine(python, venv, wheels), *without = engine(python, NULL, NULL);
	double run_import = run_median(in_venv, "import alpha\nresult = alpha.VALUE", n);
	double run_venv = run_median(in_venv, "result = 1 + 1", n);
	double run_plain = run_median(without, "result = 1 + 1", n);
	spr_engine_free(in_venv);
	spr_engine_free(without);
	double build = median(builds, BUILDS); /* sorts: min first, max last */
	printf("{\"runs\": %d, \"build_median_ms\": %.1f, \"build_min_ms\": %.1f, "
	       "\"build_max_ms\": %.1f, \"reuse_median_ms\": %.2f, \"engine_median_ms\": %.2f, "
	       "\"run_import_ms\": %.2f, \"run_venv_ms\": %.2f, \"run_plain_ms\": %.2f}\n",
	       n, build, builds[0], builds[BUILDS - 1], median(reuse, n), median(plain, n),
	       run_import, run_venv, run_plain);
	free(reuse);
	free(plain);
	return 0;
}
