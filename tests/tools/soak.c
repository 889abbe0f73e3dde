/* soak RUNS TIMEOUTS OOMS: many runs through one engine, as a long-lived
 * caller makes them; then proves nothing is left: no descriptor of ours
 * leaked, no child process, no run cgroup. Prints a JSON report; exit 0
 * only if every run gave the expected result and nothing was left. */
#include <dirent.h>
#include <spr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n - 1; /* the directory stream itself */
}

static int count_children(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	FILE *f = fopen(path, "re");
	int n = 0;
	long pid;
	while (f && fscanf(f, "%ld", &pid) == 1)
		n++;
	if (f)
		fclose(f);
	return n;
}

/* run-* directories under <base>/spr for the bases the doctor reports;
 * *spr_dirs: how many <base>/spr are still there (a freed engine removes
 * its own). */
static int count_run_cgroups(const char *doctor_json, int *spr_dirs)
{
	int n = 0;
	*spr_dirs = 0;
	const char *p = doctor_json;
	while ((p = strstr(p, "\"base\":\""))) {
		p += 8;
		const char *end = strchr(p, '"');
		char spr[4096];
		snprintf(spr, sizeof(spr), "%.*s/spr", (int)(end - p), p);
		DIR *d = opendir(spr);
		*spr_dirs += d != NULL;
		struct dirent *de;
		while (d && (de = readdir(d)))
			n += !strncmp(de->d_name, "run-", 4);
		if (d)
			closedir(d);
		p = end;
	}
	return n;
}

static int run_one(spr_engine *e, spr_policy *p, const char *code, int want_exit)
{
	spr_result *r = NULL;
	spr_error *err = NULL;
	if (spr_run(e, p, code, strlen(code), NULL, &r, &err) < 0) {
		fprintf(stderr, "run failed: %s\n", err->message);
		spr_error_free(err);
		return -1;
	}
	int got = spr_result_exit_code(r);
	if (got != want_exit)
		fprintf(stderr, "exit %d, wanted %d: %s\n", got, want_exit,
			spr_result_error(r) ? spr_result_error(r) : "");
	spr_result_free(r);
	return got == want_exit ? 0 : -1;
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 1000;
	int timeouts = argc > 2 ? atoi(argv[2]) : 100;
	int ooms = argc > 3 ? atoi(argv[3]) : 100;
	spr_local_options o = {.cgroup_parent = getenv("SPR_CGROUP_PARENT")};
	spr_engine *e = NULL;
	spr_error *err = NULL;
	spr_policy *normal = NULL, *quick = NULL, *small = NULL;
	const char *quick_json = "{\"timeout_seconds\": 0.2}";
	const char *small_json = "{\"memory_limit_mb\": 48}";
	if (spr_local_engine_new(&o, &e, &err) < 0 || spr_policy_new(&normal, &err) < 0 ||
	    spr_policy_from_json(quick_json, strlen(quick_json), &quick, &err) < 0 ||
	    spr_policy_from_json(small_json, strlen(small_json), &small, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err->message);
		return 2;
	}
	int fds_before = count_fds();
	int failures = 0;
	/* Spread the timeouts and OOMs evenly through the normal runs. */
	int t_every = timeouts ? runs / timeouts : runs + 1;
	int o_every = ooms ? runs / ooms : runs + 1;
	for (int i = 0; i < runs; i++) {
		if (timeouts && i % t_every == 0 && i / t_every < timeouts)
			failures += run_one(e, quick, "while True: pass", 124) < 0;
		else if (ooms && i % o_every == o_every / 2 && i / o_every < ooms)
			failures += run_one(e, small, "b = bytearray(200 << 20)", 137) < 0;
		else
			failures += run_one(e, normal, "result = sum(range(100))", 0) < 0;
	}
	spr_engine_free(e); /* reaps the helpers still removing their cgroups */
	char *doctor = NULL;
	if (spr_local_doctor(&o, &doctor, &err) < 0) {
		fprintf(stderr, "doctor: %s\n", err->message);
		return 2;
	}
	int fds_after = count_fds(), children = count_children();
	int spr_dirs;
	int cgroups = count_run_cgroups(doctor, &spr_dirs);
	printf("{\"runs\": %d, \"failures\": %d, \"fds_before\": %d, \"fds_after\": %d, "
	       "\"children_left\": %d, \"run_cgroups_left\": %d, \"spr_cgroups_left\": %d}\n",
	       runs, failures, fds_before, fds_after, children, cgroups, spr_dirs);
	spr_free(doctor);
	spr_policy_free(normal);
	spr_policy_free(quick);
	spr_policy_free(small);
	return failures || fds_after != fds_before || children || cgroups || spr_dirs ? 1 : 0;
}
