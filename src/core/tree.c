#include "tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 256
/* Levels spr_remove_tree_below goes down (a descriptor each). */
#define MAX_DESCEND 64

static bool dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]));
}

/* Removes what dirfd's directory holds, one level at a time; returns the
 * name of a subdirectory that is not empty (copied into sub), or "" when
 * the directory is empty now (or nothing more can go). */
/* A listing of dirfd's directory from its start, on a descriptor of its
 * own (closedir must not close dirfd); NULL when it cannot be had. */
static DIR *listing(int dirfd)
{
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	rewinddir(d); /* the descriptor's offset is shared with earlier passes */
	return d;
}

static void empty_level(int dirfd, char sub[256])
{
	sub[0] = '\0';
	DIR *d = listing(dirfd);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0 ||
		    unlinkat(dirfd, de->d_name, AT_REMOVEDIR) == 0)
			continue;
		if (errno == ENOTEMPTY || errno == EEXIST || errno == EACCES || errno == EPERM) {
			snprintf(sub, 256, "%s", de->d_name);
			break;
		}
	}
	closedir(d);
}

/* Depth first without recursion and with two descriptors at most: a tree
 * any depth deep (an install may make one 30000 levels deep) goes. It
 * walks back up through "..", which is safe only where nobody moves
 * directories meanwhile: a run's directory after its processes are gone,
 * a venv store no one else may write. */
void spr_remove_tree_at(int dirfd)
{
	int cur = dirfd;
	size_t depth = 0;
	struct stat left = {0}; /* the directory we just came up from */
	char sub[256];
	for (;;) {
		empty_level(cur, sub);
		if (sub[0]) {
			struct stat st;
			/* Came up from it and it is still not empty: something
			 * in it will not go; give up rather than loop. */
			if (fstatat(cur, sub, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    (st.st_ino == left.st_ino && st.st_dev == left.st_dev))
				break;
			int next = openat(cur, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (next < 0)
				break;
			/* A directory left unwritable by its writer. */
			fchmod(next, 0700);
			close(cur);
			cur = next;
			depth++;
			left = (struct stat){0};
			continue;
		}
		if (!depth || fstat(cur, &left) < 0)
			break;
		int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (up < 0)
			break;
		close(cur);
		cur = up;
		depth--;
	}
	close(cur);
}

/* Going down only, one descriptor per level: nothing moved meanwhile
 * (a directory renamed elsewhere by a leftover process) can take it
 * outside the tree, as walking back up through ".." could. */
static void remove_below(int dirfd, int levels_left)
{
	DIR *d = listing(dirfd);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name) || unlinkat(dirfd, de->d_name, 0) == 0 ||
		    errno != EISDIR || !levels_left)
			continue;
		int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			continue;
		fchmod(sub, 0700);
		remove_below(sub, levels_left - 1);
		close(sub);
		unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

void spr_remove_tree_below(int dirfd)
{
	remove_below(dirfd, MAX_DESCEND);
	close(dirfd);
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

/* Mode bits nothing handed over keeps: set-id, and writing by others
 * (a venv another local user could add a .pth to would run their code in
 * every later run). */
#define STRIPPED_BITS ((mode_t)(S_ISUID | S_ISGID | S_IWGRP | S_IWOTH))

static int sanitize(int dirfd, const char *name, const struct stat *st, const struct tree_owner *o)
{
	if (st->st_uid == o->from_uid && o->from_uid != o->to_uid &&
	    fchownat(dirfd, name, o->to_uid, o->to_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -1;
	if (S_ISLNK(st->st_mode) || !(st->st_mode & STRIPPED_BITS))
		return 0;
	int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	int rc = chmod(proc, st->st_mode & 07777 & ~STRIPPED_BITS);
	int saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

static int walk_below(int dirfd, const struct tree_owner *o, int depth)
{
	if (depth > MAX_DEPTH) {
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
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode)) {
			/* A fifo, socket or device node has no business in a
			 * venv, and opening one hangs or acts. */
			errno = EINVAL;
			rc = -1;
			break;
		}
		if (st.st_uid != o->from_uid && st.st_uid != o->to_uid) {
			errno = EPERM; /* nothing else could have made it */
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0 || walk_below(sub, o, depth + 1) < 0) {
				rc = -1;
				break;
			}
		}
		if (sanitize(dirfd, de->d_name, &st, o) < 0)
			rc = -1;
	}
	if (!de && errno)
		rc = -1;
	int saved = errno;
	closedir(d);
	errno = saved;
	return rc;
}

int spr_hand_over_tree(const char *path, const struct tree_owner *o)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	int rc = 0;
	if (st.st_uid == o->from_uid && o->from_uid != o->to_uid)
		rc = fchown(fd, o->to_uid, o->to_gid);
	if (rc == 0 && st.st_mode & STRIPPED_BITS)
		rc = fchmod(fd, st.st_mode & 07777 & ~STRIPPED_BITS);
	if (rc < 0) {
		close(fd);
		return -1;
	}
	return walk_below(fd, o, 0);
}
