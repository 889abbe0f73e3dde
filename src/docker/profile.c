#include "docker/profile.h"

#include <cJSON.h>
#include <pthread.h>
#include <seccomp.h>
#include <sys/resource.h>

#include "json.h"
#include "policy/seccomp.h"
#include "argv.h"
#include "docker/docker_engine.h"
#include "protocol/plan.h"
#include <inttypes.h>

static const char *op_name(enum spr_seccomp_cmp cmp)
{
	switch (cmp) {
	case SPR_CMP_NE: return "SCMP_CMP_NE";
	case SPR_CMP_GT: return "SCMP_CMP_GT";
	case SPR_CMP_EQ: return "SCMP_CMP_EQ";
	default: return "SCMP_CMP_MASKED_EQ";
	}
}

static void add_rule(cJSON *calls, const struct spr_seccomp_rule *r)
{
	if (seccomp_syscall_resolve_name(r->syscall) == __NR_SCMP_ERROR)
		return;
	cJSON *e = cJSON_CreateObject();
	cJSON *names = cJSON_AddArrayToObject(e, "names");
	cJSON_AddItemToArray(names, cJSON_CreateString(r->syscall));
	cJSON_AddStringToObject(e, "action", "SCMP_ACT_ERRNO");
	cJSON_AddNumberToObject(e, "errnoRet", r->errnum);
	if (r->cmp != SPR_CMP_ANY) {
		cJSON *args = cJSON_AddArrayToObject(e, "args");
		cJSON *a = cJSON_CreateObject();
		cJSON_AddNumberToObject(a, "index", r->arg);
		bool masked = r->cmp == SPR_CMP_MASKED_EQ;
		cJSON_AddItemToObject(a, "value",
				      spr_json_new_integer((int64_t)(masked ? r->mask : r->value)));
		cJSON_AddItemToObject(a, "valueTwo",
				      spr_json_new_integer((int64_t)(masked ? r->value : 0)));
		cJSON_AddStringToObject(a, "op", op_name(r->cmp));
		cJSON_AddItemToArray(args, a);
	}
	cJSON_AddItemToArray(calls, e);
}

/* The container's profile: the run's rule table but what setting a
 * sandbox up needs (seccomp.h), which each run's own filter refuses. One
 * entry per rule: Docker ORs entries for the same syscall, exactly like
 * libseccomp does for several rules on one syscall. */
static cJSON *build(void)
{
	size_t n;
	const struct spr_seccomp_rule *rules = spr_seccomp_rules(&n);
	cJSON *p = cJSON_CreateObject();
	cJSON_AddStringToObject(p, "defaultAction", "SCMP_ACT_ALLOW");
	/* Only the native architecture: i386 (int 0x80) and x32 calls hit
	 * the runtime's bad-architecture action instead of our rules. */
	cJSON *arches = cJSON_AddArrayToObject(p, "architectures");
	cJSON_AddItemToArray(arches, cJSON_CreateString("SCMP_ARCH_X86_64"));
	cJSON *calls = cJSON_AddArrayToObject(p, "syscalls");
	for (size_t i = 0; i < n; i++)
		if (!spr_seccomp_rule_is_sandbox_setup(&rules[i]))
			add_rule(calls, &rules[i]);
	const struct spr_seccomp_rule *sockets = spr_seccomp_container_socket_rules(&n);
	for (size_t i = 0; i < n; i++)
		add_rule(calls, &sockets[i]);
	return p;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char *profile;

static void make_profile(void)
{
	cJSON *p = build();
	profile = p ? spr_json_print(p) : NULL;
	cJSON_Delete(p);
}

const char *spr_docker_seccomp_profile(spr_error **err)
{
	pthread_once(&once, make_profile);
	if (!profile)
		spr_fail_oom(err);
	return profile;
}

/* A hard limit of the caller's, for what a local podman (which sets
 * rlimits with the caller's rights, unlike a daemon or a service) may ask
 * for. */
static uint64_t within_caller(const struct spr_docker_target *t, int resource, uint64_t want)
{
	struct rlimit r;
	bool local_podman = t->podman && !t->host && !t->context;
	if (local_podman && getrlimit(resource, &r) == 0 && r.rlim_max != RLIM_INFINITY &&
	    want > r.rlim_max)
		return r.rlim_max;
	return want;
}

void spr_docker_run_flags(struct spr_argv *b, const spr_plan *plan, const char *seccomp_file,
			  uint32_t uid, const struct spr_docker_target *t)
{
	const struct spr_limits *l = &plan->limits;
	uint64_t memory = l->memory_bytes + SPR_CONTAINER_MEMORY_HEADROOM;
	spr_argv_add(b, "--network");
	spr_argv_add(b, plan->network ? "bridge" : "none");
	spr_argv_add(b, "--read-only");
	spr_argv_add(b, "--cap-drop");
	spr_argv_add(b, "ALL");
	spr_argv_add(b, "--security-opt");
	spr_argv_add(b, "no-new-privileges");
	spr_argv_add(b, "--security-opt");
	spr_argv_addf(b, "seccomp=%s", seccomp_file);
	/* A fresh /proc for each run's pid namespace: the kernel refuses to
	 * mount one where a runtime covered parts of the container's /proc
	 * (masked paths). What that unmasks is root's, and the container's
	 * processes are not root. */
	spr_argv_add(b, "--security-opt");
	spr_argv_add(b, t->podman ? "unmask=ALL" : "systempaths=unconfined");
	spr_argv_add(b, "--user");
	spr_argv_addf(b, "%" PRIu32 ":%" PRIu32, uid, uid);
	/* Every rlimit the container starts with, said (podman would set
	 * them above the caller's hard limits, which it may not raise). */
	uint64_t nofile = within_caller(t, RLIMIT_NOFILE, 4096);
	uint64_t nproc = within_caller(t, RLIMIT_NPROC, (uint64_t)l->max_processes * 2 + 16 +
							 SPR_CONTAINER_PROCESSES);
	spr_argv_add(b, "--ulimit");
	spr_argv_addf(b, "nofile=%llu:%llu", (unsigned long long)nofile, (unsigned long long)nofile);
	spr_argv_add(b, "--ulimit");
	spr_argv_addf(b, "nproc=%llu:%llu", (unsigned long long)nproc, (unsigned long long)nproc);
	if (t->limits) {
		spr_argv_add(b, "--pids-limit");
		spr_argv_addf(b, "%lld", (long long)l->max_processes + SPR_CONTAINER_PROCESSES);
		spr_argv_add(b, "--memory");
		spr_argv_addf(b, "%llub", (unsigned long long)memory);
		spr_argv_add(b, "--memory-swap"); /* equal to --memory: no swap */
		spr_argv_addf(b, "%llub", (unsigned long long)memory);
		spr_argv_add(b, "--cpus");
		spr_argv_addf(b, "%g", l->cpu_cores);
	}
	/* The container's own IPC namespace, without even a /dev/shm: each
	 * run has its own inside. */
	spr_argv_add(b, "--ipc");
	spr_argv_add(b, "none");
	/* The agent's only writable place (the compiled worker); no run
	 * sees it. */
	spr_argv_add(b, "--tmpfs");
	spr_argv_add(b, "/tmp:rw,noexec,nosuid,nodev,size=4m,mode=1777");
	spr_argv_add(b, "--log-driver");
	spr_argv_add(b, "none");
	spr_argv_add(b, "--workdir");
	spr_argv_add(b, "/");
}

int spr_docker_sandbox_plan(const spr_plan *plan, bool limits,
			    spr_buf *out, spr_error **err)
{
	_cleanup_free_ struct spr_sandbox_plan *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return spr_fail_oom(err);
	/* The agent puts its interpreter and the worker's path in place of
	 * the first and last. */
	const char *argv[SPR_PLAN_MAX_ARGS];
	size_t n = 0;
	argv[n++] = "python3";
	for (const char *const *f = plan->python_flags; *f && n < SPR_PLAN_MAX_ARGS - 2; f++)
		argv[n++] = *f;
	argv[n++] = "spr_worker.pyc";
	sp->argv = (struct spr_strv){argv, n};
	size_t nenv = 0;
	while (plan->env[nenv])
		nenv++;
	/* The worker's preloads, imported from the image's packages (what
	 * the request's sys_path says, docker/image.c). */
	_cleanup_free_ char *preload = NULL;
	if (spr_worker_preload_env(plan,
				   &(struct spr_worker_request_opts){
					   .sys_path_json = "[\"" SPR_DOCKER_SITE_DIR "\"]"},
				   &preload, err) < 0)
		return -1;
	_cleanup_free_ const char **env = calloc(nenv + 2, sizeof(*env));
	if (!env)
		return spr_fail_oom(err);
	memcpy(env, plan->env, nenv * sizeof(*env));
	if (preload)
		env[nenv++] = preload;
	sp->env = (struct spr_strv){env, nenv};
	memcpy(sp->rlimits, plan->rlimits, sizeof(sp->rlimits));
	/* The container's pids limit is the real one; this backstop counts
	 * every process of the container's uid. */
	uint64_t nproc = (uint64_t)plan->limits.max_processes * 2 + 16;
	if (!limits) {
		/* No cgroup limits the container (rootless podman on cgroup
		 * v1): rlimits stand in, as in the LocalEngine's degraded mode
		 * (the container's uid is the run's alone: RLIMIT_NPROC counts
		 * it). */
		nproc = (uint64_t)plan->limits.max_processes + SPR_CONTAINER_PROCESSES;
		uint64_t as = plan->limits.memory_bytes;
		sp->rlimits[SPR_RLIM_AS] = (struct spr_rlimit_plan){true, as, as};
	}
	sp->rlimits[SPR_RLIM_NPROC] = (struct spr_rlimit_plan){true, nproc, nproc};
	uint32_t needed = spr_filters_needed(plan->network, false);
	if (spr_seccomp_plan_filters(sp, needed, err) < 0)
		return -1;
	sp->layout_request.by_agent = true;
	memcpy(sp->layout_request.scratch, plan->scratch, sizeof(plan->scratch));
	sp->layout_request.extra_ro.v[0] = SPR_DOCKER_SITE_DIR;
	sp->layout_request.extra_ro.n = 1;
	sp->layout_request.network = plan->network;
	sp->layout_request.workdir = plan->workdir;
	sp->layout_request.limits = limits;
	return spr_plan_encode(sp, out, err);
}
