/* Managed containers and images (SPEC §5 admin, §7 "spr (admin CLI)"):
 * what spr started on a daemon, and only that — everything here filters on
 * the io.spr.managed label, and an id that resolves to anything else is
 * refused before any docker command could touch it. All through the
 * docker CLI, so remote daemons (context, host, SSH) work the same. */
#include "docker/admin.h"

#include "docker/docker_engine.h"
#include "json.h"
#include "proc.h"

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

/* The distinct non-empty lines of text (split in place), in order. */
static char **distinct_lines(char *text, size_t *n)
{
	size_t cap = 1;
	for (const char *p = text; p && *p; p++)
		cap += *p == '\n';
	char **lines = calloc(cap, sizeof(*lines));
	*n = 0;
	char *save = NULL;
	for (char *l = lines && text ? strtok_r(text, "\n", &save) : NULL; l;
	     l = strtok_r(NULL, "\n", &save)) {
		bool seen = false;
		for (size_t i = 0; i < *n && !seen; i++)
			seen = !strcmp(lines[i], l);
		if (!seen && *n < cap)
			lines[(*n)++] = l;
	}
	return lines;
}

/* `docker PREFIX... <each distinct line of lines>` to completion. With
 * partial_ok, a non-zero exit is fine (an object removed meanwhile fails
 * its own part only: the output has the rest). */
static int docker_each(const struct spr_docker_target *t, char *const prefix[], char *lines,
		       bool partial_ok, spr_buf *out, spr_error **err)
{
	size_t n;
	_cleanup_free_ char **items = distinct_lines(lines, &n);
	_cleanup_free_ char **args = items ? argv_concat(prefix, items, n) : NULL;
	if (!args)
		return spr_fail_oom(err);
	if (!partial_ok)
		return docker_out(t, args, CMD_TIMEOUT_MS, out, err);
	_cleanup_buf_ spr_buf errout = SPR_BUF_INIT;
	return spr_docker_cmd(t, args, CMD_TIMEOUT_MS, out, &errout, err) < 0 ? -1 : 0;
}

/* ---- creators ------------------------------------------------------------ */

/* The creator label is host:pid:start-time. 1 alive, 0 gone, -1 unknown
 * (created on another host, or a label we cannot read). */
int spr_docker_creator_alive(const char *label)
{
	char host[256] = "";
	if (!label || gethostname(host, sizeof(host) - 1) < 0)
		return -1;
	const char *colon = strrchr(label, ':');
	if (!colon || colon == label)
		return -1;
	const char *pid_colon = colon - 1;
	while (pid_colon > label && *pid_colon != ':')
		pid_colon--;
	if (*pid_colon != ':' || (size_t)(pid_colon - label) != strlen(host) ||
	    strncmp(label, host, strlen(host)) != 0)
		return -1;
	char *end;
	long pid = strtol(pid_colon + 1, &end, 10);
	unsigned long long start = strtoull(colon + 1, NULL, 10);
	if (end != colon || pid <= 0)
		return -1;
	char state;
	unsigned long long now_start;
	if (spr_proc_identity((pid_t)pid, &state, &now_start) < 0)
		return 0;
	return now_start == start && state != 'Z' ? 1 : 0;
}

/* ---- listing containers ---------------------------------------------------- */

#define PS_FORMAT                                                                         \
	"{{.ID}}\t{{.Names}}\t{{.Image}}\t{{.State}}\t{{.Status}}\t{{.CreatedAt}}\t"          \
	"{{.Label \"" SPR_LABEL_POOL "\"}}\t{{.Label \"" SPR_LABEL_ENV "\"}}\t"                \
	"{{.Label \"" SPR_LABEL_CREATOR "\"}}"
enum { F_ID, F_NAME, F_IMAGE, F_STATE, F_STATUS, F_CREATED, F_POOL, F_ENV, F_CREATOR, F_N };

static void add_string_or_null(cJSON *o, const char *key, const char *s)
{
	if (s && *s)
		cJSON_AddStringToObject(o, key, s);
	else
		cJSON_AddNullToObject(o, key);
}

/* Runs served, from the pooled worker's process name (`spr-runs-N`, set
 * by worker/spr_worker.py) through `docker top`: no exec in the
 * container, and it works against remote daemons. -1: unknown. */
static long runs_served(const struct spr_docker_target *t, const char *id)
{
	char *args[] = {(char *)"top", (char *)id, (char *)"-o", (char *)"pid,comm", NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	_cleanup_error_ spr_error *err = NULL;
	if (docker_out(t, args, CMD_TIMEOUT_MS, &out, &err) < 0 || !out.data)
		return -1;
	const char *p = strstr(out.data, "spr-runs-");
	return p ? strtol(p + 9, NULL, 10) : -1;
}

struct ps_ctx {
	const struct spr_docker_target *target;
	cJSON *list;
	bool with_runs;
};

static int add_container(char *line, void *arg)
{
	struct ps_ctx *ctx = arg;
	char *f[F_N];
	if (!split_fields(line, f, F_N))
		return 0; /* not one of our lines (a CLI warning) */
	cJSON *c = cJSON_CreateObject();
	cJSON_AddStringToObject(c, "id", f[F_ID]);
	cJSON_AddStringToObject(c, "name", f[F_NAME]);
	cJSON_AddStringToObject(c, "image", f[F_IMAGE]);
	cJSON_AddStringToObject(c, "state", f[F_STATE]);
	cJSON_AddStringToObject(c, "status", f[F_STATUS]);
	cJSON_AddStringToObject(c, "created", f[F_CREATED]);
	long runs = ctx->with_runs && !strcmp(f[F_STATE], "running")
			    ? runs_served(ctx->target, f[F_ID])
			    : -1;
	if (runs >= 0)
		cJSON_AddNumberToObject(c, "runs", (double)runs);
	else
		cJSON_AddNullToObject(c, "runs");
	add_string_or_null(c, "pool", f[F_POOL]);
	add_string_or_null(c, "env", f[F_ENV]);
	add_string_or_null(c, "creator", f[F_CREATOR]);
	int alive = *f[F_CREATOR] ? spr_docker_creator_alive(f[F_CREATOR]) : -1;
	if (alive < 0)
		cJSON_AddNullToObject(c, "creator_alive");
	else
		cJSON_AddBoolToObject(c, "creator_alive", alive);
	cJSON_AddItemToArray(ctx->list, c);
	return 0;
}

/* Managed containers as a JSON array; extra_filter (e.g. "id=...") narrows. */
static cJSON *managed_containers(const struct spr_docker_target *t, bool all_states,
				 const char *extra_filter, bool with_runs, spr_error **err)
{
	char *args[16];
	size_t n = 0;
	args[n++] = (char *)"ps";
	if (all_states)
		args[n++] = (char *)"--all";
	args[n++] = (char *)"--no-trunc";
	args[n++] = (char *)"--filter";
	args[n++] = (char *)"label=" SPR_LABEL_MANAGED "=1";
	if (extra_filter) {
		args[n++] = (char *)"--filter";
		args[n++] = (char *)extra_filter;
	}
	args[n++] = (char *)"--format";
	args[n++] = (char *)PS_FORMAT;
	args[n] = NULL;
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	if (docker_out(t, args, CMD_TIMEOUT_MS, &out, err) < 0)
		return NULL;
	struct ps_ctx ctx = {.target = t, .list = cJSON_CreateArray(), .with_runs = with_runs};
	if (!ctx.list) {
		spr_fail_oom(err);
		return NULL;
	}
	each_line(out.data, add_container, &ctx);
	return ctx.list;
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

/* The full id of the managed container `want` names (SPEC §7 rules). */
static char *resolve_managed(const struct spr_docker_target *t, const char *want,
			     spr_error **err)
{
	if (!want || !*want)
		return spr_docker_match_container(NULL, want, err);
	char *args[] = {(char *)"ps", (char *)"--all", (char *)"--no-trunc", (char *)"--format",
			(char *)SPR_DOCKER_MATCH_FORMAT, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	if (docker_out(t, args, CMD_TIMEOUT_MS, &out, err) < 0)
		return NULL;
	return spr_docker_match_container(out.data, want, err);
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

int spr_docker_list_containers(spr_docker_admin *a, bool all_states, char **json,
			       spr_error **err)
{
	cJSON *list = managed_containers(&a->target, all_states, NULL, true, err);
	if (!list)
		return -1;
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "containers", list);
	return print_json(doc, json, err);
}

/* What `docker inspect` adds for one container: labels, limits, the
 * hardening it runs with. */
static void add_inspect_details(cJSON *c, const cJSON *inspect)
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
	_cleanup_free_ char *full = resolve_managed(&a->target, id, err);
	if (!full)
		return -1;
	_cleanup_free_ char *filter = NULL;
	if (asprintf(&filter, "id=%s", full) < 0)
		return spr_fail_oom(err);
	_cleanup_cjson_ cJSON *list = managed_containers(&a->target, true, filter, true, err);
	if (!list)
		return -1;
	cJSON *c = cJSON_DetachItemFromArray(list, 0);
	if (!c)
		return spr_fail(err, SPR_LAYER_DOCKER, ESRCH, "No such container: %s", id);
	char *args[] = {(char *)"inspect", (char *)"--type", (char *)"container", full, NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	if (docker_out(&a->target, args, CMD_TIMEOUT_MS, &out, err) < 0) {
		cJSON_Delete(c);
		return -1;
	}
	_cleanup_cjson_ cJSON *inspect = out.data ? cJSON_Parse(out.data) : NULL;
	add_inspect_details(c, cJSON_GetArrayItem(inspect, 0));
	cJSON *doc = cJSON_CreateObject();
	cJSON_AddItemToObject(doc, "container", c);
	return print_json(doc, json, err);
}

/* docker stop/kill of already-resolved ids. */
static int stop_ids(const struct spr_docker_target *t, char **ids, size_t n, int timeout_seconds,
		    spr_error **err)
{
	if (!n)
		return 0;
	if (timeout_seconds < 0)
		timeout_seconds = DEFAULT_STOP_TIMEOUT;
	char seconds[16];
	snprintf(seconds, sizeof(seconds), "%d", timeout_seconds);
	char *prefix[] = {(char *)"stop", (char *)"--time", seconds, NULL};
	_cleanup_free_ char **args = argv_concat(prefix, ids, n);
	if (!args)
		return spr_fail_oom(err);
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	return docker_out(t, args, (int64_t)timeout_seconds * 1000 + CMD_TIMEOUT_MS, &out, err);
}

static int kill_ids(const struct spr_docker_target *t, char **ids, size_t n, int unused,
		    spr_error **err)
{
	(void)unused;
	char *prefix[] = {(char *)"kill", NULL};
	_cleanup_free_ char **args = argv_concat(prefix, ids, n);
	if (!args)
		return spr_fail_oom(err);
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	return docker_out(t, args, CMD_TIMEOUT_MS, &out, err);
}

/* Resolves `id` to a managed container (refusing anything else), then
 * acts on it; *full_id (may be NULL) gets the id acted on. */
static int act_on(spr_docker_admin *a, const char *id,
		  int (*act)(const struct spr_docker_target *, char **, size_t, int, spr_error **),
		  int timeout_seconds, char **full_id, spr_error **err)
{
	char *full = resolve_managed(&a->target, id, err);
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

/* The ids (borrowed from list) of the containers keep() selects. */
static char **select_ids(const cJSON *list, bool (*keep)(const cJSON *c), size_t *n)
{
	char **ids = calloc((size_t)cJSON_GetArraySize(list) + 1, sizeof(*ids));
	*n = 0;
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		if (ids && keep(c))
			ids[(*n)++] = cJSON_GetObjectItemCaseSensitive(c, "id")->valuestring;
	}
	return ids;
}

static bool any_container(const cJSON *c)
{
	(void)c;
	return true;
}

int spr_docker_stop_all(spr_docker_admin *a, int timeout_seconds, char **json, spr_error **err)
{
	_cleanup_cjson_ cJSON *list = managed_containers(&a->target, false, NULL, false, err);
	if (!list)
		return -1;
	size_t n;
	_cleanup_free_ char **ids = select_ids(list, any_container, &n);
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

/* Managed images: [{"id", "tags", "kind", "size_bytes", "created",
 * "containers"}]. Two CLI calls for the images, two for the usage count. */
static int count_users(char *line, void *arg)
{
	cJSON *counts = arg; /* image id -> number */
	cJSON *n = cJSON_GetObjectItemCaseSensitive(counts, line);
	if (n)
		cJSON_SetNumberValue(n, n->valuedouble + 1);
	else
		cJSON_AddNumberToObject(counts, line, 1);
	return 0;
}

static cJSON *image_users(const struct spr_docker_target *t, spr_error **err)
{
	char *ps[] = {(char *)"ps", (char *)"--all", (char *)"--quiet", (char *)"--no-trunc", NULL};
	_cleanup_buf_ spr_buf ids = SPR_BUF_INIT;
	if (docker_out(t, ps, CMD_TIMEOUT_MS, &ids, err) < 0)
		return NULL;
	cJSON *counts = cJSON_CreateObject();
	if (!counts) {
		spr_fail_oom(err);
		return NULL;
	}
	if (!ids.len)
		return counts;
	char *inspect[] = {(char *)"inspect", (char *)"--type", (char *)"container",
			   (char *)"--format", (char *)"{{.Image}}", NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	if (docker_each(t, inspect, ids.data, true, &out, err) < 0) {
		cJSON_Delete(counts);
		return NULL;
	}
	each_line(out.data, count_users, counts);
	return counts;
}

/* Newest first, then by id: the daemon's order ties images made within
 * one second, and the same daemon must list the same way every time. */
static int compare_images(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
	const char *cx = cJSON_GetObjectItemCaseSensitive(x, "created")->valuestring;
	const char *cy = cJSON_GetObjectItemCaseSensitive(y, "created")->valuestring;
	int c = strcmp(cy, cx);
	return c ? c
		 : strcmp(cJSON_GetObjectItemCaseSensitive(x, "id")->valuestring,
			  cJSON_GetObjectItemCaseSensitive(y, "id")->valuestring);
}

static cJSON *sorted_images(cJSON *list)
{
	int n = cJSON_GetArraySize(list);
	cJSON **items = n ? calloc((size_t)n, sizeof(*items)) : NULL;
	if (!items)
		return list;
	for (int i = n - 1; i >= 0; i--)
		items[i] = cJSON_DetachItemFromArray(list, i);
	qsort(items, (size_t)n, sizeof(*items), compare_images);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(list, items[i]);
	free(items);
	return list;
}

static cJSON *managed_images(const struct spr_docker_target *t, spr_error **err)
{
	char *ls[] = {(char *)"images", (char *)"--quiet", (char *)"--no-trunc", (char *)"--filter",
		      (char *)"label=" SPR_LABEL_IMAGE, NULL};
	_cleanup_buf_ spr_buf ids = SPR_BUF_INIT;
	if (docker_out(t, ls, CMD_TIMEOUT_MS, &ids, err) < 0)
		return NULL;
	cJSON *list = cJSON_CreateArray();
	if (!list || !ids.len) {
		if (!list)
			spr_fail_oom(err);
		return list;
	}
	/* `docker images -q` repeats an id once per tag: inspect each once. */
	char *inspect[] = {(char *)"image", (char *)"inspect", (char *)"--format",
			   (char *)"{{.Id}}\t{{.Size}}\t{{.Created}}\t"
				   "{{index .Config.Labels \"" SPR_LABEL_IMAGE "\"}}\t{{json .RepoTags}}",
			   NULL};
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT;
	_cleanup_cjson_ cJSON *users = image_users(t, err);
	if (!users || docker_each(t, inspect, ids.data, true, &out, err) < 0) {
		cJSON_Delete(list);
		return NULL;
	}
	char *save = NULL;
	for (char *line = out.data ? strtok_r(out.data, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *f[5];
		if (!split_fields(line, f, 5))
			continue;
		cJSON *img = cJSON_CreateObject();
		cJSON_AddStringToObject(img, "id", f[0]);
		cJSON *tags = cJSON_Parse(f[4]);
		cJSON_AddItemToObject(img, "tags", cJSON_IsArray(tags) ? tags : cJSON_CreateArray());
		if (tags && !cJSON_IsArray(tags))
			cJSON_Delete(tags);
		cJSON_AddStringToObject(img, "kind", !strcmp(f[3], "env") ? "env" : "runtime");
		cJSON_AddNumberToObject(img, "size_bytes", strtod(f[1], NULL));
		cJSON_AddStringToObject(img, "created", f[2]);
		const cJSON *used = cJSON_GetObjectItemCaseSensitive(users, f[0]);
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

/* Exited or dead, or its creator (on this host) is gone. Not "created":
 * that is also a container another engine is starting right now. */
static bool is_stale(const cJSON *c)
{
	const cJSON *state = cJSON_GetObjectItemCaseSensitive(c, "state");
	const cJSON *alive = cJSON_GetObjectItemCaseSensitive(c, "creator_alive");
	const char *s = cJSON_IsString(state) ? state->valuestring : "";
	return !strcmp(s, "exited") || !strcmp(s, "dead") || cJSON_IsFalse(alive);
}

int spr_docker_remove_stale(const struct spr_docker_target *t, const char *env_image_id,
			    int *removed, spr_error **err)
{
	*removed = 0;
	_cleanup_free_ char *filter = NULL;
	if (env_image_id && asprintf(&filter, "label=" SPR_LABEL_ENV "=%s", env_image_id) < 0)
		return spr_fail_oom(err);
	_cleanup_cjson_ cJSON *list = managed_containers(t, true, filter, false, err);
	if (!list)
		return -1;
	size_t n;
	_cleanup_free_ char **ids = select_ids(list, is_stale, &n);
	if (!ids)
		return spr_fail_oom(err);
	if (!n)
		return 0;
	char *prefix[] = {(char *)"rm", (char *)"--force", NULL};
	_cleanup_free_ char **args = argv_concat(prefix, ids, n);
	if (!args)
		return spr_fail_oom(err);
	_cleanup_buf_ spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	_cleanup_error_ spr_error *run_err = NULL;
	/* --rm containers may vanish meanwhile: count what was removed. */
	if (spr_docker_cmd(t, args, CMD_TIMEOUT_MS, &out, &errout, &run_err) < 0)
		return spr_fail(err, SPR_LAYER_DOCKER, run_err->errnum, "docker rm: %s",
				run_err->message);
	for (size_t i = 0; out.data && i < out.len; i++)
		*removed += out.data[i] == '\n';
	return 0;
}

/* Env images (and untagged managed ones, superseded builds) that no
 * container uses; never a tagged runtime image. */
static bool removable_image(const cJSON *img)
{
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(img, "kind");
	const cJSON *used = cJSON_GetObjectItemCaseSensitive(img, "containers");
	bool untagged = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(img, "tags")) == 0;
	return used->valuedouble == 0 && (!strcmp(kind->valuestring, "env") || untagged);
}

static int remove_unused_images(const struct spr_docker_target *t, int *removed, spr_error **err)
{
	*removed = 0;
	_cleanup_cjson_ cJSON *images = managed_images(t, err);
	if (!images)
		return -1;
	const cJSON *img;
	cJSON_ArrayForEach(img, images)
	{
		if (!removable_image(img))
			continue;
		/* By tag (an id with several tags needs them all); an image a
		 * container started using meanwhile is refused by the daemon,
		 * and that is fine. */
		const cJSON *tags = cJSON_GetObjectItemCaseSensitive(img, "tags");
		size_t n = (size_t)cJSON_GetArraySize(tags);
		_cleanup_free_ char **args = calloc(n + 3, sizeof(*args));
		if (!args)
			return spr_fail_oom(err);
		size_t k = 0;
		args[k++] = (char *)"rmi";
		const cJSON *tag;
		cJSON_ArrayForEach(tag, tags)
		{
			args[k++] = tag->valuestring;
		}
		if (!n)
			args[k++] = cJSON_GetObjectItemCaseSensitive(img, "id")->valuestring;
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
	if (spr_local_cleanup(local, &counts.run_cgroups, err) < 0)
		return -1;
	int cgroups = counts.run_cgroups;
	if (admin && spr_docker_cleanup_stale(admin, &counts, err) < 0)
		return -1;
	counts.run_cgroups = cgroups;
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
