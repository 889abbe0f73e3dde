/* What both sides of a run's cgroup share: the library (detect.c: which
 * hierarchies, enabling controllers, removing stale runs) and spr-sandbox's
 * monitor (run.c: one run's cgroup). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>

#include "cgroup/cgroup.h"

/* <dir>/<file>; false (errno ENAMETOOLONG) rather than a cut-off path. */
bool spr_cg_path(char path[PATH_MAX], const char *dir, const char *file)
{
	if ((size_t)snprintf(path, PATH_MAX, "%s/%s", dir, file) < PATH_MAX)
		return true;
	errno = ENAMETOOLONG;
	return false;
}

int spr_cg_write_file(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX];
	if (!spr_cg_path(path, dir, file))
		return -1;
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = strlen(value);
	return write(fd, value, len) == (ssize_t)len ? 0 : -1;
}

bool spr_cg_v2_has_controllers(const char *dir)
{
	char path[PATH_MAX], buf[256] = "";
	if (!spr_cg_path(path, dir, "cgroup.subtree_control"))
		return false;
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	return f && fgets(buf, sizeof(buf), f) && strstr(buf, "memory") && strstr(buf, "pids") &&
	       strstr(buf, "cpu");
}

int spr_cg_v2_enable_controllers(const char *dir, spr_error **err)
{
	if (spr_cg_v2_has_controllers(dir))
		return 0;
	if (spr_cg_write_file(dir, "cgroup.subtree_control", "+memory +pids +cpu") < 0) {
		if (errno == EBUSY)
			return spr_fail_errno(err, SPR_LAYER_CGROUP,
					      "%s contains processes, so its children cannot get the "
					      "memory, pids and cpu controllers (cgroup v2's no internal "
					      "processes rule): run spr from a delegated cgroup "
					      "(systemd: Delegate=yes) or pass --cgroup-parent",
					      dir);
		return spr_fail_errno(err, SPR_LAYER_CGROUP,
				      "enabling the memory, pids and cpu controllers in "
				      "%s/cgroup.subtree_control",
				      dir);
	}
	return 0;
}

void spr_cg_kill_dir(const char *dir)
{
	/* cgroup.kill (v2, Linux 5.14+) kills atomically, forks included. */
	char path[PATH_MAX + 16];
	snprintf(path, sizeof(path), "%s/cgroup.kill", dir);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0 && write(fd, "1", 1) == 1)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	long pid;
	while (f && fscanf(f, "%ld", &pid) == 1)
		kill((pid_t)pid, SIGKILL);
}
