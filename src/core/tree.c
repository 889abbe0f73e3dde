#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

void spr_remove_tree_at(int dirfd)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			/* A directory left unwritable by its writer. */
			fchmod(sub, 0700);
			spr_remove_tree_at(sub);
		}
		unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

int spr_remove_tree(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path) < 0 && errno != ENOENT ? -1 : 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0)
		spr_remove_tree_at(fd);
	return rmdir(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int hand_over(int dirfd, const char *name, const struct stat *st, uid_t to_uid,
		     gid_t to_gid)
{
	if (fchownat(dirfd, name, to_uid, to_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (S_ISLNK(st->st_mode) || !(st->st_mode & (S_ISUID | S_ISGID)))
		return 0;
	/* chown clears them for files already; nothing set-id survives. */
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int rc = chmod(proc, st->st_mode & 0777 & ~(mode_t)(S_ISUID | S_ISGID));
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int chown_below(int dirfd, uid_t from_uid, uid_t to_uid, gid_t to_gid, int depth)
{
	if (depth > 256) {
		close(dirfd);
		errno = ELOOP;
		return -1;
	}
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return -1;
	}
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (errno = 0, de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || chown_below(sub, from_uid, to_uid, to_gid, depth + 1) < 0) {
				rc = -1;
				break;
			}
		}
		if (st.st_uid == from_uid && hand_over(dirfd, de->d_name, &st, to_uid, to_gid) < 0)
			rc = -1;
	}
	if (!de && errno)
		rc = -1;
	int saved = errno;
	closedir(d);
	errno = saved;
	return rc;
}

int spr_chown_tree(const char *path, uid_t from_uid, uid_t to_uid, gid_t to_gid)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_uid == from_uid && fchown(fd, to_uid, to_gid) < 0) {
		close(fd);
		return -1;
	}
	return chown_below(fd, from_uid, to_uid, to_gid, 0);
}
