/* spr: the admin CLI — what spr runs on this host and what it left behind.
 *   spr [global options] COMMAND [options]
 * Exit status: 0 ok; 1 the command ran and found a problem; 2 bad usage;
 * 125 the engine could not be reached. */
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "spr.h"

#define EXIT_PROBLEM 1
#define EXIT_USAGE 2
#define EXIT_ENGINE 125

static const char usage_line[] =
	"usage: spr [--json] [--python PATH] [--cgroup-parent NAME] COMMAND [ARGS]\n"
	"commands: doctor | cleanup | version | list containers [--all] | list images |\n"
	"          container ID | stop container ID [--timeout-seconds N] | stop all |\n"
	"          kill container ID";

struct globals {
	bool json;
	const char *python;
	const char *cgroup_parent;
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

static void help(void)
{
	printf("%s\n\n"
	       "Administer spr on this host.\n\n"
	       "  doctor            what the LocalEngine can use here: cgroup hierarchies per\n"
	       "                    controller (and the fix when one is unusable), and the\n"
	       "                    isolation a trial run actually got\n"
	       "  cleanup           remove what killed callers left behind (run cgroups)\n"
	       "  version           print the version\n\n"
	       "Global options:\n"
	       "  --json            machine-readable output\n"
	       "  --python PATH     interpreter for the trial run (default /usr/bin/python3)\n"
	       "  --cgroup-parent NAME  cgroup (relative to this process's own) that runs go\n"
	       "                    under; default $SPR_CGROUP_PARENT\n\n"
	       "Exit status: 0 ok, 1 problems found, 2 bad usage, 125 engine unavailable.\n",
	       usage_line);
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
	const cJSON *cg = cJSON_GetObjectItemCaseSensitive(r, "cgroups");
	printf("cgroups     %s%s\n", str(cg, "version"),
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cg, "usable")) ? "" : " (NOT usable)");
	static const char *const ctls[] = {"memory", "pids", "cpu", "cpuacct"};
	for (size_t i = 0; i < sizeof(ctls) / sizeof(*ctls); i++) {
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(cg, ctls[i]);
		const char *base = str(c, "base");
		printf("  %-9s %-4s %s  %s\n", ctls[i], str(c, "hierarchy"), base ? base : "-",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "usable")) ? "usable"
										 : "unusable");
		if (str(c, "problem"))
			printf("            fix: %s\n", str(c, "problem"));
	}
	const cJSON *problems = cJSON_GetObjectItemCaseSensitive(r, "problems");
	const cJSON *p;
	if (cJSON_GetArraySize(problems))
		printf("problems:\n");
	cJSON_ArrayForEach(p, problems)
	{
		printf("  - %s\n", p->valuestring);
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
	int problems = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "problems"));
	if (g->json) {
		char *pretty = cJSON_Print(r);
		puts(pretty ? pretty : json);
		free(pretty);
	} else {
		print_doctor(r);
	}
	cJSON_Delete(r);
	spr_free(json);
	return problems ? EXIT_PROBLEM : 0;
}

static int cmd_cleanup(const struct globals *g)
{
	spr_local_options o = local_options(g);
	int removed = 0;
	spr_error *err = NULL;
	if (spr_local_cleanup(&o, &removed, &err) < 0) {
		fprintf(stderr, "spr: cleanup: %s\n", err->message);
		spr_error_free(err);
		return EXIT_ENGINE;
	}
	if (g->json)
		printf("{\"removed_run_cgroups\": %d}\n", removed);
	else
		printf("removed %d stale run cgroup%s\n", removed, removed == 1 ? "" : "s");
	return 0;
}

/* Commands of the DockerEngine's admin surface (SPEC §5-§6). */
static bool is_docker_command(const char *cmd)
{
	static const char *const docker[] = {"list", "container", "stop", "kill"};
	for (size_t i = 0; i < sizeof(docker) / sizeof(*docker); i++)
		if (!strcmp(cmd, docker[i]))
			return true;
	return false;
}

int main(int argc, char **argv)
{
	enum { OPT_PYTHON = 256, OPT_CGROUP_PARENT, OPT_VERSION };
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"python", required_argument, NULL, OPT_PYTHON},
		{"cgroup-parent", required_argument, NULL, OPT_CGROUP_PARENT},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, OPT_VERSION},
		{0},
	};
	struct globals g = {0};
	opterr = 0;
	int c;
	/* "+": options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'j': g.json = true; break;
		case OPT_PYTHON: g.python = optarg; break;
		case OPT_CGROUP_PARENT: g.cgroup_parent = optarg; break;
		case 'h': help(); return 0;
		case OPT_VERSION: printf("spr %s\n", SPR_VERSION); return 0;
		default: return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("missing command");
	const char *cmd = argv[optind];
	char **rest = argv + optind + 1;
	int nrest = argc - optind - 1;
	/* Per-command options: --json anywhere, --help on every level. */
	int kept = 0;
	for (int i = 0; i < nrest; i++) {
		if (!strcmp(rest[i], "--json"))
			g.json = true;
		else if (!strcmp(rest[i], "--help") || !strcmp(rest[i], "-h")) {
			help();
			return 0;
		} else
			rest[kept++] = rest[i];
	}
	nrest = kept;
	if (!strcmp(cmd, "help")) {
		help();
		return 0;
	}
	if (!strcmp(cmd, "version")) {
		printf(g.json ? "{\"spr\": \"%s\"}\n" : "spr %s\n", SPR_VERSION);
		return 0;
	}
	if (!strcmp(cmd, "doctor") || !strcmp(cmd, "cleanup")) {
		if (nrest)
			return usage_error("'%s' takes no arguments (got '%s')", cmd, rest[0]);
		return !strcmp(cmd, "doctor") ? cmd_doctor(&g) : cmd_cleanup(&g);
	}
	if (is_docker_command(cmd)) {
		fprintf(stderr, "spr: '%s' manages DockerEngine containers, which this build does "
				"not include yet\n",
			cmd);
		return EXIT_ENGINE;
	}
	return usage_error("unknown command '%s'", cmd);
}
