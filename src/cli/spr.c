/* spr: the admin CLI — what spr runs on this host and what it left behind:
 * the LocalEngine's doctor and cleanup, and the DockerEngine's managed
 * containers and images, on the local daemon or a remote one.
 *   spr [options] COMMAND [ARGS]      (options anywhere on the line)
 * Exit status: 0 ok; 1 the command was refused or found a problem; 2 bad
 * usage; 125 docker (or the engine) could not be reached. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "spr.h"

#include "util.h" /* spr_parse_whole */

#define EXIT_PROBLEM 1
#define EXIT_USAGE 2
#define EXIT_ENGINE 125

static const char usage_line[] =
	"usage: spr [--json] [--engine docker|podman] [REMOTE OPTIONS] COMMAND [ARGS]\n"
	"commands: list containers [--all] | list images | container ID |\n"
	"          stop container ID [--timeout-seconds N] | stop all [--timeout-seconds N] |\n"
	"          kill container ID | cleanup | doctor | version";

static const char remote_help[] =
	"Remote options (SPEC §5; default: the docker CLI's own DOCKER_HOST/context):\n"
	"  --docker-context NAME   a docker context\n"
	"  --docker-host URL       unix://PATH, tcp://HOST:PORT or ssh://[USER@]HOST[:PORT]\n"
	"  --ssh-host HOST         a daemon over SSH, with --ssh-user USER, --ssh-port N,\n"
	"                          --ssh-key-path FILE\n";

struct globals {
	bool json, all;
	int timeout_seconds; /* -1: not given */
	const char *python;
	const char *cgroup_parent;
	spr_docker_options docker;
	bool remote; /* any remote option given */
	bool engine_given; /* --engine: doctor examines that CLI only, and must reach it */
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("spr: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s\nTry 'spr --help' for more information.\n", usage_line);
	return EXIT_USAGE;
}

/* --help on every level: the top, or one command's. */
static void help(const char *cmd)
{
	if (cmd && !strcmp(cmd, "list")) {
		printf("usage: spr list containers [--all] [--json] [REMOTE OPTIONS]\n"
		       "       spr list images [--json] [REMOTE OPTIONS]\n\n"
		       "The containers (running ones; --all: every state) and images spr manages\n"
		       "(label io.spr.managed=1) on the daemon; nothing else is shown.\n\n%s",
		       remote_help);
	} else if (cmd && !strcmp(cmd, "container")) {
		printf("usage: spr container ID [--json] [REMOTE OPTIONS]\n\n"
		       "Details of one managed container: state, runs served, labels, limits and\n"
		       "the hardening it runs with. ID: a full id, a name, or a unique prefix.\n\n%s",
		       remote_help);
	} else if (cmd && !strcmp(cmd, "stop")) {
		printf("usage: spr stop container ID [--timeout-seconds N] [--json] [REMOTE OPTIONS]\n"
		       "       spr stop all [--timeout-seconds N] [--json] [REMOTE OPTIONS]\n\n"
		       "Stops one managed container, or all of them: SIGTERM, then SIGKILL after N\n"
		       "seconds (default 10). Containers spr does not manage are never touched.\n\n%s",
		       remote_help);
	} else if (cmd && !strcmp(cmd, "kill")) {
		printf("usage: spr kill container ID [--json] [REMOTE OPTIONS]\n\n"
		       "Kills one managed container (SIGKILL).\n\n%s",
		       remote_help);
	} else if (cmd && !strcmp(cmd, "cleanup")) {
		printf("usage: spr cleanup [--json] [--cgroup-parent NAME] [REMOTE OPTIONS]\n\n"
		       "Removes what killed callers left behind: LocalEngine run cgroups whose\n"
		       "helper is gone; managed containers that exited or whose creating process\n"
		       "(on this host) is gone; env images (spr-env:*) no container uses. Without\n"
		       "a reachable docker daemon (and no remote option) the docker part is\n"
		       "skipped, and the output says so.\n\n%s",
		       remote_help);
	} else if (cmd && !strcmp(cmd, "doctor")) {
		printf("usage: spr doctor [--json] [--python PATH] [--cgroup-parent NAME]\n"
		       "                  [--engine docker|podman]\n\n"
		       "What the LocalEngine can use here: cgroup hierarchies per controller (and\n"
		       "the fix when one is unusable), and the isolation a trial run actually got.\n"
		       "With --engine, that container CLI too (it must work): version, podman's\n"
		       "mode (rootful or rootless), cgroup version, storage driver, and which\n"
		       "limits it can enforce.\n"
		       "Exit 1 when problems were found.\n");
	} else {
		printf("%s\n\n"
		       "Administer spr: the LocalEngine on this host and the containers the\n"
		       "DockerEngine started (only those) on a local or remote daemon.\n\n"
		       "  list containers   managed containers (--all: also stopped ones)\n"
		       "  list images       managed images (runtime and env images)\n"
		       "  container ID      one managed container in detail\n"
		       "  stop container ID / stop all / kill container ID\n"
		       "  cleanup           remove what killed callers left behind\n"
		       "  doctor            what the LocalEngine and the container CLIs can use here\n"
		       "  version           print the version\n\n"
		       "Options (anywhere on the line):\n"
		       "  --json            machine-readable output\n"
		       "  --engine docker|podman  the container CLI (default: docker, which may be\n"
		       "                    podman; SPEC §5 \"Podman\")\n"
		       "  --python PATH     interpreter for doctor's trial run (/usr/bin/python3)\n"
		       "  --cgroup-parent NAME  cgroup (relative to this process's own) that runs go\n"
		       "                    under; default $SPR_CGROUP_PARENT\n"
		       "%s\n"
		       "'spr COMMAND --help' describes one command.\n"
		       "Exit status: 0 ok, 1 refused or problems found, 2 bad usage, 125 docker\n"
		       "or the engine unavailable.\n",
		       usage_line, remote_help);
	}
}

static spr_local_options local_options(const struct globals *g)
{
	const char *env_parent = getenv("SPR_CGROUP_PARENT");
	spr_local_options o = {
		.python = g->python,
		.libexec_dir = NULL,
		.cgroup_parent = g->cgroup_parent ? g->cgroup_parent
				 : env_parent && *env_parent ? env_parent
							     : NULL,
	};
	return o;
}

static const char *str(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_isolation(const cJSON *iso)
{
	static const char *const layers[] = {"userns", "pidns", "netns", "mountns"};
	printf("sandbox     ");
	for (size_t i = 0; i < sizeof(layers) / sizeof(*layers); i++)
		printf("%s%s ", layers[i],
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(iso, layers[i])) ? "" : "(no)");
	const cJSON *abi = cJSON_GetObjectItemCaseSensitive(iso, "landlock_abi");
	printf("| network %s | seccomp %s | landlock %s", str(iso, "network"), str(iso, "seccomp"),
	       cJSON_IsNumber(abi) ? "yes" : "no");
	if (cJSON_IsNumber(abi))
		printf(" (ABI %d)", abi->valueint);
	printf(" | cgroup %s | memory limit by %s%s\n", str(iso, "cgroup"), str(iso, "memory"),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(iso, "degraded")) ? " | DEGRADED" : "");
	if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(iso, "pidns")) && str(iso, "process_tree")) {
		/* What stands in for the namespaces, and what nothing can hide. */
		const cJSON *uid = cJSON_GetObjectItemCaseSensitive(iso, "host_uid");
		printf("            ipc %s | unix sockets %s | landlock tcp %s, scoped %s | uid %d | "
		       "process tree: %s\n",
		       str(iso, "ipc"), str(iso, "unix_sockets"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(iso, "landlock_tcp")) ? "yes" : "no",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(iso, "landlock_scoped")) ? "yes"
												: "no",
		       cJSON_IsNumber(uid) ? uid->valueint : -1, str(iso, "process_tree"));
		const cJSON *v;
		printf("            visible to the code:");
		cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(iso, "visible"))
		printf(" %s;", v->valuestring);
		printf("\n");
	}
}

static void print_doctor(const cJSON *r)
{
	const cJSON *uid = cJSON_GetObjectItemCaseSensitive(r, "uid");
	printf("spr %s on Linux %s (%s), uid %d%s\n", str(r, "spr"), str(r, "kernel"),
	       str(r, "machine"), uid->valueint, uid->valueint == 0 ? " (root)" : "");
	const cJSON *py = cJSON_GetObjectItemCaseSensitive(r, "python");
	if (py)
		printf("python      %s (%s)\n", str(py, "executable"), str(py, "version"));
	const cJSON *run = cJSON_GetObjectItemCaseSensitive(r, "run");
	const cJSON *iso = cJSON_GetObjectItemCaseSensitive(run, "isolation");
	if (iso)
		print_isolation(iso);
	printf("trial run   %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(run, "ok"))
				      ? "ok"
				      : str(run, "error") ? str(run, "error")
							   : "failed");
	const cJSON *where = cJSON_GetObjectItemCaseSensitive(r, "where");
	if (str(where, "container"))
		printf("where       inside %s container\n", str(where, "container"));
	/* What --allow-degraded would give where the trial run could not run. */
	const cJSON *degraded = cJSON_GetObjectItemCaseSensitive(r, "degraded_run");
	if (degraded) {
		printf("degraded    with --allow-degraded: %s\n",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(degraded, "ok"))
			       ? "a run works, with these layers:"
			       : str(degraded, "error") ? str(degraded, "error") : "failed");
		const cJSON *diso = cJSON_GetObjectItemCaseSensitive(degraded, "isolation");
		if (diso)
			print_isolation(diso);
	}
	const cJSON *cg = cJSON_GetObjectItemCaseSensitive(r, "cgroups");
	printf("cgroups     %s%s\n", str(cg, "version"),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cg, "usable")) ? "" : " (NOT usable)");
	static const char *const ctls[] = {"memory", "pids", "cpu", "cpuacct"};
	for (size_t i = 0; i < sizeof(ctls) / sizeof(*ctls); i++) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(cg, ctls[i]);
		const char *base = str(c, "base");
		const cJSON *writable = cJSON_GetObjectItemCaseSensitive(c, "writable");
		printf("  %-9s %-4s %s  %s%s\n", ctls[i], str(c, "hierarchy"), base ? base : "-",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "usable")) ? "usable"
										 : "unusable",
		       cJSON_IsFalse(writable) ? ", not writable" : "");
		if (str(c, "problem"))
			printf("            fix: %s\n", str(c, "problem"));
	}
	if (str(cg, "moves_caller_to"))
		printf("  a run moves its caller into %s (cgroup v2: no internal processes)\n",
		       str(cg, "moves_caller_to"));
	const cJSON *uids = cJSON_GetObjectItemCaseSensitive(r, "run_uids");
	if (str(uids, "range"))
		printf("run uids    %s%s%s%s\n", str(uids, "range"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(uids, "used"))
			       ? " (runs as root, docker containers)"
			       : " (docker containers; rootless runs are the caller's)",
		       str(uids, "overlaps") ? ", includes " : ", no account uses them",
		       str(uids, "overlaps") ? str(uids, "overlaps") : "");
}

static void print_problems(const cJSON *r)
{
	const cJSON *problems = cJSON_GetObjectItemCaseSensitive(r, "problems");
	const cJSON *p;
	if (cJSON_GetArraySize(problems))
		printf("problems:\n");
	cJSON_ArrayForEach(p, problems)
	{
		printf("  - %s\n", p->valuestring);
	}
}

/* One container CLI as the DockerEngine would use it, or why not. */
static cJSON *describe_cli(const struct globals *g, const char *cli)
{
	spr_docker_options o = g->docker;
	o.container_cli = cli;
	spr_docker_admin *a = NULL;
	spr_error *err = NULL;
	char *json = NULL;
	cJSON *d = NULL;
	if (spr_docker_admin_new(&o, &a, &err) == 0 && spr_docker_describe(a, &json, &err) == 0)
		d = cJSON_Parse(json);
	spr_docker_admin_free(a);
	spr_free(json);
	if (!d) {
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "cli", cli);
		cJSON_AddStringToObject(d, "error", err ? err->message : "out of memory");
	}
	spr_error_free(err);
	return d;
}

/* Only with --engine: examining a CLI runs it, and podman sets up its
 * storage for whoever runs it (a diagnostic must not, unasked). */
static void add_containers(const struct globals *g, cJSON *r)
{
	if (!g->engine_given)
		return;
	cJSON *list = cJSON_AddArrayToObject(r, "containers");
	cJSON *problems = cJSON_GetObjectItemCaseSensitive(r, "problems");
	cJSON *d = describe_cli(g, g->docker.container_cli);
	const cJSON *limits = cJSON_GetObjectItemCaseSensitive(d, "limits");
	/* Asked for: it must work and enforce every limit. */
	if (str(d, "error"))
		cJSON_AddItemToArray(problems, cJSON_CreateString(str(d, "error")));
	else if (limits && !(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(limits, "memory")) &&
			     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(limits, "pids")) &&
			     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(limits, "cpu"))))
		cJSON_AddItemToArray(
			problems,
			cJSON_CreateString("rootless podman cannot enforce every limit here: runs "
					   "fail closed unless --allow-degraded (then rlimits); run "
					   "podman as root, or on cgroup v2 with the memory, pids and "
					   "cpu controllers delegated"));
	cJSON_AddItemToArray(list, d);
}

static void print_container_clis(const cJSON *r)
{
	if (!cJSON_GetObjectItemCaseSensitive(r, "containers"))
		printf("containers  spr doctor --engine docker|podman examines one\n");
	const cJSON *d;
	cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r, "containers"))
	{
		if (str(d, "error")) {
			printf("%-11s %s\n", str(d, "cli"), str(d, "error"));
			continue;
		}
		const cJSON *limits = cJSON_GetObjectItemCaseSensitive(d, "limits");
		bool mem = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(limits, "memory"));
		bool pids = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(limits, "pids"));
		bool cpu = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(limits, "cpu"));
		printf("%-11s %s %s (%s)", str(d, "cli"), str(d, "version"), str(d, "path"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "remote")) ? "remote"
											: "local");
		const cJSON *cgv = cJSON_GetObjectItemCaseSensitive(d, "cgroup_version");
		if (cJSON_IsNumber(cgv))
			printf(" | %s | cgroup v%d | storage %s",
			       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "rootless")) ? "rootless"
												: "rootful",
			       cgv->valueint, str(d, "storage"));
		printf(" | limits: memory %s, pids %s, cpu %s\n", mem ? "yes" : "NO",
		       pids ? "yes" : "NO", cpu ? "yes" : "NO");
	}
}

static int cmd_doctor(const struct globals *g)
{
	spr_local_options o = local_options(g);
	char *json = NULL;
	spr_error *err = NULL;
	if (spr_local_doctor(&o, &json, &err) < 0) {
		fprintf(stderr, "spr: doctor: %s\n", err->message);
		spr_error_free(err);
		return EXIT_ENGINE;
	}
	cJSON *r = cJSON_Parse(json);
	add_containers(g, r);
	int problems = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "problems"));
	if (g->json) {
		char *pretty = cJSON_Print(r);
		puts(pretty ? pretty : json);
		free(pretty);
	} else {
		print_doctor(r);
		print_container_clis(r);
		print_problems(r);
	}
	cJSON_Delete(r);
	spr_free(json);
	return problems ? EXIT_PROBLEM : 0;
}


/* ---- the DockerEngine's managed containers ---------------------------------- */

/* Refused / not found / ambiguous: 1; conflicting options: 2; docker
 * missing or unreachable: 125. */
static int admin_failure(const char *what, spr_error *err)
{
	int rc = err->errnum == EPERM || err->errnum == ESRCH || err->errnum == ENOTUNIQ
			 ? EXIT_PROBLEM
		 : err->errnum == EINVAL ? EXIT_USAGE
					 : EXIT_ENGINE;
	if (what)
		fprintf(stderr, "spr: %s: %s\n", what, err->message);
	else
		fprintf(stderr, "spr: %s\n", err->message);
	spr_error_free(err);
	return rc;
}

static int open_admin(const struct globals *g, spr_docker_admin **a)
{
	spr_error *err = NULL;
	if (spr_docker_admin_new(&g->docker, a, &err) < 0)
		return admin_failure(NULL, err);
	return 0;
}

/* Aligned columns, the header first; cells are copied. */
struct table {
	size_t ncols, nrows;
	char **cells; /* row-major */
	size_t width[8];
};

static void table_add(struct table *t, const char *const *row)
{
	char **cells = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*cells));
	if (!cells)
		return;
	t->cells = cells;
	for (size_t i = 0; i < t->ncols; i++) {
		char *c = strdup(row[i] ? row[i] : "-");
		cells[t->nrows * t->ncols + i] = c;
		size_t w = c ? strlen(c) : 0;
		if (w > t->width[i])
			t->width[i] = w;
	}
	t->nrows++;
}

static void table_print_free(struct table *t)
{
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *c = t->cells[r * t->ncols + i];
			if (i + 1 < t->ncols)
				printf("%-*s   ", (int)t->width[i], c ? c : "");
			else
				printf("%s\n", c ? c : "");
		}
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* A table with this header for list, or the note when list is empty. */
static bool table_begin(struct table *t, const cJSON *list, const char *empty_note,
			const char *const *header, size_t ncols)
{
	if (!cJSON_GetArraySize(list)) {
		puts(empty_note);
		return false;
	}
	*t = (struct table){.ncols = ncols};
	table_add(t, header);
	return true;
}

static void print_json_text(const char *json)
{
	cJSON *doc = cJSON_Parse(json);
	char *pretty = doc ? cJSON_Print(doc) : NULL;
	puts(pretty ? pretty : json);
	free(pretty);
	cJSON_Delete(doc);
}

/* A JSON number or string member as text (buf for numbers). */
static const char *field(const cJSON *o, const char *key, char *buf, size_t size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsNumber(v)) {
		snprintf(buf, size, "%.0f", v->valuedouble);
		return buf;
	}
	return NULL;
}

static void print_containers(const cJSON *doc, bool all)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "containers");
	static const char *const header[] = {"CONTAINER ID", "NAME",   "IMAGE",
					     "STATE",	     "STATUS", "RUNS"};
	struct table t;
	if (!table_begin(&t, list,
			 all ? "no spr containers"
			     : "no running spr containers (--all shows stopped ones too)",
			 header, 6))
		return;
	const cJSON *c;
	cJSON_ArrayForEach(c, list)
	{
		char id[13] = "", runs[32];
		snprintf(id, sizeof(id), "%s", str(c, "id") ? str(c, "id") : "");
		const char *row[] = {id,
				     str(c, "name"),
				     str(c, "image"),
				     str(c, "state"),
				     str(c, "status"),
				     field(c, "runs", runs, sizeof(runs))};
		table_add(&t, row);
	}
	table_print_free(&t);
}

static void human_size(double bytes, char *buf, size_t size)
{
	if (bytes >= 1e9)
		snprintf(buf, size, "%.2f GB", bytes / 1e9);
	else if (bytes >= 1e6)
		snprintf(buf, size, "%.1f MB", bytes / 1e6);
	else
		snprintf(buf, size, "%.0f kB", bytes / 1e3);
}

static void print_images(const cJSON *doc)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "images");
	static const char *const header[] = {"IMAGE ID", "TAG",     "KIND",
					     "SIZE",	 "CREATED", "CONTAINERS"};
	struct table t;
	if (!table_begin(&t, list, "no spr images", header, 6))
		return;
	const cJSON *img;
	cJSON_ArrayForEach(img, list)
	{
		const char *id = str(img, "id") ? str(img, "id") : "";
		if (!strncmp(id, "sha256:", 7))
			id += 7;
		char short_id[13], size[32], created[20] = "", users[32];
		snprintf(short_id, sizeof(short_id), "%s", id);
		const cJSON *size_v = cJSON_GetObjectItemCaseSensitive(img, "size_bytes");
		human_size(cJSON_IsNumber(size_v) ? size_v->valuedouble : 0, size, sizeof(size));
		/* RFC 3339 from the daemon: the minute is enough here. */
		const char *when = str(img, "created") ? str(img, "created") : "";
		snprintf(created, sizeof(created), "%.16s", when);
		if (strlen(created) > 10 && created[10] == 'T')
			created[10] = ' ';
		char tags[512] = "";
		const cJSON *tag;
		cJSON_ArrayForEach(tag, cJSON_GetObjectItemCaseSensitive(img, "tags"))
		{
			if (cJSON_IsString(tag))
				snprintf(tags + strlen(tags), sizeof(tags) - strlen(tags), "%s%s",
					 *tags ? "," : "", tag->valuestring);
		}
		const char *row[] = {short_id,	       *tags ? tags : "<none>", str(img, "kind"),
				     size,	       created,
				     field(img, "containers", users, sizeof(users))};
		table_add(&t, row);
	}
	table_print_free(&t);
}

static void print_container(const cJSON *doc)
{
	const cJSON *c = cJSON_GetObjectItemCaseSensitive(doc, "container");
	char buf[64];
	static const char *const keys[] = {"id",	 "name",     "image",	"image_id",
					   "state",	 "status",   "created", "started_at",
					   "runs",	 "max_runs", "sharing", "pool",
					   "env",	 "creator"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(*keys); i++) {
		const char *v = field(c, keys[i], buf, sizeof(buf));
		printf("%-14s %s\n", keys[i], v ? v : "-");
	}
	const cJSON *alive = cJSON_GetObjectItemCaseSensitive(c, "creator_alive");
	printf("%-14s %s\n", "creator_alive",
	       cJSON_IsBool(alive)   ? (cJSON_IsTrue(alive) ? "yes" : "no")
	       : str(c, "creator") ? "unknown (another host)"
				   : "-");
	static const char *const groups[] = {"limits", "security"};
	for (size_t g = 0; g < 2; g++) {
		const cJSON *item;
		cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(c, groups[g]))
		{
			char *text = cJSON_PrintUnformatted(item);
			printf("%-14s %s\n", item->string, text ? text : "?");
			free(text);
		}
	}
}

/* One admin query: open the daemon, ask, print the JSON document (--json)
 * or the human form of it. */
typedef int admin_query(spr_docker_admin *a, const struct globals *g, const char *arg,
			char **json, spr_error **err);
typedef void admin_print(const cJSON *doc, const struct globals *g);

static int run_query(const struct globals *g, admin_query *query, const char *arg,
		     admin_print *print)
{
	spr_docker_admin *a = NULL;
	int rc = open_admin(g, &a);
	if (rc)
		return rc;
	char *json = NULL;
	spr_error *err = NULL;
	int r = query(a, g, arg, &json, &err);
	spr_docker_admin_free(a);
	if (r < 0)
		return admin_failure(NULL, err);
	if (g->json) {
		print_json_text(json);
	} else {
		cJSON *doc = cJSON_Parse(json);
		print(doc, g);
		cJSON_Delete(doc);
	}
	spr_free(json);
	return 0;
}

static int query_containers(spr_docker_admin *a, const struct globals *g, const char *arg,
			    char **json, spr_error **err)
{
	(void)arg;
	return spr_docker_list_containers(a, g->all, json, err);
}

static void show_containers(const cJSON *doc, const struct globals *g)
{
	print_containers(doc, g->all);
}

static int query_images(spr_docker_admin *a, const struct globals *g, const char *arg,
			char **json, spr_error **err)
{
	(void)g;
	(void)arg;
	return spr_docker_list_images(a, json, err);
}

static void show_images(const cJSON *doc, const struct globals *g)
{
	(void)g;
	print_images(doc);
}

static int query_container(spr_docker_admin *a, const struct globals *g, const char *id,
			   char **json, spr_error **err)
{
	(void)g;
	return spr_docker_inspect_container(a, id, json, err);
}

static void show_container(const cJSON *doc, const struct globals *g)
{
	(void)g;
	print_container(doc);
}

static int query_stop_all(spr_docker_admin *a, const struct globals *g, const char *arg,
			  char **json, spr_error **err)
{
	(void)arg;
	return spr_docker_stop_all(a, g->timeout_seconds, json, err);
}

static void show_stopped(const cJSON *doc, const struct globals *g)
{
	(void)g;
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(doc, "stopped");
	int n = cJSON_GetArraySize(ids);
	printf("stopped %d spr container%s\n", n, n == 1 ? "" : "s");
	const cJSON *id;
	cJSON_ArrayForEach(id, ids)
	{
		printf("  %s\n", id->valuestring);
	}
}

static int cmd_list(const struct globals *g, const char *what)
{
	return !strcmp(what, "containers") ? run_query(g, query_containers, NULL, show_containers)
					    : run_query(g, query_images, NULL, show_images);
}

static int cmd_container(const struct globals *g, const char *id)
{
	return run_query(g, query_container, id, show_container);
}

/* stop container ID / kill container ID */
static int cmd_stop_or_kill(const struct globals *g, bool kill, const char *id)
{
	spr_docker_admin *a = NULL;
	int rc = open_admin(g, &a);
	if (rc)
		return rc;
	char *full = NULL;
	spr_error *err = NULL;
	int r = kill ? spr_docker_kill_container(a, id, &full, &err)
		     : spr_docker_stop_container(a, id, g->timeout_seconds, &full, &err);
	spr_docker_admin_free(a);
	if (r < 0)
		return admin_failure(NULL, err);
	if (g->json)
		printf("{\"%s\": [\"%s\"]}\n", kill ? "killed" : "stopped", full);
	else
		printf("%s %s\n", kill ? "killed" : "stopped", full);
	spr_free(full);
	return 0;
}

static int cmd_stop_all(const struct globals *g)
{
	return run_query(g, query_stop_all, NULL, show_stopped);
}

/* Local run cgroups always; docker when a daemon answers (or remote
 * options say which, and then it must answer). */
static int cmd_cleanup(const struct globals *g)
{
	char *skipped = NULL;
	spr_docker_admin *a = NULL;
	spr_error *err = NULL;
	if (spr_docker_admin_new(&g->docker, &a, &err) < 0) {
		if (g->remote || err->errnum == EINVAL)
			return admin_failure(NULL, err);
		skipped = strdup(err->message);
		spr_error_free(err);
		err = NULL;
	}
	spr_local_options local = local_options(g);
	spr_cleanup_counts removed = {0};
	int r = spr_cleanup_stale(&local, a, &removed, &err);
	spr_docker_admin_free(a);
	if (r < 0) {
		free(skipped);
		return admin_failure("cleanup", err);
	}
	if (g->json) {
		cJSON *doc = cJSON_CreateObject();
		cJSON *counts = cJSON_AddObjectToObject(doc, "removed");
		if (skipped) {
			cJSON_AddNullToObject(counts, "containers");
			cJSON_AddNullToObject(counts, "images");
		} else {
			cJSON_AddNumberToObject(counts, "containers", removed.containers);
			cJSON_AddNumberToObject(counts, "images", removed.images);
		}
		cJSON_AddNumberToObject(counts, "run_cgroups", removed.run_cgroups);
		cJSON_AddNumberToObject(counts, "run_dirs", removed.run_dirs);
		if (skipped) {
			char *why = NULL;
			if (asprintf(&why, "skipped: %s", skipped) >= 0)
				cJSON_AddStringToObject(doc, "docker", why);
			free(why);
		}
		char *text = cJSON_Print(doc);
		puts(text ? text : "{}");
		free(text);
		cJSON_Delete(doc);
	} else {
		printf("removed %d stale run cgroup%s and %d run director%s\n",
		       removed.run_cgroups, removed.run_cgroups == 1 ? "" : "s", removed.run_dirs,
		       removed.run_dirs == 1 ? "y" : "ies");
		if (skipped)
			printf("docker: skipped (%s)\n", skipped);
		else
			printf("removed %d container%s and %d image%s\n", removed.containers,
			       removed.containers == 1 ? "" : "s", removed.images,
			       removed.images == 1 ? "" : "s");
	}
	free(skipped);
	return 0;
}

/* ---- the command line --------------------------------------------------------- */

static int parse_port(const char *s, int *port)
{
	long long v;
	if (!spr_parse_whole(s, 1, 65535, &v))
		return -1;
	*port = (int)v;
	return 0;
}

static int parse_seconds(const char *s, int *seconds)
{
	long long v;
	if (!spr_parse_whole(s, 0, INT_MAX / 1000, &v))
		return -1;
	*seconds = (int)v;
	return 0;
}

/* Which options make sense for which command: a stray one is a usage
 * error, not silently ignored. */
static int check_options(const struct globals *g, const char *cmd, const char *sub)
{
	bool is_list_containers = !strcmp(cmd, "list") && sub && !strcmp(sub, "containers");
	bool is_stop = !strcmp(cmd, "stop");
	bool local = !strcmp(cmd, "doctor") || !strcmp(cmd, "cleanup");
	if (g->all && !is_list_containers)
		return usage_error("--all applies to 'list containers' only");
	if (g->timeout_seconds >= 0 && !is_stop)
		return usage_error("--timeout-seconds applies to 'stop' only");
	if ((g->python || g->cgroup_parent) && !local)
		return usage_error("--python and --cgroup-parent apply to 'doctor' and 'cleanup'");
	if (g->python && !strcmp(cmd, "cleanup"))
		return usage_error("--python applies to 'doctor' only");
	if (g->remote && !strcmp(cmd, "doctor"))
		return usage_error("'doctor' examines this host; remote options do not apply");
	return 0;
}

/* Positional words after the command: exactly `want` of them. */
static int expect_args(const char *what, int have, int want, char **args)
{
	if (have < want)
		return usage_error("'%s' needs %s", what, want == 1 ? "an argument" : "arguments");
	if (have > want)
		return usage_error("'%s': unexpected argument '%s'", what, args[want]);
	return 0;
}

static int dispatch(struct globals *g, int argc, char **argv)
{
	const char *cmd = argv[0];
	char **args = argv + 1;
	int nargs = argc - 1;
	const char *sub = nargs ? args[0] : NULL;
	/* `help` as a word on every level where it cannot be an ID. */
	if (sub && !strcmp(sub, "help") &&
	    (!strcmp(cmd, "list") || !strcmp(cmd, "stop") || !strcmp(cmd, "kill") ||
	     !strcmp(cmd, "doctor") || !strcmp(cmd, "cleanup"))) {
		help(cmd);
		return 0;
	}
	int rc = check_options(g, cmd, sub);
	if (rc)
		return rc;
	if (!strcmp(cmd, "version")) {
		if ((rc = expect_args("version", nargs, 0, args)))
			return rc;
		printf(g->json ? "{\"spr\": \"%s\"}\n" : "spr %s\n", SPR_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "doctor") || !strcmp(cmd, "cleanup")) {
		if ((rc = expect_args(cmd, nargs, 0, args)))
			return rc;
		return !strcmp(cmd, "doctor") ? cmd_doctor(g) : cmd_cleanup(g);
	}
	if (!strcmp(cmd, "list")) {
		if (!sub)
			return usage_error("'list' needs 'containers' or 'images'");
		if (strcmp(sub, "containers") && strcmp(sub, "images"))
			return usage_error("'list %s': expected 'containers' or 'images'", sub);
		if ((rc = expect_args("list", nargs, 1, args)))
			return rc;
		return cmd_list(g, sub);
	}
	if (!strcmp(cmd, "container")) {
		if ((rc = expect_args("container", nargs, 1, args)))
			return rc;
		return cmd_container(g, args[0]);
	}
	if (!strcmp(cmd, "stop") || !strcmp(cmd, "kill")) {
		bool kill = !strcmp(cmd, "kill");
		if (!sub)
			return usage_error(kill ? "'kill' needs 'container ID'"
						: "'stop' needs 'container ID' or 'all'");
		if (!kill && !strcmp(sub, "all")) {
			if ((rc = expect_args("stop all", nargs, 1, args)))
				return rc;
			return cmd_stop_all(g);
		}
		if (strcmp(sub, "container"))
			return usage_error(kill ? "'kill %s': expected 'container ID'"
						: "'stop %s': expected 'container ID' or 'all'",
					   sub);
		if ((rc = expect_args(kill ? "kill container" : "stop container", nargs - 1, 1,
				      args + 1)))
			return rc;
		return cmd_stop_or_kill(g, kill, args[1]);
	}
	return usage_error("unknown command '%s'", cmd);
}

int main(int argc, char **argv)
{
	enum {
		OPT_PYTHON = 256,
		OPT_CGROUP_PARENT,
		OPT_VERSION,
		OPT_ALL,
		OPT_TIMEOUT,
		OPT_CONTEXT,
		OPT_HOST,
		OPT_SSH_HOST,
		OPT_SSH_USER,
		OPT_SSH_PORT,
		OPT_SSH_KEY,
		OPT_ENGINE,
	};
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"python", required_argument, NULL, OPT_PYTHON},
		{"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
		{"all", no_argument, NULL, OPT_ALL},
		{"timeout-seconds", required_argument, NULL, OPT_TIMEOUT},
		{"docker-context", required_argument, NULL, OPT_CONTEXT},
		{"docker-host", required_argument, NULL, OPT_HOST},
		{"ssh-host", required_argument, NULL, OPT_SSH_HOST},
		{"ssh-user", required_argument, NULL, OPT_SSH_USER},
		{"ssh-port", required_argument, NULL, OPT_SSH_PORT},
		{"ssh-key-path", required_argument, NULL, OPT_SSH_KEY},
		{"engine", required_argument, NULL, OPT_ENGINE},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{0},
	};
	struct globals g = {.timeout_seconds = -1};
	bool want_help = false;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': g.json = true; break;
		case OPT_PYTHON: g.python = optarg; break;
		case OPT_CGROUP_PARENT: g.cgroup_parent = optarg; break;
		case OPT_ALL: g.all = true; break;
		case OPT_TIMEOUT:
			if (parse_seconds(optarg, &g.timeout_seconds) < 0)
				return usage_error("--timeout-seconds: '%s' is not a whole number of "
						   "seconds",
						   optarg);
			break;
		case OPT_CONTEXT: g.docker.docker_context = optarg; g.remote = true; break;
		case OPT_HOST: g.docker.docker_host = optarg; g.remote = true; break;
		case OPT_SSH_HOST: g.docker.ssh_host = optarg; g.remote = true; break;
		case OPT_SSH_USER: g.docker.ssh_user = optarg; g.remote = true; break;
		case OPT_SSH_KEY: g.docker.ssh_key_path = optarg; g.remote = true; break;
		case OPT_SSH_PORT:
			if (parse_port(optarg, &g.docker.ssh_port) < 0)
				return usage_error("--ssh-port: '%s' is not a port (1-65535)", optarg);
			g.remote = true;
			break;
		case OPT_ENGINE:
			if (strcmp(optarg, "docker") && strcmp(optarg, "podman"))
				return usage_error("--engine: '%s' is not a container engine (docker "
						   "or podman)",
						   optarg);
			g.docker.container_cli = optarg;
			g.engine_given = true;
			break;
		case 'h': want_help = true; break;
		case OPT_VERSION: printf("spr %s\n", SPR_VERSION); return 0;
		case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
		default: return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	const char *cmd = optind < argc ? argv[optind] : NULL;
	if (want_help || (cmd && !strcmp(cmd, "help"))) {
		const char *topic = cmd && !strcmp(cmd, "help") ? (optind + 1 < argc ? argv[optind + 1] : NULL)
							      : cmd;
		help(topic);
		return 0;
	}
	if (!cmd)
		return usage_error("missing command");
	return dispatch(&g, argc - optind, argv + optind);
}
