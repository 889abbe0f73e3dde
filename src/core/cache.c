#include "cache.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>

/* Only a directory we own and nobody else may write is trusted: a planted
 * .pyc would run as the worker. (Readable by all: the .pyc is the
 * worker, public code.) */
static bool private_dir(const char *dir)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		mkdir(parent, 0755);
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return false;
	struct stat st;
	return lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
	       !(st.st_mode & 022);
}

static char *cache_path(void)
{
	const char *env = getenv("SPR_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"),
		   *home = getenv("HOME");
	char *dir = NULL;
	int n;
	if (env && env[0] == '/')
		n = asprintf(&dir, "%s", env);
	else if (geteuid() == 0)
		/* Root's runs may execute as nobody (degraded mode): the cache
		 * must be readable by everyone and writable by root only. */
		n = asprintf(&dir, "/var/cache/spr");
	else if (xdg && xdg[0] == '/')
		n = asprintf(&dir, "%s/spr", xdg);
	else if (home && home[0] == '/')
		n = asprintf(&dir, "%s/.cache/spr", home);
	else
		n = asprintf(&dir, "/tmp/spr-cache-%d", (int)geteuid());
	return n < 0 ? NULL : dir;
}

char *spr_cache_dir(void)
{
	char *dir = cache_path();
	if (dir && !private_dir(dir)) {
		free(dir);
		return NULL;
	}
	return dir;
}

uint64_t spr_fnv1a(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

bool spr_read_file(const char *path, spr_buf *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char chunk[16384];
	ssize_t n;
	while (fd >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		spr_buf_append(out, chunk, (size_t)n);
	return fd >= 0 && !out->oom;
}

