#include <fcntl.h>
#include <grp.h>

#include "namespace/steps.h"

static int write_file(pid_t pid, const char *name, const char *text, spr_error **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "writing %s (\"%s\")", path, text);
	return 0;
}

int spr_userns_write_maps(pid_t pid, const struct spr_idmap *m, spr_error **err)
{
	char line[64];
	/* setgroups must be denied before an unprivileged gid_map write, and
	 * the code must never drop a group to gain access. */
	if (write_file(pid, "setgroups", "deny", err) < 0)
		return -1;
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)m->gid, (unsigned)m->outside_gid);
	if (write_file(pid, "gid_map", line, err) < 0)
		return -1;
	snprintf(line, sizeof(line), "%u %u 1\n", (unsigned)m->uid, (unsigned)m->outside_uid);
	return write_file(pid, "uid_map", line, err);
}

/* A process keeps its supplementary groups across clone(CLONE_NEWUSER),
 * and with setgroups denied nothing inside can drop them: root's (0, adm,
 * ...) would stay the code's on every host object, unmapped or not. The
 * monitor is a fork of its own per run, so it drops them for itself and
 * init inherits none. An unprivileged caller cannot drop its own (nor gain
 * any by keeping them: they are the caller's). */
int spr_userns_drop_groups(spr_error **err)
{
	if (geteuid() != 0)
		return 0;
	if (setgroups(0, NULL) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
				      "dropping root's supplementary groups (setgroups) failed: "
				      "spr-sandbox needs CAP_SETGID when run as root");
	return 0;
}

static long read_sysctl(const char *path)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	long v = -1;
	if (f && fscanf(f, "%ld", &v) != 1)
		v = -1;
	return v;
}

int spr_userns_explain(int errnum, spr_error **err)
{
	static const char fallback[] = " (or pass --allow-degraded / allow_degraded to run without "
				       "namespaces, reported in isolation)";
	bool root = geteuid() == 0;
	if (read_sysctl("/proc/sys/user/max_user_namespaces") == 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"user namespaces are disabled: sysctl user.max_user_namespaces=0 "
				"(set it to e.g. 15000 in /etc/sysctl.d)%s",
				fallback);
	if (!root && read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"user namespaces are disabled for unprivileged users: sysctl "
				"kernel.unprivileged_userns_clone=0 (set it to 1, or run as root)%s",
				fallback);
	if (!root && read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"user namespaces are restricted by AppArmor: sysctl "
				"kernel.apparmor_restrict_unprivileged_userns=1 (set it to 0, add an "
				"AppArmor profile allowing userns for spr-sandbox, or run as root)%s",
				fallback);
	if (errnum == ENOSPC)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"the user namespace limit is reached: raise sysctl "
				"user.max_user_namespaces (now %ld)%s",
				read_sysctl("/proc/sys/user/max_user_namespaces"), fallback);
	if (errnum == EINVAL)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"this kernel has no user namespaces (CONFIG_USER_NS is off)%s",
				fallback);
	return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
			"creating the sandbox namespaces failed: %s — is spr running inside a "
			"container or under a seccomp profile that forbids unshare/clone of "
			"namespaces? (Docker: --security-opt seccomp=unconfined or a profile "
			"allowing CLONE_NEWUSER)%s",
			strerror(errnum), fallback);
}
