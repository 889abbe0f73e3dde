/* Managed containers and images (SPEC §5 admin, §7 "spr (admin CLI)"):
 * what spr started on a daemon, and only that. Everything is decided on
 * `docker inspect` JSON (labels are arbitrary text: a tab or a newline in
 * one must not forge a line of a table), by full 64-hex ids only, and an id
 * that resolves to anything unmanaged is refused before any docker command
 * could touch it. All through the docker CLI, so remote daemons (context,
 * host, SSH) work the same. */
#include "docker/admin.h"

#include <time.h>

#include "cache.h"
#include "docker/docker_engine.h"
#include "json.h"
#include "local/engine.h"
#include "proc.h"
#include "utf8.h"

#define CMD_TIMEOUT_MS 60000
#define DEFAULT_STOP_TIMEOUT 10

struct spr_docker_admin {
	struct spr_docker_target target;
};

/* ---- running the CLI --------------------------------------------------- */

/* `docker ARGS` to completion; its stdout in *out. A failure is an error
 * naming the command and the CLI's last line. */
static int docker_out(const struct spr_docker_target *t, char *const args[], int64_t timeout_ms,
		      spr_buf *out, spr_error **err)
{
	_cleanup_buf_ spr_buf errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *run_err = NULL;
	int rc = spr_docker_cmd(t, args, timeout_ms, out, &errout, &run_err);
	if (rc == 0)
		return 0;
	return spr_fail(err, SPR_LAYER_DOCKER, rc < 0 ? run_err->errnum : EIO, "docker %s: %s",
			args[0], rc < 0 ? run_err->message : spr_docker_last_line(&errout));
}

/* Splits text into lines in place; calls fn on each non-empty one. */
static int each_line(char *text, int (*fn)(char *line, void *ctx), void *ctx)
{
	char *save = NULL;
	for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save))
		if (*line && fn(line, ctx) < 0)
			return -1;
	return 0;
}

/* Splits a line at tabs into exactly n fields; false when it has fewer. */
static bool split_fields(char *line, char **fields, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		fields[i] = line;
		char *tab = line ? strchr(line, '\t') : NULL;
		if (i + 1 < n && !tab)
			return false;
		if (tab) {
			*tab = '\0';
			line = tab + 1;
		}
	}
	return true;
}

/* argv = prefix (NULL-terminated) followed by items[0..n). Strings are
 * borrowed; free the array only. */
static char **argv_concat(char *const prefix[], char *const *items, size_t n)
{
	size_t np = 0;
	while (prefix[np])
		np++;
	char **argv = calloc(np + n + 1, sizeof(*argv));
	if (!argv)
		return NULL;
	memcpy(argv, prefix, np * sizeof(*argv));
	if (n)
		memcpy(argv + np, items, n * sizeof(*items));
	return argv;
}

/* A container or image id as docker prints it with --no-trunc: 64
 * lowercase hex digits (images: after "sha256:"). Nothing else is ever
 * passed on as a target. */
static bool is_full_id(const char *s)
{
	if (!strncmp(s, "sha256:", 7))
		s += 7;
	size_t n = 0;
	for (; s[n]; n++)
		if (!((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
			return false;
	return n == 64;
}

char **spr_docker_id_list(char *text, size_t *n)
{
	size_t cap = 1;
	for (const char *p = text; p && *p; p++)
		cap += *p == '\n';
	char **ids = calloc(cap, sizeof(*ids));
	*n = 0;
	char *save = NULL;
	for (char *l = ids && text ? strtok_r(text, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		bool seen = !is_full_id(l);
		for (size_t i = 0; i < *n && !seen; i++)
			seen = !strcmp(ids[i], l);
		if (!seen && *n < cap)
			ids[(*n)++] = l;
	}
	return ids;
}

/* `docker LIST-ARGS` (printing ids), then `docker inspect` of them: a
 * JSON array of the objects (those removed in between are missing). */
static cJSON *inspect_listed(const struct spr_docker_target *t, char *const list_args[],
			     const char *type, spr_error **err)
{
	_cleanup_buf_ spr_buf listed = SPR_BUF_INIT;
	if (docker_out(t, list_args, CMD_TIMEOUT_MS, &listed, err) < 0)
		return NULL;
	size_t n;
	_cleanup_free_ char **ids = spr_docker_id_list(listed.data, &n);
	if (!ids) {
		spr_fail_oom(err);
		return NULL;
	}
	if (!n)
		return cJSON_CreateArray();
	char *prefix[] = {(char *)"inspect", (char *)"--type", (char *)type, NULL};
	_cleanup_free_ char **args = argv_concat(prefix, ids, n);
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	if (!args) {
		spr_fail_oom(err);
		return NULL;
	}
	_cleanup_error_ spr_error *run_err = NULL;
	if (spr_docker_cmd(t, args, CMD_TIMEOUT_MS, &out, &errout, &run_err) < 0) {
		spr_fail(err, SPR_LAYER_DOCKER, run_err->errnum, "docker inspect: %s",
			 run_err->message);
		return NULL;
	}
	cJSON *array = spr_docker_parse_json(&out);
	if (!cJSON_IsArray(array)) {
		cJSON_Delete(array);
		spr_fail(err, SPR_LAYER_DOCKER, EPROTO, "docker inspect: %s",
			 out.len ? "unexpected output" : spr_docker_last_line(&errout));
		return NULL;
	}
	return array;
}

static const char *str_at(const cJSON *o, const char *a, const char *b)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, a);
	if (b)
		v = cJSON_GetObjectItemCaseSensitive(v, b);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const char *label_of(const cJSON *obj, const char *key)
{
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(obj, "Config"), "Labels");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool is_managed(const cJSON *container)
{
	const char *m = label_of(container, SPR_LABEL_MANAGED);
	return m && !strcmp(m, "1");
}

/* ---- creators ------------------------------------------------------------ */

static bool boot_id(char *buf, size_t size)
{
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	if (!spr_read_file("/proc/sys/kernel/random/boot_id", &b) || !b.len)
		return false;
	snprintf(buf, size, "%.*s", (int)strcspn(b.data, "\n"), b.data);
	return true;
}

char *spr_docker_creator_label(void)
{
	char host[256] = "", boot[64] = "";
	gethostname(host, sizeof(host) - 1);
	if (!boot_id(boot, sizeof(boot)))
		snprintf(boot, sizeof(boot), "unknown");
	char state;
	unsigned long long start = 0;
	spr_proc_identity(getpid(), &state, &start);
	char *label = NULL;
	if (asprintf(&label, "%s:%s:%d:%llu", host, boot, (int)getpid(), start) < 0)
		return NULL;
	return label;
}

/* The label is host:boot-id:pid:start-time. The boot id, not the host
 * name, decides whether it is this machine (cloned machines share names);
 * the start time that the pid is still the same process. */
int spr_docker_creator_alive(const char *label)
{
	char boot[64];
	if (!label || !boot_id(boot, sizeof(boot)))
		return -1;
	const char *c3 = strrchr(label, ':');
	if (!c3 || c3 == label)
		return -1;
	const char *c2 = c3 - 1;
	while (c2 > label && *c2 != ':')
		c2--;
	const char *c1 = c2 > label ? c2 - 1 : label;
	while (c1 > label && *c1 != ':')
		c1--;
	if (*c2 != ':' || *c1 != ':' || (size_t)(c2 - c1 - 1) != strlen(boot) ||
	    strncmp(c1 + 1, boot, strlen(boot)) != 0)
		return -1;
	char *end;
	long pid = strtol(c2 + 1, &end, 10);
	unsigned long long start = strtoull(c3 + 1, NULL, 10);
	if (end != c3 || pid <= 0)
		return -1;
	char state;
	unsigned long long now_start;
	if (spr_proc_identity((pid_t)pid, &state, &now_start) < 0)
		return 0;
	return now_start == start && state != 'Z' ? 1 : 0;
}

/* ---- containers ------------------------------------------------------------- */

/* RFC 3339 from the daemon ("2026-11-22T01:14:36.445206916Z") to seconds;
 * -1 for the zero time docker uses for "never". */
static double parse_time(const char *s)
{
	struct tm tm = {0};
	const char *rest = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!rest || tm.tm_year < 71)
		return -1;
	return (double)timegm(&tm);
}

static void human_duration(double seconds, char *buf, size_t size)
{
	long s = seconds < 0 ? 0 : (long)seconds;
	if (s < 60)
		snprintf(buf, size, "%ld second%s", s, s == 1 ? "" : "s");
	else if (s < 3600)
		snprintf(buf, size, "%ld minute%s", s / 60, s / 60 == 1 ? "" : "s");
	else if (s < 86400)
		snprintf(buf, size, "%ld hour%s", s / 3600, s / 3600 == 1 ? "" : "s");
	else
		snprintf(buf, size, "%ld day%s", s / 86400, s / 86400 == 1 ? "" : "s");
}

/* docker ps's STATUS column, from the state: "Up 5 minutes",
 * "Exited (137) 2 hours ago", "Created". */
static void status_text(const cJSON *state, char *buf, size_t size)
{
	const char *status = str_at(state, "Status", NULL);
	double now = (double)time(NULL), since;
	char age[32];
	if (status && !strcmp(status, "running") &&
	    (since = parse_time(str_at(state, "StartedAt", NULL))) >= 0) {
		human_duration(now - since, age, sizeof(age));
		snprintf(buf, size, "Up %s%s", age,
			 cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Paused")) ? " (Paused)"
											  : "");
	} else if (status && (!strcmp(status, "exited") || !strcmp(status, "dead")) &&
		   (since = parse_time(str_at(state, "FinishedAt", NULL))) >= 0) {
		const cJSON *code = cJSON_GetObjectItemCaseSensitive(state, "ExitCode");
		human_duration(now - since, age, sizeof(age));
		snprintf(buf, size, "Exited (%d) %s ago", cJSON_IsNumber(code) ? code->valueint : -1,
			 age);
	} else if (status && *status) {
		/* The daemon's word, capitalized ("created"), cut on a
		 * character boundary: the text goes into JSON. */
		size_t rest = spr_utf8_cut(status + 1, strlen(status + 1), size - 2);
		snprintf(buf, size, "%c%.*s",
			 status[0] >= 'a' && status[0] <= 'z' ? status[0] - 'a' + 'A' : status[0],
			 (int)rest, status + 1);
	} else {
		snprintf(buf, size, "?");
	}
}

static void add_string_or_null(cJSON *o, const char *key, const char *s)
{
	if (s && *s)
		cJSON_AddStringToObject(o, key, s);
	else
		cJSON_AddNullToObject(o, key);
}

/* Runs served, from the container agent's process name (`spr-runs-N`,
 * set by src/namespace/agent.c) through `docker top`: no exec in the
 * container, and it works against remote daemons. -1: unknown. */
static long runs_served(const struct spr_docker_target *t, const char *id)
{
	/* podman's top takes its own descriptors (ps options would need a ps
	 * in the container). */
	char *docker_args[] = {(char *)"top", (char *)id, (char *)"-o", (char *)"pid,comm", NULL};
	char *podman_args[] = {(char *)"top", (char *)id, (char *)"pid", (char *)"comm", NULL};
	char **args = t->podman ? podman_args : docker_args;
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	_cleanup_error_ spr_error *err = NULL;
	if (docker_out(t, args, CMD_TIMEOUT_MS, &out, &err) < 0 || !out.data)
		return -1;
	const char *p = strstr(out.data, "spr-runs-");
	return p ? strtol(p + 9, NULL, 10) : -1;
}

cJSON *spr_docker_container_entry(const struct spr_docker_target *t, const cJSON *obj,
				  bool with_runs)
{
	const char *id = str_at(obj, "Id", NULL), *name = str_at(obj, "Name", NULL);
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(obj, "State");
	const char *status = str_at(state, "Status", NULL);
	if (!id || !is_full_id(id))
		return NULL;
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "id", id);
	cJSON_AddStringToObject(c, "name", name && *name == '/' ? name + 1 : name ? name : "");
	add_string_or_null(c, "image", str_at(obj, "Config", "Image"));
	add_string_or_null(c, "state", status);
	char text[96];
	status_text(state, text, sizeof(text));
	cJSON_AddStringToObject(c, "status", text);
	add_string_or_null(c, "created", str_at(obj, "Created", NULL));
	long runs = with_runs && status && !strcmp(status, "running") ? runs_served(t, id) : -1;
	if (runs >= 0)
		cJSON_AddNumberToObject(c, "runs", (double)runs);
	else
		cJSON_AddNullToObject(c, "runs");
	add_string_or_null(c, "pool", label_of(obj, SPR_LABEL_POOL));
	add_string_or_null(c, "env", label_of(obj, SPR_LABEL_ENV));
	const char *creator = label_of(obj, SPR_LABEL_CREATOR);
	add_string_or_null(c, "creator", creator);
	int alive = creator && *creator ? spr_docker_creator_alive(creator) : -1;
	if (alive < 0)
		cJSON_AddNullToObject(c, "creator_alive");
	else
		cJSON_AddBoolToObject(c, "creator_alive", alive);
	return c;
}

/* Containers labelled managed, inspected (raw docker JSON). */
static cJSON *inspect_managed(const struct spr_docker_target *t, bool all_states,
			      spr_error **err)
{
	char *args[] = {(char *)"ps",	      (char *)"--quiet",
			(char *)"--no-trunc", (char *)"--filter",
			(char *)"label=" SPR_LABEL_MANAGED "=1",
			all_states ? (char *)"--all" : NULL,
			NULL};
	return inspect_listed(t, args, "container", err);
}

cJSON *spr_docker_container_entries(const struct spr_docker_target *t, const cJSON *raw,
				    bool with_runs, bool (*keep)(const cJSON *entry, const void *arg),
				    const void *arg)
{
	cJSON *list = cJSON_CreateArray();
	const cJSON *obj;
	cJSON_ArrayForEach(obj, raw)
	{
		/* The filter asked the daemon; the labels themselves decide. */
		cJSON *e = is_managed(obj) ? spr_docker_container_entry(t, obj, with_runs) : NULL;
		if (e && (!keep || keep(e, arg)))
			cJSON_AddItemToArray(list, e);
		else
			cJSON_Delete(e);
	}
	return list;
}

/* Entries for the managed containers (filtered by keep, when given). */
static cJSON *managed_entries(const struct spr_docker_target *t, bool all_states, bool with_runs,
			      bool (*keep)(const cJSON *entry, const void *arg), const void *arg,
			      spr_error **err)
{
	_cleanup_cjson_ cJSON *raw = inspect_managed(t, all_states, err);
	return raw ? spr_docker_container_entries(t, raw, with_runs, keep, arg) : NULL;
}

static int print_json(cJSON *doc, char **json, spr_error **err)
{
	*json = doc ? cJSON_PrintUnformatted(doc) : NULL;
	cJSON_Delete(doc);
	return *json ? 0 : spr_fail_oom(err);
}

/* ---- resolving an id ---------------------------------------------------------- */

struct match_ctx {
	const char *want;
	size_t want_len;
	bool exact;
	char *id, *name; /* the (first) match */
	bool managed;
	int count;
	spr_buf candidates;
};

static int match_container(char *line, void *arg)
{
	struct match_ctx *m = arg;
	char *f[3];
	if (m->exact || !split_fields(line, f, 3))
		return 0;
	bool exact = !strcmp(f[0], m->want) || !strcmp(f[1], m->want);
	bool prefix = !strncmp(f[0], m->want, m->want_len) || !strncmp(f[1], m->want, m->want_len);
	if (!exact && !prefix)
		return 0;
	if (exact) { /* an exact id or name wins over any prefix match */
		m->count = 0;
		spr_buf_free(&m->candidates);
		free(m->id);
		free(m->name);
		m->id = m->name = NULL;
		m->exact = true;
	}
	if (!m->id) {
		m->id = strdup(f[0]);
		m->name = strdup(f[1]);
		m->managed = !strcmp(f[2], "1");
	}
	spr_buf_printf(&m->candidates, "%s%.12s (%s)", m->count ? ", " : "", f[0], f[1]);
	m->count++;
	return 0;
}

char *spr_docker_match_container(char *ps_lines, const char *want, spr_error **err)
{
	if (!want || !*want) {
		spr_fail(err, SPR_LAYER_DOCKER, EINVAL, "a container ID or name is required");
		return NULL;
	}
	struct match_ctx m = {.want = want, .want_len = strlen(want)};
	each_line(ps_lines, match_container, &m);
	char *id = NULL;
	if (m.count == 0)
		spr_fail(err, SPR_LAYER_DOCKER, ESRCH, "No such container: %s", want);
	else if (m.count > 1)
		spr_fail(err, SPR_LAYER_DOCKER, ENOTUNIQ, "Container prefix '%s' is ambiguous: %s",
			 want, m.candidates.data ? m.candidates.data : "");
	else if (!m.managed)
		spr_fail(err, SPR_LAYER_DOCKER, EPERM,
			 "Container '%s' is not managed by spr and cannot be modified", want);
	else if (!m.id)
		spr_fail_oom(err);
	else
		id = m.id, m.id = NULL;
	free(m.id);
	free(m.name);
	spr_buf_free(&m.candidates);
	return id;
}

void spr_docker_match_lines(const cJSON *inspected, spr_buf *lines)
{
	const cJSON *obj;
	cJSON_ArrayForEach(obj, inspected)
	{
		const char *id = str_at(obj, "Id", NULL), *name = str_at(obj, "Name", NULL);
		if (!id || !is_full_id(id) || !name)
			continue;
		spr_buf_printf(lines, "%s\t%s\t%s\n", id, *name == '/' ? name + 1 : name,
			       is_managed(obj) ? "1" : "");
	}
}

/* The managed container `want` names (SPEC §7 rules), inspected; NULL
 * with the refusal otherwise. */
static cJSON *resolve_managed(const struct spr_docker_target *t, const char *want,
			      spr_error **err)
{
	if (!want || !*want) {
		spr_docker_match_container(NULL, want, err);
		return NULL;
	}
	char *args[] = {(char *)"ps", (char *)"--all", (char *)"--quiet", (char *)"--no-trunc",
			NULL};
	_cleanup_cjson_ cJSON *all = inspect_listed(t, args, "container", err);
	if (!all)
		return NULL;
	/* The match works on lines this code writes from the inspected
	 * objects: ids are hex, names [a-zA-Z0-9_.-], the flag ours. */
	_cleanup_buf_ spr_buf lines = SPR_BUF_INIT;
	spr_docker_match_lines(all, &lines);
	if (lines.oom) {
		spr_fail_oom(err);
		return NULL;
	}
	_cleanup_free_ char *id = spr_docker_match_container(lines.data, want, err);
	if (!id)
		return NULL;
	const cJSON *obj;
	cJSON_ArrayForEach(obj, all)
	{
		const char *oid = str_at(obj, "Id", NULL);
		if (oid && !strcmp(oid, id))
			return cJSON_Duplicate(obj, true);
	}
	spr_fail(err, SPR_LAYER_DOCKER, ESRCH, "No such container: %s", want);
	return NULL;
}

/* ---- the API ------------------------------------------------------------------- */

int spr_docker_admin_new(const spr_docker_options *opts, spr_docker_admin **out,
			 spr_error **err)
{
	static const spr_docker_options defaults = {0};
	if (!out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_docker_admin_new: out is NULL");
	struct spr_docker_admin *a = calloc(1, sizeof(*a));
	if (!a)
		return spr_fail_oom(err);
	if (spr_docker_target_init(&a->target, opts ? opts : &defaults, err) < 0 ||
	    spr_docker_ping(&a->target, err) < 0) {
		spr_docker_admin_free(a);
		return -1;
	}
	*out = a;
	return 0;
}

void spr_docker_admin_free(spr_docker_admin *a)
{
	if (!a)
		return;
	spr_docker_target_free(&a->target);
	free(a);
}

int spr_docker_describe(spr_docker_admin *a, char **json, spr_error **err)
{
	const struct spr_docker_target *t = &a->target;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddStringToObject(doc, "cli", spr_docker_cli_name(t));
	cJSON_AddStringToObject(doc, "path", t->docker);
	cJSON_AddStringToObject(doc, "version", t->version);
	cJSON_AddBoolToObject(doc, "remote", t->context || t->host);
	if (t->podman) {
		cJSON_AddBoolToObject(doc, "rootless", t->rootless);
		cJSON_AddNumberToObject(doc, "cgroup_version", t->cgroup_version);
		cJSON_AddStringToObject(doc, "storage", t->storage);
	}
	cJSON *limits = cJSON_AddObjectToObject(doc, "limits");
	cJSON_AddBoolToObject(limits, "memory", t->enforces.memory);
	cJSON_AddBoolToObject(limits, "pids", t->enforces.pids);
	cJSON_AddBoolToObject(limits, "cpu", t->enforces.cpu);
	return print_json(doc, json, err);
}

int spr_docker_list_containers(spr_docker_admin *a, bool all_states, char **json,
			       spr_error **err)
{
	cJSON *list = managed_entries(&a->target, all_states, true, NULL, NULL, err);
	if (!list)
		return -1;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "containers", list);
	return print_json(doc, json, err);
}

void spr_docker_inspect_details(cJSON *c, const cJSON *inspect)
{
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(inspect, "Config");
	const cJSON *host = cJSON_GetObjectItemCaseSensitive(inspect, "HostConfig");
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(inspect, "State");
	cJSON_AddItemToObject(c, "labels",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(config, "Labels"), 1));
	cJSON_AddItemToObject(c, "image_id",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(inspect, "Image"), 1));
	cJSON_AddItemToObject(c, "started_at",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(state, "StartedAt"), 1));
	cJSON_AddItemToObject(c, "pid",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(state, "Pid"), 1));
	/* Whether its runs share it (each in a sandbox of its own, SPEC §7
	 * "DockerEngine"); unknown for containers of older spr versions. */
	const char *max_runs = label_of(inspect, SPR_LABEL_MAX_RUNS);
	long n = max_runs ? strtol(max_runs, NULL, 10) : 0;
	if (n > 0) {
		cJSON_AddNumberToObject(c, "max_runs", (double)n);
		cJSON_AddStringToObject(c, "sharing", n > 1 ? "shared: a sandbox per run"
							    : "single use");
	} else {
		cJSON_AddNullToObject(c, "max_runs");
		cJSON_AddNullToObject(c, "sharing");
	}
	cJSON *limits = cJSON_AddObjectToObject(c, "limits");
	static const char *const limit_keys[][2] = {
		{"memory_bytes", "Memory"},
		{"memory_swap_bytes", "MemorySwap"},
		{"pids", "PidsLimit"},
		{"nano_cpus", "NanoCpus"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(limit_keys); i++)
		cJSON_AddItemToObject(
			limits, limit_keys[i][0],
			cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(host, limit_keys[i][1]), 1));
	cJSON *sec = cJSON_AddObjectToObject(c, "security");
	cJSON_AddItemToObject(sec, "user",
			      cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(config, "User"), 1));
	static const char *const sec_keys[][2] = {
		{"read_only_root", "ReadonlyRootfs"}, {"network", "NetworkMode"},
		{"cap_drop", "CapDrop"},	      {"security_opt", "SecurityOpt"},
		{"ipc", "IpcMode"},		      {"tmpfs", "Tmpfs"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(sec_keys); i++)
		cJSON_AddItemToObject(
			sec, sec_keys[i][0],
			cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(host, sec_keys[i][1]), 1));
	/* The profile's JSON is long and says nothing to a person: its name. */
	cJSON *opts = cJSON_GetObjectItemCaseSensitive(sec, "security_opt");
	cJSON *o;
	cJSON_ArrayForEach(o, opts)
	{
		if (cJSON_IsString(o) && !strncmp(o->valuestring, "seccomp=", 8) &&
		    strlen(o->valuestring) > 64)
			cJSON_SetValuestring(o, "seccomp=<spr profile>");
	}
}

int spr_docker_inspect_container(spr_docker_admin *a, const char *id, char **json,
				 spr_error **err)
{
	_cleanup_cjson_ cJSON *obj = resolve_managed(&a->target, id, err);
	if (!obj)
		return -1;
	cJSON *c = spr_docker_container_entry(&a->target, obj, true);
	if (!c)
		return spr_fail(err, SPR_LAYER_DOCKER, EPROTO, "docker inspect: no id for %s", id);
	spr_docker_inspect_details(c, obj);
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "container", c);
	return print_json(doc, json, err);
}

/* docker stop/kill/rm of full ids (validated again: nothing else is ever
 * a target). */
static int act_on_ids(const struct spr_docker_target *t, char *const prefix[], char **ids,
		      size_t n, int64_t timeout_ms, int *done, spr_error **err)
{
	for (size_t i = 0; i < n; i++)
		if (!is_full_id(ids[i]))
			return spr_fail(err, SPR_LAYER_DOCKER, EINVAL, "not a container id: %s",
					ids[i]);
	if (done)
		*done = 0;
	if (!n)
		return 0;
	_cleanup_free_ char **args = argv_concat(prefix, ids, n);
	if (!args)
		return spr_fail_oom(err);
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	if (!done)
		return docker_out(t, args, timeout_ms, &out, err);
	/* Containers started with --rm may vanish meanwhile: count what went. */
	_cleanup_buf_ spr_buf errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *run_err = NULL;
	if (spr_docker_cmd(t, args, timeout_ms, &out, &errout, &run_err) < 0)
		return spr_fail(err, SPR_LAYER_DOCKER, run_err->errnum, "docker %s: %s", prefix[0],
				run_err->message);
	for (size_t i = 0; out.data && i < out.len; i++)
		*done += out.data[i] == '\n';
	return 0;
}

static int stop_ids(const struct spr_docker_target *t, char **ids, size_t n, int timeout_seconds,
		    spr_error **err)
{
	if (timeout_seconds < 0)
		timeout_seconds = DEFAULT_STOP_TIMEOUT;
	char seconds[16];
	snprintf(seconds, sizeof(seconds), "%d", timeout_seconds);
	char *prefix[] = {(char *)"stop", (char *)"--time", seconds, NULL};
	return act_on_ids(t, prefix, ids, n, (int64_t)timeout_seconds * 1000 + CMD_TIMEOUT_MS, NULL,
			  err);
}

static int kill_ids(const struct spr_docker_target *t, char **ids, size_t n, int unused,
		    spr_error **err)
{
	(void)unused;
	char *prefix[] = {(char *)"kill", NULL};
	return act_on_ids(t, prefix, ids, n, CMD_TIMEOUT_MS, NULL, err);
}

/* Resolves `id` to a managed container (refusing anything else), then
 * acts on it; *full_id (may be NULL) gets the id acted on. */
static int act_on(spr_docker_admin *a, const char *id,
		  int (*act)(const struct spr_docker_target *, char **, size_t, int, spr_error **),
		  int timeout_seconds, char **full_id, spr_error **err)
{
	_cleanup_cjson_ cJSON *obj = resolve_managed(&a->target, id, err);
	const char *oid = obj ? str_at(obj, "Id", NULL) : NULL;
	char *full = oid ? strdup(oid) : NULL;
	if (obj && !full)
		spr_fail_oom(err);
	if (!full || act(&a->target, &full, 1, timeout_seconds, err) < 0) {
		free(full);
		return -1;
	}
	if (full_id)
		*full_id = full;
	else
		free(full);
	return 0;
}

int spr_docker_stop_container(spr_docker_admin *a, const char *id, int timeout_seconds,
			      char **full_id, spr_error **err)
{
	return act_on(a, id, stop_ids, timeout_seconds, full_id, err);
}

int spr_docker_kill_container(spr_docker_admin *a, const char *id, char **full_id,
			      spr_error **err)
{
	return act_on(a, id, kill_ids, 0, full_id, err);
}

/* The ids (borrowed from list) of its entries. */
static char **entry_ids(const cJSON *list, size_t *n)
{
	char **ids = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*ids));
	*n = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		if (ids)
			ids[(*n)++] = cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring;
	}
	return ids;
}

int spr_docker_stop_all(spr_docker_admin *a, int timeout_seconds, char **json, spr_error **err)
{
	_cleanup_cjson_ cJSON *list = managed_entries(&a->target, false, false, NULL, NULL, err);
	if (!list)
		return -1;
	size_t n;
	_cleanup_free_ char **ids = entry_ids(list, &n);
	if (!ids)
		return spr_fail_oom(err);
	if (stop_ids(&a->target, ids, n, timeout_seconds, err) < 0)
		return -1;
	cJSON *doc = cJSON_CreateObject();
	cJSON *stopped = cJSON_AddArrayToObject(doc, "stopped");
	for (size_t i = 0; i < n; i++)
		cJSON_AddItemToArray(stopped, cJSON_CreateString(ids[i]));
	return print_json(doc, json, err);
}

/* ---- images ------------------------------------------------------------------------ */

/* How many containers (any, not only spr's) use each image id. */
static cJSON *image_users(const struct spr_docker_target *t, spr_error **err)
{
	char *args[] = {(char *)"ps", (char *)"--all", (char *)"--quiet", (char *)"--no-trunc",
			NULL};
	_cleanup_cjson_ cJSON *all = inspect_listed(t, args, "container", err);
	return all ? spr_docker_image_users(all) : NULL;
}

cJSON *spr_docker_image_users(const cJSON *all)
{
	cJSON *counts = cJSON_CreateObject();
	const cJSON *obj;
	cJSON_ArrayForEach(obj, all)
	{
		const char *image = str_at(obj, "Image", NULL);
		if (!image || !counts)
			continue;
		cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, image);
		if (n)
			cJSON_SetNumberValue(n, n->valuedouble + 1);
		else
			cJSON_AddNumberToObject(counts, image, 1);
	}
	return counts;
}

/* spr's own tags of an image: spr-env:<io.spr.env-hash> or
 * spr-runtime:<io.spr.worker-version>. Labels alone prove nothing (an
 * image built FROM spr's inherits them, and anyone can set them): an image
 * is spr's only under a name spr gives, and only that name is spr's
 * (podman's own: localhost/ before it, podman's name for a local image). */
static cJSON *spr_tags(const cJSON *image, bool podman, const char **kind)
{
	const char *what = label_of(image, SPR_LABEL_IMAGE);
	const char *hash = what && !strcmp(what, "env")       ? label_of(image, SPR_LABEL_ENV_HASH)
			   : what && !strcmp(what, "runtime") ? label_of(image, "io.spr.worker-version")
							      : NULL;
	*kind = what;
	cJSON *tags = cJSON_CreateArray();
	if (!hash || !*hash || strchr(hash, ':') || strchr(hash, '/'))
		return tags;
	char want[256];
	if (snprintf(want, sizeof(want), "%s:%s",
		     !strcmp(what, "env") ? SPR_ENV_REPO : SPR_RUNTIME_REPO,
		     hash) >= (int)sizeof(want))
		return tags; /* no name of spr's: a cut one could be anyone's */
	const cJSON *tag;
	cJSON_ArrayForEach(tag, cJSON_GetObjectItemCaseSensitive(image, "RepoTags"))
	{
		const char *name = cJSON_IsString(tag) ? tag->valuestring : "";
		if (podman && !strncmp(name, "localhost/", 10))
			name += 10;
		if (!strcmp(name, want))
			cJSON_AddItemToArray(tags, cJSON_CreateString(want));
	}
	return tags;
}

/* Newest first, then by id: the daemon's order ties images made within
 * one second, and the same daemon must list the same way every time. */
static int compare_images(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	int c = strcmp(str_at(y, "created", NULL), str_at(x, "created", NULL));
	return c ? c : strcmp(str_at(x, "id", NULL), str_at(y, "id", NULL));
}

static cJSON *sorted_images(cJSON *list)
{
	int n = cJSON_GetArraySize(list);
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
	cJSON **items = n ? calloc((size_t)n, sizeof(*items)) : NULL;
	if (!items)
		return list;
	for (int i = n - 1; i >= 0; i--)
		items[i] = cJSON_DetachItemFromArray(list, i);
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): the elements are pointers */
	qsort(items, (size_t)n, sizeof(*items), compare_images);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(list, items[i]);
	free(items);
	return list;
}

static cJSON *managed_images(const struct spr_docker_target *t, spr_error **err)
{
	char *args[] = {(char *)"images", (char *)"--quiet", (char *)"--no-trunc",
			(char *)"--filter", (char *)"label=" SPR_LABEL_IMAGE, NULL};
	_cleanup_cjson_ cJSON *raw = inspect_listed(t, args, "image", err);
	_cleanup_cjson_ cJSON *users = raw ? image_users(t, err) : NULL;
	if (!raw || !users)
		return NULL;
	return spr_docker_image_entries(raw, users, t->podman);
}

cJSON *spr_docker_image_entries(const cJSON *raw, const cJSON *users, bool podman)
{
	cJSON *list = cJSON_CreateArray();
	const cJSON *obj;
	cJSON_ArrayForEach(obj, raw)
	{
		const char *kind = NULL, *id = str_at(obj, "Id", NULL);
		cJSON *tags = spr_tags(obj, podman, &kind);
		if (!id || !cJSON_GetArraySize(tags)) {
			cJSON_Delete(tags);
			continue;
		}
		cJSON *img = cJSON_CreateObject();
		cJSON_AddStringToObject(img, "id", id);
		cJSON_AddItemToObject(img, "tags", tags);
		cJSON_AddStringToObject(img, "kind", kind);
		const cJSON *size = cJSON_GetObjectItemCaseSensitive(obj, "Size");
		cJSON_AddNumberToObject(img, "size_bytes", cJSON_IsNumber(size) ? size->valuedouble : 0);
		const char *created = str_at(obj, "Created", NULL);
		cJSON_AddStringToObject(img, "created", created ? created : "");
		const cJSON *used = cJSON_GetObjectItemCaseSensitive(users, id);
		cJSON_AddNumberToObject(img, "containers", used ? used->valuedouble : 0);
		cJSON_AddItemToArray(list, img);
	}
	return sorted_images(list);
}

int spr_docker_list_images(spr_docker_admin *a, char **json, spr_error **err)
{
	cJSON *list = managed_images(&a->target, err);
	if (!list)
		return -1;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "images", list);
	return print_json(doc, json, err);
}

/* ---- cleanup -------------------------------------------------------------------------- */

/* Exited or dead, or its creator (on this machine: same boot id) is gone;
 * of one env image when env_image_id is given. Not "created": that is also
 * a container another engine is starting right now. */
static bool is_stale(const cJSON *c, const void *env_image_id)
{
	const char *s = str_at(c, "state", NULL), *env = str_at(c, "env", NULL);
	if (env_image_id && (!env || strcmp(env, env_image_id)))
		return false;
	const cJSON *alive = cJSON_GetObjectItemCaseSensitive(c, "creator_alive");
	return (s && (!strcmp(s, "exited") || !strcmp(s, "dead"))) || cJSON_IsFalse(alive);
}

int spr_docker_remove_stale(const struct spr_docker_target *t, const char *env_image_id,
			    int *removed, spr_error **err)
{
	*removed = 0;
	_cleanup_cjson_ cJSON *list = managed_entries(t, true, false, is_stale, env_image_id, err);
	if (!list)
		return -1;
	size_t n;
	_cleanup_free_ char **ids = entry_ids(list, &n);
	if (!ids)
		return spr_fail_oom(err);
	char *prefix[] = {(char *)"rm", (char *)"--force", NULL};
	return act_on_ids(t, prefix, ids, n, CMD_TIMEOUT_MS, removed, err);
}

/* Env images no container uses: their spr tags go (never --force: the
 * daemon refuses an image a container started using meanwhile, and an
 * image with other names keeps them). */
static int remove_unused_images(const struct spr_docker_target *t, int *removed, spr_error **err)
{
	*removed = 0;
	_cleanup_cjson_ cJSON *images = managed_images(t, err);
	if (!images)
		return -1;
	const cJSON *img;
	cJSON_ArrayForEach(img, images)
	{
		const cJSON *used = cJSON_GetObjectItemCaseSensitive(img, "containers");
		if (strcmp(str_at(img, "kind", NULL), "env") || used->valuedouble > 0)
			continue;
		const cJSON *tags = cJSON_GetObjectItemCaseSensitive(img, "tags");
		size_t n = (size_t)cJSON_GetArraySize(tags);
		_cleanup_free_ char **args = calloc(n + 2, sizeof(*args));
		if (!args)
			return spr_fail_oom(err);
		/* podman: the exact local name, never a short name it would
		 * resolve (another registry's spr-env:HASH, should ours be gone) */
		_cleanup_free_ char(*names)[256] = calloc(n ? n : 1, sizeof(*names));
		if (!names)
			return spr_fail_oom(err);
		size_t k = 0;
		args[k++] = (char *)"rmi";
		const cJSON *tag;
		cJSON_ArrayForEach(tag, tags)
		{
			snprintf(names[k - 1], sizeof(*names), "%s%s", t->podman ? "localhost/" : "",
				 tag->valuestring);
			args[k] = names[k - 1];
			k++;
		}
		_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
		_cleanup_error_ spr_error *run_err = NULL;
		if (spr_docker_cmd(t, args, CMD_TIMEOUT_MS, &out, &errout, &run_err) == 0)
			(*removed)++;
	}
	return 0;
}

int spr_cleanup_stale(const spr_local_options *local, spr_docker_admin *admin,
		      spr_cleanup_counts *removed, spr_error **err)
{
	spr_cleanup_counts counts = {0};
	if (spr_local_cleanup_counted(local, &counts.run_cgroups, &counts.run_dirs, err) < 0)
		return -1;
	spr_cleanup_counts local_counts = counts;
	if (admin && spr_docker_cleanup_stale(admin, &counts, err) < 0)
		return -1;
	counts.run_cgroups = local_counts.run_cgroups;
	counts.run_dirs = local_counts.run_dirs;
	if (removed)
		*removed = counts;
	return 0;
}

int spr_docker_cleanup_stale(spr_docker_admin *a, spr_cleanup_counts *removed, spr_error **err)
{
	spr_cleanup_counts counts = {0};
	if (spr_docker_remove_stale(&a->target, NULL, &counts.containers, err) < 0 ||
	    remove_unused_images(&a->target, &counts.images, err) < 0)
		return -1;
	if (removed)
		*removed = counts;
	return 0;
}
