#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <grp.h>

#include "namespace/steps.h"
#include "where.h"

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

static const char *container_phrase(const char *kind)
{
	return !strcmp(kind, "docker")	       ? "a docker container"
	       : !strcmp(kind, "podman")       ? "a podman container"
	       : !strcmp(kind, "kubernetes") ? "a Kubernetes pod"
					       : "a container";
}

/* This program's path, for a profile to name. */
static const char *self_path(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
	if (n <= 0)
		return "spr-sandbox";
	path[n] = '\0';
	return path;
}

int spr_userns_explain(int errnum, spr_error **err)
{
	/* What degrading keeps: say it, so that choosing it is informed. */
	static const char fallback[] =
		" (or pass --allow-degraded / allow_degraded: the seccomp filter, Landlock, no host "
		"IPC or inet sockets without network, the run's own uid as root and the whole "
		"process tree killed still apply; isolation lists what does)";
	bool root = geteuid() == 0;
	const char *container = spr_container_kind();
	if (read_sysctl("/proc/sys/user/max_user_namespaces") == 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"user namespaces are disabled: sysctl user.max_user_namespaces=0 "
				"(set it to e.g. 15000 in /etc/sysctl.d%s)%s",
				container ? ", on the container's host" : "", fallback);
	if (!root && read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"user namespaces are disabled for unprivileged users: sysctl "
				"kernel.unprivileged_userns_clone=0 (set it to 1%s)%s",
				container ? " on the container's host" : ", or run as root", fallback);
	if (!root && read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"user namespaces are restricted by AppArmor: sysctl "
				"kernel.apparmor_restrict_unprivileged_userns=1 (add an AppArmor "
				"profile that allows userns for %s, or set the sysctl to 0)%s",
				self_path(), fallback);
	if (errnum == ENOSPC)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"the user namespace limit is reached: raise sysctl "
				"user.max_user_namespaces (now %ld)%s",
				read_sysctl("/proc/sys/user/max_user_namespaces"), fallback);
	if (errnum == EINVAL)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"this kernel has no user namespaces (CONFIG_USER_NS is off)%s",
				fallback);
	if (container)
		return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
				"creating the sandbox namespaces failed: %s — this runs inside %s, "
				"whose seccomp profile and dropped capabilities refuse them: run the "
				"container with a seccomp profile that allows unshare and clone with "
				"namespace flags and with %s (a sandbox's fresh /proc needs it), and "
				"give it a delegated cgroup%s",
				strerror(errnum), container_phrase(container),
				!strcmp(container, "podman") ? "--security-opt unmask=ALL"
							     : "--security-opt systempaths=unconfined",
				fallback);
	return spr_fail(err, SPR_LAYER_NAMESPACE, errnum,
			"creating the sandbox namespaces failed: %s — a seccomp profile or a "
			"security module forbids unshare/clone of namespaces here%s",
			strerror(errnum), fallback);
}
