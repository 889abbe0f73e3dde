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

static char **env_list(const cJSON *env)
{
	size_t n = (size_t)cJSON_GetArraySize(env);
	char **list = calloc(n + 1, sizeof(*list));
	if (!list)
		return NULL;
	size_t i = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, env)
	{
		if (asprintf(&list[i], "%s=%s", item->string, item->valuestring) < 0) {
			for (size_t j = 0; j < i; j++)
				free(list[j]);
			free(list);
			return NULL;
		}
		i++;
	}
	return list;
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
	if (plan->env)
		for (char **e = plan->env; *e; e++)
			free(*e);
	free(plan->env);
	free(plan);
}
