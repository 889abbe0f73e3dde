/* spr: the admin CLI (managed containers, doctor). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spr.h"

#define EXIT_USAGE 2

static const char usage_line[] =
	"usage: spr [--docker-context NAME | --docker-host URL | --ssh-host HOST ...] "
	"COMMAND [--json]\n"
	"commands: list containers [--all] | list images | container ID | "
	"stop container ID [--timeout-seconds N] | stop all | kill container ID | cleanup | "
	"doctor | version";

static int usage(const char *fmt, const char *arg)
{
	fputs("spr: ", stderr);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s\nTry 'spr --help' for more information.\n", usage_line);
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage("%s", "missing command");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		printf("%s\n", usage_line);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("spr %s\n", SPR_VERSION);
		return 0;
	}
	static const char *const later[] = {"list", "container", "stop", "kill", "cleanup",
					    "doctor"};
	for (size_t i = 0; i < sizeof(later) / sizeof(*later); i++)
		if (!strcmp(cmd, later[i])) {
			fprintf(stderr, "spr: '%s' is not available in this build yet\n", cmd);
			return 125;
		}
	return usage("unknown command '%s'", cmd);
}
