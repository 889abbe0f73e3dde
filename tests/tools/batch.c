/* batch: runs many requests through ONE engine, as a long-lived caller
 * does (the pool only shows its behaviour across runs of one engine).
 *
 *   batch [--engine local|docker|podman] [--allow-degraded] [--threads N] [--pool-size N (both engines;
 *         local: -1 for none)]
 *         [--max-runs N] [--ttl S] [--image IMAGE] [remote options as
 *         spr-run's: --docker-context, --docker-host, --ssh-*] < requests.jsonl
 *
 * stdin: one spr_run_json request per line, or {"sleep_ms": N} to pause
 * (all threads finish first). stdout: one line per request, in input
 * order: {"index": I, "thread": T, "result": <RunnerResult>} or
 * {"index": I, "error": "..."}. Exit 0 when every request got a result. */
#include <pthread.h>
#include <spr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct job {
	char *request;
	char *output;
	int thread;
	bool sleep_first; /* a barrier: {"sleep_ms": N} before this job */
	long sleep_ms;
};

struct batch {
	spr_engine *engine;
	struct job *jobs;
	size_t njobs, next, end;
	pthread_mutex_t lock;
};

static void *worker(void *arg)
{
	struct batch *b = arg;
	static int counter;
	pthread_mutex_lock(&b->lock);
	int me = counter++;
	pthread_mutex_unlock(&b->lock);
	for (;;) {
		pthread_mutex_lock(&b->lock);
		size_t i = b->next < b->end ? b->next++ : (size_t)-1;
		pthread_mutex_unlock(&b->lock);
		if (i == (size_t)-1)
			return NULL;
		struct job *j = &b->jobs[i];
		char *json = NULL;
		spr_error *err = NULL;
		int rc = spr_run_json(b->engine, j->request, strlen(j->request), &json, &err);
		char *line = NULL;
		if (rc < 0) {
			if (asprintf(&line, "{\"index\": %zu, \"error\": \"%s\"}", i, err->message) < 0)
				line = NULL;
			spr_error_free(err);
		} else if (asprintf(&line, "{\"index\": %zu, \"thread\": %d, \"result\": %s}", i, me,
				    json) < 0) {
			line = NULL;
		}
		spr_free(json);
		j->output = line;
		j->thread = me;
	}
}

int main(int argc, char **argv)
{
	const char *engine = "local";
	int threads = 1;
	spr_docker_options d = {0};
	/* as spr-run does: a rootless caller's delegated subtree */
	spr_local_options lo = {.cgroup_parent = getenv("SPR_CGROUP_PARENT")};
	/* The suites as a rootless podman user on a cgroup v1 host
	 * (tests/integration/common.py): podman's containers are degraded
	 * there (the LocalEngine is not: its refusals are tested too). */
	const char *degraded = getenv("SPR_TEST_ALLOW_DEGRADED");
	if (degraded && !strcmp(degraded, "1"))
		d.allow_degraded = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--engine") && v)
			engine = argv[++i];
		else if (!strcmp(a, "--allow-degraded"))
			d.allow_degraded = lo.allow_degraded = true;
		else if (!strcmp(a, "--threads") && v)
			threads = atoi(argv[++i]);
		else if (!strcmp(a, "--pool-size") && v)
			d.pool_size = lo.pool_size = atoi(argv[++i]);
		else if (!strcmp(a, "--max-runs") && v)
			d.max_runs = atoi(argv[++i]);
		else if (!strcmp(a, "--ttl") && v)
			d.ttl_seconds = atoi(argv[++i]);
		else if (!strcmp(a, "--image") && v)
			d.image = argv[++i];
		else if (!strcmp(a, "--docker-context") && v)
			d.docker_context = argv[++i];
		else if (!strcmp(a, "--docker-host") && v)
			d.docker_host = argv[++i];
		else if (!strcmp(a, "--ssh-host") && v)
			d.ssh_host = argv[++i];
		else if (!strcmp(a, "--ssh-user") && v)
			d.ssh_user = argv[++i];
		else if (!strcmp(a, "--ssh-port") && v)
			d.ssh_port = atoi(argv[++i]);
		else if (!strcmp(a, "--ssh-key-path") && v)
			d.ssh_key_path = argv[++i];
		else {
			fprintf(stderr, "usage: batch [--engine local|docker|podman] [--allow-degraded] [--threads N] "
					"[--pool-size N] [--max-runs N] [--ttl S] [--image I] "
					"[--docker-context NAME | --docker-host URL | --ssh-host H "
					"[--ssh-user U] [--ssh-port P] [--ssh-key-path K]]\n");
			return 2;
		}
	}
	struct batch b = {0};
	pthread_mutex_init(&b.lock, NULL);
	char *line = NULL;
	size_t cap = 0;
	long pending_sleep = 0;
	while (getline(&line, &cap, stdin) > 0) {
		if (strspn(line, " \t\n") == strlen(line))
			continue;
		if (strstr(line, "\"sleep_ms\"")) {
			pending_sleep += strtol(strchr(line, ':') + 1, NULL, 10);
			continue;
		}
		b.jobs = realloc(b.jobs, (b.njobs + 1) * sizeof(*b.jobs));
		b.jobs[b.njobs] = (struct job){.request = strdup(line), .sleep_first = pending_sleep > 0,
					       .sleep_ms = pending_sleep};
		pending_sleep = 0;
		b.njobs++;
	}
	free(line);
	spr_error *err = NULL;
	if (!strcmp(engine, "podman"))
		d.container_cli = "podman";
	int rc = strcmp(engine, "local") ? spr_docker_engine_new(&d, &b.engine, &err)
					 : spr_local_engine_new(&lo, &b.engine, &err);
	if (rc < 0) {
		fprintf(stderr, "batch: engine: %s\n", err->message);
		spr_error_free(err);
		for (size_t i = 0; i < b.njobs; i++)
			free(b.jobs[i].request);
		free(b.jobs);
		return 125;
	}
	/* Segments between sleeps run with all threads; sleeps are barriers. */
	size_t start = 0;
	while (start < b.njobs) {
		if (b.jobs[start].sleep_first) {
			struct timespec ts = {b.jobs[start].sleep_ms / 1000,
					      (b.jobs[start].sleep_ms % 1000) * 1000000};
			nanosleep(&ts, NULL);
		}
		size_t end = start + 1;
		while (end < b.njobs && !b.jobs[end].sleep_first)
			end++;
		b.next = start;
		b.end = end;
		pthread_t t[64];
		int n = threads < 1 ? 1 : threads > 64 ? 64 : threads;
		for (int i = 0; i < n; i++)
			pthread_create(&t[i], NULL, worker, &b);
		for (int i = 0; i < n; i++)
			pthread_join(t[i], NULL);
		start = end;
	}
	int failed = 0;
	for (size_t i = 0; i < b.njobs; i++) {
		puts(b.jobs[i].output ? b.jobs[i].output : "{\"error\": \"no output\"}");
		failed += !b.jobs[i].output || strstr(b.jobs[i].output, "\"error\": \"") != NULL;
		free(b.jobs[i].output);
		free(b.jobs[i].request);
	}
	free(b.jobs);
	spr_engine_free(b.engine);
	return failed ? 1 : 0;
}
