/* The policy model (SPEC §2 defaults and validation) and the plan compiler. */
#include <stdio.h>

#include "engine/engine.h"
#include "json.h"
#include "policy/compile.h"
#include "policy/policy.h"
#include "protocol/message.h"
#include "unit.h"

static char tmpdir[] = "/tmp/spr-test-policy-XXXXXX";

static const char *write_file(const char *name, const char *text)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static spr_policy *load_ok(const char *text)
{
	spr_policy *p = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_policy_load_file(write_file("p.toml", text), &p, &err), err);
	return p;
}

/* Loading must fail with a message containing `want`. */
static void load_fails(const char *text, const char *want)
{
	spr_policy *p = NULL;
	spr_error *err = NULL;
	int rc = spr_policy_load_file(write_file("bad.toml", text), &p, &err);
	ck_assert_int_lt(rc, 0);
	ck_assert_ptr_null(p);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err->message, want), "message '%s' lacks '%s'", err->message, want);
	ck_assert_int_eq(err->layer, SPR_LAYER_POLICY);
	spr_error_free(err);
}

static char *policy_json(const spr_policy *p)
{
	char *json = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_policy_to_json(p, &json, &err), err);
	return json;
}

static void setup(void) { ck_assert_ptr_nonnull(mkdtemp(tmpdir)); }
static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(tmpdir, "/tmp/spr-test-policy-XXXXXX");
}

START_TEST(defaults_match_spec)
{
	spr_policy *p = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_policy_new(&p, &err), err);
	char *json = policy_json(p);
	ck_assert_str_eq(json,
			 "{\"mode\":\"restrict\",\"timeout_seconds\":5.0,\"memory_limit_mb\":256,"
			 "\"max_output_kb\":128,"
			 "\"blocked_imports\":[\"os\",\"subprocess\",\"socket\",\"ctypes\","
			 "\"importlib\"],"
			 "\"blocked_builtins\":[\"eval\",\"exec\",\"open\",\"compile\","
			 "\"breakpoint\"],"
			 "\"allowed_imports\":[],\"allowed_builtins\":[],\"allowed_globals\":[],"
			 "\"blocked_globals\":[],\"extra_globals\":{},\"network\":false,"
			 "\"max_processes\":64,\"cpu_cores\":1.0,\"cpu_seconds\":null,"
			 "\"tmp_size_mb\":64,\"env\":{},\"require\":[],\"preload_imports\":[]}");
	free(json);
	spr_policy_free(p);
}
END_TEST

START_TEST(reference_policy_loads_unchanged)
{
	spr_policy *p = load_ok("[policy]\n"
				"mode = \"restrict\"\n"
				"timeout_seconds = 5\n"
				"memory_limit_mb = 256\n"
				"max_output_kb = 128\n"
				"blocked_imports = [\"os\", \"subprocess\"]\n"
				"blocked_builtins = [\"eval\", \"exec\", \"open\"]\n"
				"allowed_imports = []\n"
				"allowed_builtins = []\n"
				"allowed_globals = []\n"
				"blocked_globals = []\n"
				"\n"
				"[policy.extra_globals]\n"
				"project_name = \"safe-py-runner\"\n");
	ck_assert_int_eq(p->mode, SPR_MODE_RESTRICT);
	ck_assert_int_eq(cJSON_GetArraySize(p->blocked_imports), 2);
	ck_assert_int_eq(cJSON_GetArraySize(p->blocked_builtins), 3);
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(p->extra_globals, "project_name");
	ck_assert(cJSON_IsString(name));
	ck_assert_str_eq(name->valuestring, "safe-py-runner");
	spr_policy_free(p);
}
END_TEST

START_TEST(omitted_fields_keep_defaults)
{
	/* The reference turns an omitted list into []; spr keeps the default. */
	spr_policy *p = load_ok("timeout_seconds = 2.5\n");
	ck_assert(p->timeout_seconds == 2.5);
	ck_assert_int_eq(cJSON_GetArraySize(p->blocked_imports), 5);
	ck_assert_int_eq(p->memory_limit_mb, 256);
	spr_policy_free(p);
}
END_TEST

START_TEST(all_spr_fields)
{
	spr_policy *p = load_ok("[policy]\n"
				"mode = 'allow'\n"
				"network = true\n"
				"max_processes = 8\n"
				"cpu_cores = 0.5\n"
				"cpu_seconds = 3\n"
				"tmp_size_mb = 16\n"
				"max_output_kb = 0\n"
				"[policy.env]\n"
				"FOO = \"bar\"\n"
				"_X1 = \"\"\n"
				"[policy.extra_globals]\n"
				"big = 9223372036854775807\n"
				"nested = { a = [1, 2.5, true] }\n");
	ck_assert_int_eq(p->mode, SPR_MODE_ALLOW);
	ck_assert(p->network);
	ck_assert_int_eq(p->max_processes, 8);
	ck_assert(p->cpu_cores == 0.5);
	ck_assert(p->cpu_seconds == 3);
	ck_assert_int_eq(p->tmp_size_mb, 16);
	ck_assert_int_eq(p->max_output_kb, 0);
	char *json = policy_json(p);
	/* Integers beyond a double's precision reach the worker exactly. */
	ck_assert_ptr_nonnull(strstr(json, "\"big\":9223372036854775807"));
	ck_assert_ptr_nonnull(strstr(json, "\"env\":{\"FOO\":\"bar\",\"_X1\":\"\"}"));
	free(json);
	spr_policy_free(p);
}
END_TEST

START_TEST(validation_errors_name_file_line_col)
{
	load_fails("[policy]\nmode = \"sandbox\"\n",
		   "bad.toml:2:8: mode must be 'allow' or 'restrict' (got 'sandbox')");
	load_fails("[policy]\n\ntimeout_seconds = \"5\"\n",
		   "bad.toml:3:19: 'timeout_seconds' must be a number of seconds, found a string");
	load_fails("timeout_seconds = 0\n", "'timeout_seconds' must be greater than 0 (got 0)");
	load_fails("timeout_seconds = -1\n", "must be greater than 0 (got -1)");
	load_fails("timeout_seconds = inf\n", "must be greater than 0");
	load_fails("timeout_seconds = nan\n", "must be greater than 0");
	load_fails("timeout_seconds = 86401\n", "'timeout_seconds' must be at most 86400 seconds");
	load_fails("memory_limit_mb = 1.5\n", "'memory_limit_mb' must be an integer from 1 to");
	load_fails("memory_limit_mb = 0\n", "'memory_limit_mb' must be an integer from 1 to");
	load_fails("max_output_kb = -1\n", "'max_output_kb' must be an integer from 0 to");
	load_fails("max_processes = 0\n", "'max_processes' must be an integer from 1 to");
	/* Below the kernel's smallest CPU quota, a policy could never run. */
	const char *too_few_cores[] = {"0", "-1", "0.001", "0.005", "0.009", "0.0099999"};
	for (size_t i = 0; i < ARRAY_SIZE(too_few_cores); i++) {
		char text[64], want[96];
		snprintf(text, sizeof(text), "cpu_cores = %s\n", too_few_cores[i]);
		snprintf(want, sizeof(want), "'cpu_cores' must be a number from 0.01 to 1024 cores (got %s)",
			 too_few_cores[i]);
		load_fails(text, want);
	}
	const char *cores_ok[] = {"0.01", "0.1", "0.25", "0.5", "1", "1.5", "2", "10", "100", "1024"};
	for (size_t i = 0; i < ARRAY_SIZE(cores_ok); i++) {
		char text[64];
		snprintf(text, sizeof(text), "cpu_cores = %s\n", cores_ok[i]);
		spr_policy_free(load_ok(text));
	}
	load_fails("cpu_cores = 2000\n", "'cpu_cores' must be at most 1024 cores");
	load_fails("cpu_cores = 1024.5\n", "'cpu_cores' must be at most 1024 cores");
	load_fails("cpu_cores = nan\n", "'cpu_cores' must be greater than 0");
	load_fails("network = 1\n", "'network' must be true or false, found a number");
	load_fails("blocked_imports = \"os\"\n",
		   "'blocked_imports' must be an array of strings, found a string");
	load_fails("blocked_imports = [\"os\", 1]\n",
		   "bad.toml:1:26: 'blocked_imports' must contain only strings, found a number");
	load_fails("allowed_imports = [\"\"]\n", "'allowed_imports' must not contain empty strings");
	load_fails("extra_globals = 3\n", "'extra_globals' must be a table, found a number");
	load_fails("[env]\n1X = \"a\"\n", "'env' key '1X' is not a valid environment variable name");
	load_fails("[env]\nX = 1\n", "'env.X' must be a string, found a number");
	/* require: the layers spr knows, each once, as typed. */
	load_fails("require = \"seccomp\"\n", "'require' must be an array of strings, found a string");
	load_fails("require = [1]\n", "'require' must contain only strings, found a number");
	const char *unknown[] = {"", "Seccomp", "landlock", "network_off", "userns", "seccomp ",
				 "network-off,seccomp"};
	for (size_t i = 0; i < ARRAY_SIZE(unknown); i++) {
		char text[96], want[128];
		snprintf(text, sizeof(text), "require = [\"%s\"]\n", unknown[i]);
		snprintf(want, sizeof(want), "'require': unknown isolation layer '%s' (known: "
					     "namespaces, cgroup, seccomp,", unknown[i]);
		load_fails(text, want);
	}
	load_fails("require = [\"seccomp\", \"seccomp\"]\n", "'require' names 'seccomp' twice");
	for (int i = 0; i < SPR_NREQ; i++) {
		char text[96];
		snprintf(text, sizeof(text), "require = [\"%s\"]\n", spr_layer_req_names[i]);
		spr_policy_free(load_ok(text));
	}
}
END_TEST

START_TEST(unknown_keys_are_errors)
{
	load_fails("[policy]\ntimeout_second = 5\n",
		   "bad.toml:2:18: unknown policy key 'timeout_second' (did you mean "
		   "'timeout_seconds'?)");
	load_fails("[policy]\nwhatever = 5\n", "unknown policy key 'whatever'");
	load_fails("mode = \"allow\"\n[policy]\nmode = \"allow\"\n",
		   "unknown top-level key 'mode' (policy fields go under [policy])");
	load_fails("policy = 3\n", "'policy' must be a table, found a number");
}
END_TEST

START_TEST(toml_errors_pass_through)
{
	load_fails("[policy]\nmode = \n", "bad.toml:2:");
	load_fails("a = 1\na = 2\n", "bad.toml:2:");
}
END_TEST

START_TEST(missing_file)
{
	spr_policy *p = NULL;
	spr_error *err = NULL;
	ck_assert_int_lt(spr_policy_load_file("/nonexistent/policy.toml", &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "/nonexistent/policy.toml: policy file not "
						   "found"));
	ck_assert_int_eq(err->errnum, ENOENT);
	spr_error_free(err);
	err = NULL;
	ck_assert_int_lt(spr_policy_load_file(tmpdir, &p, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "not a regular file"));
	spr_error_free(err);
}
END_TEST

START_TEST(json_policy_and_update)
{
	spr_policy *p = NULL;
	spr_error *err = NULL;
	const char *json = "{\"timeout_seconds\": 0.25, \"blocked_imports\": []}";
	ck_assert_ok(spr_policy_from_json(json, strlen(json), &p, &err), err);
	ck_assert(p->timeout_seconds == 0.25);
	ck_assert_int_eq(cJSON_GetArraySize(p->blocked_imports), 0);
	ck_assert_int_eq(cJSON_GetArraySize(p->blocked_builtins), 5);

	const char *upd = "{\"memory_limit_mb\": 64}";
	ck_assert_ok(spr_policy_update_json(p, upd, strlen(upd), &err), err);
	ck_assert_int_eq(p->memory_limit_mb, 64);
	ck_assert(p->timeout_seconds == 0.25);

	/* A failed update leaves the policy as it was. */
	const char *bad = "{\"memory_limit_mb\": 32, \"timeout_seconds\": -1}";
	ck_assert_int_lt(spr_policy_update_json(p, bad, strlen(bad), &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "policy:1:44: 'timeout_seconds' must be "
						   "greater than 0"));
	spr_error_free(err);
	err = NULL;
	ck_assert_int_eq(p->memory_limit_mb, 64);

	const char *wrapped = "{\"policy\": {\"mode\": \"allow\"}}";
	ck_assert_ok(spr_policy_update_json(p, wrapped, strlen(wrapped), &err), err);
	ck_assert_int_eq(p->mode, SPR_MODE_ALLOW);

	const char *notjson = "{\"mode\": }";
	ck_assert_int_lt(spr_policy_update_json(p, notjson, strlen(notjson), &err), 0);
	ck_assert_int_eq(err->layer, SPR_LAYER_POLICY);
	ck_assert_ptr_nonnull(strstr(err->message, "policy:1:"));
	spr_error_free(err);
	err = NULL;

	/* JSON has no integer range: extra_globals keep every digit. */
	const char *big = "{\"extra_globals\": {\"n\": 123456789012345678901234567890}}";
	ck_assert_ok(spr_policy_update_json(p, big, strlen(big), &err), err);
	char *text = policy_json(p);
	ck_assert_ptr_nonnull(strstr(text, "\"n\":123456789012345678901234567890"));
	free(text);

	const char *nulled = "{\"cpu_seconds\": null}";
	ck_assert_ok(spr_policy_update_json(p, nulled, strlen(nulled), &err), err);
	ck_assert(p->cpu_seconds == 0);
	spr_policy_free(p);
}
END_TEST

START_TEST(to_json_round_trips)
{
	spr_policy *p = load_ok("[policy]\nmode = 'allow'\ntimeout_seconds = 0.1\n"
				"[policy.extra_globals]\nx = [1, {y = 'z'}]\n");
	char *json = policy_json(p);
	spr_policy *q = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_policy_from_json(json, strlen(json), &q, &err), err);
	char *json2 = policy_json(q);
	ck_assert_str_eq(json, json2);
	ck_assert_ptr_nonnull(strstr(json, "\"timeout_seconds\":0.1,"));
	free(json);
	free(json2);
	spr_policy_free(p);
	spr_policy_free(q);
}
END_TEST

/* The policy's env overrides the fixed variables by name; HOME and
 * TMPDIR are the run's directory on every engine, whatever it says. */
START_TEST(plan_environment)
{
	spr_policy *p = load_ok("[policy]\n[policy.env]\nLANG = 'de_DE.UTF-8'\nHOME = '/root'\n"
				"TMPDIR = '/var/tmp'\nZ = ''\n");
	spr_plan *plan = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_plan_compile(p, &plan, &err), err);
	const char *want[] = {"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C.UTF-8",
			      "LANG=de_DE.UTF-8", "Z=", NULL};
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		if (!want[i])
			ck_assert_ptr_null(plan->env[i]);
		else
			ck_assert_str_eq(plan->env[i], want[i]);
	}
	ck_assert(!plan->rlimits[SPR_RLIM_CPU].set); /* no cpu_seconds */
	spr_plan_unref(plan);
	spr_policy_free(p);
}
END_TEST

START_TEST(plan_compilation)
{
	spr_policy *p = load_ok("[policy]\ntimeout_seconds = 0.0001\nmemory_limit_mb = 64\n"
				"max_output_kb = 4\ntmp_size_mb = 8\ncpu_seconds = 1.5\n"
				"max_processes = 10\ncpu_cores = 0.5\nnetwork = true\n"
				"[policy.env]\nA = 'b'\n[policy.extra_globals]\nk = 1\n");
	spr_plan *plan = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_plan_compile(p, &plan, &err), err);
	ck_assert_int_eq(plan->limits.timeout_ms, 1); /* rounded up, never 0 */
	ck_assert(plan->limits.timeout_seconds == 0.0001);
	ck_assert_uint_eq(plan->limits.memory_bytes, 64u << 20);
	ck_assert_uint_eq(plan->limits.output_cap, 4096);
	ck_assert_uint_eq(plan->limits.tmp_bytes, 8u << 20);
	ck_assert(plan->limits.cpu_seconds == 1.5);
	ck_assert(plan->limits.cpu_cores == 0.5);
	ck_assert_int_eq(plan->limits.max_processes, 10);
	ck_assert(plan->network);
	ck_assert_uint_eq(plan->require, 0);
	/* One environment for every engine: the fixed one, then the policy's. */
	ck_assert_str_eq(plan->env[0], "PATH=/usr/local/bin:/usr/bin:/bin");
	ck_assert_str_eq(plan->env[1], "LANG=C.UTF-8");
	ck_assert_str_eq(plan->env[2], "LC_ALL=C.UTF-8");
	ck_assert_str_eq(plan->env[3], "A=b");
	ck_assert_ptr_null(plan->env[4]);
	/* ...and the rest every engine renders the same way. */
	ck_assert_str_eq(plan->workdir, "/tmp");
	ck_assert_str_eq(plan->scratch[0].path, "/tmp");
	ck_assert_str_eq(plan->scratch[1].path, "/dev/shm");
	ck_assert_uint_eq(plan->scratch[0].bytes, 8u << 20);
	ck_assert_uint_eq(plan->scratch[1].bytes, 8u << 20);
	ck_assert_str_eq(plan->python_flags[0], "-I");
	const struct spr_rlimit_plan *fsize = &plan->rlimits[SPR_RLIM_FSIZE];
	ck_assert(fsize->set && fsize->soft == 8u << 20 && fsize->hard == 8u << 20);
	ck_assert(plan->rlimits[SPR_RLIM_CORE].set && !plan->rlimits[SPR_RLIM_CORE].hard);
	ck_assert_uint_eq(plan->rlimits[SPR_RLIM_NOFILE].hard, 1024);
	const struct spr_rlimit_plan *cpu = &plan->rlimits[SPR_RLIM_CPU];
	ck_assert(cpu->set && cpu->soft == 2 && cpu->hard == 3); /* ceil(1.5), +1 */
	/* Left to the engine: they depend on a cgroup. */
	ck_assert(!plan->rlimits[SPR_RLIM_AS].set && !plan->rlimits[SPR_RLIM_NPROC].set);
	/* The worker part carries only what Python enforces. */
	ck_assert_str_eq(plan->worker_policy_json,
			 "{\"mode\":\"restrict\",\"blocked_imports\":[\"os\",\"subprocess\","
			 "\"socket\",\"ctypes\",\"importlib\"],\"blocked_builtins\":[\"eval\","
			 "\"exec\",\"open\",\"compile\",\"breakpoint\"],\"allowed_imports\":[],"
			 "\"allowed_builtins\":[],\"allowed_globals\":[],\"blocked_globals\":[],"
			 "\"extra_globals\":{\"k\":1}}");
	/* Equal policies share a key; a different one does not. */
	char *key = spr_policy_key(p);
	ck_assert_str_eq(key, plan->key);
	p->timeout_seconds = 2;
	char *key2 = spr_policy_key(p);
	ck_assert_str_ne(key, key2);
	free(key);
	free(key2);
	ck_assert_ptr_eq(spr_plan_ref(plan), plan);
	spr_plan_unref(plan);
	spr_plan_unref(plan);
	spr_policy_free(p);
	/* require becomes the plan's mask; network-off with network is refused. */
	p = load_ok("require = [\"seccomp\", \"own-uid\"]\n");
	ck_assert_ok(spr_plan_compile(p, &plan, &err), err);
	ck_assert_uint_eq(plan->require, 1u << SPR_REQ_SECCOMP | 1u << SPR_REQ_OWN_UID);
	spr_plan_unref(plan);
	spr_policy_free(p);
	p = load_ok("network = true\nrequire = [\"network-off\"]\n");
	ck_assert_int_eq(spr_plan_compile(p, &plan, &err), -1);
	ck_assert_str_eq(err->message,
			 "'require' names network-off but 'network' is true: drop one of them");
	spr_error_free(err);
	spr_policy_free(p);
}
END_TEST

/* preload_imports: dotted ASCII identifiers, each once, at most 64 of at
 * most 200 bytes; anything else names the field, the value and the fix. */
START_TEST(preload_imports_validation)
{
	spr_policy *p = load_ok("preload_imports = ['numpy', 'xml.etree.ElementTree', '_x1', "
				"'a.b_2.C']\n");
	ck_assert_int_eq(cJSON_GetArraySize(p->preload_imports), 4);
	ck_assert_str_eq(cJSON_GetArrayItem(p->preload_imports, 1)->valuestring,
			 "xml.etree.ElementTree");
	spr_policy_free(p);
	p = load_ok("preload_imports = []\n");
	ck_assert_int_eq(cJSON_GetArraySize(p->preload_imports), 0);
	spr_policy_free(p);

	static const char *const bad[] = {"",	  "1abc", "a..b", ".x",	  "x.",	 "a b", " x",
					  "x ",	  "a-b",  "a/b",  "caf\u00e9", "a.1b", "x\\ty",
					  "a,b",  ".",	  ".."};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char text[128], want[128];
		snprintf(text, sizeof(text), "preload_imports = [\"%s\"]\n", bad[i]);
		spr_policy *q = NULL;
		spr_error *err = NULL;
		int rc = spr_policy_load_file(write_file("bad.toml", text), &q, &err);
		ck_assert_msg(rc < 0, "'%s' was accepted", bad[i]);
		ck_assert_int_eq(err->layer, SPR_LAYER_POLICY);
		ck_assert_msg(strstr(err->message, "'preload_imports'"), "%s", err->message);
		/* A string the TOML reader takes names the value and says what
		 * a module name is. */
		if (!strchr(bad[i], '\\')) {
			snprintf(want, sizeof(want), "'%s' is not a module name", bad[i]);
			ck_assert_msg(strstr(err->message, want) || !bad[i][0], "%s", err->message);
			ck_assert_msg(strstr(err->message, "e.g. 'numpy'"), "%s", err->message);
		}
		spr_error_free(err);
	}
	load_fails("preload_imports = ['numpy', 'os', 'numpy']\n",
		   "bad.toml:1:35: 'preload_imports' names 'numpy' twice: drop one");
	load_fails("preload_imports = 'numpy'\n",
		   "'preload_imports' must be an array of module names, found a string");
	load_fails("preload_imports = [1]\n", "'preload_imports' must contain only strings, "
					       "found a number");
	char long_name[260];
	memset(long_name, 'a', 201);
	long_name[201] = '\0';
	char text[400];
	snprintf(text, sizeof(text), "preload_imports = ['%s']\n", long_name);
	load_fails(text, "'preload_imports': a module name of 201 bytes is too long (at most 200)");
	long_name[200] = '\0';
	snprintf(text, sizeof(text), "preload_imports = ['%s']\n", long_name);
	spr_policy_free(load_ok(text));
	/* 64 names load, 65 do not. */
	spr_buf list = SPR_BUF_INIT;
	spr_buf_puts(&list, "{\"preload_imports\": [");
	for (int i = 0; i < 65; i++)
		spr_buf_printf(&list, "%s\"m%d\"", i ? "," : "", i);
	spr_buf_puts(&list, "]}");
	spr_error *err = NULL;
	ck_assert_int_lt(spr_policy_from_json(list.data, list.len, &p, &err), 0);
	ck_assert_str_eq(err->message, "policy:1:21: 'preload_imports' lists 65 modules, at most 64 "
				       "are allowed (preload the packages the code imports first; "
				       "their own imports follow)");
	spr_error_free(err);
	err = NULL;
	char *comma = strrchr(list.data, ',');
	strcpy(comma, "]}");
	ck_assert_ok(spr_policy_from_json(list.data, strlen(list.data), &p, &err), err);
	ck_assert_int_eq(cJSON_GetArraySize(p->preload_imports), 64);
	spr_buf_free(&list);
	/* JSON (the C API, requests) takes the same path; a failed update
	 * keeps the list it had. */
	const char *upd = "{\"preload_imports\": [\"json\", \"json\"]}";
	ck_assert_int_lt(spr_policy_update_json(p, upd, strlen(upd), &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "policy:1:30: 'preload_imports' names 'json' "
						   "twice"));
	spr_error_free(err);
	err = NULL;
	ck_assert_int_eq(cJSON_GetArraySize(p->preload_imports), 64);
	upd = "{\"preload_imports\": [\"caf\u00e9\"]}";
	ck_assert_int_lt(spr_policy_update_json(p, upd, strlen(upd), &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "is not a module name (dotted identifiers of "
						   "ASCII letters"));
	spr_error_free(err);
	spr_policy_free(p);
	/* The worker's own variable is not the policy's to set. */
	load_fails("[policy.env]\nSPR_WORKER_PRELOAD = '{}'\n",
		   "'env' key 'SPR_WORKER_PRELOAD' is spr's own (it carries preload_imports to the "
		   "worker): use another name");
}
END_TEST

/* The plan carries the preloads; the engines render them into the
 * worker's environment, so two plans that differ only there differ in
 * the sandbox plan's bytes (the warm pool's key). */
START_TEST(plan_preloads)
{
	spr_policy *p = load_ok("preload_imports = ['numpy', 'xml.etree']\n");
	spr_plan *plan = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_plan_compile(p, &plan, &err), err);
	ck_assert_str_eq(plan->preload_imports_json, "[\"numpy\",\"xml.etree\"]");
	/* Not part of what Python enforces per request. */
	ck_assert_ptr_null(strstr(plan->worker_policy_json, "preload"));
	char *env = NULL;
	ck_assert_ok(spr_worker_preload_env(plan,
					    &(struct spr_worker_request_opts){
						    .sys_path_json = "[\"/a\",\"/b c\"]",
						    .venv = "/v\"q",
					    },
					    &env, &err),
		     err);
	ck_assert_str_eq(env, "SPR_WORKER_PRELOAD={\"imports\":[\"numpy\",\"xml.etree\"],"
			      "\"sys_path\":[\"/a\",\"/b c\"],\"prefix\":\"/v\\\"q\"}");
	free(env);
	ck_assert_ok(spr_worker_preload_env(plan, &(struct spr_worker_request_opts){0}, &env, &err),
		     err);
	ck_assert_str_eq(env, "SPR_WORKER_PRELOAD={\"imports\":[\"numpy\",\"xml.etree\"]}");
	free(env);
	/* Another list is another policy key. */
	char *key = spr_policy_key(p);
	spr_plan_unref(plan);
	spr_policy_free(p);
	p = load_ok("preload_imports = ['numpy']\n");
	char *key2 = spr_policy_key(p);
	ck_assert_str_ne(key, key2);
	free(key);
	free(key2);
	spr_policy_free(p);
	/* None: no variable, and the plan says so. */
	p = load_ok("preload_imports = []\n");
	ck_assert_ok(spr_plan_compile(p, &plan, &err), err);
	ck_assert_ptr_null(plan->preload_imports_json);
	env = (char *)"unchanged";
	ck_assert_ok(spr_worker_preload_env(plan, &(struct spr_worker_request_opts){0}, &env, &err),
		     err);
	ck_assert_ptr_null(env);
	spr_plan_unref(plan);
	spr_policy_free(p);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *t = tcase_create("policy");
	tcase_add_checked_fixture(t, setup, teardown);
	tcase_add_test(t, defaults_match_spec);
	tcase_add_test(t, reference_policy_loads_unchanged);
	tcase_add_test(t, omitted_fields_keep_defaults);
	tcase_add_test(t, all_spr_fields);
	tcase_add_test(t, validation_errors_name_file_line_col);
	tcase_add_test(t, unknown_keys_are_errors);
	tcase_add_test(t, toml_errors_pass_through);
	tcase_add_test(t, missing_file);
	tcase_add_test(t, json_policy_and_update);
	tcase_add_test(t, to_json_round_trips);
	tcase_add_test(t, plan_compilation);
	tcase_add_test(t, plan_environment);
	tcase_add_test(t, preload_imports_validation);
	tcase_add_test(t, plan_preloads);
	suite_add_tcase(s, t);
	return s;
}
