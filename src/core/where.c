/* Where this process runs (where.h). */
#include "where.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Whether a small file holds needle (NUL bytes count as separators). */
static bool file_has(const char *path, const char *needle)
{
	char text[8192];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++)
		if (!text[i])
			text[i] = '\n';
	text[n] = '\0';
	return strstr(text, needle) != NULL;
}

/* Whether / is an overlay (what image-based runtimes mount), from
 * mountinfo: a marker file alone can be a leftover of how a host's own
 * root was built. */
static bool root_is_overlay(void)
{
	char text[16384];
	int fd = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return false;
	text[n] = '\0';
	for (char *line = text; line && *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char mount_point[256], fstype[64];
		const char *sep = strstr(line, " - ");
		if (sep && sscanf(line, "%*s %*s %*s %*s %255s", mount_point) == 1 &&
		    !strcmp(mount_point, "/") && sscanf(sep + 3, "%63s", fstype) == 1 &&
		    strstr(fstype, "overlay"))
			return true;
		line = next;
	}
	return false;
}

static const char *kind;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void look(void)
{
	if (file_has("/proc/1/cgroup", "docker") || (exists("/.dockerenv") && root_is_overlay()))
		kind = "docker";
	else if (exists("/run/.containerenv") || file_has("/proc/1/cgroup", "libpod"))
		kind = "podman";
	else if (getenv("KUBERNETES_SERVICE_HOST") ||
		 exists("/var/run/secrets/kubernetes.io") || file_has("/proc/1/cgroup", "kubepods"))
		kind = "kubernetes";
	else if (file_has("/proc/1/environ", "container="))
		kind = "a container";
}

const char *spr_container_kind(void)
{
	pthread_once(&once, look);
	return kind;
}
