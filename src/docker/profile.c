#include "docker/profile.h"

#include <cJSON.h>
#include <pthread.h>
#include <seccomp.h>

#include "json.h"
#include "policy/seccomp.h"
#include "argv.h"

static const char *op_name(enum spr_seccomp_cmp cmp)
{
	switch (cmp) {
	case SPR_CMP_NE: return "SCMP_CMP_NE";
	case SPR_CMP_GT: return "SCMP_CMP_GT";
	case SPR_CMP_EQ: return "SCMP_CMP_EQ";
	default: return "SCMP_CMP_MASKED_EQ";
	}
}

/* One entry per rule: Docker ORs entries for the same syscall, exactly
 * like libseccomp does for several rules on one syscall. */
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
	for (size_t i = 0; i < n; i++) {
		const struct spr_seccomp_rule *r = &rules[i];
		if (seccomp_syscall_resolve_name(r->syscall) == __NR_SCMP_ERROR)
			continue;
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

void spr_docker_run_flags(struct spr_argv *b, const spr_plan *plan, const char *seccomp_file)
{
	const struct spr_limits *l = &plan->limits;
	spr_argv_add(b, "--network");
	spr_argv_add(b, plan->network ? "bridge" : "none");
	spr_argv_add(b, "--read-only");
	spr_argv_add(b, "--cap-drop");
	spr_argv_add(b, "ALL");
	spr_argv_add(b, "--security-opt");
	spr_argv_add(b, "no-new-privileges");
	spr_argv_add(b, "--security-opt");
	spr_argv_addf(b, "seccomp=%s", seccomp_file);
	spr_argv_add(b, "--user");
	spr_argv_add(b, SPR_DOCKER_USER);
	spr_argv_add(b, "--pids-limit");
	spr_argv_addf(b, "%lld", (long long)l->max_processes);
	spr_argv_add(b, "--memory");
	spr_argv_addf(b, "%llub", (unsigned long long)l->memory_bytes);
	spr_argv_add(b, "--memory-swap"); /* equal to --memory: no swap */
	spr_argv_addf(b, "%llub", (unsigned long long)l->memory_bytes);
	spr_argv_add(b, "--cpus");
	spr_argv_addf(b, "%g", l->cpu_cores);
	/* No IPC namespace sharing; POSIX semaphores (multiprocessing) still
	 * get a /dev/shm: the plan's, private, counted toward the memory
	 * limit like /tmp. */
	spr_argv_add(b, "--ipc");
	spr_argv_add(b, "none");
	for (size_t i = 0; i < SPR_PLAN_NSCRATCH; i++) {
		const struct spr_scratch *s = &plan->scratch[i];
		spr_argv_add(b, "--tmpfs");
		spr_argv_addf(b, "%s:rw,noexec,nosuid,nodev,size=%llu,mode=%o", s->path,
			      (unsigned long long)s->bytes, (unsigned)s->mode);
	}
	spr_argv_add(b, "--log-driver");
	spr_argv_add(b, "none");
	spr_argv_add(b, "--workdir");
	spr_argv_add(b, plan->workdir);
	for (char **e = plan->env; *e; e++) {
		spr_argv_add(b, "--env");
		spr_argv_add(b, *e);
	}
	static const char *const workdir_variables[] = {"HOME", "TMPDIR"};
	for (size_t i = 0; i < ARRAY_SIZE(workdir_variables); i++) {
		spr_argv_add(b, "--env");
		spr_argv_addf(b, "%s=%s", workdir_variables[i], plan->workdir);
	}
}
