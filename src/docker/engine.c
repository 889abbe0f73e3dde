/* DockerEngine construction and one run. */
#include <fcntl.h>
#include <unistd.h>

#include "cache.h"
#include "docker/docker_engine.h"
#include "docker/admin.h"
#include "docker/profile.h"
#include "json.h"
#include "policy/seccomp.h"
#include "proc.h"
#include "spr_config.h"

static void docker_destroy(spr_engine *engine)
{
	struct spr_docker_engine *de = (struct spr_docker_engine *)engine;
	spr_pool_free(de->pool);
	if (de->seccomp_file) {
		unlink(de->seccomp_file);
		free(de->seccomp_file);
	}
	spr_docker_target_free(&de->target);
	free(de->image);
	free(de->image_id);
	free(de->sys_path_json);
	free(de->worker_path);
	free(de->serve_path);
	free(de->creator);
	free(de);
}

/* The isolation a DockerEngine run reports (SPEC §3). */
static char *isolation_json(const struct spr_docker_engine *de, const spr_plan *plan)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "engine", "docker");
	cJSON_AddStringToObject(o, "image", de->image);
	cJSON_AddStringToObject(o, "image_id", de->image_id);
	cJSON_AddStringToObject(o, "seccomp", SPR_SECCOMP_PROFILE);
	cJSON_AddStringToObject(o, "network", plan->network ? "bridge" : "none");
	cJSON_AddStringToObject(o, "user", SPR_DOCKER_USER);
	cJSON_AddBoolToObject(o, "read_only_root", true);
	cJSON_AddBoolToObject(o, "capabilities", false);
	cJSON_AddStringToObject(o, "memory", "cgroup");
	/* vm.memfd_noexec is only the host root's to set (SPEC §5). */
	cJSON_AddStringToObject(o, "memfd_exec", "allowed");
	return cJSON_PrintUnformatted(o);
}

static int docker_run(spr_engine *engine, spr_plan *plan, const struct spr_request *req,
		      struct spr_result **out, spr_error **err)
{
	struct spr_docker_engine *de = (struct spr_docker_engine *)engine;
	_cleanup_buf_ spr_buf request = SPR_BUF_INIT;
	spr_worker_request(&request, plan, req,
			   &(struct spr_worker_request_opts){.sys_path_json = de->sys_path_json,
							     .serve_limits = true});
	if (request.oom)
		return spr_fail_oom(err);
	__attribute__((cleanup(spr_pool_outcome_free))) struct spr_pool_outcome o = {
		.facts = {.memory_peak_kb = -1}};
	int64_t t0 = spr_now_ms();
	if (spr_pool_run(de->pool, plan, &request, &o, err) < 0)
		return -1;
	_cleanup_free_ char *isolation = isolation_json(de, plan);
	struct spr_run_facts *f = &o.facts;
	f->infra_error = o.infra;
	f->isolation_json = isolation;
	f->timeout_seconds = plan->limits.timeout_seconds;
	f->output_cap = plan->limits.output_cap;
	f->out = o.out.data;
	f->out_len = o.out.len;
	f->err = o.err.data;
	f->err_len = o.err.len;
	f->worker_msg = o.result.len ? o.result.data : NULL;
	f->worker_msg_len = o.result.len;
	if (!f->duration_ms)
		f->duration_ms = spr_now_ms() - t0;
	return spr_marshal(f, out, err);
}

static const struct spr_engine_ops docker_ops = {
	.name = "docker",
	.min_processes = 2,
	.min_processes_why = "the container's serving worker and the run's process count",
	.run = docker_run,
	.destroy = docker_destroy,
};

static int write_profile(struct spr_docker_engine *de, spr_error **err)
{
	const char *profile = spr_docker_seccomp_profile(err);
	if (!profile)
		return -1;
	_cleanup_free_ char *dir = spr_cache_dir();
	if (asprintf(&de->seccomp_file, "%s/seccomp-%d-XXXXXX.json", dir ? dir : "/tmp",
		     (int)getpid()) < 0)
		return spr_fail_oom(err);
	_cleanup_close_ int fd = mkstemps(de->seccomp_file, 5);
	size_t len = strlen(profile);
	if (fd < 0 || write(fd, profile, len) != (ssize_t)len) {
		spr_fail_errno(err, SPR_LAYER_DOCKER, "writing the seccomp profile %s",
			       de->seccomp_file);
		free(de->seccomp_file);
		de->seccomp_file = NULL;
		return -1;
	}
	return 0;
}

static const char *libexec_dir(void)
{
	const char *env = getenv("SPR_LIBEXEC_DIR");
	return env && *env ? env : SPR_LIBEXECDIR;
}

int spr_docker_engine_new(const spr_docker_options *opts, spr_engine **out, spr_error **err)
{
	static const spr_docker_options defaults = {0};
	if (!out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_docker_engine_new: out is NULL");
	if (!opts)
		opts = &defaults;
	if (opts->pool_size < 0 || opts->max_runs < 0 || opts->ttl_seconds < 0 ||
	    opts->acquire_timeout_seconds < 0)
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"pool_size, max_runs, ttl_seconds and acquire_timeout_seconds must "
				"not be negative");
	struct spr_docker_engine *de = calloc(1, sizeof(*de));
	if (!de)
		return spr_fail_oom(err);
	spr_engine_init(&de->base, &docker_ops);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	de->pool_size = opts->pool_size ? opts->pool_size : (cpus < 1 ? 1 : cpus > 4 ? 4 : (int)cpus);
	de->max_runs = opts->max_runs ? opts->max_runs : 25;
	de->ttl_seconds = opts->ttl_seconds ? opts->ttl_seconds : 600;
	de->acquire_timeout_seconds = opts->acquire_timeout_seconds ? opts->acquire_timeout_seconds
								   : 120;
	const char *libexec = libexec_dir();
	int rc = asprintf(&de->worker_path, "%s/spr_worker.py", libexec) < 0 ? spr_fail_oom(err) : 0;
	if (rc == 0 && access(de->worker_path, R_OK) < 0)
		rc = spr_fail_errno(err, SPR_LAYER_WORKER,
				    "spr_worker.py not found at %s (set SPR_LIBEXEC_DIR)",
				    de->worker_path);
	if (rc == 0 && asprintf(&de->serve_path, "%s/spr_serve.py", libexec) < 0)
		rc = spr_fail_oom(err);
	if (rc == 0 && access(de->serve_path, R_OK) < 0)
		rc = spr_fail_errno(err, SPR_LAYER_WORKER,
				    "spr_serve.py not found at %s (set SPR_LIBEXEC_DIR)",
				    de->serve_path);
	/* The checklist: CLI, daemon, image, profile, pool. */
	if (rc == 0)
		rc = spr_docker_target_init(&de->target, opts, err);
	if (rc == 0)
		rc = spr_docker_ping(&de->target, err);
	if (rc == 0)
		rc = spr_docker_resolve_image(de, opts, libexec, err);
	if (rc == 0) {
		/* Containers of this image whose caller was killed before it
		 * could stop them. Best effort: they cost memory, not
		 * correctness, and `spr cleanup` finds them too. */
		int removed;
		spr_docker_remove_stale(&de->target, de->image_id, &removed, NULL);
		rc = write_profile(de, err);
	}
	if (rc == 0 && !(de->creator = spr_docker_creator_label()))
		rc = spr_fail_oom(err);
	if (rc == 0 && !(de->pool = spr_pool_new(de)))
		rc = spr_fail_oom(err);
	if (rc < 0) {
		spr_engine_free(&de->base);
		return -1;
	}
	*out = &de->base;
	return 0;
}
