/* kernel-without FEATURE COMMAND...: runs COMMAND as on a kernel that
 * lacks FEATURE, so tests reach spr's fallbacks and refusals without a
 * second kernel (deny-userns does the same for user namespaces):
 *   seccomp  seccomp(2) and prctl(PR_SET_SECCOMP) fail with EINVAL, as
 *            without CONFIG_SECCOMP_FILTER (this tool's own filter is the
 *            last one anything below it can load);
 *   clone3   clone3(2) fails with ENOSYS, as before Linux 5.3, so callers
 *            fall back to clone(2). */
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static int deny(scmp_filter_ctx ctx, const char *feature)
{
	if (!strcmp(feature, "seccomp")) {
		int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), SCMP_SYS(seccomp), 0);
		return rc ? rc
			  : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EINVAL), SCMP_SYS(prctl), 1,
					     SCMP_A0(SCMP_CMP_EQ, PR_SET_SECCOMP));
	}
	if (!strcmp(feature, "clone3"))
		return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	return -EINVAL;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: kernel-without seccomp|clone3 COMMAND [ARG]...\n");
		return 2;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int rc = ctx ? deny(ctx, argv[1]) : -ENOMEM;
	if (!rc)
		rc = seccomp_load(ctx);
	if (rc) {
		fprintf(stderr, "kernel-without %s: seccomp: %s\n", argv[1], strerror(-rc));
		return 125;
	}
	execvp(argv[2], argv + 2);
	perror(argv[2]);
	return 127;
}
