/* DockerEngine construction and one run. */
#include <fcntl.h>
#include <pwd.h>
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
	free(de->seccomp_file); /* shared by every engine of this build: kept */
	free(de->cli_dir);
	spr_docker_target_free(&de->target);
	free(de->image);
	free(de->image_id);
	free(de->sys_path_json);
	free(de->worker_path);
	free(de->agent_path);
	free(de->lease_file);
	spr_buf_free(&de->payload);
	free(de->creator);
	free(de);
}

/* The isolation a DockerEngine run reports (SPEC §3): what its sandbox
 * applied inside the container, and the container it shared. */
static char *isolation_json(const struct spr_docker_engine *de, const spr_plan *plan,
			    const struct spr_pool_outcome *o)
{
	const struct spr_applied *a = &o->applied;
	_cleanup_cjson_ cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "name", o->container);
	cJSON_AddNumberToObject(c, "run", o->container_run);
	int max_runs = spr_docker_max_runs(de, plan);
	cJSON_AddNumberToObject(c, "max_runs", max_runs);
	cJSON_AddBoolToObject(c, "shared", max_runs > 1);
	_cleanup_cjson_ cJSON *i = cJSON_CreateObject();
	cJSON_AddStringToObject(i, "engine", "docker");
	cJSON_AddStringToObject(i, "image", de->image);
	cJSON_AddStringToObject(i, "image_id", de->image_id);
	cJSON_AddBoolToObject(i, "userns", a->namespaces);
	cJSON_AddBoolToObject(i, "pidns", a->namespaces);
	cJSON_AddBoolToObject(i, "netns", a->namespaces && !a->network_shared);
	cJSON_AddBoolToObject(i, "mountns", a->namespaces);
	cJSON_AddStringToObject(i, "network", plan->network ? "bridge" : "none");
	cJSON_AddStringToObject(i, "seccomp", a->seccomp == SPR_SECCOMP_NO_UNIX_LOADED
						      ? SPR_SECCOMP_PROFILE_NO_UNIX
					      : a->seccomp == SPR_SECCOMP_DEFAULT_LOADED
						      ? SPR_SECCOMP_PROFILE
						      : "none");
	cJSON_AddBoolToObject(i, "landlock", a->landlock_abi > 0);
	if (a->landlock_abi > 0)
		cJSON_AddNumberToObject(i, "landlock_abi", a->landlock_abi);
	cJSON_AddBoolToObject(i, "read_only_root", true);
	cJSON_AddBoolToObject(i, "capabilities", false);
	cJSON_AddStringToObject(i, "memory", de->target.limits ? "cgroup" : "rlimit");
	cJSON_AddStringToObject(i, "memfd_exec", a->memfd_noexec ? "refused" : "allowed");
	/* Rootless podman: the container's uid is one of the user's
	 * subordinate ones on the host. */
	cJSON_AddNumberToObject(i, "host_uid",
				de->target.rootless
					? (double)((uint64_t)de->rootless_map.outside + o->host_uid -
						   de->rootless_map.inside)
					: (double)o->host_uid);
	cJSON_AddStringToObject(i, "runtime", spr_docker_cli_name(&de->target));
	if (de->target.podman)
		cJSON_AddBoolToObject(i, "rootless", de->target.rootless);
	cJSON_AddBoolToObject(i, "degraded", !de->target.limits);
	cJSON_AddItemToObject(i, "container", steal_pointer(&c));
	return cJSON_PrintUnformatted(i);
}

static int docker_run(spr_engine *engine, spr_plan *plan, const struct spr_request *req,
		      struct spr_result **out, spr_error **err)
{
	struct spr_docker_engine *de = (struct spr_docker_engine *)engine;
	_cleanup_buf_ spr_buf request = SPR_BUF_INIT;
	spr_worker_request(&request, plan, req,
			   &(struct spr_worker_request_opts){.sys_path_json = de->sys_path_json});
	if (request.oom)
		return spr_fail_oom(err);
	struct spr_output_tap tap = spr_output_tap_for(req, plan->limits.output_cap);
	SPR_CLEANUP(spr_pool_outcome_free) struct spr_pool_outcome o = {
		.facts = {.memory_peak_kb = -1}, .tap = &tap};
	int64_t t0 = spr_now_ms();
	if (spr_pool_run(de->pool, plan, &request, &o, err) < 0)
		return -1;
	/* A run no sandbox took has no isolation to report. */
	_cleanup_free_ char *isolation = o.started ? isolation_json(de, plan, &o) : NULL;
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
	.min_processes_why = "the sandbox's init and the worker",
	.run = docker_run,
	.destroy = docker_destroy,
};

/* Whether path holds exactly len bytes of data. */
static bool file_holds(const char *path, const char *data, size_t len)
{
	_cleanup_buf_ spr_buf have = SPR_BUF_INIT;
	return spr_read_file(path, &have) && have.len == len && !memcmp(have.data, data, len);
}

/* The outer profile, named by its content in our cache directory: every
 * engine of a build shares one file, written once (aside, then renamed
 * into place whole), so an engine killed before it could remove a file
 * of its own leaves nothing behind. */
static int write_profile(struct spr_docker_engine *de, spr_error **err)
{
	const char *profile = spr_docker_seccomp_profile(err);
	if (!profile)
		return -1;
	size_t len = strlen(profile);
	_cleanup_free_ char *dir = spr_cache_dir();
	if (!dir)
		return spr_fail(err, SPR_LAYER_DOCKER, EACCES,
				"no private cache directory for the containers' seccomp profile "
				"(set SPR_CACHE_DIR to a directory only this user may write)");
	if (!(de->cli_dir = strdup(dir)))
		return spr_fail_oom(err);
	if (asprintf(&de->seccomp_file, "%s/seccomp-%016llx.json", dir,
		     (unsigned long long)spr_fnv1a(SPR_FNV_OFFSET, profile, len)) < 0) {
		de->seccomp_file = NULL; /* asprintf leaves it undefined */
		return spr_fail_oom(err);
	}
	if (file_holds(de->seccomp_file, profile, len))
		return 0;
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.%d.XXXXXX", de->seccomp_file, (int)getpid()) < 0) {
		tmp = NULL;
		return spr_fail_oom(err);
	}
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	ssize_t wrote = fd >= 0 ? write(fd, profile, len) : -1;
	if (wrote >= 0 && wrote != (ssize_t)len)
		errno = ENOSPC; /* a short write sets no errno */
	bool ok = wrote == (ssize_t)len && rename(tmp, de->seccomp_file) == 0;
	if (!ok) {
		spr_fail_errno(err, SPR_LAYER_DOCKER, "writing the seccomp profile %s",
			       de->seccomp_file);
		if (fd >= 0)
			unlink(tmp);
		return -1;
	}
	return 0;
}

/* What every container gets on stdin when it starts (pool.c's bootstrap
 * reads it): the worker's source, a NUL, spr-sandbox linked statically
 * (any image's libc will do). */
static int find_payload(struct spr_docker_engine *de, const char *libexec, spr_error **err)
{
	if (asprintf(&de->worker_path, "%s/spr_worker.py", libexec) < 0 ||
	    asprintf(&de->agent_path, "%s/spr-sandbox-static", libexec) < 0)
		return spr_fail_oom(err);
	if (!spr_read_file(de->worker_path, &de->payload))
		return spr_fail_errno(err, SPR_LAYER_WORKER,
				      "spr_worker.py not found at %s (set SPR_LIBEXEC_DIR)",
				      de->worker_path);
	spr_buf_putc(&de->payload, '\0');
	if (!spr_read_file(de->agent_path, &de->payload))
		return spr_fail_errno(err, SPR_LAYER_WORKER,
				      "spr-sandbox-static not found at %s (set SPR_LIBEXEC_DIR)",
				      de->agent_path);
	return de->payload.oom ? spr_fail_oom(err) : 0;
}

/* Where containers' uids are leased: the host-wide file every engine of
 * this host uses, so a container's uid is never a LocalEngine run's or
 * another engine's container's. A caller that may not write it (not root,
 * and no one made it writable for the docker group) leases in its own
 * cache directory: unique among its own engines only (SPEC §5 says how to
 * share a range between users). */
static int choose_lease_file(struct spr_docker_engine *de, spr_error **err)
{
	if (geteuid() == 0 || access(SPR_UID_LEASE_FILE, W_OK) == 0) {
		de->lease_file = strdup(SPR_UID_LEASE_FILE);
	} else {
		_cleanup_free_ char *dir = spr_cache_dir();
		if (!dir)
			return spr_fail(err, SPR_LAYER_DOCKER, ENOENT,
					"no writable %s and no cache directory for the containers' uid "
					"leases (set HOME or XDG_CACHE_HOME)",
					SPR_UID_LEASE_FILE);
		if (asprintf(&de->lease_file, "%s/uid-leases", dir) < 0)
			de->lease_file = NULL;
	}
	return de->lease_file ? 0 : spr_fail_oom(err);
}

/* A runtime that would ignore the limits (rootless podman on cgroup v1,
 * or on v2 without delegated controllers) fails closed, unless degrading
 * was asked for: then rlimits stand in, and isolation says so. */
static int check_limits(struct spr_docker_engine *de, const spr_docker_options *o,
			spr_error **err)
{
	if (de->target.limits || o->allow_degraded)
		return 0;
	return spr_fail(err, SPR_LAYER_DOCKER, EPERM,
			"rootless podman cannot enforce memory, process or CPU limits here (cgroup "
			"v%d%s): run podman as root, or on a cgroup v2 host whose user slice has the "
			"memory, pids and cpu controllers delegated (systemd: Delegate=yes for "
			"user@.service), or pass allow_degraded / --allow-degraded to run with "
			"rlimits only (reported in isolation)",
			de->target.cgroup_version,
			de->target.cgroup_version == 1 ? ": podman ignores limits there" : "");
}

/* A remote podman service opens the seccomp profile at the path the
 * client names, on its own host (docker's CLI sends the profile itself):
 * only a service on this host's unix socket reads the file spr wrote. */
static int check_podman_remote(const struct spr_docker_target *t, spr_error **err)
{
	if (!t->podman || (!t->context && (!t->host || !strncmp(t->host, "unix://", 7))))
		return 0;
	return spr_fail(err, SPR_LAYER_DOCKER, EOPNOTSUPP,
			"podman reads a container's seccomp profile on the service's host, and "
			"spr's profile is a file on this one: run spr on the podman host (a "
			"service here is reached with docker_host unix://PATH), or use a docker "
			"daemon, whose CLI sends the profile along (%s)",
			t->context ? "docker_context names a podman connection" : t->host);
}

/* Rootless podman maps a container's uids onto the user's subordinate
 * ids: a container's own uid is leased from 10000-65535 inside (uid_range
 * does not apply), and its host uid is where podman's own map (podman
 * info: host.idMappings) puts it. */
#define ROOTLESS_UIDS_START 10000u
#define ROOTLESS_UIDS_COUNT 55536u
static int rootless_ids(struct spr_docker_engine *de, spr_error **err)
{
	de->uid_range = (struct spr_uid_range){ROOTLESS_UIDS_START, ROOTLESS_UIDS_COUNT};
	const uint64_t first = ROOTLESS_UIDS_START, last = first + ROOTLESS_UIDS_COUNT - 1;
	for (size_t i = 0; i < de->target.nuidmap; i++) {
		const struct spr_id_map *m = &de->target.uidmap[i];
		if (m->inside <= first && last < (uint64_t)m->inside + m->count) {
			de->rootless_map = *m;
			return 0;
		}
	}
	return spr_fail(err, SPR_LAYER_DOCKER, ENOENT,
			"rootless podman maps no range of this user's subordinate uids over the "
			"container uids %llu-%llu spr leases (podman info: host.idMappings): give "
			"the user a range of at least 65536 ids (usermod --add-subuids START-END "
			"USER, then podman system migrate)",
			(unsigned long long)first, (unsigned long long)last);
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
	int rc = find_payload(de, libexec, err);
	/* Ids of this host's accounts are checked where the daemon is this
	 * host's; a remote daemon's are the docs' to explain (SPEC §5). */
	bool remote = opts->docker_context || opts->docker_host || opts->ssh_host;
	if (rc == 0)
		rc = spr_uid_range_choose(opts->uid_range, !remote, &de->uid_range, err);
	if (rc == 0)
		rc = choose_lease_file(de, err);
	/* The checklist: CLI, daemon, what it enforces, image, profile, pool. */
	if (rc == 0)
		rc = spr_docker_target_init(&de->target, opts, err);
	if (rc == 0)
		rc = check_podman_remote(&de->target, err);
	if (rc == 0)
		rc = spr_docker_ping(&de->target, err);
	if (rc == 0)
		rc = check_limits(de, opts, err);
	if (rc == 0 && de->target.rootless)
		rc = rootless_ids(de, err);
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
