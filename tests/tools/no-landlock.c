/* no-landlock COMMAND...: runs COMMAND as on a kernel without Landlock
 * (its syscalls fail with ENOSYS). Tests use it to exercise what spr does
 * there — e.g. the seccomp variant that refuses unix sockets when the
 * network is shared — on a host whose kernel has Landlock. */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: no-landlock COMMAND [ARG]...\n");
		return 2;
	}
	static const char *const calls[] = {"landlock_create_ruleset", "landlock_add_rule",
					    "landlock_restrict_self"};
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = ctx ? 0 : -ENOMEM;
	for (size_t i = 0; !rc && i < sizeof(calls) / sizeof(*calls); i++) {
		int nr = seccomp_syscall_resolve_name(calls[i]);
		rc = nr == __NR_SCMP_ERROR ? -ENOSYS
					   : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	}
	if (!rc)
		rc = seccomp_load(ctx);
	if (rc) {
		fprintf(stderr, "no-landlock: seccomp: %s\n", strerror(-rc));
		return 125;
	}
	execvp(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}
