/* spr_run / spr_run_json: validate the request, find the plan, hand the
 * run to the engine. */
#include <sys/wait.h>

#include "protocol/message.h"
#include "engine/engine.h"

#include "json.h"
#include "utf8.h"

void spr_engine_init(spr_engine *engine, const struct spr_engine_ops *ops)
{
	engine->ops = ops;
	pthread_mutex_init(&engine->lock, NULL);
}

void spr_engine_free(spr_engine *engine)
{
	if (!engine)
		return;
	for (size_t i = 0; i < SPR_PLAN_CACHE_SLOTS; i++)
		spr_plan_unref(engine->plans[i]);
	pthread_mutex_destroy(&engine->lock);
	engine->ops->destroy(engine);
}

int spr_engine_plan(spr_engine *engine, const struct spr_policy *policy, spr_plan **out,
		    spr_error **err)
{
	_cleanup_free_ char *key = spr_policy_key(policy);
	if (!key)
		return spr_fail_oom(err);
	pthread_mutex_lock(&engine->lock);
	for (size_t i = 0; i < SPR_PLAN_CACHE_SLOTS; i++) {
		spr_plan *p = engine->plans[i];
		if (p && !strcmp(p->key, key)) {
			*out = spr_plan_ref(p);
			pthread_mutex_unlock(&engine->lock);
			return 0;
		}
	}
	pthread_mutex_unlock(&engine->lock);

	/* Compile outside the lock; a racing thread may compile the same
	 * policy too, which is harmless. */
	spr_plan *plan = NULL;
	if (spr_plan_compile(policy, &plan, err) < 0)
		return -1;
	pthread_mutex_lock(&engine->lock);
	unsigned slot = engine->next_slot++ % SPR_PLAN_CACHE_SLOTS;
	spr_plan_unref(engine->plans[slot]);
	engine->plans[slot] = spr_plan_ref(plan);
	pthread_mutex_unlock(&engine->lock);
	*out = plan;
	return 0;
}

void spr_worker_request(spr_buf *out, const spr_plan *plan, const struct spr_request *req,
			const struct spr_worker_request_opts *opts)
{
	spr_buf_puts(out, "{\"code\":");
	spr_json_write_string(out, req->code, req->code_len);
	spr_buf_puts(out, ",\"input_data\":");
	spr_buf_append(out, req->input_json, req->input_len);
	spr_buf_puts(out, ",\"policy\":");
	spr_buf_puts(out, plan->worker_policy_json);
	if (opts->sys_path_json) {
		spr_buf_puts(out, ",\"sys_path\":");
		spr_buf_puts(out, opts->sys_path_json);
	}
	if (opts->venv) {
		spr_buf_puts(out, ",\"prefix\":");
		spr_json_write_string(out, opts->venv, strlen(opts->venv));
	}
	spr_buf_putc(out, '}');
}

int spr_worker_preload_env(const spr_plan *plan, const struct spr_worker_request_opts *opts,
			   char **out, spr_error **err)
{
	*out = NULL;
	if (!plan->preload_imports_json)
		return 0;
	spr_buf b = SPR_BUF_INIT;
	spr_buf_puts(&b, SPR_PRELOAD_ENV "={\"imports\":");
	spr_buf_puts(&b, plan->preload_imports_json);
	if (opts->sys_path_json) {
		spr_buf_puts(&b, ",\"sys_path\":");
		spr_buf_puts(&b, opts->sys_path_json);
	}
	if (opts->venv) {
		spr_buf_puts(&b, ",\"prefix\":");
		spr_json_write_string(&b, opts->venv, strlen(opts->venv));
	}
	spr_buf_putc(&b, '}');
	*out = spr_buf_steal(&b, NULL);
	return *out ? 0 : spr_fail_oom(err);
}

void spr_facts_from_exit(struct spr_run_facts *f, const struct spr_msg *m)
{
	int st = m->exit.status;
	if (st >= 0) {
		f->have_status = true;
		f->exited = WIFEXITED(st);
		f->exit_status = f->exited ? WEXITSTATUS(st) : 0;
		f->signaled = WIFSIGNALED(st);
		f->term_signal = f->signaled ? WTERMSIG(st) : 0;
	}
	f->memory_peak_kb = m->exit.maxrss_kb;
	f->oom_killed = m->exit.oom_killed;
	f->pids_limit_hit = m->exit.pids_limit_hit;
	f->cpu_limit_hit = m->exit.cpu_limit_hit;
}

int spr_infra_result(const spr_error *cause, const char *isolation_json, int64_t duration_ms,
		     struct spr_result **out, spr_error **err)
{
	struct spr_run_facts facts = {
		.infra_error = cause,
		.isolation_json = isolation_json,
		.duration_ms = duration_ms,
		.memory_peak_kb = -1,
	};
	return spr_marshal(&facts, out, err);
}

int spr_result_from_error(const spr_error *cause, spr_result **out, spr_error **err)
{
	if (!cause || !out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_result_from_error: NULL argument");
	return spr_infra_result(cause, NULL, 0, out, err);
}

static int check_code(const char *code, size_t len, spr_error **err)
{
	size_t bad = 0;
	if (!spr_utf8_valid(code, len, &bad))
		return spr_fail(err, SPR_LAYER_REQUEST, EILSEQ,
				"code is not valid UTF-8 (first bad byte at offset %zu); Python "
				"source must be UTF-8",
				bad);
	return 0;
}

/* A policy valid in general may still be one this engine can never run:
 * a policy error (exit 2), before any sandbox exists. */
static int check_floors(const spr_engine *engine, const spr_plan *plan, spr_error **err)
{
	const struct spr_engine_ops *ops = engine->ops;
	if (plan->limits.max_processes < ops->min_processes)
		return spr_fail(err, SPR_LAYER_POLICY, EINVAL,
				"'max_processes' must be at least %lld on the %s engine (%s), not %lld",
				(long long)ops->min_processes, ops->name, ops->min_processes_why,
				(long long)plan->limits.max_processes);
	return 0;
}

struct spr_output_tap spr_output_tap_for(const struct spr_request *req, uint64_t output_cap)
{
	return (struct spr_output_tap){.fn = req->on_output, .user = req->output_user,
				       .cap = output_cap};
}

void spr_output_tap_send(struct spr_output_tap *tap, int stream, const char *data, size_t len)
{
	if (!tap || !tap->fn || (stream != 1 && stream != 2) || !len)
		return;
	uint64_t *sent = &tap->sent[stream - 1];
	if (*sent >= tap->cap)
		return;
	size_t n = tap->cap - *sent < len ? (size_t)(tap->cap - *sent) : len;
	*sent += n;
	tap->fn(tap->user, stream, data, n);
}

int spr_run(spr_engine *engine, const spr_policy *policy, const char *code, size_t code_len,
	    const char *input_json, spr_result **out, spr_error **err)
{
	return spr_run_with(engine, policy, code, code_len, input_json, NULL, out, err);
}

int spr_run_with(spr_engine *engine, const spr_policy *policy, const char *code, size_t code_len,
		 const char *input_json, const spr_run_options *opts, spr_result **out,
		 spr_error **err)
{
	if (!engine || !out || (!code && code_len))
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_run: NULL argument");
	if (check_code(code ? code : "", code_len, err) < 0)
		return -1;
	size_t input_len = input_json ? strlen(input_json) : 2;
	if (!input_json)
		input_json = "{}";
	/* Forwarded verbatim (big integers stay exact), so validate it here:
	 * a bad input is the caller's error, not a failed run. */
	if (spr_json_validate(input_json, input_len, SPR_JSON_ALLOW_NUL, "input_data", err) < 0)
		return -1;

	_cleanup_policy_ struct spr_policy *defaults = NULL;
	if (!policy) {
		if (spr_policy_new(&defaults, err) < 0)
			return -1;
		policy = defaults;
	}
	_cleanup_plan_ spr_plan *plan = NULL;
	if (spr_engine_plan(engine, policy, &plan, err) < 0 || check_floors(engine, plan, err) < 0)
		return -1;
	struct spr_request req = {
		.code = code ? code : "",
		.code_len = code_len,
		.input_json = input_json,
		.input_len = input_len,
		.on_output = opts ? opts->on_output : NULL,
		.output_user = opts ? opts->user : NULL,
	};
	return engine->ops->run(engine, plan, &req, out, err);
}

/* ---- spr_run_json ------------------------------------------------------------ */

struct json_request {
	char *code;
	size_t code_len;
	char *input;
	spr_policy *policy;
};

static void json_request_free(struct json_request *r)
{
	free(r->code);
	free(r->input);
	spr_policy_free(r->policy);
}

static int request_fail(spr_error **err, const char *text, size_t len, const cJSON *node,
			const char *what)
{
	size_t start, end;
	unsigned line = 0, col = 0;
	if (node && spr_json_span(node, &start, &end))
		spr_json_line_col(text, len, start, &line, &col);
	if (line)
		return spr_fail(err, SPR_LAYER_REQUEST, EINVAL, "request:%u:%u: %s", line, col,
				what);
	return spr_fail(err, SPR_LAYER_REQUEST, EINVAL, "request: %s", what);
}

/* Whether the JSON text of node holds \u0000 (in a string or a key). */
static bool holds_nul(const char *text, const cJSON *node)
{
	size_t start, end;
	_cleanup_error_ spr_error *e = NULL;
	return spr_json_span(node, &start, &end) &&
	       spr_json_validate(text + start, end - start, 0, "policy", &e) < 0;
}

/* The innermost node under node that holds \u0000: a string, or the
 * object whose key does (depth first), NULL when none does. */
static const cJSON *first_nul(const char *text, const cJSON *node)
{
	const cJSON *child;
	cJSON_ArrayForEach(child, node)
	{
		if (!holds_nul(text, child))
			continue;
		const cJSON *inner = first_nul(text, child);
		return inner ? inner : child;
	}
	return NULL;
}

/* The request is parsed with \u0000 allowed (code and input_data may hold
 * it), but a policy's strings are C strings from the tree on: a NUL would
 * cut a module name, an env key or value or an extra_globals string
 * short, silently ("os\u0000x" blocking "os", "json\u0000os" preloading
 * "json"). Refused, as a policy file cannot write one either. */
static int policy_without_nul(const char *text, size_t len, const cJSON *policy,
			      spr_error **err)
{
	if (!holds_nul(text, policy))
		return 0;
	const cJSON *at = first_nul(text, policy);
	return request_fail(err, text, len, at ? at : policy,
			    "\\u0000 (NUL) is not allowed in the policy's strings or keys");
}

static int parse_request(const char *text, size_t len, struct json_request *r, spr_error **err)
{
	_cleanup_cjson_ cJSON *root = NULL;
	if (spr_json_parse(text, len, SPR_JSON_ALLOW_NUL, "request", &root, err) < 0)
		return -1;
	if (!cJSON_IsObject(root))
		return request_fail(err, text, len, root, "the request must be a JSON object");
	const cJSON *code = NULL, *input = NULL, *policy = NULL, *policy_file = NULL, *m;
	cJSON_ArrayForEach(m, root)
	{
		if (!strcmp(m->string, "code"))
			code = m;
		else if (!strcmp(m->string, "input_data"))
			input = m;
		else if (!strcmp(m->string, "policy"))
			policy = m;
		else if (!strcmp(m->string, "policy_file"))
			policy_file = m;
		else {
			char what[160];
			snprintf(what, sizeof(what),
				 "unknown request key '%.64s' (expected code, input_data, policy, "
				 "policy_file)",
				 m->string);
			return request_fail(err, text, len, m, what);
		}
	}
	if (!cJSON_IsString(code))
		return request_fail(err, text, len, code ? code : root,
				    "'code' is required and must be a string");
	if (policy && policy_file)
		return spr_fail(err, SPR_LAYER_REQUEST, EINVAL,
				"Provide either 'policy' or 'policy_file', not both");

	size_t start, end;
	spr_json_span(code, &start, &end);
	if (spr_json_decode_string(text + start, end - start, SPR_JSON_ALLOW_NUL, &r->code,
				   &r->code_len, err) < 0)
		return -1;
	if (input) {
		spr_json_span(input, &start, &end);
		r->input = strndup(text + start, end - start);
		if (!r->input)
			return spr_fail_oom(err);
	}
	if (policy_file) {
		if (!cJSON_IsString(policy_file))
			return request_fail(err, text, len, policy_file,
					    "'policy_file' must be a string (a path)");
		return spr_policy_load_file(policy_file->valuestring, &r->policy, err);
	}
	if (policy && policy_without_nul(text, len, policy, err) < 0)
		return -1;
	if (spr_policy_new(&r->policy, err) < 0)
		return -1;
	if (policy)
		return spr_policy_apply(r->policy, policy, text, len, "request", err);
	return 0;
}

int spr_run_json(spr_engine *engine, const char *request_json, size_t len, char **result_json,
		 spr_error **err)
{
	return spr_run_json_with(engine, request_json, len, NULL, result_json, err);
}

int spr_run_json_with(spr_engine *engine, const char *request_json, size_t len,
		      const spr_run_options *opts, char **result_json, spr_error **err)
{
	if (!engine || !request_json || !result_json)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_run_json: NULL argument");
	SPR_CLEANUP(json_request_free) struct json_request r = {0};
	if (parse_request(request_json, len, &r, err) < 0)
		return -1;
	spr_result *result = NULL;
	if (spr_run_with(engine, r.policy, r.code, r.code_len, r.input, opts, &result, err) < 0)
		return -1;
	int rc = spr_result_to_json(result, SPR_JSON_COMPACT, result_json, err);
	spr_result_free(result);
	return rc;
}
