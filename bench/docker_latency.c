/* Warm-pool latency of the DockerEngine for `result = 1 + 1`: the engine
 * is created once (as a long-lived caller holds it), warmed, then timed
 * run by run through the C API.
 *
 *   bench/docker_latency N [--pause-ms MS] [--engine docker|podman] [--docker-host URL]
 *        [--docker-context NAME]
 *        [--ssh-host H] [--ssh-user U] [--ssh-port P] [--ssh-key-path K]
 *
 * --pause-ms: untimed time between runs (the next run's sandbox is then
 * ready); without it the runs come back to back, each waiting for what
 * the one before left to do.
 *
 * Prints one JSON object: runs, median/p90/min ms, and the last
 * RunnerResult (its isolation names the image, for the cold/exec rows). */
#include <spr.h>

#include "bench.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *option(int argc, char **argv, const char *name)
{
	for (int i = 2; i + 1 < argc; i++)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 100;
	if (n < 1) {
		fprintf(stderr, "usage: docker_latency N [--docker-host URL] [--ssh-host H ...]\n");
		return 2;
	}
	const char *port = option(argc, argv, "--ssh-port");
	const char *pause = option(argc, argv, "--pause-ms");
	struct timespec gap = {0, pause ? atol(pause) * 1000000L : 0};
	spr_docker_options o = {
		.pool_size = 1,
		.max_runs = 1000000, /* one container serves every timed run */
		.ttl_seconds = 3600,
		.docker_host = option(argc, argv, "--docker-host"),
		.docker_context = option(argc, argv, "--docker-context"),
		.ssh_host = option(argc, argv, "--ssh-host"),
		.ssh_user = option(argc, argv, "--ssh-user"),
		.ssh_key_path = option(argc, argv, "--ssh-key-path"),
		.ssh_port = port ? atoi(port) : 0,
		.container_cli = option(argc, argv, "--engine"),
	};
	spr_engine *e = NULL;
	spr_error *err = NULL;
	if (spr_docker_engine_new(&o, &e, &err) < 0) {
		fprintf(stderr, "engine: %s\n", err->message);
		return 1;
	}
	static const char request[] = "{\"code\": \"result = 1 + 1\"}";
	double *ms = calloc((size_t)n, sizeof(double));
	char *last = NULL;
	for (int i = -5; i < n; i++) { /* 5 warm-up runs start the container */
		char *json = NULL;
		double t0 = now_ms();
		if (spr_run_json(e, request, sizeof(request) - 1, &json, &err) < 0) {
			fprintf(stderr, "run: %s\n", err->message);
			return 1;
		}
		double t1 = now_ms();
		if (!strstr(json, "\"ok\":true") && !strstr(json, "\"ok\": true")) {
			fprintf(stderr, "run failed: %s\n", json);
			return 1;
		}
		if (i >= 0)
			ms[i] = t1 - t0;
		if (gap.tv_nsec)
			nanosleep(&gap, NULL);
		spr_free(last);
		last = json;
	}
	double med = median(ms, n); /* sorts ms */
	printf("{\"runs\": %d, \"median_ms\": %.2f, \"p90_ms\": %.2f, \"min_ms\": %.2f, "
	       "\"result\": %s}\n",
	       n, med, ms[(n * 9) / 10], ms[0], last);
	spr_free(last);
	free(ms);
	spr_engine_free(e);
	return 0;
}
