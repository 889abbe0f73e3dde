#include "protocol/message.h"
#include "compile.h"

#include <math.h>

#include "json.h"

char *spr_policy_key(const struct spr_policy *p)
{
	_cleanup_cjson_ cJSON *o = spr_policy_to_cjson(p);
	return o ? spr_json_print(o) : NULL;
}

/* The worker part holds only what Python enforces. */
static char *worker_policy_json(const struct spr_policy *p)
{
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	const struct {
		const char *name;
		const cJSON *value;
	} lists[] = {
		{"blocked_imports", p->blocked_imports},   {"blocked_builtins", p->blocked_builtins},
		{"allowed_imports", p->allowed_imports},   {"allowed_builtins", p->allowed_builtins},
		{"allowed_globals", p->allowed_globals},   {"blocked_globals", p->blocked_globals},
		{"extra_globals", p->extra_globals},
	};
	if (!cJSON_AddStringToObject(o, "mode", p->mode == SPR_MODE_ALLOW ? "allow" : "restrict"))
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
		cJSON *dup = cJSON_Duplicate(lists[i].value, true);
		if (!dup || !cJSON_AddItemToObject(o, lists[i].name, dup)) {
			cJSON_Delete(dup);
			return NULL;
		}
	}
	return spr_json_print(o);
}

static void free_env(char **env)
{
	for (char **e = env; e && *e; e++)
		free(*e);
	free(env);
}

/* The fixed minimal environment; the policy's env may override any of it. */
static const char *const base_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
				       "LC_ALL=C.UTF-8"};

/* Those are the run's working directory on every engine. */
static bool workdir_variable(const char *name)
{
	return !strcmp(name, "HOME") || !strcmp(name, "TMPDIR");
}

static char **env_list(const cJSON *policy_env)
{
	size_t n = (size_t)cJSON_GetArraySize(policy_env) + ARRAY_SIZE(base_env);
	char **list = calloc(n + 1, sizeof(*list));
	if (!list)
		return NULL;
	size_t i = 0;
	for (size_t b = 0; b < ARRAY_SIZE(base_env); b++) {
		size_t name_len = strcspn(base_env[b], "=");
		if (cJSON_GetObjectItemCaseSensitive(policy_env,
						     strndupa(base_env[b], name_len)))
			continue;
		if (!(list[i++] = strdup(base_env[b]))) {
			free_env(list);
			return NULL;
		}
	}
	const cJSON *item;
	cJSON_ArrayForEach(item, policy_env)
	{
		if (workdir_variable(item->string))
			continue;
		if (asprintf(&list[i], "%s=%s", item->string, item->valuestring) < 0) {
			list[i] = NULL;
			free_env(list);
			return NULL;
		}
		i++;
	}
	return list;
}

/* The interpreter's flags: isolated (no PYTHON* variables, no user site,
 * no script directory on sys.path), no site (the worker gets the site
 * directories in its request), no .pyc writes, unbuffered (what the code
 * wrote before a kill is not lost in a buffer), UTF-8 whatever the locale. */
static const char *const python_flags[] = {"-I", "-S", "-B", "-u", "-X", "utf8", NULL};

/* Descriptor ceiling for the code: high enough for multiprocessing, low
 * enough that a leak is found quickly. */
#define RUN_NOFILE 1024

static void set_rlimit(spr_plan *plan, enum spr_rlimit_index which, uint64_t soft, uint64_t hard)
{
	plan->rlimits[which] = (struct spr_rlimit_plan){.set = true, .soft = soft, .hard = hard};
}

int spr_plan_compile(const struct spr_policy *p, spr_plan **out, spr_error **err)
{
	spr_plan *plan = calloc(1, sizeof(*plan));
	if (!plan)
		return spr_fail_oom(err);
	plan->refs = 1;
	plan->key = spr_policy_key(p);
	plan->worker_policy_json = worker_policy_json(p);
	plan->env = env_list(p->env);
	if (cJSON_GetArraySize(p->preload_imports) > 0 &&
	    !(plan->preload_imports_json = spr_json_print(p->preload_imports))) {
		spr_plan_unref(plan);
		return spr_fail_oom(err);
	}
	if (!plan->key || !plan->worker_policy_json || !plan->env) {
		spr_plan_unref(plan);
		return spr_fail_oom(err);
	}
	struct spr_limits *l = &plan->limits;
	l->timeout_seconds = p->timeout_seconds;
	/* Round up so a tiny positive timeout is never 0 ms ("no deadline"). */
	l->timeout_ms = (int64_t)ceil(p->timeout_seconds * 1000.0);
	if (l->timeout_ms < 1)
		l->timeout_ms = 1;
	l->memory_bytes = (uint64_t)p->memory_limit_mb << 20;
	l->max_processes = p->max_processes;
	l->cpu_cores = p->cpu_cores;
	l->cpu_seconds = p->cpu_seconds;
	l->tmp_bytes = (uint64_t)p->tmp_size_mb << 20;
	l->output_cap = (size_t)p->max_output_kb * 1024;
	plan->network = p->network;
	const cJSON *layer;
	cJSON_ArrayForEach(layer, p->require)
	{
		int i = spr_layer_req_find(layer->valuestring);
		if (i >= 0)
			plan->require |= 1u << i;
	}
	if (p->network && (plan->require & (1u << SPR_REQ_NETWORK_OFF))) {
		spr_plan_unref(plan);
		return spr_fail(err, SPR_LAYER_POLICY, EINVAL,
				"'require' names network-off but 'network' is true: drop one of them");
	}
	plan->python_flags = python_flags;
	plan->workdir = SPR_RUN_WORKDIR;
	plan->scratch[0] = (struct spr_scratch){SPR_RUN_WORKDIR, l->tmp_bytes, 01777};
	plan->scratch[1] = (struct spr_scratch){"/dev/shm", l->tmp_bytes, 01777};
	set_rlimit(plan, SPR_RLIM_FSIZE, l->tmp_bytes, l->tmp_bytes);
	set_rlimit(plan, SPR_RLIM_CORE, 0, 0);
	set_rlimit(plan, SPR_RLIM_NOFILE, RUN_NOFILE, RUN_NOFILE);
	if (l->cpu_seconds > 0) {
		/* SIGXCPU at the limit, SIGKILL one second later if ignored. */
		uint64_t secs = (uint64_t)ceil(l->cpu_seconds);
		set_rlimit(plan, SPR_RLIM_CPU, secs, secs + 1);
	}
	*out = plan;
	return 0;
}

spr_plan *spr_plan_ref(spr_plan *plan)
{
	__atomic_add_fetch(&plan->refs, 1, __ATOMIC_RELAXED);
	return plan;
}

void spr_plan_unref(spr_plan *plan)
{
	if (!plan || __atomic_sub_fetch(&plan->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	free(plan->key);
	free(plan->worker_policy_json);
	free(plan->preload_imports_json);
	free_env(plan->env);
	free(plan);
}
