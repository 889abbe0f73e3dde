/* spr doctor / spr cleanup for the LocalEngine. */
#include <sys/utsname.h>

#include "cache.h"
#include "cgroup/cgroup.h"
#include "json.h"
#include "rundir.h"
#include "local/engine.h"
#include "uid_lease.h"
#include "where.h"

static void add_problem(cJSON *problems, const char *text)
{
	if (text)
		cJSON_AddItemToArray(problems, cJSON_CreateString(text));
}

/* A number from /proc/sys, or null when the file is not there. */
static cJSON *sysctl_value(const char *path)
{
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	if (!spr_read_file(path, &b) || !b.len)
		return cJSON_CreateNull();
	return cJSON_CreateNumber((double)strtol(b.data, NULL, 10));
}

/* Where this runs and what decides whether user namespaces are allowed:
 * the messages name the fix from these. */
static void describe_where(cJSON *report)
{
	cJSON *o = cJSON_AddObjectToObject(report, "where");
	const char *container = spr_container_kind();
	cJSON_AddItemToObject(o, "container",
			      container ? cJSON_CreateString(container) : cJSON_CreateNull());
	static const char *const sysctls[][2] = {
		{"max_user_namespaces", "/proc/sys/user/max_user_namespaces"},
		{"unprivileged_userns_clone", "/proc/sys/kernel/unprivileged_userns_clone"},
		{"apparmor_restrict_unprivileged_userns",
		 "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(sysctls); i++)
		cJSON_AddItemToObject(o, sysctls[i][0], sysctl_value(sysctls[i][1]));
}

/* The proof: a real run through every layer. Returns 0 when it ran, 1
 * when namespaces were refused (degrading is then the question), -1. */
static int trial_run(const spr_local_options *opts, const char *key, cJSON *report,
		     cJSON *problems)
{
	spr_engine *engine = NULL;
	spr_error *err = NULL;
	int ran = -1;
	cJSON *run = cJSON_AddObjectToObject(report, key);
	spr_local_options one_run = *opts;
	one_run.pool_size = SPR_LOCAL_NO_POOL;
	if (spr_local_engine_new(&one_run, &engine, &err) < 0) {
		cJSON_AddBoolToObject(run, "ok", false);
		cJSON_AddStringToObject(run, "error", err->message);
		add_problem(problems, err->message);
		ran = strstr(err->message, "namespace") ? 1 : -1;
		spr_error_free(err);
		return ran;
	}
	struct spr_local_engine *le = (struct spr_local_engine *)engine;
	cJSON *py = cJSON_AddObjectToObject(report, "python");
	cJSON_AddStringToObject(py, "executable", le->python.executable);
	cJSON_AddStringToObject(py, "version", le->python.version);
	cJSON_AddStringToObject(py, "base_prefix", le->python.base_prefix);
	cJSON_AddStringToObject(py, "worker", le->worker_run_path);
	spr_result *r = NULL;
	if (spr_run(engine, NULL, "result = 6 * 7", 14, NULL, &r, &err) < 0) {
		cJSON_AddBoolToObject(run, "ok", false);
		cJSON_AddStringToObject(run, "error", err->message);
		add_problem(problems, err->message);
		spr_error_free(err);
	} else {
		bool ok = spr_result_ok(r) && !strcmp(spr_result_value_json(r), "42");
		const char *why = spr_result_error(r);
		ran = ok ? 0 : why && strstr(why, "namespace") ? 1 : -1;
		cJSON_AddBoolToObject(run, "ok", ok);
		if (spr_result_error(r)) {
			cJSON_AddStringToObject(run, "error", spr_result_error(r));
			add_problem(problems, spr_result_error(r));
		}
		cJSON *iso = cJSON_Parse(r->isolation_json);
		if (iso)
			cJSON_AddItemToObject(run, "isolation", iso);
		cJSON_AddNumberToObject(run, "duration_ms", (double)r->duration_ms);
		spr_result_free(r);
	}
	spr_engine_free(engine);
	return ran;
}

/* The ids runs get on the host (as root), and whether anyone has them. */
static void describe_uid_range(const spr_local_options *opts, cJSON *report, cJSON *problems)
{
	cJSON *o = cJSON_AddObjectToObject(report, "run_uids");
	const char *text = opts->uid_range ? opts->uid_range : getenv("SPR_UID_RANGE");
	struct spr_uid_range range;
	_cleanup_error_ spr_error *bad = NULL;
	if (spr_uid_range_parse(text, &range, &bad) < 0) {
		cJSON_AddStringToObject(o, "error", bad->message);
		add_problem(problems, bad->message);
		return;
	}
	char buf[32], who[512];
	spr_uid_range_format(&range, buf, sizeof(buf));
	cJSON_AddStringToObject(o, "range", buf);
	/* Rootless LocalEngine runs are the caller's; DockerEngine
	 * containers of a daemon on this host always take theirs from it. */
	cJSON_AddBoolToObject(o, "used", geteuid() == 0);
	cJSON_AddBoolToObject(o, "containers", true);
	bool overlap = spr_uid_range_overlap(&range, NULL, who, sizeof(who));
	cJSON_AddItemToObject(o, "overlaps", overlap ? cJSON_CreateString(who) : cJSON_CreateNull());
	if (overlap) {
		char problem[700];
		snprintf(problem, sizeof(problem),
			 "the uid range %s for runs and containers includes %s: choose ids nobody "
			 "on this host has (--uid-range START:COUNT, SPR_UID_RANGE)",
			 buf, who);
		add_problem(problems, problem);
	}
}

int spr_local_doctor(const spr_local_options *opts, char **json, spr_error **err)
{
	static const spr_local_options defaults = {0};
	if (!json)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_local_doctor: json is NULL");
	if (!opts)
		opts = &defaults;
	_cleanup_cjson_ cJSON *report = cJSON_CreateObject();
	cJSON *problems = cJSON_CreateArray();
	struct utsname u;
	uname(&u);
	cJSON_AddStringToObject(report, "spr", SPR_VERSION);
	cJSON_AddStringToObject(report, "kernel", u.release);
	cJSON_AddStringToObject(report, "machine", u.machine);
	cJSON_AddNumberToObject(report, "uid", geteuid());

	struct spr_cg_host host;
	if (spr_cgroup_detect(opts->cgroup_parent, &host, err) < 0) {
		cJSON_Delete(problems);
		return -1;
	}
	cJSON_AddItemToObject(report, "cgroups", spr_cgroup_describe(&host));
	_cleanup_free_ char *cg_problem = spr_cgroup_problem(&host);
	add_problem(problems, cg_problem);
	spr_cgroup_host_free(&host);

	describe_uid_range(opts, report, problems);
	describe_where(report);
	/* Refused: what --allow-degraded would still give (its isolation
	 * lists the layers), so that choosing it is informed. */
	if (trial_run(opts, "run", report, problems) == 1 && !opts->allow_degraded) {
		spr_local_options degraded = *opts;
		degraded.allow_degraded = true;
		_cleanup_cjson_ cJSON *ignored = cJSON_CreateArray();
		trial_run(&degraded, "degraded_run", report, ignored);
	}
	cJSON_AddItemToObject(report, "problems", problems);
	*json = spr_json_print(report);
	return *json ? 0 : spr_fail_oom(err);
}

int spr_local_cleanup_counted(const spr_local_options *opts, int *removed, int *removed_dirs,
			      spr_error **err)
{
	struct spr_cg_host host;
	if (spr_cgroup_detect(opts ? opts->cgroup_parent : NULL, &host, err) < 0)
		return -1;
	int n = spr_cgroup_cleanup_stale(&host, err);
	spr_cgroup_host_free(&host);
	int dirs = spr_rundir_sweep(spr_rundir_parent());
	if (removed)
		*removed = n;
	if (removed_dirs)
		*removed_dirs = dirs;
	return 0;
}

int spr_local_cleanup(const spr_local_options *opts, int *removed, spr_error **err)
{
	return spr_local_cleanup_counted(opts, removed, NULL, err);
}
